package driver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/jails"
)

// LinuxStack is the real Stack: TUN/TAP interfaces made with /dev/net/tun
// in the jail's namespace, changed with ioctls and netlink there.
type LinuxStack struct{}

// tunPath is the Linux clone device.
const tunPath = "/dev/net/tun"

// tapOffloads are the offloads a virtio-net header can describe, what
// FreeBSD's TAP_VNET_HDR_CAPS are (checksum, TSO for IPv4 and IPv6).
const tapOffloads = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6 | unix.TUN_F_TSO_ECN

// linuxLinks is Links in one namespace: the namespace for what must run
// inside it (TUNSETIFF, interface flags, the rename socket) and a netlink
// socket opened there for the rest. The socket pins the namespace like
// any socket does, so it is closed when the jail's cloners are detached.
type linuxLinks struct {
	ns   *jails.Netns
	jail string
	nl   *netlink.Handle
}

// Attach opens a netlink socket in j's namespace.
func (LinuxStack) Attach(j *jails.Jail) (Links, error) {
	var h *netlink.Handle
	err := j.Netns().Do(func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink socket: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &linuxLinks{ns: j.Netns(), jail: j.Name(), nl: h}, nil
}

// Close closes the netlink socket.
func (l *linuxLinks) Close() error {
	l.nl.Close()
	return nil
}

// Create creates the interface name in the namespace and returns its fd
// (non-blocking) and ifindex. Everything happens on one thread inside the
// namespace, in a single Netns.Do and with no netlink round trip, because
// this is the clone path: open /dev/net/tun (the interface is created in
// the namespace of the opener), TUNSETIFF with IFF_TUN_EXCL so that an
// existing interface is never attached to, SIOCGIFINDEX on a datagram
// socket in the namespace, and for a tap or vmnet the rest of initTap:
// the 12-byte virtio-net header, no offload, and the stable MAC with
// SIOCSIFHWADDR. On failure the fd is closed, which removes the interface
// again.
func (l *linuxLinks) Create(drv *Driver, name string, mac net.HardwareAddr) (*os.File, int, error) {
	return l.CreateWith(drv, name, mac, nil)
}

// CreateWith is Create, calling before with the TUN fd after it is opened
// and before the interface is made on it (see attachHooker).
func (l *linuxLinks) CreateWith(drv *Driver, name string, mac net.HardwareAddr, before func(fd int)) (*os.File, int, error) {
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
	err = l.ns.Do(func() error {
		var err error
		fd, err = unix.Open(tunPath, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w (is the tun module loaded?)", tunPath, err)
		}
		if before != nil {
			before(fd)
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

// initTap finishes a new tap: the kernel's virtio-net header is set to its
// 12-byte form (the fd was made with IFF_VNET_HDR), no offload is offered
// until TAPSVNETHDR asks for one, and the interface name gets its stable
// MAC, set with SIOCSIFHWADDR on s, a socket in the tap's namespace.
func initTap(fd, s int, name string, mac net.HardwareAddr) error {
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnetHdrMrgRxbuf); err != nil {
		return fmt.Errorf("TUNSETVNETHDRSZ: %w", err)
	}
	if err := setTapOffload(fd, false); err != nil {
		return err
	}
	if err := setHwaddr(s, name, mac); err != nil {
		return fmt.Errorf("set address %v: SIOCSIFHWADDR: %w", mac, err)
	}
	return nil
}

// SetOffload offers the kernel the offloads of tapOffloads, or none.
func (l *linuxLinks) SetOffload(fd int, on bool) error { return setTapOffload(fd, on) }

func setTapOffload(fd int, on bool) error {
	flags := 0
	if on {
		flags = tapOffloads
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, flags); err != nil {
		return fmt.Errorf("TUNSETOFFLOAD %#x: %w", flags, err)
	}
	return nil
}

// toLink converts a netlink link.
func toLink(nl netlink.Link) Link {
	a := nl.Attrs()
	return Link{Index: a.Index, Name: a.Name, MTU: a.MTU, Up: a.Flags&net.FlagUp != 0, HardwareAddr: a.HardwareAddr}
}

// Link asks netlink for the interface.
func (l *linuxLinks) Link(index int) (Link, error) {
	nl, err := l.nl.LinkByIndex(index)
	if err != nil {
		return Link{}, fmt.Errorf("find link %d: %w", index, err)
	}
	return toLink(nl), nil
}

// LinkByName asks netlink for the interface.
func (l *linuxLinks) LinkByName(name string) (Link, error) {
	nl, err := l.nl.LinkByName(name)
	if err != nil {
		return Link{}, fmt.Errorf("find link %s: %w", name, err)
	}
	return toLink(nl), nil
}

// DownAndPurge brings the link down and removes its addresses, what
// FreeBSD's tunclose() does with if_down() and the in_control purges.
func (l *linuxLinks) DownAndPurge(index int) error {
	nl, err := l.nl.LinkByIndex(index)
	if err != nil {
		return fmt.Errorf("find link %d: %w", index, err)
	}
	if err := l.nl.LinkSetDown(nl); err != nil {
		return fmt.Errorf("link %s down: %w", nl.Attrs().Name, err)
	}
	addrs, err := l.nl.AddrList(nl, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", nl.Attrs().Name, err)
	}
	for i := range addrs {
		if err := l.nl.AddrDel(nl, &addrs[i]); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove address %s from %s: %w", addrs[i].IPNet, nl.Attrs().Name, err)
		}
	}
	return nil
}

// SetUp brings the link up (tap's up_on_open).
func (l *linuxLinks) SetUp(index int) error {
	nl, err := l.nl.LinkByIndex(index)
	if err != nil {
		return fmt.Errorf("find link %d: %w", index, err)
	}
	if err := l.nl.LinkSetUp(nl); err != nil {
		return fmt.Errorf("link %s up: %w", nl.Attrs().Name, err)
	}
	return nil
}

// SetMTU sets the link's MTU.
func (l *linuxLinks) SetMTU(index, mtu int) error {
	if err := l.nl.LinkSetMTU(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}}, mtu); err != nil {
		return fmt.Errorf("set mtu %d: %w", mtu, err)
	}
	return nil
}

// SetMulticast switches IFF_MULTICAST of the link.
func (l *linuxLinks) SetMulticast(index int, on bool) error {
	nl := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}}
	var err error
	if on {
		err = l.nl.LinkSetMulticastOn(nl)
	} else {
		err = l.nl.LinkSetMulticastOff(nl)
	}
	if err != nil {
		return fmt.Errorf("link %d multicast %v: %w", index, on, err)
	}
	return nil
}

// SetFlags sets the flags in mask of interface name to those in value,
// with SIOCGIFFLAGS and SIOCSIFFLAGS on a socket in the namespace
// (netlink offers no way to change IFF_DEBUG or IFF_NOTRAILERS).
func (l *linuxLinks) SetFlags(name string, mask, value int) error {
	return l.ns.Do(func() error {
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("set flags of %s: %w", name, err)
		}
		defer unix.Close(s)
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return fmt.Errorf("set flags of %s: %w", name, err)
		}
		if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
			return fmt.Errorf("get flags of %s: %w", name, err)
		}
		ifr.SetUint16(uint16(int(ifr.Uint16())&^mask | value&mask))
		if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
			return fmt.Errorf("set flags of %s: %w", name, err)
		}
		return nil
	})
}

// Delete unregisters the link with RTM_DELLINK; a link already gone is no
// error.
func (l *linuxLinks) Delete(index int) error {
	err := l.nl.LinkDel(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: index}})
	if err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("unregister interface %d: %w", index, err)
	}
	return nil
}

// Watch reads RTM_NEWLINK notifications from a netlink socket opened inside
// the namespace and bound to RTMGRP_LINK. The socket is non-blocking and
// read through Go's poller, so stop's Close wakes the reader at once and
// nothing is left holding the namespace.
func (l *linuxLinks) Watch(ev LinkEvents) (func(), error) {
	fd := -1
	err := l.ns.Do(func() error {
		s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink socket: %w", err)
		}
		if err := unix.Bind(s, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK}); err != nil {
			unix.Close(s)
			return fmt.Errorf("netlink bind: %w", err)
		}
		fd = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	// A long queue makes an overflow (ENOBUFS, then a resync) rare.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<20) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	}
	f := os.NewFile(uintptr(fd), "netlink-link:"+l.jail)
	done := make(chan struct{})
	go func() {
		defer close(done)
		readLinkEvents(f, ev)
	}()
	return func() {
		f.Close()
		<-done
	}, nil
}

// readLinkEvents reads f, a netlink socket bound to RTMGRP_LINK, until it
// is closed.
func readLinkEvents(f *os.File, ev LinkEvents) {
	buf := make([]byte, 1<<16)
	for {
		n, err := f.Read(buf)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrClosed):
			return
		case errors.Is(err, unix.ENOBUFS):
			// The queue overflowed and events were lost: ask the
			// kernel for every name.
			ev.Resync()
			continue
		case errors.Is(err, io.EOF):
			continue
		default:
			ev.Failed(err)
			return
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for i := range msgs {
			if msgs[i].Header.Type != unix.RTM_NEWLINK {
				continue
			}
			if index, name, ok := parseLinkMessage(&msgs[i]); ok {
				ev.Renamed(index, name)
			}
		}
	}
}

// parseLinkMessage returns the index and name of an RTM_NEWLINK message.
func parseLinkMessage(msg *syscall.NetlinkMessage) (index int, name string, ok bool) {
	if len(msg.Data) < unix.SizeofIfInfomsg {
		return 0, "", false
	}
	index = int(int32(binary.NativeEndian.Uint32(msg.Data[4:8]))) // ifi_index
	attrs, err := syscall.ParseNetlinkRouteAttr(msg)
	if err != nil {
		return 0, "", false
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.IFLA_IFNAME {
			return index, string(bytes.TrimRight(a.Value, "\x00")), true
		}
	}
	return 0, "", false
}

// readable reports whether fd has a packet queued, without consuming it.
func readable(fd int) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, 0)
	return err == nil && n > 0 && pfd[0].Revents&unix.POLLIN != 0
}
