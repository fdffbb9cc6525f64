package driver

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/jails"
)

// events records a jail's events.
type events struct {
	mu  sync.Mutex
	evs []Event
}

func (e *fakeEnv) record(j *jails.Jail) *events {
	r := new(events)
	unsub := e.m.Subscribe(j, func(ev Event) {
		r.mu.Lock()
		r.evs = append(r.evs, ev)
		r.mu.Unlock()
	})
	e.t.Cleanup(unsub)
	return r
}

func (r *events) kinds() []EventKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []EventKind
	for _, ev := range r.evs {
		out = append(out, ev.Kind)
	}
	return out
}

func TestCreateUnits(t *testing.T) {
	e := newFakeEnv(t)
	evs := e.record(e.host)
	all := e.record(nil)
	d0 := e.create(Tun, -1)
	d5 := e.create(Tun, 5)
	d1 := e.create(Tun, -1)
	t0 := e.create(Tap, -1)
	for d, want := range map[*Device]string{d0: "tun0", d5: "tun5", d1: "tun1", t0: "tap0"} {
		if d.DevName() != want || d.Name() != want {
			t.Fatalf("device %s named %s, want %s", d.DevName(), d.Name(), want)
		}
	}
	if n := e.m.UnitsInUse(); n != 4 {
		t.Fatalf("UnitsInUse = %d", n)
	}
	if _, err := e.m.Create(e.host, Tun, 5, IfconfigCreate, Owner{}); !errors.Is(err, ErrExists) {
		t.Fatalf("second tun5: %v, want ErrExists", err)
	}
	for _, u := range []int{MaxUnit + 1, -2} {
		if _, err := e.m.Create(e.host, Tun, u, IfconfigCreate, Owner{}); !errors.Is(err, ErrUnitRange) {
			t.Fatalf("unit %d: %v, want ErrUnitRange", u, err)
		}
	}
	devs := e.m.Devices(e.host)
	var names []string
	for _, d := range devs {
		names = append(names, d.DevName())
	}
	if got := strings.Join(names, " "); got != "tap0 tun0 tun5 tun1" {
		t.Fatalf("Devices = %s", got)
	}
	if len(e.m.All()) != 4 {
		t.Fatalf("All = %d devices", len(e.m.All()))
	}
	if got := evs.kinds(); len(got) != 4 || len(all.kinds()) != 4 {
		t.Fatalf("events %v", got)
	}
	if e.m.ByIno(d5.Ino()) != d5 || e.m.ByIno(1) != nil {
		t.Fatal("ByIno")
	}
	// A tap's MAC is the stable one.
	if l := e.stack.link(t0); l.HardwareAddr.String() != stableMAC(e.host.Name(), "tap0").String() {
		t.Fatalf("tap0 MAC %v", l.HardwareAddr)
	}
	if err := e.m.DestroyByName(e.host, "tun0"); err != nil {
		t.Fatal(err)
	}
	if d := e.create(Tun, -1); d.DevName() != "tun0" {
		t.Fatalf("after destroying tun0 the lowest free unit is %s", d.DevName())
	}
	if err := e.m.DestroyByName(e.host, "tun77"); !errors.Is(err, ErrNoDevice) {
		t.Fatalf("destroy tun77: %v", err)
	}
}

func TestCreateFailures(t *testing.T) {
	e := newFakeEnv(t)
	// A name held by an interface tundevfs did not make is skipped by the
	// bare name and refused by the unit's name.
	e.stack.setFail(func(op, name string) error {
		if op == "Create" && name == "tun0" {
			return ErrNameTaken
		}
		return nil
	})
	if d := e.create(Tun, -1); d.DevName() != "tun1" {
		t.Fatalf("clone skipped to %s, want tun1", d.DevName())
	}
	if _, err := e.m.Create(e.host, Tun, 0, IfconfigCreate, Owner{}); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("tun0: %v, want ErrNameTaken", err)
	}
	// A failed creation gives the unit and the jail hold back.
	e.stack.setFail(func(op, name string) error {
		if op == "Create" {
			return errFake
		}
		return nil
	})
	holds := e.host.Holds()
	if _, err := e.m.Create(e.host, Tap, -1, DevfsClone, Owner{}); !errors.Is(err, errFake) {
		t.Fatalf("create: %v", err)
	}
	if e.m.UnitsInUse() != 1 || e.host.Holds() != holds {
		t.Fatalf("units %d holds %d after a failed create", e.m.UnitsInUse(), e.host.Holds())
	}
	// A jail whose namespace cannot be attached.
	e.stack.setFail(func(op, name string) error {
		if op == "Attach" || op == "Watch" {
			return errFake
		}
		return nil
	})
	j := e.jail("noattach")
	if _, err := e.m.Create(j, Tun, -1, IfconfigCreate, Owner{}); !errors.Is(err, errFake) {
		t.Fatalf("create in a jail that cannot attach: %v", err)
	}
	if err := e.m.Attach(j); !errors.Is(err, errFake) {
		t.Fatalf("Attach to a jail that cannot attach: %v", err)
	}
	e.stack.setFail(func(op, name string) error {
		if op == "Watch" {
			return errFake
		}
		return nil
	})
	if _, err := e.m.Create(j, Tun, -1, IfconfigCreate, Owner{}); !errors.Is(err, errFake) {
		t.Fatalf("create in a jail that cannot watch: %v", err)
	}
	e.stack.setFail(nil)
	// The limit is the jail's max_devices setting.
	one := e.jailWith("one", jails.Settings{MaxDevices: 1})
	if _, err := e.m.Create(one, Tun, -1, IfconfigCreate, Owner{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Create(one, Tun, -1, IfconfigCreate, Owner{}); !errors.Is(err, ErrLimit) {
		t.Fatalf("over the limit: %v, want ErrLimit", err)
	}
	// 0 is the default limit.
	if _, err := e.m.Create(j, Tun, -1, IfconfigCreate, Owner{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Create(j, Tun, -1, IfconfigCreate, Owner{}); err != nil {
		t.Fatalf("limit 0 is the default limit: %v", err)
	}
}

func TestUnitsPerNamespace(t *testing.T) {
	e := newFakeEnv(t)
	// Two jails sharing the host's namespace share its units.
	a, b := e.jail("a"), e.jail("b")
	if _, err := e.m.Create(a, Tun, 3, IfconfigCreate, Owner{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Create(b, Tun, 3, IfconfigCreate, Owner{}); !errors.Is(err, ErrExists) {
		t.Fatalf("tun3 in a jail sharing the namespace: %v, want ErrExists", err)
	}
	d, err := e.m.Create(b, Tun, -1, IfconfigCreate, Owner{})
	if err != nil || d.DevName() != "tun0" {
		t.Fatalf("clone in b: %v, %v", d, err)
	}
	for u := 0; u <= MaxUnit; u++ {
		us := e.m.units[unitKey{Tun, a.Netns().Ino()}]
		if !us.inUse(u) {
			us.set(u)
		}
	}
	if _, err := e.m.Create(a, Tun, -1, IfconfigCreate, Owner{}); !errors.Is(err, ErrNoUnits) {
		t.Fatalf("every unit taken: %v, want ErrNoUnits", err)
	}
}

func TestDevfsCloneRefs(t *testing.T) {
	e := newFakeEnv(t)
	d, err := e.m.Create(e.host, Tun, -1, DevfsClone, Owner{UID: 5, GID: 6, Mode: 0o640})
	if err != nil {
		t.Fatal(err)
	}
	if r := d.Info().Refs; r.Node != 1 || r.Clone != 1 || r.Total != 2 || d.Info().Origin != "devfs" {
		t.Fatalf("refs %+v origin %s", r, d.Info().Origin)
	}
	// A racing clone of the same unit gets the device that won.
	d2, err := e.m.Create(e.host, Tun, 0, DevfsClone, Owner{})
	if err != nil || d2 != d || d.Info().Refs.Clone != 2 {
		t.Fatalf("second clone of tun0: %v, %v, refs %+v", d2, err, d.Info().Refs)
	}
	d.Rel(RefClone)
	d.Rel(RefClone)
	uid, gid, mode := d.Owner()
	if uid != 5 || gid != 6 || mode != 0o640 {
		t.Fatalf("owner %d %d %o", uid, gid, mode)
	}
	d.SetOwner(Owner{UID: 7, GID: 8, Mode: 0o600}, OwnerSet{UID: true, Mode: true})
	if uid, gid, mode := d.Owner(); uid != 7 || gid != 6 || mode != 0o600 {
		t.Fatalf("after SetOwner: %d %d %o", uid, gid, mode)
	}
	if d.Driver() != Tun || d.Unit() != 0 || d.Jail() != e.host || time.Since(d.Created()) < 0 {
		t.Fatal("accessors")
	}
	// A destroyed device lives on while referenced, answering ErrGone.
	d.Ref(RefKernel)
	if err := e.m.Destroy(d); err != nil {
		t.Fatal(err)
	}
	if d.Alive() || d.Info().State != "dead" || len(e.m.All()) != 1 {
		t.Fatalf("after destroy: alive %v state %s, %d devices", d.Alive(), d.Info().State, len(e.m.All()))
	}
	if _, err := d.Open(1); !errors.Is(err, ErrGone) {
		t.Fatalf("open of a destroyed device: %v", err)
	}
	if err := e.m.Destroy(d); !errors.Is(err, ErrNoDevice) {
		t.Fatalf("second destroy: %v", err)
	}
	d.Rel(RefKernel)
	if len(e.m.All()) != 0 {
		t.Fatal("last reference of a destroyed device did not free it")
	}
	mustPanic(t, "Ref of a freed device", func() { d.Ref(RefKernel) })
	mustPanic(t, "Rel without Ref", func() { d.Rel(RefOpen) })
	if RefNode.String() != "node" || RefOpen.String() != "open" {
		t.Fatal("RefKind names")
	}
}

func mustPanic(t *testing.T, what string, fn func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatalf("%s did not panic", what)
		}
	}()
	fn()
}

func TestOpenExclusive(t *testing.T) {
	e := newFakeEnv(t)
	d, h := e.open(Tun)
	if _, err := d.Open(2); !errors.Is(err, ErrBusy) {
		t.Fatalf("second open: %v, want ErrBusy", err)
	}
	info := d.Info()
	if !info.Open || info.OpenPid != 1234 || info.Refs.Open != 1 || d.OpenHandle() != h || h.Device() != d {
		t.Fatalf("open info %+v", info)
	}
	// Packets queued while closed are stale: the open drops them.
	h.Close()
	h.Close() // once
	e.inject(d, ipv4(30))
	h2, err := d.Open(3)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if _, err := h2.Read(nil, make([]byte, 64), true); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("stale packet read after open: %v", err)
	}
	// The old handle is not the open one.
	if _, err := h.Write(ipv4(30)); !errors.Is(err, ErrNotOpen) {
		t.Fatalf("write on a closed handle: %v", err)
	}
	if _, err := h.Read(nil, make([]byte, 64), true); !errors.Is(err, ErrNotOpen) {
		t.Fatalf("read on a closed handle: %v", err)
	}
	if err := h.SetIfHead(true); !errors.Is(err, ErrNotOpen) {
		t.Fatalf("ioctl on a closed handle: %v", err)
	}
}

func TestLastClose(t *testing.T) {
	for _, tc := range []struct {
		name      string
		drv       *Driver
		link0     bool
		transient bool
		keeps     bool // stays up
		alive     bool
	}{
		{"tun", Tun, false, false, false, true},
		{"tap", Tap, false, false, false, true},
		{"tap link0", Tap, true, false, true, true},
		{"vmnet", Vmnet, false, false, true, true},
		{"tun transient", Tun, false, true, true, false},
		{"vmnet transient", Vmnet, false, true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t)
			evs := e.record(e.host)
			d, h := e.open(tc.drv)
			e.setUp(d, true)
			if tc.link0 {
				if err := e.m.SetLink0ByName(e.host, d.DevName(), true); err != nil || !d.Link0() {
					t.Fatalf("link0: %v", err)
				}
			}
			if tc.transient {
				if err := h.SetTransient(true, true); err != nil {
					t.Fatal(err)
				}
			}
			if d.drv.IsL2() {
				if err := h.SetVnetHdr(vnetHdrLen); err != nil {
					t.Fatal(err)
				}
			}
			e.inject(d, ipv4(30))
			h.Close()
			l := e.stack.link(d)
			if d.Alive() != tc.alive {
				t.Fatalf("alive %v after last close, want %v", d.Alive(), tc.alive)
			}
			if !tc.alive {
				if got := evs.kinds(); len(got) != 2 || got[1] != Destroyed {
					t.Fatalf("events %v", got)
				}
				if !l.gone() {
					t.Fatal("transient interface still there")
				}
				return
			}
			if l.Up != tc.keeps {
				t.Fatalf("up %v after last close, want %v", l.Up, tc.keeps)
			}
			if d.OpenHandle() != nil || d.Info().Refs.Open != 0 {
				t.Fatal("still open")
			}
			if d.drv.IsL2() && (d.ioc.vhdr.Load() != 0 || l.offload) {
				t.Fatalf("virtio-net header %d, offload %v after last close", d.ioc.vhdr.Load(), l.offload)
			}
			if _, err := d.readRaw(make([]byte, 64)); !errors.Is(err, unix.EAGAIN) {
				t.Fatal("queued packet survived the last close")
			}
		})
	}
}

func TestBlockedRead(t *testing.T) {
	type result struct {
		n   int
		err error
	}
	start := func(h *Handle, cancel chan struct{}) chan result {
		ch := make(chan result, 1)
		go func() {
			n, err := h.Read(cancel, make([]byte, 100), false)
			ch <- result{n, err}
		}()
		return ch
	}
	wait := func(t *testing.T, ch chan result) result {
		t.Helper()
		select {
		case r := <-ch:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("read still blocked after 10s")
		}
		return result{}
	}
	t.Run("packet", func(t *testing.T) {
		e := newFakeEnv(t)
		d, h := e.open(Tun)
		ch := start(h, nil)
		e.inject(d, ipv4(33))
		if r := wait(t, ch); r.err != nil || r.n != 33 {
			t.Fatalf("read %d, %v", r.n, r.err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		e := newFakeEnv(t)
		_, h := e.open(Tun)
		cancel := make(chan struct{})
		ch := start(h, cancel)
		close(cancel)
		if r := wait(t, ch); !errors.Is(r.err, ErrInterrupted) {
			t.Fatalf("read: %v, want ErrInterrupted", r.err)
		}
	})
	t.Run("destroy", func(t *testing.T) {
		e := newFakeEnv(t)
		d, h := e.open(Tun)
		ch := start(h, nil)
		if err := e.m.Destroy(d); err != nil {
			t.Fatal(err)
		}
		if r := wait(t, ch); !errors.Is(r.err, ErrGone) {
			t.Fatalf("read: %v, want ErrGone", r.err)
		}
		if _, err := h.Write(ipv4(30)); !errors.Is(err, ErrGone) {
			t.Fatalf("write after destroy: %v", err)
		}
	})
	t.Run("close", func(t *testing.T) {
		e := newFakeEnv(t)
		_, h := e.open(Tun)
		ch := start(h, nil)
		h.Close()
		if r := wait(t, ch); !errors.Is(r.err, ErrNotOpen) {
			t.Fatalf("read: %v, want ErrNotOpen", r.err)
		}
	})
	t.Run("fast path", func(t *testing.T) {
		e := newFakeEnv(t)
		_, h := e.open(Tun)
		ch := start(h, nil)
		fd, err := h.FastPath()
		if err != nil {
			t.Fatal(err)
		}
		closeFd(fd)
		if r := wait(t, ch); !errors.Is(r.err, ErrFastPath) {
			t.Fatalf("read: %v, want ErrFastPath", r.err)
		}
	})
}

// TestDestroyWaitsForBusy: Destroy waits for operations in flight, and a
// second Destroy waits for the first.
func TestDestroyWaitsForBusy(t *testing.T) {
	e := newFakeEnv(t)
	d := e.create(Tun, -1)
	if err := d.enter(nil); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- e.m.Destroy(d) }()
	if !waitUntil(func() bool { return !d.Alive() }) {
		t.Fatal("destroy did not start")
	}
	if err := d.enter(nil); !errors.Is(err, ErrGone) {
		t.Fatalf("enter while dying: %v", err)
	}
	if err := d.SetLink0(true); !errors.Is(err, ErrGone) {
		t.Fatalf("link0 while dying: %v", err)
	}
	second := make(chan error, 1)
	go func() { second <- e.m.Destroy(d) }()
	select {
	case err := <-first:
		t.Fatalf("destroy returned while an operation was in flight: %v", err)
	case err := <-second:
		t.Fatalf("second destroy returned before the first: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if d.Info().State != "dying" || d.Info().Busy != 1 {
		t.Fatalf("info %+v", d.Info())
	}
	d.exit()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; !errors.Is(err, ErrNoDevice) {
		t.Fatalf("second destroy: %v", err)
	}
}

func waitUntil(cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return cond()
}

func TestDetachJail(t *testing.T) {
	e := newFakeEnv(t)
	j := e.jail("gone")
	d, err := e.m.Create(j, Tun, -1, IfconfigCreate, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := d.Open(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Create(j, Tap, -1, IfconfigCreate, Owner{}); err != nil {
		t.Fatal(err)
	}
	if err := e.reg.Remove("gone"); err != nil {
		t.Fatal(err)
	}
	if d.Alive() || len(e.m.Devices(j)) != 0 || e.m.UnitsInUse() != 0 {
		t.Fatal("devices survived their jail")
	}
	if _, err := h.Write(ipv4(30)); !errors.Is(err, ErrGone) {
		t.Fatalf("write after jail removal: %v", err)
	}
	h.Close()
	if _, err := e.m.Create(j, Tun, -1, IfconfigCreate, Owner{}); !errors.Is(err, ErrDetached) {
		t.Fatalf("create in a removed jail: %v", err)
	}
	if err := e.m.Attach(j); !errors.Is(err, ErrDetached) {
		t.Fatalf("Attach to a removed jail: %v", err)
	}
	if e.m.Lookup(j, "tun0") != nil || e.m.Resolve(j, "tun0") != nil {
		t.Fatal("lookup in a removed jail")
	}
	// A jail never used detaches quietly.
	e.jail("unused")
	if err := e.reg.Remove("unused"); err != nil {
		t.Fatal(err)
	}
}

func TestFastPath(t *testing.T) {
	e := newFakeEnv(t)
	d, h := e.open(Tun)
	if err := e.m.Knobs().Set(KnobTunFastpath, "0"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.FastPath(); !errors.Is(err, ErrFastPathOff) {
		t.Fatalf("fast path with the knob off: %v", err)
	}
	e.m.Knobs().Set(KnobTunFastpath, "1")
	fd, err := h.FastPath()
	if err != nil {
		t.Fatal(err)
	}
	defer closeFd(fd)
	fd2, err := h.FastPath()
	if err != nil {
		t.Fatal(err)
	}
	closeFd(fd2)
	if !d.OnFastPath() || !d.Info().FastPath || !strings.Contains(strings.Join(d.Info().Modes, " "), "fastpath") {
		t.Fatalf("info %+v", d.Info())
	}
	if _, err := h.Write(ipv4(30)); !errors.Is(err, ErrFastPath) {
		t.Fatalf("write on the fast path: %v", err)
	}
	if _, err := h.Read(nil, make([]byte, 64), true); !errors.Is(err, ErrFastPath) {
		t.Fatalf("read on the fast path: %v", err)
	}
	if _, err := h.Poll(nil); !errors.Is(err, ErrFastPath) {
		t.Fatalf("poll on the fast path: %v", err)
	}
	// The handed fd carries the packets.
	e.inject(d, ipv4(30))
	if n, err := readFd(fd, make([]byte, 64)); err != nil || n != 30 {
		t.Fatalf("handed fd read %d, %v", n, err)
	}
	// The ioctls keep working.
	if err := h.SetIfHead(true); err != nil {
		t.Fatal(err)
	}
	// Last close ends the fast path; the next open uses the device file.
	h.Close()
	h2, err := d.Open(1)
	if err != nil {
		t.Fatal(err)
	}
	if d.OnFastPath() {
		t.Fatal("still on the fast path after reopening")
	}
	e.inject(d, ipv4(31))
	if n, err := h2.Read(nil, make([]byte, 64), true); err != nil || n != 4+31 { // IFHEAD stays
		t.Fatalf("read after the fast path: %d, %v", n, err)
	}
	h2.Close()
	// Destroy unregisters an interface that was handed out.
	if err := e.m.Destroy(d); err != nil {
		t.Fatal(err)
	}
	if !e.stack.link(d).deleted {
		t.Fatal("a handed-out interface was not unregistered")
	}
}

func TestKnobs(t *testing.T) {
	e := newFakeEnv(t)
	k := e.m.Knobs()
	if got := strings.Join(k.Names(), " "); got != "net.link.tap.devfs_cloning net.link.tap.up_on_open net.link.tap.user_open net.link.tun.devfs_cloning net.link.tun.fastpath" {
		t.Fatalf("Names = %s", got)
	}
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{KnobTapUpOnOpen, "1", true}, {KnobTapUserOpen, "1", true}, {KnobTunDevfsCloning, "0", true},
		{KnobTapDevfsCloning, "0", true}, {KnobTapUpOnOpen, "2", false}, {KnobTapUpOnOpen, "x", false},
		{"net.link.tun.nope", "1", false},
	} {
		if err := k.Set(tc.name, tc.value); (err == nil) != tc.ok {
			t.Fatalf("Set(%s, %s) = %v", tc.name, tc.value, err)
		}
	}
	if v, err := k.Get(KnobTapUpOnOpen); v != 1 || err != nil {
		t.Fatalf("Get = %d, %v", v, err)
	}
	if _, err := k.Get("nope"); err == nil {
		t.Fatal("Get of an unknown knob")
	}
	if !k.TapUpOnOpen() || !k.TapUserOpen() || k.DevfsCloning(Tun) || k.DevfsCloning(Vmnet) || !k.FastPath() {
		t.Fatal("knob values")
	}
	// up_on_open brings a tap up at open, not a tun.
	d, _ := e.open(Tap)
	if !e.stack.link(d).Up {
		t.Fatal("tap not up after open with up_on_open")
	}
	d, _ = e.open(Tun)
	if e.stack.link(d).Up {
		t.Fatal("tun up after open")
	}
}

func TestLookupAndRename(t *testing.T) {
	e := newFakeEnv(t)
	evs := e.record(e.host)
	d := e.create(Tun, -1)
	if e.m.Lookup(e.host, "tun0") != d || e.m.Lookup(e.host, "tun") != nil || e.m.Lookup(e.host, "foo") != nil {
		t.Fatal("Lookup before rename")
	}
	e.stack.rename(d, "foo")
	if d.Name() != "foo" || e.m.Lookup(e.host, "foo") != d || e.m.Lookup(e.host, "tun0") != d {
		t.Fatalf("after rename: name %s", d.Name())
	}
	ev := evs.evs[len(evs.evs)-1]
	if ev.Kind != Renamed || ev.Alias != "foo" || ev.OldAlias != "" || ev.Name != "tun0" {
		t.Fatalf("event %+v", ev)
	}
	// Renaming to a reserved name makes no alias; Resolve still finds it.
	e.stack.rename(d, "null")
	if e.m.Lookup(e.host, "null") != nil || e.m.Resolve(e.host, "null") != d {
		t.Fatal("reserved name")
	}
	if !strings.Contains(strings.Join(d.Info().Modes, " "), "alias-refused") {
		t.Fatalf("modes %v", d.Info().Modes)
	}
	ev = evs.evs[len(evs.evs)-1]
	if ev.Alias != "" || ev.OldAlias != "foo" {
		t.Fatalf("event %+v", ev)
	}
	// A rename the watch has not seen: ResolveRenamed asks the stack.
	e.stack.mu.Lock()
	e.stack.links[d.ifindex].Name = "bar"
	e.stack.mu.Unlock()
	if e.m.Lookup(e.host, "bar") != nil {
		t.Fatal("Lookup found an unseen rename")
	}
	if e.m.ResolveRenamed(e.host, "bar") != d || d.Name() != "bar" {
		t.Fatal("ResolveRenamed")
	}
	for _, name := range []string{"", "tun", "null", "nosuchname", "waytoolonganame0"} {
		if e.m.ResolveRenamed(e.host, name) != nil {
			t.Fatalf("ResolveRenamed(%q) found a device", name)
		}
	}
	if e.m.ResolveRenamed(e.jail("other"), "bar") != nil {
		t.Fatal("ResolveRenamed in another jail")
	}
	// Lost events: a resync reads every name again.
	e.stack.mu.Lock()
	e.stack.links[d.ifindex].Name = "baz"
	e.stack.mu.Unlock()
	e.stack.watching(d).Resync()
	if d.Name() != "baz" || e.m.Lookup(e.host, "baz") != d {
		t.Fatalf("after resync: %s", d.Name())
	}
	// Events of interfaces that are no device are ignored.
	e.stack.watching(d).Renamed(1, "lo")
	e.stack.watching(d).Failed(errFake)
	if !strings.Contains(e.log.String(), "fake failure") {
		t.Fatal("a failed watch was not logged")
	}
	if err := e.m.SetLink0ByName(e.host, "nosuch", true); !errors.Is(err, ErrNoDevice) {
		t.Fatalf("link0 of no device: %v", err)
	}
	// A destroyed device is forgotten by the watch.
	e.m.Destroy(d)
	e.stack.rename(d, "qux")
	if d.Name() == "qux" {
		t.Fatal("a destroyed device followed a rename")
	}
}

func TestDebugLog(t *testing.T) {
	e := newFakeEnv(t)
	_, h := e.open(Tun)
	if err := h.SetDebug(1); err != nil {
		t.Fatal(err)
	}
	if l, err := h.Debug(); l != 1 || err != nil || e.m.Debug() != 1 {
		t.Fatalf("debug %d, %v", l, err)
	}
	if err := h.SetIfHead(true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.log.String(), "ioctl TUNSIFHEAD tun0: ok") {
		t.Fatalf("log: %q", e.log.String())
	}
	e.m.SetDebug(0)
}

// TestFastPathBatch: on the fast path the device file carries no packets,
// in batch mode too (a batch read would take the client's packets).
func TestFastPathBatch(t *testing.T) {
	e := newFakeEnv(t)
	d, h := e.open(Tun)
	if err := h.SetBatch(true); err != nil {
		t.Fatal(err)
	}
	fd, err := h.FastPath()
	if err != nil {
		t.Fatal(err)
	}
	defer closeFd(fd)
	e.inject(d, ipv4(30))
	if n, err := h.ReadBatch(nil, make([]byte, 100), true); !errors.Is(err, ErrFastPath) {
		t.Fatalf("batch read on the fast path = %d, %v; want ErrFastPath", n, err)
	}
	if n, err := h.WriteBatch(encodeBatch([][]byte{ipv4(30)})); !errors.Is(err, ErrFastPath) {
		t.Fatalf("batch write on the fast path = %d, %v; want ErrFastPath", n, err)
	}
	if n, err := readFd(fd, make([]byte, 64)); err != nil || n != 30 {
		t.Fatalf("the client's packet: %d, %v", n, err)
	}
}
