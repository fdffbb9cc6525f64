package fs_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tundevfs/tundevfs/internal/testenv"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
)

// pollDrivers are the drivers every poll test runs over.
var pollDrivers = []string{"tun", "tap"}

// fionbio is FIONBIO of asm-generic/ioctls.h (x86, arm, arm64, riscv and
// others); x/sys/unix does not define it for Linux.
const fionbio = 0x5421

// hangGuard bounds every wait of these tests. It guards against hangs; no
// test asserts on speed.
const hangGuard = 20 * time.Second

// newQuietEnv is newEnv with IPv6 off in the namespace, so that a tap
// carries only the packets the test sends (no router solicitations), and
// with extra daemon flags.
func newQuietEnv(t *testing.T, daemonFlags ...string) *env {
	t.Helper()
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	ns.Run(t, "sh", "-c", "echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6")
	d := itest.StartDaemon(t, ns, daemonFlags...)
	return &env{ns: ns, d: d, dir: d.Mount(t, "")}
}

// poll1 polls one fd, retrying on EINTR, and returns poll's count and the
// fd's revents.
func poll1(t *testing.T, fd int, events int16, timeoutMs int) (int, int16) {
	t.Helper()
	for {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
		n, err := unix.Poll(pfd, timeoutMs)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		return n, pfd[0].Revents
	}
}

// call is a system call a test runs on a thread of its own.
type call struct {
	tid  int
	nr   uintptr // the system call it blocks in
	done chan callResult
}

type callResult struct {
	n   int
	err error
}

// start runs fn on a locked thread of its own (the thread exits with it)
// and returns at once; fn is expected to block in system call nr.
func start(nr uintptr, fn func() (int, error)) *call {
	c := &call{nr: nr, done: make(chan callResult, 1)}
	tid := make(chan int)
	go func() {
		runtime.LockOSThread()
		tid <- unix.Gettid()
		n, err := fn()
		c.done <- callResult{n, err}
	}()
	c.tid = <-tid
	return c
}

// blocked reports whether the call's thread sits in its system call.
func (c *call) blocked() bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/syscall", c.tid))
	return err == nil && strings.HasPrefix(string(b), strconv.Itoa(int(c.nr))+" ")
}

// waitBlocked waits until every call sits in its system call, failing the
// test if one returns instead or the hang guard runs out.
func waitBlocked(t *testing.T, calls ...*call) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for _, c := range calls {
		for !c.blocked() {
			select {
			case r := <-c.done:
				t.Fatalf("call returned (%d, %v) instead of blocking", r.n, r.err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("call did not block in system call %d within %v", c.nr, hangGuard)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// result waits for the call to return.
func (c *call) result(t *testing.T) callResult {
	t.Helper()
	select {
	case r := <-c.done:
		return r
	case <-time.After(hangGuard):
		t.Fatalf("call blocked in system call %d did not return within %v", c.nr, hangGuard)
	}
	return callResult{}
}

// blockingPoll polls fd for POLLIN without a timeout, retrying on EINTR;
// its result is the revents.
func blockingPoll(fd int) func() (int, error) {
	return func() (int, error) {
		for {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			_, err := unix.Poll(pfd, -1)
			if !errors.Is(err, unix.EINTR) {
				return int(pfd[0].Revents), err
			}
		}
	}
}

// blockingRead reads fd, retrying on EINTR.
func blockingRead(fd int) func() (int, error) {
	return func() (int, error) {
		buf := make([]byte, 65536)
		for {
			n, err := unix.Read(fd, buf)
			if !errors.Is(err, unix.EINTR) {
				return n, err
			}
		}
	}
}

// nonblockingRead reads fd once, failing the test if the read hangs.
func nonblockingRead(t *testing.T, fd int, buf []byte) (int, error) {
	t.Helper()
	return readWithin(t, fd, buf, hangGuard, fmt.Sprintf("read blocked for %v on a non-blocking fd", hangGuard))
}

// udpPayload returns the payload of a packet read from l if it is a UDP
// datagram to port, else nil.
func (l *link) udpPayload(p []byte, port int) []byte {
	if l.l2 {
		return itest.FrameUDPPayload(p, uint16(port))
	}
	return itest.UDPPayload(p, uint16(port))
}

func TestPollReadiness(t *testing.T) {
	for i, drv := range pollDrivers {
		t.Run(drv, func(t *testing.T) {
			e := newQuietEnv(t)
			l := e.setup(t, drv, i+1)
			s := e.udpSocket(t, l.local, 5000)

			// Idle: poll sleeps its whole timeout.
			if n, rev := poll1(t, l.fd, unix.POLLIN, 300); n != 0 {
				t.Fatalf("poll(POLLIN, 300ms) on idle %s = %d (revents %#x), want 0", l.name, n, rev)
			}
			// Writes never block: POLLOUT at once (tunpoll()).
			if n, rev := poll1(t, l.fd, unix.POLLOUT, int(hangGuard/time.Millisecond)); n != 1 || rev != unix.POLLOUT {
				t.Fatalf("poll(POLLOUT) on %s = %d (revents %#x), want 1 (POLLOUT)", l.name, n, rev)
			}

			// A poll asleep in the kernel wakes when a packet is routed to
			// the interface.
			for k := 0; k < 3; k++ {
				c := start(unix.SYS_PPOLL, blockingPoll(l.fd))
				waitBlocked(t, c)
				payload := []byte(fmt.Sprintf("wake up %d", k))
				sendTo(t, s, l.remote, 6000, payload)
				r := c.result(t)
				if r.err != nil || r.n&unix.POLLIN == 0 {
					t.Fatalf("poll after a packet: revents %#x, %v; want POLLIN", r.n, r.err)
				}
				if got, _ := l.extract(t, 6000); !bytes.Equal(got, payload) {
					t.Fatalf("read %q after POLLIN, want %q", got, payload)
				}
				// Read empty again: idle again.
				if n, rev := poll1(t, l.fd, unix.POLLIN, 300); n != 0 {
					t.Fatalf("poll(POLLIN, 300ms) after the read = %d (revents %#x), want 0", n, rev)
				}
			}

			// Destroy wakes a sleeping poll: POLLHUP (and POLLIN, as
			// FreeBSD's dead_poll answers); the read then fails with ENXIO.
			c := start(unix.SYS_PPOLL, blockingPoll(l.fd))
			waitBlocked(t, c)
			if out, err := e.d.CLI("ifconfig", l.name, "destroy"); err != nil {
				t.Fatalf("ifconfig %s destroy: %v: %s", l.name, err, out)
			}
			if r := c.result(t); r.err != nil || r.n&unix.POLLHUP == 0 {
				t.Fatalf("poll across destroy: revents %#x, %v; want POLLHUP", r.n, r.err)
			}
			if _, err := nonblockingRead(t, l.fd, make([]byte, 100)); !errors.Is(err, unix.ENXIO) {
				t.Fatalf("read of destroyed %s: %v, want ENXIO", l.name, err)
			}
		})
	}
}

// TestPollIgnoresDroppedPackets: without IFHEAD a tun delivers only IPv4,
// so IPv6 packets queued on it must not make it readable.
func TestPollIgnoresDroppedPackets(t *testing.T) {
	e := newEnv(t)
	l := e.setup(t, "tun", 1)
	e.ns.Run(t, "ip", "-6", "addr", "add", "fd00:77::1/128", "peer", "fd00:77::2/128", "dev", l.name, "nodad")
	// The kernel adds the peer's route once IPv6 sees the link ready,
	// which may come a moment after the address on a loaded machine.
	if !itest.WaitFor(func() bool {
		return strings.TrimSpace(e.ns.Run(t, "ip", "-6", "route", "show", "fd00:77::2", "dev", l.name)) != ""
	}) {
		t.Fatalf("no route to fd00:77::2 on %s 10s after the address was added", l.name)
	}
	var s6 int
	e.ns.Do(t, func() error {
		var err error
		s6, err = unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	t.Cleanup(func() { unix.Close(s6) })
	dst := &unix.SockaddrInet6{Port: 6000, Addr: netip.MustParseAddr("fd00:77::2").As16()}
	for k := 0; k < 3; k++ {
		if err := unix.Sendto(s6, []byte("v6"), 0, dst); err != nil {
			t.Fatalf("sendto [fd00:77::2]:6000: %v", err)
		}
	}
	if n, rev := poll1(t, l.fd, unix.POLLIN, 300); n != 0 {
		t.Fatalf("poll(POLLIN, 300ms) with only IPv6 queued = %d (revents %#x), want 0", n, rev)
	}
	var drops uint64
	for _, dv := range e.d.Status(t).Devices {
		if dv.Name == l.name {
			drops = dv.Drops
		}
	}
	if drops < 3 {
		t.Fatalf("%s dropped %d packets, want the 3 IPv6 datagrams at least", l.name, drops)
	}
	s := e.udpSocket(t, l.local, 5000)
	sendTo(t, s, l.remote, 6000, []byte("v4"))
	if n, rev := poll1(t, l.fd, unix.POLLIN, int(hangGuard/time.Millisecond)); n != 1 || rev&unix.POLLIN == 0 {
		t.Fatalf("poll(POLLIN) with IPv4 queued = %d (revents %#x), want POLLIN", n, rev)
	}
	buf := make([]byte, 2048)
	n := readTimeout(t, l.fd, buf)
	if got := itest.UDPPayload(buf[:n], 6000); string(got) != "v4" {
		t.Fatalf("read after POLLIN: %x, want the IPv4 datagram", buf[:n])
	}
}

func TestEpollEdgeTriggered(t *testing.T) {
	const packets = 50
	for i, drv := range pollDrivers {
		t.Run(drv, func(t *testing.T) {
			e := newQuietEnv(t)
			l := e.setup(t, drv, i+1)
			s := e.udpSocket(t, l.local, 5000)
			if err := unix.SetNonblock(l.fd, true); err != nil {
				t.Fatal(err)
			}
			ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Close(ep) })
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(l.fd)}
			if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, l.fd, &ev); err != nil {
				t.Fatalf("epoll_ctl add: %v", err)
			}
			wait := func(ms int) []unix.EpollEvent {
				evs := make([]unix.EpollEvent, 4)
				for {
					n, err := unix.EpollWait(ep, evs, ms)
					if errors.Is(err, unix.EINTR) {
						continue
					}
					if err != nil {
						t.Fatalf("epoll_wait: %v", err)
					}
					return evs[:n]
				}
			}
			buf := make([]byte, 65536)
			for k := 0; k < packets; k++ {
				if evs := wait(0); len(evs) != 0 {
					t.Fatalf("packet %d: epoll reports %#x with nothing queued", k, evs[0].Events)
				}
				payload := []byte(fmt.Sprintf("edge %d", k))
				sendTo(t, s, l.remote, 6000, payload)
				evs := wait(int(hangGuard / time.Millisecond))
				if len(evs) == 0 {
					t.Fatalf("packet %d: epoll_wait missed the arrival (nothing in %v)", k, hangGuard)
				}
				if evs[0].Events&unix.EPOLLIN == 0 {
					t.Fatalf("packet %d: epoll events %#x, want EPOLLIN", k, evs[0].Events)
				}
				var got [][]byte
				for {
					n, err := nonblockingRead(t, l.fd, buf)
					if errors.Is(err, unix.EAGAIN) {
						break
					}
					if err != nil {
						t.Fatalf("packet %d: read: %v", k, err)
					}
					if p := l.udpPayload(buf[:n], 6000); p != nil {
						got = append(got, bytes.Clone(p))
					}
				}
				if len(got) != 1 || !bytes.Equal(got[0], payload) {
					t.Fatalf("packet %d: read until EAGAIN got %q, want exactly %q", k, got, payload)
				}
			}
		})
	}
}

func TestGoClientDeadline(t *testing.T) {
	for i, drv := range pollDrivers {
		t.Run(drv, func(t *testing.T) {
			e := newQuietEnv(t)
			name, err := os.Readlink(filepath.Join(e.dir, drv))
			if err != nil {
				t.Fatal(err)
			}
			// The test process is not the daemon: the Go runtime poller
			// may register this file with epoll.
			f, err := os.OpenFile(filepath.Join(e.dir, name), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			l := e.configure(t, drv, name, -1, i+1)
			s := e.udpSocket(t, l.local, 5000)
			buf := make([]byte, 65536)

			if err := f.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
				t.Fatalf("SetReadDeadline: %v (the file is not on the runtime poller)", err)
			}
			if n, err := f.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("read of idle %s: %d, %v; want os.ErrDeadlineExceeded", name, n, err)
			}
			for k := 0; k < 3; k++ {
				// The reader waits on the runtime poller (its READ got
				// EAGAIN) when the packet comes: the pause only orders the
				// two, and the read has the hang guard as deadline.
				payload := []byte(fmt.Sprintf("go client %d", k))
				f.SetReadDeadline(time.Now().Add(hangGuard))
				got := make(chan []byte, 1)
				failed := make(chan error, 1)
				go func() {
					rbuf := make([]byte, 65536)
					for {
						n, err := f.Read(rbuf)
						if err != nil {
							failed <- err
							return
						}
						if p := l.udpPayload(rbuf[:n], 6000); p != nil {
							got <- p
							return
						}
					}
				}()
				time.Sleep(100 * time.Millisecond)
				sendTo(t, s, l.remote, 6000, payload)
				select {
				case p := <-got:
					if !bytes.Equal(p, payload) {
						t.Fatalf("read %q, want %q", p, payload)
					}
				case err := <-failed:
					t.Fatalf("read %d: %v", k, err)
				}
			}
			f.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if n, err := f.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("read of drained %s: %d, %v; want os.ErrDeadlineExceeded", name, n, err)
			}
		})
	}
}

func TestNonblockingRead(t *testing.T) {
	for i, drv := range pollDrivers {
		t.Run(drv, func(t *testing.T) {
			e := newQuietEnv(t)
			buf := make([]byte, 65536)

			// O_NONBLOCK at open.
			nb := e.open(t, drv, unix.O_NONBLOCK)
			if n, err := nonblockingRead(t, nb, buf); !errors.Is(err, unix.EAGAIN) {
				t.Fatalf("O_NONBLOCK read of empty %s: %d, %v; want EAGAIN", devName(t, nb), n, err)
			}

			// FIONBIO on a blocking fd: the kernel sets O_NONBLOCK in the
			// file's flags, which every READ request carries.
			fd := e.open(t, drv, 0)
			l := e.configure(t, drv, devName(t, fd), fd, i+1)
			s := e.udpSocket(t, l.local, 5000)
			if err := unix.IoctlSetPointerInt(fd, fionbio, 1); err != nil {
				t.Fatalf("FIONBIO 1: %v", err)
			}
			if n, err := nonblockingRead(t, fd, buf); !errors.Is(err, unix.EAGAIN) {
				t.Fatalf("read of empty %s after FIONBIO 1: %d, %v; want EAGAIN", l.name, n, err)
			}
			// Back to blocking: the read sleeps until a packet comes.
			if err := unix.IoctlSetPointerInt(fd, fionbio, 0); err != nil {
				t.Fatalf("FIONBIO 0: %v", err)
			}
			c := start(unix.SYS_READ, blockingRead(fd))
			waitBlocked(t, c)
			sendTo(t, s, l.remote, 6000, []byte("unblock"))
			if r := c.result(t); r.err != nil || r.n == 0 {
				t.Fatalf("blocking read after FIONBIO 0: %d, %v; want a packet", r.n, r.err)
			}
		})
	}
}

// requireTools skips (or, when CI demands privileged tests, fails) a test
// that needs programs that are not installed.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			msg := tool + " is not installed (scripts/install-deps.sh installs it)"
			if os.Getenv("TUNDEVFS_REQUIRE_PRIVILEGED") == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// TestSocatRelay relays a tun of one namespace to a tun of another with
// socat, which waits in poll and then reads: ping across it loses nothing.
func TestSocatRelay(t *testing.T) {
	itest.RequirePrivileged(t)
	requireTools(t, "socat", "ping")
	type side struct {
		ns          *itest.Netns
		d           *itest.Daemon
		path        string
		local, peer string
	}
	sides := []*side{{local: "10.77.0.1", peer: "10.77.0.2"}, {local: "10.77.0.2", peer: "10.77.0.1"}}
	for _, sd := range sides {
		sd.ns = itest.NewNetns(t)
		sd.d = itest.StartDaemon(t, sd.ns)
		dir := sd.d.Mount(t, "")
		name, err := os.Readlink(filepath.Join(dir, "tun"))
		if err != nil {
			t.Fatal(err)
		}
		sd.path = filepath.Join(dir, name)
		sd.ns.Run(t, "ip", "addr", "add", sd.local, "peer", sd.peer, "dev", name)
		sd.ns.Run(t, "ip", "link", "set", name, "up")
	}

	// socat opens OPEN: addresses O_RDWR in its default bidirectional mode.
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

	// Traffic one way only, each way in turn: a relay that trusts a lying
	// select() sleeps in a read of the idle side and carries nothing.
	for dir, sd := range sides {
		other := sides[1-dir]
		var rx, tx int
		sd.ns.Do(t, func() error {
			var err error
			if rx, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
				return err
			}
			sa := &unix.SockaddrInet4{Port: 7000, Addr: netip.MustParseAddr(sd.local).As4()}
			return unix.Bind(rx, sa)
		})
		t.Cleanup(func() { unix.Close(rx) })
		tv := unix.NsecToTimeval(int64(hangGuard))
		unix.SetsockoptTimeval(rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		other.ns.Do(t, func() error {
			var err error
			tx, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			return err
		})
		t.Cleanup(func() { unix.Close(tx) })
		buf := make([]byte, 100)
		for k := 0; k < 10; k++ {
			sendTo(t, tx, sd.local, 7000, []byte{byte(k)})
			n, _, err := testenv.Recvfrom(rx, buf)
			if err != nil || n != 1 || buf[0] != byte(k) {
				t.Fatalf("datagram %d to %s across the relay: %x, %v", k, sd.local, buf[:max(n, 0)], err)
			}
		}
	}

	out, err := sides[0].ns.Command("ping", "-n", "-c", "50", "-i", "0.02", "-W", "2", "10.77.0.2").CombinedOutput()
	if err != nil {
		t.Fatalf("ping across the socat relay: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), " 0% packet loss") {
		t.Fatalf("ping across the socat relay lost packets:\n%s", out)
	}
	select {
	case <-exited:
		t.Fatalf("socat exited: %s", log.String())
	default:
	}
}

// TestThousandBlockedClients: clients blocked in poll or read cost the
// daemon a goroutine each, parked on the netpoller, and no OS thread.
func TestThousandBlockedClients(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	e := newQuietEnv(t, "--device-limit", "2000")
	start0 := e.d.Status(t)
	fds := make([]int, n)
	names := make([]string, n)
	for i := range fds {
		fds[i] = e.open(t, "tun", 0)
		names[i] = devName(t, fds[i])
	}
	opened := e.d.Status(t)

	calls := make([]*call, n)
	for i, fd := range fds {
		if i%2 == 0 {
			calls[i] = start(unix.SYS_PPOLL, blockingPoll(fd))
		} else {
			calls[i] = start(unix.SYS_READ, blockingRead(fd))
		}
	}
	waitBlocked(t, calls...)
	// Every blocked read is an operation in flight in the daemon.
	busy := func(st daemon.Status) int {
		b := 0
		for _, dv := range st.Devices {
			b += dv.Busy
		}
		return b
	}
	var during daemon.Status
	// A hang guard, not a timing (see TestTransportBlockedReadersAndWriter).
	if !testenv.WaitWithin(time.Minute, func() bool { during = e.d.Status(t); return busy(during) == n/2 }) {
		t.Fatalf("%d reads in flight in the daemon, want %d", busy(during), n/2)
	}
	t.Logf("daemon threads: %d after mount, %d with %d devices open, %d with %d clients blocked (%d in poll, %d in read); goroutines %d -> %d",
		start0.Threads, opened.Threads, n, during.Threads, n, (n+1)/2, n/2, opened.Goroutines, during.Goroutines)
	if during.Threads > opened.Threads+8 {
		t.Errorf("daemon threads %d -> %d with %d blocked clients, want at most %d", opened.Threads, during.Threads, n, opened.Threads+8)
	}

	// Destroy releases every client: polls see POLLHUP, reads ENXIO.
	for _, name := range names {
		var out any
		e.d.Call(t, daemon.Request{Op: "ifconfig", Args: []string{name, "destroy"}}, &out)
	}
	for i, c := range calls {
		r := c.result(t)
		switch {
		case c.nr == unix.SYS_PPOLL && (r.err != nil || r.n&unix.POLLHUP == 0):
			t.Errorf("poll on destroyed %s: revents %#x, %v; want POLLHUP", names[i], r.n, r.err)
		case c.nr == unix.SYS_READ && !errors.Is(r.err, unix.ENXIO):
			t.Errorf("read on destroyed %s: %d, %v; want ENXIO", names[i], r.n, r.err)
		}
	}
}

// TestDaemonOpensNothingInMount: the daemon serves POLL, so it must never
// open a file on its own mount (golang/go#21014); after a workout of the
// mount, no fd, mapping, cwd or root of the daemon points into it.
func TestDaemonOpensNothingInMount(t *testing.T) {
	e := newQuietEnv(t)
	l := e.setup(t, "tun", 1)
	s := e.udpSocket(t, l.local, 5000)
	sendTo(t, s, l.remote, 6000, []byte("x"))
	poll1(t, l.fd, unix.POLLIN, int(hangGuard/time.Millisecond))
	l.extract(t, 6000)
	f, err := os.OpenFile(filepath.Join(e.dir, "tap"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	f.Read(make([]byte, 100))
	if _, err := os.ReadDir(e.dir); err != nil {
		t.Fatal(err)
	}

	pid := e.d.Status(t).PID
	if pid == os.Getpid() || pid == 0 {
		t.Fatalf("daemon pid %d", pid)
	}
	inMount := func(p string) bool { return p == e.dir || strings.HasPrefix(p, e.dir+"/") }
	proc := fmt.Sprintf("/proc/%d", pid)
	ents, err := os.ReadDir(proc + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range ents {
		if target, err := os.Readlink(proc + "/fd/" + de.Name()); err == nil && inMount(target) {
			t.Errorf("daemon fd %s is %s, in its own mount", de.Name(), target)
		}
	}
	for _, link := range []string{"cwd", "root"} {
		if target, err := os.Readlink(proc + "/" + link); err == nil && inMount(target) {
			t.Errorf("daemon %s is %s, in its own mount", link, target)
		}
	}
	maps, err := os.ReadFile(proc + "/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(maps), "\n") {
		if fields := strings.Fields(line); len(fields) >= 6 && inMount(fields[5]) {
			t.Errorf("daemon maps %s from its own mount", fields[5])
		}
	}
	f.Close()
}
