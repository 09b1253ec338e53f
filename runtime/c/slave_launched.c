/* slave_launched.c — what a slave started by one of the master's
 * launchers (--ssh, --srun) or by the master itself does besides running
 * jobs: read the secret from standard input (--token-stdin), then keep
 * watching it, so that the slave ends when its master or the ssh session
 * that started it is gone; and tell the master where it runs (WHERE).
 *
 * Locks: token_from_stdin runs in main() before any other thread; the
 * watcher thread it starts touches no shared state (it only ends the
 * process); send_where takes S.slock through slave_conn.c. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "log.h"
#include "proto.h"
#include "slave.h"

/* A secret is at most this long (auth.c's limit), so its hex line is at
 * most twice that plus the newline. */
#define MAX_LINE (2 * 65536 + 2)

static int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Standard input ends (EOF or an error) when the master, or the ssh or
 * srun that started us, is gone: then so are we. What else comes on it
 * is ignored. */
static void *watch_stdin(void *arg)
{
    (void)arg;
    char buf[512];
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            ms_log("standard input: %s; the master is gone, exiting",
                   strerror(errno));
        else
            ms_logv("standard input closed: the master is gone, exiting");
        slave_exit(0);
    }
    return NULL;
}

/* main(), before other threads: one line on standard input, the secret in
 * hex (an empty line: none); *out gets it (caller frees out->data). Then a
 * thread watches standard input until it closes. */
void token_from_stdin(ms_secret *out)
{
    char *line = ms_xmalloc(MAX_LINE);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(STDIN_FILENO, line + n, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            ms_fatal("--token-stdin: read: %s", strerror(errno));
        if (r == 0) {
            /* Whoever started us is gone before it said anything. */
            ms_log("--token-stdin: standard input closed before the secret "
                   "came; exiting");
            slave_exit(1);
        }
        if (line[n] == '\n')
            break;
        if (++n == MAX_LINE)
            ms_usage_error("--token-stdin: the line is longer than %d bytes",
                           MAX_LINE - 1);
    }
    if (n && line[n - 1] == '\r')
        n--;
    *out = (ms_secret){0};
    if (n % 2)
        ms_usage_error("--token-stdin: the secret must come as hex digits");
    if (n) {
        out->data = ms_xmalloc(n / 2);
        out->len = n / 2;
        for (size_t i = 0; i < n / 2; i++) {
            int hi = hex_digit(line[2 * i]), lo = hex_digit(line[2 * i + 1]);
            if (hi < 0 || lo < 0)
                ms_usage_error("--token-stdin: the secret must come as hex "
                               "digits");
            out->data[i] = (uint8_t)(hi << 4 | lo);
        }
    }
    OPENSSL_cleanse(line, n);
    free(line);
    pthread_t th;
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc == 0)
        rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (rc == 0)
        rc = pthread_create(&th, &attr, watch_stdin, NULL);
    if (rc != 0)
        ms_fatal("pthread_create: %s", strerror(rc));
    pthread_attr_destroy(&attr);
}

/* Right after joining: how we were started (the launcher's tag, the Slurm
 * task) and our host name, for the master's --stats. */
void send_where(uint32_t tag)
{
    ms_where w = {.tag = tag};
    const char *procid = getenv("SLURM_PROCID");
    if (procid && *procid) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(procid, &end, 10);
        if (!errno && !*end && v < UINT32_MAX)
            w.task = (uint32_t)v + 1;
    }
    if (gethostname(w.host, sizeof w.host - 1) != 0) {
        ms_logv("gethostname: %s", strerror(errno));
        snprintf(w.host, sizeof w.host, "?");
    }
    w.host[sizeof w.host - 1] = '\0';
    if (!w.host[0])
        snprintf(w.host, sizeof w.host, "?");
    send_where_msg(&w);
}
