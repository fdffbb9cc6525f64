package daemon_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
)

// TestUmountAnswersAfterTheDevicesAreGone: when `umount` answers, what
// the unmount entails is done. The last mount of a non-persistent jail
// takes the jail and its devices with it; the last mount of an
// exit-when-idle daemon (the one `tundevfs mount` starts) takes the host
// jail's devices, so no cloned interface is left when umount returns
// (scripts/demo.sh checks it with `ip link` right after).
func TestUmountAnswersAfterTheDevicesAreGone(t *testing.T) {
	ns, d := newDaemon(t, "--exit-when-idle")
	host := t.TempDir()
	d.Call(t, daemon.Request{Op: "mount", Dir: host}, nil)
	// Enough devices that destroying them takes a while.
	const n = 16
	for i := 0; i < n; i++ {
		d.Call(t, daemon.Request{Op: "ifconfig", Args: []string{fmt.Sprintf("tun%d", i), "create"}}, nil)
	}

	jailDir := t.TempDir()
	d.Call(t, daemon.Request{Op: "jail-create", Args: []string{"name=v", "vnet", "path=" + jailDir}}, nil)
	for i := 0; i < n; i++ {
		d.Call(t, daemon.Request{Op: "ifconfig", Jail: "v", Args: []string{fmt.Sprintf("tap%d", i), "create"}}, nil)
	}
	d.Call(t, daemon.Request{Op: "umount", Dir: jailDir}, nil)
	st := d.Status(t)
	for _, j := range st.Jails {
		if j.Name == "v" {
			t.Errorf("umount of the jail's last mount answered with the jail still there: %+v", j)
		}
	}
	for _, dev := range st.Devices {
		if dev.Jail == "v" {
			t.Errorf("umount of the jail's last mount answered with its device %s still there", dev.Name)
		}
	}

	d.Call(t, daemon.Request{Op: "umount", Dir: host}, nil)
	if links := tunLinks(t, ns.Path); len(links) != 0 {
		t.Errorf("umount of an idle daemon's last mount answered with interfaces left: %v", links)
	}
	if itest.IsMounted(host) {
		t.Errorf("%s is still mounted", host)
	}
	select {
	case <-d.Exited():
	case <-time.After(20 * time.Second):
		t.Fatal("the idle daemon did not exit")
	}
}
