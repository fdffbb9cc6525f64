package containers

import (
	"errors"
	"fmt"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/jails"
)

// sameJail says whether the jail named after the container is on the
// container's network namespace already.
func sameJail(socket string, st *specs.State) bool {
	var js []daemon.JailInfo
	if err := daemon.CallInto(socket, daemon.Request{Op: daemon.OpJls}, &js); err != nil {
		return false
	}
	var sb unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", st.Pid), &sb); err != nil {
		return false
	}
	for _, j := range js {
		if j.Name == st.ID && j.NetnsID == sb.Ino {
			return true
		}
	}
	return false
}

// hookRemove removes the container's jail; a jail already gone (its
// process exited first) or a daemon that is not running is success.
func hookRemove(st *specs.State, o HookOptions) error {
	_, err := daemon.Call(o.Socket, daemon.Request{Op: daemon.OpJailRemove, Jail: st.ID})
	if err == nil || errors.Is(err, daemon.ErrNoDaemon) || errors.Is(err, jails.ErrNotFound) {
		return nil
	}
	return fmt.Errorf("oci-hook: container %s: %w", st.ID, err)
}

// ensureDaemon starts a daemon with the shared per-netns mount if none
// answers at o.Socket, and makes sure the per-netns mount is at
// o.NetnsDev.
func ensureDaemon(o HookOptions) error {
	_, err := daemon.Call(o.Socket, daemon.Request{Op: daemon.OpPing})
	if errors.Is(err, daemon.ErrNoDaemon) {
		err = spawnDaemon(o)
	}
	if err != nil {
		return err
	}
	if o.NetnsDev == "" {
		return nil
	}
	_, err = daemon.Call(o.Socket, daemon.Request{Op: daemon.OpPerNetnsEnsure, Dir: o.NetnsDev})
	return err
}

// spawnDaemon starts `tundevfs daemon --netns-dev DIR` (daemon.Spawn: in
// its own session, its log in its state directory) and waits until it
// answers. It does not exit when idle: the shared mount is the source of
// every container's bind mount and must outlive them.
func spawnDaemon(o HookOptions) error {
	var args []string
	if o.NetnsDev != "" {
		args = append(args, "--netns-dev", o.NetnsDev)
	}
	return daemon.Spawn(o.Binary, o.Socket, 5*time.Second, args...)
}
