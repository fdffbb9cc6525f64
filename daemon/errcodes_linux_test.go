package daemon_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/driver"
	"github.com/tundevfs/tundevfs/jails"
)

// TestErrorsReachClients: a real daemon's failures reach daemon.Call as
// their sentinels, with the daemon's message unchanged, and the CLI prints
// the same messages as before error codes (issue 14, 6). The jail's
// max_devices= reaches the driver through its typed settings (issue 14, 4).
func TestErrorsReachClients(t *testing.T) {
	_, d := newDaemon(t)
	d.Call(t, daemon.Request{Op: daemon.OpJailCreate, Args: []string{"name=one", "vnet", "persist", "max_devices=1"}}, nil)
	t.Cleanup(func() { daemon.Call(d.Socket, daemon.Request{Op: daemon.OpJailRemove, Jail: "one"}) })
	d.Call(t, daemon.Request{Op: daemon.OpIfconfig, Jail: "one", Args: []string{"tun", "create"}}, nil)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		req  daemon.Request
		want error
		msg  string
	}{
		{"missing jail", daemon.Request{Op: daemon.OpJailRemove, Jail: "nope"}, jails.ErrNotFound, "remove jail nope: no such jail"},
		{"host jail", daemon.Request{Op: daemon.OpJailRemove, Jail: "host"}, jails.ErrHost, "jail -r host: the host jail is removed only when the daemon stops"},
		{"name in use", daemon.Request{Op: daemon.OpJailCreate, Args: []string{"name=one", "persist"}}, jails.ErrExists, "create jail one: jail name in use"},
		{"limit", daemon.Request{Op: daemon.OpIfconfig, Jail: "one", Args: []string{"tun", "create"}}, driver.ErrLimit, "device limit reached (1 devices)"},
		{"no device", daemon.Request{Op: daemon.OpIfconfig, Jail: "one", Args: []string{"tap9", "destroy"}}, driver.ErrNoDevice, "ifconfig: "},
		{"not mounted", daemon.Request{Op: daemon.OpUmount, Dir: dir}, daemon.ErrNotMounted, "umount " + dir + ": not a tundevfs mount of this daemon"},
		{"unknown op", daemon.Request{Op: "frob"}, daemon.ErrUnknownOp, `bad request: unknown op "frob"`},
		{"field the op does not take", daemon.Request{Op: daemon.OpJls, Jail: "x"}, daemon.ErrBadRequest, `bad request: jls takes no "jail"`},
	} {
		_, err := daemon.Call(d.Socket, tc.req)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.want, tc.msg)
		}
	}
	// The CLI's words are the daemon's.
	out, err := d.CLI("jail", "-r", "nope")
	if err == nil || strings.TrimSpace(out) != "tundevfs: remove jail nope: no such jail" {
		t.Errorf("jail -r nope: %q %v", out, err)
	}
	out, err = d.CLI("umount", dir)
	if err == nil || strings.TrimSpace(out) != "tundevfs: umount "+dir+": not a tundevfs mount" {
		t.Errorf("umount of a plain directory: %q %v", out, err)
	}
	// jls -d and command= use the explicit fields.
	if out, err := d.CLI("jls", "-d"); err != nil || !strings.Contains(out, "one") {
		t.Errorf("jls -d: %q %v", out, err)
	}
	if out, err := d.CLI("jail", "-c", "name=cmd", "vnet", "command=true"); err != nil {
		t.Errorf("jail -c command=true: %q %v", out, err)
	}
	if out, err := d.CLI("jls"); err != nil || strings.Contains(out, "cmd") {
		t.Errorf("the command's jail is still listed after it exited: %q %v", out, err)
	}
}
