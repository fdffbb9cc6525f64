package daemon_test

import (
	"errors"
	"io"
	"log"
	"path/filepath"
	"testing"
	"time"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
)

// TestIdleShutdownRacingMount: a mount request that reaches an
// exit-when-idle daemon after its idleness check decided to shut down is
// refused with ErrShuttingDown (the CLI retries with a new daemon); it is
// never made by the daemon that is going away, to be torn down (or left
// dead) a moment later. The hook holds the daemon between the decision
// and the shutdown, the race's window, while the request comes in.
func TestIdleShutdownRacingMount(t *testing.T) {
	itest.RequirePrivileged(t)
	for _, what := range []string{"mount", "jail-create"} {
		t.Run(what, func(t *testing.T) { idleRace(t, what) })
	}
}

// idleRace sends a request of kind what from inside the idle decision.
func idleRace(t *testing.T, what string) {
	ns := itest.NewNetns(t)
	work := t.TempDir()
	sock := filepath.Join(work, "d.sock")
	d, err := daemon.New(daemon.Options{
		Socket:       sock,
		ExitWhenIdle: true,
		IdleGrace:    time.Hour, // the test runs the check itself
		HostNetns:    ns.Path,
		Logger:       log.New(io.Discard, "", 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	go d.Serve()
	dir := t.TempDir()
	t.Cleanup(func() {
		if itest.IsMounted(dir) {
			t.Errorf("%s is still mounted at the end", dir)
			daemon.Call(sock, daemon.Request{Op: "umount", Dir: dir})
		}
	})
	req := daemon.Request{Op: "mount", Dir: dir}
	if what == "jail-create" {
		req = daemon.Request{Op: "jail-create", Args: []string{"name=late", "persist"}}
	}

	var reqErr error
	hooked := false
	daemon.SetIdleHook(func() {
		hooked = true
		_, reqErr = daemon.Call(sock, req)
	})
	t.Cleanup(func() { daemon.SetIdleHook(nil) })
	if !d.CheckIdle() {
		t.Fatal("a daemon with no mount and no jail is not idle")
	}
	daemon.SetIdleHook(nil)
	if !hooked {
		t.Fatal("the idle hook did not run")
	}
	select {
	case <-d.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("the idle daemon did not shut down")
	}
	if reqErr == nil {
		t.Fatalf("%s answered OK by a daemon that had decided to shut down (mounted now: %v)", what, itest.IsMounted(dir))
	}
	if !errors.Is(reqErr, daemon.ErrShuttingDown) {
		t.Errorf("%s racing the idle shutdown: %v, want ErrShuttingDown", what, reqErr)
	}
}
