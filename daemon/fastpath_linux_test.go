package daemon_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/fastpath"
	"github.com/tundevfs/tundevfs/internal/itest"
	"github.com/tundevfs/tundevfs/ioctls"
)

// fastFD asks for the TUN fd of dev from inside ns, where the daemon's
// socket is.
func fastFD(t *testing.T, ns *itest.Netns, dev *os.File) (*os.File, error) {
	t.Helper()
	var f *os.File
	var ferr error
	ns.Do(t, func() error {
		f, ferr = fastpath.FastFD(dev)
		return nil
	})
	return f, ferr
}

// openDev opens a fresh clone read-write; closed at cleanup.
func openDev(t *testing.T, dir, name string, flag int) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, name), flag, 0)
	if err != nil {
		t.Fatalf("open %s/%s: %v", dir, name, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func devName(t *testing.T, f *os.File) string {
	t.Helper()
	target, err := os.Readlink("/proc/self/fd/" + itoa(fdOf(t, f)))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Base(target)
}

func fdOf(t *testing.T, f *os.File) int {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	rc.Control(func(u uintptr) { fd = int(u) })
	return fd
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func countFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

var (
	fpLocal = netip.MustParseAddr("10.77.0.1")
	fpPeer  = netip.MustParseAddr("10.77.0.2")
)

// echoThrough writes an echo request from the peer to the local address
// through w and waits for the kernel's reply on r.
func echoThrough(t *testing.T, w, r *os.File, seq uint16) {
	t.Helper()
	if _, err := w.Write(itest.ICMPEcho(fpPeer, fpLocal, 77, seq, []byte("fast path"))); err != nil {
		t.Fatalf("write echo request: %v", err)
	}
	buf := make([]byte, 2048)
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer r.SetReadDeadline(time.Time{})
	for {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatalf("read echo reply: %v", err)
		}
		if itest.IsEchoReply(buf[:n], 77, seq) {
			return
		}
	}
}

func upTun(t *testing.T, ns *itest.Netns, name string) {
	t.Helper()
	ns.Run(t, "ip", "addr", "add", fpLocal.String(), "peer", fpPeer.String(), "dev", name)
	ns.Run(t, "ip", "link", "set", name, "up")
}

// TestFastPathIO: the handed fd carries packets both ways (Linux framing:
// a bare IPv4 packet), the device file says EBUSY meanwhile, status shows
// the device on the fast path, and last close ends it.
func TestFastPathIO(t *testing.T) {
	ns, d := newDaemon(t)
	dir := d.Mount(t, "")
	dev := openDev(t, dir, "tun", os.O_RDWR)
	name := devName(t, dev)
	tunf, err := fastFD(t, ns, dev)
	if err != nil {
		t.Fatalf("FastFD: %v", err)
	}
	defer tunf.Close()
	if tunf.Name() != name {
		t.Fatalf("handed fd named %q, device %q", tunf.Name(), name)
	}
	upTun(t, ns, name)
	echoThrough(t, tunf, tunf, 1)
	extractQuietly(t, ns, d, tunf)
	if _, err := dev.Write(itest.ICMPEcho(fpPeer, fpLocal, 77, 2, nil)); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("write to the device file on the fast path: %v, want EBUSY", err)
	}
	if _, err := unix.Read(fdOf(t, dev), make([]byte, 100)); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("read of the device file on the fast path: %v, want EBUSY", err)
	}
	// poll says POLLERR (Go's os.File then fails the read at once).
	pfd := []unix.PollFd{{Fd: int32(fdOf(t, dev)), Events: unix.POLLIN}}
	if n, err := unix.Poll(pfd, 1000); n != 1 || err != nil || pfd[0].Revents&unix.POLLERR == 0 {
		t.Fatalf("poll of the device file on the fast path: %d %v revents %#x, want POLLERR", n, err, pfd[0].Revents)
	}
	st := d.Status(t)
	if len(st.Devices) != 1 || !st.Devices[0].FastPath {
		t.Fatalf("status does not show the fast path: %+v", st.Devices)
	}
	out, err := d.CLI("status")
	if err != nil || !strings.Contains(out, "fastpath") {
		t.Fatalf("status text does not show the fast path: %v\n%s", err, out)
	}
	// A client may make the shared file description blocking: the
	// daemon's own reads (the drain at last close) must not block on it.
	if err := unix.SetNonblock(fdOf(t, tunf), false); err != nil {
		t.Fatal(err)
	}
	// Last close: the fast path ends, the tun goes down, as before.
	dev.Close()
	if !itest.WaitFor(func() bool { st := d.Status(t); return len(st.Devices) == 1 && !st.Devices[0].Open }) {
		t.Fatalf("device still open after last close: %+v", d.Status(t).Devices)
	}
	if st := d.Status(t); st.Devices[0].FastPath {
		t.Fatalf("status shows the fast path after last close")
	}
	if out := ns.Run(t, "ip", "-o", "link", "show", name); strings.Contains(out, ",UP") {
		t.Fatalf("%s still up after last close: %s", name, out)
	}
	// Open again: the device file carries packets again.
	dev2 := openDev(t, dir, name, os.O_RDWR)
	upTun(t, ns, name)
	echoThrough(t, dev2, dev2, 3)
}

// TestFastPathRefusals: each refusal is a clear error, no fd is left on
// either side, and the device stays usable through its file.
func TestFastPathRefusals(t *testing.T) {
	ns, d := newDaemon(t)
	dir := d.Mount(t, "")
	other := itest.NewNetns(t)
	otherPath := t.TempDir()
	if out, err := d.CLI("jail", "-c", "name=other", "vnet="+other.Path, "persist", "path="+otherPath); err != nil {
		t.Fatalf("jail -c: %v\n%s", err, out)
	}
	t.Cleanup(func() { daemon.Call(d.Socket, daemon.Request{Op: "jail-remove", Jail: "other"}) })
	var js []daemon.JailInfo
	d.Call(t, daemon.Request{Op: "jls"}, &js)
	var otherDir string
	for _, j := range js {
		if j.Name == "other" {
			otherDir = j.Paths[0]
		}
	}
	dev := openDev(t, dir, "tun", os.O_RDWR)
	name := devName(t, dev)
	upTun(t, ns, name)

	regular, err := os.CreateTemp(t.TempDir(), "regular")
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()
	null, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	ro := openDev(t, dir, "tun", os.O_RDONLY)
	od := openDev(t, otherDir, "tun", os.O_RDWR)
	gone := openDev(t, dir, "tun", os.O_RDWR)
	gname := devName(t, gone)
	if out, err := d.CLI("ifconfig", gname, "destroy"); err != nil {
		t.Fatalf("ifconfig %s destroy: %v %s", gname, err, out)
	}
	nofastPath := t.TempDir()
	if out, err := d.CLI("jail", "-c", "name=nofast", "vnet", "persist", "fastpath=0", "path="+nofastPath); err != nil {
		t.Fatalf("jail -c fastpath=0: %v\n%s", err, out)
	}
	t.Cleanup(func() { daemon.Call(d.Socket, daemon.Request{Op: "jail-remove", Jail: "nofast"}) })
	var info daemon.ExecInfo
	d.Call(t, daemon.Request{Op: "jail-exec", Jail: "nofast"}, &info)
	nf := openDev(t, info.DevDir, "tun", os.O_RDWR)
	nfns := &itest.Netns{Name: "nofast", Path: info.Netns}

	// Warm up: one refused request makes the goroutines and buffers of the
	// path exist before the baseline.
	fastFD(t, ns, null)
	before := d.Status(t)
	for i := 0; i < 10; i++ {
		time.Sleep(20 * time.Millisecond)
		before.Fds = min(before.Fds, d.Status(t).Fds)
	}
	myFds := countFds(t)

	check := func(what string, f *os.File, in *itest.Netns, want unix.Errno, wantMsg string) {
		t.Helper()
		got, err := fastFD(t, in, f)
		if err == nil {
			got.Close()
			t.Fatalf("%s: fast path granted", what)
		}
		if !errors.Is(err, want) || !strings.Contains(err.Error(), wantMsg) {
			t.Fatalf("%s: %v, want %v (%q)", what, err, want, wantMsg)
		}
		t.Logf("%s: %v", what, err)
	}
	check("/dev/null", null, ns, unix.ENODEV, "not a device file of this daemon")
	check("a regular file", regular, ns, unix.ENODEV, "not a device file of this daemon")
	check("a read-only open", ro, ns, unix.EACCES, "read-write")
	check("a device of another jail", od, ns, unix.EXDEV, "another network namespace")
	check("a destroyed device", gone, ns, unix.ENXIO, "destroyed")
	if out, err := d.CLI("sysctl", "net.link.tun.fastpath=0"); err != nil {
		t.Fatalf("sysctl: %v %s", err, out)
	}
	check("knob off", dev, ns, unix.EPERM, "fast path is off")
	if out, err := d.CLI("sysctl", "net.link.tun.fastpath=1"); err != nil {
		t.Fatalf("sysctl: %v %s", err, out)
	}
	check("jail fastpath=0", nf, nfns, unix.EPERM, "fastpath=0")

	// The device still works through its file, and nothing leaked.
	echoThrough(t, dev, dev, 1)
	var after daemon.Status
	if !itest.WaitFor(func() bool { after = d.Status(t); return after.Fds <= before.Fds }) {
		t.Fatalf("daemon fds %d -> %d after the refusals\n%s", before.Fds, after.Fds, fdList(t, after.PID))
	}
	if n := countFds(t); n > myFds {
		t.Fatalf("client fds %d -> %d after the refusals", myFds, n)
	}
	if st := d.Status(t); st.Devices[0].FastPath {
		t.Fatalf("a refused device is on the fast path: %+v", st.Devices[0])
	}
}

// blockedRead starts a blocking read on the handed fd and returns the
// channel of its result.
func blockedRead(f *os.File) <-chan error {
	ch := make(chan error, 1)
	go func() {
		buf := make([]byte, 2048)
		for {
			_, err := f.Read(buf)
			if err != nil {
				ch <- err
				return
			}
		}
	}()
	return ch
}

func waitReadFails(t *testing.T, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		t.Logf("blocked read returned: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatalf("the handed fd's blocked read still blocks after the device went")
	}
}

// TestFastPathEnds: destroy, transient last close, jail -r and daemon
// shutdown while a client holds the handed fd and is blocked in read: the
// interface is gone, the read fails, the daemon holds no fd of it.
func TestFastPathEnds(t *testing.T) {
	t.Run("destroy", func(t *testing.T) {
		ns, d := newDaemon(t)
		dir := d.Mount(t, "")
		dev := openDev(t, dir, "tun", os.O_RDWR)
		name := devName(t, dev)
		tunf, err := fastFD(t, ns, dev)
		if err != nil {
			t.Fatal(err)
		}
		defer tunf.Close()
		ch := blockedRead(tunf)
		if out, err := d.CLI("ifconfig", name, "destroy"); err != nil {
			t.Fatalf("destroy: %v %s", err, out)
		}
		waitReadFails(t, ch)
		if links := tunLinks(t, ns.Path); len(links) != 0 {
			t.Fatalf("interfaces left: %v", links)
		}
		if tun, _ := daemonFds(t, d); tun != 0 {
			t.Fatalf("daemon holds %d TUN fds", tun)
		}
	})
	t.Run("transient", func(t *testing.T) {
		ns, d := newDaemon(t)
		dir := d.Mount(t, "")
		dev := openDev(t, dir, "tun", os.O_RDWR)
		if err := ioctls.SetTransient(fdOf(t, dev), true); err != nil {
			t.Fatalf("TUNSTRANSIENT: %v", err)
		}
		tunf, err := fastFD(t, ns, dev)
		if err != nil {
			t.Fatal(err)
		}
		defer tunf.Close()
		ch := blockedRead(tunf)
		dev.Close()
		waitReadFails(t, ch)
		if !itest.WaitFor(func() bool { return len(tunLinks(t, ns.Path)) == 0 }) {
			t.Fatalf("interfaces left: %v", tunLinks(t, ns.Path))
		}
		if !itest.WaitFor(func() bool { tun, _ := daemonFds(t, d); return tun == 0 }) {
			t.Fatalf("daemon still holds a TUN fd")
		}
	})
	t.Run("jail-r", func(t *testing.T) {
		_, d := newDaemon(t)
		jns := itest.NewNetns(t)
		path := t.TempDir()
		if out, err := d.CLI("jail", "-c", "name=j", "vnet="+jns.Path, "persist", "path="+path); err != nil {
			t.Fatalf("jail -c: %v %s", err, out)
		}
		dev := openDev(t, path, "tun", os.O_RDWR)
		tunf, err := fastFD(t, jns, dev)
		if err != nil {
			t.Fatal(err)
		}
		defer tunf.Close()
		ch := blockedRead(tunf)
		d.Call(t, daemon.Request{Op: "jail-remove", Jail: "j"}, nil)
		waitReadFails(t, ch)
		if links := tunLinks(t, jns.Path); len(links) != 0 {
			t.Fatalf("interfaces left in the jail's namespace: %v", links)
		}
		ino := nsIno(t, jns.Path)
		tun, nss := daemonFds(t, d)
		for _, n := range nss {
			if n == ino {
				t.Fatalf("daemon still holds the jail's namespace")
			}
		}
		if tun != 0 {
			t.Fatalf("daemon holds %d TUN fds", tun)
		}
		// The abstract socket went with the jail.
		jns.Do(t, func() error {
			s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(s)
			if err := unix.Connect(s, &unix.SockaddrUnix{Name: fastpath.SocketName}); !errors.Is(err, unix.ECONNREFUSED) {
				t.Errorf("connect to the removed jail's socket: %v, want ECONNREFUSED", err)
			}
			return nil
		})
	})
	t.Run("shutdown", func(t *testing.T) {
		ns, d := newDaemon(t)
		dir := d.Mount(t, "")
		dev := openDev(t, dir, "tap", os.O_RDWR)
		tunf, err := fastFD(t, ns, dev)
		if err != nil {
			t.Fatal(err)
		}
		defer tunf.Close()
		ch := blockedRead(tunf)
		d.Stop(t)
		waitReadFails(t, ch)
		if links := tunLinks(t, ns.Path); len(links) != 0 {
			t.Fatalf("interfaces left: %v", links)
		}
	})
}

func fdList(t *testing.T, pid int) string {
	t.Helper()
	dir := "/proc/" + itoa(pid) + "/fd"
	ents, _ := os.ReadDir(dir)
	var b strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join(dir, e.Name()))
		b.WriteString(e.Name() + " " + target + "\n")
	}
	return b.String()
}

// ctxSwitches sums the context switches of every thread of pid.
func ctxSwitches(t *testing.T, pid int) int {
	t.Helper()
	tasks, err := filepath.Glob("/proc/" + itoa(pid) + "/task/*/status")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // a thread that exited
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "voluntary_ctxt_switches") {
				var c int
				for _, ch := range strings.TrimSpace(v) {
					c = c*10 + int(ch-'0')
				}
				n += c
			}
		}
	}
	return n
}

// extractQuietly sends packets that the kernel routes into the device and
// reads them from the handed fd: the daemon must not wake for them (its
// own registration of the fd with Go's netpoller would, at every packet).
func extractQuietly(t *testing.T, ns *itest.Netns, d *itest.Daemon, tunf *os.File) {
	t.Helper()
	const n = 2000
	var s int
	ns.Do(t, func() error {
		var err error
		s, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	defer unix.Close(s)
	pid := d.Status(t).PID
	before := ctxSwitches(t, pid)
	buf := make([]byte, 2048)
	dst := &unix.SockaddrInet4{Port: 7777, Addr: fpPeer.As4()}
	got := 0
	tunf.SetReadDeadline(time.Now().Add(20 * time.Second))
	defer tunf.SetReadDeadline(time.Time{})
	for i := 0; i < n; i++ {
		if err := unix.Sendto(s, []byte("quiet"), 0, dst); err != nil {
			t.Fatal(err)
		}
		for {
			k, err := tunf.Read(buf)
			if err != nil {
				t.Fatalf("read from the handed fd after %d packets: %v", got, err)
			}
			if itest.UDPPayload(buf[:k], 7777) != nil {
				got++
				break
			}
		}
	}
	after := ctxSwitches(t, pid)
	t.Logf("daemon context switches while %d packets went to the handed fd: %d", n, after-before)
	if after-before > n/20 {
		t.Fatalf("the daemon woke %d times for %d packets read from the handed fd", after-before, n)
	}
}

// TestFastPathTwoDaemons: two daemons in one namespace take the names
// @tundevfs/fastpath and @tundevfs/fastpath.1; a client finds the one
// that knows its device file (the other says ENODEV), and a file of the
// other daemon's mount is refused by each.
func TestFastPathTwoDaemons(t *testing.T) {
	ns, d1 := newDaemon(t)
	d2 := itest.StartDaemon(t, ns)
	dir1, dir2 := d1.Mount(t, ""), d2.Mount(t, "")
	for i, dir := range []string{dir1, dir2} {
		dev := openDev(t, dir, "tun", os.O_RDWR)
		name := devName(t, dev)
		tunf, err := fastFD(t, ns, dev)
		if err != nil {
			t.Fatalf("daemon %d: FastFD: %v", i+1, err)
		}
		if tunf.Name() != name {
			t.Fatalf("daemon %d: handed fd of %q, device %q", i+1, tunf.Name(), name)
		}
		tunf.Close()
	}
	// Both on the fast path, each through its own daemon.
	for i, d := range []*itest.Daemon{d1, d2} {
		st := d.Status(t)
		if len(st.Devices) != 1 || !st.Devices[0].FastPath {
			t.Fatalf("daemon %d: %+v", i+1, st.Devices)
		}
	}
}

// TestFastPathSquatter: an unprivileged process that bound the abstract
// name before the daemon gets no device file; the client goes on to the
// daemon's name and gets its TUN fd.
func TestFastPathSquatter(t *testing.T) {
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	sq := -1
	ns.Do(t, func() error {
		// uid 1000 on this thread only, while the socket is made.
		if err := unix.Setresuid(-1, 1000, -1); err != nil {
			return err
		}
		defer unix.Setresuid(-1, 0, -1)
		s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return err
		}
		if err := unix.Bind(s, &unix.SockaddrUnix{Name: fastpath.SocketName}); err != nil {
			unix.Close(s)
			return err
		}
		sq = s
		return unix.Listen(s, 8)
	})
	defer unix.Close(sq)
	d := itest.StartDaemon(t, ns)
	dir := d.Mount(t, "")
	dev := openDev(t, dir, "tun", os.O_RDWR)
	tunf, err := fastFD(t, ns, dev)
	if err != nil {
		t.Fatalf("FastFD with a squatter on %s: %v", fastpath.SocketName, err)
	}
	tunf.Close()
	// The squatter was connected to, and got nothing.
	c, _, err := unix.Accept4(sq, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
	if err != nil {
		t.Fatalf("the client did not even connect to the squatter: %v", err)
	}
	defer unix.Close(c)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := unix.Recvmsg(c, make([]byte, 64), oob, 0)
	if oobn != 0 || n > 0 {
		t.Fatalf("the squatter received %d bytes and %d bytes of control data (%v)", n, oobn, err)
	}
}

// TestFastPathShell: `tundevfs fastpath --fd 3 -- CMD` execs CMD with the
// TUN fd at 3 and the device file at TUNDEVFS_DEVICE_FD; a refusal exits
// non-zero naming the errno, and runs nothing.
func TestFastPathShell(t *testing.T) {
	ns, d := newDaemon(t)
	dir := d.Mount(t, "")
	script := `exec 3<>` + dir + `/tun && exec ` + d.Bin + ` fastpath --fd 3 -- sh -c 'readlink /proc/self/fd/3; readlink /proc/self/fd/$TUNDEVFS_DEVICE_FD'`
	out, err := ns.Command("sh", "-c", script).CombinedOutput()
	if err != nil || string(out) != "/dev/net/tun\n"+dir+"/tun0\n" {
		t.Fatalf("fastpath --fd 3 -- sh: %v\n%s", err, out)
	}
	script = `exec 3<` + dir + `/tun && exec ` + d.Bin + ` fastpath --fd 3 -- echo ran`
	out, err = ns.Command("sh", "-c", script).CombinedOutput()
	if err == nil || strings.Contains(string(out), "ran") || !strings.Contains(string(out), "(EACCES)") {
		t.Fatalf("fastpath on a read-only open: %v\n%s", err, out)
	}
}

// TestFastPathConnCap: anyone in the namespace may connect to the fast-path
// socket; connections that send nothing hold at most MaxConns of the
// daemon's fds (and goroutines) at once, and none once they are gone.
func TestFastPathConnCap(t *testing.T) {
	ns, d := newDaemon(t)
	dir := d.Mount(t, "")
	sockets := func() int {
		n := 0
		for _, line := range strings.Split(fdList(t, d.Status(t).PID), "\n") {
			if strings.Contains(line, "socket:") {
				n++
			}
		}
		return n
	}
	base := sockets()
	const clients = 3 * daemon.MaxConns
	var conns []int
	t.Cleanup(func() {
		for _, c := range conns {
			unix.Close(c)
		}
	})
	ns.Do(t, func() error {
		for i := 0; i < clients; i++ {
			c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			conns = append(conns, c)
			if err := unix.Connect(c, &unix.SockaddrUnix{Name: fastpath.SocketName}); err != nil {
				return fmt.Errorf("connect %d: %w", i, err)
			}
		}
		return nil
	})
	// The daemon takes what it may at once; give it time to take more.
	// (The baseline may hold a control connection still closing: slack.)
	const slack = 4
	if !itest.WaitFor(func() bool { return sockets()-base >= daemon.MaxConns-slack }) {
		t.Fatalf("the daemon accepted only %d of %d connections", sockets()-base, clients)
	}
	time.Sleep(300 * time.Millisecond)
	if got := sockets() - base; got > daemon.MaxConns+slack {
		t.Fatalf("the daemon holds %d fast-path connections at once, want at most %d", got, daemon.MaxConns)
	}
	for _, c := range conns {
		unix.Close(c)
	}
	conns = nil
	if !itest.WaitFor(func() bool { return sockets() <= base }) {
		t.Fatalf("daemon sockets %d after the clients left, %d before:\n%s", sockets(), base, fdList(t, d.Status(t).PID))
	}
	// And it still answers.
	tunf, err := fastFD(t, ns, openDev(t, dir, "tun", os.O_RDWR))
	if err != nil {
		t.Fatalf("FastFD after the flood: %v", err)
	}
	tunf.Close()
}
