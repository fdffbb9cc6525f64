package driver

// This file is the life of a device: creation (Create, both paths), open
// and last close (tunopen(), tundtor()), destroy (tun_destroy()) and the
// detach of a jail's cloners (tuntap_prison_remove), with the busy count
// (enter, exit) that holds destroy off while an operation is in flight.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/jails"
)

// Create makes a device of drv in jail j: unit -1 takes the lowest free
// unit whose name is not taken, any other unit exactly that one. With
// DevfsClone the device comes back holding one RefClone reference. A unit
// that a racing creation is making is waited for: a devfs clone then gets
// the device that won, as a lookup would have, and ifconfig create
// ErrExists; a unit another jail in the same namespace holds is ErrExists.
func (m *Manager) Create(j *jails.Jail, drv *Driver, unit int, origin Origin, owner Owner) (*Device, error) {
	if unit > MaxUnit || unit < -1 {
		return nil, fmt.Errorf("create %s%d: %w", drv.Name, unit, ErrUnitRange)
	}
	if err := j.Hold(); err != nil {
		return nil, fmt.Errorf("create %s: %w", drv.Name, ErrDetached)
	}
	d, made, err := m.create(j, drv, unit, origin, owner)
	if err != nil || !made {
		// A device that won a race holds its own hold on the jail.
		j.Release()
		return d, err
	}
	m.emit(j, Event{Kind: Created, Device: d, Name: d.DevName()})
	m.changed()
	return d, nil
}

// create makes the device, or for a devfs clone of a unit that a racing
// creation made first returns that one (made false).
func (m *Manager) create(j *jails.Jail, drv *Driver, unit int, origin Origin, owner Owner) (d *Device, made bool, err error) {
	what := drv.Name
	if unit >= 0 {
		what = drv.UnitName(unit)
	}
	from := 0
	for {
		m.mu.Lock()
		js, err := m.jailStateLocked(j)
		if err != nil {
			m.mu.Unlock()
			return nil, false, fmt.Errorf("create %s in jail %s: %w", what, j.Name(), err)
		}
		key := unitKey{drv, j.Netns().Ino()}
		us := m.units[key]
		if us == nil {
			us = new(unitSet)
			m.units[key] = us
		}
		u := unit
		if u >= 0 {
			name := drv.UnitName(u)
			if d := js.devices[name]; d != nil {
				// A racing creation won: a devfs clone gets its
				// device, as a lookup would have.
				won := origin == DevfsClone && d.refIfAlive(RefClone)
				m.mu.Unlock()
				if won {
					return d, false, nil
				}
				return nil, false, fmt.Errorf("create %s in jail %s: %w", what, j.Name(), ErrExists)
			}
			if ch := js.settling[name]; ch != nil {
				// Being made or destroyed right now: wait for the
				// outcome and look again.
				m.mu.Unlock()
				<-ch
				continue
			}
		}
		if limit := deviceLimit(j); int(js.counted.Load()) >= limit {
			m.mu.Unlock()
			return nil, false, fmt.Errorf("create %s in jail %s: %w (%d devices)", what, j.Name(), ErrLimit, limit)
		}
		if u < 0 {
			u = us.lowestFreeFrom(from)
			if u < 0 {
				m.mu.Unlock()
				return nil, false, fmt.Errorf("create %s in jail %s: %w", what, j.Name(), ErrNoUnits)
			}
		} else if us.inUse(u) {
			// Another jail in the same namespace has the unit.
			m.mu.Unlock()
			return nil, false, fmt.Errorf("create %s in jail %s: %w (another jail sharing the namespace has it)", what, j.Name(), ErrExists)
		}
		us.set(u)
		// The creation counts against the limit from the check on,
		// though m.mu is released while the interface is made.
		js.counted.Add(1)
		name := drv.UnitName(u)
		settled := make(chan struct{})
		js.settling[name] = settled
		m.mu.Unlock()

		d, err = m.newDevice(j, js, drv, u, origin, owner)
		m.mu.Lock()
		delete(js.settling, name)
		close(settled)
		if err != nil {
			us.clear(u)
			js.counted.Add(-1)
		}
		m.mu.Unlock()
		if err == nil {
			return d, true, nil
		}
		if unit < 0 && errors.Is(err, ErrNameTaken) {
			// A foreign interface holds the name: skip it, as the bare
			// name never adopts one.
			from = u + 1
			continue
		}
		return nil, false, err
	}
}

// newDevice creates the Linux interface for unit u and registers the
// device. On failure it has closed what it opened; the caller frees u.
func (m *Manager) newDevice(j *jails.Jail, js *jailState, drv *Driver, u int, origin Origin, owner Owner) (*Device, error) {
	name := drv.UnitName(u)
	var mac net.HardwareAddr
	if drv.IsL2() {
		mac = stableMAC(j.Name(), name)
	}
	ino := m.nextIno.Add(1)
	f, idx, err := m.createLink(j, js, drv, name, mac, ino)
	if err != nil {
		return nil, err
	}
	d := &Device{
		drv:     drv,
		unit:    u,
		ino:     ino,
		jail:    j,
		js:      js,
		m:       m,
		created: time.Now(),
		byFS:    origin == DevfsClone,
		file:    f,
		fd:      int(f.Fd()),
		name:    name,
		ifindex: idx,
		uid:     owner.UID,
		gid:     owner.GID,
		mode:    owner.Mode,
		ready:   make(chan struct{}),
	}
	d.idle = sync.NewCond(&d.mu)
	d.refs[RefNode] = 1
	if origin == DevfsClone {
		d.refs[RefClone] = 1
	}
	m.mu.Lock()
	if js.detached {
		m.mu.Unlock()
		f.Close()
		return nil, fmt.Errorf("create %s in jail %s: %w", name, j.Name(), ErrDetached)
	}
	js.devices[name] = d // counted since create reserved it
	js.byIndex[idx] = d
	m.indexNameLocked(js, d)
	m.all[d] = struct{}{}
	m.mu.Unlock()
	return d, nil
}

// createLink makes the interface. With an OnNewFile function (a holder
// keeps fds across a crash), the TUN fd goes to it before the interface
// exists where the stack allows (attachHooker), else right after: the
// next server can then end an interface whose server died before it
// saved the device (DeleteOrphan).
func (m *Manager) createLink(j *jails.Jail, js *jailState, drv *Driver, name string, mac net.HardwareAddr, ino uint64) (*os.File, int, error) {
	fn := m.onNewFile.Load()
	if fn == nil {
		return js.links.Create(drv, name, mac)
	}
	if h, ok := js.links.(attachHooker); ok {
		return h.CreateWith(drv, name, mac, func(fd int) {
			nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
			if err != nil {
				m.logf("create %s: dup: %v", name, err)
				return
			}
			f := os.NewFile(uintptr(nfd), name)
			(*fn)(j, ino, f)
			f.Close()
		})
	}
	f, idx, err := js.links.Create(drv, name, mac)
	if err == nil {
		(*fn)(j, ino, f)
	}
	return f, idx, err
}

// attachHooker is a Links that can call a function with a new device's
// TUN fd before the interface is made on it.
type attachHooker interface {
	CreateWith(drv *Driver, name string, mac net.HardwareAddr, before func(fd int)) (*os.File, int, error)
}

// DestroyByName destroys the live device of jail j called name (node or
// interface name): `ifconfig NAME destroy`.
func (m *Manager) DestroyByName(j *jails.Jail, name string) error {
	d := m.Resolve(j, name)
	if d == nil {
		return fmt.Errorf("destroy %s: %w", name, ErrNoDevice)
	}
	return m.Destroy(d)
}

// Destroy destroys a device (tun_destroy): dying, readers woken, in-flight
// operations waited for, node unlisted (the Destroyed event, on which the
// filesystem drops the kernel's entries), fd closed, unit freed, jail
// released. The node goes before the interface, whose teardown is the
// slow part, so that no directory lists a device whose interface is gone.
// Destroying a device that is already dying waits for that destroy.
func (m *Manager) Destroy(d *Device) error {
	d.mu.Lock()
	if d.state != devAlive {
		for d.state == devDying {
			d.idle.Wait()
		}
		d.mu.Unlock()
		return fmt.Errorf("destroy %s: %w", d.DevName(), ErrNoDevice)
	}
	revoked := d.beginDestroyLocked()
	d.mu.Unlock()
	m.changed()
	return m.finishDestroy(d, revoked)
}

// beginDestroyLocked moves an alive device to dying and revokes its open
// handle if that carries packets, which wakes its blocked readers
// (ErrGone). From here the device no longer counts against the jail's
// device limit. It returns the revoked handle, whose watcher the caller stops
// with finishDestroy. d.mu is held.
func (d *Device) beginDestroyLocked() (revoked *Handle) {
	d.state = devDying
	d.js.counted.Add(-1) // no longer counts against the limit
	if h := d.open; h != nil && h.state == hOpen {
		h.leaveLocked(hRevoked)
		return h
	}
	return nil
}

// finishDestroy is the rest of Destroy once the device is dying: it waits
// for the operations in flight and takes the device to dead.
func (m *Manager) finishDestroy(d *Device, revoked *Handle) error {
	d.mu.Lock()
	for d.busy > 0 {
		d.idle.Wait()
	}
	d.mu.Unlock()
	if revoked != nil {
		revoked.stopWatch()
		revoked.notifyPoll() // pollers see the device gone, as readers do
	}
	// Unlist: listeners invalidate the kernel's entries now, while the
	// device is still in devices (dying: lookups find no node, readdir
	// skips it, and nothing waits on it).
	m.emit(d.jail, Event{Kind: Destroyed, Device: d, Name: d.DevName(), Alias: d.alias()})
	name := d.DevName()
	settled := make(chan struct{})
	js := d.js
	m.mu.Lock()
	if js.devices[name] == d {
		delete(js.devices, name)
		if js.byIndex[d.ifindex] == d {
			delete(js.byIndex, d.ifindex)
		}
		m.unindexNameLocked(js, d)
	}
	js.settling[name] = settled
	m.mu.Unlock()

	d.unregisterHanded() // a handed fd must not keep the interface
	err := d.closeFile() // the interface goes

	m.mu.Lock()
	m.units[unitKey{d.drv, d.jail.Netns().Ino()}].clear(d.unit)
	if js.settling[name] == settled {
		delete(js.settling, name)
	}
	close(settled)
	m.mu.Unlock()

	d.mu.Lock()
	d.state = devDead
	d.idle.Broadcast()
	d.mu.Unlock()
	d.jail.Release()
	d.Rel(RefNode)
	m.changed()
	if err != nil {
		return fmt.Errorf("destroy %s: close: %w", d.DevName(), err)
	}
	return nil
}

// forget drops a destroyed device whose last reference is gone.
func (m *Manager) forget(d *Device) {
	m.mu.Lock()
	delete(m.all, d)
	m.mu.Unlock()
}

// DetachJail is the jail remove callback (FreeBSD's tuntap_prison_remove):
// no more clones in j, and every device cloned there is destroyed, open or
// busy ones too, so nothing the daemon holds pins the jail's namespace.
func (m *Manager) DetachJail(j *jails.Jail) {
	m.mu.Lock()
	js, ok := m.jails[j]
	if !ok {
		// Never used. The jail is dying, so jailStateLocked refuses to
		// start a clone there from now on.
		m.mu.Unlock()
		return
	}
	js.detached = true
	devs := make([]*Device, 0, len(js.devices))
	for _, d := range js.devices {
		devs = append(devs, d)
	}
	m.mu.Unlock()

	var wg sync.WaitGroup
	for _, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Destroy(d); err != nil && !errors.Is(err, ErrNoDevice) {
				m.logf("detach jail %s: %v", j.Name(), err)
			}
		}()
	}
	wg.Wait()

	m.mu.Lock()
	links, w := js.links, js.watch
	js.links, js.watch = nil, nil
	delete(m.jails, j)
	for k, us := range m.units {
		if k.netns == j.Netns().Ino() && us.n == 0 {
			delete(m.units, k)
		}
	}
	m.mu.Unlock()
	if w != nil {
		w.stop()
	}
	if links != nil {
		links.Close()
	}
}

// enter marks an operation in flight (FreeBSD's tun_busy). It fails with
// ErrGone once the device is dying, and with ErrNotOpen when h is not the
// current open handle or is closed.
func (d *Device) enter(h *Handle) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.enterLocked(h)
}

// enterLocked is enter with d.mu held.
func (d *Device) enterLocked(h *Handle) error {
	if d.state != devAlive {
		return ErrGone
	}
	if h != nil && (d.open != h || h.state == hClosed) {
		return ErrNotOpen
	}
	d.busy++
	return nil
}

// enterIO is enter for an operation that moves packets through the device
// file: on the fast path it fails with ErrFastPath.
func (d *Device) enterIO(h *Handle) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h.state == hFast {
		return ErrFastPath
	}
	if d.m != nil && d.m.freeze.frozen() {
		return ErrFrozen
	}
	return d.enterLocked(h)
}

// exit ends an operation started with enter (tun_unbusy).
func (d *Device) exit() {
	d.mu.Lock()
	d.exitLocked()
	d.mu.Unlock()
}

// exitLocked is exit with d.mu held.
func (d *Device) exitLocked() {
	d.busy--
	if d.busy == 0 {
		d.idle.Broadcast()
	}
}

// Open opens the device for pid (tunopen): exclusive, so a second open is
// ErrBusy, and an open of a dying device is ErrGone.
func (d *Device) Open(pid int) (*Handle, error) {
	d.mu.Lock()
	if d.state != devAlive {
		d.mu.Unlock()
		return nil, fmt.Errorf("open %s: %w", d.DevName(), ErrGone)
	}
	if d.open != nil {
		d.mu.Unlock()
		return nil, fmt.Errorf("open %s: %w", d.DevName(), ErrBusy)
	}
	h := &Handle{dev: d, wantc: make(chan struct{}, 1), left: make(chan struct{}), done: make(chan struct{})}
	d.open = h
	d.openPid = pid
	d.refs[RefOpen]++
	d.enterLocked(h) // cannot fail here; holds off destroy while the handle is set up
	d.mu.Unlock()
	defer d.exit()

	d.ensureFile() // after a fast path (fastpath.go)
	// Packets queued while the device was closed are stale: drop them.
	d.drain()
	d.openIoctlState()
	if d.drv.IsL2() && d.m.Knobs().TapUpOnOpen() {
		if err := d.js.links.SetUp(d.ifindex); err != nil {
			d.m.logf("%v", err)
		}
	}
	go h.watch()
	d.m.changed()
	return h, nil
}

// Close ends the open (tunclose, on last close): queued packets are dropped,
// a tun and a tap are brought down and lose their addresses, a vmnet (and a
// tap with link0) keeps its state, the virtio-net header goes off, and a
// transient device is destroyed. It is the one way to hClosed; a second
// Close does nothing.
func (h *Handle) Close() {
	d := h.dev
	d.mu.Lock()
	if h.state == hClosed {
		d.mu.Unlock()
		return
	}
	// The reset runs as an operation in flight, so a destroy waits for
	// it; it fails once the device is dying.
	reset := d.enterLocked(h) == nil
	watching := h.leaveLocked(hClosed)
	h.pollNotify = nil // the kernel is done with the file
	d.mu.Unlock()

	if watching {
		// Only from hOpen, so the device is alive and reset holds
		// destroy off: the fd is open.
		h.stopWatch()
	}
	transient := false
	if reset {
		d.drain()
		// A transient device goes at once: bringing it down and
		// resetting it first would only keep it listed longer (FUSE
		// sends RELEASE after close(2) has returned).
		transient = d.ioc.has(modeTransient)
		if !d.keepsStateOnClose() && !transient {
			if err := d.js.links.DownAndPurge(d.ifindex); err != nil {
				d.m.logf("close %s: %v", d.DevName(), err)
			}
		}
		if !transient {
			d.closeIoctlState()
		}
	}
	d.mu.Lock()
	if reset {
		d.exitLocked()
	}
	// A transient device starts dying before it is closed, so that no
	// open comes between (tundtor() with TUN_TRANSIENT). If a destroy
	// began meanwhile, the close waits for it, as a second Destroy does.
	destroy := transient && d.state == devAlive
	if destroy {
		d.beginDestroyLocked()
	}
	d.open = nil
	d.openPid = 0
	d.mu.Unlock()
	d.m.changed()
	if transient {
		d.m.debugf("close %s: transient, destroying", d.DevName())
		var err error
		if destroy {
			err = d.m.finishDestroy(d, nil)
		} else {
			err = d.m.Destroy(d)
		}
		if err != nil {
			d.m.debugf("close %s: %v", d.DevName(), err)
		}
	}
	d.Rel(RefOpen)
}

// stopWatch stops the watcher and waits for it. Only the caller that
// moved h out of hOpen calls it (leaveLocked), once, inside an operation
// in flight or before destroy closes the fd.
func (h *Handle) stopWatch() {
	// Break a wait on the netpoller, then restore the deadline.
	h.dev.file.SetReadDeadline(time.Now())
	<-h.done
	h.dev.file.SetReadDeadline(time.Time{})
}

// keepsStateOnClose says whether the last close leaves the interface up
// with its addresses (if_tuntap.c: tundtor()): a vmnet always, a tap with
// link0.
func (d *Device) keepsStateOnClose() bool {
	return d.drv.Flags&VMNET != 0 || (d.drv.IsL2() && d.ioc.has(modeLink0))
}

// openIoctlState runs at open (tunopen()): a tap's remote MAC starts as the
// interface's own.
func (d *Device) openIoctlState() {
	if !d.drv.IsL2() {
		return
	}
	l, err := d.js.links.Link(d.ifindex)
	if err != nil {
		d.m.logf("open %s: %v", d.DevName(), err)
		return
	}
	d.mu.Lock()
	copy(d.ioc.remote[:], l.HardwareAddr)
	d.mu.Unlock()
}

// closeIoctlState runs at the last close (tundtor()): the virtio-net
// header is switched off.
func (d *Device) closeIoctlState() {
	if d.drv.IsL2() && d.ioc.vhdr.Load() != 0 {
		if err := d.setVnetHdr(0); err != nil {
			d.m.logf("close %s: %v", d.DevName(), err)
		}
	}
}
