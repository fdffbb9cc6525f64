package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	sdnotify "github.com/coreos/go-systemd/v22/daemon"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/holder"
)

// crashGuard is the holder's crash-loop guard: limit deaths of the
// server within window.
type crashGuard struct {
	limit  int
	window time.Duration
}

// runHolder is `tundevfs daemon`: the holder process (package holder). It
// starts this same command with --serve as its server, and restarts it.
func runHolder(socket string, guard crashGuard) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("daemon: find own binary: %w", err)
	}
	logger := log.New(os.Stderr, "tundevfs holder: ", log.LstdFlags)
	argv := append([]string{exe}, os.Args[1:]...)
	argv = append(argv, "--serve")
	// The holder is the unit's main process: it alone talks to systemd.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "NOTIFY_SOCKET=")
	})
	h := holder.New(holder.Config{
		Argv:        argv,
		Env:         env,
		Logger:      logger,
		CrashLimit:  guard.limit,
		CrashWindow: guard.window,
		GiveUp: func(state []byte, fds map[string]*os.File) {
			daemon.GiveUp(socket, state, fds, logger.Printf)
		},
		Notify: func(state string) {
			if _, err := sdnotify.SdNotify(false, state); err != nil {
				logger.Printf("notify systemd: %v", err)
			}
		},
	})
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := h.Restart(); err != nil {
				logger.Printf("restart: %v", err)
			}
		}
	}()
	err = h.Run(ctx)
	if errors.Is(err, holder.ErrCrashLoop) {
		// Said why; exit status 3 tells systemd not to start it again
		// (RestartPreventExitStatus=3).
		logger.Printf("%v: shut down", err)
		os.Exit(3)
	}
	return err
}

// runServer is the server process under a holder: the daemon, which takes
// over what the previous server left, and tells the holder how it exits.
func runServer(opts daemon.Options) error {
	conn, err := holder.FromEnv()
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if conn == nil {
		return fmt.Errorf("daemon: --serve is started by the holder (run `tundevfs daemon`)")
	}
	opts.Holder = conn
	d, err := daemon.New(opts)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	go d.Serve()
	if err := conn.Ready(); err != nil {
		d.Close()
		return fmt.Errorf("daemon: %w", err)
	}
	select {
	case <-sigs:
		err = d.Close()
	case <-d.Done():
	case <-d.Restarting():
		if err := conn.Exiting(true); err != nil {
			return fmt.Errorf("daemon: restart: %w", err)
		}
		// Exit without closing anything: the holder keeps it all.
		os.Exit(0)
	}
	if xerr := conn.Exiting(false); xerr != nil && err == nil {
		err = xerr
	}
	return err
}
