package driver

import "testing"

func TestParseName(t *testing.T) {
	tests := []struct {
		name string
		drv  *Driver
		unit int
		ok   bool
	}{
		{"tun", Tun, -1, true},
		{"tap", Tap, -1, true},
		{"vmnet", Vmnet, -1, true},
		{"tun0", Tun, 0, true},
		{"tun12", Tun, 12, true},
		{"tap32767", Tap, 32767, true},
		{"vmnet7", Vmnet, 7, true},
		{"tun01", nil, 0, false},
		{"tun00", nil, 0, false},
		{"tun-1", nil, 0, false},
		{"tun+1", nil, 0, false},
		{"tunx", nil, 0, false},
		{"tun1x", nil, 0, false},
		{"tun32768", nil, 0, false},
		{"tun99999999999999", nil, 0, false},
		{"vmnet32767", Vmnet, 32767, true},
		{"tu", nil, 0, false},
		{"", nil, 0, false},
		{"foo", nil, 0, false},
		{"tun 1", nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			drv, unit, ok := ParseName(tt.name)
			if ok != tt.ok || drv != tt.drv || (ok && unit != tt.unit) {
				t.Fatalf("ParseName(%q) = %v, %d, %v; want %v, %d, %v", tt.name, drv, unit, ok, tt.drv, tt.unit, tt.ok)
			}
		})
	}
}

func TestParseNameUnitName(t *testing.T) {
	for _, d := range Drivers {
		if ByName(d.Name) != d || d.UnitName(7) != d.Name+"7" {
			t.Fatal(d.Name)
		}
	}
	if ByName("tunx") != nil || !Reserved("tap") || !Reserved("null") || Reserved("tap0") {
		t.Fatal("names")
	}
	if !Tap.IsL2() || Tun.IsL2() || Vmnet.Flags&VMNET == 0 {
		t.Fatal("flags")
	}
}
