package driver

import (
	"encoding/binary"
	"fmt"
)

// Batch mode (TUNSBATCH) is a tundevfs extension: with it, one read returns
// as many whole queued packets as fit, and one write may carry several, each
// packet preceded by its length as a 4-byte big-endian number. A packet is in
// the form single mode reads and writes it (with the IFHEAD family, the
// link-layer sockaddr or the virtio-net header its modes add). It saves a
// FUSE round trip per packet. Single-packet semantics stay the default, and
// poll tells the truth either way: readable when one packet is queued.

// BatchHdrLen is the length prefix of a packet in batch mode.
const BatchHdrLen = 4

// SetBatch switches batch mode for this open file (TUNSBATCH).
func (h *Handle) SetBatch(on bool) error {
	return h.do("TUNSBATCH", func(d *Device) error {
		h.batch.Store(on)
		d.m.changed()
		return nil
	})
}

// Batch reports whether the open file is in batch mode.
func (h *Handle) Batch() bool { return h.batch.Load() }

// ReadBatch reads queued packets into buf, each with its length before it.
// It waits for the first one as Read does. A packet that does not fit is
// left queued for the next read, unless it is the first, which is truncated
// as in single mode. It never fills buf completely, so that a reader with a
// buffer larger than a FUSE read gets a short read, not a second read that
// blocks.
func (h *Handle) ReadBatch(cancel <-chan struct{}, buf []byte, nonblock bool) (int, error) {
	d := h.dev
	if len(buf) < BatchHdrLen+2 {
		return 0, fmt.Errorf("read %s: batch read of %d bytes: %w", d.DevName(), len(buf), ErrInvalid)
	}
	if err := d.enterIO(h); err != nil {
		return 0, err
	}
	defer d.exit()
	buf = buf[:len(buf)-1]
	return h.wait(cancel, nonblock, func() (int, error) { return d.fillBatch(buf) })
}

// fillBatch packs packets into buf without blocking; unix.EAGAIN if none is
// queued. The stash lock is held throughout, so that a packet put back goes
// back first, before anything Poll might read meanwhile.
func (d *Device) fillBatch(buf []byte) (int, error) {
	d.stashMu.Lock()
	defer d.stashMu.Unlock()
	off := 0
	for {
		scratch, n, err := d.nextLocked()
		if err != nil {
			if off > 0 {
				return off, nil
			}
			return 0, err
		}
		pkt := (*scratch)[:n]
		if off > 0 && off+BatchHdrLen+d.framedLen(pkt) > len(buf) {
			// Put it back: the next read returns it first.
			d.stash, d.stashLen = scratch, n
			return off, nil
		}
		c := d.frame(buf[off+BatchHdrLen:], pkt)
		binary.BigEndian.PutUint32(buf[off:], uint32(c))
		off += BatchHdrLen + c
		putBuf(scratch)
		d.rxPackets.Add(1)
	}
}

// WriteBatch sends the packets of data, each with its length before it, and
// returns the bytes consumed. A malformed record (a length of 0, above the
// MRU, or beyond the end of data) or a packet the kernel refuses ends the
// write before it: with an error if it is the first, else with the bytes
// consumed so far.
func (h *Handle) WriteBatch(data []byte) (int, error) {
	d := h.dev
	if err := d.enterIO(h); err != nil {
		return 0, err
	}
	defer d.exit()
	off := 0
	for off < len(data) {
		var err error
		if len(data)-off < BatchHdrLen {
			err = fmt.Errorf("write %s: batch record header cut short: %w", d.DevName(), ErrInvalid)
		} else if l := int(binary.BigEndian.Uint32(data[off:])); l == 0 || l > d.mru() || l > len(data)-off-BatchHdrLen {
			err = fmt.Errorf("write %s: batch record of %d bytes at offset %d: %w", d.DevName(), l, off, ErrInvalid)
		} else if err = d.writePacket(data[off+BatchHdrLen : off+BatchHdrLen+l]); err == nil {
			off += BatchHdrLen + l
			continue
		}
		if off > 0 {
			return off, nil
		}
		return 0, err
	}
	return off, nil
}
