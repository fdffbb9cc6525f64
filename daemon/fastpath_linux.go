package daemon

// The fast path's server (SPEC §10, package fastpath for the protocol).
//
// One listener per network namespace in which the daemon has a jail (jails
// without vnet share the host's namespace, and so its listener): an
// abstract SOCK_SEQPACKET socket made on a locked thread inside the
// namespace, so it exists only there and needs no mount. It is closed when
// the last jail on the namespace is removed (the remove callback), so it
// never pins a namespace. Its accept loop is one goroutine parked on Go's
// netpoller. Anyone in the namespace may connect: at most MaxConns
// requests per listener are answered at once, each within RequestTimeout;
// more connections wait in the kernel's backlog, holding nothing of the
// daemon's.
//
// A received fd is a file of the daemon's own mounts (that is what it is
// for), so it is never wrapped in an os.File nor read (golang/go#21014,
// fs/selfopen_test.go): only statx with AT_STATX_DONT_SYNC (no FUSE
// request), fcntl F_GETFL and unix.Close touch it. Every received fd is
// closed, whatever the answer.
//
// fastpathServer.mu guards its maps; it is taken after Daemon.mu is
// released, never with it held, and no lock is held while talking to a
// client.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/driver"
	"github.com/tundevfs/tundevfs/fastpath"
	"github.com/tundevfs/tundevfs/jails"
)

// fastpathServer holds the listeners.
type fastpathServer struct {
	d *Daemon

	mu        sync.Mutex                      // guards the fields below
	listeners map[uint64]*fastpathListener    // by the namespace's nsfs inode
	off       map[*jails.Jail]bool            // jails created with fastpath=0
	users     map[uint64]map[*jails.Jail]bool // the jails on each listener's namespace
}

// fastpathListener is the socket of one namespace.
type fastpathListener struct {
	ns   uint64
	name string
	ln   *net.UnixListener
	done chan struct{} // closed when the accept loop has returned

	mu    sync.Mutex                 // guards conns
	conns map[*net.UnixConn]struct{} // requests being answered
}

// stop closes the listener, cuts the requests being answered short (a
// client that sends nothing does not hold up the jail's removal) and
// waits for all of it.
func (l *fastpathListener) stop() {
	l.ln.Close()
	l.mu.Lock()
	for c := range l.conns {
		c.SetDeadline(time.Now())
	}
	l.mu.Unlock()
	<-l.done
}

func newFastpathServer(d *Daemon) *fastpathServer {
	return &fastpathServer{
		d:         d,
		listeners: make(map[uint64]*fastpathListener),
		off:       make(map[*jails.Jail]bool),
		users:     make(map[uint64]map[*jails.Jail]bool),
	}
}

// addJail makes sure j's namespace has a listener. A failure is logged,
// not fatal: the device files work without the fast path.
func (s *fastpathServer) addJail(j *jails.Jail, enabled bool) {
	ino := j.Netns().Ino()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !enabled {
		s.off[j] = true
	}
	if s.users[ino] == nil {
		s.users[ino] = make(map[*jails.Jail]bool)
	}
	s.users[ino][j] = true
	if s.listeners[ino] != nil {
		return
	}
	l, err := listenFastpath(j.Netns())
	if err != nil {
		s.d.logger.Printf("jail %s: %v", j.Name(), err)
		return
	}
	s.listeners[ino] = l
	go s.serve(l)
}

// removeJail is the remove callback: the namespace's listener goes with
// its last jail.
func (s *fastpathServer) removeJail(j *jails.Jail) {
	ino := j.Netns().Ino()
	s.mu.Lock()
	delete(s.off, j)
	delete(s.users[ino], j)
	var l *fastpathListener
	if len(s.users[ino]) == 0 {
		delete(s.users, ino)
		l = s.listeners[ino]
		delete(s.listeners, ino)
	}
	s.mu.Unlock()
	if l != nil {
		l.stop()
	}
}

// enabledFor says whether the jail allows the fast path.
func (s *fastpathServer) enabledFor(j *jails.Jail) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.off[j]
}

// listenFastpath binds the first free fast-path name in ns.
func listenFastpath(ns *jails.Netns) (*fastpathListener, error) {
	fd, name := -1, ""
	err := ns.Do(func() error {
		var last error
		for n := 0; n < fastpath.MaxSockets; n++ {
			s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				return fmt.Errorf("socket: %w", err)
			}
			name = fastpath.SocketNameN(n)
			if err := unix.Bind(s, &unix.SockaddrUnix{Name: name}); err != nil {
				unix.Close(s)
				last = err
				if errors.Is(err, unix.EADDRINUSE) {
					continue // another daemon in this namespace
				}
				return fmt.Errorf("bind %s: %w", name, err)
			}
			if err := unix.Listen(s, 64); err != nil {
				unix.Close(s)
				return fmt.Errorf("listen %s: %w", name, err)
			}
			fd = s
			return nil
		}
		return fmt.Errorf("bind %s..%d: %w (too many daemons in this namespace)", fastpath.SocketName, fastpath.MaxSockets-1, last)
	})
	if err != nil {
		return nil, fmt.Errorf("fast path socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("fast path socket %s: %w", name, err)
	}
	return &fastpathListener{ns: ns.Ino(), name: name, ln: ln.(*net.UnixListener), done: make(chan struct{}), conns: make(map[*net.UnixConn]struct{})}, nil
}

// serve accepts until the listener is closed.
func (s *fastpathServer) serve(l *fastpathListener) {
	defer close(l.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, MaxConns)
	for {
		slots <- struct{}{} // freed when a request is answered
		c, err := l.ln.AcceptUnix()
		if err != nil {
			return
		}
		// The deadline before the map: stop's deadline comes after it.
		c.SetDeadline(time.Now().Add(RequestTimeout))
		l.mu.Lock()
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				l.mu.Lock()
				delete(l.conns, c)
				l.mu.Unlock()
				c.Close()
				<-slots
			}()
			s.answer(l, c)
		}()
	}
}

// answer reads one request and answers it.
func (s *fastpathServer) answer(l *fastpathListener, c *net.UnixConn) {
	buf := make([]byte, 64)
	oob := make([]byte, unix.CmsgSpace(8*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return
	}
	var fds []int
	if cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, cm := range cmsgs {
			if got, err := unix.ParseUnixRights(&cm); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	var tunFD int
	var ifname string
	switch {
	case string(buf[:n]) != fastpath.Request:
		err = refuse(unix.EPROTO, "bad request %q (want %q)", buf[:n], fastpath.Request)
	case len(fds) != 1:
		err = refuse(unix.EBADF, "send exactly one fd, the open device file, with SCM_RIGHTS (got %d)", len(fds))
	default:
		tunFD, ifname, err = s.grant(l, fds[0])
	}
	// The received file may be the last reference of a device file: its
	// close is a FUSE release, served by the mount's own goroutines.
	for _, fd := range fds {
		unix.Close(fd)
	}
	if err != nil {
		var r *refusal
		if !errors.As(err, &r) {
			r = &refusal{errno: unix.EIO, msg: err.Error()}
		}
		c.Write([]byte(fmt.Sprintf("err %d %s", int(r.errno), r.msg)))
		return
	}
	_, _, err = c.WriteMsgUnix([]byte("ok "+ifname), unix.UnixRights(tunFD), nil)
	unix.Close(tunFD)
	if err != nil {
		s.d.logger.Printf("fast path %s: send: %v", ifname, err)
	}
}

// refusal is a refused request: an errno and a message for the client.
type refusal struct {
	errno unix.Errno
	msg   string
}

func (r *refusal) Error() string { return r.msg }

func refuse(errno unix.Errno, format string, args ...any) error {
	return &refusal{errno: errno, msg: "fastpath: " + fmt.Sprintf(format, args...)}
}

// grant checks that fd is the open file of a device of one of the
// daemon's mounts, in a jail on l's namespace, opened read-write, and
// switches it to the fast path.
func (s *fastpathServer) grant(l *fastpathListener, fd int) (int, string, error) {
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_DONT_SYNC, unix.STATX_TYPE|unix.STATX_INO, &stx); err != nil {
		return -1, "", refuse(unix.EBADF, "statx of the passed fd: %v", err)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return -1, "", refuse(unix.EBADF, "fcntl of the passed fd: %v", err)
	}
	if stx.Dev_major != 0 || !s.d.ownsConn(stx.Dev_minor) {
		return -1, "", refuse(unix.ENODEV, "the passed fd is not a device file of this daemon's mounts")
	}
	if stx.Mode&unix.S_IFMT != unix.S_IFREG {
		return -1, "", refuse(unix.EINVAL, "the passed fd is not a tun/tap/vmnet device file")
	}
	dev := s.d.devices.ByIno(stx.Ino)
	if dev == nil {
		return -1, "", refuse(unix.ENXIO, "the passed fd is not a live tun/tap/vmnet device (destroyed?)")
	}
	if dev.Jail().Netns().Ino() != l.ns {
		return -1, "", refuse(unix.EXDEV, "%s belongs to jail %s, on another network namespace", dev.DevName(), dev.Jail().Name())
	}
	if fl&unix.O_PATH != 0 || fl&unix.O_ACCMODE != unix.O_RDWR {
		return -1, "", refuse(unix.EACCES, "%s: the device file must be open read-write", dev.DevName())
	}
	if !s.enabledFor(dev.Jail()) {
		return -1, "", refuse(unix.EPERM, "%s: jail %s has fastpath=0", dev.DevName(), dev.Jail().Name())
	}
	// Open is exclusive, and fd is an open read-write file of the node:
	// it is the device's open handle.
	h := dev.OpenHandle()
	if h == nil {
		return -1, "", refuse(unix.EBADF, "%s is not open", dev.DevName())
	}
	tunFD, err := h.FastPath()
	switch {
	case errors.Is(err, driver.ErrFastPathOff):
		return -1, "", refuse(unix.EPERM, "%s: %v", dev.DevName(), driver.ErrFastPathOff)
	case errors.Is(err, driver.ErrGone), errors.Is(err, driver.ErrNotOpen):
		return -1, "", refuse(unix.ENXIO, "%s: %v", dev.DevName(), err)
	case err != nil:
		return -1, "", refuse(unix.EIO, "%v", err)
	}
	return tunFD, dev.Name(), nil
}

// ownsConn says whether one of the daemon's mounts has FUSE connection
// number minor.
func (d *Daemon) ownsConn(minor uint32) bool {
	if minor == 0 {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range d.mounts {
		if m != nil && m.ConnID() == minor {
			return true
		}
	}
	return false
}
