package bench

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/fs"
	"github.com/tundevfs/tundevfs/jails"
)

// Netns is a network namespace made by the suite (ip netns add), with lo
// up and IPv6 off so that no router solicitations or DAD probes reach the
// devices being measured.
type Netns struct {
	Name string
	Path string
	h    *jails.Netns
}

// NewNetns makes a namespace. Close deletes it.
func NewNetns() (*Netns, error) {
	b := make([]byte, 4)
	rand.Read(b)
	name := "tdfs-bench-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("netns add %s: %w: %s", name, err, bytes.TrimSpace(out))
	}
	ns := &Netns{Name: name, Path: "/run/netns/" + name}
	h, err := jails.OpenNetns(ns.Path)
	if err != nil {
		ns.Close()
		return nil, err
	}
	ns.h = h
	err = ns.Do(func() error {
		for _, f := range []string{"all", "default"} {
			p := "/proc/sys/net/ipv6/conf/" + f + "/disable_ipv6"
			if err := os.WriteFile(p, []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("netns %s: ipv6 off: %w", name, err)
			}
		}
		return nil
	})
	if err == nil {
		_, err = ns.Run("ip", "link", "set", "lo", "up")
	}
	if err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

// Close deletes the namespace. Interfaces still in it go with it once
// nothing holds it.
func (ns *Netns) Close() error {
	if ns.h != nil {
		ns.h.Close()
		ns.h = nil
	}
	if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
		return fmt.Errorf("netns del %s: %w: %s", ns.Name, err, bytes.TrimSpace(out))
	}
	return nil
}

// Do runs fn on an OS thread inside the namespace. Sockets and TUN fds fn
// opens belong to the namespace, and so do the processes it starts.
func (ns *Netns) Do(fn func() error) error { return ns.h.Do(fn) }

// Run runs a command inside the namespace and returns its output.
func (ns *Netns) Run(name string, args ...string) (string, error) {
	var out []byte
	err := ns.Do(func() error {
		var err error
		out, err = exec.Command(name, args...).CombinedOutput()
		return err
	})
	if err != nil {
		return string(out), fmt.Errorf("%s %s (netns %s): %w: %s", name, strings.Join(args, " "), ns.Name, err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// TimeCommand runs a command inside the namespace with its output thrown
// away and returns how long it took, from fork to exit.
func (ns *Netns) TimeCommand(name string, args ...string) (time.Duration, error) {
	var d time.Duration
	err := ns.Do(func() error {
		cmd := exec.Command(name, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		t0 := time.Now()
		err := cmd.Run()
		d = time.Since(t0)
		if err != nil {
			return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
		}
		return nil
	})
	return d, err
}

// Links returns the interface names of the namespace other than lo.
func (ns *Netns) Links() ([]string, error) {
	out, err := ns.Run("ip", "-br", "link")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] != "lo" {
			names = append(names, strings.SplitN(f[0], "@", 2)[0])
		}
	}
	return names, nil
}

// Daemon is a tundevfs daemon the suite runs inside a namespace of its own,
// as a separate process (the way it is deployed), with one mount.
type Daemon struct {
	Socket string
	Dir    string // the mount
	cmd    *exec.Cmd
	work   string
	log    *bytes.Buffer
	exited chan struct{}
}

// StartDaemon runs `tundevfs daemon` in ns (nsenter execs it, so the pid
// is the daemon's) and mounts the host jail's devices.
func StartDaemon(bin string, ns *Netns, args ...string) (*Daemon, error) {
	work, err := os.MkdirTemp("", "tundevfs-bench-")
	if err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	d := &Daemon{
		Socket: filepath.Join(work, "d.sock"),
		Dir:    filepath.Join(work, "dev"),
		work:   work,
		log:    new(bytes.Buffer),
		exited: make(chan struct{}),
	}
	if err := os.Mkdir(d.Dir, 0o755); err != nil {
		os.RemoveAll(work)
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	d.cmd = exec.Command("nsenter", append([]string{"--net=" + ns.Path, bin, "--socket", d.Socket, "daemon"}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		os.RemoveAll(work)
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := daemon.Call(d.Socket, daemon.Request{Op: "ping"}); err == nil {
			break
		}
		select {
		case <-d.exited:
			d.Stop()
			return nil, fmt.Errorf("start daemon: it exited: %s", d.log.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.Stop()
			return nil, fmt.Errorf("start daemon: no answer in 10s: %s", d.log.String())
		}
	}
	if err := d.call(daemon.Request{Op: "mount", Dir: d.Dir}, nil); err != nil {
		d.Stop()
		return nil, err
	}
	return d, nil
}

func (d *Daemon) call(req daemon.Request, out any) error {
	if err := daemon.CallInto(d.Socket, req, out); err != nil {
		return fmt.Errorf("daemon %s: %w", req.Op, err)
	}
	return nil
}

// Pid is the daemon's process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Create makes a device with `ifconfig NAME create` and returns its name.
func (d *Daemon) Create(name string) (string, error) { return d.CreateIn("", name) }

// CreateIn makes a device in a jail (empty: the host jail) with
// `ifconfig -j JAIL NAME create` and returns its name.
func (d *Daemon) CreateIn(jail, name string) (string, error) {
	var got string
	err := d.call(daemon.Request{Op: "ifconfig", Jail: jail, Args: []string{name, "create"}}, &got)
	return got, err
}

// CreateJail is `jail -c name=NAME PARAMS...`.
func (d *Daemon) CreateJail(name string, params ...string) (daemon.JailInfo, error) {
	var ji daemon.JailInfo
	err := d.call(daemon.Request{Op: "jail-create", Args: append([]string{"name=" + name}, params...)}, &ji)
	return ji, err
}

// RemoveJail is `jail -r NAME`; it returns how long the daemon took to
// answer (every device of the jail destroyed, its namespace released).
func (d *Daemon) RemoveJail(name string) (time.Duration, error) {
	t0 := time.Now()
	err := d.call(daemon.Request{Op: "jail-remove", Jail: name}, nil)
	return time.Since(t0), err
}

// MountJail mounts a jail's devices on dir (`mount --jail NAME DIR`).
func (d *Daemon) MountJail(jail, dir string) error {
	return d.call(daemon.Request{Op: "mount", Jail: jail, Dir: dir}, nil)
}

// Unmount unmounts dir.
func (d *Daemon) Unmount(dir string) error {
	return d.call(daemon.Request{Op: "umount", Dir: dir}, nil)
}

// Jails lists the daemon's jails, dying ones included (jls -d).
func (d *Daemon) Jails() ([]daemon.JailInfo, error) {
	var js []daemon.JailInfo
	err := d.call(daemon.Request{Op: daemon.OpJls, Dying: true}, &js)
	return js, err
}

// Destroy destroys a device with `ifconfig NAME destroy`.
func (d *Daemon) Destroy(name string) error {
	return d.call(daemon.Request{Op: "ifconfig", Args: []string{name, "destroy"}}, nil)
}

// Status is the daemon's status.
func (d *Daemon) Status() (daemon.Status, error) {
	var st daemon.Status
	err := d.call(daemon.Request{Op: "status"}, &st)
	return st, err
}

// RSS is the daemon's resident set in KiB (VmRSS).
func (d *Daemon) RSS() (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", d.Pid()))
	if err != nil {
		return 0, fmt.Errorf("rss: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("rss: %w", err)
			}
			return kb, nil
		}
	}
	return 0, fmt.Errorf("rss: no VmRSS in /proc/%d/status", d.Pid())
}

// Terminate sends SIGTERM and returns how long the daemon took to exit
// (FreeBSD's jail removal: every device destroyed, the mount gone).
func (d *Daemon) Terminate() (time.Duration, error) {
	t0 := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("terminate daemon: %w", err)
	}
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		return 0, fmt.Errorf("terminate daemon: still running after 30s")
	}
	el := time.Since(t0)
	if st := d.cmd.ProcessState; st != nil && !st.Success() {
		return el, fmt.Errorf("terminate daemon: %v: %s", st, d.log.String())
	}
	return el, nil
}

// Stop ends the daemon however it can and removes its mount and files.
func (d *Daemon) Stop() {
	select {
	case <-d.exited:
	default:
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(20 * time.Second):
			d.cmd.Process.Kill()
			<-d.exited
		}
	}
	if fs.IsMounted(d.Dir) {
		unix.Unmount(d.Dir, unix.MNT_DETACH)
	}
	os.RemoveAll(d.work)
}
