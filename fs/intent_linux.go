package fs

import (
	"encoding/binary"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A FUSE LOOKUP does not say why the kernel looks a name up: for stat and
// open, where a lookup of a unit that does not exist clones it (devfs), or
// on the way to mkdir, mknod, an exclusive create, rename, link, symlink,
// unlink or rmdir of that name, which must make nothing (the request that
// follows is refused, see ops.go). The caller is blocked in its system
// call while the lookup runs, so /proc/TID/syscall says which one it is.

// namespaceCalls are the system calls that make or remove a name.
var namespaceCalls = map[int64]bool{
	unix.SYS_MKDIRAT:   true,
	unix.SYS_MKNODAT:   true,
	unix.SYS_RENAMEAT2: true,
	unix.SYS_LINKAT:    true,
	unix.SYS_SYMLINKAT: true,
	unix.SYS_UNLINKAT:  true,
}

func init() {
	for _, nr := range legacyNamespaceCalls {
		namespaceCalls[nr] = true
	}
}

// createsName reports whether the thread tid sits in a system call that
// makes or removes a name, an open with O_CREAT|O_EXCL included. An open
// that may create without O_EXCL (a shell's `<>` and `>`) opens the
// device, as on FreeBSD, and does not count. When the thread cannot be
// read (tid 0: a caller in a pid namespace the daemon cannot see) it
// reports false, and the lookup clones as before.
func createsName(tid uint32) bool {
	if tid == 0 {
		return false
	}
	fd, err := unix.Open("/proc/"+strconv.FormatUint(uint64(tid), 10)+"/syscall", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	var buf [256]byte
	n, err := unix.Read(fd, buf[:])
	unix.Close(fd)
	if err != nil {
		return false
	}
	// "NR ARG1 ... ARG6 SP PC", arguments in hex.
	f := strings.Fields(string(buf[:n]))
	if len(f) < 7 {
		return false
	}
	nr, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return false
	}
	if namespaceCalls[nr] {
		return true
	}
	arg := func(i int) uint64 {
		v, _ := strconv.ParseUint(strings.TrimPrefix(f[1+i], "0x"), 16, 64)
		return v
	}
	var flags uint64
	switch {
	case nr == unix.SYS_OPENAT:
		flags = arg(2)
	case nr == unix.SYS_OPENAT2:
		flags = openHowFlags(int(tid), arg(2))
	case nr == legacyOpen:
		flags = arg(1)
	default:
		return false
	}
	return flags&(unix.O_CREAT|unix.O_EXCL) == unix.O_CREAT|unix.O_EXCL
}

// openHowFlags reads the flags of openat2's struct open_how at addr in
// the caller's memory; 0 if it cannot.
func openHowFlags(tid int, addr uint64) uint64 {
	var b [8]byte
	local := []unix.Iovec{{Base: &b[0], Len: 8}}
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: 8}}
	if n, err := unix.ProcessVMReadv(tid, local, remote, 0); err != nil || n != 8 {
		return 0
	}
	return binary.NativeEndian.Uint64(b[:])
}
