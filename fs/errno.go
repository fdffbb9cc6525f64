package fs

import (
	"errors"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tundevfs/tundevfs/clonehandler"
	"github.com/tundevfs/tundevfs/driver"
)

// errno turns an error from below into the errno a FreeBSD or Linux caller
// expects. This is the only place where errors become errnos: the
// sentinels' errnos come from the tables beside them (clonehandler.Errnos,
// driver.Errnos), an errno from the kernel passes through, and anything
// else is EIO.
func errno(err error) fuse.Status {
	if err == nil {
		return fuse.OK
	}
	if e, ok := driver.ErrnoOf(err, clonehandler.Errnos); ok {
		return fuse.Status(e)
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return fuse.Status(e)
	}
	return fuse.EIO
}

// lookupErr is errno for a failed lookup or clone of name, logged in
// debug mode.
func (mnt *Mount) lookupErr(name string, err error) fuse.Status {
	if mnt.opts.Debug {
		mnt.logger.Printf("lookup %s: %v", name, err)
	}
	return errno(err)
}
