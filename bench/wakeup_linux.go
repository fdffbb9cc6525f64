package bench

import (
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// wakeupRTT is the median round trip of one byte between two threads over
// pipes: what any request to another process costs at least (a FUSE
// request makes two such wake-ups). With cpus set, the two threads are
// pinned to those CPUs; they exit afterwards, so no pinned thread is
// reused.
func wakeupRTT(n int, cpus []int) (time.Duration, error) {
	var ab, ba [2]int
	if err := unix.Pipe2(ab[:], unix.O_CLOEXEC); err != nil {
		return 0, fmt.Errorf("wakeup: %w", err)
	}
	defer unix.Close(ab[0])
	defer unix.Close(ab[1])
	if err := unix.Pipe2(ba[:], unix.O_CLOEXEC); err != nil {
		return 0, fmt.Errorf("wakeup: %w", err)
	}
	defer unix.Close(ba[0])
	defer unix.Close(ba[1])
	pin := func(i int) error {
		if cpus == nil {
			return nil
		}
		var set unix.CPUSet
		set.Set(cpus[i])
		return unix.SchedSetaffinity(0, &set)
	}
	// The echoing thread; a zero byte ends it.
	ready, done := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits with us
		if err := pin(1); err != nil {
			ready <- err
			return
		}
		ready <- nil
		buf := make([]byte, 1)
		for {
			if _, err := unix.Read(ab[0], buf); err != nil || buf[0] == 0 {
				return
			}
			unix.Write(ba[1], buf)
		}
	}()
	if err := <-ready; err != nil {
		return 0, fmt.Errorf("wakeup: %w", err)
	}
	defer func() {
		unix.Write(ab[1], []byte{0})
		<-done
	}()
	type result struct {
		d   time.Duration
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := pin(0); err != nil {
			res <- result{err: err}
			return
		}
		buf := []byte{1}
		ds := make([]time.Duration, 0, n)
		for range n {
			t0 := time.Now()
			unix.Write(ab[1], buf)
			if _, err := unix.Read(ba[0], buf); err != nil {
				res <- result{err: err}
				return
			}
			ds = append(ds, time.Since(t0))
		}
		res <- result{d: Percentile(ds, 50)}
	}()
	r := <-res
	if r.err != nil {
		return 0, fmt.Errorf("wakeup: %w", r.err)
	}
	return r.d, nil
}

// wakeupLine describes the machine's wake-up cost for the table header.
func wakeupLine(n int) string {
	un, err := wakeupRTT(n, nil)
	if err != nil {
		return err.Error()
	}
	s := fmt.Sprintf("wake-up round trip between two threads (pipe ping-pong, p50): %.1f µs unpinned", micros(un))
	var allowed unix.CPUSet
	if unix.SchedGetaffinity(0, &allowed) == nil {
		var cpus []int
		for c := 0; c < 1024 && len(cpus) < 2; c++ {
			if allowed.IsSet(c) {
				cpus = append(cpus, c)
			}
		}
		if len(cpus) == 2 {
			if x, err := wakeupRTT(n, cpus); err == nil {
				s += fmt.Sprintf(", %.1f µs with the threads on two different CPUs (pinned for this line only)", micros(x))
			}
		}
	}
	return s + "; a FUSE request wakes the daemon, then the caller"
}
