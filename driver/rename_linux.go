package driver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/jails"
)

// renameWatch follows the interface names of one jail's namespace, what
// FreeBSD's ifnet_arrival_event handler tunrename() does (PR 235704): when
// a device's interface is renamed (`ip link set tun0 name foo`), the device
// learns its new name and a Renamed event tells the filesystem, which shows
// an alias node foo beside tun0.
//
// It reads RTM_NEWLINK notifications from a netlink socket opened inside
// the namespace. The socket is non-blocking and read through Go's poller,
// so stop's Close wakes the reader at once and nothing is left holding the
// namespace. The jail's cloners own it: it starts with the jail's driver
// state and stops in DetachJail.
type renameWatch struct {
	m    *Manager
	js   *jailState
	nl   *netlink.Handle // the jail's netlink handle, closed only after stop
	f    *os.File        // netlink socket in the namespace, bound to RTMGRP_LINK
	done chan struct{}   // closed when run has returned

	// announced is the alias last announced per device (absent: none).
	// Only run touches it.
	announced map[*Device]string
}

// startRenameWatch opens the socket in the jail's namespace and starts the
// reader.
func startRenameWatch(m *Manager, js *jailState) (*renameWatch, error) {
	fd := -1
	err := js.jail.Netns().Do(func() error {
		s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink socket: %w", err)
		}
		if err := unix.Bind(s, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK}); err != nil {
			unix.Close(s)
			return fmt.Errorf("netlink bind: %w", err)
		}
		fd = s
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("watch renames in jail %s: %w", js.jail.Name(), err)
	}
	// A long queue makes an overflow (ENOBUFS, then a resync) rare.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<20) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	}
	w := &renameWatch{
		m:         m,
		js:        js,
		nl:        js.nl,
		f:         os.NewFile(uintptr(fd), "netlink-link:"+js.jail.Name()),
		done:      make(chan struct{}),
		announced: make(map[*Device]string),
	}
	go w.run()
	return w, nil
}

// stop closes the socket and waits for the reader to return.
func (w *renameWatch) stop() {
	w.f.Close()
	<-w.done
}

func (w *renameWatch) run() {
	defer close(w.done)
	buf := make([]byte, 1<<16)
	for {
		n, err := w.f.Read(buf)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrClosed):
			return
		case errors.Is(err, unix.ENOBUFS):
			// The queue overflowed and events were lost: ask the
			// kernel for every name.
			w.resync()
			continue
		case errors.Is(err, io.EOF):
			continue
		default:
			w.m.logf("watch renames in jail %s: %v", w.js.jail.Name(), err)
			return
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for i := range msgs {
			if msgs[i].Header.Type != unix.RTM_NEWLINK {
				continue
			}
			if index, name, ok := parseLinkMessage(&msgs[i]); ok {
				if d := w.m.deviceByIndex(w.js, index); d != nil {
					d.syncName(name)
					w.announce(d)
				}
			}
		}
	}
}

// parseLinkMessage returns the index and name of an RTM_NEWLINK message.
func parseLinkMessage(msg *syscall.NetlinkMessage) (index int, name string, ok bool) {
	if len(msg.Data) < unix.SizeofIfInfomsg {
		return 0, "", false
	}
	index = int(int32(binary.NativeEndian.Uint32(msg.Data[4:8]))) // ifi_index
	attrs, err := syscall.ParseNetlinkRouteAttr(msg)
	if err != nil {
		return 0, "", false
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.IFLA_IFNAME {
			return index, string(bytes.TrimRight(a.Value, "\x00")), true
		}
	}
	return 0, "", false
}

// resync reads every device's name from the kernel.
func (w *renameWatch) resync() {
	for _, d := range w.m.Devices(w.js.jail) {
		l, err := w.nl.LinkByIndex(d.ifIndex())
		if err != nil {
			continue
		}
		d.syncName(l.Attrs().Name)
		w.announce(d)
	}
}

// announce emits Renamed when the device's alias differs from the one last
// announced.
func (w *renameWatch) announce(d *Device) {
	for old := range w.announced {
		if !old.Alive() {
			delete(w.announced, old)
		}
	}
	if !d.Alive() {
		return
	}
	cur, prev := d.alias(), w.announced[d]
	if cur == prev {
		return
	}
	if cur == "" {
		delete(w.announced, d)
	} else {
		w.announced[d] = cur
	}
	w.m.debugf("rename %s: %q -> %q", d.DevName(), prev, cur)
	w.m.emit(w.js.jail, Event{Kind: Renamed, Device: d, Name: d.DevName(), Alias: cur, OldAlias: prev})
}

// alias is the interface's name when it is not the node name and may be
// an alias (Reserved), else "".
func (d *Device) alias() string {
	if name := d.Name(); name != d.DevName() && !Reserved(name) {
		return name
	}
	return ""
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
	nl := js.watch.nl
	m.mu.Unlock()
	l, err := nl.LinkByName(name)
	if err != nil || l.Attrs().Name != name {
		return nil // no such interface, or name is an altname
	}
	d := m.deviceByIndex(js, l.Attrs().Index)
	if d == nil || !d.Alive() {
		return nil
	}
	d.syncName(name)
	return d
}
