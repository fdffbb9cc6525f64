package daemon

import (
	sdnotify "github.com/coreos/go-systemd/v22/daemon"
)

// NotifyReady tells systemd (a Type=notify unit) that the daemon answers on
// its control socket: READY=1 with a STATUS= line naming the socket. Call it
// once Serve runs and any start-up mounts are made. Without NOTIFY_SOCKET in
// the environment (not started by systemd) it does nothing.
func (d *Daemon) NotifyReady() {
	d.sdNotify(sdnotify.SdNotifyReady + "\nSTATUS=serving " + d.opts.Socket)
}

// notifyStopping tells systemd that shutdown has begun (STOPPING=1), so
// that a shutdown the daemon starts itself (idleness, the "shutdown"
// request) is not taken for a crash. Close calls it first.
func (d *Daemon) notifyStopping() {
	d.sdNotify(sdnotify.SdNotifyStopping + "\nSTATUS=shutting down")
}

func (d *Daemon) sdNotify(state string) {
	// NOTIFY_SOCKET stays set: STOPPING=1 needs it after READY=1. The
	// daemon starts no process that could inherit it.
	if _, err := sdnotify.SdNotify(false, state); err != nil {
		d.logger.Printf("notify systemd: %v", err)
	}
}
