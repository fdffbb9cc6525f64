package driver

import (
	"errors"
	"fmt"
	"log"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tundevfs/tundevfs/jails"
)

// Origin says which creation path made a device.
type Origin int

// The two creation paths of SPEC §1.
const (
	// DevfsClone is a clone on lookup: the device comes back with one
	// RefClone reference for the invoker to give up.
	DevfsClone Origin = iota
	// IfconfigCreate is `ifconfig tunN create`: no extra reference.
	IfconfigCreate
)

// EventKind says what happened to a device.
type EventKind int

// Device events.
const (
	Created EventKind = iota
	Destroyed
	// Renamed: the interface got another name (FreeBSD's tunrename()).
	Renamed
)

// Event tells listeners about a device of a jail.
type Event struct {
	Kind   EventKind
	Device *Device
	// Name is the device's node name and Alias the interface name when it
	// differs (after a rename); for Renamed, OldAlias is the name it had
	// before when that differed from Name. Empty when there is none.
	Name     string
	Alias    string
	OldAlias string
}

// Listener receives events. It runs with no lock held and must not block
// for long.
type Listener func(Event)

// Owner is what a new device's node carries.
type Owner struct {
	UID, GID uint32
	Mode     uint32
}

// jailState is the driver's state in one jail: FreeBSD's per-VNET cloners.
// Manager.mu guards its fields after creation.
type jailState struct {
	jail     *jails.Jail
	links    Links        // the jail's namespace (stack.go); nil once detached
	watch    *renameWatch // follows interface renames in the namespace; nil once detached
	detached bool
	devices  map[string]*Device // by node name (tun0)
	// byIfName holds the live devices by interface name, the node name
	// until a rename. Device.indexedName is each one's key, kept up to date
	// by newDevice, Destroy and Device.syncName, so a name that is no
	// device's (the bare "tun" of every clone) is a map miss, not a scan.
	byIfName map[string]*Device
	// byIndex holds the live devices by ifindex, which never changes, for
	// the rename watcher, which looks up every RTM_NEWLINK of the
	// namespace (each clone makes some).
	byIndex map[int]*Device
	// settling holds the node names whose device is being made (create)
	// or whose interface is going away (Destroy, after the device left
	// devices); the channel is closed when that is over, so that a racing
	// creation of the same unit waits for the outcome instead of failing.
	settling map[string]chan struct{}
	limit    int
}

type unitKey struct {
	drv   *Driver
	netns uint64
}

// Manager owns every device of the daemon.
type Manager struct {
	knobs   Knobs
	nextIno atomic.Uint64
	logger  *log.Logger
	stack   Stack
	debug   atomic.Int32 // TUNSDEBUG level, one for all devices (tundebug)

	mu        sync.Mutex // guards the fields below
	units     map[unitKey]*unitSet
	jails     map[*jails.Jail]*jailState
	all       map[*Device]struct{} // every device not yet freed
	listeners map[*jails.Jail]map[int]Listener
	nextLis   int

	deregister func()
}

// NewManager makes a manager and registers its jail remove callback with
// reg. Call Close to deregister it.
func NewManager(reg *jails.Registry, logger *log.Logger) *Manager {
	return newManager(reg, logger, LinuxStack{})
}

// newManager is NewManager on stack.
func newManager(reg *jails.Registry, logger *log.Logger, stack Stack) *Manager {
	if logger == nil {
		logger = log.Default()
	}
	m := &Manager{
		logger:    logger,
		stack:     stack,
		units:     make(map[unitKey]*unitSet),
		jails:     make(map[*jails.Jail]*jailState),
		all:       make(map[*Device]struct{}),
		listeners: make(map[*jails.Jail]map[int]Listener),
	}
	m.knobs.init()
	// Inode numbers: 1 is the root, and small numbers are left to the
	// filesystem's own nodes.
	m.nextIno.Store(1 << 20)
	m.deregister = reg.RegisterRemove(m.DetachJail)
	return m
}

// Close deregisters the remove callback (tun_uninit's osd_jail_deregister).
// Jails must have been removed first.
func (m *Manager) Close() {
	m.deregister()
}

// Knobs returns the sysctl knobs.
func (m *Manager) Knobs() *Knobs { return &m.knobs }

func (m *Manager) logf(format string, args ...any) {
	m.logger.Printf(format, args...)
}

// SetLimit sets the jail's device limit (0: DefaultDeviceLimit).
func (m *Manager) SetLimit(j *jails.Jail, limit int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	js, err := m.jailStateLocked(j)
	if err != nil {
		return err
	}
	if limit <= 0 {
		limit = DefaultDeviceLimit
	}
	js.limit = limit
	return nil
}

// jailStateLocked returns the driver's state for j, creating it on first
// use. Callers hold m.mu.
func (m *Manager) jailStateLocked(j *jails.Jail) (*jailState, error) {
	if js, ok := m.jails[j]; ok {
		if js.detached {
			return nil, ErrDetached
		}
		return js, nil
	}
	if j.State() != jails.Alive {
		return nil, ErrDetached
	}
	links, err := m.stack.Attach(j)
	if err != nil {
		return nil, err
	}
	js := &jailState{
		jail: j, links: links, devices: make(map[string]*Device), byIfName: make(map[string]*Device),
		byIndex: make(map[int]*Device), settling: make(map[string]chan struct{}), limit: DefaultDeviceLimit,
	}
	if js.watch, err = startRenameWatch(m, js); err != nil {
		links.Close()
		return nil, err
	}
	m.jails[j] = js
	return js, nil
}

// Subscribe registers fn for the events of jail j; a nil j means every
// jail's (the per-netns mount, fs/pernetns.go).
func (m *Manager) Subscribe(j *jails.Jail, fn Listener) (unsubscribe func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nextLis++
	id := m.nextLis
	if m.listeners[j] == nil {
		m.listeners[j] = make(map[int]Listener)
	}
	m.listeners[j][id] = fn
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.listeners[j], id)
		if len(m.listeners[j]) == 0 {
			delete(m.listeners, j)
		}
	}
}

func (m *Manager) emit(j *jails.Jail, ev Event) {
	m.mu.Lock()
	var fns []Listener
	for _, fn := range m.listeners[j] {
		fns = append(fns, fn)
	}
	for _, fn := range m.listeners[nil] {
		fns = append(fns, fn)
	}
	m.mu.Unlock()
	for _, fn := range fns {
		fn(ev)
	}
}

// Lookup finds a live device of jail j by node name or interface name, the
// name of an alias; a Reserved name is no alias.
func (m *Manager) Lookup(j *jails.Jail, name string) *Device {
	return m.lookup(j, name, false)
}

// lookup is Lookup; with reserved, interface names that may not be
// aliases count too.
func (m *Manager) lookup(j *jails.Jail, name string, reserved bool) *Device {
	if !reserved && ByName(name) != nil {
		return nil // the hot path of every clone: no map, no lock
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	js, ok := m.jails[j]
	if !ok || js.detached {
		return nil
	}
	if d, ok := js.devices[name]; ok {
		return d
	}
	// The name is recorded before the index follows it (syncName): a
	// device caught in between answers by its recorded name, as it would
	// to a scan.
	if !reserved && reservedNames[name] {
		return nil
	}
	if d, ok := js.byIfName[name]; ok && d.Name() == name {
		return d
	}
	return nil
}

// indexNameLocked files d in js.byIfName under its current interface name,
// and no longer under the name it had. Callers hold m.mu.
func (m *Manager) indexNameLocked(js *jailState, d *Device) {
	m.unindexNameLocked(js, d)
	name := d.Name()
	js.byIfName[name] = d
	d.indexedName = name
}

// unindexNameLocked takes d out of js.byIfName. Callers hold m.mu.
func (m *Manager) unindexNameLocked(js *jailState, d *Device) {
	if d.indexedName != "" && js.byIfName[d.indexedName] == d {
		delete(js.byIfName, d.indexedName)
	}
	d.indexedName = ""
}

// renamed brings the interface-name index up to date after d's name
// changed, if d is still one of its jail's live devices.
func (m *Manager) renamed(d *Device) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if js := m.jails[d.jail]; js != nil && js == d.js && js.devices[d.DevName()] == d {
		m.indexNameLocked(js, d)
	}
}

// Devices returns the live devices of jail j ordered by driver and unit.
func (m *Manager) Devices(j *jails.Jail) []*Device {
	m.mu.Lock()
	js, ok := m.jails[j]
	var out []*Device
	if ok {
		out = make([]*Device, 0, len(js.devices))
		for _, d := range js.devices {
			out = append(out, d)
		}
	}
	m.mu.Unlock()
	sortDevices(out)
	return out
}

// All returns every device not yet freed, live or destroyed but still
// referenced, ordered by jail, driver and unit.
func (m *Manager) All() []*Device {
	m.mu.Lock()
	out := make([]*Device, 0, len(m.all))
	for d := range m.all {
		out = append(out, d)
	}
	m.mu.Unlock()
	sortDevices(out)
	return out
}

func sortDevices(ds []*Device) {
	sort.Slice(ds, func(a, b int) bool {
		x, y := ds[a], ds[b]
		if x.jail.ID() != y.jail.ID() {
			return x.jail.ID() < y.jail.ID()
		}
		if x.drv != y.drv {
			return x.drv.Name < y.drv.Name
		}
		return x.ino < y.ino
	})
}

// UnitsInUse is the number of allocated units, summed over drivers and
// namespaces.
func (m *Manager) UnitsInUse() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, u := range m.units {
		n += u.n
	}
	return n
}

// Create makes a device of drv in jail j: unit -1 takes the lowest free
// unit whose name is not taken, any other unit exactly that one. With
// DevfsClone the device comes back holding one RefClone reference. A unit
// that a racing creation is making is waited for: a devfs clone then gets
// the device that won, as a lookup would have, and ifconfig create
// ErrExists; a unit another jail in the same namespace holds is ErrExists.
func (m *Manager) Create(j *jails.Jail, drv *Driver, unit int, origin Origin, owner Owner) (*Device, error) {
	if unit > MaxUnit || unit < -1 {
		return nil, fmt.Errorf("create %s%d: %w", drv.Name, unit, ErrUnitRange)
	}
	if err := j.Hold(); err != nil {
		return nil, fmt.Errorf("create %s: %w", drv.Name, ErrDetached)
	}
	d, made, err := m.create(j, drv, unit, origin, owner)
	if err != nil || !made {
		// A device that won a race holds its own hold on the jail.
		j.Release()
		return d, err
	}
	m.emit(j, Event{Kind: Created, Device: d, Name: d.DevName()})
	return d, nil
}

// create makes the device, or for a devfs clone of a unit that a racing
// creation made first returns that one (made false).
func (m *Manager) create(j *jails.Jail, drv *Driver, unit int, origin Origin, owner Owner) (d *Device, made bool, err error) {
	what := drv.Name
	if unit >= 0 {
		what = drv.UnitName(unit)
	}
	from := 0
	for {
		m.mu.Lock()
		js, err := m.jailStateLocked(j)
		if err != nil {
			m.mu.Unlock()
			return nil, false, fmt.Errorf("create %s in jail %s: %w", what, j.Name(), err)
		}
		key := unitKey{drv, j.Netns().Ino()}
		us := m.units[key]
		if us == nil {
			us = new(unitSet)
			m.units[key] = us
		}
		u := unit
		if u >= 0 {
			name := drv.UnitName(u)
			if d := js.devices[name]; d != nil {
				// A racing creation won: a devfs clone gets its
				// device, as a lookup would have.
				won := origin == DevfsClone && d.refIfAlive(RefClone)
				m.mu.Unlock()
				if won {
					return d, false, nil
				}
				return nil, false, fmt.Errorf("create %s in jail %s: %w", what, j.Name(), ErrExists)
			}
			if ch := js.settling[name]; ch != nil {
				// Being made or destroyed right now: wait for the
				// outcome and look again.
				m.mu.Unlock()
				<-ch
				continue
			}
		}
		if len(js.devices) >= js.limit {
			m.mu.Unlock()
			return nil, false, fmt.Errorf("create %s in jail %s: %w (%d devices)", what, j.Name(), ErrLimit, js.limit)
		}
		if u < 0 {
			u = us.lowestFreeFrom(from)
			if u < 0 {
				m.mu.Unlock()
				return nil, false, fmt.Errorf("create %s in jail %s: %w", what, j.Name(), ErrNoUnits)
			}
		} else if us.inUse(u) {
			// Another jail in the same namespace has the unit.
			m.mu.Unlock()
			return nil, false, fmt.Errorf("create %s in jail %s: %w (another jail sharing the namespace has it)", what, j.Name(), ErrExists)
		}
		us.set(u)
		name := drv.UnitName(u)
		settled := make(chan struct{})
		js.settling[name] = settled
		m.mu.Unlock()

		d, err = m.newDevice(j, js, drv, u, origin, owner)
		m.mu.Lock()
		delete(js.settling, name)
		close(settled)
		if err != nil {
			us.clear(u)
		}
		m.mu.Unlock()
		if err == nil {
			return d, true, nil
		}
		if unit < 0 && errors.Is(err, ErrNameTaken) {
			// A foreign interface holds the name: skip it, as the bare
			// name never adopts one.
			from = u + 1
			continue
		}
		return nil, false, err
	}
}

// newDevice creates the Linux interface for unit u and registers the
// device. On failure it has closed what it opened; the caller frees u.
func (m *Manager) newDevice(j *jails.Jail, js *jailState, drv *Driver, u int, origin Origin, owner Owner) (*Device, error) {
	name := drv.UnitName(u)
	var mac net.HardwareAddr
	if drv.IsL2() {
		mac = stableMAC(j.Name(), name)
	}
	f, idx, err := js.links.Create(drv, name, mac)
	if err != nil {
		return nil, err
	}
	d := &Device{
		drv:     drv,
		unit:    u,
		ino:     m.nextIno.Add(1),
		jail:    j,
		js:      js,
		m:       m,
		created: time.Now(),
		byFS:    origin == DevfsClone,
		file:    f,
		fd:      int(f.Fd()),
		dying:   make(chan struct{}),
		name:    name,
		ifindex: idx,
		uid:     owner.UID,
		gid:     owner.GID,
		mode:    owner.Mode,
		ready:   make(chan struct{}),
	}
	d.idle = sync.NewCond(&d.mu)
	d.refs[RefNode] = 1
	if origin == DevfsClone {
		d.refs[RefClone] = 1
	}
	m.mu.Lock()
	if js.detached {
		m.mu.Unlock()
		f.Close()
		return nil, fmt.Errorf("create %s in jail %s: %w", name, j.Name(), ErrDetached)
	}
	js.devices[name] = d
	js.byIndex[idx] = d
	m.indexNameLocked(js, d)
	m.all[d] = struct{}{}
	m.mu.Unlock()
	return d, nil
}

// DestroyByName destroys the live device of jail j called name (node or
// interface name): `ifconfig NAME destroy`.
func (m *Manager) DestroyByName(j *jails.Jail, name string) error {
	d := m.Resolve(j, name)
	if d == nil {
		return fmt.Errorf("destroy %s: %w", name, ErrNoDevice)
	}
	return m.Destroy(d)
}

// Destroy destroys a device (tun_destroy): dying, readers woken, in-flight
// operations waited for, node unlisted (the Destroyed event, on which the
// filesystem drops the kernel's entries), fd closed, unit freed, jail
// released. The node goes before the interface, whose teardown is the
// slow part, so that no directory lists a device whose interface is gone.
// Destroying a device that is already dying waits for that destroy.
func (m *Manager) Destroy(d *Device) error {
	d.mu.Lock()
	if d.state != devAlive {
		for d.state == devDying {
			d.idle.Wait()
		}
		d.mu.Unlock()
		return fmt.Errorf("destroy %s: %w", d.DevName(), ErrNoDevice)
	}
	d.state = devDying
	close(d.dying)
	for d.busy > 0 {
		d.idle.Wait()
	}
	h := d.open
	d.mu.Unlock()

	if h != nil {
		h.markClosed()
		h.stopWatch()
		h.notifyPoll() // pollers see the device gone, as readers do
	}
	// Unlist: listeners invalidate the kernel's entries now, while the
	// device is still in devices (dying: lookups find no node, readdir
	// skips it, and nothing waits on it).
	m.emit(d.jail, Event{Kind: Destroyed, Device: d, Name: d.DevName(), Alias: d.alias()})
	name := d.DevName()
	settled := make(chan struct{})
	js := d.js
	m.mu.Lock()
	if js.devices[name] == d {
		delete(js.devices, name)
		if js.byIndex[d.ifindex] == d {
			delete(js.byIndex, d.ifindex)
		}
		m.unindexNameLocked(js, d)
	}
	js.settling[name] = settled
	m.mu.Unlock()

	d.unregisterHanded() // a handed fd must not keep the interface
	err := d.closeFile() // the interface goes

	m.mu.Lock()
	m.units[unitKey{d.drv, d.jail.Netns().Ino()}].clear(d.unit)
	if js.settling[name] == settled {
		delete(js.settling, name)
	}
	close(settled)
	m.mu.Unlock()

	d.mu.Lock()
	d.state = devDead
	d.idle.Broadcast()
	d.mu.Unlock()
	d.jail.Release()
	d.Rel(RefNode)
	if err != nil {
		return fmt.Errorf("destroy %s: close: %w", d.DevName(), err)
	}
	return nil
}

// forget drops a destroyed device whose last reference is gone.
func (m *Manager) forget(d *Device) {
	m.mu.Lock()
	delete(m.all, d)
	m.mu.Unlock()
}

// DetachJail is the jail remove callback (FreeBSD's tuntap_prison_remove):
// no more clones in j, and every device cloned there is destroyed, open or
// busy ones too, so nothing the daemon holds pins the jail's namespace.
func (m *Manager) DetachJail(j *jails.Jail) {
	m.mu.Lock()
	js, ok := m.jails[j]
	if !ok {
		// Never used. The jail is dying, so jailStateLocked refuses to
		// start a clone there from now on.
		m.mu.Unlock()
		return
	}
	js.detached = true
	devs := make([]*Device, 0, len(js.devices))
	for _, d := range js.devices {
		devs = append(devs, d)
	}
	m.mu.Unlock()

	var wg sync.WaitGroup
	for _, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Destroy(d); err != nil && !errors.Is(err, ErrNoDevice) {
				m.logf("detach jail %s: %v", j.Name(), err)
			}
		}()
	}
	wg.Wait()

	m.mu.Lock()
	links, w := js.links, js.watch
	js.links, js.watch = nil, nil
	delete(m.jails, j)
	for k, us := range m.units {
		if k.netns == j.Netns().Ino() && us.n == 0 {
			delete(m.units, k)
		}
	}
	m.mu.Unlock()
	if w != nil {
		w.stop()
	}
	if links != nil {
		links.Close()
	}
}
