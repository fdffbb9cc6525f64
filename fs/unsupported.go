package fs

import "github.com/hanwen/go-fuse/v2/fuse"

// The requests of fuse.RawFileSystem a device directory does not serve,
// answered ENOSYS as go-fuse's default file system (which Mount embedded
// before) answers them. Mount embeds no default: it implements every
// method itself, so a method with a mistyped signature breaks the build
// (checks.go) instead of quietly answering ENOSYS, and each ENOSYS here is
// a choice.

// GetXAttr implements fuse.RawFileSystem; with
// MountOptions.DisableXAttrs go-fuse answers ENOSYS before asking.
func (mnt *Mount) GetXAttr(cancel <-chan struct{}, in *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	return 0, fuse.ENOSYS
}

// ListXAttr implements fuse.RawFileSystem (see GetXAttr).
func (mnt *Mount) ListXAttr(cancel <-chan struct{}, in *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	return 0, fuse.ENOSYS
}

// SetXAttr implements fuse.RawFileSystem (see GetXAttr).
func (mnt *Mount) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	return fuse.ENOSYS
}

// RemoveXAttr implements fuse.RawFileSystem (see GetXAttr).
func (mnt *Mount) RemoveXAttr(cancel <-chan struct{}, in *fuse.InHeader, attr string) fuse.Status {
	return fuse.ENOSYS
}

// Tmpfile implements fuse.RawFileSystem: O_TMPFILE makes nothing here,
// as the namespace calls make nothing (ops.go).
func (mnt *Mount) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	return fuse.ENOSYS
}

// GetLk implements fuse.RawFileSystem. File locks stay the kernel's:
// without MountOptions.EnableLocks go-fuse does not ask for them.
func (mnt *Mount) GetLk(cancel <-chan struct{}, in *fuse.LkIn, out *fuse.LkOut) fuse.Status {
	return fuse.ENOSYS
}

// SetLk implements fuse.RawFileSystem (see GetLk).
func (mnt *Mount) SetLk(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	return fuse.ENOSYS
}

// SetLkw implements fuse.RawFileSystem (see GetLk).
func (mnt *Mount) SetLkw(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	return fuse.ENOSYS
}

// Writev implements fuse.RawFileSystem: ENOSYS makes go-fuse call Write,
// one packet per WRITE.
func (mnt *Mount) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	return 0, fuse.ENOSYS
}

// Fsync implements fuse.RawFileSystem: a device has nothing to sync.
func (mnt *Mount) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return fuse.ENOSYS
}

// FsyncDir implements fuse.RawFileSystem (see Fsync).
func (mnt *Mount) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return fuse.ENOSYS
}

// ReadDirPlus implements fuse.RawFileSystem; the mount is made with
// DisableReadDirPlus, so READDIR (ReadDir) lists.
func (mnt *Mount) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return fuse.ENOSYS
}

// Fallocate implements fuse.RawFileSystem.
func (mnt *Mount) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	return fuse.ENOSYS
}

// CopyFileRange implements fuse.RawFileSystem.
func (mnt *Mount) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	return 0, fuse.ENOSYS
}

// Lseek implements fuse.RawFileSystem; device files are not seekable
// (FOPEN_NONSEEKABLE).
func (mnt *Mount) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	return fuse.ENOSYS
}

// Statx implements fuse.RawFileSystem; the kernel then asks GETATTR
// (GetAttr).
func (mnt *Mount) Statx(cancel <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	return fuse.ENOSYS
}
