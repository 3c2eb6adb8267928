/*
 * uppercase_server: the C speed reference for udpd's `make bench`.
 *
 *     gcc -O2 -Wall -Wextra -o uppercase_server uppercase_server.c
 *     ./uppercase_server 127.0.0.1 13001     (port 0 picks a free port)
 *
 * One IPv4 UDP socket; datagrams are read and answered in batches of up to
 * BATCH with recvmmsg/sendmmsg, into buffers allocated once at start-up.
 * Each reply is the request with the ASCII letters a-z changed to A-Z in
 * place, sent back to the address the request came from.
 *
 * This is a speed reference, NOT a correct uppercase server: it knows only
 * ASCII. Every other byte, including every byte of a multi-byte UTF-8
 * sequence, is sent back unchanged, so "straße" comes back as "STRAßE"
 * (udpd answers "STRASSE"). Compare it with udpd on ASCII payloads only.
 *
 * Once bound it prints "listening on ADDR:PORT" on stdout. SIGINT or
 * SIGTERM stops it within RECV_TIMEOUT_MS; it then prints its counters on
 * stderr and exits 0. Linux only (recvmmsg/sendmmsg).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

enum {
	BATCH = 32,       /* datagrams per recvmmsg/sendmmsg */
	BUF_SIZE = 65536, /* holds the largest UDP payload (65,507 bytes over IPv4) */
	/*
	 * A blocking recvmmsg wakes up at least this often to look at the stop
	 * flag. This bounds the shutdown delay when a signal arrives just
	 * before the call; normally the signal interrupts it (EINTR) at once.
	 */
	RECV_TIMEOUT_MS = 200,
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* ascii_upper maps a-z to A-Z in place and leaves every other byte alone. */
static void ascii_upper(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)(p[i] - 'a') < 26)
			p[i] -= 'a' - 'A';
	}
}

static int install_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: a blocked recvmmsg returns EINTR */
	if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
		return -1;
	return 0;
}

static int open_socket(const char *host, const char *port_arg)
{
	struct sockaddr_in addr;
	socklen_t len = sizeof addr;
	struct timeval tv = { .tv_sec = 0, .tv_usec = RECV_TIMEOUT_MS * 1000 };
	char *end;
	unsigned long port;
	char shown[INET_ADDRSTRLEN];
	int fd;

	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		fprintf(stderr, "uppercase_server: %s: not an IPv4 address\n", host);
		return -1;
	}
	errno = 0;
	port = strtoul(port_arg, &end, 10);
	if (errno != 0 || end == port_arg || *end != '\0' || port > 65535) {
		fprintf(stderr, "uppercase_server: %s: not a port (0-65535)\n", port_arg);
		return -1;
	}
	addr.sin_port = htons((unsigned short)port);

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("uppercase_server: socket");
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
		perror("uppercase_server: setsockopt SO_RCVTIMEO");
		goto fail;
	}
	if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
		fprintf(stderr, "uppercase_server: bind %s:%s: %s\n", host, port_arg, strerror(errno));
		goto fail;
	}
	if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
		perror("uppercase_server: getsockname");
		goto fail;
	}
	inet_ntop(AF_INET, &addr.sin_addr, shown, sizeof shown);
	printf("listening on %s:%u\n", shown, (unsigned)ntohs(addr.sin_port));
	fflush(stdout);
	return fd;
fail:
	close(fd);
	return -1;
}

int main(int argc, char **argv)
{
	/* Everything the loop touches is allocated here, once. */
	static unsigned char bufs[BATCH][BUF_SIZE];
	static struct sockaddr_in peers[BATCH];
	static struct iovec riov[BATCH], siov[BATCH];
	static struct mmsghdr rmsg[BATCH], smsg[BATCH];
	unsigned long long received = 0, sent = 0, send_errors = 0;
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: %s IPV4-ADDRESS PORT\n", argv[0]);
		return 2;
	}
	if (install_handlers() < 0) {
		perror("uppercase_server: sigaction");
		return 1;
	}
	fd = open_socket(argv[1], argv[2]);
	if (fd < 0)
		return 1;

	for (int i = 0; i < BATCH; i++) {
		riov[i].iov_base = bufs[i];
		riov[i].iov_len = BUF_SIZE;
		rmsg[i].msg_hdr.msg_name = &peers[i];
		rmsg[i].msg_hdr.msg_iov = &riov[i];
		rmsg[i].msg_hdr.msg_iovlen = 1;
		siov[i].iov_base = bufs[i];
		smsg[i].msg_hdr.msg_name = &peers[i];
		smsg[i].msg_hdr.msg_iov = &siov[i];
		smsg[i].msg_hdr.msg_iovlen = 1;
	}

	while (!stop_requested) {
		int n, queued = 0;

		for (int i = 0; i < BATCH; i++)
			rmsg[i].msg_hdr.msg_namelen = sizeof peers[i]; /* the kernel overwrites it */

		/* Block for the first datagram, then take what is already queued. */
		n = recvmmsg(fd, rmsg, BATCH, MSG_WAITFORONE, NULL);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue; /* signal or idle timeout: look at the stop flag */
			perror("uppercase_server: recvmmsg");
			break;
		}
		received += (unsigned)n;

		for (int i = 0; i < n; i++) {
			if (rmsg[i].msg_hdr.msg_flags & MSG_TRUNC)
				continue; /* cannot happen with 64 KiB buffers; never answer a cut datagram */
			ascii_upper(bufs[i], rmsg[i].msg_len);
			siov[queued].iov_base = bufs[i];
			siov[queued].iov_len = rmsg[i].msg_len;
			smsg[queued].msg_hdr.msg_name = &peers[i];
			smsg[queued].msg_hdr.msg_namelen = rmsg[i].msg_hdr.msg_namelen;
			queued++;
		}

		/* Send every reply. sendmmsg reports an error only for the first
		 * message it could not send: skip that one (UDP is best effort). */
		for (int off = 0; off < queued;) {
			int r = sendmmsg(fd, smsg + off, (unsigned)(queued - off), 0);

			if (r > 0) {
				off += r;
				sent += (unsigned)r;
			} else if (r < 0 && errno == EINTR) {
				continue;
			} else {
				off++;
				send_errors++;
			}
		}
	}

	close(fd);
	fprintf(stderr, "uppercase_server: received %llu, sent %llu, send errors %llu\n",
		received, sent, send_errors);
	return 0;
}
