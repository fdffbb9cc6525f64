package fs

import (
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// stdDev is one of the nodes a jail's /dev shows beside its tunnels, as
// FreeBSD's devfsrules_jail ruleset does: real character devices, which the
// kernel opens itself (the mount is made without nodev), and the usual
// symbolic links to /proc/self/fd.
type stdDev struct {
	name         string
	major, minor uint32 // character devices
	target       string // symbolic links
}

var stdDevs = []stdDev{
	{name: "null", major: 1, minor: 3},
	{name: "zero", major: 1, minor: 5},
	{name: "full", major: 1, minor: 7},
	{name: "random", major: 1, minor: 8},
	{name: "urandom", major: 1, minor: 9},
	{name: "tty", major: 5, minor: 0},
	{name: "fd", target: "/proc/self/fd"},
	{name: "stdin", target: "/proc/self/fd/0"},
	{name: "stdout", target: "/proc/self/fd/1"},
	{name: "stderr", target: "/proc/self/fd/2"},
}

// stdDevID is the node ID of stdDevs[i], in the range reserved below the
// devices' inode numbers.
func stdDevID(i int) uint64 { return 64 + uint64(i) }

func (mnt *Mount) stdDevIndex(name string) int {
	if !mnt.opts.StdDevices {
		return -1
	}
	for i, sd := range stdDevs {
		if sd.name == name {
			return i
		}
	}
	return -1
}

// newStdNode makes the node of stdDevs[i].
func newStdNode(i int, created time.Time) node {
	if stdDevs[i].target != "" {
		return &stdLinkNode{index: i, created: created}
	}
	return &stdCharNode{index: i, created: created}
}

// stdCharNode is a standard character device (null, zero, ...): the
// kernel opens it itself, so no OPEN reaches the mount.
type stdCharNode struct {
	index   int // in stdDevs
	created time.Time
}

func (n *stdCharNode) id() uint64 { return stdDevID(n.index) }

func (n *stdCharNode) attr(mnt *Mount, a *fuse.Attr) {
	sd := stdDevs[n.index]
	a.Ino = n.id()
	a.Nlink = 1
	setTimes(a, n.created)
	a.Mode = syscall.S_IFCHR | 0o666
	a.Rdev = uint32(unix.Mkdev(sd.major, sd.minor))
}

func (n *stdCharNode) attrTimeout(mnt *Mount) time.Duration { return mnt.opts.EntryTimeout }

func (n *stdCharNode) setattr(mnt *Mount, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	return mnt.refuseOwnerChange(n, in, out)
}

func (n *stdCharNode) readlink(mnt *Mount, h *fuse.InHeader) ([]byte, fuse.Status) {
	return notLink()
}

func (n *stdCharNode) open(mnt *Mount, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return fuse.EINVAL
}

func (n *stdCharNode) ioctlNoFile(mnt *Mount) fuse.Status { return fuse.Status(syscall.ENOTTY) }

// stdLinkNode is a standard symbolic link (fd, stdin, stdout, stderr)
// into /proc/self/fd.
type stdLinkNode struct {
	index   int // in stdDevs
	created time.Time
}

func (n *stdLinkNode) id() uint64 { return stdDevID(n.index) }

func (n *stdLinkNode) attr(mnt *Mount, a *fuse.Attr) {
	a.Ino = n.id()
	a.Nlink = 1
	setTimes(a, n.created)
	a.Mode = syscall.S_IFLNK | 0o777
	a.Size = uint64(len(stdDevs[n.index].target))
}

func (n *stdLinkNode) attrTimeout(mnt *Mount) time.Duration { return mnt.opts.EntryTimeout }

func (n *stdLinkNode) setattr(mnt *Mount, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	return mnt.refuseOwnerChange(n, in, out)
}

func (n *stdLinkNode) readlink(mnt *Mount, h *fuse.InHeader) ([]byte, fuse.Status) {
	return []byte(stdDevs[n.index].target), fuse.OK
}

// open: the kernel follows a link before it opens.
func (n *stdLinkNode) open(mnt *Mount, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return fuse.EINVAL
}

func (n *stdLinkNode) ioctlNoFile(mnt *Mount) fuse.Status { return fuse.Status(syscall.ENOTTY) }

func stdDevMode(i int) uint32 {
	if stdDevs[i].target != "" {
		return syscall.S_IFLNK
	}
	return syscall.S_IFCHR
}
