package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
)

// TestScenarios runs each shell scenario of testdata/ in a network
// namespace of its own. A scenario fails by exiting non-zero.
func TestScenarios(t *testing.T) {
	itest.RequirePrivileged(t)
	scripts, err := filepath.Glob("../../testdata/*.sh")
	if err != nil {
		t.Fatal(err)
	}
	bin := itest.Binary(t)
	ran := 0
	for _, script := range scripts {
		if filepath.Base(script) == "lib.sh" {
			continue
		}
		ran++
		script, _ := filepath.Abs(script)
		t.Run(strings.TrimSuffix(filepath.Base(script), ".sh"), func(t *testing.T) {
			ns := itest.NewNetns(t)
			work := t.TempDir()
			t.Cleanup(func() { cleanupWork(t, work) })
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "nsenter", "--net="+ns.Path, "bash", script)
			cmd.Env = append(os.Environ(), "TUNDEVFS="+bin, "WORK="+work)
			// Background processes a failed scenario leaves must not
			// keep the output pipe, and so the test, waiting.
			cmd.WaitDelay = 5 * time.Second
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", filepath.Base(script), err, out)
			}
			if !strings.Contains(string(out), "ok") {
				t.Fatalf("%s did not report ok:\n%s", filepath.Base(script), out)
			}
		})
	}
	if ran == 0 {
		t.Fatal("no scenarios in testdata/")
	}
}

// cleanupWork removes what a failed scenario may have left: daemons whose
// socket lives under work, and mounts under it.
func cleanupWork(t *testing.T, work string) {
	// The state directory of the scenario's socket: the log of a daemon
	// it auto-started.
	defer os.RemoveAll(daemon.StateDir(filepath.Join(work, "tundevfs.sock")))
	if out, err := exec.Command("pkill", "-TERM", "-f", "--socket "+work).CombinedOutput(); err == nil {
		t.Errorf("scenario left a daemon running (%s)", out)
		time.Sleep(time.Second)
		exec.Command("pkill", "-KILL", "-f", "--socket "+work).Run()
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], work) {
			t.Errorf("scenario left a mount at %s", f[4])
			unix.Unmount(f[4], unix.MNT_DETACH)
		}
	}
}
