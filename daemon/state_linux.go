package daemon

// The daemon's own files: its state directory, the record of its mounts
// that lets the next daemon on the same socket clean up after a kill -9,
// and the control socket.
//
// Layout (StateRoot is root-owned 0700; nothing is ever followed through a
// symbolic link, every level is opened with O_NOFOLLOW and checked):
//
//	/run/tundevfs/                       0755, the default socket's directory
//	/run/tundevfs/state/                 0700
//	/run/tundevfs/state/<key>/           0700, one per socket path (StateDir)
//	    instance.json                    pid, start time, mounts (stateRecord)
//	    daemon.log                       log of a daemon the CLI auto-started
//	    jails/<name>.<jid>/dev           jexec mount points
//
// <key> is the first 16 hex digits of the SHA-256 of the socket's absolute
// path, so daemons on different sockets never share (or clean) state.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/fs"
)

// RunDir is the directory of the default socket; StateRoot holds every
// daemon's state directory.
const (
	RunDir    = "/run/tundevfs"
	StateRoot = RunDir + "/state"
)

const (
	recordName = "instance.json"
	logName    = "daemon.log"
	jailsName  = "jails"
)

// StateDir is the state directory of the daemon listening on socket.
func StateDir(socket string) string {
	if abs, err := filepath.Abs(socket); err == nil {
		socket = abs
	}
	sum := sha256.Sum256([]byte(filepath.Clean(socket)))
	return filepath.Join(StateRoot, hex.EncodeToString(sum[:8]))
}

// openDirNoFollow opens the directory path, creating the missing levels
// below RunDir with mode 0700 (RunDir itself 0755). No level may be a
// symbolic link, writable by group or others, or owned by anyone but root
// or the daemon's user. It returns an O_DIRECTORY fd.
func openDirNoFollow(path string) (int, error) {
	if !filepath.IsAbs(path) {
		return -1, fmt.Errorf("open %s: not an absolute path", path)
	}
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /: %w", err)
	}
	cur := "/"
	for _, name := range strings.Split(strings.Trim(filepath.Clean(path), "/"), "/") {
		if name == "" {
			continue
		}
		next := filepath.Join(cur, name)
		if next == RunDir || strings.HasPrefix(next, RunDir+"/") {
			mode := uint32(0o700)
			if next == RunDir {
				mode = 0o755
			}
			if err := unix.Mkdirat(fd, name, mode); err != nil && !errors.Is(err, unix.EEXIST) {
				unix.Close(fd)
				return -1, fmt.Errorf("create %s: %w", next, err)
			}
		}
		nfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
				return -1, fmt.Errorf("open %s: %w (a symbolic link or not a directory: refused)", next, err)
			}
			return -1, fmt.Errorf("open %s: %w", next, err)
		}
		fd, cur = nfd, next
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("stat %s: %w", cur, err)
		}
		if st.Uid != 0 && int(st.Uid) != os.Geteuid() {
			unix.Close(fd)
			return -1, fmt.Errorf("open %s: owned by uid %d (refused: must be root's)", cur, st.Uid)
		}
		if st.Mode&0o022 != 0 {
			unix.Close(fd)
			return -1, fmt.Errorf("open %s: mode %o is writable by others (refused)", cur, st.Mode&0o7777)
		}
	}
	return fd, nil
}

// stateDirFd opens (creating) the daemon's state directory for socket.
func stateDirFd(socket string) (int, error) {
	return openDirNoFollow(StateDir(socket))
}

// OpenSpawnLog opens (creating, appending) the log of a daemon the CLI
// auto-starts on socket: daemon.log in its state directory, never through
// a symbolic link. It returns the file and its path.
func OpenSpawnLog(socket string) (*os.File, string, error) {
	dfd, err := stateDirFd(socket)
	if err != nil {
		return nil, "", fmt.Errorf("open daemon log: %w", err)
	}
	defer unix.Close(dfd)
	path := filepath.Join(StateDir(socket), logName)
	fd, err := unix.Openat(dfd, logName, unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("open daemon log %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, "", fmt.Errorf("open daemon log %s: not a regular file", path)
	}
	return os.NewFile(uintptr(fd), path), path, nil
}

// stateRecord is instance.json: who the daemon is and which mounts it made.
type stateRecord struct {
	// PID is the daemon's: the holder's under one (its death ends the
	// daemon), else the one process's.
	PID    int    `json:"pid"`
	Start  uint64 `json:"start"` // /proc/PID/stat starttime, against pid reuse
	Socket string `json:"socket"`
	// Server is the serving process under a holder (0 without one): it
	// dies with the holder, a moment later.
	Server      int           `json:"server,omitempty"`
	ServerStart uint64        `json:"server_start,omitempty"`
	Mounts      []recordMount `json:"mounts"`
}

type recordMount struct {
	Dir      string `json:"dir"`
	Internal bool   `json:"internal,omitempty"` // a jexec mount in the state dir
}

// procStatFields returns the fields of /proc/PID/stat after the command
// name (so f[0] is the state, f[1] the parent, f[19] the start time), or
// nil if there is no such process. A raw fd: never the runtime's poller.
func procStatFields(pid int) []string {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	buf := make([]byte, 4096)
	n, err := unix.Read(fd, buf)
	if err != nil || n <= 0 {
		return nil
	}
	b := string(buf[:n])
	i := strings.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(b[i+1:])
}

// procStart returns the start time of pid (field 22 of /proc/PID/stat), or
// 0 if there is no such process.
func procStart(pid int) uint64 {
	f := procStatFields(pid)
	if len(f) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

// procParent returns the parent pid of pid, or 0.
func procParent(pid int) int {
	f := procStatFields(pid)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// readRecord reads instance.json from the state directory; nil if none.
func readRecord(dfd int) (*stateRecord, error) {
	fd, err := unix.Openat(dfd, recordName, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", recordName, err)
	}
	f := os.NewFile(uintptr(fd), recordName)
	defer f.Close()
	var rec stateRecord
	if err := json.NewDecoder(f).Decode(&rec); err != nil {
		return nil, fmt.Errorf("read %s: %w", recordName, err)
	}
	return &rec, nil
}

// writeRecord replaces instance.json atomically.
func writeRecord(dfd int, rec *stateRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp := recordName + ".tmp"
	unix.Unlinkat(dfd, tmp, 0)
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", recordName, err)
	}
	_, werr := unix.Write(fd, b)
	unix.Close(fd)
	if werr != nil {
		return fmt.Errorf("write %s: %w", recordName, werr)
	}
	if err := unix.Renameat(dfd, tmp, dfd, recordName); err != nil {
		return fmt.Errorf("write %s: %w", recordName, err)
	}
	return nil
}

// saveState records the daemon's mounts (reserved ones too, so that a
// mount in progress at a kill -9 is known) in instance.json.
func (d *Daemon) saveState() {
	d.stateMu.Lock()
	defer d.stateMu.Unlock()
	d.mu.Lock()
	rec := &stateRecord{PID: os.Getpid(), Start: procStart(os.Getpid()), Socket: d.opts.Socket, Mounts: []recordMount{}}
	if h := d.info.HolderPID; h != 0 {
		rec.Server, rec.ServerStart = rec.PID, rec.Start
		rec.PID, rec.Start = h, procStart(h)
	}
	for dir := range d.mounts {
		rec.Mounts = append(rec.Mounts, recordMount{Dir: dir, Internal: d.internal[dir]})
	}
	d.mu.Unlock()
	if d.stateFd < 0 {
		return
	}
	if err := writeRecord(d.stateFd, rec); err != nil {
		d.logger.Printf("state: %v", err)
	}
}

// removeState removes, at a clean shutdown, what the daemon keeps in its
// state directory (jexec directories, its record) and the directory itself
// if nothing else (an auto-started daemon's log) is left in it. The
// directory is closed for good: later saveState and removeJexecDir calls
// do nothing.
func (d *Daemon) removeState() {
	d.removeJexecDirs()
	d.stateMu.Lock()
	defer d.stateMu.Unlock()
	if d.stateFd < 0 {
		return
	}
	unix.Unlinkat(d.stateFd, jailsName, unix.AT_REMOVEDIR)
	unix.Unlinkat(d.stateFd, recordName, 0)
	unix.Close(d.stateFd)
	d.stateFd = -1
	if fd, err := unix.Open(StateRoot, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
		unix.Unlinkat(fd, filepath.Base(StateDir(d.opts.Socket)), unix.AT_REMOVEDIR)
		unix.Close(fd)
	}
}

// dropStateDir closes the state directory of a daemon that did not start
// and removes it if it is empty (a live daemon's, or a log, keep it).
func dropStateDir(socket string, fd int) {
	unix.Close(fd)
	if rfd, err := unix.Open(StateRoot, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
		unix.Unlinkat(rfd, filepath.Base(StateDir(socket)), unix.AT_REMOVEDIR)
		unix.Close(rfd)
	}
}

// staleMount reports whether dir is a tundevfs mount whose FUSE
// connection is gone (its daemon died): stat fails with deadConnection.
func staleMount(dir string) bool {
	if !fs.IsTundevfsMount(dir) {
		return false
	}
	var st unix.Stat_t
	return deadConnection(unix.Stat(dir, &st))
}

// deadConnection says whether err is what a request to a FUSE mount whose
// server is gone fails with: ENOTCONN once the connection is down, and
// ECONNABORTED for a request that was waiting when it went down. A
// daemon killed while its mount used io_uring leaves such a window: the
// kernel releases the connection only when the ring's teardown (a
// workqueue, after the process is gone) lets go of /dev/fuse, and a stat
// made meanwhile waits and then fails with ECONNABORTED.
func deadConnection(err error) bool {
	return errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED)
}

// detachStale detaches every stale tundevfs mount stacked at dir.
func detachStale(dir string) bool {
	did := false
	for i := 0; i < 16 && staleMount(dir); i++ {
		if unix.Unmount(dir, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW) != nil {
			break
		}
		did = true
	}
	return did
}

// cleanStale cleans what a previous daemon on the same socket left when it
// died without shutting down: its stale mounts (those it recorded, only if
// their connection is gone) and its jexec directories. It runs after the
// socket is ours, which proves no daemon answers there; the record's pid
// must be dead too.
func (d *Daemon) cleanStale() {
	rec, err := readRecord(d.stateFd)
	if err != nil {
		d.logger.Printf("stale state: %v", err)
	}
	if rec != nil && rec.PID != os.Getpid() && procStart(rec.PID) == rec.Start && rec.Start != 0 {
		d.logger.Printf("stale state: daemon %d of this socket still runs; leaving its mounts", rec.PID)
		return
	}
	if rec != nil && rec.Server != 0 && rec.ServerStart != 0 {
		// The holder is dead; its server dies with it (PDEATHSIG), but
		// may take a moment, or linger with a thread blocked on its own
		// mount that nothing will ever answer. Then its connections are
		// aborted: they are this daemon's, and no server is left.
		gone := false
		for i := 0; i < 100 && !gone; i++ {
			gone = procStart(rec.Server) != rec.ServerStart
			if !gone {
				time.Sleep(20 * time.Millisecond)
			}
		}
		if !gone {
			for _, m := range rec.Mounts {
				if fs.IsTundevfsMount(m.Dir) {
					unix.Unmount(m.Dir, unix.MNT_FORCE|unix.UMOUNT_NOFOLLOW)
				}
			}
		}
	}
	if rec != nil {
		for _, m := range rec.Mounts {
			if detachStale(m.Dir) {
				d.logger.Printf("stale state: detached the dead mount at %s (daemon %d)", m.Dir, rec.PID)
			}
		}
	}
	d.removeJexecDirs()
}

// jexecDir is the mount point of a jail's /dev for commands, in the state
// directory, created (without following links) on the way.
func (d *Daemon) jexecDir(name string, jid int) (string, error) {
	rel := filepath.Join(jailsName, name+"."+strconv.Itoa(jid), "dev")
	fd, err := openDirNoFollow(filepath.Join(StateDir(d.opts.Socket), rel))
	if err != nil {
		return "", err
	}
	unix.Close(fd)
	return filepath.Join(StateDir(d.opts.Socket), rel), nil
}

// removeJexecDir removes a jexec mount point and its jail's directory once
// its mount is gone (only empty directories; never through a link).
func (d *Daemon) removeJexecDir(dir string) {
	d.stateMu.Lock()
	defer d.stateMu.Unlock()
	if d.stateFd < 0 {
		return
	}
	jdir := filepath.Dir(dir)
	jfd, err := unix.Openat(d.stateFd, filepath.Join(jailsName, filepath.Base(jdir)), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	unix.Unlinkat(jfd, "dev", unix.AT_REMOVEDIR)
	unix.Close(jfd)
	if fd, err := unix.Openat(d.stateFd, jailsName, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
		unix.Unlinkat(fd, filepath.Base(jdir), unix.AT_REMOVEDIR)
		unix.Close(fd)
	}
}

// removeJexecDirs removes every empty jexec directory in the state
// directory (a dead predecessor's); those still mounted stay.
func (d *Daemon) removeJexecDirs() {
	d.stateMu.Lock()
	fd, err := unix.Openat(d.stateFd, jailsName, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	d.stateMu.Unlock()
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), jailsName)
	names, _ := f.Readdirnames(-1)
	f.Close()
	for _, n := range names {
		d.removeJexecDir(filepath.Join(StateDir(d.opts.Socket), jailsName, n, "dev"))
	}
}

// listen binds the control socket (mode 0600). A path that exists must be
// a socket nothing answers on (a stale one, then removed); anything else
// there, a file or a directory, is refused and left alone.
func listen(socket string) (*net.UnixListener, func(), error) {
	dir := filepath.Dir(socket)
	if dir == RunDir {
		fd, err := openDirNoFollow(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("listen %s: %w", socket, err)
		}
		unix.Close(fd)
	}
	if st, err := os.Lstat(socket); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, nil, fmt.Errorf("listen %s: exists and is not a socket (refusing to replace it)", socket)
		}
		c, err := net.DialTimeout("unix", socket, time.Second)
		if err == nil {
			c.Close()
			return nil, nil, fmt.Errorf("listen %s: a daemon is already running there", socket)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, nil, fmt.Errorf("listen %s: %w (not proven stale: left alone)", socket, err)
		}
		// Stale: nothing listens. Remove it if it is still that socket.
		if st2, err := os.Lstat(socket); err == nil && os.SameFile(st, st2) {
			os.Remove(socket)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("listen %s: %w", socket, err)
	}
	old := unix.Umask(0o177) // the socket is born 0600
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, nil, fmt.Errorf("listen %s: %w", socket, err)
	}
	ln.SetUnlinkOnClose(false)
	mine, err := os.Lstat(socket)
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("listen %s: %w", socket, err)
	}
	// remove deletes the socket at shutdown only if it is still ours.
	remove := func() {
		if st, err := os.Lstat(socket); err == nil && os.SameFile(st, mine) {
			os.Remove(socket)
		}
	}
	return ln, remove, nil
}
