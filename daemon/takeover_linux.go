package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/driver"
	"github.com/tundevfs/tundevfs/fs"
	"github.com/tundevfs/tundevfs/holder"
	"github.com/tundevfs/tundevfs/jails"
)

// Crash-proof serving (issue 13, SPEC §11). Under a holder (package
// holder) the daemon is the server process: it hands the holder a dup of
// every fd that keeps state alive (the control socket, every jail's
// namespace and watched pidfd, every device's TUN fd, every mount's
// /dev/fuse fd) and, after each change and before the reply that makes
// it visible, a snapshot of its state (serverState). A new server started
// after a crash takes both over (restore) and carries on: the kernel
// resends the FUSE requests the dead one had read.

// stateVersion is the version of serverState; a server refuses another.
const stateVersion = 1

// serverState is the daemon's state as a new server needs it. JSON.
type serverState struct {
	Version  int                  `json:"version"`
	Started  time.Time            `json:"started"`
	NextJail int                  `json:"next_jail"`
	Jails    []jailRecord         `json:"jails,omitempty"`
	NextIno  uint64               `json:"next_ino"`
	Devices  []driver.DeviceState `json:"devices,omitempty"`
	Mounts   []mountRecord        `json:"mounts,omitempty"`
	Knobs    map[string]int64     `json:"knobs,omitempty"`
}

type jailRecord struct {
	jails.JailState
	// Watches are the kinds of the jail's process watches (its pidfds).
	Watches []string `json:"watches,omitempty"`
}

type mountRecord struct {
	Internal bool          `json:"internal,omitempty"`
	State    fs.MountState `json:"state"`
}

// The holder's fd keys.
const ctlKey = "ctl"

func netnsKey(jid int) string { return "netns/" + strconv.Itoa(jid) }
func tunKey(jid int, ino uint64) string {
	return "tun/" + strconv.Itoa(jid) + "/" + strconv.FormatUint(ino, 10)
}
func fuseKey(dir string) string            { return "fuse/" + dir }
func pidfdKey(jid int, kind string) string { return "pidfd/" + strconv.Itoa(jid) + "/" + kind }

// dupFile duplicates the fd of f (close-on-exec); an f closed meanwhile
// fails instead of duplicating a reused number.
func dupFile(f *os.File, name string) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	return os.NewFile(uintptr(nfd), name), nil
}

func dupFd(fd int, name string) (*os.File, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(nfd), name), nil
}

// fdSource dups an fd the holder must keep, when it does not have it yet.
type fdSource func() (*os.File, error)

// snapshot is the daemon's state and the fds it needs.
func (d *Daemon) snapshot() (*serverState, map[string]fdSource) {
	fds := map[string]fdSource{
		ctlKey: func() (*os.File, error) { return d.ln.File() },
	}
	st := &serverState{Version: stateVersion, Started: d.started, Knobs: map[string]int64{}}
	k := d.devices.Knobs()
	for _, name := range k.Names() {
		if v, err := k.Get(name); err == nil {
			st.Knobs[name] = v
		}
	}
	var jstates []jails.JailState
	jstates, st.NextJail = d.jails.Export()
	d.mu.Lock()
	watches := map[int][]string{}
	for key, f := range d.owners {
		watches[key.j.ID()] = append(watches[key.j.ID()], key.kind)
		fds[pidfdKey(key.j.ID(), key.kind)] = func() (*os.File, error) { return dupFile(f, "pidfd") }
	}
	var mounts []*fs.Mount
	internal := map[*fs.Mount]bool{}
	for dir, m := range d.mounts {
		if m != nil {
			mounts = append(mounts, m)
			internal[m] = d.internal[dir]
		}
	}
	d.mu.Unlock()
	for _, js := range jstates {
		j, err := d.jails.Get(js.Name)
		if err != nil {
			continue
		}
		rec := jailRecord{JailState: js, Watches: watches[js.ID]}
		sort.Strings(rec.Watches)
		st.Jails = append(st.Jails, rec)
		fds[netnsKey(js.ID)] = func() (*os.File, error) {
			if err := j.Hold(); err != nil {
				return nil, err
			}
			defer j.Release()
			return dupFd(j.Netns().Fd(), "netns")
		}
	}
	st.Devices, st.NextIno = d.devices.Export()
	for _, ds := range st.Devices {
		dev := d.devices.ByIno(ds.Ino)
		if dev == nil {
			continue
		}
		if ds.Dying || ds.Dead {
			continue // destroy deletes the interface; the holder lets go
		}
		fds[tunKey(ds.Jail, ds.Ino)] = func() (*os.File, error) {
			if f := dev.File(); f != nil {
				return f, nil
			}
			return nil, fmt.Errorf("device %s: dying", dev.DevName())
		}
	}
	for _, m := range mounts {
		select {
		case <-m.Done():
			continue
		default:
		}
		st.Mounts = append(st.Mounts, mountRecord{Internal: internal[m], State: m.Export()})
		fds[fuseKey(m.Dir())] = func() (*os.File, error) {
			fd, err := m.DupDevFD()
			if err != nil {
				return nil, err
			}
			return os.NewFile(uintptr(fd), "fuse"), nil
		}
	}
	sort.Slice(st.Mounts, func(a, b int) bool { return st.Mounts[a].State.Dir < st.Mounts[b].State.Dir })
	return st, fds
}

// journal sends the daemon's state to the holder: Changed after a change,
// Sync before the reply that shows it (group commit: one snapshot covers
// every change made before it started). A nil journal does nothing.
type journal struct {
	conn    *holder.Conn
	d       *Daemon
	changes atomic.Uint64
	kick    chan struct{}

	mu     sync.Mutex // guards the fields below
	cond   *sync.Cond // on mu: a save ended
	saving bool
	saved  uint64          // changes covered by the last snapshot saved
	have   map[string]bool // the fd keys the holder keeps
	// early are the keys putEarly sent that no snapshot named yet.
	early  map[string]time.Time
	failed bool // a send failed: the holder is gone
}

func newJournal(conn *holder.Conn, d *Daemon, have map[string]bool) *journal {
	jn := &journal{conn: conn, d: d, kick: make(chan struct{}, 1), have: have, early: map[string]time.Time{}}
	jn.cond = sync.NewCond(&jn.mu)
	return jn
}

// Changed says something in the state changed; a save follows soon even
// if nobody calls Sync (a FORGET, a close). Lock-free: called under the
// locks of the state it describes.
func (jn *journal) Changed() {
	if jn == nil {
		return
	}
	jn.changes.Add(1)
	select {
	case jn.kick <- struct{}{}:
	default:
	}
}

// run saves what changed without a Sync, shortly after.
func (jn *journal) run(done <-chan struct{}) {
	for {
		select {
		case <-jn.kick:
		case <-done:
			return
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-done:
			return
		}
		jn.Sync()
	}
}

// Sync returns once a snapshot that includes every change made before
// the call is with the holder.
func (jn *journal) Sync() {
	if jn == nil {
		return
	}
	target := jn.changes.Load()
	jn.mu.Lock()
	defer jn.mu.Unlock()
	for jn.saved < target && !jn.failed {
		if jn.saving {
			jn.cond.Wait()
			continue
		}
		jn.saving = true
		cur := jn.changes.Load()
		have := jn.have
		jn.mu.Unlock()
		err := jn.save(have)
		jn.mu.Lock()
		jn.saving = false
		if err != nil {
			jn.failed = true
			jn.d.logger.Printf("holder: %v (state no longer saved)", err)
		} else {
			jn.saved = max(jn.saved, cur)
		}
		jn.cond.Broadcast()
	}
}

// save sends the fds the holder lacks, the snapshot, then drops the fds
// the snapshot no longer names. Only one save runs at a time (saving), so
// have is its own.
func (jn *journal) save(have map[string]bool) error {
	st, fds := jn.d.snapshot()
	for key, src := range fds {
		if have[key] {
			continue
		}
		f, err := src()
		if err != nil {
			continue // gone meanwhile: the snapshot after says so
		}
		err = jn.conn.PutFD(key, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("put fd %s: %w", key, err)
		}
		have[key] = true
	}
	blob, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	if err := jn.conn.SaveState(blob); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	for key := range have {
		if _, ok := fds[key]; ok {
			delete(jn.early, key)
			continue
		}
		if t, ok := jn.early[key]; ok && time.Since(t) < earlyTimeout {
			continue // a device being made
		}
		delete(jn.early, key)
		if err := jn.conn.DelFD(key); err != nil {
			return fmt.Errorf("drop fd %s: %w", key, err)
		}
		delete(have, key)
	}
	return nil
}

// decodeState reads a snapshot.
func decodeState(blob []byte) (*serverState, error) {
	var st serverState
	if err := json.Unmarshal(blob, &st); err != nil {
		return nil, fmt.Errorf("decode state: %w", err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("decode state: version %d, this server reads %d (an upgrade across versions needs a full restart)", st.Version, stateVersion)
	}
	return &st, nil
}

// takeListener is the control socket the previous server listened on.
func takeListener(fds map[string]*os.File) (*net.UnixListener, error) {
	f := fds[ctlKey]
	if f == nil {
		return nil, fmt.Errorf("take over: no control socket")
	}
	delete(fds, ctlKey)
	defer f.Close()
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("take over: control socket: %w", err)
	}
	ul, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		return nil, fmt.Errorf("take over: control socket is not a unix socket")
	}
	ul.SetUnlinkOnClose(false)
	return ul, nil
}

// restore rebuilds what st describes from the fds the holder kept: jails,
// then devices, then mounts. What cannot be rebuilt (an fd missing) is
// dropped and logged; the fds left over are closed.
func (d *Daemon) restore(st *serverState, fds map[string]*os.File, have map[string]bool) {
	byID := map[int]*jails.Jail{0: d.jails.Host()}
	take := func(key string) *os.File {
		f := fds[key]
		delete(fds, key)
		return f
	}
	dropLeftovers := func() {
		// What the dead server handed over but never saved in a
		// state: the holder lets go too, before any key is used again.
		for key, f := range fds {
			if j := orphanJail(key, byID); j != nil {
				// Made, handed over early, never saved: the dead
				// process may still hold it, so it is deleted.
				if err := d.devices.DeleteOrphan(j, f); err != nil {
					d.logger.Printf("take over: %s: %v", key, err)
				}
			} else {
				f.Close()
			}
			if err := d.opts.Holder.DelFD(key); err != nil {
				d.logger.Printf("take over: drop %s: %v", key, err)
			}
			delete(have, key)
		}
	}
	d.started = st.Started
	k := d.devices.Knobs()
	for name, v := range st.Knobs {
		if err := k.Set(name, strconv.FormatInt(v, 10)); err != nil {
			d.logger.Printf("take over: knob %s: %v", name, err)
		}
	}
	for _, rec := range st.Jails {
		f := take(netnsKey(rec.ID))
		if f == nil {
			d.logger.Printf("take over: jail %s: no namespace fd; dropped", rec.Name)
			continue
		}
		ns, err := jails.AdoptNetns(f, rec.NetnsPath)
		if err != nil {
			d.logger.Printf("take over: jail %s: %v", rec.Name, err)
			continue
		}
		j, err := d.jails.Restore(rec.JailState, ns)
		if err != nil {
			d.logger.Printf("take over: %v", err)
			continue
		}
		byID[j.ID()] = j
		d.fast.addJail(j, !j.Settings().NoFastPath)
		if err := d.devices.Attach(j); err != nil {
			d.logger.Printf("take over: jail %s: %v", j.Name(), err)
		}
		for _, kind := range rec.Watches {
			if pf := take(pidfdKey(j.ID(), kind)); pf != nil {
				d.startWatch(watchKey{j, kind}, pf)
			}
		}
	}
	d.jails.SetNextID(st.NextJail)
	d.devices.SetNextIno(st.NextIno)
	handles := map[uint64]*driver.Handle{}
	for _, ds := range st.Devices {
		j := byID[ds.Jail]
		f := take(tunKey(ds.Jail, ds.Ino))
		if ds.Dead && j != nil {
			// Destroyed, still known to the kernel or an open file:
			// no fd, kept until FinishRestore (driver/state.go).
			if f != nil {
				f.Close()
			}
			if _, _, err := d.devices.Restore(j, ds, nil); err != nil {
				d.logger.Printf("take over: %v", err)
			}
			continue
		}
		if j == nil || f == nil {
			if f != nil {
				f.Close()
			}
			// Destroyed while the snapshot was taken: gone.
			continue
		}
		_, h, err := d.devices.Restore(j, ds, f)
		if err != nil {
			d.logger.Printf("take over: %v", err)
			continue
		}
		if h != nil {
			handles[ds.Ino] = h
		}
	}
	claimed := map[uint64]bool{}
	var restored []*fs.Mount
	for _, rec := range st.Mounts {
		ms := rec.State
		f := take(fuseKey(ms.Dir))
		j := byID[ms.Jail]
		if f == nil || j == nil {
			if f != nil {
				f.Close()
			}
			d.logger.Printf("take over: mount %s: its jail or connection is gone; dropped", ms.Dir)
			continue
		}
		opts := ms.Options()
		opts.Logger = d.logger
		opts.Debug = d.opts.Debug
		opts.Journal = d.journal
		if opts.PerNetns {
			opts.JailOf = d.jailByNetns
		}
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		f.Close()
		if err != nil {
			d.logger.Printf("take over: mount %s: %v", ms.Dir, err)
			continue
		}
		m, err := fs.RestoreMount(d.devices, d.clones, j, ms, fd, func(ino uint64) *driver.Handle {
			claimed[ino] = true
			return handles[ino]
		}, opts)
		if err != nil {
			d.logger.Printf("take over: %v", err)
			for _, fst := range ms.Files {
				delete(claimed, fst.Ino) // closed below
			}
			continue
		}
		restored = append(restored, m)
		forgotten := make(chan struct{})
		d.mu.Lock()
		d.mounts[ms.Dir] = m
		d.internal[ms.Dir] = rec.Internal
		d.forgotten[m] = forgotten
		d.mu.Unlock()
		go d.watchMount(m, forgotten)
	}
	for ino, h := range handles {
		if !claimed[ino] {
			h.Close() // its file's mount is gone: the last close
		}
	}
	dropLeftovers()
	// Only now, with everything back, the kernel resends what the dead
	// server had read, and the mounts serve.
	for _, m := range restored {
		if err := m.Start(); err != nil {
			d.logger.Printf("take over: %v", err)
		}
	}
	// After Start: a destroy invalidates the kernel's entries, which
	// waits for the lookups under way in the directory, which wait for
	// a server.
	if err := d.devices.FinishRestore(); err != nil {
		d.logger.Printf("take over: %v", err)
	}
}

// ErrNoHolder: a planned restart needs a holder to keep the state.
var ErrNoHolder = errors.New("the daemon runs without a holder (started with --holder=false)")

// Restart replaces the serving process (planned restart, upgrade): the
// daemon stops taking control requests and packets, saves its state, and
// Restarting is closed: the process then tells the holder and exits, and
// the holder starts the binary now on disk, which takes over. No packet
// is lost: a device's queue keeps what arrives meanwhile, and the kernel
// resends to the new server the reads this one leaves unanswered.
func (d *Daemon) Restart() error {
	if d.journal == nil {
		return fmt.Errorf("restart: %w", ErrNoHolder)
	}
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return fmt.Errorf("restart: %w", ErrShuttingDown)
	}
	go d.restartOnce.Do(func() {
		// Let the answer to `tundevfs daemon --restart` go first.
		time.Sleep(50 * time.Millisecond)
		d.ln.Close() // the holder's dup keeps the socket: clients queue
		d.devices.Freeze()
		// A read that took its packet before the freeze has returned
		// it to go-fuse, which writes the reply right after: give that
		// write time before the process goes.
		time.Sleep(20 * time.Millisecond)
		d.journal.Changed()
		d.journal.Sync()
		close(d.restarting)
	})
	return nil
}

// Restarting is closed when a planned restart is ready for the process
// to exit (Restart).
func (d *Daemon) Restarting() <-chan struct{} { return d.restarting }

// restartOnRequest turns the holder's restart requests (SIGHUP to the
// holder, ExecReload) into Restart.
func (d *Daemon) restartOnRequest() {
	select {
	case <-d.opts.Holder.RestartRequests():
		if err := d.Restart(); err != nil {
			d.logger.Printf("%v", err)
		}
	case <-d.done:
	}
}

// ownSocket is listen's remove function for a socket a previous server
// bound: it removes the socket at shutdown if it is still that one.
func ownSocket(socket string) func() {
	mine, err := os.Lstat(socket)
	return func() {
		if err != nil {
			return
		}
		if st, err := os.Lstat(socket); err == nil && os.SameFile(st, mine) {
			os.Remove(socket)
		}
	}
}

// GiveUp is the holder's last act when the server keeps dying
// (holder.Config.GiveUp): with the last state it closes every fd (the
// connections end, blocked clients get ENOTCONN instead of hanging, the
// interfaces go), then detaches the mounts and removes the socket, so
// nothing stale is left.
func GiveUp(socket string, blob []byte, fds map[string]*os.File, logf func(string, ...any)) {
	for _, f := range fds {
		f.Close()
	}
	st, err := decodeState(blob)
	if err != nil {
		logf("give up: %v", err)
		return
	}
	for _, m := range st.Mounts {
		if err := unix.Unmount(m.State.Dir, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			logf("give up: unmount %s: %v", m.State.Dir, err)
		}
	}
	if st, err := os.Lstat(socket); err == nil && st.Mode()&os.ModeSocket != 0 {
		os.Remove(socket)
	}
}

// crashProofTransport is the transport of a mount under a holder: auto
// takes /dev/fuse, because only there does the kernel resend the requests
// a dead server held (FUSE_NOTIFY_RESEND walks the /dev/fuse queues, not
// the io_uring ones: a read the dead server held in a ring entry would
// wait until the mount goes). A forced io_uring stays, with a warning.
func crashProofTransport(t fs.Transport, logger *log.Logger) fs.Transport {
	r, err := fs.ResolveTransport(t)
	if err != nil {
		return t // the mount reports it
	}
	switch r {
	case fs.TransportAuto:
		return fs.TransportDev
	case fs.TransportURing:
		uringWarning.Do(func() {
			logger.Printf("fuse over io_uring was forced: such mounts survive a server crash, but a request the dead server held in a ring (a blocked read) waits until the mount goes; /dev/fuse mounts lose none")
		})
	}
	return r
}

var uringWarning sync.Once

// orphanJail is the jail of a TUN fd key ("tun/JID/INO"), nil for other
// keys or a jail that did not come back.
func orphanJail(key string, byID map[int]*jails.Jail) *jails.Jail {
	rest, ok := strings.CutPrefix(key, "tun/")
	if !ok {
		return nil
	}
	jid, _, ok := strings.Cut(rest, "/")
	if !ok {
		return nil
	}
	n, err := strconv.Atoi(jid)
	if err != nil {
		return nil
	}
	return byID[n]
}

// putEarly hands the holder a new device's TUN fd at once (before the
// device can be seen): a save would only send it with the device, and a
// server that dies in between leaves an interface nobody can end. It
// stays until a snapshot names it, or earlyTimeout (the device was never
// made).
func (jn *journal) putEarly(key string, f *os.File) {
	if jn == nil {
		return
	}
	jn.mu.Lock()
	for jn.saving {
		jn.cond.Wait()
	}
	jn.saving = true // no save meanwhile: it owns have
	jn.mu.Unlock()
	err := jn.conn.PutFD(key, f)
	jn.mu.Lock()
	if err == nil {
		jn.have[key] = true
		jn.early[key] = time.Now()
	}
	jn.saving = false
	jn.cond.Broadcast()
	jn.mu.Unlock()
	if err != nil {
		jn.d.logger.Printf("holder: %v", err)
	}
}

// earlyTimeout is how long a key put early waits for a snapshot to name it.
const earlyTimeout = 10 * time.Second
