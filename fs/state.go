package fs

import (
	"fmt"
	"log"
	"os"
	"sort"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tundevfs/tundevfs/clonehandler"
	"github.com/tundevfs/tundevfs/driver"
	"github.com/tundevfs/tundevfs/jails"
)

// Taking a mount over (issue 13). A server process that dies leaves its
// FUSE connections alive while the holder keeps a /dev/fuse fd of each;
// the next server rebuilds each Mount from what Export said and serves the
// same connection: the same node IDs with the same lookup counts, the
// same file handles on the same devices, and the poll handles it must
// wake. Requests the dead server had read are resent by the kernel
// (Start asks for that), so a blocked read simply blocks again in the new
// server.

// Journal is told about the changes of what Export returns. Changed is
// called after a change; Sync returns once a snapshot taken after every
// change so far is safe (with the holder), and is called before the reply
// that makes a change visible to the kernel. A nil Journal does nothing.
type Journal interface {
	Changed()
	Sync()
}

func (mnt *Mount) changed() {
	if mnt.opts.Journal != nil {
		mnt.opts.Journal.Changed()
	}
}

func (mnt *Mount) sync() {
	if mnt.opts.Journal != nil {
		mnt.opts.Journal.Sync()
	}
}

// MountState is a mount as Export saw it. Plain data, JSON-encodable.
type MountState struct {
	Dir          string         `json:"dir"`
	Jail         int            `json:"jail"`
	AllowOther   bool           `json:"allow_other,omitempty"`
	EntryTimeout time.Duration  `json:"entry_timeout"`
	StdDevices   bool           `json:"std_devices,omitempty"`
	PerNetns     bool           `json:"per_netns,omitempty"`
	Transport    Transport      `json:"transport"`
	Start        time.Time      `json:"start"`
	Init         fuse.InitState `json:"init"`
	Nodes        []NodeState    `json:"nodes,omitempty"`
	Files        []FileState    `json:"files,omitempty"`
	NextFh       uint64         `json:"next_fh"`
	// Replays are the acts remembered for resent requests, oldest
	// first (replay.go).
	Replays []ReplayState `json:"replays,omitempty"`
}

// NodeState is a node the kernel knows (a device node or an alias) and
// the lookups of it not yet forgotten.
type NodeState struct {
	ID      uint64 `json:"id"`
	Lookups uint64 `json:"lookups"`
	// Name is the node's name in the directory, for the invalidation of
	// a node whose device did not come back.
	Name string `json:"name,omitempty"`
}

// FileState is an open device file: its file handle, the device's inode,
// and the kernel's poll handle once the file was polled (0 before).
type FileState struct {
	Fh  uint64 `json:"fh"`
	Ino uint64 `json:"ino"`
	Kh  uint64 `json:"kh,omitempty"`
}

// Export returns the mount's state. It is consistent in itself (taken
// under Mount.mu); what it says of devices is the driver's to export.
func (mnt *Mount) Export() MountState {
	st := MountState{
		Dir:          mnt.dir,
		Jail:         mnt.jail.ID(),
		AllowOther:   mnt.opts.AllowOther,
		EntryTimeout: mnt.opts.EntryTimeout,
		StdDevices:   mnt.opts.StdDevices,
		PerNetns:     mnt.opts.PerNetns,
		Transport:    Transport(mnt.server.Transport()),
		Start:        mnt.start,
		Init:         mnt.server.InitState(),
	}
	mnt.mu.Lock()
	for id, e := range mnt.nodes {
		st.Nodes = append(st.Nodes, NodeState{ID: id, Lookups: e.lookups, Name: e.name()})
	}
	for fh, h := range mnt.handles {
		st.Files = append(st.Files, FileState{Fh: fh, Ino: h.Device().Ino(), Kh: mnt.khs[fh]})
	}
	st.NextFh = mnt.nextFh
	for _, u := range mnt.replayOrder {
		st.Replays = append(st.Replays, mnt.replays[u])
	}
	mnt.mu.Unlock()
	sort.Slice(st.Nodes, func(a, b int) bool { return st.Nodes[a].ID < st.Nodes[b].ID })
	sort.Slice(st.Files, func(a, b int) bool { return st.Files[a].Fh < st.Files[b].Fh })
	return st
}

// DupDevFD returns a duplicate of the mount's /dev/fuse fd, for the
// holder to keep; the caller owns it.
func (mnt *Mount) DupDevFD() (int, error) { return mnt.server.DupFD() }

// Options returns the options a restored mount takes from st; the caller
// adds what is not data (JailOf, Logger, Journal, Debug).
func (st MountState) Options() Options {
	return Options{
		AllowOther:   st.AllowOther,
		EntryTimeout: st.EntryTimeout,
		StdDevices:   st.StdDevices,
		PerNetns:     st.PerNetns,
		Transport:    st.Transport,
	}
}

// RestoreMount rebuilds, on the mounted connection of fd (RestoreMount
// owns it), the mount st describes, for jail j; Start serves it. Nodes
// come back with their lookups (and the device references they hold),
// open files with the driver handles that handleOf finds by device inode. A node or file
// whose device is no longer there is dropped: the kernel's next request
// on it gets ENOENT or EBADF.
func RestoreMount(m *driver.Manager, clones *clonehandler.Registry, j *jails.Jail, st MountState, fd int, handleOf func(ino uint64) *driver.Handle, opts Options) (*Mount, error) {
	if opts.Logger == nil {
		opts.Logger = log.Default()
	}
	opts = normalizePerNetns(opts)
	if err := j.Hold(); err != nil {
		return nil, fmt.Errorf("restore mount %s: %w", st.Dir, err)
	}
	mnt := &Mount{
		devices: m,
		clones:  clones,
		jail:    j,
		dir:     st.Dir,
		opts:    opts,
		logger:  opts.Logger,
		start:   st.Start,
		done:    make(chan struct{}),
		nodes:   make(map[uint64]*entry),
		handles: make(map[uint64]*driver.Handle),
		khs:     make(map[uint64]uint64),
		dirs:    make(map[uint64][]fuse.DirEntry),
		nextFh:  st.NextFh,
	}
	owner := fuse.Owner{Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid())}
	mnt.fixed = fixedNodes(mnt.start, owner, opts.StdDevices)
	for _, ns := range st.Nodes {
		d := m.ByIno(ns.ID &^ aliasBit)
		if d == nil || ns.Lookups == 0 {
			if ns.Name != "" {
				mnt.staleNodes = append(mnt.staleNodes, ns)
			}
			continue
		}
		var n counted = devNode{d}
		if ns.ID&aliasBit != 0 {
			n = aliasNode{d}
		}
		e := &entry{counted: n, lookups: ns.Lookups}
		for range ns.Lookups {
			n.lookedUpLocked()
		}
		mnt.nodes[ns.ID] = e
	}
	for _, r := range st.Replays {
		mnt.rememberLocked(r)
	}
	var khs []uint64
	for _, f := range st.Files {
		mnt.nextFh = max(mnt.nextFh, f.Fh)
		h := handleOf(f.Ino)
		if h == nil {
			continue
		}
		mnt.handles[f.Fh] = h
		if f.Kh != 0 {
			mnt.khs[f.Fh] = f.Kh
			khs = append(khs, f.Kh)
		}
	}
	mo := mnt.mountOptions()
	mo.IOUringInline = inlineOps
	mo.EnableIOUring = st.Transport == TransportURing
	server, err := fuse.NewServerFromFD(mnt, fd, st.Dir, mo, st.Init)
	if err != nil {
		mnt.dropRestored()
		j.Release()
		return nil, fmt.Errorf("restore mount %s: %w", st.Dir, err)
	}
	mnt.server = server
	if opts.PerNetns {
		mnt.unsub = m.Subscribe(nil, mnt.onEvent)
	} else {
		mnt.unsub = m.Subscribe(j, mnt.onEvent)
	}
	mnt.pendingKhs = khs
	return mnt, nil
}

// Start serves a restored mount. Before Serve, the kernel is asked to
// resend what the dead server read: those requests wait in its queue, and
// none this server reads comes twice. Then the entries of nodes that did
// not come back are invalidated (their devices went while no server ran),
// and every poller is woken to poll again. The daemon calls it once every
// mount and device is back, so that a resent request finds them all.
func (mnt *Mount) Start() error {
	server := mnt.server
	if code := server.NotifyResend(); !code.Ok() {
		mnt.logger.Printf("restore mount %s: resend: %v", mnt.dir, code)
	}
	go mnt.serve()
	if err := server.WaitMount(); err != nil {
		server.Unmount()
		<-mnt.done
		return fmt.Errorf("restore mount %s: %w", mnt.dir, err)
	}
	mnt.connID = mountConnID(mnt.dir)
	for _, n := range mnt.staleNodes {
		server.DeleteNotify(fuse.FUSE_ROOT_ID, n.ID, n.Name)
	}
	mnt.staleNodes = nil
	// The kernel numbers poll handles in the order files are opened; a
	// file first polled just before the crash may have a kh the last
	// snapshot missed, so the next ones are woken too (a wakeup of a kh
	// nobody polls does nothing).
	var top uint64
	for _, kh := range mnt.pendingKhs {
		server.PollNotify(kh)
		top = max(top, kh)
	}
	for kh := top + 1; kh <= top+unsavedKhs; kh++ {
		server.PollNotify(kh)
	}
	mnt.pendingKhs = nil
	return nil
}

// unsavedKhs is how many poll handles above the highest saved one Start
// wakes after a takeover.
const unsavedKhs = 256

// dropRestored gives back what RestoreMount took before its server failed.
func (mnt *Mount) dropRestored() {
	forgetAll(mnt.nodes)
	mnt.nodes = nil
}
