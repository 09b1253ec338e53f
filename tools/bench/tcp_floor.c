/* tcp_floor.c — the network floor the job benchmarks are compared with.
 *
 * Raw loopback TCP between two processes, with the same 12-byte header the
 * M/s protocol uses, and nothing else: no job table, no serialization.
 *   tcp_floor pingpong N   one 20-byte message each way, N times in turn:
 *                          prints the mean round trip in microseconds
 *   tcp_floor pipeline N   N 20-byte requests streamed, each answered with a
 *                          20-byte reply: prints messages per second
 *   tcp_floor batched N    the same, but the answering side reads what has
 *                          come and answers it all with one write (what a
 *                          batching runtime can reach): messages per second
 *   tcp_floor stream MB    MB mebibytes one way, then a 1-byte ack: prints
 *                          MiB per second
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG 20

static void die(const char *what) {
    fprintf(stderr, "tcp_floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void read_full(int fd, void *buf, size_t n) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("read");
        p += r;
        n -= (size_t)r;
    }
}

static void write_full(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) die("write");
        p += w;
        n -= (size_t)w;
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int nodelay(int fd) {
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) die("setsockopt");
    return fd;
}

/* Connects a loopback pair: returns the client end, *server gets the other. */
static int loopback_pair(int *server) {
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0) die("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(lfd, 1) < 0) die("listen");
    if (getsockname(lfd, (struct sockaddr *)&a, &len) < 0) die("getsockname");
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    if (cfd < 0) die("socket");
    if (connect(cfd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    *server = accept(lfd, NULL, NULL);
    if (*server < 0) die("accept");
    close(lfd);
    nodelay(*server);
    return nodelay(cfd);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: tcp_floor pingpong|pipeline|batched|stream N\n");
        return 2;
    }
    long n = atol(argv[2]);
    if (n <= 0) {
        fprintf(stderr, "tcp_floor: N must be positive\n");
        return 2;
    }
    int server;
    int client = loopback_pair(&server);
    pid_t pid = fork();
    if (pid < 0) die("fork");
    char msg[MSG] = {0};
    if (pid == 0) { /* the "slave": answer every message */
        close(client);
        if (strcmp(argv[1], "stream") == 0) {
            static char buf[1 << 16];
            long long left = (long long)n << 20;
            while (left > 0) {
                ssize_t r = read(server, buf, left < (long long)sizeof buf ? (size_t)left : sizeof buf);
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) die("read");
                left -= r;
            }
            write_full(server, "k", 1);
        } else if (strcmp(argv[1], "batched") == 0) {
            static char buf[1 << 16];
            size_t have = 0;
            for (long done = 0; done < n;) {
                ssize_t r = read(server, buf + have, sizeof buf - have);
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) die("read");
                have += (size_t)r;
                size_t whole = have / MSG * MSG;
                write_full(server, buf, whole);
                done += (long)(whole / MSG);
                memmove(buf, buf + whole, have - whole);
                have -= whole;
            }
        } else {
            for (long i = 0; i < n; i++) {
                read_full(server, msg, MSG);
                write_full(server, msg, MSG);
            }
        }
        _exit(0);
    }
    close(server);
    double start = now();
    if (strcmp(argv[1], "pingpong") == 0) {
        for (long i = 0; i < n; i++) {
            write_full(client, msg, MSG);
            read_full(client, msg, MSG);
        }
        printf("%.3f\n", (now() - start) / (double)n * 1e6);
    } else if (strcmp(argv[1], "pipeline") == 0 ||
               strcmp(argv[1], "batched") == 0) {
        /* Writes in batches of up to 256 messages while reading replies. */
        enum { BATCH = 256 };
        static char out[BATCH * MSG], in[BATCH * MSG];
        long sent = 0, got = 0;
        while (got < n) {
            long k = n - sent < BATCH ? n - sent : BATCH;
            if (k > 0 && sent - got < 4 * BATCH) {
                write_full(client, out, (size_t)k * MSG);
                sent += k;
            }
            long want = sent - got < BATCH ? sent - got : BATCH;
            read_full(client, in, (size_t)want * MSG);
            got += want;
        }
        printf("%.0f\n", (double)n / (now() - start));
    } else if (strcmp(argv[1], "stream") == 0) {
        static char buf[1 << 16];
        long long left = (long long)n << 20;
        while (left > 0) {
            size_t k = left < (long long)sizeof buf ? (size_t)left : sizeof buf;
            write_full(client, buf, k);
            left -= (long long)k;
        }
        read_full(client, msg, 1);
        printf("%.1f\n", (double)n / (now() - start));
    } else {
        fprintf(stderr, "tcp_floor: unknown mode %s\n", argv[1]);
        return 2;
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) die("waitpid");
    return 0;
}
