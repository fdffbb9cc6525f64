package fs

import (
	"errors"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/driver"
)

// The poll(2) bits that x/sys/unix does not define, as in
// asm-generic/poll.h, the values FUSE_POLL carries on the architectures
// that use the generic header (x86, arm, arm64, riscv and others).
const (
	pollRdNorm = 0x040
	pollRdBand = 0x080
	pollWrNorm = 0x100
	pollWrBand = 0x200
)

// pollStandard are the events poll(2) defines; a request that names none
// (FUSE protocol before 7.21 leaves PollIn.Events zero) asks for all.
const pollStandard = unix.POLLIN | unix.POLLPRI | unix.POLLOUT | pollRdNorm |
	pollRdBand | pollWrNorm | pollWrBand

// Poll implements fuse.RawPoller (if_tuntap.c: tunpoll()): POLLIN|POLLRDNORM
// when a read would return a packet now, POLLOUT|POLLWRNORM always (writes
// never block), each only if requested. It never blocks. When the kernel
// asks for a notification (FUSE_POLL_SCHEDULE_NOTIFY), the device sends
// FUSE_NOTIFY_POLL for in.Kh once, at the next packet arrival or when the
// device is destroyed.
//
// A destroyed device answers POLLHUP, plus POLLIN|POLLRDNORM if requested,
// and the read that follows gets ENXIO: FreeBSD's devfs_poll_f() falls back
// to the vnode's poll once the cdev is gone, and deadfs's dead_poll() says
// "Let the user find out that the descriptor is gone" that way.
func (mnt *Mount) Poll(cancel <-chan struct{}, in *fuse.PollIn, out *fuse.PollOut) fuse.Status {
	h := mnt.handle(in.Fh)
	if h == nil {
		return mnt.noHandle()
	}
	events := in.Events
	if events&pollStandard == 0 {
		events = pollStandard
	}
	var notify func()
	if in.Flags&fuse.FUSE_POLL_SCHEDULE_NOTIFY != 0 {
		kh := in.Kh
		notify = func() { mnt.server.PollNotify(kh) }
		// A new server must know whom to wake (state.go). Saved soon,
		// not before the reply: POLL is served on the io_uring thread,
		// which must not wait for a snapshot, and a kh lost with a
		// crash is woken all the same (Start wakes the khs above the
		// last saved).
		mnt.rememberKh(in.Fh, kh)
	}
	readable, err := h.Poll(notify)
	if errors.Is(err, driver.ErrGone) {
		out.Revents = unix.POLLHUP | events&(unix.POLLIN|pollRdNorm)
		return fuse.OK
	}
	if err != nil {
		return mnt.fileErr(err)
	}
	if readable {
		out.Revents |= events & (unix.POLLIN | pollRdNorm)
	}
	out.Revents |= events & (unix.POLLOUT | pollWrNorm)
	return fuse.OK
}

// rememberKh records the kernel's poll handle of file handle fh.
func (mnt *Mount) rememberKh(fh, kh uint64) {
	mnt.mu.Lock()
	defer mnt.mu.Unlock()
	if _, open := mnt.handles[fh]; !open || mnt.khs[fh] == kh {
		return
	}
	mnt.khs[fh] = kh
	mnt.changed()
}
