package fs

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// URingParam is the fuse module parameter that lets INIT offer FUSE over
// io_uring; the kernel reads it when a mount starts, and a connection
// that got io_uring at INIT keeps it after the parameter is turned off.
const URingParam = "/sys/module/fuse/parameters/enable_uring"

// uringLock serialises the moments a mount turns URingParam on, across
// processes (go test runs packages in parallel): each holder finds the
// value the last one put back, and puts back what it found.
const uringLock = "/run/lock/tundevfs-fuse-uring.lock"

// URingAvailable says whether this kernel can serve FUSE over io_uring to
// this process: the parameter exists and is on, or can be turned on.
// The error says why not.
func URingAvailable() error {
	b, err := os.ReadFile(URingParam)
	if err != nil {
		return fmt.Errorf("fuse over io_uring: %w (Linux 6.14+ built with CONFIG_FUSE_IO_URING has it)", err)
	}
	if strings.TrimSpace(string(b)) == "Y" {
		return nil
	}
	if err := unix.Access(URingParam, unix.W_OK); err != nil {
		return fmt.Errorf("fuse over io_uring is off and %s is not writable: %w (as root: echo 1 > %s, or modprobe fuse enable_uring=1)", URingParam, err, URingParam)
	}
	return nil
}

// newServer mounts with transport t (see Transport).
func newServer(fs fuse.RawFileSystem, dir string, mo *fuse.MountOptions, t Transport) (*fuse.Server, error) {
	switch t {
	case TransportDev:
		mo.EnableIOUring = false
		return fuse.NewServer(fs, dir, mo)
	case TransportAuto:
		mo.EnableIOUring = true
		return fuse.NewServer(fs, dir, mo)
	}
	if err := URingAvailable(); err != nil {
		return nil, err
	}
	mo.EnableIOUring = true
	var server *fuse.Server
	err := withURingParam(func() error {
		var err error
		server, err = fuse.NewServer(fs, dir, mo)
		return err
	})
	if err != nil {
		return nil, err
	}
	if server.Transport() != string(TransportURing) {
		// The kernel refused the rings (the log says why): the mount
		// works on /dev/fuse.
		mo.Logger.Printf("mount %s: fuse over io_uring forced but not taken by the kernel; serving /dev/fuse", dir)
	}
	return server, nil
}

// withURingParam runs mount with URingParam on, under uringLock, and puts
// the value it found back afterwards. INIT happens within mount
// (fuse.NewServer answers it), so the parameter is on exactly when the
// kernel reads it.
func withURingParam(mount func() error) (err error) {
	if err := os.MkdirAll("/run/lock", 0o755); err != nil {
		return fmt.Errorf("fuse over io_uring: %w", err)
	}
	lf, err := os.OpenFile(uringLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("fuse over io_uring: %w", err)
	}
	defer lf.Close()
	for {
		err = unix.Flock(int(lf.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("fuse over io_uring: lock %s: %w", uringLock, err)
	}
	defer unix.Flock(int(lf.Fd()), unix.LOCK_UN)
	b, err := os.ReadFile(URingParam)
	if err != nil {
		return fmt.Errorf("fuse over io_uring: %w", err)
	}
	found := strings.TrimSpace(string(b))
	if found != "Y" {
		if err := os.WriteFile(URingParam, []byte("Y"), 0); err != nil {
			return fmt.Errorf("fuse over io_uring: turn on %s: %w", URingParam, err)
		}
		defer func() {
			if rerr := os.WriteFile(URingParam, []byte(found), 0); rerr != nil {
				err = errors.Join(err, fmt.Errorf("fuse over io_uring: put back %s=%s: %w", URingParam, found, rerr))
			}
		}()
	}
	return mount()
}
