package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCodeMap: the README's code map names every package of the module,
// names no package that does not exist, and every type it tells a reader
// to start from exists in that package (issue 14: a code map that matches
// the code).
func TestCodeMap(t *testing.T) {
	root := "../.."
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "## Code map\n")
	if start < 0 {
		t.Fatal("README.md has no ## Code map section")
	}
	section := text[start+len("## Code map\n"):]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}

	// The packages the map describes: **`path`** at the start of an entry.
	described := map[string]string{} // package path -> its paragraph
	entry := regexp.MustCompile("\\*\\*`([a-z/]+)`\\*\\*")
	for _, para := range strings.Split(section, "\n- ") {
		locs := entry.FindAllStringSubmatchIndex(para, -1)
		for i, loc := range locs {
			end := len(para)
			if i+1 < len(locs) {
				end = locs[i+1][0]
			}
			described[para[loc[2]:loc[3]]] = para[loc[0]:end]
		}
	}

	// The module's packages: directories with non-test Go files.
	pkgs := map[string]bool{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			rel, _ := filepath.Rel(root, filepath.Dir(path))
			pkgs[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range pkgs {
		// A package's commands (bench/cmd/...) belong to its entry.
		if _, ok := described[p]; !ok && !strings.Contains(p, "/cmd/") {
			t.Errorf("the code map does not describe package %s", p)
		}
	}
	for p, para := range described {
		if st, err := os.Stat(filepath.Join(root, p)); err != nil || !st.IsDir() {
			t.Errorf("the code map describes %s, which is not a directory of the module", p)
			continue
		}
		if !pkgs[p] {
			continue // deploy, testdata: no Go
		}
		// "Read `T`": each named exported identifier must exist in p.
		types := declaredNames(t, filepath.Join(root, p))
		for _, m := range regexp.MustCompile("Read\\s+`([A-Z][A-Za-z]*)`").FindAllStringSubmatch(para, -1) {
			if !types[m[1]] {
				t.Errorf("the code map says to read %s in %s, which declares no such name", m[1], p)
			}
		}
	}
}

// declaredNames is the set of top-level names declared in dir's non-test
// files.
func declaredNames(t *testing.T, dir string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						names[s.Name.Name] = true
					case *ast.ValueSpec:
						for _, n := range s.Names {
							names[n.Name] = true
						}
					}
				}
			case *ast.FuncDecl:
				if d.Recv == nil {
					names[d.Name.Name] = true
				}
			}
		}
	}
	return names
}
