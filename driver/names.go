package driver

// This file holds the names: a device's name (dev_stdclone()), a unit's
// name, and the names an interface rename never turns into an alias.

import "strconv"

// Names an interface rename never turns into an alias (FreeBSD PR 235704
// aliases, rename.go): the cloners' names, whose every lookup must
// clone, and the standard devices a jail's /dev shows beside the tunnels
// (fs's stdDevs), which must stay what they are: `ip link set tun0 name
// null` must not make /dev/null a tunnel. The interface keeps its name,
// ifconfig still finds it by that name, and status shows the mode
// "alias-refused".
var reservedNames = map[string]bool{
	"null": true, "zero": true, "full": true, "random": true, "urandom": true,
	"tty": true, "fd": true, "stdin": true, "stdout": true, "stderr": true,
}

// Reserved reports whether name may never be an alias in a device
// directory: a driver's name or a standard device's.
func Reserved(name string) bool {
	return ByName(name) != nil || reservedNames[name]
}

// aliasRefusedLocked reports whether the interface carries a name that
// would be an alias but is reserved. d.mu is held.
func (d *Device) aliasRefusedLocked() bool {
	return d.name != d.DevName() && Reserved(d.name)
}

// ByName returns the driver called name.
func ByName(name string) *Driver {
	for _, d := range Drivers {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// ParseName splits a device name the way FreeBSD's dev_stdclone() does: a
// driver name followed by a decimal unit without leading zeros, or the bare
// driver name (unit -1). The unit is at most MaxUnit and the whole name fits
// a Linux interface name.
func ParseName(name string) (drv *Driver, unit int, ok bool) {
	if len(name) > IfNameMax {
		return nil, 0, false
	}
	for _, d := range Drivers {
		if len(name) < len(d.Name) || name[:len(d.Name)] != d.Name {
			continue
		}
		rest := name[len(d.Name):]
		if rest == "" {
			return d, -1, true
		}
		if rest[0] < '0' || rest[0] > '9' || (rest[0] == '0' && len(rest) > 1) {
			return nil, 0, false
		}
		for i := 0; i < len(rest); i++ {
			if rest[i] < '0' || rest[i] > '9' {
				return nil, 0, false
			}
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n > MaxUnit {
			return nil, 0, false
		}
		return d, n, true
	}
	return nil, 0, false
}

// UnitName is the device (and interface) name of unit n of d.
func (d *Driver) UnitName(n int) string { return d.Name + strconv.Itoa(n) }
