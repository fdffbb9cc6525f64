// Command tundevfs is the tundevfs daemon and its clients: FreeBSD-style
// devfs cloning of tun/tap/vmnet devices on Linux, over FUSE.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tundevfs/tundevfs/daemon"
)

func main() {
	err := run(os.Args[1:])
	var code exitCode
	switch {
	case errors.As(err, &code):
		os.Exit(int(code)) // a jailed command's status, passed on
	case err != nil:
		fmt.Fprintf(os.Stderr, "tundevfs: %v\n", err)
		os.Exit(1)
	}
}

// globals are the flags every command shares.
type globals struct {
	socket string
}

func run(args []string) error {
	root := newRootCmd()
	root.SetArgs(args)
	return root.Execute()
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "tundevfs",
		Short:         "FreeBSD-style devfs cloning of tun/tap/vmnet devices on Linux",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.PersistentFlags().StringVar(&g.socket, "socket", daemon.DefaultSocket, "control socket of the daemon")
	root.AddCommand(
		newDaemonCmd(g),
		newMountCmd(g),
		newUmountCmd(g),
		newIfconfigCmd(g),
		newStatusCmd(g),
		newSysctlCmd(g),
		newJailCmd(g),
		newJexecCmd(g),
		newJlsCmd(g),
		newIoctlCmd(),
		newK8sDevicePluginCmd(g),
		newGenDocsCmd(),
		newFastpathCmd(),
		newOCIHookCmd(g),
		newCDICmd(g),
	)
	return root
}
