package driver

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/jails"
)

// fakeStack is a Stack in memory, for tests as an ordinary user: an
// interface is a record, and its TUN fd one end of a SOCK_SEQPACKET
// socketpair (packet boundaries kept, pollable, non-blocking), whose other
// end, the peer, plays the kernel: what the device sends is read there,
// and what is written there the device reads. Closing the device's end
// removes the interface, as closing a TUN fd does. (wireguard-go's
// tun/tuntest does the same with channels.)
type fakeStack struct {
	t testing.TB

	mu        sync.Mutex // guards the fields below; a leaf
	nextIndex int
	links     map[int]*fakeLink // every interface ever made, by index
	// fail, if set, is asked before every operation (op is the Links
	// method's name) and its error returned instead.
	fail func(op, name string) error
	// beforeCreate, if set, is called by Create with no lock held before
	// anything else: a test blocks creations in flight there.
	beforeCreate func(name string)
	ns           []*fakeLinks
}

// fakeLink is one interface of the fake stack.
type fakeLink struct {
	Link
	ns        *fakeLinks
	drv       *Driver
	peer      int  // the kernel's end of the socketpair
	mine      int  // the device's end, for gone()
	offload   bool // TUNSETOFFLOAD on
	multicast bool
	flags     int // SetFlags' result
	addrs     int // addresses, removed by DownAndPurge
	deleted   bool
}

// fakeLinks is one namespace of the fake stack.
type fakeLinks struct {
	s      *fakeStack
	jail   *jails.Jail
	ev     LinkEvents // the watch, nil when none
	closed bool       // guarded by s.mu, like ev
}

func newFakeStack(t testing.TB) *fakeStack {
	s := &fakeStack{t: t, nextIndex: 100, links: make(map[int]*fakeLink)}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, l := range s.links {
			unix.Close(l.peer)
		}
	})
	return s
}

func (s *fakeStack) failLocked(op, name string) error {
	if s.fail != nil {
		return s.fail(op, name)
	}
	return nil
}

// Attach makes the namespace of j.
func (s *fakeStack) Attach(j *jails.Jail) (Links, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failLocked("Attach", j.Name()); err != nil {
		return nil, err
	}
	l := &fakeLinks{s: s, jail: j}
	s.ns = append(s.ns, l)
	return l, nil
}

// gone reports whether the device's end of l's socketpair is closed: the
// interface is no more.
func (l *fakeLink) gone() bool {
	if l.deleted {
		return true
	}
	pfd := []unix.PollFd{{Fd: int32(l.peer), Events: unix.POLLRDHUP}}
	n, err := unix.Poll(pfd, 0)
	return err == nil && n > 0 && pfd[0].Revents&(unix.POLLHUP|unix.POLLRDHUP) != 0
}

// liveLocked returns the live interface of namespace ns with index, or
// name if index is 0.
func (s *fakeStack) liveLocked(ns *fakeLinks, index int, name string) (*fakeLink, error) {
	for _, l := range s.links {
		// A jail's namespace is the same for every manager that
		// attaches to it (a restored one too).
		if l.ns.jail != ns.jail || l.gone() {
			continue
		}
		if (index != 0 && l.Index == index) || (index == 0 && l.Name == name) {
			return l, nil
		}
	}
	return nil, fmt.Errorf("find link %d %q: %w", index, name, unix.ENODEV)
}

func (f *fakeLinks) Create(drv *Driver, name string, mac net.HardwareAddr) (*os.File, int, error) {
	s := f.s
	s.mu.Lock()
	hook := s.beforeCreate
	s.mu.Unlock()
	if hook != nil {
		hook(name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failLocked("Create", name); err != nil {
		return nil, 0, err
	}
	if _, err := s.liveLocked(f, 0, name); err == nil {
		return nil, 0, fmt.Errorf("create %s: %w", name, ErrNameTaken)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("create %s: socketpair: %w", name, err)
	}
	s.nextIndex++
	l := &fakeLink{
		Link: Link{Index: s.nextIndex, Name: name, MTU: 1500, HardwareAddr: mac},
		ns:   f, drv: drv, peer: fds[1], mine: fds[0], flags: unix.IFF_MULTICAST,
	}
	s.links[l.Index] = l
	return os.NewFile(uintptr(fds[0]), name), l.Index, nil
}

// op finds the live interface index for op.
func (f *fakeLinks) op(op string, index int, fn func(l *fakeLink) error) error {
	s := f.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failLocked(op, fmt.Sprint(index)); err != nil {
		return err
	}
	l, err := s.liveLocked(f, index, "")
	if err != nil {
		return err
	}
	return fn(l)
}

func (f *fakeLinks) Link(index int) (out Link, err error) {
	err = f.op("Link", index, func(l *fakeLink) error {
		out = l.Link
		out.HardwareAddr = append(net.HardwareAddr(nil), l.HardwareAddr...)
		return nil
	})
	return out, err
}

func (f *fakeLinks) LinkByName(name string) (Link, error) {
	s := f.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failLocked("LinkByName", name); err != nil {
		return Link{}, err
	}
	l, err := s.liveLocked(f, 0, name)
	if err != nil {
		return Link{}, err
	}
	return l.Link, nil
}

func (f *fakeLinks) SetUp(index int) error {
	return f.op("SetUp", index, func(l *fakeLink) error { l.Up = true; return nil })
}

func (f *fakeLinks) DownAndPurge(index int) error {
	return f.op("DownAndPurge", index, func(l *fakeLink) error { l.Up, l.addrs = false, 0; return nil })
}

func (f *fakeLinks) SetMTU(index, mtu int) error {
	return f.op("SetMTU", index, func(l *fakeLink) error { l.MTU = mtu; return nil })
}

func (f *fakeLinks) SetMulticast(index int, on bool) error {
	return f.op("SetMulticast", index, func(l *fakeLink) error { l.multicast = on; return nil })
}

func (f *fakeLinks) SetFlags(name string, mask, value int) error {
	s := f.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failLocked("SetFlags", name); err != nil {
		return err
	}
	l, err := s.liveLocked(f, 0, name)
	if err != nil {
		return err
	}
	l.flags = l.flags&^mask | value&mask
	l.Up = l.flags&unix.IFF_UP != 0
	return nil
}

func (f *fakeLinks) SetOffload(fd int, on bool) error {
	s := f.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failLocked("SetOffload", fmt.Sprint(fd)); err != nil {
		return err
	}
	for _, l := range s.links {
		if l.ns.jail == f.jail && l.mine == fd && !l.gone() {
			l.offload = on
			return nil
		}
	}
	// After a fast path the daemon's fd is a duplicate: any fd of a
	// live tap of the namespace will do.
	return nil
}

func (f *fakeLinks) Delete(index int) error {
	return f.op("Delete", index, func(l *fakeLink) error { l.deleted = true; return nil })
}

func (f *fakeLinks) Watch(ev LinkEvents) (func(), error) {
	s := f.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failLocked("Watch", f.jail.Name()); err != nil {
		return nil, err
	}
	f.ev = ev
	return func() {
		s.mu.Lock()
		f.ev = nil
		s.mu.Unlock()
	}, nil
}

func (f *fakeLinks) Close() error {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	if f.closed {
		f.s.t.Errorf("fake links of %s closed twice", f.jail.Name())
	}
	f.closed = true
	return nil
}

// link returns the interface of d.
func (s *fakeStack) link(d *Device) *fakeLink {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.links[d.ifindex]
}

// peer is the kernel's end of d's fd.
func (s *fakeStack) peer(d *Device) int { return s.link(d).peer }

// rename renames d's interface as `ip link set NAME name TO` would, and
// tells the watch of its namespace, if there is one, as the kernel does.
func (s *fakeStack) rename(d *Device, to string) {
	s.mu.Lock()
	l := s.links[d.ifindex]
	l.Name = to
	var evs []LinkEvents
	for _, ns := range s.ns {
		if ns.jail == l.ns.jail && ns.ev != nil {
			evs = append(evs, ns.ev)
		}
	}
	s.mu.Unlock()
	for _, ev := range evs {
		ev.Renamed(l.Index, to)
	}
}

// watching returns the LinkEvents of d's namespace.
func (s *fakeStack) watching(d *Device) LinkEvents {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.links[d.ifindex].ns.ev
}

// setFail makes every operation consult fn.
func (s *fakeStack) setFail(fn func(op, name string) error) {
	s.mu.Lock()
	s.fail = fn
	s.mu.Unlock()
}

// setBeforeCreate makes every Create call fn first, with no lock held.
func (s *fakeStack) setBeforeCreate(fn func(name string)) {
	s.mu.Lock()
	s.beforeCreate = fn
	s.mu.Unlock()
}

// errFake is what a failing fake operation returns.
var errFake = errors.New("fake failure")

// fakeEnv is a manager on a fake stack with a host jail.
type fakeEnv struct {
	t     testing.TB
	stack *fakeStack
	reg   *jails.Registry
	m     *Manager
	host  *jails.Jail
	log   *logBuf
}

// logBuf collects the manager's log.
type logBuf struct {
	mu  sync.Mutex
	buf []byte
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

func newFakeEnv(t testing.TB) *fakeEnv {
	t.Helper()
	host, err := jails.CurrentNetns()
	if err != nil {
		t.Fatal(err)
	}
	e := &fakeEnv{t: t, stack: newFakeStack(t), log: new(logBuf)}
	e.reg = jails.NewRegistry(host, jails.Settings{})
	e.m = newManager(e.reg, log.New(io.MultiWriter(e.log), "", 0), e.stack)
	e.host = e.reg.Host()
	t.Cleanup(func() {
		e.reg.Shutdown()
		e.m.Close()
	})
	return e
}

// jail makes a jail sharing the host's namespace (a jail without vnet),
// or with vnet an identity of its own is not needed: units are per
// namespace, which the tests of unit sharing rely on.
func (e *fakeEnv) jail(name string) *jails.Jail {
	e.t.Helper()
	return e.jailWith(name, jails.Settings{})
}

// jailWith is jail with the given settings.
func (e *fakeEnv) jailWith(name string, set jails.Settings) *jails.Jail {
	e.t.Helper()
	ns, err := e.host.Netns().Dup(name)
	if err != nil {
		e.t.Fatal(err)
	}
	j, err := e.reg.Create(jails.Options{Name: name, Netns: ns, Settings: set})
	if err != nil {
		e.t.Fatal(err)
	}
	return j
}

// create makes a device by ifconfig create in the host jail.
func (e *fakeEnv) create(drv *Driver, unit int) *Device {
	e.t.Helper()
	d, err := e.m.Create(e.host, drv, unit, IfconfigCreate, Owner{Mode: 0o600})
	if err != nil {
		e.t.Fatalf("create %s%d: %v", drv.Name, unit, err)
	}
	return d
}

// open makes a device and opens it; the handle is closed at cleanup.
func (e *fakeEnv) open(drv *Driver) (*Device, *Handle) {
	e.t.Helper()
	d := e.create(drv, -1)
	h, err := d.Open(1234)
	if err != nil {
		e.t.Fatalf("open %s: %v", d.DevName(), err)
	}
	e.t.Cleanup(h.Close)
	return d, h
}
