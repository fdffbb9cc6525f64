package fs

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// processID turns the id FUSE gives for a caller, which is its thread id,
// into its process id, as FreeBSD records a process in tun_pid. If the
// thread is gone already, the thread id is the best there is. It is on the
// open path, so it reads /proc/TID/status with one read(2) of its head,
// where Tgid is (after Name, Umask and State), and with unix.Open, whose fd
// never reaches Go's netpoller.
func processID(tid uint32) int {
	fd, err := unix.Open("/proc/"+strconv.FormatUint(uint64(tid), 10)+"/status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return int(tid)
	}
	defer unix.Close(fd)
	var buf [512]byte
	n, err := unix.Read(fd, buf[:])
	if err != nil {
		return int(tid)
	}
	for line := range strings.Lines(string(buf[:n])) {
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			if p, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				return p
			}
		}
	}
	return int(tid)
}
