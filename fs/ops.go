package fs

import (
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
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
func (mnt *Mount) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.Status(syscall.EOPNOTSUPP)
}

// Mkdir implements fuse.RawFileSystem.
func (mnt *Mount) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.Status(syscall.EOPNOTSUPP)
}

// Create implements fuse.RawFileSystem: open(O_CREAT) of a name that is no
// device (an exclusive create, or a name that cannot be cloned).
func (mnt *Mount) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	return fuse.Status(syscall.EOPNOTSUPP)
}

// Rename implements fuse.RawFileSystem.
func (mnt *Mount) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	return fuse.Status(syscall.EOPNOTSUPP)
}

// Link implements fuse.RawFileSystem.
func (mnt *Mount) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.Status(syscall.EOPNOTSUPP)
}

// Unlink implements fuse.RawFileSystem.
func (mnt *Mount) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return fuse.EPERM
}

// Rmdir implements fuse.RawFileSystem: the directory holds no directories.
func (mnt *Mount) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return fuse.ENOTDIR
}

// Symlink implements fuse.RawFileSystem.
func (mnt *Mount) Symlink(cancel <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.EPERM
}
