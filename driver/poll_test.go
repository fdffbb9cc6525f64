package driver

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// notified returns a poll notification and a channel it closes... once:
// a second call fails the test.
func notified(t *testing.T) (func(), chan struct{}) {
	ch := make(chan struct{})
	var n int
	return func() {
		n++
		if n > 1 {
			t.Errorf("poll notification called %d times", n)
			return
		}
		close(ch)
	}, ch
}

// within waits for ch, failing the test after a bound that only a hang
// exceeds.
func within(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing after 10s", what)
	}
}

func TestPollTruthful(t *testing.T) {
	e := newFakeEnv(t)
	d, h := e.open(Tun)
	if r, err := h.Poll(nil); r || err != nil {
		t.Fatalf("empty: Poll = %v, %v", r, err)
	}
	// An IPv6 packet the reader would not get does not make it readable.
	e.inject(d, ipv6(48))
	if r, err := h.Poll(nil); r || err != nil {
		t.Fatalf("a packet the reader must not see: Poll = %v, %v", r, err)
	}
	// Order is kept: the stashed packet comes first.
	p1, p2 := ipv4(30), ipv4(31)
	e.inject(d, p1)
	e.inject(d, p2)
	for i := 0; i < 2; i++ {
		if r, err := h.Poll(nil); !r || err != nil {
			t.Fatalf("queued: Poll = %v, %v", r, err)
		}
	}
	buf := make([]byte, 100)
	for _, want := range [][]byte{p1, p2} {
		n, err := h.Read(nil, buf, true)
		if err != nil || !bytes.Equal(buf[:n], want) {
			t.Fatalf("read %x, %v; want %x", buf[:n], err, want)
		}
	}
	if r, _ := h.Poll(nil); r {
		t.Fatal("drained: Poll says readable")
	}
}

func TestPollNotify(t *testing.T) {
	e := newFakeEnv(t)
	d, h := e.open(Tun)
	fn, ch := notified(t)
	if r, err := h.Poll(fn); r || err != nil {
		t.Fatalf("Poll = %v, %v", r, err)
	}
	e.inject(d, ipv4(40))
	within(t, ch, "notification at packet arrival")
	if r, err := h.Poll(nil); !r || err != nil {
		t.Fatalf("after the notification: Poll = %v, %v", r, err)
	}
	// A registration replaces the one before; the packet already stashed
	// notifies at once.
	fn2, ch2 := notified(t)
	if r, _ := h.Poll(fn2); !r {
		t.Fatal("not readable")
	}
	e.inject(d, ipv4(41))
	within(t, ch2, "second notification")
}

func TestPollDestroy(t *testing.T) {
	e := newFakeEnv(t)
	d, h := e.open(Tun)
	fn, ch := notified(t)
	if _, err := h.Poll(fn); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Destroy(d); err != nil {
		t.Fatal(err)
	}
	within(t, ch, "notification at destroy")
	if _, err := h.Poll(nil); !errors.Is(err, ErrGone) {
		t.Fatalf("Poll of a destroyed device: %v, want ErrGone", err)
	}
}

func TestPollClosed(t *testing.T) {
	e := newFakeEnv(t)
	d, h := e.open(Tun)
	fn, ch := notified(t)
	if _, err := h.Poll(fn); err != nil {
		t.Fatal(err)
	}
	h.Close()
	e.inject(d, ipv4(40))
	if _, err := h.Poll(nil); !errors.Is(err, ErrNotOpen) {
		t.Fatalf("Poll of a closed handle: %v, want ErrNotOpen", err)
	}
	if h.setPoll(func() {}) {
		t.Fatal("a closed handle took a poll notification")
	}
	select {
	case <-ch:
		t.Fatal("a closed handle's notification was called")
	default:
	}
}
