// Package deviceplugin is tundevfs's Kubernetes device plugin: it speaks
// the kubelet's device plugin API (k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1)
// over gRPC on unix sockets and advertises one extended resource,
// tundevfs.dev/tun, as a number of interchangeable slots.
//
// Contract:
//   - Run serves the DevicePlugin service on Dir/Endpoint, then registers
//     with the kubelet's Registration service on KubeletSocket. The kubelet
//     dials back, calls ListAndWatch and, for each container that requests
//     the resource, Allocate.
//   - A slot is not a device: every tundevfs device is made on demand when
//     a container opens /dev/tundevfs/tun. Slots only let pods ask for
//     tundevfs and let the scheduler count (a pod may request several).
//   - Allocate answers every container with the one CDI device CDIDevice
//     (tundevfs.dev/tun=default), once however many slots it got, in the
//     CDI field of the response and in the cdi.k8s.io/ annotation that
//     runtimes without the CDI field read; the runtime's CDI spec (written
//     by `tundevfs cdi`) carries the mount and the OCI hook.
//   - Health: every Interval the plugin calls Health. While it fails,
//     ListAndWatch reports every slot Unhealthy (the kubelet then places no
//     new pod needing it on this node); once it succeeds again, Healthy.
//   - The kubelet removes every plugin socket when it starts. Run notices
//     (its socket gone or replaced, or kubelet.sock replaced) within one
//     Interval, serves again on a fresh socket and registers again.
//   - Run returns when its context is done, after removing its socket.
//
// Lock order: Plugin.mu is a leaf; it is never held while sending on a
// stream or calling the kubelet.
package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// Defaults of Config.
const (
	DefaultResource  = "tundevfs.dev/tun"
	DefaultCDIDevice = "tundevfs.dev/tun=default"
	DefaultEndpoint  = "tundevfs.sock"
	DefaultDevices   = 64
	DefaultInterval  = 5 * time.Second
	// CDIAnnotation is the container annotation that carries the CDI
	// device for runtimes that read CDI devices from annotations
	// (containerd 1.7, CRI-O before the CDI field).
	CDIAnnotation = "cdi.k8s.io/tundevfs"
)

// Config configures a Plugin. Zero fields take the defaults.
type Config struct {
	// Dir is the kubelet's device plugin directory
	// (/var/lib/kubelet/device-plugins/).
	Dir string
	// KubeletSocket is the kubelet's registration socket (Dir/kubelet.sock).
	KubeletSocket string
	// Endpoint is the file name of the plugin's socket in Dir.
	Endpoint string
	// Resource is the extended resource advertised (tundevfs.dev/tun).
	Resource string
	// CDIDevice is the fully qualified CDI device name Allocate answers
	// (tundevfs.dev/tun=default).
	CDIDevice string
	// Devices is the number of slots advertised (64).
	Devices int
	// Health reports whether tundevfs can serve; nil means always healthy.
	Health func(context.Context) error
	// Interval is how often Health runs and the sockets are checked (5s).
	Interval time.Duration
	// Logger logs registrations, health changes and kubelet restarts.
	Logger *log.Logger
}

func (c *Config) setDefaults() error {
	if c.Dir == "" {
		c.Dir = pluginapi.DevicePluginPath
	}
	if c.KubeletSocket == "" {
		c.KubeletSocket = filepath.Join(c.Dir, filepath.Base(pluginapi.KubeletSocket))
	}
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	if c.Resource == "" {
		c.Resource = DefaultResource
	}
	if c.CDIDevice == "" {
		c.CDIDevice = DefaultCDIDevice
	}
	if c.Devices == 0 {
		c.Devices = DefaultDevices
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Logger == nil {
		c.Logger = log.New(os.Stderr, "tundevfs k8s-device-plugin: ", log.LstdFlags)
	}
	switch {
	case c.Devices < 1:
		return fmt.Errorf("device plugin: devices %d: need at least 1", c.Devices)
	case strings.Contains(c.Endpoint, "/"):
		return fmt.Errorf("device plugin: endpoint %q: a file name in %s, not a path", c.Endpoint, c.Dir)
	case !strings.Contains(c.Resource, "/"):
		return fmt.Errorf("device plugin: resource %q: need a domain-qualified name such as %s", c.Resource, DefaultResource)
	case !strings.Contains(c.CDIDevice, "="):
		return fmt.Errorf("device plugin: CDI device %q: need a fully qualified name VENDOR/CLASS=NAME such as %s", c.CDIDevice, DefaultCDIDevice)
	}
	return nil
}

// Plugin is the device plugin. It implements pluginapi.DevicePluginServer.
type Plugin struct {
	pluginapi.UnimplementedDevicePluginServer

	cfg Config
	ids map[string]bool // the slot IDs, fixed at New

	mu      sync.Mutex    // guards healthy and changed
	healthy bool          // the last Health result
	changed chan struct{} // closed (and replaced) when healthy changes
}

var _ pluginapi.DevicePluginServer = (*Plugin)(nil)

// New checks cfg and makes a Plugin; Run serves it.
func New(cfg Config) (*Plugin, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	p := &Plugin{cfg: cfg, ids: make(map[string]bool, cfg.Devices), healthy: true, changed: make(chan struct{})}
	for i := range cfg.Devices {
		p.ids[slotID(i)] = true
	}
	return p, nil
}

func slotID(i int) string { return fmt.Sprintf("tun-%d", i) }

// Socket is the path of the plugin's own socket.
func (p *Plugin) Socket() string { return filepath.Join(p.cfg.Dir, p.cfg.Endpoint) }

// Run serves and registers until ctx is done, serving and registering
// again whenever the kubelet restarts. It fails only if it cannot listen.
func (p *Plugin) Run(ctx context.Context) error {
	p.checkHealth(ctx)
	for {
		srv, sock, err := p.serve()
		if err != nil {
			return err
		}
		kubelet, err := p.registerWhenUp(ctx)
		if err == nil {
			p.cfg.Logger.Printf("registered %s (%d devices) with the kubelet at %s; serving %s",
				p.cfg.Resource, p.cfg.Devices, p.cfg.KubeletSocket, p.Socket())
			err = p.watch(ctx, sock, kubelet)
		}
		srv.Stop()
		if ctx.Err() != nil {
			removeIfSame(p.Socket(), sock)
			return nil
		}
		p.cfg.Logger.Printf("%v; serving and registering again", err)
	}
}

// serve listens on a fresh socket and serves the DevicePlugin service on
// it; it returns the socket's identity, to notice when the kubelet
// removes it.
func (p *Plugin) serve() (*grpc.Server, os.FileInfo, error) {
	path := p.Socket()
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("device plugin: listen %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, nil, fmt.Errorf("device plugin: listen %s: %w (is the kubelet's device plugin directory mounted?)", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("device plugin: listen %s: %w", path, err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, p)
	go srv.Serve(ln)
	return srv, st, nil
}

// registerWhenUp registers with the kubelet, trying again every Interval
// while it is not up. It returns the identity of the kubelet's socket it
// registered on.
func (p *Plugin) registerWhenUp(ctx context.Context) (os.FileInfo, error) {
	logged := false
	for {
		st, err := p.register(ctx)
		if err == nil {
			return st, nil
		}
		if !logged {
			p.cfg.Logger.Printf("%v; trying again every %v", err, p.cfg.Interval)
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(p.cfg.Interval):
		}
	}
}

func (p *Plugin) register(ctx context.Context) (os.FileInfo, error) {
	sock := p.cfg.KubeletSocket
	st, err := os.Stat(sock)
	if err != nil {
		return nil, fmt.Errorf("device plugin: register with kubelet: %w", err)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("device plugin: register with kubelet at %s: %w", sock, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     p.cfg.Endpoint,
		ResourceName: p.cfg.Resource,
		Options:      &pluginapi.DevicePluginOptions{},
	})
	if err != nil {
		return nil, fmt.Errorf("device plugin: register with kubelet at %s: %w", sock, err)
	}
	return st, nil
}

// watch checks health and both sockets every Interval until ctx is done
// or the kubelet has restarted.
func (p *Plugin) watch(ctx context.Context, own, kubelet os.FileInfo) error {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		p.checkHealth(ctx)
		if st, err := os.Stat(p.Socket()); err != nil || !os.SameFile(st, own) {
			return errors.New("device plugin: own socket removed (kubelet restarted)")
		}
		if st, err := os.Stat(p.cfg.KubeletSocket); err != nil || !os.SameFile(st, kubelet) {
			return errors.New("device plugin: kubelet socket replaced (kubelet restarted)")
		}
	}
}

// removeIfSame removes path if it is still the socket described by st.
func removeIfSame(path string, st os.FileInfo) {
	if cur, err := os.Stat(path); err == nil && os.SameFile(cur, st) {
		os.Remove(path)
	}
}

// checkHealth runs Health and records a change.
func (p *Plugin) checkHealth(ctx context.Context) {
	var err error
	if p.cfg.Health != nil {
		hctx, cancel := context.WithTimeout(ctx, p.cfg.Interval)
		err = p.cfg.Health(hctx)
		cancel()
	}
	if err != nil && ctx.Err() != nil {
		return // stopping, not unhealthy
	}
	p.setHealthy(err == nil, err)
}

func (p *Plugin) setHealthy(ok bool, why error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.healthy == ok {
		return
	}
	p.healthy = ok
	close(p.changed)
	p.changed = make(chan struct{})
	if ok {
		p.cfg.Logger.Printf("tundevfs answers again: devices healthy")
	} else {
		p.cfg.Logger.Printf("devices unhealthy: %v", why)
	}
}

// devices returns the slots in their current health, and a channel closed
// at the next change.
func (p *Plugin) devices() ([]*pluginapi.Device, <-chan struct{}) {
	p.mu.Lock()
	healthy, changed := p.healthy, p.changed
	p.mu.Unlock()
	health := pluginapi.Healthy
	if !healthy {
		health = pluginapi.Unhealthy
	}
	devs := make([]*pluginapi.Device, p.cfg.Devices)
	for i := range devs {
		devs[i] = &pluginapi.Device{ID: slotID(i), Health: health}
	}
	return devs, changed
}

// GetDevicePluginOptions implements pluginapi.DevicePluginServer: no
// PreStartContainer, no preferred allocation (slots are interchangeable).
func (p *Plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

// ListAndWatch implements pluginapi.DevicePluginServer: the slots, and
// again whenever their health changes, until the kubelet hangs up or the
// server stops.
func (p *Plugin) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	for {
		devs, changed := p.devices()
		if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: devs}); err != nil {
			return err
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-changed:
		}
	}
}

// Allocate implements pluginapi.DevicePluginServer: each container gets
// the CDI device, once, whatever number of slots it asked for.
func (p *Plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	for _, creq := range req.GetContainerRequests() {
		if len(creq.GetDevicesIds()) == 0 {
			return nil, status.Errorf(codes.InvalidArgument, "allocate: a container request without device IDs")
		}
		for _, id := range creq.GetDevicesIds() {
			if !p.ids[id] {
				return nil, status.Errorf(codes.InvalidArgument, "allocate: unknown device %q (this plugin advertises %s tun-0 to tun-%d)",
					id, p.cfg.Resource, p.cfg.Devices-1)
			}
		}
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerAllocateResponse{
			CdiDevices:  []*pluginapi.CDIDevice{{Name: p.cfg.CDIDevice}},
			Annotations: map[string]string{CDIAnnotation: p.cfg.CDIDevice},
		})
	}
	return resp, nil
}

// PreStartContainer implements pluginapi.DevicePluginServer; the plugin
// does not ask for it, so there is nothing to do.
func (p *Plugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}
