package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/tundevfs/tundevfs/driver"
)

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/tundevfs/tundevfs.sock"

// Op names a control request. The daemon and the CLI are one binary, but
// a client may meet a daemon of another version during an upgrade: an op
// or a field the daemon does not know is refused as a bad request
// (ErrUnknownOp, ErrBadRequest) with a message that says so, never
// ignored. See request.go for which fields each op takes.
type Op string

// The ops of the control protocol.
const (
	OpPing           Op = "ping"            // the daemon's pid
	OpMount          Op = "mount"           // Dir, Jail, AllowOther, PerNetns
	OpPerNetnsEnsure Op = "pernetns-ensure" // Dir: the shared per-netns mount is there
	OpUmount         Op = "umount"          // Dir
	OpWait           Op = "wait"            // Dir: answers once the mount is gone
	OpStatus         Op = "status"          // Status
	OpIfconfig       Op = "ifconfig"        // Jail, Args: ifconfig's arguments
	OpSysctl         Op = "sysctl"          // Args: NAME or NAME=VALUE
	OpStacks         Op = "stacks"          // every goroutine's stack
	OpJailCreate     Op = "jail-create"     // Args: jail(8) parameters; Command
	OpJailWatch      Op = "jail-watch"      // Jail, PID
	OpJailRemove     Op = "jail-remove"     // Jail
	OpJls            Op = "jls"             // Dying
	OpJailExec       Op = "jail-exec"       // Jail: ExecInfo
	OpShutdown       Op = "shutdown"        // the daemon shuts down
	OpRestart        Op = "restart"         // a new server takes over (under a holder)
)

// Request is one call on the control socket: a JSON object on one line.
// Each op takes only its own fields (request.go: opFields); a field it
// does not take is refused, not ignored.
type Request struct {
	Op Op `json:"op"`
	// Dir is a directory: the mount point of mount, umount, wait,
	// pernetns-ensure.
	Dir string `json:"dir,omitempty"`
	// Jail is a jail's name or jid; empty is host.
	Jail string `json:"jail,omitempty"`
	// Args are a command's arguments: ifconfig's, sysctl's, jail -c's
	// parameters (without command=).
	Args []string `json:"args,omitempty"`
	// AllowOther: mount for other users too.
	AllowOther bool `json:"allow_other,omitempty"`
	// PerNetns asks for the shared per-netns mount (fs/pernetns.go).
	PerNetns bool `json:"per_netns,omitempty"`
	// Command (jail-create): the client runs command= in the jail and
	// removes it after; the daemon watches the client until jail-watch
	// names the command's process.
	Command bool `json:"command,omitempty"`
	// Dying (jls): list dying jails too.
	Dying bool `json:"dying,omitempty"`
	// PID (jail-watch): the command's process, a child of the caller.
	PID int `json:"pid,omitempty"`
}

// Response answers a Request: a JSON object on one line. A failure has
// Error, the message as the daemon wrote it, and Code, which names the
// sentinel it wraps (errcodes.go); a daemon older than codes sends none.
type Response struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Code  Code            `json:"code,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// Status is the answer to "status": everything a test or an operator needs
// to see that nothing leaked.
type Status struct {
	PID int `json:"pid"`
	// Under a holder (issue 13): the holder's pid, the serving
	// process's (PID too), when the daemon started (the holder, or the
	// first server), and how many servers took over since.
	HolderPID  int       `json:"holder_pid,omitempty"`
	ServerPID  int       `json:"server_pid"`
	Started    time.Time `json:"started"`
	Restarts   int       `json:"restarts"`
	Goroutines int       `json:"goroutines"`
	// FuseReaders is the part of Goroutines that is go-fuse's pool of
	// idle request readers (and its Serve goroutine once that waits for
	// them).
	FuseReaders int           `json:"fuse_readers"`
	Fds         int           `json:"fds"`
	Threads     int           `json:"threads"`
	UnitsInUse  int           `json:"units_in_use"`
	Jails       []JailInfo    `json:"jails"`
	Mounts      []MountInfo   `json:"mounts"`
	Devices     []driver.Info `json:"devices"`
}

// JailInfo describes one jail.
type JailInfo struct {
	JID     int      `json:"jid"`
	Name    string   `json:"name"`
	State   string   `json:"state"`
	Netns   string   `json:"netns"`
	NetnsID uint64   `json:"netns_inode"`
	Persist bool     `json:"persist"`
	Holds   int      `json:"holds"`
	Devices int      `json:"devices"`
	Paths   []string `json:"paths,omitempty"`
}

// MountInfo describes one mount.
type MountInfo struct {
	Dir  string `json:"dir"`
	Jail string `json:"jail"`
	Mode string `json:"mode"` // ModeJail or ModePerNetns
	// Transport is how the mount's FUSE requests arrive: "uring"
	// (FUSE over io_uring) or "dev" (/dev/fuse).
	Transport string `json:"transport"`
}

// Call sends req to the daemon at socket and returns its answer. A daemon
// error comes back as a *RemoteError: its message is the daemon's, and
// errors.Is finds the sentinel its code names (driver.ErrBusy,
// jails.ErrNotFound...).
func Call(socket string, req Request) (json.RawMessage, error) {
	return CallContext(context.Background(), socket, req)
}

// CallContext is Call, bounded by ctx: its deadline bounds the whole call
// and its cancellation ends it.
func CallContext(ctx context.Context, socket string, req Request) (json.RawMessage, error) {
	dialer := net.Dialer{Timeout: 2 * time.Second}
	c, err := dialer.DialContext(ctx, "unix", socket)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w at %s (start one with `tundevfs daemon` or `tundevfs mount`)", ErrNoDaemon, socket)
		}
		return nil, fmt.Errorf("connect %s: %w", socket, err)
	}
	defer c.Close()
	// Once ctx is done (its deadline included), the I/O below fails, and
	// fail reports ctx's error.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo) })
	defer stop()
	fail := func(what string, err error) (json.RawMessage, error) {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("%s %s: %w", what, socket, err)
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return fail("send to", err)
	}
	line, err := bufio.NewReaderSize(c, 1<<16).ReadBytes('\n')
	if err != nil {
		return fail("read from", err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return fail("read from", err)
	}
	if !resp.OK {
		return nil, remoteError(resp, socket)
	}
	return resp.Data, nil
}

// CallInto is Call, decoding the answer's data into out.
func CallInto(socket string, req Request, out any) error {
	data, err := Call(socket, req)
	if err != nil {
		return err
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: bad answer: %w", req.Op, err)
	}
	return nil
}
