package clonehandler

import (
	"errors"
	"testing"

	"github.com/tundevfs/tundevfs/driver"
	"github.com/tundevfs/tundevfs/jails"
)

// TestJailSettingsReachCloning: the settings a jail is made with are the
// ones cloning obeys (who may clone, who owns the nodes), for a jail and
// for the host, with nothing between them that could fall back to
// defaults (issue 14, 4: a policy of the wrong dynamic type used to be
// replaced by root-only defaults without a word).
func TestJailSettingsReachCloning(t *testing.T) {
	host, err := jails.CurrentNetns()
	if err != nil {
		t.Skip("no netns handle: ", err)
	}
	hostSet := jails.Settings{AllowUIDs: []uint32{1001}, Owner: jails.Owner{UID: 3, GID: 4, Mode: 0o640}}
	reg := jails.NewRegistry(host, hostSet)
	m := driver.NewManager(reg, nil)
	defer func() { reg.Shutdown(); m.Close() }()
	ns, err := host.Dup("j")
	if err != nil {
		t.Fatal(err)
	}
	jSet := jails.Settings{AllowGIDs: []uint32{2000}, Owner: jails.Owner{UID: 1000, GID: 2000, Mode: 0o660}, MaxDevices: 3}
	j, err := reg.Create(jails.Options{Name: "j", Netns: ns, Persist: true, Settings: jSet})
	if err != nil {
		t.Fatal(err)
	}
	tt := TunTap{M: m}
	for _, tc := range []struct {
		name string
		jail *jails.Jail
		cred Cred
		ok   bool
	}{
		{"host, listed uid", reg.Host(), Cred{UID: 1001, GID: 1}, true},
		{"host, stranger", reg.Host(), Cred{UID: 1000, GID: 2000}, false},
		{"jail, listed gid", j, Cred{UID: 1000, GID: 2000}, true},
		{"jail, host's uid", j, Cred{UID: 1001, GID: 1}, false},
	} {
		err := tt.Permit(Request{Jail: tc.jail, Name: "tun", Cred: tc.cred})
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, ErrDenied) {
			t.Errorf("%s: Permit = %v, want allowed %v", tc.name, err, tc.ok)
		}
	}
	if got, want := ownerOf(j), (driver.Owner{UID: 1000, GID: 2000, Mode: 0o660}); got != want {
		t.Errorf("jail's node owner %+v, want %+v", got, want)
	}
	if got, want := ownerOf(reg.Host()), (driver.Owner{UID: 3, GID: 4, Mode: 0o640}); got != want {
		t.Errorf("host's node owner %+v, want %+v", got, want)
	}
	// What a caller gets is a copy: changing it changes nothing.
	s := j.Settings()
	s.AllowGIDs[0] = 1
	if j.Settings().AllowGIDs[0] != 2000 {
		t.Error("Settings() shares its slices with the jail")
	}
}
