package fs

import (
	"errors"
	"fmt"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/driver"
)

// The end of a mount, and keeping the kernel's cache honest while it lives.

// Unmount unmounts and waits until the mount is gone. Open device files
// do not keep it: their devices are closed and blocked readers return.
func (mnt *Mount) Unmount() error {
	select {
	case <-mnt.done:
		return nil
	default:
	}
	// Not go-fuse's Server.Unmount: it retries EBUSY with a backoff and
	// then waits for the connection without a limit. Open files keep the
	// mount busy: close them as the end of the mount would (blocked
	// readers get ENXIO, as on destroy, while the connection still
	// answers) and detach it.
	// umount follows no symlink: a path that no longer leads to this
	// mount detaches nothing, and the connection is ended below.
	moved := ""
	if err := mnt.umount(0); err != nil {
		mnt.revoke()
		derr := mnt.umount(unix.MNT_DETACH)
		if isNotThere(derr) {
			moved = mnt.movedTo()
			if moved != "" {
				mnt.logger.Printf("unmount %s: %v; the mount is now at %s: ending its connection, not detaching it", mnt.dir, derr, moved)
			}
		} else if derr != nil && !errors.Is(derr, unix.EINVAL) {
			return fmt.Errorf("unmount %s: %w", mnt.dir, derr)
		}
	}
	if moved != "" {
		// Nothing ends the connection but an abort.
		if err := abortConnection(mnt.connID); err != nil {
			mnt.logger.Printf("unmount %s: %v", mnt.dir, err)
		}
		select {
		case <-mnt.done:
		case <-time.After(10 * time.Second):
		}
		return fmt.Errorf("unmount %s: a directory on its path was moved or replaced by a symlink, so the mount is now at %s: its connection is ended, but only root can detach it there", mnt.dir, moved)
	}
	// The connection ends once the kernel lets go of the superblock. A
	// detached mount with open files, or a bind mount of it in another
	// mount namespace, keeps it: abort the connection then, so that every
	// pending request ends and the server stops.
	select {
	case <-mnt.done:
		return nil
	case <-time.After(500 * time.Millisecond):
	}
	if err := abortConnection(mnt.connID); err != nil {
		mnt.logger.Printf("unmount %s: %v", mnt.dir, err)
	}
	select {
	case <-mnt.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("unmount %s: the FUSE connection did not end", mnt.dir)
	}
}

// revoke closes every open file of the mount: their blocked requests
// return ENXIO, and later ones find no handle and answer ENXIO too. A
// close(2) then sends no request (FOPEN_NOFLUSH), so it is clean even
// after the connection is gone.
func (mnt *Mount) revoke() {
	mnt.mu.Lock()
	mnt.revoked = true
	handles := mnt.handles
	mnt.handles = map[uint64]*driver.Handle{}
	mnt.mu.Unlock()
	for _, h := range handles {
		h.Close()
	}
}

// teardown runs after the server stops: every handle is closed and every
// kernel reference given back, as the kernel sends no more FORGETs.
func (mnt *Mount) teardown() {
	mnt.unsub()
	mnt.mu.Lock()
	mnt.closed = true
	handles := mnt.handles
	mnt.handles = map[uint64]*driver.Handle{}
	nodes := mnt.nodes
	mnt.nodes = map[uint64]*entry{}
	mnt.mu.Unlock()
	for _, h := range handles {
		h.Close()
	}
	forgetAll(nodes)
	mnt.jail.Release()
	close(mnt.done)
}

// onEvent keeps the kernel's cache honest: a destroyed device's entry is
// invalidated before Destroy returns.
func (mnt *Mount) onEvent(ev driver.Event) {
	if ev.Kind == driver.Renamed || (ev.Kind == driver.Destroyed && ev.Alias != "") {
		mnt.onAliasEvent(ev)
	}
	if ev.Kind != driver.Destroyed {
		return
	}
	mnt.mu.Lock()
	_, known := mnt.nodes[ev.Device.Ino()]
	closed := mnt.closed
	mnt.mu.Unlock()
	if closed {
		return
	}
	if known {
		mnt.server.DeleteNotify(fuse.FUSE_ROOT_ID, ev.Device.Ino(), ev.Name)
	} else {
		mnt.server.EntryNotify(fuse.FUSE_ROOT_ID, ev.Name)
	}
}
