package fs

import (
	"errors"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tundevfs/tundevfs/driver"
)

// The name-changing requests. A device directory is made by its cloners
// and by destroy, never by the namespace calls, which answer as FreeBSD's
// devfs does and create nothing: mkdir, mknod, an exclusive create,
// rename and link are EOPNOTSUPP (devfs has no such vnode operations;
// devfs_lookupx() refuses RENAME with EOPNOTSUPP), unlink and symlink are
// EPERM (devfs_remove() and devfs_symlink() are privileged ways to hide
// and add entries, which tundevfs does not offer). The lookup before each
// of them makes no device either (createsName, Lookup).

// Mknod implements fuse.RawFileSystem.
func (fs *Mount) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.Status(syscall.EOPNOTSUPP)
}

// Mkdir implements fuse.RawFileSystem.
func (fs *Mount) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.Status(syscall.EOPNOTSUPP)
}

// Create implements fuse.RawFileSystem: open(O_CREAT) of a name that is no
// device (an exclusive create, or a name that cannot be cloned).
func (fs *Mount) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	return fuse.Status(syscall.EOPNOTSUPP)
}

// Rename implements fuse.RawFileSystem.
func (fs *Mount) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	return fuse.Status(syscall.EOPNOTSUPP)
}

// Link implements fuse.RawFileSystem.
func (fs *Mount) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.Status(syscall.EOPNOTSUPP)
}

// Unlink implements fuse.RawFileSystem.
func (fs *Mount) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return fuse.EPERM
}

// Rmdir implements fuse.RawFileSystem: the directory holds no directories.
func (fs *Mount) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return fuse.ENOTDIR
}

// Symlink implements fuse.RawFileSystem.
func (fs *Mount) Symlink(cancel <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.EPERM
}

// noHandle answers a request on a file handle the mount does not know:
// ENXIO once Unmount has ended the mount's open files (as destroy does),
// else EBADF.
func (fs *Mount) noHandle() fuse.Status {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.revoked {
		return fuse.Status(syscall.ENXIO)
	}
	return fuse.EBADF
}

// fileErr is errno for requests on an open file: a handle that Unmount
// closed under a blocked request answers ENXIO, as a destroyed device does.
func (fs *Mount) fileErr(err error) fuse.Status {
	if errors.Is(err, driver.ErrNotOpen) {
		fs.mu.Lock()
		revoked := fs.revoked
		fs.mu.Unlock()
		if revoked {
			return fuse.Status(syscall.ENXIO)
		}
	}
	return errno(err)
}
