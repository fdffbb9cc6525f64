package jails

import (
	"os"
	"testing"
)

// BenchmarkNetnsDo is one Netns.Do with an empty function: the cost the
// clone path pays to enter a jail's namespace and come back.
func BenchmarkNetnsDo(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (setns)")
	}
	ns, err := NewNetns()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ns.Close() })
	b.ReportAllocs()
	for b.Loop() {
		if err := ns.Do(func() error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
