package bench

// The application side of the ping-pong: a process of its own in the
// namespace, as an application using a tunnel is. It sends a UDP datagram
// through the interface, waits for the answer the tunnel program (the
// suite, through the device under test) writes back, and times the round
// trip. The suite starts it by running its own executable again with
// helperEnv set; main (and TestMain) hand control to RunHelper first.

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// helperEnv names the helper a re-executed suite binary runs.
const helperEnv = "TUNDEVFS_BENCH_HELPER"

// RunHelper runs the helper named by the environment, if any, and then
// exits the process; without one it returns at once. Programs that run the
// suite call it first thing in main (tests: in TestMain).
func RunHelper() {
	switch os.Getenv(helperEnv) {
	case "":
		return
	case "pinger":
		if err := pingerMain(os.Args[1:]); err != nil {
			fmt.Fprintf(os.Stderr, "pinger: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	default:
		fmt.Fprintf(os.Stderr, "unknown %s %q\n", helperEnv, os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// pingerMain is the helper: LOCAL REMOTE:PORT PAYLOAD WARM DURATION CPU,
// where CPU -1 is unpinned. It prints the round-trip times it counted
// (after WARM), in nanoseconds, one per line, and last "lost N".
func pingerMain(args []string) error {
	if len(args) != 6 {
		return fmt.Errorf("want LOCAL REMOTE:PORT PAYLOAD WARM DURATION CPU, got %q", args)
	}
	local, err := netip.ParseAddr(args[0])
	if err != nil {
		return err
	}
	remote, err := netip.ParseAddrPort(args[1])
	if err != nil {
		return err
	}
	size, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	warm, err := time.ParseDuration(args[3])
	if err != nil {
		return err
	}
	dur, err := time.ParseDuration(args[4])
	if err != nil {
		return err
	}
	cpu, err := strconv.Atoi(args[5])
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	if cpu >= 0 {
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pin to CPU %d: %w", cpu, err)
		}
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("SO_RCVTIMEO: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: local.As4(), Port: pingerPort}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: remote.Addr().As4(), Port: int(remote.Port())}); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	payload := make([]byte, max(size, 8))[:size]
	rbuf := make([]byte, 2048)
	lat := make([]time.Duration, 0, 1<<16)
	lost := 0
	start := time.Now()
	counting, end := start.Add(warm), start.Add(warm+dur)
	// The run ends at end once a round trip has been counted: on a loaded
	// machine a short window (the smoke run's) may see none, so it goes
	// on, for at most pingerGrace more.
	for seq := uint32(1); ; seq++ {
		t0 := time.Now()
		if t0.After(end) && (len(lat) > 0 || t0.After(end.Add(pingerGrace))) {
			break
		}
		if size >= 4 {
			payload[0], payload[1], payload[2], payload[3] = byte(seq>>24), byte(seq>>16), byte(seq>>8), byte(seq)
		}
		if _, err := unix.Write(fd, payload); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		for {
			n, err := unix.Read(fd, rbuf)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ECONNREFUSED) {
				lost++
				break
			}
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return fmt.Errorf("receive: %w", err)
			}
			if size >= 4 && (n < 4 || !bytes.Equal(rbuf[:4], payload[:4])) {
				continue // a late answer to an earlier datagram
			}
			if t0.After(counting) {
				lat = append(lat, time.Since(t0))
			}
			break
		}
		if lost > 20 {
			return fmt.Errorf("%d datagrams unanswered", lost)
		}
	}
	var b strings.Builder
	for _, d := range lat {
		fmt.Fprintln(&b, d.Nanoseconds())
	}
	fmt.Fprintf(&b, "lost %d\n", lost)
	_, err = os.Stdout.WriteString(b.String())
	return err
}

// pingerPort is the application's UDP port.
const pingerPort = 40001

// pingerGrace bounds how long the pinger goes on past its window while it
// has counted no round trip.
const pingerGrace = 10 * time.Second

// runPinger runs the application side in ns against e and returns the
// round trips it counted; with pinned, it runs on CPU 0.
func runPinger(e *Endpoint, size int, tm timing, pinned bool) ([]time.Duration, int, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, 0, fmt.Errorf("ping-pong: %w", err)
	}
	cpu := -1
	if pinned {
		cpu = 0
	}
	var out, stderr bytes.Buffer
	err = e.ns.Do(func() error {
		cmd := exec.Command(exe, e.Local.String(), netip.AddrPortFrom(e.Remote, e.Port).String(),
			strconv.Itoa(e.payloadLen(size)), tm.warm.String(), tm.dur.String(), strconv.Itoa(cpu))
		cmd.Env = append(os.Environ(), helperEnv+"=pinger")
		cmd.Stdout, cmd.Stderr = &out, &stderr
		return cmd.Run()
	})
	if err != nil {
		return nil, 0, fmt.Errorf("ping-pong %s: pinger: %w: %s", e.Name, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var lat []time.Duration
	lost := 0
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if n, ok := strings.CutPrefix(line, "lost "); ok {
			lost, _ = strconv.Atoi(n)
			continue
		}
		ns, err := strconv.ParseInt(line, 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("ping-pong %s: pinger said %q", e.Name, line)
		}
		lat = append(lat, time.Duration(ns))
	}
	return lat, lost, nil
}
