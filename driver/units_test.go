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
