package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
)

func newDaemonCmd(g *globals) *cobra.Command {
	var opts daemon.Options
	var useHolder, serve, restart bool
	var guard crashGuard
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "run the daemon in the foreground",
		Long: `Run the daemon in the foreground.

By default the daemon is two processes: a small holder, which keeps every
/dev/fuse, TUN, namespace and pidfd file descriptor and the daemon's state,
and the server it starts, which serves. When the server dies (a crash, kill
-9) the holder starts a new one, which takes everything over: mounts,
devices, open files and blocked readers carry on. If the server dies 5 times
in 30 seconds the holder gives up and shuts down cleanly. SIGHUP to the
holder, or "tundevfs daemon --restart", replaces the server with the binary
now on disk (an upgrade) without losing a packet. Killing the holder ends
everything, as killing a daemon without a holder does.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Socket = g.socket
			switch {
			case restart:
				_, err := daemon.Call(g.socket, daemon.Request{Op: daemon.OpRestart})
				return err
			case serve:
				return runServer(opts)
			case useHolder:
				return runHolder(g.socket, guard)
			}
			return runDaemon(opts, nil)
		},
	}
	cmd.Flags().BoolVar(&useHolder, "holder", true, "run under a holder process that survives a crash of the server (false: one process, as before)")
	cmd.Flags().BoolVar(&restart, "restart", false, "ask the running daemon to replace its server process (planned restart, upgrade) and exit")
	cmd.Flags().BoolVar(&serve, "serve", false, "internal: the server process a holder starts")
	cmd.Flags().MarkHidden("serve")
	cmd.Flags().IntVar(&guard.limit, "crash-limit", 5, "give up after the server died this many times within --crash-window")
	cmd.Flags().DurationVar(&guard.window, "crash-window", 30*time.Second, "see --crash-limit")
	cmd.Flags().BoolVar(&opts.ExitWhenIdle, "exit-when-idle", false, "shut down when the last mount is gone")
	cmd.Flags().BoolVar(&opts.Debug, "debug", false, "log every FUSE request")
	cmd.Flags().IntVar(&opts.DeviceLimit, "device-limit", 0, "devices per jail (default 256)")
	cmd.Flags().DurationVar(&opts.IdleGrace, "idle-grace", daemon.DefaultIdleGrace, "with --exit-when-idle: how long a daemon nobody uses waits before it exits")
	cmd.Flags().MarkHidden("idle-grace")
	cmd.Flags().Var(transportFlag{&opts.FuseTransport}, "fuse-transport", "how FUSE requests reach the daemon: auto (io_uring when the kernel offers it, else /dev/fuse), uring or dev (default auto, or $"+daemon.FuseTransportEnv+")")
	cmd.Flags().StringVar(&opts.NetnsDev, "netns-dev", "", "mount the shared per-netns device directory here at start (containers: "+daemon.DefaultNetnsDev+")")
	return cmd
}

// runDaemon runs a daemon until SIGTERM or SIGINT (or idleness); ready, if
// set, runs once it listens.
func runDaemon(opts daemon.Options, ready func(*daemon.Daemon) error) error {
	d, err := daemon.New(opts)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	go d.Serve()
	if ready != nil {
		if err := ready(d); err != nil {
			d.Close()
			return err
		}
	}
	d.NotifyReady()
	select {
	case <-sigs:
		return d.Close()
	case <-d.Done():
		return nil
	}
}

func newMountCmd(g *globals) *cobra.Command {
	var jail string
	var foreground, allowOther, perNetns bool
	cmd := &cobra.Command{
		Use:   "mount [--jail NAME | --per-netns] [--foreground] DIR",
		Short: "mount a device directory (starts the daemon if none runs)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := realPath(args[0])
			if err != nil {
				return err
			}
			req := daemon.Request{Op: daemon.OpMount, Dir: dir, Jail: jail, AllowOther: allowOther, PerNetns: perNetns}
			running := ping(g.socket)
			if foreground {
				if !running {
					return runDaemon(daemon.Options{Socket: g.socket, ExitWhenIdle: true}, func(d *daemon.Daemon) error {
						if perNetns {
							return d.MountPerNetns(dir)
						}
						return d.Mount(jail, dir, daemon.MountOptions{AllowOther: allowOther})
					})
				}
				if _, err := daemon.Call(g.socket, req); err != nil {
					return err
				}
				return attach(g.socket, dir)
			}
			_, err = callStarting(g.socket, req)
			return err
		},
	}
	cmd.Flags().StringVar(&jail, "jail", "", "jail whose devices to show (default host)")
	cmd.Flags().BoolVar(&foreground, "foreground", false, "stay attached until the mount is gone")
	cmd.Flags().BoolVar(&allowOther, "allow-other", false, "let other users use the mount")
	cmd.Flags().BoolVar(&perNetns, "per-netns", false, "one shared mount showing each caller the jail of its own network namespace (containers)")
	return cmd
}

// attach waits until the mount at dir is gone; SIGINT or SIGTERM unmount it.
func attach(socket, dir string) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	errc := make(chan error, 1)
	go func() {
		_, err := daemon.Call(socket, daemon.Request{Op: daemon.OpWait, Dir: dir})
		errc <- err
	}()
	select {
	case err := <-errc:
		return err
	case <-sigs:
		_, err := daemon.Call(socket, daemon.Request{Op: daemon.OpUmount, Dir: dir})
		return err
	}
}

func ping(socket string) bool {
	_, err := daemon.Call(socket, daemon.Request{Op: daemon.OpPing})
	return err == nil
}

// realPath is path made absolute with its symbolic links resolved, or
// only absolute when it cannot be resolved (a dead mount).
func realPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real, nil
	}
	if parent, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(parent, filepath.Base(abs)), nil
	}
	return abs, nil
}

// spawnDaemon starts an on-demand daemon (`daemon --exit-when-idle`) on
// socket and waits until it answers (daemon.Spawn: its log is daemon.log
// in its state directory).
func spawnDaemon(socket string) error {
	socket, err := filepath.Abs(socket)
	if err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	return daemon.Spawn("", socket, 10*time.Second, "--exit-when-idle")
}

func newUmountCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "umount DIR",
		Short: "unmount a device directory (also a stale one left by a dead daemon)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := realPath(args[0])
			if err != nil {
				return err
			}
			_, err = daemon.Call(g.socket, daemon.Request{Op: daemon.OpUmount, Dir: dir})
			if err == nil {
				return nil
			}
			if !errors.Is(err, daemon.ErrNoDaemon) && !errors.Is(err, daemon.ErrNotMounted) {
				return err
			}
			// No daemon serves it: a stale mount, or none at all.
			if !daemon.IsTundevfsMount(dir) {
				return fmt.Errorf("umount %s: not a tundevfs mount", dir)
			}
			if uerr := unix.Unmount(dir, unix.UMOUNT_NOFOLLOW); uerr != nil {
				if uerr := unix.Unmount(dir, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); uerr != nil {
					return fmt.Errorf("umount %s: %w", dir, uerr)
				}
			}
			return nil
		},
	}
}

func newIfconfigCmd(g *globals) *cobra.Command {
	var jail string
	var cloners bool
	cmd := &cobra.Command{
		Use:   "ifconfig [-j JAIL] {tun|tunN} create | NAME destroy | NAME link0 | NAME -link0 | -C",
		Short: "interface cloning like ifconfig(8)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if cloners {
				args = append([]string{"-C"}, args...)
			}
			var out any
			if err := daemon.CallInto(g.socket, daemon.Request{Op: daemon.OpIfconfig, Jail: jail, Args: args}, &out); err != nil {
				return err
			}
			if s, ok := out.(string); ok && s != "" {
				fmt.Println(s)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&jail, "jail", "j", "", "jail to act in (default host)")
	cmd.Flags().BoolVarP(&cloners, "cloners", "C", false, "list the interface cloners")
	// Flags end at the interface name, so that "-link0" is an argument.
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "jails, mounts and devices with their reference counts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var st daemon.Status
			if err := daemon.CallInto(g.socket, daemon.Request{Op: daemon.OpStatus}, &st); err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(st)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printStatus(st daemon.Status) {
	fmt.Printf("daemon pid %d: %d goroutines, %d threads, %d fds, %d units in use\n",
		st.PID, st.Goroutines, st.Threads, st.Fds, st.UnitsInUse)
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JID\tJAIL\tSTATE\tNETNS\tHOLDS\tDEVICES")
	for _, j := range st.Jails {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\n", j.JID, j.Name, j.State, j.Netns, j.Holds, j.Devices)
	}
	tw.Flush()
	for _, m := range st.Mounts {
		if m.Mode == daemon.ModePerNetns {
			fmt.Printf("mount %s (per-netns: each caller's own jail)\n", m.Dir)
		} else {
			fmt.Printf("mount %s (jail %s)\n", m.Dir, m.Jail)
		}
		fmt.Printf("  fuse transport %s\n", m.Transport)
	}
	if len(st.Devices) == 0 {
		return
	}
	tw = tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tJAIL\tSTATE\tREFS(node/clone/kernel/open)\tBUSY\tOPEN PID\tORIGIN\tRX\tTX\tDROPS\tMODES")
	for _, d := range st.Devices {
		pid := "-"
		if d.Open {
			pid = fmt.Sprint(d.OpenPid)
		}
		modes := "-"
		if len(d.Modes) > 0 {
			modes = strings.Join(d.Modes, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d (%d/%d/%d/%d)\t%d\t%s\t%s\t%d\t%d\t%d\t%s\n", d.Name, d.Jail, d.State,
			d.Refs.Total, d.Refs.Node, d.Refs.Clone, d.Refs.Kernel, d.Refs.Open, d.Busy, pid, d.Origin,
			d.RxPackets, d.TxPackets, d.Drops, modes)
	}
	tw.Flush()
}

func newSysctlCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "sysctl [NAME[=VALUE]]...",
		Short: "read or set the net.link.tun/tap knobs",
		RunE: func(cmd *cobra.Command, args []string) error {
			var lines []string
			if err := daemon.CallInto(g.socket, daemon.Request{Op: daemon.OpSysctl, Args: args}, &lines); err != nil {
				return err
			}
			for _, l := range lines {
				fmt.Println(l)
			}
			return nil
		},
	}
}
