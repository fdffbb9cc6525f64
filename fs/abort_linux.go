package fs

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountConnID finds the FUSE connection number of the mount at dir (the
// minor of its device) in /proc/self/mountinfo, without touching the mount
// itself: the daemon never does I/O on its own mounts.
func mountConnID(dir string) uint32 {
	dir = filepath.Clean(dir)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	var id uint32
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 36 35 0:52 / /mnt/dev rw,... - fuse.tundevfs tundevfs rw,...
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || unescapeMount(fields[4]) != dir {
			continue
		}
		sep := 6
		for sep < len(fields) && fields[sep] != "-" {
			sep++
		}
		if sep+1 >= len(fields) || fields[sep+1] != "fuse.tundevfs" {
			continue
		}
		_, minor, ok := strings.Cut(fields[2], ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(minor, 10, 32); err == nil {
			id = uint32(n) // the last (topmost) mount wins
		}
	}
	return id
}

// unescapeMount undoes mountinfo's octal escapes (\040 for space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

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
