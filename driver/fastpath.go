package driver

// The fast path (SPEC §10, issue 12): the process that holds a device's
// open file gets a duplicate of the device's real TUN fd and does its I/O
// on the kernel directly.
//
// Contract:
//   - Handle.FastPath checks that the device is alive, that h is its open
//     handle and that the knob allows it, switches the open file to the
//     fast path and returns a new fd (close-on-exec) sharing the daemon's
//     open file description of /dev/net/tun (the interface has one queue;
//     Linux attaches no second fd to a single-queue interface). The
//     caller sends it and closes it.
//   - On the fast path the device file carries no packets: the watcher is
//     stopped, so the daemon reads nothing from its copy, a read or write
//     fails with ErrFastPath (EBUSY), a blocked read returns that error at
//     once, and poll fails (POLLERR). The ioctls keep working.
//   - The fast path ends with the open file (last close): the device is
//     closed as before (a tun or tap brought down, addresses removed;
//     vmnet and link0 keep their state). The handed fd stays a TUN fd of
//     the interface and carries what the interface carries.
//   - Once a device has been handed out, Destroy (ifconfig destroy,
//     transient last close, jail removal, daemon shutdown) unregisters the
//     interface with RTM_DELLINK in the jail's namespace before closing its
//     own fd, so a handed fd cannot keep the interface alive: its blocked
//     read fails and later reads say EBADFD.
//   - The daemon's reads of its fd never block, whatever O_NONBLOCK a
//     client set on the shared file description: once a duplicate was
//     handed out they use preadv2 with RWF_NOWAIT (readNoWait); before,
//     plain read(2) as always.
//
// Lock order: fastpath state is under Device.mu, like the rest of the
// device's state.

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// KnobTunFastpath is the global switch of the fast path.
const KnobTunFastpath = "net.link.tun.fastpath"

// ErrFastPath: the device file is on the fast path and carries no packets
// (EBUSY); also a refused fast-path request.
var ErrFastPath = fmt.Errorf("device is on the fast path: %w", ErrBusy)

// ErrFastPathOff: the knob turns the fast path off.
var ErrFastPathOff = errors.New("fast path is off (sysctl net.link.tun.fastpath=0 or jail fastpath=0)")

// fastState is a device's fast-path state, guarded by Device.mu.
type fastState struct {
	handed int // fds handed out over the device's life
	// shared is set (never cleared) once a client holds a duplicate of
	// the fd: from then on the daemon reads with readNoWait, whatever
	// O_NONBLOCK the client left on the shared file description. Atomic:
	// readRawLocked reads it without Device.mu.
	shared atomic.Bool
}

// FastPath returns whether the fast path is allowed by the global knob.
func (k *Knobs) FastPath() bool { return k.flag(KnobTunFastpath) }

// FastPath switches the open file h to the fast path and returns a
// duplicate of the device's TUN fd for the caller to send and close.
// A second call on the same open file hands another duplicate.
func (h *Handle) FastPath() (int, error) {
	d := h.dev
	if !d.m.Knobs().FastPath() {
		return -1, fmt.Errorf("fast path %s: %w", d.DevName(), ErrFastPathOff)
	}
	if err := d.enter(h); err != nil {
		return -1, fmt.Errorf("fast path %s: %w", d.DevName(), err)
	}
	fd, err := unix.FcntlInt(uintptr(d.fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		d.exit()
		return -1, fmt.Errorf("fast path %s: dup: %w", d.DevName(), err)
	}
	d.fp.shared.Store(true)
	d.mu.Lock()
	first := h.state == hOpen
	if first {
		h.leaveLocked(hFast)
	}
	d.fp.handed++
	d.mu.Unlock()
	if first {
		// The daemon stops reading: no watcher, no stash left behind.
		h.stopWatch()
		d.wake()
		h.notifyPoll()
	}
	d.exit()
	if first {
		h.detachPoller() // waits for busy 0: after exit
	}
	d.m.changed()
	return fd, nil
}

// detachPoller takes the daemon's fd off Go's netpoller once h is on the
// fast path: registered, the fd would wake the daemon's netpoller thread
// at every packet the client's fd is about to read (the wait queue is
// the file description's, shared with the client). The fd number changes
// (a duplicate replaces it), so it waits until no operation is in flight.
// Open registers it again (ensureFile) for the next open file's watcher.
func (h *Handle) detachPoller() {
	d := h.dev
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.busy > 0 {
		d.idle.Wait()
	}
	if d.state != devAlive || d.open != h || d.file == nil {
		return
	}
	nfd, err := unix.FcntlInt(uintptr(d.fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		d.m.logf("fast path %s: dup: %v", d.DevName(), err)
		return
	}
	d.file.Close() // EPOLL_CTL_DEL, then close of the old number
	d.file, d.fd = nil, nfd
}

// ensureFile registers the daemon's fd with Go's netpoller again after a
// fast path, for the watcher of a new open file. Callers hold a busy
// reference, so nothing else changes d.file meanwhile.
func (d *Device) ensureFile() {
	if d.file == nil {
		d.file = os.NewFile(uintptr(d.fd), d.DevName())
	}
}

// closeFile closes the daemon's fd, registered with the netpoller or not.
func (d *Device) closeFile() error {
	if d.file != nil {
		return d.file.Close()
	}
	return unix.Close(d.fd)
}

// OnFastPath reports whether the device's open file is on the fast path.
func (d *Device) OnFastPath() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.onFastPathLocked()
}

// onFastPathLocked is OnFastPath with d.mu held.
func (d *Device) onFastPathLocked() bool {
	return d.open != nil && d.open.state == hFast
}

// handedOut reports whether a TUN fd of d was ever handed to a client.
func (d *Device) handedOut() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fp.handed > 0
}

// unregisterHanded deletes the interface (RTM_DELLINK) when a client may
// hold a duplicate of its fd, so that closing the daemon's fd really
// removes it. Called by Destroy once nothing is busy.
func (d *Device) unregisterHanded() {
	if !d.handedOut() && !d.m.heldElsewhere.Load() {
		return
	}
	links := d.js.links
	if links == nil {
		d.m.logf("destroy %s: no netlink socket left to unregister the interface", d.DevName())
		return
	}
	if err := links.Delete(d.ifindex); err != nil {
		d.m.logf("destroy %s: %v", d.DevName(), err)
	}
}
