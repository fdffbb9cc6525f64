package driver

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/internal/testenv"
	"github.com/tundevfs/tundevfs/jails"
)

// readUDP reads packets from h until one carries payload, for up to
// testenv.WaitTimeout (other IPv4 packets the namespace sends are
// skipped).
func readUDP(h *Handle, payload []byte) error {
	cancel := make(chan struct{})
	timer := time.AfterFunc(testenv.WaitTimeout, func() { close(cancel) })
	defer timer.Stop()
	buf := make([]byte, 2048)
	for {
		n, err := h.Read(cancel, buf, false)
		if err != nil {
			return fmt.Errorf("read %s: %w (no packet with %q)", h.Device().DevName(), err, payload)
		}
		if bytes.HasSuffix(buf[:n], payload) {
			return nil
		}
	}
}

// TestStateTakeoverLinux is a takeover on the real stack: manager A makes
// and opens tun0 in a namespace of the test, the interface gets an
// address, A's state is exported and a duplicate of the fd kept (the
// holder's), A is abandoned as SIGKILL leaves it, and manager B restores
// the device: a datagram sent inside the namespace to the tunnel's peer
// is read through B's handle, and B's destroy removes the interface.
func TestStateTakeoverLinux(t *testing.T) {
	testenv.RequirePrivileged(t, tunPath)
	host, err := jails.CurrentNetns()
	if err != nil {
		t.Fatal(err)
	}
	base := testenv.NewBaseline(t, testenv.Self())
	reg := jails.NewRegistry(host, jails.Settings{})
	logger := log.New(io.Discard, "", 0)
	a := NewManager(reg, logger)
	var b *Manager
	defer func() {
		reg.Shutdown()
		if b != nil {
			b.Close()
		}
		base.Check(t, "after shutdown")
	}()
	ns, err := jails.NewNetns()
	if err != nil {
		t.Fatal(err)
	}
	j, err := reg.Create(jails.Options{Name: "takeover", Netns: ns})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Attach(j); err != nil {
		t.Fatal(err)
	}
	d, err := a.Create(j, Tun, -1, IfconfigCreate, Owner{Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	h, err := d.Open(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// tun0 10.77.0.1 -> 10.77.0.2, up, and a UDP socket in the namespace.
	sock := -1
	err = j.Netns().Do(func() error {
		l, err := netlink.LinkByName(d.DevName())
		if err != nil {
			return err
		}
		addr := &netlink.Addr{
			IPNet: &net.IPNet{IP: net.IPv4(10, 77, 0, 1), Mask: net.CIDRMask(32, 32)},
			Peer:  &net.IPNet{IP: net.IPv4(10, 77, 0, 2), Mask: net.CIDRMask(32, 32)},
		}
		if err := netlink.AddrAdd(l, addr); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		sock, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sock)
	send := func(payload string) {
		t.Helper()
		to := &unix.SockaddrInet4{Port: 9, Addr: [4]byte{10, 77, 0, 2}}
		if err := unix.Sendto(sock, []byte(payload), 0, to); err != nil {
			t.Fatalf("send %q: %v", payload, err)
		}
	}
	send("before the crash")
	if err := readUDP(h, []byte("before the crash")); err != nil {
		t.Fatal(err)
	}

	states, next := a.Export()
	if len(states) != 1 || states[0].Open == nil {
		t.Fatalf("export %+v", states)
	}
	f := d.File() // the holder's copy
	if f == nil {
		t.Fatal("File() is nil")
	}
	a.abandon()

	b = NewManager(reg, logger)
	b.SetNextIno(next)
	if err := b.Attach(j); err != nil {
		t.Fatal(err)
	}
	db, hb, err := b.Restore(j, states[0], f)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.FinishRestore(); err != nil {
		t.Fatal(err)
	}
	// Sent before B reads: the watcher finds a packet already queued.
	send("after the takeover")
	if err := readUDP(hb, []byte("after the takeover")); err != nil {
		t.Fatal(err)
	}
	// A blocked read wakes for the next one.
	got := make(chan error, 1)
	go func() { got <- readUDP(hb, []byte("while blocked")) }()
	time.Sleep(50 * time.Millisecond) // let it block; it also works if not
	send("while blocked")
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if info := db.Info(); info.Name != "tun0" || !info.Open || info.RxPackets < 3 {
		t.Errorf("restored device %+v", info)
	}

	hb.Close()
	if err := b.Destroy(db); err != nil {
		t.Fatal(err)
	}
	err = j.Netns().Do(func() error {
		_, err := netlink.LinkByName("tun0")
		return err
	})
	if err == nil {
		t.Error("tun0 still there after the restored device was destroyed")
	}
}
