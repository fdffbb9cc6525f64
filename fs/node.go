package fs

import (
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tundevfs/tundevfs/driver"
)

// node is one node of a device directory that the kernel knows by its
// node ID, one small type per kind: rootNode (root.go), devNode
// (device.go), cloneLink (clonelink.go), aliasNode (alias.go), stdCharNode
// and stdLinkNode (stddev.go). Mount's request methods find the node and
// let it answer what differs by kind. attr runs under Mount.mu when a
// lookup is answered (entryLocked), so it must not take it.
type node interface {
	// id is the node ID the kernel knows the node by, also its inode
	// number.
	id() uint64
	// attr describes the node, for LOOKUP and GETATTR.
	attr(mnt *Mount, a *fuse.Attr)
	// attrTimeout is how long the kernel may keep what GETATTR answers.
	attrTimeout(mnt *Mount) time.Duration
	// setattr answers SETATTR (chmod, chown, truncate).
	setattr(mnt *Mount, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status
	// readlink answers READLINK.
	readlink(mnt *Mount, h *fuse.InHeader) ([]byte, fuse.Status)
	// open answers OPEN.
	open(mnt *Mount, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status
	// ioctlNoFile answers an IOCTL whose file handle the mount does not
	// hold (a directory's, or a device file Unmount closed).
	ioctlNoFile(mnt *Mount) fuse.Status
}

// counted is a node that lives only while the kernel knows it: made by
// the first lookup, dropped by the FORGET of the last (Mount.nodes).
type counted interface {
	node
	// aliveLocked says whether a lookup may still answer with the node.
	// Called under Mount.mu, so that a lookup and a destroy's
	// invalidation (onEvent) never cross.
	aliveLocked() bool
	// lookedUpLocked is called under Mount.mu for each lookup the kernel
	// is given.
	lookedUpLocked()
	// forgotten is called, without Mount.mu, for n lookups the kernel
	// gave back (FORGET, or all of them when the mount ends).
	forgotten(n uint64)
}

// entry is a counted node and the number of the kernel's lookups of it
// not yet forgotten.
type entry struct {
	counted
	lookups uint64
}

// name is the entry's name in the directory: the device node's name, or
// the alias's (the interface's name).
func (e *entry) name() string {
	switch n := e.counted.(type) {
	case devNode:
		return n.d.DevName()
	case aliasNode:
		return n.d.Name()
	}
	return ""
}

// fixedNodes makes the nodes that live as long as the mount: the root
// directory, owned by owner, the cloning links and, with std, the
// standard devices.
func fixedNodes(start time.Time, owner fuse.Owner, std bool) map[uint64]node {
	nodes := map[uint64]node{fuse.FUSE_ROOT_ID: &rootNode{owner: owner, created: start}}
	for i, drv := range driver.Drivers {
		l := &cloneLink{drv: drv, index: i, created: start}
		nodes[l.id()] = l
	}
	if std {
		for i := range stdDevs {
			n := newStdNode(i, start)
			nodes[n.id()] = n
		}
	}
	return nodes
}

// node is the node the kernel knows by id, or nil.
func (mnt *Mount) node(id uint64) node {
	if n, ok := mnt.fixed[id]; ok {
		return n
	}
	mnt.mu.Lock()
	defer mnt.mu.Unlock()
	if e, ok := mnt.nodes[id]; ok {
		return e.counted
	}
	return nil
}

// replyFixed answers a lookup with a node that lives as long as the
// mount.
func (mnt *Mount) replyFixed(n node, out *fuse.EntryOut) fuse.Status {
	mnt.mu.Lock()
	defer mnt.mu.Unlock()
	if mnt.closed {
		return fuse.ENOENT
	}
	mnt.entryLocked(n, out)
	return fuse.OK
}

// replyCounted answers a lookup with a counted node, counting the
// kernel's lookup: the one place where lookups are counted (Forget and
// teardown give them back).
func (mnt *Mount) replyCounted(h *fuse.InHeader, n counted, out *fuse.EntryOut) fuse.Status {
	mnt.mu.Lock()
	defer mnt.mu.Unlock()
	if mnt.closed || !n.aliveLocked() {
		return fuse.ENOENT
	}
	e, ok := mnt.nodes[n.id()]
	if !ok {
		e = &entry{counted: n}
		mnt.nodes[n.id()] = e
	}
	e.lookups++
	e.lookedUpLocked()
	mnt.entryLocked(e.counted, out)
	mnt.rememberLocked(ReplayState{Unique: h.Unique, Node: n.id()})
	mnt.changed()
	return fuse.OK
}

// entryLocked fills a lookup's answer: the node, its attributes, and how
// long the kernel may keep both.
func (mnt *Mount) entryLocked(n node, out *fuse.EntryOut) {
	out.NodeId = n.id()
	out.SetEntryTimeout(mnt.opts.EntryTimeout)
	out.SetAttrTimeout(mnt.opts.EntryTimeout)
	n.attr(mnt, &out.Attr)
}

// Forget implements fuse.RawFileSystem: the kernel gives back nlookup
// lookups of node id. A counted node goes with its last one; the fixed
// nodes stay.
func (mnt *Mount) Forget(id, nlookup uint64) {
	mnt.mu.Lock()
	e, ok := mnt.nodes[id]
	if !ok {
		mnt.mu.Unlock()
		return
	}
	nlookup = min(nlookup, e.lookups)
	e.lookups -= nlookup
	if e.lookups == 0 {
		delete(mnt.nodes, id)
	}
	mnt.mu.Unlock()
	e.forgotten(nlookup)
	// No Sync: FORGET has no reply. Lost by a crash, it leaves the node
	// known a while longer (the kernel never sends it again).
	mnt.changed()
}

// forgetAll gives back every lookup the kernel still has of the nodes of
// table, once the mount has ended (teardown took table out of
// Mount.nodes): the kernel sends no more FORGETs.
func forgetAll(table map[uint64]*entry) {
	for _, e := range table {
		e.forgotten(e.lookups)
	}
}

// GetAttr implements fuse.RawFileSystem.
func (mnt *Mount) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	n := mnt.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	mnt.getattr(n, out)
	return fuse.OK
}

func (mnt *Mount) getattr(n node, out *fuse.AttrOut) {
	n.attr(mnt, &out.Attr)
	out.SetTimeout(n.attrTimeout(mnt))
}

// SetAttr implements fuse.RawFileSystem.
func (mnt *Mount) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	defer mnt.sync()
	n := mnt.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	return n.setattr(mnt, in, out)
}

// refuseOwnerChange is the SETATTR of every node but a device's: chmod
// and chown are EPERM, anything else (a truncate, times) is accepted and
// changes nothing.
func (mnt *Mount) refuseOwnerChange(n node, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	if in.Valid&(fuse.FATTR_MODE|fuse.FATTR_UID|fuse.FATTR_GID) != 0 {
		return fuse.EPERM
	}
	mnt.getattr(n, out)
	return fuse.OK
}

// Readlink implements fuse.RawFileSystem.
func (mnt *Mount) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	defer mnt.sync() // a cloning link's READLINK makes a device
	n := mnt.node(h.NodeId)
	if n == nil {
		return nil, fuse.EINVAL
	}
	return n.readlink(mnt, h)
}

// Open implements fuse.RawFileSystem.
func (mnt *Mount) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	defer mnt.sync()
	n := mnt.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	return n.open(mnt, in, out)
}

// notLink is the READLINK of a node that is no symbolic link.
func notLink() ([]byte, fuse.Status) { return nil, fuse.EINVAL }
