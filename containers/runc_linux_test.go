package containers_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tundevfs/tundevfs/internal/testenv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"tags.cncf.io/container-device-interface/pkg/cdi"

	"github.com/tundevfs/tundevfs/containers"
	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
	"github.com/tundevfs/tundevfs/jails"
)

// The runc proof (issue 11): real runc from Debian, a busybox rootfs, the
// tundevfs CDI device injected with the CDI library as a runtime does,
// the hook making and removing the container's jail, and the shared
// per-netns mount at /dev/tundevfs.

// requireRunc is RequirePrivileged plus the packages the project installs
// for these tests (scripts/install-deps.sh: runc, busybox-static).
func requireRunc(t *testing.T) {
	t.Helper()
	itest.RequirePrivileged(t)
	for _, p := range []string{"runc", "busybox"} {
		if _, err := exec.LookPath(p); err != nil {
			msg := "runc test needs " + p + " (scripts/install-deps.sh installs it)"
			if os.Getenv("TUNDEVFS_REQUIRE_PRIVILEGED") == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

var (
	helperOnce sync.Once
	helperPath string
	helperErr  error
)

// TestMain removes the helper binary built for the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if helperPath != "" {
		os.RemoveAll(filepath.Dir(helperPath))
	}
	os.Exit(code)
}

// helper builds testdata/tunhelper static, once.
func helper(t *testing.T) string {
	t.Helper()
	helperOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tundevfs-helper-")
		if err != nil {
			helperErr = err
			return
		}
		helperPath = filepath.Join(dir, "tunhelper")
		_, file, _, _ := runtime.Caller(0)
		cmd := exec.Command("go", "build", "-o", helperPath, "./containers/testdata/tunhelper")
		cmd.Dir = filepath.Join(filepath.Dir(file), "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			helperErr = fmt.Errorf("build tunhelper: %v\n%s", err, out)
		}
	})
	if helperErr != nil {
		t.Fatal(helperErr)
	}
	return helperPath
}

// openDir makes a temporary directory every user may traverse: runc's
// user-namespaced container setup walks the bundle and the mount source
// as the container's root, an unprivileged host uid.
func openDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// env is one daemon with its shared mount, a CDI spec directory and a
// private runc root.
type env struct {
	d        *itest.Daemon
	netnsDev string
	cdiDir   string
	runcRoot string
	cache    *cdi.Cache
}

// newEnv starts a daemon (with --netns-dev, and daemonArgs) and writes its
// CDI spec.
func newEnv(t *testing.T, daemonArgs ...string) *env {
	t.Helper()
	requireRunc(t)
	ns := itest.NewNetns(t)
	base := openDir(t)
	e := &env{netnsDev: filepath.Join(base, "netns-dev"), cdiDir: filepath.Join(base, "cdi"), runcRoot: filepath.Join(base, "runc")}
	e.d = itest.StartDaemon(t, ns, append([]string{"--netns-dev", e.netnsDev}, daemonArgs...)...)
	raw, err := containers.CDISpec(containers.CDIOptions{Binary: e.d.Bin, Socket: e.d.Socket, NetnsDev: e.netnsDev})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := containers.WriteCDISpec(raw, e.cdiDir); err != nil {
		t.Fatal(err)
	}
	e.cache, err = cdi.NewCache(cdi.WithSpecDirs(e.cdiDir), cdi.WithAutoRefresh(false))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// ctOpts shape one container.
type ctOpts struct {
	uid         uint32
	userns      bool
	annotations map[string]string
	args        []string
	detach      bool // runc run --detach: runc returns, the container stays
}

// container is one `runc run` in the foreground, its stdio piped.
type container struct {
	id     string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *bytes.Buffer
	done   chan struct{}
}

func randID(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// bundle builds a busybox rootfs with the helper and a config.json from
// `runc spec`, into which the tundevfs CDI device is injected by the CDI
// library.
func (e *env) bundle(t *testing.T, o ctOpts) string {
	t.Helper()
	b := openDir(t)
	rootfs := filepath.Join(b, "rootfs")
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, "/bin/busybox", filepath.Join(rootfs, "bin", "busybox"))
	copyFile(t, helper(t), filepath.Join(rootfs, "tunhelper"))
	for _, l := range []string{"sh", "ls", "cat"} {
		os.Symlink("busybox", filepath.Join(rootfs, "bin", l))
	}
	itest.Run(t, "runc", "spec", "--bundle", b)
	var spec specs.Spec
	readJSON(t, filepath.Join(b, "config.json"), &spec)
	spec.Process.Terminal = false
	spec.Process.Args = o.args
	spec.Process.User = specs.User{UID: o.uid, GID: o.uid}
	spec.Annotations = o.annotations
	if o.userns {
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		// sysfs cannot be mounted from a user namespace without the
		// network namespace's owner: bind the host's read-only instead.
		for i, m := range spec.Mounts {
			if m.Destination == "/sys" {
				spec.Mounts[i] = specs.Mount{Destination: "/sys", Type: "none", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
			}
		}
	}
	if _, err := e.cache.InjectDevices(&spec, containers.CDIName); err != nil {
		t.Fatalf("inject %s: %v", containers.CDIName, err)
	}
	data, err := json.MarshalIndent(&spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

func (e *env) runc(args ...string) *exec.Cmd {
	return exec.Command("runc", append([]string{"--root", e.runcRoot}, args...)...)
}

// start runs a container in the foreground; cleanup kills and deletes it
// whatever happened.
func (e *env) start(t *testing.T, o ctOpts) *container {
	t.Helper()
	c := &container{id: randID("tdfs"), lines: make(chan string, 16), stderr: new(bytes.Buffer), done: make(chan struct{})}
	args := []string{"run", "--bundle", e.bundle(t, o)}
	if o.detach {
		args = append(args, "--detach")
	}
	c.cmd = e.runc(append(args, c.id)...)
	c.launch(t)
	t.Cleanup(func() {
		c.stdin.Close()
		e.runc("kill", c.id, "KILL").Run()
		select {
		case <-c.done:
		case <-time.After(20 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
			t.Errorf("runc run %s did not end", c.id)
		}
		e.runc("delete", "--force", c.id).Run()
	})
	return c
}

// launch starts c.cmd with its stdin from c.stdin and its output lines
// on c.lines; c.done closes when the command has ended. Plain pipes, not
// exec's: a container's stdio outlives a detached runtime, and its output
// ends only when the container does.
func (c *container) launch(t *testing.T) {
	t.Helper()
	c.cmd.Stderr = c.stderr
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	out, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c.stdin = inW
	c.cmd.Stdin, c.cmd.Stdout = inR, outW
	err = c.cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer out.Close()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	go func() { c.cmd.Wait(); close(c.done) }()
}

// line is the container's next output line.
func (c *container) line(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			<-c.done
			t.Fatalf("container %s: output ended (%v); stderr: %s", c.id, c.cmd.ProcessState, c.stderr)
		}
		return l
	case <-time.After(20 * time.Second):
		t.Fatalf("container %s: no output in 20s; stderr: %s", c.id, c.stderr)
	}
	return ""
}

func (c *container) say(t *testing.T, s string) string {
	t.Helper()
	if _, err := io.WriteString(c.stdin, s+"\n"); err != nil {
		t.Fatal(err)
	}
	return c.line(t)
}

// pid is the container's init process on the host, from runc state.
func (e *env) pid(t *testing.T, id string) int {
	t.Helper()
	out, err := e.runc("state", id).Output()
	if err != nil {
		t.Fatalf("runc state %s: %v", id, err)
	}
	var st struct{ Pid int }
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	return st.Pid
}

func nsInoOf(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// links lists the tun interfaces of the namespace at path.
func links(t *testing.T, nsPath string) []string {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+nsPath, "ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link in %s: %v %s", nsPath, err, out)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], "tun") {
			names = append(names, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	return names
}

func (e *env) jails(t *testing.T) []string {
	t.Helper()
	var js []daemon.JailInfo
	e.d.Call(t, daemon.Request{Op: daemon.OpJls, Dying: true}, &js)
	var names []string
	for _, j := range js {
		if j.JID != 0 {
			names = append(names, j.Name)
		}
	}
	return names
}

// daemonNetns lists the network namespaces the daemon holds fds of.
func (e *env) daemonNetns(t *testing.T) []uint64 {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", e.d.Status(t).PID)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, ent := range ents {
		p := filepath.Join(dir, ent.Name())
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			continue
		}
		if typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE); err == nil && typ == unix.CLONE_NEWNET {
			var st unix.Stat_t
			unix.Fstat(fd, &st)
			out = append(out, st.Ino)
		}
		unix.Close(fd)
	}
	return out
}

// checkGone waits until the container's jail is gone and then checks that
// the daemon holds nothing of its namespace.
func (e *env) checkGone(t *testing.T, id string, ino uint64) {
	t.Helper()
	if !itest.WaitFor(func() bool { return !slices.Contains(e.jails(t), id) }) {
		t.Fatalf("jail %s still there: %v", id, e.jails(t))
	}
	if slices.Contains(e.daemonNetns(t), ino) {
		t.Fatalf("the daemon still holds the namespace %d of %s", ino, id)
	}
	for _, dv := range e.d.Status(t).Devices {
		if dv.Jail == id {
			t.Fatalf("device %s of %s left", dv.Name, id)
		}
	}
}

// tunner is a container running `tunhelper open /dev/tundevfs`, after it
// printed its device.
type tunner struct {
	*container
	dev   string
	netns string
	ino   uint64
}

func (e *env) startTunner(t *testing.T, o ctOpts) *tunner {
	t.Helper()
	o.args = []string{"/tunhelper", "open", containers.ContainerPath}
	c := e.start(t, o)
	tn := &tunner{container: c, dev: c.line(t)}
	tn.netns = fmt.Sprintf("/proc/%d/ns/net", e.pid(t, c.id))
	tn.ino = nsInoOf(t, tn.netns)
	return tn
}

// packet configures tun0 from the host side, binds a UDP socket in the
// container's namespace, has the container write a packet to its device
// and checks it arrived.
func (tn *tunner) packet(t *testing.T) {
	t.Helper()
	for _, args := range [][]string{{"addr", "add", "10.77.0.1", "peer", "10.77.0.2", "dev", "tun0"}, {"link", "set", "tun0", "up"}} {
		if out, err := exec.Command("nsenter", append([]string{"--net=" + tn.netns, "ip"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v in %s: %v %s", args, tn.id, err, out)
		}
	}
	ns, err := jails.OpenNetns(tn.netns)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var s int
	err = ns.Do(func() error {
		var err error
		if s, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		return unix.Bind(s, &unix.SockaddrInet4{Port: 5555, Addr: [4]byte{10, 77, 0, 1}})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})
	payload := "hello-" + tn.id
	if got := tn.say(t, "send 10.77.0.2 10.77.0.1 4444 5555 "+payload); got != "sent" {
		t.Fatalf("container %s: %s", tn.id, got)
	}
	buf := make([]byte, 256)
	n, _, err := testenv.Recvfrom(s, buf)
	if err != nil || string(buf[:n]) != payload {
		t.Fatalf("UDP socket in %s: %q, %v; want %q", tn.id, buf[:max(n, 0)], err, payload)
	}
}

// TestRuncContainer: uid 1000 in a runc container opens /dev/tundevfs/tun,
// gets tun0 in the container's own namespace, and its packet reaches a
// socket there; when the container exits, everything of it goes.
func TestRuncContainer(t *testing.T) {
	e := newEnv(t)
	tn := e.startTunner(t, ctOpts{uid: 1000})
	if tn.dev != "/dev/tundevfs/tun0" {
		t.Fatalf("the container's fd is %q, want /dev/tundevfs/tun0", tn.dev)
	}
	if got := links(t, tn.netns); !slices.Equal(got, []string{"tun0"}) {
		t.Fatalf("tun links in the container's namespace: %v", got)
	}
	if !slices.Contains(e.jails(t), tn.id) {
		t.Fatalf("jls: %v, want the container id %s", e.jails(t), tn.id)
	}
	if out, err := e.d.CLI("jls"); err != nil || !strings.Contains(out, tn.id) {
		t.Fatalf("jls output lacks %s: %v\n%s", tn.id, err, out)
	}
	tn.packet(t)
	// The container's process exits: its jail goes (the daemon's watch
	// on the process, and the poststop hook).
	tn.stdin.Close()
	<-tn.done
	if !tn.cmd.ProcessState.Success() {
		t.Fatalf("runc run: %v; stderr: %s", tn.cmd.ProcessState, tn.stderr)
	}
	e.checkGone(t, tn.id, tn.ino)
}

// TestRuncTwoContainers: two containers at once each get their own tun0;
// neither lists the other's devices, and neither does the host.
func TestRuncTwoContainers(t *testing.T) {
	e := newEnv(t)
	a := e.startTunner(t, ctOpts{uid: 1000})
	b := e.startTunner(t, ctOpts{uid: 1000, detach: true})
	if a.dev != "/dev/tundevfs/tun0" || b.dev != "/dev/tundevfs/tun0" {
		t.Fatalf("devices %s and %s, want tun0 each", a.dev, b.dev)
	}
	if a.ino == b.ino {
		t.Fatal("the two containers share a network namespace")
	}
	for _, tn := range []*tunner{a, b} {
		if got := links(t, tn.netns); !slices.Equal(got, []string{"tun0"}) {
			t.Fatalf("links in %s: %v", tn.id, got)
		}
		if got := tn.say(t, "ls"); got != "ls tun0" {
			t.Fatalf("%s lists %q, want only its tun0", tn.id, got)
		}
	}
	// a's second device is tun1; b does not see it.
	if out, err := e.runc("exec", "--user", "1000:1000", a.id, "/tunhelper", "try", "/dev/tundevfs/tun").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "ok /dev/tundevfs/tun1" {
		t.Fatalf("second clone in %s: %v %s", a.id, err, out)
	}
	if got := b.say(t, "ls"); got != "ls tun0" {
		t.Fatalf("%s lists %q after a's tun1", b.id, got)
	}
	// Each device belongs to its container's jail.
	byJail := map[string][]string{}
	for _, dv := range e.d.Status(t).Devices {
		byJail[dv.Jail] = append(byJail[dv.Jail], dv.Name)
	}
	if !slices.Equal(byJail[a.id], []string{"tun0", "tun1"}) || !slices.Equal(byJail[b.id], []string{"tun0"}) || len(byJail["host"]) != 0 {
		t.Fatalf("devices by jail: %v", byJail)
	}
	// The host sees neither: the test's own namespace has no jail, the
	// daemon's is the host jail, which has no device.
	if names, err := readNames(e.netnsDev); err != nil || len(names) != 0 {
		t.Fatalf("the test's namespace lists %v, %v", names, err)
	}
	e.d.Netns.Do(t, func() error {
		names, err := readNames(e.netnsDev)
		if err == nil && len(names) != 0 {
			err = fmt.Errorf("the daemon's namespace lists %v", names)
		}
		return err
	})
	a.packet(t)
	b.packet(t)
	// runc kill + runc delete take b away; a stays whole.
	if out, err := e.runc("kill", b.id, "KILL").CombinedOutput(); err != nil {
		t.Fatalf("runc kill: %v %s", err, out)
	}
	for range b.lines { // the container's end of its stdout closes
	}
	if out, err := e.runc("delete", b.id).CombinedOutput(); err != nil {
		t.Fatalf("runc delete: %v %s", err, out)
	}
	e.checkGone(t, b.id, b.ino)
	if got := a.say(t, "ls"); got != "ls tun0 tun1" {
		t.Fatalf("%s lists %q after b went", a.id, got)
	}
	a.stdin.Close()
	<-a.done
	e.checkGone(t, a.id, a.ino)
}

func readNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names, err
}

// TestRuncUserns: with a user namespace (container 0-65535 = host
// 100000-165535), the container's uid 1000 clones and owns its node as
// host uid 101000; uid 2000 in the same container may not clone (ENOENT,
// as a lookup by someone who may not clone is) and may not open uid
// 1000's node (EACCES).
func TestRuncUserns(t *testing.T) {
	e := newEnv(t)
	tn := e.startTunner(t, ctOpts{uid: 1000, userns: true})
	if tn.dev != "/dev/tundevfs/tun0" {
		t.Fatalf("device %q", tn.dev)
	}
	// The node as the container's namespace sees it on the host side.
	ns, err := jails.OpenNetns(tn.netns)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	err = ns.Do(func() error { return unix.Stat(filepath.Join(e.netnsDev, "tun0"), &st) })
	ns.Close()
	if err != nil || st.Uid != 101000 || st.Gid != 101000 || st.Mode&0o777 != 0o600 {
		t.Fatalf("tun0: %v, uid %d gid %d mode %o; want 101000:101000 0600", err, st.Uid, st.Gid, st.Mode&0o777)
	}
	tn.packet(t)
	for _, c := range []struct{ path, want string }{{"/dev/tundevfs/tun", "err ENOENT"}, {"/dev/tundevfs/tun0", "err EACCES"}} {
		out, _ := e.runc("exec", "--user", "2000:2000", tn.id, "/tunhelper", "try", c.path).CombinedOutput()
		if strings.TrimSpace(string(out)) != c.want {
			t.Fatalf("uid 2000 opens %s: %q, want %q", c.path, out, c.want)
		}
	}
	tn.stdin.Close()
	<-tn.done
	e.checkGone(t, tn.id, tn.ino)
}

// TestRuncHookFailures: a hook that cannot do its job says so in one
// line, runc does not start the container, and nothing is left.
func TestRuncHookFailures(t *testing.T) {
	e := newEnv(t)
	check := func(name string, c *container, want string) {
		t.Helper()
		<-c.done
		if c.cmd.ProcessState.Success() {
			t.Fatalf("%s: runc started the container", name)
		}
		var hookLines []string
		for _, l := range strings.Split(c.stderr.String(), "\n") {
			if strings.Contains(l, "tundevfs: oci-hook:") {
				hookLines = append(hookLines, l)
			}
		}
		if len(hookLines) != 1 || !strings.Contains(hookLines[0], want) {
			t.Fatalf("%s: hook lines %q, want one with %q; stderr:\n%s", name, hookLines, want, c.stderr)
		}
		for l := range c.lines {
			t.Fatalf("%s: the container ran and said %q", name, l)
		}
		if js := e.jails(t); len(js) != 0 {
			t.Fatalf("%s: jails left: %v", name, js)
		}
		if out, _ := e.runc("list", "-q").Output(); strings.TrimSpace(string(out)) != "" {
			t.Fatalf("%s: runc containers left: %s", name, out)
		}
	}
	args := []string{"/tunhelper", "open", containers.ContainerPath}
	check("bad annotation", e.start(t, ctOpts{uid: 1000, args: args, annotations: map[string]string{"tundevfs.dev/dev_mode": "0999"}}), "tundevfs.dev/dev_mode")

	// No daemon answers on the spec's socket and none can start (the
	// hook's daemon binary exits at once).
	sockDir := openDir(t)
	noneSock := filepath.Join(sockDir, "none.sock")
	t.Cleanup(func() { os.RemoveAll(daemon.StateDir(noneSock)) }) // the failed start's log
	raw, err := containers.CDISpec(containers.CDIOptions{Binary: e.d.Bin, Socket: noneSock, NetnsDev: e.netnsDev})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range raw.Devices[0].ContainerEdits.Hooks {
		h.Args = append(h.Args, "--binary", "/bin/false")
	}
	if _, err := containers.WriteCDISpec(raw, e.cdiDir); err != nil {
		t.Fatal(err)
	}
	e.cache.Refresh()
	check("no daemon", e.start(t, ctOpts{uid: 1000, args: args}), "start daemon: it exited")

	// A container whose process is gone: the hook run by hand on such a
	// state.
	gone := exec.Command("/bin/true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	state, _ := json.Marshal(specs.State{ID: "gone-ct", Pid: gone.Process.Pid, Bundle: e.bundle(t, ctOpts{uid: 1000, args: args}), Status: specs.StateCreating})
	hook := exec.Command(e.d.Bin, "--socket", e.d.Socket, "oci-hook", "--netns-dev", e.netnsDev)
	hook.Stdin = bytes.NewReader(state)
	out, err := hook.CombinedOutput()
	if err == nil || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 || !strings.Contains(string(out), "oci-hook: container gone-ct:") {
		t.Fatalf("hook on a gone pid: %v, %q", err, out)
	}
	if js := e.jails(t); len(js) != 0 {
		t.Fatalf("jails left: %v", js)
	}
}

// TestHookStartsDaemon: with no daemon on its socket, the hook starts one
// with the shared per-netns mount and makes the jail; poststop removes the
// jail, and a second poststop is no error.
func TestHookStartsDaemon(t *testing.T) {
	requireRunc(t)
	home, other := itest.NewNetns(t), itest.NewNetns(t)
	base := openDir(t)
	socket, netnsDev := filepath.Join(base, "t.sock"), filepath.Join(base, "netns-dev")
	bin := itest.Binary(t)
	// The container stand-in: a process in a namespace of the test's.
	sleeper := other.Command("sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	bundle := openDir(t)
	cfg, _ := json.Marshal(specs.Spec{Process: &specs.Process{User: specs.User{UID: 1000, GID: 1000}}})
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	hook := func(status specs.ContainerState) (string, error) {
		state, _ := json.Marshal(specs.State{ID: "ct-spawn", Pid: sleeper.Process.Pid, Bundle: bundle, Status: status})
		cmd := home.Command(bin, "--socket", socket, "oci-hook", "--netns-dev", netnsDev)
		cmd.Stdin = bytes.NewReader(state)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := hook(specs.StateCreating)
	// Whatever happened, stop a daemon the hook started, and remove its
	// state directory (its log stays there after a stop).
	t.Cleanup(func() { os.RemoveAll(daemon.StateDir(socket)) })
	t.Cleanup(func() {
		var st daemon.Status
		if daemon.CallInto(socket, daemon.Request{Op: "status"}, &st) != nil {
			return
		}
		unix.Kill(st.PID, unix.SIGTERM)
		if !itest.WaitFor(func() bool { return unix.Kill(st.PID, 0) != nil }) {
			unix.Kill(st.PID, unix.SIGKILL)
			t.Errorf("the daemon the hook started did not stop")
		}
		if itest.IsMounted(netnsDev) {
			unix.Unmount(netnsDev, unix.MNT_DETACH)
			t.Errorf("%s still mounted", netnsDev)
		}
	})
	if err != nil {
		t.Fatalf("hook: %v %s", err, out)
	}
	// A runtime given the hook at prestart and createRuntime runs it
	// twice: the second run finds the jail made and is content.
	if out, err := hook(specs.StateCreated); err != nil {
		t.Fatalf("hook again: %v %s", err, out)
	}
	var st daemon.Status
	if err := daemon.CallInto(socket, daemon.Request{Op: "status"}, &st); err != nil {
		t.Fatal(err)
	}
	modes := map[string]string{}
	for _, m := range st.Mounts {
		modes[m.Dir] = m.Mode
	}
	if modes[netnsDev] != daemon.ModePerNetns {
		t.Fatalf("mounts of the started daemon: %v", modes)
	}
	var names []string
	for _, j := range st.Jails {
		names = append(names, j.Name)
	}
	if !slices.Equal(names, []string{"host", "ct-spawn"}) {
		t.Fatalf("jails: %v", names)
	}
	// The process's uid 1000 clones in its namespace through the mount.
	ns, err := jails.OpenNetns(other.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var fd int
	err = ns.Do(func() error {
		if err := unix.Setresuid(-1, 1000, -1); err != nil { // this thread only
			return err
		}
		defer unix.Setresuid(-1, 0, -1)
		fd, err = unix.Open(filepath.Join(netnsDev, "tun"), unix.O_RDWR|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		t.Fatalf("uid 1000 opens tun: %v", err)
	}
	unix.Close(fd)
	if got := links(t, other.Path); !slices.Equal(got, []string{"tun0"}) {
		t.Fatalf("links: %v", got)
	}
	for i := 0; i < 2; i++ {
		if out, err := hook(specs.StateStopped); err != nil {
			t.Fatalf("poststop %d: %v %s", i, err, out)
		}
	}
	if got := links(t, other.Path); len(got) != 0 {
		t.Fatalf("links after poststop: %v", got)
	}
}
