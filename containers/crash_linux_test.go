package containers_test

// Issue 13 with a runc container: the serving process dies (kill -9)
// twice while a container uses its bind-mounted device directory, and the
// container carries on with the same open file.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/containers"
	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/fs"
	"github.com/tundevfs/tundevfs/internal/itest"
	"github.com/tundevfs/tundevfs/internal/testenv"
	"github.com/tundevfs/tundevfs/jails"
)

// crashHang bounds every wait for something that must happen: far above
// any restart, so only a hang fails it.
const crashHang = 15 * time.Second

var (
	crashHelperOnce sync.Once
	crashHelperPath string
	crashHelperErr  error
)

// crashHelper builds testdata/crashhelper static, once per test process,
// into the checkout's git-ignored .build (a name of this process's, then
// renamed into place, as itest.Binary does).
func crashHelper(t *testing.T) string {
	t.Helper()
	crashHelperOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..")
		dir := filepath.Join(root, ".build", "itest")
		if crashHelperErr = os.MkdirAll(dir, 0o755); crashHelperErr != nil {
			return
		}
		crashHelperPath = filepath.Join(dir, "crashhelper")
		tmp := fmt.Sprintf("%s.%d", crashHelperPath, os.Getpid())
		cmd := exec.Command("go", "build", "-o", tmp, "./containers/testdata/crashhelper")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			crashHelperErr = fmt.Errorf("build crashhelper: %v\n%s", err, out)
			return
		}
		if err := os.Rename(tmp, crashHelperPath); err != nil {
			os.Remove(tmp)
			crashHelperErr = err
		}
	})
	if crashHelperErr != nil {
		t.Fatal(crashHelperErr)
	}
	return crashHelperPath
}

// startCrasher runs a container whose shell opens the device directory's
// tun on its fd 3 and execs the crash helper with it; cleanup kills and
// deletes the container whatever happened.
func (e *env) startCrasher(t *testing.T, uid uint32, helperArgs ...string) *container {
	t.Helper()
	script := "exec 3<>" + containers.ContainerPath + "/tun && exec /crashhelper 3 " + strings.Join(helperArgs, " ")
	b := e.bundle(t, ctOpts{uid: uid, args: []string{"/bin/sh", "-c", script}})
	copyFile(t, crashHelper(t), filepath.Join(b, "rootfs", "crashhelper"))
	c := &container{id: randID("tdfs"), lines: make(chan string, 16), stderr: new(bytes.Buffer), done: make(chan struct{})}
	c.cmd = e.runc("run", "--bundle", b, c.id)
	c.launch(t)
	t.Cleanup(func() {
		c.stdin.Close()
		e.runc("kill", c.id, "KILL").Run()
		select {
		case <-c.done:
		case <-time.After(20 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
			t.Errorf("runc run %s did not end", c.id)
		}
		e.runc("delete", "--force", c.id).Run()
	})
	return c
}

// mono is CLOCK_MONOTONIC in nanoseconds, the clock the helper stamps its
// packets with (a runc container shares the host's).
func mono() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// crashStateOf is what must be the same before and after a restart (the
// idea of the daemon tests' stateOf): jails, mounts, and every device with
// its unit, refs, openness, open pid, owner and modes; and the units in use.
func crashStateOf(st daemon.Status) string {
	var lines []string
	for _, j := range st.Jails {
		lines = append(lines, fmt.Sprintf("jail %d %s %s netns=%d persist=%v holds=%d devices=%d", j.JID, j.Name, j.State, j.NetnsID, j.Persist, j.Holds, j.Devices))
	}
	for _, m := range st.Mounts {
		lines = append(lines, fmt.Sprintf("mount %s %s %s %s", m.Dir, m.Jail, m.Mode, m.Transport))
	}
	for _, d := range st.Devices {
		d.RxPackets, d.TxPackets, d.Drops, d.Busy = 0, 0, 0, 0 // they move by themselves
		lines = append(lines, fmt.Sprintf("device %+v", d))
	}
	lines = append(lines, fmt.Sprintf("units %d", st.UnitsInUse))
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// fdIdentity is what /proc says of a process's fd that no read or write
// changes: the file it names and the fdinfo lines of its mount, inode and
// flags.
func fdIdentity(t *testing.T, pid, fd int) string {
	t.Helper()
	target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
	if err != nil {
		t.Fatalf("fd %d of %d: %v", fd, pid, err)
	}
	info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
	if err != nil {
		t.Fatalf("fdinfo %d of %d: %v", fd, pid, err)
	}
	out := []string{target}
	for _, l := range strings.Split(string(info), "\n") {
		if k, _, ok := strings.Cut(l, ":"); ok && (k == "flags" || k == "mnt_id" || k == "ino") {
			out = append(out, strings.Join(strings.Fields(l), " "))
		}
	}
	return strings.Join(out, "; ")
}

// sameFile reports whether fd a of this process and fd b of pid are one
// open file (kcmp KCMP_FILE), or an error when the kernel cannot say.
func sameFile(a, pid, b int) (bool, error) {
	const kcmpFile = 0
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(os.Getpid()), uintptr(pid), kcmpFile, uintptr(a), uintptr(b), 0)
	if errno != 0 {
		return false, errno
	}
	return r == 0, nil
}

// heldNetns lists the network namespaces process pid holds fds of.
func heldNetns(t *testing.T, pid int) []uint64 {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, ent := range ents {
		fd, err := unix.Open(filepath.Join(dir, ent.Name()), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			continue
		}
		if typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE); err == nil && typ == unix.CLONE_NEWNET {
			var st unix.Stat_t
			unix.Fstat(fd, &st)
			out = append(out, st.Ino)
		}
		unix.Close(fd)
	}
	return out
}

// traffic is what went through the container's fd, both ways, with the
// CLOCK_MONOTONIC times it was seen.
type traffic struct {
	mu sync.Mutex // guards everything below
	// c2h: the container's packets received by a socket in its
	// namespace: seq → (write start in the container, arrival).
	c2hStart, c2hAt map[int]int64
	c2hDup          int
	// h2c: datagrams the test sent to the container's device: seq →
	// send time, and the time the container printed it read it.
	h2cSent, h2cAt map[int]int64
	h2cNext        int
	h2cDup         int
	bad            []string    // helper lines that say something went wrong
	eintr          []string    // "eintr OP" lines with their times
	kills          []int64     // when each kill -9 was sent
	checks         chan string // "check" answers
	bye            chan string
}

// sinceKillLocked says when at was, from the last kill before it.
func (tr *traffic) sinceKillLocked(at int64) string {
	for i := len(tr.kills) - 1; i >= 0; i-- {
		if tr.kills[i] <= at {
			return fmt.Sprintf("kill #%d + %v", i+1, time.Duration(at-tr.kills[i]).Round(time.Microsecond))
		}
	}
	return "before the kills"
}

// after counts the c2h packets whose write started after t0 and the h2c
// datagrams sent after t0 that the container read, and says when the
// first of each arrived (0: none yet).
func (tr *traffic) after(t0 int64) (c2h, h2c int, firstC2H, firstH2C int64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for seq, start := range tr.c2hStart {
		if start > t0 {
			c2h++
			if at := tr.c2hAt[seq]; firstC2H == 0 || at < firstC2H {
				firstC2H = at
			}
		}
	}
	for seq, at := range tr.h2cAt {
		if tr.h2cSent[seq] > t0 {
			h2c++
			if firstH2C == 0 || at < firstH2C {
				firstH2C = at
			}
		}
	}
	return
}

// TestRuncKill9: a runc container's shell opens /dev/tundevfs/tun (its
// bind-mounted per-netns directory) on fd 3 and a helper it execs writes
// a packet to it every 10 ms and reads it in a loop. The serving process
// is killed twice (kill -9, a pause between): the container's process
// stays the same with the same open file, packets written and sent after
// each kill go through the fd both ways, nothing says ENOTCONN, EIO or
// the like, and status says the same before and after. When the container
// exits, its jail goes and neither process of the daemon holds its
// namespace. The pauses are logged, not judged.
func TestRuncKill9(t *testing.T) {
	// The crash-proof transport (crashProofTransport), whatever the
	// suite's TUNDEVFS_FUSE_TRANSPORT.
	e := newEnv(t, "--fuse-transport", "dev")
	if st := e.d.Status(t); st.HolderPID == 0 || st.HolderPID == st.PID {
		t.Fatalf("the daemon runs without a holder: %+v", st)
	} else if len(st.Mounts) != 1 || st.Mounts[0].Transport != "dev" {
		t.Fatalf("mounts %+v, want the per-netns mount on /dev/fuse (the flag wins over %s)", st.Mounts, fs.TransportEnv)
	}
	const (
		local, peer                  = "10.79.0.1", "10.79.0.2"
		c2hPort, h2cPort, helperPort = 5000, 6000, 4000
	)
	c := e.startCrasher(t, 1000, peer, local, strconv.Itoa(helperPort), strconv.Itoa(c2hPort), strconv.Itoa(h2cPort))
	if got := c.line(t); got != "fd 3 "+containers.ContainerPath+"/tun0" {
		t.Fatalf("the container's shell opened %q, want fd 3 on %s/tun0; stderr: %s", got, containers.ContainerPath, c.stderr)
	}
	pid := e.pid(t, c.id)
	netns := fmt.Sprintf("/proc/%d/ns/net", pid)
	nsIno := nsInoOf(t, netns)
	for _, args := range [][]string{{"addr", "add", local, "peer", peer, "dev", "tun0"}, {"link", "set", "tun0", "up"}} {
		if out, err := exec.Command("nsenter", append([]string{"--net=" + netns, "ip"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v in %s: %v %s", args, c.id, err, out)
		}
	}
	// Sockets in the container's namespace: rx gets the container's
	// packets, tx sends to its device.
	h, err := jails.OpenNetns(netns)
	if err != nil {
		t.Fatal(err)
	}
	var rx, tx int
	err = h.Do(func() error {
		var err error
		if rx, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if tx, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			unix.Close(rx)
			return err
		}
		return unix.Bind(rx, &unix.SockaddrInet4{Port: c2hPort, Addr: [4]byte{10, 79, 0, 1}})
	})
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	// A short receive timeout, so the receiver sees stop soon.
	unix.SetsockoptTimeval(rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})

	tr := &traffic{c2hStart: map[int]int64{}, c2hAt: map[int]int64{}, h2cSent: map[int]int64{}, h2cAt: map[int]int64{}, checks: make(chan string, 1), bye: make(chan string, 1)}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { // before the sockets close (cleanups run last first)
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
		unix.Close(rx)
		unix.Close(tx)
	})
	wg.Add(2)
	go func() { // the container's packets
		defer wg.Done()
		buf := make([]byte, 256)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, _, err := testenv.Recvfrom(rx, buf)
			if err != nil {
				continue // the timeout, to look at stop
			}
			at := mono()
			var seq int
			var start int64
			if _, err := fmt.Sscanf(string(buf[:n]), "%d %d", &seq, &start); err != nil {
				continue
			}
			tr.mu.Lock()
			if _, dup := tr.c2hAt[seq]; dup {
				tr.c2hDup++
			} else {
				tr.c2hStart[seq], tr.c2hAt[seq] = start, at
			}
			tr.mu.Unlock()
		}
	}()
	go func() { // the datagrams to the container, one every 10 ms
		defer wg.Done()
		sa := &unix.SockaddrInet4{Port: h2cPort, Addr: [4]byte{10, 79, 0, 2}}
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			tr.mu.Lock()
			tr.h2cNext++
			seq := tr.h2cNext
			tr.h2cSent[seq] = mono()
			tr.mu.Unlock()
			for unix.Sendto(tx, []byte(strconv.Itoa(seq)), 0, sa) == unix.EINTR {
			}
		}
	}()
	outDone := make(chan struct{})
	go func() { // the container's output, until it ends
		defer close(outDone)
		for l := range c.lines {
			at := mono()
			switch {
			case strings.HasPrefix(l, "rx "):
				seq, err := strconv.Atoi(strings.TrimPrefix(l, "rx "))
				tr.mu.Lock()
				if err != nil {
					tr.bad = append(tr.bad, l)
				} else if _, dup := tr.h2cAt[seq]; dup {
					tr.h2cDup++
				} else {
					tr.h2cAt[seq] = at
				}
				tr.mu.Unlock()
			case strings.HasPrefix(l, "eintr "):
				tr.mu.Lock()
				tr.eintr = append(tr.eintr, fmt.Sprintf("%s at %s", l, tr.sinceKillLocked(at)))
				tr.mu.Unlock()
			case strings.HasPrefix(l, "check "):
				tr.checks <- l
			case strings.HasPrefix(l, "bye "):
				tr.bye <- l
			default:
				tr.mu.Lock()
				tr.bad = append(tr.bad, l)
				tr.mu.Unlock()
			}
		}
	}()
	check := func() string {
		t.Helper()
		if _, err := c.stdin.Write([]byte("check\n")); err != nil {
			t.Fatal(err)
		}
		select {
		case l := <-tr.checks:
			return l
		case <-time.After(crashHang):
			t.Fatalf("container %s does not answer check; stderr: %s", c.id, c.stderr)
			return ""
		}
	}
	// waitTraffic waits for n packets each way that started after t0.
	waitTraffic := func(what string, t0 int64, n int) {
		t.Helper()
		deadline := time.Now().Add(crashHang)
		for {
			c2h, h2c, _, _ := tr.after(t0)
			if c2h >= n && h2c >= n {
				return
			}
			if time.Now().After(deadline) {
				tr.mu.Lock()
				bad := tr.bad
				tr.mu.Unlock()
				t.Fatalf("%s: after %v, %d packets from the container and %d to it went through its fd, want %d each; helper said %q; stderr: %s", what, crashHang, c2h, h2c, n, bad, c.stderr)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	if _, err := c.stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	waitTraffic("before the kills", 0, 20)

	// The very open file of the container's fd 3: a dup of it here, to
	// compare with kcmp after each kill.
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	dup, err := unix.PidfdGetfd(pidfd, 3, 0)
	if err != nil {
		t.Fatalf("pidfd_getfd fd 3 of %d: %v", pid, err)
	}
	dupOpen := true
	closeDup := func() {
		if dupOpen {
			unix.Close(dup)
			dupOpen = false
		}
	}
	defer closeDup()
	if same, err := sameFile(dup, pid, 3); err != nil {
		t.Logf("kcmp cannot compare open files here (%v): fdinfo and the helper's fstat only", err)
	} else if !same {
		t.Fatal("kcmp: the dup of fd 3 is not fd 3's file")
	}
	idBefore, checkBefore := fdIdentity(t, pid, 3), check()

	var figures []string
	for k := 1; k <= 2; k++ {
		before := crashStateOf(e.d.Status(t))
		if k == 1 {
			t.Logf("status compared across each kill:\n%s", before)
		}
		st := e.d.Status(t)
		t0 := mono()
		tr.mu.Lock()
		tr.kills = append(tr.kills, t0)
		tr.mu.Unlock()
		if err := unix.Kill(st.PID, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// The next server answers status.
		var answered time.Duration
		for {
			var now daemon.Status
			if err := daemon.CallInto(e.d.Socket, daemon.Request{Op: daemon.OpStatus}, &now); err == nil && now.PID != st.PID {
				answered = time.Duration(mono() - t0)
				if now.Restarts != st.Restarts+1 || now.HolderPID != st.HolderPID {
					t.Fatalf("kill %d of server %d: holder %d restarts %d, want holder %d restarts %d", k, st.PID, now.HolderPID, now.Restarts, st.HolderPID, st.Restarts+1)
				}
				break
			}
			if time.Duration(mono()-t0) > crashHang {
				t.Fatalf("kill %d: no new server %v after kill -9 of %d", k, crashHang, st.PID)
			}
			time.Sleep(time.Millisecond)
		}
		waitTraffic(fmt.Sprintf("kill %d", k), t0, 20)
		_, _, firstC2H, firstH2C := tr.after(t0)
		f := fmt.Sprintf("kill -9 #%d of server %d: next status answer %v, first container write served %v, first packet read by the container %v",
			k, st.PID, answered.Round(time.Microsecond), time.Duration(firstC2H-t0).Round(time.Microsecond), time.Duration(firstH2C-t0).Round(time.Microsecond))
		t.Log(f)
		figures = append(figures, f)

		// The same process with the same open file.
		if now := e.pid(t, c.id); now != pid {
			t.Fatalf("kill %d: the container's process is %d, was %d", k, now, pid)
		}
		var rs struct{ Status string }
		if out, err := e.runc("state", c.id).Output(); err != nil || json.Unmarshal(out, &rs) != nil || rs.Status != "running" {
			t.Fatalf("kill %d: runc state %s: %v %s", k, c.id, err, out)
		}
		if id := fdIdentity(t, pid, 3); id != idBefore {
			t.Errorf("kill %d: fd 3 of the container is %q, was %q", k, id, idBefore)
		}
		if same, err := sameFile(dup, pid, 3); err == nil && !same {
			t.Errorf("kill %d: fd 3 of the container is another open file than before", k)
		}
		if got := check(); got != checkBefore {
			t.Errorf("kill %d: the helper's fd 3 is %q, was %q", k, got, checkBefore)
		}
		if after := crashStateOf(e.d.Status(t)); after != before {
			t.Errorf("kill %d: status changed:\nbefore:\n%s\nafter:\n%s", k, before, after)
		}
		if k == 1 {
			time.Sleep(time.Second) // the pause between the kills
		}
	}
	closeDup()

	// The end: stop the traffic, the helper exits on EOF, runc with it.
	close(stop)
	wg.Wait()
	c.stdin.Close()
	var bye string
	select {
	case bye = <-tr.bye:
	case <-time.After(crashHang):
		t.Fatalf("container %s did not say bye; stderr: %s", c.id, c.stderr)
	}
	select {
	case <-outDone:
	case <-time.After(crashHang):
		t.Fatalf("container %s said bye and its output did not end; stderr: %s", c.id, c.stderr)
	}
	select {
	case <-c.done:
	case <-time.After(crashHang):
		t.Fatalf("runc run %s did not end after the container's output did", c.id)
	}
	if !c.cmd.ProcessState.Success() {
		t.Errorf("runc run: %v; stderr: %s", c.cmd.ProcessState, c.stderr)
	}
	tr.mu.Lock()
	bad := slices.Clone(tr.bad)
	var lost []int
	for seq := range tr.h2cSent {
		if _, ok := tr.h2cAt[seq]; !ok && seq < tr.h2cNext-10 { // the last ones may still be on their way
			lost = append(lost, seq)
		}
	}
	sort.Ints(lost)
	c2hMax := 0
	for seq := range tr.c2hAt {
		c2hMax = max(c2hMax, seq)
	}
	c2hLost := c2hMax - len(tr.c2hAt)
	for _, l := range tr.eintr {
		t.Logf("helper: %s", l)
	}
	t.Logf("%s; %d packets from the container (%d missing, %d twice), %d to it (%d lost %v, %d twice)", bye, len(tr.c2hAt), c2hLost, tr.c2hDup, len(tr.h2cAt), len(lost), lost, tr.h2cDup)
	tr.mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("the helper said %q", bad)
	}
	for _, s := range []string{"ENOTCONN", "EIO", "Transport endpoint", "Input/output error"} {
		if strings.Contains(c.stderr.String(), s) || strings.Contains(strings.Join(bad, "\n"), s) {
			t.Errorf("the container's output says %q; stderr: %s", s, c.stderr)
		}
	}
	for _, f := range figures {
		t.Log(f)
	}
	// Its jail goes on the restored watch; neither process of the daemon
	// holds its namespace.
	e.checkGone(t, c.id, nsIno)
	holder := e.d.Status(t).HolderPID
	if !itest.WaitFor(func() bool { return !slices.Contains(heldNetns(t, holder), nsIno) }) {
		t.Errorf("the holder %d still holds the namespace of %s", holder, c.id)
	}
	if devs := e.d.Status(t).Devices; len(devs) != 0 {
		t.Errorf("devices left: %+v", devs)
	}
}
