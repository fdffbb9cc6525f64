package itest

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/testenv"
)

// FuseReaderKey is the key under which testenv files go-fuse's request
// readers in a daemon's goroutine sample.
const FuseReaderKey = "goroutine github.com/hanwen/go-fuse/v2/fuse.(*Server).loop"

// AllowFuseReaders lets the daemon's idle go-fuse readers grow by up to n.
func AllowFuseReaders(n int) testenv.Option { return testenv.Allow(FuseReaderKey, n) }

// FuseReadersPerMount bounds the idle request readers go-fuse keeps per
// mount: a reader that finds more than maxReaders others reading exits, and
// maxReaders is GOMAXPROCS clamped to 2..16 (fuse/server.go). The daemon
// runs on this machine with this process's environment, so it has the same
// GOMAXPROCS.
func FuseReadersPerMount() int { return min(max(runtime.GOMAXPROCS(0), 2), 16) + 1 }

// LeakOptions are the options of a leak check of the daemon: the baseline
// absorbs what warm-up load leaves, but the pool of go-fuse's readers grows
// with the concurrency of the load up to its bound and stays there, so it
// may grow by up to its bound for each of the daemon's mounts now. A
// reader leaked per mount or per request still fails once there are more
// of them; and if go-fuse renames the function, the slack stops applying
// and checks fail loudly, never silently pass.
func (d *Daemon) LeakOptions(t testing.TB) []testenv.Option {
	t.Helper()
	mounts := len(d.Status(t).Mounts)
	return []testenv.Option{AllowFuseReaders(FuseReadersPerMount() * max(mounts, 1))}
}

// Probe samples the daemon for a leak check: its serving process's fds by
// what they point to and its threads (from /proc/PID), its holder's fds
// ("holder fd ..."), its goroutines by the function each
// started in (from its "stacks" answer), and the counts of its status:
// "units in use", "devices", "jails", "jail holds", "mounts".
func (d *Daemon) Probe() testenv.Probe {
	return func() (testenv.Sample, error) {
		if d.Cmd.Process == nil {
			return nil, fmt.Errorf("daemon probe: daemon not started")
		}
		var st daemon.Status
		if err := daemon.CallInto(d.Socket, daemon.Request{Op: "status"}, &st); err != nil {
			return nil, fmt.Errorf("daemon probe: status: %w", err)
		}
		// The serving process (under a holder, not the one the test
		// started: nsenter execs the holder).
		s, err := testenv.Process(st.PID)()
		if err != nil {
			return nil, fmt.Errorf("daemon probe: %w", err)
		}
		if st.HolderPID != 0 {
			// The holder keeps a dup of every fd that holds state: one
			// it does not give back is a leak too.
			hs, err := testenv.Fds(st.HolderPID)
			if err != nil {
				return nil, fmt.Errorf("daemon probe: holder: %w", err)
			}
			for k, v := range hs {
				s["holder "+k] = v
			}
		}
		var stacks string
		if err := daemon.CallInto(d.Socket, daemon.Request{Op: "stacks"}, &stacks); err != nil {
			return nil, fmt.Errorf("daemon probe: stacks: %w", err)
		}
		s.Add(testenv.ParseGoroutines(stacks))
		s.Add(StatusCounts(st))
		return s, nil
	}
}

// StatusCounts turns the numbers of a daemon status that are not already
// read from /proc into sample keys.
func StatusCounts(st daemon.Status) testenv.Sample {
	holds := 0
	for _, j := range st.Jails {
		holds += j.Holds
	}
	return testenv.Sample{
		"units in use": st.UnitsInUse,
		"devices":      len(st.Devices),
		"jails":        len(st.Jails),
		"jail holds":   holds,
		"mounts":       len(st.Mounts),
	}
}

// Baseline takes a settled baseline of the daemon (see testenv.NewBaseline
// and Probe), with LeakOptions before opts.
func (d *Daemon) Baseline(t testing.TB, opts ...testenv.Option) *testenv.Baseline {
	t.Helper()
	return testenv.NewBaseline(t, d.Probe(), append(d.LeakOptions(t), opts...)...)
}

// WarmUp sends the daemon's mount at dir a burst of parallel directory
// reads (OPENDIR, READDIR, RELEASEDIR, which the kernel does not cache), so
// that go-fuse's reader pool has grown to its steady size before a
// baseline is taken.
func WarmUp(t testing.TB, dir string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 25; j++ {
				if _, err := os.ReadDir(dir); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("warm up %s: %v", dir, err)
	}
}
