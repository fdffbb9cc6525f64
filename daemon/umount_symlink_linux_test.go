package daemon_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
)

// TestUmountFollowsNoSymlink: a user who can write a directory above a
// mount point can move it away and put a symlink in its place; the
// daemon's unmount of that mount must not follow the symlink and detach
// whatever is at the same path behind it (here a tmpfs the test made).
func TestUmountFollowsNoSymlink(t *testing.T) {
	_, d := newDaemon(t)
	base := t.TempDir()
	ours := filepath.Join(base, "a", "dev")
	victim := filepath.Join(base, "victim", "dev")
	for _, dir := range []string{ours, victim} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount("tundevfs-test", victim, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k"); err != nil {
		t.Fatalf("mount a tmpfs at %s: %v", victim, err)
	}
	t.Cleanup(func() {
		if itest.IsMounted(victim) {
			unix.Unmount(victim, unix.UMOUNT_NOFOLLOW)
		}
	})
	d.Call(t, daemon.Request{Op: "mount", Dir: ours}, nil)
	moved := filepath.Join(base, "moved", "dev")
	t.Cleanup(func() {
		// The mount, dead or alive, went along with its parent.
		for _, dir := range []string{ours, moved} {
			for i := 0; i < 4 && itest.IsMounted(dir); i++ {
				unix.Unmount(dir, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
			}
		}
	})
	// The swap: a/ goes away (renaming a directory above a mount point is
	// allowed), a symlink to victim/ takes its place.
	if err := os.Rename(filepath.Join(base, "a"), filepath.Join(base, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "victim"), filepath.Join(base, "a")); err != nil {
		t.Fatal(err)
	}
	_, err := daemon.Call(d.Socket, daemon.Request{Op: "umount", Dir: ours})
	t.Logf("umount after the swap: %v", err)
	if !itest.IsMounted(victim) {
		t.Fatalf("the daemon's umount of %s followed the symlink and unmounted %s", ours, victim)
	}
	// The daemon let go of its mount all the same.
	for _, m := range d.Status(t).Mounts {
		if m.Dir == ours {
			t.Errorf("the daemon still lists %s after umount: %+v", ours, m)
		}
	}
}
