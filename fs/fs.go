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
// Lock order: Mount.mu, then driver locks (driver.Device.mu). Mount.mu is
// never held while calling the clone handlers, the kernel (notify) or
// blocking device operations.
package fs

import (
	"errors"
	"fmt"
	"log"
	"os"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

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
	Debug     bool
	Logger    *log.Logger
}

// nodeKind says what a FUSE node is.
type nodeKind int

const (
	dirNode nodeKind = iota
	devNode
	linkNode
	stdNode
	aliasNode // a renamed interface's alias (alias.go)
)

// node is one FUSE node the kernel knows.
type node struct {
	kind    nodeKind
	dev     *driver.Device // devNode, aliasNode
	drv     *driver.Driver // linkNode: the driver it clones
	std     int            // stdNode: index in stdDevs
	lookups uint64
	created time.Time
}

// linkID is the node ID of the cloning link of driver i: fixed, below the
// device inode range (driver.Manager starts those at 1<<20).
func linkID(i int) uint64 { return 2 + uint64(i) }

// Mount is one mounted device directory.
type Mount struct {
	fuse.RawFileSystem
	m      *driver.Manager
	clones *clonehandler.Registry
	jail   *jails.Jail
	dir    string
	opts   Options
	logger *log.Logger
	start  time.Time
	uid    uint32 // owner of the directory
	gid    uint32

	server *fuse.Server
	connID uint32        // the FUSE connection number, for abort
	done   chan struct{} // closed when the server has stopped
	unsub  func()

	mu      sync.Mutex // guards the fields below
	nodes   map[uint64]*node
	handles map[uint64]*driver.Handle
	dirs    map[uint64][]fuse.DirEntry
	nextFh  uint64
	closed  bool
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
	fs := &Mount{
		RawFileSystem: fuse.NewDefaultRawFileSystem(),
		m:             m,
		clones:        clones,
		jail:          j,
		dir:           dir,
		opts:          opts,
		logger:        opts.Logger,
		start:         time.Now(),
		done:          make(chan struct{}),
		nodes:         make(map[uint64]*node),
		handles:       make(map[uint64]*driver.Handle),
		dirs:          make(map[uint64][]fuse.DirEntry),
	}
	fs.nodes[fuse.FUSE_ROOT_ID] = &node{kind: dirNode, lookups: 1, created: fs.start}
	for i, drv := range driver.Drivers {
		fs.nodes[linkID(i)] = &node{kind: linkNode, drv: drv, created: fs.start}
	}
	if opts.StdDevices {
		for i := range stdDevs {
			fs.nodes[stdDevID(i)] = &node{kind: stdNode, std: i, created: fs.start}
		}
	}
	mo := &fuse.MountOptions{
		AllowOther:         opts.AllowOther,
		Options:            []string{"default_permissions"},
		FsName:             "tundevfs",
		Name:               "tundevfs",
		DirectMount:        true,
		DisableXAttrs:      true,
		DisableReadDirPlus: true,
		DisableSplice:      true,
		MaxWrite:           maxRequest,
		DirectMountFlags:   mountFlags(opts),
		// POLL goes to Mount.Poll; without it go-fuse's poll hack
		// switches poll off for the mount and every file looks
		// readable. The daemon must therefore never open a file on its
		// own mount (golang/go#21014): the Go runtime would register it
		// with epoll, and that POLL request waits for this very server.
		EnablePoll: true,
		Debug:      opts.Debug,
		Logger:     opts.Logger,
	}
	transport, err := opts.transport()
	if err != nil {
		j.Release()
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	server, err := newServer(fs, dir, mo, transport)
	if err != nil {
		j.Release()
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	fs.server = server
	// Only now: an event calls fs.server.
	if opts.PerNetns {
		fs.unsub = m.Subscribe(nil, fs.onEvent) // every jail's devices show here
	} else {
		fs.unsub = m.Subscribe(j, fs.onEvent)
	}
	go func() {
		server.Serve()
		fs.teardown()
	}()
	if err := server.WaitMount(); err != nil {
		server.Unmount()
		<-fs.done
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	fs.connID = mountConnID(dir)
	return fs, nil
}

// mountFlags: nosuid always; nodev unless the mount shows real devices.
func mountFlags(opts Options) uintptr {
	if opts.StdDevices {
		return syscall.MS_NOSUID
	}
	return syscall.MS_NOSUID | syscall.MS_NODEV
}

// Dir is the mount point.
func (fs *Mount) Dir() string { return fs.dir }

// Jail is the jail whose devices the mount shows.
func (fs *Mount) Jail() *jails.Jail { return fs.jail }

// Done is closed once the mount is gone (unmounted by us or from outside).
func (fs *Mount) Done() <-chan struct{} { return fs.done }

// Unmount unmounts and waits until the mount is gone. Open device files
// do not keep it: their devices are closed and blocked readers return.
func (fs *Mount) Unmount() error {
	select {
	case <-fs.done:
		return nil
	default:
	}
	// Not go-fuse's Server.Unmount: it retries EBUSY with a backoff and
	// then waits for the connection without a limit. Open files keep the
	// mount busy: close them as the end of the mount would (blocked
	// readers get ENXIO, as on destroy, while the connection still
	// answers) and detach it.
	if err := unix.Unmount(fs.dir, 0); err != nil {
		fs.revoke()
		if derr := unix.Unmount(fs.dir, unix.MNT_DETACH); derr != nil && !errors.Is(derr, unix.EINVAL) {
			return fmt.Errorf("unmount %s: %w", fs.dir, derr)
		}
	}
	// The connection ends once the kernel lets go of the superblock. A
	// detached mount with open files, or a bind mount of it in another
	// mount namespace, keeps it: abort the connection then, so that every
	// pending request ends and the server stops.
	select {
	case <-fs.done:
		return nil
	case <-time.After(500 * time.Millisecond):
	}
	if err := abortConnection(fs.connID); err != nil {
		fs.logger.Printf("unmount %s: %v", fs.dir, err)
	}
	select {
	case <-fs.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("unmount %s: the FUSE connection did not end", fs.dir)
	}
}

// revoke closes every open file of the mount: their blocked requests
// return ENXIO, and later ones find no handle and answer ENXIO too. A
// close(2) then sends no request (FOPEN_NOFLUSH), so it is clean even
// after the connection is gone.
func (fs *Mount) revoke() {
	fs.mu.Lock()
	fs.revoked = true
	handles := fs.handles
	fs.handles = map[uint64]*driver.Handle{}
	fs.mu.Unlock()
	for _, h := range handles {
		h.Close()
	}
}

// teardown runs after the server stops: every handle is closed and every
// kernel reference given back, as the kernel sends no more FORGETs.
func (fs *Mount) teardown() {
	fs.unsub()
	fs.mu.Lock()
	fs.closed = true
	handles := fs.handles
	fs.handles = map[uint64]*driver.Handle{}
	nodes := fs.nodes
	fs.nodes = map[uint64]*node{}
	fs.mu.Unlock()
	for _, h := range handles {
		h.Close()
	}
	for _, n := range nodes {
		if n.kind == devNode {
			for i := uint64(0); i < n.lookups; i++ {
				n.dev.Rel(driver.RefKernel)
			}
		}
	}
	fs.jail.Release()
	close(fs.done)
}

// onEvent keeps the kernel's cache honest: a destroyed device's entry is
// invalidated before Destroy returns.
func (fs *Mount) onEvent(ev driver.Event) {
	if ev.Kind == driver.Renamed || (ev.Kind == driver.Destroyed && ev.Alias != "") {
		fs.onAliasEvent(ev)
	}
	if ev.Kind != driver.Destroyed {
		return
	}
	fs.mu.Lock()
	_, known := fs.nodes[ev.Device.Ino()]
	closed := fs.closed
	fs.mu.Unlock()
	if closed {
		return
	}
	if known {
		fs.server.DeleteNotify(fuse.FUSE_ROOT_ID, ev.Device.Ino(), ev.Name)
	} else {
		fs.server.EntryNotify(fuse.FUSE_ROOT_ID, ev.Name)
	}
}

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

func (fs *Mount) String() string { return "tundevfs" }

// Init implements fuse.RawFileSystem.
func (fs *Mount) Init(s *fuse.Server) {}

func (fs *Mount) setDirAttr(a *fuse.Attr) {
	a.Ino = fuse.FUSE_ROOT_ID
	a.Mode = syscall.S_IFDIR | 0o755
	a.Nlink = 2
	a.Owner = fuse.Owner{Uid: fs.uid, Gid: fs.gid}
	setTimes(a, fs.start)
}

func setTimes(a *fuse.Attr, t time.Time) {
	s, ns := uint64(t.Unix()), uint32(t.Nanosecond())
	a.Atime, a.Mtime, a.Ctime = s, s, s
	a.Atimensec, a.Mtimensec, a.Ctimensec = ns, ns, ns
}

// maxRequest is the largest READ or WRITE one FUSE request carries
// (MountOptions.MaxWrite, which go-fuse also passes as max_read): 17
// pages, so that a buffer of up to 64 KiB is one request wherever it
// starts in a page. The kernel cuts a direct read or write into requests
// of at most max_pages pages (fs/fuse/file.c: fuse_direct_io,
// fuse_get_user_pages), and 64 KiB that do not start on a page boundary
// span 17 pages: with 16, a batch write of 65,520 bytes 3,000 bytes into
// a page became two requests, the first ending inside a record.
const maxRequest = 17 * 4096

// splitFloor: a READ request larger than this may be only the first part
// of a larger read(2) (the kernel cuts one at max_pages pages, so a first
// part holds more than 16 pages); one of this size or smaller is always
// the whole rest of it. A reply that fills a request larger than this
// would make the kernel ask for more (see Read).
const splitFloor = 16 * 4096

// devSize is the size a device node reports. With
// FOPEN_PARALLEL_DIRECT_WRITES the kernel runs a direct write under the
// shared inode lock only when it ends within the file size
// (fs/fuse/file.c: fuse_dio_wr_exclusive_lock, fuse_io_past_eof); a stream
// file writes at offset 0, so the size covers the largest write one
// request carries (maxRequest). An O_APPEND write takes the exclusive lock
// anyway, and its offset, devSize, stays far from any limit.
//
// The size does not open the page cache: a page-cache READ (a fault of a
// private mapping, readahead) is refused (see Read), so pages inside it
// never hold packets.
const devSize = maxRequest

func setDevAttr(a *fuse.Attr, d *driver.Device) {
	uid, gid, mode := d.Owner()
	a.Ino = d.Ino()
	a.Mode = syscall.S_IFREG | mode
	a.Size = devSize
	a.Nlink = 1
	if !d.Alive() {
		a.Nlink = 0
	}
	a.Owner = fuse.Owner{Uid: uid, Gid: gid}
	a.Blksize = 4096
	setTimes(a, d.Created())
}

// setLinkAttr describes a cloning link. Its size is 0: the target is made
// by each READLINK.
func setLinkAttr(a *fuse.Attr, id uint64, n *node) {
	a.Ino = id
	a.Mode = syscall.S_IFLNK | 0o777
	a.Nlink = 1
	setTimes(a, n.created)
}

// Lookup implements fuse.RawFileSystem: a device resolves, a bare driver
// name resolves to its cloning link, another driver name clones.
func (fs *Mount) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	if h.NodeId != fuse.FUSE_ROOT_ID {
		return fuse.ENOTDIR
	}
	j := fs.callerJail(h)
	if j == nil {
		return fuse.ENOENT
	}
	if d := fs.m.Lookup(j, name); d != nil {
		if name != d.DevName() {
			return fs.replyAlias(d, out)
		}
		return fs.replyDev(d, out)
	}
	if i := fs.stdDevIndex(name); i >= 0 {
		return fs.replyStd(i, out)
	}
	_, unit, ok := driver.ParseName(name)
	if !ok {
		// An interface renamed a moment ago (alias.go); clone names,
		// the hot path, never ask the kernel.
		if d := fs.m.ResolveRenamed(j, name); d != nil {
			return fs.replyAlias(d, out)
		}
		return fuse.ENOENT
	}
	req := clonehandler.Request{Jail: j, Name: name, Cred: cred(h)}
	if unit < 0 {
		// Only the caller's right to clone is checked here; READLINK
		// clones. The entry is not cached, so the check runs each time.
		if err := fs.clones.Permit(req); err != nil {
			return fs.lookupErr(name, err)
		}
		return fs.replyLink(name, out)
	}
	if createsName(h.Caller.Pid) {
		// mkdir, mknod, O_CREAT|O_EXCL, rename, link, symlink, unlink
		// or rmdir of the name: the request that follows is refused
		// (ops.go), and nothing is made on the way.
		return fuse.ENOENT
	}
	d, err := fs.clones.Clone(req)
	if err != nil {
		return fs.lookupErr(name, err)
	}
	defer d.Rel(driver.RefClone) // consumed by the clone invoker: us
	return fs.replyDev(d, out)
}

func cred(h *fuse.InHeader) clonehandler.Cred {
	return clonehandler.Cred{UID: h.Caller.Uid, GID: h.Caller.Gid, PID: h.Caller.Pid}
}

func (fs *Mount) lookupErr(name string, err error) fuse.Status {
	if fs.opts.Debug {
		fs.logger.Printf("lookup %s: %v", name, err)
	}
	return errno(err)
}

// replyDev answers a lookup with a device node, counting the kernel's
// lookup on the device.
func (fs *Mount) replyDev(d *driver.Device, out *fuse.EntryOut) fuse.Status {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.closed {
		return fuse.ENOENT
	}
	if !d.Alive() {
		return fuse.ENOENT
	}
	n, ok := fs.nodes[d.Ino()]
	if !ok {
		n = &node{kind: devNode, dev: d}
		fs.nodes[d.Ino()] = n
	}
	n.lookups++
	d.Ref(driver.RefKernel)
	out.NodeId = d.Ino()
	out.SetEntryTimeout(fs.opts.EntryTimeout)
	out.SetAttrTimeout(fs.opts.EntryTimeout)
	setDevAttr(&out.Attr, d)
	return fuse.OK
}

// replyStd answers a lookup of a standard device node.
func (fs *Mount) replyStd(i int, out *fuse.EntryOut) fuse.Status {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.closed {
		return fuse.ENOENT
	}
	fs.nodes[stdDevID(i)].lookups++
	out.NodeId = stdDevID(i)
	out.SetEntryTimeout(fs.opts.EntryTimeout)
	out.SetAttrTimeout(fs.opts.EntryTimeout)
	setStdDevAttr(&out.Attr, i, fs)
	return fuse.OK
}

// replyLink answers a lookup of a bare driver name with its cloning link.
// The kernel may cache the entry: the link's node never changes, and
// READLINK, which clones, checks the caller's permission again.
func (fs *Mount) replyLink(name string, out *fuse.EntryOut) fuse.Status {
	drv, _, _ := driver.ParseName(name)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.closed {
		return fuse.ENOENT
	}
	id := linkID(slices.Index(driver.Drivers, drv))
	n := fs.nodes[id]
	n.lookups++
	out.NodeId = id
	out.SetEntryTimeout(fs.opts.EntryTimeout)
	out.SetAttrTimeout(fs.opts.EntryTimeout)
	setLinkAttr(&out.Attr, id, n)
	return fuse.OK
}

// Forget implements fuse.RawFileSystem.
func (fs *Mount) Forget(id, nlookup uint64) {
	fs.mu.Lock()
	n, ok := fs.nodes[id]
	if !ok || id == fuse.FUSE_ROOT_ID {
		fs.mu.Unlock()
		return
	}
	if nlookup > n.lookups {
		nlookup = n.lookups
	}
	n.lookups -= nlookup
	if n.lookups == 0 && (n.kind == devNode || n.kind == aliasNode) {
		delete(fs.nodes, id)
	}
	fs.mu.Unlock()
	if n.kind == devNode {
		for i := uint64(0); i < nlookup; i++ {
			n.dev.Rel(driver.RefKernel)
		}
	}
}

func (fs *Mount) node(id uint64) *node {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.nodes[id]
}

// GetAttr implements fuse.RawFileSystem.
func (fs *Mount) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	n := fs.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	switch n.kind {
	case dirNode:
		fs.setDirAttr(&out.Attr)
		out.SetTimeout(fs.opts.EntryTimeout)
	case devNode:
		setDevAttr(&out.Attr, n.dev)
		out.SetTimeout(fs.opts.EntryTimeout)
	case linkNode:
		setLinkAttr(&out.Attr, in.NodeId, n)
	case stdNode:
		setStdDevAttr(&out.Attr, n.std, fs)
		out.SetTimeout(fs.opts.EntryTimeout)
	case aliasNode:
		setAliasAttr(&out.Attr, in.NodeId, n.dev)
		out.SetTimeout(fs.opts.EntryTimeout)
	}
	return fuse.OK
}

// SetAttr implements fuse.RawFileSystem: chmod and chown of device nodes
// (the kernel checks permissions); a size change is accepted and ignored so
// that truncating opens (`echo x > tun0`) work.
func (fs *Mount) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	n := fs.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	if n.kind != devNode {
		if in.Valid&(fuse.FATTR_MODE|fuse.FATTR_UID|fuse.FATTR_GID) != 0 {
			return fuse.EPERM
		}
		return fs.GetAttr(cancel, &fuse.GetAttrIn{InHeader: in.InHeader}, out)
	}
	var o driver.Owner
	var set driver.OwnerSet
	if in.Valid&fuse.FATTR_MODE != 0 {
		o.Mode, set.Mode = in.Mode&0o7777, true
	}
	if in.Valid&fuse.FATTR_UID != 0 {
		o.UID, set.UID = in.Uid, true
	}
	if in.Valid&fuse.FATTR_GID != 0 {
		o.GID, set.GID = in.Gid, true
	}
	n.dev.SetOwner(o, set)
	setDevAttr(&out.Attr, n.dev)
	out.SetTimeout(fs.opts.EntryTimeout)
	return fuse.OK
}

// Readlink implements fuse.RawFileSystem: resolving a cloning link clones
// (tunclone() for the bare name) and answers the new unit's name.
func (fs *Mount) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	n := fs.node(h.NodeId)
	if n != nil && n.kind == stdNode && stdDevs[n.std].target != "" {
		return []byte(stdDevs[n.std].target), fuse.OK
	}
	if n != nil && n.kind == aliasNode {
		if !n.dev.Alive() {
			return nil, fuse.ENOENT
		}
		return []byte(n.dev.DevName()), fuse.OK
	}
	if n == nil || n.kind != linkNode {
		return nil, fuse.EINVAL
	}
	j := fs.callerJail(h)
	if j == nil {
		return nil, fuse.ENOENT
	}
	d, err := fs.clones.Clone(clonehandler.Request{Jail: j, Name: n.drv.Name, Cred: cred(h)})
	if err != nil {
		return nil, fs.lookupErr(n.drv.Name, err)
	}
	defer d.Rel(driver.RefClone) // consumed by the clone invoker: us
	return []byte(d.DevName()), fuse.OK
}

// Access implements fuse.RawFileSystem; default_permissions does the work.
func (fs *Mount) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	return fuse.OK
}

// OpenDir implements fuse.RawFileSystem: the listing is taken now.
func (fs *Mount) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if in.NodeId != fuse.FUSE_ROOT_ID {
		return fuse.ENOTDIR
	}
	entries := []fuse.DirEntry{
		{Name: ".", Mode: syscall.S_IFDIR, Ino: fuse.FUSE_ROOT_ID},
		{Name: "..", Mode: syscall.S_IFDIR, Ino: fuse.FUSE_ROOT_ID},
	}
	var devs []*driver.Device
	if j := fs.callerJail(&in.InHeader); j != nil {
		devs = slices.DeleteFunc(fs.m.Devices(j), func(d *driver.Device) bool { return !d.Alive() })
	}
	for _, d := range devs {
		entries = append(entries, fuse.DirEntry{Name: d.DevName(), Mode: syscall.S_IFREG, Ino: d.Ino()})
	}
	if fs.opts.StdDevices {
		for i, sd := range stdDevs {
			entries = append(entries, fuse.DirEntry{Name: sd.name, Mode: stdDevMode(i), Ino: stdDevID(i)})
		}
	}
	entries = append(entries, aliasEntries(devs)...)
	sort.Slice(entries[2:], func(a, b int) bool { return entries[2+a].Name < entries[2+b].Name })
	fs.mu.Lock()
	fs.nextFh++
	fh := fs.nextFh
	fs.dirs[fh] = entries
	fs.mu.Unlock()
	out.Fh = fh
	return fuse.OK
}

// ReadDir implements fuse.RawFileSystem.
func (fs *Mount) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	fs.mu.Lock()
	entries := fs.dirs[in.Fh]
	fs.mu.Unlock()
	for i := int(in.Offset); i < len(entries); i++ {
		e := entries[i]
		e.Off = uint64(i + 1)
		if !out.AddDirEntry(e) {
			break
		}
	}
	return fuse.OK
}

// ReleaseDir implements fuse.RawFileSystem.
func (fs *Mount) ReleaseDir(in *fuse.ReleaseIn) {
	fs.mu.Lock()
	delete(fs.dirs, in.Fh)
	fs.mu.Unlock()
}

// Open implements fuse.RawFileSystem (tunopen): exclusive, EBUSY when open,
// ENXIO when dying.
func (fs *Mount) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	n := fs.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	if n.kind == dirNode {
		return fuse.EISDIR
	}
	if n.kind != devNode {
		return fuse.EINVAL
	}
	if n.dev.Jail() != fs.callerJail(&in.InHeader) {
		return fuse.ENOENT // another jail's device (pernetns.go)
	}
	h, err := n.dev.Open(processID(in.Caller.Pid))
	if err != nil {
		return errno(err)
	}
	fs.mu.Lock()
	if fs.closed || fs.revoked {
		fs.mu.Unlock()
		h.Close()
		return fuse.Status(syscall.ENXIO)
	}
	fs.nextFh++
	fh := fs.nextFh
	fs.handles[fh] = h
	fs.mu.Unlock()
	out.Fh = fh
	// Parallel direct writes: writers of one device do not queue on the
	// inode lock (see devSize). No FLUSH: close(2) has nothing to wait
	// for (Flush did nothing), saves a round trip, and stays clean after
	// the mount is gone (Unmount).
	out.OpenFlags = fuse.FOPEN_DIRECT_IO | fuse.FOPEN_NONSEEKABLE | fuse.FOPEN_STREAM |
		fuse.FOPEN_PARALLEL_DIRECT_WRITES | fuse.FOPEN_NOFLUSH
	return fuse.OK
}

func (fs *Mount) handle(fh uint64) *driver.Handle {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.handles[fh]
}

// Read implements fuse.RawFileSystem: one packet per read.
//
// Only read(2) reaches a device. The kernel also reads a FUSE file for its
// page cache: a fault of a private mapping (which fuse_file_mmap allows
// for FOPEN_DIRECT_IO files) and readahead (readahead(2), fadvise). Those
// READs come without FUSE_READ_LOCKOWNER, which fuse_direct_io sets on
// every read(2) (the lock owner is the caller's files table), and get EIO
// at once: a fault is SIGBUS instead of waiting for a packet and eating it.
//
// A reply never fills a READ that may be the first part of a larger
// read(2) (larger than splitFloor): the kernel would ask for the rest with
// a second READ, which would block or glue the next packet on. A packet
// that large (an MTU set behind the device's back, a GSO frame) is cut
// one byte short instead, as a short buffer cuts it.
func (fs *Mount) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	h := fs.handle(in.Fh)
	if h == nil {
		return nil, fs.noHandle()
	}
	if in.ReadFlags&fuse.READ_LOCKOWNER == 0 {
		return nil, errno(driver.ErrPageCache)
	}
	if int(in.Size) < len(buf) {
		buf = buf[:in.Size]
	}
	nonblock := in.Flags&syscall.O_NONBLOCK != 0
	inline := fuse.InlineRequest(cancel) // transport_linux.go
	var n int
	var err error
	if h.Batch() {
		n, err = h.ReadBatch(cancel, buf, nonblock || inline)
	} else {
		if len(buf) > splitFloor {
			buf = buf[:len(buf)-1]
		}
		n, err = h.Read(cancel, buf, nonblock || inline)
	}
	if err != nil {
		if inline && !nonblock && errors.Is(err, driver.ErrWouldBlock) {
			return nil, fuse.ServeLater
		}
		return nil, fs.fileErr(err)
	}
	return packetResult(buf[:n]), fuse.OK
}

// Write implements fuse.RawFileSystem: one packet per write.
func (fs *Mount) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	h := fs.handle(in.Fh)
	if h == nil {
		return 0, fs.noHandle()
	}
	var n int
	var err error
	if h.Batch() {
		n, err = h.WriteBatch(data)
	} else {
		n, err = h.Write(data)
	}
	if err != nil {
		return 0, fs.fileErr(err)
	}
	return uint32(n), fuse.OK
}

// Flush implements fuse.RawFileSystem.
func (fs *Mount) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	return fuse.OK
}

// Release implements fuse.RawFileSystem: the last close.
func (fs *Mount) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	fs.mu.Lock()
	h := fs.handles[in.Fh]
	delete(fs.handles, in.Fh)
	fs.mu.Unlock()
	if h != nil {
		h.Close()
	}
}

// StatFs implements fuse.RawFileSystem.
func (fs *Mount) StatFs(cancel <-chan struct{}, in *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	out.NameLen = driver.IfNameMax
	out.Bsize = 4096
	return fuse.OK
}
