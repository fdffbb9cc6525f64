package daemon_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tundevfs/tundevfs/internal/testenv"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
	"github.com/tundevfs/tundevfs/jails"
)

// mountPerNetns makes a per-netns mount of d in a fresh directory,
// unmounted at cleanup.
func mountPerNetns(t *testing.T, d *itest.Daemon) string {
	t.Helper()
	dir := t.TempDir()
	// Reachable by every user, as /run/tundevfs is.
	for _, p := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d.Call(t, daemon.Request{Op: "mount", Dir: dir, PerNetns: true}, nil)
	t.Cleanup(func() {
		if itest.IsMounted(dir) {
			daemon.Call(d.Socket, daemon.Request{Op: "umount", Dir: dir})
		}
		if itest.IsMounted(dir) {
			unix.Unmount(dir, unix.MNT_DETACH)
			t.Errorf("mount %s was still there at cleanup", dir)
		}
	})
	return dir
}

// inNetns runs fn on a thread inside the namespace at path, so that every
// FUSE request fn makes names a caller there.
func inNetns(t *testing.T, path string, fn func() error) {
	t.Helper()
	ns, err := jails.OpenNetns(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := ns.Do(fn); err != nil {
		t.Fatalf("in %s: %v", path, err)
	}
}

func listDir(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names, err
}

// TestPerNetnsMount: one shared mount, two namespaces with a jail each and
// one without. Each caller sees and opens only its own jail's devices,
// although both are called tun0 and the kernel caches dentries per
// superblock; the daemon's own namespace sees the host jail; a namespace
// without a jail sees nothing and cannot clone.
func TestPerNetnsMount(t *testing.T) {
	host, d := newDaemon(t)
	nsA, nsB, nsC := itest.NewNetns(t), itest.NewNetns(t), itest.NewNetns(t)
	d.Call(t, daemon.Request{Op: "jail-create", Args: []string{"name=a", "vnet=" + nsA.Path, "persist"}}, nil)
	d.Call(t, daemon.Request{Op: "jail-create", Args: []string{"name=b", "vnet=" + nsB.Path, "persist", "clone_uid=1000"}}, nil)
	t.Cleanup(func() { d.CLI("jail", "-r", "a"); d.CLI("jail", "-r", "b") })
	dir := mountPerNetns(t, d)

	// Each jail's first clone is its own tun0, in its own namespace; the
	// fds stay open while the other side looks.
	openTun := func(ns *itest.Netns) (fd int) {
		inNetns(t, ns.Path, func() error {
			var err error
			fd, err = unix.Open(filepath.Join(dir, "tun"), unix.O_RDWR|unix.O_CLOEXEC, 0)
			return err
		})
		t.Cleanup(func() { unix.Close(fd) })
		p, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		if p != filepath.Join(dir, "tun0") {
			t.Fatalf("first clone in %s is %s, want tun0", ns.Name, p)
		}
		return fd
	}
	fdA := openTun(nsA)
	openTun(nsB)
	if got := tunLinks(t, nsA.Path); !slices.Equal(got, []string{"tun0"}) {
		t.Fatalf("links in a: %v", got)
	}
	if got := tunLinks(t, nsB.Path); !slices.Equal(got, []string{"tun0"}) {
		t.Fatalf("links in b: %v", got)
	}
	// a also has tun1, which b must neither list nor reach.
	inNetns(t, nsA.Path, func() error {
		return unix.Stat(filepath.Join(dir, "tun1"), new(unix.Stat_t))
	})

	// The same path, back to back from the two namespaces: each gets its
	// own node, never the other's cached one.
	inos := map[string]uint64{}
	for i := 0; i < 20; i++ {
		for _, ns := range []*itest.Netns{nsA, nsB} {
			inNetns(t, ns.Path, func() error {
				var st unix.Stat_t
				if err := unix.Stat(filepath.Join(dir, "tun0"), &st); err != nil {
					return err
				}
				if old, ok := inos[ns.Name]; ok && old != st.Ino {
					return fmt.Errorf("tun0 changed node: %d then %d", old, st.Ino)
				}
				inos[ns.Name] = st.Ino
				return nil
			})
		}
	}
	if inos[nsA.Name] == inos[nsB.Name] {
		t.Fatalf("a and b see the same tun0 node %d", inos[nsA.Name])
	}
	lists := map[string][]string{}
	for _, ns := range []*itest.Netns{nsA, nsB, host, nsC} {
		inNetns(t, ns.Path, func() error {
			var err error
			lists[ns.Name], err = listDir(dir)
			return err
		})
	}
	if !slices.Equal(lists[nsA.Name], []string{"tun0", "tun1"}) || !slices.Equal(lists[nsB.Name], []string{"tun0"}) ||
		len(lists[host.Name]) != 0 || len(lists[nsC.Name]) != 0 {
		t.Fatalf("listings: a %v, b %v, host %v, no jail %v", lists[nsA.Name], lists[nsB.Name], lists[host.Name], lists[nsC.Name])
	}

	// b's uid 1000 may clone in b but not reach a's tun1: the lookup of
	// tun1 there would clone b's own, which it may; uid 2000 may not.
	inNetns(t, nsB.Path, func() error {
		if err := unix.Setresuid(-1, 2000, -1); err != nil { // this thread only
			return err
		}
		defer unix.Setresuid(-1, 0, -1)
		if err := unix.Stat(filepath.Join(dir, "tun1"), new(unix.Stat_t)); !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("uid 2000 stat tun1 in b: %v, want ENOENT", err)
		}
		return nil
	})
	// No jail, no devices: tun is ENOENT, and so is a's tun0.
	inNetns(t, nsC.Path, func() error {
		for _, name := range []string{"tun", "tun0", "tun1"} {
			if _, err := unix.Open(filepath.Join(dir, name), unix.O_RDWR|unix.O_CLOEXEC, 0); !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("open %s without a jail: %v, want ENOENT", name, err)
			}
		}
		return nil
	})
	if got := tunLinks(t, nsC.Path); len(got) != 0 {
		t.Fatalf("a namespace without a jail got interfaces %v", got)
	}
	// The host namespace is the host jail: root clones there.
	inNetns(t, host.Path, func() error {
		return unix.Stat(filepath.Join(dir, "tun0"), new(unix.Stat_t))
	})
	if got := tunLinks(t, host.Path); !slices.Equal(got, []string{"tun0"}) {
		t.Fatalf("links in the daemon's namespace: %v", got)
	}

	// An open file stays with its device: a packet written to a's fd by a
	// thread in another namespace (one without a jail) arrives in a.
	nsA.Run(t, "ip", "addr", "add", "10.66.0.1", "peer", "10.66.0.2", "dev", "tun0")
	nsA.Run(t, "ip", "link", "set", "tun0", "up")
	var sock int
	inNetns(t, nsA.Path, func() error {
		var err error
		if sock, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		return unix.Bind(sock, &unix.SockaddrInet4{Port: 6066, Addr: [4]byte{10, 66, 0, 1}})
	})
	defer unix.Close(sock)
	unix.SetsockoptTimeval(sock, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})
	pkt := itest.UDP4(netip.MustParseAddr("10.66.0.2"), netip.MustParseAddr("10.66.0.1"), 7000, 6066, []byte("stays"))
	inNetns(t, nsC.Path, func() error {
		_, err := unix.Write(fdA, pkt)
		return err
	})
	buf := make([]byte, 64)
	if n, _, err := testenv.Recvfrom(sock, buf); err != nil || string(buf[:n]) != "stays" {
		t.Fatalf("packet through a's fd from another namespace: %q, %v", buf[:max(n, 0)], err)
	}

	// Status tells the modes apart.
	var modes []string
	for _, m := range d.Status(t).Mounts {
		if m.Dir == dir {
			modes = append(modes, m.Mode)
		}
	}
	if !slices.Equal(modes, []string{daemon.ModePerNetns}) {
		t.Fatalf("status modes of %s: %v", dir, modes)
	}
	if out, err := d.CLI("status"); err != nil || !slices.Contains(strings.Split(out, "\n"), "mount "+dir+" (per-netns: each caller's own jail)") {
		t.Fatalf("status: %v\n%s", err, out)
	}

	// Removing a jail under the shared mount, which stays, leaves nothing
	// of it: the kernel is told to forget its nodes, so no device lingers.
	// a's tun0 is still open, as a container's device is when its
	// process dies; a's tun5 has a dentry in the kernel that nobody else
	// replaced.
	inNetns(t, nsA.Path, func() error {
		return unix.Stat(filepath.Join(dir, "tun5"), new(unix.Stat_t))
	})
	if out, err := d.CLI("jail", "-r", "a"); err != nil {
		t.Fatalf("jail -r a: %v %s", err, out)
	}
	unix.Close(fdA)
	left := func() (names []string) {
		for _, dv := range d.Status(t).Devices {
			if dv.Jail == "a" {
				names = append(names, dv.Name)
			}
		}
		return names
	}
	if !itest.WaitFor(func() bool { return len(left()) == 0 }) {
		t.Fatalf("devices of the removed jail a left: %v", left())
	}
}

// TestPerNetnsStaleMount: a daemon that died left its shared mount; the
// next daemon with the same --netns-dev detaches it and serves the path
// again. A live one of another daemon is refused.
func TestPerNetnsStaleMount(t *testing.T) {
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	base := t.TempDir()
	netnsDev := filepath.Join(base, "netns-dev")
	socket := filepath.Join(base, "dead.sock")
	dead := ns.Command(itest.Binary(t), "--socket", socket, "daemon", "--netns-dev", netnsDev)
	if err := dead.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dead.Process.Kill()
		dead.Wait()
		for i := 0; i < 4 && itest.IsMounted(netnsDev); i++ {
			unix.Unmount(netnsDev, unix.MNT_DETACH)
		}
		os.RemoveAll(daemon.StateDir(socket)) // the killed daemon's record
	})
	if !itest.WaitFor(func() bool { _, err := daemon.Call(socket, daemon.Request{Op: "ping"}); return err == nil }) {
		t.Fatal("the first daemon did not answer")
	}
	// A second daemon while the first lives: refused, the first's mount
	// untouched.
	other := ns.Command(itest.Binary(t), "--socket", filepath.Join(base, "other.sock"), "daemon", "--netns-dev", netnsDev)
	var out bytes.Buffer
	other.Stdout, other.Stderr = &out, &out
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- other.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(20 * time.Second): // it mounted and serves: wrong
		other.Process.Signal(unix.SIGTERM)
		<-exited
		t.Fatalf("a second daemon took the live shared mount's path: %s", out.String())
	}
	if err == nil || !strings.Contains(out.String(), "another tundevfs daemon serves a mount there") {
		t.Fatalf("second daemon on a live shared mount: %v %s", err, out.String())
	}
	dead.Process.Kill()
	dead.Wait()
	if !itest.IsMounted(netnsDev) {
		t.Fatal("the killed daemon left no mount: nothing to test")
	}
	d := itest.StartDaemon(t, ns, "--netns-dev", netnsDev)
	var modes []string
	for _, m := range d.Status(t).Mounts {
		modes = append(modes, m.Dir+" "+m.Mode)
	}
	if !slices.Equal(modes, []string{netnsDev + " " + daemon.ModePerNetns}) {
		t.Fatalf("mounts: %v", modes)
	}
	if _, err := os.ReadDir(netnsDev); err != nil {
		t.Fatalf("the new shared mount: %v", err)
	}
}
