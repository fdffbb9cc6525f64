package fs_test

import (
	"os"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/jails"
)

// TestMountDuringRenames: a rename (or destroy) event of a jail that
// arrives while a mount of that jail is being set up must not reach the
// mount before its FUSE server exists. Found by internal/stress: the
// daemon died with a nil pointer dereference in Mount.onAliasEvent.
func TestMountDuringRenames(t *testing.T) {
	e := newEnv(t)
	var name string
	e.d.Call(t, daemon.Request{Op: "ifconfig", Args: []string{"tun", "create"}}, &name)
	nsh, err := jails.OpenNetns(e.ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer nsh.Close()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		from, to := name, "rn0"
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			err := nsh.Do(func() error {
				l, err := netlink.LinkByName(from)
				if err != nil {
					return err
				}
				return netlink.LinkSetName(l, to)
			})
			if err != nil {
				t.Errorf("rename %s to %s: %v", from, to, err)
				return
			}
			from, to = to, from
		}
	}()
	n := 40
	if testing.Short() {
		n = 20
	}
	for i := 0; i < n; i++ {
		dir := t.TempDir()
		if _, err := daemon.Call(e.d.Socket, daemon.Request{Op: "mount", Dir: dir}); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("mount %d during renames: %v", i, err)
		}
		if _, err := daemon.Call(e.d.Socket, daemon.Request{Op: "umount", Dir: dir}); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("umount %d during renames: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case <-e.d.Exited():
		t.Fatal("the daemon exited")
	default:
	}
	if _, err := os.ReadDir(e.dir); err != nil {
		t.Fatalf("the first mount after the renames: %v", err)
	}
}
