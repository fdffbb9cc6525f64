// Package daemon is the tundevfs daemon: it owns the jail registry, the
// device manager, the clone handlers and the mounts, and serves the control
// socket that the CLI talks to (one JSON request and one JSON answer per
// connection: typed ops and the fields each takes in protocol.go and
// request.go; a failure's code names its sentinel, errcodes.go, so that
// clients get errors.Is back).
//
// Contract:
//   - The host jail is the network namespace the daemon started in.
//   - Shutdown (Close, SIGTERM, SIGINT) removes every jail, host last: the
//     driver's remove callback destroys the devices, then the daemon's own
//     callback unmounts the jail's mounts. Nothing is left behind.
//   - With ExitWhenIdle the daemon shuts down once it is idle: no user
//     mount, no jail but host, no request in flight. That is checked after
//     every request, when a mount or a jail goes, and IdleGrace after the
//     start (a daemon nobody talks to goes too). An umount that leaves
//     such a daemon idle is answered once the shutdown has destroyed every
//     device and unmounted everything (the client's interfaces are gone
//     when `tundevfs umount` returns); so is an umount during any shutdown.
//     Once the shutdown is decided, a request that would make a mount, a
//     jail or a device is refused with ErrShuttingDown (the CLI then
//     starts a new daemon), never served by the daemon that is going.
//   - The daemon's files live in its state directory (StateDir: root's,
//     0700, one per socket path, never reached through a symbolic link);
//     its mounts are recorded there, and a daemon starting on the same
//     socket cleans the stale mounts its dead predecessor left.
//   - The control socket is 0600. A request is capped at MaxRequest bytes
//     and RequestTimeout; at most MaxConns connections are served at once.
//   - With NetnsDev the daemon mounts the shared per-netns device directory
//     there at start (pernetns.go), the source of containers' bind mounts;
//     it is a user mount and goes at shutdown.
//   - Every network namespace with a jail has the fast path's abstract
//     socket (fastpath_linux.go), closed with the last jail on it.
//   - Under a holder (Options.Holder, takeover_linux.go) the daemon hands
//     it every fd that keeps state alive and, before each reply that
//     shows a change, a snapshot of its state; a daemon started by the
//     holder after a crash takes both over and serves on, and Restart
//     hands over to a new one on purpose.
//
// Lock order: Daemon.stateMu, then Daemon.mu, then anything below (jails,
// driver, fs). Daemon.mu is never held while unmounting or removing a jail.
// fastpathServer.mu is never held with Daemon.mu.
package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/tundevfs/tundevfs/clonehandler"
	"github.com/tundevfs/tundevfs/driver"
	"github.com/tundevfs/tundevfs/fs"
	"github.com/tundevfs/tundevfs/holder"
	"github.com/tundevfs/tundevfs/jails"
)

// Options configure a daemon.
type Options struct {
	Socket       string
	ExitWhenIdle bool
	Logger       *log.Logger
	Debug        bool
	// DeviceLimit is the per-jail device limit (0: driver.DefaultDeviceLimit).
	DeviceLimit int
	// IdleGrace is how long an ExitWhenIdle daemon waits after its start
	// before an idleness check of its own (0: DefaultIdleGrace).
	IdleGrace time.Duration
	// HostNetns, if set, is the path of the host jail's network namespace
	// (`/run/netns/X`); by default it is the daemon's own. A daemon run
	// inside another program (the Go benchmarks) names it, since the
	// daemon's own namespace is that of the process, not of the thread
	// that calls New.
	HostNetns string
	// NetnsDev, if set, is where the daemon mounts the shared per-netns
	// device directory at start (pernetns.go).
	NetnsDev string
	// FuseTransport is the FUSE transport of every mount: auto, uring
	// or dev (fs.Transport); empty takes fs.TransportEnv, else auto.
	FuseTransport fs.Transport
	// Holder, if set, is the holder this daemon serves under
	// (takeover_linux.go): the daemon takes over what the previous
	// server left and keeps the holder up to date.
	Holder *holder.Conn
}

// DefaultIdleGrace is the default Options.IdleGrace.
const DefaultIdleGrace = 10 * time.Second

// Daemon is a running tundevfs daemon.
type Daemon struct {
	opts    Options
	logger  *log.Logger
	jails   *jails.Registry
	devices *driver.Manager
	clones  *clonehandler.Registry
	ln      *net.UnixListener
	unsock  func() // removes the socket if it is still ours
	stateFd int    // the state directory; see stateMu
	unreg   func()
	slots   chan struct{}   // one per connection being served (MaxConns)
	fast    *fastpathServer // the fast path's sockets (fastpath_linux.go)
	unregFP func()
	started time.Time
	journal *journal    // nil without a holder
	info    holder.Info // the holder's, if any
	// restarting is closed once a planned restart has quiesced the
	// daemon and saved its state: the process must exit now (Restart).
	restarting  chan struct{}
	restartOnce sync.Once

	done     chan struct{} // closed when shutdown is complete
	drained  chan struct{} // closed once shutdown has removed every jail, device and mount
	stopOnce sync.Once
	conns    sync.WaitGroup

	stateMu sync.Mutex // guards stateFd (-1 once closed) and the files below it

	mu       sync.Mutex // guards the fields below
	mounts   map[string]*fs.Mount
	internal map[string]bool       // mounts the daemon made for jexec
	owners   map[watchKey]*os.File // pidfds of processes whose exit removes a jail
	active   int                   // requests being handled (not ping)
	closed   bool
	// forgotten: per mount, closed once watchMount is done with it
	// (forgotten, its idle jail removed, idleness checked).
	forgotten map[*fs.Mount]chan struct{}
}

// New starts a daemon: it opens the host namespace and listens on the
// control socket. Serve answers requests.
func New(opts Options) (*Daemon, error) {
	if opts.Socket == "" {
		opts.Socket = DefaultSocket
	}
	if abs, err := filepath.Abs(opts.Socket); err == nil {
		opts.Socket = abs
	}
	if opts.IdleGrace <= 0 {
		opts.IdleGrace = DefaultIdleGrace
	}
	if opts.Logger == nil {
		opts.Logger = log.New(os.Stderr, "tundevfs: ", log.LstdFlags)
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return nil, fmt.Errorf("start daemon: %w (is the tun module loaded?)", err)
	}
	host, err := jails.CurrentNetns()
	if opts.HostNetns != "" {
		host, err = jails.OpenNetns(opts.HostNetns)
	}
	if err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	var prev *serverState
	var prevFds map[string]*os.File
	var info holder.Info
	if opts.Holder != nil {
		blob, fds, hi, err := opts.Holder.Takeover()
		if err != nil {
			host.Close()
			return nil, fmt.Errorf("start daemon: %w", err)
		}
		info, prevFds = hi, fds
		if blob != nil {
			if prev, err = decodeState(blob); err != nil {
				host.Close()
				return nil, fmt.Errorf("start daemon: %w", err)
			}
		}
	}
	have := map[string]bool{}
	for key := range prevFds {
		have[key] = true
	}
	stateFd, err := stateDirFd(opts.Socket)
	if err != nil {
		host.Close()
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	var ln *net.UnixListener
	var unsock func()
	if prev != nil {
		ln, err = takeListener(prevFds)
		unsock = ownSocket(opts.Socket)
	} else {
		ln, unsock, err = listen(opts.Socket)
	}
	if err != nil {
		dropStateDir(opts.Socket, stateFd)
		host.Close()
		return nil, err
	}
	d := &Daemon{
		opts:       opts,
		logger:     opts.Logger,
		jails:      jails.NewRegistry(host, hostSettings(opts.DeviceLimit)),
		clones:     &clonehandler.Registry{},
		ln:         ln,
		unsock:     unsock,
		stateFd:    stateFd,
		slots:      make(chan struct{}, MaxConns),
		done:       make(chan struct{}),
		drained:    make(chan struct{}),
		mounts:     make(map[string]*fs.Mount),
		internal:   make(map[string]bool),
		forgotten:  make(map[*fs.Mount]chan struct{}),
		owners:     make(map[watchKey]*os.File),
		started:    time.Now(),
		info:       info,
		restarting: make(chan struct{}),
	}
	if opts.Holder != nil {
		d.journal = newJournal(opts.Holder, d, have)
	}
	d.devices = driver.NewManager(d.jails, opts.Logger)
	if err := d.devices.Attach(d.jails.Host()); err != nil {
		ln.Close()
		unsock()
		dropStateDir(opts.Socket, stateFd)
		host.Close()
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	if d.journal != nil {
		d.devices.SetOnChange(d.journal.Changed)
		d.devices.SetHeldElsewhere()
		d.devices.SetOnNewFile(func(j *jails.Jail, ino uint64, f *os.File) {
			d.journal.putEarly(tunKey(j.ID(), ino), f)
		})
	}
	if prev == nil {
		// The socket is ours, so no daemon answers on it: what a
		// previous one recorded and left is stale.
		d.cleanStale()
	}
	d.clones.Add(clonehandler.TunTap{M: d.devices})
	// After the driver's callback: devices first, so blocked readers
	// return, then the mounts.
	d.unreg = d.jails.RegisterRemove(d.unmountJail)
	d.fast = newFastpathServer(d)
	d.unregFP = d.jails.RegisterRemove(d.fast.removeJail)
	d.fast.addJail(d.jails.Host(), !d.jails.Host().Settings().NoFastPath)
	if prev != nil {
		d.restore(prev, prevFds, have)
	}
	d.saveState()
	if opts.NetnsDev != "" && d.mountAt(opts.NetnsDev) == nil {
		if err := d.MountPerNetns(opts.NetnsDev); err != nil {
			d.Close()
			return nil, fmt.Errorf("start daemon: %w", err)
		}
	}
	if d.journal != nil {
		d.journal.Changed()
		d.journal.Sync()
		go d.journal.run(d.done)
		go d.restartOnRequest()
	}
	return d, nil
}

// hostSettings are the host jail's: the defaults, with the daemon's
// device limit (0: driver.DefaultDeviceLimit).
func hostSettings(limit int) jails.Settings {
	s := DefaultSettings()
	if limit > 0 {
		s.MaxDevices = limit
	}
	return s
}

// Jails returns the jail registry.
func (d *Daemon) Jails() *jails.Registry { return d.jails }

// Devices returns the device manager.
func (d *Daemon) Devices() *driver.Manager { return d.devices }

// Done is closed once the daemon has shut down.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// Serve answers control requests until the daemon shuts down. At most
// MaxConns connections are served at once; more wait in the backlog.
func (d *Daemon) Serve() {
	if d.opts.ExitWhenIdle {
		idle := time.AfterFunc(d.opts.IdleGrace, func() { d.checkIdle() })
		defer idle.Stop()
	}
	for {
		select {
		case d.slots <- struct{}{}:
		case <-d.done:
			return
		}
		c, err := d.ln.AcceptUnix()
		if err != nil {
			<-d.slots
			if errors.Is(err, net.ErrClosed) {
				return
			}
			d.logger.Printf("control socket: %v", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		d.conns.Add(1)
		go func() {
			defer d.conns.Done()
			d.serveConn(c)
		}()
	}
}

// dedicatedThread locks the calling goroutine to its thread for the rest
// of its life, so that the runtime ends the thread when the goroutine
// ends. Request handlers and jail removals call it: they block in slow
// syscalls (closing TUN fds, netns teardown), and the runtime makes a new
// thread for every handler blocked at once, which it would otherwise keep
// idle for good (100 jails in parallel: 8 threads -> 71, never down).
func dedicatedThread() {
	runtime.LockOSThread() // never unlocked, on purpose
}

// serveConn answers one request on c; it holds one of d.slots, which it
// gives back when done, or before a long wait.
func (d *Daemon) serveConn(c *net.UnixConn) {
	defer c.Close()
	release := sync.OnceFunc(func() { <-d.slots })
	defer release()
	c.SetReadDeadline(time.Now().Add(RequestTimeout))
	req, err := ReadRequest(c)
	var resp Response
	if err != nil {
		resp = failure(err)
	} else {
		if req.Op == OpWait {
			release() // it may wait for long, and costs one goroutine
		} else {
			dedicatedThread() // not before: a locked goroutine parks its thread
		}
		counted := req.Op != OpPing
		closing := false
		if counted {
			// Counted under d.mu, where checkIdle decides: either
			// this request keeps the daemon from going idle, or it
			// sees the shutdown that was decided first.
			d.mu.Lock()
			d.active++
			closing = d.closed
			d.mu.Unlock()
		}
		var data any
		if closing && makesState(req.Op) {
			err = fmt.Errorf("%s: %w", req.Op, ErrShuttingDown)
		} else {
			data, err = d.handle(req, peerPID(c))
		}
		if counted && req.Op != OpStatus {
			// Before the answer: what it made must survive a crash.
			d.journal.Changed()
			d.journal.Sync()
		}
		if counted {
			d.mu.Lock()
			d.active--
			d.mu.Unlock()
			if req.Op == OpUmount && err == nil {
				d.awaitShutdown(d.checkIdle())
			} else {
				defer d.checkIdle()
			}
		}
		if err != nil {
			resp = failure(err)
		} else {
			resp.OK = true
			if data != nil {
				resp.Data, err = json.Marshal(data)
				if err != nil {
					resp = failure(err)
				}
			}
		}
	}
	b, _ := json.Marshal(resp)
	c.SetWriteDeadline(time.Now().Add(RequestTimeout))
	c.Write(append(b, '\n'))
}

// handle runs one request that ReadRequest accepted; peer is the
// client's pid (0 if unknown).
func (d *Daemon) handle(req Request, peer int) (any, error) {
	switch req.Op {
	case OpPing:
		return os.Getpid(), nil
	case OpMount:
		if req.PerNetns {
			if req.Jail != "" {
				return nil, fmt.Errorf("mount %s: a per-netns mount shows every jail; no --jail", req.Dir)
			}
			return nil, d.MountPerNetns(req.Dir)
		}
		return nil, d.Mount(req.Jail, req.Dir, MountOptions{AllowOther: req.AllowOther})
	case OpPerNetnsEnsure:
		return nil, d.ensurePerNetns(req.Dir)
	case OpUmount:
		return nil, d.Unmount(req.Dir)
	case OpWait:
		return nil, d.waitMount(req.Dir)
	case OpStatus:
		return d.Status(), nil
	case OpIfconfig:
		return d.ifconfig(req.Jail, req.Args)
	case OpSysctl:
		return d.sysctl(req.Args)
	case OpStacks:
		buf := make([]byte, 1<<20)
		return string(buf[:runtime.Stack(buf, true)]), nil
	case OpJailCreate:
		p, err := ParseJailParams(req.Args)
		if err != nil {
			return nil, err
		}
		p.HasParent = req.Command
		if p.HasParent {
			p.ClientPID = peer
		}
		j, err := d.CreateJail(p)
		if err != nil {
			return nil, err
		}
		return d.jailInfo(j), nil
	case OpJailWatch:
		return nil, d.watchCommand(req.Jail, req.PID, peer)
	case OpJailRemove:
		return nil, d.RemoveJail(req.Jail)
	case OpJls:
		return d.jailInfos(req.Dying), nil
	case OpJailExec:
		return d.execInfo(req.Jail)
	case OpShutdown:
		go d.Close()
		return nil, nil
	case OpRestart:
		return nil, d.Restart()
	}
	// ReadRequest refuses what opFields does not list.
	return nil, fmt.Errorf("%w %q (no handler)", ErrUnknownOp, string(req.Op))
}

// jail finds a jail by name; empty means host.
func (d *Daemon) jail(name string) (*jails.Jail, error) {
	if name == "" {
		name = jails.HostName
	}
	j, err := d.jails.Get(name)
	if err != nil {
		return nil, err
	}
	if j.State() != jails.Alive {
		return nil, fmt.Errorf("jail %s: %w", name, jails.ErrDying)
	}
	return j, nil
}

// MountOptions are what a client chooses about a mount of a jail's device
// directory; the rest (debug logging, the logger) is the daemon's.
type MountOptions struct {
	// AllowOther lets users other than the mounter use the mount.
	AllowOther bool
}

// IsTundevfsMount reports whether dir is a tundevfs mount point, live or
// left by a dead daemon (the CLI's umount of a stale mount asks it).
func IsTundevfsMount(dir string) bool { return fs.IsTundevfsMount(dir) }

// Mount mounts jail's device directory at dir.
func (d *Daemon) Mount(jail, dir string, mo MountOptions) error {
	if dir == "" || !filepath.IsAbs(dir) {
		return fmt.Errorf("mount %q: need an absolute directory", dir)
	}
	dir, err := resolveMountPoint(dir)
	if err != nil {
		return err
	}
	if err := checkMountPoint(dir); err != nil {
		return err
	}
	j, err := d.jail(jail)
	if err != nil {
		return fmt.Errorf("mount %s: %w", dir, err)
	}
	return d.mount(j, dir, fs.Options{AllowOther: mo.AllowOther, Debug: d.opts.Debug}, false)
}

// mountInternal mounts a jail's /dev for commands run in it: standard
// devices included, not a user mount (it does not keep the jail).
func (d *Daemon) mountInternal(j *jails.Jail, dir string) error {
	return d.mount(j, dir, fs.Options{StdDevices: true, AllowOther: true, Debug: d.opts.Debug}, true)
}

func (d *Daemon) mount(j *jails.Jail, dir string, opts fs.Options, internal bool) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fmt.Errorf("mount %s: %w", dir, ErrShuttingDown)
	}
	if _, ok := d.mounts[dir]; ok {
		d.mu.Unlock()
		return fmt.Errorf("mount %s: already mounted", dir)
	}
	d.mounts[dir] = nil // reserve
	d.internal[dir] = internal
	d.mu.Unlock()
	if opts.Transport == "" {
		opts.Transport = d.opts.FuseTransport
	}
	if d.journal != nil {
		opts.Transport = crashProofTransport(opts.Transport, d.logger)
	}
	d.saveState() // recorded before it exists: a kill -9 may come any time

	opts.Logger = d.logger
	opts.Journal = d.journal
	m, err := fs.MountDir(d.devices, d.clones, j, dir, opts)
	d.mu.Lock()
	if err != nil {
		delete(d.mounts, dir)
		delete(d.internal, dir)
		d.mu.Unlock()
		d.saveState()
		return err
	}
	if d.closed {
		// A shutdown (a signal, not idleness: the reservation kept
		// the daemon busy) began while the mount was being made, and
		// may have passed it by: it must not outlive the daemon.
		delete(d.mounts, dir)
		delete(d.internal, dir)
		d.mu.Unlock()
		if err := m.Unmount(); err != nil {
			d.logger.Printf("mount %s during shutdown: %v", dir, err)
		}
		d.saveState()
		return fmt.Errorf("mount %s: %w", dir, ErrShuttingDown)
	}
	d.mounts[dir] = m
	forgotten := make(chan struct{})
	d.forgotten[m] = forgotten
	d.mu.Unlock()
	go d.watchMount(m, forgotten)
	return nil
}

// watchMount forgets a mount once it is gone, however it went, and then
// closes forgotten.
func (d *Daemon) watchMount(m *fs.Mount, forgotten chan struct{}) {
	<-m.Done()
	d.mu.Lock()
	internal := d.internal[m.Dir()]
	if d.mounts[m.Dir()] == m {
		delete(d.mounts, m.Dir())
		delete(d.internal, m.Dir())
	}
	delete(d.forgotten, m)
	d.mu.Unlock()
	d.journal.Changed()
	if internal {
		d.removeJexecDir(m.Dir())
	}
	d.saveState()
	if !internal {
		if removed := d.maybeRemoveIdle(m.Jail()); removed != nil {
			<-removed
		}
	}
	d.checkIdle()
	close(forgotten)
}

// awaitShutdown waits, if the daemon is shutting down (started says the
// caller's checkIdle started it; else a signal or another idleness check
// may have), until every jail, device and mount is gone, for at most
// shutdownWait.
func (d *Daemon) awaitShutdown(started bool) {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if !started && !closed {
		return
	}
	select {
	case <-d.drained:
	case <-time.After(shutdownWait):
		d.logger.Printf("umount: shutdown not finished after %v; answering", shutdownWait)
	}
}

// shutdownWait bounds how long an umount answer waits for the shutdown.
const shutdownWait = 30 * time.Second

// checkIdle shuts an ExitWhenIdle daemon down when it is idle: no user
// mount (made or being made), no alive jail but host, no request being
// handled. It reports whether it started the shutdown.
//
// The decision and d.closed are one step under d.mu, where a request
// counts itself (active) and a mount reserves its directory: a request
// that comes later sees closed and is refused with ErrShuttingDown (the
// CLI starts a new daemon and tries again), so no mount or jail is made
// by a daemon that is going away.
func (d *Daemon) checkIdle() bool {
	if !d.opts.ExitWhenIdle {
		return false
	}
	d.mu.Lock()
	idle := !d.closed && d.active == 0
	for dir := range d.mounts {
		if !d.internal[dir] {
			idle = false
		}
	}
	if idle {
		for _, j := range d.jails.List() {
			if !j.IsHost() && j.State() != jails.Gone {
				idle = false
			}
		}
	}
	if idle {
		d.closed = true // Close sets it too; from here no new state
	}
	d.mu.Unlock()
	if idle {
		if testHookIdle != nil {
			testHookIdle()
		}
		d.logger.Printf("idle: no mount, no jail; shutting down")
		go d.Close()
	}
	return idle
}

// makesState says whether op makes something (a mount, a jail, a
// device) that a daemon shutting down would not keep: such a request is
// refused once the shutdown is decided.
func makesState(op Op) bool {
	switch op {
	case OpMount, OpPerNetnsEnsure, OpJailCreate, OpIfconfig:
		return true
	}
	return false
}

// testHookIdle, set by tests only, runs once checkIdle has decided to
// shut down, before the shutdown starts.
var testHookIdle func()

// mountAt returns the daemon's mount at dir, or nil. A path that is not
// one of its mount points is tried with its symbolic links resolved.
func (d *Daemon) mountAt(dir string) *fs.Mount {
	dir = filepath.Clean(dir)
	d.mu.Lock()
	m := d.mounts[dir]
	d.mu.Unlock()
	if m != nil {
		return m
	}
	real, err := resolveParent(dir)
	if err != nil || real == dir {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mounts[real]
}

// Unmount unmounts dir.
func (d *Daemon) Unmount(dir string) error {
	m := d.mountAt(dir)
	if m == nil {
		return fmt.Errorf("umount %s: %w", dir, ErrNotMounted)
	}
	d.mu.Lock()
	forgotten := d.forgotten[m]
	d.mu.Unlock()
	err := m.Unmount()
	if err != nil {
		select {
		case <-m.Done():
			// Ended all the same (its path no longer led to it): the
			// daemon forgets it as after any unmount.
		default:
			return err
		}
	}
	// Done with once the daemon has forgotten it and removed its jail if
	// that was the jail's last mount, so the caller sees the state after.
	if forgotten != nil {
		<-forgotten
	}
	return err
}

func (d *Daemon) waitMount(dir string) error {
	m := d.mountAt(dir)
	if m == nil {
		return fmt.Errorf("wait %s: not mounted", dir)
	}
	<-m.Done()
	return nil
}

// unmountJail is the daemon's jail remove callback: the jail's mounts go,
// and so does the watch on its process.
func (d *Daemon) unmountJail(j *jails.Jail) {
	d.stopOwnerWatch(j)
	d.mu.Lock()
	var ms []*fs.Mount
	for _, m := range d.mounts {
		if m != nil && m.Jail() == j {
			ms = append(ms, m)
		}
	}
	d.mu.Unlock()
	for _, m := range ms {
		if err := m.Unmount(); err != nil {
			d.logger.Printf("remove jail %s: %v", j.Name(), err)
		}
	}
}

// Status reports every jail, mount and device with their counts.
func (d *Daemon) Status() Status {
	total, readers := goroutines()
	st := Status{
		PID:         os.Getpid(),
		ServerPID:   os.Getpid(),
		HolderPID:   d.info.HolderPID,
		Started:     d.started,
		Restarts:    d.info.Restarts,
		Goroutines:  total,
		FuseReaders: readers,
		Fds:         countDir("/proc/self/fd"),
		Threads:     countDir("/proc/self/task"),
		UnitsInUse:  d.devices.UnitsInUse(),
		Jails:       []JailInfo{},
		Mounts:      []MountInfo{},
		Devices:     []driver.Info{},
	}
	for _, j := range d.jails.List() {
		st.Jails = append(st.Jails, d.jailInfo(j))
	}
	d.mu.Lock()
	for dir, m := range d.mounts {
		if m != nil {
			st.Mounts = append(st.Mounts, MountInfo{Dir: dir, Jail: m.Jail().Name(), Mode: mountMode(m), Transport: m.Transport()})
		}
	}
	d.mu.Unlock()
	for _, dev := range d.devices.All() {
		st.Devices = append(st.Devices, dev.Info())
	}
	return st
}

// goroutines counts all goroutines and, among them, go-fuse's request
// readers waiting on /dev/fuse: a pool that grows and shrinks with load (up
// to GOMAXPROCS or more per mount), so leak checks leave them out. The
// goroutine running Server.Serve is one of those readers until its own
// read loop ends under load, and then waits in Serve for the others: it
// counts as a reader in both states, so that leak checks do not see it
// change sides. Both come from one snapshot.
func goroutines() (total, fuseReaders int) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.HasPrefix(g, "goroutine ") {
			continue
		}
		total++
		reading := strings.Contains(g, "fuse.(*fuseFD).readRequest") && strings.Contains(g, "fuse.(*Server).loop")
		serving := strings.Contains(g, "sync.(*WaitGroup).Wait") && strings.Contains(g, "fuse.(*Server).Serve")
		// FUSE over io_uring: a thread per CPU queue, and its pump,
		// which starts the first time the queue runs out of entries.
		ring := strings.Contains(g, "fuse.(*uringQueue).run") || strings.Contains(g, "fuse.(*uringQueue).pumpLoop")
		if reading || serving || ring {
			fuseReaders++
		}
	}
	return total, fuseReaders
}

func countDir(p string) int {
	ents, err := os.ReadDir(p)
	if err != nil {
		return -1
	}
	return len(ents)
}

// ifconfig runs `ifconfig [-j JAIL] ARGS`: NAME create, NAME destroy, -C.
func (d *Daemon) ifconfig(jail string, args []string) (any, error) {
	if len(args) == 1 && args[0] == "-C" {
		names := make([]string, 0, len(driver.Drivers))
		for _, drv := range driver.Drivers {
			names = append(names, drv.Name)
		}
		return strings.Join(names, " "), nil
	}
	if len(args) != 2 {
		return nil, fmt.Errorf("ifconfig: usage: ifconfig [-j jail] {tun|tunN} create | NAME destroy | NAME [-]link0 | -C")
	}
	j, err := d.jail(jail)
	if err != nil {
		return nil, fmt.Errorf("ifconfig: %w", err)
	}
	switch args[1] {
	case "create":
		dev, err := clonehandler.IfconfigCreate(d.devices, j, args[0])
		if err != nil {
			return nil, fmt.Errorf("ifconfig: %w", err)
		}
		return dev.Name(), nil
	case "destroy":
		if err := d.devices.DestroyByName(j, args[0]); err != nil {
			return nil, fmt.Errorf("ifconfig: %w", err)
		}
		return nil, nil
	case "link0", "-link0":
		// Linux has no IFF_LINK0: the device keeps it (a tap with link0
		// keeps its state on last close).
		if err := d.devices.SetLink0ByName(j, args[0], args[1] == "link0"); err != nil {
			return nil, fmt.Errorf("ifconfig: %w", err)
		}
		return nil, nil
	}
	return nil, fmt.Errorf("ifconfig: unknown action %q (create, destroy, link0, -link0)", args[1])
}

// sysctl reads or sets the knobs: no args lists all, NAME reads, NAME=V sets.
func (d *Daemon) sysctl(args []string) (any, error) {
	k := d.devices.Knobs()
	if len(args) == 0 {
		args = k.Names()
	}
	var out []string
	for _, a := range args {
		name, val, set := strings.Cut(a, "=")
		old, err := k.Get(name)
		if err != nil {
			return nil, err
		}
		if !set {
			out = append(out, fmt.Sprintf("%s: %d", name, old))
			continue
		}
		if err := k.Set(name, val); err != nil {
			return nil, err
		}
		cur, _ := k.Get(name)
		out = append(out, fmt.Sprintf("%s: %d -> %d", name, old, cur))
	}
	return out, nil
}

// Close shuts the daemon down: every jail removed (devices destroyed,
// mounts unmounted), host last; the socket closed. It waits for all of it.
func (d *Daemon) Close() error {
	var err error
	first := false
	d.stopOnce.Do(func() {
		first = true
		d.notifyStopping()
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		d.ln.Close()
		err = d.jails.Shutdown()
		d.unreg()
		d.unregFP()
		d.devices.Close()
		// Mounts of no jail left? None should be: every jail's went
		// with it.
		d.mu.Lock()
		var left []*fs.Mount
		for _, m := range d.mounts {
			if m != nil {
				left = append(left, m)
			}
		}
		d.mu.Unlock()
		for _, m := range left {
			m.Unmount()
		}
		d.unsock()
		d.removeState()
		close(d.drained)
		// Let answers in flight (the umount that made us idle) reach
		// their clients before the process exits.
		flushed := make(chan struct{})
		go func() { d.conns.Wait(); close(flushed) }()
		select {
		case <-flushed:
		case <-time.After(5 * time.Second):
			d.logger.Printf("shutdown: control connections still open after 5s")
		}
		close(d.done)
	})
	if !first {
		<-d.done
	}
	return err
}
