package daemon

import (
	"bufio"
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

// Request is one call on the control socket: a JSON object on one line.
type Request struct {
	Op   string   `json:"op"`
	Dir  string   `json:"dir,omitempty"`
	Jail string   `json:"jail,omitempty"`
	Args []string `json:"args,omitempty"`
	// Mount options.
	AllowOther bool `json:"allow_other,omitempty"`
	// PerNetns asks for the shared per-netns mount (fs/pernetns.go).
	PerNetns bool `json:"per_netns,omitempty"`
}

// Response answers a Request: a JSON object on one line.
type Response struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// Status is the answer to "status": everything a test or an operator needs
// to see that nothing leaked.
type Status struct {
	PID        int `json:"pid"`
	Goroutines int `json:"goroutines"`
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

// ErrNoDaemon says that nothing answers on the control socket.
var ErrNoDaemon = errors.New("no tundevfs daemon is running")

// Call sends req to the daemon at socket and returns its answer. A daemon
// error comes back as an error carrying the daemon's message.
func Call(socket string, req Request) (json.RawMessage, error) {
	c, err := net.DialTimeout("unix", socket, 2*time.Second)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w at %s (start one with `tundevfs daemon` or `tundevfs mount`)", ErrNoDaemon, socket)
		}
		return nil, fmt.Errorf("connect %s: %w", socket, err)
	}
	defer c.Close()
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, fmt.Errorf("send to %s: %w", socket, err)
	}
	line, err := bufio.NewReaderSize(c, 1<<16).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("read from %s: %w", socket, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("read from %s: %w", socket, err)
	}
	if !resp.OK {
		return nil, errors.New(resp.Error)
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
