// Package driver implements the tun, tap and vmnet devices: one shared
// implementation driven by a table of three drivers that differ only in
// their flags (FreeBSD's if_tuntap.c tuntap_drivers[]).
//
// Contract:
//   - Every device is backed by a real Linux TUN/TAP interface created in its
//     jail's network namespace by opening /dev/net/tun and TUNSETIFF with
//     IFF_TUN_EXCL, so an interface of the same name that tundevfs did not
//     create is never adopted.
//   - Units are allocated per driver and per network namespace, lowest free
//     first, at most MaxUnit (FreeBSD's unrhdr and IF_MAXUNIT).
//   - Both creation paths (a devfs clone on lookup and an ifconfig create) go
//     through Manager.Create. A devfs clone returns the device with one extra
//     reference, RefClone, which the caller gives up once the kernel holds the
//     node; an ifconfig create returns none (SPEC §1, FreeBSD 3b263fa76c08).
//   - A failed creation gives back everything it took: unit, fd, jail hold,
//     its place under the jail's device limit. The limit (max_devices)
//     counts the alive devices and the creations in flight, checked and
//     reserved in one step (jailState.counted): a dying device no longer
//     counts, though its unit stays taken until it is gone.
//   - Destroy marks the device dying, wakes every blocked reader, waits for
//     in-flight operations (the busy count), emits Destroyed and unlists the
//     node, and only then closes the real fd so that the interface
//     disappears (the slow part), frees the unit, releases the jail and
//     drops the node reference. The Device value lives on until its last
//     reference is gone, answering ENXIO (ErrGone) meanwhile.
//   - Creations of one unit never fail against each other: while a unit is
//     being made or its interface is going (jailState.settling), a second
//     Create of it waits for the outcome; a devfs clone then gets the
//     device that won.
//   - An interface renamed to a Reserved name (a cloner's, a standard
//     device's) gets no alias (names.go).
//   - Errors map to errnos through one table beside the sentinels
//     (errors.go: Errnos, ErrnoOf).
//   - The manager registers a jail remove callback that detaches the jail's
//     cloners and destroys every device cloned there, open or busy ones too.
//   - Handle.Poll answers at once and truthfully (tunpoll()): readable only
//     when a Read would return a packet now. A notification it registers is
//     called once, at the next packet arrival or at destroy. Waiting costs
//     one goroutine per open device, parked on Go's netpoller, never an OS
//     thread (poll.go).
//   - The tun/tap ioctls (ioctl.go, FreeBSD's tunioctl()) act on the open
//     handle and change the real interface where Linux has the thing (MTU,
//     IFF_MULTICAST, flags, offloads) and the device otherwise (IFHEAD,
//     link-layer mode, transient, link0, baudrate, remote MAC). The data
//     path frames packets as the modes say (framing.go). Last close resets
//     the virtio-net header and destroys a transient device; a tap with
//     link0 keeps its state like a vmnet.
//   - Every jail's driver state follows interface renames in its namespace
//     with a netlink socket (rename.go, FreeBSD's tunrename()) and
//     emits Renamed; the socket is closed when the jail's cloners detach.
//   - A tap's real fd carries a 12-byte virtio-net header (IFF_VNET_HDR can
//     only be chosen at TUNSETIFF); TAPSVNETHDR decides how much of it the
//     reader and writer see. A tap's MAC is derived from host, jail and
//     name, so it is the same every time.
//   - Creating the interface (Links.Create on Linux) is one Netns.Do and no netlink
//     round trip: TUNSETIFF, SIOCGIFINDEX and a tap's SIOCSIFHWADDR run on
//     one thread in the namespace. Finding a device by interface name is a
//     map lookup (jailState.byIfName), whatever the number of devices.
//   - Batch mode (batch.go, TUNSBATCH, a tundevfs extension) is per open
//     file: a read packs as many queued packets as fit, each behind a 4-byte
//     big-endian length, and a write may carry several; a packet that does
//     not fit goes back to the stash and comes first next time.
//   - The fast path (fastpath.go) hands a duplicate of the real fd to the
//     holder of the open file; the device file then carries no packets,
//     and Destroy unregisters an interface that was handed out.
//   - A new server takes the devices of a dead one over (state.go): Export
//     records every device, Restore rebuilds one from its record and a
//     duplicate of its TUN fd, and SetOnChange reports every change a
//     record would show.
//
// Errors are Go errors wrapping the sentinels of errors.go or a unix.Errno;
// the fs package turns them into errnos.
//
// A device (Device.state, under Device.mu; lifecycle.go):
//
//	         Destroy, jail removal,
//	         transient last close
//	alive ─────────────────────────► dying ──────────────────────► dead
//	  │  enter/exit count busy;      │  enter fails (ErrGone);    │  freed at
//	  │  Open sets Device.open       │  the open handle revoked;  │  its last
//	  │                              │  waits for busy == 0,      │  reference
//	  │                              │  unlists, closes the fd    │  (Rel)
//
// Every operation runs between enter and exit (FreeBSD's tun_busy): the fd
// stays open and the device stays out of dead meanwhile. Open and Close use
// enter too.
//
// An open handle (Handle.state, under Device.mu):
//
//	        FastPath
//	hOpen ─────────────────► hFast
//	  │   │                    │
//	  │   │ Destroy            │ Close (Destroy leaves it hFast)
//	  │   ▼                    ▼
//	  │  hRevoked ──Close──► hClosed
//	  │                        ▲
//	  └───────── Close ────────┘
//
// Only hOpen carries packets, runs the watcher and keeps a poll
// notification; whoever moves a handle out of hOpen (leaveLocked) closes
// Handle.left, which wakes its blocked readers, and stops the watcher, once.
// Close is the one way to hClosed: it resets the device as an operation in
// flight, clears Device.open and, for a transient device, starts the
// destroy in the same step, so no open comes between.
//
// Lock order: Manager.mu, then Device.mu; renameWatch.mu before Device.mu,
// never with Manager.mu held. No lock is held while waiting
// for a settling unit. Device.stashMu is a leaf, held across non-blocking
// reads of the device's fd so that packets keep their order; no other lock
// is held while calling into the Stack (netlink, the kernel's tun driver),
// listeners or a poll notification.
package driver

// Flags tell the drivers apart.
type Flags uint32

// Driver flags.
const (
	// L2 drivers carry Ethernet frames (IFF_TAP); the others carry IP
	// packets (IFF_TUN).
	L2 Flags = 1 << iota
	// VMNET devices keep their state (up, addresses) on last close.
	VMNET
)

// Driver is one entry of the driver table.
type Driver struct {
	Name  string
	Flags Flags
}

// IsL2 says whether the driver carries Ethernet frames.
func (d *Driver) IsL2() bool { return d.Flags&L2 != 0 }

// The drivers.
var (
	Tun   = &Driver{Name: "tun"}
	Tap   = &Driver{Name: "tap", Flags: L2}
	Vmnet = &Driver{Name: "vmnet", Flags: L2 | VMNET}
	// Drivers is the driver table.
	Drivers = []*Driver{Tun, Tap, Vmnet}
)

// Limits.
const (
	// MaxUnit is FreeBSD's IF_MAXUNIT.
	MaxUnit = 32767
	// MRU is the largest packet a write may carry (TUNMRU, TAPMRU), not
	// counting the 4-byte IFHEAD header.
	MRU = 16384
	// IfNameMax is the longest Linux interface name (IFNAMSIZ-1).
	IfNameMax = 15
	// DefaultDeviceLimit is the default per-jail device limit.
	DefaultDeviceLimit = 256
)
