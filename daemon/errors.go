package daemon

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors of the daemon and its protocol; wrap them with the
// operation that failed. Each one a handler can return has a code in
// errorCodes (errcodes.go), so a client's errors.Is finds it.
var (
	// ErrBadRequest: the request is not one this daemon understands (not
	// JSON, an unknown field, a field its op does not take, more than one
	// value); a client of another version may send one.
	ErrBadRequest = errors.New("bad request")
	// ErrUnknownOp: the op is not one this daemon knows (a client newer
	// than the daemon). It wraps ErrBadRequest.
	ErrUnknownOp = fmt.Errorf("%w: unknown op", ErrBadRequest)
	// ErrRequestTooLong: a request went past MaxRequest bytes without its
	// newline. It wraps ErrBadRequest.
	ErrRequestTooLong = fmt.Errorf("%w: request over 64 KiB", ErrBadRequest)
	// ErrNotMounted: the directory is not a mount of this daemon.
	ErrNotMounted = errors.New("not a tundevfs mount of this daemon")
	// ErrShuttingDown: the daemon is shutting down and takes no new mount.
	ErrShuttingDown = errors.New("daemon is shutting down")

	// Client side only, never on the wire:

	// ErrNoDaemon says that nothing answers on the control socket.
	ErrNoDaemon = errors.New("no tundevfs daemon is running")
	// ErrOldDaemon: the daemon refused a field or an op of this client's
	// protocol and predates error codes, so it is older than the client
	// (an upgrade with the old daemon still running).
	ErrOldDaemon = errors.New("the running tundevfs daemon is older than this client")
)

// aLongTimeAgo is a deadline that ends a wait at once.
var aLongTimeAgo = time.Unix(1, 0)
