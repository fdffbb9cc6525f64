/*
 * fastpath_client DEVPATH: opens DEVPATH (a tundevfs device, O_RDWR), gets
 * the TUN fd with tundevfs_fastfd, prints "ifname NAME", then writes an
 * ICMP echo request from 10.77.0.2 to 10.77.0.1 (the test has put that
 * address on the interface) through the TUN fd and waits for the kernel's
 * echo reply on it: prints "reply". With a second argument "refuse" it
 * opens DEVPATH read-only and prints "errno NAME" for the refusal.
 */
#include <tundevfs/fastpath.h>

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static uint16_t csum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	size_t i;
	for (i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)(p[n - 1] << 8);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

int main(int argc, char **argv)
{
	char ifname[256];
	uint8_t pkt[64], buf[2048];
	uint16_t c;
	int dev, tun, i;

	if (argc < 2)
		return 2;
	dev = open(argv[1], argc > 2 ? O_RDONLY : O_RDWR);
	if (dev < 0) {
		perror("open");
		return 1;
	}
	tun = tundevfs_fastfd(dev, ifname, sizeof ifname);
	if (argc > 2) {
		if (tun >= 0) {
			printf("granted\n");
			return 1;
		}
		printf("errno %s: %s\n", errno == EACCES ? "EACCES" : strerror(errno), ifname);
		return 0;
	}
	if (tun < 0) {
		printf("error %s: %s\n", strerror(errno), ifname);
		return 1;
	}
	printf("ifname %s\n", ifname);
	fflush(stdout);

	memset(pkt, 0, sizeof pkt);
	pkt[0] = 0x45;
	pkt[3] = 28 + 8;
	pkt[8] = 64;
	pkt[9] = 1; /* ICMP */
	pkt[12] = 10, pkt[13] = 77, pkt[14] = 0, pkt[15] = 2;
	pkt[16] = 10, pkt[17] = 77, pkt[18] = 0, pkt[19] = 1;
	c = csum(pkt, 20);
	pkt[10] = (uint8_t)(c >> 8), pkt[11] = (uint8_t)c;
	pkt[20] = 8; /* echo request */
	pkt[24] = 0x12, pkt[25] = 0x34, pkt[27] = 1;
	memcpy(pkt + 28, "cclient!", 8);
	c = csum(pkt + 20, 16);
	pkt[22] = (uint8_t)(c >> 8), pkt[23] = (uint8_t)c;
	if (write(tun, pkt, 36) != 36) {
		perror("write");
		return 1;
	}
	for (i = 0; i < 100; i++) {
		struct pollfd p = { .fd = tun, .events = POLLIN };
		ssize_t n;
		if (poll(&p, 1, 10000) <= 0) {
			printf("timeout\n");
			return 1;
		}
		n = read(tun, buf, sizeof buf);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			perror("read");
			return 1;
		}
		if (n >= 28 && buf[9] == 1 && buf[20] == 0 && buf[24] == 0x12 && buf[25] == 0x34) {
			printf("reply\n");
			close(tun);
			close(dev);
			return 0;
		}
	}
	printf("no reply\n");
	return 1;
}
