// Package ioctls is the published ioctl surface of tundevfs: the names,
// numbers and argument layouts of FreeBSD's tun(4) and tap(4) ioctls as a
// tundevfs device node answers them on Linux.
//
// # The contract
//
// Every request keeps the name, group letter, number and argument type that
// FreeBSD gives it (sys/net/if_tun.h, sys/net/if_tap.h; the handler is
// tunioctl() in sys/net/if_tuntap.c), but its number is encoded the Linux way,
// with _IO, _IOW, _IOR or _IOWR of <linux/ioctl.h>. The reason is FUSE: a
// device node is a file of a FUSE mount, and the kernel hands an ioctl on such
// a file to the daemon in FUSE's restricted mode only, where _IOC_DIR and
// _IOC_SIZE of the number alone decide how many bytes are copied to the daemon
// and back. FreeBSD's own encoding has the direction bits the other way round
// (IOC_OUT is bit 30, IOC_IN bit 31; Linux has _IOC_WRITE in bit 30 and
// _IOC_READ in bit 31), so a FreeBSD number would move its argument in the
// wrong direction. The numbers here are therefore tundevfs' own, and a program
// must take them from this package (ioctls.TUNSIFHEAD) or from the generated C
// headers include/net/if_tun.h and include/net/if_tap.h, never from FreeBSD.
//
// Table is the single source of truth: the constants, ByNumber (the daemon's
// dispatch), Lookup and Do (the "tundevfs ioctl" command) and the C headers
// (RenderHeaders, written by go generate) all follow it, and the tests hold
// each of them against what a C compiler makes of the headers.
//
// Values keep their Linux meaning where FreeBSD's differ: the IFF_* flags of
// TUNSIFMODE and VMIO_SIOCSIFFLAGS are Linux's, as are the address families of
// IFHEAD mode.
//
// # Errors
//
// The client helpers return the errno of the ioctl wrapped with a lowercase
// operation prefix naming the request ("ioctl TUNSIFHEAD: inappropriate ioctl
// for device"), so errors.Is(err, unix.ENOTTY) works. A device answers ENOTTY
// to a request it does not serve, and ENXIO once it has been destroyed.
// Requests and values that Do cannot parse wrap ErrUnknownRequest and
// ErrBadValue.
package ioctls

//go:generate go run gen_headers.go

import (
	"fmt"
	"sort"
	"strings"
)

// Dir is the direction in which an ioctl's argument travels, seen from the
// caller, as _IOC_DIR encodes it: DirWrite copies the argument to the device
// before the call, DirRead copies it back afterwards.
type Dir uint8

// The directions. The values are abstract; IOC maps them to the bits of the
// architecture.
const (
	DirNone      Dir = 0
	DirWrite     Dir = 1
	DirRead      Dir = 2
	DirReadWrite     = DirWrite | DirRead
)

// Macro returns the <linux/ioctl.h> macro for d: _IO, _IOW, _IOR or _IOWR.
func (d Dir) Macro() string {
	switch d {
	case DirNone:
		return "_IO"
	case DirWrite:
		return "_IOW"
	case DirRead:
		return "_IOR"
	case DirReadWrite:
		return "_IOWR"
	}
	return fmt.Sprintf("Dir(%d)", uint8(d))
}

func (d Dir) String() string {
	switch d {
	case DirNone:
		return "none"
	case DirWrite:
		return "write"
	case DirRead:
		return "read"
	case DirReadWrite:
		return "read|write"
	}
	return fmt.Sprintf("Dir(%d)", uint8(d))
}

// Arg is the kind of argument a request takes. It fixes the C type named in
// the header, the size encoded in the number, and how Do parses and prints a
// value.
type Arg uint8

// The argument kinds.
const (
	// ArgNone: no argument (_IO).
	ArgNone Arg = iota
	// ArgInt: a pointer to an int.
	ArgInt
	// ArgIntValue: an int passed by value as the argument itself, FreeBSD's
	// _IOWINT. The number says "no direction, size of int", so FUSE copies
	// nothing and the daemon reads the value from the raw argument.
	ArgIntValue
	// ArgTunInfo: a pointer to a struct tuninfo (see TunInfo).
	ArgTunInfo
	// ArgIfreqName: a pointer to a struct ifreq whose ifr_name carries an
	// interface name.
	ArgIfreqName
	// ArgIfreqMAC: a pointer to a struct ifreq whose first six bytes carry a
	// MAC address, as FreeBSD's tunioctl() copies it for SIOC[GS]IFADDR.
	ArgIfreqMAC
)

// Size returns the size of the argument in bytes, as the number encodes it.
func (a Arg) Size() uint32 {
	switch a {
	case ArgInt, ArgIntValue:
		return SizeofInt
	case ArgTunInfo:
		return SizeofTunInfo
	case ArgIfreqName, ArgIfreqMAC:
		return SizeofIfreq
	}
	return 0
}

// CType returns the C type of the argument, or "" for ArgNone.
func (a Arg) CType() string {
	switch a {
	case ArgInt, ArgIntValue:
		return "int"
	case ArgTunInfo:
		return "struct tuninfo"
	case ArgIfreqName, ArgIfreqMAC:
		return "struct ifreq"
	}
	return ""
}

func (a Arg) String() string {
	switch a {
	case ArgNone:
		return "none"
	case ArgInt:
		return "int"
	case ArgIntValue:
		return "int-value"
	case ArgTunInfo:
		return "tuninfo"
	case ArgIfreqName:
		return "ifreq-name"
	case ArgIfreqMAC:
		return "ifreq-mac"
	}
	return fmt.Sprintf("Arg(%d)", uint8(a))
}

// Driver is a set of drivers. A vmnet device is a tap with the VMNET flag
// and answers every request a tap answers.
type Driver uint8

// The drivers.
const (
	DriverTun Driver = 1 << iota
	DriverTap
	DriverAll = DriverTun | DriverTap
)

func (d Driver) String() string {
	switch d {
	case DriverTun:
		return "tun"
	case DriverTap:
		return "tap"
	case DriverAll:
		return "tun|tap"
	}
	return fmt.Sprintf("Driver(%d)", uint8(d))
}

// Ioctl describes one request.
type Ioctl struct {
	// Name is the published name: the C macro and the Go constant.
	Name string
	// Aliases are further published names of the same request: FreeBSD's
	// if_tap.h defines TAPGIFNAME and friends as the TUN* request.
	Aliases []string
	// Compat are FreeBSD names that Lookup and Do accept but that are not
	// published, because Linux's own headers define them with another
	// meaning (SIOCGIFADDR).
	Compat []string
	// Number is the request number passed to ioctl(2).
	Number uint32
	// Dir, Group, Nr and Size are the fields Number encodes; Size is
	// Arg.Size().
	Dir   Dir
	Group byte
	Nr    uint8
	Size  uint32
	// Arg is the kind of argument.
	Arg Arg
	// Flags says the int argument is a set of Linux IFF_* flags, which Do
	// also accepts by name ("broadcast|multicast").
	Flags bool
	// Drivers are the drivers that answer the request; others say ENOTTY,
	// as FreeBSD's tunioctl() does.
	Drivers Driver
	// FreeBSD is FreeBSD's definition of the request, or "" for a tundevfs
	// extension.
	FreeBSD string
	// Doc says what the request does, in one line.
	Doc string
}

// Serves reports whether a device of driver d answers the request.
func (io Ioctl) Serves(d Driver) bool { return io.Drivers&d != 0 }

// The fixed fields of the Linux encoding; iocSizeBits and the direction bits
// come from the architecture's file (ioc_asmgeneric.go, ioc_mipsppc.go).
const (
	iocNrShift   = 0
	iocTypeShift = 8
	iocSizeShift = 16
	iocDirShift  = iocSizeShift + iocSizeBits

	iocNrMask   = 1<<8 - 1
	iocTypeMask = 1<<8 - 1
	iocSizeMask = 1<<iocSizeBits - 1
	iocDirMask  = 1<<iocDirBits - 1
)

// IOC returns the Linux request number for a direction, group (type) letter,
// number and argument size, like _IOC of <linux/ioctl.h>. It panics if size
// does not fit the size field.
func IOC(dir Dir, group byte, nr uint8, size uint32) uint32 {
	if size > iocSizeMask {
		panic(fmt.Sprintf("ioctls: argument size %d does not fit %d bits", size, iocSizeBits))
	}
	var d uint32
	if dir&DirWrite != 0 {
		d |= iocWrite
	}
	if dir&DirRead != 0 {
		d |= iocRead
	}
	if d == 0 {
		d = iocNone
	}
	return d<<iocDirShift | size<<iocSizeShift | uint32(group)<<iocTypeShift | uint32(nr)<<iocNrShift
}

// IO returns _IO(group, nr).
func IO(group byte, nr uint8) uint32 { return IOC(DirNone, group, nr, 0) }

// IOW returns _IOW(group, nr, T) for an argument T of size bytes.
func IOW(group byte, nr uint8, size uint32) uint32 { return IOC(DirWrite, group, nr, size) }

// IOR returns _IOR(group, nr, T) for an argument T of size bytes.
func IOR(group byte, nr uint8, size uint32) uint32 { return IOC(DirRead, group, nr, size) }

// IOWR returns _IOWR(group, nr, T) for an argument T of size bytes.
func IOWR(group byte, nr uint8, size uint32) uint32 { return IOC(DirReadWrite, group, nr, size) }

// Decode splits a request number into the fields _IOC_DIR, _IOC_TYPE,
// _IOC_NR and _IOC_SIZE read from it.
func Decode(n uint32) (dir Dir, group byte, nr uint8, size uint32) {
	d := n >> iocDirShift & iocDirMask
	if d&iocWrite != 0 {
		dir |= DirWrite
	}
	if d&iocRead != 0 {
		dir |= DirRead
	}
	return dir, byte(n >> iocTypeShift & iocTypeMask), uint8(n >> iocNrShift & iocNrMask), n >> iocSizeShift & iocSizeMask
}

// Sizes of the C argument types on this architecture.
const (
	SizeofInt     = 4
	SizeofTunInfo = 8
	// IFNAMSIZ is the size of ifr_name, terminating NUL included.
	IFNAMSIZ = 16
	// SizeofIfreq is sizeof(struct ifreq) on Linux: ifr_name and a union
	// whose largest member is a struct sockaddr (16 bytes) or a struct
	// ifmap (two unsigned longs, an unsigned short and three unsigned
	// chars): 40 bytes on a 64-bit architecture, 32 on a 32-bit one.
	SizeofIfreq = IFNAMSIZ + max(sizeofSockaddr, sizeofIfmap)

	ptrSize        = 4 << (^uintptr(0) >> 63)
	sizeofSockaddr = 16
	sizeofIfmap    = (2*ptrSize + 2 + 3 + ptrSize - 1) / ptrSize * ptrSize
)

// Pieces of the encodings below: a direction and argument size, and a group.
const (
	ioNone       = iocNone << iocDirShift
	iowInt       = iocWrite<<iocDirShift | SizeofInt<<iocSizeShift
	iorInt       = iocRead<<iocDirShift | SizeofInt<<iocSizeShift
	ioIntValue   = iocNone<<iocDirShift | SizeofInt<<iocSizeShift
	iowTunInfo   = iocWrite<<iocDirShift | SizeofTunInfo<<iocSizeShift
	iorTunInfo   = iocRead<<iocDirShift | SizeofTunInfo<<iocSizeShift
	iowIfreq     = iocWrite<<iocDirShift | SizeofIfreq<<iocSizeShift
	iorIfreq     = iocRead<<iocDirShift | SizeofIfreq<<iocSizeShift
	iowrIfreq    = (iocWrite|iocRead)<<iocDirShift | SizeofIfreq<<iocSizeShift
	groupTun     = 't' << iocTypeShift
	groupVMware  = 'V' << iocTypeShift
	groupSockets = 'i' << iocTypeShift
)

// The requests. Each comment gives the C definition in the published header.
const (
	TUNGDEBUG     = iorInt | groupTun | 89     // _IOR('t', 89, int)
	TUNSDEBUG     = iowInt | groupTun | 90     // _IOW('t', 90, int)
	TUNSIFINFO    = iowTunInfo | groupTun | 91 // _IOW('t', 91, struct tuninfo)
	TUNGIFINFO    = iorTunInfo | groupTun | 92 // _IOR('t', 92, struct tuninfo)
	TUNSLMODE     = iowInt | groupTun | 93     // _IOW('t', 93, int)
	TUNGIFNAME    = iorIfreq | groupTun | 93   // _IOR('t', 93, struct ifreq)
	TUNSIFMODE    = iowInt | groupTun | 94     // _IOW('t', 94, int)
	TUNSIFPID     = ioNone | groupTun | 95     // _IO('t', 95)
	TUNSIFHEAD    = iowInt | groupTun | 96     // _IOW('t', 96, int)
	TUNGIFHEAD    = iorInt | groupTun | 97     // _IOR('t', 97, int)
	TUNSTRANSIENT = iowInt | groupTun | 98     // _IOW('t', 98, int)

	// TUNSBATCH is a tundevfs extension: batch mode, where a read returns
	// as many queued packets as fit and a write may carry several, each
	// behind a 4-byte big-endian length. FreeBSD
	// uses group 't' up to 127 (tun/tap 89-98, the tty ioctls of
	// sys/ttycom.h and their compat slots up to 127), so it takes 128.
	TUNSBATCH = iowInt | groupTun | 128 // _IOW('t', 128, int)

	TAPSVNETHDR = iowInt | groupTun | 91 // _IOW('t', 91, int)
	TAPGVNETHDR = iorInt | groupTun | 94 // _IOR('t', 94, int)

	// TAPSIFADDR and TAPGIFADDR are what FreeBSD spells SIOCSIFADDR and
	// SIOCGIFADDR on a tap device: they set and get the remote side's MAC
	// address. FreeBSD reuses the generic socket requests, whose Linux
	// numbers (0x8916, 0x8915) encode neither direction nor size and so
	// cannot pass FUSE, and whose names Linux's <sys/ioctl.h> already
	// defines. We keep FreeBSD's group ('i'), numbers (12, 33), directions
	// and argument (struct ifreq, MAC in its first six bytes, exactly the
	// buffer tunioctl() copies to and from), so that the rule "FreeBSD's
	// request, Linux's encoding" has no exception and a ported program
	// changes only the name; they get a TAP prefix because the SIOC names
	// are taken.
	TAPSIFADDR = iowIfreq | groupSockets | 12  // _IOW('i', 12, struct ifreq)
	TAPGIFADDR = iowrIfreq | groupSockets | 33 // _IOWR('i', 33, struct ifreq)

	// VMIO_SIOCSIFFLAGS is FreeBSD's _IOWINT('V', 0): no direction, the size
	// of an int, and the flags passed by value rather than through a
	// pointer. Linux has no _IOWINT macro but the same encoding, which FUSE
	// forwards without copying anything.
	VMIO_SIOCSIFFLAGS = ioIntValue | groupVMware // _IOC(_IOC_NONE, 'V', 0, sizeof(int)): number 0
)

// The tap spellings of requests shared with tun, as FreeBSD's if_tap.h
// defines them.
const (
	TAPGDEBUG     = TUNGDEBUG
	TAPSDEBUG     = TUNSDEBUG
	TAPSIFINFO    = TUNSIFINFO
	TAPGIFINFO    = TUNGIFINFO
	TAPGIFNAME    = TUNGIFNAME
	TAPSTRANSIENT = TUNSTRANSIENT
)

// Table lists every request, grouped by the header that publishes it
// (tun requests and those shared with tap in if_tun.h, tap-only ones in
// if_tap.h), in order of group and number.
var Table = []Ioctl{
	{
		Name: "TUNGDEBUG", Aliases: []string{"TAPGDEBUG"},
		Number: TUNGDEBUG, Dir: DirRead, Group: 't', Nr: 89, Size: SizeofInt, Arg: ArgInt,
		Drivers: DriverAll, FreeBSD: "_IOR('t', 89, int)",
		Doc: "get the driver's debug level",
	},
	{
		Name: "TUNSDEBUG", Aliases: []string{"TAPSDEBUG"},
		Number: TUNSDEBUG, Dir: DirWrite, Group: 't', Nr: 90, Size: SizeofInt, Arg: ArgInt,
		Drivers: DriverAll, FreeBSD: "_IOW('t', 90, int)",
		Doc: "set the driver's debug level (one level for all devices)",
	},
	{
		Name: "TUNSIFINFO", Aliases: []string{"TAPSIFINFO"},
		Number: TUNSIFINFO, Dir: DirWrite, Group: 't', Nr: 91, Size: SizeofTunInfo, Arg: ArgTunInfo,
		Drivers: DriverAll, FreeBSD: "_IOW('t', 91, struct tuninfo)",
		Doc: "set MTU and baudrate; type must be the interface's own, else EPROTOTYPE",
	},
	{
		Name: "TUNGIFINFO", Aliases: []string{"TAPGIFINFO"},
		Number: TUNGIFINFO, Dir: DirRead, Group: 't', Nr: 92, Size: SizeofTunInfo, Arg: ArgTunInfo,
		Drivers: DriverAll, FreeBSD: "_IOR('t', 92, struct tuninfo)",
		Doc: "get MTU, type (IFT_PPP for tun, IFT_ETHER for tap) and baudrate",
	},
	{
		Name:   "TUNSLMODE",
		Number: TUNSLMODE, Dir: DirWrite, Group: 't', Nr: 93, Size: SizeofInt, Arg: ArgInt,
		Drivers: DriverTun, FreeBSD: "_IOW('t', 93, int)",
		Doc: "non-zero: link-layer mode, packets read carry their destination address; clears IFHEAD",
	},
	{
		Name: "TUNGIFNAME", Aliases: []string{"TAPGIFNAME"},
		Number: TUNGIFNAME, Dir: DirRead, Group: 't', Nr: 93, Size: SizeofIfreq, Arg: ArgIfreqName,
		Drivers: DriverAll, FreeBSD: "_IOR('t', 93, struct ifreq)",
		Doc: "copy the interface's current name into ifr_name",
	},
	{
		Name:   "TUNSIFMODE",
		Number: TUNSIFMODE, Dir: DirWrite, Group: 't', Nr: 94, Size: SizeofInt, Arg: ArgInt, Flags: true,
		Drivers: DriverTun, FreeBSD: "_IOW('t', 94, int)",
		Doc: "set IFF_POINTOPOINT or IFF_BROADCAST, optionally or'ed with IFF_MULTICAST (Linux values); EBUSY while the interface is up",
	},
	{
		Name:   "TUNSIFPID",
		Number: TUNSIFPID, Dir: DirNone, Group: 't', Nr: 95, Size: 0, Arg: ArgNone,
		Drivers: DriverTun, FreeBSD: "_IO('t', 95)",
		Doc: "make the calling process the device's owner",
	},
	{
		Name:   "TUNSIFHEAD",
		Number: TUNSIFHEAD, Dir: DirWrite, Group: 't', Nr: 96, Size: SizeofInt, Arg: ArgInt,
		Drivers: DriverTun, FreeBSD: "_IOW('t', 96, int)",
		Doc: "non-zero: IFHEAD mode, every packet carries a 4-byte address family; clears link-layer mode",
	},
	{
		Name:   "TUNGIFHEAD",
		Number: TUNGIFHEAD, Dir: DirRead, Group: 't', Nr: 97, Size: SizeofInt, Arg: ArgInt,
		Drivers: DriverTun, FreeBSD: "_IOR('t', 97, int)",
		Doc: "1 in IFHEAD mode, else 0",
	},
	{
		Name: "TUNSTRANSIENT", Aliases: []string{"TAPSTRANSIENT"},
		Number: TUNSTRANSIENT, Dir: DirWrite, Group: 't', Nr: 98, Size: SizeofInt, Arg: ArgInt,
		Drivers: DriverAll, FreeBSD: "_IOW('t', 98, int)",
		Doc: "non-zero: destroy the device on its last close",
	},
	{
		Name:   "TUNSBATCH",
		Number: TUNSBATCH, Dir: DirWrite, Group: 't', Nr: 128, Size: SizeofInt, Arg: ArgInt,
		Drivers: DriverAll,
		Doc:     "tundevfs extension: batch mode, packets behind 4-byte big-endian lengths in one read or write",
	},
	{
		Name:   "TAPSIFADDR",
		Compat: []string{"SIOCSIFADDR"},
		Number: TAPSIFADDR, Dir: DirWrite, Group: 'i', Nr: 12, Size: SizeofIfreq, Arg: ArgIfreqMAC,
		Drivers: DriverTap, FreeBSD: "SIOCSIFADDR, _IOW('i', 12, struct ifreq)",
		Doc: "set the remote side's MAC address from the first 6 bytes of the ifreq",
	},
	{
		Name:   "TAPGIFADDR",
		Compat: []string{"SIOCGIFADDR"},
		Number: TAPGIFADDR, Dir: DirReadWrite, Group: 'i', Nr: 33, Size: SizeofIfreq, Arg: ArgIfreqMAC,
		Drivers: DriverTap, FreeBSD: "SIOCGIFADDR, _IOWR('i', 33, struct ifreq)",
		Doc: "get the remote side's MAC address into the first 6 bytes of the ifreq",
	},
	{
		Name:   "TAPSVNETHDR",
		Number: TAPSVNETHDR, Dir: DirWrite, Group: 't', Nr: 91, Size: SizeofInt, Arg: ArgInt,
		Drivers: DriverTap, FreeBSD: "_IOW('t', 91, int)",
		Doc: "set the virtio-net header length: 0, 10 or 12, else EINVAL",
	},
	{
		Name:   "TAPGVNETHDR",
		Number: TAPGVNETHDR, Dir: DirRead, Group: 't', Nr: 94, Size: SizeofInt, Arg: ArgInt,
		Drivers: DriverTap, FreeBSD: "_IOR('t', 94, int)",
		Doc: "get the virtio-net header length",
	},
	{
		Name:   "VMIO_SIOCSIFFLAGS",
		Number: VMIO_SIOCSIFFLAGS, Dir: DirNone, Group: 'V', Nr: 0, Size: SizeofInt, Arg: ArgIntValue, Flags: true,
		Drivers: DriverTap, FreeBSD: "_IOWINT('V', 0)",
		Doc: "set the interface flags, passed by value as Linux IFF_* values; only the low 12 bits count and IFF_UP is forced on",
	},
}

var (
	byName   = indexByName()
	byNumber = indexByNumber()
)

func indexByName() map[string]int {
	m := make(map[string]int)
	for i, io := range Table {
		m[io.Name] = i
		for _, a := range io.Aliases {
			m[a] = i
		}
		for _, a := range io.Compat {
			m[a] = i
		}
	}
	return m
}

// ifreqSizes are sizeof(struct ifreq) under ILP32 and LP64. A 32-bit program
// on a 64-bit kernel encodes the smaller size in its request number, and FUSE
// forwards that number unchanged; ByNumber knows both.
var ifreqSizes = []uint32{32, 40}

func indexByNumber() map[uint32]int {
	m := make(map[uint32]int)
	for i, io := range Table {
		m[io.Number] = i
		if io.Arg == ArgIfreqName || io.Arg == ArgIfreqMAC {
			for _, size := range ifreqSizes {
				m[IOC(io.Dir, io.Group, io.Nr, size)] = i
			}
		}
	}
	return m
}

// Lookup returns the request called name: a published name, a tap alias or
// a FreeBSD compat name, in any case.
func Lookup(name string) (Ioctl, bool) {
	i, ok := byName[strings.ToUpper(name)]
	if !ok {
		return Ioctl{}, false
	}
	return Table[i], true
}

// ByNumber returns the request with number n. For a request with a struct
// ifreq argument it also accepts the number a program with the other data
// model (ILP32 or LP64) computes; the daemon must then size the argument by
// the number it got, not by Size.
func ByNumber(n uint32) (Ioctl, bool) {
	i, ok := byNumber[n]
	if !ok {
		return Ioctl{}, false
	}
	return Table[i], true
}

// Names returns, sorted, every name Lookup accepts.
func Names() []string {
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
