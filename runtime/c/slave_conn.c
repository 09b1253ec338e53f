/* slave_conn.c — the slave's connection to the master: connecting
 * (retrying until the master is up), the handshake, reading what the
 * master sends and acting on it (jobs to the queue, cancels, heartbeats,
 * GOODBYE), and sending results, control messages and the lines jobs
 * printed (slave_output.c queues them).
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

#include <openssl/crypto.h>

#include "auth.h"
#include "log.h"
#include "ms_abi.h"
#include "net.h"
#include "proto.h"
#include "protect.h"
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
        uint64_t output = S.out_output;
        S.out = S.spare;
        S.spare = (ms_buf){0};
        S.out_output = 0;
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
        if (output)
            output_written(output);
    }
    if (S.broken) {
        S.out.len = 0;
        if (S.out_output)
            output_written(S.out_output);
        S.out_output = 0;
    }
    S.flushing = 0;
    pthread_mutex_unlock(&S.slock);
}

/* The message appended to S.out from `at` on is whole: seal it in place
 * on a protected connection (caller holds S.slock, so messages are
 * sealed in the order they are written), then write. */
static void sealed_flush_and_unlock(uint64_t at)
{
    if (S.tx.on && !S.broken)
        ms_seal_last(&S.tx, &S.out, at);
    flush_and_unlock();
}

void send_ctrl(uint32_t jid, uint8_t kind)
{
    pthread_mutex_lock(&S.slock);
    uint64_t at = S.out.len;
    ms_ctrl_append(&S.out, jid, kind);
    sealed_flush_and_unlock(at);
}

void send_text(uint32_t jid, uint8_t kind, const char *text)
{
    pthread_mutex_lock(&S.slock);
    uint64_t at = S.out.len;
    ms_ctrl_append_text(&S.out, jid, kind, text);
    sealed_flush_and_unlock(at);
}

/* Results held back for a following short job go out at the latest when
 * this many bytes wait. */
#define HOLD_MAX_BYTES (64 * 1024)

void send_payload(uint32_t jid, const uint8_t *p, uint32_t len)
{
    pthread_mutex_lock(&S.slock);
    uint64_t at = S.out.len;
    ms_msg_append(&S.out, 0, jid, p, len);
    sealed_flush_and_unlock(at);
}

void send_result(uint32_t ordinal, uint32_t jid, const ms_buf *result,
                 int hold)
{
    pthread_mutex_lock(&S.slock);
    uint64_t at = S.out.len;
    ms_msg_append(&S.out, ordinal, jid, result->data, (uint32_t)result->len);
    if (hold && !S.broken && S.out.len < HOLD_MAX_BYTES) {
        if (S.tx.on)
            ms_seal_last(&S.tx, &S.out, at);
        pthread_mutex_unlock(&S.slock);
        return;
    }
    sealed_flush_and_unlock(at);
}

void send_held(void)
{
    pthread_mutex_lock(&S.slock);
    if (S.out.len == 0 || S.flushing) {
        pthread_mutex_unlock(&S.slock);
        return;
    }
    flush_and_unlock();
}

void output_append_locked(uint32_t jid, uint8_t stream, const uint8_t *p,
                          uint32_t n)
{
    uint64_t at = S.out.len;
    ms_output_append(&S.out, jid, stream, p, n);
    if (S.tx.on && !S.broken)
        ms_seal_last(&S.tx, &S.out, at);
    S.out_output += MS_HDR_LEN + 2 + (uint64_t)n;
}

void queue_output(int flush)
{
    pthread_mutex_lock(&S.slock);
    output_move_locked();
    if (flush)
        flush_and_unlock();
    else
        pthread_mutex_unlock(&S.slock);
}

void send_where_msg(const ms_where *w)
{
    pthread_mutex_lock(&S.slock);
    uint64_t at = S.out.len;
    ms_where_append(&S.out, w);
    sealed_flush_and_unlock(at);
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
    if (kind == MS_BLOB) {
        blob_receive(p, h.length);
        return;
    }
    if (kind == MS_SHARED_JOB) {
        shared_job_receive(h.jid, p, h.length);
        return;
    }
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

/* Open a sealed message in place (caller holds S.rlock): its payload is
 * then the first h->length bytes of body. Any failure ends the slave. */
static void open_or_die(const uint8_t head[MS_HDR_LEN], uint8_t *body,
                        ms_header *h)
{
    if (ms_open(&S.rx, head, body, h->length) != 0)
        violation("message %" PRIu64 " from the master fails authentication "
                  "(forged, altered, replayed or out of order)",
                  S.rx.seq - 1);
    h->length -= MS_TAG_LEN;
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
    if (S.rx.on)
        open_or_die(S.big_head, data, &S.big);
    if (S.big.ordinal == 0) { /* a BLOB: the cache copies what it keeps */
        handle_message(S.big, data);
        free(data);
    } else {
        queue_task(S.big, data, data);
    }
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
            uint8_t *head = S.in.data + S.in_off;
            ms_header h = ms_header_decode(head);
            /* A sealed message carries its tag beyond the payload. */
            uint32_t extra = S.rx.on ? MS_TAG_LEN : 0;
            if (h.length < extra)
                violation("sealed message of %" PRIu32 " bytes, shorter than "
                          "its tag", h.length);
            if (h.length - extra > S.max_message)
                violation("message of %" PRIu32 " bytes is over the limit of %"
                          PRIu32 " bytes",
                          h.length - extra, S.max_message);
            uint64_t avail = S.in.len - S.in_off - MS_HDR_LEN;
            if (avail < h.length) {
                if (h.length >= BIG_MESSAGE) {
                    /* The length passed the limit check above, so this
                     * buffer is at most max_message bytes. */
                    S.big = h;
                    memcpy(S.big_head, head, MS_HDR_LEN);
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
            uint8_t *p = head + MS_HDR_LEN;
            S.in_off += MS_HDR_LEN + (uint64_t)h.length;
            if (S.rx.on)
                open_or_die(head, p, &h);
            handle_message(h, p);
        }
        if (!more)
            break;
    }
    pthread_mutex_unlock(&S.rlock);
}

/* ---------------------------------------------------------- handshake */

/* Read one whole message of at most `limit` payload bytes into `buf`
 * (borrowed, at least `limit` long). Exits with a message on failure,
 * except when the master closes the connection before the message begins
 * (a master full of connections that have not finished the handshake
 * closes the oldest of them): then *closed is set, to try again. */
static ms_header read_message(uint8_t *buf, uint32_t limit, const char *what,
                              int *closed)
{
    uint8_t head[MS_HDR_LEN];
    int rc = ms_read_full(S.fd, head, sizeof head, HANDSHAKE_TIMEOUT_MS);
    if (rc == -ECONNRESET) {
        *closed = 1;
        return (ms_header){0, 0, 0};
    }
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

/* The outcome of one handshake. */
enum { JOINED, RETRY, CLOSED };

/* Take S.fd through the handshake. Returns JOINED; RETRY when the
 * peer is no master of ours (it does not prove the secret, or does not
 * authenticate at all while we want it to, or refuses us without proving
 * the secret): the real master may come;
 * CLOSED when the master closed the connection before it said yes or no
 * (its handshake slots were full: try again soon).
 * Anything else that goes wrong ends the slave with a message. */
static int handshake(const ms_secret *secret, int insecure)
{
    uint8_t buf[MS_HANDSHAKE_MAX];
    int closed = 0;
    ms_header h = read_message(buf, sizeof buf, "CHALLENGE", &closed);
    if (closed)
        return CLOSED;
    ms_challenge ch;
    if (ms_challenge_decode(buf, h.length, &ch) != 0) {
        ms_log("%s is not an M/s master: malformed CHALLENGE", S.master);
        slave_exit(1);
    }
    uint8_t fp[MS_DIGEST_LEN];
    ms_program_fingerprint(fp);
    int auth = (ch.flags & MS_CHALLENGE_AUTH) != 0;
    if (ch.version == MS_PROTOCOL_VERSION && !auth && !S.local) {
        if (!insecure) {
            ms_log("refusing master %s: it does not prove the shared secret "
                   "(it has none, or runs with --insecure), so it could be "
                   "anyone; pass --insecure to this slave to accept it",
                   S.master);
            return RETRY;
        }
        ms_log("warning: master %s does not authenticate itself and its "
               "messages are not protected (--insecure)",
               S.master);
    }
    if (auth && !secret->data)
        ms_log("master %s requires a shared secret, and this slave has none "
               "(set MS_TOKEN or use --token-file)",
               S.master);
    ms_hello hello = {.version = MS_PROTOCOL_VERSION,
                      .threads = (uint32_t)S.threads,
                      .pid = (uint32_t)getpid()};
    memcpy(hello.fingerprint, fp, MS_DIGEST_LEN);
    char err[256];
    if (ms_random_bytes(hello.nonce, sizeof hello.nonce, err, sizeof err) != 0)
        ms_fatal("%s", err);
    if (auth && secret->data) {
        uint32_t fields[] = {ch.flags, hello.version, hello.threads, hello.pid};
        ms_handshake_proof(secret, MS_SLAVE_LABEL, ch.nonce, hello.nonce, fp,
                           fields, 4, hello.proof);
    }
    ms_buf out = {0};
    ms_hello_append(&out, &hello);
    int rc = ms_write_full(S.fd, out.data, (size_t)out.len);
    ms_buf_free(&out);
    /* The master closed first, as it does when its handshake slots are
     * full, or (a local slave) when the run ended before this slave was
     * in: the same as a close seen by the read below. */
    if (rc == -EPIPE || rc == -ECONNRESET)
        return CLOSED;
    if (rc != 0) {
        ms_log("write to master %s: %s", S.master, strerror(-rc));
        slave_exit(1);
    }
    /* The master decides and says why; we only add what we know. */
    h = read_message(buf, sizeof buf, "WELCOME", &closed);
    if (closed)
        return CLOSED;
    if (buf[0] == MS_REFUSE) {
        /* Under AUTH the reason ends with the master's proof: without it
         * (or when it does not check, as with a wrong secret) the refusal
         * may come from anyone on the master's port, so it is reported
         * and tried again like a connection refused. A slave without a
         * secret can join no master that asks for one: it stops. */
        uint32_t tlen = h.length - 1;
        int proven = !auth || !secret->data;
        if (auth && tlen >= MS_DIGEST_LEN) {
            tlen -= MS_DIGEST_LEN;
            if (secret->data) {
                uint8_t want[MS_DIGEST_LEN];
                ms_refusal_proof(secret, ch.nonce, hello.nonce,
                                 ch.fingerprint, buf + 1, tlen, want);
                proven = ms_digest_equal(want, buf + 1 + tlen);
            }
        }
        char reason[MS_MAX_TEXT + 1];
        ms_text_decode(buf + 1, tlen, reason, sizeof reason);
        if (proven) {
            ms_log("refused by master %s: %s", S.master, reason);
            slave_exit(1);
        }
        ms_log("refused by master %s: %s (the refusal does not prove the "
               "shared secret: this slave's secret is not the master's, or "
               "another process answers at that address)",
               S.master, reason);
        return RETRY;
    }
    ms_welcome w;
    if (ms_welcome_decode(buf, h.length, &w) != 0) {
        ms_log("%s is not an M/s master: malformed %s message", S.master,
               ms_ctrl_name(buf[0]));
        slave_exit(1);
    }
    if (auth) {
        /* No job before the master has proved the secret too: a peer that
         * relays another's CHALLENGE cannot make this proof. */
        uint32_t fields[] = {w.heartbeat_ms, w.max_message, w.slave_id};
        uint8_t want[MS_DIGEST_LEN];
        ms_handshake_proof(secret, MS_MASTER_LABEL, ch.nonce, hello.nonce,
                           ch.fingerprint, fields, 3, want);
        if (!ms_digest_equal(want, w.proof)) {
            ms_log("refusing master %s: authentication failed: it does not "
                   "prove the shared secret (a wrong --master, or another "
                   "process on its port?)",
                   S.master);
            OPENSSL_cleanse(want, sizeof want);
            return RETRY;
        }
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
    if (auth) {
        uint8_t m2s[MS_KEY_LEN], s2m[MS_KEY_LEN];
        ms_session_keys(secret, ch.nonce, hello.nonce, m2s, s2m);
        ms_chan_init(&S.rx, m2s, 0);
        ms_chan_init(&S.tx, s2m, 1);
        OPENSSL_cleanse(m2s, sizeof m2s);
        OPENSSL_cleanse(s2m, sizeof s2m);
    }
    S.max_message = w.max_message;
    S.hb_timeout_ms = w.heartbeat_ms;
    S.hb_interval_ms = w.heartbeat_ms / 3 ? w.heartbeat_ms / 3 : 1;
    ms_logv("joined master %s as slave %" PRIu32 " with %ld thread%s%s",
            S.master, w.slave_id, S.threads,
            ms_plural((unsigned long long)S.threads),
            auth ? " (authenticated, protected)" : "");
    return JOINED;
}

/* Connect, retrying until the master is up, and saying what it waits for
 * at once and then every WAIT_NOTICE_MS; a host name that does not exist
 * ends the slave (status 2: a wrong command line, not a master late). */
#define WAIT_NOTICE_MS 5000
static void connect_master(const ms_hostport *hp)
{
    int delay = 50;
    long long t_said = 0;
    for (;;) {
        char err[512];
        errno = 0;
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
        /* A master listens before it launches its slaves: refused, a
         * launched slave's master is gone (killed before this slave got
         * to it), and nothing outlives the run. */
        if (S.launch_tag && errno == ECONNREFUSED) {
            ms_log("master %s refuses connections: the master that started "
                   "this slave is gone; exiting", S.master);
            slave_exit(1);
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

#define REFUSED_FIRST_MS 500    /* retry after refusing a master */
#define REFUSED_MAX_MS 10000
#define FULL_FIRST_MS 20        /* retry after a master closed a full handshake */
#define FULL_MAX_MS 1000

void join_master(const ms_hostport *hp, const ms_secret *secret, int insecure)
{
    if (S.local) {
        if (handshake(secret, insecure) != JOINED)
            slave_exit(1);
        return;
    }
    int refused_delay = REFUSED_FIRST_MS, full_delay = FULL_FIRST_MS;
    for (;;) {
        connect_master(hp);
        int outcome = handshake(secret, insecure);
        if (outcome == JOINED)
            return;
        if (close(S.fd) != 0)
            ms_log("close: %s", strerror(errno));
        S.fd = -1;
        int ms;
        if (outcome == CLOSED) {
            /* A flood of idle connections fills the master's slots: its
             * damage must not outlast it, so try again soon, jittered. */
            ms = full_delay / 2 + (int)(ms_now_ms() % (full_delay / 2 + 1));
            ms_logv("master %s closed the connection during the handshake; "
                    "trying again in %d ms", S.master, ms);
            full_delay = full_delay * 2 > FULL_MAX_MS ? FULL_MAX_MS
                                                      : full_delay * 2;
        } else {
            ms = refused_delay;
            ms_log("trying master %s again in %.1f s", S.master,
                   (double)ms / 1000.0);
            refused_delay = refused_delay * 2 > REFUSED_MAX_MS
                                ? REFUSED_MAX_MS : refused_delay * 2;
        }
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
}
