package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// cloneTundevfs times n clones through the mount: open(DIR/tun) until the
// fd is open on a new interface that exists in the namespace (the daemon
// answers the open only after TUNSETIFF). Each device is closed and
// destroyed afterwards, outside the timing.
func cloneTundevfs(dd deviceDir, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		fd, err := unix.Open(filepath.Join(dd.dir, "tun"), unix.O_RDWR|unix.O_CLOEXEC, 0)
		d := time.Since(t0)
		if err != nil {
			return out, fmt.Errorf("clone: open tun: %w", err)
		}
		name, err := fdDevName(fd)
		unix.Close(fd)
		if err == nil {
			err = dd.destroy(name)
		}
		if err != nil {
			return out, fmt.Errorf("clone: %w", err)
		}
		out = append(out, d)
	}
	return out, nil
}

// cloneRaw times n interface creations the way the daemon does one, but
// directly: open(/dev/net/tun) and TUNSETIFF on a thread already in the
// namespace. Closing the fd destroys the interface, outside the timing.
func cloneRaw(ns *Netns, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	err := ns.Do(func() error {
		for i := range n {
			name := fmt.Sprintf("rclone%d", i)
			t0 := time.Now()
			fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
			if err != nil {
				return fmt.Errorf("clone raw: %w", err)
			}
			err = tunSetIff(fd, name, false)
			d := time.Since(t0)
			unix.Close(fd)
			if err != nil {
				return fmt.Errorf("clone raw: %w", err)
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// cloneIP times n `ip tuntap add` runs in the namespace (a process each,
// as a shell script would make them) and deletes the interfaces after.
func cloneIP(ns *Netns, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for i := range n {
		name := fmt.Sprintf("iclone%d", i)
		d, err := ns.TimeCommand("ip", "tuntap", "add", "dev", name, "mode", "tun")
		if err != nil {
			return out, fmt.Errorf("clone ip: %w", err)
		}
		if _, err := ns.Run("ip", "link", "del", name); err != nil {
			return out, fmt.Errorf("clone ip: %w", err)
		}
		out = append(out, d)
	}
	return out, nil
}

// clones measures clone latency: tundevfs against raw TUNSETIFF and
// against `ip tuntap add`, in a namespace and daemon of their own.
func clones(ctx context.Context, cfg Config, t *Table) error {
	ns, err := NewNetns()
	if err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	defer ns.Close()
	d, err := StartDaemon(cfg.Bin, ns)
	if err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	defer d.Stop()
	dd := deviceDir{dir: d.Dir, destroy: d.Destroy}
	// The first clone sets up the jail's driver state: not timed.
	if _, err := cloneTundevfs(dd, 1); err != nil {
		return err
	}
	var tdf, raw, ip, tdf99 []float64
	var errs []error
	for rep := range cfg.Reps {
		if err := ctx.Err(); err != nil {
			return err
		}
		cfg.logf("clone: repetition %d/%d", rep+1, cfg.Reps)
		a, err1 := cloneTundevfs(dd, cfg.Clones)
		b, err2 := cloneRaw(ns, cfg.Clones)
		c, err3 := cloneIP(ns, cfg.IPClones)
		errs = append(errs, err1, err2, err3)
		if len(a) > 0 {
			tdf = append(tdf, micros(Percentile(a, 50)))
			tdf99 = append(tdf99, micros(Percentile(a, 99)))
		}
		if len(b) > 0 {
			raw = append(raw, micros(Percentile(b, 50)))
		}
		if len(c) > 0 {
			ip = append(ip, micros(Percentile(c, 50)))
		}
	}
	note := fmt.Sprintf("%d clones a repetition; tundevfs p99 %s µs", cfg.Clones, fmtNum(Summarize(tdf99).Median))
	t.Add(Row{Section: "cloning: open(DIR/tun) until the fd is open on a new interface",
		Name: "clone p50, ref: raw TUNSETIFF", Unit: "µs", Cells: pair(raw, tdf), Target: atMost(3, true), Note: note})
	t.Add(Row{Name: "clone p50, ref: ip tuntap add", Unit: "µs", Cells: pair(ip, tdf),
		Note: fmt.Sprintf("%d ip runs a repetition", cfg.IPClones)})
	return errors.Join(errs...)
}
