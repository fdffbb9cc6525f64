package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Config says what the suite measures and for how long.
type Config struct {
	// Bin is the tundevfs binary the daemons run.
	Bin string
	// Reps is how many times each figure is measured.
	Reps int
	// Warm and Duration: each data-path measurement runs Warm, then counts
	// for Duration.
	Warm, Duration time.Duration
	// Sizes are the packet sizes as they cross the device (bytes per read
	// or write: an IP packet for tun, an Ethernet frame for tap).
	Sizes []int
	// Parallel is the number of devices driven at once for the scaling
	// figure (compared with one).
	Parallel int
	// Clones and IPClones are clone samples per repetition: tundevfs and
	// raw TUNSETIFF, and `ip tuntap add` (slower: a process each).
	Clones, IPClones int
	// Scale are the device counts of the listing and stat figures; the
	// last is also where per-device memory is taken.
	Scale []int
	// OpenDevs is how many devices are opened for the per-open cost.
	OpenDevs int
	// Removal is the device count of the jail removal figure, RemovalOpen
	// how many of them are open when the jail goes.
	Removal, RemovalOpen int
	// Only, if not empty, names the parts of the suite to run (Parts);
	// the others are left out of the table.
	Only []string
	// Log gets progress lines; nil is silent.
	Log io.Writer
}

// DefaultConfig is the full suite: a few minutes.
func DefaultConfig(bin string) Config {
	return Config{
		Bin:         bin,
		Reps:        5,
		Warm:        200 * time.Millisecond,
		Duration:    time.Second,
		Sizes:       []int{64, 1400},
		Parallel:    4,
		Clones:      50,
		IPClones:    10,
		Scale:       []int{1000, 5000},
		OpenDevs:    256,
		Removal:     256,
		RemovalOpen: 32,
	}
}

// QuickConfig is a smoke run of every figure in seconds; its numbers only
// show that the suite works.
func QuickConfig(bin string) Config {
	return Config{
		Bin:         bin,
		Reps:        1,
		Warm:        20 * time.Millisecond,
		Duration:    100 * time.Millisecond,
		Sizes:       []int{64, 1400},
		Parallel:    4,
		Clones:      5,
		IPClones:    2,
		Scale:       []int{20, 60},
		OpenDevs:    8,
		Removal:     16,
		RemovalOpen: 4,
	}
}

func (c Config) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, "bench: "+format+"\n", args...)
	}
}

// wakeups is the number of round trips of the wake-up line: as many as
// fit in about a tenth of Duration.
func (c Config) wakeups() int { return max(100, int(c.Duration/time.Microsecond/100)) }

func (c Config) timing() timing { return timing{warm: c.Warm, dur: c.Duration} }

// runs says whether the part named name is to run.
func (c Config) runs(name string) bool {
	return len(c.Only) == 0 || slices.Contains(c.Only, name)
}

// check rejects a config that cannot produce the table.
func (c Config) check() error {
	switch {
	case c.Bin == "":
		return fmt.Errorf("bench: no tundevfs binary")
	case c.Reps < 1, c.Duration <= 0, len(c.Sizes) == 0, len(c.Scale) == 0:
		return fmt.Errorf("bench: config needs reps, a duration, sizes and device counts")
	case c.Parallel < 2, c.Clones < 1, c.IPClones < 1, c.OpenDevs < 1, c.Removal < 1:
		return fmt.Errorf("bench: config needs parallel >= 2 and positive counts")
	case c.RemovalOpen > c.Removal:
		return fmt.Errorf("bench: more open devices than devices for the removal")
	}
	for _, o := range c.Only {
		if !slices.Contains(Parts(), o) {
			return fmt.Errorf("bench: no part %q (parts: %s)", o, strings.Join(Parts(), ", "))
		}
	}
	return nil
}
