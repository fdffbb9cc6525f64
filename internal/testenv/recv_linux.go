package testenv

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Recvfrom is unix.Recvfrom(fd, buf, 0) restarted after EINTR. A socket
// with SO_RCVTIMEO is not restarted by the kernel after a signal
// (socket(7)), and the Go runtime signals its threads at any time (SIGURG
// preemption), so a bare Recvfrom on such a socket fails at random.
func Recvfrom(fd int, buf []byte) (int, unix.Sockaddr, error) {
	for {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if !errors.Is(err, unix.EINTR) {
			return n, from, err
		}
	}
}
