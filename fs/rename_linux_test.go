package fs_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/internal/itest"
	"github.com/tundevfs/tundevfs/ioctls"
)

// cli runs the tundevfs command against the test's daemon and fails the
// test if it fails.
func (e *env) cli(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.d.CLI(args...)
	if err != nil {
		t.Fatalf("tundevfs %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// aliasOf returns the target of the alias link name, or "" when there is
// no such link.
func (e *env) aliasOf(name string) string {
	st, err := os.Lstat(filepath.Join(e.dir, name))
	if err != nil || st.Mode()&os.ModeSymlink == 0 {
		return ""
	}
	target, err := os.Readlink(filepath.Join(e.dir, name))
	if err != nil {
		return ""
	}
	return target
}

// TestRename235704 is FreeBSD's if_tun_test.sh 235704 in the host jail:
// create a tun, rename it, destroy it by the new name, and nothing is left.
// Along the way the alias node follows every rename.
func TestRename235704(t *testing.T) {
	e := newEnv(t)
	tun := e.cli(t, "ifconfig", "tun", "create")
	if tun != "tun0" {
		t.Fatalf("ifconfig tun create = %q", tun)
	}
	e.ns.Run(t, "ip", "link", "set", tun, "name", "foo")

	// The alias is there at once, as a link to the device node.
	if got := e.aliasOf("foo"); got != "tun0" {
		t.Fatalf("foo -> %q, want tun0", got)
	}
	ents, err := os.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range ents {
		names = append(names, de.Name())
		if de.Name() == "foo" && de.Type() != os.ModeSymlink {
			t.Fatalf("readdir: foo has type %v, want a symlink", de.Type())
		}
	}
	if !slices.Equal(names, []string{"foo", "tun0"}) {
		t.Fatalf("readdir = %v, want [foo tun0]", names)
	}
	// Opening the alias opens the device, whose name is the new one.
	fd := e.open(t, "foo", 0)
	if name, err := ioctls.GetIfName(fd, false); err != nil || name != "foo" {
		t.Fatalf("TUNGIFNAME through foo = %q, %v", name, err)
	}
	if got := devName(t, fd); got != "tun0" {
		t.Fatalf("foo opened %s, want tun0", got)
	}
	unix.Close(fd)

	// Another rename moves the alias; the old name goes from the cache.
	if !itest.WaitFor(func() bool { return !e.device(t, "foo").Open }) {
		t.Fatal("tun0 still open")
	}
	e.ns.Run(t, "ip", "link", "set", "foo", "name", "bar")
	if !itest.WaitFor(func() bool { return e.aliasOf("foo") == "" }) {
		t.Fatal("alias foo still there after renaming to bar")
	}
	if got := e.aliasOf("bar"); got != "tun0" {
		t.Fatalf("bar -> %q, want tun0", got)
	}
	// Renaming back removes the alias.
	e.ns.Run(t, "ip", "link", "set", "bar", "name", "tun0")
	if !itest.WaitFor(func() bool { return e.aliasOf("bar") == "" && !e.listed(t, "bar") }) {
		t.Fatal("alias bar still there after renaming back")
	}

	// PR 235704: destroy by the new name.
	e.ns.Run(t, "ip", "link", "set", "tun0", "name", "foo")
	e.cli(t, "ifconfig", "foo", "destroy")
	if _, there := e.link(t, "foo"); there {
		t.Fatal("interface foo still there after ifconfig foo destroy")
	}
	if e.listed(t, "foo") || e.listed(t, "tun0") {
		t.Fatal("node or alias still listed after destroy")
	}
	if _, err := os.Lstat(filepath.Join(e.dir, "foo")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lstat foo after destroy: %v, want ENOENT", err)
	}
	if st := settle(t, e.d); st.UnitsInUse != 0 {
		t.Fatalf("units in use after destroy: %d", st.UnitsInUse)
	}
	if links := e.ns.Links(t); !slices.Equal(links, []string{"lo"}) {
		t.Fatalf("interfaces left: %v", links)
	}
}

// TestRenameInJail: the alias shows in the jail's own directory only, and
// destroy by the new name works there (the 235704 scenario in a VNET jail).
func TestRenameInJail(t *testing.T) {
	e := newEnv(t)
	e.cli(t, "jail", "-c", "name=r", "vnet", "persist")
	dir := e.d.Mount(t, "r")
	tun := e.cli(t, "ifconfig", "-j", "r", "tun", "create")
	e.cli(t, "jexec", "r", "ip", "link", "set", tun, "name", "foo")
	if target, err := os.Readlink(filepath.Join(dir, "foo")); err != nil || target != tun {
		t.Fatalf("foo in the jail's directory -> %q, %v; want %s", target, err, tun)
	}
	if e.listed(t, "foo") || e.listed(t, tun) {
		t.Fatal("the jail's device or alias shows in the host's directory")
	}
	e.cli(t, "ifconfig", "-j", "r", "foo", "destroy")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range ents {
		if de.Name() == "foo" || de.Name() == tun {
			t.Fatalf("%s still listed after destroy", de.Name())
		}
	}
	e.cli(t, "jail", "-r", "r")
}
