package driver

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

// This file frames packets between the real fd and the device's reader and
// writer, as the ioctls asked (if_tuntap.c: tunoutput(), tunread(),
// tunwrite(), tunwrite_l3(), tunwrite_l2()):
//
//   - A tun's real fd is opened with IFF_NO_PI, so it carries bare IP
//     packets. Without IFHEAD only IPv4 reaches the reader and a write is an
//     IPv4 packet. In IFHEAD mode every packet read starts with its address
//     family, 4 bytes in network byte order with Linux's values (AF_INET 2,
//     AF_INET6 10), and a write must start with one: AF_INET or AF_INET6,
//     else ErrNoFamily. In link-layer mode (TUNSLMODE) a packet read starts
//     with the struct sockaddr_in of its destination (Linux's layout; the
//     next hop FreeBSD puts there is not known on Linux) and only IPv4 is
//     carried, as without IFHEAD.
//   - A tap's real fd carries a 12-byte virtio-net header before every
//     frame. The reader and writer see the first vhdr bytes of it (0, 10 or
//     12, TAPSVNETHDR); a writer's shorter header is padded with zeroes,
//     which the kernel reads as "no offload".

// scratchSize is the size of a buffer for one read of the real fd: the
// largest GSO frame a tap with offloads gets (64 KiB of IP plus Ethernet
// and VLAN headers) and its virtio-net header.
const scratchSize = 65536 + 128

// ifHeadLen is the size of the IFHEAD address family.
const ifHeadLen = 4

// sizeofSockaddrIn is sizeof(struct sockaddr_in) on Linux.
const sizeofSockaddrIn = 16

// mru is the largest write the device takes (tunwrite()): MRU, plus the
// family in IFHEAD mode, plus the virtio-net header on a tap.
func (d *Device) mru() int {
	if d.drv.IsL2() {
		return MRU + int(d.ioc.vhdr.Load())
	}
	if d.ioc.has(modeIfHead) {
		return MRU + ifHeadLen
	}
	return MRU
}

// delivers reports whether the reader gets pkt, as read from the real fd
// (tunoutput()): a tun's reader gets IPv4, and IPv6 too in IFHEAD mode.
func (d *Device) delivers(pkt []byte) bool {
	if d.drv.IsL2() {
		return len(pkt) >= vnetHdrMrgRxbuf
	}
	if len(pkt) == 0 {
		return false
	}
	mode := d.ioc.mode.Load()
	switch pkt[0] >> 4 {
	case 4:
		return mode&modeLMode == 0 || len(pkt) >= 20
	case 6:
		return mode&modeIfHead != 0
	}
	return false
}

// framedLen is the length frame gives pkt with room enough.
func (d *Device) framedLen(pkt []byte) int {
	if d.drv.IsL2() {
		return int(d.ioc.vhdr.Load()) + len(pkt) - vnetHdrMrgRxbuf
	}
	mode := d.ioc.mode.Load()
	switch {
	case mode&modeIfHead != 0:
		return ifHeadLen + len(pkt)
	case mode&modeLMode != 0:
		return sizeofSockaddrIn + len(pkt)
	}
	return len(pkt)
}

// frame copies pkt, a packet delivers accepted, into buf in the form the
// reader sees, truncating it to buf.
func (d *Device) frame(buf, pkt []byte) int {
	if d.drv.IsL2() {
		// Older kernels leave num_buffers alone; FreeBSD sends 0.
		pkt[10], pkt[11] = 0, 0
		vh := d.ioc.vhdr.Load()
		n := copy(buf, pkt[:vh])
		return n + copy(buf[n:], pkt[vnetHdrMrgRxbuf:])
	}
	mode := d.ioc.mode.Load()
	switch {
	case mode&modeIfHead != 0:
		var fam [ifHeadLen]byte
		af := uint32(unix.AF_INET)
		if pkt[0]>>4 == 6 {
			af = unix.AF_INET6
		}
		binary.BigEndian.PutUint32(fam[:], af)
		n := copy(buf, fam[:])
		return n + copy(buf[n:], pkt)
	case mode&modeLMode != 0:
		var sa [sizeofSockaddrIn]byte
		binary.NativeEndian.PutUint16(sa[0:2], unix.AF_INET)
		copy(sa[4:8], pkt[16:20]) // the destination address
		n := copy(buf, sa[:])
		return n + copy(buf[n:], pkt)
	}
	return copy(buf, pkt)
}

// send writes one packet, as the writer gave it, to the real fd. It reports
// dropped for a packet FreeBSD accepts and throws away: a tun packet of
// another family than its header or mode says, a tap frame shorter than an
// Ethernet header or than its virtio-net header, or one whose virtio-net
// header the kernel refuses.
func (d *Device) send(data []byte) (dropped bool, err error) {
	if d.drv.IsL2() {
		return d.sendL2(data)
	}
	pkt := data
	want := byte(4)
	if d.ioc.has(modeIfHead) {
		if len(data) < ifHeadLen {
			return false, ErrShort
		}
		switch binary.BigEndian.Uint32(data) {
		case unix.AF_INET:
		case unix.AF_INET6:
			want = 6
		default:
			return false, ErrNoFamily
		}
		pkt = data[ifHeadLen:]
	}
	if len(pkt) == 0 || pkt[0]>>4 != want {
		// IP input would drop it after the write succeeded.
		return true, nil
	}
	_, err = unix.Write(d.fd, pkt)
	return false, err
}

func (d *Device) sendL2(data []byte) (dropped bool, err error) {
	vh := int(d.ioc.vhdr.Load())
	if len(data) < vh || len(data)-vh < 14 {
		return true, nil // tunwrite_l2(): shorter than an Ethernet header
	}
	if vh == vnetHdrMrgRxbuf {
		_, err = unix.Write(d.fd, data)
	} else {
		var hdr [vnetHdrMrgRxbuf]byte
		copy(hdr[:], data[:vh])
		_, err = unix.Writev(d.fd, [][]byte{hdr[:], data[vh:]})
	}
	if vh > 0 && errors.Is(err, unix.EINVAL) {
		return true, nil // virtio_net_rx_csum() failed: dropped
	}
	return false, err
}
