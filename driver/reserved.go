package driver

// Names an interface rename never turns into an alias (FreeBSD PR 235704
// aliases, rename_linux.go): the cloners' names, whose every lookup must
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
