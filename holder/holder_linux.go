package holder

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Holder runs and restarts the server and holds its fds and state. Make
// one with New and call Run once.
type Holder struct {
	cfg Config

	// mu guards state, fds, cur and info. The fds and state change only
	// in the reader goroutine of the current server (one at a time), and
	// in Run after that goroutine ended, so a reader may use a snapshot of
	// them without mu while it sends the takeover.
	mu    sync.Mutex
	state []byte         // the last complete blob (never changed in place); nil before the first
	fds   map[string]int // key → the holder's dup (close-on-exec, flags untouched)
	cur   *child         // the server running now, or nil
	info  Info

	// notifyMu serializes cfg.Notify calls and guards ready and stopping.
	notifyMu sync.Mutex
	ready    bool // READY=1 sent and no planned restart since
	stopping bool // STOPPING=1 sent
}

// New returns a holder for cfg, with the defaults filled in.
func New(cfg Config) *Holder {
	if cfg.CrashLimit <= 0 {
		cfg.CrashLimit = 5
	}
	if cfg.CrashWindow <= 0 {
		cfg.CrashWindow = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = log.Default()
	}
	return &Holder{cfg: cfg, fds: map[string]int{}}
}

// Info reports the holder's pid and start, the current server's pid (0
// while none runs) and how many servers started after the first.
func (h *Holder) Info() Info {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.info
}

// Restart asks the running server to restart: it quiesces, says
// Exiting(true) and exits, and Run starts Argv[0] as it is on disk now. It
// returns once the request is queued; ErrNoServer when no server runs.
func (h *Holder) Restart() error {
	h.mu.Lock()
	c := h.cur
	h.mu.Unlock()
	if c == nil {
		return ErrNoServer
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if err := c.sock.send(-1, []byte{byte(opRestart)}); err != nil {
		return fmt.Errorf("holder: restart server %d: %w", c.pid, err)
	}
	return nil
}

// exitKind is what a server announced before it exited.
type exitKind int

const (
	exitUnannounced exitKind = iota
	exitRestart
	exitShutdown
)

// child is one server process and the holder's end of its socket.
type child struct {
	pid  int
	cmd  *exec.Cmd
	sock *sock

	// sendMu guards sends on sock: one takeover reply or restart request
	// at a time.
	sendMu sync.Mutex

	// Written by the reader goroutine only; Run reads them after
	// readerDone is closed.
	announced exitKind
	protoErr  error  // the server broke the protocol (and was killed)
	pending   []byte // state chunks so far
	inState   bool   // a first chunk came and its last did not yet

	readerDone chan struct{}
	exited     chan struct{} // closed once waitErr is set
	waitErr    error
	// leaderGone is closed when the server's main thread has exited.
	// A killed server may not be reaped for long after: a thread of it
	// blocked in the kernel on its own mount (a FUSE notify waits for
	// the directory lock a lookup holds, and that lookup waits for the
	// next server) ends only once the next server serves. So the
	// holder starts the next one when the main thread is gone.
	leaderGone chan struct{}
	// end says how the server ended, set by supervise (waitErr, or that
	// it was killed while a thread lingered).
	end error
}

// Run starts the server and keeps it running until it exits cleanly after
// Exiting(false) (Run returns nil), the guard trips (ErrCrashLoop, wrapped
// with why), or ctx ends (SIGTERM to the server, wait for it, nil). It
// installs no signal handlers: the caller turns SIGHUP into Restart and
// SIGTERM into cancelling ctx.
func (h *Holder) Run(ctx context.Context) error {
	if len(h.cfg.Argv) == 0 {
		return errors.New("holder: run: empty Argv")
	}
	argv0, err := resolve(h.cfg.Argv[0])
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.info = Info{HolderPID: os.Getpid(), Start: time.Now()}
	h.mu.Unlock()
	defer h.closeAll()

	var deaths []time.Time
	for started := false; ; started = true {
		if ctx.Err() != nil {
			// The last server died and no other runs.
			h.notifyStopping()
			if started {
				h.giveUp()
			}
			return nil
		}
		c, err := h.start(argv0, started)
		var why string
		if err != nil {
			why = err.Error()
		} else {
			h.supervise(ctx, c)
			clean := c.protoErr == nil && c.end == nil
			switch {
			case c.announced == exitShutdown && clean:
				return nil
			case c.announced == exitShutdown:
				h.giveUp()
				return fmt.Errorf("holder: server %d failed while shutting down: %s", c.pid, describe(c))
			case ctx.Err() != nil:
				h.giveUp()
				return nil
			case c.announced == exitRestart && clean:
				h.cfg.Logger.Printf("holder: server %d exited for a planned restart", c.pid)
				continue
			}
			why = describe(c)
		}
		now := time.Now()
		deaths = slices.DeleteFunc(deaths, func(t time.Time) bool { return now.Sub(t) >= h.cfg.CrashWindow })
		deaths = append(deaths, now)
		if len(deaths) >= h.cfg.CrashLimit {
			h.cfg.Logger.Printf("holder: giving up: %s", why)
			h.notifyStopping()
			h.giveUp()
			return fmt.Errorf("%w: server died %d times in %v; last: %s", ErrCrashLoop, len(deaths), h.cfg.CrashWindow, why)
		}
		h.cfg.Logger.Printf("holder: server died (%s); starting another", why)
	}
}

// resolve makes argv0 absolute (looking a bare name up in PATH), once, so
// that every start runs the file at that path then.
func resolve(argv0 string) (string, error) {
	p, err := exec.LookPath(argv0)
	if err != nil {
		return "", fmt.Errorf("holder: server binary: %w", err)
	}
	p, err = filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("holder: server binary: %w", err)
	}
	return p, nil
}

// describe says how a server ended, for a death.
func describe(c *child) string {
	switch {
	case c.protoErr != nil:
		return fmt.Sprintf("killed for breaking the protocol: %v", c.protoErr)
	case c.end != nil:
		return c.end.Error()
	case c.announced == exitUnannounced:
		return "exit status 0 without Exiting"
	}
	return "exit status 0"
}

// start starts a server on a new socketpair, its reader goroutine, and
// the goroutine that waits for it.
func (h *Holder) start(argv0 string, restart bool) (*child, error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("holder: start server: socketpair: %w", err)
	}
	s, err := newSock(pair[0], "holder")
	if err != nil {
		unix.Close(pair[1])
		return nil, err
	}
	theirs := os.NewFile(uintptr(pair[1]), "holder-server")
	defer theirs.Close()

	c := &child{sock: s, readerDone: make(chan struct{}), exited: make(chan struct{})}
	c.cmd = &exec.Cmd{
		Path:        argv0,
		Args:        h.cfg.Argv,
		Env:         serverEnv(h.cfg.Env),
		ExtraFiles:  []*os.File{theirs}, // fd 3
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	}
	startErr := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked exits, not the
		// process: keep this thread, and only this goroutine on it,
		// until the child is gone.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := c.cmd.Start(); err != nil {
			startErr <- err
			return
		}
		startErr <- nil
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	if err := <-startErr; err != nil {
		s.close()
		return nil, fmt.Errorf("holder: start server: %w", err)
	}
	c.pid = c.cmd.Process.Pid
	c.leaderGone = make(chan struct{})
	go watchLeader(c.pid, c.exited, c.leaderGone)
	h.mu.Lock()
	h.cur = c
	h.info.ServerPID = c.pid
	if restart {
		h.info.Restarts++
	}
	h.mu.Unlock()
	h.cfg.Logger.Printf("holder: server %d started (%s)", c.pid, argv0)
	go h.read(c)
	return c, nil
}

// serverEnv is the holder's environment without NOTIFY_SOCKET (the
// holder is the service's main process: a server's readiness reaches
// systemd through Config.Notify only), then extra, then the socket's fd.
func serverEnv(extra []string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "NOTIFY_SOCKET=") })
	env = append(env, extra...)
	return append(env, envFD+"="+strconv.Itoa(serverFD))
}

// supervise waits for c to exit (after SIGTERM once ctx ends), then for
// its reader to apply everything the server sent.
func (h *Holder) supervise(ctx context.Context, c *child) {
	select {
	case <-c.exited:
	case <-c.leaderGone:
	case <-ctx.Done():
		h.notifyStopping()
		if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			h.cfg.Logger.Printf("holder: stop server %d: %v", c.pid, err)
		}
		select {
		case <-c.exited:
		case <-c.leaderGone:
		}
	}
	lingers := false
	select {
	case <-c.exited:
		c.end = c.waitErr
	case <-time.After(lingerWait):
		// Killed (a Go program ends all its threads at once) with a
		// thread still in the kernel: it is reaped later.
		lingers = true
	}
	// Everything the server sent is queued now. Stop the reader's blocking
	// recv (or a send to a server that left its socket to a child); it
	// drains the socket without waiting and returns.
	c.sock.f.SetDeadline(time.Now())
	<-c.readerDone
	if lingers && c.announced == exitUnannounced { // announced: the reader's, done
		c.end = fmt.Errorf("main thread ended, a thread still in the kernel (killed?)")
	}
	c.sock.close()
	h.mu.Lock()
	h.cur = nil
	h.info.ServerPID = 0
	h.mu.Unlock()
}

// read applies c's messages until EOF, or until supervise set the
// deadline and the socket is drained. A protocol error kills the server.
func (h *Holder) read(c *child) {
	defer close(c.readerDone)
	buf := make([]byte, maxMsg)
	oob := make([]byte, oobSize)
	wait := true
	for {
		n, fds, err := c.sock.recv(buf, oob, wait)
		switch {
		case wait && errors.Is(err, os.ErrDeadlineExceeded):
			wait = false
			continue
		case errors.Is(err, io.EOF) || errors.Is(err, errDrained):
			return
		case err != nil:
			err = fmt.Errorf("read: %w", err)
		default:
			err = h.apply(c, buf[:n], fds)
		}
		if err != nil {
			c.protoErr = err
			h.cfg.Logger.Printf("holder: server %d: %v; killing it", c.pid, err)
			c.cmd.Process.Kill()
			return
		}
	}
}

// apply applies one message from c (and owns fds).
func (h *Holder) apply(c *child, b []byte, fds []int) error {
	if len(b) == 0 {
		closeFDs(fds)
		return errors.New("empty message with fds")
	}
	o, p := op(b[0]), b[1:]
	if o != opPutFD && len(fds) > 0 {
		closeFDs(fds)
		return fmt.Errorf("message %#x carries fds", o)
	}
	switch o {
	case opTakeover:
		if err := h.sendTakeover(c); err != nil {
			// The server went away; its exit tells the rest.
			h.cfg.Logger.Printf("holder: takeover to server %d: %v", c.pid, err)
		}
	case opPutFD:
		if len(fds) != 1 || len(p) == 0 || len(p) > maxKey {
			closeFDs(fds)
			return fmt.Errorf("put fd: %d fds, key of %d bytes", len(fds), len(p))
		}
		h.mu.Lock()
		old, ok := h.fds[string(p)]
		h.fds[string(p)] = fds[0]
		h.mu.Unlock()
		if ok {
			unix.Close(old)
		}
	case opDelFD:
		h.mu.Lock()
		old, ok := h.fds[string(p)]
		delete(h.fds, string(p))
		h.mu.Unlock()
		if ok {
			unix.Close(old)
		}
	case opState:
		if len(p) == 0 {
			return errors.New("state: no flags")
		}
		flags, data := p[0], p[1:]
		if flags&chunkFirst != 0 {
			c.pending, c.inState = c.pending[:0], true
		}
		if !c.inState {
			return errors.New("state: a chunk without a first")
		}
		if len(c.pending)+len(data) > maxState {
			return fmt.Errorf("state: over %d bytes", maxState)
		}
		c.pending = append(c.pending, data...)
		if flags&chunkLast != 0 {
			blob := append([]byte{}, c.pending...)
			c.inState = false
			h.mu.Lock()
			h.state = blob
			h.mu.Unlock()
		}
	case opReady:
		h.notifyReady()
	case opExiting:
		if len(p) == 1 && p[0] == 1 {
			c.announced = exitRestart
			h.notifyReloading()
		} else {
			c.announced = exitShutdown
			h.notifyStopping()
		}
	default:
		return fmt.Errorf("unknown message %#x", o)
	}
	return nil
}

// infoSize is the payload of opInfo: holder pid, server pid, restarts
// (u32 each), start (unix ns, u64), has state (u8), state length (u64),
// number of fds (u32).
const infoSize = 4 + 4 + 4 + 8 + 1 + 8 + 4

// sendTakeover sends c what the previous servers left: info, the state's
// chunks, one message per fd, done. Only c's reader calls it, so the fds
// in the snapshot stay open while they are sent.
func (h *Holder) sendTakeover(c *child) error {
	h.mu.Lock()
	info, state := h.info, h.state
	keys := make([]string, 0, len(h.fds))
	for k := range h.fds {
		keys = append(keys, k)
	}
	fds := maps.Clone(h.fds)
	h.mu.Unlock()
	slices.Sort(keys)

	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	m := make([]byte, 1, 1+infoSize)
	m[0] = byte(opInfo)
	m = binary.LittleEndian.AppendUint32(m, uint32(info.HolderPID))
	m = binary.LittleEndian.AppendUint32(m, uint32(c.pid))
	m = binary.LittleEndian.AppendUint32(m, uint32(info.Restarts))
	m = binary.LittleEndian.AppendUint64(m, uint64(info.Start.UnixNano()))
	has := byte(0)
	if state != nil {
		has = 1
	}
	m = append(m, has)
	m = binary.LittleEndian.AppendUint64(m, uint64(len(state)))
	m = binary.LittleEndian.AppendUint32(m, uint32(len(keys)))
	if err := c.sock.send(-1, m); err != nil {
		return err
	}
	if state != nil {
		if err := sendState(c.sock, state); err != nil {
			return err
		}
	}
	for _, k := range keys {
		if err := c.sock.send(fds[k], []byte{byte(opFD)}, []byte(k)); err != nil {
			return err
		}
	}
	return c.sock.send(-1, []byte{byte(opDone)})
}

// sendState sends blob as opState chunks (one empty chunk for an empty
// blob). Callers serialize sends on s.
func sendState(s *sock, blob []byte) error {
	for off := 0; ; {
		n := min(chunkSize, len(blob)-off)
		var flags byte
		if off == 0 {
			flags |= chunkFirst
		}
		if off+n == len(blob) {
			flags |= chunkLast
		}
		if err := s.send(-1, []byte{byte(opState), flags}, blob[off:off+n]); err != nil {
			return err
		}
		off += n
		if off == len(blob) {
			return nil
		}
	}
}

// giveUp hands the state and the fds to cfg.GiveUp and closes the fds.
func (h *Holder) giveUp() {
	h.mu.Lock()
	state, fds := h.state, h.fds
	h.fds = map[string]int{}
	h.mu.Unlock()
	files := make(map[string]*os.File, len(fds))
	for k, fd := range fds {
		files[k] = os.NewFile(uintptr(fd), k)
	}
	if h.cfg.GiveUp != nil {
		h.cfg.GiveUp(state, files)
	}
	for _, f := range files {
		f.Close()
	}
}

// closeAll closes every fd the holder still holds (Run's end).
func (h *Holder) closeAll() {
	h.mu.Lock()
	fds := h.fds
	h.fds = map[string]int{}
	h.mu.Unlock()
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func (h *Holder) notify(state string) {
	if h.cfg.Notify != nil {
		h.cfg.Notify(state)
	}
}

// notifyReady sends READY=1 the first time a server is ready, and the
// first time after each planned restart.
func (h *Holder) notifyReady() {
	h.notifyMu.Lock()
	defer h.notifyMu.Unlock()
	if !h.ready && !h.stopping {
		h.ready = true
		h.notify("READY=1")
	}
}

// notifyReloading sends RELOADING=1 when a ready server announces a
// planned restart.
func (h *Holder) notifyReloading() {
	h.notifyMu.Lock()
	defer h.notifyMu.Unlock()
	if h.ready && !h.stopping {
		h.ready = false
		h.notify("RELOADING=1")
	}
}

// notifyStopping sends STOPPING=1 once.
func (h *Holder) notifyStopping() {
	h.notifyMu.Lock()
	defer h.notifyMu.Unlock()
	if !h.stopping {
		h.stopping = true
		h.notify("STOPPING=1")
	}
}

// lingerWait is how long supervise waits, once the server's main thread
// has gone, for the process to be reaped before it carries on.
const lingerWait = 200 * time.Millisecond

// watchLeader closes gone when the main thread of pid has exited, or
// when the process is reaped (exited). A thread pidfd cannot tell: it
// stays quiet while other threads of the group live (delay_group_leader),
// so the leader's state is read from /proc/PID/stat every leaderPoll.
func watchLeader(pid int, exited <-chan struct{}, gone chan<- struct{}) {
	defer close(gone)
	stat := fmt.Sprintf("/proc/%d/stat", pid)
	tick := time.NewTicker(leaderPoll)
	defer tick.Stop()
	for {
		select {
		case <-exited:
			return
		case <-tick.C:
		}
		if leaderDead(stat) {
			return
		}
	}
}

// leaderPoll is how often watchLeader reads the server's state.
const leaderPoll = 10 * time.Millisecond

// leaderDead says whether /proc/PID/stat shows the thread as a zombie
// (or gone): "PID (comm) S ...", the state after the last ')'.
func leaderDead(stat string) bool {
	b, err := os.ReadFile(stat)
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	st := b[i+2]
	return st == 'Z' || st == 'X'
}
