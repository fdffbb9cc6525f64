package fs

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// processID turns the id FUSE gives for a caller, which is its thread id,
// into its process id, as FreeBSD records a process in tun_pid. If the
// thread is gone already, the thread id is the best there is.
func processID(tid uint32) int {
	f, err := os.Open("/proc/" + strconv.FormatUint(uint64(tid), 10) + "/status")
	if err != nil {
		return int(tid)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Tgid:"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				return n
			}
		}
	}
	return int(tid)
}
