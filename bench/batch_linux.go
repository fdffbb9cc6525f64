package bench

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/ioctls"
)

// TUNSBATCH (ioctls.TUNSBATCH) puts an open device file in batch mode: a
// read returns every whole queued packet that fits, a write carries
// several, each packet preceded by its length, 4 bytes big-endian. A FUSE
// read or write carries at most 64 KiB.
const (
	batchMax     = 64 << 10 // bytes in one batch read or write
	batchRecHdr  = 4        // the length before each packet
	batchPackets = 64       // packets the data path hands one batch write
)

// errNoBatch says the daemon has no batch mode: TUNSBATCH is ENOTTY.
var errNoBatch = errors.New("batch mode not available (ENOTTY)")

// openBatch clones a device like openTundevfs and switches its file to
// batch mode. Without batch mode it fails with errNoBatch.
func openBatch(ns *Netns, dd deviceDir, l2 bool, idx int) (*Endpoint, error) {
	e, err := openTundevfs(ns, dd, l2, idx)
	if err != nil {
		return nil, err
	}
	if err := unix.IoctlSetPointerInt(e.Fd, uint(ioctls.TUNSBATCH), 1); err != nil {
		e.Close()
		if errors.Is(err, unix.ENOTTY) {
			return nil, fmt.Errorf("open batch %s: %w", e.Name, errNoBatch)
		}
		return nil, fmt.Errorf("open batch %s: TUNSBATCH: %w", e.Name, err)
	}
	e.Path = "batch"
	e.batch = batchPackets
	wbuf, rbuf := make([]byte, batchMax), make([]byte, batchMax)
	e.writeBatch = func(pkts [][]byte) (int, error) { return writeBatch(e, wbuf, pkts) }
	e.readBatch = func(bufs [][]byte, sizes []int) (int, error) { return readBatch(e, rbuf, bufs, sizes) }
	return e, nil
}

// writeBatch writes pkts in as few batch writes as 64 KiB allow and returns
// how many packets the device took.
func writeBatch(e *Endpoint, buf []byte, pkts [][]byte) (int, error) {
	done := 0
	for done < len(pkts) {
		n, off := 0, 0
		for _, p := range pkts[done:] {
			if off+batchRecHdr+len(p) > len(buf) {
				break
			}
			binary.BigEndian.PutUint32(buf[off:], uint32(len(p)))
			copy(buf[off+batchRecHdr:], p)
			off += batchRecHdr + len(p)
			n++
		}
		if n == 0 {
			return done, fmt.Errorf("batch write %s: a packet of %d bytes does not fit", e.Name, len(pkts[done]))
		}
		w, err := unix.Write(e.Fd, buf[:off])
		if err != nil {
			return done, fmt.Errorf("batch write %s: %w", e.Name, err)
		}
		// The device consumed whole records: count them.
		took := 0
		for pos := 0; pos < w; took++ {
			pos += batchRecHdr + len(pkts[done+took])
			if pos > w {
				return done + took, fmt.Errorf("batch write %s: %d bytes consumed, not a record boundary", e.Name, w)
			}
		}
		if took == 0 {
			return done, fmt.Errorf("batch write %s: nothing consumed", e.Name)
		}
		done += took
	}
	return done, nil
}

// readBatch does one batch read into buf and points bufs[i] at each packet
// in it, in order; it returns how many there were.
func readBatch(e *Endpoint, buf []byte, bufs [][]byte, sizes []int) (int, error) {
	n, err := readRetry(e.Fd, buf)
	if err != nil {
		return 0, fmt.Errorf("batch read %s: %w", e.Name, err)
	}
	k := 0
	for off := 0; off < n; k++ {
		if n-off < batchRecHdr {
			return k, fmt.Errorf("batch read %s: %d bytes left, no record header", e.Name, n-off)
		}
		l := int(binary.BigEndian.Uint32(buf[off:]))
		off += batchRecHdr
		if l == 0 || l > n-off {
			return k, fmt.Errorf("batch read %s: record of %d bytes with %d left", e.Name, l, n-off)
		}
		if k == len(bufs) {
			return k, fmt.Errorf("batch read %s: more than %d packets", e.Name, len(bufs))
		}
		bufs[k], sizes[k] = buf[off:off+l], l
		off += l
	}
	return k, nil
}
