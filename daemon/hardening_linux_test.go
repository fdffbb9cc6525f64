package daemon_test

// Regression tests of issue 10's daemon defects (numbers as in the issue).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
)

// mountsAt lists the mount points of /proc/self/mountinfo at or below dir
// whose type is fstype ("" for any).
func mountsAt(t *testing.T, dir, fstype string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || (f[4] != dir && !strings.HasPrefix(f[4], dir+"/")) {
			continue
		}
		if fstype != "" && !strings.Contains(line, " - "+fstype+" ") {
			continue
		}
		out = append(out, f[4])
	}
	return out
}

// detachUnder detaches, at cleanup, every mount left at or below dir (a
// directory the test made).
func detachUnder(t *testing.T, dir string) {
	t.Cleanup(func() {
		ms := mountsAt(t, dir, "")
		for i := len(ms) - 1; i >= 0; i-- {
			t.Errorf("mount left at %s", ms[i])
			unix.Unmount(ms[i], unix.MNT_DETACH)
		}
	})
}

// Defect 5: a symlinked mount point is resolved once; the mount is known
// by its real path, so umount of the link or of the target works at once,
// and the link and its target cannot stack two mounts.
func TestSymlinkedMountPoint(t *testing.T) {
	_, d := newDaemon(t)
	base := t.TempDir()
	target := filepath.Join(base, "target")
	link := filepath.Join(base, "link")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	detachUnder(t, base)
	if out, err := d.CLI("mount", link); err != nil {
		t.Fatalf("mount %s: %v %s", link, err, out)
	}
	st := d.Status(t)
	if len(st.Mounts) != 1 || st.Mounts[0].Dir != target {
		t.Fatalf("mounts after mount LINK: %+v, want one at %s", st.Mounts, target)
	}
	if out, err := d.CLI("mount", target); err == nil {
		t.Fatalf("mount of the target over the link's mount succeeded: %s", out)
	}
	if n := len(mountsAt(t, target, "fuse.tundevfs")); n != 1 {
		t.Fatalf("%d tundevfs mounts at %s, want 1", n, target)
	}
	if out, err := d.CLI("umount", link); err != nil {
		t.Fatalf("umount %s: %v %s", link, err, out)
	}
	if ms := mountsAt(t, target, ""); len(ms) != 0 {
		t.Fatalf("mounts left after umount LINK: %v", ms)
	}
	if st := d.Status(t); len(st.Mounts) != 0 {
		t.Fatalf("status still lists %+v", st.Mounts)
	}
}

// Defect 7: the daemon's jexec mounts are never made through a symlink a
// user planted where the daemon once put them (next to the socket).
func TestJexecDirIgnoresPlantedSymlink(t *testing.T) {
	_, d := newDaemon(t)
	attacker := t.TempDir()
	detachUnder(t, attacker)
	pid := d.Status(t).PID
	jailsDir := filepath.Join(filepath.Dir(d.Socket), "jails")
	if err := os.MkdirAll(jailsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(attacker, filepath.Join(jailsDir, strconv.Itoa(pid))); err != nil {
		t.Fatal(err)
	}
	d.Call(t, daemon.Request{Op: "jail-create", Args: []string{"name=j7", "vnet", "persist"}}, nil)
	var info daemon.ExecInfo
	daemon.CallInto(d.Socket, daemon.Request{Op: "jail-exec", Jail: "j7"}, &info)
	if ms := mountsAt(t, attacker, ""); len(ms) != 0 {
		t.Fatalf("the daemon mounted under a planted symlink: %v", ms)
	}
	if ents, _ := os.ReadDir(attacker); len(ents) != 0 {
		t.Fatalf("the daemon created %v under a planted symlink", ents)
	}
	d.Call(t, daemon.Request{Op: "jail-remove", Jail: "j7"}, nil)
}

// Defect 8: path= must be an empty directory (a mount hides what is there).
func TestJailPathNonEmpty(t *testing.T) {
	_, d := newDaemon(t)
	dir := t.TempDir()
	detachUnder(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := daemon.Call(d.Socket, daemon.Request{Op: "jail-create", Args: []string{"name=ne", "vnet", "path=" + dir}})
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("jail -c path=<non-empty dir>: %v, want a \"not empty\" error", err)
	}
	if ms := mountsAt(t, dir, ""); len(ms) != 0 {
		t.Errorf("mounted over a non-empty directory: %v", ms)
	}
	if js := jls(t, d); len(js) != 0 {
		t.Errorf("jail left: %+v", js)
	}
}

// Defect 9: a command= jail goes when its command's process goes, even if
// the client that started it was killed with SIGKILL.
func TestCommandJailClientKilled(t *testing.T) {
	ns, d := newDaemon(t)
	cmd := ns.Command(d.Bin, "--socket", d.Socket, "jail", "-c", "name=c7", "vnet", "command=sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	killGroup := func() {
		unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		<-exited
	}
	t.Cleanup(killGroup)
	if !itest.WaitFor(func() bool { return len(d.Status(t).Mounts) == 1 }) {
		t.Fatalf("the jailed command's /dev mount never appeared: %+v", d.Status(t))
	}
	// The client and its command die, as under timeout -s KILL.
	killGroup()
	if !itest.WaitFor(func() bool {
		st := d.Status(t)
		return len(st.Jails) == 1 && len(st.Mounts) == 0
	}) {
		st := d.Status(t)
		t.Fatalf("after SIGKILL of the client: jails %+v mounts %+v", st.Jails, st.Mounts)
	}
}

// rawDaemon is a daemon the test starts and may kill -9.
type rawDaemon struct {
	cmd    *exec.Cmd
	log    *bytes.Buffer
	exited chan struct{}
}

func startRawDaemon(t *testing.T, ns *itest.Netns, socket string) *rawDaemon {
	t.Helper()
	r := &rawDaemon{log: new(bytes.Buffer), exited: make(chan struct{})}
	r.cmd = ns.Command(itest.Binary(t), "--socket", socket, "daemon")
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			r.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-r.exited:
			case <-time.After(20 * time.Second):
				r.cmd.Process.Kill()
				<-r.exited
				t.Errorf("daemon did not stop on SIGTERM")
			}
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", r.log.String())
		}
	})
	if !itest.WaitFor(func() bool {
		_, err := daemon.Call(socket, daemon.Request{Op: "ping"})
		return err == nil
	}) {
		t.Fatalf("daemon did not answer: %s", r.log.String())
	}
	return r
}

func (r *rawDaemon) kill9() {
	r.cmd.Process.Kill()
	<-r.exited
}

// Defect 11: after kill -9, a new daemon on the same socket cleans the
// stale mounts (user mounts and jexec mounts) and directories of its
// predecessor, and mount on a stale mount point just works.
func TestStaleStateAfterKill9(t *testing.T) {
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	base := t.TempDir()
	socket := filepath.Join(base, "t.sock")
	user := filepath.Join(base, "dev")
	if err := os.Mkdir(user, 0o755); err != nil {
		t.Fatal(err)
	}
	r := startRawDaemon(t, ns, socket)
	if err := daemon.CallInto(socket, daemon.Request{Op: "mount", Dir: user}, nil); err != nil {
		t.Fatal(err)
	}
	if err := daemon.CallInto(socket, daemon.Request{Op: "jail-create", Args: []string{"name=s1", "vnet", "persist"}}, nil); err != nil {
		t.Fatal(err)
	}
	var info daemon.ExecInfo
	if err := daemon.CallInto(socket, daemon.Request{Op: "jail-exec", Jail: "s1"}, &info); err != nil {
		t.Fatal(err)
	}
	jexecDir := info.DevDir
	t.Cleanup(func() {
		// Whatever the outcome, nothing of this test stays mounted.
		for _, dir := range []string{jexecDir, user} {
			for len(mountsAt(t, dir, "fuse.tundevfs")) > 0 {
				if unix.Unmount(dir, unix.MNT_DETACH) != nil {
					break
				}
			}
		}
	})
	r.kill9()
	if len(mountsAt(t, user, "fuse.tundevfs")) != 1 || len(mountsAt(t, jexecDir, "fuse.tundevfs")) != 1 {
		t.Fatalf("kill -9 left no stale mounts to clean (user %v, jexec %v)", mountsAt(t, user, ""), mountsAt(t, jexecDir, ""))
	}
	startRawDaemon(t, ns, socket)
	if ms := mountsAt(t, jexecDir, ""); len(ms) != 0 {
		t.Errorf("the new daemon left its predecessor's jexec mount: %v", ms)
	}
	if _, err := os.Lstat(jexecDir); err == nil {
		t.Errorf("the new daemon left its predecessor's jexec directory %s", jexecDir)
	}
	if err := daemon.CallInto(socket, daemon.Request{Op: "mount", Dir: user}, nil); err != nil {
		t.Fatalf("mount on the stale mount point: %v", err)
	}
	if ms := mountsAt(t, user, "fuse.tundevfs"); len(ms) != 1 {
		t.Fatalf("mounts at %s: %v, want exactly one", user, ms)
	}
	if _, err := os.ReadDir(user); err != nil {
		t.Fatalf("readdir of the new mount: %v", err)
	}
	if err := daemon.CallInto(socket, daemon.Request{Op: "umount", Dir: user}, nil); err != nil {
		t.Fatal(err)
	}
}

// Defect 12: a request is capped at 64 KiB; an endless one is answered
// with an error without waiting for a newline.
func TestControlRequestCap(t *testing.T) {
	_, d := newDaemon(t)
	c, err := net.Dial("unix", d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		junk := bytes.Repeat([]byte("a"), 64<<10)
		for i := 0; i < 16; i++ {
			if _, err := c.Write(junk); err != nil {
				return
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		t.Fatalf("no answer to a 1 MiB request without newline: %v", err)
	}
	var resp daemon.Response
	if err := json.Unmarshal(line, &resp); err != nil || resp.OK || !strings.Contains(resp.Error, "64 KiB") {
		t.Fatalf("answer %q (%v), want an error naming the 64 KiB limit", line, err)
	}
}

// Defect 12: idle connections are closed after the read deadline, and
// many of them neither grow goroutines without bound nor lock others out
// for good.
func TestControlIdleConnections(t *testing.T) {
	_, d := newDaemon(t)
	before := d.Status(t)
	const n = 100
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.Dial("unix", d.Socket)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// Every idle connection is closed by the daemon.
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := 0
	for _, c := range conns {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(60 * time.Second))
			b := make([]byte, 1)
			if _, err := c.Read(b); err != nil && !isEOF(err) {
				mu.Lock()
				open++
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	if open > 0 {
		t.Fatalf("%d of %d idle connections still open after 60 s", open, n)
	}
	grow := 0
	if !itest.WaitFor(func() bool {
		st := d.Status(t)
		grow = (st.Goroutines - st.FuseReaders) - (before.Goroutines - before.FuseReaders)
		return grow <= 2
	}) {
		t.Fatalf("goroutines grew by %d after the idle connections went", grow)
	}
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// Defect 14: a jail without vnet shows the host's namespace, not an fd path.
func TestJlsNonVnetNetns(t *testing.T) {
	_, d := newDaemon(t)
	d.Call(t, daemon.Request{Op: "jail-create", Args: []string{"name=nv", "persist"}}, nil)
	js := jls(t, d)
	if len(js) != 1 || js[0].Netns != "host" {
		t.Fatalf("jls of a jail without vnet: %+v, want netns \"host\"", js)
	}
	out, err := d.CLI("jls", "-v")
	if err != nil || strings.Contains(out, "/proc/self/fd") {
		t.Fatalf("jls -v: %v\n%s", err, out)
	}
	d.Call(t, daemon.Request{Op: "jail-remove", Jail: "nv"}, nil)
}

// Defect 14: 100 jails made and removed in parallel leave the daemon's
// thread count where it was (threads that switched namespaces exit).
func TestParallelJailsThreads(t *testing.T) {
	_, d := newDaemon(t)
	cycle := func(name string) error {
		if _, err := daemon.Call(d.Socket, daemon.Request{Op: "jail-create", Args: []string{"name=" + name, "vnet", "persist"}}); err != nil {
			return err
		}
		if _, err := daemon.Call(d.Socket, daemon.Request{Op: "ifconfig", Jail: name, Args: []string{"tun", "create"}}); err != nil {
			return err
		}
		_, err := daemon.Call(d.Socket, daemon.Request{Op: "jail-remove", Jail: name})
		return err
	}
	for i := 0; i < 4; i++ {
		if err := cycle(fmt.Sprintf("w%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	base := d.Status(t).Threads
	for i := 0; i < 10; i++ {
		time.Sleep(20 * time.Millisecond)
		base = min(base, d.Status(t).Threads)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := cycle(fmt.Sprintf("p%d", i)); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// A few threads a CPU more than the baseline are the runtime's own
	// (sysmon, a template thread, idle threads it spawned to hand Ps over,
	// more on a loaded machine); the defect kept one per jail (8 -> 98).
	var th int
	if !itest.WaitFor(func() bool { th = d.Status(t).Threads; return th <= base+4*runtime.GOMAXPROCS(0)+4 }) {
		t.Fatalf("threads %d -> %d after 100 parallel jails", base, th)
	}
}

// Defect 7: nothing in the daemon's state directory is followed through a
// symbolic link: not the directory itself, not its jexec directories, not
// the auto-started daemon's log.
func TestStateDirRefusesSymlinks(t *testing.T) {
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	attacker := t.TempDir()
	detachUnder(t, attacker)
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A planted jails/ and daemon.log in the state directory.
	socket := filepath.Join(t.TempDir(), "t.sock")
	state := daemon.StateDir(socket)
	t.Cleanup(func() { os.RemoveAll(state) })
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(attacker, filepath.Join(state, "jails")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(state, "daemon.log")); err != nil {
		t.Fatal(err)
	}
	if f, _, err := daemon.OpenSpawnLog(socket); err == nil {
		f.Close()
		t.Error("OpenSpawnLog opened a planted symlink")
	}
	startRawDaemon(t, ns, socket)
	if err := daemon.CallInto(socket, daemon.Request{Op: "jail-create", Args: []string{"name=j7", "vnet", "persist"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := daemon.Call(socket, daemon.Request{Op: "jail-exec", Jail: "j7"}); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("jail-exec with a planted jails/ symlink: %v, want a refusal", err)
	}
	if ms := mountsAt(t, attacker, ""); len(ms) != 0 {
		t.Errorf("mounted through a planted symlink: %v", ms)
	}
	if ents, _ := os.ReadDir(attacker); len(ents) != 0 {
		t.Errorf("created %v through a planted symlink", ents)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep\n" {
		t.Errorf("victim written: %q", b)
	}
	daemon.CallInto(socket, daemon.Request{Op: "jail-remove", Jail: "j7"}, nil)

	// A state directory that is a symlink: the daemon does not start.
	socket2 := filepath.Join(t.TempDir(), "t.sock")
	state2 := daemon.StateDir(socket2)
	if err := os.Symlink(attacker, state2); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(state2) })
	cmd := ns.Command(itest.Binary(t), "--socket", socket2, "daemon")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err == nil || !strings.Contains(out.String(), "refused") {
			t.Errorf("daemon with a symlinked state directory: %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		t.Errorf("a daemon started with a symlinked state directory: %s", out.String())
	}
	if ents, _ := os.ReadDir(attacker); len(ents) != 0 {
		t.Errorf("created %v through a planted state directory", ents)
	}
}

// SPEC §9: `mount` (either mode) refuses the root and a directory with
// files in it, and leaves the files alone.
func TestMountRefusesRootAndNonEmpty(t *testing.T) {
	_, d := newDaemon(t)
	dir := t.TempDir()
	detachUnder(t, dir)
	keep := filepath.Join(dir, "keep")
	if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		req  daemon.Request
		want string
	}{
		{daemon.Request{Op: "mount", Dir: "/"}, "refused"},
		{daemon.Request{Op: "mount", Dir: "/", PerNetns: true}, "refused"},
		{daemon.Request{Op: "mount", Dir: dir}, "not empty"},
		{daemon.Request{Op: "mount", Dir: dir, PerNetns: true}, "not empty"},
	} {
		_, err := daemon.Call(d.Socket, tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("mount %s (per-netns %v): %v, want an error saying %q", tc.req.Dir, tc.req.PerNetns, err, tc.want)
		}
	}
	if ms := mountsAt(t, dir, ""); len(ms) != 0 {
		t.Errorf("mounted over a non-empty directory: %v", ms)
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "x" {
		t.Errorf("the user's file: %q, %v", b, err)
	}
	if st := d.Status(t); len(st.Mounts) != 0 {
		t.Errorf("mounts after refusals: %+v", st.Mounts)
	}
}
