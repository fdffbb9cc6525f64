//go:build linux

package fs

import "golang.org/x/sys/unix"

// The system calls of amd64 that make or remove a name besides the *at
// ones every architecture has (intent_linux.go). creat(2) is an open with
// O_CREAT and without O_EXCL: it opens, and clones, as `>` does.
var legacyNamespaceCalls = []int64{
	unix.SYS_MKDIR, unix.SYS_MKNOD, unix.SYS_RENAME, unix.SYS_RENAMEAT,
	unix.SYS_LINK, unix.SYS_SYMLINK, unix.SYS_UNLINK, unix.SYS_RMDIR,
}

// legacyOpen is open(2), whose flags are its second argument.
const legacyOpen = unix.SYS_OPEN
