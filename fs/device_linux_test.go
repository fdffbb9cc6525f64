package fs_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tundevfs/tundevfs/internal/testenv"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
)

// env is one test's namespace, daemon and host-jail mount.
type env struct {
	ns  *itest.Netns
	d   *itest.Daemon
	dir string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	d := itest.StartDaemon(t, ns)
	return &env{ns: ns, d: d, dir: d.Mount(t, "")}
}

// open opens a device file with raw syscalls and closes it at cleanup.
func (e *env) open(t *testing.T, name string, flags int) int {
	t.Helper()
	fd, err := unix.Open(filepath.Join(e.dir, name), unix.O_RDWR|unix.O_CLOEXEC|flags, 0)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// devName tells which unit an fd opened through a bare name got.
func devName(t *testing.T, fd int) string {
	t.Helper()
	p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Base(p)
}

// readTimeout reads once from fd, failing the test if nothing comes in 10s.
func readTimeout(t *testing.T, fd int, buf []byte) int {
	t.Helper()
	n, err := readWithin(t, fd, buf, 10*time.Second, "read: nothing in 10s")
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return n
}

// readWithin reads fd once and returns what read(2) returned, failing the
// test with msg if the read has not returned after d.
func readWithin(t *testing.T, fd int, buf []byte, d time.Duration, msg string) (int, error) {
	t.Helper()
	c := make(chan callResult, 1)
	go func() {
		n, err := unix.Read(fd, buf)
		c <- callResult{n, err}
	}()
	select {
	case r := <-c:
		return r.n, r.err
	case <-time.After(d):
		t.Fatal(msg)
	}
	return 0, nil
}

// udpSocket opens a UDP socket bound to addr:port inside the namespace.
func (e *env) udpSocket(t *testing.T, addr string, port int) int {
	t.Helper()
	var fd int
	e.ns.Do(t, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		sa := &unix.SockaddrInet4{Port: port}
		copy(sa.Addr[:], netip.MustParseAddr(addr).AsSlice())
		return unix.Bind(fd, sa)
	})
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.Timeval{Sec: 10}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return fd
}

func sendTo(t *testing.T, s int, addr string, port int, payload []byte) {
	t.Helper()
	sa := &unix.SockaddrInet4{Port: port}
	copy(sa.Addr[:], netip.MustParseAddr(addr).AsSlice())
	if err := unix.Sendto(s, payload, 0, sa); err != nil {
		t.Fatalf("sendto %s:%d: %v", addr, port, err)
	}
}

// link is a device configured with addresses, in either driver.
type link struct {
	name          string
	fd            int
	l2            bool
	local, remote string
	mac           [6]byte // the interface's MAC (tap)
	peerMAC       [6]byte // the remote's MAC (tap)
}

var (
	localMAC  = [6]byte{0x02, 0, 0, 0, 0, 1}
	remoteMAC = [6]byte{0x02, 0, 0, 0, 0, 2}
)

// setup clones a device of driver drv and configures it: local address
// 10.9.N.1, remote 10.9.N.2.
func (e *env) setup(t *testing.T, drv string, subnet int) *link {
	t.Helper()
	fd := e.open(t, drv, 0)
	return e.configure(t, drv, devName(t, fd), fd, subnet)
}

// configure gives the device name of driver drv (open as fd, or -1 when
// the test reads it otherwise) the addresses of setup and brings it up.
func (e *env) configure(t *testing.T, drv, name string, fd, subnet int) *link {
	t.Helper()
	l := &link{name: name, fd: fd, l2: drv != "tun",
		local: fmt.Sprintf("10.9.%d.1", subnet), remote: fmt.Sprintf("10.9.%d.2", subnet)}
	if l.l2 {
		l.mac, l.peerMAC = localMAC, remoteMAC
		e.ns.Run(t, "ip", "link", "set", l.name, "address", "02:00:00:00:00:01")
		e.ns.Run(t, "ip", "addr", "add", l.local+"/24", "dev", l.name)
		e.ns.Run(t, "ip", "neigh", "add", l.remote, "lladdr", "02:00:00:00:00:02", "dev", l.name)
	} else {
		e.ns.Run(t, "ip", "addr", "add", l.local, "peer", l.remote, "dev", l.name)
	}
	e.ns.Run(t, "ip", "link", "set", l.name, "up")
	return l
}

// inject writes one UDP datagram from remote to local:port into the device.
func (l *link) inject(t *testing.T, port int, payload []byte) {
	t.Helper()
	pkt := itest.UDP4(netip.MustParseAddr(l.remote), netip.MustParseAddr(l.local), 40000, uint16(port), payload)
	if l.l2 {
		pkt = itest.Ether(l.mac, l.peerMAC, pkt)
	}
	n, err := unix.Write(l.fd, pkt)
	if err != nil || n != len(pkt) {
		t.Fatalf("write packet to %s: %d, %v", l.name, n, err)
	}
}

// extract reads packets from the device until one is a UDP datagram to
// port, and returns its payload and the whole packet.
func (l *link) extract(t *testing.T, port int) (payload, whole []byte) {
	t.Helper()
	buf := make([]byte, 65536)
	for i := 0; i < 100; i++ {
		n := readTimeout(t, l.fd, buf)
		p := buf[:n]
		var pl []byte
		if l.l2 {
			pl = itest.FrameUDPPayload(p, uint16(port))
		} else {
			pl = itest.UDPPayload(p, uint16(port))
		}
		if pl != nil {
			return pl, p
		}
	}
	t.Fatalf("no UDP packet to port %d among 100 reads", port)
	return nil, nil
}

func TestCloneOnLookup(t *testing.T) {
	e := newEnv(t)
	for i, want := range []string{"tun0", "tun1"} {
		target, err := os.Readlink(filepath.Join(e.dir, "tun"))
		if err != nil {
			t.Fatalf("lookup %d of tun: %v", i, err)
		}
		if target != want {
			t.Fatalf("lookup %d of tun -> %q, want %q", i, target, want)
		}
		e.ns.Run(t, "ip", "link", "show", want)
	}
	ents, err := os.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range ents {
		names = append(names, de.Name())
	}
	if !slices.Equal(names, []string{"tun0", "tun1"}) {
		t.Fatalf("readdir = %v, want [tun0 tun1]", names)
	}
	st, err := os.Stat(filepath.Join(e.dir, "tun0"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || !st.Mode().IsRegular() {
		t.Fatalf("tun0 mode = %v, want -rw-------", st.Mode())
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 0 || sys.Gid != 0 {
		t.Fatalf("tun0 owner = %d:%d, want 0:0", sys.Uid, sys.Gid)
	}
	// tunN of a unit that does not exist creates exactly that unit.
	if _, err := os.Stat(filepath.Join(e.dir, "tap7")); err != nil {
		t.Fatal(err)
	}
	e.ns.Run(t, "ip", "link", "show", "tap7")
	// Destroy invalidates the kernel's cache at once: no ghost.
	if out, err := e.d.CLI("ifconfig", "tap7", "destroy"); err != nil {
		t.Fatalf("ifconfig tap7 destroy: %v: %s", err, out)
	}
	ents, _ = os.ReadDir(e.dir)
	for _, de := range ents {
		if de.Name() == "tap7" {
			t.Fatal("tap7 still listed after destroy")
		}
	}
	// A stat now is a new lookup: it clones tap7 again, a new device.
	st1, _ := os.Stat(filepath.Join(e.dir, "tun0"))
	if st1.Sys().(*syscall.Stat_t).Ino != st.Sys().(*syscall.Stat_t).Ino {
		t.Fatal("tun0 changed inode")
	}
}

func TestPackets(t *testing.T) {
	for i, drv := range []string{"tun", "tap", "vmnet"} {
		t.Run(drv, func(t *testing.T) {
			e := newEnv(t)
			l := e.setup(t, drv, i+1)
			s := e.udpSocket(t, l.local, 5000)

			// Device to kernel: a written packet reaches the socket.
			want := []byte("hello from the device " + drv)
			l.inject(t, 5000, want)
			buf := make([]byte, 2048)
			n, _, err := testenv.Recvfrom(s, buf)
			if err != nil {
				t.Fatalf("recv: %v", err)
			}
			if !bytes.Equal(buf[:n], want) {
				t.Fatalf("socket got %q, want %q", buf[:n], want)
			}

			// Kernel to device: one packet per read, byte for byte.
			for k := 0; k < 3; k++ {
				payload := []byte(fmt.Sprintf("to the device %d %s", k, strings.Repeat("x", k*500)))
				sendTo(t, s, l.remote, 6000, payload)
				got, whole := l.extract(t, 6000)
				if !bytes.Equal(got, payload) {
					t.Fatalf("device read payload %q, want %q", got, payload)
				}
				hdr := 28
				if l.l2 {
					hdr += 14
				}
				if len(whole) != hdr+len(payload) {
					t.Fatalf("read returned %d bytes, want exactly one packet of %d", len(whole), hdr+len(payload))
				}
			}
			// A short buffer truncates the packet; the rest is dropped.
			sendTo(t, s, l.remote, 6000, bytes.Repeat([]byte{'y'}, 1000))
			sendTo(t, s, l.remote, 6000, []byte("next"))
			small := make([]byte, 100)
			for {
				n := readTimeout(t, l.fd, small)
				if n != 100 {
					if l.l2 {
						continue // neighbour discovery and the like
					}
					t.Fatalf("short read = %d, want 100", n)
				}
				break
			}
			if got, _ := l.extract(t, 6000); string(got) != "next" {
				t.Fatalf("after a truncated read got %q, want the next packet", got)
			}
		})
	}
}

func TestExchange10k(t *testing.T) {
	const total, window = 10000, 64
	for i, drv := range []string{"tun", "tap"} {
		t.Run(drv, func(t *testing.T) {
			e := newEnv(t)
			l := e.setup(t, drv, i+1)
			s := e.udpSocket(t, l.local, 5000)
			buf := make([]byte, 2048)
			// Device to kernel.
			for base := 0; base < total; base += window {
				for k := base; k < base+window && k < total; k++ {
					l.inject(t, 5000, binary.BigEndian.AppendUint32(nil, uint32(k)))
				}
				for k := base; k < base+window && k < total; k++ {
					n, _, err := testenv.Recvfrom(s, buf)
					if err != nil {
						t.Fatalf("packet %d: recv: %v", k, err)
					}
					if got := binary.BigEndian.Uint32(buf[:n]); n != 4 || int(got) != k {
						t.Fatalf("socket got packet %d, want %d (lost or reordered)", got, k)
					}
				}
			}
			// Kernel to device.
			for base := 0; base < total; base += window {
				for k := base; k < base+window && k < total; k++ {
					sendTo(t, s, l.remote, 6000, binary.BigEndian.AppendUint32(nil, uint32(k)))
				}
				for k := base; k < base+window && k < total; k++ {
					got, _ := l.extract(t, 6000)
					if len(got) != 4 || int(binary.BigEndian.Uint32(got)) != k {
						t.Fatalf("device read packet %v, want %d (lost or reordered)", got, k)
					}
				}
			}
			var st daemon.Status
			e.d.Call(t, daemon.Request{Op: "status"}, &st)
			for _, dv := range st.Devices {
				if dv.Name == l.name && (dv.TxPackets < total || dv.RxPackets < total) {
					t.Fatalf("%s counters rx %d tx %d, want at least %d each", l.name, dv.RxPackets, dv.TxPackets, total)
				}
			}
		})
	}
}

func TestExclusiveOpen(t *testing.T) {
	e := newEnv(t)
	fd := e.open(t, "tun", 0)
	name := devName(t, fd)
	// Open records the opener's process id (not the id of the thread that
	// called open, which is what FUSE reports).
	for _, dv := range e.d.Status(t).Devices {
		if dv.Name == name && dv.OpenPid != os.Getpid() {
			t.Fatalf("%s open pid %d, want %d", name, dv.OpenPid, os.Getpid())
		}
	}
	_, err := unix.Open(filepath.Join(e.dir, name), unix.O_RDWR, 0)
	if !errors.Is(err, unix.EBUSY) {
		t.Fatalf("second open of %s: %v, want EBUSY", name, err)
	}
	unix.Close(fd)
	// Once closed it opens again; the release is asynchronous in FUSE.
	var fd2 int
	if !itest.WaitFor(func() bool {
		fd2, err = unix.Open(filepath.Join(e.dir, name), unix.O_RDWR, 0)
		return err == nil
	}) {
		t.Fatalf("open after close: %v", err)
	}
	unix.Close(fd2)
}

func TestBadNames(t *testing.T) {
	e := newEnv(t)
	linksBefore := e.ns.Links(t)
	for _, name := range []string{"tun01", "tun-1", "tun32768", "tunx", "tap00", "vmnet99999", "foo", "tun0x", "tuntun"} {
		_, err := os.Lstat(filepath.Join(e.dir, name))
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("lookup %s: %v, want ENOENT", name, err)
		}
	}
	if st := e.d.Status(t); len(st.Devices) != 0 || st.UnitsInUse != 0 {
		t.Fatalf("bad names created devices: %+v", st.Devices)
	}
	if after := e.ns.Links(t); !slices.Equal(after, linksBefore) {
		t.Fatalf("links changed: %v -> %v", linksBefore, after)
	}
}

func TestForeignInterface(t *testing.T) {
	e := newEnv(t)
	e.ns.Run(t, "ip", "tuntap", "add", "tun0", "mode", "tun")
	e.ns.Run(t, "ip", "tuntap", "add", "tun5", "mode", "tun")
	// Not listed, not adopted.
	if _, err := os.Lstat(filepath.Join(e.dir, "tun5")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lookup of foreign tun5: %v, want ENOENT", err)
	}
	// The bare name skips the taken unit.
	target, err := os.Readlink(filepath.Join(e.dir, "tun"))
	if err != nil {
		t.Fatal(err)
	}
	if target != "tun1" {
		t.Fatalf("tun -> %s, want tun1 (tun0 is foreign)", target)
	}
	ents, _ := os.ReadDir(e.dir)
	for _, de := range ents {
		if de.Name() == "tun0" || de.Name() == "tun5" {
			t.Fatalf("foreign %s listed", de.Name())
		}
	}
	if out, err := e.d.CLI("ifconfig", "tun5", "create"); err == nil {
		t.Fatalf("ifconfig tun5 create over a foreign tun5 succeeded: %s", out)
	} else if !strings.Contains(out, "in use") {
		t.Fatalf("ifconfig tun5 create: want a clear 'in use' error, got %q", out)
	}
	// The foreign interfaces are untouched.
	e.ns.Run(t, "ip", "link", "show", "tun5")
	e.ns.Run(t, "ip", "link", "show", "tun0")
}

func TestTruncatingOpen(t *testing.T) {
	e := newEnv(t)
	if _, err := os.Lstat(filepath.Join(e.dir, "tun0")); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", "echo x > "+filepath.Join(e.dir, "tun0")).CombinedOutput()
	if err != nil {
		t.Fatalf("echo x > tun0: %v: %s", err, out)
	}
}

// settle waits until the daemon has no devices (FORGETs arrive
// asynchronously) and returns its status.
func settle(t *testing.T, d *itest.Daemon) daemon.Status {
	t.Helper()
	var st daemon.Status
	itest.WaitFor(func() bool {
		st = d.Status(t)
		return len(st.Devices) == 0
	})
	if len(st.Devices) != 0 {
		t.Fatalf("devices left: %+v", st.Devices)
	}
	return st
}

func TestCreateDestroyCycle(t *testing.T) {
	e := newEnv(t)
	n := 1000
	if testing.Short() {
		n = 50
	}
	cycle := func(i int) {
		switch i % 3 {
		case 0: // devfs clone by bare name and open
			fd, err := unix.Open(filepath.Join(e.dir, "tun"), unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatalf("cycle %d: open tun: %v", i, err)
			}
			name := devName(t, fd)
			unix.Close(fd)
			if out, err := e.d.CLI("ifconfig", name, "destroy"); err != nil {
				t.Fatalf("cycle %d: destroy %s: %v %s", i, name, err, out)
			}
		case 1: // devfs clone by unit name
			if _, err := os.Stat(filepath.Join(e.dir, "tap3")); err != nil {
				t.Fatalf("cycle %d: %v", i, err)
			}
			var out any
			e.d.Call(t, daemon.Request{Op: "ifconfig", Args: []string{"tap3", "destroy"}}, &out)
		case 2: // ifconfig create
			var name string
			e.d.Call(t, daemon.Request{Op: "ifconfig", Args: []string{"vmnet", "create"}}, &name)
			var out any
			e.d.Call(t, daemon.Request{Op: "ifconfig", Args: []string{name, "destroy"}}, &out)
		}
	}
	for i := 0; i < 6; i++ { // warm up go-fuse's readers and pools
		cycle(i)
	}
	settle(t, e.d)
	itest.WarmUp(t, e.dir)
	base := e.d.Baseline(t) // counts the jails' holds too
	links := e.ns.Links(t)
	for i := 0; i < n; i++ {
		cycle(i)
	}
	after := settle(t, e.d)
	if after.UnitsInUse != 0 {
		t.Errorf("units in use after %d cycles: %d", n, after.UnitsInUse)
	}
	base.Check(t, fmt.Sprintf("after %d cycles", n))
	if got := e.ns.Links(t); !slices.Equal(got, links) {
		t.Errorf("interfaces %v -> %v", links, got)
	}
}

// blockedReader starts a reader blocked in read() on name, in this
// process, and returns the channel its result arrives on.
func blockedReader(t *testing.T, e *env, name string) (int, <-chan error) {
	t.Helper()
	fd := e.open(t, name, 0)
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 2048)
		_, err := unix.Read(fd, buf)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("read returned early: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	return fd, done
}

func waitReturn(t *testing.T, done <-chan error, why string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("blocked read did not return after %s", why)
	}
	return nil
}

func TestBlockedReadReturns(t *testing.T) {
	t.Run("destroy", func(t *testing.T) {
		e := newEnv(t)
		_, done := blockedReader(t, e, "tun3")
		if out, err := e.d.CLI("ifconfig", "tun3", "destroy"); err != nil {
			t.Fatalf("destroy: %v %s", err, out)
		}
		if err := waitReturn(t, done, "destroy"); !errors.Is(err, unix.ENXIO) {
			t.Fatalf("read after destroy: %v, want ENXIO", err)
		}
		if links := e.ns.Links(t); slices.Contains(links, "tun3") {
			t.Fatal("tun3 still exists")
		}
	})
	t.Run("daemon stop", func(t *testing.T) {
		e := newEnv(t)
		_, done := blockedReader(t, e, "tap0")
		e.d.Stop(t)
		if err := waitReturn(t, done, "daemon stop"); err == nil {
			t.Fatal("read after daemon stop returned data")
		}
		if slices.Contains(e.ns.Links(t), "tap0") {
			t.Fatal("tap0 left after daemon stop")
		}
		if itest.IsMounted(e.dir) {
			t.Fatal("mount left after daemon stop")
		}
	})
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			e := newEnv(t)
			if _, err := os.Lstat(filepath.Join(e.dir, "tun0")); err != nil {
				t.Fatal(err)
			}
			// A client process blocked in read(2).
			cmd := exec.Command("dd", "if="+filepath.Join(e.dir, "tun0"), "of=/dev/null", "bs=65536", "count=1")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			if !itest.WaitFor(func() bool {
				for _, dv := range e.d.Status(t).Devices {
					if dv.Name == "tun0" && dv.Open && dv.Busy > 0 {
						return true
					}
				}
				return false
			}) {
				t.Fatal("dd never blocked in read on tun0")
			}
			cmd.Process.Signal(sig)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("client blocked in read did not die on %v (stuck in D state?)", sig)
			}
			// The release reaches the daemon: the device is closed and idle.
			if !itest.WaitFor(func() bool {
				for _, dv := range e.d.Status(t).Devices {
					if dv.Name == "tun0" {
						return !dv.Open && dv.Busy == 0
					}
				}
				return false
			}) {
				t.Fatalf("tun0 still open or busy after the client died: %+v", e.d.Status(t).Devices)
			}
		})
	}
}
