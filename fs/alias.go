package fs

import (
	"syscall"

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

// setAliasAttr describes an alias link.
func setAliasAttr(a *fuse.Attr, id uint64, d *driver.Device) {
	a.Ino = id
	a.Mode = syscall.S_IFLNK | 0o777
	a.Nlink = 1
	a.Size = uint64(len(d.DevName()))
	setTimes(a, d.Created())
}

// replyAlias answers a lookup of name, the new name of d's interface, with
// the alias link.
func (fs *Mount) replyAlias(d *driver.Device, out *fuse.EntryOut) fuse.Status {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.closed || !d.Alive() {
		return fuse.ENOENT
	}
	id := aliasID(d)
	n, ok := fs.nodes[id]
	if !ok {
		n = &node{kind: aliasNode, dev: d, created: d.Created()}
		fs.nodes[id] = n
	}
	n.lookups++
	out.NodeId = id
	out.SetEntryTimeout(fs.opts.EntryTimeout)
	out.SetAttrTimeout(fs.opts.EntryTimeout)
	setAliasAttr(&out.Attr, id, d)
	return fuse.OK
}

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
func (fs *Mount) onAliasEvent(ev driver.Event) {
	fs.mu.Lock()
	closed := fs.closed
	fs.mu.Unlock()
	if closed {
		return
	}
	for _, name := range []string{ev.OldAlias, ev.Alias} {
		if name != "" {
			fs.server.EntryNotify(fuse.FUSE_ROOT_ID, name)
		}
	}
}
