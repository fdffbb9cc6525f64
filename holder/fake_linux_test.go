package holder_test

// The fake server and the fake holder: this test binary, run again with
// HOLDERTEST_ROLE set. The fake server reports what it sees as JSON lines
// appended to HOLDERTEST_EVENTS; HOLDERTEST_SCRIPT says what it does.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/holder"
)

func TestMain(m *testing.M) {
	switch os.Getenv("HOLDERTEST_ROLE") {
	case "server":
		os.Exit(fakeServer())
	case "holder":
		os.Exit(fakeHolder())
	}
	os.Exit(m.Run())
}

// event is one line of the events file.
type event struct {
	Ev        string            `json:"ev"`
	PID       int               `json:"pid"`
	HolderPID int               `json:"holder_pid,omitempty"`
	Restarts  int               `json:"restarts"`
	StartTime string            `json:"start_time,omitempty"` // /proc/PID/stat field 22
	Marker    string            `json:"marker,omitempty"`
	HasState  bool              `json:"has_state,omitempty"`
	State     string            `json:"state,omitempty"`
	Keys      []string          `json:"keys,omitempty"`
	Vals      map[string]string `json:"vals,omitempty"` // what the taken-over memfds and pipes hold
	Err       string            `json:"err,omitempty"`
	Env       []string          `json:"env,omitempty"` // NOTIFY_SOCKET and TUNDEVFS_HOLDER_FD, if set
}

// emit appends e to the events file (one write, O_APPEND).
func emit(e event) {
	e.PID = os.Getpid()
	b, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	f, err := os.OpenFile(os.Getenv("HOLDERTEST_EVENTS"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		panic(err)
	}
}

// fail reports a failure of the fake server's own and exits 1.
func fail(format string, args ...any) int {
	emit(event{Ev: "fail", Err: fmt.Sprintf(format, args...)})
	return 1
}

// markerPrefix ends a server binary that the planned-restart test copied:
// the copy prints what follows it.
const markerPrefix = "\nHOLDERMARK="

// marker returns the marker appended to this binary, if any.
func marker() string {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() < 64 {
		return ""
	}
	tail := make([]byte, 64)
	if _, err := f.ReadAt(tail, st.Size()-64); err != nil {
		return ""
	}
	i := bytes.LastIndex(tail, []byte(markerPrefix))
	if i < 0 {
		return ""
	}
	return strings.TrimSuffix(string(tail[i+len(markerPrefix):]), "\n")
}

// procStartTime is field 22 of /proc/PID/stat: with the pid, it names a
// process for good.
func procStartTime(pid int) (start string, state byte, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", 0, fmt.Errorf("short stat %q", b)
	}
	return f[19], f[0][0], nil
}

func memfd(name, content string) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// contents reads what a taken-over memfd (from offset 0) or pipe holds.
func contents(key string, f *os.File) string {
	buf := make([]byte, 256)
	var n int
	if strings.HasPrefix(key, "pipe-r") {
		n, _ = f.Read(buf)
	} else {
		n, _ = f.ReadAt(buf, 0)
	}
	return string(buf[:max(n, 0)])
}

// blocking says whether f's open file is in blocking mode, without
// f.Fd (which would make it so).
func blocking(f *os.File) string {
	rc, err := f.SyscallConn()
	if err != nil {
		return err.Error()
	}
	mode := ""
	rc.Control(func(fd uintptr) {
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		switch {
		case err != nil:
			mode = err.Error()
		case fl&unix.O_NONBLOCK != 0:
			mode = "nonblocking"
		default:
			mode = "blocking"
		}
	})
	return mode
}

func fakeServer() int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGUSR1)
	conn, err := holder.FromEnv()
	if err != nil || conn == nil {
		return fail("from env: %v (conn %v)", err, conn)
	}
	state, fds, info, err := conn.Takeover()
	if err != nil {
		return fail("%v", err)
	}
	st, _, _ := procStartTime(os.Getpid())
	start := event{Ev: "start", HolderPID: info.HolderPID, Restarts: info.Restarts, StartTime: st,
		Marker: marker(), HasState: state != nil, State: string(state), Vals: map[string]string{}}
	for k, f := range fds {
		start.Keys = append(start.Keys, k)
		if !strings.HasPrefix(k, "pipe-w") {
			start.Vals[k] = contents(k, f)
		}
	}
	slices.Sort(start.Keys)
	for _, k := range []string{"NOTIFY_SOCKET", "TUNDEVFS_HOLDER_FD"} {
		if v, ok := os.LookupEnv(k); ok {
			start.Env = append(start.Env, k+"="+v)
		}
	}
	if info.ServerPID != os.Getpid() {
		return fail("info.ServerPID %d, want %d", info.ServerPID, os.Getpid())
	}
	emit(start)

	switch script := os.Getenv("HOLDERTEST_SCRIPT"); script {
	case "idle":
		return idle(conn, sigs, info)
	case "clean":
		conn.Ready()
		emit(event{Ev: "ready", Restarts: info.Restarts})
		conn.Exiting(false)
		return 0
	case "pipe":
		if info.Restarts == 0 {
			r, w, err := os.Pipe()
			if err != nil {
				return fail("pipe: %v", err)
			}
			if err := conn.PutFD("pipe-r", r); err != nil {
				return fail("%v", err)
			}
			if err := conn.PutFD("pipe-w", w); err != nil {
				return fail("%v", err)
			}
			if _, err := w.WriteString("hello from server 1"); err != nil {
				return fail("write pipe: %v", err)
			}
			if err := conn.SaveState([]byte("written")); err != nil {
				return fail("%v", err)
			}
			emit(event{Ev: "flags", Restarts: info.Restarts, Vals: map[string]string{"pipe-r": blocking(r), "pipe-w": blocking(w)}})
		} else {
			emit(event{Ev: "flags", Restarts: info.Restarts, Vals: map[string]string{"pipe-r": blocking(fds["pipe-r"]), "pipe-w": blocking(fds["pipe-w"])}})
		}
		return idle(conn, sigs, info)
	case "delfd":
		if info.Restarts > 0 {
			return idle(conn, sigs, info)
		}
		return delfd(conn, sigs)
	case "loop":
		return loop(conn, sigs, info)
	case "crash":
		return crash(conn, info)
	case "partial":
		if info.Restarts > 0 {
			return idle(conn, sigs, info)
		}
		if err := conn.SaveState([]byte("complete")); err != nil {
			return fail("%v", err)
		}
		// Half a SaveState on the holder's socket, then death.
		if err := unix.Sendmsg(3, holder.PartialStateMsg([]byte("partial")), nil, nil, 0); err != nil {
			return fail("raw send: %v", err)
		}
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	case "concstate":
		return concState(conn, sigs, info, state)
	case "bigstate":
		return bigState(conn, sigs, info, state)
	default:
		return fail("unknown script %q", script)
	}
}

// idle says ready, then exits as the holder or a signal asks.
func idle(conn *holder.Conn, sigs <-chan os.Signal, info holder.Info) int {
	if err := conn.Ready(); err != nil {
		return fail("%v", err)
	}
	emit(event{Ev: "ready", Restarts: info.Restarts})
	for {
		select {
		case s := <-sigs:
			if s != syscall.SIGTERM {
				continue
			}
			emit(event{Ev: "sigterm", Restarts: info.Restarts})
			conn.Exiting(false)
			return 0
		case <-conn.RestartRequests():
			emit(event{Ev: "restart-request", Restarts: info.Restarts})
			if err := conn.Exiting(true); err != nil {
				return fail("%v", err)
			}
			return 0
		}
	}
}

// delfd puts 20 memfds (m0 twice), says ready, and on SIGUSR1 deletes
// them all and restarts.
func delfd(conn *holder.Conn, sigs <-chan os.Signal) int {
	for i := -1; i < 20; i++ {
		f, err := memfd("holderdel", strconv.Itoa(i))
		if err != nil {
			return fail("memfd: %v", err)
		}
		if err := conn.PutFD(fmt.Sprintf("m%d", max(i, 0)), f); err != nil {
			return fail("%v", err)
		}
		f.Close()
	}
	conn.Ready()
	emit(event{Ev: "ready"})
	for s := range sigs {
		if s == syscall.SIGUSR1 {
			break
		}
	}
	for i := 0; i < 20; i++ {
		if err := conn.DelFD(fmt.Sprintf("m%d", i)); err != nil {
			return fail("%v", err)
		}
	}
	if err := conn.DelFD("never-put"); err != nil {
		return fail("%v", err)
	}
	conn.Exiting(true)
	return 0
}

// Progress slots of the loop script: per generation (Restarts), the last
// value whose SaveState returned, then the last value whose PutFD returned
// for each of loopWorkers goroutines. The test reads them once the
// generation is dead.
const (
	loopWorkers = 4
	slotSize    = 8 * (1 + loopWorkers)
	genBase     = 1_000_000 // values of generation g are g*genBase + i
)

// loop runs loopWorkers goroutines, each putting memfds holding rising
// values under its own key; worker 0 saves each value as the state after
// its put returned. Each records what returned in its progress slot.
func loop(conn *holder.Conn, sigs <-chan os.Signal, info holder.Info) int {
	prog, err := os.OpenFile(os.Getenv("HOLDERTEST_PROGRESS"), os.O_WRONLY, 0)
	if err != nil {
		return fail("progress: %v", err)
	}
	slot := int64(info.Restarts * slotSize)
	record := func(i int, v uint64) {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		if _, err := prog.WriteAt(b[:], slot+int64(8*i)); err != nil {
			panic(err)
		}
	}
	conn.Ready()
	emit(event{Ev: "ready", Restarts: info.Restarts})
	var mu sync.Mutex
	failed := ""
	for w := 0; w < loopWorkers; w++ {
		go func() {
			for i := 1; i < genBase; i++ {
				v := uint64(info.Restarts*genBase + i)
				f, err := memfd("holderloop", strconv.FormatUint(v, 10))
				if err == nil {
					err = conn.PutFD(fmt.Sprintf("g%d", w), f)
					f.Close()
				}
				if err == nil {
					record(1+w, v)
					if w == 0 {
						err = conn.SaveState([]byte(strconv.FormatUint(v, 10)))
						if err == nil {
							record(0, v)
						}
					}
				}
				if err != nil {
					mu.Lock()
					failed = err.Error()
					mu.Unlock()
					return
				}
			}
		}()
	}
	for s := range sigs {
		if s == syscall.SIGTERM {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if failed != "" {
		return fail("%s", failed)
	}
	conn.Exiting(false)
	return 0
}

// crash saves a state and an fd naming the generation, then ends as
// HOLDERTEST_CRASH says.
func crash(conn *holder.Conn, info holder.Info) int {
	gen := fmt.Sprintf("gen%d", info.Restarts)
	if err := conn.SaveState([]byte(gen)); err != nil {
		return fail("%v", err)
	}
	f, err := memfd("holdercrash", gen)
	if err != nil {
		return fail("memfd: %v", err)
	}
	if err := conn.PutFD("memfd", f); err != nil {
		return fail("%v", err)
	}
	switch how := os.Getenv("HOLDERTEST_CRASH"); how {
	case "exit3":
		return 3
	case "exit0":
		return 0
	case "panic":
		panic("fake server panics")
	case "sigkill":
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	case "restart-exit1":
		conn.Exiting(true)
		return 1
	case "shutdown-exit1":
		conn.Exiting(false)
		return 1
	default:
		return fail("unknown crash %q", how)
	}
}

// bigState checks the state it took over (the previous generation's, of
// bigStateSize bytes) and saves its own, then idles.
func bigState(conn *holder.Conn, sigs <-chan os.Signal, info holder.Info, state []byte) int {
	if info.Restarts > 0 && !bytes.Equal(state, bigStateBlob(info.Restarts-1)) {
		return fail("state of %d bytes is not generation %d's", len(state), info.Restarts-1)
	}
	if err := conn.SaveState(bigStateBlob(info.Restarts)); err != nil {
		return fail("%v", err)
	}
	return idle(conn, sigs, info)
}

// concState: checks it took over one blob whole (if any), then 4 goroutines save blobs of their own (several chunks each,
// all bytes the goroutine's letter) at once, until the server is killed.
func concState(conn *holder.Conn, sigs <-chan os.Signal, info holder.Info, state []byte) int {
	const size = 100_000
	// nil: every server so far was killed before a SaveState returned.
	if state != nil && (len(state) != size || bytes.Count(state, state[:1]) != size) {
		return fail("state of %d bytes mixes blobs", len(state))
	}
	if err := conn.Ready(); err != nil {
		return fail("%v", err)
	}
	emit(event{Ev: "ready", Restarts: info.Restarts})
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			blob := bytes.Repeat([]byte{byte('a' + w)}, size)
			for {
				if err := conn.SaveState(blob); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for {
		select {
		case err := <-errs:
			return fail("%v", err)
		case sig := <-sigs:
			if sig == syscall.SIGTERM {
				conn.Exiting(false)
				return 0
			}
		}
	}
}

// bigStateSize spans many chunks and is no multiple of the chunk size.
const bigStateSize = 3<<20 + 12345

func bigStateBlob(gen int) []byte {
	b := make([]byte, bigStateSize)
	for i := range b {
		b[i] = byte(i*7 + gen)
	}
	return b
}

// fakeHolder runs a holder of an idle fake server, until killed.
func fakeHolder() int {
	h := holder.New(holder.Config{
		Argv:   []string{os.Args[0]},
		Env:    []string{"HOLDERTEST_ROLE=server", "HOLDERTEST_SCRIPT=idle"},
		Logger: log.New(io.Discard, "", 0),
	})
	if err := h.Run(context.Background()); err != nil {
		return fail("holder: %v", err)
	}
	return 0
}
