//go:build linux

package ioctls

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctlBuf issues request req on fd with a pointer to buf as the argument,
// retrying on EINTR. The kernel copies _IOC_SIZE(req) bytes to or from buf,
// so buf must be at least that long; a shorter buf is refused rather than
// overrun.
func ioctlBuf(fd int, req uint32, buf []byte) error {
	_, _, _, size := Decode(req)
	if uint32(len(buf)) < size || len(buf) == 0 {
		return fmt.Errorf("argument of %d bytes for a request of %d: %w", len(buf), size, unix.EINVAL)
	}
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&buf[0])))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// ioctlValue issues request req on fd with v itself as the argument,
// retrying on EINTR.
func ioctlValue(fd int, req uint32, v uintptr) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), v)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}
