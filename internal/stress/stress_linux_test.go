package stress

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
	"github.com/tundevfs/tundevfs/internal/testenv"
	"github.com/tundevfs/tundevfs/ioctls"
	"github.com/tundevfs/tundevfs/jails"
)

var durationFlag = flag.Duration("stress.duration", 0, "how long TestStress runs (default: $STRESS_DURATION, else 30s)")

// duration is how long the workload runs: the flag, else STRESS_DURATION
// (`make stress` sets 10m), else the short version of `make test`, 30s.
func duration(t *testing.T) time.Duration {
	if *durationFlag > 0 {
		return *durationFlag
	}
	if s := os.Getenv("STRESS_DURATION"); s != "" && !testing.Short() {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("STRESS_DURATION=%q: want a duration such as 10m", s)
		}
		return d
	}
	return 30 * time.Second
}

// RSSSlack is how much the daemon's resident set may grow over the
// baseline, in KiB, before a check calls it a leak. Go's heap is not flat:
// the collector lets the heap grow to twice the live data before it runs
// (GOGC=100) and gives freed pages back to the kernel lazily, and go-fuse's
// buffer pools and the packet buffer pool keep what bursts of parallel
// requests needed. A leak per operation (thousands of operations a minute)
// outgrows it within minutes.
const RSSSlack = 16 << 10

// ThreadSlack is how many threads the daemon may gain over the baseline.
// The Go runtime keeps the threads it once needed (testenv.ThreadSlack);
// six workers, a checkpoint and the FUSE readers of several mounts make up
// to a dozen blocking operations at once, so the high-water mark can move
// by a few after a short warm-up. A thread leaked per operation (thousands
// a minute) still fails.
const ThreadSlack = 4

// checkWithin bounds how long a checkpoint waits for the daemon to settle:
// transient devices and killed clients are released after close returns.
const checkWithin = 15 * time.Second

// run is one stress run: the daemon, its namespace, and the workers.
type run struct {
	t    *testing.T
	d    *itest.Daemon
	ns   *itest.Netns
	nsh  *jails.Netns
	root string // the test's mount points live below it
	host string // a mount of the host jail, kept for the whole run

	// The rename and mount workers work in jails of their own (vnet
	// jails on namespaces the test made), so that each driver's units in
	// each namespace belong to one worker: see killClient.
	renNs  *jails.Netns // the namespace of jail "ren"
	renDir string       // a mount of jail "ren"
	mntNs  *jails.Netns // the namespace of jail "mnt"

	// gate: a worker holds it for reading during one iteration; a
	// checkpoint takes it for writing, so it sees the daemon between
	// iterations.
	gate  sync.RWMutex
	stop  chan struct{}
	once  sync.Once
	paced bool         // the short run: the jail worker slows down
	seq   atomic.Int64 // unique numbers for names

	opsMu sync.Mutex // guards ops
	ops   map[string]int

	procsMu sync.Mutex // guards procs
	procs   map[*exec.Cmd]bool

	mountsMu sync.Mutex // guards mounts
	mounts   map[string]bool
}

// fail reports a worker's failure and stops the run.
func (r *run) fail(format string, args ...any) {
	r.t.Errorf(format, args...)
	r.once.Do(func() { close(r.stop) })
}

func (r *run) stopped() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// call sends one control request.
func (r *run) call(req daemon.Request, out any) error {
	if err := daemon.CallInto(r.d.Socket, req, out); err != nil {
		return fmt.Errorf("%s %s %v: %w", req.Op, req.Jail, req.Args, err)
	}
	return nil
}

func (r *run) destroy(jail, name string) error {
	var out any
	return r.call(daemon.Request{Op: "ifconfig", Jail: jail, Args: []string{name, "destroy"}}, &out)
}

func (r *run) create(jail, what string) (string, error) {
	var name string
	err := r.call(daemon.Request{Op: "ifconfig", Jail: jail, Args: []string{what, "create"}}, &name)
	return name, err
}

// mount mounts jail's devices at a new directory below root.
func (r *run) mount(jail string) (string, error) {
	dir := filepath.Join(r.root, fmt.Sprintf("m%d", r.seq.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	r.mountsMu.Lock()
	r.mounts[dir] = true
	r.mountsMu.Unlock()
	return dir, r.call(daemon.Request{Op: "mount", Dir: dir, Jail: jail}, nil)
}

// forget drops dir from the mounts to clean up, once it is gone.
func (r *run) forget(dir string) error {
	if !testenv.WaitFor(func() bool { return !itest.IsMounted(dir) }) {
		return fmt.Errorf("%s still mounted", dir)
	}
	r.mountsMu.Lock()
	delete(r.mounts, dir)
	r.mountsMu.Unlock()
	return os.Remove(dir)
}

// worker runs fn until the run stops, one iteration at a time inside the
// gate.
func (r *run) worker(wg *sync.WaitGroup, name string, fn func(i int) error) {
	defer wg.Done()
	for i := 0; !r.stopped(); i++ {
		r.gate.RLock()
		err := fn(i)
		r.gate.RUnlock()
		if err != nil {
			r.fail("%s, iteration %d: %v", name, i, err)
			return
		}
		r.opsMu.Lock()
		r.ops[name]++
		r.opsMu.Unlock()
	}
}

func (r *run) totalOps() int {
	r.opsMu.Lock()
	defer r.opsMu.Unlock()
	n := 0
	for _, v := range r.ops {
		n += v
	}
	return n
}

func TestStress(t *testing.T) {
	itest.RequirePrivileged(t)
	total := duration(t)
	warm := min(total/3, time.Minute)

	ns := quietNetns(t)
	d := itest.StartDaemon(t, ns)
	nsh, err := jails.OpenNetns(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsh.Close() })
	r := &run{
		t: t, d: d, ns: ns, nsh: nsh,
		root:   t.TempDir(),
		stop:   make(chan struct{}),
		paced:  total < 5*time.Minute,
		ops:    map[string]int{},
		procs:  map[*exec.Cmd]bool{},
		mounts: map[string]bool{},
	}
	r.host = d.Mount(t, "")
	t.Cleanup(r.cleanup)
	r.renNs = r.adopt(t, "ren")
	r.renDir = d.Mount(t, "ren")
	r.mntNs = r.adopt(t, "mnt")

	var wg sync.WaitGroup
	for name, fn := range map[string]func(int) error{
		"clone-io":     r.cloneIO,
		"ifconfig-tap": r.ifconfigTap,
		"jail":         r.jail,
		"rename":       r.rename,
		"mount":        r.mountCycle,
		"kill":         r.killClient,
	} {
		if only := os.Getenv("STRESS_WORKERS"); only != "" && !slices.Contains(strings.Split(only, ","), name) {
			continue
		}
		wg.Add(1)
		go r.worker(&wg, name, fn)
	}
	defer func() {
		r.once.Do(func() { close(r.stop) })
		wg.Wait()
	}()

	start := time.Now()
	t.Logf("stress: %v (warm-up %v), daemon pid %d", total, warm, d.Cmd.Process.Pid)
	if !r.sleep(warm) {
		return
	}
	probe := testenv.Merge(d.Probe(), r.probe)
	opts := append(d.LeakOptions(t), testenv.Within(checkWithin), testenv.Allow("rss KiB", RSSSlack), testenv.Allow("thread", ThreadSlack))
	r.gate.Lock()
	// Wait for what the warm-up left to go (transient devices, killed
	// clients) before the baseline settles.
	if !testenv.WaitFor(func() bool { return len(d.Status(t).Devices) == 0 }) {
		r.gate.Unlock()
		t.Fatalf("devices left after the warm-up: %+v", d.Status(t).Devices)
	}
	base := testenv.NewBaseline(t, probe, opts...)
	r.gate.Unlock()
	t.Logf("%s", header())
	t.Logf("%s", row("base", r.totalOps(), base.Base()))

	next := start.Add(warm).Add(time.Minute)
	end := start.Add(total)
	for {
		at := next
		if end.Before(at) {
			at = end
		}
		if !r.sleep(time.Until(at)) {
			return
		}
		label := "end"
		if at.Before(end) {
			label = time.Since(start).Round(time.Second).String()
		}
		if !r.checkpoint(base, label) || !at.Before(end) {
			break
		}
		next = next.Add(time.Minute)
	}
	r.once.Do(func() { close(r.stop) })
	wg.Wait()
	r.opsMu.Lock()
	t.Logf("operations: %v", r.ops)
	r.opsMu.Unlock()
}

// quietNetns makes a namespace with IPv6 off. Every interface brought up
// with IPv6 on queues address configuration work on one kernel workqueue
// that all namespaces share, under the rtnl lock; thousands of them made
// other tests' IPv6 addresses on this machine wait for seconds.
func quietNetns(t *testing.T) *itest.Netns {
	ns := itest.NewNetns(t)
	ns.Run(t, "sh", "-c", "echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6")
	return ns
}

// adopt makes a namespace and a persistent jail name on it, and returns a
// handle on the namespace.
func (r *run) adopt(t *testing.T, name string) *jails.Netns {
	ns := quietNetns(t)
	r.d.Call(t, daemon.Request{Op: "jail-create", Args: []string{"name=" + name, "vnet=" + ns.Path, "persist"}}, nil)
	h, err := jails.OpenNetns(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// sleep waits for d unless the run stops first; it reports whether the run
// is still going.
func (r *run) sleep(d time.Duration) bool {
	select {
	case <-r.stop:
		return false
	case <-time.After(d):
		return true
	}
}

// checkpoint pauses the workers between iterations and checks the daemon
// against the baseline; it reports whether nothing grew.
func (r *run) checkpoint(base *testenv.Baseline, label string) bool {
	r.gate.Lock()
	defer r.gate.Unlock()
	last, grown, err := base.Wait()
	if err != nil {
		r.fail("checkpoint %s: %v", label, err)
		return false
	}
	r.t.Logf("%s", row(label, r.totalOps(), last))
	if len(grown) != 0 {
		var stacks string
		r.d.Call(r.t, daemon.Request{Op: "stacks"}, &stacks)
		r.fail("checkpoint %s: grown over the baseline and still there after %v:\n%s\ndaemon goroutines:\n%s", label, checkWithin, grown, stacks)
		return false
	}
	return true
}

// header names the columns of the table: mounts are the daemon's (status)
// and the mounts of this run's directories (mountinfo) added up.
func header() string {
	return fmt.Sprintf("%-7s %8s %5s %10s %7s %5s %7s %5s %10s %10s %6s %8s",
		"at", "ops", "fds", "goroutines", "threads", "units", "devices", "jails", "interfaces", "namespaces", "mounts", "RSS KiB")
}

func row(label string, ops int, s testenv.Sample) string {
	return fmt.Sprintf("%-7s %8d %5d %10d %7d %5d %7d %5d %10d %10d %6d %8d",
		label, ops, s.Sum("fd "), s.Sum("goroutine "), s["thread"], s["units in use"], s["devices"], s["jails"],
		s["interfaces"], s["namespaces"], s["mounts"]+s["mountinfo mounts"], s["rss KiB"])
}

// probe samples what the daemon's own probe does not: the interfaces of
// its namespace and of the jails ren and mnt, the network namespaces it holds, the tundevfs mounts of
// this run (the test's and the daemon's jexec mounts) and its RSS.
func (r *run) probe() (testenv.Sample, error) {
	s := testenv.Sample{}
	pid := r.d.Cmd.Process.Pid
	for _, h := range []*jails.Netns{r.nsh, r.renNs, r.mntNs} {
		err := h.Do(func() error {
			links, err := netlink.LinkList()
			if err != nil {
				return err
			}
			for _, l := range links {
				if l.Attrs().Name != "lo" {
					s["interfaces"]++
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("stress probe: links: %w", err)
		}
	}
	nss, err := netnsOf(pid)
	if err != nil {
		return nil, fmt.Errorf("stress probe: %w", err)
	}
	s["namespaces"] = nss
	n, err := countMounts(r.root, filepath.Dir(r.d.Socket))
	if err != nil {
		return nil, fmt.Errorf("stress probe: %w", err)
	}
	s["mountinfo mounts"] = n
	rss, err := testenv.RSS(pid)
	if err != nil {
		return nil, fmt.Errorf("stress probe: %w", err)
	}
	s.Add(rss)
	return s, nil
}

// netnsOf counts the network namespaces process pid holds: through its fds
// and as the namespaces its threads are in.
func netnsOf(pid int) (int, error) {
	inos := map[string]bool{}
	for _, dir := range []string{fmt.Sprintf("/proc/%d/fd", pid), fmt.Sprintf("/proc/%d/task", pid)} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return 0, fmt.Errorf("namespaces: %w", err)
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			if strings.HasSuffix(dir, "/task") {
				p = filepath.Join(p, "ns", "net")
			}
			target, err := os.Readlink(p)
			if err != nil {
				continue
			}
			if strings.HasPrefix(target, "net:[") {
				inos[target] = true
			} else if isNetns(p) {
				var st unix.Stat_t
				if unix.Stat(p, &st) == nil {
					inos[fmt.Sprintf("net:[%d]", st.Ino)] = true
				}
			}
		}
	}
	return len(inos), nil
}

// isNetns reports whether the file at path is a network namespace (one
// opened through a bind mount reads as its path).
func isNetns(path string) bool {
	if !strings.HasPrefix(path, "/proc/") || !strings.Contains(path, "/fd/") {
		return false
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	return err == nil && typ == unix.CLONE_NEWNET
}

// countMounts counts the tundevfs mounts below the given directories.
func countMounts(dirs ...string) (int, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return 0, fmt.Errorf("mounts: %w", err)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) < 5 || !strings.Contains(line, " - fuse.tundevfs ") {
			continue
		}
		for _, d := range dirs {
			if strings.HasPrefix(f[4], d+"/") {
				n++
				break
			}
		}
	}
	return n, nil
}

// cleanup removes what a failed run may have left: clients it started and
// mounts it made. The daemon's cleanup (itest) destroys the rest.
func (r *run) cleanup() {
	r.once.Do(func() { close(r.stop) })
	r.procsMu.Lock()
	for c := range r.procs {
		c.Process.Kill()
		c.Wait()
	}
	r.procsMu.Unlock()
	r.mountsMu.Lock()
	defer r.mountsMu.Unlock()
	for dir := range r.mounts {
		if itest.IsMounted(dir) {
			daemon.Call(r.d.Socket, daemon.Request{Op: "umount", Dir: dir})
		}
		if itest.IsMounted(dir) {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	}
}

// devName tells which device an fd of this process has open.
func devName(fd int) (string, error) {
	p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", err
	}
	return filepath.Base(p), nil
}

// cloneIO clones and opens a tun through the mount, gives its interface
// addresses, sends an ICMP echo request in through the device and reads
// the kernel's reply from it, then destroys it: by a transient close, or by
// ifconfig destroy after a plain close.
func (r *run) cloneIO(i int) error {
	fd, err := unix.Open(filepath.Join(r.host, "tun"), unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("open tun: %w", err)
	}
	closed := false
	defer func() {
		if !closed {
			unix.Close(fd)
		}
	}()
	name, err := devName(fd)
	if err != nil {
		return err
	}
	unit, err := strconv.Atoi(strings.TrimPrefix(name, "tun"))
	if err != nil {
		return fmt.Errorf("cloned %q: %w", name, err)
	}
	local := netip.AddrFrom4([4]byte{10, 77, byte(unit % 250), 1})
	peer := netip.AddrFrom4([4]byte{10, 77, byte(unit % 250), 2})
	err = r.nsh.Do(func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: local.AsSlice(), Mask: net.CIDRMask(32, 32)},
			Peer: &net.IPNet{IP: peer.AsSlice(), Mask: net.CIDRMask(32, 32)}}
		if err := netlink.AddrAdd(l, addr); err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	})
	if err != nil {
		return fmt.Errorf("configure %s: %w", name, err)
	}
	id, seq := uint16(i), uint16(unit)
	if _, err := unix.Write(fd, itest.ICMPEcho(peer, local, id, seq, []byte("stress"))); err != nil {
		return fmt.Errorf("write to %s: %w", name, err)
	}
	buf := make([]byte, 2048)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if time.Now().After(deadline) {
			return fmt.Errorf("no echo reply from %s in 10s", name)
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, 1000); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("poll %s: %w", name, err)
		}
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if itest.IsEchoReply(buf[:n], id, seq) {
			break
		}
	}
	if i%2 == 0 {
		if err := ioctls.SetTransient(fd, true); err != nil {
			return fmt.Errorf("TUNSTRANSIENT on %s: %w", name, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		closed = true
		unix.Close(fd)
		// The device goes after close returns (FUSE's RELEASE comes
		// later). Wait for it: the next clone could otherwise get its
		// unit while the kernel still has its entry (the known race of
		// TestCloneAfterDestroyRace), and a client faster than the
		// destroys fills the jail's device limit with dying devices.
		if !testenv.WaitFor(func() bool {
			var ds []driverInfo
			if err := r.call(daemon.Request{Op: "status"}, &statusDevices{Devices: &ds}); err != nil {
				return false
			}
			return !slices.ContainsFunc(ds, func(d driverInfo) bool { return d.Ino == st.Ino })
		}) {
			return fmt.Errorf("transient %s still there 10s after its last close", name)
		}
		return nil
	}
	closed = true
	unix.Close(fd)
	return r.destroy("", name)
}

// ifconfigTap creates a tap with ifconfig, opens it, writes a frame (the
// interface is down: dropped) and destroys it.
func (r *run) ifconfigTap(i int) error {
	name, err := r.create("", "tap")
	if err != nil {
		return err
	}
	fd, err := unix.Open(filepath.Join(r.host, name), unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		r.destroy("", name)
		return fmt.Errorf("open %s: %w", name, err)
	}
	frame := make([]byte, 60)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, byte(i), 0x08, 0x06})
	_, werr := unix.Write(fd, frame)
	n, rerr := unix.Read(fd, make([]byte, 2048))
	unix.Close(fd)
	if werr != nil {
		return fmt.Errorf("write to %s: %w", name, werr)
	}
	if !errors.Is(rerr, unix.EAGAIN) {
		return fmt.Errorf("read of a tap that is down: %d, %v; want EAGAIN", n, rerr)
	}
	return r.destroy("", name)
}

// jail creates a vnet jail, clones a device in it (by ifconfig, through a
// mount of its own, and for its jexec /dev) and removes it.
func (r *run) jail(i int) error {
	name := fmt.Sprintf("s%d", r.seq.Add(1))
	if err := r.call(daemon.Request{Op: "jail-create", Args: []string{"name=" + name, "vnet", "persist"}}, nil); err != nil {
		return err
	}
	if _, err := r.create(name, "tun"); err != nil {
		return err
	}
	if i%2 == 0 {
		var info daemon.ExecInfo
		if err := r.call(daemon.Request{Op: "jail-exec", Jail: name}, &info); err != nil {
			return err
		}
	}
	var dir string
	if i%3 == 0 {
		var err error
		if dir, err = r.mount(name); err != nil {
			return err
		}
		fd, err := unix.Open(filepath.Join(dir, "tap"), unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("open tap in jail %s: %w", name, err)
		}
		unix.Close(fd)
	}
	if err := r.call(daemon.Request{Op: "jail-remove", Jail: name}, nil); err != nil {
		return err
	}
	if dir != "" {
		if err := r.forget(dir); err != nil {
			return err
		}
	}
	if r.paced {
		// Tearing a network namespace down takes the kernel's rtnl lock
		// for long, machine-wide: the short run, which runs beside the
		// other packages' tests, makes at most a few a second.
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

// rename creates a tun in jail ren, renames its interface and waits for the alias,
// then destroys it by the alias or by its name after renaming it back.
func (r *run) rename(i int) error {
	name, err := r.create("ren", "tun")
	if err != nil {
		return err
	}
	alias := fmt.Sprintf("rn%d", r.seq.Add(1))
	setName := func(from, to string) error {
		return r.renNs.Do(func() error {
			l, err := netlink.LinkByName(from)
			if err != nil {
				return err
			}
			return netlink.LinkSetName(l, to)
		})
	}
	if err := setName(name, alias); err != nil {
		r.destroy("ren", name)
		return fmt.Errorf("rename %s to %s: %w", name, alias, err)
	}
	if !testenv.WaitFor(func() bool { _, err := os.Lstat(filepath.Join(r.renDir, alias)); return err == nil }) {
		r.destroy("ren", alias)
		return fmt.Errorf("alias %s of %s never appeared", alias, name)
	}
	if i%2 == 0 {
		return r.destroy("ren", alias)
	}
	if err := setName(alias, name); err != nil {
		return fmt.Errorf("rename %s back to %s: %w", alias, name, err)
	}
	return r.destroy("ren", name)
}

// mountCycle mounts jail mnt's devices at a new directory, clones a tun
// through it, destroys it and unmounts the directory.
func (r *run) mountCycle(i int) error {
	dir, err := r.mount("mnt")
	if err != nil {
		return err
	}
	fd, err := unix.Open(filepath.Join(dir, "tun"), unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("open tun in %s: %w", dir, err)
	}
	name, nerr := devName(fd)
	unix.Close(fd)
	if nerr != nil {
		return nerr
	}
	if err := r.destroy("mnt", name); err != nil {
		return err
	}
	if err := r.call(daemon.Request{Op: "umount", Dir: dir}, nil); err != nil {
		return err
	}
	return r.forget(dir)
}

// killClient starts a client that clones a vmnet and blocks reading it,
// SIGKILLs it and destroys the device. Each driver's units in each jail
// belong to one worker (host: tun clone-io, tap ifconfig-tap, vmnet this
// one; ren and mnt: tun), so that the workload does not hit the known race
// of TestCloneAfterDestroyRace, and the leak checks stay meaningful.
func (r *run) killClient(i int) error {
	what := "vmnet"
	cmd := exec.Command("cat", filepath.Join(r.host, what))
	if err := cmd.Start(); err != nil {
		return err
	}
	r.procsMu.Lock()
	r.procs[cmd] = true
	r.procsMu.Unlock()
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		r.procsMu.Lock()
		delete(r.procs, cmd)
		r.procsMu.Unlock()
	}()
	var name string
	fdDir := fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid)
	if !testenv.WaitFor(func() bool {
		ents, _ := os.ReadDir(fdDir)
		for _, e := range ents {
			if p, err := os.Readlink(filepath.Join(fdDir, e.Name())); err == nil && filepath.Dir(p) == r.host {
				name = filepath.Base(p)
				return true
			}
		}
		return false
	}) {
		return fmt.Errorf("cat %s never opened a device", what)
	}
	if i%2 == 0 {
		// Let it block in read first.
		testenv.WaitWithin(2*time.Second, func() bool {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", cmd.Process.Pid))
			return len(b) > 0 && string(b) != "0"
		})
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := r.destroy("", name); err != nil && !strings.Contains(err.Error(), "no such") {
		return err
	}
	return nil
}

// statusDevices decodes only the devices of a status answer.
type statusDevices struct {
	Devices *[]driverInfo `json:"devices"`
}

type driverInfo struct {
	Name string `json:"name"`
	Ino  uint64 `json:"ino"`
}
