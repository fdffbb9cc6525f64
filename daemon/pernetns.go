package daemon

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/fs"
	"github.com/tundevfs/tundevfs/jails"
)

// Mount modes, as status shows them.
const (
	ModeJail     = "jail"      // one jail's devices
	ModePerNetns = "per-netns" // each caller's own jail (fs/pernetns.go)
)

// DefaultNetnsDev is where a daemon started for containers (the OCI hook,
// the packaged service) keeps its shared per-netns mount: the source of
// the bind mount at /dev/tundevfs in the CDI spec.
const DefaultNetnsDev = "/run/tundevfs/netns-dev"

// jailByNetns finds the alive jail on the network namespace with nsfs
// inode ino. Several jails may share one namespace (jails without vnet
// share the host's): the lowest jid wins, so the host's namespace maps to
// the host jail.
func (d *Daemon) jailByNetns(ino uint64) *jails.Jail {
	for _, j := range d.jails.List() { // ordered by jid
		if j.State() == jails.Alive && j.Netns().Ino() == ino {
			return j
		}
	}
	return nil
}

// MountPerNetns mounts the shared per-netns device directory at dir,
// making dir if it is missing. It is a user mount: it keeps a daemon with
// ExitWhenIdle running, and goes when the daemon stops.
func (d *Daemon) MountPerNetns(dir string) error {
	if dir == "" || !filepath.IsAbs(dir) {
		return fmt.Errorf("mount %q: need an absolute directory", dir)
	}
	dir = filepath.Clean(dir)
	if err := clearStale(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mount %s: %w", dir, err)
	}
	dir, err := resolveMountPoint(dir)
	if err != nil {
		return err
	}
	if err := checkMountPoint(dir); err != nil {
		return err
	}
	return d.mount(d.jails.Host(), dir, fs.Options{PerNetns: true, JailOf: d.jailByNetns, Debug: d.opts.Debug}, false)
}

// clearStale detaches a tundevfs mount at dir that a dead daemon left
// (its FUSE connection fails with deadConnection), so that a restarted daemon can
// mount the shared directory at its fixed path again. A live mount of
// another daemon is left alone and refused.
func clearStale(dir string) error {
	if !fs.IsTundevfsMount(dir) {
		return nil
	}
	var st unix.Stat_t
	err := unix.Stat(dir, &st)
	if err == nil {
		return fmt.Errorf("mount %s: another tundevfs daemon serves a mount there", dir)
	}
	if !deadConnection(err) {
		return fmt.Errorf("mount %s: %w", dir, err)
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
		return fmt.Errorf("mount %s: detach the stale mount of a dead daemon: %w", dir, err)
	}
	return nil
}

// ensurePerNetns makes sure a per-netns mount of this daemon is at dir
// (the OCI hook asks before each container): nothing to do if there is.
func (d *Daemon) ensurePerNetns(dir string) error {
	if m := d.mountAt(dir); m != nil && m.PerNetns() {
		return nil
	}
	return d.MountPerNetns(dir)
}

// mountMode names a mount's mode for status.
func mountMode(m *fs.Mount) string {
	if m.PerNetns() {
		return ModePerNetns
	}
	return ModeJail
}
