package fs_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tundevfs/tundevfs/internal/testenv"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/driver"
	"github.com/tundevfs/tundevfs/internal/itest"
	"github.com/tundevfs/tundevfs/ioctls"
)

// ipLink is what `ip -d -j link show` says about an interface.
type ipLink struct {
	Name    string   `json:"ifname"`
	Flags   []string `json:"flags"`
	MTU     int      `json:"mtu"`
	Address string   `json:"address"`
}

// link returns the real interface called name, or false if there is none.
func (e *env) link(t *testing.T, name string) (ipLink, bool) {
	t.Helper()
	out, err := e.ns.Command("ip", "-d", "-j", "link", "show", "dev", name).Output()
	if err != nil {
		return ipLink{}, false
	}
	var ls []ipLink
	if err := json.Unmarshal(out, &ls); err != nil || len(ls) != 1 {
		t.Fatalf("ip -j link show %s: %v: %s", name, err, out)
	}
	return ls[0], true
}

func (e *env) mustLink(t *testing.T, name string) ipLink {
	t.Helper()
	l, ok := e.link(t, name)
	if !ok {
		t.Fatalf("interface %s does not exist", name)
	}
	return l
}

// listed reports whether readdir of the mount lists name.
func (e *env) listed(t *testing.T, name string) bool {
	t.Helper()
	ents, err := os.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(ents, func(de os.DirEntry) bool { return de.Name() == name })
}

// device returns the status of the device whose interface is called name.
func (e *env) device(t *testing.T, name string) driver.Info {
	t.Helper()
	for _, d := range e.d.Status(t).Devices {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no device %s in status", name)
	return driver.Info{}
}

// expect runs one request and checks its answer.
func expect(t *testing.T, c client, name, value, want string, wantErr unix.Errno) {
	t.Helper()
	got, e := c.ioctl(t, name, value)
	if e != wantErr || (e == 0 && got != want) {
		t.Fatalf("%s %s = %q, %v; want %q, %v", name, value, got, e, want, wantErr)
	}
}

func ok(t *testing.T, c client, name, value string) {
	t.Helper()
	expect(t, c, name, value, "", 0)
}

// udp6Socket opens a UDP socket bound to [addr]:port inside the namespace.
func (e *env) udp6Socket(t *testing.T, addr string, port int) int {
	t.Helper()
	var fd int
	e.ns.Do(t, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		sa := &unix.SockaddrInet6{Port: port, Addr: netip.MustParseAddr(addr).As16()}
		return unix.Bind(fd, sa)
	})
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.Timeval{Sec: 10}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return fd
}

func recvPayload(t *testing.T, s int) []byte {
	t.Helper()
	buf := make([]byte, 2048)
	n, _, err := testenv.Recvfrom(s, buf)
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return buf[:n]
}

// udp6 builds an IPv6/UDP packet with its (mandatory) checksum.
func udp6(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	p := make([]byte, 48+len(payload))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(8+len(payload)))
	p[6], p[7] = 17, 64
	s, d := src.As16(), dst.As16()
	copy(p[8:24], s[:])
	copy(p[24:40], d[:])
	u := p[40:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	sum := itest.Checksum(0, p[8:40])
	sum = itest.Checksum(sum, []byte{0, 0, byte(len(u) >> 8), byte(len(u)), 0, 0, 0, 17})
	binary.BigEndian.PutUint16(u[6:], ^uint16(itest.Checksum(sum, u)))
	return p
}

// udp4PseudoSum is the folded pseudo-header sum of an IPv4/UDP packet: what
// a sender leaves in the checksum field when it asks for checksum offload.
func udp4PseudoSum(p []byte) uint16 {
	ulen := len(p) - 20
	return uint16(itest.Checksum(itest.Checksum(0, p[12:20]), []byte{0, 17, byte(ulen >> 8), byte(ulen)}))
}

// udp4ChecksumOK verifies the UDP checksum of an IPv4 packet.
func udp4ChecksumOK(p []byte) bool {
	if binary.BigEndian.Uint16(p[26:]) == 0 {
		return true
	}
	return itest.Checksum(uint32(udp4PseudoSum(p)), p[20:]) == 0xffff
}

func udp6Payload(p []byte, dport uint16) []byte {
	if len(p) < 48 || p[0]>>4 != 6 || p[6] != 17 || binary.BigEndian.Uint16(p[42:]) != dport {
		return nil
	}
	return p[48:]
}

// readMatching reads packets until match accepts one.
func readMatching(t *testing.T, c client, what string, match func([]byte) bool) []byte {
	t.Helper()
	for i := 0; i < 50; i++ {
		if p := c.read(t); match(p) {
			return p
		}
	}
	t.Fatalf("no %s among 50 packets read", what)
	return nil
}

func family(p []byte) uint32 { return binary.BigEndian.Uint32(p) }

func withFamily(af uint32, p []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, af), p...)
}

// TestIoctlSurface runs every ioctl of the published table against a real
// mount through each client, and checks what it did to the real Linux
// interface and to the packets.
func TestIoctlSurface(t *testing.T) {
	for _, cl := range []string{"c", "go", "shell"} {
		t.Run(cl, func(t *testing.T) {
			e := newEnv(t)
			newClient := clients(t)[cl]
			itest.WarmUp(t, e.dir)
			base := e.d.Baseline(t)
			tunSurface(t, e, newClient(t, filepath.Join(e.dir, "tun")), cl, 1)
			tapSurface(t, e, newClient(t, filepath.Join(e.dir, "tap")), 2)
			// Both were transient: nothing is left.
			after := settle(t, e.d)
			if after.UnitsInUse != 0 {
				t.Errorf("units in use: %d", after.UnitsInUse)
			}
			base.Check(t, "after the ioctl surface")
			if links := e.ns.Links(t); !slices.Equal(links, []string{"lo"}) {
				t.Errorf("interfaces left: %v", links)
			}
		})
	}
}

func tunSurface(t *testing.T, e *env, c client, cl string, subnet int) {
	name, _ := c.ioctl(t, "TUNGIFNAME", "")
	if name != "tun0" || !e.listed(t, name) {
		t.Fatalf("TUNGIFNAME = %q, want tun0", name)
	}
	// TUNSIFINFO sets the real MTU; TUNGIFINFO reads it back.
	ok(t, c, "TUNSIFINFO", "mtu=1400,type=23,baudrate=9600")
	if l := e.mustLink(t, name); l.MTU != 1400 {
		t.Fatalf("TUNSIFINFO mtu=1400: interface has mtu %d", l.MTU)
	}
	expect(t, c, "TUNGIFINFO", "", "mtu=1400 type=23 baudrate=9600", 0)
	e.ns.Run(t, "ip", "link", "set", name, "mtu", "1300")
	expect(t, c, "TUNGIFINFO", "", "mtu=1300 type=23 baudrate=9600", 0)
	expect(t, c, "TUNSIFINFO", "mtu=1400,type=6,baudrate=0", "", unix.EPROTOTYPE)
	expect(t, c, "TUNSIFINFO", "mtu=50,type=23,baudrate=0", "", unix.EINVAL)
	if l := e.mustLink(t, name); l.MTU != 1300 {
		t.Fatalf("refused TUNSIFINFO changed the mtu to %d", l.MTU)
	}

	// TUNSIFMODE: Linux values; multicast follows; EINVAL, EBUSY when up.
	ok(t, c, "TUNSIFMODE", fmt.Sprint(unix.IFF_BROADCAST))
	if l := e.mustLink(t, name); slices.Contains(l.Flags, "MULTICAST") {
		t.Fatalf("TUNSIFMODE broadcast kept MULTICAST: %v", l.Flags)
	}
	ok(t, c, "TUNSIFMODE", fmt.Sprint(unix.IFF_POINTOPOINT|unix.IFF_MULTICAST))
	if l := e.mustLink(t, name); !slices.Contains(l.Flags, "MULTICAST") {
		t.Fatalf("TUNSIFMODE pointopoint|multicast: flags %v", l.Flags)
	}
	expect(t, c, "TUNSIFMODE", fmt.Sprint(unix.IFF_POINTOPOINT|unix.IFF_BROADCAST), "", unix.EINVAL)
	e.ns.Run(t, "ip", "link", "set", name, "up")
	expect(t, c, "TUNSIFMODE", fmt.Sprint(unix.IFF_POINTOPOINT), "", unix.EBUSY)
	e.ns.Run(t, "ip", "link", "set", name, "down")

	// Debug level, one for the whole driver.
	ok(t, c, "TUNSDEBUG", "3")
	expect(t, c, "TUNGDEBUG", "", "3", 0)
	ok(t, c, "TUNSDEBUG", "0")

	// TUNSIFPID makes the caller the owner.
	opener := c.pid(t)
	ok(t, c, "TUNSIFPID", "")
	owner := e.device(t, name).OpenPid
	if cl == "shell" {
		// The request came from a tundevfs child, not from the shell.
		if owner == opener || owner == 0 {
			t.Fatalf("TUNSIFPID from a child of the opener: owner %d, opener %d", owner, opener)
		}
	} else if owner != opener {
		t.Fatalf("TUNSIFPID: owner %d, want %d", owner, opener)
	}

	// IFHEAD and link-layer mode exclude each other.
	expect(t, c, "TUNGIFHEAD", "", "0", 0)
	ok(t, c, "TUNSIFHEAD", "1")
	expect(t, c, "TUNGIFHEAD", "", "1", 0)
	ok(t, c, "TUNSLMODE", "1")
	expect(t, c, "TUNGIFHEAD", "", "0", 0)
	ok(t, c, "TUNSIFHEAD", "1")
	if m := e.device(t, name).Modes; !slices.Contains(m, "ifhead") || slices.Contains(m, "lmode") {
		t.Fatalf("modes after TUNSIFHEAD: %v", m)
	}

	// Batch mode switches on and off (its data path: batch_linux_test.go).
	ok(t, c, "TUNSBATCH", "1")
	ok(t, c, "TUNSBATCH", "0")

	// Requests of the other driver: ENOTTY.
	for _, req := range []struct{ name, value string }{
		{"TAPSVNETHDR", "12"}, {"TAPGVNETHDR", ""}, {"TAPGIFADDR", ""},
		{"TAPSIFADDR", "02:00:00:00:00:09"}, {"VMIO_SIOCSIFFLAGS", "1"},
	} {
		expect(t, c, req.name, req.value, "", unix.ENOTTY)
	}
	rawRequests(t, c)

	ifheadPackets(t, e, c, name, subnet)

	// Transient: the last close destroys the device.
	ok(t, c, "TUNSTRANSIENT", "1")
	if m := e.device(t, name).Modes; !slices.Contains(m, "transient") {
		t.Fatalf("modes after TUNSTRANSIENT: %v", m)
	}
	c.close(t)
	waitGone(t, e, name)
}

// rawRequests sends numbers the table does not have.
func rawRequests(t *testing.T, c client) {
	freebsdTUNSIFHEAD := uint32(0x80000000 | ioctls.SizeofInt<<16 | 't'<<8 | 96)
	for _, r := range []struct {
		what string
		req  uint32
		want unix.Errno
	}{
		{"TUNSIFHEAD with a long", ioctls.IOW('t', 96, 8), unix.EINVAL},
		{"TUNGIFINFO with a short struct", ioctls.IOR('t', 92, 6), unix.EINVAL},
		{"TUNGIFNAME of a 32-bit caller", ioctls.IOR('t', 93, 32), 0},
		{"an unknown 't' request", ioctls.IOW('t', 120, 4), unix.ENOTTY},
		{"another group", ioctls.IOR('x', 1, 4), unix.ENOTTY},
		{"FreeBSD's own TUNSIFHEAD", freebsdTUNSIFHEAD, unix.ENOTTY},
		// What FUSE leaves no way to serve (README, "FUSE limits").
		{"FIOSETOWN", 0x8901, unix.ENOTTY}, // <asm-generic/sockios.h>
		{"TIOCSPGRP", unix.TIOCSPGRP, unix.ENOTTY},
	} {
		got, can := c.raw(t, r.req)
		if can && got != r.want {
			t.Errorf("%s (%#x) = %v, want %v", r.what, r.req, got, r.want)
		}
	}
}

// ifheadPackets carries IPv4 and IPv6 both ways in IFHEAD mode, then checks
// that without IFHEAD only IPv4 is carried, and link-layer mode's header.
func ifheadPackets(t *testing.T, e *env, c client, name string, subnet int) {
	local4, remote4 := fmt.Sprintf("10.9.%d.1", subnet), fmt.Sprintf("10.9.%d.2", subnet)
	local6, remote6 := fmt.Sprintf("fd00:9:%d::1", subnet), fmt.Sprintf("fd00:9:%d::2", subnet)
	e.ns.Run(t, "ip", "addr", "add", local4, "peer", remote4, "dev", name)
	e.ns.Run(t, "ip", "-6", "addr", "add", local6+"/64", "dev", name, "nodad")
	e.ns.Run(t, "ip", "link", "set", name, "up")
	// IPv6 delivers to local6 only once the kernel's address
	// configuration work has run (also with nodad), which a busy machine
	// (interfaces coming and going in other tests' namespaces) can delay
	// for seconds.
	if !itest.WaitFor(func() bool {
		return strings.TrimSpace(e.ns.Run(t, "ip", "-6", "route", "show", "table", "local", local6)) != ""
	}) {
		t.Fatalf("no local route to %s 10s after the address was added", local6)
	}
	s4 := e.udpSocket(t, local4, 5000)
	s6 := e.udp6Socket(t, local6, 5000)

	// Device to kernel, the family first.
	p4 := itest.UDP4(netip.MustParseAddr(remote4), netip.MustParseAddr(local4), 40000, 5000, []byte("ifhead v4"))
	if errno, can := c.write(t, withFamily(unix.AF_INET, p4)); can && errno != 0 {
		t.Fatalf("IFHEAD write of IPv4: %v", errno)
	}
	if got := recvPayload(t, s4); string(got) != "ifhead v4" {
		t.Fatalf("IPv4 socket got %q", got)
	}
	p6 := udp6(netip.MustParseAddr(remote6), netip.MustParseAddr(local6), 40000, 5000, []byte("ifhead v6"))
	if errno, can := c.write(t, withFamily(unix.AF_INET6, p6)); can && errno != 0 {
		t.Fatalf("IFHEAD write of IPv6: %v", errno)
	}
	if got := recvPayload(t, s6); string(got) != "ifhead v6" {
		t.Fatalf("IPv6 socket got %q", got)
	}
	// An unknown family, a write too short for one, the MRU plus 4.
	if errno, can := c.write(t, withFamily(99, p4)); can && errno != unix.EAFNOSUPPORT {
		t.Fatalf("IFHEAD write of family 99: %v, want EAFNOSUPPORT", errno)
	}
	if errno, can := c.write(t, []byte{0, 0}); can && errno != unix.ENOBUFS {
		t.Fatalf("IFHEAD write of 2 bytes: %v, want ENOBUFS", errno)
	}
	big := withFamily(unix.AF_INET, itest.UDP4(netip.MustParseAddr(remote4), netip.MustParseAddr(local4),
		40000, 5999, make([]byte, ioctls.TUNMRU-28)))
	if errno, can := c.write(t, big); can && errno != 0 {
		t.Fatalf("IFHEAD write of TUNMRU+4 bytes: %v, want it accepted", errno)
	}
	if errno, can := c.write(t, append(big, 0)); can && errno != unix.EIO {
		t.Fatalf("IFHEAD write of TUNMRU+5 bytes: %v, want EIO", errno)
	}

	// Kernel to device, the family first.
	sendTo(t, s4, remote4, 6000, []byte("to v4"))
	readMatching(t, c, "IPv4 packet with AF_INET", func(p []byte) bool {
		return len(p) > 4 && family(p) == unix.AF_INET && string(itest.UDPPayload(p[4:], 6000)) == "to v4"
	})
	sa6 := &unix.SockaddrInet6{Port: 6000, Addr: netip.MustParseAddr(remote6).As16()}
	if err := unix.Sendto(s6, []byte("to v6"), 0, sa6); err != nil {
		t.Fatal(err)
	}
	readMatching(t, c, "IPv6 packet with AF_INET6", func(p []byte) bool {
		return len(p) > 4 && family(p) == unix.AF_INET6 && string(udp6Payload(p[4:], 6000)) == "to v6"
	})

	// Without IFHEAD: no header, and IPv6 is not carried.
	ok(t, c, "TUNSIFHEAD", "0")
	if err := unix.Sendto(s6, []byte("dropped v6"), 0, sa6); err != nil {
		t.Fatal(err)
	}
	sendTo(t, s4, remote4, 6000, []byte("plain v4"))
	readMatching(t, c, "plain IPv4 packet", func(p []byte) bool {
		if p[0]>>4 != 4 {
			t.Fatalf("without IFHEAD the reader got a packet of IP version %d", p[0]>>4)
		}
		return string(itest.UDPPayload(p, 6000)) == "plain v4"
	})

	// Link-layer mode: a struct sockaddr_in of the destination first.
	ok(t, c, "TUNSLMODE", "1")
	sendTo(t, s4, remote4, 6000, []byte("lmode v4"))
	p := readMatching(t, c, "IPv4 packet behind a sockaddr_in", func(p []byte) bool {
		return len(p) > 16 && string(itest.UDPPayload(p[16:], 6000)) == "lmode v4"
	})
	dst := netip.MustParseAddr(remote4).As4()
	if binary.NativeEndian.Uint16(p[0:]) != unix.AF_INET || !bytes.Equal(p[4:8], dst[:]) {
		t.Fatalf("TUNSLMODE header % x, want AF_INET and %s", p[:16], remote4)
	}
	ok(t, c, "TUNSLMODE", "0")
}

func tapSurface(t *testing.T, e *env, c client, subnet int) {
	name, _ := c.ioctl(t, "TAPGIFNAME", "")
	if name != "tap0" {
		t.Fatalf("TAPGIFNAME = %q, want tap0", name)
	}
	expect(t, c, "TAPGIFINFO", "", "mtu=1500 type=6 baudrate=0", 0)
	ok(t, c, "TAPSIFINFO", "mtu=9000,type=6,baudrate=0")
	if l := e.mustLink(t, name); l.MTU != 9000 {
		t.Fatalf("TAPSIFINFO mtu=9000: interface has mtu %d", l.MTU)
	}
	expect(t, c, "TAPSIFINFO", "mtu=9000,type=23,baudrate=0", "", unix.EPROTOTYPE)
	ok(t, c, "TAPSIFINFO", "mtu=1500,type=6,baudrate=0")

	// The remote MAC starts as the interface's own.
	l := e.mustLink(t, name)
	expect(t, c, "TAPGIFADDR", "", l.Address, 0)
	ok(t, c, "TAPSIFADDR", "02:11:22:33:44:55")
	expect(t, c, "TAPGIFADDR", "", "02:11:22:33:44:55", 0)

	// VMIO_SIOCSIFFLAGS: up forced, noarp applied, promisc not changeable.
	ok(t, c, "VMIO_SIOCSIFFLAGS", fmt.Sprint(unix.IFF_NOARP|unix.IFF_PROMISC))
	l = e.mustLink(t, name)
	if !slices.Contains(l.Flags, "UP") || !slices.Contains(l.Flags, "NOARP") || slices.Contains(l.Flags, "PROMISC") {
		t.Fatalf("VMIO_SIOCSIFFLAGS noarp|promisc: flags %v, want UP and NOARP, no PROMISC", l.Flags)
	}
	ok(t, c, "VMIO_SIOCSIFFLAGS", "0")
	if l = e.mustLink(t, name); slices.Contains(l.Flags, "NOARP") || !slices.Contains(l.Flags, "UP") {
		t.Fatalf("VMIO_SIOCSIFFLAGS 0: flags %v, want UP without NOARP", l.Flags)
	}

	// Requests of tun only: ENOTTY.
	for _, req := range []struct{ name, value string }{
		{"TUNSIFHEAD", "1"}, {"TUNGIFHEAD", ""}, {"TUNSLMODE", "1"}, {"TUNSIFMODE", "2"}, {"TUNSIFPID", ""},
	} {
		expect(t, c, req.name, req.value, "", unix.ENOTTY)
	}

	// The virtio-net header: 0, 10 or 12.
	expect(t, c, "TAPGVNETHDR", "", "0", 0)
	expect(t, c, "TAPSVNETHDR", "11", "", unix.EINVAL)
	ok(t, c, "TAPSVNETHDR", "12")
	expect(t, c, "TAPGVNETHDR", "", "12", 0)
	vnetFrames(t, e, c, name, subnet)

	ok(t, c, "TAPSTRANSIENT", "1")
	c.close(t)
	waitGone(t, e, name)
}

// vnetFrames shows that the virtio-net header really travels: a frame
// written with NEEDS_CSUM and no valid checksum is delivered, the same
// frame without the header is not, and frames read carry the header the
// mode asks for.
func vnetFrames(t *testing.T, e *env, c client, name string, subnet int) {
	local, remote := fmt.Sprintf("10.9.%d.1", subnet), fmt.Sprintf("10.9.%d.2", subnet)
	remoteMAC := [6]byte{0x02, 0, 0, 0, 0, 0x22}
	e.ns.Run(t, "ip", "addr", "add", local+"/24", "dev", name)
	e.ns.Run(t, "ip", "neigh", "add", remote, "lladdr", "02:00:00:00:00:22", "dev", name)
	e.ns.Run(t, "ip", "link", "set", name, "up")
	var tapMAC [6]byte
	copy(tapMAC[:], mustMAC(t, e.mustLink(t, name).Address))
	s := e.udpSocket(t, local, 5000)

	// A UDP packet whose checksum field holds only the pseudo-header sum,
	// as a sender asking for checksum offload leaves it.
	partial := itest.UDP4(netip.MustParseAddr(remote), netip.MustParseAddr(local), 40000, 5000, []byte("partial csum"))
	binary.BigEndian.PutUint16(partial[26:], udp4PseudoSum(partial))
	frame := itest.Ether(tapMAC, remoteMAC, partial)
	hdr := make([]byte, 12)
	hdr[0] = 1                                    // VIRTIO_NET_HDR_F_NEEDS_CSUM
	binary.LittleEndian.PutUint16(hdr[6:], 14+20) // csum_start
	binary.LittleEndian.PutUint16(hdr[8:], 6)     // csum_offset
	if errno, can := c.write(t, append(hdr, frame...)); can && errno != 0 {
		t.Fatalf("write with a virtio-net header: %v", errno)
	}
	if got := recvPayload(t, s); string(got) != "partial csum" {
		t.Fatalf("socket got %q, want the frame that asked for checksum offload", got)
	}

	// Kernel to device: the header says the checksum is left to us.
	sendTo(t, s, remote, 6000, []byte("to vnet 12"))
	f := readMatching(t, c, "frame behind a 12-byte header", func(p []byte) bool {
		return len(p) > 12 && string(itest.FrameUDPPayload(p[12:], 6000)) == "to vnet 12"
	})
	if f[0]&1 == 0 || binary.LittleEndian.Uint16(f[6:]) != 34 || binary.LittleEndian.Uint16(f[8:]) != 6 {
		t.Fatalf("virtio-net header read % x: want NEEDS_CSUM, csum_start 34, csum_offset 6", f[:12])
	}
	if f[10] != 0 || f[11] != 0 {
		t.Fatalf("num_buffers = % x, want 0", f[10:12])
	}
	ok(t, c, "TAPSVNETHDR", "10")
	sendTo(t, s, remote, 6000, []byte("to vnet 10"))
	readMatching(t, c, "frame behind a 10-byte header", func(p []byte) bool {
		return len(p) > 10 && string(itest.FrameUDPPayload(p[10:], 6000)) == "to vnet 10"
	})

	// Off: no header, and checksums are complete.
	ok(t, c, "TAPSVNETHDR", "0")
	sendTo(t, s, remote, 6000, []byte("to vnet 0"))
	f = readMatching(t, c, "bare frame", func(p []byte) bool {
		return string(itest.FrameUDPPayload(p, 6000)) == "to vnet 0"
	})
	if !bytes.Equal(f[:6], remoteMAC[:]) || !udp4ChecksumOK(f[14:]) {
		t.Fatalf("bare frame % x: want the remote MAC first and a complete checksum", f[:42])
	}
	// Without the header the offload request is gone: the same frame
	// is dropped for its checksum, a correct one gets through.
	if errno, can := c.write(t, frame); can && errno != 0 {
		t.Fatalf("write: %v", errno)
	}
	good := itest.UDP4(netip.MustParseAddr(remote), netip.MustParseAddr(local), 40000, 5000, []byte("full csum"))
	if errno, can := c.write(t, itest.Ether(tapMAC, remoteMAC, good)); can && errno != 0 {
		t.Fatalf("write: %v", errno)
	}
	if got := recvPayload(t, s); string(got) != "full csum" {
		t.Fatalf("socket got %q, want only the frame with a complete checksum", got)
	}
}

func mustMAC(t *testing.T, s string) []byte {
	t.Helper()
	var b [6]byte
	if _, err := fmt.Sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]); err != nil {
		t.Fatalf("MAC %q: %v", s, err)
	}
	return b[:]
}

// waitGone waits until the device name has neither an interface nor a node.
func waitGone(t *testing.T, e *env, name string) {
	t.Helper()
	if !itest.WaitFor(func() bool {
		_, there := e.link(t, name)
		return !there && !e.listed(t, name)
	}) {
		t.Fatalf("%s still there after the last close of a transient device", name)
	}
}

// TestIoctlAfterDestroy: a destroyed device answers ENXIO, like FreeBSD's
// dead cdevsw.
func TestIoctlAfterDestroy(t *testing.T) {
	e := newEnv(t)
	fd := e.open(t, "tun", 0)
	name := devName(t, fd)
	e.cli(t, "ifconfig", name, "destroy")
	if _, err := ioctls.GetIfHead(fd); !errors.Is(err, unix.ENXIO) {
		t.Fatalf("TUNGIFHEAD on a destroyed device: %v, want ENXIO", err)
	}
	if err := ioctls.SetInfo(fd, ioctls.TunInfo{MTU: 1400, Type: ioctls.IFT_PPP}); !errors.Is(err, unix.ENXIO) {
		t.Fatalf("TUNSIFINFO on a destroyed device: %v, want ENXIO", err)
	}
}

// TestTransient is FreeBSD's transient_tuntap test: open, set transient,
// close, and the interface is gone.
func TestTransient(t *testing.T) {
	for _, drv := range []string{"tun", "tap", "vmnet"} {
		t.Run(drv, func(t *testing.T) {
			e := newEnv(t)
			fd, err := unix.Open(filepath.Join(e.dir, drv), unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			name := devName(t, fd)
			e.mustLink(t, name)
			if err := ioctls.SetTransient(fd, true); err != nil {
				t.Fatal(err)
			}
			unix.Close(fd)
			waitGone(t, e, name)
			if st := settle(t, e.d); st.UnitsInUse != 0 {
				t.Fatalf("units in use: %d", st.UnitsInUse)
			}
			// Cleared again, the device survives its close.
			fd = e.open(t, drv, 0)
			name = devName(t, fd)
			if err := ioctls.SetTransient(fd, true); err != nil {
				t.Fatal(err)
			}
			if err := ioctls.SetTransient(fd, false); err != nil {
				t.Fatal(err)
			}
			unix.Close(fd)
			if !itest.WaitFor(func() bool { return !e.device(t, name).Open }) {
				t.Fatal("device still open")
			}
			e.mustLink(t, name)
		})
	}
}

// TestFUSELimits pins down what the README says FUSE leaves out: the VFS
// answers FIONREAD from the node's size, FIOASYNC cannot be switched on,
// and FIONBIO works (in the VFS).
func TestFUSELimits(t *testing.T) {
	e := newEnv(t)
	fd := e.open(t, "tun", 0)
	st, err := os.Stat(filepath.Join(e.dir, devName(t, fd)))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := unix.IoctlGetInt(fd, unix.TIOCINQ); err != nil || int64(n) != st.Size() {
		t.Errorf("FIONREAD = %d, %v; want the node's size %d, whatever is queued", n, err, st.Size())
	}
	if err := unix.IoctlSetPointerInt(fd, 0x5452, 1); !errors.Is(err, unix.ENOTTY) { // FIOASYNC
		t.Errorf("FIOASYNC on = %v, want ENOTTY (no SIGIO for FUSE files)", err)
	}
	if err := unix.IoctlSetPointerInt(fd, 0x5421, 1); err != nil { // FIONBIO
		t.Fatalf("FIONBIO: %v", err)
	}
	if _, err := unix.Read(fd, make([]byte, 2048)); !errors.Is(err, unix.EAGAIN) {
		t.Errorf("read after FIONBIO with nothing queued: %v, want EAGAIN", err)
	}
}
