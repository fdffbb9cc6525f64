package jails

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Netns is an open handle on a Linux network namespace. The daemon keeps
// exactly one fd per jail namespace, and Close gives it up: once every
// device fd of the namespace is closed too, nothing in the daemon pins it.
type Netns struct {
	fd   int
	path string // where it came from, for messages
	ino  uint64 // the namespace's inode number (nsfs), its identity
	home bool   // fd is homeNetns's, which Close leaves open
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

// CurrentNetns returns a handle on the daemon's own network namespace, the
// one its threads are in outside Do. It shares the fd Do returns threads
// home with (homeNetns), which it opens on the first call (the daemon
// calls it first thing) and which Close leaves open.
func CurrentNetns() (*Netns, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fd, err := homeNetns()
	if err != nil {
		return nil, err
	}
	ns, err := newNetns(fd, threadNetnsPath())
	if err != nil {
		return nil, err
	}
	ns.home = true
	return ns, nil
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

// Close gives up the daemon's handle on the namespace (a handle from
// CurrentNetns only forgets the fd, which Do still needs).
func (ns *Netns) Close() error {
	if ns.fd < 0 {
		return nil
	}
	if ns.home {
		ns.fd = -1
		return nil
	}
	err := unix.Close(ns.fd)
	ns.fd = -1
	return err
}

// Do runs fn on a locked OS thread that has entered the namespace, and
// switches the thread back afterwards. If the thread cannot be switched
// back it stays locked, so the runtime kills it rather than reuse a thread
// in the wrong namespace; the threads of a burst of calls exit too (see
// onLockedThread).
func (ns *Netns) Do(fn func() error) error {
	return onLockedThread(func() error {
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("setns %s: %w", ns.path, err)
		}
		return fn()
	})
}

// home is the daemon's own network namespace, where every thread not
// running onLockedThread is (a thread that cannot go back dies), opened
// once: the fd onLockedThread restores threads with.
var home struct {
	once sync.Once
	fd   int
	err  error
}

// homeNetns returns the fd of the daemon's own namespace. The first call
// opens it from the calling thread, which must be locked and in that
// namespace; it stays open for the life of the process (a namespace the
// process is in is pinned anyway).
func homeNetns() (int, error) {
	home.once.Do(func() {
		home.fd, home.err = unix.Open(threadNetnsPath(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if home.err != nil {
			home.err = fmt.Errorf("open own netns: %w", home.err)
		}
	})
	return home.fd, home.err
}

// inDo counts the onLockedThread calls under way.
var inDo atomic.Int32

// onLockedThread runs fn on a fresh goroutine locked to its thread. fn may
// change the thread's network namespace; afterwards the thread goes back
// to the daemon's own (homeNetns, where every unlocked thread is: the
// runtime starts threads for locked ones from a clean template thread).
//
// Then the thread either goes back to the runtime's pool or exits with
// the goroutine (left locked): it exits if it could not go home, and when
// more calls than CPUs are under way. A burst of namespace work (100 jails
// at once) needs a thread per call, which the runtime would otherwise keep
// idle for the life of the daemon; so the threads of a burst exit and the
// count returns to its baseline, while a call on a quiet daemon reuses a
// pooled thread (about 4 µs, against 70 µs when every call makes a thread).
func onLockedThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		inDo.Add(1)
		defer inDo.Add(-1)
		orig, err := homeNetns()
		if err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Left locked: the thread dies with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("restore netns: %w", err))
			return
		}
		if inDo.Load() <= int32(runtime.GOMAXPROCS(0)) {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// Dup returns a second handle on the namespace, which says it came from
// label (a jail without vnet shares the host's: "host").
func (ns *Netns) Dup(label string) (*Netns, error) {
	fd, err := unix.FcntlInt(uintptr(ns.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup netns %s: %w", ns.path, err)
	}
	return &Netns{fd: fd, path: label, ino: ns.ino}, nil
}

// AdoptNetns makes a handle of f, a namespace fd another process kept
// (a server taking over, issue 13); label says where it came from. The
// handle owns f's fd; on error f is closed.
func AdoptNetns(f *os.File, label string) (*Netns, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("adopt netns %s: %w", label, err)
	}
	ns, err := newNetns(fd, label)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return ns, nil
}
