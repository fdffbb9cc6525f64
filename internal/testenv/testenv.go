// Package testenv holds the helpers every package's tests may import: the
// privilege gate of the integration tests, a bounded wait, and a leak
// checker with a stable baseline.
//
// It is a leaf: it imports nothing of this project, so driver's, jails',
// daemon's and fs's tests can all use it (internal/itest, which imports the
// daemon, builds its daemon-level helpers on top of it).
//
// The leak checker works on Samples: multisets of what a process holds at
// one moment ("fd socket" ×3, "fd /dev/net/tun" ×2, "goroutine
// driver.(*Manager).watch" ×1, "thread" ×9, or any named count a test
// adds). A Baseline is taken only once two consecutive samples agree, and a
// Check fails only on growth that stays: it samples again until the growth
// goes away or a bound of a few seconds passes, and then names what was
// added. Nothing here compares a count with == or <= at one instant.
//
// The package has no shared mutable state and no locks.
package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RequirePrivileged skips a test that needs root, or fails it when CI
// demands privileged tests (TUNDEVFS_REQUIRE_PRIVILEGED=1). Each of needs
// is a file that must exist (an absolute path such as /dev/net/tun) or a
// command that must be on PATH (such as ip).
func RequirePrivileged(t testing.TB, needs ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, n := range needs {
		if strings.HasPrefix(n, "/") {
			if _, err := os.Stat(n); err != nil {
				missing = append(missing, n)
			}
			continue
		}
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "privileged test needs " + strings.Join(missing, ", ")
	if os.Getenv("TUNDEVFS_REQUIRE_PRIVILEGED") == "1" {
		t.Fatal(msg + " (TUNDEVFS_REQUIRE_PRIVILEGED=1 forbids skipping)")
	}
	t.Skip(msg)
}

// WaitTimeout is how long WaitFor waits: a guard against hangs, not a
// timing.
const WaitTimeout = 10 * time.Second

// WaitFor polls cond every 10ms for up to WaitTimeout and reports whether
// it held.
func WaitFor(cond func() bool) bool {
	return WaitWithin(WaitTimeout, cond)
}

// WaitWithin polls cond every 10ms for up to d and reports whether it held.
func WaitWithin(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}
