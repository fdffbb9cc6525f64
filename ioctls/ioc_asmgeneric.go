//go:build !(mips || mipsle || mips64 || mips64le || ppc64 || ppc64le)

package ioctls

// The asm-generic layout of include/uapi/asm-generic/ioctl.h, used by
// amd64, 386, arm, arm64, riscv64, loong64 and s390x: nr in bits 0-7, type
// in bits 8-15, size in bits 16-29, direction in bits 30-31.
const (
	iocSizeBits = 14
	iocDirBits  = 2

	iocNone  = 0
	iocWrite = 1
	iocRead  = 2
)
