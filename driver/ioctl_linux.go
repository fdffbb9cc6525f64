package driver

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/jails"
)

// tapOffloads are the offloads a virtio-net header can describe, what
// FreeBSD's TAP_VNET_HDR_CAPS are (checksum, TSO for IPv4 and IPv6).
const tapOffloads = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6 | unix.TUN_F_TSO_ECN

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

// setTapOffload offers the kernel the offloads of tapOffloads, or none.
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

// linkSetMulticast switches IFF_MULTICAST of the link.
func linkSetMulticast(h *netlink.Handle, index int, on bool) error {
	l := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}}
	var err error
	if on {
		err = h.LinkSetMulticastOn(l)
	} else {
		err = h.LinkSetMulticastOff(l)
	}
	if err != nil {
		return fmt.Errorf("link %d multicast %v: %w", index, on, err)
	}
	return nil
}

// setIfFlags sets the flags in mask of interface name to those in value,
// with SIOCGIFFLAGS and SIOCSIFFLAGS on a socket in the namespace ns
// (netlink offers no way to change IFF_DEBUG or IFF_NOTRAILERS).
func setIfFlags(ns *jails.Netns, name string, mask, value int) error {
	return ns.Do(func() error {
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

var (
	hostIDOnce sync.Once
	hostID     []byte
)

// machineID identifies the host, as FreeBSD's ether_gen_addr() uses the
// hostid: /etc/machine-id, or the hostname if there is none.
func machineID() []byte {
	hostIDOnce.Do(func() {
		for _, p := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
			if b, err := os.ReadFile(p); err == nil && len(bytes.TrimSpace(b)) > 0 {
				hostID = bytes.TrimSpace(b)
				return
			}
		}
		h, _ := os.Hostname()
		hostID = []byte(h)
	})
	return hostID
}

// stableMAC is the MAC a tap or vmnet gets at creation: derived from the
// host, the jail and the device name, so the same device in the same jail
// gets the same address every time, unicast and locally administered.
func stableMAC(jail, devName string) net.HardwareAddr {
	h := sha256.New()
	h.Write([]byte("tundevfs\x00"))
	h.Write(machineID())
	h.Write([]byte("\x00" + jail + "\x00" + devName))
	mac := net.HardwareAddr(h.Sum(nil)[:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}
