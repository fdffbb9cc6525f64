package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
)

// procDir is /proc/PID, or /proc/self for pid 0.
func procDir(pid int) string {
	if pid == 0 {
		return "/proc/self"
	}
	return "/proc/" + strconv.Itoa(pid)
}

// kindOnly matches the fd targets that name an object by a number that
// changes with every instance (socket:[123], pipe:[4], net:[4026531840]):
// they count by kind.
var kindOnly = regexp.MustCompile(`^([a-z_]+):\[[0-9]+\]$`)

// FdKind is what Fds files an fd target under: "socket", "pipe", "net"
// (a namespace), "anon_inode:[eventpoll]", or a file's path.
func FdKind(target string) string {
	if m := kindOnly.FindStringSubmatch(target); m != nil {
		return m[1]
	}
	return target
}

// Fds samples the fds of process pid (0: this process) by what they point
// to (FdKind), as keys "fd KIND". The directory fd the listing itself
// needs is left out.
func Fds(pid int) (Sample, error) {
	dir := procDir(pid) + "/fd"
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("fds: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("fds: %w", err)
	}
	self := ""
	if pid == 0 || pid == os.Getpid() {
		self = strconv.Itoa(int(f.Fd()))
	}
	s := Sample{}
	for _, n := range names {
		if n == self {
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, n))
		if err != nil {
			continue // closed while we listed
		}
		s["fd "+FdKind(target)]++
	}
	return s, nil
}

// Threads samples how many threads process pid (0: this process) has, as
// the key "thread".
func Threads(pid int) (Sample, error) {
	ents, err := os.ReadDir(procDir(pid) + "/task")
	if err != nil {
		return nil, fmt.Errorf("threads: %w", err)
	}
	return Sample{"thread": len(ents)}, nil
}

// RSS samples the resident set of process pid (0: this process) in KiB, as
// the key "rss KiB". It is not flat by nature (Go's heap): check it with an
// Allow slack.
func RSS(pid int) (Sample, error) {
	b, err := os.ReadFile(procDir(pid) + "/status")
	if err != nil {
		return nil, fmt.Errorf("rss: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kib, err := strconv.Atoi(f[0])
				if err != nil {
					return nil, fmt.Errorf("rss: %q: %w", v, err)
				}
				return Sample{"rss KiB": kib}, nil
			}
		}
	}
	return nil, errors.New("rss: no VmRSS line (a zombie?)")
}

// Goroutines samples this process's goroutines by the function each one
// started in, as keys "goroutine FUNC".
func Goroutines() Sample {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return ParseGoroutines(string(buf[:n]))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// ParseGoroutines files the goroutines of a runtime.Stack(all) dump (this
// process's or a daemon's) under the function each one started in, as
// keys "goroutine FUNC". Where the dump elided the bottom frames, the key
// is "goroutine created by FUNC".
func ParseGoroutines(dump string) Sample {
	s := Sample{}
	for _, g := range strings.Split(dump, "\n\n") {
		if !strings.HasPrefix(g, "goroutine ") {
			continue
		}
		s["goroutine "+entry(g)]++
	}
	return s
}

// entry names the function a goroutine's stack trace started in.
func entry(g string) string {
	lines := strings.Split(strings.TrimSpace(g), "\n")
	last := ""
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, "\t"):
		case strings.HasPrefix(l, "...additional frames elided..."):
			last = ""
		case strings.HasPrefix(l, "created by "):
			if last != "" {
				return last
			}
			by := strings.TrimPrefix(l, "created by ")
			if i := strings.Index(by, " in goroutine "); i >= 0 {
				by = by[:i]
			}
			return "created by " + by
		default:
			last = funcName(l)
		}
	}
	if last == "" {
		return "unknown"
	}
	return last
}

// funcName strips the argument list from a stack frame's function line:
// "pkg.(*T).m(0x1, ...)" is "pkg.(*T).m".
func funcName(l string) string {
	if i := strings.LastIndex(l, "("); i > 0 && strings.HasSuffix(l, ")") {
		return l[:i]
	}
	return l
}

// Self probes this process: its fds, threads and goroutines.
func Self() Probe {
	return func() (Sample, error) {
		s := Goroutines()
		fds, err := Fds(0)
		if err != nil {
			return nil, err
		}
		s.Add(fds)
		th, err := Threads(0)
		if err != nil {
			return nil, err
		}
		s.Add(th)
		return s, nil
	}
}

// Process probes another process by pid: its fds and threads (its
// goroutines only it can tell; see ParseGoroutines).
func Process(pid int) Probe {
	return Merge(
		func() (Sample, error) { return Fds(pid) },
		func() (Sample, error) { return Threads(pid) },
	)
}
