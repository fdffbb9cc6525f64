package driver

import (
	"fmt"
	"sync"

	"github.com/tundevfs/tundevfs/jails"
)

// renameWatch follows the interface names of one jail's namespace, what
// FreeBSD's ifnet_arrival_event handler tunrename() does (PR 235704): when
// a device's interface is renamed (`ip link set tun0 name foo`), the device
// learns its new name and a Renamed event tells the filesystem, which shows
// an alias node foo beside tun0.
//
// It is the LinkEvents of the jail's Links.Watch (on Linux a netlink socket
// in the namespace, stack_linux.go). The jail's cloners own it: it starts
// with the jail's driver state and stops in DetachJail.
type renameWatch struct {
	m    *Manager
	js   *jailState
	l    Links  // the jail's links, closed only after stop
	stop func() // ends the watch and waits for its goroutine

	// mu guards announced, the alias last announced per device (absent:
	// none): the watch's goroutine and a restore (learn) touch it. It is
	// taken before Device.mu, never with Manager.mu held, and no event is
	// emitted under it.
	mu        sync.Mutex
	announced map[*Device]string
}

// startRenameWatch starts watching the jail's interfaces.
func startRenameWatch(m *Manager, js *jailState) (*renameWatch, error) {
	w := &renameWatch{m: m, js: js, l: js.links, announced: make(map[*Device]string)}
	stop, err := js.links.Watch(w)
	if err != nil {
		return nil, fmt.Errorf("watch renames in jail %s: %w", js.jail.Name(), err)
	}
	w.stop = stop
	return w, nil
}

// Renamed records the name of the device whose interface has index.
func (w *renameWatch) Renamed(index int, name string) {
	if d := w.m.deviceByIndex(w.js, index); d != nil {
		d.syncName(name)
		w.announce(d)
	}
}

// Failed logs why the watch ended.
func (w *renameWatch) Failed(err error) {
	w.m.logf("watch renames in jail %s: %v", w.js.jail.Name(), err)
}

// Resync reads every device's name from the kernel.
func (w *renameWatch) Resync() {
	for _, d := range w.m.Devices(w.js.jail) {
		l, err := w.l.Link(d.ifindex)
		if err != nil {
			continue
		}
		d.syncName(l.Name)
		w.announce(d)
	}
}

// announce emits Renamed when the device's alias differs from the one last
// announced.
func (w *renameWatch) announce(d *Device) {
	w.mu.Lock()
	for old := range w.announced {
		if !old.Alive() {
			delete(w.announced, old)
		}
	}
	if !d.Alive() {
		w.mu.Unlock()
		return
	}
	cur, prev := d.alias(), w.announced[d]
	if cur == prev {
		w.mu.Unlock()
		return
	}
	if cur == "" {
		delete(w.announced, d)
	} else {
		w.announced[d] = cur
	}
	w.mu.Unlock()
	w.m.debugf("rename %s: %q -> %q", d.DevName(), prev, cur)
	w.m.emit(w.js.jail, Event{Kind: Renamed, Device: d, Name: d.DevName(), Alias: cur, OldAlias: prev})
}

// learn records d's alias as announced, for a device restored from the
// state of a dead server, whose filesystem shows the alias already: the
// next rename then announces it as the old one.
func (w *renameWatch) learn(d *Device) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if a := d.alias(); a != "" {
		w.announced[d] = a
	}
}

// alias is the interface's name when it is not the node name and may be
// an alias (Reserved), else "".
func (d *Device) alias() string {
	if name := d.Name(); name != d.DevName() && !Reserved(name) {
		return name
	}
	return ""
}

// syncName records the interface's current name and refiles the device in
// its jail's interface-name index. It takes Device.mu and then
// Manager.mu, never both at once.
func (d *Device) syncName(name string) {
	d.mu.Lock()
	changed := d.name != name
	d.name = name
	d.mu.Unlock()
	if changed {
		d.m.renamed(d)
		d.m.changed()
	}
}

// deviceByIndex finds the live device of js whose interface has index.
func (m *Manager) deviceByIndex(js *jailState, index int) *Device {
	m.mu.Lock()
	defer m.mu.Unlock()
	return js.byIndex[index]
}

// Resolve finds a live device of jail j by node name or interface name, as
// Lookup does, or else as ResolveRenamed does, for ifconfig: a name that
// may not be an alias (Reserved) still names its interface here.
func (m *Manager) Resolve(j *jails.Jail, name string) *Device {
	if d := m.lookup(j, name, true); d != nil {
		return d
	}
	return m.resolveRenamed(j, name, true)
}

// ResolveRenamed asks the kernel whether name is the new name of one of
// jail j's interfaces, renamed so recently that the watcher has not seen it
// yet, and if so records the name and returns the device. It costs a
// netlink round trip and emits no event, so it may run inside a FUSE
// request. A Reserved name is never resolved: it is no alias.
func (m *Manager) ResolveRenamed(j *jails.Jail, name string) *Device {
	return m.resolveRenamed(j, name, false)
}

func (m *Manager) resolveRenamed(j *jails.Jail, name string, reserved bool) *Device {
	if name == "" || len(name) > IfNameMax || (!reserved && Reserved(name)) {
		return nil
	}
	m.mu.Lock()
	js, ok := m.jails[j]
	if !ok || js.detached || js.watch == nil {
		m.mu.Unlock()
		return nil
	}
	links := js.watch.l
	m.mu.Unlock()
	l, err := links.LinkByName(name)
	if err != nil || l.Name != name {
		return nil // no such interface, or name is an altname
	}
	d := m.deviceByIndex(js, l.Index)
	if d == nil || !d.Alive() {
		return nil
	}
	d.syncName(name)
	return d
}
