package stress

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
)

// TestCloneAfterDestroyRace reproduces a race TestStress found (reported,
// not fixed here: it is the driver's). Manager.Destroy frees the unit
// before it emits Destroyed, which is when the mounts tell the kernel to
// drop the name. A clone in between gets the same unit, and the kernel,
// still holding the old entry of "tunN" (from the open that made it),
// sends the OPEN to the destroyed device's node: the open of the cloner
// fails with ENXIO. Three parallel open/close/destroy loops hit it within
// a few hundred iterations; with the unit freed after the emit, 4,500
// iterations pass. It runs with TUNDEVFS_KNOWN_BUGS=1 until the fix lands
// (then drop the gate).
func TestCloneAfterDestroyRace(t *testing.T) {
	if os.Getenv("TUNDEVFS_KNOWN_BUGS") != "1" {
		t.Skip("a known race of driver.Manager.Destroy (unit freed before the kernel is told); TUNDEVFS_KNOWN_BUGS=1 runs it")
	}
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	d := itest.StartDaemon(t, ns)
	host := d.Mount(t, "")
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1500; i++ {
				fd, err := unix.Open(filepath.Join(host, "tun"), unix.O_RDWR|unix.O_CLOEXEC, 0)
				if err != nil {
					t.Errorf("loop %d, iteration %d: open tun: %v", w, i, err)
					return
				}
				name, err := devName(fd)
				unix.Close(fd)
				if err != nil {
					t.Error(err)
					return
				}
				var out any
				if err := daemon.CallInto(d.Socket, daemon.Request{Op: "ifconfig", Args: []string{name, "destroy"}}, &out); err != nil {
					t.Errorf("loop %d, iteration %d: destroy %s: %v", w, i, name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
