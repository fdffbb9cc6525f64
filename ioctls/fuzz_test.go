//go:build linux

package ioctls

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// The fuzz targets of the ioctl argument decoders: the request number
// (what the daemon gets from FUSE), struct tuninfo, struct ifreq's name and
// MAC, and the values a user types for `tundevfs ioctl` (tuninfo strings,
// ints and IFF flag names). `go test` runs their seeds; `make fuzz` runs
// each for a while. No panic; decode(encode(x)) == x; every rejection is an
// error that says what was wrong.

func FuzzDecodeNumber(f *testing.F) {
	for _, io := range Table {
		f.Add(io.Number)
	}
	f.Add(uint32(0))
	f.Add(uint32(0xffffffff))
	f.Add(uint32(0x8004745e)) // FreeBSD's own TUNSIFHEAD
	f.Fuzz(func(t *testing.T, n uint32) {
		dir, group, nr, size := Decode(n)
		if size > iocSizeMask {
			t.Fatalf("Decode(%#x): size %d beyond the size field", n, size)
		}
		if ioDirCanonical(n) {
			if back := IOC(dir, group, nr, size); back != n {
				t.Fatalf("IOC(Decode(%#x)) = %#x", n, back)
			}
		}
		io, ok := ByNumber(n)
		if !ok {
			return
		}
		if io.Number != n || io.Dir != dir || io.Group != group || io.Nr != nr || io.Arg.Size() != size {
			t.Fatalf("ByNumber(%#x) = %s %#x (dir %v group %q nr %d size %d), Decode says dir %v group %q nr %d size %d",
				n, io.Name, io.Number, io.Dir, io.Group, io.Nr, io.Arg.Size(), dir, group, nr, size)
		}
		if byName, ok := Lookup(io.Name); !ok || byName.Number != n {
			t.Fatalf("Lookup(%s) does not find %#x", io.Name, n)
		}
	})
}

// ioDirCanonical reports whether n's direction field is one IOC writes, so
// that IOC(Decode(n)) can give n back.
func ioDirCanonical(n uint32) bool {
	d := n >> iocDirShift & iocDirMask
	for _, dir := range []Dir{DirNone, DirWrite, DirRead, DirReadWrite} {
		if IOC(dir, 0, 0, 0)>>iocDirShift&iocDirMask == d {
			return true
		}
	}
	return false
}

func FuzzTunInfo(f *testing.F) {
	f.Add(TunInfo{Baudrate: 9600, MTU: 1400, Type: IFT_PPP}.Marshal())
	f.Add(TunInfo{Baudrate: -1, MTU: 65535, Type: IFT_ETHER}.Marshal())
	f.Add([]byte{})
	f.Add(make([]byte, SizeofTunInfo+1))
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ti TunInfo
		err := ti.Unmarshal(b)
		if len(b) != SizeofTunInfo {
			if err == nil || !strings.HasPrefix(err.Error(), "tuninfo: ") {
				t.Fatalf("Unmarshal of %d bytes: %v, want a tuninfo size error", len(b), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Unmarshal(%x): %v", b, err)
		}
		want := bytes.Clone(b)
		want[7] = 0 // the dummy byte
		if got := ti.Marshal(); !bytes.Equal(got, want) {
			t.Fatalf("Marshal(Unmarshal(%x)) = %x", b, got)
		}
		// The text form reads back to the same struct.
		back, err := ParseTunInfo(ti.String(), TunInfo{})
		if err != nil || back != ti {
			t.Fatalf("ParseTunInfo(%q) = %+v, %v; want %+v", ti.String(), back, err, ti)
		}
	})
}

func FuzzParseTunInfo(f *testing.F) {
	for _, s := range []string{
		"mtu=1400,type=ppp,baudrate=9600", "mtu=1500 type=23 baudrate=0", "type=ether",
		"mtu=65536", "mtu=-1", "baudrate=0x7fffffff", "baudrate=2147483648", "MTU=0x10",
		"", ",", "mtu", "mtu=", "speed=9", "type=0o27", "mtu=1400,,type=6",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		base := TunInfo{Baudrate: 1, MTU: 2, Type: 3}
		ti, err := ParseTunInfo(s, base)
		if err != nil {
			if !errors.Is(err, ErrBadValue) || !strings.HasPrefix(err.Error(), "tuninfo ") {
				t.Fatalf("ParseTunInfo(%q): %v, want a tuninfo error wrapping ErrBadValue", s, err)
			}
			if ti != base {
				t.Fatalf("ParseTunInfo(%q) failed but changed the struct: %+v", s, ti)
			}
			return
		}
		back, err := ParseTunInfo(ti.String(), TunInfo{})
		if err != nil || back != ti {
			t.Fatalf("ParseTunInfo(%q) = %+v; its String %q reads back as %+v, %v", s, ti, ti.String(), back, err)
		}
	})
}

func FuzzIfreq(f *testing.F) {
	f.Add(make([]byte, 40), "tun0")
	f.Add([]byte("tap12\x00garbage-after-the-name.."), "")
	f.Add(bytes.Repeat([]byte{'x'}, 40), "fifteen-bytes-x")
	f.Add([]byte{1, 2, 3}, "sixteen-bytes-xx")
	f.Add(make([]byte, 16), "a\x00b")
	f.Fuzz(func(t *testing.T, b []byte, name string) {
		got := IfreqName(b)
		if len(got) > IFNAMSIZ || strings.IndexByte(got, 0) >= 0 {
			t.Fatalf("IfreqName(%x) = %q", b, got)
		}
		mac, err := IfreqMAC(b)
		if len(b) < 6 {
			if err == nil || !strings.HasPrefix(err.Error(), "ifreq: ") {
				t.Fatalf("IfreqMAC of %d bytes: %v", len(b), err)
			}
		} else {
			if err != nil || !bytes.Equal(mac, b[:6]) {
				t.Fatalf("IfreqMAC(%x) = %v, %v", b, mac, err)
			}
			out := bytes.Clone(b)
			if err := PutIfreqMAC(out, mac); err != nil || !bytes.Equal(out, b) {
				t.Fatalf("PutIfreqMAC(IfreqMAC(%x)) = %x, %v", b, out, err)
			}
		}
		buf := bytes.Clone(b)
		err = PutIfreqName(buf, name)
		valid := name != "" && len(name) < IFNAMSIZ && strings.IndexByte(name, 0) < 0
		switch {
		case len(b) < IFNAMSIZ:
			if err == nil || !strings.HasPrefix(err.Error(), "ifreq: ") {
				t.Fatalf("PutIfreqName into %d bytes: %v", len(b), err)
			}
		case !valid:
			if !errors.Is(err, ErrBadValue) {
				t.Fatalf("PutIfreqName(%q): %v, want ErrBadValue", name, err)
			}
		case err != nil:
			t.Fatalf("PutIfreqName(%q): %v", name, err)
		default:
			if back := IfreqName(buf); back != name {
				t.Fatalf("IfreqName(PutIfreqName(%q)) = %q", name, back)
			}
			if !bytes.Equal(buf[IFNAMSIZ:], b[IFNAMSIZ:]) {
				t.Fatal("PutIfreqName wrote past ifr_name")
			}
		}
	})
}

// FuzzParseValue: the int and flag values of `tundevfs ioctl --fd N NAME
// VALUE`.
func FuzzParseValue(f *testing.F) {
	for _, s := range []string{"1", "0x2a", "-5", "on", "off", "yes", "up|multicast", "IFF_UP,iff_debug", "up+bogus", "", "|", "2147483648", "0o17"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, flags bool) {
		io := Ioctl{Name: "FUZZ", Arg: ArgInt, Flags: flags}
		v, err := parseInt(io, s)
		if err != nil {
			if !errors.Is(err, ErrBadValue) || err.Error() == ErrBadValue.Error() {
				t.Fatalf("parseInt(%q, flags %v): %v, want an error wrapping ErrBadValue that says why", s, flags, err)
			}
			return
		}
		// A number written back reads back the same.
		back, err := parseInt(io, strconv.Itoa(v))
		if err != nil || back != v {
			t.Fatalf("parseInt(%q) = %d, which reads back as %d, %v", s, v, back, err)
		}
	})
}
