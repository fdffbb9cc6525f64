package daemon_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tundevfs/tundevfs/internal/itest"
)

// TestFastPathCClient builds the C client (include/tundevfs/fastpath.[ch])
// and a small program with gcc, and has it trade a device file for the
// TUN fd and ping the kernel through it; a read-only open is refused with
// EACCES.
func TestFastPathCClient(t *testing.T) {
	ns, d := newDaemon(t)
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Fatalf("gcc is missing (scripts/install-deps.sh installs it)")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..")
	bin := filepath.Join(t.TempDir(), "fastpath_client")
	out, err := exec.Command("gcc", "-Wall", "-Wextra", "-Werror", "-I", filepath.Join(root, "include"), "-o", bin,
		filepath.Join(root, "testdata", "clients", "fastpath_client.c"),
		filepath.Join(root, "include", "tundevfs", "fastpath.c")).CombinedOutput()
	if err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	dir := d.Mount(t, "")
	if out, err := d.CLI("ifconfig", "tun0", "create"); err != nil {
		t.Fatalf("ifconfig tun0 create: %v %s", err, out)
	}
	upTun(t, ns, "tun0")
	out, err = ns.Command(bin, filepath.Join(dir, "tun0")).CombinedOutput()
	if err != nil || string(out) != "ifname tun0\nreply\n" {
		t.Fatalf("C client: %v\n%s", err, out)
	}
	// The client's close reaches the daemon after it exits (FUSE release).
	if !itest.WaitFor(func() bool { st := d.Status(t); return len(st.Devices) == 1 && !st.Devices[0].Open }) {
		t.Fatalf("tun0 still open after the client exited")
	}
	out, err = ns.Command(bin, filepath.Join(dir, "tun0"), "refuse").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "errno EACCES: fastpath: tun0: the device file must be open read-write") {
		t.Fatalf("C client, read-only open: %v\n%s", err, out)
	}
}
