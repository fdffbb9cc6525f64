package main

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"testing"
)

// TestNoFsImport: the CLI reaches the filesystem only through the daemon
// package (daemon.MountOptions, daemon.IsTundevfsMount), so that fs can
// change its nodes and options without touching the CLI (issue 14, 11).
func TestNoFsImport(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if path, _ := strconv.Unquote(imp.Path.Value); path == "github.com/tundevfs/tundevfs/fs" {
				t.Errorf("%s imports %s; ask the daemon package instead", name, path)
			}
		}
	}
}
