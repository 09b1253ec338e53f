/* slave_conn.c — the slave's connection to the master: connecting
 * (retrying until the master is up), the handshake, reading what the
 * master sends and acting on it (jobs to the queue, cancels, heartbeats,
 * GOODBYE), and sending results and control messages.
 *
 * Locks: reading holds S.rlock (one reader at a time), and takes S.qlock
 * (queue_task, cancel_task) and S.slock (sending) inside it; sending holds
 * S.slock, dropped while one thread writes what is queued. The handshake runs in main() before the workers start. Batching
 * of messages belongs in flush_and_unlock (slave.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "ms_abi.h"
#include "net.h"
#include "proto.h"
#include "ser.h"
#include "slave.h"
#include "wire.h"

#define HANDSHAKE_TIMEOUT_MS 10000
#define READ_CHUNK 65536
#define BIG_MESSAGE (256 * 1024)

/* ------------------------------------------------------------ sending */

/* Caller holds S.slock, which this releases. The first thread here writes
 * until nothing is left; threads that come meanwhile only append. */
static void flush_and_unlock(void)
{
    if (S.flushing) {
        pthread_mutex_unlock(&S.slock);
        return;
    }
    S.flushing = 1;
    while (S.out.len > 0 && !S.broken) {
        ms_buf mine = S.out;
        S.out = S.spare;
        S.spare = (ms_buf){0};
        pthread_mutex_unlock(&S.slock);
        int rc = ms_write_full(S.fd, mine.data, (size_t)mine.len);
        pthread_mutex_lock(&S.slock);
        mine.len = 0;
        if (!S.spare.data && mine.cap <= (1u << 20))
            S.spare = mine;
        else
            ms_buf_free(&mine);
        if (rc != 0) {
            S.broken = 1;
            ms_logv("cannot write to master %s: %s", S.master, strerror(-rc));
        }
        S.t_send = ms_now_ms();
    }
    if (S.broken)
        S.out.len = 0;
    S.flushing = 0;
    pthread_mutex_unlock(&S.slock);
}

void send_ctrl(uint32_t jid, uint8_t kind)
{
    pthread_mutex_lock(&S.slock);
    ms_ctrl_append(&S.out, jid, kind);
    flush_and_unlock();
}

void send_text(uint32_t jid, uint8_t kind, const char *text)
{
    pthread_mutex_lock(&S.slock);
    ms_ctrl_append_text(&S.out, jid, kind, text);
    flush_and_unlock();
}

void send_result(uint32_t ordinal, uint32_t jid, const ms_buf *result)
{
    pthread_mutex_lock(&S.slock);
    ms_msg_append(&S.out, ordinal, jid, result->data, (uint32_t)result->len);
    flush_and_unlock();
}

/* ------------------------------------------------ messages from master */

_Noreturn void violation(const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    ms_log("closing the connection to master %s: %s", S.master, why);
    slave_exit(1);
}

static void handle_message(ms_header h, const uint8_t *p)
{
    if (h.ordinal != 0) {
        queue_task(h, p, NULL);
        return;
    }
    if (h.length == 0)
        violation("empty control message");
    uint8_t kind = p[0];
    if (h.length == 1) {
        switch (kind) {
        case MS_HEARTBEAT:
            return;
        case MS_CANCEL:
            cancel_task(h.jid);
            return;
        case MS_GOODBYE:
            ms_logv("the master ended the run");
            slave_exit(0);
        }
    }
    violation("unexpected control message %u (%s) of %" PRIu32 " byte%s", kind,
              ms_ctrl_name(kind), h.length, ms_plural(h.length));
}

/* Heartbeats: send one when nothing was sent for a while; give up on a
 * master that sent nothing for the heartbeat timeout. */
void keep_alive(void)
{
    long long now = ms_now_ms();
    pthread_mutex_lock(&S.slock);
    int due = now - S.t_send >= S.hb_interval_ms && !S.flushing;
    if (due)
        S.t_send = now; /* so other idle workers do not send one too */
    pthread_mutex_unlock(&S.slock);
    if (due)
        send_ctrl(0, MS_HEARTBEAT);
    pthread_mutex_lock(&S.rlock);
    long long silent = now - S.t_recv;
    pthread_mutex_unlock(&S.rlock);
    if (silent >= S.hb_timeout_ms) {
        ms_log("no message from master %s for %.1f s; giving up", S.master,
               (double)silent / 1000.0);
        slave_exit(1);
    }
}

/* The master closed the connection or reading failed (n <= 0 from recv):
 * exit with status 1 and a message, unless it only means "no more for now"
 * (returns then). */
static void read_failed(ssize_t n)
{
    if (n < 0) {
        if (ms_errno_is_retry(errno)) /* another worker read it first */
            return;
        if (errno == ECONNRESET) {
            ms_log("master %s reset the connection without ending the run",
                   S.master);
            slave_exit(1);
        }
        ms_log("read from master %s: %s", S.master, strerror(errno));
        slave_exit(1);
    }
    /* A master that ends the run says GOODBYE first (status 0 then). */
    ms_log("master %s closed the connection without ending the run",
           S.master);
    slave_exit(1);
}

/* Read more of the big message (caller holds S.rlock) until it is whole
 * (then queue its job and return 1) or the socket has nothing more for now
 * (return 0). */
static int read_big(void)
{
    while (S.big_have < S.big.length) {
        ssize_t n = recv(S.fd, S.big_data + S.big_have,
                         (size_t)(S.big.length - S.big_have), MSG_DONTWAIT);
        if (n <= 0) {
            read_failed(n);
            return 0;
        }
        S.big_have += (uint64_t)n;
        S.t_recv = ms_now_ms();
    }
    uint8_t *data = S.big_data;
    S.big_data = NULL;
    queue_task(S.big, data, data);
    return 1;
}

/* Read what the master sent and act on every whole message: queue jobs,
 * handle control messages. The socket is edge-triggered (one worker wakes
 * per arrival, not every idle one in turn), so this reads until the socket
 * is drained: a read that fills less than the room it was given took all
 * there was, and whatever arrives later wakes a worker again. */
void read_master(void)
{
    pthread_mutex_lock(&S.rlock);
    for (;;) {
        if (S.big_data) {
            if (!read_big())
                break; /* drained */
            continue;  /* more may follow it */
        }
        if (S.in_off == S.in.len) {
            S.in_off = S.in.len = 0;
        } else if (S.in_off > 0 && S.in.cap - S.in.len < READ_CHUNK) {
            memmove(S.in.data, S.in.data + S.in_off, S.in.len - S.in_off);
            S.in.len -= S.in_off;
            S.in_off = 0;
        }
        ms_buf_reserve(&S.in, READ_CHUNK);
        size_t room = (size_t)(S.in.cap - S.in.len);
        ssize_t n = recv(S.fd, S.in.data + S.in.len, room, MSG_DONTWAIT);
        if (n <= 0) {
            read_failed(n);
            break; /* drained (or another worker read it first) */
        }
        S.in.len += (uint64_t)n;
        S.t_recv = ms_now_ms();
        int more = (size_t)n == room;
        while (S.in.len - S.in_off >= MS_HDR_LEN) {
            ms_header h = ms_header_decode(S.in.data + S.in_off);
            if (h.length > S.max_message)
                violation("message of %" PRIu32 " bytes is over the limit of %"
                          PRIu32 " bytes",
                          h.length, S.max_message);
            uint64_t avail = S.in.len - S.in_off - MS_HDR_LEN;
            if (avail < h.length) {
                if (h.ordinal != 0 && h.length >= BIG_MESSAGE) {
                    /* The length passed the limit check above, so this
                     * buffer is at most max_message bytes. */
                    S.big = h;
                    S.big_data = ms_xmalloc(h.length);
                    ms_hint_huge(S.big_data, h.length);
                    S.big_have = avail;
                    memcpy(S.big_data, S.in.data + S.in_off + MS_HDR_LEN,
                           avail);
                    S.in_off = S.in.len;
                    more = 1; /* read_big reads on until drained or whole */
                }
                break;
            }
            const uint8_t *p = S.in.data + S.in_off + MS_HDR_LEN;
            S.in_off += MS_HDR_LEN + (uint64_t)h.length;
            handle_message(h, p);
        }
        if (!more)
            break;
    }
    pthread_mutex_unlock(&S.rlock);
}

/* ---------------------------------------------------------- handshake */

/* Read one whole message of at most `limit` payload bytes into `buf`
 * (borrowed, at least `limit` long). Exits with a message on failure. */
static ms_header read_message(uint8_t *buf, uint32_t limit, const char *what)
{
    uint8_t head[MS_HDR_LEN];
    int rc = ms_read_full(S.fd, head, sizeof head, HANDSHAKE_TIMEOUT_MS);
    if (rc == 0) {
        ms_header h = ms_header_decode(head);
        if (h.ordinal != 0 || h.length == 0 || h.length > limit) {
            ms_log("%s is not an M/s master: unexpected message (ordinal %"
                   PRIu32 ", %" PRIu32 " bytes) instead of %s",
                   S.master, h.ordinal, h.length, what);
            slave_exit(1);
        }
        rc = ms_read_full(S.fd, buf, h.length, HANDSHAKE_TIMEOUT_MS);
        if (rc == 0)
            return h;
    }
    if (rc == -ETIMEDOUT)
        ms_log("master %s sent no %s within %d s", S.master, what,
               HANDSHAKE_TIMEOUT_MS / 1000);
    else if (rc == -ECONNRESET)
        ms_log("master %s closed the connection during the handshake",
               S.master);
    else
        ms_log("read from master %s: %s", S.master, strerror(-rc));
    slave_exit(1);
}

void handshake(const ms_secret *secret)
{
    uint8_t buf[MS_HANDSHAKE_MAX];
    ms_header h = read_message(buf, sizeof buf, "CHALLENGE");
    ms_challenge ch;
    if (ms_challenge_decode(buf, h.length, &ch) != 0) {
        ms_log("%s is not an M/s master: malformed CHALLENGE", S.master);
        slave_exit(1);
    }
    uint8_t fp[MS_DIGEST_LEN];
    ms_program_fingerprint(fp);
    if ((ch.flags & MS_CHALLENGE_AUTH) && !secret->data)
        ms_log("master %s requires a shared secret, and this slave has none "
               "(set MS_TOKEN or use --token-file)",
               S.master);
    ms_hello hello = {.version = MS_PROTOCOL_VERSION,
                      .threads = (uint32_t)S.threads,
                      .pid = (uint32_t)getpid()};
    memcpy(hello.fingerprint, fp, MS_DIGEST_LEN);
    if (secret->data)
        ms_auth_proof(secret, ch.nonce, fp, hello.proof);
    ms_buf out = {0};
    ms_hello_append(&out, &hello);
    int rc = ms_write_full(S.fd, out.data, (size_t)out.len);
    ms_buf_free(&out);
    if (rc != 0) {
        ms_log("write to master %s: %s", S.master, strerror(-rc));
        slave_exit(1);
    }
    /* The master decides and says why; we only add what we know. */
    h = read_message(buf, sizeof buf, "WELCOME");
    if (buf[0] == MS_REFUSE) {
        char reason[MS_MAX_TEXT + 1];
        ms_text_decode(buf + 1, h.length - 1, reason, sizeof reason);
        ms_log("refused by master %s: %s", S.master, reason);
        slave_exit(1);
    }
    ms_welcome w;
    if (ms_welcome_decode(buf, h.length, &w) != 0) {
        ms_log("%s is not an M/s master: malformed %s message", S.master,
               ms_ctrl_name(buf[0]));
        slave_exit(1);
    }
    if (ch.version != MS_PROTOCOL_VERSION ||
        !ms_digest_equal(ch.fingerprint, fp)) {
        ms_log("master %s runs another program or version; refusing it",
               S.master);
        slave_exit(1);
    }
    if (w.max_message < MS_HANDSHAKE_MAX || w.heartbeat_ms == 0) {
        ms_log("master %s sent impossible limits (max message %" PRIu32
               ", heartbeat %" PRIu32 " ms)",
               S.master, w.max_message, w.heartbeat_ms);
        slave_exit(1);
    }
    S.max_message = w.max_message;
    S.hb_timeout_ms = w.heartbeat_ms;
    S.hb_interval_ms = w.heartbeat_ms / 3 ? w.heartbeat_ms / 3 : 1;
    ms_logv("joined master %s as slave %" PRIu32 " with %ld thread%s",
            S.master, w.slave_id, S.threads, ms_plural((unsigned long long)S.threads));
}

/* Connect, retrying until the master is up, and saying what it waits for
 * at once and then every WAIT_NOTICE_MS; a host name that does not exist
 * ends the slave (status 2: a wrong command line, not a master late). */
#define WAIT_NOTICE_MS 5000
void connect_master(const ms_hostport *hp)
{
    int delay = 50;
    long long t_said = 0;
    for (;;) {
        char err[512];
        S.fd = ms_connect(hp, err, sizeof err);
        if (S.fd >= 0) {
            if (t_said)
                ms_log("connected to master %s", S.master);
            return;
        }
        if (S.fd == MS_CONNECT_NO_HOST) {
            ms_log("error: %s", err);
            slave_exit(2);
        }
        long long now = ms_now_ms();
        if (!t_said || now - t_said >= WAIT_NOTICE_MS) {
            ms_log("waiting for master %s (%s)", S.master, err);
            t_said = now;
        }
        struct timespec ts = {delay / 1000, (delay % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        delay = delay * 2 > 1000 ? 1000 : delay * 2;
    }
}
