package containers_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"tags.cncf.io/container-device-interface/pkg/cdi"

	"github.com/tundevfs/tundevfs/containers"
	"github.com/tundevfs/tundevfs/fs"
)

// The podman recipes of the README (issue 11), run with podman from
// Debian (scripts/install-deps.sh) on the busybox rootfs (`--rootfs`: no
// image can be pulled here): CDI (`--device tundevfs.dev/tun=default`)
// and hooks.d (`--annotation tundevfs.dev/enable=true -v
// NETNSDEV:/dev/tundevfs`). podman keeps all its state in directories of
// the test's (--root, --runroot, --tmpdir, --hooks-dir), its container's
// cgroups under a parent of the test's, removed at cleanup.
//
// A machine whose podman cannot run a trivial container at all (cgroups,
// rlimits) skips these tests with podman's own error, also under
// TUNDEVFS_REQUIRE_PRIVILEGED=1: that is about the machine, not about
// privilege, and the runc tests carry the proof. A missing podman is a
// failure there, as install-deps installs it.

// podmanUlimits keeps podman from asking runc for RLIMIT_NOFILE and
// RLIMIT_NPROC above the machine's hard limits ("error setting rlimit
// type 7: operation not permitted" otherwise, on machines with a low
// hard limit, such as this one's 20000).
var podmanUlimits = []string{"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}

// pod is one podman installation of the test's: its state directories
// and the cgroup parent of its containers.
type pod struct {
	dir      string // root, runroot, tmp, hooks.d, rootfs
	hooksDir string // --hooks-dir: only the hooks the test puts there
	cgroup   string // --cgroup-parent, under every hierarchy's root
	rootfs   string
}

// requirePodman is requireRunc plus podman (installed by install-deps).
func requirePodman(t *testing.T) {
	t.Helper()
	requireRunc(t)
	if _, err := exec.LookPath("podman"); err != nil {
		msg := "podman test needs podman (scripts/install-deps.sh installs it)"
		if os.Getenv("TUNDEVFS_REQUIRE_PRIVILEGED") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// newPod makes the test's podman state and checks that podman runs a
// trivial container; if it cannot, the test skips with podman's error.
// Cleanup removes the containers, mounts and cgroups podman left.
func newPod(t *testing.T) *pod {
	t.Helper()
	requirePodman(t)
	p := &pod{dir: openDir(t), cgroup: "/" + randID("tundevfs-podman-test")}
	p.hooksDir = filepath.Join(p.dir, "hooks.d")
	for _, d := range []string{"root", "runroot", "tmp", "hooks.d"} {
		if err := os.Mkdir(filepath.Join(p.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	p.rootfs = podRootfs(t, p.dir)
	t.Cleanup(func() { p.cleanup(t) })
	out, err := p.command("run", p.runArgs(randID("tdfs-probe"), []string{"--rm"}, "/bin/sh", "-c", "echo hello")...).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Skipf("podman cannot run a trivial container on this machine (not a tundevfs failure; the runc tests carry the proof): %v\n%s", err, out)
	}
	return p
}

// podRootfs is the busybox rootfs with the helper at /tunhelper, in dir.
func podRootfs(t *testing.T, dir string) string {
	t.Helper()
	rootfs := filepath.Join(dir, "rootfs")
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
	return rootfs
}

// command is podman with the test's state directories.
func (p *pod) command(sub string, args ...string) *exec.Cmd {
	global := []string{
		"--root", filepath.Join(p.dir, "root"),
		"--runroot", filepath.Join(p.dir, "runroot"),
		"--tmpdir", filepath.Join(p.dir, "tmp"),
		"--hooks-dir", p.hooksDir,
		"--cgroup-manager", "cgroupfs",
		"--events-backend", "file",
	}
	return exec.Command("podman", append(append(global, sub), args...)...)
}

// runArgs are the arguments of `podman run` for a container named name
// on the test's rootfs: opts before the rootfs, cmd after it.
func (p *pod) runArgs(name string, opts []string, cmd ...string) []string {
	args := []string{"--name", name, "--network", "none", "--cgroups", "no-conmon", "--cgroup-parent", p.cgroup}
	args = append(args, podmanUlimits...)
	args = append(args, opts...)
	args = append(args, "--rootfs", p.rootfs)
	return append(args, cmd...)
}

// cleanup removes what podman may have left: containers, mounts under
// the test's directories, the cgroup parent. A leftover is an error.
func (p *pod) cleanup(t *testing.T) {
	if out, err := p.command("ps", "-a", "-q").Output(); err == nil && strings.TrimSpace(string(out)) != "" {
		t.Errorf("podman containers left: %s", out)
		p.command("rm", "-f", "-a", "-t", "0").Run()
	}
	for _, m := range fs.MountsUnder(p.dir) {
		t.Errorf("podman left a mount at %s", m)
		unix.Unmount(m, unix.MNT_DETACH)
	}
	hier, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hier {
		d := filepath.Join(h, p.cgroup)
		if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			t.Errorf("remove cgroup %s: %v", d, err)
		}
	}
}

// startTunner runs `podman run -i ... /tunhelper open /dev/tundevfs` with
// the recipe's options and returns it after it printed its device, with
// its podman id (the jail's name) and namespace.
func (p *pod) startTunner(t *testing.T, recipe ...string) *tunner {
	t.Helper()
	name := randID("tdfs-podman")
	opts := append([]string{"--rm", "-i", "--user", "1000"}, recipe...)
	c := &container{id: name, lines: make(chan string, 16), stderr: new(bytes.Buffer), done: make(chan struct{})}
	c.cmd = p.command("run", p.runArgs(name, opts, "/tunhelper", "open", containers.ContainerPath)...)
	c.launch(t)
	t.Cleanup(func() {
		c.stdin.Close()
		p.command("rm", "-f", "-t", "0", name).Run()
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
			t.Errorf("podman run %s did not end", name)
		}
	})
	return p.tunnerOf(t, c)
}

// tunnerOf reads the container's first line and its id and pid.
func (p *pod) tunnerOf(t *testing.T, c *container) *tunner {
	t.Helper()
	tn := &tunner{container: c, dev: c.line(t)}
	if tn.dev != "/dev/tundevfs/tun0" {
		t.Fatalf("podman container %s opened %q, want /dev/tundevfs/tun0; stderr: %s", c.id, tn.dev, c.stderr)
	}
	out, err := p.command("inspect", "--format", "{{.Id}} {{.State.Pid}}", c.id).Output()
	if err != nil {
		t.Fatalf("podman inspect %s: %v", c.id, err)
	}
	var pid int
	if _, err := fmt.Sscan(string(out), &c.id, &pid); err != nil {
		t.Fatalf("podman inspect %s: %q: %v", c.id, out, err)
	}
	tn.netns = fmt.Sprintf("/proc/%d/ns/net", pid)
	tn.ino = nsInoOf(t, tn.netns)
	return tn
}

// podmanCDIDir is the CDI directory podman 4.3 reads besides /etc/cdi
// (it has no setting for others); its specs take priority over /etc/cdi's.
const podmanCDIDir = "/var/run/cdi"

// installCDISpec writes spec into podmanCDIDir under a name of the
// test's, removed at cleanup, and checks that the CDI library resolves
// containers.CDIName to it there. Tests doing this hold an exclusive
// flock on the directory while their spec is in it, so two of them never
// offer the device at once; another spec of the kind in it fails the
// test (the runtime would see a conflict).
func installCDISpec(t *testing.T, spec []byte) string {
	t.Helper()
	created := false
	var dirFD int
	for {
		if err := os.Mkdir(podmanCDIDir, 0o755); err == nil {
			created = true
		} else if !errors.Is(err, os.ErrExist) {
			t.Fatal(err)
		}
		fd, err := unix.Open(podmanCDIDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
			unix.Close(fd)
			t.Fatal(err)
		}
		// The directory the lock is on may have been removed by the
		// test that held it: lock the one at the path.
		var a, b unix.Stat_t
		if unix.Fstat(fd, &a) == nil && unix.Stat(podmanCDIDir, &b) == nil && a.Ino == b.Ino && a.Dev == b.Dev {
			dirFD = fd
			break
		}
		unix.Close(fd)
	}
	path := filepath.Join(podmanCDIDir, randID("tundevfs-podman-test")+".json")
	t.Cleanup(func() {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove the test's CDI spec: %v", err)
		}
		if created {
			os.Remove(podmanCDIDir) // only if empty
		}
		unix.Close(dirFD)
	})
	before, err := cdi.NewCache(cdi.WithSpecDirs(podmanCDIDir), cdi.WithAutoRefresh(false))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range before.GetVendorSpecs("tundevfs.dev") {
		if s.GetClass() == "tun" {
			t.Fatalf("another CDI spec of %s is in %s: %s (remove it to run this test)", containers.CDIKind, podmanCDIDir, s.GetPath())
		}
	}
	if err := os.WriteFile(path, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	after, err := cdi.NewCache(cdi.WithSpecDirs("/etc/cdi", podmanCDIDir), cdi.WithAutoRefresh(false))
	if err != nil {
		t.Fatal(err)
	}
	dev := after.GetDevice(containers.CDIName)
	if dev == nil || dev.GetSpec().GetPath() != path {
		t.Fatalf("the CDI library does not resolve %s to %s: %v, errors %v", containers.CDIName, path, dev, after.GetErrors())
	}
	return path
}

// gone checks that a podman container of the test ended well and left
// nothing: no jail, device or daemon fd of its namespace, no interface
// in that namespace (held open by nsFile), no podman container.
func (p *pod) gone(t *testing.T, e *env, tn *tunner, nsFile *os.File) {
	t.Helper()
	tn.stdin.Close()
	select {
	case <-tn.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("podman run %s did not end after EOF; stderr: %s", tn.id, tn.stderr)
	}
	if !tn.cmd.ProcessState.Success() {
		t.Fatalf("podman run: %v; stderr: %s", tn.cmd.ProcessState, tn.stderr)
	}
	e.checkGone(t, tn.id, tn.ino)
	if got := links(t, fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), nsFile.Fd())); len(got) != 0 {
		t.Fatalf("tun interfaces left in the container's namespace: %v", got)
	}
	if out, err := p.command("ps", "-a", "-q").Output(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("podman ps -a after --rm: %v %q", err, out)
	}
	if m := fs.MountsUnder(e.netnsDev); len(m) != 1 {
		t.Fatalf("mounts at the shared mount: %v, want the daemon's one", m)
	}
}

// podmanScenario is the README's use: uid 1000 in the container opens
// /dev/tundevfs/tun, gets tun0 in the container's own namespace, and its
// packet reaches a socket there; then the container ends and takes
// everything of its with it.
func podmanScenario(t *testing.T, e *env, p *pod, recipe ...string) {
	t.Helper()
	tn := p.startTunner(t, recipe...)
	nsFile, err := os.Open(tn.netns)
	if err != nil {
		t.Fatal(err)
	}
	defer nsFile.Close()
	if got := links(t, tn.netns); !slices.Equal(got, []string{"tun0"}) {
		t.Fatalf("tun links in the container's namespace: %v", got)
	}
	if !slices.Contains(e.jails(t), tn.id) {
		t.Fatalf("jls: %v, want the container id %s", e.jails(t), tn.id)
	}
	if got := tn.say(t, "ls"); got != "ls tun0" {
		t.Fatalf("the container lists %q, want its tun0", got)
	}
	tn.packet(t)
	p.gone(t, e, tn, nsFile)
}

// TestPodmanCDI: the README's CDI recipe, `podman run --device
// tundevfs.dev/tun=default --user 1000`, with the spec `tundevfs cdi`
// prints for the test's daemon in podman's CDI directory.
func TestPodmanCDI(t *testing.T) {
	e := newEnv(t)
	p := newPod(t)
	requirePodmanCDI(t)
	spec, err := exec.Command(e.d.Bin, "--socket", e.d.Socket, "cdi", "--binary", e.d.Bin, "--netns-dev", e.netnsDev).Output()
	if err != nil {
		t.Fatalf("tundevfs cdi: %v", err)
	}
	installCDISpec(t, spec)
	podmanScenario(t, e, p, "--device", containers.CDIName)
}

// requirePodmanCDI skips when podman predates CDI (4.1): the machine's
// podman, as for a podman that cannot run a container at all.
func requirePodmanCDI(t *testing.T) {
	t.Helper()
	out, err := exec.Command("podman", "version", "--format", "{{.Client.Version}}").Output()
	if err != nil {
		t.Fatalf("podman version: %v", err)
	}
	v := strings.TrimSpace(string(out))
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("podman version %q: %v", v, err)
	}
	if major < 4 || major == 4 && minor < 1 {
		t.Skipf("podman %s has no CDI (--device KIND=NAME needs podman 4.1)", v)
	}
}

// TestPodmanHooksD: the README's hooks.d recipe, the file `tundevfs
// oci-hook --hooks-d` prints in podman's hooks directory, `podman run
// --annotation tundevfs.dev/enable=true -v NETNSDEV:/dev/tundevfs`.
func TestPodmanHooksD(t *testing.T) {
	e := newEnv(t)
	p := newPod(t)
	hooks, err := exec.Command(e.d.Bin, "--socket", e.d.Socket, "oci-hook", "--hooks-d", "--binary", e.d.Bin, "--netns-dev", e.netnsDev).Output()
	if err != nil {
		t.Fatalf("tundevfs oci-hook --hooks-d: %v", err)
	}
	if !bytes.Contains(hooks, []byte(e.d.Socket)) {
		t.Fatalf("the hooks.d file does not name the daemon's socket %s:\n%s", e.d.Socket, hooks)
	}
	if err := os.WriteFile(filepath.Join(p.hooksDir, "tundevfs.json"), hooks, 0o644); err != nil {
		t.Fatal(err)
	}
	podmanScenario(t, e, p, "--annotation", containers.EnableAnnotation+"=true", "-v", e.netnsDev+":"+containers.ContainerPath)
}
