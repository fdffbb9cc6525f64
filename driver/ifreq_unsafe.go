//go:build linux

package driver

import (
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ifreqHwaddr is struct ifreq with ifr_hwaddr, a struct sockaddr: x/sys's
// Ifreq has no setter for the address bytes.
type ifreqHwaddr struct {
	name   [unix.IFNAMSIZ]byte
	family uint16
	data   [14]byte
	_      [8]byte // the rest of the ifreq union
}

// setHwaddr sets the Ethernet address of interface name with SIOCSIFHWADDR
// on fd, a socket in the interface's namespace (or its TUN/TAP fd).
func setHwaddr(fd int, name string, mac net.HardwareAddr) error {
	var req ifreqHwaddr
	if len(name) >= len(req.name) || len(mac) != 6 {
		return unix.EINVAL
	}
	copy(req.name[:], name)
	req.family = unix.ARPHRD_ETHER
	copy(req.data[:], mac)
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCSIFHWADDR, uintptr(unsafe.Pointer(&req)))
	if e != 0 {
		return e
	}
	return nil
}
