package driver

import (
	"fmt"
	"sort"
	"strconv"
	"sync/atomic"
)

// Knobs are the sysctl knobs of SPEC §3. They take effect at once.
type Knobs struct {
	vals map[string]*atomic.Int64 // fixed at init; the values are atomic
}

// The knob names, as on FreeBSD.
const (
	KnobTunDevfsCloning = "net.link.tun.devfs_cloning"
	KnobTapDevfsCloning = "net.link.tap.devfs_cloning"
	KnobTapUpOnOpen     = "net.link.tap.up_on_open"
	KnobTapUserOpen     = "net.link.tap.user_open"
)

var knobDefaults = map[string]int64{
	KnobTunDevfsCloning: 1,
	KnobTapDevfsCloning: 1,
	KnobTapUpOnOpen:     0,
	KnobTapUserOpen:     0,
	KnobTunFastpath:     1,
}

func (k *Knobs) init() {
	k.vals = make(map[string]*atomic.Int64, len(knobDefaults))
	for name, v := range knobDefaults {
		a := new(atomic.Int64)
		a.Store(v)
		k.vals[name] = a
	}
}

// Names lists the knobs in order.
func (k *Knobs) Names() []string {
	names := make([]string, 0, len(k.vals))
	for n := range k.vals {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Get returns a knob's value.
func (k *Knobs) Get(name string) (int64, error) {
	v, ok := k.vals[name]
	if !ok {
		return 0, fmt.Errorf("sysctl %s: unknown oid", name)
	}
	return v.Load(), nil
}

// Set sets a knob to 0 or 1.
func (k *Knobs) Set(name, value string) error {
	v, ok := k.vals[name]
	if !ok {
		return fmt.Errorf("sysctl %s: unknown oid", name)
	}
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil || (n != 0 && n != 1) {
		return fmt.Errorf("sysctl %s=%s: invalid value (want 0 or 1)", name, value)
	}
	v.Store(n)
	return nil
}

func (k *Knobs) flag(name string) bool { return k.vals[name].Load() != 0 }

// DevfsCloning says whether a lookup may clone a device of drv.
func (k *Knobs) DevfsCloning(drv *Driver) bool {
	if drv.IsL2() {
		return k.flag(KnobTapDevfsCloning)
	}
	return k.flag(KnobTunDevfsCloning)
}

// TapUpOnOpen is net.link.tap.up_on_open.
func (k *Knobs) TapUpOnOpen() bool { return k.flag(KnobTapUpOnOpen) }

// TapUserOpen is net.link.tap.user_open.
func (k *Knobs) TapUserOpen() bool { return k.flag(KnobTapUserOpen) }
