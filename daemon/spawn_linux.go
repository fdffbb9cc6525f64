package daemon

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Spawn starts `bin --socket socket daemon args...` in a session of its
// own (bin "" is this program), its output appended to daemon.log in the
// socket's state directory (OpenSpawnLog: never reached through a link),
// and returns once the daemon answers on socket, or fails after wait
// naming the log. The CLI uses it for an on-demand daemon, the OCI hook
// for the containers' one.
func Spawn(bin, socket string, wait time.Duration, args ...string) error {
	if bin == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("start daemon: %w", err)
		}
		bin = self
	}
	logf, logPath, err := OpenSpawnLog(socket)
	if err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, append([]string{"--socket", socket, "daemon"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if _, err := Call(socket, Request{Op: OpPing}); err == nil {
			return nil
		}
		select {
		case err := <-exited:
			if err == nil {
				// A clean exit before it answered: another client's
				// request came first and left it idle.
				return fmt.Errorf("start daemon: it exited at once (%w: idle before this client's request came); see %s", ErrShuttingDown, logPath)
			}
			return fmt.Errorf("start daemon: it exited (%v); see %s", err, logPath)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("start daemon: no answer on %s after %v; see %s", socket, wait, logPath)
}
