package driver

import (
	"log"
	"os"
	"sort"
	"sync"
	"sync/atomic"

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
	// counted is the number of devices that count against the jail's
	// device limit: the alive ones and the creations in flight. A dying
	// device, which no lookup reaches, no longer counts, though its unit
	// stays taken until it is gone. Raised only under Manager.mu, in the
	// same critical section as the limit check, so concurrent creations
	// never pass the limit; lowered by a failed creation and where a
	// device starts dying (under Device.mu, which cannot take Manager.mu:
	// hence an atomic).
	counted atomic.Int32
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
	freeze  freezer      // a planned restart's stop of packet I/O (freeze.go)
	// heldElsewhere: the holder keeps a dup of every TUN fd (freeze.go).
	heldElsewhere atomic.Bool
	// onNewFile is SetOnNewFile's function (freeze.go), nil when none.
	onNewFile atomic.Pointer[func(*jails.Jail, uint64, *os.File)]
	// onChange is SetOnChange's function (state.go), nil when none.
	onChange atomic.Pointer[func()]

	mu        sync.Mutex // guards the fields below
	units     map[unitKey]*unitSet
	jails     map[*jails.Jail]*jailState
	all       map[*Device]struct{} // every device not yet freed
	listeners map[*jails.Jail]map[int]Listener
	nextLis   int
	// pending are the dying devices Restore registered, whose destroy
	// FinishRestore finishes (state.go).
	pending []*Device

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
	m.freeze.ch = make(chan struct{})
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

// Attach makes the driver's state for jail j now rather than at its first
// device: its namespace's links and its rename watch (the daemon attaches
// every jail it creates, so that a namespace the driver cannot work in
// fails the jail's creation, and the watch exists for the jail's life).
func (m *Manager) Attach(j *jails.Jail) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, err := m.jailStateLocked(j)
	return err
}

// deviceLimit is the jail's device limit: its settings' MaxDevices, fixed
// when the jail was made (0: DefaultDeviceLimit).
func deviceLimit(j *jails.Jail) int {
	if n := j.Settings().MaxDevices; n > 0 {
		return n
	}
	return DefaultDeviceLimit
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
		byIndex: make(map[int]*Device), settling: make(map[string]chan struct{}),
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

// ByIno returns the live device whose node has inode number ino, or nil.
func (m *Manager) ByIno(ino uint64) *Device {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, js := range m.jails {
		for _, d := range js.devices {
			if d.ino == ino {
				return d
			}
		}
	}
	return nil
}

// SetDebug sets the driver's debug level (tundebug): one for all devices.
// A level above 0 logs ioctls, renames and transient destroys.
func (m *Manager) SetDebug(level int) { m.debug.Store(int32(level)) }

// Debug returns the debug level.
func (m *Manager) Debug() int { return int(m.debug.Load()) }

func (m *Manager) debugf(format string, args ...any) {
	if m.debug.Load() > 0 {
		m.logger.Printf(format, args...)
	}
}
