// Package clonehandler runs the clone handlers consulted when a lookup in a
// device directory finds nothing (FreeBSD's dev_clone event handlers), and
// the ifconfig create path that shares their create step.
//
// Contract:
//   - A handler either declines a name (ErrNoMatch: not its kind of name) or
//     answers for it: a device, holding one RefClone reference that the
//     invoker gives up once the kernel holds the node, or an error.
//   - Cloning is privileged (PRIV_NET_IFCREATE): uid 0, or a uid or group the
//     jail's settings allow (jails.Settings: clone_uid=, clone_gid=); tap and vmnet also with net.link.tap.user_open.
//     Refusals are ErrDenied, which the filesystem reports as ENOENT.
//   - devfs clones and ifconfig creates both end in driver.Manager.Create;
//     only the Origin differs, and with it the extra reference.
//
// The package holds no locks of its own beyond Registry.mu, which is never
// held while a handler runs.
package clonehandler

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/tundevfs/tundevfs/driver"
	"github.com/tundevfs/tundevfs/jails"
)

// Cred is the caller of a lookup.
type Cred struct {
	UID, GID uint32
	PID      uint32
}

// ownerOf is the owner of the nodes made in j (its dev_uid=, dev_gid=,
// dev_mode= settings).
func ownerOf(j *jails.Jail) driver.Owner {
	return driver.Owner(j.Settings().Owner)
}

// Request is one clone request.
type Request struct {
	Jail *jails.Jail
	Name string
	Cred Cred
}

// Handler is a dev_clone event handler.
type Handler interface {
	// Clone creates the device that name asks for, or returns ErrNoMatch.
	Clone(r Request) (*driver.Device, error)
	// Permit says, without creating anything, whether Clone would be
	// allowed to try: nil, ErrNoMatch, or why not.
	Permit(r Request) error
}

// Registry holds the clone handlers in the order they were added.
type Registry struct {
	mu       sync.Mutex // guards handlers
	handlers []Handler
}

// Add registers h.
func (r *Registry) Add(h Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handlers = append(r.handlers, h)
}

// Clone asks each handler in turn; the first one that does not decline
// answers.
func (r *Registry) Clone(req Request) (*driver.Device, error) {
	r.mu.Lock()
	hs := slices.Clone(r.handlers)
	r.mu.Unlock()
	for _, h := range hs {
		d, err := h.Clone(req)
		if errors.Is(err, ErrNoMatch) {
			continue
		}
		return d, err
	}
	return nil, fmt.Errorf("clone %s: %w", req.Name, ErrNoMatch)
}

// Permit asks each handler in turn whether r may clone.
func (r *Registry) Permit(req Request) error {
	r.mu.Lock()
	hs := slices.Clone(r.handlers)
	r.mu.Unlock()
	for _, h := range hs {
		err := h.Permit(req)
		if errors.Is(err, ErrNoMatch) {
			continue
		}
		return err
	}
	return fmt.Errorf("clone %s: %w", req.Name, ErrNoMatch)
}

// TunTap is the tun/tap/vmnet clone handler (tunclone()).
type TunTap struct {
	M *driver.Manager
}

// Permit implements Handler.
func (t TunTap) Permit(r Request) error {
	drv, _, ok := driver.ParseName(r.Name)
	if !ok {
		return ErrNoMatch
	}
	if !t.M.Knobs().DevfsCloning(drv) {
		return fmt.Errorf("clone %s: %w", r.Name, ErrCloningOff)
	}
	if !mayClone(r.Jail.Settings(), drv, r.Cred, t.M.Knobs()) {
		return fmt.Errorf("clone %s: uid %d: %w", r.Name, r.Cred.UID, ErrDenied)
	}
	return nil
}

// Clone implements Handler.
func (t TunTap) Clone(r Request) (*driver.Device, error) {
	if err := t.Permit(r); err != nil {
		return nil, err
	}
	drv, unit, _ := driver.ParseName(r.Name)
	return t.M.Create(r.Jail, drv, unit, driver.DevfsClone, ownerOf(r.Jail))
}

// IfconfigCreate is `ifconfig NAME create` (tun_clone_create()): the same
// create step as a devfs clone, without the invoker's reference. name is a
// driver name or a full device name.
func IfconfigCreate(m *driver.Manager, j *jails.Jail, name string) (*driver.Device, error) {
	drv, unit, ok := driver.ParseName(name)
	if !ok {
		return nil, fmt.Errorf("create %s: %w", name, driver.ErrBadName)
	}
	return m.Create(j, drv, unit, driver.IfconfigCreate, ownerOf(j))
}

func mayClone(p jails.Settings, drv *driver.Driver, c Cred, k *driver.Knobs) bool {
	if c.UID == 0 {
		return true
	}
	if drv.IsL2() && k.TapUserOpen() {
		return true
	}
	if slices.Contains(p.AllowUIDs, c.UID) {
		return true
	}
	if len(p.AllowGIDs) == 0 {
		return false
	}
	if slices.Contains(p.AllowGIDs, c.GID) {
		return true
	}
	for _, g := range supplementaryGroups(c.PID) {
		if slices.Contains(p.AllowGIDs, g) {
			return true
		}
	}
	return false
}

// supplementaryGroups reads the caller's groups from /proc; FUSE passes
// only the primary gid.
func supplementaryGroups(pid uint32) []uint32 {
	if pid == 0 {
		return nil
	}
	f, err := os.Open("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/status")
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "Groups:")
		if !ok {
			continue
		}
		var out []uint32
		for _, fld := range strings.Fields(line) {
			if g, err := strconv.ParseUint(fld, 10, 32); err == nil {
				out = append(out, uint32(g))
			}
		}
		return out
	}
	return nil
}
