package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/driver"
	"github.com/tundevfs/tundevfs/fs"
	"github.com/tundevfs/tundevfs/jails"
)

// JailParams are the parameters of `jail -c`, as jail(8) spells them.
type JailParams struct {
	Name     string
	Vnet     bool   // a new network namespace
	VnetPath string // adopt this one (/run/netns/X, /proc/PID/ns/net)
	Path     string // mount the jail's devices here
	Persist  bool
	// Settings are the jail's own parameters (clone_uid=, dev_mode=,
	// max_devices=, fastpath=...), defaults where not given.
	Settings  jails.Settings
	OwnerPID  int  // the process whose namespace was adopted, watched
	HasParent bool // a client runs command= and removes the jail after
	// ClientPID is that client (HasParent): watched until it names its
	// command's process (jail-watch), which is watched from then on.
	ClientPID int
}

// DefaultSettings are a jail's settings where jail(8) parameters say
// nothing: only root clones, nodes are root:root 0600, at most
// driver.DefaultDeviceLimit devices, the fast path allowed.
func DefaultSettings() jails.Settings {
	return jails.Settings{
		Owner:      jails.Owner{UID: 0, GID: 0, Mode: 0o600},
		MaxDevices: driver.DefaultDeviceLimit,
	}
}

// ParseJailParams parses `name=x vnet path=/d persist clone_uid=1000 ...`.
// command= is the client's business and must be taken off first.
func ParseJailParams(args []string) (*JailParams, error) {
	p := &JailParams{Settings: DefaultSettings()}
	for _, a := range args {
		k, v, hasValue := strings.Cut(a, "=")
		var err error
		switch k {
		case "name":
			p.Name = v
		case "vnet":
			if hasValue && v != "new" {
				p.VnetPath = v
			} else {
				p.Vnet = true
			}
		case "path":
			p.Path, err = parseJailPath(v)
		case "persist":
			p.Persist = !hasValue || v == "1" || v == "true"
		case "clone_uid":
			p.Settings.AllowUIDs, err = parseIDs(v)
		case "clone_gid":
			p.Settings.AllowGIDs, err = parseIDs(v)
		case "dev_uid":
			p.Settings.Owner.UID, err = parseID(v)
		case "dev_gid":
			p.Settings.Owner.GID, err = parseID(v)
		case "dev_mode":
			var m uint64
			m, err = strconv.ParseUint(v, 8, 32)
			if err == nil && m > 0o777 {
				err = errors.New("mode above 0777")
			}
			p.Settings.Owner.Mode = uint32(m)
		case "fastpath":
			switch v {
			case "0", "false":
				p.Settings.NoFastPath = true
			case "", "1", "true":
				p.Settings.NoFastPath = false
			default:
				err = errors.New("want 0 or 1")
			}
		case "max_devices":
			p.Settings.MaxDevices, err = strconv.Atoi(v)
			if err == nil && (p.Settings.MaxDevices < 1 || p.Settings.MaxDevices > driver.MaxUnit+1) {
				err = errors.New("out of range")
			}
		default:
			return nil, fmt.Errorf("jail: unknown parameter %q (name, vnet, vnet=PATH, path, persist, clone_uid, clone_gid, dev_uid, dev_gid, dev_mode, max_devices, fastpath)", k)
		}
		if err != nil {
			return nil, fmt.Errorf("jail: %s: %w", a, err)
		}
	}
	if p.Name == "" {
		return nil, errors.New("jail: name= is required")
	}
	if !jails.ValidName(p.Name) {
		return nil, fmt.Errorf("jail: name=%q: %w (printable, no dots or slashes, not a number, at most 64 bytes)", p.Name, jails.ErrBadName)
	}
	if p.Vnet && p.VnetPath != "" {
		return nil, errors.New("jail: vnet and vnet=PATH exclude each other")
	}
	return p, nil
}

// parseJailPath checks path=: an absolute directory other than /.
func parseJailPath(v string) (string, error) {
	if !filepath.IsAbs(v) {
		return "", errors.New("not an absolute path")
	}
	v = filepath.Clean(v)
	if v == "/" {
		return "", errors.New("refusing to mount over /")
	}
	return v, nil
}

func parseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err
}

func parseIDs(s string) ([]uint32, error) {
	var out []uint32
	for _, f := range strings.Split(s, ",") {
		n, err := parseID(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// ownerPID returns PID for a /proc/PID/ns/net path, or 0.
func ownerPID(path string) int {
	rest, ok := strings.CutPrefix(filepath.Clean(path), "/proc/")
	if !ok {
		return 0
	}
	pid, tail, _ := strings.Cut(rest, "/")
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 || (tail != "ns/net" && !strings.HasPrefix(tail, "task/")) {
		return 0
	}
	return n
}

// CreateJail makes a jail: its namespace, its device mount (path=), and
// the watch on the process whose namespace it adopted. On any error
// nothing is left.
func (d *Daemon) CreateJail(p *JailParams) (*jails.Jail, error) {
	if !p.Persist && p.Path == "" && !p.HasParent && ownerPID(p.VnetPath) == 0 {
		return nil, fmt.Errorf("jail %s: it would have no process and no mount, and die at once (add persist, path= or command=)", p.Name)
	}
	var ns *jails.Netns
	var err error
	switch {
	case p.VnetPath != "":
		ns, err = jails.OpenNetns(p.VnetPath)
	case p.Vnet:
		ns, err = jails.NewNetns()
	default:
		// No vnet: the jail shares the host's network namespace, as a
		// FreeBSD jail without vnet shares prison0's.
		ns, err = d.jails.Host().Netns().Dup(jails.HostName)
	}
	if err != nil {
		return nil, fmt.Errorf("jail %s: %w", p.Name, err)
	}
	var pidfd int = -1
	if pid := ownerPID(p.VnetPath); pid > 0 {
		pidfd, err = unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
		if err != nil {
			ns.Close()
			return nil, fmt.Errorf("jail %s: watch pid %d: %w", p.Name, pid, err)
		}
	}
	j, err := d.jails.Create(jails.Options{Name: p.Name, Netns: ns, Persist: p.Persist, Settings: p.Settings})
	if err != nil {
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
		return nil, err
	}
	// Each subsystem that keeps part of the settings gets it from the
	// jail: the fast path's switch here (before any watch may remove the
	// jail). The driver's device limit, the cloning policy and the node
	// owner are read where they are used (driver, clonehandler); the
	// driver attaches to the jail below.
	d.fast.addJail(j, !j.Settings().NoFastPath)
	fail := func(err error) (*jails.Jail, error) {
		if rerr := d.jails.Remove(j.Name()); rerr != nil {
			d.logger.Printf("jail %s: undo: %v", j.Name(), rerr)
		}
		return nil, err
	}
	if pidfd >= 0 {
		d.startWatch(watchKey{j, "owner"}, os.NewFile(uintptr(pidfd), "pidfd"))
	}
	if p.HasParent && !p.Persist && p.ClientPID > 0 {
		// Until the client names its command: if it dies first, so
		// does the jail.
		if err := d.watchPid(j, "client", p.ClientPID); err != nil {
			return fail(err)
		}
	}
	if err := d.devices.Attach(j); err != nil {
		return fail(fmt.Errorf("jail %s: %w", p.Name, err))
	}
	if p.Path != "" {
		if err := os.MkdirAll(p.Path, 0o755); err != nil {
			return fail(fmt.Errorf("jail %s: path: %w", p.Name, err))
		}
		if err := checkEmptyDir(p.Path); err != nil {
			return fail(fmt.Errorf("jail %s: path: %w", p.Name, err))
		}
		// Meant for other users (containers): allow_other, with the
		// kernel enforcing the nodes' owner and mode.
		if err := d.Mount(j.Name(), p.Path, MountOptions{AllowOther: true}); err != nil {
			return fail(err)
		}
	}
	return j, nil
}

// watchOwner removes the jail when the process whose namespace it adopted
// exits (a container going away). pidfd is readable once it has exited.
// stopOwnerWatch ends it early, when the jail goes first.
func (d *Daemon) watchOwner(k watchKey, f *os.File) {
	j := k.j
	defer func() {
		d.mu.Lock()
		if d.owners[k] == f {
			delete(d.owners, k)
		}
		d.mu.Unlock()
		f.Close()
	}()
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	// A non-blocking pidfd sits on Go's netpoller and becomes readable
	// when the process exits.
	first := true
	err = rc.Read(func(fd uintptr) bool {
		if first {
			first = false
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(pfd, 0)
			return n > 0
		}
		return true
	})
	if err != nil {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			d.logger.Printf("jail %s: watching its process: %v", j.Name(), err)
		}
		return
	}
	if j.State() != jails.Alive {
		return
	}
	dedicatedThread() // not before: a locked goroutine parks its thread
	d.logger.Printf("jail %s: its %s process exited; removing it", j.Name(), k.kind)
	if err := d.jails.Remove(j.Name()); err != nil && !errors.Is(err, jails.ErrNotFound) {
		d.logger.Printf("jail %s: %v", j.Name(), err)
	}
	d.checkIdle()
}

// stopOwnerWatch ends every watch on a removed jail's processes.
func (d *Daemon) stopOwnerWatch(j *jails.Jail) {
	d.mu.Lock()
	var fs []*os.File
	for k, f := range d.owners {
		if k.j == j {
			fs = append(fs, f)
		}
	}
	d.mu.Unlock()
	for _, f := range fs {
		f.SetReadDeadline(aLongTimeAgo)
	}
}

// checkMountPoint refuses a mount point that a device directory would
// harm (SPEC §9): the root, and a directory with files in it or a mount
// of ours already there (checkEmptyDir).
func checkMountPoint(dir string) error {
	if dir == "/" {
		return errors.New("mount /: refused (a device directory over the root would hide the whole system)")
	}
	if err := checkEmptyDir(dir); err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	return nil
}

// checkEmptyDir fails unless dir is an empty directory that is not a
// tundevfs mount (a mount there would hide its files). It never opens a
// file on a mount of ours.
func checkEmptyDir(dir string) error {
	if fs.IsTundevfsMount(dir) {
		return fmt.Errorf("%s is a tundevfs mount already", dir)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("%s is not empty (a mount would hide its files)", dir)
	}
	return nil
}

// RemoveJail is `jail -r`.
func (d *Daemon) RemoveJail(name string) error {
	if name == "" || name == jails.HostName || name == "0" {
		return fmt.Errorf("jail -r %s: %w", name, jails.ErrHost)
	}
	return d.jails.Remove(name)
}

// ExecInfo tells a client how to run a command inside a jail: the path of
// its network namespace and a device directory to put at /dev.
type ExecInfo struct {
	Netns  string `json:"netns"`
	DevDir string `json:"dev_dir"`
}

// execInfo returns (making on first use) the jail's /dev mount for
// commands, with the standard devices beside the tunnels.
func (d *Daemon) execInfo(name string) (*ExecInfo, error) {
	j, err := d.jail(name)
	if err != nil {
		return nil, err
	}
	dir := d.jexecDirOf(j)
	d.mu.Lock()
	_, mounted := d.mounts[dir]
	d.mu.Unlock()
	if !mounted {
		if _, err := d.jexecDir(j.Name(), j.ID()); err != nil {
			return nil, fmt.Errorf("jexec %s: %w", name, err)
		}
		if err := d.mountInternal(j, dir); err != nil {
			return nil, fmt.Errorf("jexec %s: %w", name, err)
		}
	}
	return &ExecInfo{
		Netns:  fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), j.Netns().Fd()),
		DevDir: dir,
	}, nil
}

// jailInfos lists jails for jls; dying ones only with dying.
func (d *Daemon) jailInfos(dying bool) []JailInfo {
	var out []JailInfo
	for _, j := range d.jails.List() {
		if j.State() != jails.Alive && !dying {
			continue
		}
		out = append(out, d.jailInfo(j))
	}
	return out
}

func (d *Daemon) jailInfo(j *jails.Jail) JailInfo {
	ji := JailInfo{
		JID: j.ID(), Name: j.Name(), State: j.State().String(),
		Netns: j.Netns().Path(), NetnsID: j.Netns().Ino(),
		Persist: j.Persist(), Holds: j.Holds(), Devices: len(d.devices.Devices(j)),
	}
	d.mu.Lock()
	for dir, m := range d.mounts {
		if m != nil && m.Jail() == j && !d.internal[dir] {
			ji.Paths = append(ji.Paths, dir)
		}
	}
	d.mu.Unlock()
	return ji
}

// maybeRemoveIdle removes a non-persistent jail whose last mount is gone.
// It returns nil if it does not, else a channel closed once the removal
// (on a thread of its own) is over.
func (d *Daemon) maybeRemoveIdle(j *jails.Jail) <-chan struct{} {
	if j.IsHost() || j.Persist() || j.State() != jails.Alive {
		return nil
	}
	d.mu.Lock()
	for dir, m := range d.mounts {
		if (m == nil || m.Jail() == j) && !d.internal[dir] {
			d.mu.Unlock()
			return nil
		}
	}
	d.mu.Unlock()
	d.logger.Printf("jail %s: last mount gone; removing it", j.Name())
	removed := make(chan struct{})
	go func() {
		defer close(removed)
		dedicatedThread()
		if err := d.jails.Remove(j.Name()); err != nil && !errors.Is(err, jails.ErrNotFound) {
			d.logger.Printf("jail %s: %v", j.Name(), err)
		}
		d.checkIdle()
	}()
	return removed
}
