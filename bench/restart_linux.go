package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
)

// restartTimeout bounds one restart: past it the measurement fails and
// the part's cleanup (Daemon.Stop, which ends the holder and with it every
// FUSE connection) releases any request still waiting.
const restartTimeout = 15 * time.Second

// Probe pacing: a packet every packetGap while a restart is timed;
// refPackets packets and refLookups lookups and status calls for the
// reference.
const (
	packetGap  = time.Millisecond
	refPackets = 100
	refLookups = 200
)

// restartPause measures the crash-proof daemon's restart pause (issue 13)
// on the /dev/fuse transport: a daemon with one mount of the host jail and
// one tun device open and configured through it, then per repetition a
// kill -9 of the server process (the pid status names) and a planned
// restart (the control request `tundevfs daemon --restart` sends).
//
// Three clients run across each restart, from the kill or the restart
// request on, until each has been served by the new server:
//   - lookups: stat of a fresh absent name in the mount, back to back. A
//     fresh name is in no cache, so every lookup reaches a server and is
//     answered (ENOENT) only by one that serves. Figure: the longest wait
//     of one lookup, the first counted from the kill or the request.
//     After a kill -9 that is the first lookup, issued right after the
//     kill; in a planned restart the old server answers until it exits,
//     and the longest wait is the gap to the new one.
//   - packets: a UDP datagram every packetGap, routed out the tun device,
//     and a reader on the device fd (non-blocking, poll with a timeout,
//     then read), blocked in poll when the restart starts. Figures: the
//     longest delay of a packet from send to read, and the packets lost.
//   - status: control calls back to back. Figure: the time to the first
//     answer that names the new server.
//
// The reference column is the same request with no restart: the median
// lookup, packet delay and status round trip of a back-to-back run.
func restartPause(ctx context.Context, cfg Config, t *Table) error {
	// Several kills in a few seconds must not trip the crash-loop guard.
	v, err := newRestartEnv(cfg.Bin, "--fuse-transport", "dev", "--crash-limit", "10000")
	if err != nil {
		return err
	}
	defer v.close()
	d, e, sock := v.d, v.e, v.sock

	reps := max(cfg.Reps, 5)
	var ref, kill, plan figureSet
	var killLoss, planLoss lossCount
	var errs []error
	for rep := range reps {
		if err := ctx.Err(); err != nil {
			return err
		}
		cfg.logf("restart: repetition %d/%d", rep+1, reps)
		r := &restartRun{d: d, e: e, sock: sock}
		if err := r.reference(); err != nil {
			errs = append(errs, err)
		} else {
			ref.add(r.pause)
		}
		for _, planned := range []bool{false, true} {
			r := &restartRun{d: d, e: e, sock: sock}
			err := r.restart(planned)
			if err != nil {
				errs = append(errs, err)
				if errors.Is(err, errRestartStuck) {
					v.stuck = true
					return errors.Join(errs...)
				}
				continue
			}
			if planned {
				plan.add(r.pause)
				planLoss.add(r)
			} else {
				kill.add(r.pause)
				killLoss.add(r)
			}
		}
	}
	under1s := &Target{Label: "<1 s", Met: func(v float64) bool { return v < 1e6 }}
	t.Add(Row{Section: "restart pause of the crash-proof daemon (holder + server), /dev/fuse transport, one tun device open; reference: the same request with no restart (median of a back-to-back run)",
		Name: "kill -9 of the server to the first FUSE request served", Unit: "µs",
		Cells: pair(ref.fuse, kill.fuse), Target: under1s,
		Note: "lookup of a fresh absent name issued right after the kill, counted from the kill"})
	t.Add(Row{Name: "kill -9: longest packet delay through the open device", Unit: "µs",
		Cells: pair(ref.pkt, kill.pkt), Target: under1s,
		Note: fmt.Sprintf("a datagram every %v out the tun, read after poll; %s", packetGap, killLoss)})
	t.Add(Row{Name: "kill -9 of the server to the first status answer", Unit: "µs",
		Cells: pair(ref.ctl, kill.ctl),
		Note:  "status back to back from the kill; the first naming the new server"})
	t.Add(Row{Name: "planned restart: longest FUSE request wait", Unit: "µs",
		Cells: pair(ref.fuse, plan.fuse), Target: under1s,
		Note: "fresh lookups back to back from the restart request until the new server answers"})
	t.Add(Row{Name: "planned restart: longest packet delay", Unit: "µs",
		Cells: pair(ref.pkt, plan.pkt), Target: under1s,
		Note: fmt.Sprintf("as for kill -9; %s", planLoss)})
	t.Add(Row{Name: "planned restart: request to the first status answer", Unit: "µs",
		Cells: pair(ref.ctl, plan.ctl),
		Note:  "daemon --restart's request, then status back to back; the first naming the new server"})
	return errors.Join(errs...)
}

// restartEnv is what the restart part runs on: a namespace, a daemon
// under a holder with one mount, a tun device open through it
// (non-blocking, configured, up) and a UDP socket whose datagrams the
// namespace routes out the device.
type restartEnv struct {
	ns   *Netns
	d    *Daemon
	e    *Endpoint
	sock int
	// stuck: a restart never ended; requests on the mount may wait
	// until the daemon is gone, so close ends it first.
	stuck bool
}

func newRestartEnv(bin string, daemonArgs ...string) (v *restartEnv, err error) {
	v = &restartEnv{sock: -1}
	defer func() {
		if err != nil {
			v.close()
			err = fmt.Errorf("restart: %w", err)
		}
	}()
	if v.ns, err = NewNetns(); err != nil {
		return v, err
	}
	if v.d, err = StartDaemon(bin, v.ns, daemonArgs...); err != nil {
		return v, err
	}
	st, err := v.d.Status()
	if err != nil {
		return v, err
	}
	if st.HolderPID == 0 {
		return v, fmt.Errorf("the daemon runs without a holder (status has no holder_pid)")
	}
	if v.e, err = openTundevfs(v.ns, deviceDir{dir: v.d.Dir, destroy: v.d.Destroy}, false, 1); err != nil {
		return v, err
	}
	if err := unix.SetNonblock(v.e.Fd, true); err != nil {
		return v, fmt.Errorf("%s non-blocking: %w", v.e.Name, err)
	}
	v.sock, err = v.ns.udpSocket(netip.AddrPort{}, netip.AddrPortFrom(v.e.Remote, v.e.Port), 0, 0, 0)
	return v, err
}

// close removes everything: the device, the daemon and its mount, the
// namespace. After a stuck restart the daemon goes first (which ends its
// FUSE connections and so every request still waiting), as closing the
// device would wait for a server too.
func (v *restartEnv) close() {
	if v.sock >= 0 {
		unix.Close(v.sock)
	}
	if v.stuck && v.d != nil {
		v.d.Stop()
	}
	if v.e != nil {
		v.e.Close()
	}
	if v.d != nil {
		v.d.Stop()
	}
	if v.ns != nil {
		v.ns.Close()
	}
}

// errRestartStuck: a restart did not end within restartTimeout; requests
// may still wait, and the part stops.
var errRestartStuck = errors.New("no new server answered")

// lossCount adds up the datagrams of the restarts of one kind.
type lossCount struct {
	lost, sent int
	at         []string // when lost datagrams were sent, the first few
}

func (l *lossCount) add(r *restartRun) {
	l.lost += r.lost
	l.sent += r.sent
	for _, at := range r.lostAt {
		if len(l.at) < 4 {
			l.at = append(l.at, fmt.Sprintf("+%.1f ms", millis(at)))
		}
	}
}

func (l lossCount) String() string {
	s := fmt.Sprintf("lost %d of %d", l.lost, l.sent)
	if len(l.at) > 0 {
		s += " (sent at " + strings.Join(l.at, ", ") + " from the kill or request)"
	}
	return s
}

// pause is one run's figures.
type pause struct {
	fuse time.Duration // the longest wait of one lookup (reference: median)
	pkt  time.Duration // the longest packet delay (reference: median)
	ctl  time.Duration // to the first status of the new server (reference: median round trip)
}

// figureSet collects pauses over repetitions, in µs.
type figureSet struct{ fuse, pkt, ctl []float64 }

func (f *figureSet) add(p pause) {
	f.fuse = append(f.fuse, micros(p.fuse))
	f.pkt = append(f.pkt, micros(p.pkt))
	f.ctl = append(f.ctl, micros(p.ctl))
}

// restartRun is one timed run: a restart, or the reference.
type restartRun struct {
	d    *Daemon
	e    *Endpoint // open, non-blocking
	sock int       // UDP, connected to the device's remote end

	t0       time.Time // the kill or the restart request
	deadline time.Time
	oldPID   int
	stop     chan struct{} // closed to end every client at once (failure)

	mu      sync.Mutex // guards newSeen
	newSeen time.Time  // when a status first named the new server

	// results
	pause
	lost, sent int
	lostAt     []time.Duration
}

// served says whether an operation issued at issued must have been
// served by the new server: it started after a status named it.
func (r *restartRun) served(issued time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.newSeen.IsZero() && issued.After(r.newSeen)
}

// reference runs the clients without a restart: medians of
// back-to-back lookups, packets and status calls.
func (r *restartRun) reference() error {
	fail := func(err error) error { return fmt.Errorf("restart: reference: %w", err) }
	r.t0 = time.Now()
	r.deadline = r.t0.Add(restartTimeout)
	r.stop = make(chan struct{})
	defer close(r.stop)
	fs := make([]time.Duration, 0, refLookups)
	for range refLookups {
		el, err := lookupAbsent(r.d.Dir)
		if err != nil {
			return fail(err)
		}
		fs = append(fs, el)
	}
	cs := make([]time.Duration, 0, refLookups)
	for range refLookups {
		t0 := time.Now()
		if _, err := statusBefore(r.d, r.deadline); err != nil {
			return fail(err)
		}
		cs = append(cs, time.Since(t0))
	}
	pr := r.startPackets(func(seq int, _ time.Time) bool { return seq >= refPackets-1 })
	pr.startSender()
	delays, err := pr.wait()
	if err != nil {
		return fail(err)
	}
	if len(delays) == 0 {
		return fail(fmt.Errorf("no packet came through %s", r.e.Name))
	}
	r.pause = pause{fuse: Percentile(fs, 50), pkt: Percentile(delays, 50), ctl: Percentile(cs, 50)}
	return nil
}

// restart restarts the server (kill -9, or a planned restart) and times
// the clients as restartPause says. It returns once each client has been
// served by the new server and the holder counts the restart.
func (r *restartRun) restart(planned bool) (err error) {
	what := "kill -9"
	if planned {
		what = "planned restart"
	}
	fail := func(err error) error { return fmt.Errorf("restart: %s: %w", what, err) }
	before, err := r.d.Status()
	if err != nil {
		return fail(err)
	}
	r.oldPID = before.ServerPID
	if r.oldPID == 0 || r.oldPID == before.HolderPID {
		return fail(fmt.Errorf("status names no server process (server %d, holder %d)", r.oldPID, before.HolderPID))
	}
	r.stop = make(chan struct{})
	stopped := false
	stopAll := func() {
		if !stopped {
			close(r.stop)
			stopped = true
		}
	}
	defer stopAll()

	// The packet reader waits in poll before the restart starts.
	r.deadline = time.Now().Add(restartTimeout)
	pr := r.startPackets(func(_ int, sent time.Time) bool { return r.served(sent) })
	time.Sleep(20 * time.Millisecond)

	var lookDone chan struct{}
	var lookLongest time.Duration
	var lookErr error
	startLookups := func() {
		lookDone = make(chan struct{})
		go func() {
			defer close(lookDone)
			lookLongest, lookErr = r.lookups()
		}()
	}
	r.t0 = time.Now()
	if planned {
		startLookups()
		pr.startSender()
		if err := r.d.call(daemon.Request{Op: daemon.OpRestart}, nil); err != nil {
			stopAll()
			<-lookDone
			pr.wait()
			return fail(err)
		}
	} else {
		if err := unix.Kill(r.oldPID, unix.SIGKILL); err != nil {
			stopAll()
			pr.wait()
			return fail(fmt.Errorf("kill %d: %w", r.oldPID, err))
		}
		startLookups()
		pr.startSender()
	}

	ctl, err := r.statusUntilNew()
	if err != nil {
		// The clients may wait on a server that never comes; the
		// part's cleanup ends the daemon and releases them.
		return fail(err)
	}
	select {
	case <-lookDone:
	case <-r.d.exited:
		return fail(fmt.Errorf("%w: the daemon exited: %s", errRestartStuck, lastLine(r.d.log.String())))
	case <-time.After(time.Until(r.deadline)):
		return fail(fmt.Errorf("%w: a lookup still waits after %v", errRestartStuck, restartTimeout))
	}
	if lookErr != nil {
		stopAll()
		pr.wait()
		return fail(lookErr)
	}
	delays, err := pr.wait()
	if err != nil {
		return fail(err)
	}
	r.pause = pause{fuse: lookLongest, pkt: maxDuration(delays), ctl: ctl}
	r.lost, r.sent, r.lostAt = pr.lost, pr.sent, pr.lostAt

	after, err := r.d.Status()
	if err != nil {
		return fail(err)
	}
	if after.Restarts != before.Restarts+1 || after.HolderPID != before.HolderPID {
		return fail(fmt.Errorf("restarts %d -> %d, holder %d -> %d: want one more restart under the same holder",
			before.Restarts, after.Restarts, before.HolderPID, after.HolderPID))
	}
	return nil
}

// statusUntilNew asks for status until an answer names a server other
// than oldPID, and returns the time from t0 to that answer.
func (r *restartRun) statusUntilNew() (time.Duration, error) {
	for {
		st, err := statusBefore(r.d, r.deadline)
		if err == nil && st.ServerPID != 0 && st.ServerPID != r.oldPID {
			now := time.Now()
			r.mu.Lock()
			r.newSeen = now
			r.mu.Unlock()
			return now.Sub(r.t0), nil
		}
		select {
		case <-r.d.exited:
			return 0, fmt.Errorf("%w: the daemon exited: %s", errRestartStuck, lastLine(r.d.log.String()))
		default:
		}
		if time.Now().After(r.deadline) {
			return 0, fmt.Errorf("%w within %v (last status error: %v)", errRestartStuck, restartTimeout, err)
		}
		if err != nil {
			// Refused, or the answer broke off, while no server
			// listens: ask again soon.
			time.Sleep(time.Millisecond)
		}
	}
}

// lookups stats fresh absent names back to back until one issued after
// the new server was seen is answered, and returns the longest wait. The
// first wait counts from t0 (the kill or the restart request), the others
// from their own start.
func (r *restartRun) lookups() (time.Duration, error) {
	var longest time.Duration
	from := r.t0
	for {
		issued := time.Now()
		_, err := lookupAbsent(r.d.Dir)
		if err != nil {
			return longest, err
		}
		longest = max(longest, time.Since(from))
		from = time.Now()
		if r.served(issued) {
			return longest, nil
		}
		select {
		case <-r.stop:
			return longest, nil
		default:
		}
	}
}

// freshName is a name nothing in the mount has, so that no cache answers
// its lookup.
func freshName() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "absent-" + hex.EncodeToString(b)
}

// lookupAbsent stats DIR/<fresh name> and returns how long the answer
// (ENOENT) took.
func lookupAbsent(dir string) (time.Duration, error) {
	p := filepath.Join(dir, freshName())
	var st unix.Stat_t
	t0 := time.Now()
	err := unix.Stat(p, &st)
	el := time.Since(t0)
	if err == nil {
		return el, fmt.Errorf("lookup %s: exists", p)
	}
	if err != unix.ENOENT {
		return el, fmt.Errorf("lookup %s: %w", p, err)
	}
	return el, nil
}

// statusBefore is the daemon's status, the call bounded by deadline.
func statusBefore(d *Daemon, deadline time.Time) (daemon.Status, error) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var st daemon.Status
	data, err := daemon.CallContext(ctx, d.Socket, daemon.Request{Op: "status"})
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err != nil {
		return st, fmt.Errorf("daemon status: %w", err)
	}
	return st, nil
}

// lastLine is the last non-empty line of a log.
func lastLine(log string) string {
	log = strings.TrimSpace(log)
	return log[strings.LastIndex(log, "\n")+1:]
}

func maxDuration(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// packetRun is the packet client of one run: a sender writing a numbered
// datagram every packetGap to the device's remote end (routed out the
// tun), and a reader polling the device fd and reading what comes.
type packetRun struct {
	r     *restartRun
	nonce uint32 // tells this run's datagrams from any earlier run's
	// enough says, for a packet read, whether the reader may stop.
	enough func(seq int, sent time.Time) bool

	mu        sync.Mutex  // guards sentAt, recvAt
	sentAt    []time.Time // by sequence number
	recvAt    map[int]time.Time
	readDone  chan struct{} // closed when the reader returns
	readErr   error
	sendStop  chan struct{} // closed to end the sender
	sendDone  chan struct{} // closed when the sender returns (or never started)
	sendErr   error
	lost      int
	sent      int
	lostAt    []time.Duration // when each lost datagram was sent, from t0
	senderOn  bool
	stopOnce  sync.Once
	enoughNow chan struct{} // closed by the reader when enough came
}

// startPackets drains the device and starts the reader; startSender
// starts the sender.
func (r *restartRun) startPackets(enough func(seq int, sent time.Time) bool) *packetRun {
	b := make([]byte, 4)
	rand.Read(b)
	p := &packetRun{
		r: r, nonce: binary.BigEndian.Uint32(b), enough: enough,
		recvAt:    map[int]time.Time{},
		readDone:  make(chan struct{}),
		sendStop:  make(chan struct{}),
		sendDone:  make(chan struct{}),
		enoughNow: make(chan struct{}),
	}
	buf := make([]byte, 65536)
	for {
		if _, err := unix.Read(r.e.Fd, buf); err != nil {
			break
		}
	}
	go p.reader()
	return p
}

func (p *packetRun) startSender() {
	p.senderOn = true
	go p.sender()
}

func (p *packetRun) sender() {
	defer close(p.sendDone)
	msg := make([]byte, 8)
	binary.BigEndian.PutUint32(msg, p.nonce)
	for seq := 0; ; seq++ {
		select {
		case <-p.sendStop:
			return
		case <-p.r.stop:
			return
		default:
		}
		binary.BigEndian.PutUint32(msg[4:], uint32(seq))
		p.mu.Lock()
		p.sentAt = append(p.sentAt, time.Now())
		p.mu.Unlock()
		if _, err := unix.Write(p.r.sock, msg); err != nil && err != unix.EINTR {
			p.sendErr = fmt.Errorf("send datagram %d: %w", seq, err)
			return
		}
		time.Sleep(packetGap)
	}
}

// reader polls the device (100 ms at a time, so that it sees the stop
// channels) and reads every packet queued, until enough says so, then
// keeps reading late packets for a moment.
func (p *packetRun) reader() {
	defer close(p.readDone)
	buf := make([]byte, 65536)
	fds := []unix.PollFd{{Fd: int32(p.r.e.Fd), Events: unix.POLLIN}}
	var quietSince time.Time // after enough: the last packet, or enough
	for {
		select {
		case <-p.r.stop:
			return
		default:
		}
		if !quietSince.IsZero() && time.Since(quietSince) > 50*time.Millisecond {
			return
		}
		if time.Now().After(p.r.deadline) {
			p.readErr = fmt.Errorf("%w: the packet reader waits after %v", errRestartStuck, restartTimeout)
			return
		}
		_, err := unix.Poll(fds, 100)
		if err != nil && err != unix.EINTR {
			p.readErr = fmt.Errorf("poll %s: %w", p.r.e.Name, err)
			return
		}
		for {
			n, err := unix.Read(p.r.e.Fd, buf)
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN {
				break
			}
			if err != nil {
				p.readErr = fmt.Errorf("read %s: %w", p.r.e.Name, err)
				return
			}
			now := time.Now()
			pl := p.r.e.udpOutPayload(buf[:n])
			if len(pl) != 8 || binary.BigEndian.Uint32(pl) != p.nonce {
				continue
			}
			seq := int(binary.BigEndian.Uint32(pl[4:]))
			p.mu.Lock()
			var sent time.Time
			if seq < len(p.sentAt) {
				sent = p.sentAt[seq]
			}
			if _, dup := p.recvAt[seq]; !dup && !sent.IsZero() {
				p.recvAt[seq] = now
			}
			p.mu.Unlock()
			if !quietSince.IsZero() {
				quietSince = now
			} else if !sent.IsZero() && p.enough(seq, sent) {
				quietSince = now
				// Nothing more is sent; what was sent may still
				// come.
				p.stopOnce.Do(func() { close(p.enoughNow) })
			}
		}
	}
}

// wait waits for enough packets (or a failure), stops the sender, and
// returns each packet's delay from send to read; lost and sent count the
// datagrams.
func (p *packetRun) wait() ([]time.Duration, error) {
	select {
	case <-p.enoughNow:
	case <-p.readDone:
	case <-p.r.stop:
	case <-time.After(time.Until(p.r.deadline)):
	}
	close(p.sendStop)
	if p.senderOn {
		<-p.sendDone
	}
	select {
	case <-p.readDone:
	case <-time.After(time.Until(p.r.deadline) + time.Second):
		// Its poll waits for a server: the part's cleanup ends it.
		return nil, fmt.Errorf("%w: the packet reader waits after %v", errRestartStuck, restartTimeout)
	}
	if err := errors.Join(p.readErr, p.sendErr); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = len(p.sentAt)
	p.lost = p.sent - len(p.recvAt)
	for seq, at := range p.sentAt {
		if _, ok := p.recvAt[seq]; !ok {
			p.lostAt = append(p.lostAt, at.Sub(p.r.t0))
		}
	}
	delays := make([]time.Duration, 0, len(p.recvAt))
	for seq, at := range p.recvAt {
		delays = append(delays, at.Sub(p.sentAt[seq]))
	}
	return delays, nil
}
