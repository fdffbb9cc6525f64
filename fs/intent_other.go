//go:build linux && !amd64

package fs

// Architectures without the old system calls (arm64, riscv64) have only
// the *at ones (intent_linux.go); others fall back to those too.
var legacyNamespaceCalls []int64

// legacyOpen: no open(2) to look at.
const legacyOpen = -1
