package fs

// ConnID is the mount's FUSE connection number: the minor of the st_dev
// that every file of the mount (and of its bind mounts) reports, the major
// being 0. The fast path (daemon) tells its own device files apart by it.
// 0 if it could not be found at mount time.
func (mnt *Mount) ConnID() uint32 { return mnt.connID }
