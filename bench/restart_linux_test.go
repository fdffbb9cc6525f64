package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tundevfs/tundevfs/fs"
	"github.com/tundevfs/tundevfs/internal/itest"
)

// TestRestartPart runs the restart part alone and checks that every row
// has its figures and that no packet is lost across a kill -9 more than
// were in flight. It never judges speed.
func TestRestartPart(t *testing.T) {
	itest.RequirePrivileged(t)
	cfg := QuickConfig(itest.Binary(t))
	cfg.Only = []string{"restart"}
	tbl, err := Run(context.Background(), cfg)
	var out bytes.Buffer
	tbl.Write(&out)
	t.Logf("\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(tbl.Rows) != 6 {
		t.Fatalf("%d rows, want 6", len(tbl.Rows))
	}
	for _, r := range tbl.Rows {
		for i, c := range r.Cells {
			if c.N < 5 || c.Median <= 0 {
				t.Errorf("%s, %s: %d samples, median %v: want 5 positive samples", r.Name, tbl.Columns[i], c.N, c.Median)
			}
		}
	}
}

// TestRestartGivesUpCleanly: when no new server comes (the crash-loop
// guard gives up at the first kill), the measurement fails at once with
// errRestartStuck instead of waiting, and the part's cleanup leaves no
// daemon, mount or namespace, and no client blocked.
func TestRestartGivesUpCleanly(t *testing.T) {
	itest.RequirePrivileged(t)
	v, err := newRestartEnv(itest.Binary(t), "--fuse-transport", "dev", "--crash-limit", "1")
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			v.close()
		}
	}()
	r := &restartRun{d: v.d, e: v.e, sock: v.sock}
	err = r.restart(false)
	if !errors.Is(err, errRestartStuck) {
		t.Fatalf("restart with a holder that gives up: %v, want errRestartStuck", err)
	}
	t.Logf("restart: %v", err)
	v.stuck = true
	dir, work, ns := v.d.Dir, v.d.work, v.ns.Name
	v.close()
	closed = true
	select {
	case <-v.d.exited:
	default:
		t.Errorf("the daemon still runs after close")
	}
	if fs.IsMounted(dir) {
		t.Errorf("%s still mounted", dir)
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", work, err)
	}
	// The clients of the failed restart (lookups, packet reader) have
	// returned: none waits on the gone mount.
	deadline := time.Now().Add(10 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		waiting := strings.Contains(stacks, "(*restartRun).lookups") || strings.Contains(stacks, "(*packetRun).reader")
		if !waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a client of the failed restart still waits:\n%s", stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), ns) {
		t.Errorf("namespace %s left behind", ns)
	}
}
