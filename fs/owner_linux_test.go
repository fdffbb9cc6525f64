package fs_test

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/fs"
	"github.com/tundevfs/tundevfs/internal/itest"
)

// ownerGID is the group the daemon of TestRootOwnerIsMountOwner runs
// with: one no daemon runs with by chance, so a directory that reports a
// fixed owner (root) instead of the mount's is caught.
const ownerGID = 4242

// TestRootOwnerIsMountOwner: the device directory belongs to the user and
// group the FUSE mount belongs to (its user_id and group_id, the daemon's
// effective ids), not to a fixed root:root (issue 14 item 11). The daemon
// runs as root with another group, so the two differ.
func TestRootOwnerIsMountOwner(t *testing.T) {
	itest.RequirePrivileged(t)
	ns := itest.NewNetns(t)
	bin := itest.Binary(t)
	sockDir := t.TempDir()
	sock := filepath.Join(sockDir, "t.sock")
	var log bytes.Buffer
	cmd := ns.Command(bin, "--socket", sock, "daemon")
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: ownerGID}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("daemon did not stop on SIGTERM within 20s")
		}
		// nsenter passes the daemon's exit status on.
		if st := cmd.ProcessState; st != nil && !st.Success() {
			t.Errorf("daemon exit: %v", st)
		}
		os.RemoveAll(daemon.StateDir(sock)) // what a killed daemon leaves
		if t.Failed() {
			t.Logf("daemon log:\n%s", log.String())
		}
	})
	// Wait with status, which never starts a daemon of its own (mount
	// would, were ours not answering yet).
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, err := ns.Command(bin, "--socket", sock, "status").CombinedOutput()
		if err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("daemon exited at start: %s", log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not answer in 10s: %v: %s", err, out)
		}
	}
	// allow_other: without it the kernel lets only callers with the
	// mount's uid and gid in, and the test runs with group 0.
	dir := t.TempDir()
	out, err := ns.Command(bin, "--socket", sock, "mount", "--allow-other", dir).CombinedOutput()
	mounted := err == nil
	t.Cleanup(func() {
		if mounted && fs.IsMounted(dir) {
			ns.Command(bin, "--socket", sock, "umount", dir).Run()
		}
		if fs.IsMounted(dir) {
			unix.Unmount(dir, unix.MNT_DETACH)
			t.Errorf("mount %s was still there at cleanup", dir)
		}
	})

	if !mounted {
		t.Fatalf("mount %s: %v: %s", dir, err, out)
	}
	uid, gid := mountOwner(t, dir)
	if gid != ownerGID {
		t.Fatalf("mount %s: group_id=%d, want the daemon's group %d", dir, gid, ownerGID)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != uid || st.Gid != gid {
		t.Errorf("device directory owned by %d:%d, want the mount's user_id:group_id %d:%d", st.Uid, st.Gid, uid, gid)
	}
}

// mountOwner reads user_id and group_id from the super options of the
// mount at dir in /proc/self/mountinfo.
func mountOwner(t *testing.T, dir string) (uid, gid uint32) {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - FSTYPE SOURCE SUPEROPTS
		before, after, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(before), strings.Fields(after)
		if len(f) < 5 || len(g) < 3 || f[4] != dir {
			continue
		}
		var haveUID, haveGID bool
		for _, o := range strings.Split(g[2], ",") {
			k, v, _ := strings.Cut(o, "=")
			n, err := strconv.ParseUint(v, 10, 32)
			switch {
			case k == "user_id" && err == nil:
				uid, haveUID = uint32(n), true
			case k == "group_id" && err == nil:
				gid, haveGID = uint32(n), true
			}
		}
		if !haveUID || !haveGID {
			t.Fatalf("mount %s: no user_id or group_id in %q", dir, g[2])
		}
		return uid, gid
	}
	t.Fatalf("mount %s not in /proc/self/mountinfo", dir)
	return 0, 0
}
