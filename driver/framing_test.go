package driver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// Packets of the framing tests.
func ipv4(n int) []byte {
	p := make([]byte, n)
	p[0] = 0x45
	copy(p[16:20], []byte{10, 9, 0, 2})
	p[n-1] = byte(n)
	return p
}

func ipv6(n int) []byte {
	p := make([]byte, n)
	p[0] = 0x60
	p[n-1] = byte(n)
	return p
}

func family(af uint32, pkt []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, af), pkt...)
}

// inject writes pkt at the kernel's end of d's fd: a packet the interface
// hands the reader.
func (e *fakeEnv) inject(d *Device, pkt []byte) {
	e.t.Helper()
	if _, err := unix.Write(e.stack.peer(d), pkt); err != nil {
		e.t.Fatalf("inject: %v", err)
	}
}

// sent returns what d wrote to the kernel since the last call.
func (e *fakeEnv) sent(d *Device) [][]byte {
	e.t.Helper()
	return drain(e.t, e.stack.peer(d))
}

// setUp marks d's interface up or down.
func (e *fakeEnv) setUp(d *Device, up bool) {
	e.stack.mu.Lock()
	e.stack.links[d.ifindex].Up = up
	e.stack.mu.Unlock()
}

func TestTunReadFraming(t *testing.T) {
	v4, v6 := ipv4(28), ipv6(48)
	sa := make([]byte, sizeofSockaddrIn)
	binary.NativeEndian.PutUint16(sa, unix.AF_INET)
	copy(sa[4:8], v4[16:20])
	for _, tc := range []struct {
		name  string
		mode  uint32
		pkt   []byte
		want  []byte // nil: dropped
		short int    // read buffer size, 0 for a large one
	}{
		{"plain v4", 0, v4, v4, 0},
		{"plain v6 dropped", 0, v6, nil, 0},
		{"ifhead v4", modeIfHead, v4, family(unix.AF_INET, v4), 0},
		{"ifhead v6", modeIfHead, v6, family(unix.AF_INET6, v6), 0},
		{"lmode v4", modeLMode, v4, append(append([]byte(nil), sa...), v4...), 0},
		{"lmode v6 dropped", modeLMode, v6, nil, 0},
		{"lmode runt v4 dropped", modeLMode, v4[:12], nil, 0},
		{"not IP dropped", 0, []byte{0x10, 1, 2}, nil, 0},
		{"empty dropped", 0, []byte{}, nil, 0},
		{"plain v4 truncated", 0, v4, v4[:10], 10},
		{"ifhead v4 truncated", modeIfHead, v4, family(unix.AF_INET, v4)[:6], 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t)
			d, h := e.open(Tun)
			d.setMode(tc.mode, 0)
			e.inject(d, tc.pkt)
			buf := make([]byte, 2000)
			if tc.short > 0 {
				buf = buf[:tc.short]
			}
			n, err := h.Read(nil, buf, true)
			if tc.want == nil {
				if !errors.Is(err, ErrWouldBlock) {
					t.Fatalf("read = %d, %v; want it dropped (ErrWouldBlock)", n, err)
				}
				if d.Info().Drops != 1 {
					t.Fatalf("drops %d, want 1", d.Info().Drops)
				}
				return
			}
			if err != nil || !bytes.Equal(buf[:n], tc.want) {
				t.Fatalf("read = %x, %v; want %x", buf[:n], err, tc.want)
			}
			if d.Info().RxPackets != 1 {
				t.Fatalf("rx %d, want 1", d.Info().RxPackets)
			}
			// A truncated packet's rest is gone.
			if _, err := h.Read(nil, buf, true); !errors.Is(err, ErrWouldBlock) {
				t.Fatalf("second read: %v, want ErrWouldBlock", err)
			}
		})
	}
}

func TestTunWriteFraming(t *testing.T) {
	v4, v6 := ipv4(28), ipv6(48)
	for _, tc := range []struct {
		name    string
		mode    uint32
		up      bool
		data    []byte
		want    []byte // what the kernel gets; nil: nothing
		err     error
		dropped bool
	}{
		{"plain v4", 0, true, v4, v4, nil, false},
		{"plain v6 dropped", 0, true, v6, nil, nil, true},
		{"lmode v4", modeLMode, true, v4, v4, nil, false},
		{"ifhead v4", modeIfHead, true, family(unix.AF_INET, v4), v4, nil, false},
		{"ifhead v6", modeIfHead, true, family(unix.AF_INET6, v6), v6, nil, false},
		{"ifhead family mismatch dropped", modeIfHead, true, family(unix.AF_INET, v6), nil, nil, true},
		{"ifhead bare family dropped", modeIfHead, true, family(unix.AF_INET, nil), nil, nil, true},
		{"ifhead unknown family", modeIfHead, true, family(7, v4), nil, ErrNoFamily, false},
		{"ifhead unknown family, link down", modeIfHead, false, family(7, v4), nil, nil, true},
		{"ifhead short", modeIfHead, true, []byte{0, 0}, nil, ErrShort, false},
		{"ifhead short, link down", modeIfHead, false, []byte{0, 0}, nil, nil, true},
		{"too big", 0, true, ipv4(MRU + 1), nil, ErrTooBig, false},
		{"ifhead MRU plus family", modeIfHead, true, family(unix.AF_INET, ipv4(MRU)), ipv4(MRU), nil, false},
		{"empty", 0, true, []byte{}, nil, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t)
			d, h := e.open(Tun)
			d.setMode(tc.mode, 0)
			e.setUp(d, tc.up)
			n, err := h.Write(tc.data)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || n != 0 {
					t.Fatalf("write = %d, %v; want %v", n, err, tc.err)
				}
				return
			}
			if err != nil || n != len(tc.data) {
				t.Fatalf("write = %d, %v; want %d", n, err, len(tc.data))
			}
			got := e.sent(d)
			switch {
			case tc.want == nil && len(got) != 0:
				t.Fatalf("kernel got %x, want nothing", got)
			case tc.want != nil && (len(got) != 1 || !bytes.Equal(got[0], tc.want)):
				t.Fatalf("kernel got %x, want %x", got, tc.want)
			}
			info := d.Info()
			if tc.dropped != (info.Drops == 1) {
				t.Fatalf("drops %d, dropped %v", info.Drops, tc.dropped)
			}
			if (tc.want != nil) != (info.TxPackets == 1) {
				t.Fatalf("tx %d", info.TxPackets)
			}
		})
	}
}

// vnetFrame is a frame as a tap's real fd carries it: a 12-byte virtio-net
// header (num_buffers set, which the reader must see as 0) and an Ethernet
// frame of n bytes.
func vnetFrame(n int) (withHdr, hdr, frame []byte) {
	hdr = []byte{1, 0, 14, 0, 0, 0, 34, 0, 16, 0, 0xaa, 0xbb}
	frame = bytes.Repeat([]byte{0xee}, n)
	frame[n-1] = byte(n)
	return append(append([]byte(nil), hdr...), frame...), hdr, frame
}

func TestTapReadFraming(t *testing.T) {
	for _, drv := range []*Driver{Tap, Vmnet} {
		for _, vh := range []int{0, vnetHdrLen, vnetHdrMrgRxbuf} {
			t.Run(drv.Name+"/vnethdr"+string(rune('0'+vh/2)), func(t *testing.T) {
				e := newFakeEnv(t)
				d, h := e.open(drv)
				if err := h.SetVnetHdr(vh); err != nil {
					t.Fatal(err)
				}
				raw, hdr, frame := vnetFrame(60)
				e.inject(d, raw)
				e.inject(d, raw[:8]) // shorter than the kernel's header: dropped
				buf := make([]byte, 2000)
				n, err := h.Read(nil, buf, true)
				want := append(append([]byte(nil), hdr[:vh]...), frame...)
				if vh == vnetHdrMrgRxbuf {
					want[10], want[11] = 0, 0
				}
				if err != nil || !bytes.Equal(buf[:n], want) {
					t.Fatalf("read = %x, %v; want %x", buf[:n], err, want)
				}
				if _, err := h.Read(nil, buf, true); !errors.Is(err, ErrWouldBlock) {
					t.Fatalf("runt read: %v, want it dropped", err)
				}
			})
		}
	}
}

func TestTapWriteFraming(t *testing.T) {
	_, hdr, frame := vnetFrame(60)
	for _, vh := range []int{0, vnetHdrLen, vnetHdrMrgRxbuf} {
		t.Run("vnethdr"+string(rune('0'+vh/2)), func(t *testing.T) {
			e := newFakeEnv(t)
			d, h := e.open(Tap)
			if err := h.SetVnetHdr(vh); err != nil {
				t.Fatal(err)
			}
			data := append(append([]byte(nil), hdr[:vh]...), frame...)
			if n, err := h.Write(data); err != nil || n != len(data) {
				t.Fatalf("write = %d, %v", n, err)
			}
			want := make([]byte, vnetHdrMrgRxbuf)
			copy(want, hdr[:vh])
			want = append(want, frame...)
			if got := e.sent(d); len(got) != 1 || !bytes.Equal(got[0], want) {
				t.Fatalf("kernel got %x, want %x", got, want)
			}
			// Shorter than an Ethernet header after the virtio-net
			// header: accepted and dropped (tunwrite_l2()).
			runt := data[:vh+13]
			if n, err := h.Write(runt); err != nil || n != len(runt) {
				t.Fatalf("runt write = %d, %v", n, err)
			}
			if got := e.sent(d); len(got) != 0 || d.Info().Drops != 1 {
				t.Fatalf("runt reached the kernel (%x) or was not counted", got)
			}
			// The MRU grows by the header the writer sees.
			if n, err := h.Write(make([]byte, MRU+vh+1)); !errors.Is(err, ErrTooBig) {
				t.Fatalf("write of MRU+%d+1 = %d, %v; want ErrTooBig", vh, n, err)
			}
		})
	}
}
