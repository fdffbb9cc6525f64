package fs_test

// Regression tests of the hardening issue (issue 10): each test here
// failed before its fix.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tundevfs/tundevfs/internal/testenv"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
	"github.com/tundevfs/tundevfs/ioctls"
)

// touch reads the first byte of a mapping with faults turned into panics,
// and reports whether the read faulted (SIGBUS), or the byte.
func touch(m []byte) (b byte, faulted bool) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if recover() != nil {
			faulted = true
		}
	}()
	return m[0], false
}

// TestMmapConsumesNothing (issue 10 defect 2): a device has no pages. A
// shared mapping fails (ENODEV, FreeBSD's tun has no d_mmap); a private
// mapping, which the kernel allows for any FUSE file, faults with SIGBUS
// at once instead of waiting for a packet and eating it; readahead reads
// nothing. The packet queued meanwhile is still there for read(2).
func TestMmapConsumesNothing(t *testing.T) {
	e := newQuietEnv(t)
	l := e.setup(t, "tun", 1)
	s := e.udpSocket(t, l.local, 5000)

	if m, err := unix.Mmap(l.fd, 0, 4096, unix.PROT_READ, unix.MAP_SHARED); err == nil {
		unix.Munmap(m)
		t.Fatal("MAP_SHARED of a device succeeded")
	} else if !errors.Is(err, unix.ENODEV) {
		t.Fatalf("MAP_SHARED of a device: %v, want ENODEV", err)
	}

	sendTo(t, s, l.remote, 6000, []byte("first"))
	m, err := unix.Mmap(l.fd, 0, 4096, unix.PROT_READ, unix.MAP_PRIVATE)
	if err == nil {
		t.Cleanup(func() { unix.Munmap(m) })
		done := make(chan bool, 1)
		go func() {
			_, faulted := touch(m)
			done <- faulted
		}()
		select {
		case faulted := <-done:
			if !faulted {
				t.Error("a private mapping of a device read data")
			}
		case <-time.After(hangGuard):
			t.Fatal("touching a private mapping of a device blocked")
		}
	} else if !errors.Is(err, unix.ENODEV) {
		t.Fatalf("MAP_PRIVATE of a device: %v", err)
	}
	// Readahead and fadvise go through the page cache too.
	unix.Fadvise(l.fd, 0, 65536, unix.FADV_WILLNEED)
	unix.Syscall(unix.SYS_READAHEAD, uintptr(l.fd), 0, 65536)
	sendTo(t, s, l.remote, 6000, []byte("second"))
	for _, want := range []string{"first", "second"} {
		got := extractWithin(t, l, 6000, 5*time.Second)
		if string(got) != want {
			t.Fatalf("read %q, want %q (a page-cache read ate a packet)", got, want)
		}
	}
}

// extractWithin is link.extract with a shorter guard.
func extractWithin(t *testing.T, l *link, port int, d time.Duration) []byte {
	t.Helper()
	buf := make([]byte, 65536)
	for i := 0; i < 100; i++ {
		n, err := readWithin(t, l.fd, buf, d, fmt.Sprintf("no packet to port %d in %v", port, d))
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if pl := itest.UDPPayload(buf[:n], uint16(port)); pl != nil {
			return append([]byte(nil), pl...)
		}
	}
	t.Fatalf("no UDP packet to port %d among 100 reads", port)
	return nil
}

// TestMTULimit (issue 10 defect 3): one limit for both directions. An MTU
// whose packets a write could not carry back is EINVAL; at the limit, a
// packet read is written back whole.
func TestMTULimit(t *testing.T) {
	e := newQuietEnv(t)
	l := e.setup(t, "tun", 1)
	for _, mtu := range []uint16{65535, 30000, 16385} {
		err := ioctls.SetInfo(l.fd, ioctls.TunInfo{MTU: mtu, Type: ioctls.IFT_PPP})
		if !errors.Is(err, unix.EINVAL) {
			t.Errorf("tun TUNSIFINFO mtu=%d: %v, want EINVAL", mtu, err)
		}
	}
	if err := ioctls.SetInfo(l.fd, ioctls.TunInfo{MTU: 16384, Type: ioctls.IFT_PPP}); err != nil {
		t.Fatalf("tun TUNSIFINFO mtu=16384: %v", err)
	}
	// The largest packet the MTU allows goes out and comes back.
	s := e.udpSocket(t, l.local, 5000)
	sendTo(t, s, l.remote, 6000, bytes.Repeat([]byte{'m'}, 16384-28))
	buf := make([]byte, 70000)
	var pkt []byte
	for pkt == nil {
		n := readTimeout(t, l.fd, buf)
		if itest.UDPPayload(buf[:n], 6000) != nil {
			pkt = buf[:n]
		}
	}
	if len(pkt) != 16384 {
		t.Fatalf("read a packet of %d bytes, want 16384", len(pkt))
	}
	if n, err := unix.Write(l.fd, pkt); err != nil || n != len(pkt) {
		t.Fatalf("writing back the packet read: %d, %v", n, err)
	}

	tap := e.setup(t, "tap", 2)
	for _, mtu := range []uint16{16384, 16367} {
		err := ioctls.SetInfo(tap.fd, ioctls.TunInfo{MTU: mtu, Type: ioctls.IFT_ETHER})
		if !errors.Is(err, unix.EINVAL) {
			t.Errorf("tap TUNSIFINFO mtu=%d: %v, want EINVAL (Ethernet and VLAN headers must fit)", mtu, err)
		}
	}
	if err := ioctls.SetInfo(tap.fd, ioctls.TunInfo{MTU: 16366, Type: ioctls.IFT_ETHER}); err != nil {
		t.Fatalf("tap TUNSIFINFO mtu=16366: %v", err)
	}
}

// TestLargePacketOneRead (issue 10 defect 3): a packet larger than a FUSE
// read, with an MTU set behind the device's back, comes back from one
// read(2) on its own: the reply never fills the READ, so the kernel never
// asks for more, which would block or glue the next packet on.
func TestLargePacketOneRead(t *testing.T) {
	e := newQuietEnv(t)
	l := e.setup(t, "tun", 1)
	e.ns.Run(t, "ip", "link", "set", l.name, "mtu", "65535")
	if err := ioctls.SetIfHead(l.fd, true); err != nil {
		t.Fatal(err)
	}
	s := e.udpSocket(t, l.local, 5000)
	// Page-aligned, and 3000 bytes into a page.
	mem, err := unix.Mmap(-1, 0, 40*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	for _, off := range []int{0, 3000} {
		buf := mem[off : off+131072]
		sendTo(t, s, l.remote, 6000, bytes.Repeat([]byte{'L'}, 65507))
		sendTo(t, s, l.remote, 6000, []byte("next"))
		n, err := readWithin(t, l.fd, buf, 5*time.Second, "read of a 64 KiB packet blocked: the kernel asked for more")
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if n < 65536-1 || n > 65539 {
			t.Fatalf("offset %d: read %d bytes, want the large packet (up to 65539)", off, n)
		}
		n, err = readWithin(t, l.fd, buf, 5*time.Second, "no next packet")
		if err != nil {
			t.Fatal(err)
		}
		if pl := itest.UDPPayload(buf[4:n], 6000); string(pl) != "next" {
			t.Fatalf("offset %d: the packet after the large one: %d bytes, payload %q", off, n, pl)
		}
	}
}

// TestBatchWriteUnaligned (issue 10 defect 14): a batch write of up to 64
// KiB is one FUSE request wherever the buffer starts, so all of it is
// taken, not a part cut at a page boundary.
func TestBatchWriteUnaligned(t *testing.T) {
	e := newQuietEnv(t)
	l := e.setup(t, "tun", 1)
	s := e.udpSocket(t, l.local, 5000)
	if err := unix.IoctlSetPointerInt(l.fd, ioctls.TUNSBATCH, 1); err != nil {
		t.Fatal(err)
	}
	const total = 65520
	var batch []byte
	k := 0
	for total-len(batch) >= 2*1032 {
		payload := binary.BigEndian.AppendUint32(make([]byte, 0, 1000), uint32(k))
		payload = append(payload, make([]byte, 996)...)
		pkt := itest.UDP4(netip.MustParseAddr(l.remote), netip.MustParseAddr(l.local), 40000, 5000, payload)
		batch = binary.BigEndian.AppendUint32(batch, uint32(len(pkt)))
		batch = append(batch, pkt...)
		k++
	}
	last := binary.BigEndian.AppendUint32(nil, uint32(k))
	last = append(last, make([]byte, total-len(batch)-4-28-4)...)
	pkt := itest.UDP4(netip.MustParseAddr(l.remote), netip.MustParseAddr(l.local), 40000, 5000, last)
	batch = binary.BigEndian.AppendUint32(batch, uint32(len(pkt)))
	batch = append(batch, pkt...)
	k++
	if len(batch) != total {
		t.Fatalf("test bug: batch of %d bytes", len(batch))
	}
	mem, err := unix.Mmap(-1, 0, 20*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	buf := mem[3000 : 3000+total]
	copy(buf, batch)
	if n, err := unix.Write(l.fd, buf); err != nil || n != total {
		t.Fatalf("batch write of %d bytes 3000 bytes into a page: %d, %v", total, n, err)
	}
	rbuf := make([]byte, 2048)
	for i := 0; i < k; i++ {
		n, _, err := testenv.Recvfrom(s, rbuf)
		if err != nil {
			t.Fatalf("packet %d of %d: %v", i, k, err)
		}
		if got := int(binary.BigEndian.Uint32(rbuf[:n])); got != i {
			t.Fatalf("socket got %d, want %d", got, i)
		}
	}
}

// noDevices fails the test if the daemon has any device or the namespace
// any tun/tap interface.
func noDevices(t *testing.T, e *env, after string) {
	t.Helper()
	if st := e.d.Status(t); len(st.Devices) != 0 {
		var names []string
		for _, d := range st.Devices {
			names = append(names, d.Name)
		}
		t.Fatalf("after %s: devices %v were created", after, names)
	}
	for _, l := range e.ns.Links(t) {
		if strings.HasPrefix(l, "tun") || strings.HasPrefix(l, "tap") || strings.HasPrefix(l, "vmnet") {
			t.Fatalf("after %s: interface %s exists", after, l)
		}
	}
}

// TestNamespaceOpsCreateNothing (issue 10 defect 13): the directory
// answers mkdir, mknod, exclusive create, rename, link, unlink, rmdir and
// symlink as devfs does, and none of them makes a device on the way.
func TestNamespaceOpsCreateNothing(t *testing.T) {
	e := newEnv(t)
	p := func(name string) string { return filepath.Join(e.dir, name) }
	for _, c := range []struct {
		what string
		op   func() error
		want unix.Errno
	}{
		{"mkdir tun5", func() error { return unix.Mkdir(p("tun5"), 0o755) }, unix.EOPNOTSUPP},
		{"mknod tun9", func() error { return unix.Mknod(p("tun9"), unix.S_IFREG|0o600, 0) }, unix.EOPNOTSUPP},
		{"mknod fifo tap9", func() error { return unix.Mknod(p("tap9"), unix.S_IFIFO|0o600, 0) }, unix.EOPNOTSUPP},
		{"O_CREAT|O_EXCL tun6", func() error {
			fd, err := unix.Open(p("tun6"), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
			if err == nil {
				unix.Close(fd)
			}
			return err
		}, unix.EOPNOTSUPP},
		{"symlink tun7", func() error { return unix.Symlink("x", p("tun7")) }, unix.EPERM},
		{"unlink tun3", func() error { return unix.Unlink(p("tun3")) }, unix.ENOENT},
		{"rmdir vmnet2", func() error { return unix.Rmdir(p("vmnet2")) }, unix.ENOENT},
		{"rename tun bare", func() error { return unix.Rename(p("tun"), p("tun4")) }, unix.EOPNOTSUPP},
	} {
		err := c.op()
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.what, err, c.want)
		}
		noDevices(t, e, c.what)
	}
	for _, cmd := range [][]string{{"mkdir", p("tun5")}, {"mknod", p("tap5"), "p"}, {"ln", "-s", "x", p("tun7")}} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err == nil {
			t.Errorf("%v succeeded: %s", cmd, out)
		}
		noDevices(t, e, strings.Join(cmd, " "))
	}

	// With a device there: it stays, and nothing else appears.
	if _, err := os.Stat(p("tun0")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		op   func() error
		want unix.Errno
	}{
		{"rename tun0 tun8", func() error { return unix.Rename(p("tun0"), p("tun8")) }, unix.EOPNOTSUPP},
		{"link tun0 tun2", func() error { return unix.Link(p("tun0"), p("tun2")) }, unix.EOPNOTSUPP},
		{"unlink tun0", func() error { return unix.Unlink(p("tun0")) }, unix.EPERM},
		{"mkdir tun0", func() error { return unix.Mkdir(p("tun0"), 0o755) }, unix.EEXIST},
	} {
		if err := c.op(); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.what, err, c.want)
		}
		var names []string
		for _, d := range e.d.Status(t).Devices {
			names = append(names, d.Name)
		}
		if !slices.Equal(names, []string{"tun0"}) {
			t.Fatalf("after %s: devices %v, want [tun0]", c.what, names)
		}
	}
	// An open that may create (bash's <>, O_CREAT without O_EXCL) of a
	// unit that does not exist still clones it, as on FreeBSD.
	fd, err := unix.Open(p("tun5"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatalf("open tun5 O_RDWR|O_CREAT: %v", err)
	}
	unix.Close(fd)
}

// TestCloneRaceReturnsWinner (issue 10 defect 4): lookups racing to make
// the same unit through two mounts of one jail, or racing an ifconfig
// create, all get the device that won; none gets EIO.
func TestCloneRaceReturnsWinner(t *testing.T) {
	e := newQuietEnv(t)
	dir2 := e.d.Mount(t, "")
	rounds := 150
	if testing.Short() {
		rounds = 30
	}
	for i := 0; i < rounds; i++ {
		name := fmt.Sprintf("tun%d", 10+i%5)
		var wg sync.WaitGroup
		inos := make([]uint64, 3)
		errs := make([]error, 3)
		for k, dir := range []string{e.dir, dir2, ""} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if dir == "" {
					_, err := daemon.Call(e.d.Socket, daemon.Request{Op: "ifconfig", Args: []string{name, "create"}})
					if err != nil && !strings.Contains(err.Error(), "exists") {
						errs[k] = err
					}
					return
				}
				var st unix.Stat_t
				if err := unix.Stat(filepath.Join(dir, name), &st); err != nil {
					errs[k] = err
					return
				}
				inos[k] = st.Ino
			}()
		}
		wg.Wait()
		for k, err := range errs {
			if err != nil {
				t.Fatalf("round %d, racer %d on %s: %v", i, k, name, err)
			}
		}
		if inos[0] != inos[1] {
			t.Fatalf("round %d: the two mounts see %s as inodes %d and %d", i, name, inos[0], inos[1])
		}
		if out, err := e.d.CLI("ifconfig", name, "destroy"); err != nil {
			t.Fatalf("destroy %s: %v: %s", name, err, out)
		}
	}
}

// TestSharedNamespaceJail (issue 10 defect 4): a jail without vnet shares
// the host's namespace; a host device's name in its directory is no
// device of the jail's, and a lookup of it says ENOENT, not EIO.
func TestSharedNamespaceJail(t *testing.T) {
	e := newEnv(t)
	if _, err := os.Stat(filepath.Join(e.dir, "tun0")); err != nil {
		t.Fatal(err)
	}
	e.cli(t, "jail", "-c", "name=shared", "persist")
	t.Cleanup(func() { e.d.CLI("jail", "-r", "shared") })
	dir := e.d.Mount(t, "shared")
	for i := 0; i < 3; i++ {
		if _, err := os.Stat(filepath.Join(dir, "tun0")); !errors.Is(err, unix.ENOENT) {
			t.Fatalf("stat of the host's tun0 in a jail sharing its namespace: %v, want ENOENT", err)
		}
	}
	// The jail still clones the next free unit.
	target, err := os.Readlink(filepath.Join(dir, "tun"))
	if err != nil || target != "tun1" {
		t.Fatalf("tun in the shared jail -> %q, %v; want tun1", target, err)
	}
}

// TestAliasNeverShadows (issue 10 defect 6): an interface renamed to a
// cloner's name or a standard device's gets no alias; the name keeps its
// meaning, and status says why there is no alias.
func TestAliasNeverShadows(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ unit, newName string }{{"tun9", "tun"}, {"tap3", "tap"}, {"tun0", "null"}, {"tun1", "fd"}} {
		if _, err := os.Stat(filepath.Join(e.dir, c.unit)); err != nil {
			t.Fatal(err)
		}
		e.ns.Run(t, "ip", "link", "set", c.unit, "name", c.newName)
		if got := e.aliasOf(c.newName); got == c.unit {
			t.Errorf("%s -> %s: the alias shadows %s", c.newName, got, c.newName)
		}
		if e.listed(t, c.newName) {
			t.Errorf("%s listed after renaming %s to it", c.newName, c.unit)
		}
		found := false
		itest.WaitFor(func() bool {
			for _, d := range e.d.Status(t).Devices {
				if d.Name == c.newName && slices.Contains(d.Modes, "alias-refused") {
					found = true
				}
			}
			return found
		})
		if !found {
			t.Errorf("status does not say that %s got no alias: %+v", c.newName, e.d.Status(t).Devices)
		}
	}
	// The cloners still clone.
	for _, drv := range []string{"tun", "tap"} {
		target, err := os.Readlink(filepath.Join(e.dir, drv))
		if err != nil || !strings.HasPrefix(target, drv) || target == "tun9" || target == "tap3" {
			t.Errorf("%s -> %q, %v; want a new unit", drv, target, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(e.dir, "null")); !errors.Is(err, unix.ENOENT) {
		t.Errorf("lstat null: %v, want ENOENT", err)
	}
}

// TestDestroyUnlistsFirst (issue 10 defect 15): while a device is being
// destroyed, the directory never lists it once its interface is gone.
func TestDestroyUnlistsFirst(t *testing.T) {
	e := newQuietEnv(t)
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	for i := 0; i < rounds; i++ {
		name := fmt.Sprintf("tap%d", i%3)
		if _, err := os.Stat(filepath.Join(e.dir, name)); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		violation := make(chan string, 1)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.ns.Do(t, func() error {
				s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					return err
				}
				defer unix.Close(s)
				for {
					select {
					case <-stop:
						return nil
					default:
					}
					ifr, _ := unix.NewIfreq(name)
					gone := errors.Is(unix.IoctlIfreq(s, unix.SIOCGIFINDEX, ifr), unix.ENODEV)
					if !gone {
						continue
					}
					ents, err := os.ReadDir(e.dir)
					if err != nil {
						return err
					}
					if slices.ContainsFunc(ents, func(de os.DirEntry) bool { return de.Name() == name }) {
						select {
						case violation <- name:
						default:
						}
					}
					return nil
				}
			})
		}()
		if out, err := e.d.CLI("ifconfig", name, "destroy"); err != nil {
			t.Fatalf("destroy: %v: %s", err, out)
		}
		close(stop)
		wg.Wait()
		select {
		case v := <-violation:
			t.Fatalf("round %d: %s listed after its interface was gone", i, v)
		default:
		}
	}
}

// TestUnmountBlockedReader (issue 10 defect 14): unmounting under a
// blocked reader ends its read with ENXIO, as destroy does, and the later
// close is clean.
func TestUnmountBlockedReader(t *testing.T) {
	e := newEnv(t)
	dir := e.d.Mount(t, "")
	fd, err := unix.Open(filepath.Join(dir, "tun"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := start(unix.SYS_READ, blockingRead(fd))
	waitBlocked(t, c)
	if _, err := daemon.Call(e.d.Socket, daemon.Request{Op: "umount", Dir: dir}); err != nil {
		t.Fatalf("umount: %v", err)
	}
	if r := c.result(t); !errors.Is(r.err, unix.ENXIO) {
		t.Errorf("blocked read after unmount: %d, %v; want ENXIO", r.n, r.err)
	}
	if _, err := unix.Read(fd, make([]byte, 100)); !errors.Is(err, unix.ENXIO) && !errors.Is(err, unix.ENOTCONN) {
		t.Errorf("read after unmount: %v, want ENXIO", err)
	}
	if err := unix.Close(fd); err != nil {
		t.Errorf("close after unmount: %v, want a clean close", err)
	}
}
