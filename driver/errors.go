package driver

import "errors"

// Sentinel errors. Wrap them with the operation that failed; fs maps each
// to the errno FreeBSD or Linux returns in the same situation.
var (
	// ErrBadName: not a name dev_stdclone() accepts (ENOENT).
	ErrBadName = errors.New("not a tun/tap/vmnet device name")
	// ErrUnitRange: unit above MaxUnit (ENOENT).
	ErrUnitRange = errors.New("unit out of range")
	// ErrNoUnits: every unit is taken (ENOSPC).
	ErrNoUnits = errors.New("no free unit")
	// ErrNameTaken: an interface of that name exists already (EEXIST).
	ErrNameTaken = errors.New("interface name in use")
	// ErrExists: the device exists already (EEXIST).
	ErrExists = errors.New("device exists")
	// ErrNoDevice: no such device (ENXIO on FreeBSD's ifconfig destroy).
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
)
