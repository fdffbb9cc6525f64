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

// TestCloneAfterDestroyRace is a race TestStress found: Manager.Destroy
// used to free the unit before it emitted Destroyed, which is when the
// mounts tell the kernel to drop the name. A clone in between got the same
// unit, and the kernel, still holding the old entry of "tunN" (from the
// open that made it), sent the OPEN to the destroyed device's node: the
// open of the cloner failed with ENXIO. Three parallel
// open/close/destroy loops hit it within a few hundred iterations. Destroy
// now emits (and the node goes) before the unit is freed.
func TestCloneAfterDestroyRace(t *testing.T) {
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	d := itest.StartDaemon(t, ns)
	host := d.Mount(t, "")
	n := 600 // per loop; the race showed within a few hundred
	if os.Getenv("STRESS_DURATION") != "" {
		n = 3000 // make stress
	}
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
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
