package itest

import (
	"encoding/binary"
	"net/netip"
)

// UDP4 builds an IPv4/UDP packet (UDP checksum 0, allowed for IPv4).
func UDP4(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	p := ipv4(17, src, dst, 8+len(payload))
	binary.BigEndian.PutUint16(p[20:], sport)
	binary.BigEndian.PutUint16(p[22:], dport)
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	copy(p[28:], payload)
	return p
}

// ICMPEcho builds an IPv4 ICMP echo request with identifier id and
// sequence number seq, carrying payload.
func ICMPEcho(src, dst netip.Addr, id, seq uint16, payload []byte) []byte {
	p := ipv4(1, src, dst, 8+len(payload))
	p[20] = 8 // echo request
	binary.BigEndian.PutUint16(p[24:], id)
	binary.BigEndian.PutUint16(p[26:], seq)
	copy(p[28:], payload)
	binary.BigEndian.PutUint16(p[22:], ipChecksum(p[20:]))
	return p
}

// IsEchoReply reports whether p is an IPv4 ICMP echo reply with
// identifier id and sequence number seq.
func IsEchoReply(p []byte, id, seq uint16) bool {
	if len(p) < 28 || p[0]>>4 != 4 || p[9] != 1 {
		return false
	}
	ihl := int(p[0]&0xf) * 4
	if len(p) < ihl+8 || p[ihl] != 0 {
		return false
	}
	return binary.BigEndian.Uint16(p[ihl+4:]) == id && binary.BigEndian.Uint16(p[ihl+6:]) == seq
}

// ipv4 returns an IPv4 packet of protocol proto from src to dst with
// room for n bytes after its 20-byte header, which is filled in (TTL 64,
// header checksum).
func ipv4(proto byte, src, dst netip.Addr, n int) []byte {
	p := make([]byte, 20+n)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8] = 64 // TTL
	p[9] = proto
	s, d := src.As4(), dst.As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	binary.BigEndian.PutUint16(p[10:], ipChecksum(p[:20]))
	return p
}

// ipChecksum is the Internet checksum (RFC 1071) of h.
func ipChecksum(h []byte) uint16 { return ^uint16(Checksum(0, h)) }

// Checksum adds b to the one's-complement sum sum and returns it folded to
// 16 bits, not complemented (so that pseudo-headers can be summed first);
// an odd last byte is padded with zero.
func Checksum(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return sum
}

// Ether wraps an IPv4 packet in an Ethernet frame.
func Ether(dst, src [6]byte, ipPacket []byte) []byte {
	f := make([]byte, 14+len(ipPacket))
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	copy(f[14:], ipPacket)
	return f
}

// UDPPayload returns the payload of an IPv4/UDP packet to dport, or nil.
func UDPPayload(p []byte, dport uint16) []byte {
	if len(p) < 28 || p[0]>>4 != 4 || p[9] != 17 {
		return nil
	}
	ihl := int(p[0]&0xf) * 4
	if len(p) < ihl+8 || binary.BigEndian.Uint16(p[ihl+2:]) != dport {
		return nil
	}
	return p[ihl+8:]
}

// FrameUDPPayload is UDPPayload for an Ethernet frame.
func FrameUDPPayload(f []byte, dport uint16) []byte {
	if len(f) < 14 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return nil
	}
	return UDPPayload(f[14:], dport)
}
