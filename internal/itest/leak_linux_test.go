package itest

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tundevfs/tundevfs/internal/testenv"
)

// recorder is a testing.TB whose failures are recorded instead of ending
// the test, so that a test can see a check fail.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Helper() {}

// TestDaemonBaselineWhileSettling is the flake of TestJailErrors ("after
// bad input: fds 19 -> 18"): a baseline taken while a control connection
// is still open in the daemon must not fail a check once it has closed;
// and growth that stays (a mount more) is named.
func TestDaemonBaselineWhileSettling(t *testing.T) {
	RequirePrivileged(t)
	d := StartDaemon(t, NewNetns(t))
	conn, err := net.Dial("unix", d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	// The daemon holds the accepted socket (and a goroutine reading it)
	// while the baseline is taken.
	if !WaitFor(func() bool {
		s, err := testenv.Fds(d.Status(t).PID)
		return err == nil && s["fd socket"] >= 2
	}) {
		t.Fatal("the daemon never accepted the connection")
	}
	base := d.Baseline(t, testenv.Within(2*time.Second))
	conn.Close()
	base.Check(t, "after the connection closed")

	// Growth that stays fails the check and is named: a mount the daemon
	// serves until the test unmounts it.
	d.Mount(t, "")
	r := &recorder{TB: t}
	base.Check(r, "with a mount more")
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "fd /dev/fuse ×1") || !strings.Contains(r.errors[0], "mounts ×1") {
		t.Fatalf("a mount more was not named: %q", r.errors)
	}
}
