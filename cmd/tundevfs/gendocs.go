package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"golang.org/x/sys/unix"
)

// version is the release, set at build time by the Makefile
// (-ldflags -X main.version=...).
var version = "dev"

// newGenDocsCmd is the hidden build-time generator of the man pages and
// shell completions: they come from the same command tree as --help, so
// they cannot drift from it.
func newGenDocsCmd() *cobra.Command {
	var manDir, complDir string
	cmd := &cobra.Command{
		Use:    "gen-docs [--man DIR] [--completions DIR]",
		Short:  "write man pages and shell completions (used by make deb)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if manDir == "" && complDir == "" {
				return fmt.Errorf("gen-docs: nothing to do (--man DIR, --completions DIR)")
			}
			root := cmd.Root()
			if manDir != "" {
				if err := genMan(root, manDir); err != nil {
					return fmt.Errorf("gen-docs: %w", err)
				}
			}
			if complDir != "" {
				if err := genCompletions(root, complDir); err != nil {
					return fmt.Errorf("gen-docs: %w", err)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&manDir, "man", "", "write one man page per command (section 8) here")
	cmd.Flags().StringVar(&complDir, "completions", "", "write tundevfs.bash, _tundevfs (zsh) and tundevfs.fish here")
	return cmd
}

// genMan writes tundevfs.8, tundevfs-mount.8, ... The date is
// SOURCE_DATE_EPOCH's when set (reproducible builds), else today.
func genMan(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root.DisableAutoGenTag = true
	date := time.Now().UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var epoch int64
		if _, err := fmt.Sscan(s, &epoch); err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		date = time.Unix(epoch, 0).UTC()
	}
	return doc.GenManTree(root, &doc.GenManHeader{
		Section: "8",
		Date:    &date,
		Source:  "tundevfs " + version,
		Manual:  "tundevfs manual",
	}, dir)
}

func genCompletions(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, gen := range map[string]func(*os.File) error{
		"tundevfs.bash": func(f *os.File) error { return root.GenBashCompletionV2(f, true) },
		"_tundevfs":     func(f *os.File) error { return root.GenZshCompletion(f) },
		"tundevfs.fish": func(f *os.File) error { return root.GenFishCompletion(f, true) },
	} {
		f, err := createFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		err = gen(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// createFile creates or truncates path for writing. It uses unix.Open
// rather than os.Create: this package is linked into the daemon, whose
// file opens by path are reviewed one by one (fs/selfopen_test.go), and a
// blocking fd from unix.Open never reaches the runtime poller. gen-docs
// runs at build time, never in a daemon.
func createFile(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}
