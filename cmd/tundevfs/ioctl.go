package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/ioctls"
)

// newIoctlCmd is `tundevfs ioctl --fd N NAME [VALUE]`: one tun/tap ioctl on
// a file descriptor the shell opened for us (`exec 3<>DIR/tun`). It talks to
// the device, not to the daemon.
func newIoctlCmd() *cobra.Command {
	fd := -1
	cmd := &cobra.Command{
		Use:   "ioctl --fd N NAME [VALUE]",
		Short: "issue a tun/tap ioctl on an inherited file descriptor and print the result",
		Long: `Issue one tun/tap ioctl on file descriptor N, which the shell opened on a
device node, and print what it returns:

  exec 3<>/mnt/dev/tun
  tundevfs ioctl --fd 3 TUNGIFNAME          # tun0
  tundevfs ioctl --fd 3 TUNSIFHEAD 1
  tundevfs ioctl --fd 3 TUNSIFINFO mtu=1400
  tundevfs ioctl --fd 3 TUNGIFINFO          # mtu=1400 type=23 baudrate=0

VALUE is an integer or on/off; IFF flags by name for TUNSIFMODE and
VMIO_SIOCSIFFLAGS (pointopoint|multicast); mtu=N,type=ppp|ether|N,baudrate=N
for TUNSIFINFO (keys left out keep their value); a MAC address for
TAPSIFADDR. Requests: ` + strings.Join(ioctls.Names(), ", ") + `.

A failing request exits non-zero and names the errno (EINVAL, ENOTTY, ...).`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if fd < 0 {
				return fmt.Errorf("ioctl: --fd N is required (open the device in the shell first: exec 3<>DIR/tun)")
			}
			value := ""
			if len(args) == 2 {
				value = args[1]
			}
			out, err := ioctls.Do(fd, args[0], value)
			if err != nil {
				var e unix.Errno
				if errors.As(err, &e) && unix.ErrnoName(e) != "" {
					return fmt.Errorf("%w (%s)", err, unix.ErrnoName(e))
				}
				return err
			}
			if out != "" {
				fmt.Fprintln(cmd.OutOrStdout(), out)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&fd, "fd", -1, "file descriptor open on a device node")
	// Flags end at NAME, so that a negative VALUE ("TUNSDEBUG -5") is one.
	cmd.Flags().SetInterspersed(false)
	return cmd
}
