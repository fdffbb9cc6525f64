package fs_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/fs"
	"github.com/tundevfs/tundevfs/internal/itest"
	"github.com/tundevfs/tundevfs/internal/testenv"
)

// transports are the forced FUSE transports; uring skips with the
// kernel's reason where it lacks FUSE over io_uring.
var transports = []string{"uring", "dev"}

func transportEnv(t *testing.T, tr string, daemonFlags ...string) *env {
	t.Helper()
	itest.RequirePrivileged(t)
	if tr == "uring" {
		if err := fs.URingAvailable(); err != nil {
			t.Skipf("no FUSE over io_uring here: %v", err)
		}
	}
	return newQuietEnv(t, append([]string{"--fuse-transport", tr}, daemonFlags...)...)
}

func mountTransport(t *testing.T, e *env) string {
	t.Helper()
	for _, m := range e.d.Status(t).Mounts {
		if m.Dir == e.dir {
			return m.Transport
		}
	}
	t.Fatalf("mount %s not in status", e.dir)
	return ""
}

// uringParam reads fs.URingParam under the lock mounts take to change it,
// so it never sees another test package's mount in the middle.
func uringParam(t *testing.T) string {
	t.Helper()
	lf, err := os.OpenFile("/run/lock/tundevfs-fuse-uring.lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	for {
		err = unix.Flock(int(lf.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fs.URingParam)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestTransportForced: a forced transport is the one the mount uses, as
// status says, and packets go both ways on it; forcing uring puts the
// module parameter back as it found it.
func TestTransportForced(t *testing.T) {
	for i, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			itest.RequirePrivileged(t)
			var before string
			if tr == "uring" && fs.URingAvailable() == nil {
				before = uringParam(t)
			}
			e := transportEnv(t, tr)
			if got := mountTransport(t, e); got != tr {
				t.Fatalf("status says transport %q, want %q", got, tr)
			}
			if out, err := e.d.CLI("status"); err != nil || !strings.Contains(out, "mount "+e.dir+" (jail host)\n  fuse transport "+tr+"\n") {
				t.Fatalf("status text: %v\n%s", err, out)
			}
			if before != "" {
				if after := uringParam(t); after != before {
					t.Errorf("%s: %s before the mount, %s after", fs.URingParam, before, after)
				}
			}
			l := e.setup(t, "tun", 40+i)
			s := e.udpSocket(t, l.local, 5000)
			for k := 0; k < 20; k++ {
				want := []byte(fmt.Sprintf("over %s %d %s", tr, k, strings.Repeat("z", k*70)))
				l.inject(t, 5000, want)
				buf := make([]byte, 2048)
				n, _, err := testenv.Recvfrom(s, buf)
				if err != nil {
					t.Fatalf("recv: %v", err)
				}
				if !bytes.Equal(buf[:n], want) {
					t.Fatalf("socket got %q, want %q", buf[:n], want)
				}
				sendTo(t, s, l.remote, 6000, want)
				if got, _ := l.extract(t, 6000); !bytes.Equal(got, want) {
					t.Fatalf("device read %q, want %q", got, want)
				}
			}
		})
	}
}

// TestTransportBlockedReadersAndWriter: many readers blocked in read(2),
// each holding a request (over io_uring: a ring entry), while a writer on
// another device still gets its packets through and a reader that gets a
// packet returns it; destroying the devices releases every reader.
func TestTransportBlockedReadersAndWriter(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 200
	}
	for i, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			e := transportEnv(t, tr, "--device-limit", "2000")
			pid := e.d.Status(t).PID
			rss0 := vmRSS(t, pid)
			fds := make([]int, n)
			names := make([]string, n)
			for k := range fds {
				fds[k] = e.open(t, "tun", 0)
				names[k] = devName(t, fds[k])
			}
			calls := make([]*call, n)
			for k, fd := range fds {
				calls[k] = start(unix.SYS_READ, blockingRead(fd))
			}
			waitBlocked(t, calls...)
			busy := func() int {
				b := 0
				for _, dv := range e.d.Status(t).Devices {
					b += dv.Busy
				}
				return b
			}
			// Every read reaches the daemon (none waits in the kernel
			// for a free ring entry).
			// A hang guard, not a timing: a thousand reads and the
			// daemon's status of a thousand devices take a while on a
			// loaded machine of 2 CPUs.
			if !testenv.WaitWithin(time.Minute, func() bool { return busy() == n }) {
				t.Fatalf("%d reads in flight in the daemon, want %d", busy(), n)
			}
			t.Logf("%s: daemon RSS %d KiB idle, %d KiB with %d blocked reads", tr, rss0, vmRSS(t, pid), n)

			// A writer on another device.
			l := e.setup(t, "tun", 50+i)
			s := e.udpSocket(t, l.local, 5000)
			for k := 0; k < 200; k++ {
				want := []byte(fmt.Sprintf("writer %d", k))
				l.inject(t, 5000, want)
				buf := make([]byte, 2048)
				m, _, err := testenv.Recvfrom(s, buf)
				if err != nil {
					t.Fatalf("recv %d: %v", k, err)
				}
				if !bytes.Equal(buf[:m], want) {
					t.Fatalf("socket got %q, want %q", buf[:m], want)
				}
			}

			// The last blocked reader gets a packet.
			last := names[n-1]
			e.ns.Run(t, "ip", "addr", "add", "10.9.60.1", "peer", "10.9.60.2", "dev", last)
			e.ns.Run(t, "ip", "link", "set", last, "up")
			s2 := e.udpSocket(t, "10.9.60.1", 0)
			sendTo(t, s2, "10.9.60.2", 7000, []byte("to the last reader"))
			if r := calls[n-1].result(t); r.err != nil || r.n <= 0 {
				t.Fatalf("last reader: %d, %v", r.n, r.err)
			}

			for _, name := range names {
				var out any
				e.d.Call(t, daemon.Request{Op: "ifconfig", Args: []string{name, "destroy"}}, &out)
			}
			for k, c := range calls[:n-1] {
				if r := c.result(t); !errors.Is(r.err, unix.ENXIO) {
					t.Errorf("read on destroyed %s: %d, %v; want ENXIO", names[k], r.n, r.err)
				}
			}
		})
	}
}

// TestTransportKilledReaders: a reader killed while its read is on the way
// to the daemon dies. Over io_uring the kernel sends the INTERRUPT through
// /dev/fuse and it can overtake the read (from a ring); the kernel cannot
// requeue it on EAGAIN, so the daemon must remember it until the read
// starts. Before that fix, the stress test left a SIGKILLed cat blocked.
func TestTransportKilledReaders(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 100
	}
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			e := transportEnv(t, tr)
			dev := e.dir + "/tun0"
			if _, err := os.Lstat(dev); err != nil {
				t.Fatal(err)
			}
			for k := 0; k < n; k++ {
				cmd := exec.Command("cat", dev)
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				if k%2 == 1 {
					time.Sleep(time.Duration(k%7) * 100 * time.Microsecond)
				}
				cmd.Process.Signal(syscall.SIGKILL)
				exited := make(chan struct{})
				go func() { cmd.Wait(); close(exited) }()
				select {
				case <-exited:
				case <-time.After(hangGuard):
					t.Fatalf("reader %d killed while reading %s did not die within %v", k, dev, hangGuard)
				}
			}
		})
	}
}

// vmRSS is process pid's resident set in KiB.
func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb
		}
	}
	return 0
}
