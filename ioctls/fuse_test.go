//go:build linux && !386 && !arm && !mips && !mipsle

// The 32-bit architectures are left out because go-fuse v2.12.1 (its splice
// package) does not compile there.

package ioctls

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// call is one ioctl as the daemon saw it.
type call struct {
	cmd     uint32
	arg     uint64
	in, out int
	pid     uint32
}

// fakeDev is a FUSE file that answers the table's requests from plain
// fields, and records every call that reached it. It checks the one thing
// this package promises the daemon: that FUSE's restricted ioctl delivers
// exactly Size bytes in the direction Dir says.
type fakeDev struct {
	fs.Inode
	t *testing.T

	mu    sync.Mutex // mu guards the fields below
	calls []call
	ints  map[uint32]int // value of each int "set" request, keyed by its number
	info  TunInfo
	mac   [6]byte
	vmio  uint64
	owner uint32
}

var (
	_ fs.NodeOpener    = (*fakeDev)(nil)
	_ fs.NodeIoctler   = (*fakeDev)(nil)
	_ fs.NodeGetattrer = (*fakeDev)(nil)
)

func (d *fakeDev) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (d *fakeDev) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o600
	return 0
}

// getters maps each int "get" request to the "set" request it reads back.
var getters = map[uint32]uint32{
	TUNGIFHEAD:  TUNSIFHEAD,
	TUNGDEBUG:   TUNSDEBUG,
	TAPGVNETHDR: TAPSVNETHDR,
}

func (d *fakeDev) Ioctl(ctx context.Context, f fs.FileHandle, cmd uint32, arg uint64, in, out []byte) (int32, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var pid uint32
	if c, ok := ctx.(*fuse.Context); ok {
		pid = c.Pid
	}
	d.calls = append(d.calls, call{cmd: cmd, arg: arg, in: len(in), out: len(out), pid: pid})

	io, ok := ByNumber(cmd)
	if !ok {
		return 0, syscall.ENOTTY
	}
	var wantIn, wantOut int
	if io.Dir&DirWrite != 0 {
		wantIn = int(io.Size)
	}
	if io.Dir&DirRead != 0 {
		wantOut = int(io.Size)
	}
	if len(in) != wantIn || len(out) != wantOut {
		d.t.Errorf("%s reached the daemon with %d bytes in and %d out, want %d and %d",
			io.Name, len(in), len(out), wantIn, wantOut)
		return 0, syscall.EINVAL
	}

	switch {
	case cmd == TUNSIFPID:
		d.owner = pid
	case cmd == VMIO_SIOCSIFFLAGS:
		d.vmio = arg
	case cmd == TUNSIFINFO:
		if err := d.info.Unmarshal(in); err != nil {
			return 0, syscall.EINVAL
		}
	case cmd == TUNGIFINFO:
		copy(out, d.info.Marshal())
	case cmd == TUNGIFNAME:
		if err := PutIfreqName(out, "tun0"); err != nil {
			return 0, syscall.EIO
		}
	case cmd == TAPSIFADDR:
		copy(d.mac[:], in)
	case cmd == TAPGIFADDR:
		copy(out, d.mac[:])
	case getters[cmd] != 0:
		binary.NativeEndian.PutUint32(out, uint32(int32(d.ints[getters[cmd]])))
	case io.Arg == ArgInt && io.Dir == DirWrite && cmd != TUNSBATCH:
		d.ints[cmd] = int(int32(binary.NativeEndian.Uint32(in)))
	default:
		return 0, syscall.ENOTTY
	}
	return 0, 0
}

func (d *fakeDev) reset() []call {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.calls
	d.calls = nil
	return c
}

type fakeRoot struct {
	fs.Inode
	dev *fakeDev
}

func (r *fakeRoot) OnAdd(ctx context.Context) {
	r.AddChild("tun0", r.NewPersistentInode(ctx, r.dev, fs.StableAttr{Mode: syscall.S_IFREG}), false)
}

// testMount mounts a FUSE file system holding one fakeDev and opens it.
func testMount(t *testing.T) (*fakeDev, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting FUSE for the ioctl round trip needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no /dev/fuse: %v", err)
	}
	dev := &fakeDev{t: t, ints: map[uint32]int{}}
	dir := t.TempDir()
	server, err := fs.Mount(dir, &fakeRoot{dev: dev}, &fs.Options{
		MountOptions: fuse.MountOptions{DirectMount: true, Name: "ioctlstest"},
	})
	if err != nil {
		t.Skipf("mount FUSE (kernel or sandbox without FUSE?): %v", err)
	}
	t.Cleanup(func() {
		if err := server.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	fd, err := unix.Open(filepath.Join(dir, "tun0"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return dev, fd
}

// TestFUSERoundTrip runs every client helper and Do against a FUSE file:
// the kernel must carry each argument to the daemon and back.
func TestFUSERoundTrip(t *testing.T) {
	dev, fd := testMount(t)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(SetIfHead(fd, true))
	if on, err := GetIfHead(fd); err != nil || !on {
		t.Errorf("GetIfHead = %v, %v", on, err)
	}
	must(SetDebug(fd, -3))
	if v, err := GetDebug(fd); err != nil || v != -3 {
		t.Errorf("GetDebug = %v, %v; want -3", v, err)
	}
	info := TunInfo{Baudrate: 9600, MTU: 1400, Type: IFT_PPP}
	must(SetInfo(fd, info))
	if got, err := GetInfo(fd); err != nil || got != info {
		t.Errorf("GetInfo = %v, %v; want %v", got, err, info)
	}
	for _, tap := range []bool{false, true} {
		if name, err := GetIfName(fd, tap); err != nil || name != "tun0" {
			t.Errorf("GetIfName(tap=%v) = %q, %v", tap, name, err)
		}
	}
	must(SetLinkMode(fd, true))
	must(SetMode(fd, unix.IFF_BROADCAST|unix.IFF_MULTICAST))
	must(SetTransient(fd, true))
	must(SetVnetHdr(fd, 12))
	if v, err := GetVnetHdr(fd); err != nil || v != 12 {
		t.Errorf("GetVnetHdr = %v, %v; want 12", v, err)
	}
	mac := net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	must(SetRemoteMAC(fd, mac))
	if got, err := GetRemoteMAC(fd); err != nil || got.String() != mac.String() {
		t.Errorf("GetRemoteMAC = %v, %v; want %v", got, err, mac)
	}
	must(SetVMIOFlags(fd, unix.IFF_UP|unix.IFF_PROMISC))
	// FUSE passes the daemon the calling thread's id, which is the process
	// id only on the main thread: make the call from a known thread.
	runtime.LockOSThread()
	tid := unix.Gettid()
	must(SetPID(fd))
	runtime.UnlockOSThread()

	dev.mu.Lock()
	for req, want := range map[uint32]int{
		TUNSLMODE: 1, TUNSIFMODE: unix.IFF_BROADCAST | unix.IFF_MULTICAST, TUNSTRANSIENT: 1,
	} {
		if got := dev.ints[req]; got != want {
			t.Errorf("daemon got %d for %#x, want %d", got, req, want)
		}
	}
	if dev.vmio != unix.IFF_UP|unix.IFF_PROMISC {
		t.Errorf("VMIO_SIOCSIFFLAGS reached the daemon as %#x, want the flags by value", dev.vmio)
	}
	if dev.owner != uint32(tid) {
		t.Errorf("TUNSIFPID: daemon saw pid %d, want the caller's thread %d", dev.owner, tid)
	}
	dev.mu.Unlock()

	for _, tc := range []struct{ name, value, want string }{
		{"TUNGIFHEAD", "", "1"},
		{"TUNSIFHEAD", "off", ""},
		{"tungifhead", "", "0"},
		{"TUNSIFINFO", "mtu=1280", ""},
		{"TAPGIFINFO", "", "mtu=1280 type=23 baudrate=9600"},
		{"SIOCSIFADDR", "02:00:5e:10:00:02", ""},
		{"SIOCGIFADDR", "", "02:00:5e:10:00:02"},
		{"TAPGIFNAME", "", "tun0"},
		{"TUNSDEBUG", "0x10", ""},
		{"TAPGDEBUG", "", "16"},
		{"VMIO_SIOCSIFFLAGS", "up|broadcast", ""},
		{"TUNSIFPID", "", ""},
	} {
		if got, err := Do(fd, tc.name, tc.value); err != nil || got != tc.want {
			t.Errorf("Do(%s, %q) = %q, %v; want %q", tc.name, tc.value, got, err, tc.want)
		}
	}
	if _, err := Do(fd, "TUNSBATCH", "1"); !errors.Is(err, unix.ENOTTY) {
		t.Errorf("TUNSBATCH on a device without batch mode = %v, want ENOTTY", err)
	}
}

// TestFUSEKernelBehaviour pins down what the README says about FUSE: the
// kernel answers FIONREAD and FIOASYNC itself, and a request in FreeBSD's
// encoding moves its argument the wrong way.
func TestFUSEKernelBehaviour(t *testing.T) {
	dev, fd := testMount(t)
	dev.reset()

	n, err := unix.IoctlGetInt(fd, unix.TIOCINQ) // TIOCINQ is FIONREAD
	if err != nil || n != 0 {
		t.Errorf("FIONREAD = %d, %v; want 0 from the file size", n, err)
	}
	if err := unix.IoctlSetPointerInt(fd, 0x5452, 1); !errors.Is(err, unix.ENOTTY) { // FIOASYNC
		t.Errorf("FIOASYNC = %v, want ENOTTY (FUSE files have no fasync)", err)
	}
	if calls := dev.reset(); len(calls) != 0 {
		t.Errorf("FIONREAD/FIOASYNC reached the daemon: %+v", calls)
	}

	// FreeBSD's TUNSIFHEAD: IOC_IN in bit 31, which Linux reads as _IOC_READ.
	const freebsdTUNSIFHEAD = 0x80000000 | SizeofInt<<16 | 't'<<8 | 96
	if err := unix.IoctlSetPointerInt(fd, freebsdTUNSIFHEAD, 1); !errors.Is(err, unix.ENOTTY) {
		t.Errorf("FreeBSD's TUNSIFHEAD = %v, want ENOTTY", err)
	}
	calls := dev.reset()
	if len(calls) != 1 || calls[0].in != 0 || calls[0].out != SizeofInt {
		t.Errorf("FreeBSD's TUNSIFHEAD reached the daemon as %+v; want no bytes in and %d out", calls, SizeofInt)
	}
}
