package driver

// This file is the data path of an open device: the watcher that waits on
// Go's netpoller for the fd to become readable, Read and Write of single
// packets, and the wait of a blocked read. Framing is in framing.go, batch
// records in batch.go, readiness for poll in poll.go.

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

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
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ready
}

// wake closes the current readiness channel.
func (d *Device) wake() {
	d.mu.Lock()
	close(d.ready)
	d.ready = make(chan struct{})
	d.mu.Unlock()
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
		case <-h.left:
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
		select {
		case <-h.left:
			// Whoever moved h out of hOpen wakes whom it must.
			return
		default:
		}
		d.wake()
		h.notifyPoll()
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
	}
}

// Read reads one packet into buf (tunread): a short buf truncates the
// packet and the rest is dropped. With nothing queued it blocks until a
// packet arrives, cancel is closed (ErrInterrupted) or the device is
// destroyed (ErrGone), or fails at once with ErrWouldBlock if nonblock.
func (h *Handle) Read(cancel <-chan struct{}, buf []byte, nonblock bool) (int, error) {
	d := h.dev
	if err := d.enterIO(h); err != nil {
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
	var frozen chan struct{} // nil: never (a device of no manager, in tests)
	if d.m != nil {
		frozen = d.m.freeze.ch
	}
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
		case <-h.left:
			return 0, h.leftErr()
		case <-frozen:
			return 0, ErrFrozen
		}
	}
}

// leftErr is what a blocked operation answers once h left hOpen: ErrGone
// if the device is dying, ErrFastPath on the fast path, else ErrNotOpen.
func (h *Handle) leftErr() error {
	d := h.dev
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.state != devAlive:
		return ErrGone
	case h.state == hFast:
		return ErrFastPath
	}
	return ErrNotOpen
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
// packet is framed as the device's mode says (framing.go).
func (h *Handle) Write(data []byte) (int, error) {
	d := h.dev
	if err := d.enterIO(h); err != nil {
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

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, scratchSize)
	return &b
}}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) { bufPool.Put(b) }
