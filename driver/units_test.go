package driver

import "testing"

func TestUnitSet(t *testing.T) {
	var u unitSet
	if got := u.lowestFreeFrom(0); got != 0 {
		t.Fatalf("empty set: lowest free = %d, want 0", got)
	}
	for i := 0; i < 130; i++ {
		u.set(i)
	}
	if got := u.lowestFreeFrom(0); got != 130 {
		t.Fatalf("lowest free = %d, want 130", got)
	}
	u.clear(64)
	if got := u.lowestFreeFrom(0); got != 64 {
		t.Fatalf("after clear(64): lowest free = %d, want 64", got)
	}
	if got := u.lowestFreeFrom(65); got != 130 {
		t.Fatalf("lowest free from 65 = %d, want 130", got)
	}
	var full unitSet
	for i := 0; i <= MaxUnit; i++ {
		full.set(i)
	}
	if got := full.lowestFreeFrom(0); got != -1 {
		t.Fatalf("full set: lowest free = %d, want -1", got)
	}
	full.clear(MaxUnit)
	if got := full.lowestFreeFrom(0); got != MaxUnit {
		t.Fatalf("lowest free = %d, want %d", got, MaxUnit)
	}
	if full.n != MaxUnit {
		t.Fatalf("count = %d, want %d", full.n, MaxUnit)
	}
}

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
