package daemon_test

// Issue 13: the serving process dies (kill -9) or is replaced (planned
// restart) under clients, and they carry on with the same open files.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/driver"
	"github.com/tundevfs/tundevfs/fs"
	"github.com/tundevfs/tundevfs/internal/itest"
	"github.com/tundevfs/tundevfs/internal/testenv"
)

// crashArgs are the daemon flags of these tests: the /dev/fuse transport,
// whichever TUNDEVFS_FUSE_TRANSPORT the suite runs with, because only its
// requests are resent to a new server (crashProofTransport); the io_uring
// case is TestKill9URing.
func crashArgs() []string { return []string{"--fuse-transport", "dev"} }

// hang bounds every wait for something that must happen: far above any
// restart, so only a hang fails it.
const hang = 15 * time.Second

// crashDev is an open device of the test, configured point-to-point.
type crashDev struct {
	fd            int
	name          string
	local, remote string
}

func openCrashDev(t *testing.T, ns *itest.Netns, dir string, i int) *crashDev {
	t.Helper()
	fd, err := unix.Open(filepath.Join(dir, "tun"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s/tun: %v", dir, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	d := &crashDev{fd: fd, name: filepath.Base(target), local: fmt.Sprintf("10.13.%d.1", i), remote: fmt.Sprintf("10.13.%d.2", i)}
	ns.Run(t, "ip", "addr", "add", d.local, "peer", d.remote, "dev", d.name)
	ns.Run(t, "ip", "link", "set", d.name, "up")
	return d
}

// udpSocket is a UDP socket in ns bound to addr:port (port 0: any).
func udpSocket(t *testing.T, ns *itest.Netns, addr string, port int) int {
	t.Helper()
	var s int
	ns.Do(t, func() error {
		var err error
		if s, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		return unix.Bind(s, &unix.SockaddrInet4{Port: port, Addr: netip.MustParseAddr(addr).As4()})
	})
	t.Cleanup(func() { unix.Close(s) })
	tv := unix.NsecToTimeval(int64(hang))
	unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return s
}

func udpSend(t *testing.T, s int, addr string, port int, payload []byte) {
	t.Helper()
	sa := &unix.SockaddrInet4{Port: port, Addr: netip.MustParseAddr(addr).As4()}
	if err := unix.Sendto(s, payload, 0, sa); err != nil {
		t.Fatalf("send to %s:%d: %v", addr, port, err)
	}
}

// blockedIn reports whether thread tid sleeps in one of the system calls
// nrs (/proc/self/task/TID/syscall starts with the number).
func blockedIn(tid int, nrs ...int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/syscall", tid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return false
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return false
	}
	for _, nr := range nrs {
		if n == nr {
			return true
		}
	}
	return false
}

// blockingCall runs fn on a thread of its own and reports its thread id
// and, later, its result.
type blockingCall struct {
	tid  chan int
	done chan error
	n    int
}

func startBlocking(fn func() (int, error)) *blockingCall {
	c := &blockingCall{tid: make(chan int, 1), done: make(chan error, 1)}
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c.tid <- unix.Gettid()
		for {
			n, err := fn()
			if errors.Is(err, unix.EINTR) {
				continue // a Go runtime signal, not the daemon
			}
			c.n = n
			c.done <- err
			return
		}
	}()
	return c
}

func (c *blockingCall) waitBlocked(t *testing.T, nrs ...int) {
	t.Helper()
	tid := <-c.tid
	if !itest.WaitFor(func() bool { return blockedIn(tid, nrs...) }) {
		t.Fatalf("thread %d never blocked in %v", tid, nrs)
	}
}

func (c *blockingCall) result(t *testing.T) (int, error) {
	t.Helper()
	select {
	case err := <-c.done:
		return c.n, err
	case <-time.After(hang):
		t.Fatalf("blocked call did not return in %v", hang)
		return 0, nil
	}
}

// stateOf is what must be the same before and after a restart: jails,
// mounts, and every device with its unit, refs, openness, open pid, owner
// and modes; and the units in use.
func stateOf(st daemon.Status) string {
	var lines []string
	for _, j := range st.Jails {
		lines = append(lines, fmt.Sprintf("jail %d %s %s netns=%d persist=%v holds=%d devices=%d", j.JID, j.Name, j.State, j.NetnsID, j.Persist, j.Holds, j.Devices))
	}
	for _, m := range st.Mounts {
		lines = append(lines, fmt.Sprintf("mount %s %s %s %s", m.Dir, m.Jail, m.Mode, m.Transport))
	}
	for _, d := range st.Devices {
		lines = append(lines, fmt.Sprintf("device %+v", stableInfo(d)))
	}
	lines = append(lines, fmt.Sprintf("units %d", st.UnitsInUse))
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// serverPID waits until a server answers and returns its pid.
func serverPID(t *testing.T, d *itest.Daemon) int {
	t.Helper()
	var pid int
	if !itest.WaitFor(func() bool {
		var st daemon.Status
		if err := daemon.CallInto(d.Socket, daemon.Request{Op: daemon.OpStatus}, &st); err != nil {
			return false
		}
		pid = st.PID
		return true
	}) {
		t.Fatalf("no server answers:\n%s", d.Log.String())
	}
	return pid
}

// killServer kill -9s the serving process and returns once a new one
// answers, with the time that took.
func killServer(t *testing.T, d *itest.Daemon) time.Duration {
	t.Helper()
	st := d.Status(t)
	if st.HolderPID == 0 || st.HolderPID == st.PID {
		t.Fatalf("no holder: status %+v", st)
	}
	start := time.Now()
	if err := unix.Kill(st.PID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for {
		var now daemon.Status
		if err := daemon.CallInto(d.Socket, daemon.Request{Op: daemon.OpStatus}, &now); err == nil && now.PID != st.PID {
			if now.Restarts != st.Restarts+1 || now.HolderPID != st.HolderPID {
				t.Fatalf("after kill -9 of server %d: holder %d restarts %d, want holder %d restarts %d", st.PID, now.HolderPID, now.Restarts, st.HolderPID, st.Restarts+1)
			}
			return time.Since(start)
		}
		if time.Since(start) > hang {
			t.Fatalf("no new server %v after kill -9:\n%s", hang, d.Log.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestKill9ServerClientsCarryOn: a writer in a loop, a reader blocked in
// read and a poller blocked in poll keep their open files across a kill
// -9 of the serving process; none sees an error, the blocked ones get the
// next packet, the writer's packets keep arriving, and status says the
// same before and after.
func TestKill9ServerClientsCarryOn(t *testing.T) {
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	args := crashArgs()
	if os.Getenv("TUNDEVFS_TEST_DEBUG") == "1" {
		args = append(args, "--debug") // every FUSE request in the log
	}
	d := itest.StartDaemon(t, ns, args...)
	dir := d.Mount(t, "")
	w := openCrashDev(t, ns, dir, 1)
	r := openCrashDev(t, ns, dir, 2)
	p := openCrashDev(t, ns, dir, 3)

	// The writer: a UDP datagram to the tun's own address every ms.
	rx := udpSocket(t, ns, w.local, 5000)
	stop := make(chan struct{})
	var seq atomic.Uint32
	var writeErrs []error
	var wmu sync.Mutex
	var wwg sync.WaitGroup
	wwg.Add(1)
	go func() {
		defer wwg.Done()
		src, dst := netip.MustParseAddr(w.remote), netip.MustParseAddr(w.local)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := seq.Add(1)
			pkt := itest.UDP4(src, dst, 4000, 5000, []byte(strconv.Itoa(int(n))))
			if _, err := unix.Write(w.fd, pkt); err != nil && !errors.Is(err, unix.EINTR) {
				wmu.Lock()
				writeErrs = append(writeErrs, err)
				wmu.Unlock()
			}
			time.Sleep(time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wwg.Wait()
	})
	// Datagrams are counted as they come.
	var got sync.Map
	go func() {
		buf := make([]byte, 64)
		for {
			n, _, err := testenv.Recvfrom(rx, buf)
			if err != nil {
				return
			}
			v, _ := strconv.Atoi(string(buf[:n]))
			got.Store(v, true)
		}
	}()

	buf := make([]byte, 2048)
	reader := startBlocking(func() (int, error) { return unix.Read(r.fd, buf) })
	reader.waitBlocked(t, unix.SYS_READ)
	poller := startBlocking(func() (int, error) {
		return unix.Poll([]unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}, -1)
	})
	poller.waitBlocked(t, unix.SYS_POLL, unix.SYS_PPOLL)

	if !itest.WaitFor(func() bool { return seq.Load() > 50 }) {
		t.Fatal("writer stalled before the kill")
	}
	before := stateOf(d.Status(t))
	took := killServer(t, d)
	t.Logf("kill -9 to the next status answer: %v", took)
	killedAt := seq.Load()

	// The blocked reader gets the next packet, the poller wakes up for
	// its own; both through the new server.
	tx := udpSocket(t, ns, "0.0.0.0", 0)
	udpSend(t, tx, r.remote, 6000, []byte("after"))
	if n, err := reader.result(t); err != nil || !bytes.Contains(buf[:n], []byte("after")) {
		t.Fatalf("blocked read across kill -9: %d bytes %q, %v; want the packet sent after", n, buf[:max(n, 0)], err)
	}
	udpSend(t, tx, p.remote, 6000, []byte("polled"))
	if _, err := poller.result(t); err != nil {
		t.Fatalf("blocked poll across kill -9: %v", err)
	}
	pbuf := make([]byte, 2048)
	if n, err := unix.Read(p.fd, pbuf); err != nil || !bytes.Contains(pbuf[:n], []byte("polled")) {
		t.Fatalf("read after poll: %q, %v", pbuf[:max(n, 0)], err)
	}
	// The writer's datagrams sent after the kill arrive.
	if !itest.WaitFor(func() bool {
		k := 0
		got.Range(func(key, _ any) bool {
			if uint32(key.(int)) > killedAt {
				k++
			}
			return k < 50
		})
		return k >= 50
	}) {
		t.Fatalf("the writer's datagrams after the kill do not arrive (killed at %d, sent %d)", killedAt, seq.Load())
	}
	close(stop)
	wwg.Wait()
	wmu.Lock()
	if len(writeErrs) > 0 {
		t.Errorf("writer saw %d errors across kill -9, first %v", len(writeErrs), writeErrs[0])
	}
	wmu.Unlock()
	if after := stateOf(d.Status(t)); after != before {
		t.Errorf("status changed across kill -9:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// pingLoss runs ping -i 0.01 -c n in ns to addr while during() runs, and
// returns the packets lost.
func pingLoss(t *testing.T, ns *itest.Netns, addr string, n int, during func()) (sent, lost int) {
	t.Helper()
	cmd := ns.Command("ping", "-n", "-q", "-i", "0.01", "-c", strconv.Itoa(n), "-W", "2", addr)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	during()
	select {
	case <-exited:
	case <-time.After(time.Duration(n)*10*time.Millisecond + hang):
		t.Fatalf("ping did not finish: %s", out.String())
	}
	m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) (packets )?received`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("ping output: %s", out.String())
	}
	tx, _ := strconv.Atoi(m[1])
	rcv, _ := strconv.Atoi(m[2])
	t.Logf("ping: %s", strings.TrimSpace(out.String()))
	return tx, tx - rcv
}

// TestRestartPing: ping through a socat relay between the tuns of two
// namespaces (as in the poll issue) for 10 s while one side's daemon is
// replaced, planned (no packet lost) and by kill -9 (at most the few in
// flight).
func TestRestartPing(t *testing.T) {
	itest.RequirePrivileged(t)
	for _, tool := range []string{"socat", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("TUNDEVFS_REQUIRE_PRIVILEGED") == "1" {
				t.Fatalf("%s is not installed (scripts/install-deps.sh installs it)", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
	for _, planned := range []bool{true, false} {
		t.Run(map[bool]string{true: "planned", false: "kill9"}[planned], func(t *testing.T) {
			type side struct {
				ns          *itest.Netns
				d           *itest.Daemon
				path        string
				local, peer string
			}
			sides := []*side{{local: "10.78.0.1", peer: "10.78.0.2"}, {local: "10.78.0.2", peer: "10.78.0.1"}}
			for _, sd := range sides {
				sd.ns = itest.NewNetns(t)
				sd.d = itest.StartDaemon(t, sd.ns, crashArgs()...)
				dir := sd.d.Mount(t, "")
				name, err := os.Readlink(filepath.Join(dir, "tun"))
				if err != nil {
					t.Fatal(err)
				}
				sd.path = filepath.Join(dir, name)
				sd.ns.Run(t, "ip", "addr", "add", sd.local, "peer", sd.peer, "dev", name)
				sd.ns.Run(t, "ip", "link", "set", name, "up")
			}
			var log bytes.Buffer
			relay := exec.Command("socat", "-b", "65536", "OPEN:"+sides[0].path, "OPEN:"+sides[1].path)
			relay.Stdout, relay.Stderr = &log, &log
			if err := relay.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { relay.Wait(); close(exited) }()
			t.Cleanup(func() {
				relay.Process.Kill()
				<-exited
				if t.Failed() {
					t.Logf("socat output:\n%s", log.String())
				}
			})
			for _, sd := range sides {
				if !itest.WaitFor(func() bool {
					st := sd.d.Status(t)
					return len(st.Devices) == 1 && st.Devices[0].Open
				}) {
					t.Fatalf("socat did not open %s", sd.path)
				}
			}
			d := sides[0].d
			sent, lost := pingLoss(t, sides[0].ns, sides[1].local, 1000, func() {
				time.Sleep(3 * time.Second)
				if planned {
					old := d.Status(t).PID
					if out, err := d.CLI("daemon", "--restart"); err != nil {
						t.Fatalf("daemon --restart: %v: %s", err, out)
					}
					if !itest.WaitFor(func() bool { return serverPID(t, d) != old }) {
						t.Fatal("no new server after --restart")
					}
				} else {
					t.Logf("kill -9 to the next answer: %v", killServer(t, d))
				}
			})
			select {
			case <-exited:
				t.Fatalf("socat exited across the restart: %s", log.String())
			default:
			}
			t.Logf("ping across a %s restart: %d sent, %d lost", map[bool]string{true: "planned", false: "kill -9"}[planned], sent, lost)
			switch {
			case planned && lost != 0:
				t.Errorf("planned restart lost %d of %d pings", lost, sent)
			case !planned && lost > 5:
				t.Errorf("kill -9 lost %d of %d pings; want at most the few in flight", lost, sent)
			}
		})
	}
}

// TestCrashLoopGuard: a server that dies --crash-limit times within
// --crash-window makes the holder give up: it exits non-zero saying why,
// and leaves no mount, no socket, no interface behind.
func TestCrashLoopGuard(t *testing.T) {
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	d := itest.StartDaemon(t, ns, append(crashArgs(), "--crash-limit", "3", "--crash-window", "1m")...)
	d.MayFail = true
	dir := d.Mount(t, "")
	fd, err := unix.Open(filepath.Join(dir, "tun"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for i := 0; i < 2; i++ {
		killServer(t, d)
	}
	pid := d.Status(t).PID
	unix.Kill(pid, unix.SIGKILL) // the third death within the window
	select {
	case <-d.Exited():
	case <-time.After(hang):
		t.Fatalf("holder still runs after 3 deaths:\n%s", d.Log.String())
	}
	if st := d.Cmd.ProcessState; st.Success() {
		t.Errorf("holder exit status %v after a crash loop; want a failure", st)
	}
	if !strings.Contains(d.Log.String(), "crash loop") {
		t.Errorf("holder log does not say why it gave up:\n%s", d.Log.String())
	}
	if itest.IsMounted(dir) {
		t.Errorf("%s still mounted after the guard gave up", dir)
	}
	if _, err := os.Lstat(d.Socket); err == nil {
		t.Errorf("socket %s left behind", d.Socket)
	}
	if links := ns.Links(t); len(links) > 1 {
		t.Errorf("interfaces left: %v", links)
	}
	// The open file fails cleanly instead of hanging.
	if _, err := unix.Write(fd, []byte{0x45}); err == nil {
		t.Errorf("write to a device of a daemon that gave up succeeded")
	}
}

// TestKill9Holder: killing the holder ends everything, as killing a daemon
// without one does; the next daemon on the socket cleans the stale mount.
func TestKill9Holder(t *testing.T) {
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	d := itest.StartDaemon(t, ns)
	d.MayFail = true
	dir := t.TempDir()
	d.Call(t, daemon.Request{Op: daemon.OpMount, Dir: dir}, nil)
	st := d.Status(t)
	if _, err := os.Readlink(filepath.Join(dir, "tun")); err != nil {
		t.Fatal(err)
	}
	unix.Kill(st.HolderPID, unix.SIGKILL)
	<-d.Exited()
	if !itest.WaitFor(func() bool { return unix.Kill(st.PID, 0) != nil }) {
		t.Fatalf("server %d outlived its holder", st.PID)
	}
	if !itest.WaitFor(func() bool { return len(ns.Links(t)) <= 1 }) {
		t.Errorf("interfaces left after the holder died: %v", ns.Links(t))
	}
	// The next daemon on the same socket detaches the stale mount.
	next := ns.Command(d.Bin, "--socket", d.Socket, "daemon")
	var log bytes.Buffer
	next.Stdout, next.Stderr = &log, &log
	if err := next.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { next.Process.Signal(unix.SIGTERM); next.Wait() })
	if !itest.WaitFor(func() bool { return !itest.IsMounted(dir) }) {
		t.Errorf("stale mount %s not cleaned by the next daemon:\n%s", dir, log.String())
	}
}

// stableInfo is a device's status without what moves by itself (packet
// counters, operations in flight).
func stableInfo(d driver.Info) driver.Info {
	d.RxPackets, d.TxPackets, d.Drops, d.Busy = 0, 0, 0, 0
	return d
}

// transient says whether a control call failed only because the server
// was being replaced: the connection broke or nobody accepted yet. A
// client retries those.
func transient(err error) bool {
	return errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE) ||
		errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, daemon.ErrNoDaemon)
}

// callRetry sends a control request until an answer that is not a broken
// connection.
func callRetry(socket string, req daemon.Request) error {
	for i := 0; ; i++ {
		_, err := daemon.Call(socket, req)
		if err == nil || !transient(err) || i > 200 {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKill9Soak: 100 kill -9 of the serving process under a mixed load
// (clones, opens, reads, writes, closes, destroys, jail create and
// remove) leave the counts where they were: no fd (in the server or the
// holder), unit, device, interface, jail or mount more, and no client
// stuck. FUSE calls never fail; control calls only with a broken
// connection, which the load retries.
func TestKill9Soak(t *testing.T) {
	itest.RequirePrivileged(t)
	if testing.Short() {
		t.Skip("100 restarts")
	}
	ns := itest.NewNetns(t)
	args := append(crashArgs(), "--crash-limit", "1000")
	if os.Getenv("TUNDEVFS_TEST_DEBUG") == "1" {
		args = append(args, "--debug")
	}
	d := itest.StartDaemon(t, ns, args...)
	dir := d.Mount(t, "")
	itest.WarmUp(t, dir)
	// A FORGET a killed server had read is lost (the kernel sends it
	// once, and only requests that wait for an answer are resent): the
	// node of a destroyed device then stays known, and the dead device
	// stays listed. Those are allowed, and checked below to be dead and
	// held by nothing but the kernel's lookups.
	base := d.Baseline(t, testenv.Allow("devices", 5))
	links := len(ns.Links(t))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var fails sync.Map // what failed, with a count
	fail := func(what string, err error) {
		v, _ := fails.LoadOrStore(what+": "+err.Error(), new(atomic.Int32))
		v.(*atomic.Int32).Add(1)
	}
	var ops atomic.Int64
	worker := func(fn func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				fn(i)
				ops.Add(1)
			}
		}()
	}
	// Clone, write, close, destroy. Each worker clones units of its own
	// (tunN by name; "tun" is tested above): a destroy by name retried
	// after a kill cut its answer off must not hit another worker's
	// device that took the unit meanwhile.
	for w := 0; w < 2; w++ {
		worker(func(i int) {
			name := fmt.Sprintf("tun%d", 100*(w+1)+i%50)
			fd, err := unix.Open(filepath.Join(dir, name), unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				fail("clone open "+name, err)
				return
			}
			target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
			if err != nil {
				fail("readlink fd", err)
			}
			if _, err := unix.Write(fd, itest.UDP4(netip.MustParseAddr("10.9.0.2"), netip.MustParseAddr("10.9.0.1"), 1, 2, []byte("x"))); err != nil {
				fail("write", err)
			}
			if err := unix.Close(fd); err != nil {
				fail("close", err)
			}
			// A retry after a destroy whose answer a kill cut off finds
			// nothing to destroy.
			if err := callRetry(d.Socket, daemon.Request{Op: daemon.OpIfconfig, Args: []string{filepath.Base(target), "destroy"}}); err != nil && !strings.Contains(err.Error(), "no such") {
				fail("destroy", err)
			}
		})
	}
	// One device read and written in a loop: poll with a timeout, so a
	// packet lost in flight by a kill costs a round, not a hang.
	long := openCrashDev(t, ns, dir, 9)
	if err := unix.SetNonblock(long.fd, true); err != nil {
		t.Fatal(err)
	}
	tx := udpSocket(t, ns, "0.0.0.0", 0)
	worker(func(i int) {
		sa := &unix.SockaddrInet4{Port: 7000, Addr: netip.MustParseAddr(long.remote).As4()}
		if err := unix.Sendto(tx, []byte("ping"), 0, sa); err != nil {
			fail("send", err)
		}
		pfd := []unix.PollFd{{Fd: int32(long.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 1000)
		if err != nil && !errors.Is(err, unix.EINTR) {
			fail("poll", err)
			return
		}
		if n == 1 {
			// Non-blocking: a packet a dead server's poll had taken
			// from the device is lost with it (in flight), so a poll
			// may say readable once with nothing left to read.
			buf := make([]byte, 2048)
			if _, err := unix.Read(long.fd, buf); err != nil && !errors.Is(err, unix.EAGAIN) {
				fail("read", err)
			}
		}
	})
	// Jails come and go.
	worker(func(i int) {
		name := fmt.Sprintf("soak%d", i%4)
		if err := callRetry(d.Socket, daemon.Request{Op: daemon.OpJailCreate, Args: []string{"name=" + name, "persist", "vnet"}}); err != nil && !strings.Contains(err.Error(), "in use") {
			fail("jail create", err)
		}
		if err := callRetry(d.Socket, daemon.Request{Op: daemon.OpJailRemove, Jail: name}); err != nil && !strings.Contains(err.Error(), "no such jail") {
			fail("jail remove", err)
		}
	})

	var pauses []time.Duration
	for k := 0; k < 100; k++ {
		time.Sleep(30 * time.Millisecond)
		pauses = append(pauses, killServer(t, d))
	}
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(hang):
		buf := make([]byte, 1<<20)
		t.Fatalf("load did not stop in %v: a client is stuck:\n%s", hang, buf[:runtime.Stack(buf, true)])
	}
	sort.Slice(pauses, func(a, b int) bool { return pauses[a] < pauses[b] })
	t.Logf("100 kill -9 under load (%d operations): pause to the next answer p50 %v, p90 %v, max %v", ops.Load(), pauses[50], pauses[90], pauses[99])
	fails.Range(func(k, v any) bool {
		t.Errorf("%d× %s", v.(*atomic.Int32).Load(), k)
		return true
	})
	// Clean up what the load left: the long-lived device and any jail.
	unix.Close(long.fd)
	callRetry(d.Socket, daemon.Request{Op: daemon.OpIfconfig, Args: []string{long.name, "destroy"}})
	for i := 0; i < 4; i++ {
		daemon.Call(d.Socket, daemon.Request{Op: daemon.OpJailRemove, Jail: fmt.Sprintf("soak%d", i)})
	}
	base.Check(t, "after 100 kill -9 under load")
	husks := 0
	for _, dev := range d.Status(t).Devices {
		if dev.State != "dead" || dev.Refs.Total != dev.Refs.Kernel {
			t.Errorf("device left after the load: %+v", dev)
			continue
		}
		husks++
	}
	t.Logf("destroyed devices still known to the kernel (a FORGET lost with a killed server): %d", husks)
	if n := len(ns.Links(t)); n != links {
		t.Errorf("interfaces: %d before, %d after: %v", links, n, ns.Links(t))
	}
}

// TestKill9URing: a mount forced onto FUSE over io_uring survives a kill
// -9 of its server for every request made after it (the new server
// registers its rings on the same connection), though not for one the
// dead server held in a ring entry (the kernel resends only /dev/fuse
// requests; README): a writer carries on, a new open clones.
func TestKill9URing(t *testing.T) {
	itest.RequirePrivileged(t)
	if err := fs.URingAvailable(); err != nil {
		t.Skipf("no FUSE over io_uring here: %v", err)
	}
	ns := itest.NewNetns(t)
	d := itest.StartDaemon(t, ns, "--fuse-transport", "uring")
	dir := d.Mount(t, "")
	if tr := d.Status(t).Mounts[0].Transport; tr != "uring" {
		t.Skipf("the kernel did not take the rings (transport %s)", tr)
	}
	w := openCrashDev(t, ns, dir, 1)
	rx := udpSocket(t, ns, w.local, 5000)
	src, dst := netip.MustParseAddr(w.remote), netip.MustParseAddr(w.local)
	write := func(s string) {
		t.Helper()
		if _, err := unix.Write(w.fd, itest.UDP4(src, dst, 4000, 5000, []byte(s))); err != nil {
			t.Fatalf("write %s: %v", s, err)
		}
		buf := make([]byte, 64)
		if n, _, err := testenv.Recvfrom(rx, buf); err != nil || string(buf[:n]) != s {
			t.Fatalf("datagram %s: %q, %v", s, buf[:max(n, 0)], err)
		}
	}
	write("before")
	before := stateOf(d.Status(t))
	t.Logf("kill -9 to the next answer: %v", killServer(t, d))
	write("after")
	if after := stateOf(d.Status(t)); after != before {
		t.Errorf("status changed across kill -9:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if tr := d.Status(t).Mounts[0].Transport; tr != "uring" {
		t.Errorf("transport after the restart: %s, want uring", tr)
	}
	fd, err := unix.Open(filepath.Join(dir, "tun"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("clone after the restart: %v", err)
	}
	unix.Close(fd)
}
