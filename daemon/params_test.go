package daemon

import (
	"slices"
	"testing"
)

func TestParseJailParams(t *testing.T) {
	p, err := ParseJailParams([]string{"name=web", "vnet", "path=/d", "persist", "clone_uid=1000,1001", "clone_gid=27", "dev_uid=1000", "dev_gid=5", "dev_mode=0660", "max_devices=4"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "web" || !p.Vnet || p.Path != "/d" || !p.Persist ||
		!slices.Equal(p.Settings.AllowUIDs, []uint32{1000, 1001}) || !slices.Equal(p.Settings.AllowGIDs, []uint32{27}) ||
		p.Settings.Owner.UID != 1000 || p.Settings.Owner.GID != 5 || p.Settings.Owner.Mode != 0o660 || p.Settings.MaxDevices != 4 {
		t.Fatalf("parsed %+v settings %+v", p, p.Settings)
	}
	p, err = ParseJailParams([]string{"name=x", "vnet=/run/netns/x"})
	if err != nil || p.VnetPath != "/run/netns/x" || p.Vnet {
		t.Fatalf("vnet=PATH: %+v %v", p, err)
	}
	for _, bad := range [][]string{
		{"vnet"}, {"name=x", "vnet", "vnet=/p"}, {"name=x", "dev_mode=999"}, {"name=x", "clone_uid=x"},
		{"name=x", "max_devices=0"}, {"name=x", "frob"},
	} {
		if _, err := ParseJailParams(bad); err == nil {
			t.Errorf("ParseJailParams(%v) succeeded", bad)
		}
	}
	for path, want := range map[string]int{"/proc/42/ns/net": 42, "/run/netns/x": 0, "/proc/self/ns/net": 0, "/proc/7/task/7/ns/net": 7} {
		if got := ownerPID(path); got != want {
			t.Errorf("ownerPID(%s) = %d, want %d", path, got, want)
		}
	}
}
