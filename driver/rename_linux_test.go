package driver

import (
	"errors"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/internal/testenv"
	"github.com/tundevfs/tundevfs/jails"
)

// socketsIn counts the process's sockets that live in the network namespace
// with inode ino (SIOCGSKNS opens a socket's namespace).
func socketsIn(t *testing.T, ino uint64) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, de := range ents {
		fd, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", de.Name()))
		if len(target) < 7 || target[:7] != "socket:" {
			continue
		}
		nsfd, err := unix.IoctlRetInt(fd, unix.SIOCGSKNS)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(nsfd, &st) == nil && st.Ino == ino {
			n++
		}
		unix.Close(nsfd)
	}
	return n
}

// TestRenameWatchJail follows renames in a jail of its own and checks that
// removing the jail stops the watcher: no goroutine and no socket is left
// in the namespace.
func TestRenameWatchJail(t *testing.T) {
	testenv.RequirePrivileged(t, tunPath)
	host, err := jails.CurrentNetns()
	if err != nil {
		t.Fatal(err)
	}
	// After CurrentNetns: the process's home namespace fd, opened once on
	// first use and kept, is in the baseline.
	base := testenv.NewBaseline(t, testenv.Self())
	reg := jails.NewRegistry(host, jails.Settings{})
	m := NewManager(reg, log.New(io.Discard, "", 0))
	defer func() {
		reg.Shutdown()
		m.Close()
		base.Check(t, "after shutdown")
	}()
	ns, err := jails.NewNetns()
	if err != nil {
		t.Fatal(err)
	}
	ino := ns.Ino()
	j, err := reg.Create(jails.Options{Name: "renames", Netns: ns})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan Event, 16)
	unsub := m.Subscribe(j, func(ev Event) {
		if ev.Kind == Renamed {
			events <- ev
		}
	})
	defer unsub()

	d, err := m.Create(j, Tun, -1, IfconfigCreate, Owner{Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	rename := func(from, to string) {
		t.Helper()
		err := j.Netns().Do(func() error {
			l, err := netlink.LinkByName(from)
			if err != nil {
				return err
			}
			return netlink.LinkSetName(l, to)
		})
		if err != nil {
			t.Fatalf("rename %s to %s: %v", from, to, err)
		}
	}
	next := func() Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no Renamed event in 10s")
		}
		return Event{}
	}
	rename("tun0", "foo")
	if ev := next(); ev.Device != d || ev.Name != "tun0" || ev.Alias != "foo" || ev.OldAlias != "" {
		t.Fatalf("event %+v, want tun0 renamed to foo", ev)
	}
	if got := m.Lookup(j, "foo"); got != d || d.Name() != "foo" {
		t.Fatalf("Lookup(foo) = %v, name %q", got, d.Name())
	}
	rename("foo", "tun0")
	if ev := next(); ev.Alias != "" || ev.OldAlias != "foo" {
		t.Fatalf("event %+v, want foo renamed back to tun0", ev)
	}
	if m.Resolve(j, "foo") != nil {
		t.Fatal("foo still resolves after renaming back")
	}
	// Resolve finds a rename the watcher may not have seen yet.
	rename("tun0", "bar")
	if got := m.Resolve(j, "bar"); got != d {
		t.Fatalf("Resolve(bar) = %v", got)
	}
	if ev := next(); ev.Alias != "bar" {
		t.Fatalf("event %+v, want an alias bar", ev)
	}

	if n := socketsIn(t, ino); n < 1 {
		t.Fatalf("%d sockets in the jail's namespace before removal, want the watcher's", n)
	}
	if err := reg.Remove("renames"); err != nil {
		t.Fatal(err)
	}
	if d.Alive() {
		t.Fatal("device alive after its jail was removed")
	}
	if n := socketsIn(t, ino); n != 0 {
		t.Fatalf("%d sockets left in the removed jail's namespace", n)
	}
	if err := m.DestroyByName(j, "bar"); !errors.Is(err, ErrNoDevice) {
		t.Fatalf("destroy in a removed jail: %v", err)
	}
}
