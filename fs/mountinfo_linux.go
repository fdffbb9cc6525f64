package fs

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	dir    string // the mount point, unescaped
	fstype string // "fuse.tundevfs" for ours
	minor  uint32 // the device minor: a FUSE mount's connection number
}

// mounts reads /proc/self/mountinfo: the daemon learns about mounts from
// there, never by touching a mount of its own.
func mounts() []mountEntry {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 36 35 0:52 / /mnt/dev rw,... - fuse.tundevfs tundevfs rw,...
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		sep := 6
		for sep < len(fields) && fields[sep] != "-" {
			sep++
		}
		if sep+1 >= len(fields) {
			continue
		}
		e := mountEntry{dir: unescapeMount(fields[4]), fstype: fields[sep+1]}
		if _, minor, ok := strings.Cut(fields[2], ":"); ok {
			if n, err := strconv.ParseUint(minor, 10, 32); err == nil {
				e.minor = uint32(n)
			}
		}
		out = append(out, e)
	}
	return out
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

// IsMounted reports whether dir is a mount point of any kind.
func IsMounted(dir string) bool {
	dir = filepath.Clean(dir)
	for _, m := range mounts() {
		if m.dir == dir {
			return true
		}
	}
	return false
}

// IsTundevfsMount reports whether dir is a tundevfs mount point, live or
// left by a dead daemon.
func IsTundevfsMount(dir string) bool {
	dir = filepath.Clean(dir)
	for _, m := range mounts() {
		if m.dir == dir && m.fstype == "fuse.tundevfs" {
			return true
		}
	}
	return false
}

// mountConnID finds the FUSE connection number of the tundevfs mount at
// dir; the last (topmost) mount wins. 0 if there is none.
func mountConnID(dir string) uint32 {
	dir = filepath.Clean(dir)
	var id uint32
	for _, m := range mounts() {
		if m.dir == dir && m.fstype == "fuse.tundevfs" {
			id = m.minor
		}
	}
	return id
}

// MountsUnder lists the mount points at or under dir, the latest first
// (the order in which to detach them).
func MountsUnder(dir string) []string {
	var out []string
	for _, e := range mounts() {
		if e.dir == dir || strings.HasPrefix(e.dir, dir+"/") {
			out = append(out, e.dir)
		}
	}
	slices.Reverse(out)
	return out
}
