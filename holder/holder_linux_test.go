package holder_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tundevfs/tundevfs/holder"
	"github.com/tundevfs/tundevfs/internal/testenv"
)

// hang bounds every wait of these tests: a guard against hangs, never a
// timing (the fake servers are this test binary, started anew each time,
// on a loaded machine).
const hang = 60 * time.Second

// harness runs a holder in this process over fake servers.
type harness struct {
	t      *testing.T
	dir    string
	events string
	h      *holder.Holder
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned, with err set
	err    error

	mu     sync.Mutex // guards notes and gaveUp
	notes  []string   // Notify calls
	gaveUp []gaveUp   // GiveUp calls
}

// gaveUp is what one GiveUp call got.
type gaveUp struct {
	state []byte
	vals  map[string]string // key → what the fd's memfd holds
}

// leakProbe samples this process's fds and goroutines.
func leakProbe() (testenv.Sample, error) {
	s, err := testenv.Fds(0)
	if err != nil {
		return nil, err
	}
	s.Add(testenv.Goroutines())
	return s, nil
}

// startHolder takes a leak baseline, then runs a holder of fake servers
// running script; tweak may change the config. The test's cleanup stops
// the holder and checks for leaks.
func startHolder(t *testing.T, script string, tweak func(*holder.Config)) *harness {
	t.Helper()
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r := &harness{t: t, dir: dir, events: filepath.Join(dir, "events"), done: make(chan struct{})}
	cfg := holder.Config{
		Argv:   []string{exe},
		Env:    []string{"HOLDERTEST_ROLE=server", "HOLDERTEST_SCRIPT=" + script, "HOLDERTEST_EVENTS=" + r.events},
		Logger: log.New(testWriter{t}, "", 0),
		Notify: func(s string) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.notes = append(r.notes, s)
		},
		GiveUp: func(state []byte, fds map[string]*os.File) {
			g := gaveUp{state: state, vals: map[string]string{}}
			for k, f := range fds {
				buf := make([]byte, 64)
				n, _ := f.ReadAt(buf, 0)
				g.vals[k] = string(buf[:max(n, 0)])
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			r.gaveUp = append(r.gaveUp, g)
		},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	leaks := testenv.NewBaseline(t, leakProbe)
	r.h = holder.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		r.err = r.h.Run(ctx)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(hang):
			t.Errorf("Run did not return within %v of cancel", hang)
			return
		}
		leaks.Check(t, "after Run returned")
	})
	return r
}

// testWriter sends the holder's log to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// wait waits for Run to return by itself and returns its error.
func (r *harness) wait() error {
	r.t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(hang):
		r.t.Fatalf("Run did not return within %v", hang)
		return nil
	}
}

// stop cancels Run and returns its error.
func (r *harness) stop() error {
	r.t.Helper()
	r.cancel()
	return r.wait()
}

// readEvents parses the events file written so far.
func readEvents(t *testing.T, path string) []event {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var evs []event
	for line := range strings.Lines(string(b)) {
		if !strings.HasSuffix(line, "\n") {
			break // still being written
		}
		var e event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("events: %q: %v", line, err)
		}
		if e.Ev == "fail" {
			t.Fatalf("fake server %d failed: %s", e.PID, e.Err)
		}
		evs = append(evs, e)
	}
	return evs
}

// waitEvent waits for the first event named ev of generation gen (the
// server's Restarts).
func (r *harness) waitEvent(ev string, gen int) event {
	r.t.Helper()
	return waitEventIn(r.t, r.events, r.done, ev, gen)
}

func waitEventIn(t *testing.T, path string, done <-chan struct{}, ev string, gen int) event {
	t.Helper()
	deadline := time.Now().Add(hang)
	for {
		for _, e := range readEvents(t, path) {
			if e.Ev == ev && e.Restarts == gen {
				return e
			}
		}
		select {
		case <-done:
			t.Fatalf("waiting for %s of server %d: Run returned", ev, gen)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event of server %d within %v; events: %+v", ev, gen, hang, readEvents(t, path))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitNotes waits until Notify was called n times and returns the calls.
func (r *harness) waitNotes(n int) []string {
	r.t.Helper()
	var notes []string
	testenv.WaitWithin(hang, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		notes = slices.Clone(r.notes)
		return len(notes) >= n
	})
	return notes
}

func (r *harness) gaveUps() []gaveUp {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.gaveUp)
}

// kill9 kills a fake server of this holder (our child: its pid cannot be
// reused before the holder reaped it).
func kill9(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
}

// TestTakeoverAfterKill: the second server gets the first one's state and
// fds after a kill -9 of the first, and reads through the taken-over pipe
// what the first wrote into it.
func TestTakeoverAfterKill(t *testing.T) {
	r := startHolder(t, "pipe", nil)
	s1 := r.waitEvent("start", 0)
	if s1.HasState || len(s1.Keys) != 0 || s1.HolderPID != os.Getpid() {
		t.Errorf("first server took over %+v, want no state, no fds, holder pid %d", s1, os.Getpid())
	}
	r.waitEvent("ready", 0)
	kill9(t, s1.PID)

	s2 := r.waitEvent("start", 1)
	if !s2.HasState || s2.State != "written" {
		t.Errorf("second server's state: %q (has %v), want %q", s2.State, s2.HasState, "written")
	}
	if want := []string{"pipe-r", "pipe-w"}; !slices.Equal(s2.Keys, want) {
		t.Errorf("second server's fds: %v, want %v", s2.Keys, want)
	}
	if got := s2.Vals["pipe-r"]; got != "hello from server 1" {
		t.Errorf("second server read %q from the pipe, want what the first wrote", got)
	}
	// os.Pipe made both ends non-blocking (the Go netpoller's mode): a
	// PutFD, the holder and the takeover leave the shared open files so.
	for gen := range 2 {
		if f := r.waitEvent("flags", gen); f.Vals["pipe-r"] != "nonblocking" || f.Vals["pipe-w"] != "nonblocking" {
			t.Errorf("server %d: pipe modes %v, want nonblocking", gen, f.Vals)
		}
	}
	r.waitEvent("ready", 1)
	if info := r.h.Info(); info.ServerPID != s2.PID || info.Restarts != 1 || info.HolderPID != os.Getpid() || info.Start.IsZero() {
		t.Errorf("Info() = %+v, want server %d, 1 restart, holder %d", info, s2.PID, os.Getpid())
	}
	if err := r.stop(); err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
	if g := r.gaveUps(); len(g) != 0 {
		t.Errorf("GiveUp called after a clean shutdown: %+v", g)
	}
}

// TestSentBeforeKillSurvives kills the server (kill -9) 50 times while
// four goroutines put memfds and one saves state as fast as they can: what
// a call that returned before the kill sent is what the next server takes
// over (or newer), in the order sent.
func TestSentBeforeKillSurvives(t *testing.T) {
	kills := 50
	if testing.Short() {
		kills = 10
	}
	progress := filepath.Join(t.TempDir(), "progress")
	if err := os.WriteFile(progress, make([]byte, (kills+1)*slotSize), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startHolder(t, "loop", func(c *holder.Config) {
		c.Env = append(c.Env, "HOLDERTEST_PROGRESS="+progress)
		c.CrashLimit = kills + 1
		c.CrashWindow = time.Hour
	})
	slot := func(gen int) []uint64 {
		b, err := os.ReadFile(progress)
		if err != nil {
			t.Fatal(err)
		}
		v := make([]uint64, 1+loopWorkers)
		for i := range v {
			v[i] = binary.LittleEndian.Uint64(b[gen*slotSize+8*i:])
		}
		return v
	}
	for gen := 0; gen < kills; gen++ {
		s := r.waitEvent("start", gen)
		r.waitEvent("ready", gen)
		// Let it put a few (a different number each time), then kill.
		want := uint64(gen*genBase + 1 + rand.IntN(20))
		if !testenv.WaitWithin(hang, func() bool { return slot(gen)[0] >= want }) {
			t.Fatalf("server %d made no progress", gen)
		}
		kill9(t, s.PID)

		next := r.waitEvent("start", gen+1) // gen is dead and reaped now
		done := slot(gen)
		if done[0] == 0 {
			t.Fatalf("server %d: no progress recorded", gen)
		}
		state, err := strconv.ParseUint(next.State, 10, 64)
		if err != nil {
			t.Fatalf("server %d took over state %q", gen+1, next.State)
		}
		if state < done[0] {
			t.Errorf("kill %d: state %d taken over, but SaveState(%d) had returned", gen, state, done[0])
		}
		for w := 0; w < loopWorkers; w++ {
			key := fmt.Sprintf("g%d", w)
			got, ok := next.Vals[key]
			if !ok && done[1+w] == 0 {
				continue // this worker's first PutFD had not returned
			}
			v, err := strconv.ParseUint(got, 10, 64)
			if err != nil {
				t.Fatalf("kill %d: fd %s holds %q (keys %v)", gen, key, next.Vals[key], next.Keys)
			}
			if v < done[1+w] {
				t.Errorf("kill %d: fd %s holds %d, but PutFD of %d had returned", gen, key, v, done[1+w])
			}
			if w == 0 && v < state {
				t.Errorf("kill %d: fd g0 holds %d, older than the state %d saved after it", gen, v, state)
			}
		}
	}
	r.waitEvent("ready", kills)
	if err := r.stop(); err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
	if info := r.h.Info(); info.Restarts != kills {
		t.Errorf("Info().Restarts = %d, want %d", info.Restarts, kills)
	}
}

// TestBigStateTakeover: a state of a few MiB (many chunks) saved by one
// server reaches the next, whole, across a kill -9 and a planned restart.
func TestBigStateTakeover(t *testing.T) {
	r := startHolder(t, "bigstate", nil)
	s := r.waitEvent("ready", 0)
	kill9(t, s.PID)
	r.waitEvent("ready", 1) // the server checks the state itself
	if err := r.h.Restart(); err != nil {
		t.Fatal(err)
	}
	r.waitEvent("ready", 2)
	if err := r.stop(); err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}

// TestPartialStateDropped: a state blob whose chunks did not all arrive
// before the server died is dropped; the next server gets the one before.
func TestPartialStateDropped(t *testing.T) {
	r := startHolder(t, "partial", nil)
	if s := r.waitEvent("start", 1); s.State != "complete" {
		t.Errorf("next server took over state %q, want %q", s.State, "complete")
	}
	r.waitEvent("ready", 1)
	if err := r.stop(); err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}

// TestConcurrentSaveState: SaveState from many goroutines at once never
// mixes the chunks of two blobs (20 kill -9 at random moments).
func TestConcurrentSaveState(t *testing.T) {
	const kills = 20
	r := startHolder(t, "concstate", func(c *holder.Config) { c.CrashLimit = kills + 1 })
	for gen := range kills {
		s := r.waitEvent("ready", gen) // the server checks the state itself
		time.Sleep(time.Duration(rand.IntN(5000)) * time.Microsecond)
		kill9(t, s.PID)
	}
	r.waitEvent("ready", kills)
	if err := r.stop(); err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}

// holderdel counts this process's dups of the delfd script's memfds.
func holderdel(t *testing.T) int {
	t.Helper()
	s, err := testenv.Fds(0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for k, c := range s {
		if strings.HasPrefix(k, "fd /memfd:holderdel") {
			n += c
		}
	}
	return n
}

// TestDelFD: the holder holds one dup per key (a second PutFD of a key
// closes the first dup), and DelFD closes it; the next server takes over
// none of them.
func TestDelFD(t *testing.T) {
	r := startHolder(t, "delfd", nil)
	s := r.waitEvent("start", 0)
	// READY=1 comes after the holder applied every PutFD sent before it.
	if notes := r.waitNotes(1); len(notes) < 1 || notes[0] != "READY=1" {
		t.Fatalf("notes %v, want READY=1", notes)
	}
	if n := holderdel(t); n != 20 {
		t.Errorf("holder holds %d memfds after 21 puts of 20 keys, want 20", n)
	}
	if err := syscall.Kill(s.PID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	// RELOADING=1 comes after every DelFD sent before Exiting(true).
	if notes := r.waitNotes(2); len(notes) < 2 || notes[1] != "RELOADING=1" {
		t.Fatalf("notes %v, want READY=1 RELOADING=1", notes)
	}
	if n := holderdel(t); n != 0 {
		t.Errorf("holder holds %d memfds after deleting every key, want 0", n)
	}
	s2 := r.waitEvent("start", 1)
	if len(s2.Keys) != 0 {
		t.Errorf("next server took over %v, want nothing", s2.Keys)
	}
	if err := r.stop(); err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}

// writeServer writes a copy of this test binary that reports marker, at
// path, the way a package upgrade does (a new file renamed over the old).
func writeServer(t *testing.T, path, marker string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, markerPrefix+marker+"\n"...)
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestPlannedRestartRunsNewBinary: Restart makes the server exit and starts
// the binary now at Argv[0] (replaced between starts); planned restarts
// are no deaths (CrashLimit 1 would trip at the first); Notify sees
// READY=1, RELOADING=1, READY=1, ..., STOPPING=1.
func TestPlannedRestartRunsNewBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "tundevfs")
	writeServer(t, bin, "v1")
	r := startHolder(t, "idle", func(c *holder.Config) {
		c.Argv = []string{bin}
		c.CrashLimit = 1
	})
	if s := r.waitEvent("start", 0); s.Marker != "v1" {
		t.Fatalf("first server is %q, want v1", s.Marker)
	}
	r.waitEvent("ready", 0)
	for gen, m := range []string{"v2", "v3"} {
		writeServer(t, bin, m)
		if err := r.h.Restart(); err != nil {
			t.Fatal(err)
		}
		r.waitEvent("restart-request", gen)
		if s := r.waitEvent("start", gen+1); s.Marker != m {
			t.Errorf("server after restart %d is %q, want %q", gen+1, s.Marker, m)
		}
		r.waitEvent("ready", gen+1)
	}
	want := []string{"READY=1", "RELOADING=1", "READY=1", "RELOADING=1", "READY=1"}
	if notes := r.waitNotes(len(want)); !slices.Equal(notes, want) {
		t.Errorf("notes %v, want %v", notes, want)
	}
	if info := r.h.Info(); info.Restarts != 2 {
		t.Errorf("Info().Restarts = %d, want 2", info.Restarts)
	}
	if err := r.stop(); err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
	if notes := r.waitNotes(len(want) + 1); notes[len(notes)-1] != "STOPPING=1" {
		t.Errorf("notes %v, want STOPPING=1 last", notes)
	}
}

// TestCrashLoopGuard: CrashLimit deaths within CrashWindow end Run with
// ErrCrashLoop saying why, after GiveUp got the last state and the fds;
// every kind of unannounced or failed exit is a death.
func TestCrashLoopGuard(t *testing.T) {
	for _, tc := range []struct{ how, last string }{
		{"exit3", "exit status 3"},
		{"exit0", "exit status 0 without Exiting"},
		{"panic", "exit status 2"},
		{"sigkill", "signal: killed"},
		{"restart-exit1", "exit status 1"},
	} {
		t.Run(tc.how, func(t *testing.T) {
			r := startHolder(t, "crash", func(c *holder.Config) {
				c.Env = append(c.Env, "HOLDERTEST_CRASH="+tc.how)
				c.CrashLimit = 3
				c.CrashWindow = time.Hour
			})
			err := r.wait()
			if !errors.Is(err, holder.ErrCrashLoop) {
				t.Fatalf("Run: %v, want ErrCrashLoop", err)
			}
			if want := "server died 3 times in 1h0m0s; last: " + tc.last; !strings.Contains(err.Error(), want) {
				t.Errorf("Run: %q, want it to say %q", err, want)
			}
			g := r.gaveUps()
			if len(g) != 1 {
				t.Fatalf("GiveUp called %d times, want once", len(g))
			}
			if string(g[0].state) != "gen2" || len(g[0].vals) != 1 || g[0].vals["memfd"] != "gen2" {
				t.Errorf("GiveUp got state %q, fds %v; want the third server's gen2 and its memfd", g[0].state, g[0].vals)
			}
			if info := r.h.Info(); info.Restarts != 2 || info.ServerPID != 0 {
				t.Errorf("Info() = %+v, want 2 restarts, no server", info)
			}
			if notes := r.waitNotes(1); len(notes) == 0 || notes[len(notes)-1] != "STOPPING=1" {
				t.Errorf("notes %v, want STOPPING=1", notes)
			}
		})
	}
}

// TestShutdownFailure: a server that announced a clean shutdown and then
// failed is not restarted; Run says so and GiveUp cleans up.
func TestShutdownFailure(t *testing.T) {
	r := startHolder(t, "crash", func(c *holder.Config) {
		c.Env = append(c.Env, "HOLDERTEST_CRASH=shutdown-exit1")
	})
	err := r.wait()
	if err == nil || errors.Is(err, holder.ErrCrashLoop) || !strings.Contains(err.Error(), "failed while shutting down: exit status 1") {
		t.Errorf("Run: %v, want a failed shutdown", err)
	}
	if g := r.gaveUps(); len(g) != 1 || string(g[0].state) != "gen0" {
		t.Errorf("GiveUp calls %+v, want one with gen0", g)
	}
}

// TestSpreadDeathsDoNotTrip: deaths further apart than CrashWindow never
// trip the guard, however many; the same deaths within the window do.
func TestSpreadDeathsDoNotTrip(t *testing.T) {
	for _, tc := range []struct {
		window time.Duration
		trips  bool
	}{{50 * time.Millisecond, false}, {time.Hour, true}} {
		t.Run(tc.window.String(), func(t *testing.T) {
			r := startHolder(t, "idle", func(c *holder.Config) {
				c.CrashLimit = 2
				c.CrashWindow = tc.window
			})
			const deaths = 4
			for gen := 0; gen < deaths; gen++ {
				s := r.waitEvent("ready", gen)
				// Deaths at least this far apart: the holder saw the last
				// one before it started this server.
				time.Sleep(2 * 50 * time.Millisecond)
				kill9(t, s.PID)
				if tc.trips && gen == 1 {
					err := r.wait()
					if !errors.Is(err, holder.ErrCrashLoop) || !strings.Contains(err.Error(), "server died 2 times in 1h0m0s; last: signal: killed") {
						t.Errorf("Run: %v, want ErrCrashLoop after 2 deaths", err)
					}
					return
				}
			}
			r.waitEvent("ready", deaths)
			if err := r.stop(); err != nil {
				t.Errorf("Run after cancel: %v", err)
			}
		})
	}
}

// TestCleanExit: Exiting(false) and exit status 0 end Run with nil, no
// GiveUp.
func TestCleanExit(t *testing.T) {
	r := startHolder(t, "clean", nil)
	if err := r.wait(); err != nil {
		t.Errorf("Run: %v, want nil", err)
	}
	if g := r.gaveUps(); len(g) != 0 {
		t.Errorf("GiveUp called after a clean exit: %+v", g)
	}
	if notes, want := r.waitNotes(2), []string{"READY=1", "STOPPING=1"}; !slices.Equal(notes, want) {
		t.Errorf("notes %v, want %v", notes, want)
	}
}

// TestCancelStopsServer: ctx ending sends the server SIGTERM; it shuts
// down cleanly and Run returns nil. The server does not see the holder's
// NOTIFY_SOCKET, nor (after FromEnv) its socket's variable.
func TestCancelStopsServer(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "/nonexistent/notify")
	r := startHolder(t, "idle", nil)
	if s := r.waitEvent("start", 0); len(s.Env) != 0 {
		t.Errorf("server environment has %v, want neither NOTIFY_SOCKET (the holder's) nor TUNDEVFS_HOLDER_FD (unset by FromEnv)", s.Env)
	}
	s := r.waitEvent("ready", 0)
	if err := r.stop(); err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
	if e := r.waitEvent("sigterm", 0); e.PID != s.PID {
		t.Errorf("SIGTERM reached %d, want %d", e.PID, s.PID)
	}
	if g := r.gaveUps(); len(g) != 0 {
		t.Errorf("GiveUp called after a clean shutdown: %+v", g)
	}
	if err := r.h.Restart(); !errors.Is(err, holder.ErrNoServer) {
		t.Errorf("Restart after Run: %v, want ErrNoServer", err)
	}
}

// TestHolderKillKillsServer: kill -9 of the holder ends its server too
// (PR_SET_PDEATHSIG), as killing the daemon does without a holder.
func TestHolderKillKillsServer(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	events := filepath.Join(t.TempDir(), "events")
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "HOLDERTEST_ROLE=holder", "HOLDERTEST_EVENTS="+events)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	var server event
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if server.PID != 0 && alive(server) {
			syscall.Kill(server.PID, syscall.SIGKILL)
		}
	})
	server = waitEventIn(t, events, exited, "start", 0)
	waitEventIn(t, events, exited, "ready", 0)
	if server.HolderPID != cmd.Process.Pid {
		t.Fatalf("server reports holder %d, want %d", server.HolderPID, cmd.Process.Pid)
	}
	if !alive(server) {
		t.Fatalf("server %d not running", server.PID)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	if !testenv.WaitWithin(hang, func() bool { return !alive(server) }) {
		t.Errorf("server %d still runs %v after its holder was killed", server.PID, hang)
	}
}

// alive reports whether the process of a start or ready event still runs
// (not a zombie, and not another process with its pid).
func alive(e event) bool {
	start, state, err := procStartTime(e.PID)
	return err == nil && start == e.StartTime && state != 'Z' && state != 'X'
}
