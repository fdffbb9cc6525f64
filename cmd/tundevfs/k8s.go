package main

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/deviceplugin"
)

func newK8sDevicePluginCmd(g *globals) *cobra.Command {
	var cfg deviceplugin.Config
	cmd := &cobra.Command{
		Use:   "k8s-device-plugin",
		Short: "Kubernetes device plugin for the tundevfs.dev/tun resource",
		Long: `Serve the kubelet's device plugin API (v1beta1): register the resource
tundevfs.dev/tun with the kubelet, advertise --devices interchangeable slots,
and answer Allocate with the CDI device tundevfs.dev/tun=default, whose CDI
spec (tundevfs cdi) mounts the shared device directory into the container.
The slots are reported Unhealthy while the daemon at --socket does not
answer. Registers again when the kubelet restarts. Runs until SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Health = daemonHealth(g.socket)
			p, err := deviceplugin.New(cfg)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return p.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Dir, "kubelet-dir", "/var/lib/kubelet/device-plugins", "the kubelet's device plugin directory (the plugin's socket goes there)")
	f.StringVar(&cfg.KubeletSocket, "kubelet-socket", "", "the kubelet's registration socket (default KUBELET_DIR/kubelet.sock)")
	f.StringVar(&cfg.Endpoint, "endpoint", deviceplugin.DefaultEndpoint, "file name of the plugin's socket in the kubelet directory")
	f.StringVar(&cfg.Resource, "resource", deviceplugin.DefaultResource, "extended resource name to advertise")
	f.StringVar(&cfg.CDIDevice, "cdi-device", deviceplugin.DefaultCDIDevice, "fully qualified CDI device name Allocate answers")
	f.IntVar(&cfg.Devices, "devices", deviceplugin.DefaultDevices, "number of slots to advertise (a pod may request several)")
	f.DurationVar(&cfg.Interval, "interval", deviceplugin.DefaultInterval, "how often to check the daemon and the kubelet's socket")
	return cmd
}

// daemonHealth pings the daemon at socket, bounded by the context's
// deadline (5 s without one: a stuck daemon must count as down).
func daemonHealth(socket string) func(context.Context) error {
	return func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
		}
		if _, err := daemon.CallContext(ctx, socket, daemon.Request{Op: daemon.OpPing}); err != nil {
			return fmt.Errorf("ping daemon at %s: %w", socket, err)
		}
		return nil
	}
}
