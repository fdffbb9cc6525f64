package fastpath

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SocketName is the fast path's abstract socket name ("@" is the leading
// NUL byte).
const SocketName = "@tundevfs/fastpath"

// MaxSockets is how many names the daemons of one namespace may use:
// SocketName and SocketName.1 to SocketName.(MaxSockets-1).
const MaxSockets = 16

// Request is the request message.
const Request = "tundevfs-fastpath 1"

// SocketNameN is the n-th socket name.
func SocketNameN(n int) string {
	if n == 0 {
		return SocketName
	}
	return SocketName + "." + strconv.Itoa(n)
}

// Error is a refusal by the daemon.
type Error struct {
	Errno   unix.Errno
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap makes errors.Is(err, unix.EACCES) work.
func (e *Error) Unwrap() error { return e.Errno }

// FastFD asks the daemon of devFile, an open tundevfs device file (opened
// read-write), for the device's TUN fd. The daemon is found in the
// caller's network namespace. devFile must stay open while the returned
// file is used. The returned file is non-blocking (Go's poller reads it),
// close-on-exec, and named after the interface.
func FastFD(devFile *os.File) (*os.File, error) {
	rc, err := devFile.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("fastpath %s: %w", devFile.Name(), err)
	}
	fd, name := -1, ""
	var ferr error
	// Control, not Fd: Fd would switch the device file to blocking mode.
	if err := rc.Control(func(dfd uintptr) { fd, name, ferr = FastFDRaw(int(dfd)) }); err != nil {
		return nil, fmt.Errorf("fastpath %s: %w", devFile.Name(), err)
	}
	if ferr != nil {
		return nil, fmt.Errorf("fastpath %s: %w", devFile.Name(), ferr)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// FastFDRaw is FastFD on a raw fd: it returns the TUN fd (close-on-exec)
// and the interface name.
func FastFDRaw(devFD int) (int, string, error) {
	var last error = &Error{Errno: unix.ECONNREFUSED, Message: "no tundevfs fast-path socket in this network namespace (is a daemon running with a jail here?)"}
	for n := 0; n < MaxSockets; n++ {
		fd, name, err := ask(SocketNameN(n), devFD)
		if err == nil {
			return fd, name, nil
		}
		if errors.Is(err, unix.ECONNREFUSED) {
			continue // no daemon on this name
		}
		last = err
		if errors.Is(err, unix.ENODEV) || errors.Is(err, errNotRoot) {
			continue // another daemon's socket, or a squatter's: ask the next
		}
		return -1, "", err
	}
	return -1, "", last
}

// ask sends devFD to the daemon at the abstract name sock.
func ask(sock string, devFD int) (int, string, error) {
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, "", fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(s)
	if err := unix.Connect(s, &unix.SockaddrUnix{Name: sock}); err != nil {
		return -1, "", fmt.Errorf("connect %s: %w", sock, err)
	}
	if err := checkPeer(s); err != nil {
		return -1, "", fmt.Errorf("%s: %w", sock, err)
	}
	// A daemon answers at once; never hang on a stuck listener.
	tv := unix.Timeval{Sec: 10}
	unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	// A socket with a timeout is not restarted after a signal (socket(7)):
	// the Go runtime's own signals (SIGURG preemption) would fail the call.
	// A SEQPACKET send or receive that returns EINTR moved nothing.
	err = retryEINTR(func() error {
		return unix.Sendmsg(s, []byte(Request), unix.UnixRights(devFD), nil, unix.MSG_NOSIGNAL)
	})
	if err != nil {
		return -1, "", fmt.Errorf("send to %s: %w", sock, err)
	}
	buf := make([]byte, 512)
	oob := make([]byte, unix.CmsgSpace(4*4))
	var n, oobn int
	err = retryEINTR(func() (err error) {
		n, oobn, _, _, err = unix.Recvmsg(s, buf, oob, unix.MSG_CMSG_CLOEXEC)
		return err
	})
	if err != nil {
		return -1, "", fmt.Errorf("receive from %s: %w", sock, err)
	}
	var fds []int
	if cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, c := range cmsgs {
			if got, err := unix.ParseUnixRights(&c); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	reply := string(buf[:n])
	if name, ok := strings.CutPrefix(reply, "ok "); ok && len(fds) == 1 {
		return fds[0], name, nil
	}
	for _, fd := range fds {
		unix.Close(fd)
	}
	if rest, ok := strings.CutPrefix(reply, "err "); ok {
		num, msg, _ := strings.Cut(rest, " ")
		e, _ := strconv.Atoi(num)
		return -1, "", &Error{Errno: unix.Errno(e), Message: msg}
	}
	if n == 0 {
		return -1, "", fmt.Errorf("%s: closed without an answer: %w", sock, unix.ECONNRESET)
	}
	return -1, "", fmt.Errorf("%s: bad answer %q: %w", sock, reply, unix.EPROTO)
}

// retryEINTR calls f again for as long as it fails with EINTR.
func retryEINTR(f func() error) error {
	for {
		if err := f(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// checkPeer refuses to hand the device file to a listener that is not
// privileged: anyone may bind an abstract name first. The daemon runs as
// root; seen from a user namespace that does not map it, root is the
// overflow uid (/proc/sys/kernel/overflowuid, 65534).
func checkPeer(s int) error {
	cred, err := unix.GetsockoptUcred(s, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	if cred.Uid == 0 || cred.Uid == overflowUID() {
		return nil
	}
	return fmt.Errorf("fastpath: the socket's owner is uid %d: %w", cred.Uid, errNotRoot)
}

// errNotRoot: the listener is not root's; the client asks the next name.
var errNotRoot = &Error{Errno: unix.EPERM, Message: "not root: not a tundevfs daemon (the device file was not sent)"}

// overflowUID is the kernel's overflow uid.
func overflowUID() uint32 {
	b, err := os.ReadFile("/proc/sys/kernel/overflowuid")
	if err != nil {
		return 65534
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return 65534
	}
	return uint32(n)
}
