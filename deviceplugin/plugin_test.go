package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// fakeKubelet is the kubelet's side of registration: the generated
// Registration service, served on Dir/kubelet.sock as the kubelet does.
type fakeKubelet struct {
	pluginapi.UnimplementedRegistrationServer
	regs chan *pluginapi.RegisterRequest
	srv  *grpc.Server
}

func (k *fakeKubelet) Register(_ context.Context, r *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	k.regs <- r
	return &pluginapi.Empty{}, nil
}

// startKubelet serves the Registration service on dir/kubelet.sock until
// stop (or the test's end).
func startKubelet(t *testing.T, dir string) *fakeKubelet {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(dir, "kubelet.sock"))
	if err != nil {
		t.Fatal(err)
	}
	k := &fakeKubelet{regs: make(chan *pluginapi.RegisterRequest, 4), srv: grpc.NewServer()}
	pluginapi.RegisterRegistrationServer(k.srv, k)
	go k.srv.Serve(ln)
	t.Cleanup(k.srv.Stop)
	return k
}

// restart does what a kubelet restart does to the directory: the old
// server goes, every socket in the directory is removed, a new kubelet
// listens.
func (k *fakeKubelet) restart(t *testing.T, dir string) *fakeKubelet {
	t.Helper()
	k.srv.Stop()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		os.Remove(filepath.Join(dir, e.Name()))
	}
	return startKubelet(t, dir)
}

func (k *fakeKubelet) waitRegister(t *testing.T) *pluginapi.RegisterRequest {
	t.Helper()
	select {
	case r := <-k.regs:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("the plugin did not register with the kubelet")
		return nil
	}
}

// runPlugin runs a plugin until the test ends; the cleanup checks that
// Run returned and removed its socket.
func runPlugin(t *testing.T, cfg Config) *Plugin {
	t.Helper()
	cfg.Logger = log.New(io.Discard, "", 0)
	if cfg.Interval == 0 {
		cfg.Interval = 20 * time.Millisecond
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		if _, err := os.Stat(p.Socket()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("plugin socket %s left behind (stat: %v)", p.Socket(), err)
		}
	})
	return p
}

// dialPlugin connects to the endpoint a registration named, as the
// kubelet does.
func dialPlugin(t *testing.T, dir string, r *pluginapi.RegisterRequest) pluginapi.DevicePluginClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, r.Endpoint), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pluginapi.NewDevicePluginClient(conn)
}

func listAndWatch(t *testing.T, c pluginapi.DevicePluginClient) grpc.ServerStreamingClient[pluginapi.ListAndWatchResponse] {
	t.Helper()
	// A bound, so that a missing update fails the test instead of
	// hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	stream, err := c.ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

// recvHealth receives one device list and checks it holds n slots, all
// in health.
func recvHealth(t *testing.T, stream grpc.ServerStreamingClient[pluginapi.ListAndWatchResponse], n int, health string) {
	t.Helper()
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("ListAndWatch: %v", err)
	}
	if len(resp.Devices) != n {
		t.Fatalf("ListAndWatch: %d devices, want %d: %v", len(resp.Devices), n, resp.Devices)
	}
	seen := map[string]bool{}
	for _, d := range resp.Devices {
		if d.Health != health {
			t.Errorf("device %s is %s, want %s", d.ID, d.Health, health)
		}
		if seen[d.ID] {
			t.Errorf("device ID %s listed twice", d.ID)
		}
		seen[d.ID] = true
	}
}

func TestRegisterListAndWatchAllocate(t *testing.T) {
	dir := t.TempDir()
	k := startKubelet(t, dir)
	var down atomic.Bool
	runPlugin(t, Config{Dir: dir, Devices: 3, Health: func(context.Context) error {
		if down.Load() {
			return errors.New("no daemon")
		}
		return nil
	}})

	r := k.waitRegister(t)
	if r.Version != "v1beta1" || r.ResourceName != "tundevfs.dev/tun" || r.Endpoint != "tundevfs.sock" {
		t.Fatalf("registration %+v, want version v1beta1, resource tundevfs.dev/tun, endpoint tundevfs.sock", r)
	}
	c := dialPlugin(t, dir, r)
	opts, err := c.GetDevicePluginOptions(context.Background(), &pluginapi.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if opts.PreStartRequired || opts.GetPreferredAllocationAvailable {
		t.Errorf("options %+v: the plugin needs neither PreStartContainer nor preferred allocation", opts)
	}
	stream := listAndWatch(t, c)
	recvHealth(t, stream, 3, "Healthy")

	resp, err := c.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{"tun-0", "tun-2"}},
		{DevicesIds: []string{"tun-1"}},
	}})
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	if len(resp.ContainerResponses) != 2 {
		t.Fatalf("Allocate: %d container responses, want 2", len(resp.ContainerResponses))
	}
	for i, cr := range resp.ContainerResponses {
		if len(cr.CdiDevices) != 1 || cr.CdiDevices[0].Name != "tundevfs.dev/tun=default" {
			t.Errorf("container %d: CDI devices %v, want exactly tundevfs.dev/tun=default", i, cr.CdiDevices)
		}
		if got := cr.Annotations["cdi.k8s.io/tundevfs"]; got != "tundevfs.dev/tun=default" {
			t.Errorf("container %d: annotation cdi.k8s.io/tundevfs = %q", i, got)
		}
		if len(cr.Mounts) != 0 || len(cr.Devices) != 0 {
			t.Errorf("container %d: mounts %v devices %v: the CDI spec carries them, not the plugin", i, cr.Mounts, cr.Devices)
		}
	}
	_, err = c.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{"tun-3"}},
	}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("Allocate of an unknown device: %v, want InvalidArgument", err)
	}

	// The daemon stops answering: every slot turns Unhealthy, then
	// Healthy again when it answers.
	down.Store(true)
	recvHealth(t, stream, 3, "Unhealthy")
	down.Store(false)
	recvHealth(t, stream, 3, "Healthy")
}

func TestRegistersAgainWhenKubeletRestarts(t *testing.T) {
	dir := t.TempDir()
	k := startKubelet(t, dir)
	runPlugin(t, Config{Dir: dir, Devices: 2})
	r := k.waitRegister(t)
	recvHealth(t, listAndWatch(t, dialPlugin(t, dir, r)), 2, "Healthy")

	// The restart may remove the socket the plugin has just made (it
	// noticed kubelet.sock go first), as a real kubelet's may: the
	// plugin then registers again within one Interval. So wait for a
	// registration whose endpoint answers.
	k = k.restart(t, dir)
	for attempt := 1; ; attempt++ {
		r = k.waitRegister(t)
		err := listsHealthy(dir, r, 2)
		if err == nil {
			break
		}
		if attempt == 5 {
			t.Fatalf("after the kubelet restart, 5 registrations and no endpoint that answers: %v", err)
		}
	}
}

// listsHealthy dials the endpoint of a registration and checks that
// ListAndWatch reports n healthy slots.
func listsHealthy(dir string, r *pluginapi.RegisterRequest, n int) error {
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, r.Endpoint), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := pluginapi.NewDevicePluginClient(conn).ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		return err
	}
	resp, err := stream.Recv()
	if err != nil {
		return err
	}
	if len(resp.Devices) != n {
		return fmt.Errorf("%d devices, want %d", len(resp.Devices), n)
	}
	for _, d := range resp.Devices {
		if d.Health != pluginapi.Healthy {
			return fmt.Errorf("device %s is %s", d.ID, d.Health)
		}
	}
	return nil
}

func TestRegistersWhenKubeletComesUpLater(t *testing.T) {
	dir := t.TempDir()
	p := runPlugin(t, Config{Dir: dir, Devices: 1})
	// The plugin serves before the kubelet is there; wait for its socket,
	// then start the kubelet.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(p.Socket()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the plugin never made its socket")
		}
		time.Sleep(10 * time.Millisecond)
	}
	k := startKubelet(t, dir)
	r := k.waitRegister(t)
	recvHealth(t, listAndWatch(t, dialPlugin(t, dir, r)), 1, "Healthy")
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Devices: -1},
		{Endpoint: "a/b.sock"},
		{Resource: "tun"},
		{CDIDevice: "tundevfs.dev/tun"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted a bad config", cfg)
		}
	}
}
