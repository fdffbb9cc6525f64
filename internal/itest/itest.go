// Package itest holds the helpers of the privileged integration tests: a
// network namespace of the test's own, the tundevfs binary, a daemon running
// in that namespace, and its status. Everything a helper creates is removed
// by t.Cleanup, also when the test fails.
package itest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/fs"
	"github.com/tundevfs/tundevfs/internal/testenv"
	"github.com/tundevfs/tundevfs/jails"
)

// RequirePrivileged skips a test that needs root, FUSE, TUN, ip and
// nsenter, or fails it when CI demands privileged tests
// (TUNDEVFS_REQUIRE_PRIVILEGED=1). See testenv.RequirePrivileged.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	testenv.RequirePrivileged(t, "/dev/fuse", "/dev/net/tun", "ip", "nsenter")
}

// Netns is a network namespace made by the test (ip netns add).
type Netns struct {
	Name string
	Path string
}

// NewNetns makes a namespace with lo up, deleted at cleanup.
func NewNetns(t testing.TB) *Netns {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := "tdfs-" + hex.EncodeToString(b)
	Run(t, "ip", "netns", "add", name)
	ns := &Netns{Name: name, Path: "/run/netns/" + name}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns.Run(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Command returns a command that runs inside the namespace (network only;
// the mount namespace stays the test's).
func (ns *Netns) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + ns.Path, name}, args...)...)
}

// Run runs a command inside the namespace and fails the test if it fails.
func (ns *Netns) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := ns.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (netns %s): %v\n%s", name, strings.Join(args, " "), ns.Name, err, out)
	}
	return string(out)
}

// Do runs fn on a thread inside the namespace. Sockets fn creates belong
// to the namespace.
func (ns *Netns) Do(t testing.TB, fn func() error) {
	t.Helper()
	h, err := jails.OpenNetns(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Do(fn); err != nil {
		t.Fatal(err)
	}
}

// Links lists the interface names of the namespace.
func (ns *Netns) Links(t testing.TB) []string {
	t.Helper()
	out := ns.Run(t, "ip", "-o", "link", "show")
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 {
			names = append(names, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	return names
}

// Run runs a command on the host and fails the test if it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds the tundevfs command once per test process, into the
// checkout's git-ignored .build/itest (one file a checkout, not a
// directory per test process left in /tmp): each process builds to a name
// of its own and renames it into place, so test processes running at once
// never see a half-written binary, and one already running keeps its file.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir := filepath.Join(root, ".build", "itest")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tundevfs")
		tmp := fmt.Sprintf("%s.%d", binPath, os.Getpid())
		cmd := exec.Command("go", "build", "-o", tmp, "./cmd/tundevfs")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		if err := os.Rename(tmp, binPath); err != nil {
			os.Remove(tmp)
			buildErr = err
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Daemon is a tundevfs daemon started by a test inside its namespace.
type Daemon struct {
	Socket string
	Bin    string
	Netns  *Netns
	Cmd    *exec.Cmd
	Log    *bytes.Buffer
	// MayFail: the test ends the daemon in a way that is not a clean
	// exit (kill -9 of the holder, the crash-loop guard); Stop accepts
	// any exit status.
	MayFail bool
	exited  chan struct{}
}

// StartDaemon runs `tundevfs daemon [args]` inside ns with a private
// socket. At cleanup it is stopped with SIGTERM and must exit 0.
func StartDaemon(t testing.TB, ns *Netns, args ...string) *Daemon {
	t.Helper()
	bin := Binary(t)
	sockDir, err := os.MkdirTemp("", "tundevfs-sock-")
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{Socket: filepath.Join(sockDir, "t.sock"), Bin: bin, Netns: ns, Log: new(bytes.Buffer), exited: make(chan struct{})}
	d.Cmd = ns.Command(bin, append([]string{"--socket", d.Socket, "daemon"}, args...)...)
	d.Cmd.Stdout, d.Cmd.Stderr = d.Log, d.Log
	if err := d.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.Cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.Stop(t)
		os.RemoveAll(daemon.StateDir(d.Socket)) // what a killed daemon leaves
		os.RemoveAll(sockDir)
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.Log.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := daemon.Call(d.Socket, daemon.Request{Op: "ping"}); err == nil {
			return d
		}
		select {
		case <-d.exited:
			t.Fatalf("daemon exited at start: %s", d.Log.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not answer in 10s: %s", d.Log.String())
		}
	}
}

// Exited is closed when the daemon process has exited.
func (d *Daemon) Exited() <-chan struct{} { return d.exited }

// Stop sends SIGTERM and waits; a daemon that does not exit in 20s is
// killed and the test fails. Mounts it leaves are detached.
func (d *Daemon) Stop(t testing.TB) {
	select {
	case <-d.exited:
	default:
		d.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(20 * time.Second):
			d.Cmd.Process.Kill()
			<-d.exited
			t.Errorf("daemon did not stop on SIGTERM within 20s")
		}
	}
	// nsenter passes the daemon's exit status on.
	if st := d.Cmd.ProcessState; st != nil && !st.Success() && !d.MayFail {
		t.Errorf("daemon exit: %v", st)
	}
}

// Call sends one control request.
func (d *Daemon) Call(t testing.TB, req daemon.Request, out any) {
	t.Helper()
	if err := daemon.CallInto(d.Socket, req, out); err != nil {
		t.Fatalf("%s: %v", req.Op, err)
	}
}

// CLI runs the tundevfs command against this daemon, inside its namespace.
func (d *Daemon) CLI(args ...string) (string, error) {
	out, err := d.Netns.Command(d.Bin, append([]string{"--socket", d.Socket}, args...)...).CombinedOutput()
	return string(out), err
}

// Status returns the daemon's status.
func (d *Daemon) Status(t testing.TB) daemon.Status {
	t.Helper()
	var st daemon.Status
	d.Call(t, daemon.Request{Op: "status"}, &st)
	return st
}

// Mount mounts jail's devices (host if "") at a new temporary directory,
// unmounted at cleanup.
func (d *Daemon) Mount(t testing.TB, jail string) string {
	t.Helper()
	dir := t.TempDir()
	d.Call(t, daemon.Request{Op: "mount", Dir: dir, Jail: jail}, nil)
	t.Cleanup(func() {
		if fs.IsMounted(dir) {
			daemon.Call(d.Socket, daemon.Request{Op: "umount", Dir: dir})
		}
		if fs.IsMounted(dir) {
			unix.Unmount(dir, unix.MNT_DETACH)
			t.Errorf("mount %s was still there at cleanup", dir)
		}
	})
	return dir
}

// IsMounted reports whether dir is a mount point.
func IsMounted(dir string) bool { return fs.IsMounted(dir) }

// WaitFor polls cond for up to 10s and reports whether it held; see
// testenv.WaitFor.
func WaitFor(cond func() bool) bool { return testenv.WaitFor(cond) }
