// Command tunhelper is the process inside the runc test's containers
// (containers/runc_linux_test.go), built static (CGO_ENABLED=0) into a
// busybox rootfs.
//
//	tunhelper open DIR   open DIR/tun, print the fd's path, then obey
//	                     stdin: "send SRC DST SPORT DPORT PAYLOAD" writes a
//	                     UDP packet to the device and prints "sent";
//	                     "ls" prints DIR's names; "fastsend SRC DST
//	                     SPORT DPORT PAYLOAD" does the same through the
//	                     device's TUN fd from the fast path (asked for
//	                     once, with the device file) and prints "sent";
//	                     "fastrecv DPORT" reads packets from that fd until
//	                     a UDP one to DPORT and prints "got PAYLOAD"; EOF
//	                     exits 0.
//	tunhelper try PATH   open PATH read-write: print "ok PATH" or
//	                     "err ERRNO" (ENOENT, EACCES...) and exit 0 or 1.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/fastpath"
	"github.com/tundevfs/tundevfs/internal/itest"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: tunhelper open DIR | try PATH")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "open":
		if err := open(os.Args[2]); err != nil {
			fmt.Println("err", err)
			os.Exit(1)
		}
	case "try":
		fd, err := unix.Open(os.Args[2], unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			var e syscall.Errno
			errors.As(err, &e)
			fmt.Println("err", unix.ErrnoName(e))
			os.Exit(1)
		}
		p, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		fmt.Println("ok", p)
	default:
		os.Exit(2)
	}
}

func open(dir string) error {
	fd, err := unix.Open(filepath.Join(dir, "tun"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return err
	}
	fmt.Println(p)
	tunFD := -1
	fast := func() (int, error) {
		if tunFD < 0 {
			fd, _, err := fastpath.FastFDRaw(fd)
			if err != nil {
				return -1, err
			}
			tunFD = fd
		}
		return tunFD, nil
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 6 && f[0] == "fastsend":
			tf, err := fast()
			if err != nil {
				fmt.Println("err", err)
				continue
			}
			src, err1 := netip.ParseAddr(f[1])
			dst, err2 := netip.ParseAddr(f[2])
			sport, err3 := strconv.ParseUint(f[3], 10, 16)
			dport, err4 := strconv.ParseUint(f[4], 10, 16)
			if err := errors.Join(err1, err2, err3, err4); err != nil {
				return err
			}
			if _, err := unix.Write(tf, itest.UDP4(src, dst, uint16(sport), uint16(dport), []byte(f[5]))); err != nil {
				return err
			}
			fmt.Println("sent")
		case len(f) == 2 && f[0] == "fastrecv":
			tf, err := fast()
			if err != nil {
				fmt.Println("err", err)
				continue
			}
			dport, err := strconv.ParseUint(f[1], 10, 16)
			if err != nil {
				return err
			}
			buf := make([]byte, 2048)
			for {
				pfd := []unix.PollFd{{Fd: int32(tf), Events: unix.POLLIN}}
				if _, err := unix.Poll(pfd, 10000); err != nil && !errors.Is(err, unix.EINTR) {
					return err
				}
				n, err := unix.Read(tf, buf)
				if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
					continue
				}
				if err != nil {
					return err
				}
				if pl := itest.UDPPayload(buf[:n], uint16(dport)); pl != nil {
					fmt.Println("got", string(pl))
					break
				}
			}
		case len(f) == 6 && f[0] == "send":
			src, err1 := netip.ParseAddr(f[1])
			dst, err2 := netip.ParseAddr(f[2])
			sport, err3 := strconv.ParseUint(f[3], 10, 16)
			dport, err4 := strconv.ParseUint(f[4], 10, 16)
			if err := errors.Join(err1, err2, err3, err4); err != nil {
				return err
			}
			if _, err := unix.Write(fd, itest.UDP4(src, dst, uint16(sport), uint16(dport), []byte(f[5]))); err != nil {
				return err
			}
			fmt.Println("sent")
		case len(f) == 1 && f[0] == "ls":
			ents, err := os.ReadDir(dir)
			if err != nil {
				return err
			}
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			fmt.Println("ls", strings.Join(names, " "))
		default:
			return fmt.Errorf("bad command %q", sc.Text())
		}
	}
	return nil
}
