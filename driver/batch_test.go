package driver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestReadBatch(t *testing.T) {
	e := newFakeEnv(t)
	d, h := e.open(Tun)
	if err := h.SetBatch(true); err != nil || !h.Batch() {
		t.Fatalf("SetBatch: %v, on %v", err, h.Batch())
	}
	p1, p2, p3 := ipv4(100), ipv4(200), ipv4(300)
	for _, p := range [][]byte{p1, ipv6(60), p2, p3} {
		e.inject(d, p)
	}
	// Room for the first two records and a byte less than the third:
	// the third stays queued and comes first next time.
	size := 2*BatchHdrLen + len(p1) + len(p2) + BatchHdrLen + len(p3) // ReadBatch keeps one byte back
	buf := make([]byte, size)
	n, err := h.ReadBatch(nil, buf, true)
	want := encodeBatch([][]byte{p1, p2})
	if err != nil || !bytes.Equal(buf[:n], want) {
		t.Fatalf("first batch = %d bytes, %v; want %d bytes of p1, p2", n, err, len(want))
	}
	n, err = h.ReadBatch(nil, buf, true)
	if err != nil || !bytes.Equal(buf[:n], encodeBatch([][]byte{p3})) {
		t.Fatalf("second batch = %d, %v; want p3", n, err)
	}
	if _, err := h.ReadBatch(nil, buf, true); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("empty batch read: %v", err)
	}
	// A first packet that does not fit is truncated, as in single mode.
	e.inject(d, p3)
	small := make([]byte, 50)
	n, err = h.ReadBatch(nil, small, true)
	if err != nil || n != 49 || binary.BigEndian.Uint32(small) != 45 || !bytes.Equal(small[4:49], p3[:45]) {
		t.Fatalf("truncated batch = %d, %v: %x", n, err, small[:n])
	}
	if _, err := h.ReadBatch(nil, make([]byte, BatchHdrLen+1), true); !errors.Is(err, ErrInvalid) {
		t.Fatalf("tiny batch read: %v, want ErrInvalid", err)
	}
	if info := d.Info(); info.RxPackets != 4 || info.Drops != 1 {
		t.Fatalf("rx %d drops %d, want 4 and 1", info.RxPackets, info.Drops)
	}
}

func TestWriteBatch(t *testing.T) {
	p1, p2 := ipv4(40), ipv4(80)
	good := encodeBatch([][]byte{p1, p2})
	hdr := func(l uint32) []byte { return binary.BigEndian.AppendUint32(nil, l) }
	for _, tc := range []struct {
		name string
		data []byte
		n    int
		err  error
		sent [][]byte
	}{
		{"two", good, len(good), nil, [][]byte{p1, p2}},
		{"empty", nil, 0, nil, nil},
		{"header cut short", []byte{0, 0}, 0, ErrInvalid, nil},
		{"zero length", hdr(0), 0, ErrInvalid, nil},
		{"beyond the end", append(hdr(41), p1...), 0, ErrInvalid, nil},
		{"above the MRU", append(hdr(MRU+1), make([]byte, MRU+1)...), 0, ErrInvalid, nil},
		{"too big", append(hdr(MRU+1), make([]byte, MRU+1)...), 0, ErrInvalid, nil},
		{"good then cut short", append(append([]byte(nil), good...), 0, 0), len(good), nil, [][]byte{p1, p2}},
		{"good then malformed", append(append([]byte(nil), good...), hdr(0)...), len(good), nil, [][]byte{p1, p2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t)
			d, h := e.open(Tun)
			e.setUp(d, true)
			n, err := h.WriteBatch(tc.data)
			if n != tc.n || !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("WriteBatch = %d, %v; want %d, %v", n, err, tc.n, tc.err)
			}
			got := e.sent(d)
			if len(got) != len(tc.sent) {
				t.Fatalf("kernel got %d packets, want %d", len(got), len(tc.sent))
			}
			for i := range got {
				if !bytes.Equal(got[i], tc.sent[i]) {
					t.Fatalf("packet %d differs", i)
				}
			}
		})
	}
	// A packet the kernel refuses ends the batch before it.
	e := newFakeEnv(t)
	d, h := e.open(Tun)
	e.setUp(d, true)
	d.setMode(modeIfHead, 0)
	data := encodeBatch([][]byte{family(2, p1), family(7, p2)})
	if n, err := h.WriteBatch(data); n != BatchHdrLen+4+len(p1) || err != nil {
		t.Fatalf("batch with a refused second packet = %d, %v", n, err)
	}
	if n, err := h.WriteBatch(data[BatchHdrLen+4+len(p1):]); n != 0 || !errors.Is(err, ErrNoFamily) {
		t.Fatalf("batch with a refused first packet = %d, %v", n, err)
	}
}
