package driver

import (
	"errors"
	"sync"
	"sync/atomic"
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

// TestLimitConcurrentCreates: creations in flight count against the limit,
// so L+k concurrent creations on a jail with limit L make at most L
// devices, and the others fail with ErrLimit at once.
func TestLimitConcurrentCreates(t *testing.T) {
	const limit, extra = 3, 4
	e := newFakeEnv(t)
	j := e.jailWith("racy", jails.Settings{MaxDevices: limit})
	var entered atomic.Int32
	release := make(chan struct{})
	e.stack.setBeforeCreate(func(string) {
		entered.Add(1)
		<-release
	})
	var returned atomic.Int32
	errs := make(chan error, limit+extra)
	var wg sync.WaitGroup
	for i := 0; i < limit+extra; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.m.Create(j, Tun, -1, IfconfigCreate, Owner{})
			returned.Add(1)
			errs <- err
		}()
	}
	// Every creation is either blocked in the stack or has returned.
	settled := waitUntil(func() bool { return int(entered.Load()+returned.Load()) == limit+extra })
	inFlight := entered.Load()
	close(release)
	wg.Wait()
	close(errs)
	if !settled {
		t.Fatalf("creations did not settle: %d in the stack, %d returned", inFlight, returned.Load())
	}
	if inFlight > limit {
		t.Errorf("%d creations in flight at once on a jail with max_devices=%d", inFlight, limit)
	}
	made, limited := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			made++
		case errors.Is(err, ErrLimit):
			limited++
		default:
			t.Errorf("create: %v", err)
		}
	}
	if made != limit || limited != extra {
		t.Errorf("%d made, %d ErrLimit; want %d and %d", made, limited, limit, extra)
	}
	if n := len(e.m.Devices(j)); n != limit {
		t.Errorf("%d devices in the jail, limit %d", n, limit)
	}
}

// TestLimitFailedCreate: a creation that fails gives its place under the
// limit back, as it gives back its unit.
func TestLimitFailedCreate(t *testing.T) {
	e := newFakeEnv(t)
	j := e.jailWith("one", jails.Settings{MaxDevices: 1})
	e.stack.setFail(func(op, name string) error {
		if op == "Create" {
			return errFake
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		if _, err := e.m.Create(j, Tun, -1, IfconfigCreate, Owner{}); !errors.Is(err, errFake) {
			t.Fatalf("failing create %d: %v, want the stack's error", i, err)
		}
	}
	e.stack.setFail(nil)
	if _, err := e.m.Create(j, Tun, -1, IfconfigCreate, Owner{}); err != nil {
		t.Fatalf("create after failed ones: %v", err)
	}
}
