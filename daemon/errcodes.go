package daemon

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tundevfs/tundevfs/clonehandler"
	"github.com/tundevfs/tundevfs/driver"
	"github.com/tundevfs/tundevfs/ioctls"
	"github.com/tundevfs/tundevfs/jails"
)

// Code names, on the wire, the sentinel error a daemon's answer wraps, so
// that the client can give errors.Is the same sentinel back. Codes are
// stable strings: a code is never reused for another sentinel.
type Code string

// errorCodes is the one table between sentinels and codes. The daemon
// sends the code of the first row whose sentinel the error wraps, so a
// sentinel that wraps another (driver.ErrFastPath wraps driver.ErrBusy,
// ErrUnknownOp wraps ErrBadRequest) comes before it; the client turns a code back into its row's sentinel.
// Every exported Err* of daemon (but the client's own), jails, driver,
// clonehandler and ioctls has a row (TestErrorCodeTable).
var errorCodes = []struct {
	Code Code
	Err  error
}{
	// The protocol.
	{"request-too-long", ErrRequestTooLong},
	{"unknown-op", ErrUnknownOp},
	{"bad-request", ErrBadRequest},
	{"not-mounted", ErrNotMounted},
	{"shutting-down", ErrShuttingDown},
	{"no-holder", ErrNoHolder},
	// Jails.
	{"jail-exists", jails.ErrExists},
	{"jail-not-found", jails.ErrNotFound},
	{"jail-dying", jails.ErrDying},
	{"not-netns", jails.ErrNotNetns},
	{"jail-host", jails.ErrHost},
	{"jail-bad-name", jails.ErrBadName},
	{"jail-registry-closed", jails.ErrRegistry},
	// Cloning.
	{"clone-no-match", clonehandler.ErrNoMatch},
	{"clone-denied", clonehandler.ErrDenied},
	{"clone-off", clonehandler.ErrCloningOff},
	// Devices.
	{"fastpath", driver.ErrFastPath},
	{"fastpath-off", driver.ErrFastPathOff},
	{"bad-device-name", driver.ErrBadName},
	{"unit-range", driver.ErrUnitRange},
	{"no-units", driver.ErrNoUnits},
	{"name-taken", driver.ErrNameTaken},
	{"device-exists", driver.ErrExists},
	{"no-device", driver.ErrNoDevice},
	{"device-limit", driver.ErrLimit},
	{"detached", driver.ErrDetached},
	{"busy", driver.ErrBusy},
	{"device-gone", driver.ErrGone},
	{"would-block", driver.ErrWouldBlock},
	{"interrupted", driver.ErrInterrupted},
	{"too-big", driver.ErrTooBig},
	{"not-open", driver.ErrNotOpen},
	{"no-ioctl", driver.ErrNoIoctl},
	{"invalid", driver.ErrInvalid},
	{"if-up", driver.ErrIfUp},
	{"wrong-type", driver.ErrWrongType},
	{"no-family", driver.ErrNoFamily},
	{"short", driver.ErrShort},
	{"perm", driver.ErrPerm},
	{"page-cache", driver.ErrPageCache},
	{"frozen", driver.ErrFrozen},
	// Ioctl requests.
	{"ioctl-unknown-request", ioctls.ErrUnknownRequest},
	{"ioctl-bad-value", ioctls.ErrBadValue},
}

// codeOf is the code of the first sentinel in errorCodes that err wraps,
// or "" for an error that wraps none.
func codeOf(err error) Code {
	for _, r := range errorCodes {
		if errors.Is(err, r.Err) {
			return r.Code
		}
	}
	return ""
}

// sentinelOf is the sentinel a code names, or nil for a code this client
// does not know (a newer daemon's).
func sentinelOf(c Code) error {
	for _, r := range errorCodes {
		if r.Code == c {
			return r.Err
		}
	}
	return nil
}

// RemoteError is a failure the daemon answered: Error is the daemon's
// message, unchanged, and Unwrap the sentinel its code names, so that
// errors.Is(err, driver.ErrBusy) and the like work on the client.
type RemoteError struct {
	Msg  string
	Code Code  // "" from a daemon older than codes, or an error with no sentinel
	Err  error // the sentinel Code names; nil if none or unknown here
}

func (e *RemoteError) Error() string { return e.Msg }

// Unwrap returns the sentinel.
func (e *RemoteError) Unwrap() error { return e.Err }

// failure is the answer to a request that failed with err.
func failure(err error) Response {
	return Response{Error: err.Error(), Code: codeOf(err)}
}

// remoteError turns a failed answer from the daemon at socket back into
// an error. An answer without a code that refuses what this client sent
// comes from a daemon older than this client: that is said, with a hint,
// and wraps ErrOldDaemon.
func remoteError(resp Response, socket string) error {
	e := &RemoteError{Msg: resp.Error, Code: resp.Code, Err: sentinelOf(resp.Code)}
	if resp.Code == "" && oldDaemonRefusal(resp.Error) {
		return fmt.Errorf("%w (it answered: %w); restart the daemon at %s with this version", ErrOldDaemon, e, socket)
	}
	return e
}

// oldDaemonRefusal recognizes how daemons older than error codes refused
// a field or an op they did not know.
func oldDaemonRefusal(msg string) bool {
	return strings.HasPrefix(msg, "bad request: json: unknown field ") || strings.HasPrefix(msg, "unknown request ")
}
