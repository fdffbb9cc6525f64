//go:build ignore

// Command gen_headers writes the C headers rendered from the ioctl table
// (ioctls.RenderHeaders) under the module root. go generate runs it in
// ./ioctls, so the root defaults to the parent directory.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tundevfs/tundevfs/ioctls"
)

func main() {
	root := flag.String("root", "..", "module root under which include/ is written")
	flag.Parse()
	if err := run(*root); err != nil {
		fmt.Fprintln(os.Stderr, "gen_headers:", err)
		os.Exit(1)
	}
}

func run(root string) error {
	for path, data := range ioctls.RenderHeaders() {
		p := filepath.Join(root, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}
