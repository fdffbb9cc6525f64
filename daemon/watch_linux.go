package daemon

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/jails"
)

// watchKey names one process watch of a jail: its adopted namespace's
// process ("owner"), the client that asked for command= until it names
// its command ("client"), and that command ("command").
type watchKey struct {
	j    *jails.Jail
	kind string
}

// peerPID is the pid of the process at the other end of c (SO_PEERCRED),
// or 0.
func peerPID(c *net.UnixConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	pid := 0
	rc.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return pid
}

// watchPid starts a watch of pid: when it exits the jail is removed.
func (d *Daemon) watchPid(j *jails.Jail, kind string, pid int) error {
	pidfd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("jail %s: watch pid %d: %w", j.Name(), pid, err)
	}
	d.startWatch(watchKey{j, kind}, os.NewFile(uintptr(pidfd), "pidfd"))
	return nil
}

func (d *Daemon) startWatch(k watchKey, f *os.File) {
	d.mu.Lock()
	old := d.owners[k]
	d.owners[k] = f
	d.mu.Unlock()
	if old != nil {
		old.SetReadDeadline(aLongTimeAgo)
	}
	go d.watchOwner(k, f)
}

// stopWatch ends one watch of a jail early.
func (d *Daemon) stopWatch(k watchKey) {
	d.mu.Lock()
	f := d.owners[k]
	d.mu.Unlock()
	if f != nil {
		f.SetReadDeadline(aLongTimeAgo)
	}
}

// watchCommand is the request "jail-watch": the client that created a
// command= jail names the process of its command (its own child); the
// daemon then removes the jail when that process exits, whatever becomes
// of the client, and stops watching the client.
func (d *Daemon) watchCommand(name string, pid, peer int) error {
	if pid <= 0 {
		return fmt.Errorf("jail-watch: %w: bad pid %d", ErrBadRequest, pid)
	}
	j, err := d.jail(name)
	if err != nil {
		return fmt.Errorf("jail-watch: %w", err)
	}
	if peer == 0 || procParent(pid) != peer {
		return fmt.Errorf("jail-watch %s: pid %d is not a child of the caller", name, pid)
	}
	if j.Persist() {
		return nil
	}
	if err := d.watchPid(j, "command", pid); err != nil {
		return err
	}
	d.stopWatch(watchKey{j, "client"})
	return nil
}

// jexecDirOf is the jexec mount point of j (see jexecDir).
func (d *Daemon) jexecDirOf(j *jails.Jail) string {
	return filepath.Join(StateDir(d.opts.Socket), jailsName, j.Name()+"."+strconv.Itoa(j.ID()), "dev")
}

// resolveMountPoint resolves the symbolic links of a mount point once, so
// that the mount is made and known by its real path.
func resolveMountPoint(dir string) (string, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		if deadConnection(err) {
			return "", fmt.Errorf("mount %s: %w (a tundevfs mount whose daemon died: tundevfs umount %s)", dir, err, dir)
		}
		return "", fmt.Errorf("mount %s: %w", dir, err)
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("mount %s: %w", dir, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("mount %s: not a directory", dir)
	}
	return real, nil
}

// resolveParent resolves the links of dir, or when that fails (a dead
// mount at dir) of its parent.
func resolveParent(dir string) (string, error) {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		return real, nil
	}
	parent, err := filepath.EvalSymlinks(filepath.Dir(dir))
	if err != nil {
		return "", err
	}
	return filepath.Join(parent, filepath.Base(dir)), nil
}
