/*
 * ioctl_client: a C client of the tundevfs device surface, built by the
 * tests with the published headers (gcc -I include). It opens one device
 * node and then runs commands read from stdin, one per line, answering each
 * with one line: "ok [RESULT]" or "err ERRNO-NAME".
 *
 *   ioctl NAME [VALUE]   the request NAME of <net/if_tun.h>/<net/if_tap.h>;
 *                        VALUE is an int (strtol base 0), a MAC address, or
 *                        "mtu=N,type=N,baudrate=N" for TUNSIFINFO
 *   raw NUMBER           ioctl(fd, NUMBER, zeroed 64-byte buffer)
 *   write HEX            one write() of the bytes
 *   read                 one read() into a 65536-byte buffer, printed in hex
 *   pid                  getpid()
 *   close                close the device
 *
 * usage: ioctl_client DEVICE-PATH
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <net/if_tun.h>
#include <net/if_tap.h>

static int fd = -1;

static const char *
errname(int e)
{
	switch (e) {
	case EINVAL: return "EINVAL";
	case ENOTTY: return "ENOTTY";
	case EBUSY: return "EBUSY";
	case EPROTOTYPE: return "EPROTOTYPE";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case ENOBUFS: return "ENOBUFS";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case EPERM: return "EPERM";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOENT: return "ENOENT";
	}
	return "EUNKNOWN";
}

static void
fail(void)
{
	printf("err %s\n", errname(errno));
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The int requests: set ones take VALUE, get ones print it. */
static const struct {
	const char *name;
	unsigned long req;
	int get;
} intreqs[] = {
	{ "TUNSIFHEAD", TUNSIFHEAD, 0 },
	{ "TUNGIFHEAD", TUNGIFHEAD, 1 },
	{ "TUNSLMODE", TUNSLMODE, 0 },
	{ "TUNSIFMODE", TUNSIFMODE, 0 },
	{ "TUNSTRANSIENT", TUNSTRANSIENT, 0 },
	{ "TAPSTRANSIENT", TAPSTRANSIENT, 0 },
	{ "TUNSDEBUG", TUNSDEBUG, 0 },
	{ "TUNGDEBUG", TUNGDEBUG, 1 },
	{ "TAPSDEBUG", TAPSDEBUG, 0 },
	{ "TAPGDEBUG", TAPGDEBUG, 1 },
	{ "TUNSBATCH", TUNSBATCH, 0 },
	{ "TAPSVNETHDR", TAPSVNETHDR, 0 },
	{ "TAPGVNETHDR", TAPGVNETHDR, 1 },
};

static void
do_ioctl(char *name, char *value)
{
	struct tuninfo ti;
	struct ifreq ifr;
	unsigned int m[6];
	size_t i;
	int v;

	for (i = 0; i < sizeof(intreqs) / sizeof(intreqs[0]); i++) {
		if (strcmp(name, intreqs[i].name) != 0)
			continue;
		v = value != NULL ? (int)strtol(value, NULL, 0) : 0;
		if (ioctl(fd, intreqs[i].req, &v) == -1)
			fail();
		else if (intreqs[i].get)
			printf("ok %d\n", v);
		else
			printf("ok\n");
		return;
	}
	memset(&ti, 0, sizeof(ti));
	memset(&ifr, 0, sizeof(ifr));
	if (strcmp(name, "TUNSIFPID") == 0) {
		if (ioctl(fd, TUNSIFPID, 0) == -1)
			fail();
		else
			printf("ok\n");
	} else if (strcmp(name, "TUNSIFINFO") == 0 || strcmp(name, "TAPSIFINFO") == 0) {
		int mtu, type;
		if (value == NULL || sscanf(value, "mtu=%d,type=%d,baudrate=%d", &mtu, &type, &ti.baudrate) != 3) {
			printf("err EBADVALUE\n");
			return;
		}
		ti.mtu = (unsigned short)mtu;
		ti.type = (unsigned char)type;
		if (ioctl(fd, TUNSIFINFO, &ti) == -1)
			fail();
		else
			printf("ok\n");
	} else if (strcmp(name, "TUNGIFINFO") == 0 || strcmp(name, "TAPGIFINFO") == 0) {
		if (ioctl(fd, TAPGIFINFO, &ti) == -1)
			fail();
		else
			printf("ok mtu=%d type=%d baudrate=%d\n", ti.mtu, ti.type, ti.baudrate);
	} else if (strcmp(name, "TUNGIFNAME") == 0 || strcmp(name, "TAPGIFNAME") == 0) {
		if (ioctl(fd, TUNGIFNAME, &ifr) == -1)
			fail();
		else
			printf("ok %.*s\n", IFNAMSIZ, ifr.ifr_name);
	} else if (strcmp(name, "TAPSIFADDR") == 0) {
		unsigned char *b = (unsigned char *)&ifr;
		if (value == NULL || sscanf(value, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6) {
			printf("err EBADVALUE\n");
			return;
		}
		for (i = 0; i < 6; i++)
			b[i] = (unsigned char)m[i];
		if (ioctl(fd, TAPSIFADDR, &ifr) == -1)
			fail();
		else
			printf("ok\n");
	} else if (strcmp(name, "TAPGIFADDR") == 0) {
		unsigned char *b = (unsigned char *)&ifr;
		/* Bytes past the MAC must come back as they went in. */
		memset(&ifr, 0x5a, sizeof(ifr));
		if (ioctl(fd, TAPGIFADDR, &ifr) == -1) {
			fail();
			return;
		}
		for (i = 6; i < sizeof(ifr); i++) {
			if (b[i] != 0x5a) {
				printf("err ECLOBBERED\n");
				return;
			}
		}
		printf("ok %02x:%02x:%02x:%02x:%02x:%02x\n", b[0], b[1], b[2], b[3], b[4], b[5]);
	} else if (strcmp(name, "VMIO_SIOCSIFFLAGS") == 0) {
		v = value != NULL ? (int)strtol(value, NULL, 0) : 0;
		if (ioctl(fd, VMIO_SIOCSIFFLAGS, v) == -1)
			fail();
		else
			printf("ok\n");
	} else {
		printf("err EUNKNOWNREQUEST\n");
	}
}

int
main(int argc, char *argv[])
{
	static unsigned char buf[65536];
	char line[1 << 17], *cmd, *a, *b;
	ssize_t n;
	size_t i, len;

	if (argc != 2) {
		fprintf(stderr, "usage: ioctl_client DEVICE-PATH\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	fd = open(argv[1], O_RDWR);
	if (fd == -1) {
		fail();
		return 1;
	}
	printf("ok ready\n");
	while (fgets(line, sizeof(line), stdin) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		cmd = strtok(line, " ");
		a = strtok(NULL, " ");
		b = strtok(NULL, " ");
		if (cmd == NULL)
			continue;
		if (strcmp(cmd, "ioctl") == 0 && a != NULL) {
			do_ioctl(a, b);
		} else if (strcmp(cmd, "raw") == 0 && a != NULL) {
			memset(buf, 0, 64);
			if (ioctl(fd, strtoul(a, NULL, 0), buf) == -1)
				fail();
			else
				printf("ok\n");
		} else if (strcmp(cmd, "write") == 0) {
			len = a != NULL ? strlen(a) / 2 : 0;
			for (i = 0; i < len && i < sizeof(buf); i++)
				buf[i] = (unsigned char)(hexval(a[2 * i]) << 4 | hexval(a[2 * i + 1]));
			n = write(fd, buf, len);
			if (n == -1)
				fail();
			else
				printf("ok %zd\n", n);
		} else if (strcmp(cmd, "read") == 0) {
			n = read(fd, buf, sizeof(buf));
			if (n == -1) {
				fail();
				continue;
			}
			printf("ok ");
			for (i = 0; i < (size_t)n; i++)
				printf("%02x", buf[i]);
			printf("\n");
		} else if (strcmp(cmd, "pid") == 0) {
			printf("ok %d\n", (int)getpid());
		} else if (strcmp(cmd, "close") == 0) {
			if (close(fd) == -1)
				fail();
			else
				printf("ok\n");
			fd = -1;
		} else {
			printf("err EUNKNOWNCOMMAND\n");
		}
	}
	return 0;
}
