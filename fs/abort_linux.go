package fs

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// abortConnection ends a FUSE connection whose mount was detached while
// files were open, so that the server loop stops and clients get ENOTCONN.
func abortConnection(id uint32) error {
	if id == 0 {
		return fmt.Errorf("abort fuse connection: unknown connection")
	}
	const ctl = "/sys/fs/fuse/connections"
	p := fmt.Sprintf("%s/%d/abort", ctl, id)
	if _, err := os.Stat(p); err != nil {
		// fusectl is not mounted: mount it just for this, and take it
		// away again so that nothing is left behind.
		if err := unix.Mount("fusectl", ctl, "fusectl", 0, ""); err != nil {
			return fmt.Errorf("abort fuse connection: mount fusectl: %w", err)
		}
		defer unix.Unmount(ctl, 0)
	}
	if err := os.WriteFile(p, []byte("1"), 0); err != nil {
		return fmt.Errorf("abort fuse connection: %w", err)
	}
	return nil
}
