package jails

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tundevfs/tundevfs/internal/testenv"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"test", true}, {"web-1", true}, {"", false}, {"a.b", false},
		{"a/b", false}, {"12", false}, {"a b", false}, {"j12", true},
	} {
		if got := ValidName(tc.name); got != tc.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestLifecycle(t *testing.T) {
	testenv.RequirePrivileged(t)
	host, err := CurrentNetns()
	if err != nil {
		t.Fatal(err)
	}
	// After CurrentNetns: the process's home namespace fd, opened once on
	// first use and kept, is in the baseline.
	testenv.CheckLeaks(t, testenv.Self())
	r := NewRegistry(host, Settings{})
	var mu sync.Mutex
	var order []string
	dereg1 := r.RegisterRemove(func(j *Jail) { mu.Lock(); order = append(order, "first:"+j.Name()); mu.Unlock() })
	dereg2 := r.RegisterRemove(func(j *Jail) { mu.Lock(); order = append(order, "second:"+j.Name()); mu.Unlock() })

	ns, err := NewNetns()
	if err != nil {
		t.Fatal(err)
	}
	if ns.Ino() == host.Ino() {
		t.Fatal("NewNetns returned the host namespace")
	}
	j, err := r.Create(Options{Name: "a", Netns: ns})
	if err != nil {
		t.Fatal(err)
	}
	if j.ID() != 1 || j.State() != Alive {
		t.Fatalf("new jail: jid %d state %v", j.ID(), j.State())
	}
	ns2, _ := NewNetns()
	if _, err := r.Create(Options{Name: "a", Netns: ns2}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	if ns2.Fd() != -1 {
		t.Fatal("a failed Create did not close the namespace it was given")
	}
	if err := j.Hold(); err != nil {
		t.Fatal(err)
	}
	removed := make(chan error, 1)
	go func() { removed <- r.Remove("a") }()
	// Remove waits for the hold; the jail is dying meanwhile and takes
	// no new holds.
	deadline := time.Now().Add(5 * time.Second)
	for j.State() != Dying && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := j.Hold(); !errors.Is(err, ErrDying) {
		t.Fatalf("Hold on a dying jail: %v", err)
	}
	select {
	case <-removed:
		t.Fatal("Remove returned while a hold was outstanding")
	case <-time.After(50 * time.Millisecond):
	}
	j.Release()
	if err := <-removed; err != nil {
		t.Fatal(err)
	}
	if j.State() != Gone || ns.Fd() != -1 {
		t.Fatalf("after Remove: state %v, netns fd %d", j.State(), ns.Fd())
	}
	if _, err := r.Get("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Remove: %v", err)
	}
	if err := r.Remove(HostName); !errors.Is(err, ErrHost) {
		t.Fatalf("Remove(host): %v", err)
	}
	mu.Lock()
	if len(order) != 2 || order[0] != "first:a" || order[1] != "second:a" {
		t.Fatalf("remove callbacks ran as %v", order)
	}
	mu.Unlock()
	dereg2()
	if err := r.Shutdown(); err != nil {
		t.Fatal(err)
	}
	dereg1()
	if host.Fd() != -1 {
		t.Fatal("Shutdown left the host namespace open")
	}
	if _, err := r.Create(Options{Name: "late"}); !errors.Is(err, ErrRegistry) {
		t.Fatalf("Create after Shutdown: %v", err)
	}
}

func TestOpenNetnsRejectsOtherFiles(t *testing.T) {
	testenv.RequirePrivileged(t)
	for _, p := range []string{"/proc/self/ns/mnt", "/etc/hostname"} {
		if _, err := OpenNetns(p); !errors.Is(err, ErrNotNetns) {
			t.Errorf("OpenNetns(%s): %v, want ErrNotNetns", p, err)
		}
	}
	if _, err := OpenNetns("/nonexistent"); err == nil {
		t.Error("OpenNetns of a missing path succeeded")
	}
}
