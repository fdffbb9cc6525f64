/*
 * tundevfs fast path, C client (SPEC section 10).
 *
 * A process that holds an open tundevfs device file (opened O_RDWR) trades
 * it for the device's real Linux TUN fd and does its I/O on the kernel:
 *
 *	int dev = open("/dev/net/tundevfs/tun", O_RDWR);
 *	char ifname[IF_NAMESIZE];
 *	int tun = tundevfs_fastfd(dev, ifname, sizeof ifname);
 *	if (tun < 0) perror("tundevfs_fastfd");   errno says why
 *
 * The daemon is reached on the abstract unix socket "@tundevfs/fastpath"
 * (or ".1" to ".15" when several daemons share the network namespace) in
 * the caller's own network namespace. The TUN fd is non-blocking and
 * close-on-exec, carries Linux framing (IFF_NO_PI; a tap's 12-byte
 * virtio-net header) and answers the Linux TUN ioctls. Keep the device
 * file open while the TUN fd is in use: its last close brings a tun or tap
 * down, and destroying the device unregisters the interface (reads then
 * fail with EBADFD). On the fast path the device file carries no packets
 * (read and write fail with EBUSY).
 *
 * Errors (errno): ENODEV not a device file of a daemon here, EACCES not
 * open read-write, EXDEV a device of another jail, ENXIO destroyed, EPERM
 * the fast path is off (sysctl or jail fastpath=0), ECONNREFUSED no daemon
 * in this namespace, EPERM the socket is not root's (anyone may bind an
 * abstract name first; the device file is then not sent). A message may
 * be copied into ifname on failure.
 */
#ifndef TUNDEVFS_FASTPATH_H
#define TUNDEVFS_FASTPATH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TUNDEVFS_FASTPATH_SOCKET "tundevfs/fastpath" /* abstract: leading NUL */
#define TUNDEVFS_FASTPATH_MAX 16
#define TUNDEVFS_FASTPATH_REQUEST "tundevfs-fastpath 1"

/*
 * tundevfs_fastfd returns the TUN fd of the device open at devfd, and its
 * interface name in ifname (if not NULL; on failure the daemon's message),
 * or -1 with errno set.
 */
int tundevfs_fastfd(int devfd, char *ifname, size_t len);

#ifdef __cplusplus
}
#endif

#endif
