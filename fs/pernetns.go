package fs

import (
	"strconv"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/jails"
)

// A per-netns mount (Options.PerNetns) is the one shared mount a host
// bind-mounts into every container: it shows each caller the devices of
// the jail on the caller's own network namespace, as FreeBSD's tunclone()
// creates the interface in the calling thread's vnet.
//
// Contract:
//   - The caller is the thread FUSE names in the request header; its
//     namespace is read at every LOOKUP, READLINK, OPENDIR and OPEN from
//     /proc/TID/ns/net (stat: the nsfs inode), never /proc/self, and mapped
//     to a jail by Options.JailOf. The thread is blocked in the request, so
//     its id cannot be reused meanwhile, and a thread that switched
//     namespace is seen in its new one.
//   - A caller whose namespace has no jail sees an empty directory and gets
//     ENOENT for every name (tun included); the daemon logs it at debug
//     level.
//   - Owner, mode, clone privilege and limits are those of the caller's
//     jail, as on a jail's own mount.
//   - The kernel caches dentries and attributes per superblock, not per
//     caller: every entry and attribute timeout of the mount is 0, so each
//     path walk asks again, and device node ids are the driver's inode
//     numbers, unique across jails. An OPEN of a node of another jail's
//     device (a stale dentry, a /proc/PID/fd path) is ENOENT.
//   - An open file stays with the device it opened, whichever namespace
//     the thread reading or writing it is in later.
//   - The mount holds the jail given to MountDir (the host jail) and goes
//     with it; other jails come and go under it.

// JailResolver maps a network namespace, by its nsfs inode number, to the
// alive jail on it, or nil.
type JailResolver func(netnsIno uint64) *jails.Jail

// normalizePerNetns applies the per-netns mount's fixed settings: no
// caching of entries or attributes, and open to every user (containers),
// the kernel checking each node's owner and mode.
func normalizePerNetns(opts Options) Options {
	if !opts.PerNetns {
		return opts
	}
	opts.EntryTimeout = 0
	opts.AllowOther = true
	opts.StdDevices = false
	return opts
}

// callerJail is the jail whose devices the caller of request h sees: the
// mount's own jail, or on a per-netns mount the jail on the caller's
// network namespace (nil when there is none).
func (mnt *Mount) callerJail(h *fuse.InHeader) *jails.Jail {
	if !mnt.opts.PerNetns {
		return mnt.jail
	}
	ino, err := threadNetnsIno(h.Caller.Pid)
	if err != nil {
		if mnt.opts.Debug {
			mnt.logger.Printf("per-netns %s: caller %d: %v", mnt.dir, h.Caller.Pid, err)
		}
		return nil
	}
	var j *jails.Jail
	if mnt.opts.JailOf != nil {
		j = mnt.opts.JailOf(ino)
	}
	if j == nil && mnt.opts.Debug {
		mnt.logger.Printf("per-netns %s: caller %d in netns %d: no jail there", mnt.dir, h.Caller.Pid, ino)
	}
	return j
}

// threadNetnsIno returns the nsfs inode of thread tid's network namespace.
// FUSE gives the thread id in the daemon's pid namespace (0 if the caller
// has none there).
func threadNetnsIno(tid uint32) (uint64, error) {
	if tid == 0 {
		return 0, unix.ESRCH
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.FormatUint(uint64(tid), 10)+"/ns/net", &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// PerNetns says whether this is a per-netns mount.
func (mnt *Mount) PerNetns() bool { return mnt.opts.PerNetns }
