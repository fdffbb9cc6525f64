package fs

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// errNotThere: the mount's path no longer leads to the mount (a path
// component was moved away or replaced by a symbolic link, or the mount
// was detached by someone else). It wraps EINVAL, what umount2 answers
// for a path that is not a mount point.
var errNotThere = fmt.Errorf("the path no longer leads to this mount: %w", unix.EINVAL)

// umount detaches this mount with umount2 flags, never following a
// symbolic link: a user who can write a directory above the mount point
// may have moved it and put a symlink in its place, and an unmount that
// followed it would detach somebody else's mount. The parent is opened
// with RESOLVE_NO_SYMLINKS, the last component must be this mount's root
// (its device is the mount's FUSE connection), and umount2 reaches it
// through the parent's descriptor with UMOUNT_NOFOLLOW, so nothing can be
// swapped between the check and the unmount (a mount point itself cannot
// be renamed).
func (mnt *Mount) umount(flags int) error {
	parent, base := filepath.Dir(mnt.dir), filepath.Base(mnt.dir)
	pfd, err := unix.Openat2(unix.AT_FDCWD, parent, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return fmt.Errorf("%w (open %s: %w)", errNotThere, parent, err)
	}
	defer unix.Close(pfd)
	// No FUSE request: the device comes from the superblock, and
	// DONT_SYNC keeps the kernel from asking the server for attributes.
	var stx unix.Statx_t
	if err := unix.Statx(pfd, base, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT|unix.AT_STATX_DONT_SYNC, unix.STATX_TYPE, &stx); err != nil {
		return fmt.Errorf("%w (stat %s: %w)", errNotThere, mnt.dir, err)
	}
	if stx.Mode&unix.S_IFMT != unix.S_IFDIR || stx.Dev_major != 0 || (mnt.connID != 0 && stx.Dev_minor != mnt.connID) {
		return errNotThere
	}
	return unix.Unmount("/proc/self/fd/"+strconv.Itoa(pfd)+"/"+base, flags|unix.UMOUNT_NOFOLLOW)
}

// movedTo returns where this mount is listed now when its path no longer
// leads to it, or "" when it is not mounted any more.
func (mnt *Mount) movedTo() string {
	if mnt.connID == 0 {
		return ""
	}
	for _, e := range mounts() {
		if e.fstype == "fuse.tundevfs" && e.minor == mnt.connID {
			return e.dir
		}
	}
	return ""
}

// isNotThere reports whether err is umount's errNotThere.
func isNotThere(err error) bool { return errors.Is(err, errNotThere) }
