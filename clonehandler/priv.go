package clonehandler

import (
	"github.com/tundevfs/tundevfs/driver"
	"github.com/tundevfs/tundevfs/jails"
)

// MayDestroy says whether c holds FreeBSD's PRIV_NET_IFDESTROY in jail j,
// which TUNSTRANSIENT asks for: uid 0, or a uid or group the jail's
// settings allow to clone. net.link.tap.user_open does not grant it.
func MayDestroy(j *jails.Jail, c Cred) bool {
	// With a layer-3 driver mayClone never consults the knobs.
	return mayClone(j.Settings(), driver.Tun, c, nil)
}
