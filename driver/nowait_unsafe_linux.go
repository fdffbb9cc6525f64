package driver

import (
	"errors"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// noNowait is set once the kernel refused RWF_NOWAIT on a TUN fd (before
// Linux 5.x); reads then rely on the fd's own O_NONBLOCK.
var noNowait atomic.Bool

// readNoWait reads one packet from a TUN fd without ever blocking, even if
// a fast-path client cleared O_NONBLOCK on the file description the
// daemon shares with it: preadv2 at the current position with RWF_NOWAIT
// (the tun driver honours IOCB_NOWAIT). An empty queue is unix.EAGAIN.
// One iovec on the stack: no allocation per packet.
func readNoWait(fd int, buf []byte) (int, error) {
	if noNowait.Load() || len(buf) == 0 {
		return unix.Read(fd, buf)
	}
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	// Offset -1 (the current position) as preadv2's low and high halves;
	// on 64-bit kernels the high half is shifted out.
	n, _, e := unix.Syscall6(unix.SYS_PREADV2, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1,
		^uintptr(0), ^uintptr(0), unix.RWF_NOWAIT)
	if e != 0 {
		if errors.Is(e, unix.EOPNOTSUPP) {
			noNowait.Store(true)
			return unix.Read(fd, buf)
		}
		return 0, e
	}
	return int(n), nil
}
