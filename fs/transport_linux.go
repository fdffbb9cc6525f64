package fs

import (
	"errors"
	"fmt"
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
	v, err := readParam()
	if err != nil {
		return fmt.Errorf("fuse over io_uring: %w (Linux 6.14+ built with CONFIG_FUSE_IO_URING has it)", err)
	}
	if v == "Y" {
		return nil
	}
	if err := unix.Access(URingParam, unix.W_OK); err != nil {
		return fmt.Errorf("fuse over io_uring is off and %s is not writable: %w (as root: echo 1 > %s, or modprobe fuse enable_uring=1)", URingParam, err, URingParam)
	}
	return nil
}

// FUSE opcodes (linux/fuse.h) the ring threads serve themselves.
const (
	opRead  = 15
	opWrite = 16
	opPoll  = 40
)

// inlineOps: over io_uring, READ, WRITE and POLL are served on the ring
// thread of the CPU the request came from (no hand-off to a goroutine): a
// device write sends the packet and returns (driver.Device.writePacket),
// POLL must not block (FilePoller), and a READ there does not wait: with
// nothing queued, Mount.Read answers fuse.ServeLater (fuse.InlineRequest)
// and the READ is served again in a goroutine, where it may block. The rest
// may take long (clones, destroys): goroutines.
func inlineOps(opcode uint32) bool {
	return opcode == opRead || opcode == opWrite || opcode == opPoll
}

// newServer mounts with transport t (see Transport).
func newServer(rfs fuse.RawFileSystem, dir string, mo *fuse.MountOptions, t Transport) (*fuse.Server, error) {
	mo.IOUringInline = inlineOps
	switch t {
	case TransportDev:
		mo.EnableIOUring = false
		return fuse.NewServer(rfs, dir, mo)
	case TransportAuto:
		mo.EnableIOUring = true
		return fuse.NewServer(rfs, dir, mo)
	}
	if err := URingAvailable(); err != nil {
		return nil, err
	}
	mo.EnableIOUring = true
	var server *fuse.Server
	err := withURingParam(func() error {
		var err error
		server, err = fuse.NewServer(rfs, dir, mo)
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
	if err := unix.Mkdir("/run/lock", 0o755); err != nil && err != unix.EEXIST {
		return fmt.Errorf("fuse over io_uring: %w", err)
	}
	lf, err := unix.Open(uringLock, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("fuse over io_uring: open %s: %w", uringLock, err)
	}
	defer unix.Close(lf)
	for {
		err = unix.Flock(lf, unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("fuse over io_uring: lock %s: %w", uringLock, err)
	}
	defer unix.Flock(lf, unix.LOCK_UN)
	found, err := readParam()
	if err != nil {
		return fmt.Errorf("fuse over io_uring: %w", err)
	}
	if found != "Y" {
		if err := writeParam("Y"); err != nil {
			return fmt.Errorf("fuse over io_uring: turn on %s: %w", URingParam, err)
		}
		defer func() {
			if rerr := writeParam(found); rerr != nil {
				err = errors.Join(err, fmt.Errorf("fuse over io_uring: put back %s=%s: %w", URingParam, found, rerr))
			}
		}()
	}
	return mount()
}

// readParam reads URingParam ("Y" or "N"). Raw fds: the daemon opens no
// file by path through the runtime poller (selfopen_test.go).
func readParam() (string, error) {
	fd, err := unix.Open(URingParam, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", URingParam, err)
	}
	defer unix.Close(fd)
	var b [8]byte
	for {
		n, err := unix.Read(fd, b[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read %s: %w", URingParam, err)
		}
		return strings.TrimSpace(string(b[:n])), nil
	}
}

func writeParam(v string) error {
	fd, err := unix.Open(URingParam, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", URingParam, err)
	}
	defer unix.Close(fd)
	for {
		_, err := unix.Write(fd, []byte(v))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", URingParam, err)
		}
		return nil
	}
}
