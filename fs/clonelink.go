package fs

import (
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tundevfs/tundevfs/clonehandler"
	"github.com/tundevfs/tundevfs/driver"
)

// cloneLink is the node of a bare driver name, tun, tap or vmnet: a
// symbolic link whose every READLINK clones a new unit (tunclone()) and
// answers its name. The kernel may cache the link's entry: its node never
// changes, and READLINK checks the caller's right to clone each time.
type cloneLink struct {
	drv     *driver.Driver // the driver it clones
	index   int            // drv's index in driver.Drivers
	created time.Time
}

// linkID is the node ID of the cloning link of driver i: fixed, below the
// device inode range (driver.Manager starts those at 1<<20).
func linkID(i int) uint64 { return 2 + uint64(i) }

func (l *cloneLink) id() uint64 { return linkID(l.index) }

// attr: a size of 0, as the target is made by each READLINK.
func (l *cloneLink) attr(mnt *Mount, a *fuse.Attr) {
	a.Ino = l.id()
	a.Mode = syscall.S_IFLNK | 0o777
	a.Nlink = 1
	setTimes(a, l.created)
}

// attrTimeout: GETATTR of a link is not cached (a lookup's answer is).
func (l *cloneLink) attrTimeout(mnt *Mount) time.Duration { return 0 }

func (l *cloneLink) setattr(mnt *Mount, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	return mnt.refuseOwnerChange(l, in, out)
}

// readlink clones: resolving the link (open, stat, readlink of "tun")
// makes a new device and answers the new unit's name.
func (l *cloneLink) readlink(mnt *Mount, h *fuse.InHeader) ([]byte, fuse.Status) {
	j := mnt.callerJail(h)
	if j == nil {
		return nil, fuse.ENOENT
	}
	if link, ok := mnt.replayLink(h); ok {
		return link, fuse.OK // resent: cloned by the dead server (replay.go)
	}
	d, err := mnt.clones.Clone(clonehandler.Request{Jail: j, Name: l.drv.Name, Cred: cred(h)})
	if err != nil {
		return nil, mnt.lookupErr(l.drv.Name, err)
	}
	defer d.Rel(driver.RefClone) // consumed by the clone invoker: us
	mnt.remember(ReplayState{Unique: h.Unique, Link: d.DevName()})
	mnt.changed()
	return []byte(d.DevName()), fuse.OK
}

// open: the kernel follows a link before it opens.
func (l *cloneLink) open(mnt *Mount, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return fuse.EINVAL
}

func (l *cloneLink) ioctlNoFile(mnt *Mount) fuse.Status { return fuse.Status(syscall.ENOTTY) }
