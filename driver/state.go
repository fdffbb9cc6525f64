package driver

// This file is the driver's side of a takeover (issue 13, SPEC §11): a
// server that dies leaves its devices' TUN fds with the holder, and the
// next server rebuilds each device from the record the dead one exported
// (Export, Restore) and carries on with the same interface.
//
// Contract:
//   - Export lists every device not yet freed, sorted by jail, driver and
//     unit, each read under its own Device.mu, and the highest inode
//     number issued so far. A dead one (destroyed, still referenced by the
//     kernel or by the open file it was destroyed under) has no fd, unit
//     or interface left: Restore makes it again without an fd, dead, as
//     a husk that answers ErrGone, for the references the caller restores.
//   - Restore registers one device from its record and a duplicate of its
//     TUN fd: unit taken, names indexed, counted against the jail's limit
//     when alive, RefNode and a jail hold, as Create leaves a device; the
//     open handle, if any, in its state (hOpen with a running watcher,
//     hFast without one, hRevoked on a dying device). References the
//     kernel and clone invokers held (RefKernel, RefClone) are the
//     caller's to take again. The interface's name is read from the kernel
//     (a rename while no server ran is not lost), and the jail's rename
//     watch learns the alias, so that the next rename announces the old
//     one.
//   - A dying device is restored dying and its destroy is finished by
//     FinishRestore, which the caller runs once it has taken the restored
//     references: finishing it in Restore would free a device the caller
//     is about to Ref. FinishRestore also frees the dead ones that got no
//     reference back.
//   - SetOnChange's function is called, with no driver lock held, after
//     every change of what a DeviceState records (counters aside). It runs
//     inside device operations in flight, so it must not wait for one
//     (Destroy, Close): a journal marks itself dirty and returns.
//   - What lives only in memory is lost in a takeover: the packet a Poll
//     read ahead into the stash (one packet in flight), a registered poll
//     notification (the filesystem wakes its pollers after a takeover),
//     the debug level and the knobs (the daemon's settings).

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/jails"
)

// DeviceState is a device as Export saw it: plain data, JSON-encodable.
type DeviceState struct {
	Driver  string // Driver.Name: "tun", "tap", "vmnet"
	Unit    int
	Ino     uint64
	Jail    int // the jail's jid
	Created time.Time
	ByFS    bool
	Name    string // the interface's current name
	Ifindex int
	UID     uint32
	GID     uint32
	Mode    uint32
	Dying   bool // destroy had begun: FinishRestore finishes it
	// Dead: destroyed, and still referenced (by the kernel, or by the
	// open file it was destroyed under); restored with no fd.
	Dead bool
	// The ioctl state (ioctlState): mode bits, virtio-net header length,
	// remote MAC, baudrate, TUNSIFMODE value.
	IocMode  uint32
	VHdr     int32
	Remote   [6]byte
	Baudrate int32
	IfMode   int
	// The fast path (fastState): fds handed out, and whether a client
	// shares the file description.
	FastHanded int
	FastShared bool
	RxPackets  uint64
	TxPackets  uint64
	Drops      uint64
	Open       *HandleState // nil when not open
	// Stash is the packet a poll read ahead for the next read, exported
	// only once the manager is frozen (a planned restart: the stash no
	// longer moves). A crash loses it, one packet in flight; saving it
	// without the freeze could hand a reader the same packet twice.
	Stash []byte `json:",omitempty"`
}

// HandleState is the open handle of a device.
type HandleState struct {
	Pid   int
	Batch bool
	Fast  bool // on the fast path (hFast)
}

// Export returns every device not yet freed, sorted by jail, driver and
// unit, and the highest inode number issued so far (for SetNextIno).
// Each device is read under its own lock.
func (m *Manager) Export() (devs []DeviceState, nextIno uint64) {
	all := m.All()
	// After the listing: every listed device's number is at most this.
	nextIno = m.nextIno.Load()
	devs = make([]DeviceState, 0, len(all))
	frozen := m.freeze.frozen()
	for _, d := range all {
		if st, ok := d.export(); ok {
			if frozen {
				st.Stash = d.stashed()
			}
			devs = append(devs, st)
		}
	}
	sort.SliceStable(devs, func(a, b int) bool {
		x, y := devs[a], devs[b]
		if x.Jail != y.Jail {
			return x.Jail < y.Jail
		}
		if x.Driver != y.Driver {
			return x.Driver < y.Driver
		}
		return x.Unit < y.Unit
	})
	return devs, nextIno
}

// export reads d under d.mu; ok is false for a freed device.
func (d *Device) export() (st DeviceState, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state == devDead && d.totalRefsLocked() == 0 && !d.husk {
		return DeviceState{}, false
	}
	st = DeviceState{
		Driver: d.drv.Name, Unit: d.unit, Ino: d.ino, Jail: d.jail.ID(), Created: d.created,
		ByFS: d.byFS, Name: d.name, Ifindex: d.ifindex, UID: d.uid, GID: d.gid, Mode: d.mode,
		Dying: d.state == devDying, Dead: d.state == devDead,
		IocMode: d.ioc.mode.Load(), VHdr: d.ioc.vhdr.Load(), Remote: d.ioc.remote,
		Baudrate: d.ioc.baudrate, IfMode: d.ioc.ifmode,
		FastHanded: d.fp.handed, FastShared: d.fp.shared.Load(),
		RxPackets: d.rxPackets.Load(), TxPackets: d.txPackets.Load(), Drops: d.drops.Load(),
	}
	if h := d.open; h != nil {
		// A handle being closed (hClosed) is still open: the kernel
		// sends its RELEASE again to the next server, whose Close
		// finishes it.
		st.Open = &HandleState{Pid: d.openPid, Batch: h.batch.Load(), Fast: h.state == hFast}
	}
	return st, true
}

// SetNextIno makes later devices' inode numbers start after n: node ids
// are never reused across a restart. It never lowers the counter.
func (m *Manager) SetNextIno(n uint64) {
	for {
		cur := m.nextIno.Load()
		if cur >= n || m.nextIno.CompareAndSwap(cur, n) {
			return
		}
	}
}

// File returns a duplicate of the device's TUN fd (close-on-exec), for
// the holder to keep a copy of the interface: the caller closes it once
// sent. It is nil once the device is dying. A duplicate, because the
// device's own fd changes number on the fast path (detachPoller).
func (d *Device) File() *os.File {
	if err := d.enter(nil); err != nil {
		return nil
	}
	defer d.exit()
	fd, err := unix.FcntlInt(uintptr(d.fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		d.m.logf("file %s: dup: %v", d.DevName(), err)
		return nil
	}
	return os.NewFile(uintptr(fd), d.DevName())
}

// SetOnChange installs fn, called with no driver lock held after every
// change of anything a DeviceState holds: create, destroy start and end,
// open, close, chown and chmod, ioctl state, rename, fast path, batch
// mode. The packet counters do not call it. fn runs inside device
// operations in flight and must not wait for one.
func (m *Manager) SetOnChange(fn func()) {
	if fn == nil {
		m.onChange.Store(nil)
		return
	}
	m.onChange.Store(&fn)
}

// changed calls the OnChange function, if any. No driver lock is held.
func (m *Manager) changed() {
	if fn := m.onChange.Load(); fn != nil {
		(*fn)()
	}
}

// Restore registers a device of jail j from st, with f a duplicate of its
// TUN fd, which Restore owns (closed on error). j must be alive; Attach
// it first. The device is as Create left it (unit taken, names indexed,
// counted against the jail's limit, RefNode and a jail hold) in the
// state st records; if st.Open is set, its open handle is recreated
// (RefOpen, the watcher running if it carries packets) and returned.
// RefKernel and RefClone are not restored: the caller takes a RefKernel
// per lookup it restores, with Ref. A dying device is restored dying and
// destroyed by FinishRestore. f must be registered with Go's poller, as
// os.NewFile does with a non-blocking fd (a TUN fd of the driver is).
// A dead device takes no fd (f is nil), unit, name or jail hold: see
// restoreDead.
func (m *Manager) Restore(j *jails.Jail, st DeviceState, f *os.File) (dev *Device, h *Handle, err error) {
	what := fmt.Sprintf("restore %s%d", st.Driver, st.Unit)
	if st.Dead {
		if f != nil {
			f.Close()
		}
		return m.restoreDead(j, st)
	}
	if f == nil {
		return nil, nil, fmt.Errorf("%s: no fd: %w", what, ErrInvalid)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	drv := ByName(st.Driver)
	switch {
	case drv == nil:
		return nil, nil, fmt.Errorf("%s: unknown driver: %w", what, ErrInvalid)
	case st.Unit < 0 || st.Unit > MaxUnit:
		return nil, nil, fmt.Errorf("%s: %w", what, ErrUnitRange)
	case st.Ino == 0 || st.Ifindex <= 0 || st.Name == "" || len(st.Name) > IfNameMax:
		return nil, nil, fmt.Errorf("%s: ino %d, ifindex %d, name %q: %w", what, st.Ino, st.Ifindex, st.Name, ErrInvalid)
	case st.Open != nil && st.Open.Fast && st.FastHanded == 0:
		return nil, nil, fmt.Errorf("%s: on the fast path with no fd handed: %w", what, ErrInvalid)
	}
	if err := j.Hold(); err != nil {
		return nil, nil, fmt.Errorf("%s in jail %s: %w", what, j.Name(), ErrDetached)
	}
	d, h, err := m.restore(j, drv, st, f)
	if err != nil {
		j.Release()
		return nil, nil, err
	}
	m.changed()
	return d, h, nil
}

// restore builds the device and registers it; on error it has taken
// nothing and closed what it made of f (the caller releases the jail and
// closes f).
func (m *Manager) restore(j *jails.Jail, drv *Driver, st DeviceState, f *os.File) (*Device, *Handle, error) {
	name := drv.UnitName(st.Unit)
	what := "restore " + name
	m.mu.Lock()
	js, err := m.jailStateLocked(j)
	var links Links
	if err == nil {
		if links = js.links; links == nil { // the jail's cloners detached
			err = ErrDetached
		}
	}
	m.mu.Unlock()
	if err != nil {
		return nil, nil, fmt.Errorf("%s in jail %s: %w", what, j.Name(), err)
	}
	// The interface may have been renamed while no server watched:
	// the kernel has its name (no lock held: a netlink round trip).
	ifname := st.Name
	if l, err := links.Link(st.Ifindex); err != nil {
		m.logf("%s: %v (keeping the name %s)", what, err, st.Name)
	} else {
		ifname = l.Name
	}
	if detached(int(f.Fd())) {
		// The dead server had deleted the interface (a destroy under
		// way) after its last snapshot: finish the destroy.
		st.Dying = true
	}
	fast := st.Open != nil && st.Open.Fast
	var file *os.File
	fd := int(f.Fd())
	if fast {
		// On the fast path the daemon's fd stays off Go's poller
		// (detachPoller): keep a bare duplicate.
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: dup: %w", what, err)
		}
		f.Close() // a second Close, Restore's on error, does nothing
		fd = nfd
	} else {
		if file, err = pollable(f); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", what, err)
		}
		fd = int(file.Fd())
	}
	d := &Device{
		drv: drv, unit: st.Unit, ino: st.Ino, jail: j, js: js, m: m,
		created: st.Created, byFS: st.ByFS, file: file, fd: fd,
		name: ifname, ifindex: st.Ifindex,
		uid: st.UID, gid: st.GID, mode: st.Mode,
		ready: make(chan struct{}),
	}
	d.idle = sync.NewCond(&d.mu)
	d.refs[RefNode] = 1
	d.restoreCounters(st)
	var h *Handle
	if st.Dying {
		d.state = devDying
		if st.Open != nil {
			h = d.restoreHandle(st, hRevoked) // beginDestroyLocked revoked it
		}
	} else if st.Open != nil {
		h = d.restoreHandle(st, hOpen)
	}

	m.mu.Lock()
	if js.detached {
		m.mu.Unlock()
		d.closeRestored()
		return nil, nil, fmt.Errorf("%s in jail %s: %w", what, j.Name(), ErrDetached)
	}
	key := unitKey{drv, j.Netns().Ino()}
	us := m.units[key]
	if us == nil {
		us = new(unitSet)
		m.units[key] = us
	}
	if js.devices[name] != nil || js.settling[name] != nil || us.inUse(st.Unit) || js.byIndex[st.Ifindex] != nil {
		m.mu.Unlock()
		d.closeRestored()
		return nil, nil, fmt.Errorf("%s in jail %s: %w", what, j.Name(), ErrExists)
	}
	us.set(st.Unit)
	if !st.Dying {
		js.counted.Add(1)
	}
	js.devices[name] = d
	js.byIndex[st.Ifindex] = d
	m.indexNameLocked(js, d)
	m.all[d] = struct{}{}
	if st.Dying {
		m.pending = append(m.pending, d)
	}
	w := js.watch
	m.mu.Unlock()
	m.SetNextIno(st.Ino)

	if w != nil {
		w.learn(d)
	}
	if h != nil && h.state == hOpen {
		go h.watch()
	}
	return d, h, nil
}

// detached says whether the TUN fd no longer has an interface: it was
// deleted under it (TUNGETIFF answers EBADFD).
func detached(fd int) bool {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return false
	}
	return errors.Is(unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr), unix.EBADFD)
}

// pollable returns f if Go's poller has it (the watcher waits there and
// Close breaks the wait with a deadline), else a non-blocking duplicate
// that it has, closing f.
func pollable(f *os.File) (*os.File, error) {
	if f.SetReadDeadline(time.Time{}) == nil {
		return f, nil
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("non-blocking: %w", err)
	}
	name := f.Name()
	f.Close()
	return os.NewFile(uintptr(fd), name), nil
}

// closeRestored closes the fd of d, which restore did not register.
func (d *Device) closeRestored() {
	d.closeFile()
}

// restoreDead makes a dead device again, for the references to it the
// caller restores (a kernel lookup, the open file it was destroyed
// under): listed by All, answering ErrGone, with nothing of an interface.
// Until FinishRestore it may be Ref'ed with no reference held.
func (m *Manager) restoreDead(j *jails.Jail, st DeviceState) (*Device, *Handle, error) {
	drv := ByName(st.Driver)
	if drv == nil || st.Ino == 0 {
		return nil, nil, fmt.Errorf("restore %s%d: dead, driver %q, ino %d: %w", st.Driver, st.Unit, st.Driver, st.Ino, ErrInvalid)
	}
	d := &Device{
		drv: drv, unit: st.Unit, ino: st.Ino, jail: j, m: m,
		created: st.Created, byFS: st.ByFS, fd: -1,
		name: st.Name, ifindex: st.Ifindex,
		uid: st.UID, gid: st.GID, mode: st.Mode,
		ready: make(chan struct{}), state: devDead, husk: true,
	}
	d.idle = sync.NewCond(&d.mu)
	d.restoreCounters(st)
	var h *Handle
	if st.Open != nil {
		h = d.restoreHandle(st, hRevoked)
	}
	m.mu.Lock()
	if js := m.jails[j]; js != nil {
		d.js = js
	} else {
		// Only Info and the handle's Close look at the device; its
		// jail's driver state is for the interface it no longer has.
		d.js = &jailState{jail: j, detached: true}
	}
	m.all[d] = struct{}{}
	m.pending = append(m.pending, d)
	m.mu.Unlock()
	m.SetNextIno(st.Ino)
	m.changed()
	return d, h, nil
}

// restoreCounters sets the ioctl state, the fast path and the counters of
// a device being restored (no lock: nobody else has it yet).
func (d *Device) restoreCounters(st DeviceState) {
	d.ioc.mode.Store(st.IocMode)
	d.ioc.vhdr.Store(st.VHdr)
	d.ioc.remote = st.Remote
	d.ioc.baudrate = st.Baudrate
	d.ioc.ifmode = st.IfMode
	d.fp.handed = st.FastHanded
	d.fp.shared.Store(st.FastShared || st.FastHanded > 0)
	d.rxPackets.Store(st.RxPackets)
	d.txPackets.Store(st.TxPackets)
	d.drops.Store(st.Drops)
	if len(st.Stash) > 0 {
		buf := getBuf()
		d.stashLen = copy(*buf, st.Stash)
		d.stash = buf
	}
}

// restoreHandle makes d's open handle from st.Open, in state gone unless
// it is on the fast path (hFast) or gone is hOpen; the caller starts the
// watcher of an hOpen one.
func (d *Device) restoreHandle(st DeviceState, gone handleState) *Handle {
	h := &Handle{dev: d, wantc: make(chan struct{}, 1), left: make(chan struct{}), done: make(chan struct{})}
	h.batch.Store(st.Open.Batch)
	h.state = gone
	if st.Open.Fast {
		h.state = hFast
	}
	if h.state != hOpen {
		// It left hOpen in the dead server: no watcher.
		close(h.left)
		close(h.done)
	}
	d.open = h
	d.openPid = st.Open.Pid
	d.refs[RefOpen] = 1
	return h
}

// FinishRestore finishes what the dead server had begun: every dying
// device Restore registered is destroyed now (Destroyed event, interface
// gone, unit freed), and every dead one that got no reference back is
// freed. Run it once the restored references are taken. It returns the
// destroys' errors.
func (m *Manager) FinishRestore() error {
	m.mu.Lock()
	pending := m.pending
	m.pending = nil
	m.mu.Unlock()
	var errs []error
	for _, d := range pending {
		d.mu.Lock()
		husk := d.husk
		d.husk = false
		free := husk && d.totalRefsLocked() == 0
		d.mu.Unlock()
		if husk {
			if free {
				m.forget(d)
			}
			continue
		}
		if err := m.finishDestroy(d, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stashed is a copy of the packet in the stash, nil if none.
func (d *Device) stashed() []byte {
	d.stashMu.Lock()
	defer d.stashMu.Unlock()
	if d.stash == nil {
		return nil
	}
	return append([]byte(nil), (*d.stash)[:d.stashLen]...)
}
