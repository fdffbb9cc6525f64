package clonehandler

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/driver"
)

// Sentinel errors.
var (
	// ErrNoMatch: the handler does not handle this name (ENOENT).
	ErrNoMatch = errors.New("no clone handler for name")
	// ErrDenied: the caller may not clone (ENOENT through the filesystem:
	// devfs shows nothing the caller may not make).
	ErrDenied = errors.New("cloning not permitted")
	// ErrCloningOff: devfs cloning is switched off by sysctl (ENOENT).
	ErrCloningOff = errors.New("devfs cloning is off")
)

// Errnos is the package's errno table, read by the fs package's errno
// boundary before driver.Errnos (see driver.ErrnoOf). Every exported Err*
// of the package has a row (TestErrnoTable).
var Errnos = []driver.ErrnoRow{
	{Err: ErrNoMatch, Errno: unix.ENOENT},
	{Err: ErrDenied, Errno: unix.ENOENT},
	{Err: ErrCloningOff, Errno: unix.ENOENT},
}
