package itest

import (
	"net/netip"
	"testing"
)

func TestICMPEcho(t *testing.T) {
	src, dst := netip.MustParseAddr("10.9.0.2"), netip.MustParseAddr("10.9.0.1")
	for _, n := range []int{0, 1, 36, 1371} {
		p := ICMPEcho(src, dst, 7, 9, make([]byte, n))
		if len(p) != 28+n {
			t.Fatalf("payload %d: length %d", n, len(p))
		}
		if c := ipChecksum(p[:20]); c != 0 {
			t.Errorf("payload %d: IP header checksum does not verify (%#x)", n, c)
		}
		if c := ipChecksum(p[20:]); c != 0 {
			t.Errorf("payload %d: ICMP checksum does not verify (%#x)", n, c)
		}
		if IsEchoReply(p, 7, 9) {
			t.Errorf("payload %d: a request taken for a reply", n)
		}
		p[20] = 0 // the same message as a reply
		if !IsEchoReply(p, 7, 9) || IsEchoReply(p, 7, 10) || IsEchoReply(p, 8, 9) {
			t.Errorf("payload %d: IsEchoReply does not match id and seq", n)
		}
	}
}
