package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/fs"
)

// entryTimeout is how long the kernel caches a device's entry (the fs
// package's default); a stat after it has run out asks the daemon again.
const entryTimeout = time.Second

// createDevices makes n more tun devices with `ifconfig tun create`, a few
// requests at a time. Units are the lowest free ones, so a fresh daemon's
// devices are tun0, tun1, ...
func createDevices(ctx context.Context, d *Daemon, n int) error {
	_, err := createDevicesIn(ctx, d, "", n, "tun")
	return err
}

// createDevicesIn makes n devices in a jail (empty: the host jail) with
// `ifconfig -j JAIL DRIVER create`, a few requests at a time, taking the
// drivers in turn, and returns their names.
func createDevicesIn(ctx context.Context, d *Daemon, jail string, n int, drivers ...string) ([]string, error) {
	var next atomic.Int64
	var mu sync.Mutex
	names := make([]string, 0, n)
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				name, err := d.CreateIn(jail, drivers[i%int64(len(drivers))])
				if err != nil {
					next.Store(int64(n))
					errc <- err
					return
				}
				mu.Lock()
				names = append(names, name)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return names, fmt.Errorf("create %d devices: %w", n, err)
	}
	return names, ctx.Err()
}

// statPass stats DIR/tun0 .. tun(n-1) and returns the mean time per stat.
func statPass(dir string, n int) (time.Duration, error) {
	paths := make([]string, n)
	for i := range paths {
		paths[i] = filepath.Join(dir, "tun"+strconv.Itoa(i))
	}
	var st unix.Stat_t
	t0 := time.Now()
	for _, p := range paths {
		if err := unix.Stat(p, &st); err != nil {
			return 0, fmt.Errorf("stat %s: %w", p, err)
		}
	}
	return time.Since(t0) / time.Duration(n), nil
}

// ifindexPass asks the kernel for the index of tun0 .. tun(n-1)
// (SIOCGIFINDEX, what if_nametoindex does) and returns the mean time per
// name: the direct way to learn that one interface exists.
func ifindexPass(ns *Netns, n int) (time.Duration, error) {
	var per time.Duration
	err := ns.Do(func() error {
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("ifindex: %w", err)
		}
		defer unix.Close(s)
		t0 := time.Now()
		for i := range n {
			ifr, err := unix.NewIfreq("tun" + strconv.Itoa(i))
			if err == nil {
				err = unix.IoctlIfreq(s, unix.SIOCGIFINDEX, ifr)
			}
			if err != nil {
				return fmt.Errorf("ifindex tun%d: %w", i, err)
			}
		}
		per = time.Since(t0) / time.Duration(n)
		return nil
	})
	return per, err
}

// goroutines is the daemon's goroutine count without go-fuse's pool of
// idle request readers, which grows and shrinks with load.
func goroutines(st daemon.Status) float64 { return float64(st.Goroutines - st.FuseReaders) }

// scale measures listing and stat with many devices in one jail, the
// daemon's memory and goroutines per device, and cloning among many
// devices.
func scale(ctx context.Context, cfg Config, t *Table) error {
	ns, err := NewNetns()
	if err != nil {
		return fmt.Errorf("scale: %w", err)
	}
	defer ns.Close()
	maxN := cfg.Scale[len(cfg.Scale)-1]
	d, err := StartDaemon(cfg.Bin, ns, "--device-limit", strconv.Itoa(maxN+cfg.Clones+64))
	if err != nil {
		return fmt.Errorf("scale: %w", err)
	}
	defer d.Stop()
	dd := deviceDir{dir: d.Dir, destroy: d.Destroy}

	type point struct{ n, rss, g float64 }
	measure := func(n int) (point, error) {
		rss, err := d.RSS()
		if err != nil {
			return point{}, err
		}
		st, err := d.Status()
		if err != nil {
			return point{}, err
		}
		return point{float64(n), rss, goroutines(st)}, nil
	}
	idle, err := measure(0)
	if err != nil {
		return fmt.Errorf("scale: %w", err)
	}
	pts := []point{idle}
	var errs []error
	for ci, n := range cfg.Scale {
		cfg.logf("scale: making %d devices", n)
		if err := createDevices(ctx, d, n-int(pts[len(pts)-1].n)); err != nil {
			return fmt.Errorf("scale: %w", err)
		}
		p, err := measure(n)
		if err != nil {
			return fmt.Errorf("scale: %w", err)
		}
		pts = append(pts, p)
		var ls, ip, stat, ifindex []float64
		var lastStat time.Time
		for rep := range cfg.Reps {
			if err := ctx.Err(); err != nil {
				return err
			}
			cfg.logf("scale: %d devices, repetition %d/%d", n, rep+1, cfg.Reps)
			// Cold stats: the kernel's entries from the last pass
			// must have run out.
			if wait := entryTimeout + 100*time.Millisecond - time.Since(lastStat); !lastStat.IsZero() && wait > 0 {
				time.Sleep(wait)
			}
			per, err := statPass(d.Dir, n)
			lastStat = time.Now()
			if err != nil {
				errs = append(errs, err)
			} else {
				stat = append(stat, micros(per))
			}
			if per, err := ifindexPass(ns, n); err != nil {
				errs = append(errs, err)
			} else {
				ifindex = append(ifindex, micros(per))
			}
			if el, err := ns.TimeCommand("ls", d.Dir); err != nil {
				errs = append(errs, err)
			} else {
				ls = append(ls, millis(el))
			}
			if el, err := ns.TimeCommand("ip", "-br", "link"); err != nil {
				errs = append(errs, err)
			} else {
				ip = append(ip, millis(el))
			}
		}
		sec := ""
		if ci == 0 {
			sec = "many devices in one jail (the daemon's host jail in a namespace of the suite's; made with ifconfig create)"
		}
		var target *Target
		if ci == len(cfg.Scale)-1 {
			target = atMost(2, true)
		}
		t.Add(Row{Section: sec, Name: fmt.Sprintf("ls, %d devices, ref: ip -br link", n), Unit: "ms",
			Cells: pair(ip, ls), Target: target, Note: "a process each, forked in the namespace"})
		t.Add(Row{Name: fmt.Sprintf("stat(2) per device, %d devices, ref: SIOCGIFINDEX", n), Unit: "µs",
			Cells: pair(ifindex, stat), Note: "every device once, kernel entry cache expired"})
	}

	// Per idle device: the slope between the first and last counts (from
	// no device when there is only one count).
	a, b := pts[len(pts)-2], pts[len(pts)-1]
	if len(pts) > 2 {
		a = pts[1]
	}
	rssPer := (b.rss - a.rss) / (b.n - a.n)
	gPer := (b.g - a.g) / (b.n - a.n)
	slope := fmt.Sprintf("slope from %.0f to %.0f devices", a.n, b.n)

	// Per open device: open OpenDevs of them (the status call first, so
	// that its garbage is not counted).
	before, err := measure(maxN)
	if err != nil {
		return fmt.Errorf("scale: %w", err)
	}
	rss0, err := d.RSS()
	if err != nil {
		return fmt.Errorf("scale: %w", err)
	}
	fds, err := openDevices(d.Dir, cfg.OpenDevs)
	var rssOpen, gOpen = nan, nan
	if err == nil {
		time.Sleep(100 * time.Millisecond)
		var after point
		if after, err = measure(maxN); err == nil {
			rssOpen = (after.rss - rss0) / float64(cfg.OpenDevs)
			gOpen = (after.g - before.g) / float64(cfg.OpenDevs)
		}
	}
	for _, fd := range fds {
		unix.Close(fd)
	}
	errs = append(errs, err)

	t.Add(Row{Name: "daemon RSS, idle (one mount, no device)", Unit: "KiB", Cells: one(idle.rss)})
	t.Add(Row{Name: "daemon RSS per idle device", Unit: "KiB", Cells: one(rssPer), Target: below(16, false), Note: slope})
	t.Add(Row{Name: "daemon goroutines, idle", Unit: "", Cells: one(idle.g), Note: "without go-fuse's idle readers"})
	t.Add(Row{Name: "goroutines per idle device", Unit: "", Cells: one(gPer), Note: slope,
		Target: &Target{Label: "0", Met: func(v float64) bool { return v < 0.01 }}})
	t.Add(Row{Name: "daemon RSS per open device", Unit: "KiB", Cells: one(rssOpen),
		Note: fmt.Sprintf("%d devices opened among %d", cfg.OpenDevs, maxN)})
	t.Add(Row{Name: "goroutines per open device", Unit: "", Cells: one(gOpen)})

	// Cloning among many devices.
	var tdf, raw []float64
	for range cfg.Reps {
		a, err1 := cloneTundevfs(dd, cfg.Clones)
		b, err2 := cloneRaw(ns, cfg.Clones)
		errs = append(errs, err1, err2)
		if len(a) > 0 {
			tdf = append(tdf, micros(Percentile(a, 50)))
		}
		if len(b) > 0 {
			raw = append(raw, micros(Percentile(b, 50)))
		}
	}
	t.Add(Row{Name: fmt.Sprintf("clone p50 among %d devices, ref: raw TUNSETIFF", maxN), Unit: "µs", Cells: pair(raw, tdf)})
	return errors.Join(errs...)
}

// openDevices opens DIR/tun0 .. tun(n-1).
func openDevices(dir string, n int) ([]int, error) {
	names := make([]string, n)
	for i := range names {
		names[i] = "tun" + strconv.Itoa(i)
	}
	return openNames(dir, names)
}

// openNames opens DIR/NAME for each name.
func openNames(dir string, names []string) ([]int, error) {
	fds := make([]int, 0, len(names))
	for _, name := range names {
		fd, err := unix.Open(filepath.Join(dir, name), unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fds, fmt.Errorf("open %s: %w", name, err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// closeRawParallel is the reference of the removal figures: it opens n
// raw TUN fds in ns (each its own interface) and returns how long closing
// them all in parallel takes, every interface gone.
func closeRawParallel(ns *Netns, n int) (time.Duration, error) {
	fds := make([]int, 0, n)
	for i := range n {
		fd, err := rawTun(ns, "rtun"+strconv.Itoa(i), false, true)
		if err != nil {
			closeAll(fds)
			return 0, err
		}
		fds = append(fds, fd)
	}
	var wg sync.WaitGroup
	t0 := time.Now()
	for _, fd := range fds {
		wg.Add(1)
		go func() { defer wg.Done(); unix.Close(fd) }()
	}
	wg.Wait()
	return time.Since(t0), nil
}

// removal measures jail removal with cfg.Removal devices: daemon shutdown
// by SIGTERM until the process has exited (every device destroyed, the
// mount gone), against closing as many raw TUN fds in parallel.
func removal(ctx context.Context, cfg Config, t *Table) error {
	var raw, tdf []float64
	var errs []error
	for rep := range cfg.Reps {
		if err := ctx.Err(); err != nil {
			return err
		}
		cfg.logf("removal: repetition %d/%d", rep+1, cfg.Reps)
		r, d, err := removalOnce(ctx, cfg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		raw = append(raw, millis(r))
		tdf = append(tdf, millis(d))
	}
	t.Add(Row{Section: "jail removal: daemon shutdown of the host jail (SIGTERM until exit), and jail -r of a VNET jail (request to answer)",
		Name: fmt.Sprintf("jail removal, %d devices, ref: close %d raw fds", cfg.Removal, cfg.Removal), Unit: "ms",
		Cells: pair(raw, tdf), Target: below(1000, false),
		Note: fmt.Sprintf("%d of them open; the reference closes in parallel", cfg.RemovalOpen)})
	return errors.Join(errs...)
}

func removalOnce(ctx context.Context, cfg Config) (raw, tdf time.Duration, err error) {
	ns, err := NewNetns()
	if err != nil {
		return 0, 0, fmt.Errorf("removal: %w", err)
	}
	defer ns.Close()

	raw, err = closeRawParallel(ns, cfg.Removal)
	if err != nil {
		return 0, 0, fmt.Errorf("removal: %w", err)
	}

	d, err := StartDaemon(cfg.Bin, ns, "--device-limit", strconv.Itoa(cfg.Removal))
	if err != nil {
		return 0, 0, fmt.Errorf("removal: %w", err)
	}
	defer d.Stop()
	if err := createDevices(ctx, d, cfg.Removal); err != nil {
		return 0, 0, fmt.Errorf("removal: %w", err)
	}
	open, err := openDevices(d.Dir, cfg.RemovalOpen)
	defer func() { closeAll(open) }()
	if err != nil {
		return 0, 0, fmt.Errorf("removal: %w", err)
	}
	tdf, err = d.Terminate()
	if err != nil {
		return 0, 0, fmt.Errorf("removal: %w", err)
	}
	left, err := ns.Links()
	if err != nil {
		return 0, 0, fmt.Errorf("removal: %w", err)
	}
	if len(left) > 0 {
		return 0, 0, fmt.Errorf("removal: %d interfaces left behind (%v)", len(left), left[0])
	}
	return raw, tdf, nil
}

// jailRemoval measures `jail -r` of a VNET jail with cfg.Removal devices
// (tun and tap in turn, made with ifconfig -j create), cfg.RemovalOpen of
// them open through a mount of the jail: from the request to the daemon's
// answer, which comes once every device is destroyed and the jail's
// namespace released. The reference closes as many raw TUN fds in
// parallel.
func jailRemoval(ctx context.Context, cfg Config, t *Table) error {
	ns, err := NewNetns()
	if err != nil {
		return fmt.Errorf("jail removal: %w", err)
	}
	defer ns.Close()
	d, err := StartDaemon(cfg.Bin, ns)
	if err != nil {
		return fmt.Errorf("jail removal: %w", err)
	}
	defer d.Stop()
	var raw, tdf []float64
	var errs []error
	for rep := range cfg.Reps {
		if err := ctx.Err(); err != nil {
			return err
		}
		cfg.logf("jail removal: repetition %d/%d", rep+1, cfg.Reps)
		r, err := closeRawParallel(ns, cfg.Removal)
		if err != nil {
			errs = append(errs, fmt.Errorf("jail removal: %w", err))
		} else {
			raw = append(raw, millis(r))
		}
		el, err := jailRemovalOnce(ctx, cfg, d, fmt.Sprintf("bench%d", rep))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tdf = append(tdf, millis(el))
	}
	t.Add(Row{Name: fmt.Sprintf("jail -r, VNET jail with %d devices (%d open), ref: close %d raw fds", cfg.Removal, cfg.RemovalOpen, cfg.Removal),
		Unit: "ms", Cells: pair(raw, tdf), Target: below(1000, false),
		Note: "tun and tap, made with ifconfig -j create, opened through a mount of the jail; request to answer"})
	return errors.Join(errs...)
}

func jailRemovalOnce(ctx context.Context, cfg Config, d *Daemon, name string) (time.Duration, error) {
	fail := func(err error) (time.Duration, error) { return 0, fmt.Errorf("jail removal: %w", err) }
	if _, err := d.CreateJail(name, "vnet", "persist", "max_devices="+strconv.Itoa(cfg.Removal)); err != nil {
		return fail(err)
	}
	removed := false
	defer func() {
		if !removed {
			d.RemoveJail(name)
		}
	}()
	names, err := createDevicesIn(ctx, d, name, cfg.Removal, "tun", "tap")
	if err != nil {
		return fail(err)
	}
	dir := filepath.Join(d.work, "jail-"+name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fail(err)
	}
	defer os.Remove(dir)
	if err := d.MountJail(name, dir); err != nil {
		return fail(err)
	}
	defer func() {
		if fs.IsMounted(dir) {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	}()
	// The first RemovalOpen made: tun and tap alike.
	open, err := openNames(dir, names[:cfg.RemovalOpen])
	defer func() { closeAll(open) }()
	if err != nil {
		return fail(err)
	}
	el, err := d.RemoveJail(name)
	removed = err == nil
	if err != nil {
		return fail(err)
	}
	// Nothing of the jail is left: no jail (dying or not), no device.
	js, err := d.Jails()
	if err != nil {
		return fail(err)
	}
	for _, j := range js {
		if j.Name == name {
			return fail(fmt.Errorf("jail %s still listed (%s) after jail -r", name, j.State))
		}
	}
	st, err := d.Status()
	if err != nil {
		return fail(err)
	}
	if len(st.Devices) > 0 {
		return fail(fmt.Errorf("%d devices left after jail -r (%s)", len(st.Devices), st.Devices[0].Name))
	}
	return el, nil
}
