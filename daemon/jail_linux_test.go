package daemon_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tundevfs/tundevfs/internal/testenv"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
	"github.com/tundevfs/tundevfs/jails"
)

func newDaemon(t *testing.T, args ...string) (*itest.Netns, *itest.Daemon) {
	t.Helper()
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	return ns, itest.StartDaemon(t, ns, args...)
}

func jls(t *testing.T, d *itest.Daemon) []daemon.JailInfo {
	t.Helper()
	var js []daemon.JailInfo
	d.Call(t, daemon.Request{Op: daemon.OpJls, Dying: true}, &js)
	var out []daemon.JailInfo
	for _, j := range js {
		if j.JID != 0 {
			out = append(out, j)
		}
	}
	return out
}

// tunLinks lists the tun/tap/vmnet interfaces of the namespace at path.
func tunLinks(t *testing.T, nsPath string) []string {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+nsPath, "ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link in %s: %v %s", nsPath, err, out)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 {
			n := strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":")
			if strings.HasPrefix(n, "tun") || strings.HasPrefix(n, "tap") || strings.HasPrefix(n, "vmnet") {
				names = append(names, n)
			}
		}
	}
	return names
}

// daemonFds describes the daemon's open fds: how many TUN fds, and which
// network namespaces it holds (nsfs inode numbers).
func daemonFds(t *testing.T, d *itest.Daemon) (tun int, netns []uint64) {
	t.Helper()
	pid := d.Status(t).PID
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if target == "/dev/net/tun" {
			tun++
			continue
		}
		// A namespace fd reads as net:[INO], or as its path when it was
		// opened through a bind mount (/run/netns/X): stat tells.
		var st unix.Stat_t
		if unix.Stat(filepath.Join(dir, e.Name()), &st) == nil && isNetns(filepath.Join(dir, e.Name())) {
			netns = append(netns, st.Ino)
		}
	}
	return tun, netns
}

// isNetns reports whether the file at path is a network namespace.
func isNetns(path string) bool {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	return err == nil && typ == unix.CLONE_NEWNET
}

func nsIno(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestSeedReproduction is SPEC §1 bug 2: a tun cloned inside a vnet jail
// must not keep the jail alive.
func TestSeedReproduction(t *testing.T) {
	ns, d := newDaemon(t)
	out, err := d.CLI("jail", "-c", "name=test", "vnet", "command=ls", "/dev/tun")
	if err != nil {
		t.Fatalf("jail -c name=test vnet command=ls /dev/tun: %v\n%s", err, out)
	}
	if strings.TrimSpace(out) != "/dev/tun" {
		t.Fatalf("ls /dev/tun in the jail printed %q", out)
	}
	out, err = d.CLI("jls", "-vd")
	if err != nil {
		t.Fatalf("jls -vd: %v %s", err, out)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 {
		t.Fatalf("jls -vd lists jails after the command exited:\n%s", out)
	}
	st := d.Status(t)
	if len(st.Devices) != 0 || len(st.Jails) != 1 {
		t.Fatalf("left behind: jails %+v devices %+v", st.Jails, st.Devices)
	}
	if links := tunLinks(t, ns.Path); len(links) != 0 {
		t.Fatalf("tun interfaces in the daemon's namespace: %v", links)
	}
	if tun, nss := daemonFds(t, d); tun != 0 || len(nss) != 1 {
		t.Fatalf("daemon holds %d TUN fds and namespaces %v; want 0 and only its own", tun, nss)
	}
}

func TestRemoveJailWithBlockedReader(t *testing.T) {
	_, d := newDaemon(t)
	ns2 := itest.NewNetns(t)
	ino := nsIno(t, ns2.Path)
	var ji daemon.JailInfo
	d.Call(t, daemon.Request{Op: "jail-create", Args: []string{"name=adopted", "vnet=" + ns2.Path, "persist"}}, &ji)
	dir := d.Mount(t, "adopted")
	fd, err := unix.Open(filepath.Join(dir, "tun"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := os.Stat(filepath.Join(dir, "tap4")); err != nil {
		t.Fatal(err)
	}
	if got := tunLinks(t, ns2.Path); !slices.Equal(got, []string{"tun0", "tap4"}) {
		t.Fatalf("interfaces in the jail's namespace: %v", got)
	}
	if tun, nss := daemonFds(t, d); tun != 2 || !slices.Contains(nss, ino) {
		t.Fatalf("before removal: %d TUN fds, namespaces %v", tun, nss)
	}
	done := make(chan error, 1)
	go func() {
		_, err := unix.Read(fd, make([]byte, 2048))
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if out, err := d.CLI("jail", "-r", "adopted"); err != nil {
		t.Fatalf("jail -r: %v %s", err, out)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("blocked read returned data after jail removal")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocked reader did not return after jail removal")
	}
	tun, nss := daemonFds(t, d)
	if tun != 0 || slices.Contains(nss, ino) {
		t.Fatalf("after removal the daemon holds %d TUN fds, namespaces %v (jail's: %d)", tun, nss, ino)
	}
	if got := tunLinks(t, ns2.Path); len(got) != 0 {
		t.Fatalf("interfaces left in the jail's namespace: %v", got)
	}
	if itest.IsMounted(dir) {
		t.Fatal("the jail's mount is still there")
	}
	if js := jls(t, d); len(js) != 0 {
		t.Fatalf("jls -d after removal: %+v", js)
	}
}

func TestTwoJailsTwoTun0(t *testing.T) {
	_, d := newDaemon(t)
	d.Call(t, daemon.Request{Op: "jail-create", Args: []string{"name=a", "vnet", "persist"}}, nil)
	d.Call(t, daemon.Request{Op: "jail-create", Args: []string{"name=b", "vnet", "persist"}}, nil)
	dirA, dirB := d.Mount(t, "a"), d.Mount(t, "b")
	fdA, err := unix.Open(filepath.Join(dirA, "tun"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fdA)
	fdB, err := unix.Open(filepath.Join(dirB, "tun"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fdB)
	for _, fd := range []int{fdA, fdB} {
		p, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		if filepath.Base(p) != "tun0" {
			t.Fatalf("a jail's first clone is %s, want tun0", p)
		}
	}
	// b's mount shows only b's devices; a's tap5 is not reachable there.
	if _, err := os.Stat(filepath.Join(dirA, "tap5")); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dirB)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"tun0"}) {
		t.Fatalf("jail b lists %v, want [tun0]", names)
	}
	// Opening tap5 in b clones b's own tap5, a different device.
	var stA, stB unix.Stat_t
	unix.Stat(filepath.Join(dirA, "tap5"), &stA)
	if err := unix.Stat(filepath.Join(dirB, "tap5"), &stB); err != nil {
		t.Fatal(err)
	}
	if stA.Ino == stB.Ino {
		t.Fatal("jail b reached jail a's tap5")
	}
	// b's tun0 is open there; a's tun0 is a different device, also open.
	if _, err := unix.Open(filepath.Join(dirB, "tun0"), unix.O_RDWR, 0); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("second open of b's tun0: %v, want EBUSY", err)
	}
	st := d.Status(t)
	jailOf := map[string][]string{}
	for _, dv := range st.Devices {
		jailOf[dv.Jail] = append(jailOf[dv.Jail], dv.Name)
	}
	if !slices.Equal(jailOf["a"], []string{"tap5", "tun0"}) || !slices.Equal(jailOf["b"], []string{"tap5", "tun0"}) {
		t.Fatalf("devices by jail: %v", jailOf)
	}
	for _, j := range []string{"a", "b"} {
		if out, err := d.CLI("jail", "-r", j); err != nil {
			t.Fatalf("jail -r %s: %v %s", j, err, out)
		}
	}
}

func TestJailLoopLeaksNothing(t *testing.T) {
	_, d := newDaemon(t)
	n := 200
	if testing.Short() {
		n = 20
	}
	cycle := func(i int) {
		name := fmt.Sprintf("j%d", i)
		var ji daemon.JailInfo
		d.Call(t, daemon.Request{Op: "jail-create", Args: []string{"name=" + name, "vnet", "persist"}}, &ji)
		var dev string
		d.Call(t, daemon.Request{Op: "ifconfig", Jail: name, Args: []string{"tun", "create"}}, &dev)
		if i%2 == 0 {
			var info daemon.ExecInfo
			d.Call(t, daemon.Request{Op: "jail-exec", Jail: name}, &info)
		}
		d.Call(t, daemon.Request{Op: "jail-remove", Jail: name}, nil)
	}
	for i := 0; i < 4; i++ {
		cycle(i)
	}
	// The warm-up cycles above leave what a cycle leaves for good (go-fuse
	// readers, idle threads); the baseline absorbs it once settled.
	base := d.Baseline(t)
	mounts := countMounts(t, daemon.StateDir(d.Socket))
	for i := 0; i < n; i++ {
		cycle(i)
	}
	if !itest.WaitFor(func() bool {
		st := d.Status(t)
		return len(st.Devices) == 0 && len(st.Jails) == 1
	}) {
		st := d.Status(t)
		t.Fatalf("after %d jails: devices %v, jails %v", n, st.Devices, st.Jails)
	}
	base.Check(t, fmt.Sprintf("after %d jails", n))
	if got := countMounts(t, daemon.StateDir(d.Socket)); got != mounts {
		t.Fatalf("mounts %d -> %d", mounts, got)
	}
	if tun, nss := daemonFds(t, d); tun != 0 || len(nss) != 1 {
		t.Fatalf("daemon holds %d TUN fds, namespaces %v", tun, nss)
	}
}

// countMounts counts the tundevfs mounts below dir (other tests running in
// parallel have mounts of their own elsewhere).
func countMounts(t *testing.T, dir string) int {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") && strings.Contains(line, " - fuse.tundevfs ") {
			n++
		}
	}
	return n
}

// TestContainerStandIn: a process in its own network and mount namespace
// stands in for a container. Its namespace is adopted with path=DIR, DIR
// is bind-mounted into it, and a non-root uid inside clones a tun there and
// moves a packet through an interface that exists only in that namespace.
// When the process exits, the jail and its devices go on their own.
func TestContainerStandIn(t *testing.T) {
	_, d := newDaemon(t)
	// A shared mount point of the test's own, so that the jail's mount,
	// made after the stand-in starts, propagates into it. (The machine's
	// / may be private.)
	base := t.TempDir()
	if err := unix.Mount(base, base, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(base, unix.MNT_DETACH) })
	if err := unix.Mount("", base, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	// The stand-in: new net and mount namespaces, its mounts slaves of
	// ours.
	ct := exec.Command("unshare", "--net", "--mount", "--propagation", "slave", "sleep", "infinity")
	ct.WaitDelay = 5 * time.Second
	if err := ct.Start(); err != nil {
		t.Fatal(err)
	}
	ctExited := make(chan struct{})
	go func() { ct.Wait(); close(ctExited) }()
	t.Cleanup(func() {
		ct.Process.Kill()
		<-ctExited
	})
	pid := ct.Process.Pid
	ctNet := fmt.Sprintf("/proc/%d/ns/net", pid)
	if !itest.WaitFor(func() bool { return nsIno(t, ctNet) != nsIno(t, "/proc/self/ns/net") }) {
		t.Fatal("stand-in never entered its own namespace")
	}
	enter := func(args ...string) *exec.Cmd {
		return exec.Command("nsenter", append([]string{"-t", fmt.Sprint(pid), "--net", "--mount"}, args...)...)
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := enter(args...).CombinedOutput(); err != nil {
			t.Fatalf("in the stand-in: %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "link", "set", "lo", "up")

	dir := filepath.Join(base, "ctdev")
	t.Cleanup(func() {
		if itest.IsMounted(dir) {
			unix.Unmount(dir, unix.MNT_DETACH)
			t.Error("the stand-in's jail mount was left")
		}
	})
	var ji daemon.JailInfo
	d.Call(t, daemon.Request{Op: "jail-create", Args: []string{"name=ct", "vnet=" + ctNet, "path=" + dir, "clone_uid=1000", "dev_uid=1000"}}, &ji)
	run("mkdir", "-p", "/run/ctdev")
	run("mount", "--bind", dir, "/run/ctdev")

	// uid 1000 in the stand-in: clone, report the name, wait, write one
	// packet (10.9.0.2:40000 -> 10.9.0.1:5000 "hi"), wait.
	script := `exec 3<>/run/ctdev/tun || exit 1
basename "$(readlink /proc/self/fd/3)"
read go
/usr/bin/printf '\x45\x00\x00\x1e\x00\x00\x00\x00\x40\x11\x66\xbb\x0a\x09\x00\x02\x0a\x09\x00\x01\x9c\x40\x13\x88\x00\x0a\x00\x00\x68\x69' >&3
echo sent
read done`
	user := enter("--setuid", "1000", "--setgid", "1000", "sh", "-c", script)
	user.WaitDelay = 5 * time.Second
	stdin, _ := user.StdinPipe()
	stdout, _ := user.StdoutPipe()
	var stderr strings.Builder
	user.Stderr = &stderr
	if err := user.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); user.Wait() }()
	lines := bufio.NewReader(stdout)
	name, err := lines.ReadString('\n')
	if err != nil {
		user.Wait()
		t.Fatalf("uid 1000 could not clone a tun: %v (%s)", err, stderr.String())
	}
	name = strings.TrimSpace(name)
	if name != "tun0" {
		t.Fatalf("uid 1000 got %q, want tun0", name)
	}
	if got := tunLinks(t, ctNet); !slices.Equal(got, []string{"tun0"}) {
		t.Fatalf("interfaces in the stand-in: %v", got)
	}
	if out, _ := exec.Command("ip", "-o", "link", "show", "tun0").CombinedOutput(); strings.Contains(string(out), "tun0:") {
		// The test's own namespace is the host's: tun0 must not be there.
		t.Fatalf("tun0 appeared outside the stand-in: %s", out)
	}
	run("ip", "addr", "add", "10.9.0.1", "peer", "10.9.0.2", "dev", "tun0")
	run("ip", "link", "set", "tun0", "up")
	h, err := jails.OpenNetns(ctNet)
	if err != nil {
		t.Fatal(err)
	}
	var sock int
	err = h.Do(func() error {
		var err error
		sock, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		sa := &unix.SockaddrInet4{Port: 5000}
		copy(sa.Addr[:], netip.MustParseAddr("10.9.0.1").AsSlice())
		return unix.Bind(sock, sa)
	})
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sock)
	unix.SetsockoptTimeval(sock, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})
	io.WriteString(stdin, "go\n")
	if l, _ := lines.ReadString('\n'); strings.TrimSpace(l) != "sent" {
		t.Fatalf("uid 1000 could not write: %s", stderr.String())
	}
	buf := make([]byte, 64)
	n, _, err := testenv.Recvfrom(sock, buf)
	if err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("socket in the stand-in got %q, %v", buf[:n], err)
	}
	io.WriteString(stdin, "done\n")
	user.Wait()

	// The "container" exits: the jail and its devices go on their own.
	ct.Process.Signal(syscall.SIGTERM)
	<-ctExited
	if !itest.WaitFor(func() bool { return len(jls(t, d)) == 0 && len(d.Status(t).Devices) == 0 }) {
		t.Fatalf("jail still there after its process exited: %+v", jls(t, d))
	}
	if !itest.WaitFor(func() bool { return !itest.IsMounted(dir) }) {
		t.Fatal("the jail's mount is still there after its process exited")
	}
	if tun, nss := daemonFds(t, d); tun != 0 || len(nss) != 1 {
		t.Fatalf("daemon holds %d TUN fds and namespaces %v", tun, nss)
	}
}

func TestJailErrors(t *testing.T) {
	_, d := newDaemon(t)
	d.Call(t, daemon.Request{Op: "jail-create", Args: []string{"name=x", "vnet", "persist"}}, nil)
	notNetns := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(notNetns, nil, 0o600)
	base := d.Baseline(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"name=x", "vnet", "persist"}, "in use"},
		{[]string{"vnet", "persist"}, "name= is required"},
		{[]string{"name=y", "vnet"}, "die at once"},
		{[]string{"name=y", "vnet=" + notNetns, "persist"}, "not a network namespace"},
		{[]string{"name=y", "vnet=/nonexistent", "persist"}, "no such file"},
		{[]string{"name=a.b", "vnet", "persist"}, "bad jail name"},
		{[]string{"name=y", "bogus=1"}, "unknown parameter"},
		{[]string{"name=y", "vnet", "persist", "max_devices=0"}, "out of range"},
	} {
		_, err := daemon.Call(d.Socket, daemon.Request{Op: "jail-create", Args: tc.args})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("jail -c %v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	if _, err := daemon.Call(d.Socket, daemon.Request{Op: "jail-remove", Jail: "host"}); err == nil {
		t.Error("removing the host jail succeeded")
	}
	if _, err := daemon.Call(d.Socket, daemon.Request{Op: "jail-remove", Jail: "nope"}); err == nil || !strings.Contains(err.Error(), "no such jail") {
		t.Errorf("removing a missing jail: %v", err)
	}
	// The per-jail device limit is a clear error and leaks nothing.
	d.Call(t, daemon.Request{Op: "jail-create", Args: []string{"name=small", "vnet", "persist", "max_devices=2"}}, nil)
	for i := 0; i < 2; i++ {
		d.Call(t, daemon.Request{Op: "ifconfig", Jail: "small", Args: []string{"tun", "create"}}, nil)
	}
	if _, err := daemon.Call(d.Socket, daemon.Request{Op: "ifconfig", Jail: "small", Args: []string{"tun", "create"}}); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("third device in a jail limited to 2: %v", err)
	}
	d.Call(t, daemon.Request{Op: "jail-remove", Jail: "small"}, nil)
	base.Check(t, "after bad input")
	if st := d.Status(t); st.UnitsInUse != 0 || len(st.Jails) != 2 {
		t.Fatalf("after bad input: units %d, jails %v; want 0 and host, x", st.UnitsInUse, st.Jails)
	}
}

// TestAdoptedJailRemovedFirst: removing a jail whose process is still
// running ends the watch on that process; nothing leaks.
func TestAdoptedJailRemovedFirst(t *testing.T) {
	_, d := newDaemon(t)
	p := exec.Command("unshare", "--net", "sleep", "infinity")
	p.WaitDelay = 5 * time.Second
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Process.Kill(); p.Wait() })
	path := fmt.Sprintf("/proc/%d/ns/net", p.Process.Pid)
	if !itest.WaitFor(func() bool { return nsIno(t, path) != nsIno(t, "/proc/self/ns/net") }) {
		t.Fatal("process never entered its own namespace")
	}
	base := d.Baseline(t)
	for i := 0; i < 5; i++ {
		d.Call(t, daemon.Request{Op: "jail-create", Args: []string{"name=p", "vnet=" + path}}, nil)
		d.Call(t, daemon.Request{Op: "ifconfig", Jail: "p", Args: []string{"tap", "create"}}, nil)
		d.Call(t, daemon.Request{Op: "jail-remove", Jail: "p"}, nil)
	}
	base.Check(t, "after 5 adopted jails")
	if got := tunLinks(t, path); len(got) != 0 {
		t.Fatalf("interfaces left in the process's namespace: %v", got)
	}
}

// TestClonePrivilege: cloning is PRIV_NET_IFCREATE. Without a jail's
// clone_uid only root clones; others get ENOENT. net.link.tap.user_open
// lets anyone clone tap and vmnet, and devfs_cloning=0 stops cloning on
// lookup for everyone.
func TestClonePrivilege(t *testing.T) {
	_, d := newDaemon(t)
	base := t.TempDir()
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(base), 0o755)
	dir := filepath.Join(base, "dev")
	d.Call(t, daemon.Request{Op: "jail-create", Args: []string{"name=p", "vnet", "path=" + dir, "clone_uid=2000", "dev_mode=0666"}}, nil)
	t.Cleanup(func() { daemon.Call(d.Socket, daemon.Request{Op: "jail-remove", Jail: "p"}) })
	as := func(uid uint32, name string) (string, error) {
		c := exec.Command("readlink", "-v", filepath.Join(dir, name))
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := c.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	devices := func() int { return len(d.Status(t).Devices) }
	check := func(uid uint32, name string, want bool) {
		t.Helper()
		n := devices()
		out, err := as(uid, name)
		if got := err == nil; got != want {
			t.Fatalf("uid %d clone %s: %v (%s), want allowed=%v", uid, name, err, out, want)
		}
		if !want && !strings.Contains(out, "No such file") {
			t.Fatalf("uid %d clone %s: %q, want ENOENT", uid, name, out)
		}
		if !want && devices() != n {
			t.Fatalf("a refused clone of %s by uid %d created a device", name, uid)
		}
	}
	check(1000, "tun", false)
	check(1000, "tap", false)
	check(2000, "tun", true) // clone_uid
	check(0, "tun", true)
	d.Call(t, daemon.Request{Op: "sysctl", Args: []string{"net.link.tap.user_open=1"}}, nil)
	check(1000, "tap", true)
	check(1000, "vmnet", true)
	check(1000, "tun", false)
	d.Call(t, daemon.Request{Op: "sysctl", Args: []string{"net.link.tun.devfs_cloning=0"}}, nil)
	check(0, "tun", false)
	if _, err := os.Lstat(filepath.Join(dir, "tun7")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("tun7 with devfs_cloning=0: %v, want ENOENT", err)
	}
	check(0, "tap", true)
	// ifconfig create is not devfs cloning: it still works.
	var name string
	d.Call(t, daemon.Request{Op: "ifconfig", Jail: "p", Args: []string{"tun", "create"}}, &name)
	if name == "" {
		t.Fatal("ifconfig tun create with devfs_cloning=0 gave no name")
	}
	d.Call(t, daemon.Request{Op: "sysctl", Args: []string{"net.link.tun.devfs_cloning=1"}}, nil)
	check(0, "tun", true)
}
