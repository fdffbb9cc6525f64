package driver

import (
	"net"
	"os"

	"github.com/tundevfs/tundevfs/jails"
)

// Stack is the one thing the driver needs from the operating system: the
// interfaces of a jail's network namespace and the TUN fds behind them.
// The real one is Linux (stack_linux.go: /dev/net/tun, ioctls and netlink
// in the namespace); the driver's unit tests use a fake whose TUN fds are
// socketpairs (stack_fake_test.go), so that they run as an ordinary user.
type Stack interface {
	// Attach opens what the driver needs in jail j's namespace. It is
	// called once per jail, when the jail's first device is made; the
	// driver calls Close when the jail's cloners detach.
	Attach(j *jails.Jail) (Links, error)
}

// Links are the interfaces of one network namespace. Every method may be
// called from any goroutine; none is called with a driver lock held.
type Links interface {
	// Create makes interface name of drv (IFF_TUN or IFF_TAP, never
	// adopting an existing interface: ErrNameTaken) and returns its fd,
	// non-blocking and registered with Go's poller, and its ifindex. A tap
	// or vmnet gets mac and a 12-byte virtio-net header without offloads.
	// Closing the fd removes the interface.
	Create(drv *Driver, name string, mac net.HardwareAddr) (*os.File, int, error)
	// Link describes the interface with ifindex index.
	Link(index int) (Link, error)
	// LinkByName describes the interface called name (not an altname).
	LinkByName(name string) (Link, error)
	// SetUp brings the interface up.
	SetUp(index int) error
	// DownAndPurge brings the interface down and removes its addresses
	// (tunclose()'s if_down() and in_control purges).
	DownAndPurge(index int) error
	// SetMTU sets the interface's MTU.
	SetMTU(index, mtu int) error
	// SetMulticast switches IFF_MULTICAST.
	SetMulticast(index int, on bool) error
	// SetFlags sets the interface flags in mask of interface name to those
	// in value (IFF_DEBUG, IFF_NOTRAILERS, IFF_NOARP, IFF_UP).
	SetFlags(name string, mask, value int) error
	// SetOffload offers the kernel the offloads a virtio-net header
	// describes (checksum, TSO), or none, on fd, a tap's fd.
	SetOffload(fd int, on bool) error
	// Delete unregisters the interface (RTM_DELLINK) even while a TUN fd
	// of it is still open elsewhere.
	Delete(index int) error
	// Watch reports the interface events of the namespace to ev, from one
	// goroutine, until stop returns.
	Watch(ev LinkEvents) (stop func(), err error)
	// Close releases the namespace. No other method is called after it.
	Close() error
}

// LinkEvents receive what Links.Watch sees (rename.go).
type LinkEvents interface {
	// Renamed: interface index appeared or changed; name is its name.
	Renamed(index int, name string)
	// Resync: events were lost; every name must be read again.
	Resync()
	// Failed: the watch ended on err.
	Failed(err error)
}

// Link is what the driver reads of an interface.
type Link struct {
	Index        int
	Name         string
	MTU          int
	Up           bool // administratively up (net.FlagUp)
	HardwareAddr net.HardwareAddr
}
