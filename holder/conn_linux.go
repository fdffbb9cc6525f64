package holder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is the server's end of the holder socket.
type Conn struct {
	sock    *sock
	restart chan struct{} // holder's restart requests, coalesced

	// sendMu guards sends on sock, so that the messages of one call stay
	// together and calls reach the holder in the order they returned.
	sendMu sync.Mutex

	// mu guards info, tookOver and readerDone.
	mu         sync.Mutex
	info       Info
	tookOver   bool
	readerDone chan struct{} // closed when the restart reader ends; nil before Takeover
}

// FromEnv returns the server's end of the holder socket, named by
// TUNDEVFS_HOLDER_FD, or nil, nil when the process was not started by a
// holder. It unsets the variable (a process the server starts is no
// server) and marks the fd close-on-exec.
func FromEnv() (*Conn, error) {
	v := os.Getenv(envFD)
	if v == "" {
		return nil, nil
	}
	os.Unsetenv(envFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 0 {
		return nil, fmt.Errorf("holder: %s=%q is not an fd", envFD, v)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil || typ != unix.SOCK_SEQPACKET {
		return nil, fmt.Errorf("holder: fd %d is not the holder's socket (type %d, %v)", fd, typ, err)
	}
	unix.CloseOnExec(fd)
	s, err := newSock(fd, "holder")
	if err != nil {
		return nil, err
	}
	return &Conn{sock: s, restart: make(chan struct{}, 1)}, nil
}

// Takeover returns what the previous server left: the last state blob
// (nil on the first start) and every fd it put (the caller owns the
// returned files; the holder keeps its own dups), plus Info. Call it once,
// before any other method.
func (c *Conn) Takeover() (state []byte, fds map[string]*os.File, info Info, err error) {
	c.mu.Lock()
	if c.tookOver {
		c.mu.Unlock()
		return nil, nil, Info{}, errors.New("holder: takeover twice")
	}
	c.tookOver = true
	c.mu.Unlock()

	fds = map[string]*os.File{}
	defer func() {
		if err != nil {
			for _, f := range fds {
				f.Close()
			}
			fds, state = nil, nil
			err = fmt.Errorf("holder: takeover: %w", err)
		}
	}()
	if err := c.send(-1, []byte{byte(opTakeover)}); err != nil {
		return nil, nil, Info{}, err
	}
	buf := make([]byte, maxMsg)
	oob := make([]byte, oobSize)
	var (
		gotInfo, hasState, inState bool
		stateLen                   uint64
		nfds                       int
	)
	for {
		n, got, err := c.sock.recv(buf, oob, true)
		if err != nil {
			return nil, nil, Info{}, err
		}
		if n == 0 {
			closeFDs(got)
			return nil, nil, Info{}, errors.New("empty message with fds")
		}
		o, p := op(buf[0]), buf[1:n]
		if o != opFD && len(got) > 0 {
			closeFDs(got)
			return nil, nil, Info{}, fmt.Errorf("message %#x carries fds", o)
		}
		if o != opInfo && o != opRestart && !gotInfo {
			return nil, nil, Info{}, fmt.Errorf("message %#x before info", o)
		}
		switch o {
		case opRestart:
			c.requestRestart()
		case opInfo:
			if len(p) != infoSize {
				return nil, nil, Info{}, fmt.Errorf("info of %d bytes", len(p))
			}
			le := binary.LittleEndian
			info = Info{
				HolderPID: int(le.Uint32(p[0:])),
				ServerPID: int(le.Uint32(p[4:])),
				Restarts:  int(le.Uint32(p[8:])),
				Start:     time.Unix(0, int64(le.Uint64(p[12:]))),
			}
			hasState, stateLen, nfds = p[20] == 1, le.Uint64(p[21:]), int(le.Uint32(p[29:]))
			gotInfo = true
		case opState:
			if len(p) == 0 {
				return nil, nil, Info{}, errors.New("state chunk without flags")
			}
			if p[0]&chunkFirst != 0 {
				state, inState = []byte{}, true
			}
			if !inState || uint64(len(state)+len(p)-1) > stateLen {
				return nil, nil, Info{}, errors.New("state chunks out of order")
			}
			state = append(state, p[1:]...)
			if p[0]&chunkLast != 0 {
				inState = false
			}
		case opFD:
			if len(got) != 1 || len(p) == 0 {
				closeFDs(got)
				return nil, nil, Info{}, fmt.Errorf("fd message with %d fds", len(got))
			}
			key := string(p)
			if old, ok := fds[key]; ok {
				old.Close()
			}
			fds[key] = os.NewFile(uintptr(got[0]), key)
		case opDone:
			if inState || hasState != (state != nil) || uint64(len(state)) != stateLen || len(fds) != nfds {
				return nil, nil, Info{}, fmt.Errorf("incomplete: state %d of %d bytes, %d of %d fds", len(state), stateLen, len(fds), nfds)
			}
			c.mu.Lock()
			c.info = info
			c.readerDone = make(chan struct{})
			go c.readRestarts(c.readerDone)
			c.mu.Unlock()
			return state, fds, info, nil
		default:
			return nil, nil, Info{}, fmt.Errorf("unknown message %#x", o)
		}
	}
}

// readRestarts turns the holder's restart requests into RestartRequests
// until the socket ends.
func (c *Conn) readRestarts(done chan struct{}) {
	defer close(done)
	buf := make([]byte, maxMsg)
	oob := make([]byte, oobSize)
	for {
		n, fds, err := c.sock.recv(buf, oob, true)
		if err != nil {
			return // io.EOF: the holder is gone (and so are we, by PDEATHSIG)
		}
		closeFDs(fds)
		if n > 0 && op(buf[0]) == opRestart {
			c.requestRestart()
		}
	}
}

func (c *Conn) requestRestart() {
	select {
	case c.restart <- struct{}{}:
	default: // one pending is enough
	}
}

// send sends one message. Callers of the exported methods go through it
// (or hold sendMu themselves).
func (c *Conn) send(fd int, bufs ...[]byte) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.sock.send(fd, bufs...)
}

// PutFD hands the holder a dup of f under key, replacing (and closing) the
// holder's older dup under that key. f stays the caller's, and its flags
// are not touched.
func (c *Conn) PutFD(key string, f *os.File) error {
	if key == "" || len(key) > maxKey {
		return fmt.Errorf("holder: put fd: bad key %q", key)
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if err := c.sock.sendFile(f, []byte{byte(opPutFD)}, []byte(key)); err != nil {
		return fmt.Errorf("holder: put fd %q: %w", key, err)
	}
	return nil
}

// DelFD makes the holder close its dup under key (none: nothing happens).
func (c *Conn) DelFD(key string) error {
	if key == "" || len(key) > maxKey {
		return fmt.Errorf("holder: del fd: bad key %q", key)
	}
	if err := c.send(-1, []byte{byte(opDelFD)}, []byte(key)); err != nil {
		return fmt.Errorf("holder: del fd %q: %w", key, err)
	}
	return nil
}

// SaveState makes blob the state the next server takes over. It travels
// in chunks; the holder keeps it only once all of them arrived.
func (c *Conn) SaveState(blob []byte) error {
	if len(blob) > maxState {
		return fmt.Errorf("holder: save state: %d bytes, over %d", len(blob), maxState)
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if err := sendState(c.sock, blob); err != nil {
		return fmt.Errorf("holder: save state: %w", err)
	}
	return nil
}

// Ready says the server serves (the holder's Notify gets READY=1 the first
// time).
func (c *Conn) Ready() error {
	if err := c.send(-1, []byte{byte(opReady)}); err != nil {
		return fmt.Errorf("holder: ready: %w", err)
	}
	return nil
}

// Exiting announces the server's exit: restart=true, the holder starts a
// new server at once (planned, not a crash); false, a clean shutdown, the
// holder ends once the server has exited (with status 0).
func (c *Conn) Exiting(restart bool) error {
	b := byte(0)
	if restart {
		b = 1
	}
	if err := c.send(-1, []byte{byte(opExiting), b}); err != nil {
		return fmt.Errorf("holder: exiting: %w", err)
	}
	return nil
}

// RestartRequests delivers the holder's requests to restart
// (Holder.Restart): the server quiesces, calls Exiting(true) and exits.
func (c *Conn) RestartRequests() <-chan struct{} { return c.restart }

// Info returns what Takeover reported (zero before it).
func (c *Conn) Info() Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

// Close closes the server's end. The holder keeps waiting for the server
// process to exit; a server under a holder need not call it.
func (c *Conn) Close() error {
	err := c.sock.close()
	c.mu.Lock()
	done := c.readerDone
	c.mu.Unlock()
	if done != nil {
		<-done
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("holder: close: %w", err)
	}
	return nil
}
