package fs

import (
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tundevfs/tundevfs/driver"
)

// devNode is a device's node, tunN, tapN or vmnetN: a regular file whose
// every read and write is a packet (file.go). It lives while the kernel
// knows it, and holds one driver.RefKernel on the device per lookup.
type devNode struct{ d *driver.Device }

func (n devNode) id() uint64 { return n.d.Ino() }

// devSize is the size a device node reports. With
// FOPEN_PARALLEL_DIRECT_WRITES the kernel runs a direct write under the
// shared inode lock only when it ends within the file size
// (fs/fuse/file.c: fuse_dio_wr_exclusive_lock, fuse_io_past_eof); a stream
// file writes at offset 0, so the size covers the largest write one
// request carries (maxRequest). An O_APPEND write takes the exclusive lock
// anyway, and its offset, devSize, stays far from any limit.
//
// The size does not open the page cache: a page-cache READ (a fault of a
// private mapping, readahead) is refused (see Read), so pages inside it
// never hold packets.
const devSize = maxRequest

func (n devNode) attr(mnt *Mount, a *fuse.Attr) {
	d := n.d
	uid, gid, mode := d.Owner()
	a.Ino = d.Ino()
	a.Mode = syscall.S_IFREG | mode
	a.Size = devSize
	a.Nlink = 1
	if !d.Alive() {
		a.Nlink = 0
	}
	a.Owner = fuse.Owner{Uid: uid, Gid: gid}
	a.Blksize = 4096
	setTimes(a, d.Created())
}

func (n devNode) attrTimeout(mnt *Mount) time.Duration { return mnt.opts.EntryTimeout }

// setattr: chmod and chown of device nodes (the kernel checks
// permissions); a size change is accepted and ignored so that truncating
// opens (`echo x > tun0`) work.
func (n devNode) setattr(mnt *Mount, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	var o driver.Owner
	var set driver.OwnerSet
	if in.Valid&fuse.FATTR_MODE != 0 {
		o.Mode, set.Mode = in.Mode&0o7777, true
	}
	if in.Valid&fuse.FATTR_UID != 0 {
		o.UID, set.UID = in.Uid, true
	}
	if in.Valid&fuse.FATTR_GID != 0 {
		o.GID, set.GID = in.Gid, true
	}
	n.d.SetOwner(o, set)
	mnt.getattr(n, out)
	return fuse.OK
}

func (n devNode) readlink(mnt *Mount, h *fuse.InHeader) ([]byte, fuse.Status) { return notLink() }

// open (tunopen): exclusive, EBUSY when open, ENXIO when dying.
func (n devNode) open(mnt *Mount, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if n.d.Jail() != mnt.callerJail(&in.InHeader) {
		return fuse.ENOENT // another jail's device (pernetns.go)
	}
	if st, ok := mnt.replayOpen(in, out); ok {
		return st // resent: opened by the dead server (replay.go)
	}
	h, err := n.d.Open(processID(in.Caller.Pid))
	if err != nil {
		return errno(err)
	}
	fh, ok := mnt.addHandle(h, in.Unique)
	if !ok {
		h.Close()
		return fuse.Status(syscall.ENXIO)
	}
	out.Fh = fh
	out.OpenFlags = devOpenFlags
	return fuse.OK
}

// devOpenFlags are a device file's open flags. Parallel direct writes:
// writers of one device do not queue on the inode lock (see devSize). No
// FLUSH: close(2) has nothing to wait for (Flush did nothing), saves a
// round trip, and stays clean after the mount is gone (Unmount).
const devOpenFlags = fuse.FOPEN_DIRECT_IO | fuse.FOPEN_NONSEEKABLE | fuse.FOPEN_STREAM |
	fuse.FOPEN_PARALLEL_DIRECT_WRITES | fuse.FOPEN_NOFLUSH

// ioctlNoFile: the device's file was closed by Unmount (ENXIO), or the
// handle is not the mount's (EBADF).
func (n devNode) ioctlNoFile(mnt *Mount) fuse.Status { return mnt.noHandle() }

func (n devNode) aliveLocked() bool { return n.d.Alive() }

func (n devNode) lookedUpLocked() { n.d.Ref(driver.RefKernel) }

func (n devNode) forgotten(nlookup uint64) {
	for range nlookup {
		n.d.Rel(driver.RefKernel)
	}
}
