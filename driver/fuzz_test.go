package driver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// The fuzz targets of the driver's parsers of untrusted input: device names
// (dev_stdclone()), the IFHEAD, link-layer and virtio-net framing of single
// packets, and batch records. `go test` runs their seeds (f.Add and
// testdata/fuzz/FuzzName); `make fuzz` runs each for a while. The framing
// targets run on a device whose "TUN fd" is one end of a SOCK_SEQPACKET
// socketpair (packet boundaries kept), so they need no root.

// stdclone is dev_stdclone() written out as a regular expression, the
// reference ParseName is checked against.
var stdclone = regexp.MustCompile(`^(tun|tap|vmnet)(0|[1-9][0-9]*)?$`)

func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"tun", "tap", "vmnet", "tun0", "tun01", "tun-1", "tun32768", "tun32767",
		"tunx", "vmnet12", "tap00", "tun+1", "tun 1", "TUN0", "", "tun0\x00",
		"vmnet1234567890", "tun99999999999999999999", "tu", "tapper",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		drv, unit, ok := ParseName(name)
		m := stdclone.FindStringSubmatch(name)
		want := m != nil && len(name) <= IfNameMax
		if want && m[2] != "" {
			n, err := strconv.Atoi(m[2])
			want = err == nil && n <= MaxUnit
		}
		if ok != want {
			t.Fatalf("ParseName(%q) ok = %v, dev_stdclone() says %v", name, ok, want)
		}
		if !ok {
			if drv != nil || unit != 0 {
				t.Fatalf("ParseName(%q) rejected it but returned %v, %d", name, drv, unit)
			}
			return
		}
		if drv == nil || drv.Name != m[1] || ByName(drv.Name) != drv {
			t.Fatalf("ParseName(%q) driver %v", name, drv)
		}
		// decode(encode(x)) == x: the name is the driver's name and unit.
		if unit == -1 {
			if name != drv.Name {
				t.Fatalf("ParseName(%q): bare name, but not the driver's", name)
			}
			return
		}
		if drv.UnitName(unit) != name {
			t.Fatalf("ParseName(%q) = %s unit %d, which is named %q", name, drv.Name, unit, drv.UnitName(unit))
		}
	})
}

// fakeDevice is an open device of drv whose real fd is one end of a
// socketpair; peer is the other end, where the "kernel" reads what the
// device sends and writes what it delivers. Both ends are non-blocking.
func fakeDevice(t testing.TB, drv *Driver) (h *Handle, peer int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	d := &Device{
		drv:   drv,
		fd:    fds[0],
		ready: make(chan struct{}),
		state: devAlive,
		// A link that is not up: a write the family check refuses is
		// dropped silently, as on an interface that is down.
		js: &jailState{links: &fakeLinks{s: &fakeStack{links: map[int]*fakeLink{}}}},
	}
	d.idle = sync.NewCond(&d.mu)
	h = &Handle{dev: d, wantc: make(chan struct{}, 1), left: make(chan struct{}), done: make(chan struct{})}
	d.open = h
	return h, fds[1]
}

// drain reads every packet queued at fd.
func drain(t testing.TB, fd int) [][]byte {
	t.Helper()
	var pkts [][]byte
	buf := make([]byte, scratchSize)
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EAGAIN) {
			return pkts
		}
		if err != nil {
			t.Fatalf("read peer: %v", err)
		}
		pkts = append(pkts, bytes.Clone(buf[:n]))
	}
}

// tunModes are the framings of a tun the fuzz targets pick from.
var tunModes = []uint32{0, modeIfHead, modeLMode}

// seedPackets are well-formed and malformed packets for the seeds.
func seedPackets() [][]byte {
	v4 := make([]byte, 28)
	v4[0] = 0x45
	copy(v4[16:20], []byte{10, 9, 0, 2})
	v6 := make([]byte, 48)
	v6[0] = 0x60
	return [][]byte{
		v4, v6, {0x45}, {}, {0x00, 0x00, 0x00, 0x02, 0x45},
		append([]byte{0, 0, 0, 2}, v4...), append([]byte{0, 0, 0, 10}, v6...),
		append([]byte{0, 0, 0, 7}, v4...), {0, 0, 0}, bytes.Repeat([]byte{0xff}, 64),
	}
}

// FuzzTunFraming: a tun's writer side (send) and reader side (delivers,
// frame) in each mode. A write is sent as the bare packet or dropped or
// refused with ErrShort or ErrNoFamily; a packet read is framed as the mode
// says; and a framed packet written back is the same packet.
func FuzzTunFraming(f *testing.F) {
	for i, p := range seedPackets() {
		f.Add(uint8(i%3), p)
	}
	f.Fuzz(func(t *testing.T, modeSel uint8, data []byte) {
		if len(data) > MRU+ifHeadLen {
			return
		}
		h, peer := fakeDevice(t, Tun)
		d := h.dev
		mode := tunModes[int(modeSel)%len(tunModes)]
		d.ioc.mode.Store(mode)

		// Writer side.
		dropped, err := d.send(data)
		got := drain(t, peer)
		pkt, want := data, byte(4)
		if mode&modeIfHead != 0 {
			switch {
			case len(data) < ifHeadLen:
				if !errors.Is(err, ErrShort) {
					t.Fatalf("IFHEAD write of %d bytes: %v, want ErrShort", len(data), err)
				}
				return
			case binary.BigEndian.Uint32(data) == unix.AF_INET:
			case binary.BigEndian.Uint32(data) == unix.AF_INET6:
				want = 6
			default:
				if !errors.Is(err, ErrNoFamily) || err.Error() == "" {
					t.Fatalf("IFHEAD write with family %#x: %v, want ErrNoFamily", binary.BigEndian.Uint32(data), err)
				}
				return
			}
			pkt = data[ifHeadLen:]
		}
		if err != nil {
			t.Fatalf("write of %x in mode %#x: %v", data, mode, err)
		}
		if shouldDrop := len(pkt) == 0 || pkt[0]>>4 != want; dropped != shouldDrop {
			t.Fatalf("write of %x in mode %#x: dropped %v, want %v", data, mode, dropped, shouldDrop)
		}
		if dropped && len(got) != 0 || !dropped && (len(got) != 1 || !bytes.Equal(got[0], pkt)) {
			t.Fatalf("write of %x in mode %#x: the kernel got %x", data, mode, got)
		}

		// Reader side: data is a packet the kernel hands the device.
		if !d.delivers(data) {
			return
		}
		buf := make([]byte, d.framedLen(data))
		n := d.frame(buf, data)
		if n != len(buf) {
			t.Fatalf("frame of %d bytes in mode %#x: %d bytes, framedLen says %d", len(data), mode, n, len(buf))
		}
		switch {
		case mode&modeIfHead != 0:
			af := binary.BigEndian.Uint32(buf)
			if (data[0]>>4 == 6) != (af == unix.AF_INET6) || !bytes.Equal(buf[ifHeadLen:], data) {
				t.Fatalf("IFHEAD frame of %x: %x", data, buf)
			}
		case mode&modeLMode != 0:
			if binary.NativeEndian.Uint16(buf) != unix.AF_INET || !bytes.Equal(buf[4:8], data[16:20]) || !bytes.Equal(buf[sizeofSockaddrIn:], data) {
				t.Fatalf("link-layer frame of %x: %x", data, buf)
			}
			return // a write in link-layer mode carries no sockaddr
		default:
			if !bytes.Equal(buf, data) {
				t.Fatalf("frame of %x: %x", data, buf)
			}
		}
		// decode(encode(x)) == x: the framed packet written back is x.
		if dropped, err := d.send(buf); err != nil || dropped {
			t.Fatalf("writing back the frame %x: dropped %v, %v", buf, dropped, err)
		}
		if got := drain(t, peer); len(got) != 1 || !bytes.Equal(got[0], data) {
			t.Fatalf("frame of %x written back: the kernel got %x", data, got)
		}
	})
}

// FuzzTapFraming: a tap's virtio-net header as the reader and writer see
// it (TAPSVNETHDR 0, 10 or 12) against the 12 bytes the kernel side
// always has.
func FuzzTapFraming(f *testing.F) {
	frame := make([]byte, vnetHdrMrgRxbuf+14+20)
	for i := range frame {
		frame[i] = byte(i)
	}
	for i, p := range [][]byte{frame, frame[:vnetHdrMrgRxbuf], frame[:vnetHdrMrgRxbuf+13], {}, {1, 2, 3}} {
		f.Add(uint8(i%3), p)
	}
	f.Fuzz(func(t *testing.T, vhSel uint8, data []byte) {
		if len(data) > MRU+vnetHdrMrgRxbuf {
			return
		}
		h, peer := fakeDevice(t, Tap)
		d := h.dev
		vh := []int{0, 10, 12}[int(vhSel)%3]
		d.ioc.vhdr.Store(int32(vh))

		dropped, err := d.send(data)
		if err != nil {
			t.Fatalf("tap write of %d bytes, header %d: %v", len(data), vh, err)
		}
		got := drain(t, peer)
		if shouldDrop := len(data) < vh+14; dropped != shouldDrop {
			t.Fatalf("tap write of %d bytes, header %d: dropped %v, want %v", len(data), vh, dropped, shouldDrop)
		}
		if !dropped {
			want := make([]byte, vnetHdrMrgRxbuf, vnetHdrMrgRxbuf+len(data))
			copy(want, data[:vh])
			want = append(want, data[vh:]...)
			if len(got) != 1 || !bytes.Equal(got[0], want) {
				t.Fatalf("tap write of %x, header %d: the kernel got %x", data, vh, got)
			}
		}

		// Reader side: data is a frame with the kernel's 12-byte header.
		if !d.delivers(data) {
			if len(data) >= vnetHdrMrgRxbuf {
				t.Fatalf("a tap frame of %d bytes was not delivered", len(data))
			}
			return
		}
		pkt := bytes.Clone(data)
		buf := make([]byte, d.framedLen(pkt))
		if n := d.frame(buf, pkt); n != len(buf) {
			t.Fatalf("tap frame of %d bytes, header %d: %d bytes, framedLen says %d", len(data), vh, n, len(buf))
		}
		want := append(bytes.Clone(data[:vh]), data[vnetHdrMrgRxbuf:]...)
		if vh > 10 {
			want[10], want[11] = 0, 0 // num_buffers: FreeBSD sends 0
		}
		if !bytes.Equal(buf, want) {
			t.Fatalf("tap frame of %x, header %d: reader got %x, want %x", data, vh, buf, want)
		}
	})
}

// batchRecords is the reference decoder of a batch write: the packets of
// the well-formed records before the first malformed one, the bytes they
// take, and whether a malformed record ended it.
func batchRecords(data []byte, mru int) (pkts [][]byte, consumed int, malformed bool) {
	for consumed < len(data) {
		if len(data)-consumed < BatchHdrLen {
			return pkts, consumed, true
		}
		l := int(binary.BigEndian.Uint32(data[consumed:]))
		if l == 0 || l > mru || l > len(data)-consumed-BatchHdrLen {
			return pkts, consumed, true
		}
		pkts = append(pkts, data[consumed+BatchHdrLen:consumed+BatchHdrLen+l])
		consumed += BatchHdrLen + l
	}
	return pkts, consumed, false
}

// encodeBatch is the reference encoder of batch records.
func encodeBatch(pkts [][]byte) []byte {
	var b []byte
	for _, p := range pkts {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

// FuzzBatch: WriteBatch consumes exactly the well-formed records before
// the first malformed one, sends their packets in order, and refuses a
// malformed first record with a clear ErrInvalid; and the packets read
// back through ReadBatch, decoded, are the packets sent.
func FuzzBatch(f *testing.F) {
	frame := make([]byte, vnetHdrMrgRxbuf+14+8)
	frame[vnetHdrMrgRxbuf] = 0xaa
	two := encodeBatch([][]byte{frame, frame[:vnetHdrMrgRxbuf+14]})
	for _, s := range [][]byte{
		two, encodeBatch([][]byte{frame}), append(bytes.Clone(two), 0, 0),
		{0, 0, 0, 0}, {0, 0, 0, 5, 1, 2}, {0xff, 0xff, 0xff, 0xff, 1}, {},
		encodeBatch([][]byte{{1}, frame}), append(encodeBatch([][]byte{frame}), 0, 0, 0x40, 0x0d),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		h, peer := fakeDevice(t, Tap)
		d := h.dev
		d.ioc.vhdr.Store(vnetHdrMrgRxbuf)
		h.batch.Store(true)

		pkts, consumed, malformed := batchRecords(data, d.mru())
		n, err := h.WriteBatch(data)
		switch {
		case consumed == 0 && malformed:
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "batch record") {
				t.Fatalf("WriteBatch(%x): %d, %v; want a batch record error (ErrInvalid)", data, n, err)
			}
		case err != nil || n != consumed:
			t.Fatalf("WriteBatch(%x) = %d, %v; want %d bytes", data, n, err, consumed)
		}
		var sent [][]byte
		for _, p := range pkts {
			if len(p) >= vnetHdrMrgRxbuf+14 {
				sent = append(sent, p)
			}
		}
		got := drain(t, peer)
		if len(got) != len(sent) {
			t.Fatalf("WriteBatch(%x): the kernel got %d packets, want %d", data, len(got), len(sent))
		}
		for i := range sent {
			if !bytes.Equal(got[i], sent[i]) {
				t.Fatalf("WriteBatch(%x): packet %d is %x, want %x", data, i, got[i], sent[i])
			}
		}

		// Read side: what the kernel queues comes back, in order, in
		// records that decode to the same packets (num_buffers zeroed).
		var queued [][]byte
		for _, p := range pkts {
			if len(p) < vnetHdrMrgRxbuf {
				continue // not a frame the kernel can hand a tap
			}
			if _, err := unix.Write(peer, p); err != nil {
				t.Fatalf("queue a packet: %v", err)
			}
			q := bytes.Clone(p)
			q[10], q[11] = 0, 0
			queued = append(queued, q)
		}
		var read [][]byte
		buf := make([]byte, 1<<16)
		for len(read) <= len(queued) {
			n, err := h.ReadBatch(nil, buf, true)
			if errors.Is(err, ErrWouldBlock) {
				break
			}
			if err != nil {
				t.Fatalf("ReadBatch: %v", err)
			}
			if n >= len(buf) {
				t.Fatalf("ReadBatch filled the whole buffer (%d bytes)", n)
			}
			recs, used, bad := batchRecords(buf[:n], d.mru())
			if bad || used != n || len(recs) == 0 {
				t.Fatalf("ReadBatch returned %d bytes that are not whole records: %x", n, buf[:n])
			}
			for _, r := range recs {
				read = append(read, bytes.Clone(r))
			}
		}
		if len(read) != len(queued) {
			t.Fatalf("queued %d packets, read back %d", len(queued), len(read))
		}
		for i := range queued {
			if !bytes.Equal(read[i], queued[i]) {
				t.Fatalf("packet %d read back as %x, want %x", i, read[i], queued[i])
			}
		}
	})
}
