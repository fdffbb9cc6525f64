package jails

import "slices"

// Settings are a jail's own parameters besides its name, namespace and
// persistence (jail(8): clone_uid=, clone_gid=, dev_uid=, dev_gid=,
// dev_mode=, max_devices=, fastpath=). They are fixed when the jail is
// made and read, never written, by the packages that act in it:
// clonehandler (who may clone, who owns the nodes), the daemon (the
// driver's device limit, the fast path).
//
// jails owns the type because a jail carries its settings for its whole
// life and every package that reads them imports jails already; a type
// owned higher up (clonehandler, daemon) could reach a jail only as an
// opaque value. Whoever makes a jail passes them explicitly (Options,
// NewRegistry); the daemon builds them from jail(8) parameters and checks
// their ranges (ParseJailParams) before they get here. The zero value lets
// only root clone, makes nodes root:root 0000 and sets no device limit of
// its own (the driver's default applies until the daemon sets one).
type Settings struct {
	// AllowUIDs and AllowGIDs may clone besides root (clone_uid=,
	// clone_gid=).
	AllowUIDs []uint32
	AllowGIDs []uint32
	// Owner owns the device nodes made in the jail (dev_uid=, dev_gid=,
	// dev_mode=).
	Owner Owner
	// MaxDevices is how many devices the jail may hold (max_devices=).
	MaxDevices int
	// NoFastPath refuses the fast path to the jail's devices (fastpath=0).
	NoFastPath bool
}

// Owner is the owner, group and permission bits of a device node.
type Owner struct {
	UID, GID uint32
	Mode     uint32
}

// clone returns s with slices of its own, so a caller keeps nothing that
// aliases a jail's settings.
func (s Settings) clone() Settings {
	s.AllowUIDs = slices.Clone(s.AllowUIDs)
	s.AllowGIDs = slices.Clone(s.AllowGIDs)
	return s
}
