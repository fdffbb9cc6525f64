package fs

import "github.com/hanwen/go-fuse/v2/fuse"

// Resent requests (issue 13). When a server dies after it acted on a
// request but before it answered, the kernel resends the request to the
// next server (FUSE_NOTIFY_RESEND) with uniqueResend set in its unique.
// Acting on it again would be wrong where the act is not idempotent: a
// second clone for one READLINK of "tun", a second lookup counted for one
// the kernel counts once, EBUSY for the OPEN of a device the dead server
// had opened for this very request. So those acts are remembered, by
// unique, in the state the next server takes over (before the reply, as
// all state is), and a resent request whose act is remembered gets the
// answer it would have got.

// uniqueResend marks a resent request's unique (FUSE_UNIQUE_RESEND).
const uniqueResend = 1 << 63

// maxReplays bounds the acts remembered per mount: the requests one
// server can have in flight at once, with room to spare.
const maxReplays = 256

// ReplayState is one remembered act: the node a LOOKUP answered, the file
// handle an OPEN made, or the device name a cloning READLINK made.
type ReplayState struct {
	Unique uint64 `json:"unique"`
	Node   uint64 `json:"node,omitempty"`
	Fh     uint64 `json:"fh,omitempty"`
	Link   string `json:"link,omitempty"`
}

// rememberLocked records an act for unique; Mount.mu is held.
func (mnt *Mount) rememberLocked(r ReplayState) {
	if mnt.replays == nil {
		mnt.replays = make(map[uint64]ReplayState)
	}
	r.Unique &^= uniqueResend
	if _, ok := mnt.replays[r.Unique]; !ok {
		mnt.replayOrder = append(mnt.replayOrder, r.Unique)
	}
	mnt.replays[r.Unique] = r
	for len(mnt.replayOrder) > maxReplays {
		delete(mnt.replays, mnt.replayOrder[0])
		mnt.replayOrder = mnt.replayOrder[1:]
	}
}

func (mnt *Mount) remember(r ReplayState) {
	mnt.mu.Lock()
	defer mnt.mu.Unlock()
	mnt.rememberLocked(r)
}

// replayed returns the act remembered for a resent request.
func (mnt *Mount) replayed(h *fuse.InHeader) (ReplayState, bool) {
	if h.Unique&uniqueResend == 0 {
		return ReplayState{}, false
	}
	mnt.mu.Lock()
	defer mnt.mu.Unlock()
	r, ok := mnt.replays[h.Unique&^uniqueResend]
	return r, ok
}

// replayLookup answers a resent LOOKUP whose node the dead server had
// counted: the same entry, not counted again.
func (mnt *Mount) replayLookup(h *fuse.InHeader, out *fuse.EntryOut) (fuse.Status, bool) {
	r, ok := mnt.replayed(h)
	if !ok || r.Node == 0 {
		return 0, false
	}
	mnt.mu.Lock()
	defer mnt.mu.Unlock()
	e, ok := mnt.nodes[r.Node]
	if !ok || mnt.closed {
		return 0, false
	}
	mnt.entryLocked(e.counted, out)
	return fuse.OK, true
}

// replayOpen answers a resent OPEN whose file the dead server had opened.
func (mnt *Mount) replayOpen(in *fuse.OpenIn, out *fuse.OpenOut) (fuse.Status, bool) {
	r, ok := mnt.replayed(&in.InHeader)
	if !ok || r.Fh == 0 {
		return 0, false
	}
	mnt.mu.Lock()
	_, open := mnt.handles[r.Fh]
	mnt.mu.Unlock()
	if !open {
		return 0, false
	}
	out.Fh = r.Fh
	out.OpenFlags = devOpenFlags
	return fuse.OK, true
}

// replayLink answers a resent cloning READLINK with the device it made.
func (mnt *Mount) replayLink(h *fuse.InHeader) ([]byte, bool) {
	r, ok := mnt.replayed(h)
	if !ok || r.Link == "" {
		return nil, false
	}
	return []byte(r.Link), true
}
