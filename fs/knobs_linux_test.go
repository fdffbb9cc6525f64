package fs_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
	"github.com/tundevfs/tundevfs/ioctls"
)

// nobody is the unprivileged user of the tests.
const nobody = 65534

// asNobody returns a command that runs as uid and gid 65534.
func asNobody(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	return cmd
}

// mountShared mounts the host jail with allow_other at a directory every
// user can reach, unmounted at cleanup.
func (e *env) mountShared(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tundevfs-shared-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.d.Call(t, daemon.Request{Op: "mount", Dir: dir, AllowOther: true}, nil)
	t.Cleanup(func() {
		daemon.Call(e.d.Socket, daemon.Request{Op: "umount", Dir: dir})
		if itest.IsMounted(dir) {
			unix.Unmount(dir, unix.MNT_DETACH)
			t.Errorf("mount %s was still there at cleanup", dir)
		}
		os.Remove(dir)
	})
	return dir
}

// TestKnobsAtOnce checks that every sysctl knob of SPEC §3 takes effect on
// the next operation, without a remount.
func TestKnobsAtOnce(t *testing.T) {
	e := newEnv(t)
	sysctl := func(kv string) { e.cli(t, "sysctl", kv) }
	clones := func(name string) bool {
		_, err := os.Readlink(filepath.Join(e.dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("readlink %s: %v", name, err)
		}
		return err == nil
	}
	unitClones := func(name string) bool {
		_, err := os.Stat(filepath.Join(e.dir, name))
		return err == nil
	}

	// net.link.tun.devfs_cloning
	sysctl("net.link.tun.devfs_cloning=0")
	if clones("tun") || unitClones("tun7") {
		t.Fatal("tun cloned with net.link.tun.devfs_cloning=0")
	}
	if !clones("tap") {
		t.Fatal("tap did not clone with only tun cloning off")
	}
	sysctl("net.link.tun.devfs_cloning=1")
	if !clones("tun") {
		t.Fatal("tun did not clone after net.link.tun.devfs_cloning=1")
	}

	// net.link.tap.devfs_cloning, for tap and vmnet
	sysctl("net.link.tap.devfs_cloning=0")
	if clones("tap") || clones("vmnet") || unitClones("tap9") {
		t.Fatal("tap or vmnet cloned with net.link.tap.devfs_cloning=0")
	}
	sysctl("net.link.tap.devfs_cloning=1")
	if !clones("vmnet") {
		t.Fatal("vmnet did not clone after net.link.tap.devfs_cloning=1")
	}

	// net.link.tap.up_on_open
	sysctl("net.link.tap.up_on_open=1")
	fd := e.open(t, "tap", 0)
	up := devName(t, fd)
	if l := e.mustLink(t, up); !slices.Contains(l.Flags, "UP") {
		t.Fatalf("%s not up on open with up_on_open=1: %v", up, l.Flags)
	}
	sysctl("net.link.tap.up_on_open=0")
	fd = e.open(t, "tap", 0)
	down := devName(t, fd)
	if l := e.mustLink(t, down); slices.Contains(l.Flags, "UP") {
		t.Fatalf("%s up on open with up_on_open=0: %v", down, l.Flags)
	}

	// net.link.tap.user_open: a user may clone tap and vmnet, never tun.
	shared := e.mountShared(t)
	userClone := func(name string) bool {
		return asNobody("readlink", filepath.Join(shared, name)).Run() == nil
	}
	if userClone("tap") {
		t.Fatal("a user cloned tap with net.link.tap.user_open=0")
	}
	sysctl("net.link.tap.user_open=1")
	if !userClone("tap") || !userClone("vmnet") {
		t.Fatal("a user could not clone tap or vmnet with net.link.tap.user_open=1")
	}
	if userClone("tun") {
		t.Fatal("a user cloned tun with net.link.tap.user_open=1")
	}
	sysctl("net.link.tap.user_open=0")
	if userClone("tap") {
		t.Fatal("a user cloned tap after net.link.tap.user_open=0")
	}
}

// TestTransientNeedsPrivilege: TUNSTRANSIENT asks for PRIV_NET_IFDESTROY,
// which a user who may open the device does not have.
func TestTransientNeedsPrivilege(t *testing.T) {
	e := newEnv(t)
	cc := buildCClient(t)
	shared := e.mountShared(t)
	tap := e.cli(t, "ifconfig", "tap", "create")
	if err := os.Chmod(filepath.Join(shared, tap), 0o666); err != nil {
		t.Fatal(err)
	}
	cmd := asNobody(cc, filepath.Join(shared, tap))
	cmd.Stdin = strings.NewReader("ioctl TAPSTRANSIENT 1\nioctl TAPGIFNAME\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as nobody: %v: %s", err, out)
	}
	if want := "ok ready\nerr EPERM\nok " + tap + "\n"; string(out) != want {
		t.Fatalf("client as nobody said %q, want %q", out, want)
	}
	if !itest.WaitFor(func() bool { return !e.device(t, tap).Open }) {
		t.Fatal("still open")
	}
	e.mustLink(t, tap)
}

// TestLink0 checks FreeBSD's link0 exception: a tap with link0 keeps its
// state on last close; without it, it goes down and loses its addresses.
func TestLink0(t *testing.T) {
	e := newEnv(t)
	l := e.setup(t, "tap", 1)
	e.cli(t, "ifconfig", l.name, "link0")
	if m := e.device(t, l.name).Modes; !slices.Contains(m, "link0") {
		t.Fatalf("modes after ifconfig link0: %v", m)
	}
	unix.Close(l.fd)
	if !itest.WaitFor(func() bool { return !e.device(t, l.name).Open }) {
		t.Fatal("still open")
	}
	if lk := e.mustLink(t, l.name); !slices.Contains(lk.Flags, "UP") {
		t.Fatalf("tap with link0 went down on close: %v", lk.Flags)
	}
	if out := e.ns.Run(t, "ip", "-4", "addr", "show", "dev", l.name); !strings.Contains(out, l.local) {
		t.Fatalf("tap with link0 lost its address on close: %s", out)
	}

	e.cli(t, "ifconfig", l.name, "-link0")
	fd, err := unix.Open(filepath.Join(e.dir, l.name), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if !itest.WaitFor(func() bool {
		return !slices.Contains(e.mustLink(t, l.name).Flags, "UP")
	}) {
		t.Fatal("tap without link0 still up after close")
	}
	if out := e.ns.Run(t, "ip", "-4", "addr", "show", "dev", l.name); strings.Contains(out, l.local) {
		t.Fatalf("tap without link0 kept its address: %s", out)
	}
}

// TestTapMAC: a tap's MAC is unicast, locally administered and the same
// every time the same device is made in the same jail.
func TestTapMAC(t *testing.T) {
	e := newEnv(t)
	macOf := func(name string) []byte { return mustMAC(t, e.mustLink(t, name).Address) }
	tap := e.cli(t, "ifconfig", "tap", "create")
	first := macOf(tap)
	if first[0]&1 != 0 || first[0]&2 == 0 {
		t.Fatalf("%s MAC %x: want unicast and locally administered", tap, first)
	}
	e.cli(t, "ifconfig", tap, "destroy")
	tap = e.cli(t, "ifconfig", "tap", "create")
	if again := macOf(tap); string(again) != string(first) {
		t.Fatalf("%s MAC %x, was %x", tap, again, first)
	}
	vmnet := e.cli(t, "ifconfig", "vmnet", "create")
	if other := macOf(vmnet); string(other) == string(first) {
		t.Fatalf("%s has %s's MAC %x", vmnet, tap, other)
	}
	// TAPGIFADDR starts as the interface's own MAC at open.
	fd := e.open(t, tap, 0)
	if mac, err := ioctls.GetRemoteMAC(fd); err != nil || string(mac) != string(first) {
		t.Fatalf("TAPGIFADDR = %v, %v; want %x", mac, err, first)
	}
}
