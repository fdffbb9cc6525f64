package driver

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

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

	// dying is closed when destroy starts; blocked operations select on it.
	dying chan struct{}

	rxPackets, txPackets, drops atomic.Uint64

	// indexedName is d's key in js.byIfName, "" when it is not there.
	// Guarded by Manager.mu, not mu.
	indexedName string

	mu       sync.Mutex // guards the fields below
	name     string     // the interface's current name
	state    devState
	refs     [numRefKinds]int
	busy     int
	idle     *sync.Cond // on mu; broadcast when busy drops to 0
	open     *Handle
	openPid  int
	uid, gid uint32
	mode     uint32
	fp       fastState // the fast path (fastpath.go)

	readyMu sync.Mutex    // guards ready
	ready   chan struct{} // closed (and replaced) when the fd may be readable

	// Poll support (poll.go).
	stashMu  sync.Mutex // guards stash and stashLen; held across fd reads
	stash    *[]byte    // a packet Poll read from the fd, which Read returns first
	stashLen int

	ioc ioctlState // what the ioctls set (ioctl.go)
}

// Handle is the open state of a device (exclusive: one at a time).
type Handle struct {
	dev       *Device
	batch     atomic.Bool   // batch mode (TUNSBATCH) is on for this open file
	closed    chan struct{} // closed by Close
	stop      chan struct{} // stops the watcher
	wantc     chan struct{} // a reader wants a readiness wakeup
	done      chan struct{} // closed when the watcher has exited
	once      sync.Once     // makes Close run once
	closeOnce sync.Once     // closes closed once
	stopOnce  sync.Once     // makes stopWatch run once
	fast      chan struct{} // closed when the open file goes on the fast path
	fastOnce  sync.Once     // closes fast once

	// Poll support (poll.go).
	pollMu     sync.Mutex // guards pollNotify
	pollNotify func()     // called once at the next readiness wakeup, or nil
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
	fast := d.fp.on && d.open != nil
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
	if d.state == devDead && d.totalRefsLocked() == 0 {
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

// enter marks an operation in flight (FreeBSD's tun_busy). It fails with
// ErrGone once the device is dying, and with ErrNotOpen when h is not the
// current open handle.
func (d *Device) enter(h *Handle) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != devAlive {
		return ErrGone
	}
	if h != nil && d.open != h {
		return ErrNotOpen
	}
	d.busy++
	return nil
}

// exit ends an operation started with enter (tun_unbusy).
func (d *Device) exit() {
	d.mu.Lock()
	d.busy--
	if d.busy == 0 {
		d.idle.Broadcast()
	}
	d.mu.Unlock()
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
	h := &Handle{
		dev:    d,
		closed: make(chan struct{}),
		stop:   make(chan struct{}),
		wantc:  make(chan struct{}, 1),
		done:   make(chan struct{}),
		fast:   make(chan struct{}),
	}
	d.open = h
	d.openPid = pid
	d.refs[RefOpen]++
	d.busy++ // hold off destroy while the handle is set up
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
	return h, nil
}

// drain discards every queued packet.
func (d *Device) drain() {
	buf := getBuf()
	defer putBuf(buf)
	for {
		if _, err := d.readRaw(*buf); err != nil {
			return
		}
	}
}

// readyChan returns the channel closed at the next readiness wakeup.
func (d *Device) readyChan() chan struct{} {
	d.readyMu.Lock()
	defer d.readyMu.Unlock()
	return d.ready
}

// wake closes the current readiness channel.
func (d *Device) wake() {
	d.readyMu.Lock()
	close(d.ready)
	d.ready = make(chan struct{})
	d.readyMu.Unlock()
}

// watch runs while the device is open. Whenever a reader asks for it, it
// parks on Go's netpoller until the fd is readable and then wakes the
// readers. It pins no OS thread.
func (h *Handle) watch() {
	defer close(h.done)
	d := h.dev
	rc, err := d.file.SyscallConn()
	if err != nil {
		d.m.logf("watch %s: %v", d.DevName(), err)
		return
	}
	for {
		select {
		case <-h.stop:
			return
		case <-h.wantc:
		}
		first := true
		err := rc.Read(func(fd uintptr) bool {
			if first {
				first = false
				// The netpoller forgets an edge that came before this
				// wait started, so look for a queued packet first.
				return readable(int(fd))
			}
			return true
		})
		d.wake()
		h.notifyPoll()
		if err != nil {
			select {
			case <-h.stop:
				return
			default:
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
		}
	}
}

// Read reads one packet into buf (tunread): a short buf truncates the
// packet and the rest is dropped. With nothing queued it blocks until a
// packet arrives, cancel is closed (ErrInterrupted) or the device is
// destroyed (ErrGone), or fails at once with ErrWouldBlock if nonblock.
func (h *Handle) Read(cancel <-chan struct{}, buf []byte, nonblock bool) (int, error) {
	d := h.dev
	if h.onFastPath() {
		return 0, ErrFastPath
	}
	if err := d.enter(h); err != nil {
		return 0, err
	}
	defer d.exit()
	return h.wait(cancel, nonblock, func() (int, error) { return d.readPacket(buf) })
}

// wait runs try, a non-blocking read, until it finds something: with
// nothing queued it fails at once with ErrWouldBlock if nonblock, and
// otherwise blocks until a packet may have arrived, cancel is closed
// (ErrInterrupted), the device is destroyed (ErrGone) or the handle closed.
// Callers are inside enter/exit.
func (h *Handle) wait(cancel <-chan struct{}, nonblock bool, try func() (int, error)) (int, error) {
	d := h.dev
	for {
		ready := d.readyChan()
		n, err := try()
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, unix.EAGAIN) {
			return 0, err
		}
		if nonblock {
			return 0, ErrWouldBlock
		}
		select {
		case h.wantc <- struct{}{}:
		default:
		}
		select {
		case <-ready:
		case <-cancel:
			return 0, ErrInterrupted
		case <-d.dying:
			return 0, ErrGone
		case <-h.closed:
			return 0, ErrNotOpen
		case <-h.fast:
			return 0, ErrFastPath
		}
	}
}

// readPacket reads one packet without blocking, dropping the packets a
// reader must not see (IPv6 on a tun without IFHEAD).
func (d *Device) readPacket(buf []byte) (int, error) {
	d.stashMu.Lock()
	scratch, n, err := d.nextLocked()
	d.stashMu.Unlock()
	if err != nil {
		return 0, err
	}
	c := d.frame(buf, (*scratch)[:n])
	putBuf(scratch)
	d.rxPackets.Add(1)
	return c, nil
}

// Write sends one packet into the network stack (tunwrite). A packet larger
// than the MRU is ErrTooBig; an empty write writes nothing; a write to an
// interface that is down is accepted and dropped, as FreeBSD does. The
// packet is framed as the device's mode says (ifhead.go).
func (h *Handle) Write(data []byte) (int, error) {
	d := h.dev
	if h.onFastPath() {
		return 0, ErrFastPath
	}
	if err := d.enter(h); err != nil {
		return 0, err
	}
	defer d.exit()
	if len(data) == 0 {
		return 0, nil
	}
	if err := d.writePacket(data); err != nil {
		return 0, err
	}
	return len(data), nil
}

// writePacket sends one packet; callers are inside enter/exit.
func (d *Device) writePacket(data []byte) error {
	if len(data) > d.mru() {
		return fmt.Errorf("write %s: %d bytes: %w", d.DevName(), len(data), ErrTooBig)
	}
	dropped, err := d.send(data)
	if err != nil {
		if (errors.Is(err, unix.EIO) || errors.Is(err, ErrNoFamily) || errors.Is(err, ErrShort)) &&
			!d.linkIsUp() {
			d.drops.Add(1)
			return nil // "ignore silently"
		}
		return fmt.Errorf("write %s: %w", d.DevName(), err)
	}
	if dropped {
		d.drops.Add(1)
		return nil
	}
	d.txPackets.Add(1)
	return nil
}

// linkIsUp reports whether the interface is administratively up.
func (d *Device) linkIsUp() bool {
	l, err := d.js.links.Link(d.ifindex)
	return err == nil && l.Up
}

// Close ends the open (tunclose, on last close): queued packets are dropped,
// a tun and a tap are brought down and lose their addresses, a vmnet (and a
// tap with link0) keeps its state, the virtio-net header goes off, and a
// transient device is destroyed.
func (h *Handle) Close() {
	d := h.dev
	h.once.Do(func() {
		h.markClosed()
		// Drop the notification before stopping the watcher, whose
		// last wakeup would call it: the kernel is done with the file.
		h.dropPoll()
		h.stopWatch()
		d.mu.Lock()
		alive := d.state == devAlive && d.open == h
		if alive {
			d.busy++
		}
		d.mu.Unlock()
		if alive {
			d.drain()
			// A transient device goes at once: bringing it down and
			// resetting it first would only keep it listed longer
			// (FUSE sends RELEASE after close(2) has returned).
			transient := d.ioc.has(modeTransient)
			if !d.keepsStateOnClose() && !transient {
				if err := d.js.links.DownAndPurge(d.ifindex); err != nil {
					d.m.logf("close %s: %v", d.DevName(), err)
				}
			}
			if !transient {
				d.closeIoctlState()
			}
			d.exit()
			d.transientClose()
		}
		d.mu.Lock()
		if d.open == h {
			d.open = nil
			d.openPid = 0
			d.fp.on = false
		}
		d.mu.Unlock()
		d.Rel(RefOpen)
	})
}

func (h *Handle) markClosed() {
	h.closeOnce.Do(func() { close(h.closed) })
}

// stopWatch stops the watcher and waits for it.
func (h *Handle) stopWatch() {
	h.stopOnce.Do(func() {
		close(h.stop)
		// Break a wait on the netpoller, then restore the deadline.
		h.dev.file.SetReadDeadline(time.Now())
		<-h.done
		h.dev.file.SetReadDeadline(time.Time{})
	})
}

// Device returns the handle's device.
func (h *Handle) Device() *Device { return h.dev }

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, scratchSize)
	return &b
}}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }
