package fs

import (
	"syscall"

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

func (fs *Mount) stdDevIndex(name string) int {
	if !fs.opts.StdDevices {
		return -1
	}
	for i, sd := range stdDevs {
		if sd.name == name {
			return i
		}
	}
	return -1
}

func setStdDevAttr(a *fuse.Attr, i int, fs *Mount) {
	sd := stdDevs[i]
	a.Ino = stdDevID(i)
	a.Nlink = 1
	setTimes(a, fs.start)
	if sd.target != "" {
		a.Mode = syscall.S_IFLNK | 0o777
		a.Size = uint64(len(sd.target))
		return
	}
	a.Mode = syscall.S_IFCHR | 0o666
	a.Rdev = uint32(unix.Mkdev(sd.major, sd.minor))
}

func stdDevMode(i int) uint32 {
	if stdDevs[i].target != "" {
		return syscall.S_IFLNK
	}
	return syscall.S_IFCHR
}
