package fs

import (
	"errors"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tundevfs/tundevfs/driver"
)

// Open device files: the handles OPEN made (devNode.open), and the
// requests on them. Each request finds its driver.Handle by the file
// handle the kernel sends.

// maxRequest is the largest READ or WRITE one FUSE request carries
// (MountOptions.MaxWrite, which go-fuse also passes as max_read): 17
// pages, so that a buffer of up to 64 KiB is one request wherever it
// starts in a page. The kernel cuts a direct read or write into requests
// of at most max_pages pages (fs/fuse/file.c: fuse_direct_io,
// fuse_get_user_pages), and 64 KiB that do not start on a page boundary
// span 17 pages: with 16, a batch write of 65,520 bytes 3,000 bytes into
// a page became two requests, the first ending inside a record.
const maxRequest = 17 * 4096

// splitFloor: a READ request larger than this may be only the first part
// of a larger read(2) (the kernel cuts one at max_pages pages, so a first
// part holds more than 16 pages); one of this size or smaller is always
// the whole rest of it. A reply that fills a request larger than this
// would make the kernel ask for more (see Read).
const splitFloor = 16 * 4096

// addHandle records an open device file and returns its file handle;
// false once the mount ends or Unmount has closed its files.
func (mnt *Mount) addHandle(h *driver.Handle, unique uint64) (uint64, bool) {
	mnt.mu.Lock()
	defer mnt.mu.Unlock()
	if mnt.closed || mnt.revoked {
		return 0, false
	}
	mnt.nextFh++
	mnt.handles[mnt.nextFh] = h
	mnt.rememberLocked(ReplayState{Unique: unique, Fh: mnt.nextFh})
	mnt.changed()
	return mnt.nextFh, true
}

func (mnt *Mount) handle(fh uint64) *driver.Handle {
	mnt.mu.Lock()
	defer mnt.mu.Unlock()
	return mnt.handles[fh]
}

// Read implements fuse.RawFileSystem: one packet per read.
//
// Only read(2) reaches a device. The kernel also reads a FUSE file for its
// page cache: a fault of a private mapping (which fuse_file_mmap allows
// for FOPEN_DIRECT_IO files) and readahead (readahead(2), fadvise). Those
// READs come without FUSE_READ_LOCKOWNER, which fuse_direct_io sets on
// every read(2) (the lock owner is the caller's files table), and get EIO
// at once: a fault is SIGBUS instead of waiting for a packet and eating it.
//
// A reply never fills a READ that may be the first part of a larger
// read(2) (larger than splitFloor): the kernel would ask for the rest with
// a second READ, which would block or glue the next packet on. A packet
// that large (an MTU set behind the device's back, a GSO frame) is cut
// one byte short instead, as a short buffer cuts it.
func (mnt *Mount) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	h := mnt.handle(in.Fh)
	if h == nil {
		return nil, mnt.noHandle()
	}
	if in.ReadFlags&fuse.READ_LOCKOWNER == 0 {
		return nil, errno(driver.ErrPageCache)
	}
	if int(in.Size) < len(buf) {
		buf = buf[:in.Size]
	}
	nonblock := in.Flags&syscall.O_NONBLOCK != 0
	inline := fuse.InlineRequest(cancel) // transport_linux.go
	var n int
	var err error
	if h.Batch() {
		n, err = h.ReadBatch(cancel, buf, nonblock || inline)
	} else {
		if len(buf) > splitFloor {
			buf = buf[:len(buf)-1]
		}
		n, err = h.Read(cancel, buf, nonblock || inline)
	}
	if err != nil {
		if inline && !nonblock && errors.Is(err, driver.ErrWouldBlock) {
			return nil, fuse.ServeLater
		}
		return nil, mnt.fileErr(err)
	}
	return packetResult(buf[:n]), fuse.OK
}

// Write implements fuse.RawFileSystem: one packet per write.
func (mnt *Mount) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	h := mnt.handle(in.Fh)
	if h == nil {
		return 0, mnt.noHandle()
	}
	var n int
	var err error
	if h.Batch() {
		n, err = h.WriteBatch(data)
	} else {
		n, err = h.Write(data)
	}
	if err != nil {
		return 0, mnt.fileErr(err)
	}
	return uint32(n), fuse.OK
}

// Flush implements fuse.RawFileSystem.
func (mnt *Mount) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	return fuse.OK
}

// Release implements fuse.RawFileSystem: the last close.
func (mnt *Mount) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	defer mnt.sync()
	mnt.mu.Lock()
	h := mnt.handles[in.Fh]
	delete(mnt.handles, in.Fh)
	delete(mnt.khs, in.Fh)
	mnt.mu.Unlock()
	if h != nil {
		h.Close()
		mnt.changed()
	}
}

// noHandle answers a request on a file handle the mount does not know:
// ENXIO once Unmount has ended the mount's open files (as destroy does),
// else EBADF.
func (mnt *Mount) noHandle() fuse.Status {
	mnt.mu.Lock()
	defer mnt.mu.Unlock()
	if mnt.revoked {
		return fuse.Status(syscall.ENXIO)
	}
	return fuse.EBADF
}

// fileErr is errno for requests on an open file: a handle that Unmount
// closed under a blocked request answers ENXIO, as a destroyed device does.
func (mnt *Mount) fileErr(err error) fuse.Status {
	if errors.Is(err, driver.ErrFrozen) {
		// A planned restart (driver.Freeze): this process exits soon,
		// and the kernel resends the request, unanswered, to the next
		// server. Any answer now would be wrong (EAGAIN to a blocking
		// read).
		select {}
	}
	if errors.Is(err, driver.ErrNotOpen) {
		mnt.mu.Lock()
		revoked := mnt.revoked
		mnt.mu.Unlock()
		if revoked {
			return fuse.Status(syscall.ENXIO)
		}
	}
	return errno(err)
}
