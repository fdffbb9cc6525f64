package bench

// The fast path's rows (issue 12): the device's TUN fd, handed over for
// the open device file (package fastpath), against a direct fd.
//
//   - inject and extract through the handed fd of a tun, at each size,
//     interleaved with the same work on a direct fd, as the data path
//     part measures them;
//   - iperf3 TCP through a UDP relay between two namespaces over a veth
//     pair: in each namespace one relay copies packets between a tun and
//     a UDP socket. The same relay code (relay) runs on direct TUN fds and
//     on fast-path fds of devices cloned through tundevfs mounts of jails
//     on those namespaces.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/fastpath"
)

// openFast clones a tun through dd like openTundevfs and trades the open
// device file for the device's TUN fd, which the endpoint then uses (made
// blocking, like the direct fd). The device file stays open until Close.
func openFast(ns *Netns, dd deviceDir, l2 bool, idx int) (*Endpoint, error) {
	e, err := openTundevfs(ns, dd, l2, idx)
	if err != nil {
		return nil, err
	}
	tun, err := fastFD(ns, e.Fd)
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("open fast path %s: %w", e.Name, err)
	}
	if err := unix.SetNonblock(tun, false); err != nil {
		unix.Close(tun)
		e.Close()
		return nil, fmt.Errorf("open fast path %s: %w", e.Name, err)
	}
	closeDev := e.close
	e.Path, e.Fd = "fastpath", tun
	e.close = func() error { return errors.Join(unix.Close(tun), closeDev()) }
	return e, nil
}

// fastFD asks the daemon for the TUN fd of the device file devFD from
// inside ns, where the daemon's socket for the device's jail is.
func fastFD(ns *Netns, devFD int) (int, error) {
	tun := -1
	err := ns.Do(func() error {
		var err error
		tun, _, err = fastpath.FastFDRaw(devFD)
		return err
	})
	return tun, err
}

// fastPath is the suite's part "fastpath".
func fastPath(ctx context.Context, cfg Config, t *Table) error {
	return errors.Join(fastInjectExtract(ctx, cfg, t), fastIperf(ctx, cfg, t))
}

// fastInjectExtract measures inject and extract of a tun through the
// handed fd against a direct fd.
func fastInjectExtract(ctx context.Context, cfg Config, t *Table) error {
	ns, err := NewNetns()
	if err != nil {
		return fmt.Errorf("fast path: %w", err)
	}
	defer ns.Close()
	d, err := StartDaemon(cfg.Bin, ns)
	if err != nil {
		return fmt.Errorf("fast path: %w", err)
	}
	defer d.Stop()
	dd := deviceDir{dir: d.Dir, destroy: d.Destroy}
	direct, err := openDirect(ns, dd, false, 1)
	if err != nil {
		return fmt.Errorf("fast path: %w", err)
	}
	defer direct.Close()
	fast, err := openFast(ns, dd, false, 2)
	if err != nil {
		return fmt.Errorf("fast path: %w", err)
	}
	defer fast.Close()
	eps := []*Endpoint{direct, fast}
	names := []string{"direct", "fastpath"}

	type figs struct {
		inj, ext         samples
		injLost, injSent []uint64
		extLost, extSent []uint64
	}
	bySize := map[int]*figs{}
	for _, size := range cfg.Sizes {
		bySize[size] = &figs{inj: newSamples(2), ext: newSamples(2),
			injLost: make([]uint64, 2), injSent: make([]uint64, 2), extLost: make([]uint64, 2), extSent: make([]uint64, 2)}
	}
	var errs []error
	tm := cfg.timing()
	for rep := range cfg.Reps {
		cfg.logf("fast path: repetition %d/%d", rep+1, cfg.Reps)
		for _, size := range cfg.Sizes {
			f := bySize[size]
			for i, e := range eps {
				if err := ctx.Err(); err != nil {
					return err
				}
				r, err := inject(e, size, tm)
				if err != nil {
					errs = append(errs, err)
				} else {
					f.inj.add(i, r.PPS)
					f.injLost[i] += r.Lost
					f.injSent[i] += r.Sent
				}
				r, err = extract(e, size, tm)
				if err != nil {
					errs = append(errs, err)
				} else {
					f.ext.add(i, r.PPS)
					f.extLost[i] += r.Lost
					f.extSent[i] += r.Sent
				}
			}
		}
	}
	for si, size := range cfg.Sizes {
		f := bySize[size]
		sec := ""
		if si == 0 {
			sec = "fast path: the tundevfs column is the TUN fd handed over for the open device file (Linux framing), the reference a direct fd"
		}
		t.Add(Row{Section: sec, Name: fmt.Sprintf("tun %4d B inject (fast path)", size), Unit: "pkt/s",
			Cells: f.inj.summaries(), Target: atLeast(0.9, true), Note: lossNote(f.injLost, f.injSent, names)})
		t.Add(Row{Name: fmt.Sprintf("tun %4d B extract (fast path)", size), Unit: "pkt/s",
			Cells: f.ext.summaries(), Target: atLeast(0.9, true), Note: lossNote(f.extLost, f.extSent, names)})
	}
	return errors.Join(errs...)
}

// tunnelEnd is one end of a relayed tunnel: a TUN fd, its UDP socket.
type tunnelEnd struct {
	tun, sock int
}

// relay copies packets between a TUN fd (non-blocking) and a connected
// UDP socket until stop is set: one goroutine per direction, each on its
// own thread. The same code runs on direct and fast-path fds.
func relay(end tunnelEnd, stop *atomic.Bool, wg *sync.WaitGroup) {
	wg.Add(2)
	go func() { // tun -> UDP
		defer wg.Done()
		buf := make([]byte, 65536)
		for !stop.Load() {
			n, err := unix.Read(end.tun, buf)
			if errors.Is(err, unix.EAGAIN) {
				pfd := []unix.PollFd{{Fd: int32(end.tun), Events: unix.POLLIN}}
				unix.Poll(pfd, 100)
				continue
			}
			if err != nil {
				if errors.Is(err, unix.EINTR) {
					continue
				}
				return
			}
			unix.Write(end.sock, buf[:n])
		}
	}()
	go func() { // UDP -> tun
		defer wg.Done()
		buf := make([]byte, 65536)
		for !stop.Load() {
			n, err := unix.Read(end.sock, buf)
			if err != nil {
				if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
					continue // SO_RCVTIMEO: look at stop
				}
				return
			}
			unix.Write(end.tun, buf[:n])
		}
	}()
}

// tunnel is one relayed tunnel between namespaces a and b.
type tunnel struct {
	name   string
	ends   [2]tunnelEnd
	inner  [2]netip.Addr // the tun addresses
	port   int           // iperf3's
	closer []func() error
}

func (tn *tunnel) close() error {
	var errs []error
	for i := len(tn.closer) - 1; i >= 0; i-- {
		errs = append(errs, tn.closer[i]())
	}
	return errors.Join(errs...)
}

// fastIperf measures iperf3 TCP through the relay on direct TUN fds and
// on fast-path fds, interleaved.
func fastIperf(ctx context.Context, cfg Config, t *Table) (err error) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		return fmt.Errorf("fast path iperf3: %w (scripts/install-deps.sh installs it)", err)
	}
	var nss [2]*Netns
	for i := range nss {
		if nss[i], err = NewNetns(); err != nil {
			return fmt.Errorf("fast path iperf3: %w", err)
		}
		defer nss[i].Close()
	}
	veth := [2]string{"fpva", "fpvb"}
	if out, err := exec.Command("ip", "link", "add", veth[0], "netns", nss[0].Name, "type", "veth", "peer", "name", veth[1], "netns", nss[1].Name).CombinedOutput(); err != nil {
		return fmt.Errorf("fast path iperf3: veth: %w: %s", err, out)
	}
	under := [2]netip.Addr{netip.MustParseAddr("10.89.0.1"), netip.MustParseAddr("10.89.0.2")}
	for i, ns := range nss {
		if _, err := ns.Run("ip", "addr", "add", under[i].String()+"/24", "dev", veth[i]); err != nil {
			return fmt.Errorf("fast path iperf3: %w", err)
		}
		if _, err := ns.Run("ip", "link", "set", veth[i], "up"); err != nil {
			return fmt.Errorf("fast path iperf3: %w", err)
		}
	}
	// The daemon runs in the first namespace (its host jail); a jail on
	// the second has a mount of its own.
	d, err := StartDaemon(cfg.Bin, nss[0])
	if err != nil {
		return fmt.Errorf("fast path iperf3: %w", err)
	}
	defer d.Stop()
	work, err := os.MkdirTemp("", "tundevfs-bench-fp-")
	if err != nil {
		return fmt.Errorf("fast path iperf3: %w", err)
	}
	defer os.RemoveAll(work)
	dirB := filepath.Join(work, "dev")
	if _, err := d.CreateJail("fpb", "vnet="+nss[1].Path, "persist", "path="+dirB); err != nil {
		return fmt.Errorf("fast path iperf3: jail: %w", err)
	}
	defer d.RemoveJail("fpb")
	dirs := [2]string{d.Dir, dirB}

	var stop atomic.Bool
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop.Store(true)

	mk := func(name string, net byte, open func(i int) (int, string, func() error, error)) (*tunnel, error) {
		tn := &tunnel{name: name, port: 5200 + int(net)}
		for i, ns := range nss {
			fd, ifname, closeFn, err := open(i)
			if err != nil {
				tn.close()
				return nil, err
			}
			tn.closer = append(tn.closer, closeFn)
			tn.inner[i] = netip.AddrFrom4([4]byte{10, 88, net, byte(i + 1)})
			peer := netip.AddrFrom4([4]byte{10, 88, net, byte(2 - i)})
			for _, args := range [][]string{
				{"addr", "add", tn.inner[i].String(), "peer", peer.String(), "dev", ifname},
				{"link", "set", ifname, "mtu", "1400"},
				{"link", "set", ifname, "up"},
			} {
				if _, err := ns.Run("ip", args...); err != nil {
					tn.close()
					return nil, err
				}
			}
			sock, err := ns.udpSocket(netip.AddrPortFrom(under[i], uint16(7000+int(net))), netip.AddrPortFrom(under[1-i], uint16(7000+int(net))), 4<<20, 4<<20, int64(100*time.Millisecond))
			if err != nil {
				tn.close()
				return nil, err
			}
			tn.closer = append(tn.closer, func() error { return unix.Close(sock) })
			tn.ends[i] = tunnelEnd{tun: fd, sock: sock}
		}
		return tn, nil
	}
	direct, err := mk("direct", 1, func(i int) (int, string, func() error, error) {
		name := fmt.Sprintf("rtun%d", i)
		fd, err := rawTun(nss[i], name, false, true)
		return fd, name, func() error { return unix.Close(fd) }, err
	})
	if err != nil {
		return fmt.Errorf("fast path iperf3: %w", err)
	}
	defer direct.close()
	fast, err := mk("fastpath", 2, func(i int) (int, string, func() error, error) {
		dev, err := unix.Open(filepath.Join(dirs[i], "tun"), unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, "", nil, fmt.Errorf("clone tun: %w", err)
		}
		name, err := fdDevName(dev)
		if err == nil {
			var tun int
			tun, err = fastFD(nss[i], dev)
			if err == nil {
				return tun, name, func() error { return errors.Join(unix.Close(tun), unix.Close(dev)) }, nil
			}
		}
		unix.Close(dev)
		return -1, "", nil, err
	})
	if err != nil {
		return fmt.Errorf("fast path iperf3: %w", err)
	}
	defer fast.close()
	tns := []*tunnel{direct, fast}
	for _, tn := range tns {
		for _, end := range tn.ends {
			relay(end, &stop, &wg)
		}
	}

	secs := max(1, int((3*cfg.Duration+time.Second-1)/time.Second))
	s := newSamples(2)
	var errs []error
	for rep := range cfg.Reps {
		cfg.logf("fast path iperf3: repetition %d/%d", rep+1, cfg.Reps)
		for i, tn := range tns {
			if err := ctx.Err(); err != nil {
				return err
			}
			bps, err := iperf(nss, tn, secs)
			if err != nil {
				errs = append(errs, fmt.Errorf("fast path iperf3 %s: %w", tn.name, err))
				continue
			}
			s.add(i, bps/1e6)
		}
	}
	t.Add(Row{Name: "iperf3 TCP through a UDP relay (fast path)", Unit: "Mbit/s", Cells: s.summaries(), Target: atLeast(0.8, true),
		Note: fmt.Sprintf("%d s per run; one relay per namespace between the tun and a UDP socket on a veth pair, the same relay code on direct and fast-path fds; tun MTU 1400", secs)})
	return errors.Join(errs...)
}

// iperf runs one iperf3 client in the first namespace against a one-off
// server in the second, over the tunnel, and returns the received bit rate.
func iperf(nss [2]*Netns, tn *tunnel, secs int) (float64, error) {
	var srv *exec.Cmd
	err := nss[1].Do(func() error {
		srv = exec.Command("iperf3", "-s", "-1", "-B", tn.inner[1].String(), "-p", strconv.Itoa(tn.port))
		return srv.Start()
	})
	if err != nil {
		return 0, fmt.Errorf("server: %w", err)
	}
	defer func() {
		srv.Process.Kill()
		srv.Wait()
	}()
	var out []byte
	for try := 0; try < 20; try++ {
		time.Sleep(50 * time.Millisecond)
		err = nss[0].Do(func() error {
			var err error
			out, err = exec.Command("iperf3", "-c", tn.inner[1].String(), "-p", strconv.Itoa(tn.port), "-t", strconv.Itoa(secs), "-J").Output()
			return err
		})
		if err == nil {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("client: %w: %s", err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, fmt.Errorf("client output: %w", err)
	}
	return res.End.SumReceived.BitsPerSecond, nil
}
