package driver

import (
	"errors"
	"net"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/ioctls"
)

// TestIoctlDriverCheck: every request answers ErrNoIoctl on the drivers
// FreeBSD's tunioctl() does not take it for.
func TestIoctlDriverCheck(t *testing.T) {
	l3only := map[string]func(h *Handle) error{
		"TUNSIFHEAD": func(h *Handle) error { return h.SetIfHead(true) },
		"TUNGIFHEAD": func(h *Handle) error { _, err := h.IfHead(); return err },
		"TUNSLMODE":  func(h *Handle) error { return h.SetLinkMode(true) },
		"TUNSIFMODE": func(h *Handle) error { return h.SetIfMode(unix.IFF_POINTOPOINT) },
		"TUNSIFPID":  func(h *Handle) error { return h.SetPID(1) },
	}
	l2only := map[string]func(h *Handle) error{
		"TAPSVNETHDR":       func(h *Handle) error { return h.SetVnetHdr(0) },
		"TAPGVNETHDR":       func(h *Handle) error { _, err := h.VnetHdr(); return err },
		"TAPSIFADDR":        func(h *Handle) error { return h.SetRemoteMAC(net.HardwareAddr{2, 0, 0, 0, 0, 1}) },
		"TAPGIFADDR":        func(h *Handle) error { _, err := h.RemoteMAC(); return err },
		"VMIO_SIOCSIFFLAGS": func(h *Handle) error { return h.SetVMIOFlags(0) },
	}
	for _, drv := range Drivers {
		e := newFakeEnv(t)
		_, h := e.open(drv)
		for name, fn := range l3only {
			if err := fn(h); errors.Is(err, ErrNoIoctl) != drv.IsL2() {
				t.Errorf("%s on %s: %v", name, drv.Name, err)
			}
		}
		for name, fn := range l2only {
			if err := fn(h); errors.Is(err, ErrNoIoctl) == drv.IsL2() {
				t.Errorf("%s on %s: %v", name, drv.Name, err)
			}
		}
	}
}

func TestIoctlIfHeadLinkMode(t *testing.T) {
	e := newFakeEnv(t)
	d, h := e.open(Tun)
	if err := h.SetIfHead(true); err != nil {
		t.Fatal(err)
	}
	if on, err := h.IfHead(); !on || err != nil {
		t.Fatalf("IfHead = %v, %v", on, err)
	}
	// Link-layer mode clears IFHEAD and the other way round.
	if err := h.SetLinkMode(true); err != nil {
		t.Fatal(err)
	}
	if on, _ := h.IfHead(); on || !d.ioc.has(modeLMode) {
		t.Fatal("TUNSLMODE left IFHEAD on")
	}
	if err := h.SetIfHead(true); err != nil || d.ioc.has(modeLMode) {
		t.Fatalf("TUNSIFHEAD left lmode on: %v", err)
	}
	if got := strings.Join(d.Info().Modes, " "); got != "ifhead" {
		t.Fatalf("modes %q", got)
	}
	if err := h.SetLinkMode(false); err != nil {
		t.Fatal(err)
	}
	if err := h.SetIfHead(false); err != nil {
		t.Fatal(err)
	}
	if len(d.Info().Modes) != 0 {
		t.Fatalf("modes %v", d.Info().Modes)
	}
}

func TestIoctlSetIfMode(t *testing.T) {
	for _, tc := range []struct {
		name      string
		flags     int
		up        bool
		err       error
		mode      string
		multicast bool
	}{
		{"pointopoint", unix.IFF_POINTOPOINT, false, nil, "pointopoint", false},
		{"broadcast multicast", unix.IFF_BROADCAST | unix.IFF_MULTICAST, false, nil, "broadcast", true},
		{"both", unix.IFF_BROADCAST | unix.IFF_POINTOPOINT, false, ErrInvalid, "", true},
		{"none", 0, false, ErrInvalid, "", true},
		{"up", unix.IFF_POINTOPOINT, true, ErrIfUp, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t)
			d, h := e.open(Tun)
			e.stack.link(d).multicast = true
			e.setUp(d, tc.up)
			err := h.SetIfMode(tc.flags)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("SetIfMode(%#x) = %v, want %v", tc.flags, err, tc.err)
			}
			if got := strings.Join(d.Info().Modes, " "); got != tc.mode {
				t.Fatalf("modes %q, want %q", got, tc.mode)
			}
			if e.stack.link(d).multicast != tc.multicast {
				t.Fatalf("multicast %v", e.stack.link(d).multicast)
			}
		})
	}
	e := newFakeEnv(t)
	_, h := e.open(Tun)
	e.stack.setFail(func(op, _ string) error {
		if op == "SetMulticast" {
			return errFake
		}
		return nil
	})
	if err := h.SetIfMode(unix.IFF_POINTOPOINT); !errors.Is(err, errFake) || !strings.HasPrefix(err.Error(), "ioctl TUNSIFMODE tun0: ") {
		t.Fatalf("a failing stack: %v", err)
	}
}

func TestIoctlSetPID(t *testing.T) {
	e := newFakeEnv(t)
	d, h := e.open(Tun)
	if err := h.SetPID(4321); err != nil || d.Info().OpenPid != 4321 {
		t.Fatalf("SetPID: %v, pid %d", err, d.Info().OpenPid)
	}
}

func TestIoctlInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		drv  *Driver
		ti   ioctls.TunInfo
		err  error
		mtu  int
	}{
		{"tun mtu", Tun, ioctls.TunInfo{MTU: 1400, Type: ioctls.IFT_PPP, Baudrate: 9600}, nil, 1400},
		{"tun same mtu", Tun, ioctls.TunInfo{MTU: 1500, Type: ioctls.IFT_PPP}, nil, 1500},
		{"tun max", Tun, ioctls.TunInfo{MTU: MRU, Type: ioctls.IFT_PPP}, nil, MRU},
		{"tun above max", Tun, ioctls.TunInfo{MTU: MRU + 1, Type: ioctls.IFT_PPP}, ErrInvalid, 1500},
		{"tun too small", Tun, ioctls.TunInfo{MTU: minMTU - 1, Type: ioctls.IFT_PPP}, ErrInvalid, 1500},
		{"tun wrong type", Tun, ioctls.TunInfo{MTU: 1400, Type: ioctls.IFT_ETHER}, ErrWrongType, 1500},
		{"tap max", Tap, ioctls.TunInfo{MTU: MRU - etherHdrLen - vlanTagLen, Type: ioctls.IFT_ETHER}, nil, MRU - 18},
		{"tap above max", Tap, ioctls.TunInfo{MTU: MRU - etherHdrLen - vlanTagLen + 1, Type: ioctls.IFT_ETHER}, ErrInvalid, 1500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t)
			d, h := e.open(tc.drv)
			err := h.SetInfo(tc.ti)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("SetInfo = %v, want %v", err, tc.err)
			}
			if mtu := e.stack.link(d).MTU; mtu != tc.mtu {
				t.Fatalf("mtu %d, want %d", mtu, tc.mtu)
			}
			ti, err := h.Info()
			if err != nil || int(ti.MTU) != tc.mtu || ti.Type != d.ifType() || (tc.err == nil && ti.Baudrate != tc.ti.Baudrate) {
				t.Fatalf("Info = %+v, %v", ti, err)
			}
		})
	}
	e := newFakeEnv(t)
	_, h := e.open(Tun)
	e.stack.setFail(func(op, _ string) error {
		if op == "Link" || op == "SetMTU" {
			return errFake
		}
		return nil
	})
	if err := h.SetInfo(ioctls.TunInfo{MTU: 1400, Type: ioctls.IFT_PPP}); !errors.Is(err, errFake) {
		t.Fatalf("SetInfo with a failing stack: %v", err)
	}
	if _, err := h.Info(); !errors.Is(err, errFake) {
		t.Fatalf("Info with a failing stack: %v", err)
	}
	if _, err := h.IfName(); !errors.Is(err, errFake) {
		t.Fatalf("IfName with a failing stack: %v", err)
	}
	if err := h.SetVMIOFlags(0); !errors.Is(err, ErrNoIoctl) {
		t.Fatalf("VMIO on a tun: %v", err)
	}
	e.stack.setFail(func(op, _ string) error {
		if op == "SetMTU" {
			return errFake
		}
		return nil
	})
	if err := h.SetInfo(ioctls.TunInfo{MTU: 1400, Type: ioctls.IFT_PPP}); !errors.Is(err, errFake) {
		t.Fatalf("SetInfo with a failing SetMTU: %v", err)
	}
}

func TestIoctlIfName(t *testing.T) {
	e := newFakeEnv(t)
	d, h := e.open(Tun)
	e.stack.mu.Lock()
	e.stack.links[d.ifindex].Name = "wan"
	e.stack.mu.Unlock()
	if name, err := h.IfName(); name != "wan" || err != nil || d.Name() != "wan" || e.m.Lookup(e.host, "wan") != d {
		t.Fatalf("IfName = %q, %v", name, err)
	}
}

func TestIoctlTransient(t *testing.T) {
	e := newFakeEnv(t)
	d, h := e.open(Tap)
	if err := h.SetTransient(true, false); !errors.Is(err, ErrPerm) {
		t.Fatalf("unprivileged TUNSTRANSIENT: %v", err)
	}
	if err := h.SetTransient(true, true); err != nil || !strings.Contains(strings.Join(d.Info().Modes, " "), "transient") {
		t.Fatalf("TUNSTRANSIENT: %v, modes %v", err, d.Info().Modes)
	}
	if err := h.SetTransient(false, true); err != nil || d.ioc.has(modeTransient) {
		t.Fatalf("TUNSTRANSIENT off: %v", err)
	}
	h.Close()
	if !d.Alive() {
		t.Fatal("a device no longer transient was destroyed")
	}
}

func TestIoctlVnetHdr(t *testing.T) {
	e := newFakeEnv(t)
	d, h := e.open(Tap)
	l := e.stack.link(d)
	for _, tc := range []struct {
		n       int
		err     error
		offload bool
	}{
		{vnetHdrLen, nil, true}, {0, nil, false}, {vnetHdrMrgRxbuf, nil, true}, {11, ErrInvalid, true}, {-1, ErrInvalid, true},
	} {
		err := h.SetVnetHdr(tc.n)
		if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
			t.Fatalf("SetVnetHdr(%d) = %v", tc.n, err)
		}
		if l.offload != tc.offload {
			t.Fatalf("SetVnetHdr(%d): offload %v", tc.n, l.offload)
		}
	}
	if n, err := h.VnetHdr(); n != vnetHdrMrgRxbuf || err != nil {
		t.Fatalf("VnetHdr = %d, %v", n, err)
	}
	if got := strings.Join(d.Info().Modes, " "); got != "vnethdr=12" {
		t.Fatalf("modes %q", got)
	}
	e.stack.setFail(func(op, _ string) error {
		if op == "SetOffload" {
			return errFake
		}
		return nil
	})
	if err := h.SetVnetHdr(0); !errors.Is(err, errFake) {
		t.Fatalf("failing offload: %v", err)
	}
	if n, _ := h.VnetHdr(); n != vnetHdrMrgRxbuf {
		t.Fatal("a failed TAPSVNETHDR changed the length")
	}
	// The last close logs what it cannot undo.
	h.Close()
	if !strings.Contains(e.log.String(), "fake failure") {
		t.Fatalf("log %q", e.log.String())
	}
}

func TestIoctlRemoteMAC(t *testing.T) {
	e := newFakeEnv(t)
	d, h := e.open(Tap)
	// It starts as the interface's own.
	if mac, err := h.RemoteMAC(); err != nil || mac.String() != e.stack.link(d).HardwareAddr.String() {
		t.Fatalf("RemoteMAC = %v, %v", mac, err)
	}
	want := net.HardwareAddr{2, 1, 2, 3, 4, 5}
	if err := h.SetRemoteMAC(want); err != nil {
		t.Fatal(err)
	}
	if mac, _ := h.RemoteMAC(); mac.String() != want.String() {
		t.Fatalf("RemoteMAC = %v", mac)
	}
	if err := h.SetRemoteMAC(net.HardwareAddr{1, 2}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short MAC: %v", err)
	}
}

func TestIoctlVMIOFlags(t *testing.T) {
	e := newFakeEnv(t)
	d, h := e.open(Vmnet)
	if err := h.SetVMIOFlags(unix.IFF_DEBUG | unix.IFF_PROMISC | unix.IFF_NOARP | 0x10000); err != nil {
		t.Fatal(err)
	}
	l := e.stack.link(d)
	want := unix.IFF_MULTICAST | unix.IFF_UP | unix.IFF_DEBUG | unix.IFF_NOARP
	if l.flags != want || !l.Up {
		t.Fatalf("flags %#x, want %#x", l.flags, want)
	}
	e.stack.setFail(func(op, _ string) error {
		if op == "Link" {
			return errFake
		}
		return nil
	})
	if err := h.SetVMIOFlags(0); !errors.Is(err, errFake) {
		t.Fatalf("failing stack: %v", err)
	}
}

func TestIoctlBatch(t *testing.T) {
	e := newFakeEnv(t)
	d, h := e.open(Tun)
	if err := h.SetBatch(true); err != nil || !h.Batch() {
		t.Fatal(err)
	}
	e.m.Destroy(d)
	if err := h.SetBatch(false); !errors.Is(err, ErrGone) || !h.Batch() {
		t.Fatalf("TUNSBATCH on a destroyed device: %v", err)
	}
}
