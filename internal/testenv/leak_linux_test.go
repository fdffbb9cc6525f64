package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
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

func (r *recorder) Fatalf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Logf(format string, args ...any) {}

func (r *recorder) Helper() {}

func TestLeakedFdIsCaught(t *testing.T) {
	b := NewBaseline(t, Self(), Within(time.Second))
	f, err := os.Open("/etc/hostname")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &recorder{TB: t}
	b.Check(r, "with a file left open")
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "fd /etc/hostname ×1") {
		t.Fatalf("a leaked fd was not named: %q", r.errors)
	}
}

func TestLeakedSocketAndGoroutineAreCaught(t *testing.T) {
	b := NewBaseline(t, Self(), Within(time.Second))
	r0, w0, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { leakyGoroutine(stop); close(done) }()
	r := &recorder{TB: t}
	b.Check(r, "with a pipe and a goroutine left")
	close(stop)
	<-done
	r0.Close()
	w0.Close()
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "fd pipe ×2") ||
		!strings.Contains(r.errors[0], "goroutine github.com/tundevfs/tundevfs/internal/testenv.TestLeakedSocketAndGoroutineAreCaught.func1 ×1") {
		t.Fatalf("the leak was not named: %q", r.errors)
	}
	// Gone again: the same baseline passes.
	b.Check(t, "after closing them")
}

func leakyGoroutine(stop chan struct{}) { <-stop }

func TestOpenAndCloseIsClean(t *testing.T) {
	b := NewBaseline(t, Self(), Within(time.Second))
	for i := 0; i < 10; i++ {
		f, err := os.Open("/etc/hostname")
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	b.Check(t, "after opening and closing")
}

// TestGrowthThatGoesAwayPasses: a goroutine and an fd that are still
// closing when the check starts are not a leak.
func TestGrowthThatGoesAwayPasses(t *testing.T) {
	b := NewBaseline(t, Self(), Within(5*time.Second))
	f, err := os.Open("/etc/hostname")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		f.Close()
	}()
	r := &recorder{TB: t}
	b.Check(r, "while an fd closes")
	if len(r.errors) != 0 {
		t.Fatalf("transient growth failed the check: %q", r.errors)
	}
}

func TestAllowSlack(t *testing.T) {
	n := 0
	probe := func() (Sample, error) { return Sample{"rss KiB": 1000 + n}, nil }
	b := NewBaseline(t, probe, Allow("rss KiB", 100), Within(200*time.Millisecond))
	n = 100
	b.Check(t, "within the slack")
	n = 101
	r := &recorder{TB: t}
	b.Check(r, "beyond the slack")
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "rss KiB ×101") {
		t.Fatalf("growth beyond the slack: %q", r.errors)
	}
}

// TestBaselineSettles: a count still falling when the baseline is asked
// for is waited out, so the baseline is where it settles.
func TestBaselineSettles(t *testing.T) {
	calls := 0
	probe := func() (Sample, error) {
		calls++
		return Sample{"fd socket": max(10-calls, 5)}, nil
	}
	b := NewBaseline(t, probe)
	if got := b.Base()["fd socket"]; got != 5 {
		t.Fatalf("baseline %d, want the settled 5", got)
	}
}

// TestBaselineNeverSettles: a count that keeps moving gives the larger of
// the last two samples, so that a check cannot fail on a dip.
func TestBaselineNeverSettles(t *testing.T) {
	calls := 0
	probe := func() (Sample, error) {
		calls++
		return Sample{"goroutine x": calls % 2}, nil
	}
	b := NewBaseline(t, probe, Within(200*time.Millisecond))
	if got := b.Base()["goroutine x"]; got != 1 {
		t.Fatalf("baseline %d, want 1", got)
	}
}

func TestProcess(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	s, err := Process(cmd.Process.Pid)()
	if err != nil {
		t.Fatal(err)
	}
	if s["thread"] != 1 || s.Sum("fd ") < 3 {
		t.Fatalf("sleep holds:\n%s", s)
	}
	rss, err := RSS(cmd.Process.Pid)
	if err != nil || rss["rss KiB"] <= 0 {
		t.Fatalf("RSS of sleep: %v %v", rss, err)
	}
}

func TestFdKind(t *testing.T) {
	for in, want := range map[string]string{
		"socket:[12345]":         "socket",
		"pipe:[7]":               "pipe",
		"net:[4026531840]":       "net",
		"anon_inode:[eventpoll]": "anon_inode:[eventpoll]",
		"anon_inode:inotify":     "anon_inode:inotify",
		"/dev/net/tun":           "/dev/net/tun",
		"/tmp/x (deleted)":       "/tmp/x (deleted)",
	} {
		if got := FdKind(in); got != want {
			t.Errorf("FdKind(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseGoroutines(t *testing.T) {
	dump := `goroutine 1 [running]:
main.main()
	/src/main.go:10 +0x1d

goroutine 7 [syscall]:
syscall.Syscall(0x0, 0x7, 0xc000, 0x21000)
	/go/src/syscall/syscall_linux.go:73 +0x25
github.com/hanwen/go-fuse/v2/fuse.(*Server).loop(0xc0001)
	/m/server.go:470 +0x3a
created by github.com/hanwen/go-fuse/v2/fuse.(*fuseFD).readRequest in goroutine 6
	/m/fusefd.go:157 +0x2e5

goroutine 8 [chan receive]:
a.deep(...)
	/a.go:1
...additional frames elided...
created by b.Start in goroutine 1
	/b.go:2 +0x1
`
	got := ParseGoroutines(dump)
	want := Sample{
		"goroutine main.main": 1,
		"goroutine github.com/hanwen/go-fuse/v2/fuse.(*Server).loop": 1,
		"goroutine created by b.Start":                               1,
	}
	if !got.Equal(want) {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
