package ioctls

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// This file holds the client side: helpers that issue one request on an
// open device node, and Do, which "tundevfs ioctl --fd N NAME [VALUE]" calls.
// Every helper wraps the errno as "ioctl NAME: errno".

func opError(name string, err error) error {
	return fmt.Errorf("ioctl %s: %w", name, err)
}

func boolInt(on bool) int {
	if on {
		return 1
	}
	return 0
}

func setIntRaw(fd int, req uint32, v int) error {
	if v != int(int32(v)) {
		return fmt.Errorf("%w: %d does not fit a C int", ErrBadValue, v)
	}
	b := make([]byte, SizeofInt)
	binary.NativeEndian.PutUint32(b, uint32(int32(v)))
	return ioctlBuf(fd, req, b)
}

func getIntRaw(fd int, req uint32) (int, error) {
	b := make([]byte, SizeofInt)
	if err := ioctlBuf(fd, req, b); err != nil {
		return 0, err
	}
	return int(int32(binary.NativeEndian.Uint32(b))), nil
}

func setInt(fd int, name string, req uint32, v int) error {
	if err := setIntRaw(fd, req, v); err != nil {
		return opError(name, err)
	}
	return nil
}

func getInt(fd int, name string, req uint32) (int, error) {
	v, err := getIntRaw(fd, req)
	if err != nil {
		return 0, opError(name, err)
	}
	return v, nil
}

func getInfoRaw(fd int) (TunInfo, error) {
	b := make([]byte, SizeofTunInfo)
	if err := ioctlBuf(fd, TUNGIFINFO, b); err != nil {
		return TunInfo{}, err
	}
	var ti TunInfo
	err := ti.Unmarshal(b)
	return ti, err
}

func getNameRaw(fd int) (string, error) {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return "", err
	}
	for {
		err = unix.IoctlIfreq(fd, TUNGIFNAME, ifr)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return "", err
	}
	return ifr.Name(), nil
}

func setMACRaw(fd int, mac net.HardwareAddr) error {
	b := make([]byte, SizeofIfreq)
	if err := PutIfreqMAC(b, mac); err != nil {
		return err
	}
	return ioctlBuf(fd, TAPSIFADDR, b)
}

func getMACRaw(fd int) (net.HardwareAddr, error) {
	b := make([]byte, SizeofIfreq)
	if err := ioctlBuf(fd, TAPGIFADDR, b); err != nil {
		return nil, err
	}
	return IfreqMAC(b)
}

func setValueRaw(fd int, req uint32, v int) error {
	if v < 0 || v != int(int32(v)) {
		return fmt.Errorf("%w: %d is not a non-negative C int", ErrBadValue, v)
	}
	return ioctlValue(fd, req, uintptr(v))
}

// SetIfHead switches IFHEAD mode of a tun on or off (TUNSIFHEAD): with it on,
// every packet read or written starts with a 4-byte address family.
func SetIfHead(fd int, on bool) error {
	return setInt(fd, "TUNSIFHEAD", TUNSIFHEAD, boolInt(on))
}

// GetIfHead reports whether a tun is in IFHEAD mode (TUNGIFHEAD).
func GetIfHead(fd int) (bool, error) {
	v, err := getInt(fd, "TUNGIFHEAD", TUNGIFHEAD)
	return v != 0, err
}

// GetIfName returns the current name of the device's interface (TUNGIFNAME;
// tap selects its tap spelling, TAPGIFNAME, which is the same request).
func GetIfName(fd int, tap bool) (string, error) {
	name := "TUNGIFNAME"
	if tap {
		name = "TAPGIFNAME"
	}
	s, err := getNameRaw(fd)
	if err != nil {
		return "", opError(name, err)
	}
	return s, nil
}

// SetInfo sets MTU and baudrate (TUNSIFINFO). info.Type must be the
// interface's own type (IFT_PPP for a tun, IFT_ETHER for a tap), else the
// device answers EPROTOTYPE.
func SetInfo(fd int, info TunInfo) error {
	if err := ioctlBuf(fd, TUNSIFINFO, info.Marshal()); err != nil {
		return opError("TUNSIFINFO", err)
	}
	return nil
}

// GetInfo returns MTU, type and baudrate (TUNGIFINFO).
func GetInfo(fd int) (TunInfo, error) {
	ti, err := getInfoRaw(fd)
	if err != nil {
		return TunInfo{}, opError("TUNGIFINFO", err)
	}
	return ti, nil
}

// SetTransient makes the device go away on its last close, or not
// (TUNSTRANSIENT).
func SetTransient(fd int, on bool) error {
	return setInt(fd, "TUNSTRANSIENT", TUNSTRANSIENT, boolInt(on))
}

// SetDebug sets the driver's debug level (TUNSDEBUG).
func SetDebug(fd int, level int) error {
	return setInt(fd, "TUNSDEBUG", TUNSDEBUG, level)
}

// GetDebug returns the driver's debug level (TUNGDEBUG).
func GetDebug(fd int) (int, error) {
	return getInt(fd, "TUNGDEBUG", TUNGDEBUG)
}

// SetMode sets a tun's mode (TUNSIFMODE): unix.IFF_POINTOPOINT or
// unix.IFF_BROADCAST, optionally or'ed with unix.IFF_MULTICAST. The interface
// must be down.
func SetMode(fd int, flags int) error {
	return setInt(fd, "TUNSIFMODE", TUNSIFMODE, flags)
}

// SetLinkMode switches a tun's link-layer mode on or off (TUNSLMODE).
func SetLinkMode(fd int, on bool) error {
	return setInt(fd, "TUNSLMODE", TUNSLMODE, boolInt(on))
}

// SetPID makes the calling process the owner of a tun (TUNSIFPID).
func SetPID(fd int) error {
	if err := ioctlValue(fd, TUNSIFPID, 0); err != nil {
		return opError("TUNSIFPID", err)
	}
	return nil
}

// SetVnetHdr sets a tap's virtio-net header length: 0, 10 or 12
// (TAPSVNETHDR).
func SetVnetHdr(fd int, size int) error {
	return setInt(fd, "TAPSVNETHDR", TAPSVNETHDR, size)
}

// GetVnetHdr returns a tap's virtio-net header length (TAPGVNETHDR).
func GetVnetHdr(fd int) (int, error) {
	return getInt(fd, "TAPGVNETHDR", TAPGVNETHDR)
}

// SetRemoteMAC sets the MAC address of a tap's remote side (TAPSIFADDR,
// FreeBSD's SIOCSIFADDR on a tap).
func SetRemoteMAC(fd int, mac net.HardwareAddr) error {
	if err := setMACRaw(fd, mac); err != nil {
		return opError("TAPSIFADDR", err)
	}
	return nil
}

// GetRemoteMAC returns the MAC address of a tap's remote side (TAPGIFADDR,
// FreeBSD's SIOCGIFADDR on a tap).
func GetRemoteMAC(fd int) (net.HardwareAddr, error) {
	mac, err := getMACRaw(fd)
	if err != nil {
		return nil, opError("TAPGIFADDR", err)
	}
	return mac, nil
}

// SetVMIOFlags sets a tap's interface flags the VMware way
// (VMIO_SIOCSIFFLAGS): flags are Linux IFF_* values, passed by value; the
// device keeps the low 12 bits and forces IFF_UP.
func SetVMIOFlags(fd int, flags int) error {
	if err := setValueRaw(fd, VMIO_SIOCSIFFLAGS, flags); err != nil {
		return opError("VMIO_SIOCSIFFLAGS", err)
	}
	return nil
}

// Do issues the request called name (see Lookup) on fd and returns what it
// read back, formatted for printing, or "" for a request that only sets.
// It is the body of "tundevfs ioctl --fd N NAME [VALUE]".
//
// A request that sets something needs value, parsed by its argument kind: an
// int in any Go integer syntax or on/off (IFF flags also by name,
// "broadcast|multicast"); a tuninfo as "mtu=1400,type=ppp,baudrate=9600",
// where keys left out keep their current value (read first with TUNGIFINFO);
// a MAC address as "aa:bb:cc:dd:ee:ff". A request that reads takes no value
// and prints an int in decimal, a name, a tuninfo as TunInfo.String does, or
// a MAC address.
func Do(fd int, name, value string) (string, error) {
	io, ok := Lookup(name)
	if !ok {
		return "", fmt.Errorf("ioctl %s: %w (valid: %s)", name, ErrUnknownRequest, strings.Join(Names(), ", "))
	}
	op := strings.ToUpper(name)
	reads := io.Dir&DirRead != 0
	takesValue := io.Arg != ArgNone && !reads
	switch {
	case takesValue && value == "":
		return "", fmt.Errorf("ioctl %s: %w: a value is required (%s)", op, ErrBadValue, valueHint(io))
	case !takesValue && value != "":
		return "", fmt.Errorf("ioctl %s: %w: the request takes no value", op, ErrBadValue)
	}

	var (
		out string
		err error
	)
	switch io.Arg {
	case ArgNone:
		err = ioctlValue(fd, io.Number, 0)
	case ArgInt, ArgIntValue:
		if reads {
			var v int
			v, err = getIntRaw(fd, io.Number)
			out = strconv.Itoa(v)
			break
		}
		var v int
		if v, err = parseInt(io, value); err != nil {
			break
		}
		if io.Arg == ArgIntValue {
			err = setValueRaw(fd, io.Number, v)
		} else {
			err = setIntRaw(fd, io.Number, v)
		}
	case ArgTunInfo:
		var ti TunInfo
		if ti, err = getInfoRaw(fd); err != nil {
			break
		}
		if reads {
			out = ti.String()
			break
		}
		if ti, err = ParseTunInfo(value, ti); err != nil {
			break
		}
		err = ioctlBuf(fd, io.Number, ti.Marshal())
	case ArgIfreqName:
		out, err = getNameRaw(fd)
	case ArgIfreqMAC:
		if reads {
			var mac net.HardwareAddr
			mac, err = getMACRaw(fd)
			out = mac.String()
			break
		}
		var mac net.HardwareAddr
		if mac, err = net.ParseMAC(value); err != nil || len(mac) != 6 {
			err = fmt.Errorf("%w: %q is not a MAC address like aa:bb:cc:dd:ee:ff", ErrBadValue, value)
			break
		}
		err = setMACRaw(fd, mac)
	default:
		err = fmt.Errorf("argument kind %v: %w", io.Arg, ErrBadValue)
	}
	if err != nil {
		return "", opError(op, err)
	}
	return out, nil
}

func valueHint(io Ioctl) string {
	switch {
	case io.Flags:
		return "IFF flags: a number or names like broadcast|multicast"
	case io.Arg == ArgTunInfo:
		return "mtu=N,type=ppp|ether|N,baudrate=N"
	case io.Arg == ArgIfreqMAC:
		return "a MAC address like aa:bb:cc:dd:ee:ff"
	}
	return "an integer or on/off"
}

// iffNames are the Linux interface flags Do accepts by name.
var iffNames = map[string]int{
	"up":          unix.IFF_UP,
	"broadcast":   unix.IFF_BROADCAST,
	"debug":       unix.IFF_DEBUG,
	"loopback":    unix.IFF_LOOPBACK,
	"pointopoint": unix.IFF_POINTOPOINT,
	"notrailers":  unix.IFF_NOTRAILERS,
	"running":     unix.IFF_RUNNING,
	"noarp":       unix.IFF_NOARP,
	"promisc":     unix.IFF_PROMISC,
	"allmulti":    unix.IFF_ALLMULTI,
	"master":      unix.IFF_MASTER,
	"slave":       unix.IFF_SLAVE,
	"multicast":   unix.IFF_MULTICAST,
	"portsel":     unix.IFF_PORTSEL,
	"automedia":   unix.IFF_AUTOMEDIA,
	"dynamic":     unix.IFF_DYNAMIC,
}

// parseInt reads the value of an int request: an integer in Go syntax
// (42, 0x2a, 0o52), on/off/true/false/yes/no, or for an IFF flags request
// flag names joined by '|', ',' or '+' ("IFF_" prefix optional).
func parseInt(io Ioctl, s string) (int, error) {
	if v, err := strconv.ParseInt(s, 0, 32); err == nil {
		return int(v), nil
	}
	if !io.Flags {
		switch strings.ToLower(s) {
		case "on", "true", "yes":
			return 1, nil
		case "off", "false", "no":
			return 0, nil
		}
		return 0, fmt.Errorf("%w: %q is not an integer or on/off", ErrBadValue, s)
	}
	v := 0
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == '|' || r == ',' || r == '+' }) {
		key := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(f)), "iff_")
		flag, ok := iffNames[key]
		if !ok {
			return 0, fmt.Errorf("%w: %q is not a number or an IFF flag name (up, broadcast, pointopoint, multicast, ...)", ErrBadValue, f)
		}
		v |= flag
	}
	if v == 0 {
		return 0, fmt.Errorf("%w: %q names no flag", ErrBadValue, s)
	}
	return v, nil
}
