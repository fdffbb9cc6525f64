package bench

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/internal/itest"
)

// deviceDir is a tundevfs mount and the way to destroy what was cloned
// there (closing a tundevfs device does not destroy it).
type deviceDir struct {
	dir     string
	destroy func(name string) error
}

// Path is one way to reach a device. The suite measures every path on the
// same packets; the first is the reference the ratios are taken against.
type Path struct {
	Name string
	open func(ns *Netns, dd deviceDir, l2 bool, idx int) (*Endpoint, error)
	// Batch paths are no column of the table: they are measured on
	// inject and extract only, in rows of their own ("(batch)") against
	// the reference.
	Batch bool
}

// paths are the ways to a device, the reference first. The paths that are
// not Batch are the columns of the table.
func paths() []Path {
	return []Path{
		{Name: "direct", open: openDirect},
		{Name: "tundevfs", open: openTundevfs},
		{Name: "batch", open: openBatch, Batch: true},
	}
}

// columns are the paths that are columns of the table, the reference first.
func columns() []Path {
	var out []Path
	for _, p := range paths() {
		if !p.Batch {
			out = append(out, p)
		}
	}
	return out
}

// Endpoint is an open, configured device: the interface has local address
// 10.77.idx.1, a peer (tun) or a static neighbour (tap) at 10.77.idx.2,
// and its traffic uses UDP port 9000+idx.
type Endpoint struct {
	Path                string
	Name                string // the interface
	L2                  bool
	Fd                  int // blocking
	Local, Remote       netip.Addr
	LocalMAC, RemoteMAC [6]byte
	Port                uint16
	ID                  uint16 // ICMP echo identifier
	ns                  *Netns
	close               func() error

	// writeBatch and readBatch, when set, move several packets in one
	// call (TUNSBATCH). Nil: one write(2) or read(2) per packet.
	// readBatch may point bufs[i] into a buffer of its own, valid until
	// the next read.
	writeBatch func(pkts [][]byte) (int, error)
	readBatch  func(bufs [][]byte, sizes []int) (int, error)
	// batch is how many packets a write or read moves at most: 1 without
	// writeBatch and readBatch.
	batch int
}

// Close closes the device and destroys its interface.
func (e *Endpoint) Close() error { return e.close() }

// write writes pkts, one packet per write(2) unless the path batches, and
// returns how many were written.
func (e *Endpoint) write(pkts [][]byte) (int, error) {
	if e.writeBatch != nil {
		return e.writeBatch(pkts)
	}
	for i, p := range pkts {
		if _, err := unix.Write(e.Fd, p); err != nil {
			return i, fmt.Errorf("write %s: %w", e.Name, err)
		}
	}
	return len(pkts), nil
}

// read reads packets into bufs, one read(2) unless the path batches, and
// returns how many it read; sizes gets their lengths.
func (e *Endpoint) read(bufs [][]byte, sizes []int) (int, error) {
	if e.readBatch != nil {
		return e.readBatch(bufs, sizes)
	}
	n, err := readRetry(e.Fd, bufs[0])
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", e.Name, err)
	}
	sizes[0] = n
	return 1, nil
}

// readRetry is read(2), again after EINTR. A FUSE read that a signal
// interrupts while it waits for a packet fails with EINTR even under
// SA_RESTART (the daemon answers the interrupt), where a read of a TUN fd
// would be restarted; Go's os.File retries the same way.
func readRetry(fd int, buf []byte) (int, error) {
	for {
		n, err := unix.Read(fd, buf)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// openDirect opens a TUN/TAP fd the way the daemon does (TUNSETIFF,
// IFF_NO_PI) but in the suite's own process, as an application without
// tundevfs would.
func openDirect(ns *Netns, _ deviceDir, l2 bool, idx int) (*Endpoint, error) {
	name := fmt.Sprintf("dtun%d", idx)
	if l2 {
		name = fmt.Sprintf("dtap%d", idx)
	}
	fd, err := rawTun(ns, name, l2, false)
	if err != nil {
		return nil, err
	}
	e := newEndpoint(ns, "direct", name, fd, l2, idx)
	e.close = func() error { return unix.Close(fd) }
	if err := e.configure(); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// rawTun opens /dev/net/tun in ns and attaches it to a new interface name.
func rawTun(ns *Netns, name string, l2, nonblock bool) (int, error) {
	fd := -1
	err := ns.Do(func() error {
		flags := unix.O_RDWR | unix.O_CLOEXEC
		if nonblock {
			flags |= unix.O_NONBLOCK
		}
		var err error
		fd, err = unix.Open("/dev/net/tun", flags, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		return tunSetIff(fd, name, l2)
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, err
	}
	return fd, nil
}

// tunSetIff attaches fd to a new interface (TUNSETIFF with IFF_TUN_EXCL).
func tunSetIff(fd int, name string, l2 bool) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("tunsetiff %s: %w", name, err)
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_TUN_EXCL)
	if l2 {
		flags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_TUN_EXCL
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return fmt.Errorf("tunsetiff %s: %w", name, err)
	}
	return nil
}

// openTundevfs clones a device by opening DIR/tun (or tap).
func openTundevfs(ns *Netns, dd deviceDir, l2 bool, idx int) (*Endpoint, error) {
	drv := "tun"
	if l2 {
		drv = "tap"
	}
	fd, err := unix.Open(filepath.Join(dd.dir, drv), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("clone %s: %w", drv, err)
	}
	name, err := fdDevName(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	e := newEndpoint(ns, "tundevfs", name, fd, l2, idx)
	e.close = func() error {
		return errors.Join(unix.Close(fd), dd.destroy(name))
	}
	if err := e.configure(); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// fdDevName tells which unit an open of a cloning name got.
func fdDevName(fd int) (string, error) {
	p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", fmt.Errorf("device name: %w", err)
	}
	return filepath.Base(p), nil
}

func newEndpoint(ns *Netns, path, name string, fd int, l2 bool, idx int) *Endpoint {
	b := byte(idx)
	return &Endpoint{
		Path: path, Name: name, L2: l2, Fd: fd, ns: ns,
		Local:     netip.AddrFrom4([4]byte{10, 77, b, 1}),
		Remote:    netip.AddrFrom4([4]byte{10, 77, b, 2}),
		LocalMAC:  [6]byte{0x02, 0, 0, 0, b, 1},
		RemoteMAC: [6]byte{0x02, 0, 0, 0, b, 2},
		Port:      9000 + uint16(idx),
		ID:        0x4200 + uint16(idx),
		batch:     1,
	}
}

// configure gives the interface its addresses and brings it up.
func (e *Endpoint) configure() error {
	var cmds [][]string
	if e.L2 {
		cmds = [][]string{
			{"link", "set", e.Name, "address", macString(e.LocalMAC)},
			{"addr", "add", e.Local.String() + "/24", "dev", e.Name},
			{"neigh", "replace", e.Remote.String(), "lladdr", macString(e.RemoteMAC), "dev", e.Name, "nud", "permanent"},
		}
	} else {
		cmds = [][]string{{"addr", "add", e.Local.String(), "peer", e.Remote.String(), "dev", e.Name}}
	}
	cmds = append(cmds, []string{"link", "set", e.Name, "up"})
	for _, c := range cmds {
		if _, err := e.ns.Run("ip", c...); err != nil {
			return fmt.Errorf("configure %s: %w", e.Name, err)
		}
	}
	return nil
}

func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// Header sizes of what crosses the device.
const (
	ipUDPHeader = 28
	etherHeader = 14
)

// udpIn is a packet of size bytes (as written to the device) carrying a
// UDP datagram from the remote to local:Port.
func (e *Endpoint) udpIn(size int) []byte {
	pkt := itest.UDP4(e.Remote, e.Local, 40000, e.Port, make([]byte, e.payloadLen(size)))
	if e.L2 {
		pkt = itest.Ether(e.LocalMAC, e.RemoteMAC, pkt)
	}
	return pkt
}

// payloadLen is the UDP or ICMP payload that makes a packet of size bytes
// on the device.
func (e *Endpoint) payloadLen(size int) int {
	n := size - ipUDPHeader
	if e.L2 {
		n -= etherHeader
	}
	return max(n, 0)
}

// echo is an ICMP echo request of size bytes from the remote to local.
func (e *Endpoint) echo(size int, seq uint16) []byte {
	pkt := itest.ICMPEcho(e.Remote, e.Local, e.ID, seq, make([]byte, e.payloadLen(size)))
	if e.L2 {
		pkt = itest.Ether(e.LocalMAC, e.RemoteMAC, pkt)
	}
	return pkt
}

// isEchoReply says whether p, read from the device, answers echo seq.
func (e *Endpoint) isEchoReply(p []byte, seq uint16) bool {
	if e.L2 {
		if len(p) < etherHeader || p[12] != 0x08 || p[13] != 0x00 {
			return false
		}
		p = p[etherHeader:]
	}
	return itest.IsEchoReply(p, e.ID, seq)
}

// udpOutPayload returns the payload of p, read from the device, if it is a
// datagram the suite sent to the remote's Port, else nil.
func (e *Endpoint) udpOutPayload(p []byte) []byte {
	if e.L2 {
		return itest.FrameUDPPayload(p, e.Port)
	}
	return itest.UDPPayload(p, e.Port)
}

// udpSocket opens a UDP socket in ns, bound to bind if valid and connected
// to conn if valid, with the given buffer sizes (0: the default) and
// receive timeout (0: none).
func (ns *Netns) udpSocket(bind, conn netip.AddrPort, rcvbuf, sndbuf int, rcvtimeo int64) (int, error) {
	fd := -1
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("udp socket: %w", err)
		}
		if rcvbuf > 0 {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err != nil {
				return fmt.Errorf("udp socket: SO_RCVBUFFORCE: %w", err)
			}
		}
		if rcvbuf < 0 {
			// The smallest buffer: datagrams nobody reads are
			// dropped at once.
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 0)
		}
		if sndbuf > 0 {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sndbuf); err != nil {
				return fmt.Errorf("udp socket: SO_SNDBUFFORCE: %w", err)
			}
		}
		if rcvtimeo > 0 {
			tv := unix.NsecToTimeval(rcvtimeo)
			if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
				return fmt.Errorf("udp socket: SO_RCVTIMEO: %w", err)
			}
		}
		if bind.IsValid() {
			if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: bind.Addr().As4(), Port: int(bind.Port())}); err != nil {
				return fmt.Errorf("udp socket: bind %s: %w", bind, err)
			}
		}
		if conn.IsValid() {
			if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: conn.Addr().As4(), Port: int(conn.Port())}); err != nil {
				return fmt.Errorf("udp socket: connect %s: %w", conn, err)
			}
		}
		return nil
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, err
	}
	return fd, nil
}

// reflect turns p, a datagram read from the device on its way to the
// remote's Port, into the remote's answer: addresses (and for a tap the
// MAC addresses) and ports swapped, in place. The checksums stay valid,
// as swapping terms does not change a one's-complement sum. It reports
// false, leaving p alone, for anything else.
func (e *Endpoint) reflect(p []byte) bool {
	if e.udpOutPayload(p) == nil {
		return false
	}
	if e.L2 {
		var mac [6]byte
		copy(mac[:], p[0:6])
		copy(p[0:6], p[6:12])
		copy(p[6:12], mac[:])
		p = p[etherHeader:]
	}
	ihl := int(p[0]&0xf) * 4
	for i := range 4 {
		p[12+i], p[16+i] = p[16+i], p[12+i]
	}
	for i := range 2 {
		p[ihl+i], p[ihl+2+i] = p[ihl+2+i], p[ihl+i]
	}
	return true
}
