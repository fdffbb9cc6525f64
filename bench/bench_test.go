package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
)

// The Go benchmarks run the daemon in the test process, so that -benchmem
// counts its allocations per packet next to the client's (which makes
// none). Compare runs with benchstat:
//
//	go test -run '^$' -bench . -benchmem -count 6 ./bench/ > new.txt
//	benchstat old.txt new.txt

// benchEnv is the namespace, in-process daemon, mount and endpoints the
// benchmarks share. It is made on first use and removed by TestMain.
type benchEnv struct {
	ns   *Netns
	d    *daemon.Daemon
	work string
	dd   deviceDir
	eps  map[string]*Endpoint // by "path/drv"
}

var (
	envOnce sync.Once
	env     *benchEnv
	envErr  error
)

func TestMain(m *testing.M) {
	RunHelper() // the ping-pong's application process
	code := m.Run()
	if env != nil {
		env.close()
	}
	os.Exit(code)
}

func getEnv(b *testing.B) *benchEnv {
	b.Helper()
	itest.RequirePrivileged(b)
	envOnce.Do(func() { env, envErr = newBenchEnv() })
	if envErr != nil {
		b.Fatal(envErr)
	}
	return env
}

func newBenchEnv() (e *benchEnv, err error) {
	e = &benchEnv{eps: map[string]*Endpoint{}}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.ns, err = NewNetns(); err != nil {
		return e, err
	}
	if e.work, err = os.MkdirTemp("", "tundevfs-gobench-"); err != nil {
		return e, err
	}
	dir := filepath.Join(e.work, "dev")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return e, err
	}
	// The daemon's host jail is the suite's namespace, named by path: the
	// daemon's own namespace is the test process's (the root one).
	e.d, err = daemon.New(daemon.Options{
		Socket:      filepath.Join(e.work, "d.sock"),
		Logger:      log.New(io.Discard, "", 0),
		DeviceLimit: 1024,
		HostNetns:   e.ns.Path,
	})
	if err != nil {
		return e, err
	}
	go e.d.Serve()
	if err := e.d.Mount("", dir, daemon.MountOptions{}); err != nil {
		return e, err
	}
	e.dd = deviceDir{dir: dir, destroy: func(name string) error {
		return e.d.Devices().DestroyByName(e.d.Jails().Host(), name)
	}}
	idx := 0
	for _, p := range columns() {
		for _, drv := range []string{"tun", "tap"} {
			idx++
			ep, err := p.open(e.ns, e.dd, drv == "tap", idx)
			if err != nil {
				return e, err
			}
			e.eps[p.Name+"/"+drv] = ep
		}
	}
	return e, nil
}

func (e *benchEnv) close() {
	for _, ep := range e.eps {
		ep.Close()
	}
	if e.d != nil {
		e.d.Close()
	}
	if e.work != "" {
		os.RemoveAll(e.work)
	}
	if e.ns != nil {
		e.ns.Close()
	}
}

// each runs fn for every path, driver and size as sub-benchmarks named
// for benchstat: path=direct/drv=tun/size=64.
func each(b *testing.B, fn func(b *testing.B, ep *Endpoint, size int)) {
	e := getEnv(b)
	for _, p := range columns() {
		for _, drv := range []string{"tun", "tap"} {
			for _, size := range []int{64, 1400} {
				b.Run(fmt.Sprintf("path=%s/drv=%s/size=%d", p.Name, drv, size), func(b *testing.B) {
					fn(b, e.eps[p.Name+"/"+drv], size)
				})
			}
		}
	}
}

// BenchmarkInject is one write(2) of a packet into the device. The packets
// go to a UDP socket that nobody reads, so the kernel drops them there.
func BenchmarkInject(b *testing.B) {
	each(b, func(b *testing.B, ep *Endpoint, size int) {
		sock, err := ep.ns.udpSocket(netip.AddrPortFrom(ep.Local, ep.Port), netip.AddrPort{}, -1, 0, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer unix.Close(sock)
		pkts := [][]byte{ep.udpIn(size)}
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ep.write(pkts); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkExtract is one read(2) of a packet from the device. Packets are
// queued by a UDP sender in batches, outside the timing.
func BenchmarkExtract(b *testing.B) {
	each(b, func(b *testing.B, ep *Endpoint, size int) {
		sock, err := ep.ns.udpSocket(netip.AddrPort{}, netip.AddrPortFrom(ep.Remote, ep.Port), 0, 4<<20, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer unix.Close(sock)
		payload := make([]byte, ep.payloadLen(size))
		bufs, sizes := [][]byte{make([]byte, 65536)}, []int{0}
		const chunk = 128 // below the tun queue (500)
		b.SetBytes(int64(size))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i += chunk {
			n := min(chunk, b.N-i)
			b.StopTimer()
			for range n {
				if _, err := unix.Write(sock, payload); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			for got := 0; got < n; {
				k, err := ep.read(bufs, sizes)
				if err != nil {
					b.Fatal(err)
				}
				if k > 0 && ep.udpOutPayload(bufs[0][:sizes[0]]) != nil {
					got++
				}
			}
		}
	})
}

// BenchmarkRoundTrip is an ICMP echo request written into the device and
// the kernel's reply read back from it.
func BenchmarkRoundTrip(b *testing.B) {
	each(b, func(b *testing.B, ep *Endpoint, size int) {
		const nreq = 64
		reqs := make([][]byte, nreq)
		for i := range reqs {
			reqs[i] = ep.echo(size, uint16(i))
		}
		bufs, sizes := [][]byte{make([]byte, 65536)}, []int{0}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			seq := i % nreq
			i++
			if _, err := ep.write(reqs[seq : seq+1]); err != nil {
				b.Fatal(err)
			}
			for {
				n, err := ep.read(bufs, sizes)
				if err != nil {
					b.Fatal(err)
				}
				if n > 0 && ep.isEchoReply(bufs[0][:sizes[0]], uint16(seq)) {
					break
				}
			}
		}
	})
}

// BenchmarkInjectParallel writes 64-byte packets into one tun device from
// several goroutines at once (4 per CPU): writes to one device file run in
// parallel only with FOPEN_PARALLEL_DIRECT_WRITES.
func BenchmarkInjectParallel(b *testing.B) {
	e := getEnv(b)
	for _, p := range columns() {
		b.Run("path="+p.Name, func(b *testing.B) {
			ep := e.eps[p.Name+"/tun"]
			sock, err := ep.ns.udpSocket(netip.AddrPortFrom(ep.Local, ep.Port), netip.AddrPort{}, -1, 0, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer unix.Close(sock)
			pkt := ep.udpIn(64)
			b.SetParallelism(4)
			b.SetBytes(64)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := unix.Write(ep.Fd, pkt); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkClone makes one interface: open(DIR/tun) through tundevfs, or
// open(/dev/net/tun) and TUNSETIFF directly on a thread in the namespace.
// The devices are destroyed in batches outside the timing.
func BenchmarkClone(b *testing.B) {
	e := getEnv(b)
	const batch = 64
	b.Run("path=direct", func(b *testing.B) {
		b.ReportAllocs()
		// The loop runs on a thread inside the namespace.
		err := e.ns.Do(func() error {
			fds := make([]int, 0, batch)
			flush := func() {
				b.StopTimer()
				for _, fd := range fds {
					unix.Close(fd)
				}
				fds = fds[:0]
				b.StartTimer()
			}
			defer flush()
			b.ResetTimer()
			for i := range b.N {
				fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
				if err != nil {
					return err
				}
				fds = append(fds, fd)
				if err := tunSetIff(fd, fmt.Sprintf("gclone%d", i%batch), false); err != nil {
					return err
				}
				if len(fds) == batch {
					flush()
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	})
	b.Run("path=tundevfs", func(b *testing.B) {
		b.ReportAllocs()
		fds := make([]int, 0, batch)
		flush := func() {
			b.StopTimer()
			for _, fd := range fds {
				name, err := fdDevName(fd)
				unix.Close(fd)
				if err == nil {
					err = e.dd.destroy(name)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			fds = fds[:0]
			b.StartTimer()
		}
		defer flush()
		tun := filepath.Join(e.dd.dir, "tun")
		for b.Loop() {
			fd, err := unix.Open(tun, unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			fds = append(fds, fd)
			if len(fds) == batch {
				flush()
			}
		}
	})
}

// TestSmoke runs the quick suite and checks that it produces the whole
// table with sane numbers. It never judges speed.
func TestSmoke(t *testing.T) {
	itest.RequirePrivileged(t)
	cfg := QuickConfig(itest.Binary(t))
	tbl, err := Run(context.Background(), cfg)
	var out bytes.Buffer
	tbl.Write(&out)
	t.Logf("\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"tun   64 B inject", "tun   64 B extract", "tun   64 B ping-pong p50", "tun 1400 B ping-pong p99", "tap   64 B device round trip p50",
		"tap   64 B inject", "tap 1400 B extract", "devices / 1 device",
		"tun   64 B inject (batch)", "tap 1400 B extract (batch)",
		"clone p50, ref: raw TUNSETIFF", "clone p50, ref: ip tuntap add",
		"ls, 60 devices", "stat(2) per device, 60 devices", "daemon RSS per idle device",
		"goroutines per idle device", "daemon RSS per open device", "goroutines per open device",
		"jail removal, 16 devices", "jail -r, VNET jail with 16 devices (4 open)",
		"tun   64 B inject (fast path)", "tun 1400 B extract (fast path)", "iperf3 TCP through a UDP relay (fast path)",
		"kill -9 of the server to the first FUSE request served", "kill -9: longest packet delay through the open device",
		"kill -9 of the server to the first status answer", "planned restart: longest FUSE request wait",
		"planned restart: longest packet delay", "planned restart: request to the first status answer",
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("the table has no row %q", w)
		}
	}
	for _, r := range tbl.Rows {
		for i, c := range r.Cells {
			if i == 0 && !c.Valid() && strings.Contains(r.Name, "ref:") {
				t.Errorf("%s: no reference figure", r.Name)
			}
			if !c.Valid() {
				continue
			}
			// Per-device deltas are differences of noisy totals; the
			// rest are rates, times and counts.
			delta := strings.Contains(r.Name, " per idle device") || strings.Contains(r.Name, " per open device")
			if math.IsNaN(c.Median) || math.IsInf(c.Median, 0) || (!delta && c.Median <= 0) {
				t.Errorf("%s, %s: bad figure %v", r.Name, tbl.Columns[i], c.Median)
			}
		}
		// A daemon without batch mode says so in the batch rows.
		if (len(r.Cells) < 2 || !r.Cells[1].Valid()) && r.Note != errNoBatch.Error() {
			t.Errorf("%s: no tundevfs figure", r.Name)
		}
	}
}
