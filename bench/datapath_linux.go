package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// window bounds the packets in flight between a producer and a consumer,
// so that a measured rate is what the consumer side sustains rather than
// how fast an overrun queue drops. The producer waits while size packets
// are in flight and resumes when half have arrived.
type window struct {
	size    int64
	sent    atomic.Int64 // counted by the producer
	done    atomic.Int64 // counted by the consumer (and written off as lost)
	waiting atomic.Bool
	wake    chan struct{}
	timer   *time.Timer // the producer's
}

// lostAfter is how long a producer waits for packets in flight before it
// counts them lost and goes on.
const lostAfter = 50 * time.Millisecond

func newWindow(size int) *window {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &window{size: int64(size), wake: make(chan struct{}, 1), timer: t}
}

func (w *window) inflight() int64 { return w.sent.Load() - w.done.Load() }

// wait blocks the producer until another packet may go.
func (w *window) wait() {
	for w.inflight() >= w.size {
		w.waiting.Store(true)
		if w.inflight() < w.size {
			w.waiting.Store(false)
			return
		}
		w.timer.Reset(lostAfter)
		select {
		case <-w.wake:
		case <-w.timer.C:
			w.waiting.Store(false)
			w.done.Add(w.inflight()) // lost; the loss count tells
			return
		}
	}
}

// arrived is the consumer's: n packets have come.
func (w *window) arrived(n int64) {
	w.done.Add(n)
	if w.waiting.Load() && w.inflight() <= w.size/2 && w.waiting.CompareAndSwap(true, false) {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// Rate is the outcome of a throughput measurement.
type Rate struct {
	PPS  float64 // packets per second counted at the receiving end
	Sent uint64  // packets handed to the sending end
	Lost uint64  // sent but never counted at the receiving end
	// Disorder counts packets that arrived after a later one or twice,
	// by the sequence number in their first payload bytes.
	Disorder uint64
}

// seqCheck follows the sequence numbers of arriving packets. Only the
// receiving goroutine calls see; disorder may be read at any time.
type seqCheck struct {
	next     uint32
	disorder atomic.Uint64
}

// see records the arrival of packet seq.
func (c *seqCheck) see(seq uint32) {
	if seq < c.next {
		c.disorder.Add(1) // reordered or duplicated
		return
	}
	c.next = seq + 1
}

// extractRuns tells the datagrams of one extract call from those an earlier
// call left queued in the device (its last kicks).
var extractRuns atomic.Uint32

// kickSeq is the sequence number of the datagrams that wake the reader at
// the end of an extract; they are no part of the sequence.
const kickSeq = ^uint32(0)

// seqOffset is where a packet of e carries its sequence number: the first
// 4 bytes of the UDP payload.
func (e *Endpoint) seqOffset() int {
	if e.L2 {
		return etherHeader + ipUDPHeader
	}
	return ipUDPHeader
}

// timing is how long a measurement warms up and then counts.
type timing struct {
	warm, dur time.Duration
}

// count samples counter after the warm-up and again after dur, and
// returns the rate in between.
func (tm timing) count(counter func() uint64) float64 {
	time.Sleep(tm.warm)
	c0, t0 := counter(), time.Now()
	time.Sleep(tm.dur)
	c1, t1 := counter(), time.Now()
	return float64(c1-c0) / t1.Sub(t0).Seconds()
}

// drain waits until got reaches want, or until it stops moving for 200ms.
func drain(got func() uint64, want uint64) {
	last, since := got(), time.Now()
	for got() < want && time.Since(since) < 200*time.Millisecond {
		time.Sleep(time.Millisecond)
		if g := got(); g != last {
			last, since = g, time.Now()
		}
	}
}

// inject measures packets written to the device and received by the
// kernel, counted at a UDP socket on the local address.
func inject(e *Endpoint, size int, tm timing) (Rate, error) {
	sock, err := e.ns.udpSocket(netip.AddrPortFrom(e.Local, e.Port), netip.AddrPort{}, 8<<20, 0, int64(20*time.Millisecond))
	if err != nil {
		return Rate{}, fmt.Errorf("inject %s: %w", e.Name, err)
	}
	defer unix.Close(sock)
	pkts := make([][]byte, e.batch)
	for i := range pkts {
		pkts[i] = e.udpIn(size)
	}
	w := newWindow(512)
	var order seqCheck

	var recv atomic.Uint64
	var stopRead atomic.Bool
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 2048)
		for !stopRead.Load() {
			if n, err := unix.Read(sock, buf); err == nil {
				if n >= 4 {
					order.see(binary.BigEndian.Uint32(buf))
				}
				recv.Add(1)
				w.arrived(1)
			}
		}
	}()

	var stop atomic.Bool
	var sent atomic.Uint64
	werr := make(chan error, 1)
	go func() {
		off, seq := e.seqOffset(), uint32(0)
		for !stop.Load() {
			w.wait()
			for i, p := range pkts {
				binary.BigEndian.PutUint32(p[off:], seq+uint32(i))
			}
			n, err := e.write(pkts)
			seq += uint32(n)
			w.sent.Add(int64(n))
			sent.Add(uint64(n))
			if err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	pps := tm.count(recv.Load)
	stop.Store(true)
	err = <-werr
	drain(recv.Load, sent.Load())
	stopRead.Store(true)
	<-readDone
	r := Rate{PPS: pps, Sent: sent.Load(), Disorder: order.disorder.Load()}
	if got := recv.Load(); got < r.Sent {
		r.Lost = r.Sent - got
	}
	if err != nil {
		return r, fmt.Errorf("inject: %w", err)
	}
	return r, nil
}

// extract measures packets routed to the interface by a UDP sender in the
// namespace and read from the device.
func extract(e *Endpoint, size int, tm timing) (Rate, error) {
	sock, err := e.ns.udpSocket(netip.AddrPort{}, netip.AddrPortFrom(e.Remote, e.Port), 0, 4<<20, 0)
	if err != nil {
		return Rate{}, fmt.Errorf("extract %s: %w", e.Name, err)
	}
	defer unix.Close(sock)
	// The payload: the sequence number, then the run (when there is room:
	// 64-byte tap frames carry 22 bytes).
	payload := make([]byte, e.payloadLen(size))
	run := extractRuns.Add(1)
	ours := func(p []byte) bool { return p != nil && (len(p) < 8 || binary.BigEndian.Uint32(p[4:]) == run) }
	if len(payload) >= 8 {
		binary.BigEndian.PutUint32(payload[4:], run)
	}
	w := newWindow(256) // below the tun queue (500)
	var order seqCheck

	var recv atomic.Uint64
	var stopRead atomic.Bool
	rerr := make(chan error, 1)
	go func() {
		// One 64 KiB buffer for one packet; a batch read points bufs
		// into its own buffer, at most one packet per 4-byte header and
		// 14-byte frame or 20-byte IPv4 header.
		bufs, sizes := [][]byte{make([]byte, 65536)}, []int{0}
		if e.readBatch != nil {
			bufs, sizes = make([][]byte, batchMax/(batchRecHdr+etherHeader)+1), make([]int, batchMax/(batchRecHdr+etherHeader)+1)
		}
		for !stopRead.Load() {
			n, err := e.read(bufs, sizes)
			if err != nil {
				rerr <- err
				return
			}
			var mine int64
			for i := range n {
				if p := e.udpOutPayload(bufs[i][:sizes[i]]); ours(p) {
					if len(p) >= 4 && binary.BigEndian.Uint32(p) != kickSeq {
						order.see(binary.BigEndian.Uint32(p))
					}
					mine++
				}
			}
			recv.Add(uint64(mine))
			w.arrived(mine)
		}
		rerr <- nil
	}()

	var stop atomic.Bool
	var sent atomic.Uint64
	serr := make(chan error, 1)
	go func() {
		seq := uint32(0)
		for !stop.Load() {
			w.wait()
			if len(payload) >= 4 {
				binary.BigEndian.PutUint32(payload, seq)
			}
			if _, err := unix.Write(sock, payload); err != nil {
				if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) {
					continue // the queue is full: not sent
				}
				serr <- fmt.Errorf("extract: send: %w", err)
				return
			}
			seq++
			w.sent.Add(1)
			sent.Add(1)
		}
		serr <- nil
	}()
	pps := tm.count(recv.Load)
	stop.Store(true)
	err = <-serr
	drain(recv.Load, sent.Load())
	r := Rate{PPS: pps, Sent: sent.Load()}
	if got := recv.Load(); got < r.Sent {
		r.Lost = r.Sent - got
	}
	// The reader has seen what it will count; the kicks below carry
	// kickSeq, and what a later call finds of them queued is not its run.
	r.Disorder = order.disorder.Load()
	// The reader is blocked in read(2): send until it has seen the stop.
	stopRead.Store(true)
	if len(payload) >= 4 {
		binary.BigEndian.PutUint32(payload, kickSeq)
	}
	return r, errors.Join(err, e.kickUntil(sock, payload, rerr))
}

// Latency is the outcome of a ping-pong measurement.
type Latency struct {
	P50, P99 time.Duration
	N        int // round trips counted
	Lost     int // datagrams never answered (ping-pong)
}

// pingPong is a round trip through a tunnel as an application sees it:
// the application, a process of its own in the namespace (pinger), sends
// a UDP datagram of size bytes on the device to the remote; the tunnel
// program, here the suite, reads it from the device and writes it back
// with source and destination swapped (the far end of a real tunnel
// replaced by a reflector); the application times the answer. One
// datagram at a time. With apart, the application runs on CPU 0 and the
// reflector on CPU 1 (the daemon stays unpinned): the case where every
// wake-up crosses CPUs, which unpinned runs fall into part of the time.
func pingPong(e *Endpoint, size int, tm timing, apart bool) (Latency, error) {
	var stop atomic.Bool
	rerr := make(chan error, 1)
	go func() {
		if apart {
			runtime.LockOSThread() // the thread stays pinned and dies with the goroutine
			var set unix.CPUSet
			set.Set(1)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				rerr <- fmt.Errorf("ping-pong: pin the reflector: %w", err)
				return
			}
		}
		bufs, sizes := [][]byte{make([]byte, 65536)}, []int{0}
		for {
			n, err := e.read(bufs, sizes)
			if err != nil {
				rerr <- err
				return
			}
			if stop.Load() {
				rerr <- nil
				return
			}
			pkt := bufs[0][:sizes[0]]
			if n == 0 || !e.reflect(pkt) {
				continue
			}
			if _, err := e.write([][]byte{pkt}); err != nil {
				rerr <- err
				return
			}
		}
	}()
	lat, lost, err := runPinger(e, size, tm, apart)
	stop.Store(true)
	// The reflector is blocked in read(2): send until it has seen the stop.
	kerr := e.kickReader(rerr)
	if err = errors.Join(err, kerr); err != nil {
		return Latency{}, err
	}
	if len(lat) == 0 {
		return Latency{}, fmt.Errorf("ping-pong %s: no round trip completed", e.Name)
	}
	return Latency{P50: Percentile(lat, 50), P99: Percentile(lat, 99), N: len(lat), Lost: lost}, nil
}

// kickReader sends datagrams through the device until the reader that
// reports on done has returned, and returns what it reported.
func (e *Endpoint) kickReader(done <-chan error) error {
	sock, err := e.ns.udpSocket(netip.AddrPort{}, netip.AddrPortFrom(e.Remote, e.Port), 0, 0, 0)
	if err != nil {
		return err
	}
	defer unix.Close(sock)
	return e.kickUntil(sock, []byte("kick"), done)
}

// kickUntil sends payload on sock, a UDP socket connected to the remote,
// every 5 ms until the reader that reports on done has returned (a reader
// blocked in read(2) sees its stop only with a packet), and returns what
// it reported.
func (e *Endpoint) kickUntil(sock int, payload []byte, done <-chan error) error {
	kick := time.NewTicker(5 * time.Millisecond)
	defer kick.Stop()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case err := <-done:
			return err
		case <-kick.C:
			unix.Write(sock, payload)
		case <-deadline:
			return fmt.Errorf("%s: the reader did not return", e.Name)
		}
	}
}

// roundTrip writes an ICMP echo request into the device and reads the
// kernel's reply from it, one at a time: the cost of one write and one
// read through the device, with nobody else to wake.
func roundTrip(e *Endpoint, size int, tm timing) (Latency, error) {
	const nreq = 64
	reqs := make([][]byte, nreq)
	for i := range reqs {
		reqs[i] = e.echo(size, uint16(i))
	}
	bufs, sizes := [][]byte{make([]byte, 65536)}, []int{0}
	lat := make([]time.Duration, 0, 1<<16)

	// A lost reply would block read(2) for ever: a watchdog resends the
	// request that is waiting.
	var cur, rounds atomic.Uint64
	var stalls atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		last := uint64(0)
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if r := rounds.Load(); r == last {
				stalls.Add(1)
				e.write([][]byte{reqs[cur.Load()%nreq]})
			} else {
				last = r
			}
		}
	}()
	defer func() { close(done); wg.Wait() }()

	start := time.Now()
	counting, end := start.Add(tm.warm), start.Add(tm.warm+tm.dur)
	for i := uint64(0); ; i++ {
		t0 := time.Now()
		if t0.After(end) {
			break
		}
		seq := i % nreq
		cur.Store(seq)
		if _, err := e.write(reqs[seq : seq+1]); err != nil {
			return Latency{}, fmt.Errorf("round trip: %w", err)
		}
		for {
			n, err := e.read(bufs, sizes)
			if err != nil {
				return Latency{}, fmt.Errorf("round trip: %w", err)
			}
			if n > 0 && e.isEchoReply(bufs[0][:sizes[0]], uint16(seq)) {
				break
			}
		}
		d := time.Since(t0)
		rounds.Add(1)
		if t0.After(counting) {
			lat = append(lat, d)
		}
		if stalls.Load() > 5 {
			return Latency{}, fmt.Errorf("round trip %s: replies lost", e.Name)
		}
	}
	if len(lat) == 0 {
		return Latency{}, fmt.Errorf("round trip %s: none completed", e.Name)
	}
	p99 := Percentile(lat, 99)
	return Latency{P50: Percentile(lat, 50), P99: p99, N: len(lat)}, nil
}

// injectWriters writes packets of size bytes into every endpoint at once,
// one writer goroutine each, and returns the aggregate rate of accepted
// writes. The packets go to a UDP socket nobody reads, with the smallest
// buffer, so the kernel drops them there: the stack still receives each
// one, and no reader competes for the CPU.
func injectWriters(eps []*Endpoint, size int, tm timing) (float64, error) {
	var total atomic.Uint64
	var stop atomic.Bool
	errc := make(chan error, len(eps))
	for _, e := range eps {
		sock, err := e.ns.udpSocket(netip.AddrPortFrom(e.Local, e.Port), netip.AddrPort{}, -1, 0, 0)
		if err != nil {
			stop.Store(true)
			return 0, fmt.Errorf("inject writers: %w", err)
		}
		defer unix.Close(sock)
		pkts := [][]byte{e.udpIn(size)}
		go func() {
			for !stop.Load() {
				n, err := e.write(pkts)
				total.Add(uint64(n))
				if err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	pps := tm.count(total.Load)
	stop.Store(true)
	var err error
	for range eps {
		err = errors.Join(err, <-errc)
	}
	return pps, err
}
