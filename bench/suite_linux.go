package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Run measures everything and returns the table. On error it returns the
// rows measured so far with the error; failed repetitions leave a gap
// (fewer samples, or "-") and are reported in the error.
func Run(ctx context.Context, cfg Config) (*Table, error) {
	t := &Table{
		Title:   "tundevfs benchmark: median [min..max] over repetitions; ratio = tundevfs / reference",
		Machine: Machine(),
	}
	for _, p := range columns() {
		t.Columns = append(t.Columns, p.Name)
	}
	if err := cfg.check(); err != nil {
		return t, err
	}
	raiseNofile()
	t.Machine += "\n" + wakeupLine(cfg.wakeups())
	var errs []error
	for _, part := range parts {
		if ctx.Err() != nil {
			break
		}
		if !cfg.runs(part.name) {
			continue
		}
		if err := part.run(ctx, cfg, t); err != nil && ctx.Err() == nil {
			errs = append(errs, err)
		}
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, fmt.Errorf("bench: stopped: %w", err))
	}
	return t, errors.Join(errs...)
}

// parts are the suite's parts in the order they run, by the names
// Config.Only uses.
var parts = []struct {
	name string
	run  func(context.Context, Config, *Table) error
}{
	{"datapath", dataPath},
	{"clone", clones},
	{"scale", scale},
	{"removal", removal},
	{"jail", jailRemoval},
	{"fastpath", fastPath},
	{"restart", restartPause},
}

// Parts names the parts of the suite, in the order they run.
func Parts() []string {
	var out []string
	for _, p := range parts {
		out = append(out, p.name)
	}
	return out
}

// Machine describes where the suite runs.
func Machine() string {
	var u unix.Utsname
	unix.Uname(&u)
	kernel := unix.ByteSliceToString(u.Release[:])
	cpu, virt := "unknown", "bare metal?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" && cpu == "unknown" {
				cpu = strings.TrimSpace(v)
			}
			if strings.HasPrefix(line, "flags") && strings.Contains(line, " hypervisor") {
				virt = "VM (hypervisor flag)"
			}
		}
	}
	if _, err := os.Stat("/.dockerenv"); err == nil {
		virt += ", in a container"
	}
	return fmt.Sprintf("machine: nproc=%d, kernel %s, %s, %s, GOMAXPROCS=%d, %s; runs unpinned",
		runtime.NumCPU(), kernel, cpu, virt, runtime.GOMAXPROCS(0), runtime.Version())
}

// raiseNofile lifts the soft fd limit to the hard one: the per-open and
// removal figures hold hundreds of device fds.
func raiseNofile() {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &rl)
	}
}

// samples collects one figure per path over repetitions.
type samples [][]float64

func newSamples(paths int) samples { return make(samples, paths) }

func (s samples) add(path int, v float64) { s[path] = append(s[path], v) }

func (s samples) summaries() []Summary {
	out := make([]Summary, len(s))
	for i, vs := range s {
		out[i] = Summarize(vs)
	}
	return out
}

// lossNote describes the loss of each path, if any.
func lossNote(lost, sent []uint64, names []string) string {
	var parts []string
	some := false
	for i := range lost {
		f := 0.0
		if sent[i] > 0 {
			f = float64(lost[i]) / float64(sent[i])
		}
		some = some || lost[i] > 0
		parts = append(parts, fmt.Sprintf("%s %.2f%%", names[i], 100*f))
	}
	if !some {
		return "no loss"
	}
	return "loss " + strings.Join(parts, ", ")
}

// pingPongNote says what the ping-pong is and what it lost.
func pingPongNote(lost []int, names []string) string {
	note := "UDP, application process <-> device <-> reflector"
	var unanswered []string
	for i, n := range lost {
		if n > 0 {
			unanswered = append(unanswered, fmt.Sprintf("%s %d", names[i], n))
		}
	}
	if len(unanswered) > 0 {
		note += "; unanswered: " + strings.Join(unanswered, ", ")
	}
	return note
}

// batchNote describes the loss and order of the batch path's packets.
func batchNote(lost, sent, disorder uint64) string {
	var parts []string
	if lost == 0 {
		parts = append(parts, "no loss")
	} else {
		parts = append(parts, fmt.Sprintf("loss %.2f%%", 100*float64(lost)/float64(max(sent, 1))))
	}
	if disorder == 0 {
		parts = append(parts, "in order, no duplicate")
	} else {
		parts = append(parts, fmt.Sprintf("%d reordered or duplicated", disorder))
	}
	return strings.Join(parts, ", ")
}

var nan = math.NaN()

// dataPath measures inject, extract and ping-pong for tun and tap at each
// size over every path, and the scaling of parallel writers.
func dataPath(ctx context.Context, cfg Config, t *Table) (err error) {
	ns, err := NewNetns()
	if err != nil {
		return fmt.Errorf("data path: %w", err)
	}
	defer ns.Close()
	d, err := StartDaemon(cfg.Bin, ns)
	if err != nil {
		return fmt.Errorf("data path: %w", err)
	}
	defer d.Stop()
	dd := deviceDir{dir: d.Dir, destroy: d.Destroy}

	ps := columns()
	names := t.Columns
	kinds := []bool{false, true} // tun, tap
	eps := make([][2]*Endpoint, len(ps))
	par := make([][]*Endpoint, len(ps))
	idx := 0
	for pi, p := range ps {
		for k, l2 := range kinds {
			idx++
			e, err := p.open(ns, dd, l2, idx)
			if err != nil {
				return fmt.Errorf("data path: %w", err)
			}
			defer e.Close()
			eps[pi][k] = e
		}
		par[pi] = []*Endpoint{eps[pi][0]}
		for len(par[pi]) < cfg.Parallel {
			idx++
			e, err := p.open(ns, dd, false, idx)
			if err != nil {
				return fmt.Errorf("data path: %w", err)
			}
			defer e.Close()
			par[pi] = append(par[pi], e)
		}
	}
	// The batch path: rows of its own, or a note saying why not.
	var batchEps [2]*Endpoint
	batchSkip := ""
	for _, p := range paths() {
		if !p.Batch {
			continue
		}
		for k, l2 := range kinds {
			idx++
			e, err := p.open(ns, dd, l2, idx)
			if errors.Is(err, errNoBatch) {
				batchSkip = errNoBatch.Error()
				break
			}
			if err != nil {
				return fmt.Errorf("data path: %w", err)
			}
			defer e.Close()
			batchEps[k] = e
		}
		break // one batch path
	}

	type cell struct {
		k, size int
	}
	type figures struct {
		inj, ext, p50, p99 samples
		rt50               samples // the device round trip
		apart50            samples // ping-pong with the ends on different CPUs
		ppLost             []int
		injLost, injSent   []uint64
		extLost, extSent   []uint64
		// the batch path: one series each, against inj[0] and ext[0]
		binj, bext         []float64
		bInjLost, bInjSent uint64
		bExtLost, bExtSent uint64
		bInjDis, bExtDis   uint64
	}
	figs := map[cell]*figures{}
	for k := range kinds {
		for _, size := range cfg.Sizes {
			figs[cell{k, size}] = &figures{
				inj: newSamples(len(ps)), ext: newSamples(len(ps)), p50: newSamples(len(ps)), p99: newSamples(len(ps)),
				rt50: newSamples(len(ps)), apart50: newSamples(len(ps)), ppLost: make([]int, len(ps)),
				injLost: make([]uint64, len(ps)), injSent: make([]uint64, len(ps)),
				extLost: make([]uint64, len(ps)), extSent: make([]uint64, len(ps)),
			}
		}
	}
	scaling, one1, agg := newSamples(len(ps)), newSamples(len(ps)), newSamples(len(ps))
	var errs []error
	note := func(err error) float64 {
		errs = append(errs, err)
		return nan
	}
	tm := cfg.timing()
	for rep := range cfg.Reps {
		cfg.logf("data path: repetition %d/%d", rep+1, cfg.Reps)
		for k := range kinds {
			for _, size := range cfg.Sizes {
				f := figs[cell{k, size}]
				for pi := range ps {
					if err := ctx.Err(); err != nil {
						return err
					}
					e := eps[pi][k]
					r, err := inject(e, size, tm)
					v := r.PPS
					if err != nil {
						v = note(err)
					}
					f.inj.add(pi, v)
					f.injLost[pi] += r.Lost
					f.injSent[pi] += r.Sent

					r, err = extract(e, size, tm)
					v = r.PPS
					if err != nil {
						v = note(err)
					}
					f.ext.add(pi, v)
					f.extLost[pi] += r.Lost
					f.extSent[pi] += r.Sent

					l, err := pingPong(e, size, tm, false)
					p50, p99 := micros(l.P50), micros(l.P99)
					if err != nil {
						p50, p99 = note(err), nan
					}
					f.p50.add(pi, p50)
					f.p99.add(pi, p99)
					f.ppLost[pi] += l.Lost

					if runtime.NumCPU() >= 2 {
						l, err = pingPong(e, size, tm, true)
						v := micros(l.P50)
						if err != nil {
							v = note(err)
						}
						f.apart50.add(pi, v)
						f.ppLost[pi] += l.Lost
					}

					l, err = roundTrip(e, size, tm)
					rt := micros(l.P50)
					if err != nil {
						rt = note(err)
					}
					f.rt50.add(pi, rt)
				}
				if e := batchEps[k]; e != nil {
					if err := ctx.Err(); err != nil {
						return err
					}
					r, err := inject(e, size, tm)
					v := r.PPS
					if err != nil {
						v = note(err)
					}
					f.binj = append(f.binj, v)
					f.bInjLost += r.Lost
					f.bInjSent += r.Sent
					f.bInjDis += r.Disorder

					r, err = extract(e, size, tm)
					v = r.PPS
					if err != nil {
						v = note(err)
					}
					f.bext = append(f.bext, v)
					f.bExtLost += r.Lost
					f.bExtSent += r.Sent
					f.bExtDis += r.Disorder
				}
			}
		}
		for pi := range ps {
			if err := ctx.Err(); err != nil {
				return err
			}
			r1, err1 := injectWriters(par[pi][:1], cfg.Sizes[0], tm)
			rn, errn := injectWriters(par[pi], cfg.Sizes[0], tm)
			if err := errors.Join(err1, errn); err != nil || r1 == 0 {
				note(fmt.Errorf("scaling %s: %w", ps[pi].Name, err))
				scaling.add(pi, nan)
				continue
			}
			one1.add(pi, r1)
			agg.add(pi, rn)
			scaling.add(pi, rn/r1)
		}
	}

	eachCell(kinds, cfg.Sizes, func(k, si int, name string) {
		f := figs[cell{k, cfg.Sizes[si]}]
		sec := ""
		if k == 0 && si == 0 {
			sec = "data path: one packet per read/write, the reference is a TUN/TAP fd opened directly in the same namespace"
		}
		t.Add(Row{Section: sec, Name: name + " inject", Unit: "pkt/s", Cells: f.inj.summaries(), Target: atLeast(0.08, true),
			Note: lossNote(f.injLost, f.injSent, names)})
		t.Add(Row{Name: name + " extract", Unit: "pkt/s", Cells: f.ext.summaries(), Target: atLeast(0.08, true),
			Note: lossNote(f.extLost, f.extSent, names)})
		t.Add(Row{Name: name + " ping-pong p50", Unit: "µs", Cells: f.p50.summaries(), Target: atMost(1.6, true),
			Note: pingPongNote(f.ppLost, names)})
		t.Add(Row{Name: name + " ping-pong p99", Unit: "µs", Cells: f.p99.summaries()})
		t.Add(Row{Name: name + " ping-pong p50, ends on 2 CPUs", Unit: "µs", Cells: f.apart50.summaries(),
			Note: "application pinned to CPU 0, reflector to CPU 1; the daemon unpinned"})
		t.Add(Row{Name: name + " device round trip p50", Unit: "µs", Cells: f.rt50.summaries(),
			Note: "ICMP echo written, kernel's reply read: one write and one read, nobody else to wake"})
	})
	eachCell(kinds, cfg.Sizes, func(k, si int, name string) {
		f := figs[cell{k, cfg.Sizes[si]}]
		sec := ""
		if k == 0 && si == 0 {
			sec = fmt.Sprintf("batch mode (TUNSBATCH): up to %d packets per write, 64 KiB reads; the tundevfs column is the batch path, the reference the same direct fd", batchPackets)
		}
		var target *Target
		if si == 0 {
			target = atLeast(0.5, true)
		}
		injNote, extNote := batchSkip, batchSkip
		if batchSkip == "" {
			injNote = batchNote(f.bInjLost, f.bInjSent, f.bInjDis)
			extNote = batchNote(f.bExtLost, f.bExtSent, f.bExtDis)
		}
		t.Add(Row{Section: sec, Name: name + " inject (batch)", Unit: "pkt/s",
			Cells: []Summary{f.inj.summaries()[0], Summarize(f.binj)}, Target: target, Note: injNote})
		t.Add(Row{Name: name + " extract (batch)", Unit: "pkt/s",
			Cells: []Summary{f.ext.summaries()[0], Summarize(f.bext)}, Target: target, Note: extNote})
	})
	aggS, oneS := agg.summaries(), one1.summaries()
	var parts []string
	for pi := range ps {
		parts = append(parts, fmt.Sprintf("%s %s/%s pkt/s", ps[pi].Name, fmtNum(aggS[pi].Median), fmtNum(oneS[pi].Median)))
	}
	t.Add(Row{
		Name:    fmt.Sprintf("tun %d B inject, %d devices / 1 device", cfg.Sizes[0], cfg.Parallel),
		Unit:    "x",
		Cells:   scaling.summaries(),
		Target:  atLeast(1.8, false),
		NoRatio: true,
		Note:    "writers only: " + strings.Join(parts, "; "),
	})
	return errors.Join(errs...)
}

// eachCell calls fn for every driver kind (tun, tap) and packet size, with
// the row name both data-path sections use ("tun   64 B").
func eachCell(kinds []bool, sizes []int, fn func(k, si int, name string)) {
	for k, l2 := range kinds {
		drv := "tun"
		if l2 {
			drv = "tap"
		}
		for si, size := range sizes {
			fn(k, si, fmt.Sprintf("%s %4d B", drv, size))
		}
	}
}
