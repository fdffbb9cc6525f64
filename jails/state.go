package jails

import (
	"fmt"
	"sort"
)

// JailState is a jail as Export saw it, for a new server process that
// takes the jails over (issue 13). Plain data; the namespace travels
// apart, as a file descriptor.
type JailState struct {
	ID       int      `json:"id"`
	Name     string   `json:"name"`
	Persist  bool     `json:"persist"`
	Settings Settings `json:"settings"`
	// NetnsPath is where the namespace came from, for messages.
	NetnsPath string `json:"netns_path"`
}

// Export returns the alive jails but the host, ordered by jid, and the
// next jid. A dying jail is not exported: the server that takes over never
// sees it, and its devices, which the driver exports, go with it.
func (r *Registry) Export() (states []JailState, nextID int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, j := range r.jails {
		if j.IsHost() {
			continue
		}
		j.mu.Lock()
		alive, persist := j.state == Alive, j.persist
		j.mu.Unlock()
		if !alive {
			continue
		}
		states = append(states, JailState{
			ID:        j.id,
			Name:      j.name,
			Persist:   persist,
			Settings:  j.settings.clone(),
			NetnsPath: j.netns.path,
		})
	}
	sort.Slice(states, func(a, b int) bool { return states[a].ID < states[b].ID })
	return states, r.nextID
}

// Restore adds an alive jail as st describes it, on ns (the jail takes
// ownership; on error ns is closed). Its jid is kept, and later jails get
// jids above it.
func (r *Registry) Restore(st JailState, ns *Netns) (*Jail, error) {
	fail := func(err error) (*Jail, error) {
		ns.Close()
		return nil, err
	}
	if !ValidName(st.Name) || st.ID <= 0 {
		return fail(fmt.Errorf("restore jail %q (jid %d): %w", st.Name, st.ID, ErrBadName))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fail(fmt.Errorf("restore jail %s: %w", st.Name, ErrRegistry))
	}
	for _, j := range r.jails {
		if j.name == st.Name || j.id == st.ID {
			return fail(fmt.Errorf("restore jail %s (jid %d): %w", st.Name, st.ID, ErrExists))
		}
	}
	if st.NetnsPath != "" {
		ns.path = st.NetnsPath
	}
	j := &Jail{
		id:       st.ID,
		name:     st.Name,
		netns:    ns,
		persist:  st.Persist,
		settings: st.Settings.clone(),
		gone:     make(chan struct{}),
	}
	r.jails[st.Name] = j
	if r.nextID <= st.ID {
		r.nextID = st.ID + 1
	}
	return j, nil
}

// SetNextID makes later jails' jids start at n at least: a jid is never
// reused across a restart.
func (r *Registry) SetNextID(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n > r.nextID {
		r.nextID = n
	}
}
