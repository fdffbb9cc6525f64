package containers_test

import (
	"fmt"
	"os/exec"
	"testing"

	"github.com/tundevfs/tundevfs/internal/testenv"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/jails"
)

// TestRuncFastPath: uid 1000 in a runc container, with only the bind mount
// of the shared per-netns directory, trades its open device file for the
// TUN fd (the daemon's abstract socket in the container's namespace) and
// sends and receives through it; with a user namespace too. When the
// container exits, its jail and everything of it go.
func TestRuncFastPath(t *testing.T) {
	for _, userns := range []bool{false, true} {
		t.Run(fmt.Sprintf("userns=%v", userns), func(t *testing.T) {
			e := newEnv(t)
			tn := e.startTunner(t, ctOpts{uid: 1000, userns: userns})
			for _, args := range [][]string{{"addr", "add", "10.78.0.1", "peer", "10.78.0.2", "dev", "tun0"}, {"link", "set", "tun0", "up"}} {
				if out, err := exec.Command("nsenter", append([]string{"--net=" + tn.netns, "ip"}, args...)...).CombinedOutput(); err != nil {
					t.Fatalf("ip %v: %v %s", args, err, out)
				}
			}
			ns, err := jails.OpenNetns(tn.netns)
			if err != nil {
				t.Fatal(err)
			}
			defer ns.Close()
			var s int
			err = ns.Do(func() error {
				var err error
				if s, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
					return err
				}
				return unix.Bind(s, &unix.SockaddrInet4{Port: 5556, Addr: [4]byte{10, 78, 0, 1}})
			})
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(s)
			unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})

			// Inject through the handed fd.
			if got := tn.say(t, "fastsend 10.78.0.2 10.78.0.1 4444 5556 fast-"+tn.id); got != "sent" {
				t.Fatalf("fastsend: %s", got)
			}
			buf := make([]byte, 256)
			n, _, err := testenv.Recvfrom(s, buf)
			if err != nil || string(buf[:n]) != "fast-"+tn.id {
				t.Fatalf("UDP socket: %q, %v", buf[:max(n, 0)], err)
			}
			st := e.d.Status(t)
			onFast := false
			for _, dv := range st.Devices {
				onFast = onFast || (dv.Jail == tn.id && dv.FastPath)
			}
			if !onFast {
				t.Fatalf("status: the container's device is not on the fast path: %+v", st.Devices)
			}
			// Extract through the handed fd.
			if err := unix.Sendto(s, []byte("back-"+tn.id), 0, &unix.SockaddrInet4{Port: 4445, Addr: [4]byte{10, 78, 0, 2}}); err != nil {
				t.Fatal(err)
			}
			if got := tn.say(t, "fastrecv 4445"); got != "got back-"+tn.id {
				t.Fatalf("fastrecv: %q", got)
			}
			tn.stdin.Close()
			<-tn.done
			if !tn.cmd.ProcessState.Success() {
				t.Fatalf("runc run: %v; stderr: %s", tn.cmd.ProcessState, tn.stderr)
			}
			e.checkGone(t, tn.id, tn.ino)
		})
	}
}
