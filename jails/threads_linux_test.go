package jails

import (
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

func threads(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// Issue 10, defect 14: a burst of namespace switches (100 at once) must
// not leave its threads idling in the runtime for good: the thread count
// returns to its baseline (plus at most one pooled thread per CPU).
func TestDoBurstThreadsExit(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("TUNDEVFS_REQUIRE_PRIVILEGED") == "1" {
			t.Fatal("needs root (setns); TUNDEVFS_REQUIRE_PRIVILEGED=1 forbids skipping")
		}
		t.Skip("needs root (setns)")
	}
	ns, err := NewNetns()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	for i := 0; i < 4; i++ {
		ns.Do(func() error { return nil })
	}
	base := threads(t)
	for i := 0; i < 10; i++ {
		time.Sleep(10 * time.Millisecond)
		base = min(base, threads(t))
	}
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ns.Do(func() error { time.Sleep(20 * time.Millisecond); return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Idle threads the runtime spawned to hand Ps over while locked
	// goroutines slept stay too, more of them on a loaded machine; the
	// defect kept one thread per call (about +95), so a bound of a few per
	// CPU tells the two apart without depending on the scheduler.
	limit := base + 4*runtime.GOMAXPROCS(0) + 4
	deadline := time.Now().Add(10 * time.Second)
	for threads(t) > limit && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := threads(t); n > limit {
		t.Fatalf("threads %d -> %d after 100 parallel Do calls (limit %d)", base, n, limit)
	}
}
