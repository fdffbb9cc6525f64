package driver

import (
	"fmt"
	"net"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/ioctls"
	"github.com/tundevfs/tundevfs/jails"
)

// This file holds what FreeBSD's tunioctl() (sys/net/if_tuntap.c) changes on
// a device, and the operations behind each request. The fs package decodes
// the request, checks which driver answers it and its argument size, and
// maps the errors below to errnos; the values here are Linux's (IFF_* flags,
// address families), as ioctls/README.md publishes them.

// Mode bits: FreeBSD's tun_flags bits that the ioctls set, plus link0,
// which FreeBSD keeps in if_flags and Linux does not have.
const (
	modeIfHead    uint32 = 1 << iota // TUN_IFHEAD: a 4-byte family before every packet
	modeLMode                        // TUN_LMODE: a sockaddr before every packet read
	modeTransient                    // TUN_TRANSIENT: the last close destroys the device
	modeLink0                        // IFF_LINK0: a tap keeps its state on last close
)

// Virtio-net header lengths (TAPSVNETHDR): struct virtio_net_hdr and struct
// virtio_net_hdr_mrg_rxbuf.
const (
	vnetHdrLen      = 10
	vnetHdrMrgRxbuf = 12
)

// Limits of the ioctl arguments.
const (
	minMTU       = 72     // if.c: ifhwioctl() refuses a smaller SIOCSIFMTU
	etherHdrLen  = 14     // ETHER_HDR_LEN
	vlanTagLen   = 4      // ETHER_VLAN_ENCAP_LEN
	vmioFlagMask = 0x0fff // TUN_VMIO_FLAG_MASK
)

// vmioSettable are the flags VMIO_SIOCSIFFLAGS may change: FreeBSD keeps
// the low 12 bits minus IFF_CANTCHANGE (broadcast, pointopoint, running,
// promisc, allmulti, ...), and of what is left Linux lets userland change
// debug, notrailers and noarp; up is forced on.
const vmioSettable = unix.IFF_UP | unix.IFF_DEBUG | unix.IFF_NOTRAILERS | unix.IFF_NOARP

// ioctlState is the part of a device the ioctls set.
type ioctlState struct {
	// mode holds the mode bits; it is written under Device.mu and read
	// without a lock by the data path.
	mode atomic.Uint32
	// vhdr is the virtio-net header length readers and writers see
	// (TAPSVNETHDR): 0, 10 or 12. The kernel side is always 12 bytes.
	vhdr atomic.Int32

	// Guarded by Device.mu.
	remote   [6]byte // tun_ether: the remote side's MAC (SIOC[GS]IFADDR on a tap)
	baudrate int32   // if_baudrate, which Linux does not have
	ifmode   int     // the last TUNSIFMODE value, 0 if none
}

func (s *ioctlState) has(bit uint32) bool { return s.mode.Load()&bit != 0 }

// setMode sets and clears mode bits in one step.
func (d *Device) setMode(set, clear uint32) {
	d.mu.Lock()
	d.ioc.mode.Store(d.ioc.mode.Load()&^clear | set)
	d.mu.Unlock()
	d.m.changed()
}

// modeNamesLocked describes the modes for status output. d.mu is held (Info).
func (d *Device) modeNamesLocked() []string {
	var out []string
	m := d.ioc.mode.Load()
	for _, b := range []struct {
		bit  uint32
		name string
	}{{modeIfHead, "ifhead"}, {modeLMode, "lmode"}, {modeTransient, "transient"}, {modeLink0, "link0"}} {
		if m&b.bit != 0 {
			out = append(out, b.name)
		}
	}
	if v := d.ioc.vhdr.Load(); v != 0 {
		out = append(out, fmt.Sprintf("vnethdr=%d", v))
	}
	if d.aliasRefusedLocked() {
		out = append(out, "alias-refused")
	}
	switch d.ioc.ifmode &^ unix.IFF_MULTICAST {
	case unix.IFF_POINTOPOINT:
		out = append(out, "pointopoint")
	case unix.IFF_BROADCAST:
		out = append(out, "broadcast")
	}
	return out
}

// maxMTU is the largest MTU TUNSIFINFO sets: the largest packet it lets
// the kernel hand a reader fits a write (mru): MRU for a tun, whose
// packets are bare IP, and for a tap MRU less an Ethernet header with a
// VLAN tag. The framing either side adds (IFHEAD, the virtio-net header)
// the write limit allows for.
func (d *Device) maxMTU() int {
	if d.drv.IsL2() {
		return MRU - etherHdrLen - vlanTagLen
	}
	return MRU
}

// ifType is the if_type TUNGIFINFO reports (if_tuntap.c: tuncreate()).
func (d *Device) ifType() uint8 {
	if d.drv.IsL2() {
		return ioctls.IFT_ETHER
	}
	return ioctls.IFT_PPP
}

// SetLink0 sets or clears link0 (`ifconfig tap0 link0`): a tap with link0
// keeps its state on last close, as on FreeBSD. Linux has no IFF_LINK0, so
// the flag lives here and shows in status.
func (d *Device) SetLink0(on bool) error {
	if err := d.enter(nil); err != nil {
		return fmt.Errorf("link0 %s: %w", d.DevName(), err)
	}
	defer d.exit()
	if on {
		d.setMode(modeLink0, 0)
	} else {
		d.setMode(0, modeLink0)
	}
	return nil
}

// Link0 reports whether link0 is set.
func (d *Device) Link0() bool { return d.ioc.has(modeLink0) }

// SetLink0ByName is `ifconfig NAME link0|-link0` in jail j, NAME being a
// node or interface name.
func (m *Manager) SetLink0ByName(j *jails.Jail, name string, on bool) error {
	d := m.Resolve(j, name)
	if d == nil {
		return fmt.Errorf("link0 %s: %w", name, ErrNoDevice)
	}
	return d.SetLink0(on)
}

// do runs fn as the ioctl req of the open handle h: ErrGone once the
// device is dying, ErrNotOpen when h is not the open handle, and errors
// prefixed "ioctl REQ DEVICE:".
func (h *Handle) do(req string, fn func(d *Device) error) error {
	d := h.dev
	if err := d.enter(h); err != nil {
		return fmt.Errorf("ioctl %s %s: %w", req, d.DevName(), err)
	}
	defer d.exit()
	if err := fn(d); err != nil {
		return fmt.Errorf("ioctl %s %s: %w", req, d.DevName(), err)
	}
	d.m.debugf("ioctl %s %s: ok", req, d.DevName())
	return nil
}

func requireL3(d *Device) error {
	if d.drv.IsL2() {
		return ErrNoIoctl
	}
	return nil
}

func requireL2(d *Device) error {
	if !d.drv.IsL2() {
		return ErrNoIoctl
	}
	return nil
}

// SetIfHead switches IFHEAD mode (TUNSIFHEAD), which clears link-layer
// mode.
func (h *Handle) SetIfHead(on bool) error {
	return h.do("TUNSIFHEAD", func(d *Device) error {
		if err := requireL3(d); err != nil {
			return err
		}
		if on {
			d.setMode(modeIfHead, modeLMode)
		} else {
			d.setMode(0, modeIfHead)
		}
		return nil
	})
}

// IfHead reports IFHEAD mode (TUNGIFHEAD).
func (h *Handle) IfHead() (on bool, err error) {
	err = h.do("TUNGIFHEAD", func(d *Device) error {
		on = d.ioc.has(modeIfHead)
		return requireL3(d)
	})
	return on, err
}

// SetLinkMode switches link-layer mode (TUNSLMODE), which clears IFHEAD:
// every packet read starts with the struct sockaddr_in of its destination.
func (h *Handle) SetLinkMode(on bool) error {
	return h.do("TUNSLMODE", func(d *Device) error {
		if err := requireL3(d); err != nil {
			return err
		}
		if on {
			d.setMode(modeLMode, modeIfHead)
		} else {
			d.setMode(0, modeLMode)
		}
		return nil
	})
}

// SetIfMode sets a tun's mode (TUNSIFMODE): IFF_POINTOPOINT or
// IFF_BROADCAST, optionally with IFF_MULTICAST; ErrIfUp while the interface
// is up, ErrInvalid for anything else. Linux keeps IFF_POINTOPOINT and
// IFF_BROADCAST of a tun fixed, so the mode is recorded (status shows it)
// and IFF_MULTICAST is applied to the interface.
func (h *Handle) SetIfMode(flags int) error {
	return h.do("TUNSIFMODE", func(d *Device) error {
		if err := requireL3(d); err != nil {
			return err
		}
		if d.linkIsUp() {
			return ErrIfUp
		}
		switch flags &^ unix.IFF_MULTICAST {
		case unix.IFF_POINTOPOINT, unix.IFF_BROADCAST:
		default:
			return fmt.Errorf("mode %#x: %w", flags, ErrInvalid)
		}
		if err := d.js.links.SetMulticast(d.ifindex, flags&unix.IFF_MULTICAST != 0); err != nil {
			return err
		}
		d.mu.Lock()
		d.ioc.ifmode = flags
		d.mu.Unlock()
		d.m.changed()
		return nil
	})
}

// SetPID makes pid the device's owning process (TUNSIFPID).
func (h *Handle) SetPID(pid int) error {
	return h.do("TUNSIFPID", func(d *Device) error {
		if err := requireL3(d); err != nil {
			return err
		}
		d.mu.Lock()
		d.openPid = pid
		d.mu.Unlock()
		d.m.changed()
		return nil
	})
}

// SetInfo sets MTU and baudrate (TUNSIFINFO). The type must be the
// interface's own (ErrWrongType). A changed MTU is set on the Linux
// interface; below 72 it is ErrInvalid as in ifhwioctl(), and so is one
// above maxMTU: every packet a reader gets must be one a write may carry
// back (one limit for both directions).
func (h *Handle) SetInfo(ti ioctls.TunInfo) error {
	return h.do("TUNSIFINFO", func(d *Device) error {
		if ti.Type != d.ifType() {
			return fmt.Errorf("type %d, interface has %d: %w", ti.Type, d.ifType(), ErrWrongType)
		}
		l, err := d.js.links.Link(d.ifindex)
		if err != nil {
			return err
		}
		if l.MTU != int(ti.MTU) {
			if ti.MTU < minMTU {
				return fmt.Errorf("mtu %d: %w", ti.MTU, ErrInvalid)
			}
			if int(ti.MTU) > d.maxMTU() {
				return fmt.Errorf("mtu %d: above %d, the largest whose packets a write carries back: %w", ti.MTU, d.maxMTU(), ErrInvalid)
			}
			if err := d.js.links.SetMTU(d.ifindex, int(ti.MTU)); err != nil {
				return err
			}
		}
		d.mu.Lock()
		d.ioc.baudrate = ti.Baudrate
		d.mu.Unlock()
		d.m.changed()
		return nil
	})
}

// Info returns MTU (the Linux interface's), type and baudrate (TUNGIFINFO).
func (h *Handle) Info() (ti ioctls.TunInfo, err error) {
	err = h.do("TUNGIFINFO", func(d *Device) error {
		l, err := d.js.links.Link(d.ifindex)
		if err != nil {
			return err
		}
		ti.MTU = uint16(min(l.MTU, 0xffff))
		ti.Type = d.ifType()
		d.mu.Lock()
		ti.Baudrate = d.ioc.baudrate
		d.mu.Unlock()
		return nil
	})
	return ti, err
}

// IfName returns the interface's current name as the kernel has it
// (TUNGIFNAME, TAPGIFNAME).
func (h *Handle) IfName() (name string, err error) {
	err = h.do("TUNGIFNAME", func(d *Device) error {
		l, err := d.js.links.Link(d.ifindex)
		if err != nil {
			return err
		}
		name = l.Name
		d.syncName(name)
		return nil
	})
	return name, err
}

// SetTransient makes the last close destroy the device, or not
// (TUNSTRANSIENT, TAPSTRANSIENT). FreeBSD asks for PRIV_NET_IFDESTROY; the
// caller says whether the requester has it.
func (h *Handle) SetTransient(on, privileged bool) error {
	return h.do("TUNSTRANSIENT", func(d *Device) error {
		if !privileged {
			return ErrPerm
		}
		if on {
			d.setMode(modeTransient, 0)
		} else {
			d.setMode(0, modeTransient)
		}
		return nil
	})
}

// SetDebug sets the driver's debug level through an open device
// (TUNSDEBUG).
func (h *Handle) SetDebug(level int) error {
	return h.do("TUNSDEBUG", func(d *Device) error {
		d.m.SetDebug(level)
		return nil
	})
}

// Debug returns the driver's debug level (TUNGDEBUG).
func (h *Handle) Debug() (level int, err error) {
	err = h.do("TUNGDEBUG", func(d *Device) error {
		level = d.m.Debug()
		return nil
	})
	return level, err
}

// SetVnetHdr sets a tap's virtio-net header length (TAPSVNETHDR): 0, 10 or
// 12, else ErrInvalid. See setVnetHdr for what it does on Linux.
func (h *Handle) SetVnetHdr(n int) error {
	return h.do("TAPSVNETHDR", func(d *Device) error {
		if err := requireL2(d); err != nil {
			return err
		}
		if n != 0 && n != vnetHdrLen && n != vnetHdrMrgRxbuf {
			return fmt.Errorf("length %d: %w", n, ErrInvalid)
		}
		return d.setVnetHdr(n)
	})
}

// VnetHdr returns a tap's virtio-net header length (TAPGVNETHDR).
func (h *Handle) VnetHdr() (n int, err error) {
	err = h.do("TAPGVNETHDR", func(d *Device) error {
		n = int(d.ioc.vhdr.Load())
		return requireL2(d)
	})
	return n, err
}

// setVnetHdr is tun_vnethdr_set(). A tap's real fd always carries a 12-byte
// virtio-net header (it is created with IFF_VNET_HDR, which Linux lets one
// choose only at TUNSETIFF); the data path shows readers and writers the
// first n bytes of it, or none. A non-zero n also offers the offloads the
// header describes (checksum, TSO) to the kernel with TUNSETOFFLOAD, as
// FreeBSD adds TAP_VNET_HDR_CAPS to the capabilities; 0 withdraws them, so
// that no partial checksum reaches a reader that cannot see the header.
func (d *Device) setVnetHdr(n int) error {
	if err := d.js.links.SetOffload(d.fd, n != 0); err != nil {
		return err
	}
	d.ioc.vhdr.Store(int32(n))
	d.m.changed()
	return nil
}

// SetRemoteMAC sets the remote side's MAC of a tap (SIOCSIFADDR on a tap
// device, published as TAPSIFADDR).
func (h *Handle) SetRemoteMAC(mac net.HardwareAddr) error {
	return h.do("TAPSIFADDR", func(d *Device) error {
		if err := requireL2(d); err != nil {
			return err
		}
		if len(mac) != 6 {
			return fmt.Errorf("mac %v: %w", mac, ErrInvalid)
		}
		d.mu.Lock()
		copy(d.ioc.remote[:], mac)
		d.mu.Unlock()
		d.m.changed()
		return nil
	})
}

// RemoteMAC returns the remote side's MAC of a tap (SIOCGIFADDR on a tap
// device, published as TAPGIFADDR).
func (h *Handle) RemoteMAC() (mac net.HardwareAddr, err error) {
	err = h.do("TAPGIFADDR", func(d *Device) error {
		if err := requireL2(d); err != nil {
			return err
		}
		d.mu.Lock()
		mac = net.HardwareAddr(append([]byte(nil), d.ioc.remote[:]...))
		d.mu.Unlock()
		return nil
	})
	return mac, err
}

// SetVMIOFlags sets a tap's interface flags the VMware way
// (VMIO_SIOCSIFFLAGS): of the low 12 bits, those FreeBSD and Linux both let
// change (debug, notrailers, noarp) are applied, and IFF_UP is forced on.
func (h *Handle) SetVMIOFlags(flags int) error {
	return h.do("VMIO_SIOCSIFFLAGS", func(d *Device) error {
		if err := requireL2(d); err != nil {
			return err
		}
		want := flags&vmioFlagMask&vmioSettable | unix.IFF_UP
		l, err := d.js.links.Link(d.ifindex)
		if err != nil {
			return err
		}
		return d.js.links.SetFlags(l.Name, vmioSettable, want)
	})
}
