package fs

import (
	"slices"
	"sort"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tundevfs/tundevfs/clonehandler"
	"github.com/tundevfs/tundevfs/driver"
)

// rootNode is the device directory itself, the mount's root: it lists
// the caller's jail's devices and clones on lookup.
type rootNode struct {
	owner   fuse.Owner // the mount's user_id and group_id (MountDir)
	created time.Time
}

func (r *rootNode) id() uint64 { return fuse.FUSE_ROOT_ID }

func (r *rootNode) attr(mnt *Mount, a *fuse.Attr) {
	a.Ino = fuse.FUSE_ROOT_ID
	a.Mode = syscall.S_IFDIR | 0o755
	a.Nlink = 2
	a.Owner = r.owner
	setTimes(a, r.created)
}

func (r *rootNode) attrTimeout(mnt *Mount) time.Duration { return mnt.opts.EntryTimeout }

func (r *rootNode) setattr(mnt *Mount, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	return mnt.refuseOwnerChange(r, in, out)
}

func (r *rootNode) readlink(mnt *Mount, h *fuse.InHeader) ([]byte, fuse.Status) { return notLink() }

// open: the directory is opened with OPENDIR.
func (r *rootNode) open(mnt *Mount, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return fuse.EISDIR
}

func (r *rootNode) ioctlNoFile(mnt *Mount) fuse.Status { return fuse.Status(syscall.ENOTTY) }

func setTimes(a *fuse.Attr, t time.Time) {
	s, ns := uint64(t.Unix()), uint32(t.Nanosecond())
	a.Atime, a.Mtime, a.Ctime = s, s, s
	a.Atimensec, a.Mtimensec, a.Ctimensec = ns, ns, ns
}

// Lookup implements fuse.RawFileSystem: a device resolves, a bare driver
// name resolves to its cloning link, another driver name clones.
func (mnt *Mount) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	defer mnt.sync()
	if h.NodeId != fuse.FUSE_ROOT_ID {
		return fuse.ENOTDIR
	}
	if st, ok := mnt.replayLookup(h, out); ok {
		return st // resent: counted by the dead server (replay.go)
	}
	j := mnt.callerJail(h)
	if j == nil {
		return fuse.ENOENT
	}
	if d := mnt.devices.Lookup(j, name); d != nil {
		if name != d.DevName() {
			return mnt.replyCounted(h, aliasNode{d}, out)
		}
		return mnt.replyCounted(h, devNode{d}, out)
	}
	if i := mnt.stdDevIndex(name); i >= 0 {
		return mnt.replyFixed(mnt.fixed[stdDevID(i)], out)
	}
	drv, unit, ok := driver.ParseName(name)
	if !ok {
		// An interface renamed a moment ago (alias.go); clone names,
		// the hot path, never ask the kernel.
		if d := mnt.devices.ResolveRenamed(j, name); d != nil {
			return mnt.replyCounted(h, aliasNode{d}, out)
		}
		return fuse.ENOENT
	}
	req := clonehandler.Request{Jail: j, Name: name, Cred: cred(h)}
	if unit < 0 {
		// Only the caller's right to clone is checked here; READLINK
		// clones, and checks it again: the kernel may cache the link's
		// entry, whose node never changes.
		if err := mnt.clones.Permit(req); err != nil {
			return mnt.lookupErr(name, err)
		}
		return mnt.replyFixed(mnt.fixed[linkID(slices.Index(driver.Drivers, drv))], out)
	}
	if createsName(h.Caller.Pid) {
		// mkdir, mknod, O_CREAT|O_EXCL, rename, link, symlink, unlink
		// or rmdir of the name: the request that follows is refused
		// (ops.go), and nothing is made on the way.
		return fuse.ENOENT
	}
	d, err := mnt.clones.Clone(req)
	if err != nil {
		return mnt.lookupErr(name, err)
	}
	defer d.Rel(driver.RefClone) // consumed by the clone invoker: us
	return mnt.replyCounted(h, devNode{d}, out)
}

func cred(h *fuse.InHeader) clonehandler.Cred {
	return clonehandler.Cred{UID: h.Caller.Uid, GID: h.Caller.Gid, PID: h.Caller.Pid}
}

// Access implements fuse.RawFileSystem; default_permissions does the work.
func (mnt *Mount) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	return fuse.OK
}

// OpenDir implements fuse.RawFileSystem: the listing is taken now.
func (mnt *Mount) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if in.NodeId != fuse.FUSE_ROOT_ID {
		return fuse.ENOTDIR
	}
	entries := []fuse.DirEntry{
		{Name: ".", Mode: syscall.S_IFDIR, Ino: fuse.FUSE_ROOT_ID},
		{Name: "..", Mode: syscall.S_IFDIR, Ino: fuse.FUSE_ROOT_ID},
	}
	var devs []*driver.Device
	if j := mnt.callerJail(&in.InHeader); j != nil {
		devs = slices.DeleteFunc(mnt.devices.Devices(j), func(d *driver.Device) bool { return !d.Alive() })
	}
	for _, d := range devs {
		entries = append(entries, fuse.DirEntry{Name: d.DevName(), Mode: syscall.S_IFREG, Ino: d.Ino()})
	}
	if mnt.opts.StdDevices {
		for i, sd := range stdDevs {
			entries = append(entries, fuse.DirEntry{Name: sd.name, Mode: stdDevMode(i), Ino: stdDevID(i)})
		}
	}
	entries = append(entries, aliasEntries(devs)...)
	sort.Slice(entries[2:], func(a, b int) bool { return entries[2+a].Name < entries[2+b].Name })
	mnt.mu.Lock()
	mnt.nextFh++
	fh := mnt.nextFh
	mnt.dirs[fh] = entries
	mnt.mu.Unlock()
	out.Fh = fh
	return fuse.OK
}

// ReadDir implements fuse.RawFileSystem.
func (mnt *Mount) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	mnt.mu.Lock()
	entries := mnt.dirs[in.Fh]
	mnt.mu.Unlock()
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
func (mnt *Mount) ReleaseDir(in *fuse.ReleaseIn) {
	mnt.mu.Lock()
	delete(mnt.dirs, in.Fh)
	mnt.mu.Unlock()
}

// StatFs implements fuse.RawFileSystem.
func (mnt *Mount) StatFs(cancel <-chan struct{}, in *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	out.NameLen = driver.IfNameMax
	out.Bsize = 4096
	return fuse.OK
}
