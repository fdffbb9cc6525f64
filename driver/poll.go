package driver

// Readiness for poll(2), select(2) and epoll(7) (FreeBSD's tunpoll()).
//
// The file system asks Poll whether a read would return a packet now, and
// may leave a notification to be called when that may have changed. Two
// things make the answer more than "is the fd readable":
//
//   - A readable fd does not mean a read returns a packet: readPacket drops
//     what a reader must not see (IPv6 on a tun without IFHEAD). So Poll
//     reads the fd itself, drops those packets the same way, and keeps the
//     first packet a reader would get in the device's stash, which Read
//     returns before anything still in the fd. At most one packet is
//     stashed; stashMu is held across every read of the fd, so packets keep
//     their order.
//   - The notification is sent by the handle's watcher (watch), the one
//     goroutine per open device parked on Go's netpoller, at its next
//     wakeup: a packet arrived. Destroy sends it too, so that pollers
//     notice the device going away, as blocked readers do. Close drops it
//     before it stops the watcher.

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Poll reports whether a Read would return a packet now (tunpoll()). If
// notify is not nil, it is registered to be called once, without locks
// held, at the handle's next readiness wakeup or when the device is
// destroyed, whichever comes first; it replaces an earlier registration
// (FUSE has one kernel poll handle per open file, and one notification
// wakes every waiter on it). Poll never blocks. It fails with ErrGone once
// the device is dying and with ErrNotOpen on a closed handle.
func (h *Handle) Poll(notify func()) (readable bool, err error) {
	d := h.dev
	if err := d.enterIO(h); err != nil {
		return false, fmt.Errorf("poll %s: %w", d.DevName(), err)
	}
	defer d.exit()
	readable, filled, err := d.peek()
	if err != nil {
		return false, fmt.Errorf("poll %s: %w", d.DevName(), err)
	}
	if filled {
		// The packet moved from the fd, where the watcher looks, to the
		// stash, where it does not: wake those who wait for it now.
		d.wake()
		h.notifyPoll()
	}
	if notify != nil && h.setPoll(notify) {
		// Have the watcher wait for the next packet. It looks at the fd
		// first, so a packet that came after peek is not missed.
		select {
		case h.wantc <- struct{}{}:
		default:
		}
	}
	return readable, nil
}

// peek makes sure that the next packet a reader gets, if there is one, is
// in the stash: it reads the fd, dropping the packets a reader must not
// see, until one is left or the fd is empty. filled reports that it moved
// a packet into the stash.
func (d *Device) peek() (readable, filled bool, err error) {
	d.stashMu.Lock()
	defer d.stashMu.Unlock()
	if d.stash != nil {
		return true, false, nil
	}
	buf, n, err := d.nextLocked()
	if errors.Is(err, unix.EAGAIN) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	d.stash, d.stashLen = buf, n
	return true, true, nil
}

// nextLocked returns the next packet a reader may see, in a pooled buffer
// the caller puts back or keeps as the stash, without blocking (unix.EAGAIN
// when none is queued): the stashed packet first, then the fd's, dropping
// and counting those a reader must not see (delivers). d.stashMu is held.
func (d *Device) nextLocked() (*[]byte, int, error) {
	for {
		buf := getBuf()
		n, err := d.readRawLocked(*buf)
		if err != nil {
			putBuf(buf)
			return nil, 0, err
		}
		if d.delivers((*buf)[:n]) {
			return buf, n, nil
		}
		d.drops.Add(1)
		putBuf(buf)
	}
}

// readRaw reads the next packet into buf without blocking: the stashed one
// if there is one, else one from the fd (unix.EAGAIN when it is empty). It
// does not filter: readPacket does, also for a stashed packet.
func (d *Device) readRaw(buf []byte) (int, error) {
	d.stashMu.Lock()
	defer d.stashMu.Unlock()
	return d.readRawLocked(buf)
}

// readRawLocked is readRaw with d.stashMu held.
func (d *Device) readRawLocked(buf []byte) (int, error) {
	if d.stash != nil {
		n := copy(buf, (*d.stash)[:d.stashLen])
		putBuf(d.stash)
		d.stash, d.stashLen = nil, 0
		return n, nil
	}
	if d.fp.shared.Load() {
		return readNoWait(d.fd, buf) // a client shares the description
	}
	return unix.Read(d.fd, buf)
}

// setPoll registers fn as the handle's poll notification, unless the
// handle no longer carries packets (it reports whether it did).
func (h *Handle) setPoll(fn func()) bool {
	d := h.dev
	d.mu.Lock()
	defer d.mu.Unlock()
	if h.state != hOpen {
		return false
	}
	h.pollNotify = fn
	return true
}

// notifyPoll calls the registered poll notification, if any, and forgets
// it: one notification per registration.
func (h *Handle) notifyPoll() {
	d := h.dev
	d.mu.Lock()
	fn := h.pollNotify
	h.pollNotify = nil
	d.mu.Unlock()
	if fn != nil {
		fn()
	}
}
