package driver

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// linkEvents records what readLinkEvents reports.
type linkEvents struct {
	mu      sync.Mutex
	renames []string
	resyncs int
	err     error
}

func (r *linkEvents) Renamed(index int, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.renames = append(r.renames, name+"@"+string(rune('0'+index)))
}

func (r *linkEvents) Resync() { r.mu.Lock(); r.resyncs++; r.mu.Unlock() }

func (r *linkEvents) Failed(err error) { r.mu.Lock(); r.err = err; r.mu.Unlock() }

// linkMessage is a netlink message of type typ about interface index
// called name (no IFLA_IFNAME if name is "").
func linkMessage(typ uint16, index int32, name string) []byte {
	body := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(body[4:8], uint32(index))
	if name != "" {
		alen := unix.SizeofRtAttr + len(name) + 1
		attr := make([]byte, (alen+3)&^3)
		binary.NativeEndian.PutUint16(attr[0:2], uint16(alen))
		binary.NativeEndian.PutUint16(attr[2:4], unix.IFLA_IFNAME)
		copy(attr[4:], name)
		body = append(body, attr...)
	}
	hdr := make([]byte, unix.SizeofNlMsghdr)
	binary.NativeEndian.PutUint32(hdr[0:4], uint32(len(hdr)+len(body)))
	binary.NativeEndian.PutUint16(hdr[4:6], typ)
	return append(hdr, body...)
}

// TestReadLinkEvents feeds the rename reader netlink messages through a
// socketpair: RTM_NEWLINK with a name is a rename, anything else is
// ignored, and closing the socket ends it.
func TestReadLinkEvents(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	f := os.NewFile(uintptr(fds[0]), "fake-netlink")
	ev := new(linkEvents)
	done := make(chan struct{})
	go func() {
		defer close(done)
		readLinkEvents(f, ev)
	}()
	for _, msg := range [][]byte{
		linkMessage(unix.RTM_NEWLINK, 3, "foo"),
		linkMessage(unix.RTM_DELLINK, 4, "bar"),
		linkMessage(unix.RTM_NEWLINK, 5, ""),
		linkMessage(unix.RTM_NEWLINK, 6, "baz")[:unix.SizeofNlMsghdr+4], // cut short
		{1, 2, 3},
		append(linkMessage(unix.RTM_NEWLINK, 7, "qux"), linkMessage(unix.RTM_NEWLINK, 8, "quux")...),
	} {
		if _, err := unix.Write(fds[1], msg); err != nil {
			t.Fatal(err)
		}
	}
	if !waitUntil(func() bool { ev.mu.Lock(); defer ev.mu.Unlock(); return len(ev.renames) == 3 }) {
		t.Fatalf("renames %v", ev.renames)
	}
	f.Close()
	<-done
	if got := ev.renames; got[0] != "foo@3" || got[1] != "qux@7" || got[2] != "quux@8" {
		t.Fatalf("renames %v", got)
	}
	if ev.err != nil || ev.resyncs != 0 {
		t.Fatalf("err %v resyncs %d", ev.err, ev.resyncs)
	}
}

// TestLinuxLinksUnprivileged runs what the real stack can do as any user
// in the process's own namespace: describe interfaces and report refusals
// with their operation.
func TestLinuxLinksUnprivileged(t *testing.T) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	l := &linuxLinks{nl: h, jail: "test"}
	defer l.Close()
	lo, err := l.LinkByName("lo")
	if err != nil || lo.Name != "lo" || lo.Index < 1 || lo.MTU == 0 {
		t.Fatalf("LinkByName(lo) = %+v, %v", lo, err)
	}
	byIndex, err := l.Link(lo.Index)
	if err != nil || byIndex.Name != "lo" || byIndex.Up != lo.Up {
		t.Fatalf("Link(%d) = %+v, %v", lo.Index, byIndex, err)
	}
	if _, err := l.Link(1 << 30); err == nil {
		t.Fatal("Link of no interface")
	}
	if _, err := l.LinkByName("nosuchlink0"); err == nil {
		t.Fatal("LinkByName of no interface")
	}
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	if idx, err := ifIndex(s, "lo"); err != nil || idx != lo.Index {
		t.Fatalf("ifIndex(lo) = %d, %v", idx, err)
	}
	if _, err := ifIndex(s, "nosuchlink0"); err == nil {
		t.Fatal("ifIndex of no interface")
	}
	if _, err := ifIndex(s, "a-name-far-too-long-for-linux"); err == nil {
		t.Fatal("ifIndex of a bad name")
	}
	if err := setHwaddr(s, "a-name-far-too-long-for-linux", net.HardwareAddr{2, 0, 0, 0, 0, 1}); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("setHwaddr of a bad name: %v", err)
	}
	// Changes to an interface that does not exist fail, root or not.
	const none = 1 << 30
	for name, fn := range map[string]func() error{
		"SetUp":         func() error { return l.SetUp(none) },
		"DownAndPurge":  func() error { return l.DownAndPurge(none) },
		"SetMTU":        func() error { return l.SetMTU(none, 1400) },
		"SetMulticast":  func() error { return l.SetMulticast(none, true) },
		"Multicast off": func() error { return l.SetMulticast(none, false) },
		"SetOffload":    func() error { return l.SetOffload(s, true) },
		"no offload":    func() error { return setTapOffload(s, false) },
	} {
		if err := fn(); err == nil {
			t.Errorf("%s of no interface succeeded", name)
		}
	}
	// Deleting an interface that is gone already is no error (a root's
	// request reaches the lookup; an ordinary user's is refused first).
	if err := l.Delete(none); os.Geteuid() == 0 && err != nil {
		t.Errorf("Delete of no interface: %v", err)
	}
}
