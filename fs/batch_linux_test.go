package fs_test

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/tundevfs/tundevfs/internal/testenv"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/internal/itest"
	"github.com/tundevfs/tundevfs/ioctls"
)

// records splits a batch read into its packets.
func records(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("batch read: %d bytes left, not a record", len(b))
		}
		l := int(binary.BigEndian.Uint32(b))
		if l == 0 || l > len(b)-4 {
			t.Fatalf("batch read: record of %d bytes with %d left", l, len(b)-4)
		}
		out = append(out, b[4:4+l])
		b = b[4+l:]
	}
	return out
}

// TestBatch: with TUNSBATCH one read returns many packets and one write
// carries many; nothing is lost, duplicated or reordered; poll still tells
// the truth.
func TestBatch(t *testing.T) {
	const total = 3000
	for i, drv := range []string{"tun", "tap"} {
		t.Run(drv, func(t *testing.T) {
			e := newQuietEnv(t)
			l := e.setup(t, drv, i+1)
			s := e.udpSocket(t, l.local, 5000)
			if err := unix.IoctlSetPointerInt(l.fd, ioctls.TUNSBATCH, 1); err != nil {
				t.Fatalf("TUNSBATCH: %v", err)
			}
			// Inject: batches of up to 100 datagrams in one write each.
			seq := func(k int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(k)) }
			buf := make([]byte, 2048)
			for base := 0; base < total; base += 100 {
				var batch []byte
				for k := base; k < base+100 && k < total; k++ {
					pkt := itest.UDP4(netip.MustParseAddr(l.remote), netip.MustParseAddr(l.local), 40000, 5000, seq(k))
					if l.l2 {
						pkt = itest.Ether(l.mac, l.peerMAC, pkt)
					}
					batch = binary.BigEndian.AppendUint32(batch, uint32(len(pkt)))
					batch = append(batch, pkt...)
				}
				n, err := unix.Write(l.fd, batch)
				if err != nil || n != len(batch) {
					t.Fatalf("batch write: %d of %d, %v", n, len(batch), err)
				}
				for k := base; k < base+100 && k < total; k++ {
					n, _, err := testenv.Recvfrom(s, buf)
					if err != nil {
						t.Fatalf("packet %d: %v", k, err)
					}
					if got := int(binary.BigEndian.Uint32(buf[:n])); n != 4 || got != k {
						t.Fatalf("socket got %d, want %d (lost or reordered)", got, k)
					}
				}
			}

			// Extract: windows of 200 datagrams, read back in batches.
			rbuf := make([]byte, 65536)
			reads, next := 0, 0
			for base := 0; base < total; base += 200 {
				for k := base; k < base+200 && k < total; k++ {
					sendTo(t, s, l.remote, 6000, seq(k))
				}
				for next < base+200 && next < total {
					n := readTimeout(t, l.fd, rbuf)
					reads++
					for _, p := range records(t, rbuf[:n]) {
						var pl []byte
						if l.l2 {
							pl = itest.FrameUDPPayload(p, 6000)
						} else {
							pl = itest.UDPPayload(p, 6000)
						}
						if pl == nil {
							continue
						}
						if got := int(binary.BigEndian.Uint32(pl)); got != next {
							t.Fatalf("batch read packet %d, want %d (lost, duplicated or reordered)", got, next)
						}
						next++
					}
				}
			}
			if reads >= total {
				t.Fatalf("%d reads for %d packets: batch reads carried one packet each", reads, total)
			}
			t.Logf("%s: %d packets in %d batch reads", drv, total, reads)

			// Poll tells the truth; an empty queue is EAGAIN when non-blocking.
			pfd := []unix.PollFd{{Fd: int32(l.fd), Events: unix.POLLIN}}
			if n, _ := unix.Poll(pfd, 100); n != 0 {
				t.Fatalf("poll on an empty queue in batch mode: %d, revents %#x", n, pfd[0].Revents)
			}
			unix.SetNonblock(l.fd, true)
			if _, err := unix.Read(l.fd, rbuf); !errors.Is(err, unix.EAGAIN) {
				t.Fatalf("non-blocking batch read of an empty queue: %v, want EAGAIN", err)
			}
			unix.SetNonblock(l.fd, false)

			// A small buffer: the first packet is truncated as in single
			// mode, and a packet that does not fit waits for the next read.
			sendTo(t, s, l.remote, 6000, make([]byte, 600))
			sendTo(t, s, l.remote, 6000, []byte("next"))
			small := make([]byte, 700)
			var got [][]byte
			for len(got) < 2 {
				n := readTimeout(t, l.fd, small)
				for _, p := range records(t, small[:n]) {
					if (l.l2 && itest.FrameUDPPayload(p, 6000) != nil) || (!l.l2 && itest.UDPPayload(p, 6000) != nil) {
						got = append(got, p)
					}
				}
			}
			if len(got[0]) < 600 || len(got[1]) > 100 {
				t.Fatalf("small-buffer batch reads gave packets of %d and %d bytes", len(got[0]), len(got[1]))
			}

			// Malformed records: EINVAL for the first; a bad one later ends
			// the write after the good ones.
			good := itest.UDP4(netip.MustParseAddr(l.remote), netip.MustParseAddr(l.local), 40000, 5000, seq(7))
			if l.l2 {
				good = itest.Ether(l.mac, l.peerMAC, good)
			}
			rec := append(binary.BigEndian.AppendUint32(nil, uint32(len(good))), good...)
			for _, bad := range [][]byte{{0, 0, 0, 0}, {0, 0, 0xff, 0xff, 1, 2}, {0, 0}} {
				if _, err := unix.Write(l.fd, bad); !errors.Is(err, unix.EINVAL) {
					t.Fatalf("batch write %x: %v, want EINVAL", bad, err)
				}
			}
			n, err := unix.Write(l.fd, append(append([]byte{}, rec...), 0, 0, 0, 9, 1))
			if err != nil || n != len(rec) {
				t.Fatalf("batch write with a bad second record: %d, %v; want %d", n, err, len(rec))
			}
			if n, _, err := testenv.Recvfrom(s, buf); err != nil || binary.BigEndian.Uint32(buf[:n]) != 7 {
				t.Fatalf("the good record before a bad one: %v", err)
			}

			// Off again: single packets.
			if err := unix.IoctlSetPointerInt(l.fd, ioctls.TUNSBATCH, 0); err != nil {
				t.Fatal(err)
			}
			sendTo(t, s, l.remote, 6000, []byte("single"))
			if got, _ := l.extract(t, 6000); string(got) != "single" {
				t.Fatalf("after batch mode off: %q", got)
			}
		})
	}
}
