package jails

import (
	"errors"
	"testing"
	"time"

	"github.com/tundevfs/tundevfs/internal/testenv"
)

// Issue 10, defect 9: the daemon (its command's pidfd fired) and the
// client (jail -r after its command) may remove a jail at once. Each
// Remove returns only once the jail is gone, so that a jls right after
// never lists it.
func TestConcurrentRemoveWaitsForGone(t *testing.T) {
	testenv.RequirePrivileged(t)
	host, err := CurrentNetns()
	if err != nil {
		t.Fatal(err)
	}
	r := NewRegistry(host, Settings{})
	release := make(chan struct{})
	entered := make(chan struct{})
	defer r.RegisterRemove(func(j *Jail) {
		close(entered)
		<-release // a slow remove callback (unmounts)
	})()
	ns, err := NewNetns()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Create(Options{Name: "c7", Netns: ns}); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- r.Remove("c7") }()
	<-entered
	second := make(chan error, 1)
	go func() { second <- r.Remove("c7") }()
	select {
	case err := <-second:
		t.Fatalf("the second Remove returned (%v) while the first was under way", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := r.Get("c7"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("jail still listed after both Removes: %v", err)
	}
}
