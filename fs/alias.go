package fs

import (
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tundevfs/tundevfs/driver"
)

// Aliases (FreeBSD PR 235704). When a device's interface is renamed
// (`ip link set tun0 name foo`), the directory shows an alias foo beside
// tun0, as FreeBSD's tunrename() makes a devfs alias: a symbolic link
// foo -> tun0, so opening foo opens tun0, readdir lists foo as a link, and
// `readlink` says which device it is. Renaming back, or destroying the
// device, removes it. The kernel's entries are invalidated on every
// change (driver.Renamed, driver.Destroyed).
//
// An alias node's ID is the device's inode with aliasBit set: one alias
// per device, stable while the device lives. It holds no reference on the
// device; its READLINK answers ENOENT once the device is gone.

// aliasBit marks the node ID of an alias; device inodes stay far below it.
const aliasBit = 1 << 62

func aliasID(d *driver.Device) uint64 { return d.Ino() | aliasBit }

// aliasNode is the node of an alias: a symbolic link to its device's
// node. It lives while the kernel knows it.
type aliasNode struct{ d *driver.Device }

func (n aliasNode) id() uint64 { return aliasID(n.d) }

func (n aliasNode) attr(mnt *Mount, a *fuse.Attr) {
	a.Ino = n.id()
	a.Mode = syscall.S_IFLNK | 0o777
	a.Nlink = 1
	a.Size = uint64(len(n.d.DevName()))
	setTimes(a, n.d.Created())
}

func (n aliasNode) attrTimeout(mnt *Mount) time.Duration { return mnt.opts.EntryTimeout }

func (n aliasNode) setattr(mnt *Mount, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	return mnt.refuseOwnerChange(n, in, out)
}

// readlink names the device node; ENOENT once the device is gone.
func (n aliasNode) readlink(mnt *Mount, h *fuse.InHeader) ([]byte, fuse.Status) {
	if !n.d.Alive() {
		return nil, fuse.ENOENT
	}
	return []byte(n.d.DevName()), fuse.OK
}

// open: the kernel follows a link before it opens.
func (n aliasNode) open(mnt *Mount, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return fuse.EINVAL
}

func (n aliasNode) ioctlNoFile(mnt *Mount) fuse.Status { return fuse.Status(syscall.ENOTTY) }

func (n aliasNode) aliveLocked() bool { return n.d.Alive() }

// lookedUpLocked and forgotten: an alias holds no reference on its device.
func (n aliasNode) lookedUpLocked() {}

func (n aliasNode) forgotten(nlookup uint64) {}

// aliasEntries lists the aliases for readdir. An alias whose name is some
// device's node name is shadowed by that node and not listed, nor a
// reserved name (driver.Reserved), which is never an alias.
func aliasEntries(devs []*driver.Device) []fuse.DirEntry {
	nodes := make(map[string]bool, len(devs))
	for _, d := range devs {
		nodes[d.DevName()] = true
	}
	var out []fuse.DirEntry
	for _, d := range devs {
		if name := d.Name(); name != d.DevName() && !nodes[name] && !driver.Reserved(name) {
			out = append(out, fuse.DirEntry{Name: name, Mode: syscall.S_IFLNK, Ino: aliasID(d)})
		}
	}
	return out
}

// onAliasEvent invalidates the kernel's entries of the names an alias had
// and has: after a rename, and when a renamed device is destroyed.
func (mnt *Mount) onAliasEvent(ev driver.Event) {
	mnt.mu.Lock()
	closed := mnt.closed
	mnt.mu.Unlock()
	if closed {
		return
	}
	for _, name := range []string{ev.OldAlias, ev.Alias} {
		if name != "" {
			mnt.server.EntryNotify(fuse.FUSE_ROOT_ID, name)
		}
	}
}
