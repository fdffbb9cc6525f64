package driver

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/internal/testenv"
	"github.com/tundevfs/tundevfs/ioctls"
	"github.com/tundevfs/tundevfs/jails"
)

// abandon leaves m as a server killed with SIGKILL leaves its devices:
// nothing is destroyed and no interface is touched. Its watchers stop,
// its fds close (the interfaces live on through the duplicates a test
// made, as through the holder's), its jail holds go and its remove
// callback is deregistered. A device that is dying is left to the destroy
// in flight. Test hook: a real crash needs none of this.
func (m *Manager) abandon() {
	m.Close()
	m.mu.Lock()
	devs := make([]*Device, 0, len(m.all))
	for d := range m.all {
		devs = append(devs, d)
	}
	jss := make([]*jailState, 0, len(m.jails))
	for _, js := range m.jails {
		jss = append(jss, js)
	}
	m.jails = make(map[*jails.Jail]*jailState)
	m.mu.Unlock()
	for _, d := range devs {
		d.mu.Lock()
		if d.state != devAlive {
			d.mu.Unlock()
			continue
		}
		var stop *Handle
		if h := d.open; h != nil && h.state == hOpen {
			h.leaveLocked(hRevoked)
			stop = h
		}
		d.state = devDead
		d.mu.Unlock()
		if stop != nil {
			stop.stopWatch()
		}
		d.closeFile()
		d.jail.Release()
	}
	for _, js := range jss {
		js.watch.stop()
		js.links.Close()
	}
}

// dupFile is a duplicate of d's fd as the holder keeps it, for a device
// whose File() is no more (a dying one).
func dupFile(t *testing.T, d *Device) *os.File {
	t.Helper()
	fd, err := unix.FcntlInt(uintptr(d.fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), d.DevName())
}

// closeGonePeers closes the kernel's end of every fake interface that is
// gone, so that a leak check sees only what the driver holds.
func (s *fakeStack) closeGonePeers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.links {
		if l.peer >= 0 && l.gone() {
			unix.Close(l.peer)
			l.peer = -1
		}
	}
}

// jsonStates is the JSON the daemon would save of an export.
func jsonStates(t *testing.T, devs []DeviceState) []byte {
	t.Helper()
	b, err := json.MarshalIndent(devs, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStateRoundTrip exports a manager's devices in every state, abandons
// it as a crash would, restores them into a new manager on the same
// interfaces, and checks that the new one is the old one: the same
// export, Info, units, names, limit; its open handles carry packets; and
// destroying everything releases every fd.
func TestStateRoundTrip(t *testing.T) {
	e := newFakeEnv(t)
	lim := e.jailWith("lim", jails.Settings{MaxDevices: 3})
	// The leak baseline: jails made, nothing of the driver yet.
	base := testenv.NewBaseline(t, testenv.Self())
	holds := map[*jails.Jail]int{e.host: e.host.Holds(), lim: lim.Holds()}
	a := e.m
	mk := func(j *jails.Jail, drv *Driver, unit int, origin Origin) *Device {
		t.Helper()
		d, err := a.Create(j, drv, unit, origin, Owner{UID: 1, GID: 2, Mode: 0o600})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	open := func(d *Device, pid int) *Handle {
		t.Helper()
		h, err := d.Open(pid)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// closed, chmod'ed and chown'ed
	closed := mk(e.host, Tun, 0, IfconfigCreate)
	closed.SetOwner(Owner{UID: 7, GID: 8, Mode: 0o640}, OwnerSet{UID: true, GID: true, Mode: true})
	// open, IFHEAD, baudrate, TUNSIFPID, TUNSIFMODE, a packet each way
	tunOpen := mk(e.host, Tun, 1, IfconfigCreate)
	must(func() error { hh := open(tunOpen, 100); return hh.SetIfMode(unix.IFF_BROADCAST | unix.IFF_MULTICAST) }())
	hTun := tunOpen.OpenHandle()
	must(hTun.SetIfHead(true))
	must(hTun.SetInfo(ioctls.TunInfo{MTU: 1500, Type: ioctls.IFT_PPP, Baudrate: 9600}))
	must(hTun.SetPID(4321))
	if _, err := hTun.Write(append([]byte{0, 0, 0, 2}, ipv4(31)...)); err != nil {
		t.Fatal(err)
	}
	// open in batch mode, tap with a virtio-net header, remote MAC, link0
	tapBatch := mk(e.host, Tap, 0, DevfsClone)
	tapBatch.Rel(RefClone) // as the fs does once the kernel has the node
	hTap := open(tapBatch, 200)
	must(hTap.SetBatch(true))
	must(hTap.SetVnetHdr(vnetHdrMrgRxbuf))
	must(hTap.SetRemoteMAC(net.HardwareAddr{2, 1, 2, 3, 4, 5}))
	must(tapBatch.SetLink0(true))
	// on the fast path
	fast := mk(e.host, Tun, 2, IfconfigCreate)
	hFastA := open(fast, 300)
	hfd, err := hFastA.FastPath()
	must(err)
	unix.Close(hfd)
	// renamed, closed
	renamed := mk(e.host, Tun, 3, IfconfigCreate)
	e.stack.rename(renamed, "wan0")
	if renamed.Name() != "wan0" {
		t.Fatalf("rename not seen: %s", renamed.Name())
	}
	// a devfs clone the kernel looked up once, transient and open
	vm := mk(e.host, Vmnet, 0, DevfsClone)
	vm.Ref(RefKernel)
	vm.Rel(RefClone)
	hVm := open(vm, 400)
	must(hVm.SetTransient(true, true))
	// two devices in a jail whose limit is 3
	inLim := []*Device{mk(lim, Tap, 1, IfconfigCreate), mk(lim, Tap, 2, IfconfigCreate)}
	// dead, still looked up by the kernel; dead under its open file;
	// dead and looked up, a lookup the fs restore will not give back
	deadRef := mk(e.host, Tun, 6, IfconfigCreate)
	deadRef.Ref(RefKernel)
	must(a.Destroy(deadRef))
	deadOpen := mk(e.host, Tun, 7, IfconfigCreate)
	open(deadOpen, 500)
	must(a.Destroy(deadOpen))
	deadLost := mk(e.host, Tap, 8, IfconfigCreate)
	deadLost.Ref(RefKernel)
	must(a.Destroy(deadLost))
	// dying: an operation in flight holds its destroy
	dying := mk(e.host, Tun, 4, IfconfigCreate)
	must(dying.enter(nil))
	var exitOnce sync.Once
	exitDying := func() { exitOnce.Do(dying.exit) }
	t.Cleanup(exitDying) // a failure must not leave the destroy waiting
	destroyed := make(chan error, 1)
	go func() { destroyed <- a.Destroy(dying) }()
	if !waitUntil(func() bool { return !dying.Alive() }) {
		t.Fatal("destroy did not start")
	}

	statesA, nextA := a.Export()
	jsA := jsonStates(t, statesA)
	if len(statesA) != 12 {
		t.Fatalf("export of %d devices, want 12:\n%s", len(statesA), jsA)
	}
	infoA := make(map[uint64]Info)
	files := make(map[uint64]*os.File)
	for _, d := range a.All() {
		infoA[d.Ino()] = d.Info()
		if !d.Alive() && d != dying {
			continue // dead: no fd
		}
		if d == dying {
			files[d.Ino()] = dupFile(t, d)
			continue
		}
		f := d.File()
		if f == nil {
			t.Fatalf("File() of %s is nil", d.DevName())
		}
		files[d.Ino()] = f
	}
	if dying.File() != nil {
		t.Error("File() of a dying device")
	}
	// The crash: the dying device's destroy in A still finishes, as in a
	// kernel whose last fd of it was the dead server's (the holder's dup
	// keeps the interface).
	a.abandon()
	exitDying()
	must(<-destroyed)

	var states []DeviceState
	must(json.Unmarshal(jsA, &states))
	b := newManager(e.reg, log.New(io.MultiWriter(e.log), "", 0), e.stack)
	t.Cleanup(func() {
		e.reg.Shutdown() // destroys B's devices; a second Shutdown does nothing
		b.Close()
	})
	b.SetNextIno(nextA)
	jailByID := make(map[int]*jails.Jail)
	for _, j := range e.reg.List() {
		jailByID[j.ID()] = j
		must(b.Attach(j))
	}
	renamesB := make(chan Event, 4)
	unsub := b.Subscribe(e.host, func(ev Event) {
		if ev.Kind == Renamed {
			renamesB <- ev
		}
	})
	defer unsub()
	handles := make(map[uint64]*Handle)
	devs := make(map[uint64]*Device)
	for _, st := range states {
		d, h, err := b.Restore(jailByID[st.Jail], st, files[st.Ino])
		if err != nil {
			t.Fatalf("restore %s%d: %v", st.Driver, st.Unit, err)
		}
		if (h != nil) != (st.Open != nil) || (h != nil && d.OpenHandle() != h) {
			t.Fatalf("restore %s: handle %v, state %+v", d.DevName(), h, st.Open)
		}
		devs[d.Ino()] = d
		handles[d.Ino()] = h
	}
	// Units and jail holds are taken as creation takes them.
	perJail := make(map[*jails.Jail]int)
	for _, st := range states {
		if !st.Dead {
			perJail[jailByID[st.Jail]]++
		}
	}
	if b.UnitsInUse() != 9 {
		t.Fatalf("%d units in use after restoring 9 devices that are not dead", b.UnitsInUse())
	}
	for j, n := range holds {
		if j.Holds() != n+perJail[j] {
			t.Fatalf("jail %s holds %d after restoring %d devices, %d before", j.Name(), j.Holds(), perJail[j], n)
		}
	}
	// The fs restore takes a RefKernel per lookup it restores.
	devs[vm.Ino()].Ref(RefKernel)
	devs[deadRef.Ino()].Ref(RefKernel)

	statesB, nextB := b.Export()
	if jsB := jsonStates(t, statesB); !bytes.Equal(jsA, jsB) || nextB != nextA {
		t.Errorf("export of the restored manager differs (next ino %d, was %d):\nA: %s\nB: %s", nextB, nextA, jsA, jsB)
	}
	for ino, want := range infoA {
		switch ino {
		case dying.Ino():
			want.Busy = 0 // the operation in flight was the dead server's
		case deadLost.Ino():
			want.Refs.Kernel, want.Refs.Total = 0, 0 // not given back
		}
		if got := devs[ino].Info(); !reflect.DeepEqual(got, want) {
			t.Errorf("Info of %s:\n got %+v\nwant %+v", want.Name, got, want)
		}
	}

	// A new clone gets the next free unit, not a restored one, and a new
	// inode number.
	nd, err := b.Create(e.host, Tun, -1, DevfsClone, Owner{})
	must(err)
	if nd.DevName() != "tun5" || nd.Ino() <= nextA {
		t.Errorf("new clone %s ino %d, want tun5 above %d", nd.DevName(), nd.Ino(), nextA)
	}
	nd.Rel(RefClone)
	for _, name := range []string{"tun0", "tun1", "wan0", "tap0", "vmnet0"} {
		if d := b.Lookup(e.host, name); d == nil {
			t.Errorf("lookup %s in the restored manager: none", name)
		}
	}
	if _, err := b.Create(e.host, Tap, 0, IfconfigCreate, Owner{}); !errors.Is(err, ErrExists) {
		t.Errorf("create tap0 again: %v, want ErrExists", err)
	}
	// The limit counts the restored devices: one more fits in lim.
	if _, err := b.Create(lim, Tap, -1, IfconfigCreate, Owner{}); err != nil {
		t.Errorf("third device in lim: %v", err)
	}
	if _, err := b.Create(lim, Tap, -1, IfconfigCreate, Owner{}); !errors.Is(err, ErrLimit) {
		t.Errorf("fourth device in lim: %v, want ErrLimit", err)
	}

	// Packets: a blocked read of the restored handle gets what the kernel
	// side sends; a write reaches it.
	hb := handles[tunOpen.Ino()]
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 2048)
		n, err := hb.Read(nil, buf, false)
		if err != nil {
			t.Errorf("read the restored handle: %v", err)
		}
		got <- buf[:n]
	}()
	peer := e.stack.peer(devs[tunOpen.Ino()])
	if _, err := unix.Write(peer, ipv4(32)); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if want := append([]byte{0, 0, 0, unix.AF_INET}, ipv4(32)...); !bytes.Equal(p, want) {
			t.Errorf("read %x, want %x (IFHEAD kept)", p, want)
		}
	case <-time.After(testenv.WaitTimeout):
		t.Fatal("blocked read of the restored handle got nothing")
	}
	// The packet A wrote is still queued at the kernel side, then B's.
	if _, err := hb.Write(append([]byte{0, 0, 0, 2}, ipv4(33)...)); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []int{31, 33} {
		buf := make([]byte, 100)
		n, err := unix.Read(peer, buf)
		if err != nil || !bytes.Equal(buf[:n], ipv4(tag)) {
			t.Errorf("kernel side read %x, %v; want packet %d", buf[:n], err, tag)
		}
	}
	// Batch mode and the virtio-net header are kept.
	tpeer := e.stack.peer(devs[tapBatch.Ino()])
	frame := append(make([]byte, vnetHdrMrgRxbuf), bytes.Repeat([]byte{0xab}, 60)...)
	for i := 0; i < 2; i++ {
		if _, err := unix.Write(tpeer, frame); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 4096)
	n, err := handles[tapBatch.Ino()].ReadBatch(nil, buf, false)
	if err != nil || n != 2*(BatchHdrLen+len(frame)) {
		t.Errorf("batch read %d, %v; want 2 records of %d", n, err, len(frame))
	}
	// The fast path stays: the device file carries nothing.
	if _, err := handles[fast.Ino()].Read(nil, buf, true); !errors.Is(err, ErrFastPath) {
		t.Errorf("read on the fast path: %v, want ErrFastPath", err)
	}
	// The rename watch of the new manager knows the alias: the next
	// rename announces it as the old one.
	e.stack.rename(devs[renamed.Ino()], "wan1")
	select {
	case ev := <-renamesB:
		if ev.Alias != "wan1" || ev.OldAlias != "wan0" {
			t.Errorf("rename event %+v, want wan0 -> wan1", ev)
		}
	case <-time.After(testenv.WaitTimeout):
		t.Fatal("no Renamed event from the restored manager")
	}

	// The dead answer as dead devices do.
	if _, err := handles[deadOpen.Ino()].Read(nil, buf, false); !errors.Is(err, ErrGone) {
		t.Errorf("read a dead device's handle: %v, want ErrGone", err)
	}
	if b.Lookup(e.host, "tun6") != nil || b.Destroy(devs[deadRef.Ino()]) == nil {
		t.Error("a dead device is found, or destroyed again")
	}

	// The dying device's destroy finishes now, and the dead device that
	// got no reference back is freed.
	must(b.FinishRestore())
	if d := devs[dying.Ino()]; d.Info().State != "dead" || b.Lookup(e.host, "tun4") != nil || !e.stack.link(d).gone() {
		t.Errorf("dying device after FinishRestore: %+v", d.Info())
	}
	if slices.Contains(b.All(), devs[deadLost.Ino()]) || !slices.Contains(b.All(), devs[deadRef.Ino()]) {
		t.Error("FinishRestore: the unreferenced dead device is still listed, or the referenced one is not")
	}

	// Everything goes: no fd, unit, jail hold or device is left.
	for _, h := range handles {
		if h != nil {
			h.Close()
		}
	}
	for _, d := range b.All() {
		if d.Alive() {
			must(b.Destroy(d))
		}
	}
	devs[vm.Ino()].Rel(RefKernel)
	devs[deadRef.Ino()].Rel(RefKernel)
	if n := len(b.All()); n != 0 || b.UnitsInUse() != 0 {
		t.Errorf("%d devices and %d units left", n, b.UnitsInUse())
	}
	for j, n := range holds {
		if j.Holds() != n {
			t.Errorf("jail %s holds %d, was %d", j.Name(), j.Holds(), n)
		}
	}
	for _, d := range append(inLim, closed, tunOpen, tapBatch, fast, renamed, vm, dying, deadRef, deadOpen, deadLost) {
		if !e.stack.link(devs[d.Ino()]).gone() {
			t.Errorf("interface of %s still there", d.DevName())
		}
	}
	e.stack.closeGonePeers()
	base.Check(t, "after the restored devices were destroyed")
}

// TestStateRestoreErrors: a record that cannot be restored takes nothing
// and closes the fd it was given.
func TestStateRestoreErrors(t *testing.T) {
	e := newFakeEnv(t)
	d := e.create(Tun, 0)
	states, _ := e.m.Export()
	good := states[0]
	holds := e.host.Holds()
	for _, tc := range []struct {
		name string
		edit func(st *DeviceState)
		want error
	}{
		{"unit taken", func(st *DeviceState) {}, ErrExists},
		{"unknown driver", func(st *DeviceState) { st.Driver = "ppp" }, ErrInvalid},
		{"unit range", func(st *DeviceState) { st.Unit = MaxUnit + 1 }, ErrUnitRange},
		{"no ino", func(st *DeviceState) { st.Ino = 0 }, ErrInvalid},
		{"fast without a handed fd", func(st *DeviceState) { st.Unit = 9; st.Open = &HandleState{Fast: true} }, ErrInvalid},
		{"ifindex taken", func(st *DeviceState) { st.Unit = 9 }, ErrExists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := good
			tc.edit(&st)
			f := d.File()
			_, _, err := e.m.Restore(e.host, st, f)
			if !errors.Is(err, tc.want) {
				t.Fatalf("restore: %v, want %v", err, tc.want)
			}
			if err := f.Close(); !errors.Is(err, os.ErrClosed) {
				t.Errorf("the fd was not closed: %v", err)
			}
			if e.host.Holds() != holds || e.m.UnitsInUse() != 1 || len(e.m.All()) != 1 {
				t.Errorf("holds %d (was %d), units %d, devices %d after a failed restore", e.host.Holds(), holds, e.m.UnitsInUse(), len(e.m.All()))
			}
		})
	}
	if _, _, err := e.m.Restore(e.host, good, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("restore without an fd: %v", err)
	}
	// A jail that is gone.
	j := e.jail("gone")
	if err := e.reg.Remove("gone"); err != nil {
		t.Fatal(err)
	}
	st := good
	st.Unit, st.Ifindex = 11, 9999
	if _, _, err := e.m.Restore(j, st, d.File()); !errors.Is(err, ErrDetached) {
		t.Errorf("restore in a removed jail: %v, want ErrDetached", err)
	}
}

// TestStateSetNextIno: inode numbers never go back, and continue after
// the highest restored.
func TestStateSetNextIno(t *testing.T) {
	e := newFakeEnv(t)
	const n = 1 << 30
	e.m.SetNextIno(n)
	e.m.SetNextIno(10) // never lowers
	if d := e.create(Tun, -1); d.Ino() != n+1 {
		t.Fatalf("ino %d after SetNextIno(%d), want %d", d.Ino(), n, n+1)
	}
	_, next := e.m.Export()
	if next != n+1 {
		t.Fatalf("export's next ino %d, want %d", next, n+1)
	}
}

// TestStateOnChange: every change an export would show calls the
// OnChange function, with no driver lock held (it exports from a second
// goroutine, which a held lock would block); the packet counters do not.
func TestStateOnChange(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(v *stateEnv)               // not counted
		act   func(t *testing.T, v *stateEnv) // counted
		min   int                             // calls at least
	}{
		{"create", nil, func(t *testing.T, v *stateEnv) { v.e.create(Tun, -1) }, 1},
		{"destroy", nil, func(t *testing.T, v *stateEnv) { mustOK(t, v.e.m.Destroy(v.d)) }, 2},
		{"open", nil, func(t *testing.T, v *stateEnv) {
			h, err := v.d.Open(9)
			mustOK(t, err)
			t.Cleanup(h.Close)
		}, 1},
		{"close", openIt, func(t *testing.T, v *stateEnv) { v.h.Close() }, 1},
		{"chmod", nil, func(t *testing.T, v *stateEnv) { v.d.SetOwner(Owner{Mode: 0o644}, OwnerSet{Mode: true}) }, 1},
		{"ifhead", openIt, func(t *testing.T, v *stateEnv) { mustOK(t, v.h.SetIfHead(true)) }, 1},
		{"lmode", openIt, func(t *testing.T, v *stateEnv) { mustOK(t, v.h.SetLinkMode(true)) }, 1},
		{"transient", openIt, func(t *testing.T, v *stateEnv) { mustOK(t, v.h.SetTransient(true, true)) }, 1},
		{"ifmode", openIt, func(t *testing.T, v *stateEnv) { mustOK(t, v.h.SetIfMode(unix.IFF_POINTOPOINT)) }, 1},
		{"pid", openIt, func(t *testing.T, v *stateEnv) { mustOK(t, v.h.SetPID(77)) }, 1},
		{"baudrate", openIt, func(t *testing.T, v *stateEnv) {
			mustOK(t, v.h.SetInfo(ioctls.TunInfo{MTU: 1500, Type: ioctls.IFT_PPP, Baudrate: 1}))
		}, 1},
		{"batch", openIt, func(t *testing.T, v *stateEnv) { mustOK(t, v.h.SetBatch(true)) }, 1},
		{"fast path", openIt, func(t *testing.T, v *stateEnv) {
			fd, err := v.h.FastPath()
			mustOK(t, err)
			unix.Close(fd)
		}, 1},
		{"rename", nil, func(t *testing.T, v *stateEnv) { v.e.stack.rename(v.d, "wan0") }, 1},
		{"tap link0", tapIt, func(t *testing.T, v *stateEnv) { mustOK(t, v.d.SetLink0(true)) }, 1},
		{"tap vnethdr", tapIt, func(t *testing.T, v *stateEnv) { mustOK(t, v.h.SetVnetHdr(vnetHdrLen)) }, 1},
		{"tap remote mac", tapIt, func(t *testing.T, v *stateEnv) {
			mustOK(t, v.h.SetRemoteMAC(net.HardwareAddr{2, 0, 0, 0, 0, 9}))
		}, 1},
		{"transient close", func(v *stateEnv) {
			openIt(v)
			if err := v.h.SetTransient(true, true); err != nil {
				v.e.t.Fatal(err)
			}
		},
			// the close and destroy start in one step, then the end
			func(t *testing.T, v *stateEnv) { v.h.Close() }, 2},
		{"restore", nil, func(t *testing.T, v *stateEnv) {
			st, _ := v.e.m.Export()
			st[0].Unit, st[0].Ifindex, st[0].Ino = 9, 12345, 1<<40
			_, _, err := v.e.m.Restore(v.e.host, st[0], v.d.File())
			mustOK(t, err)
		}, 1},
		{"counters", openIt, func(t *testing.T, v *stateEnv) {
			_, err := v.h.Write(ipv4(31))
			mustOK(t, err)
			unix.Write(v.e.stack.peer(v.d), ipv4(32))
			_, err = v.h.Read(nil, make([]byte, 100), false)
			mustOK(t, err)
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t)
			v := &stateEnv{e: e, d: e.create(Tun, -1)}
			if tc.setup != nil {
				tc.setup(v)
			}
			var calls atomic.Int32
			var locked atomic.Bool
			var wg sync.WaitGroup
			e.m.SetOnChange(func() {
				calls.Add(1)
				done := make(chan struct{})
				wg.Add(1)
				go func() {
					defer wg.Done()
					e.m.Export()
					close(done)
				}()
				select {
				case <-done:
				case <-time.After(testenv.WaitTimeout):
					locked.Store(true) // the export waits for a lock the caller holds
				}
			})
			tc.act(t, v)
			e.m.SetOnChange(nil)
			wg.Wait()
			if n := int(calls.Load()); n < tc.min || (tc.min == 0 && n != 0) {
				t.Errorf("%d OnChange calls, want at least %d (0: none)", n, tc.min)
			}
			if locked.Load() {
				t.Error("OnChange called with a driver lock held")
			}
		})
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// stateEnv is what an OnChange case works on.
type stateEnv struct {
	e *fakeEnv
	d *Device
	h *Handle
}

// tapIt replaces the env's device with an open tap.
func tapIt(v *stateEnv) {
	v.d = v.e.create(Tap, -1)
	openIt(v)
}

// openIt opens the env's device.
func openIt(v *stateEnv) {
	h, err := v.d.Open(1)
	if err != nil {
		v.e.t.Fatal(err)
	}
	v.e.t.Cleanup(h.Close)
	v.h = h
}

// TestStateRenameWhileDown: an interface renamed while no server ran is
// restored under its new name, found by it, and the new manager's rename
// watch announces it as the old alias at the next rename.
func TestStateRenameWhileDown(t *testing.T) {
	e := newFakeEnv(t)
	d := e.create(Tun, 0)
	states, next := e.m.Export()
	f := d.File()
	e.m.abandon()
	e.stack.rename(d, "lan5") // nobody watches

	b := newManager(e.reg, log.New(io.MultiWriter(e.log), "", 0), e.stack)
	t.Cleanup(func() {
		e.reg.Shutdown() // destroys B's devices; a second Shutdown does nothing
		b.Close()
	})
	b.SetNextIno(next)
	mustOK(t, b.Attach(e.host))
	events := make(chan Event, 4)
	unsub := b.Subscribe(e.host, func(ev Event) { events <- ev })
	defer unsub()
	rd, _, err := b.Restore(e.host, states[0], f)
	mustOK(t, err)
	if rd.Name() != "lan5" || b.Lookup(e.host, "lan5") != rd || b.Lookup(e.host, "tun0") != rd {
		t.Fatalf("restored %s named %s; lookups lan5 %v, tun0 %v", rd.DevName(), rd.Name(), b.Lookup(e.host, "lan5"), b.Lookup(e.host, "tun0"))
	}
	e.stack.rename(rd, "lan6")
	select {
	case ev := <-events:
		if ev.Kind != Renamed || ev.OldAlias != "lan5" || ev.Alias != "lan6" {
			t.Errorf("event %+v, want the rename lan5 -> lan6", ev)
		}
	case <-time.After(testenv.WaitTimeout):
		t.Fatal("no Renamed event")
	}
}

// takeover exports e's manager, abandons it as a crash does, and restores
// every device into a new manager, returned with the restored handles by
// inode number. before runs between the export and the abandon.
func takeover(t *testing.T, e *fakeEnv, before func()) (*Manager, map[uint64]*Handle) {
	t.Helper()
	states, next := e.m.Export()
	files := make(map[uint64]*os.File)
	for _, d := range e.m.All() {
		files[d.Ino()] = dupFile(t, d)
	}
	if before != nil {
		before()
	}
	e.m.abandon()
	b := newManager(e.reg, log.New(io.MultiWriter(e.log), "", 0), e.stack)
	t.Cleanup(func() {
		e.reg.Shutdown()
		b.Close()
	})
	b.SetNextIno(next)
	mustOK(t, b.Attach(e.host))
	handles := make(map[uint64]*Handle)
	for _, st := range states {
		_, h, err := b.Restore(e.host, st, files[st.Ino])
		mustOK(t, err)
		handles[st.Ino] = h
	}
	return b, handles
}

// TestStateDyingOpen: a device destroyed while open is restored dying with
// its handle revoked; FinishRestore takes it to dead, and the handle's
// close frees it.
func TestStateDyingOpen(t *testing.T) {
	e := newFakeEnv(t)
	d, _ := e.open(Tun)
	mustOK(t, d.enter(nil))
	destroyed := make(chan error, 1)
	go func() { destroyed <- e.m.Destroy(d) }()
	if !waitUntil(func() bool { return !d.Alive() }) {
		t.Fatal("destroy did not start")
	}
	b, handles := takeover(t, e, nil)
	d.exit()
	mustOK(t, <-destroyed)
	h := handles[d.Ino()]
	if h == nil {
		t.Fatal("no handle restored")
	}
	if _, err := h.Read(nil, make([]byte, 100), false); !errors.Is(err, ErrGone) {
		t.Errorf("read of a revoked handle: %v, want ErrGone", err)
	}
	mustOK(t, b.FinishRestore())
	rd := h.Device()
	if info := rd.Info(); info.State != "dead" || info.Refs.Open != 1 || info.Refs.Total != 1 || !e.stack.link(rd).gone() {
		t.Errorf("after FinishRestore: %+v", info)
	}
	h.Close()
	if n := len(b.All()); n != 0 || b.UnitsInUse() != 0 {
		t.Errorf("%d devices, %d units left after the close", n, b.UnitsInUse())
	}
}

// TestStateFastReopen: a device restored on the fast path carries no
// packets; once closed and opened again it does, as in the old server.
func TestStateFastReopen(t *testing.T) {
	e := newFakeEnv(t)
	d := e.create(Tun, -1)
	h, err := d.Open(1)
	mustOK(t, err)
	fd, err := h.FastPath()
	mustOK(t, err)
	unix.Close(fd)
	b, handles := takeover(t, e, nil)
	hb := handles[d.Ino()]
	rd := hb.Device()
	if !rd.OnFastPath() || !rd.Info().FastPath {
		t.Fatalf("restored device not on the fast path: %+v", rd.Info())
	}
	if _, err := hb.Write(ipv4(40)); !errors.Is(err, ErrFastPath) {
		t.Errorf("write on the fast path: %v, want ErrFastPath", err)
	}
	hb.Close()
	h2, err := rd.Open(2)
	mustOK(t, err)
	defer h2.Close()
	if _, err := unix.Write(e.stack.peer(rd), ipv4(41)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := h2.Read(nil, buf, false)
	if err != nil || !bytes.Equal(buf[:n], ipv4(41)) {
		t.Errorf("read after reopening: %x, %v", buf[:n], err)
	}
	if b.Lookup(e.host, rd.DevName()) != rd {
		t.Error("lookup of the restored device")
	}
}
