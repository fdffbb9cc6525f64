package clonehandler

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/tundevfs/tundevfs/driver"
)

// TestErrnoTable: every exported sentinel of the package has a row in
// Errnos, with a non-zero errno that driver.ErrnoOf finds.
func TestErrnoTable(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for _, id := range vs.Names {
				if len(id.Name) > 3 && strings.HasPrefix(id.Name, "Err") && unicode.IsUpper(rune(id.Name[3])) {
					declared[id.Name] = true
				}
			}
			return true
		})
	}
	byName := map[string]error{"ErrNoMatch": ErrNoMatch, "ErrDenied": ErrDenied, "ErrCloningOff": ErrCloningOff}
	for name := range declared {
		e, ok := byName[name]
		if !ok {
			t.Errorf("%s: new sentinel; give it a row in Errnos (and add it here)", name)
			continue
		}
		wrapped := fmt.Errorf("clone x: %w", e)
		if got, ok := driver.ErrnoOf(wrapped, Errnos); !ok || got == 0 {
			t.Errorf("%s has no errno in clonehandler.Errnos", name)
		}
	}
}
