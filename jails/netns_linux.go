package jails

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Netns is an open handle on a Linux network namespace. The daemon keeps
// exactly one fd per jail namespace, and Close gives it up: once every
// device fd of the namespace is closed too, nothing in the daemon pins it.
type Netns struct {
	fd   int
	path string // where it came from, for messages
	ino  uint64 // the namespace's inode number (nsfs), its identity
}

// threadNetnsPath names the calling thread's namespace. /proc/self would name
// the thread-group leader's, which is wrong on a thread that called setns.
func threadNetnsPath() string {
	return fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
}

// OpenNetns opens the network namespace at path (/run/netns/NAME,
// /proc/PID/ns/net) and checks that it is one.
func OpenNetns(path string) (*Netns, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	ns, err := newNetns(fd, path)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return ns, nil
}

func newNetns(fd int, path string) (*Netns, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat netns %s: %w", path, err)
	}
	// NS_GET_NSTYPE tells the namespace type of an nsfs file.
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil || typ != unix.CLONE_NEWNET {
		return nil, fmt.Errorf("open netns %s: %w (not a network namespace)", path, ErrNotNetns)
	}
	return &Netns{fd: fd, path: path, ino: st.Ino}, nil
}

// CurrentNetns opens the network namespace of the calling thread.
func CurrentNetns() (*Netns, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return OpenNetns(threadNetnsPath())
}

// NewNetns makes a fresh network namespace, brings its loopback up and
// returns a handle on it. Nothing but the handle (and later device fds)
// keeps it alive, so Close deletes it.
func NewNetns() (*Netns, error) {
	var ns *Netns
	err := onLockedThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare netns: %w", err)
		}
		var err error
		ns, err = OpenNetns(threadNetnsPath())
		if err != nil {
			return err
		}
		ns.path = "vnet"
		return setLoopbackUp()
	})
	if err != nil && ns != nil {
		ns.Close()
		ns = nil
	}
	return ns, err
}

// setLoopbackUp brings lo up in the calling thread's namespace, as a new
// VNET jail's lo0 is usable at once on FreeBSD.
func setLoopbackUp() error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	return nil
}

// Ino is the namespace's identity (the nsfs inode number).
func (ns *Netns) Ino() uint64 { return ns.ino }

// Path says where the namespace came from.
func (ns *Netns) Path() string { return ns.path }

// Fd is the handle's fd, valid until Close.
func (ns *Netns) Fd() int { return ns.fd }

// Close gives up the daemon's handle on the namespace.
func (ns *Netns) Close() error {
	if ns.fd < 0 {
		return nil
	}
	err := unix.Close(ns.fd)
	ns.fd = -1
	return err
}

// Do runs fn on a locked OS thread that has entered the namespace, and
// switches the thread back afterwards. If the thread cannot be switched
// back it stays locked, so the runtime kills it rather than reuse a thread
// in the wrong namespace.
func (ns *Netns) Do(fn func() error) error {
	return onLockedThread(func() error {
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("setns %s: %w", ns.path, err)
		}
		return fn()
	})
}

// onLockedThread runs fn on a fresh goroutine locked to its thread. fn may
// change the thread's network namespace; afterwards the original one is
// restored, and if that fails the thread is left locked so that it exits
// with the goroutine.
func onLockedThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open(threadNetnsPath(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer unix.Close(orig)
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("restore netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
