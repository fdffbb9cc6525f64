package ioctls

import "errors"

// Sentinel errors of the package. Errors of the ioctl itself are the
// unix.Errno the device answered, wrapped.
var (
	// ErrUnknownRequest: Lookup does not know the name given to Do.
	ErrUnknownRequest = errors.New("unknown request")
	// ErrBadValue: a value for Do, ParseTunInfo or an ifreq helper cannot
	// be parsed, is missing, or is given to a request that takes none.
	ErrBadValue = errors.New("bad value")
)
