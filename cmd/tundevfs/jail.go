package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/jails"
)

func newJailCmd(g *globals) *cobra.Command {
	var create bool
	var remove string
	cmd := &cobra.Command{
		Use:   "jail -c name=NAME [vnet | vnet=PATH] [path=DIR] [persist] [command=CMD ARGS...] | -r NAME",
		Short: "create or remove a jail, like jail(8)",
		Long: `Create a jail: name=NAME; vnet makes a new network namespace, vnet=PATH adopts
one (/run/netns/X, /proc/PID/ns/net: the jail goes when PID exits); path=DIR
mounts its devices at DIR (allow_other); persist keeps it without mounts;
command=CMD ARGS... (last) runs CMD inside it and removes the jail when CMD
exits unless persist. Cloning policy: clone_uid=UID[,UID], clone_gid=GID[,GID];
device nodes: dev_uid=, dev_gid=, dev_mode= (octal); max_devices=N (256).`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case remove != "" && !create:
				_, err := daemon.Call(g.socket, daemon.Request{Op: daemon.OpJailRemove, Jail: remove})
				return err
			case create && remove == "":
				return jailCreate(g, args)
			}
			return errors.New("jail: say -c PARAMS or -r NAME")
		},
	}
	cmd.Flags().BoolVarP(&create, "create", "c", false, "create a jail")
	cmd.Flags().StringVarP(&remove, "remove", "r", "", "remove the jail NAME")
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// jailCreate creates the jail, then runs command= in it, if given.
func jailCreate(g *globals, args []string) error {
	var params, command []string
	for i, a := range args {
		if c, ok := strings.CutPrefix(a, "command="); ok {
			command = append([]string{c}, args[i+1:]...)
			break
		}
		params = append(params, a)
	}
	if command != nil && command[0] == "" {
		return errors.New("jail: command= needs a command")
	}
	req := daemon.Request{Op: daemon.OpJailCreate, Args: params, Command: command != nil}
	var ji daemon.JailInfo
	data, err := callStarting(g.socket, req)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &ji); err != nil {
		return fmt.Errorf("jail: bad answer: %w", err)
	}
	if command == nil {
		return nil
	}
	// The daemon watches the command's process from its start (and this
	// client until then): the jail goes when the command exits, even if
	// this client is killed. The remove below only makes it synchronous.
	watch := func(pid int) error {
		_, err := daemon.Call(g.socket, daemon.Request{Op: daemon.OpJailWatch, Jail: ji.Name, PID: pid})
		return err
	}
	code, runErr := jexecWatched(g.socket, ji.Name, command, watch)
	if !ji.Persist {
		_, err := daemon.Call(g.socket, daemon.Request{Op: daemon.OpJailRemove, Jail: ji.Name})
		if err != nil && runErr == nil && !errors.Is(err, jails.ErrNotFound) {
			runErr = err
		}
	}
	if runErr != nil {
		return runErr
	}
	if code != 0 {
		return exitCode(code)
	}
	return nil
}

// exitCode passes a command's exit status on without a message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("command exited with status %d", int(e)) }

func newJexecCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jexec NAME CMD [ARGS...]",
		Short: "run a command inside a jail (its network namespace, its devices at /dev)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := jexec(g.socket, args[0], args[1:])
			if err != nil {
				return err
			}
			if code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
	// Flags end at the jail's name: the command's own are its own, as
	// with jexec(8).
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// jexec runs command in jail name and returns its exit status. The command
// runs in the jail's network namespace and in a private mount namespace
// whose /dev is the jail's device directory (with null, zero, tty...).
// The work happens on a locked thread that is never given back: its
// namespaces are not the process's any more.
func jexec(socket, name string, command []string) (int, error) {
	return jexecWatched(socket, name, command, nil)
}

// jexecWatched is jexec; started, if set, gets the command's pid once it
// runs (if it fails, the command is killed and the error returned).
func jexecWatched(socket, name string, command []string, started func(pid int) error) (int, error) {
	var info daemon.ExecInfo
	if err := daemon.CallInto(socket, daemon.Request{Op: daemon.OpJailExec, Jail: name}, &info); err != nil {
		return 0, err
	}
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		code, err := runInJail(info, command, started)
		done <- result{code, err}
	}()
	r := <-done
	return r.code, r.err
}

func runInJail(info daemon.ExecInfo, command []string, started func(pid int) error) (int, error) {
	nsfd, err := unix.Open(info.Netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("jexec: open jail netns: %w", err)
	}
	defer unix.Close(nsfd)
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return 0, fmt.Errorf("jexec: unshare mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return 0, fmt.Errorf("jexec: make / a slave: %w", err)
	}
	if err := unix.Mount(info.DevDir, "/dev", "", unix.MS_BIND, ""); err != nil {
		return 0, fmt.Errorf("jexec: mount the jail's devices at /dev: %w", err)
	}
	if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
		return 0, fmt.Errorf("jexec: enter jail netns: %w", err)
	}
	c := exec.Command(command[0], command[1:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := c.Start(); err != nil {
		return 0, fmt.Errorf("jexec: %w", err)
	}
	if started != nil {
		if err := started(c.Process.Pid); err != nil {
			c.Process.Kill()
			c.Wait()
			return 0, fmt.Errorf("jexec: %w", err)
		}
	}
	err = c.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(interface{ ExitStatus() int }); ok && ws.ExitStatus() >= 0 {
			return ws.ExitStatus(), nil
		}
		return 128 + 9, nil
	}
	if err != nil {
		return 0, fmt.Errorf("jexec: %w", err)
	}
	return 0, nil
}

func newJlsCmd(g *globals) *cobra.Command {
	var verbose, dying, asJSON bool
	cmd := &cobra.Command{
		Use:   "jls [-v] [-d] [--json]",
		Short: "list jails, like jls(8)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			req := daemon.Request{Op: daemon.OpJls, Dying: dying}
			var js []daemon.JailInfo
			err := daemon.CallInto(g.socket, req, &js)
			if err != nil && !errors.Is(err, daemon.ErrNoDaemon) {
				return err
			}
			// No daemon, no jails: list none, as jls does.
			// jls lists prisons, not prison0.
			var list []daemon.JailInfo
			for _, j := range js {
				if j.JID != 0 {
					list = append(list, j)
				}
			}
			if asJSON {
				if list == nil {
					list = []daemon.JailInfo{}
				}
				return json.NewEncoder(os.Stdout).Encode(list)
			}
			tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
			if verbose {
				fmt.Fprintln(tw, "JID\tName\tState\tNetns\tPath\tDevices\tPersist")
			} else {
				fmt.Fprintln(tw, "JID\tName\tPath")
			}
			for _, j := range list {
				path := strings.Join(j.Paths, ",")
				if path == "" {
					path = "-"
				}
				if verbose {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%v\n", j.JID, j.Name, j.State, j.Netns, path, j.Devices, j.Persist)
				} else {
					fmt.Fprintf(tw, "%d\t%s\t%s\n", j.JID, j.Name, path)
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "more columns")
	cmd.Flags().BoolVarP(&dying, "dying", "d", false, "include dying jails")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
