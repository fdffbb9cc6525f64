// Package fs is the FUSE side of tundevfs: one Mount per device directory,
// showing one jail's devices. It is the errno boundary: everything below it
// returns Go errors, and errno() turns them into the values FreeBSD or Linux
// return in the same case.
//
// Contract:
//   - A lookup of a name that does not exist runs the clone handlers; tunN
//     resolves to the device node itself. The bare driver names (tun, tap,
//     vmnet) are symbolic links whose every resolution clones: READLINK
//     runs the clone and answers the new unit's name, and symlink caching
//     is off (the link's own entry may be cached; READLINK checks the
//     caller's right to clone), so each path walk through "tun" (open, stat, readlink) makes
//     a new device, while lstat of the link itself makes none. This is how
//     `ls DIR/tun` makes exactly one device although ls looks the name up
//     twice (stat, then lstat).
//   - The kernel's lookups of a device node are counted on the device
//     (driver.RefKernel), one per lookup and dropped by FORGET; a devfs clone's
//     RefClone is given up before the lookup replies.
//   - A destroyed device's entry is invalidated in the kernel before its
//     interface goes (driver.Destroyed comes first), and readdir skips
//     dying devices, so no listing shows a device whose interface is gone.
//   - Device files are opened with FOPEN_DIRECT_IO|FOPEN_STREAM: one packet
//     per read and write, and a write never waits behind a blocked read;
//     with FOPEN_PARALLEL_DIRECT_WRITES, nor behind another write.
//     Every blocked read returns on FUSE interrupt, device destroy and
//     unmount. A read of an open file with O_NONBLOCK in its flags (at
//     open, or set later by fcntl or FIONBIO) fails with EAGAIN when no
//     packet is queued.
//   - poll, select and epoll on a device file are truthful (FUSE_POLL,
//     poll.go): readable only when a read would return a packet, with a
//     FUSE_NOTIFY_POLL when one arrives. The daemon never opens files on
//     its own mounts, which would deadlock on its own POLL requests.
//   - FreeBSD's tun/tap ioctls arrive through FUSE's restricted ioctl and
//     are decoded by ioctls.Table (ioctl.go): ENOTTY for what a device does
//     not answer, EINVAL for bad sizes and values.
//   - A renamed interface shows as an alias symlink beside its node
//     (alias.go); renames and destroys invalidate the alias's entries.
//   - With Options.StdDevices (a jail's /dev for commands) the mount also
//     shows null, zero, full, random, urandom and tty as real character
//     devices, which the kernel opens itself, and is made without nodev
//     (stddev.go).
//   - In batch mode (TUNSBATCH) reads and writes go to the driver's batch
//     calls: many packets per FUSE request. A request carries up to 17
//     pages (maxRequest), so a batch of up to 64 KiB is one request
//     wherever its buffer starts.
//   - With Options.PerNetns the mount is the shared one of containers: each
//     caller sees the jail on its own network namespace, nothing is cached
//     by the kernel, and an open reaches only the caller's jail's devices
//     (pernetns.go).
//   - Only read(2) reaches a device: the kernel's page-cache READs (a
//     fault of a private mapping, readahead) get EIO at once (Read), so an
//     mmap of a device never waits for a packet nor consumes one; a shared
//     mapping is ENODEV (the kernel's, for FOPEN_DIRECT_IO). A reply never
//     fills a READ the kernel may have cut from a larger read(2), so it
//     never asks for more and never glues packets together.
//   - The namespace calls (mkdir, mknod, exclusive create, rename, link,
//     unlink, rmdir, symlink) are refused as devfs refuses them, and the
//     lookup before each makes no device (ops.go, intent_linux.go).
//   - Unmount with open files closes them first: blocked reads end with
//     ENXIO, as on destroy, and close(2) sends nothing (FOPEN_NOFLUSH), so
//     it is clean even once the connection is gone.
//
// Nodes: each kind of node the kernel knows is one small type behind the
// node interface (node.go), which answers GETATTR, SETATTR, READLINK and
// OPEN for its kind: the directory (root.go), device nodes (device.go),
// the cloning links tun, tap and vmnet (clonelink.go), aliases (alias.go)
// and the standard devices (stddev.go). Device nodes and aliases live as
// long as the kernel knows them: their lookups are counted in one table
// (node.go), and a device node holds one driver.RefKernel per lookup.
// Mount answers every request of fuse.RawFileSystem itself, ENOSYS where
// the mount has nothing to say (unsupported.go), so a method with a wrong
// signature fails to compile instead of answering ENOSYS; the
// compile-time interface checks are in checks.go. Open files are in
// file.go, unmount and the kernel's cache in unmount.go, and errno() in
// errno.go.
//
// Lock order: Mount.mu, then driver locks (driver.Device.mu). Mount.mu is
// never held while calling the clone handlers, the kernel (notify) or
// blocking device operations.
package fs

import (
	"fmt"
	"log"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tundevfs/tundevfs/clonehandler"
	"github.com/tundevfs/tundevfs/driver"
	"github.com/tundevfs/tundevfs/jails"
)

// Options configure a mount.
type Options struct {
	// AllowOther lets users other than the mounter use the mount.
	AllowOther bool
	// EntryTimeout is how long the kernel may cache device entries and
	// attributes; destroy invalidates them at once anyway.
	EntryTimeout time.Duration
	// StdDevices adds null, zero, full, random, urandom, tty and the fd
	// links, for a jail's /dev; the mount then allows device nodes.
	StdDevices bool
	// PerNetns makes the shared mount that shows each caller the jail on
	// its own network namespace (pernetns.go); JailOf finds that jail.
	PerNetns bool
	JailOf   JailResolver
	// Transport: auto, uring or dev (transport.go); empty takes
	// TransportEnv, else auto.
	Transport Transport
	// Journal, if set, is told about every change of what Export
	// returns (state.go).
	Journal Journal
	Debug   bool
	Logger  *log.Logger
}

// Mount is one mounted device directory. It implements
// fuse.RawFileSystem and fuse.RawPoller.
type Mount struct {
	devices *driver.Manager
	clones  *clonehandler.Registry
	jail    *jails.Jail
	dir     string
	opts    Options
	logger  *log.Logger
	start   time.Time
	// fixed are the nodes that live as long as the mount: the root, the
	// cloning links and the standard devices. Set by MountDir, read-only
	// after.
	fixed map[uint64]node

	server *fuse.Server
	connID uint32        // the FUSE connection number, for abort
	done   chan struct{} // closed when the server has stopped
	unsub  func()

	mu sync.Mutex // guards the fields below
	// nodes are the device nodes and aliases the kernel knows, with the
	// lookups of each not yet forgotten (node.go).
	nodes   map[uint64]*entry
	handles map[uint64]*driver.Handle
	// khs are the kernel's poll handles of the open files polled so
	// far, by file handle, for a server that takes over (state.go).
	khs  map[uint64]uint64
	dirs map[uint64][]fuse.DirEntry
	// replays are the acts remembered for resent requests, by unique,
	// oldest first in replayOrder (replay.go).
	replays     map[uint64]ReplayState
	replayOrder []uint64
	// Set by RestoreMount for Start: entries to invalidate, pollers to
	// wake.
	staleNodes []NodeState
	pendingKhs []uint64
	nextFh     uint64
	closed     bool
	// revoked: Unmount has closed the open files (every handle is gone
	// from handles); requests on them answer ENXIO.
	revoked bool
}

// MountDir mounts the device directory of jail j at dir and serves it. It
// returns once the kernel answers on the mount. The mount holds one
// reference on the jail until it ends.
func MountDir(m *driver.Manager, clones *clonehandler.Registry, j *jails.Jail, dir string, opts Options) (*Mount, error) {
	if opts.Logger == nil {
		opts.Logger = log.Default()
	}
	if opts.EntryTimeout == 0 && !opts.PerNetns {
		opts.EntryTimeout = time.Second
	}
	opts = normalizePerNetns(opts)
	if err := j.Hold(); err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		j.Release()
		return nil, fmt.Errorf("mount %s: %w (is the fuse module loaded?)", dir, err)
	}
	mnt := &Mount{
		devices: m,
		clones:  clones,
		jail:    j,
		dir:     dir,
		opts:    opts,
		logger:  opts.Logger,
		start:   time.Now(),
		done:    make(chan struct{}),
		nodes:   make(map[uint64]*entry),
		handles: make(map[uint64]*driver.Handle),
		khs:     make(map[uint64]uint64),
		dirs:    make(map[uint64][]fuse.DirEntry),
	}
	// The directory belongs to the mount's owner: go-fuse's direct mount
	// sets user_id and group_id to the daemon's effective ids (as the
	// fusermount fallback does with its caller's), and the kernel lets
	// only that user and group use a mount without allow_other.
	owner := fuse.Owner{Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid())}
	mnt.fixed = fixedNodes(mnt.start, owner, opts.StdDevices)
	mo := mnt.mountOptions()
	transport, err := opts.transport()
	if err != nil {
		j.Release()
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	server, err := newServer(mnt, dir, mo, transport)
	if err != nil {
		j.Release()
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	mnt.server = server
	// Only now: an event calls mnt.server.
	if opts.PerNetns {
		mnt.unsub = m.Subscribe(nil, mnt.onEvent) // every jail's devices show here
	} else {
		mnt.unsub = m.Subscribe(j, mnt.onEvent)
	}
	go mnt.serve()
	if err := server.WaitMount(); err != nil {
		server.Unmount()
		<-mnt.done
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	mnt.connID = mountConnID(dir)
	return mnt, nil
}

// serve serves the mount until it ends, then tears it down.
func (mnt *Mount) serve() {
	mnt.server.Serve()
	mnt.teardown()
}

// mountOptions are the go-fuse options of every mount, also of one a new
// server takes over (RestoreMount).
func (mnt *Mount) mountOptions() *fuse.MountOptions {
	return &fuse.MountOptions{
		AllowOther:         mnt.opts.AllowOther,
		Options:            []string{"default_permissions"},
		FsName:             "tundevfs",
		Name:               "tundevfs",
		DirectMount:        true,
		DisableXAttrs:      true,
		DisableReadDirPlus: true,
		DisableSplice:      true,
		MaxWrite:           maxRequest,
		DirectMountFlags:   mountFlags(mnt.opts),
		// POLL goes to Mount.Poll; without it go-fuse's poll hack
		// switches poll off for the mount and every file looks
		// readable. The daemon must therefore never open a file on its
		// own mount (golang/go#21014): the Go runtime would register it
		// with epoll, and that POLL request waits for this very server.
		EnablePoll: true,
		Debug:      mnt.opts.Debug,
		Logger:     mnt.opts.Logger,
	}
}

// mountFlags: nosuid always; nodev unless the mount shows real devices.
func mountFlags(opts Options) uintptr {
	if opts.StdDevices {
		return syscall.MS_NOSUID
	}
	return syscall.MS_NOSUID | syscall.MS_NODEV
}

// Dir is the mount point.
func (mnt *Mount) Dir() string { return mnt.dir }

// Jail is the jail whose devices the mount shows.
func (mnt *Mount) Jail() *jails.Jail { return mnt.jail }

// Done is closed once the mount is gone (unmounted by us or from outside).
func (mnt *Mount) Done() <-chan struct{} { return mnt.done }

// String implements fuse.RawFileSystem.
func (mnt *Mount) String() string { return "tundevfs" }

// Init implements fuse.RawFileSystem.
func (mnt *Mount) Init(s *fuse.Server) {}

// OnUnmount implements fuse.RawFileSystem: teardown runs once Serve has
// returned (MountDir).
func (mnt *Mount) OnUnmount() {}

// SetDebug implements fuse.RawFileSystem: debug output is set at mount
// (Options.Debug).
func (mnt *Mount) SetDebug(debug bool) {}
