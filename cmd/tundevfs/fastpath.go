package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/fastpath"
)

// newFastpathCmd is `tundevfs fastpath --fd N -- CMD ARGS...`: it trades
// the open device file at fd N for the device's TUN fd (the fast path) and
// execs CMD with the TUN fd at N. The device file must stay open while the
// TUN fd is used, so CMD inherits it too, at the fd number given in
// TUNDEVFS_DEVICE_FD (close-on-exec off). No process is left behind.
func newFastpathCmd() *cobra.Command {
	fd := -1
	cmd := &cobra.Command{
		Use:   "fastpath --fd N -- CMD [ARGS...]",
		Short: "run CMD with the device's real TUN fd in place of the device file at fd N",
		Long: `Trade the open device file at file descriptor N (opened read-write by the
shell) for the device's real Linux TUN fd, and exec CMD with that fd at N:

  exec 3<>/dev/net/tundevfs/tun
  WG_TUN_FD=3 tundevfs fastpath --fd 3 -- wireguard-go -f wg0

The TUN fd carries Linux framing (IFF_NO_PI; a tap's 12-byte virtio-net
header) and answers every Linux TUN ioctl; it is non-blocking. CMD also
inherits the device file, at the fd number in TUNDEVFS_DEVICE_FD: the
device file must stay open while the TUN fd is used (its last close brings
a tun or tap down; destroying the device unregisters the interface).
A program that closes the fds it does not know, or daemonizes that way,
ends the fast path: run it in the foreground.

The request goes to the daemon's fast-path socket in the caller's network
namespace; a refusal exits non-zero and names the errno.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if fd < 0 {
				return fmt.Errorf("fastpath: --fd N is required (open the device in the shell first: exec 3<>DIR/tun)")
			}
			path, err := exec.LookPath(args[0])
			if err != nil {
				return fmt.Errorf("fastpath: %w", err)
			}
			tunFD, _, err := fastpath.FastFDRaw(fd)
			if err != nil {
				var e *fastpath.Error
				if errors.As(err, &e) && unix.ErrnoName(e.Errno) != "" {
					return fmt.Errorf("fastpath --fd %d: %w (%s)", fd, err, unix.ErrnoName(e.Errno))
				}
				return fmt.Errorf("fastpath --fd %d: %w", fd, err)
			}
			// Keep the device file open in CMD at another number.
			keep, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD, 3)
			if err != nil {
				return fmt.Errorf("fastpath: keep the device file: %w", err)
			}
			if err := unix.Dup3(tunFD, fd, 0); err != nil {
				return fmt.Errorf("fastpath: put the TUN fd at %d: %w", fd, err)
			}
			unix.Close(tunFD)
			env := append(os.Environ(), "TUNDEVFS_DEVICE_FD="+strconv.Itoa(keep))
			err = unix.Exec(path, args, env)
			return fmt.Errorf("fastpath: exec %s: %w", path, err)
		},
	}
	cmd.Flags().IntVar(&fd, "fd", -1, "file descriptor open (read-write) on a device node")
	cmd.Flags().SetInterspersed(false)
	return cmd
}
