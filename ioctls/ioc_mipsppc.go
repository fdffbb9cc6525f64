//go:build mips || mipsle || mips64 || mips64le || ppc64 || ppc64le

package ioctls

// The layout of arch/{mips,powerpc}/include/uapi/asm/ioctl.h: a 13-bit size
// and a 3-bit direction field in which "none" has a bit of its own.
const (
	iocSizeBits = 13
	iocDirBits  = 3

	iocNone  = 1
	iocWrite = 4
	iocRead  = 2
)
