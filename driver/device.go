package driver

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tundevfs/tundevfs/jails"
)

// RefKind names one kind of reference on a device (SPEC §5).
type RefKind int

// The references a device counts.
const (
	// RefNode is held by the device node from creation to destroy.
	RefNode RefKind = iota
	// RefClone is handed to a devfs clone invoker (MAKEDEV_REF) and given
	// up once the kernel holds the node.
	RefClone
	// RefKernel is held once for every FUSE lookup of the node (dropped by
	// FORGET), summed over all mounts.
	RefKernel
	// RefOpen is held by the open file handle.
	RefOpen
	numRefKinds
)

var refNames = [numRefKinds]string{"node", "clone", "kernel", "open"}

func (k RefKind) String() string { return refNames[k] }

type devState int

const (
	devAlive devState = iota
	devDying
	devDead
)

func (s devState) String() string {
	return [...]string{"alive", "dying", "dead"}[s]
}

// Device is one tun, tap or vmnet device: FreeBSD's cdev and softc.
type Device struct {
	drv     *Driver
	unit    int
	ino     uint64
	jail    *jails.Jail
	js      *jailState
	m       *Manager
	created time.Time
	byFS    bool // created by a devfs clone rather than ifconfig

	// file is the real TUN fd. It is set at creation and closed by destroy
	// only once busy is 0, so a caller inside enter/exit may use it freely.
	file *os.File
	fd   int

	// ifindex is the interface's index, set at creation and never
	// changed (a rename keeps it), so it is read without a lock.
	ifindex int

	rxPackets, txPackets, drops atomic.Uint64

	// indexedName is d's key in js.byIfName, "" when it is not there.
	// Guarded by Manager.mu, not mu.
	indexedName string

	// mu guards the fields below, the open handle's state and poll
	// notification, and ioc's fields but its atomics.
	mu       sync.Mutex
	name     string   // the interface's current name
	state    devState // alive → dying → dead, see the package doc
	refs     [numRefKinds]int
	busy     int        // operations in flight (enter/exit)
	idle     *sync.Cond // on mu; broadcast when busy drops to 0 and at dead
	open     *Handle    // the open handle, nil when closed
	openPid  int
	uid, gid uint32
	mode     uint32
	fp       fastState     // the fast path (fastpath.go)
	ready    chan struct{} // closed (and replaced) when the fd may be readable
	// husk: restored dead (state.go), with no reference yet; Ref may
	// still take one until FinishRestore.
	husk bool

	// Poll support (poll.go).
	stashMu  sync.Mutex // guards stash and stashLen; held across fd reads
	stash    *[]byte    // a packet Poll read from the fd, which Read returns first
	stashLen int

	ioc ioctlState // what the ioctls set (ioctl.go)
}

// handleState is where an open handle is in its life (see the package
// doc for the drawing).
type handleState int

const (
	// hOpen: the device file carries packets; the watcher runs.
	hOpen handleState = iota
	// hFast: the open file is on the fast path (fastpath.go): no packets,
	// no watcher; the ioctls work.
	hFast
	// hRevoked: the device was destroyed while the handle was open: no
	// watcher, every operation answers ErrGone.
	hRevoked
	// hClosed: Close has run (the last close of the open file).
	hClosed
)

// Handle is the open state of a device (exclusive: one at a time).
type Handle struct {
	dev   *Device
	batch atomic.Bool   // batch mode (TUNSBATCH) is on for this open file
	wantc chan struct{} // a reader or poller wants a readiness wakeup (buffer 1)
	left  chan struct{} // closed when the handle leaves hOpen
	done  chan struct{} // closed when the watcher has exited

	// Guarded by dev.mu.
	state      handleState
	pollNotify func() // called once at the next readiness wakeup, or nil
}

// leaveLocked moves h from hOpen, hFast or hRevoked to next, and reports
// whether it left hOpen: the caller must then stop the watcher
// (stopWatch) once it has let go of d.mu, and only it does. Blocked readers
// wake (left). d.mu is held.
func (h *Handle) leaveLocked(next handleState) (stopWatcher bool) {
	was := h.state
	h.state = next
	if was == hOpen {
		close(h.left)
		return true
	}
	return false
}

// Info is a snapshot of a device for status output and the filesystem.
type Info struct {
	Name      string `json:"name"`
	Driver    string `json:"driver"`
	Unit      int    `json:"unit"`
	Ino       uint64 `json:"ino"`
	Jail      string `json:"jail"`
	IfIndex   int    `json:"ifindex"`
	State     string `json:"state"`
	Refs      Refs   `json:"refs"`
	Busy      int    `json:"busy"`
	Open      bool   `json:"open"`
	OpenPid   int    `json:"open_pid,omitempty"`
	Origin    string `json:"origin"`
	RxPackets uint64 `json:"rx_packets"`
	TxPackets uint64 `json:"tx_packets"`
	Drops     uint64 `json:"drops"`
	// Modes are the modes the ioctls and ifconfig set: ifhead, lmode,
	// transient, link0, vnethdr=N, pointopoint, broadcast.
	Modes []string `json:"modes,omitempty"`
	// FastPath: the open file is on the fast path (fastpath.go).
	FastPath bool `json:"fastpath"`
}

// Refs is the reference count of a device, by kind.
type Refs struct {
	Node   int `json:"node"`
	Clone  int `json:"clone"`
	Kernel int `json:"kernel"`
	Open   int `json:"open"`
	Total  int `json:"total"`
}

// Driver returns the device's driver.
func (d *Device) Driver() *Driver { return d.drv }

// Unit returns the device's unit number.
func (d *Device) Unit() int { return d.unit }

// Ino is the device's inode number: unique for the daemon's life, never
// reused, so it can serve as the FUSE node ID.
func (d *Device) Ino() uint64 { return d.ino }

// Jail returns the jail the device lives in.
func (d *Device) Jail() *jails.Jail { return d.jail }

// DevName is the device's node name (driver and unit), which does not change
// when the interface is renamed.
func (d *Device) DevName() string { return d.drv.UnitName(d.unit) }

// Name returns the interface's current name.
func (d *Device) Name() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.name
}

// Created is when the device was made.
func (d *Device) Created() time.Time { return d.created }

// Owner returns the owner, group and permission bits of the node.
func (d *Device) Owner() (uid, gid, mode uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.uid, d.gid, d.mode
}

// OwnerSet says which fields of an Owner to change.
type OwnerSet struct{ UID, GID, Mode bool }

// SetOwner changes the node's owner, group or mode (chown, chmod).
func (d *Device) SetOwner(o Owner, set OwnerSet) {
	defer d.m.changed() // runs after the unlock
	d.mu.Lock()
	defer d.mu.Unlock()
	if set.UID {
		d.uid = o.UID
	}
	if set.GID {
		d.gid = o.GID
	}
	if set.Mode {
		d.mode = o.Mode
	}
}

// Alive reports whether the device is neither dying nor destroyed.
func (d *Device) Alive() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state == devAlive
}

// Info returns a snapshot of the device.
func (d *Device) Info() Info {
	d.mu.Lock()
	defer d.mu.Unlock()
	origin := "ifconfig"
	if d.byFS {
		origin = "devfs"
	}
	r := Refs{Node: d.refs[RefNode], Clone: d.refs[RefClone], Kernel: d.refs[RefKernel], Open: d.refs[RefOpen]}
	r.Total = r.Node + r.Clone + r.Kernel + r.Open
	fast := d.onFastPathLocked()
	modes := d.modeNamesLocked()
	if fast {
		modes = append(modes, "fastpath")
	}
	return Info{
		Name: d.name, Driver: d.drv.Name, Unit: d.unit, Ino: d.ino, Jail: d.jail.Name(),
		IfIndex: d.ifindex, State: d.state.String(), Refs: r, Busy: d.busy,
		Open: d.open != nil, OpenPid: d.openPid, Origin: origin,
		RxPackets: d.rxPackets.Load(), TxPackets: d.txPackets.Load(), Drops: d.drops.Load(),
		Modes: modes, FastPath: fast,
	}
}

// Ref takes a reference of the given kind (dev_ref). A reference can be
// taken on a dying device; the value stays valid until it is released.
func (d *Device) Ref(kind RefKind) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state == devDead && d.totalRefsLocked() == 0 && !d.husk {
		panic("driver: Ref on a freed device " + d.name)
	}
	d.refs[kind]++
}

// refIfAlive takes a reference of the given kind if the device is alive,
// and reports whether it did.
func (d *Device) refIfAlive(kind RefKind) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != devAlive {
		return false
	}
	d.refs[kind]++
	return true
}

// Rel gives back a reference (dev_rel). The last reference of a destroyed
// device frees it.
func (d *Device) Rel(kind RefKind) {
	d.mu.Lock()
	if d.refs[kind] <= 0 {
		d.mu.Unlock()
		panic(fmt.Sprintf("driver: Rel(%v) without Ref on %s", kind, d.name))
	}
	d.refs[kind]--
	free := d.state == devDead && d.totalRefsLocked() == 0
	d.mu.Unlock()
	if free {
		d.m.forget(d)
	}
}

func (d *Device) totalRefsLocked() int {
	n := 0
	for _, r := range d.refs {
		n += r
	}
	return n
}

// Device returns the handle's device.
func (h *Handle) Device() *Device { return h.dev }

// OpenHandle returns the device's open handle, or nil.
func (d *Device) OpenHandle() *Handle {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.open
}
