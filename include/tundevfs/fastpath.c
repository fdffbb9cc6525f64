/* tundevfs fast path, C client: see fastpath.h. */
#define _GNU_SOURCE
#include "fastpath.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* overflow_uid is the kernel's overflow uid (65534 unless changed). */
static uid_t overflow_uid(void)
{
	FILE *f = fopen("/proc/sys/kernel/overflowuid", "re");
	unsigned long v = 65534;
	if (f) {
		if (fscanf(f, "%lu", &v) != 1)
			v = 65534;
		fclose(f);
	}
	return (uid_t)v;
}

/* ask sends devfd to the daemon at socket n; returns the TUN fd, or -1
 * with errno set (ECONNREFUSED: nobody there), or -2 (EPERM) when the
 * listener is not root's and got nothing. */
static int ask(int n, int devfd, char *ifname, size_t len)
{
	struct sockaddr_un sa;
	socklen_t salen;
	int s, fd = -1, e;
	char name[64], reply[512];
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct iovec iov;
	struct msghdr mh;
	struct cmsghdr *c;
	ssize_t r;

	if (n == 0)
		snprintf(name, sizeof name, "%s", TUNDEVFS_FASTPATH_SOCKET);
	else
		snprintf(name, sizeof name, "%s.%d", TUNDEVFS_FASTPATH_SOCKET, n);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path + 1, name, strlen(name)); /* abstract */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));

	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	if (connect(s, (struct sockaddr *)&sa, salen) < 0)
		goto fail;
	/* Anyone may bind an abstract name first: send the device file only
	 * to root (or the overflow uid, root seen from a user namespace that
	 * does not map it). */
	{
		struct ucred cr;
		socklen_t crlen = sizeof cr;
		if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0)
			goto fail;
		if (cr.uid != 0 && cr.uid != overflow_uid()) {
			if (ifname && len > 0)
				snprintf(ifname, len, "fastpath: the socket's owner is uid %u, not root", (unsigned)cr.uid);
			close(s);
			errno = EPERM;
			return -2; /* not a daemon: the caller asks the next name */
		}
	}

	{
		/* A daemon answers at once; never hang on a stuck listener. */
		struct timeval tv = { .tv_sec = 10 };
		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	}
	memset(&mh, 0, sizeof mh);
	memset(&ctl, 0, sizeof ctl);
	iov.iov_base = (void *)TUNDEVFS_FASTPATH_REQUEST;
	iov.iov_len = strlen(TUNDEVFS_FASTPATH_REQUEST);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.buf;
	mh.msg_controllen = CMSG_SPACE(sizeof(int));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &devfd, sizeof(int));
	/* SO_RCVTIMEO/SO_SNDTIMEO sockets are not restarted after a signal
	 * (socket(7)); a SEQPACKET call that returns EINTR moved nothing. */
	do
		r = sendmsg(s, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		goto fail;

	memset(&mh, 0, sizeof mh);
	memset(&ctl, 0, sizeof ctl);
	iov.iov_base = reply;
	iov.iov_len = sizeof reply - 1;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof ctl.buf;
	do
		r = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		goto fail;
	reply[r] = 0;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t k, nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (k = 0; k < nfd; k++) {
				int got;
				memcpy(&got, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
				if (fd < 0)
					fd = got;
				else
					close(got);
			}
		}
	}
	close(s);
	if (strncmp(reply, "ok ", 3) == 0 && fd >= 0) {
		if (ifname && len > 0)
			snprintf(ifname, len, "%s", reply + 3);
		return fd;
	}
	if (fd >= 0)
		close(fd);
	if (strncmp(reply, "err ", 4) == 0) {
		char *msg = NULL;
		long num = strtol(reply + 4, &msg, 10);
		if (msg && *msg == ' ')
			msg++;
		if (ifname && len > 0 && msg)
			snprintf(ifname, len, "%s", msg);
		errno = num > 0 ? (int)num : EPROTO;
		return -1;
	}
	errno = EPROTO;
	return -1;
fail:
	e = errno;
	close(s);
	errno = e;
	return -1;
}

int tundevfs_fastfd(int devfd, char *ifname, size_t len)
{
	int n, err = ECONNREFUSED;

	for (n = 0; n < TUNDEVFS_FASTPATH_MAX; n++) {
		int fd = ask(n, devfd, ifname, len);
		if (fd >= 0)
			return fd;
		if (errno == ECONNREFUSED)
			continue; /* no daemon on this name */
		err = errno;
		if (fd == -2 || errno == ENODEV)
			continue; /* a squatter's socket, or another daemon's */
		return -1;
	}
	errno = err;
	return -1;
}
