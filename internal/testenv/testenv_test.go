package testenv

import (
	"testing"
	"time"
)

func TestWaitWithin(t *testing.T) {
	n := 0
	if !WaitWithin(time.Second, func() bool { n++; return n == 3 }) {
		t.Fatal("a condition that became true was not seen")
	}
	if WaitWithin(30*time.Millisecond, func() bool { return false }) {
		t.Fatal("a condition that never held was reported")
	}
}
