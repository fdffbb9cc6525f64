package ioctls

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Limits and interface types published with the requests.
const (
	// TUNMTU is the MTU of a new tun.
	TUNMTU = 1500
	// TUNMRU and TAPMRU are the largest packet a write accepts (SPEC §6),
	// not counting the 4-byte family of IFHEAD mode. FreeBSD has since
	// raised its own limits to 65535.
	TUNMRU = 16384
	TAPMRU = 16384

	// IFT_ETHER and IFT_PPP are the if_type values of FreeBSD's
	// net/if_types.h that a tap and a tun report in TunInfo.Type
	// (if_tuntap.c: tuncreate()). Linux's ARPHRD_* values do not fit the
	// u_char of struct tuninfo.
	IFT_ETHER = 0x06
	IFT_PPP   = 0x17
)

// TunInfo is struct tuninfo, the argument of TUNSIFINFO and TUNGIFINFO,
// laid out in host byte order:
//
//	struct tuninfo {
//		int            baudrate;  // offset 0
//		unsigned short mtu;       // offset 4
//		unsigned char  type;      // offset 6
//		unsigned char  dummy;     // offset 7, always 0
//	};
//
// FreeBSD declared mtu as short until it raised TUNMRU past 32767; the
// layout is the same either way.
type TunInfo struct {
	Baudrate int32
	MTU      uint16
	Type     uint8
}

// Marshal returns the SizeofTunInfo bytes of ti as a C struct tuninfo.
func (ti TunInfo) Marshal() []byte {
	b := make([]byte, SizeofTunInfo)
	binary.NativeEndian.PutUint32(b[0:4], uint32(ti.Baudrate))
	binary.NativeEndian.PutUint16(b[4:6], ti.MTU)
	b[6] = ti.Type
	return b
}

// Unmarshal sets ti from the bytes of a C struct tuninfo, which must be
// exactly SizeofTunInfo long. The dummy byte is ignored.
func (ti *TunInfo) Unmarshal(b []byte) error {
	if len(b) != SizeofTunInfo {
		return fmt.Errorf("tuninfo: %d bytes, want %d", len(b), SizeofTunInfo)
	}
	ti.Baudrate = int32(binary.NativeEndian.Uint32(b[0:4]))
	ti.MTU = binary.NativeEndian.Uint16(b[4:6])
	ti.Type = b[6]
	return nil
}

// String formats ti as "tundevfs ioctl" prints it: "mtu=1500 type=23
// baudrate=0". ParseTunInfo reads it back.
func (ti TunInfo) String() string {
	return fmt.Sprintf("mtu=%d type=%d baudrate=%d", ti.MTU, ti.Type, ti.Baudrate)
}

// ParseTunInfo reads key=value pairs separated by commas or spaces
// ("mtu=1400,type=ppp,baudrate=9600") over base: keys not given keep their
// value in base. type is a number or one of "ppp" and "ether". Errors wrap
// ErrBadValue.
func ParseTunInfo(s string, base TunInfo) (TunInfo, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	if len(fields) == 0 {
		return base, fmt.Errorf("tuninfo %q: %w: want mtu=N,type=ppp|ether|N,baudrate=N", s, ErrBadValue)
	}
	ti := base
	for _, f := range fields {
		key, val, ok := strings.Cut(f, "=")
		if !ok {
			return base, fmt.Errorf("tuninfo %q: %w: %q is not key=value", s, ErrBadValue, f)
		}
		var err error
		switch strings.ToLower(key) {
		case "mtu":
			var v uint64
			v, err = strconv.ParseUint(val, 0, 16)
			ti.MTU = uint16(v)
		case "type":
			switch strings.ToLower(val) {
			case "ppp":
				ti.Type = IFT_PPP
			case "ether":
				ti.Type = IFT_ETHER
			default:
				var v uint64
				v, err = strconv.ParseUint(val, 0, 8)
				ti.Type = uint8(v)
			}
		case "baudrate":
			var v int64
			v, err = strconv.ParseInt(val, 0, 32)
			ti.Baudrate = int32(v)
		default:
			return base, fmt.Errorf("tuninfo %q: %w: unknown key %q (valid: mtu, type, baudrate)", s, ErrBadValue, key)
		}
		if err != nil {
			return base, fmt.Errorf("tuninfo %q: %w: %s=%q is out of range or not a number", s, ErrBadValue, key, val)
		}
	}
	return ti, nil
}

// IfreqName returns ifr_name of the struct ifreq in b: the bytes of its
// first IFNAMSIZ before the first NUL.
func IfreqName(b []byte) string {
	b = b[:min(len(b), IFNAMSIZ)]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// PutIfreqName stores name as ifr_name of the struct ifreq in b, padded
// with NULs to IFNAMSIZ. A name has 1 to IFNAMSIZ-1 bytes and no NUL.
func PutIfreqName(b []byte, name string) error {
	if len(b) < IFNAMSIZ {
		return fmt.Errorf("ifreq: %d bytes, want at least %d", len(b), IFNAMSIZ)
	}
	if name == "" || len(name) >= IFNAMSIZ || strings.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("ifreq: interface name %q: %w: want 1 to %d bytes", name, ErrBadValue, IFNAMSIZ-1)
	}
	clear(b[:IFNAMSIZ])
	copy(b, name)
	return nil
}

// IfreqMAC returns the MAC address in the first six bytes of the struct
// ifreq in b, where FreeBSD's tap SIOC[GS]IFADDR keep it.
func IfreqMAC(b []byte) (net.HardwareAddr, error) {
	if len(b) < 6 {
		return nil, fmt.Errorf("ifreq: %d bytes, want at least 6", len(b))
	}
	return net.HardwareAddr(bytes.Clone(b[:6])), nil
}

// PutIfreqMAC stores a 6-byte MAC address in the first six bytes of the
// struct ifreq in b and leaves the rest alone.
func PutIfreqMAC(b []byte, mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("ifreq: MAC address %q: %w: want 6 bytes", mac.String(), ErrBadValue)
	}
	if len(b) < 6 {
		return fmt.Errorf("ifreq: %d bytes, want at least 6", len(b))
	}
	copy(b, mac)
	return nil
}
