package driver

import (
	"sync"
	"time"
)

// Freezing for a planned restart (issue 13). Before the serving process
// exits so that a new one takes over, it stops moving packets: no packet
// is read from a device's fd that the process might not hand on. Once
// Freeze returns, no read, write or poll of a device file is under way,
// and every later one fails with ErrFrozen at its start or where it would
// block, having moved nothing: the caller leaves its request unanswered
// and the kernel resends it to the next server.

// freezer is the Manager's switch; its zero value is thawed.
type freezer struct {
	once sync.Once
	ch   chan struct{} // closed by Freeze
	mu   sync.Mutex    // guards ch's creation
}

func (f *freezer) chanOf() chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ch == nil {
		f.ch = make(chan struct{})
	}
	return f.ch
}

func (f *freezer) frozen() bool {
	select {
	case <-f.chanOf():
		return true
	default:
		return false
	}
}

// Freeze stops every device's packet I/O for good and waits until none is
// in flight (see above). It is meant for a process about to exit.
func (m *Manager) Freeze() {
	m.freeze.once.Do(func() { close(m.freeze.chanOf()) })
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

// Linger gives the interfaces of a dead server (its creations it never
// saved) until d from now to go: a process killed with a thread still in
// the kernel keeps its fds, and so those interfaces, until that thread
// returns. Until then a creation that finds its name taken tries again.
func (m *Manager) Linger(d time.Duration) {
	m.linger.Store(time.Now().Add(d).UnixNano())
}

func (m *Manager) lingerUntil() time.Time { return time.Unix(0, m.linger.Load()) }
