// Command tundevfs-bench runs the tundevfs benchmark suite (package bench)
// and prints its table: tundevfs against the direct /dev/net/tun path,
// measured in the same run. It needs root, /dev/fuse and /dev/net/tun, and
// works in network namespaces of its own, removed when it ends.
//
//	tundevfs-bench -bin bin/tundevfs          # the full suite, a few minutes
//	tundevfs-bench -bin bin/tundevfs -quick   # a smoke run in seconds
//	tundevfs-bench -only datapath            # one part of the suite
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tundevfs/tundevfs/bench"
)

func main() {
	bench.RunHelper() // the suite runs this binary again as the ping-pong's application
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "tundevfs-bench: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet("tundevfs-bench", flag.ContinueOnError)
	bin := fl.String("bin", "bin/tundevfs", "the tundevfs binary to measure")
	quick := fl.Bool("quick", false, "smoke run: every figure once, briefly")
	reps := fl.Int("reps", 0, "repetitions (default 5, quick 1)")
	dur := fl.Duration("duration", 0, "counting time of each data-path measurement (default 1s)")
	quiet := fl.Bool("q", false, "no progress lines on stderr")
	only := fl.String("only", "", "run only these parts, comma-separated: "+strings.Join(bench.Parts(), ","))
	if err := fl.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root (namespaces, interfaces and FUSE mounts)")
	}
	cfg := bench.DefaultConfig(*bin)
	if *quick {
		cfg = bench.QuickConfig(*bin)
	}
	if *reps > 0 {
		cfg.Reps = *reps
	}
	if *dur > 0 {
		cfg.Duration = *dur
	}
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
	}
	if !*quiet {
		cfg.Log = os.Stderr
	}
	if _, err := os.Stat(cfg.Bin); err != nil {
		return fmt.Errorf("tundevfs binary: %w (run make build)", err)
	}

	// SIGINT/SIGTERM end the run after the current measurement, with
	// everything it made removed.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	t, err := bench.Run(ctx, cfg)
	t.Write(os.Stdout)
	fmt.Printf("(%d repetitions, %v per data-path measurement, whole run %v)\n", cfg.Reps, cfg.Duration, time.Since(start).Round(time.Second))
	return err
}
