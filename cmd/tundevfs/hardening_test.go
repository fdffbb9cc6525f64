package main

// Regression tests of issue 10's CLI defects (numbers as in the issue).

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
)

// Defect 14: flags stop at the command (jexec) and at the first positional
// argument (ioctl), as jexec(8) does, so "-br" and "-5" are arguments.
func TestFlagParsingStopsAtArguments(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{
		{"--socket", sock, "jexec", "j1", "ip", "-br", "link"},
		{"--socket", sock, "jexec", "j1", "ls", "-l", "--color=never", "/dev"},
		{"ioctl", "--fd", "99", "TUNSDEBUG", "-5"},
	} {
		err := run(args)
		if err == nil || strings.Contains(err.Error(), "flag") {
			t.Errorf("tundevfs %s: %v, want an error about the daemon or the fd, not about flags", strings.Join(args, " "), err)
		}
	}
}

// stopSpawned stops, at cleanup, a daemon the CLI auto-started on socket
// for this test (a descendant of the test, found by its own socket) if it
// has not exited by itself, and removes its state directory (its log).
func stopSpawned(t *testing.T, socket string) {
	t.Cleanup(func() {
		defer os.RemoveAll(daemon.StateDir(socket))
		if gone(socket) {
			return
		}
		if _, err := daemon.Call(socket, daemon.Request{Op: "shutdown"}); err == nil {
			t.Errorf("an auto-started daemon was still running on %s", socket)
			itest.WaitFor(func() bool {
				_, err := daemon.Call(socket, daemon.Request{Op: "ping"})
				return err != nil
			})
		}
	})
}

// gone reports whether nothing answers on socket any more (waits up to
// 20 s: the idle grace period is 10 s).
func gone(socket string) bool {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := daemon.Call(socket, daemon.Request{Op: "ping"}); err != nil {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// Defect 10: an auto-started --exit-when-idle daemon exits once idle:
// after a failed mount, and after jail -c persist; jail -r.
func TestAutoStartedDaemonExitsWhenIdle(t *testing.T) {
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	bin := itest.Binary(t)
	cli := func(socket string, args ...string) (string, error) {
		out, err := ns.Command(bin, append([]string{"--socket", socket}, args...)...).CombinedOutput()
		return string(out), err
	}
	t.Run("failed mount", func(t *testing.T) {
		socket := filepath.Join(t.TempDir(), "t.sock")
		stopSpawned(t, socket)
		if out, err := cli(socket, "mount", "/nonexistent-tundevfs-test"); err == nil {
			t.Fatalf("mount /nonexistent succeeded: %s", out)
		}
		if !gone(socket) {
			t.Fatal("the auto-started daemon still runs after a failed mount")
		}
	})
	t.Run("jail persist then remove", func(t *testing.T) {
		socket := filepath.Join(t.TempDir(), "t.sock")
		stopSpawned(t, socket)
		if out, err := cli(socket, "jail", "-c", "name=p1", "vnet", "persist"); err != nil {
			t.Fatalf("jail -c: %v %s", err, out)
		}
		if _, err := daemon.Call(socket, daemon.Request{Op: "ping"}); err != nil {
			t.Fatalf("the daemon exited while a persistent jail exists: %v", err)
		}
		if out, err := cli(socket, "jail", "-r", "p1"); err != nil {
			t.Fatalf("jail -r: %v %s", err, out)
		}
		if !gone(socket) {
			t.Fatal("the auto-started daemon still runs after its last jail went")
		}
	})
	t.Run("idle from the start", func(t *testing.T) {
		socket := filepath.Join(t.TempDir(), "t.sock")
		stopSpawned(t, socket)
		cmd := ns.Command(bin, "--socket", socket, "daemon", "--exit-when-idle")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("daemon --exit-when-idle: %v", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Signal(syscall.SIGTERM)
			<-exited
			t.Fatal("daemon --exit-when-idle with nothing to do still ran after 30 s")
		}
	})
}

// Defect 1: --socket never replaces what is at its path unless it is a
// stale socket.
func TestSocketPathNotOverwritten(t *testing.T) {
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	bin := itest.Binary(t)
	dir := t.TempDir()
	precious := filepath.Join(dir, "precious.txt")
	if err := os.WriteFile(precious, []byte("data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	emptyDir := filepath.Join(dir, "empty")
	if err := os.Mkdir(emptyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{precious, emptyDir} {
		cmd := ns.Command(bin, "--socket", path, "daemon")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			if err == nil {
				t.Errorf("daemon --socket %s exited 0", path)
			}
		case <-time.After(5 * time.Second):
			cmd.Process.Signal(syscall.SIGTERM)
			<-exited
			t.Errorf("daemon --socket %s started: %s", path, out.String())
		}
	}
	if b, err := os.ReadFile(precious); err != nil || string(b) != "data\n" {
		t.Errorf("precious.txt after daemon --socket: %q %v", b, err)
	}
	if st, err := os.Lstat(emptyDir); err != nil || !st.IsDir() {
		t.Errorf("empty directory after daemon --socket: %v", err)
	}
	// mount auto-starting a daemon refuses too.
	stopSpawned(t, precious)
	if out, err := ns.Command(bin, "--socket", precious, "mount", dir).CombinedOutput(); err == nil {
		t.Errorf("mount --socket precious.txt succeeded: %s", out)
	}
	if b, err := os.ReadFile(precious); err != nil || string(b) != "data\n" {
		t.Errorf("precious.txt after mount --socket: %q %v", b, err)
	}
}

// Defect 7: the auto-started daemon's log is never opened through a
// symlink planted at the path the CLI used to write it (next to the
// socket).
func TestSpawnLogIgnoresPlantedSymlink(t *testing.T) {
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	bin := itest.Binary(t)
	dir := t.TempDir()
	socket := filepath.Join(dir, "t.sock")
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "t.log")); err != nil {
		t.Fatal(err)
	}
	stopSpawned(t, socket)
	mnt := t.TempDir()
	if out, err := ns.Command(bin, "--socket", socket, "mount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	if out, err := ns.Command(bin, "--socket", socket, "umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v %s", err, out)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "keep\n" {
		t.Errorf("the daemon's log went through a planted symlink: %q %v", b, err)
	}
}

// Defect 14: jexec passes the command's own flags on.
func TestJexecCommandFlags(t *testing.T) {
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	d := itest.StartDaemon(t, ns)
	if out, err := d.CLI("jail", "-c", "name=j1", "vnet", "persist"); err != nil {
		t.Fatalf("jail -c: %v %s", err, out)
	}
	out, err := d.CLI("jexec", "j1", "ip", "-br", "link")
	if err != nil || !strings.Contains(out, "lo") {
		t.Errorf("jexec j1 ip -br link: %v\n%s", err, out)
	}
	if out, err := d.CLI("jail", "-r", "j1"); err != nil {
		t.Fatalf("jail -r: %v %s", err, out)
	}
}
