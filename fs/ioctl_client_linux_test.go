package fs_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/internal/itest"
	"github.com/tundevfs/tundevfs/ioctls"
)

// client is one way a program reaches the device surface. The same
// scenario runs through each: a C program built against the published
// headers, the Go ioctls package, and a shell using `tundevfs ioctl --fd`.
type client interface {
	// ioctl issues the request called name with value ("" for none) and
	// returns what it read back, formatted as ioctls.Do formats it, or
	// the errno.
	ioctl(t *testing.T, name, value string) (string, unix.Errno)
	// raw issues request number req with a zeroed buffer; ok is false
	// when the client cannot (the shell).
	raw(t *testing.T, req uint32) (errno unix.Errno, ok bool)
	// write writes one packet; ok is false when the client cannot tell
	// the errno (the shell).
	write(t *testing.T, p []byte) (errno unix.Errno, ok bool)
	// read reads one packet.
	read(t *testing.T) []byte
	// pid is the process that opened the device.
	pid(t *testing.T) int
	// close closes the device.
	close(t *testing.T)
}

var errnoNames = func() map[string]unix.Errno {
	m := map[string]unix.Errno{}
	for _, e := range []unix.Errno{unix.EINVAL, unix.ENOTTY, unix.EBUSY, unix.EPROTOTYPE, unix.EAFNOSUPPORT,
		unix.ENOBUFS, unix.EIO, unix.ENXIO, unix.EPERM, unix.EBADF, unix.EAGAIN, unix.ENOENT} {
		m[unix.ErrnoName(e)] = e
	}
	return m
}()

// errnoOf returns the errno err wraps, failing the test for an error that
// wraps none.
func errnoOf(t *testing.T, err error) unix.Errno {
	t.Helper()
	if err == nil {
		return 0
	}
	var e unix.Errno
	if !errors.As(err, &e) {
		t.Fatalf("error without errno: %v", err)
	}
	return e
}

// goClient uses the ioctls package's typed helpers on an fd of the test.
type goClient struct{ fd int }

func newGoClient(t *testing.T, path string) client {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	c := &goClient{fd: fd}
	t.Cleanup(func() {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
	})
	return c
}

func (c *goClient) ioctl(t *testing.T, name, value string) (string, unix.Errno) {
	t.Helper()
	n, _ := strconv.ParseInt(value, 0, 64)
	v := int(n)
	var (
		out string
		err error
	)
	switch name {
	case "TUNSIFHEAD":
		err = ioctls.SetIfHead(c.fd, v != 0)
	case "TUNGIFHEAD":
		var on bool
		on, err = ioctls.GetIfHead(c.fd)
		out = map[bool]string{false: "0", true: "1"}[on]
	case "TUNSLMODE":
		err = ioctls.SetLinkMode(c.fd, v != 0)
	case "TUNSIFMODE":
		err = ioctls.SetMode(c.fd, v)
	case "TUNSIFPID":
		err = ioctls.SetPID(c.fd)
	case "TUNSIFINFO", "TAPSIFINFO":
		ti, perr := ioctls.ParseTunInfo(value, ioctls.TunInfo{})
		if perr != nil {
			t.Fatal(perr)
		}
		err = ioctls.SetInfo(c.fd, ti)
	case "TUNGIFINFO", "TAPGIFINFO":
		var ti ioctls.TunInfo
		ti, err = ioctls.GetInfo(c.fd)
		out = ti.String()
	case "TUNGIFNAME", "TAPGIFNAME":
		out, err = ioctls.GetIfName(c.fd, name == "TAPGIFNAME")
	case "TUNSTRANSIENT", "TAPSTRANSIENT":
		err = ioctls.SetTransient(c.fd, v != 0)
	case "TUNSDEBUG", "TAPSDEBUG":
		err = ioctls.SetDebug(c.fd, v)
	case "TUNGDEBUG", "TAPGDEBUG":
		v, err = ioctls.GetDebug(c.fd)
		out = strconv.Itoa(v)
	case "TAPSVNETHDR":
		err = ioctls.SetVnetHdr(c.fd, v)
	case "TAPGVNETHDR":
		v, err = ioctls.GetVnetHdr(c.fd)
		out = strconv.Itoa(v)
	case "TAPSIFADDR":
		mac, perr := net.ParseMAC(value)
		if perr != nil {
			t.Fatal(perr)
		}
		err = ioctls.SetRemoteMAC(c.fd, mac)
	case "TAPGIFADDR":
		var mac net.HardwareAddr
		mac, err = ioctls.GetRemoteMAC(c.fd)
		out = mac.String()
	case "VMIO_SIOCSIFFLAGS":
		err = ioctls.SetVMIOFlags(c.fd, v)
	default:
		out, err = ioctls.Do(c.fd, name, value)
	}
	if err != nil {
		return "", errnoOf(t, err)
	}
	return out, 0
}

func (c *goClient) raw(t *testing.T, req uint32) (unix.Errno, bool) {
	buf := make([]byte, 64)
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(c.fd), uintptr(req), uintptr(unsafe.Pointer(&buf[0])))
	runtime.KeepAlive(buf)
	return e, true
}

func (c *goClient) write(t *testing.T, p []byte) (unix.Errno, bool) {
	_, err := unix.Write(c.fd, p)
	return errnoOf(t, err), true
}

func (c *goClient) read(t *testing.T) []byte {
	t.Helper()
	buf := make([]byte, 65536)
	n := readTimeout(t, c.fd, buf)
	return buf[:n]
}

func (c *goClient) pid(t *testing.T) int { return os.Getpid() }

func (c *goClient) close(t *testing.T) {
	unix.Close(c.fd)
	c.fd = -1
}

// lineClient drives a process that answers one line per command: the C
// client or the shell client.
type lineClient struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	shell bool
	mu    sync.Mutex // guards stderr
	errb  strings.Builder
}

var (
	cClientOnce sync.Once
	cClientPath string
	cClientErr  error
)

// buildCClient compiles testdata/clients/ioctl_client.c against the published
// headers, once per test process.
func buildCClient(t *testing.T) string {
	t.Helper()
	cClientOnce.Do(func() {
		if _, err := exec.LookPath("gcc"); err != nil {
			cClientErr = fmt.Errorf("gcc: %w", err)
			return
		}
		// One directory a checkout (not one per test process, which
		// nothing removed), outside it because tests run the client as an
		// unprivileged user too; built under a name of its own and
		// renamed into place, so test processes at once never share a
		// half-written file.
		src, err := filepath.Abs("..")
		if err != nil {
			cClientErr = err
			return
		}
		sum := sha256.Sum256([]byte(src))
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("tundevfs-cclient-%x", sum[:6]))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			cClientErr = err
			return
		}
		// A predictable name in /tmp: use it only if it is ours, a real
		// directory (not a link someone planted) that nobody else can write.
		var st unix.Stat_t
		if err := unix.Lstat(dir, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() {
			cClientErr = fmt.Errorf("%s is not a directory of ours (%v)", dir, err)
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			cClientErr = err
			return
		}
		cClientPath = filepath.Join(dir, "ioctl_client")
		tmp := fmt.Sprintf("%s.%d", cClientPath, os.Getpid())
		out, err := exec.Command("gcc", "-Wall", "-Wextra", "-Werror", "-I", "../include",
			"-o", tmp, "../testdata/clients/ioctl_client.c").CombinedOutput()
		if err != nil {
			os.Remove(tmp)
			cClientErr = fmt.Errorf("gcc: %v\n%s", err, out)
			return
		}
		if err := os.Rename(tmp, cClientPath); err != nil {
			os.Remove(tmp)
			cClientErr = err
		}
	})
	if cClientErr != nil {
		if os.Getenv("TUNDEVFS_REQUIRE_PRIVILEGED") != "1" && strings.HasPrefix(cClientErr.Error(), "gcc: exec") {
			t.Skipf("no C compiler: %v", cClientErr)
		}
		t.Fatal(cClientErr)
	}
	return cClientPath
}

func newCClient(t *testing.T, path string) client {
	t.Helper()
	return startLineClient(t, exec.Command(buildCClient(t), path), false)
}

func newShellClient(bin string) func(t *testing.T, path string) client {
	return func(t *testing.T, path string) client {
		t.Helper()
		return startLineClient(t, exec.Command("sh", "../testdata/clients/ioctl_shell.sh", bin, path), true)
	}
}

func startLineClient(t *testing.T, cmd *exec.Cmd, shell bool) *lineClient {
	t.Helper()
	c := &lineClient{cmd: cmd, lines: make(chan string, 16), shell: shell}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.errb.Write(p)
	})
	c.in = in
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<18), 1<<18)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() {
		c.in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	if r, e := c.call(t, ""); e != "" || r != "ready" {
		t.Fatalf("client did not start: %q %q", r, e)
	}
	return c
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// call sends line (none if "") and returns the answer: the result after
// "ok", or the error after "err".
func (c *lineClient) call(t *testing.T, line string) (result, errMsg string) {
	t.Helper()
	if line != "" {
		if _, err := io.WriteString(c.in, line+"\n"); err != nil {
			t.Fatalf("send %q: %v", line, err)
		}
	}
	select {
	case l, ok := <-c.lines:
		if !ok {
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("client exited on %q: %s", line, c.errb.String())
		}
		if r, found := strings.CutPrefix(l, "ok"); found {
			return strings.TrimPrefix(r, " "), ""
		}
		if e, found := strings.CutPrefix(l, "err "); found {
			return "", e
		}
		t.Fatalf("client answered %q to %q", l, line)
	case <-time.After(10 * time.Second):
		t.Fatalf("client gave no answer to %q in 10s", line)
	}
	return "", ""
}

// errnoName finds the errno in an error answer: the C client's name, or
// the "(EINVAL)" that tundevfs ioctl ends its message with.
func (c *lineClient) errnoName(t *testing.T, msg string) unix.Errno {
	t.Helper()
	name := msg
	if c.shell {
		i, j := strings.LastIndex(msg, "("), strings.LastIndex(msg, ")")
		if i < 0 || j < i {
			t.Fatalf("shell error without an errno: %q", msg)
		}
		name = msg[i+1 : j]
	}
	e, ok := errnoNames[name]
	if !ok {
		t.Fatalf("unexpected error %q", msg)
	}
	return e
}

func (c *lineClient) ioctl(t *testing.T, name, value string) (string, unix.Errno) {
	t.Helper()
	r, e := c.call(t, strings.TrimSpace("ioctl "+name+" "+value))
	if e != "" {
		return "", c.errnoName(t, e)
	}
	return r, 0
}

func (c *lineClient) raw(t *testing.T, req uint32) (unix.Errno, bool) {
	t.Helper()
	if c.shell {
		return 0, false
	}
	if _, e := c.call(t, fmt.Sprintf("raw %#x", req)); e != "" {
		return c.errnoName(t, e), true
	}
	return 0, true
}

func (c *lineClient) write(t *testing.T, p []byte) (unix.Errno, bool) {
	t.Helper()
	_, e := c.call(t, "write "+hex.EncodeToString(p))
	if c.shell {
		// xxd says only that it failed; what the packet did is checked
		// where it should arrive.
		return 0, false
	}
	if e != "" {
		return c.errnoName(t, e), true
	}
	return 0, true
}

func (c *lineClient) read(t *testing.T) []byte {
	t.Helper()
	r, e := c.call(t, "read")
	if e != "" {
		t.Fatalf("read: %s", e)
	}
	b, err := hex.DecodeString(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

func (c *lineClient) pid(t *testing.T) int {
	t.Helper()
	r, e := c.call(t, "pid")
	n, err := strconv.Atoi(r)
	if e != "" || err != nil {
		t.Fatalf("pid: %q %q", r, e)
	}
	return n
}

func (c *lineClient) close(t *testing.T) {
	t.Helper()
	if _, e := c.call(t, "close"); e != "" {
		t.Fatalf("close: %s", e)
	}
}

// clients are the three ways in, by name.
func clients(t *testing.T) map[string]func(t *testing.T, path string) client {
	return map[string]func(t *testing.T, path string) client{
		"c":     newCClient,
		"go":    newGoClient,
		"shell": newShellClient(itest.Binary(t)),
	}
}
