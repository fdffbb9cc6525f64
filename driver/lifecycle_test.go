package driver

import (
	"testing"
)

func TestFakeSmoke(t *testing.T) {
	e := newFakeEnv(t)
	d, h := e.open(Tun)
	if d.DevName() != "tun0" {
		t.Fatal(d.DevName())
	}
	if _, err := h.Write([]byte{0x45, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
}
