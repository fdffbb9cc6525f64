// Command crashhelper is the process inside TestRuncKill9's container
// (containers/crash_linux_test.go), built static (CGO_ENABLED=0) into a
// busybox rootfs. The container's shell opens the device file on an fd of
// its own and execs the helper with it:
//
//	crashhelper FD SRC DST SPORT DPORT RXPORT
//
// It prints "fd FD PATH" and waits for "go" on stdin. Then a writer writes
// a UDP packet SRC:SPORT > DST:DPORT to FD every 10 ms, its payload "SEQ
// NS" (SEQ from 1, NS the CLOCK_MONOTONIC nanoseconds when the write
// starts), and a reader reads FD and prints "rx PAYLOAD" for every UDP
// packet to RXPORT. "check" on stdin prints "check PATH DEV INO" of FD
// (readlink and fstat). Every failure prints a line "err OP ERRNO: TEXT"
// and the helper carries on; a read or write that returns EINTR (the Go
// runtime's signals) prints "eintr OP" and is made again. EOF on stdin prints "bye writes=N
// reads=N eintr=N" and exits 0. The helper never opens the device again:
// FD is the shell's open file all along.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/internal/itest"
)

var outMu sync.Mutex // serializes output lines

func say(format string, args ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Printf(format+"\n", args...)
}

func sayErr(op string, err error) {
	name := "?"
	var e syscall.Errno
	if errors.As(err, &e) {
		name = unix.ErrnoName(e)
	}
	say("err %s %s: %v", op, name, err)
}

func main() {
	if len(os.Args) != 7 {
		fmt.Fprintln(os.Stderr, "usage: crashhelper FD SRC DST SPORT DPORT RXPORT")
		os.Exit(2)
	}
	fd, err1 := strconv.Atoi(os.Args[1])
	src, err2 := netip.ParseAddr(os.Args[2])
	dst, err3 := netip.ParseAddr(os.Args[3])
	sport, err4 := strconv.ParseUint(os.Args[4], 10, 16)
	dport, err5 := strconv.ParseUint(os.Args[5], 10, 16)
	rxport, err6 := strconv.ParseUint(os.Args[6], 10, 16)
	if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
		fmt.Fprintln(os.Stderr, "crashhelper:", err)
		os.Exit(2)
	}
	path, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		sayErr("readlink", err)
		os.Exit(1)
	}
	say("fd %d %s", fd, path)

	var writes, reads, eintr atomic.Int64
	start := func() {
		go func() { // the writer
			for seq := 1; ; seq++ {
				var ts unix.Timespec
				unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
				pkt := itest.UDP4(src, dst, uint16(sport), uint16(dport), fmt.Appendf(nil, "%d %d", seq, ts.Nano()))
				for {
					_, err := unix.Write(fd, pkt)
					if errors.Is(err, unix.EINTR) {
						eintr.Add(1)
						say("eintr write")
						continue
					}
					if err != nil {
						sayErr("write", err)
					} else {
						writes.Add(1)
					}
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		go func() { // the reader
			buf := make([]byte, 65536)
			for {
				n, err := unix.Read(fd, buf)
				if errors.Is(err, unix.EINTR) {
					eintr.Add(1)
					say("eintr read")
					continue
				}
				if err != nil {
					sayErr("read", err)
					time.Sleep(10 * time.Millisecond) // no flood of one failure
					continue
				}
				reads.Add(1)
				if pl := itest.UDPPayload(buf[:n], uint16(rxport)); pl != nil {
					say("rx %s", pl)
				}
			}
		}()
	}
	started := false
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "go":
			if !started {
				started = true
				start()
			}
		case "check":
			p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
			if err != nil {
				sayErr("readlink", err)
				continue
			}
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				sayErr("fstat", err)
				continue
			}
			say("check %s %d %d", p, st.Dev, st.Ino)
		default:
			say("err stdin ?: bad command %q", sc.Text())
		}
	}
	say("bye writes=%d reads=%d eintr=%d", writes.Load(), reads.Load(), eintr.Load())
}
