package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
)

// TestMountRacesIdleExit: two clients mount and unmount in a loop on one
// socket, so an on-demand daemon often goes idle (the other client's
// umount) just as a mount comes. Every `tundevfs mount` succeeds, by the
// daemon that stays or by a new one the CLI starts, and leaves a live
// mount that its umount then removes: never a failure, never a mount
// torn down (or left dead) by a daemon that was going away.
func TestMountRacesIdleExit(t *testing.T) {
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	bin := itest.Binary(t)
	socket := filepath.Join(t.TempDir(), "t.sock")
	stopSpawned(t, socket)
	cli := func(args ...string) (string, error) {
		out, err := ns.Command(bin, append([]string{"--socket", socket}, args...)...).CombinedOutput()
		return string(out), err
	}
	const clients, rounds = 2, 10
	var wg sync.WaitGroup
	errs := make(chan error, clients*rounds)
	for c := 0; c < clients; c++ {
		dir := t.TempDir()
		t.Cleanup(func() {
			if itest.IsMounted(dir) {
				unix.Unmount(dir, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
			}
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				if out, err := cli("mount", dir); err != nil {
					errs <- fmt.Errorf("client %d round %d: mount: %v: %s", c, r, err, out)
					return
				}
				var st unix.Stat_t
				if err := unix.Stat(dir, &st); err != nil || !itest.IsMounted(dir) {
					errs <- fmt.Errorf("client %d round %d: mount answered OK but %s is not a live mount (stat: %v)", c, r, dir, err)
					return
				}
				if out, err := cli("umount", dir); err != nil {
					errs <- fmt.Errorf("client %d round %d: umount: %v: %s", c, r, err, out)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	failed := false
	for err := range errs {
		t.Error(err)
		failed = true
	}
	if failed {
		if b, err := os.ReadFile(filepath.Join(daemon.StateDir(socket), "daemon.log")); err == nil {
			t.Logf("daemon.log:\n%s", b)
		}
	}
}
