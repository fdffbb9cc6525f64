package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tundevfs/tundevfs/containers"
	"github.com/tundevfs/tundevfs/daemon"
)

// selfPath is the absolute path of this executable, the default binary
// the hooks run.
func selfPath() string {
	p, err := os.Executable()
	if err != nil {
		return "/usr/bin/tundevfs"
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

func newOCIHookCmd(g *globals) *cobra.Command {
	var o containers.HookOptions
	var hooksD bool
	cmd := &cobra.Command{
		Use:   "oci-hook [--netns-dev DIR] [--stage create|remove] | --hooks-d",
		Short: "OCI hook: make the container's jail at createRuntime, remove it at poststop (state on stdin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Socket = g.socket
			if o.Binary == "" {
				o.Binary = selfPath()
			}
			if hooksD {
				b, err := containers.HooksD(o.Binary, o.Socket, o.NetnsDev)
				if err != nil {
					return err
				}
				_, err = os.Stdout.Write(b)
				return err
			}
			return containers.Hook(os.Stdin, o)
		},
	}
	cmd.Flags().StringVar(&o.NetnsDev, "netns-dev", daemon.DefaultNetnsDev, "the shared per-netns mount (made if missing)")
	cmd.Flags().StringVar(&o.Stage, "stage", "", "create or remove (default: from the state's status)")
	cmd.Flags().StringVar(&o.Binary, "binary", "", "tundevfs executable to start a daemon with, and for --hooks-d (default: this one)")
	cmd.Flags().BoolVar(&hooksD, "hooks-d", false, "print the podman/CRI-O hooks.d JSON (annotation "+containers.EnableAnnotation+"=true)")
	return cmd
}

func newCDICmd(g *globals) *cobra.Command {
	var o containers.CDIOptions
	var dir string
	cmd := &cobra.Command{
		Use:   "cdi [--binary PATH] [--netns-dev DIR] [--container-path PATH] [--output-dir DIR]",
		Short: "print or write the CDI spec of " + containers.CDIName,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Socket = g.socket
			if o.Binary == "" {
				o.Binary = selfPath()
			}
			spec, err := containers.CDISpec(o)
			if err != nil {
				return err
			}
			if dir != "" {
				path, err := containers.WriteCDISpec(spec, dir)
				if err != nil {
					return err
				}
				fmt.Println(path)
				return nil
			}
			b, err := containers.MarshalCDISpec(spec)
			if err != nil {
				return err
			}
			_, err = os.Stdout.Write(b)
			return err
		},
	}
	cmd.Flags().StringVar(&o.Binary, "binary", "", "tundevfs executable the hooks run (default: this one)")
	cmd.Flags().StringVar(&o.NetnsDev, "netns-dev", daemon.DefaultNetnsDev, "host path of the shared per-netns mount")
	cmd.Flags().StringVar(&o.ContainerPath, "container-path", containers.ContainerPath, "where containers see their tunnels")
	cmd.Flags().StringVar(&dir, "output-dir", "", "write "+containers.SpecFileName()+" into this CDI directory (/etc/cdi) instead of printing it")
	return cmd
}
