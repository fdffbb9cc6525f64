package clonehandler

import (
	"errors"
	"os"
	"testing"

	"github.com/tundevfs/tundevfs/driver"
	"github.com/tundevfs/tundevfs/jails"
)

// fakeHandler answers for one name, to test the registry's order.
type fakeHandler struct {
	name string
	err  error
}

func (f fakeHandler) Permit(r Request) error {
	if r.Name != f.name {
		return ErrNoMatch
	}
	return f.err
}

func (f fakeHandler) Clone(r Request) (*driver.Device, error) {
	if err := f.Permit(r); err != nil {
		return nil, err
	}
	return nil, errors.New("cloned " + f.name)
}

func TestRegistryOrder(t *testing.T) {
	var r Registry
	r.Add(fakeHandler{name: "a"})
	r.Add(fakeHandler{name: "b", err: ErrDenied})
	r.Add(fakeHandler{name: "a", err: ErrDenied}) // never reached for "a"
	if err := r.Permit(Request{Name: "a"}); err != nil {
		t.Fatalf("Permit(a) = %v, want nil from the first handler", err)
	}
	if _, err := r.Clone(Request{Name: "a"}); err == nil || err.Error() != "cloned a" {
		t.Fatalf("Clone(a) = %v", err)
	}
	if err := r.Permit(Request{Name: "b"}); !errors.Is(err, ErrDenied) {
		t.Fatalf("Permit(b) = %v, want ErrDenied", err)
	}
	if _, err := r.Clone(Request{Name: "c"}); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("Clone(c) = %v, want ErrNoMatch", err)
	}
}

func TestMayClone(t *testing.T) {
	host, err := jails.CurrentNetns()
	if err != nil {
		t.Skip("no netns handle: ", err)
	}
	reg := jails.NewRegistry(host, jails.Settings{})
	m := driver.NewManager(reg, nil)
	defer func() { reg.Shutdown(); m.Close() }()
	k := m.Knobs()
	pol := jails.Settings{AllowUIDs: []uint32{1000}, AllowGIDs: []uint32{50}}
	for _, tc := range []struct {
		name    string
		drv     *driver.Driver
		cred    Cred
		userTap bool
		want    bool
	}{
		{"root", driver.Tun, Cred{UID: 0}, false, true},
		{"listed uid", driver.Tun, Cred{UID: 1000}, false, true},
		{"listed gid", driver.Tun, Cred{UID: 7, GID: 50}, false, true},
		{"stranger", driver.Tun, Cred{UID: 7, GID: 7}, false, false},
		{"stranger, tap, user_open", driver.Tap, Cred{UID: 7, GID: 7}, true, true},
		{"stranger, vmnet, user_open", driver.Vmnet, Cred{UID: 7, GID: 7}, true, true},
		{"stranger, tun, user_open", driver.Tun, Cred{UID: 7, GID: 7}, true, false},
		// A supplementary group, read from /proc: this process's own.
		{"supplementary group", driver.Tun, Cred{UID: 7, GID: 7, PID: uint32(os.Getpid())}, false, hasGroup(50)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := "0"
			if tc.userTap {
				v = "1"
			}
			if err := k.Set(driver.KnobTapUserOpen, v); err != nil {
				t.Fatal(err)
			}
			if got := mayClone(pol, tc.drv, tc.cred, k); got != tc.want {
				t.Fatalf("mayClone = %v, want %v", got, tc.want)
			}
		})
	}
}

func hasGroup(g uint32) bool {
	gs, _ := os.Getgroups()
	for _, x := range gs {
		if uint32(x) == g {
			return true
		}
	}
	return false
}
