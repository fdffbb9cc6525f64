package driver

import (
	"errors"
	"testing"

	"github.com/tundevfs/tundevfs/jails"
)

// TestLimitSkipsDying: a dying device, which no lookup reaches any more,
// does not count against the jail's device limit; the new device takes
// another unit, as the dying one still holds its own.
func TestLimitSkipsDying(t *testing.T) {
	for _, how := range []string{"destroy", "transient close"} {
		t.Run(how, func(t *testing.T) {
			e := newFakeEnv(t)
			j := e.jailWith("tight", jails.Settings{MaxDevices: 1})
			d, err := e.m.Create(j, Tun, -1, IfconfigCreate, Owner{})
			if err != nil {
				t.Fatal(err)
			}
			var h *Handle
			if how == "transient close" {
				if h, err = d.Open(1); err != nil {
					t.Fatal(err)
				}
				if err := h.SetTransient(true, true); err != nil {
					t.Fatal(err)
				}
			}
			// An operation in flight holds the device in dying.
			if err := d.enter(nil); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				if h != nil {
					h.Close()
					done <- nil
					return
				}
				done <- e.m.Destroy(d)
			}()
			if !waitUntil(func() bool { return !d.Alive() }) {
				t.Fatal("destroy did not start")
			}
			n, err := e.m.Create(j, Tun, -1, IfconfigCreate, Owner{})
			if err != nil {
				d.exit()
				<-done
				t.Fatalf("create while the only device is dying: %v", err)
			}
			if n.DevName() != "tun1" {
				t.Errorf("new device %s, want tun1 (tun0 is still going)", n.DevName())
			}
			// The limit still holds for what is alive.
			if _, err := e.m.Create(j, Tun, -1, IfconfigCreate, Owner{}); !errors.Is(err, ErrLimit) {
				t.Errorf("second live device: %v, want ErrLimit", err)
			}
			d.exit()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if err := e.m.Destroy(n); err != nil {
				t.Fatal(err)
			}
			// Both gone: the limit is free again.
			if _, err := e.m.Create(j, Tun, -1, IfconfigCreate, Owner{}); err != nil {
				t.Fatalf("create after both went: %v", err)
			}
		})
	}
}
