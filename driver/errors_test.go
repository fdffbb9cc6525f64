package driver

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/internal/testenv"
)

// tableNames lists the sentinels the composite literal assigned to the
// variable table in file names, as "Name" or "pkg.Name".
func tableNames(t *testing.T, file, table string) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	found := false
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != table || len(vs.Values) != 1 {
			return true
		}
		found = true
		for _, elt := range vs.Values[0].(*ast.CompositeLit).Elts {
			row := elt.(*ast.CompositeLit)
			first := row.Elts[0]
			if kv, ok := first.(*ast.KeyValueExpr); ok {
				first = kv.Value
			}
			switch e := first.(type) {
			case *ast.Ident:
				names[e.Name] = true
			case *ast.SelectorExpr:
				names[e.X.(*ast.Ident).Name+"."+e.Sel.Name] = true
			}
		}
		return false
	})
	if !found {
		t.Fatalf("%s: no table %s", file, table)
	}
	return names
}

// TestErrnoTable: every exported sentinel of driver, and of the packages
// below it whose errors reach the filesystem through it (jails, ioctls),
// has a row in Errnos, so that none becomes EIO by accident.
func TestErrnoTable(t *testing.T) {
	rows := tableNames(t, "errors.go", "Errnos")
	for _, pkg := range []struct{ dir, prefix string }{{".", ""}, {"../jails", "jails."}, {"../ioctls", "ioctls."}} {
		for _, name := range testenv.Sentinels(t, pkg.dir) {
			if !rows[pkg.prefix+name] {
				t.Errorf("%s%s has no row in driver.Errnos: give it a deliberate errno", pkg.prefix, name)
			}
		}
	}
	checkRows(t, Errnos)
}

// checkRows checks what the rows say: a non-zero errno, no sentinel twice,
// EIO only where it is the reference's answer, and ErrnoOf finding each
// through a wrapping.
func checkRows(t *testing.T, table []ErrnoRow) {
	t.Helper()
	deliberateEIO := map[error]bool{ErrTooBig: true, ErrPageCache: true}
	seen := map[error]bool{}
	for _, r := range table {
		if r.Err == nil || r.Errno == 0 {
			t.Errorf("row %v -> %v: nil error or zero errno", r.Err, r.Errno)
			continue
		}
		if seen[r.Err] {
			t.Errorf("%v has two rows", r.Err)
		}
		seen[r.Err] = true
		if r.Errno == unix.EIO && !deliberateEIO[r.Err] {
			t.Errorf("%v -> EIO: EIO is what an unmapped error becomes; choose a clear errno", r.Err)
		}
		wrapped := fmt.Errorf("op: %w", fmt.Errorf("inner: %w", r.Err))
		if got, ok := ErrnoOf(wrapped, table); !ok || got != r.Errno {
			t.Errorf("ErrnoOf(%v) = %v, %v; want %v", wrapped, got, ok, r.Errno)
		}
	}
	if _, ok := ErrnoOf(errors.New("something else")); ok {
		t.Error("ErrnoOf maps an unknown error")
	}
}
