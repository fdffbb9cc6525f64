package main

import (
	"encoding/json"
	"errors"
	"io"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
)

// startTries bounds how many daemons callStarting starts for one request.
const startTries = 5

// callStarting sends req to the daemon on socket, starting an on-demand
// one first when none answers. An on-demand daemon that went idle as the
// request came refuses it (ErrShuttingDown), or has stopped listening
// (nothing answers, or a connection it never accepted is reset): it made
// nothing, so once it has exited a new daemon is started and the request
// sent again, a few times. A daemon it starts that exits at once, left
// idle by another client's request, counts as going away too.
func callStarting(socket string, req daemon.Request) (json.RawMessage, error) {
	for try := 1; ; try++ {
		pid := pingPID(socket)
		var err error
		if pid == 0 {
			// Another client's request may leave the new daemon
			// idle before this one comes (it then exits cleanly).
			err = spawnDaemon(socket)
			if err != nil && pingPID(socket) != 0 {
				err = nil // another client's daemon won the socket: use it
			}
			if err == nil {
				pid = pingPID(socket)
			}
		}
		if err == nil {
			var data json.RawMessage
			data, err = daemon.Call(socket, req)
			if err == nil || !wentAway(err) {
				return data, err
			}
		}
		if try == startTries || !wentAway(err) {
			return nil, err
		}
		waitExit(pid)
	}
}

// pingPID returns the pid of the daemon answering on socket, 0 if none.
func pingPID(socket string) int {
	data, err := daemon.Call(socket, daemon.Request{Op: daemon.OpPing})
	if err != nil {
		return 0
	}
	var pid int
	if json.Unmarshal(data, &pid) != nil || pid <= 0 {
		return -1 // answers, pid unknown
	}
	return pid
}

// wentAway says whether err means that the daemon was going away and did
// not handle the request: it refused it as it was shutting down, or
// never accepted the connection.
func wentAway(err error) bool {
	if errors.Is(err, daemon.ErrShuttingDown) || errors.Is(err, daemon.ErrNoDaemon) {
		return true
	}
	var remote *daemon.RemoteError
	if errors.As(err, &remote) {
		return false
	}
	return errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE) || errors.Is(err, io.EOF)
}

// waitExit waits, up to a minute (a shutdown has 30 s to unmount), until
// process pid has exited, so that the next daemon does not start on the
// socket and state directory of one still shutting down.
func waitExit(pid int) {
	if pid <= 0 {
		return
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
