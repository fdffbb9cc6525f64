package driver

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/jails"
)

// tunPath is the Linux clone device.
const tunPath = "/dev/net/tun"

// openTun creates the interface name in the namespace ns and returns its
// fd (non-blocking) and ifindex. Everything happens on one thread inside
// ns, in a single Netns.Do and with no netlink round trip, because this is
// the clone path: open /dev/net/tun (the interface is created in the
// namespace of the opener), TUNSETIFF with IFF_TUN_EXCL so that an existing
// interface is never attached to, SIOCGIFINDEX on a datagram socket in ns,
// and for a tap or vmnet the rest of initTap: the 12-byte virtio-net
// header, no offload, and the stable MAC with SIOCSIFHWADDR. On failure
// the fd is closed, which removes the interface again.
func openTun(ns *jails.Netns, drv *Driver, name string, mac net.HardwareAddr) (*os.File, int, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return nil, 0, fmt.Errorf("create %s: %w", name, err)
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_TUN_EXCL)
	if drv.IsL2() {
		// The virtio-net header can be chosen only here (ioctl.go:
		// setVnetHdr).
		flags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_TUN_EXCL
	}
	fd, index := -1, 0
	err = ns.Do(func() error {
		var err error
		fd, err = unix.Open(tunPath, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w (is the tun module loaded?)", tunPath, err)
		}
		ifr.SetUint16(flags)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("create %s: %w", name, ErrNameTaken)
			}
			if errors.Is(err, unix.EPERM) {
				return fmt.Errorf("create %s: TUNSETIFF: %w (the daemon needs CAP_NET_ADMIN in the jail's namespace)", name, err)
			}
			return fmt.Errorf("create %s: TUNSETIFF: %w", name, err)
		}
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("create %s: socket: %w", name, err)
		}
		defer unix.Close(s)
		if index, err = ifIndex(s, name); err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		if drv.IsL2() {
			if err := initTap(fd, s, name, mac); err != nil {
				return fmt.Errorf("create %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, 0, err
	}
	return os.NewFile(uintptr(fd), name), index, nil
}

// ifIndex returns the ifindex of interface name with SIOCGIFINDEX on s, a
// socket in the interface's namespace.
func ifIndex(s int, name string) (int, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("SIOCGIFINDEX %s: %w", name, err)
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("SIOCGIFINDEX %s: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}

// linkHandle is a netlink socket inside a jail's namespace. It pins the
// namespace like any socket does, so it is closed when the jail's cloners
// are detached.
func newLinkHandle(ns *jails.Netns) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := ns.Do(func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink socket: %w", err)
		}
		return nil
	})
	return h, err
}

// linkDownAndPurge brings the link down and removes its addresses, what
// FreeBSD's tunclose() does with if_down() and the in_control purges.
func linkDownAndPurge(h *netlink.Handle, index int) error {
	l, err := h.LinkByIndex(index)
	if err != nil {
		return fmt.Errorf("find link %d: %w", index, err)
	}
	if err := h.LinkSetDown(l); err != nil {
		return fmt.Errorf("link %s down: %w", l.Attrs().Name, err)
	}
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
	}
	for i := range addrs {
		if err := h.AddrDel(l, &addrs[i]); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove address %s from %s: %w", addrs[i].IPNet, l.Attrs().Name, err)
		}
	}
	return nil
}

// linkSetUp brings the link up (tap's up_on_open).
func linkSetUp(h *netlink.Handle, index int) error {
	l, err := h.LinkByIndex(index)
	if err != nil {
		return fmt.Errorf("find link %d: %w", index, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("link %s up: %w", l.Attrs().Name, err)
	}
	return nil
}

// linkIsUp reports whether the link is administratively up.
func linkIsUp(h *netlink.Handle, index int) bool {
	l, err := h.LinkByIndex(index)
	if err != nil {
		return false
	}
	return l.Attrs().Flags&1 != 0 // net.FlagUp
}

// readable reports whether fd has a packet queued, without consuming it.
func readable(fd int) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, 0)
	return err == nil && n > 0 && pfd[0].Revents&unix.POLLIN != 0
}
