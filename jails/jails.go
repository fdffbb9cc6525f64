// Package jails keeps the daemon's jails: named network namespaces, each
// with its own devices, in the sense of FreeBSD's prisons with VNET.
//
// Contract:
//   - Jail 0 is "host", the namespace the daemon runs in. It is removed only
//     when the daemon stops, last of all.
//   - A jail is alive, then dying, then gone. Remove marks it dying, runs every
//     registered remove callback (FreeBSD's OSD slot with PR_METHOD_REMOVE) in
//     registration order, waits until every reference taken with Hold is
//     released, closes the jail's namespace handle and forgets the jail.
//   - Remove returns once the jail is gone, also when another Remove of the
//     same jail was already under way (it waits for that one).
//   - Hold fails with ErrDying on a jail that is no longer alive, so nothing
//     new can attach to a jail on its way out.
//   - A jail's Settings (settings.go) are given at creation and never
//     change; Settings() hands out a copy.
//
// Lock order: Registry.mu, then Jail.mu. Remove callbacks run with no lock
// held and may call back into the registry.
package jails

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// State is where a jail is in its life.
type State int

// The states of a jail.
const (
	Alive State = iota
	Dying
	Gone
)

func (s State) String() string {
	switch s {
	case Alive:
		return "alive"
	case Dying:
		return "dying"
	default:
		return "gone"
	}
}

// HostName is the name of jail 0.
const HostName = "host"

// Sentinel errors; wrap them with the operation that failed.
var (
	ErrExists   = errors.New("jail name in use")
	ErrNotFound = errors.New("no such jail")
	ErrDying    = errors.New("jail is dying")
	ErrNotNetns = errors.New("not a network namespace")
	ErrHost     = errors.New("the host jail is removed only when the daemon stops")
	ErrBadName  = errors.New("bad jail name")
	ErrRegistry = errors.New("jail registry is shut down")
)

// RemoveFunc is a remove callback: it must release everything its
// subsystem holds in the jail (FreeBSD: PR_METHOD_REMOVE).
type RemoveFunc func(j *Jail)

// Options describe a jail to create.
type Options struct {
	Name    string
	Netns   *Netns // the jail takes ownership
	Persist bool
	// Settings are the jail's parameters (settings.go), kept as given.
	Settings Settings
}

// Jail is one jail.
type Jail struct {
	id       int
	name     string
	netns    *Netns
	settings Settings // fixed at creation

	mu      sync.Mutex // guards the fields below
	state   State
	persist bool
	holds   int           // references from devices and mounts
	drained chan struct{} // closed when holds reaches 0 while dying
	gone    chan struct{} // closed once removal is complete (made with the jail)
}

// ID is the jail's jid; the host jail is 0.
func (j *Jail) ID() int { return j.id }

// Name is the jail's name.
func (j *Jail) Name() string { return j.name }

// Netns is the jail's network namespace handle. Callers must Hold the jail
// while they use it.
func (j *Jail) Netns() *Netns { return j.netns }

// Settings returns the jail's settings, as given at creation.
func (j *Jail) Settings() Settings { return j.settings.clone() }

// IsHost says whether this is jail 0.
func (j *Jail) IsHost() bool { return j.id == 0 }

// State returns the jail's current state.
func (j *Jail) State() State {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.state
}

// Persist says whether the jail outlives its last mount.
func (j *Jail) Persist() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.persist
}

// Holds is the number of references on the jail.
func (j *Jail) Holds() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.holds
}

// Hold takes a reference on an alive jail.
func (j *Jail) Hold() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.state != Alive {
		return fmt.Errorf("hold jail %s: %w", j.name, ErrDying)
	}
	j.holds++
	return nil
}

// Release gives back a reference taken with Hold.
func (j *Jail) Release() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.holds <= 0 {
		panic("jails: Release without Hold on " + j.name)
	}
	j.holds--
	if j.holds == 0 && j.state == Dying && j.drained != nil {
		close(j.drained)
		j.drained = nil
	}
}

// Registry holds every jail of the daemon.
type Registry struct {
	mu       sync.Mutex // guards the fields below
	jails    map[string]*Jail
	nextID   int
	removers []remover
	nextRem  int
	closed   bool
}

type remover struct {
	id int
	fn RemoveFunc
}

// NewRegistry makes a registry whose host jail is the given namespace,
// with the given settings.
func NewRegistry(host *Netns, hostSettings Settings) *Registry {
	r := &Registry{jails: make(map[string]*Jail), nextID: 1}
	r.jails[HostName] = &Jail{id: 0, name: HostName, netns: host, persist: true, settings: hostSettings.clone(), gone: make(chan struct{})}
	return r
}

// RegisterRemove adds a remove callback, run for every jail removed from now
// on; the returned function deregisters it (FreeBSD: osd_jail_register and
// osd_jail_deregister).
func (r *Registry) RegisterRemove(fn RemoveFunc) (deregister func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextRem++
	id := r.nextRem
	r.removers = append(r.removers, remover{id: id, fn: fn})
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for i, rm := range r.removers {
			if rm.id == id {
				r.removers = append(r.removers[:i], r.removers[i+1:]...)
				return
			}
		}
	}
}

// Host returns jail 0.
func (r *Registry) Host() *Jail {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.jails[HostName]
}

// Get finds an alive or dying jail by name or jid.
func (r *Registry) Get(name string) (*Jail, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if j, ok := r.jails[name]; ok {
		return j, nil
	}
	for _, j := range r.jails {
		if fmt.Sprint(j.id) == name {
			return j, nil
		}
	}
	return nil, fmt.Errorf("jail %s: %w", name, ErrNotFound)
}

// List returns every jail, ordered by jid.
func (r *Registry) List() []*Jail {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Jail, 0, len(r.jails))
	for _, j := range r.jails {
		out = append(out, j)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].id < out[b].id })
	return out
}

// ValidName reports whether name can name a jail: like jail(8), anything
// printable without dots or slashes, and not a bare number (that is a jid).
func ValidName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	digits := true
	for _, c := range name {
		if c <= ' ' || c > '~' || c == '.' || c == '/' {
			return false
		}
		if c < '0' || c > '9' {
			digits = false
		}
	}
	return !digits
}

// Create adds an alive jail. On error the namespace in o is closed, so the
// caller loses nothing.
func (r *Registry) Create(o Options) (*Jail, error) {
	fail := func(err error) (*Jail, error) {
		if o.Netns != nil {
			o.Netns.Close()
		}
		return nil, err
	}
	if !ValidName(o.Name) {
		return fail(fmt.Errorf("create jail %q: %w", o.Name, ErrBadName))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fail(fmt.Errorf("create jail %s: %w", o.Name, ErrRegistry))
	}
	if _, ok := r.jails[o.Name]; ok {
		return fail(fmt.Errorf("create jail %s: %w", o.Name, ErrExists))
	}
	j := &Jail{
		id:       r.nextID,
		name:     o.Name,
		netns:    o.Netns,
		persist:  o.Persist,
		settings: o.Settings.clone(),
		gone:     make(chan struct{}),
	}
	r.nextID++
	r.jails[o.Name] = j
	return j, nil
}

// Remove takes a jail through dying to gone: remove callbacks run, every
// hold is released, the namespace handle is closed. Removing the host jail
// is refused unless the registry is shutting down.
func (r *Registry) Remove(name string) error {
	r.mu.Lock()
	j, ok := r.jails[name]
	if !ok {
		r.mu.Unlock()
		return fmt.Errorf("remove jail %s: %w", name, ErrNotFound)
	}
	if j.IsHost() && !r.closed {
		r.mu.Unlock()
		return fmt.Errorf("remove jail %s: %w", name, ErrHost)
	}
	removers := append([]remover(nil), r.removers...)
	r.mu.Unlock()
	return r.remove(j, removers)
}

func (r *Registry) remove(j *Jail, removers []remover) error {
	j.mu.Lock()
	if j.state != Alive {
		// Someone else is removing it; wait until they are done, so
		// that every Remove returns with the jail gone.
		j.mu.Unlock()
		<-j.gone
		return nil
	}
	j.state = Dying
	j.drained = make(chan struct{})
	drained := j.drained
	if j.holds == 0 {
		close(j.drained)
		j.drained = nil
	}
	j.mu.Unlock()

	for _, rm := range removers {
		rm.fn(j)
	}
	<-drained

	j.mu.Lock()
	j.state = Gone
	j.mu.Unlock()
	err := j.netns.Close()

	r.mu.Lock()
	if r.jails[j.name] == j {
		delete(r.jails, j.name)
	}
	r.mu.Unlock()
	close(j.gone)
	if err != nil {
		return fmt.Errorf("remove jail %s: close netns: %w", j.name, err)
	}
	return nil
}

// Shutdown removes every jail, host last, and refuses new ones (FreeBSD:
// tun_uninit). Callers deregister their remove callbacks afterwards.
func (r *Registry) Shutdown() error {
	r.mu.Lock()
	r.closed = true
	var order []*Jail
	for _, j := range r.jails {
		order = append(order, j)
	}
	removers := append([]remover(nil), r.removers...)
	r.mu.Unlock()
	sort.Slice(order, func(a, b int) bool { return order[a].id > order[b].id })
	var errs []error
	for _, j := range order {
		if err := r.remove(j, removers); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
