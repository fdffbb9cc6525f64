package holder

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// The server's end of the socketpair: its fd number in the server and the
// environment variable that names it.
const (
	envFD    = "TUNDEVFS_HOLDER_FD"
	serverFD = 3
)

// Sizes. A state blob travels in chunks of chunkSize, far below the
// socket's send buffer (a SEQPACKET message must fit in it whole).
const (
	chunkSize = 32 << 10
	maxMsg    = 2 + chunkSize // op, flags, chunk: the largest message
	maxKey    = 1024
	maxState  = 256 << 20 // a bound on a broken server, not a tuning
)

// op is a message's first byte.
type op byte

// Server → holder.
const (
	opTakeover op = 1 // (nothing): send the takeover
	opPutFD    op = 2 // key; one fd
	opDelFD    op = 3 // key
	opState    op = 4 // chunk flags, bytes of the blob
	opReady    op = 5 // (nothing)
	opExiting  op = 6 // 1: restart, 0: shutdown
)

// Holder → server.
const (
	opInfo    op = 0x81 // infoMsg: the takeover's first message
	opFD      op = 0x82 // key; one fd
	opDone    op = 0x83 // (nothing): the takeover's last message
	opRestart op = 0x84 // (nothing): quiesce, Exiting(true), exit
)

// State chunk flags.
const (
	chunkFirst = 1
	chunkLast  = 2
)

// errDrained is what a non-blocking recv returns on an empty socket.
var errDrained = errors.New("holder: socket drained")

// sock is one end of a holder socketpair: non-blocking, in the Go
// netpoller (so a deadline can stop a blocked recv), sendmsg and recvmsg
// restarted on EINTR. It has no state of its own beyond the file; callers
// serialize sends.
type sock struct {
	f  *os.File
	rc syscall.RawConn
}

// newSock takes fd over.
func newSock(fd int, name string) (*sock, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("holder socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("holder socket: %w", err)
	}
	return &sock{f: f, rc: rc}, nil
}

func (s *sock) close() error { return s.f.Close() }

// send sends the concatenation of bufs as one message, with fd attached
// when fd >= 0. Once it returned, the message is queued on the peer.
func (s *sock) send(fd int, bufs ...[]byte) error {
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	var err error
	werr := s.rc.Write(func(sfd uintptr) bool {
		for {
			_, err = unix.SendmsgBuffers(int(sfd), bufs, oob, nil, unix.MSG_NOSIGNAL)
			if !errors.Is(err, unix.EINTR) {
				return !errors.Is(err, unix.EAGAIN)
			}
		}
	})
	if werr != nil {
		return werr
	}
	return err
}

// sendFile is send with f's fd attached. It does not use f.Fd, which would
// put the open file (shared with every dup) into blocking mode.
func (s *sock) sendFile(f *os.File, bufs ...[]byte) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = s.send(int(fd), bufs...) }); err != nil {
		return err
	}
	return serr
}

// recv receives one message into buf and returns its length and the fds
// it carried (close-on-exec). wait=false never blocks: an empty socket
// gives errDrained. A closed peer gives io.EOF (no message is empty). A
// message too large for buf, or with more fds than oob holds, is an error
// (its fds closed).
func (s *sock) recv(buf, oob []byte, wait bool) (int, []int, error) {
	var n, oobn, flags int
	var err error
	do := func(sfd uintptr) bool {
		fl := unix.MSG_CMSG_CLOEXEC
		if !wait {
			fl |= unix.MSG_DONTWAIT
		}
		for {
			n, oobn, flags, _, err = unix.Recvmsg(int(sfd), buf, oob, fl)
			if !errors.Is(err, unix.EINTR) {
				return !wait || !errors.Is(err, unix.EAGAIN)
			}
		}
	}
	var rerr error
	if wait {
		rerr = s.rc.Read(do)
	} else {
		rerr = s.rc.Control(func(fd uintptr) { do(fd) })
	}
	if rerr != nil {
		return 0, nil, rerr
	}
	if errors.Is(err, unix.EAGAIN) {
		return 0, nil, errDrained
	}
	if err != nil {
		return 0, nil, err
	}
	fds, perr := parseRights(oob[:oobn])
	switch {
	case perr != nil:
		closeFDs(fds)
		return 0, nil, perr
	case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
		closeFDs(fds)
		return 0, nil, fmt.Errorf("holder socket: message truncated (flags %#x)", flags)
	case n == 0 && len(fds) == 0:
		return 0, nil, io.EOF
	}
	return n, fds, nil
}

// parseRights returns every fd of the SCM_RIGHTS messages in oob.
func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("holder socket: control message: %w", err)
	}
	var fds []int
	for _, c := range cmsgs {
		got, err := unix.ParseUnixRights(&c)
		if err != nil {
			continue // not SCM_RIGHTS: nothing to close
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// oobSize is room for the one fd a message may carry, and one more so
// that a message with too many fds is seen (not silently truncated).
var oobSize = unix.CmsgSpace(2 * 4)
