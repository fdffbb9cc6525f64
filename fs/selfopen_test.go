package fs_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// daemonPackages are the packages linked into the daemon, relative to the
// module root.
var daemonPackages = []string{"cmd/tundevfs", "daemon", "fs", "driver", "jails", "clonehandler"}

// fileOpeners are the os functions that open a file by path through an
// *os.File, which the Go runtime registers with epoll.
var fileOpeners = map[string]bool{
	"Open": true, "OpenFile": true, "Create": true, "ReadFile": true,
	"WriteFile": true, "ReadDir": true, "DirFS": true, "OpenRoot": true,
	"OpenInRoot": true, "Chdir": true,
}

// reviewedOpeners are the call sites that open files by path in the daemon's
// packages, each with what it opens: never anything on a tundevfs mount.
var reviewedOpeners = map[string]string{
	"daemon/daemon.go countDir os.ReadDir":                     "/proc/self/fd, /proc/self/task",
	"fs/mountinfo_linux.go mounts os.Open":                     "/proc/self/mountinfo",
	"fs/abort_linux.go abortConnection os.WriteFile":           "/sys/fs/fuse/connections/N/abort",
	"clonehandler/clonehandler.go supplementaryGroups os.Open": "/proc/PID/status",
	"driver/mac.go machineID os.ReadFile":                      "/etc/machine-id, /var/lib/dbus/machine-id",
}

// TestNoFileOpensOnOwnMount is the code-level half of the guard against
// golang/go#21014 (TestDaemonOpensNothingInMount is the other): with
// FUSE_POLL served, a daemon that opened a file on its own mount through
// the runtime poller would wait on its own POLL request. Every call that
// opens a file by path in the daemon's packages must be reviewed here; raw
// unix.Open fds never reach the poller and are not listed.
func TestNoFileOpensOnOwnMount(t *testing.T) {
	found := map[string]bool{}
	fset := token.NewFileSet()
	for _, pkg := range daemonPackages {
		files, err := filepath.Glob(filepath.Join("..", pkg, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if ignored(f) {
				continue
			}
			rel := filepath.ToSlash(filepath.Join(pkg, filepath.Base(path)))
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					call, ok := n.(*ast.CallExpr)
					if !ok {
						return true
					}
					sel, ok := call.Fun.(*ast.SelectorExpr)
					if !ok {
						return true
					}
					if id, ok := sel.X.(*ast.Ident); ok && id.Name == "os" && fileOpeners[sel.Sel.Name] {
						found[rel+" "+fn.Name.Name+" os."+sel.Sel.Name] = true
					}
					return true
				})
			}
		}
	}
	var unreviewed, stale []string
	for site := range found {
		if _, ok := reviewedOpeners[site]; !ok {
			unreviewed = append(unreviewed, site)
		}
	}
	for site := range reviewedOpeners {
		if !found[site] {
			stale = append(stale, site)
		}
	}
	sort.Strings(unreviewed)
	sort.Strings(stale)
	for _, site := range unreviewed {
		t.Errorf("%s opens a file by path: make sure it is never on a tundevfs mount (or use unix.Open) and add it to reviewedOpeners", site)
	}
	for _, site := range stale {
		t.Errorf("reviewedOpeners lists %s, which is gone: remove it", site)
	}
}

// ignored reports whether a file is excluded from every build
// (//go:build ignore).
func ignored(f *ast.File) bool {
	for _, cg := range f.Comments {
		if cg.Pos() >= f.Package {
			break
		}
		for _, c := range cg.List {
			if strings.TrimSpace(c.Text) == "//go:build ignore" {
				return true
			}
		}
	}
	return false
}
