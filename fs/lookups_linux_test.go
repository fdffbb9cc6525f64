package fs_test

import (
	"os"
	"path/filepath"
	"testing"
)

// TestKernelRefsFollowLookups: a device node holds a kernel reference
// on its device while the kernel knows the node (one per lookup, given
// back by FORGET), and a mount that ends gives back every one it still
// holds (issue 14 item 7: the lookup counting moved into one place).
func TestKernelRefsFollowLookups(t *testing.T) {
	e := newEnv(t)
	dir := e.d.Mount(t, "") // a second mount of the host jail, for this device only
	if _, err := os.Stat(filepath.Join(dir, "tun5")); err != nil {
		t.Fatal(err) // clones tun5, and the kernel keeps its node
	}
	kernelRefs := func() int {
		t.Helper()
		for _, d := range e.d.Status(t).Devices {
			if d.Name == "tun5" {
				return d.Refs.Kernel
			}
		}
		t.Fatal("tun5 is gone")
		return 0
	}
	if k := kernelRefs(); k < 1 {
		t.Fatalf("tun5 looked up through %s: %d kernel references, want at least 1", dir, k)
	}
	if out, err := e.d.CLI("umount", dir); err != nil {
		t.Fatalf("umount %s: %v: %s", dir, err, out)
	}
	if k := kernelRefs(); k != 0 {
		t.Errorf("after umount of the only mount that looked tun5 up: %d kernel references, want 0", k)
	}
	if out, err := e.d.CLI("ifconfig", "tun5", "destroy"); err != nil {
		t.Errorf("destroy tun5: %v: %s", err, out)
	}
}
