package driver

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/jails"
)

// Freezing for a planned restart (issue 13). Before the serving process
// exits so that a new one takes over, it stops moving packets: no packet
// is read from a device's fd that the process might not hand on. Once
// Freeze returns, no read, write or poll of a device file is under way,
// and every later one fails with ErrFrozen at its start or where it would
// block, having moved nothing: the caller leaves its request unanswered
// and the kernel resends it to the next server.

// freezer is the Manager's switch, made thawed by newManager. ch is set
// once there and only closed after, so the data path reads it without a
// lock.
type freezer struct {
	once sync.Once
	ch   chan struct{} // closed by Freeze
}

func (f *freezer) frozen() bool {
	select {
	case <-f.ch:
		return true
	default:
		return false
	}
}

// Freeze stops every device's packet I/O for good and waits until none is
// in flight (see above). It is meant for a process about to exit.
func (m *Manager) Freeze() {
	m.freeze.once.Do(func() { close(m.freeze.ch) })
	for _, d := range m.All() {
		d.mu.Lock()
		for d.busy > 0 {
			d.idle.Wait()
		}
		d.mu.Unlock()
	}
}

// SetHeldElsewhere says that another process keeps a duplicate of every
// device's TUN fd (the holder, issue 13): closing the daemon's own would
// not end an interface, so destroy deletes it over netlink, as it does
// for a device whose fd the fast path handed out.
func (m *Manager) SetHeldElsewhere() { m.heldElsewhere.Store(true) }

// SetOnNewFile installs fn, called with each new device's TUN fd (its
// jail and inode number) right after the interface is made, before the
// device is registered. fn must not keep f (duplicate it).
func (m *Manager) SetOnNewFile(fn func(j *jails.Jail, ino uint64, f *os.File)) {
	m.onNewFile.Store(&fn)
}

// DeleteOrphan ends the interface of f, a TUN fd of jail j that a dead
// server made and never saved as a device: the fd proves the interface is
// the daemon's. Another copy of the fd may live on in the dead process
// for a while (a thread of it still in the kernel), so closing f alone
// would not end it: it is deleted over netlink. f is closed.
func (m *Manager) DeleteOrphan(j *jails.Jail, f *os.File) error {
	defer f.Close()
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(int(f.Fd()), unix.TUNGETIFF, ifr); err != nil {
		if errors.Is(err, unix.EBADFD) {
			return nil // already gone
		}
		return fmt.Errorf("orphan interface: %w", err)
	}
	m.mu.Lock()
	js, err := m.jailStateLocked(j)
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("orphan %s in jail %s: %w", ifr.Name(), j.Name(), err)
	}
	l, err := js.links.LinkByName(ifr.Name())
	if err != nil {
		return fmt.Errorf("orphan %s: %w", ifr.Name(), err)
	}
	return js.links.Delete(l.Index)
}
