//go:build linux

package ioctls

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// publishedConsts pairs every exported request constant with its name; the
// tests check it against Table in both directions.
var publishedConsts = map[string]uint32{
	"TUNGDEBUG":         TUNGDEBUG,
	"TUNSDEBUG":         TUNSDEBUG,
	"TUNSIFINFO":        TUNSIFINFO,
	"TUNGIFINFO":        TUNGIFINFO,
	"TUNSLMODE":         TUNSLMODE,
	"TUNGIFNAME":        TUNGIFNAME,
	"TUNSIFMODE":        TUNSIFMODE,
	"TUNSIFPID":         TUNSIFPID,
	"TUNSIFHEAD":        TUNSIFHEAD,
	"TUNGIFHEAD":        TUNGIFHEAD,
	"TUNSTRANSIENT":     TUNSTRANSIENT,
	"TUNSBATCH":         TUNSBATCH,
	"TAPSVNETHDR":       TAPSVNETHDR,
	"TAPGVNETHDR":       TAPGVNETHDR,
	"TAPSIFADDR":        TAPSIFADDR,
	"TAPGIFADDR":        TAPGIFADDR,
	"VMIO_SIOCSIFFLAGS": VMIO_SIOCSIFFLAGS,
	"TAPGDEBUG":         TAPGDEBUG,
	"TAPSDEBUG":         TAPSDEBUG,
	"TAPSIFINFO":        TAPSIFINFO,
	"TAPGIFINFO":        TAPGIFINFO,
	"TAPGIFNAME":        TAPGIFNAME,
	"TAPSTRANSIENT":     TAPSTRANSIENT,
}

// publishedNames returns the names a header defines for io.
func publishedNames(io Ioctl) []string {
	return append([]string{io.Name}, io.Aliases...)
}

func TestNumbersDecode(t *testing.T) {
	for _, io := range Table {
		t.Run(io.Name, func(t *testing.T) {
			dir, group, nr, size := Decode(io.Number)
			if dir != io.Dir || group != io.Group || nr != io.Nr || size != io.Size {
				t.Errorf("Decode(%#x) = %v %q %d %d, table says %v %q %d %d",
					io.Number, dir, group, nr, size, io.Dir, io.Group, io.Nr, io.Size)
			}
			if io.Size != io.Arg.Size() {
				t.Errorf("Size = %d, but a %v argument has %d bytes", io.Size, io.Arg, io.Arg.Size())
			}
			if got := IOC(io.Dir, io.Group, io.Nr, io.Size); got != io.Number {
				t.Errorf("IOC = %#x, Number = %#x", got, io.Number)
			}
			var viaHelper uint32
			switch {
			case io.Arg == ArgIntValue:
				viaHelper = IOC(DirNone, io.Group, io.Nr, SizeofInt)
			case io.Dir == DirNone:
				viaHelper = IO(io.Group, io.Nr)
			case io.Dir == DirWrite:
				viaHelper = IOW(io.Group, io.Nr, io.Size)
			case io.Dir == DirRead:
				viaHelper = IOR(io.Group, io.Nr, io.Size)
			case io.Dir == DirReadWrite:
				viaHelper = IOWR(io.Group, io.Nr, io.Size)
			}
			if viaHelper != io.Number {
				t.Errorf("%s helper = %#x, Number = %#x", io.Dir.Macro(), viaHelper, io.Number)
			}
			for _, name := range publishedNames(io) {
				if c, ok := publishedConsts[name]; !ok || c != io.Number {
					t.Errorf("const %s = %#x (declared %v), Number = %#x", name, c, ok, io.Number)
				}
			}
			if (io.Arg == ArgNone) != (io.Dir == DirNone && io.Size == 0) {
				t.Errorf("Arg %v with Dir %v and Size %d", io.Arg, io.Dir, io.Size)
			}
			if io.Arg == ArgIntValue && io.Dir != DirNone {
				t.Errorf("an int passed by value must encode no direction, has %v", io.Dir)
			}
			if io.Drivers == 0 || io.Drivers&^DriverAll != 0 {
				t.Errorf("Drivers = %v", io.Drivers)
			}
			if io.Doc == "" || strings.Contains(io.Doc, "*/") || strings.Contains(io.Doc, "\n") {
				t.Errorf("Doc %q must be one line of C comment text", io.Doc)
			}
			if io.FreeBSD == "" && !strings.Contains(io.Doc, "tundevfs extension") {
				t.Errorf("a request without a FreeBSD definition must say it is a tundevfs extension")
			}
		})
	}
}

// TestFreeBSDEncodingDiffers pins down why the numbers are our own: with
// FreeBSD's encoding the direction bits say the opposite, so FUSE would copy
// the argument of a "set" request out of the daemon instead of into it.
func TestFreeBSDEncodingDiffers(t *testing.T) {
	const iocOut, iocIn = 0x40000000, 0x80000000             // sys/sys/ioccom.h
	var freebsd uint32 = iocIn | SizeofInt<<16 | 't'<<8 | 96 // FreeBSD's TUNSIFHEAD
	if freebsd == TUNSIFHEAD {
		t.Fatalf("FreeBSD's TUNSIFHEAD %#x equals ours", freebsd)
	}
	if dir, _, _, _ := Decode(freebsd); dir != DirRead {
		t.Errorf("Linux reads FreeBSD's IOC_IN as %v, want read", dir)
	}
	if dir, _, _, _ := Decode(iocOut | SizeofInt<<16 | 't'<<8 | 97); dir != DirWrite {
		t.Errorf("Linux reads FreeBSD's IOC_OUT as %v, want write", dir)
	}
}

func TestNamesAndNumbersUnique(t *testing.T) {
	names := map[string]string{}
	numbers := map[uint32]string{}
	for _, io := range Table {
		for _, n := range append(publishedNames(io), io.Compat...) {
			if other, dup := names[strings.ToUpper(n)]; dup {
				t.Errorf("name %s used by %s and %s", n, other, io.Name)
			}
			names[strings.ToUpper(n)] = io.Name
		}
		nums := []uint32{io.Number}
		if io.Arg == ArgIfreqName || io.Arg == ArgIfreqMAC {
			for _, size := range ifreqSizes {
				if n := IOC(io.Dir, io.Group, io.Nr, size); n != io.Number {
					nums = append(nums, n)
				}
			}
		}
		for _, n := range nums {
			if other, dup := numbers[n]; dup {
				t.Errorf("number %#x used by %s and %s", n, other, io.Name)
			}
			numbers[n] = io.Name
			if got, ok := ByNumber(n); !ok || got.Name != io.Name {
				t.Errorf("ByNumber(%#x) = %s, %v; want %s", n, got.Name, ok, io.Name)
			}
		}
	}
	if len(publishedConsts) != len(names)-2 { // SIOCGIFADDR and SIOCSIFADDR have no constant
		t.Errorf("%d request constants for %d names: keep publishedConsts and Table in step", len(publishedConsts), len(names))
	}
	for name := range names {
		got, ok := Lookup(strings.ToLower(name))
		if !ok || names[name] != got.Name {
			t.Errorf("Lookup(%q) = %s, %v; want %s", strings.ToLower(name), got.Name, ok, names[name])
		}
	}
	if _, ok := Lookup("TUNSETIFF"); ok {
		t.Errorf("Lookup found a request that is not in the table")
	}
	if _, ok := ByNumber(unix.TUNSETIFF); ok {
		t.Errorf("ByNumber found a request that is not in the table")
	}
	if got := len(Names()); got != len(names) {
		t.Errorf("Names() has %d entries, want %d", got, len(names))
	}
}

// TestNumbersReachTheDaemon checks that no request shares a group with the
// requests the VFS answers itself before FUSE sees the call (fs/ioctl.c:
// do_vfs_ioctl()), whatever their size and direction.
func TestNumbersReachTheDaemon(t *testing.T) {
	vfsGroups := map[byte]string{
		0x54: "FIONBIO, FIOCLEX, FIONCLEX, FIOASYNC, FIOQSIZE, FIONREAD",
		0x00: "FIGETBSZ",
		'X':  "FIFREEZE, FITHAW, FS_IOC_FSGETXATTR, FS_IOC_FSSETXATTR",
		'f':  "FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_IOC_FIEMAP",
		0x94: "FICLONE, FICLONERANGE, FIDEDUPERANGE",
		0x15: "FS_IOC_GETFSUUID, FS_IOC_GETFSSYSFSPATH",
	}
	for _, io := range Table {
		if which, ok := vfsGroups[io.Group]; ok {
			t.Errorf("%s is in group %#x with %s, which the VFS answers", io.Name, io.Group, which)
		}
	}
}

func TestSizes(t *testing.T) {
	if got := unsafe.Sizeof(unix.Ifreq{}); got != SizeofIfreq {
		t.Errorf("SizeofIfreq = %d, x/sys's Ifreq has %d bytes", SizeofIfreq, got)
	}
	if got := unsafe.Sizeof(int32(0)); got != SizeofInt {
		t.Errorf("SizeofInt = %d, want %d", SizeofInt, got)
	}
	if IFNAMSIZ != unix.IFNAMSIZ {
		t.Errorf("IFNAMSIZ = %d, x/sys says %d", IFNAMSIZ, unix.IFNAMSIZ)
	}
}

func TestHeadersUpToDate(t *testing.T) {
	for path, want := range RenderHeaders() {
		got, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(path)))
		if err != nil {
			t.Errorf("%v (run go generate ./ioctls)", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go generate ./ioctls and commit the result", path)
		}
	}
}

// cProgram prints, for every published name, the number and what the
// kernel's _IOC_* macros read from it, then the layouts and constants.
func cProgram() string {
	var b strings.Builder
	b.WriteString(`#include <stddef.h>
#include <stdio.h>
#include <net/if_tun.h>
#include <net/if_tap.h>

#define REQ(name) printf("req %s %lu %lu %lu %lu %lu\n", #name, (unsigned long)(name), \
	(unsigned long)_IOC_DIR(name), (unsigned long)_IOC_TYPE(name), \
	(unsigned long)_IOC_NR(name), (unsigned long)_IOC_SIZE(name))
#define VAL(name, v) printf("val %s %lu\n", name, (unsigned long)(v))

int
main(void)
{
`)
	for _, io := range Table {
		for _, n := range publishedNames(io) {
			fmt.Fprintf(&b, "\tREQ(%s);\n", n)
		}
	}
	b.WriteString(`	VAL("sizeof(struct tuninfo)", sizeof(struct tuninfo));
	VAL("sizeof(struct tapinfo)", sizeof(struct tapinfo));
	VAL("offsetof(baudrate)", offsetof(struct tuninfo, baudrate));
	VAL("offsetof(mtu)", offsetof(struct tuninfo, mtu));
	VAL("offsetof(type)", offsetof(struct tuninfo, type));
	VAL("offsetof(dummy)", offsetof(struct tuninfo, dummy));
	VAL("sizeof(mtu)", sizeof(((struct tuninfo *)0)->mtu));
	VAL("sizeof(struct ifreq)", sizeof(struct ifreq));
	VAL("sizeof(int)", sizeof(int));
	VAL("IFNAMSIZ", IFNAMSIZ);
	VAL("TUNMTU", TUNMTU);
	VAL("TUNMRU", TUNMRU);
	VAL("TAPMRU", TAPMRU);
	VAL("IFT_ETHER", IFT_ETHER);
	VAL("IFT_PPP", IFT_PPP);
	return 0;
}
`)
	return b.String()
}

// gccMachine maps GOARCH to the start of what gcc -dumpmachine prints for it.
var gccMachine = map[string]string{
	"amd64": "x86_64", "arm64": "aarch64", "riscv64": "riscv64", "s390x": "s390x",
	"ppc64le": "powerpc64le", "loong64": "loongarch64", "mips64le": "mips64el",
}

// runC compiles and runs cProgram against the committed headers and returns
// its "req" and "val" lines.
func runC(t *testing.T) (reqs map[string][5]uint64, vals map[string]uint64) {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: the C cross-check of the headers needs a C compiler")
	}
	machine, err := exec.Command(cc, "-dumpmachine").Output()
	if err != nil {
		t.Fatalf("gcc -dumpmachine: %v", err)
	}
	if want := gccMachine[runtime.GOARCH]; want == "" || !strings.HasPrefix(string(machine), want) {
		t.Skipf("gcc targets %s, the test is built for GOARCH=%s: the numbers would not be comparable",
			strings.TrimSpace(string(machine)), runtime.GOARCH)
	}
	include, err := filepath.Abs("../include")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "ioctls.c"), filepath.Join(dir, "ioctls")
	if err := os.WriteFile(src, []byte(cProgram()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-Wall", "-Wextra", "-Werror", "-I", include, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("run C program: %v", err)
	}
	reqs, vals = map[string][5]uint64{}, map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// "req NAME N N N N N" or "val NAME WITH SPACES N"
		f := strings.Fields(sc.Text())
		n := 1
		if len(f) > 0 && f[0] == "req" {
			n = 5
		}
		if len(f) < 2+n {
			t.Fatalf("C output %q", sc.Text())
		}
		var nums []uint64
		for _, s := range f[len(f)-n:] {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				t.Fatalf("C output %q: %v", sc.Text(), err)
			}
			nums = append(nums, v)
		}
		name := strings.Join(f[1:len(f)-n], " ")
		if f[0] == "req" {
			reqs[name] = [5]uint64(nums)
		} else {
			vals[name] = nums[0]
		}
	}
	return reqs, vals
}

func TestHeadersAgainstC(t *testing.T) {
	reqs, vals := runC(t)
	for _, io := range Table {
		for _, name := range publishedNames(io) {
			c, ok := reqs[name]
			if !ok {
				t.Errorf("C program printed nothing for %s", name)
				continue
			}
			dir, group, nr, size := Decode(io.Number)
			want := [5]uint64{uint64(io.Number), uint64(io.Number >> iocDirShift & iocDirMask),
				uint64(group), uint64(nr), uint64(size)}
			if c != want {
				t.Errorf("%s: C says number %#x dir %d type %q nr %d size %d; Go says %#x dir %d (%v) type %q nr %d size %d",
					name, c[0], c[1], rune(c[2]), c[3], c[4], want[0], want[1], dir, rune(want[2]), want[3], want[4])
			}
		}
	}
	for name, want := range map[string]uint64{
		"sizeof(struct tuninfo)": SizeofTunInfo,
		"sizeof(struct tapinfo)": SizeofTunInfo,
		"offsetof(baudrate)":     0,
		"offsetof(mtu)":          4,
		"offsetof(type)":         6,
		"offsetof(dummy)":        7,
		"sizeof(mtu)":            2,
		"sizeof(struct ifreq)":   SizeofIfreq,
		"sizeof(int)":            SizeofInt,
		"IFNAMSIZ":               IFNAMSIZ,
		"TUNMTU":                 TUNMTU,
		"TUNMRU":                 TUNMRU,
		"TAPMRU":                 TAPMRU,
		"IFT_ETHER":              IFT_ETHER,
		"IFT_PPP":                IFT_PPP,
	} {
		if got, ok := vals[name]; !ok || got != want {
			t.Errorf("C %s = %d (printed %v), Go says %d", name, got, ok, want)
		}
	}
}

// cTunInfo mirrors struct tuninfo in memory.
type cTunInfo struct {
	Baudrate int32
	MTU      uint16
	Type     uint8
	Dummy    uint8
}

func TestTunInfoMarshal(t *testing.T) {
	var c cTunInfo
	if unsafe.Sizeof(c) != SizeofTunInfo || unsafe.Offsetof(c.MTU) != 4 || unsafe.Offsetof(c.Type) != 6 || unsafe.Offsetof(c.Dummy) != 7 {
		t.Fatalf("cTunInfo does not have the layout of struct tuninfo")
	}
	for _, ti := range []TunInfo{
		{},
		{Baudrate: 9600, MTU: 1500, Type: IFT_PPP},
		{Baudrate: -1, MTU: 65535, Type: 255},
		{Baudrate: 0x01020304, MTU: 0x0506, Type: 0x07},
	} {
		b := ti.Marshal()
		if len(b) != SizeofTunInfo {
			t.Fatalf("Marshal(%v) has %d bytes, want %d", ti, len(b), SizeofTunInfo)
		}
		// A Go struct with the layout TestHeadersAgainstC checks against
		// the C compiler, seen as bytes, is what Marshal must produce.
		c := cTunInfo{Baudrate: ti.Baudrate, MTU: ti.MTU, Type: ti.Type}
		want := unsafe.Slice((*byte)(unsafe.Pointer(&c)), unsafe.Sizeof(c))
		if !bytes.Equal(b, want) {
			t.Errorf("Marshal(%v) = % x, want % x", ti, b, want)
		}
		var back TunInfo
		if err := back.Unmarshal(b); err != nil || back != ti {
			t.Errorf("Unmarshal(Marshal(%v)) = %v, %v", ti, back, err)
		}
		parsed, err := ParseTunInfo(ti.String(), TunInfo{})
		if err != nil || parsed != ti {
			t.Errorf("ParseTunInfo(%q) = %v, %v", ti.String(), parsed, err)
		}
	}
	var ti TunInfo
	if err := ti.Unmarshal(make([]byte, SizeofTunInfo-1)); err == nil {
		t.Errorf("Unmarshal of a short buffer succeeded")
	}
}

func TestParseTunInfo(t *testing.T) {
	base := TunInfo{Baudrate: 10, MTU: 1500, Type: IFT_PPP}
	for _, tc := range []struct {
		in   string
		want TunInfo
		ok   bool
	}{
		{"mtu=1400", TunInfo{Baudrate: 10, MTU: 1400, Type: IFT_PPP}, true},
		{"mtu=1400,type=ether,baudrate=9600", TunInfo{Baudrate: 9600, MTU: 1400, Type: IFT_ETHER}, true},
		{"MTU=0x500 type=6", TunInfo{Baudrate: 10, MTU: 0x500, Type: IFT_ETHER}, true},
		{"type=ppp", base, true},
		{"", base, false},
		{"mtu", base, false},
		{"mtu=70000", base, false},
		{"type=token", base, false},
		{"speed=1", base, false},
		{"baudrate=x", base, false},
	} {
		got, err := ParseTunInfo(tc.in, base)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseTunInfo(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBadValue) {
			t.Errorf("ParseTunInfo(%q): %v does not wrap ErrBadValue", tc.in, err)
		}
	}
}

func TestIfreqHelpers(t *testing.T) {
	b := bytes.Repeat([]byte{0xff}, SizeofIfreq)
	if err := PutIfreqName(b, "tap12"); err != nil {
		t.Fatal(err)
	}
	if got := IfreqName(b); got != "tap12" {
		t.Errorf("IfreqName = %q", got)
	}
	if b[IFNAMSIZ] != 0xff {
		t.Errorf("PutIfreqName wrote past ifr_name")
	}
	for _, bad := range []string{"", "0123456789abcdef", "a\x00b"} {
		if err := PutIfreqName(b, bad); !errors.Is(err, ErrBadValue) {
			t.Errorf("PutIfreqName(%q) = %v, want ErrBadValue", bad, err)
		}
	}
	full := bytes.Repeat([]byte{'x'}, SizeofIfreq)
	if got := IfreqName(full); got != strings.Repeat("x", IFNAMSIZ) {
		t.Errorf("IfreqName without a NUL = %q, want the first %d bytes", got, IFNAMSIZ)
	}

	mac := net.HardwareAddr{0x02, 0, 0x5e, 0x10, 0x00, 0x01}
	if err := PutIfreqMAC(b, mac); err != nil {
		t.Fatal(err)
	}
	if got, err := IfreqMAC(b); err != nil || got.String() != mac.String() {
		t.Errorf("IfreqMAC = %v, %v", got, err)
	}
	if err := PutIfreqMAC(b, net.HardwareAddr{1, 2, 3}); !errors.Is(err, ErrBadValue) {
		t.Errorf("PutIfreqMAC of 3 bytes = %v", err)
	}
	if _, err := IfreqMAC(b[:5]); err == nil {
		t.Errorf("IfreqMAC of 5 bytes succeeded")
	}
}

// TestDoWithoutDevice covers Do's parsing and errors; /dev/null answers
// every request with ENOTTY.
func TestDoWithoutDevice(t *testing.T) {
	f, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())

	_, err = Do(fd, "TUNSETIFF", "")
	if !errors.Is(err, ErrUnknownRequest) || !strings.Contains(err.Error(), "TUNSIFHEAD") ||
		!strings.HasPrefix(err.Error(), "ioctl TUNSETIFF: ") {
		t.Errorf("unknown request: %v", err)
	}
	for _, tc := range []struct{ name, value string }{
		{"TUNSIFHEAD", ""},
		{"TUNSIFHEAD", "maybe"},
		{"TUNGIFHEAD", "1"},
		{"TUNSIFPID", "1"},
		{"TUNSIFMODE", "broadcast|bogus"},
		{"TUNSIFMODE", "on"},
		{"VMIO_SIOCSIFFLAGS", "-1"},
		{"SIOCSIFADDR", "aa:bb"},
		{"TAPSIFADDR", "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"},
		{"TUNSDEBUG", "0x1ffffffff"},
	} {
		if _, err := Do(fd, tc.name, tc.value); !errors.Is(err, ErrBadValue) ||
			!strings.HasPrefix(err.Error(), "ioctl "+tc.name+": ") {
			t.Errorf("Do(%s, %q) = %v, want ErrBadValue with the request's prefix", tc.name, tc.value, err)
		}
	}
	for _, tc := range []struct{ name, value string }{
		{"TUNSIFHEAD", "on"},
		{"tungifhead", ""},
		{"TUNSIFPID", ""},
		{"TUNSIFMODE", "IFF_BROADCAST|multicast"},
		{"VMIO_SIOCSIFFLAGS", "0x1"},
		{"TAPGIFNAME", ""},
		{"SIOCGIFADDR", ""},
		{"TAPSIFADDR", "02:00:5e:10:00:01"},
		{"TUNGIFINFO", ""},
	} {
		_, err := Do(fd, tc.name, tc.value)
		if !errors.Is(err, unix.ENOTTY) || !strings.HasPrefix(err.Error(), "ioctl "+strings.ToUpper(tc.name)+": ") {
			t.Errorf("Do(%s, %q) on /dev/null = %v, want ENOTTY with the request's prefix", tc.name, tc.value, err)
		}
	}
	if err := SetIfHead(fd, true); !errors.Is(err, unix.ENOTTY) || err.Error() != "ioctl TUNSIFHEAD: inappropriate ioctl for device" {
		t.Errorf("SetIfHead on /dev/null = %v", err)
	}
}
