package driver

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/ioctls"
	"github.com/tundevfs/tundevfs/jails"
)

// Sentinel errors. Wrap them with the operation that failed; Errnos below
// says which errno the fs package answers for each, the one FreeBSD or
// Linux returns in the same situation.
var (
	// ErrBadName: not a name dev_stdclone() accepts (ENOENT).
	ErrBadName = errors.New("not a tun/tap/vmnet device name")
	// ErrUnitRange: unit above MaxUnit (ENOENT).
	ErrUnitRange = errors.New("unit out of range")
	// ErrNoUnits: every unit is taken (ENOSPC).
	ErrNoUnits = errors.New("no free unit")
	// ErrNameTaken: an interface of that name exists already, one
	// tundevfs did not make (ENOENT through a lookup: tunclone() makes
	// nothing; ifconfig reports the text).
	ErrNameTaken = errors.New("interface name in use")
	// ErrExists: the unit is taken (ENOENT through a lookup, where it
	// means another jail sharing the namespace holds it; ifconfig create
	// reports the text, EEXIST on FreeBSD).
	ErrExists = errors.New("device exists")
	// ErrNoDevice: no such device (ENOENT through the filesystem;
	// ifconfig destroy reports the text, ENXIO on FreeBSD).
	ErrNoDevice = errors.New("no such device")
	// ErrLimit: the jail's device limit is reached (ENOSPC).
	ErrLimit = errors.New("device limit reached")
	// ErrDetached: the jail's cloners are detached; the jail is dying
	// (ENXIO).
	ErrDetached = errors.New("cloner detached (jail is dying)")
	// ErrBusy: the device is open already (EBUSY, tunopen()).
	ErrBusy = errors.New("device busy")
	// ErrGone: the device is being destroyed (ENXIO, FreeBSD's dead cdevsw).
	ErrGone = errors.New("device destroyed")
	// ErrWouldBlock: nothing queued on a non-blocking read (EAGAIN).
	ErrWouldBlock = errors.New("no packet queued")
	// ErrInterrupted: a blocked operation was interrupted (EINTR).
	ErrInterrupted = errors.New("interrupted")
	// ErrFrozen: packet I/O stopped for a planned restart (freeze.go);
	// the request is left for the next server, never answered with it.
	ErrFrozen = errors.New("frozen for a restart")
	// ErrTooBig: a write larger than the MRU (EIO, tunwrite()).
	ErrTooBig = errors.New("packet larger than MRU")
	// ErrNotOpen: the handle is closed (EBADF).
	ErrNotOpen = errors.New("device not open")

	// ErrNoIoctl: the request is not one this driver answers (ENOTTY,
	// tunioctl()'s default case).
	ErrNoIoctl = errors.New("inappropriate ioctl for device")
	// ErrInvalid: an ioctl argument out of range (EINVAL).
	ErrInvalid = errors.New("invalid argument")
	// ErrIfUp: TUNSIFMODE while the interface is up (EBUSY, tunioctl()).
	ErrIfUp = errors.New("interface is up")
	// ErrWrongType: TUNSIFINFO with another interface type (EPROTOTYPE,
	// tunioctl()).
	ErrWrongType = errors.New("interface type mismatch")
	// ErrNoFamily: an IFHEAD write with an address family the tun does not
	// carry (EAFNOSUPPORT, tunwrite_l3()).
	ErrNoFamily = errors.New("address family not supported")
	// ErrShort: an IFHEAD write too short to hold the family (ENOBUFS,
	// tunwrite_l3()'s failed m_pullup()).
	ErrShort = errors.New("packet shorter than its address family")
	// ErrPerm: the caller lacks the privilege a request needs (EPERM,
	// TUNSTRANSIENT's PRIV_NET_IFDESTROY).
	ErrPerm = errors.New("operation not permitted")
	// ErrPageCache: a read the kernel made for its page cache (a page
	// fault of a private mapping, readahead) rather than for read(2); a
	// device has no pages (EIO, so the fault is SIGBUS and no packet is
	// consumed; FreeBSD's tun has no d_mmap).
	ErrPageCache = errors.New("page-cache read of a device")
)

// ErrnoRow is one row of an errno table: the errno the filesystem answers
// for an error that wraps Err.
type ErrnoRow struct {
	Err   error
	Errno unix.Errno
}

// Errnos is the driver's errno table, read by the fs package's errno
// boundary (fs.errno) in this order: the first row whose Err the error
// wraps decides. Every exported Err* of this package, and of jails and
// ioctls, whose errors reach the filesystem through the driver, has a row
// (TestErrnoTable fails otherwise): a sentinel without one would silently
// become EIO.
var Errnos = []ErrnoRow{
	{ErrWouldBlock, unix.EAGAIN},
	{ErrInterrupted, unix.EINTR},
	{ErrFrozen, unix.EAGAIN}, // never reaches a caller: fs leaves the request unanswered
	{ErrBusy, unix.EBUSY},
	{ErrFastPath, unix.EBUSY},    // the file carries no packets while a handed fd does
	{ErrFastPathOff, unix.EPERM}, // the knob, as the fast-path socket answers it
	{ErrGone, unix.ENXIO},
	{ErrDetached, unix.ENXIO},
	{ErrNotOpen, unix.EBADF},
	{ErrTooBig, unix.EIO}, // tunwrite(): EIO, deliberately
	{ErrPageCache, unix.EIO},
	{ErrBadName, unix.ENOENT},
	{ErrUnitRange, unix.ENOENT},
	{ErrNameTaken, unix.ENOENT},
	{ErrExists, unix.ENOENT},
	{ErrNoDevice, unix.ENOENT},
	{ErrLimit, unix.ENOSPC},
	{ErrNoUnits, unix.ENOSPC},
	{ErrNoIoctl, unix.ENOTTY},
	{ErrInvalid, unix.EINVAL},
	{ErrIfUp, unix.EBUSY},
	{ErrWrongType, unix.EPROTOTYPE},
	{ErrNoFamily, unix.EAFNOSUPPORT},
	{ErrShort, unix.ENOBUFS},
	{ErrPerm, unix.EPERM},

	// ioctls: an argument the decoder refuses.
	{ioctls.ErrBadValue, unix.EINVAL},
	{ioctls.ErrUnknownRequest, unix.ENOTTY},

	// jails: a jail going away under a request (its namespace too).
	{jails.ErrDying, unix.ENXIO},
	{jails.ErrRegistry, unix.ENXIO},
	{jails.ErrNotFound, unix.ENXIO},
	{jails.ErrNotNetns, unix.ENXIO},
	{jails.ErrHost, unix.EPERM},
	{jails.ErrExists, unix.EEXIST},
	{jails.ErrBadName, unix.EINVAL},
}

// ErrnoOf returns the errno of the first row, in tables and then in
// Errnos, whose sentinel err wraps; ok is false when none does.
func ErrnoOf(err error, tables ...[]ErrnoRow) (errno unix.Errno, ok bool) {
	for _, t := range tables {
		if errno, ok := lookupErrno(err, t); ok {
			return errno, true
		}
	}
	return lookupErrno(err, Errnos)
}

func lookupErrno(err error, table []ErrnoRow) (unix.Errno, bool) {
	for _, r := range table {
		if errors.Is(err, r.Err) {
			return r.Errno, true
		}
	}
	return 0, false
}
