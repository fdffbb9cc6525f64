package testenv

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// A Sample is a multiset of what a process holds at one moment, keyed by
// what each thing is: "fd socket", "fd /dev/net/tun", "goroutine
// pkg.(*T).loop", "thread", or a count a test names itself ("units in
// use"). A missing key counts 0.
type Sample map[string]int

// Growth returns the keys of s that exceed base, with how much.
func (s Sample) Growth(base Sample) Sample {
	g := Sample{}
	for k, n := range s {
		if d := n - base[k]; d > 0 {
			g[k] = d
		}
	}
	return g
}

// Add adds every count of o to s.
func (s Sample) Add(o Sample) {
	for k, n := range o {
		s[k] += n
	}
}

// Sum adds up the counts of the keys that start with prefix ("fd ",
// "goroutine ").
func (s Sample) Sum(prefix string) int {
	n := 0
	for k, v := range s {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

// String lists the sample sorted by key, one "key ×n" per line.
func (s Sample) String() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(s)) {
		if s[k] != 0 {
			fmt.Fprintf(&b, "  %s ×%d\n", k, s[k])
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Equal reports whether two samples hold the same (a zero count is the same
// as a missing key).
func (s Sample) Equal(o Sample) bool {
	return len(s.Growth(o)) == 0 && len(o.Growth(s)) == 0
}

// max returns the larger count of each key.
func (s Sample) max(o Sample) Sample {
	m := maps.Clone(s)
	for k, n := range o {
		m[k] = max(m[k], n)
	}
	return m
}

// A Probe takes one Sample of a process.
type Probe func() (Sample, error)

// Merge returns a probe that takes each probe's sample in turn and adds
// them up.
func Merge(probes ...Probe) Probe {
	return func() (Sample, error) {
		all := Sample{}
		for _, p := range probes {
			s, err := p()
			if err != nil {
				return nil, err
			}
			all.Add(s)
		}
		return all, nil
	}
}

// Option tunes a Baseline.
type Option func(*config)

type config struct {
	within   time.Duration
	interval time.Duration
	allow    Sample
}

// Within bounds how long a baseline waits to settle and how long a check
// waits for growth to go away (default 5s).
func Within(d time.Duration) Option { return func(c *config) { c.within = d } }

// Allow lets key grow by up to n before a check calls it a leak: the
// documented slack of a count that is not flat by nature (RSS).
func Allow(key string, n int) Option {
	return func(c *config) { c.allow[key] = n }
}

// ThreadSlack is how many threads ("thread") a process may gain over its
// baseline before a check calls it a leak, unless Allow sets another
// slack. The Go runtime keeps every thread it once needed (for a blocking
// system call, or to replace a locked thread that exited after switching
// namespaces) idle for reuse, so the count is a high-water mark of
// concurrency: a burst a little above the baseline's leaves a thread or
// two for good (seen: +1 in a daemon after 200 sequential jails, +2 in the
// jails tests). A thread leaked per device, jail or client grows with the
// number of cycles and still fails.
const ThreadSlack = 2

// A Baseline is a settled Sample of a process, and the probe to compare
// later samples with it.
type Baseline struct {
	probe Probe
	cfg   config
	base  Sample
}

// NewBaseline samples until two consecutive samples agree, for up to the
// Within bound; if they never do, the baseline is the larger count of each
// key over the last two samples (a baseline that is too high can hide a
// leak of the same kind, never invent one), and the test logs it. A probe
// error fails the test.
func NewBaseline(t testing.TB, probe Probe, opts ...Option) *Baseline {
	t.Helper()
	b := &Baseline{probe: probe, cfg: config{within: 5 * time.Second, interval: 50 * time.Millisecond, allow: Sample{"thread": ThreadSlack}}}
	for _, o := range opts {
		o(&b.cfg)
	}
	prev, err := probe()
	if err != nil {
		t.Fatalf("leak baseline: %v", err)
	}
	deadline := time.Now().Add(b.cfg.within)
	for {
		time.Sleep(b.cfg.interval)
		cur, err := probe()
		if err != nil {
			t.Fatalf("leak baseline: %v", err)
		}
		if cur.Equal(prev) {
			b.base = cur
			return b
		}
		if time.Now().After(deadline) {
			b.base = cur.max(prev)
			t.Logf("leak baseline did not settle in %v; using the larger of the last two samples:\n%s\nchanged:\n%s",
				b.cfg.within, b.base, cur.Growth(prev).max(prev.Growth(cur)))
			return b
		}
		prev = cur
	}
}

// Base returns the settled baseline sample.
func (b *Baseline) Base() Sample { return maps.Clone(b.base) }

// growth is what s holds beyond the baseline and its allowed slack.
func (b *Baseline) growth(s Sample) Sample {
	g := s.Growth(b.base)
	for k, n := range b.cfg.allow {
		if g[k] <= n {
			delete(g, k)
		}
	}
	return g
}

// Wait samples until nothing has grown beyond the baseline (and its slack)
// or the Within bound passes. It returns the last sample and what grew in
// it (empty when nothing stayed).
func (b *Baseline) Wait() (last, grown Sample, err error) {
	deadline := time.Now().Add(b.cfg.within)
	for {
		last, err = b.probe()
		if err != nil {
			return nil, nil, err
		}
		grown = b.growth(last)
		if len(grown) == 0 || time.Now().After(deadline) {
			return last, grown, nil
		}
		time.Sleep(b.cfg.interval)
	}
}

// Check fails the test (t.Errorf) when something grew beyond the baseline
// and stayed for the Within bound, naming what was added; what says when
// ("after 200 jails"). It returns the last sample.
func (b *Baseline) Check(t testing.TB, what string) Sample {
	t.Helper()
	last, grown, err := b.Wait()
	if err != nil {
		t.Errorf("leak check %s: %v", what, err)
		return nil
	}
	if len(grown) != 0 {
		t.Errorf("leak %s: added and still there after %v:\n%s", what, b.cfg.within, grown)
	}
	return last
}

// CheckLeaks takes a baseline of probe now and checks it when the test
// ends (t.Cleanup), after the test's later cleanups have run.
func CheckLeaks(t testing.TB, probe Probe, opts ...Option) *Baseline {
	t.Helper()
	b := NewBaseline(t, probe, opts...)
	t.Cleanup(func() { b.Check(t, "at the end of the test") })
	return b
}
