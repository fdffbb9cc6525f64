package fastpath

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAskSurvivesSignals: the client's socket has a receive timeout, so the
// kernel does not restart its recvmsg after a signal. The Go runtime sends
// its threads SIGURG at any time; the answer must still arrive (CI once saw
// "receive from @tundevfs/fastpath: interrupted system call").
func TestAskSurvivesSignals(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the client sends only to a root-owned listener")
	}
	name := fmt.Sprintf("@tundevfs-test/eintr-%d", os.Getpid())
	l, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(l) })
	if err := unix.Bind(l, &unix.SockaddrUnix{Name: name}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(l, 1); err != nil {
		t.Fatal(err)
	}

	// The listener answers late, after the client's thread got signals.
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer unix.Close(c)
		buf := make([]byte, 64)
		oob := make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := unix.Recvmsg(c, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != nil {
			t.Errorf("recvmsg: %v", err)
			return
		}
		if cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range cmsgs {
				fds, _ := unix.ParseUnixRights(&m)
				for _, fd := range fds {
					unix.Close(fd)
				}
			}
		}
		time.Sleep(300 * time.Millisecond)
		unix.Write(c, []byte("err 19 not a tundevfs device"))
	}()

	// Pin the client to this thread and signal it while it waits.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				unix.Tgkill(os.Getpid(), tid, unix.SIGURG)
			}
		}
	}()
	dev, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	_, _, err = ask(name, int(dev.Fd()))
	close(stop)
	var fe *Error
	if !errors.As(err, &fe) || fe.Errno != unix.ENODEV {
		t.Fatalf("ask = %v, want the listener's ENODEV answer", err)
	}
}
