// Package holder keeps the daemon's fds and state alive across a crash or
// an upgrade of the process that serves them (issue 13, SPEC §11).
//
// Two processes. The holder (Holder.Run, in `tundevfs daemon`) is small:
// it starts the server (Config.Argv) as a child, keeps a dup of every fd
// the server hands it, by string key, and the latest state blob the server
// sent, which it never decodes; when the server dies it starts a new one,
// which takes all of it over. The server (Conn, from FromEnv) is the daemon
// as it is without a holder. The holder parses nothing but its own
// protocol with its own child.
//
// # Contract
//
//   - A Conn method that sends (PutFD, DelFD, SaveState, Ready, Exiting)
//     and returned is applied by the holder, in the order the calls
//     returned, even if the server is killed right after: a sendmsg on a
//     unix socket that returned has queued the message (and its fd) on the
//     holder's end, and the holder reads its socket to the end before it
//     starts the next server. So a server sends its state before the reply
//     that makes a change visible, and needs no acknowledgement.
//   - A state blob is applied whole or not at all: a blob whose chunks did
//     not all arrive before the server died is dropped, the one before it
//     stays.
//   - While no server runs the holder still holds every fd (FUSE
//     connections and interfaces stay; requests wait in the kernel).
//   - A death is an exit the server did not announce with Exiting, or an
//     exit status other than 0, or a server the holder killed for breaking
//     the protocol. Exiting(true) and status 0 is a planned restart (not a
//     death); Exiting(false) and status 0 is a clean shutdown (Run returns
//     nil). CrashLimit deaths within CrashWindow trip the guard.
//   - Config.GiveUp runs whenever Run ends without a clean shutdown by the
//     server: the guard tripped, the server failed after Exiting(false), or
//     ctx ended and the server did not shut down cleanly. Then Run closes
//     every fd it holds.
//   - The server gets PR_SET_PDEATHSIG=SIGKILL, from an OS thread that
//     stays locked for the child's life (the signal follows the thread that
//     forked): killing the holder kills the server.
//   - The holder never changes the flags of an fd it holds (it never calls
//     os.File.Fd, which would clear O_NONBLOCK on the open file the server
//     shares) and keeps them out of its netpoller.
//
// # Protocol
//
// One SOCK_SEQPACKET socketpair per server, the server's end on fd 3
// (TUNDEVFS_HOLDER_FD=3). Every message is one packet: an op byte, then
// its payload, and at most one fd (SCM_RIGHTS). Server → holder: takeover
// request; put fd (key, fd); del fd (key); state chunk (first/last flags,
// up to 32 KiB of the blob); ready; exiting (restart flag). Holder →
// server: the takeover reply (info; the state's chunks; one fd message per
// key; done), and restart requests at any time. sendmsg/recvmsg are
// retried on EINTR.
//
// # Decisions
//
//   - No acknowledgements: a returned sendmsg is the commit point (above).
//     SEQPACKET keeps message boundaries and carries fds; a unix socket
//     never drops a message while its receiver lives.
//   - After the server exited, the holder reads its socket until it is
//     empty (MSG_DONTWAIT), not until EOF: everything the dead process
//     sent is queued by then, and a process that inherited the server's
//     end by mistake cannot hold the holder up.
//   - A new socketpair for every server: nothing of a dead server's
//     conversation reaches the next one.
//   - The holder keeps fds as plain ints, not *os.File: an os.File of a
//     non-blocking fd joins the holder's netpoller, and the holder would
//     wake on every packet of every TUN fd it holds.
//
// # Lock order
//
// Holder.mu, Holder.notifyMu and child.sendMu are never held together.
// Conn: the sent file's SyscallConn Control, then Conn.sendMu; Conn.mu is
// never held with another.
package holder

import (
	"errors"
	"log"
	"os"
	"time"
)

// Config configures Run.
type Config struct {
	// Argv starts the server: Argv[0] is the binary path run on every
	// (re)start (resolved to an absolute path once, when Run starts, so an
	// upgrade on disk is picked up by the next start), Argv[1:] its args.
	Argv   []string
	Env    []string // extra env for the server (which gets the holder's, less NOTIFY_SOCKET)
	Logger *log.Logger
	// CrashLimit deaths within CrashWindow make the holder give up
	// (defaults 5 and 30s). A death is an exit the server did not announce
	// (Exiting) — kill -9, a panic, exit code != 0.
	CrashLimit  int
	CrashWindow time.Duration
	// GiveUp runs when Run ends without a clean shutdown (the guard
	// tripped, or the server failed on its way out), with the last state
	// and the fds, before Run closes the fds. The daemon uses it to unmount
	// and clean up. It must not keep the files. May be nil.
	GiveUp func(state []byte, fds map[string]*os.File)
	// Notify, if set, is called with "READY=1" the first time a server says
	// Ready (and the first time after each planned restart), "RELOADING=1"
	// when a server announces a planned restart, "STOPPING=1" once at
	// shutdown (the caller forwards it to sd_notify). Calls never overlap.
	Notify func(state string)
}

// ErrCrashLoop is what Run returns (wrapped, with why) when CrashLimit
// deaths happened within CrashWindow.
var ErrCrashLoop = errors.New("server crash loop")

// ErrNoServer is what Restart returns when no server runs (between a death
// and the next start, or outside Run).
var ErrNoServer = errors.New("holder: no server running")

// Info describes the holder and its current server.
type Info struct {
	HolderPID, ServerPID int
	Start                time.Time // holder start
	Restarts             int       // servers started after the first (crashes + planned)
}
