package daemon_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
)

// wireguardVersion is the wireguard-go the test builds from the module
// proxy (its main package is the module root).
const wireguardVersion = "golang.zx2c4.com/wireguard@v0.0.0-20231211153847-12269c276173"

// buildWireguard builds wireguard-go into a temporary directory.
func buildWireguard(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go toolchain to build wireguard-go")
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "install", wireguardVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install %s: %v\n%s", wireguardVersion, err, out)
	}
	return filepath.Join(dir, "wireguard")
}

// TestFastPathWireGuard runs the real, unmodified wireguard-go in two
// namespaces, each on the fast-path fd of a tun cloned through a tundevfs
// mount of a jail on that namespace, configured with wg over a veth pair,
// and pings through the tunnel.
func TestFastPathWireGuard(t *testing.T) {
	itest.RequirePrivileged(t)
	for _, tool := range []string{"wg", "ping", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (scripts/install-deps.sh installs wireguard-tools)", tool)
		}
	}
	wgBin := buildWireguard(t)
	_, d := newDaemon(t)
	nss := []*itest.Netns{itest.NewNetns(t), itest.NewNetns(t)}
	// wireguard-go's UAPI socket is /var/run/wireguard/IFNAME.sock, one
	// path for both namespaces: distinct unit numbers.
	unit := 1000 + rand.IntN(20000)
	names := []string{fmt.Sprintf("tun%d", unit), fmt.Sprintf("tun%d", unit+1)}
	veth := []string{fmt.Sprintf("vfp%da", unit), fmt.Sprintf("vfp%db", unit)}
	itest.Run(t, "ip", "link", "add", veth[0], "netns", nss[0].Name, "type", "veth", "peer", "name", veth[1], "netns", nss[1].Name)
	under := []string{"192.168.177.1", "192.168.177.2"}
	over := []string{"10.177.0.1", "10.177.0.2"}

	keys := make([][2]string, 2) // private, public
	for i := range keys {
		priv := strings.TrimSpace(itest.Run(t, "wg", "genkey"))
		cmd := exec.Command("wg", "pubkey")
		cmd.Stdin = strings.NewReader(priv + "\n")
		pub, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = [2]string{priv, strings.TrimSpace(string(pub))}
	}

	for i, ns := range nss {
		ns.Run(t, "ip", "addr", "add", under[i]+"/24", "dev", veth[i])
		ns.Run(t, "ip", "link", "set", veth[i], "up")
		jail := fmt.Sprintf("wg%d", i)
		path := t.TempDir()
		if out, err := d.CLI("jail", "-c", "name="+jail, "vnet="+ns.Path, "persist", "path="+path); err != nil {
			t.Fatalf("jail -c: %v\n%s", err, out)
		}
		t.Cleanup(func() { daemon.Call(d.Socket, daemon.Request{Op: "jail-remove", Jail: jail}) })
		// The shell opens the device (clone), tundevfs trades it for the
		// TUN fd and execs wireguard-go on it: WG_TUN_FD=3.
		script := fmt.Sprintf("exec 3<>%s/%s && WG_TUN_FD=3 exec %s --socket %s fastpath --fd 3 -- %s -f wgtest",
			path, names[i], d.Bin, d.Socket, wgBin)
		cmd := ns.Command("sh", "-c", script)
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sock := "/var/run/wireguard/" + names[i] + ".sock"
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			os.Remove(sock)
			if t.Failed() {
				t.Logf("wireguard-go on %s:\n%s", names[i], log.String())
			}
		})
		if !itest.WaitFor(func() bool { _, err := os.Stat(sock); return err == nil }) {
			out, _ := exec.Command("ps", "-o", "pid,stat,wchan:30,args", "--ppid", fmt.Sprint(cmd.Process.Pid), "-p", fmt.Sprint(cmd.Process.Pid)).CombinedOutput()
			t.Fatalf("wireguard-go on %s did not start:\n%s\n%s", names[i], log.String(), out)
		}
	}
	for i, ns := range nss {
		peer := 1 - i
		keyFile := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(keyFile, []byte(keys[i][0]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		ns.Run(t, "wg", "set", names[i], "private-key", keyFile, "listen-port", "51820",
			"peer", keys[peer][1], "endpoint", under[peer]+":51820", "allowed-ips", over[peer]+"/32")
		ns.Run(t, "ip", "addr", "add", over[i]+"/24", "dev", names[i])
		ns.Run(t, "ip", "link", "set", names[i], "up")
	}
	st := d.Status(t)
	fast := 0
	for _, dev := range st.Devices {
		if dev.FastPath {
			fast++
		}
	}
	if fast != 2 {
		t.Fatalf("%d devices on the fast path, want 2: %+v", fast, st.Devices)
	}
	out, err := nss[0].Command("ping", "-c", "10", "-i", "0.2", "-W", "5", over[1]).CombinedOutput()
	if err != nil || !strings.Contains(string(out), " 0% packet loss") {
		t.Fatalf("ping through the WireGuard tunnel: %v\n%s", err, out)
	}
	t.Logf("%s", lastLines(string(out), 2))
	hs := nss[0].Run(t, "wg", "show", names[0], "latest-handshakes")
	if strings.HasSuffix(strings.TrimSpace(hs), "\t0") {
		t.Fatalf("no handshake: %s", hs)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
