// Package fastpath is the client of tundevfs's fast path (SPEC §10): a
// process that holds an open device file gets the device's real Linux
// TUN fd and does its I/O on the kernel directly.
//
// Contract:
//   - The daemon listens on an abstract unix socket (SOCK_SEQPACKET) in
//     every network namespace where it has a jail: SocketName, or, when
//     another daemon holds that name in the namespace, SocketName.1 up to
//     SocketName.15. Abstract names live in the network namespace, so a
//     container finds its jail's socket with no mount and no path, and the
//     socket goes with the jail.
//   - The request is one message, Request, carrying the open device file
//     (SCM_RIGHTS): proof of possession is the only credential. Before
//     sending it, the client checks that the listener is root (or the
//     overflow uid, root seen from a user namespace that does not map
//     it), since anyone may bind an abstract name first; a listener owned
//     by another user gets nothing, and the client asks the next name. The answer
//     is "ok IFNAME" with the TUN fd (SCM_RIGHTS), or "err ERRNO MESSAGE".
//     A daemon that does not know the file answers ENODEV and the client
//     asks the next name.
//   - The TUN fd carries Linux framing: IFF_NO_PI, and for a tap or vmnet
//     the interface's 12-byte virtio-net header. FreeBSD framing (IFHEAD,
//     batch, link-layer mode) stays on the device file, which carries no
//     packets while on the fast path (read and write EBUSY, poll POLLERR).
//   - The device file must stay open while the TUN fd is used: its last
//     close brings a tun or tap down as before, and destroying the device
//     unregisters the interface, after which reads on the TUN fd fail
//     (EBADFD) instead of blocking.
//
// This package has no lock.
package fastpath
