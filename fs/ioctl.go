package fs

import (
	"encoding/binary"
	"fmt"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tundevfs/tundevfs/clonehandler"
	"github.com/tundevfs/tundevfs/driver"
	"github.com/tundevfs/tundevfs/ioctls"
)

// Ioctl implements fuse.RawFileSystem: FreeBSD's tun/tap ioctls on an open
// device file (if_tuntap.c: tunioctl()), numbered as ioctls.Table says.
//
// The kernel hands a FUSE file's ioctl over in restricted mode: the number
// alone says how many bytes come in (inbuf, for _IOC_WRITE) and go back
// (outbuf, for _IOC_READ), and an _IO or by-value request brings its
// argument in in.Arg. So:
//   - A number the table does not know is ENOTTY (tunioctl()'s default),
//     unless only its size differs from a known request's, which is EINVAL;
//     a request of the other driver is ENOTTY, as FreeBSD's tap-only and
//     tun-only switches fall through to it.
//   - Arguments out of range are EINVAL, TUNSIFINFO with a foreign type
//     EPROTOTYPE, TUNSIFMODE on an interface that is up EBUSY,
//     TUNSTRANSIENT without PRIV_NET_IFDESTROY EPERM, and a destroyed
//     device ENXIO.
//   - What goes back is zeroed first, as FreeBSD's ioctl() zeroes an
//     IOC_OUT buffer, so no stale daemon memory reaches the caller.
func (mnt *Mount) Ioctl(cancel <-chan struct{}, in *fuse.IoctlIn, inbuf []byte, out *fuse.IoctlOut, outbuf []byte) fuse.Status {
	defer mnt.sync()
	h := mnt.handle(in.Fh)
	if h == nil {
		if n := mnt.node(in.NodeId); n != nil {
			return n.ioctlNoFile(mnt) // ENOTTY but for a device
		}
		return mnt.noHandle()
	}
	io, ok := ioctls.ByNumber(in.Cmd)
	if !ok {
		if sizeMismatch(in.Cmd) {
			return fuse.EINVAL
		}
		return fuse.Status(syscall.ENOTTY)
	}
	d := h.Device()
	drv := ioctls.DriverTun
	if d.Driver().IsL2() {
		drv = ioctls.DriverTap
	}
	if !io.Serves(drv) {
		return fuse.Status(syscall.ENOTTY)
	}
	_, _, _, size := ioctls.Decode(in.Cmd)
	if io.Dir&ioctls.DirWrite != 0 && uint32(len(inbuf)) != size {
		return fuse.EINVAL
	}
	if io.Dir&ioctls.DirRead != 0 {
		if uint32(len(outbuf)) < size {
			return fuse.EINVAL
		}
		clear(outbuf)
	}
	err := mnt.ioctl(h, io, in, inbuf, outbuf)
	if mnt.devices.Debug() > 0 {
		mnt.logger.Printf("ioctl %s on %s by pid %d: %v", io.Name, d.DevName(), in.Caller.Pid, err)
	}
	return mnt.fileErr(err)
}

// ioctl runs one request on the open device h.
func (mnt *Mount) ioctl(h *driver.Handle, io ioctls.Ioctl, in *fuse.IoctlIn, inbuf, outbuf []byte) error {
	var v int
	if io.Arg == ioctls.ArgInt && io.Dir == ioctls.DirWrite {
		v = int(int32(binary.NativeEndian.Uint32(inbuf)))
	}
	putInt := func(x int, err error) error {
		if err == nil {
			binary.NativeEndian.PutUint32(outbuf, uint32(int32(x)))
		}
		return err
	}
	putBool := func(b bool, err error) error {
		if b {
			return putInt(1, err)
		}
		return putInt(0, err)
	}
	switch io.Number {
	case ioctls.TUNSIFHEAD:
		return h.SetIfHead(v != 0)
	case ioctls.TUNGIFHEAD:
		return putBool(h.IfHead())
	case ioctls.TUNSLMODE:
		return h.SetLinkMode(v != 0)
	case ioctls.TUNSIFMODE:
		return h.SetIfMode(v)
	case ioctls.TUNSIFPID:
		return h.SetPID(processID(in.Caller.Pid))
	case ioctls.TUNSIFINFO:
		var ti ioctls.TunInfo
		if err := ti.Unmarshal(inbuf); err != nil {
			return fmt.Errorf("ioctl TUNSIFINFO: %w", driver.ErrInvalid)
		}
		return h.SetInfo(ti)
	case ioctls.TUNGIFINFO:
		ti, err := h.Info()
		if err == nil {
			copy(outbuf, ti.Marshal())
		}
		return err
	case ioctls.TUNGIFNAME:
		name, err := h.IfName()
		if err != nil {
			return err
		}
		if err := ioctls.PutIfreqName(outbuf, name); err != nil {
			return fmt.Errorf("ioctl TUNGIFNAME: %w", err)
		}
		return nil
	case ioctls.TUNSTRANSIENT:
		return h.SetTransient(v != 0, clonehandler.MayDestroy(h.Device().Jail(), cred(&in.InHeader)))
	case ioctls.TUNSDEBUG:
		return h.SetDebug(v)
	case ioctls.TUNGDEBUG:
		return putInt(h.Debug())
	case ioctls.TAPSVNETHDR:
		return h.SetVnetHdr(v)
	case ioctls.TAPGVNETHDR:
		return putInt(h.VnetHdr())
	case ioctls.TAPSIFADDR:
		mac, err := ioctls.IfreqMAC(inbuf)
		if err != nil {
			return fmt.Errorf("ioctl TAPSIFADDR: %w", driver.ErrInvalid)
		}
		return h.SetRemoteMAC(mac)
	case ioctls.TAPGIFADDR:
		mac, err := h.RemoteMAC()
		if err != nil {
			return err
		}
		// tunioctl() overwrites the first six bytes and leaves the rest
		// of the caller's ifreq alone.
		copy(outbuf, inbuf)
		return ioctls.PutIfreqMAC(outbuf, mac)
	case ioctls.VMIO_SIOCSIFFLAGS:
		return h.SetVMIOFlags(int(int32(uint32(in.Arg))))
	case ioctls.TUNSBATCH:
		return h.SetBatch(v != 0)
	}
	// Anything the table adds before the driver does.
	return fmt.Errorf("ioctl %s: %w", io.Name, driver.ErrNoIoctl)
}

// sizeMismatch reports whether n is a known request (direction, group and
// number) with an argument size of its own: a caller that got the
// argument's type wrong, which is EINVAL rather than ENOTTY.
func sizeMismatch(n uint32) bool {
	dir, group, nr, _ := ioctls.Decode(n)
	for _, io := range ioctls.Table {
		if io.Dir == dir && io.Group == group && io.Nr == nr {
			return true
		}
	}
	return false
}
