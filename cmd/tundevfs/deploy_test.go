package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/internal/itest"
)

// TestGenDocs: gen-docs writes one man page per command the user can run,
// naming every flag --help names, and the three completions.
func TestGenDocs(t *testing.T) {
	dir := t.TempDir()
	man, compl := filepath.Join(dir, "man"), filepath.Join(dir, "completions")
	if err := run([]string{"gen-docs", "--man", man, "--completions", compl}); err != nil {
		t.Fatal(err)
	}
	pages := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c.HasParent() {
			return
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".8"
		b, err := os.ReadFile(filepath.Join(man, name))
		if err != nil {
			t.Errorf("no man page for %q: %v", c.CommandPath(), err)
			return
		}
		pages++
		page := strings.ReplaceAll(string(b), `\-`, "-")
		check := func(f *pflag.Flag) {
			if !f.Hidden && !strings.Contains(page, "--"+f.Name) {
				t.Errorf("%s does not mention --%s", name, f.Name)
			}
		}
		c.NonInheritedFlags().VisitAll(check)
		c.InheritedFlags().VisitAll(check)
		if !strings.Contains(page, c.Short) {
			t.Errorf("%s lacks the command's summary %q", name, c.Short)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	root := newRootCmd()
	root.InitDefaultHelpFlag()
	root.InitDefaultCompletionCmd()
	walk(root)
	if pages < 10 {
		t.Errorf("only %d man pages", pages)
	}
	if _, err := os.Stat(filepath.Join(man, "tundevfs-gen-docs.8")); err == nil {
		t.Error("the hidden gen-docs command has a man page")
	}
	for name, want := range map[string]string{
		"tundevfs.bash": "__start_tundevfs",
		"_tundevfs":     "#compdef tundevfs",
		"tundevfs.fish": "complete -c tundevfs",
	} {
		b, err := os.ReadFile(filepath.Join(compl, name))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("completion %s: %v; want it to contain %q", name, err, want)
		}
	}
}

// TestDaemonNotifiesSystemd: `tundevfs daemon` under a NOTIFY_SOCKET (as a
// Type=notify unit runs it) sends READY=1 once its control socket answers,
// and STOPPING=1 when SIGTERM starts its shutdown.
func TestDaemonNotifiesSystemd(t *testing.T) {
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	bin := itest.Binary(t)
	dir := t.TempDir()
	notifyPath := filepath.Join(dir, "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	sock := filepath.Join(dir, "tundevfs.sock")
	cmd := ns.Command(bin, "--socket", sock, "daemon")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notifyPath)
	exited, waitErr := startLogged(t, cmd, "daemon")

	recv := func(want string) {
		t.Helper()
		buf := make([]byte, 4096)
		notify.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, err := notify.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		msg := string(buf[:n])
		if !strings.Contains("\n"+msg+"\n", "\n"+want+"\n") {
			t.Fatalf("notification %q, want %s", msg, want)
		}
	}
	recv("READY=1")
	if _, err := daemon.Call(sock, daemon.Request{Op: "ping"}); err != nil {
		t.Fatalf("READY=1 sent, but the control socket does not answer: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	recv("STOPPING=1")
	select {
	case <-exited:
		if *waitErr != nil {
			t.Fatalf("daemon exit: %v", *waitErr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not exit on SIGTERM")
	}
}

// kubelet is the kubelet's registration service for the command test.
type kubelet struct {
	pluginapi.UnimplementedRegistrationServer
	regs chan *pluginapi.RegisterRequest
}

func (k *kubelet) Register(_ context.Context, r *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	k.regs <- r
	return &pluginapi.Empty{}, nil
}

// TestK8sDevicePluginCommand runs `tundevfs k8s-device-plugin` against a
// registration server (the kubelet's side, from the generated interface)
// and a real daemon: it registers, reports its slots Healthy, answers
// Allocate with the CDI name, turns Unhealthy when the daemon stops, and
// removes its socket on SIGTERM.
func TestK8sDevicePluginCommand(t *testing.T) {
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	d := itest.StartDaemon(t, ns)
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "kubelet.sock"))
	if err != nil {
		t.Fatal(err)
	}
	k := &kubelet{regs: make(chan *pluginapi.RegisterRequest, 4)}
	srv := grpc.NewServer()
	pluginapi.RegisterRegistrationServer(srv, k)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)

	cmd := exec.Command(d.Bin, "--socket", d.Socket, "k8s-device-plugin", "--kubelet-dir", dir, "--devices", "4", "--interval", "100ms")
	exited, waitErr := startLogged(t, cmd, "plugin")

	var r *pluginapi.RegisterRequest
	select {
	case r = <-k.regs:
	case <-time.After(20 * time.Second):
		t.Fatal("the plugin did not register")
	}
	if r.ResourceName != "tundevfs.dev/tun" || r.Version != "v1beta1" {
		t.Fatalf("registration %+v", r)
	}
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, r.Endpoint), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := pluginapi.NewDevicePluginClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream, err := c.ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	expect := func(health string) {
		t.Helper()
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("ListAndWatch: %v", err)
		}
		if len(resp.Devices) != 4 {
			t.Fatalf("%d devices, want 4", len(resp.Devices))
		}
		for _, dev := range resp.Devices {
			if dev.Health != health {
				t.Fatalf("device %s is %s, want %s", dev.ID, dev.Health, health)
			}
		}
	}
	expect("Healthy")
	resp, err := c.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"tun-0", "tun-3"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if cdi := resp.ContainerResponses[0].CdiDevices; len(cdi) != 1 || cdi[0].Name != "tundevfs.dev/tun=default" {
		t.Fatalf("Allocate: CDI devices %v, want tundevfs.dev/tun=default", cdi)
	}

	d.Stop(t)
	expect("Unhealthy")

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if *waitErr != nil {
			t.Fatalf("plugin exit: %v", *waitErr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the plugin did not exit on SIGTERM")
	}
	if _, err := os.Stat(filepath.Join(dir, r.Endpoint)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("plugin socket left behind: %v", err)
	}
}

// waitCmd waits for cmd in the background: exited is closed once it has
// exited, and *err is then Wait's result.
func waitCmd(cmd *exec.Cmd) (exited <-chan struct{}, err *error) {
	done := make(chan struct{})
	err = new(error)
	go func() { *err = cmd.Wait(); close(done) }()
	return done, err
}

// startLogged starts cmd with its output kept, and at cleanup kills it
// unless it has exited and logs that output (as what's log) if the test
// failed.
func startLogged(t *testing.T, cmd *exec.Cmd, what string) (exited <-chan struct{}, err *error) {
	t.Helper()
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited, err = waitCmd(cmd)
	t.Cleanup(func() {
		killCmd(t, cmd, exited)
		if t.Failed() {
			t.Logf("%s log:\n%s", what, log.String())
		}
	})
	return exited, err
}

// killCmd kills cmd (which the test started) unless it has exited.
func killCmd(t *testing.T, cmd *exec.Cmd, exited <-chan struct{}) {
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Kill()
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Errorf("%s (pid %d) did not exit on SIGKILL", cmd.Path, cmd.Process.Pid)
	}
}
