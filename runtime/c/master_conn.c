/* master_conn.c — one connection to a slave: accepting it, the handshake
 * (CHALLENGE out, HELLO in, WELCOME or REFUSE out), reading, acting on
 * results and control messages, writing (big job arguments straight from
 * the job's buffer), closing and forgetting it (its jobs back to the
 * queue); and sending pending jobs to slaves with room.
 *
 * Locks: everything here runs with M.lock held, by either thread, except
 * conn_read, which runs without it on the buffers that belong to the
 * connection's reader (conn.reader). Connections are created and freed by
 * the I/O thread only. Batching of messages belongs in conn_send_job and
 * conn_write (master.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "jobs.h"
#include "log.h"
#include "share.h"
#include "master.h"
#include "ms_abi.h"
#include "net.h"
#include "proto.h"
#include "protect.h"
#include "schedule.h"
#include "ser.h"
#include "wire.h"

#define READ_CHUNK 65536
#define MAX_HANDSHAKING 128    /* connections not yet through the handshake */
#define MAX_HANDSHAKING_PER_PEER 64 /* of them from one address */
#define ACCEPT_PAUSE_MS 200    /* after running out of file descriptors */

/* ------------------------------------------------------ connections */

static void seg_release(oseg *sg)
{
    if (sg->job)
        ms_job_unpin(sg->job);
    else
        ms_blob_release(sg->blob);
}

/* Forget the unsent segments (caller holds M.lock). */
static void conn_drop_segs(conn *c)
{
    for (size_t i = c->seg_head; i < c->nsegs; i++)
        seg_release(&c->segs[i]);
    c->nsegs = c->seg_head = 0;
}

/* Queue one job message: its header, and its arguments copied or, when
 * big, as a segment (caller holds M.lock). On a protected connection the
 * copied message is sealed in place in `out`; a segment's header is
 * sealed now (its counter taken in queue order) and its bytes are
 * encrypted as they are written (conn_write), from the job's buffer, which
 * stays as it is for a retry elsewhere. */
/* Queue a message of `len` payload bytes at `data` as a segment: its
 * header now (sealed now on a protected connection, its counter taken in
 * queue order), its bytes when written (conn_write; encrypted then, from
 * `data`, which its owner keeps as it is). The caller pins or retains
 * the owner (sg->job or sg->blob), which seg_release lets go. */
static void queue_segment(conn *c, oseg sg, uint32_t ordinal, uint32_t jid)
{
    ms_buf_reserve(&c->out, MS_HDR_LEN + MS_TAG_LEN);
    if (c->tx.on) {
        sg.seq = ms_seal_header(&c->tx, sg.head, ordinal, jid,
                                (uint32_t)sg.len);
        memcpy(c->out.data + c->out.len, sg.head, MS_HDR_LEN);
    } else {
        ms_header h = {ordinal, jid, (uint32_t)sg.len};
        ms_header_encode(c->out.data + c->out.len, h);
    }
    c->out.len += MS_HDR_LEN;
    sg.at = c->out.len;
    if (c->tx.on) { /* room for the tag, written when the bytes are */
        memset(c->out.data + c->out.len, 0, MS_TAG_LEN);
        c->out.len += MS_TAG_LEN;
    }
    if (c->nsegs == c->segs_cap) {
        c->segs_cap = c->segs_cap ? 2 * c->segs_cap : 4;
        c->segs = ms_xrealloc(c->segs, c->segs_cap * sizeof *c->segs);
    }
    c->segs[c->nsegs++] = sg;
}

/* Queue a whole message of `len` payload bytes (copied), sealed on a
 * protected connection (caller holds M.lock). */
static void queue_copy(conn *c, uint32_t ordinal, uint32_t jid,
                       const uint8_t *p, uint32_t len)
{
    uint64_t at = c->out.len;
    ms_msg_append(&c->out, ordinal, jid, p, len);
    if (c->tx.on)
        ms_seal_last(&c->tx, &c->out, at);
}

static int blob_was_sent(const conn *c, const ms_blob *b)
{
    uint32_t n = c->nsent_blobs < 16 ? c->nsent_blobs : 16;
    for (uint32_t i = 0; i < n; i++)
        if (c->sent_blobs[i] == b->id)
            return 1;
    return 0;
}

static void send_blob(conn *c, ms_blob *b)
{
    uint32_t len = MS_BLOB_HEAD + b->len;
    if (len < SEG_MIN) {
        queue_copy(c, 0, 0, b->payload, len);
    } else {
        ms_blob_retain(b);
        queue_segment(c, (oseg){.data = b->payload, .len = len, .blob = b},
                      0, 0);
    }
    c->sent_blobs[c->nsent_blobs++ % 16] = b->id;
}

/* A job whose arguments use blobs: those the slave has not been sent,
 * then a SHARED_JOB naming them (share.h, docs/protocol.md). */
static void send_shared_job(conn *c, struct ms_job *j)
{
    const ms_args_pieces *p = (const ms_args_pieces *)ms_job_args(j);
    for (uint32_t i = 0; i < p->n; i++)
        if (!blob_was_sent(c, p->ref[i].blob))
            send_blob(c, p->ref[i].blob);
    uint64_t len = MS_SHARED_JOB_HEAD + (uint64_t)p->n * MS_SHARED_REF_LEN +
                   p->lit_len;
    uint64_t at = c->out.len;
    ms_buf_reserve(&c->out, MS_HDR_LEN + len + MS_TAG_LEN);
    ms_header h = {0, j->jid, (uint32_t)len};
    ms_header_encode(c->out.data + c->out.len, h);
    uint8_t *q = c->out.data + c->out.len + MS_HDR_LEN;
    *q++ = MS_SHARED_JOB;
    ms_put_u32le(q, j->ordinal);
    ms_put_u32le(q + 4, p->lit_len);
    ms_put_u32le(q + 8, p->n);
    q += 12;
    for (uint32_t i = 0; i < p->n; i++) {
        ms_put_u32le(q, p->ref[i].at);
        ms_put_u32le(q + 4, p->ref[i].blob->len);
        memcpy(q + 8, ms_blob_digest(p->ref[i].blob), MS_DIGEST_LEN);
        q += MS_SHARED_REF_LEN;
    }
    if (p->lit_len)
        memcpy(q, p->lit, p->lit_len);
    c->out.len += MS_HDR_LEN + len;
    if (c->tx.on)
        ms_seal_last(&c->tx, &c->out, at);
}

/* Queue one job message: its header, and its arguments copied or, when
 * big, as a segment from the job's buffer, which stays as it is for a
 * retry elsewhere; or, when they use shared blobs, a SHARED_JOB (caller
 * holds M.lock). */
static void conn_send_job(conn *c, struct ms_job *j)
{
    if (j->args_kind == MS_ARGS_SHARED) {
        send_shared_job(c, j);
    } else if (j->args_len < SEG_MIN) {
        queue_copy(c, j->ordinal, j->jid, ms_job_args(j), j->args_len);
    } else {
        ms_job_pin(j);
        queue_segment(c, (oseg){.data = ms_job_args(j), .len = j->args_len,
                                .job = j},
                      j->ordinal, j->jid);
    }
}

/* Queue a control message without payload, sealed on a protected
 * connection (caller holds M.lock). */
void conn_send_ctrl(conn *c, uint32_t jid, uint8_t kind)
{
    uint64_t at = c->out.len;
    ms_ctrl_append(&c->out, jid, kind);
    if (c->tx.on)
        ms_seal_last(&c->tx, &c->out, at);
}

void conn_close(conn *c, const char *fmt, ...)
{
    if (c->phase == C_DEAD)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    c->phase = C_DEAD;
}

/* A protocol violation: log it, count it, close the connection. */
static void violation(conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void violation(conn *c, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    ms_log("closing connection from %s: %s", c->peer, why);
    M.st.violations++;
    conn_close(c, "protocol error: %s", why);
}

static void refuse(conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void refuse(conn *c, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    ms_log("refused slave %s (pid %" PRIu32 "): %s", c->peer, c->pid, why);
    M.st.refused++;
    /* Proven under AUTH, so that a slave tries again after a REFUSE it
     * cannot check (it may come from anyone on the master's port) but
     * believes this one. */
    uint8_t proof[MS_DIGEST_LEN];
    if (c->auth)
        ms_refusal_proof(&M.secret, c->nonce, c->snonce, M.fingerprint,
                         (const uint8_t *)why, strlen(why), proof);
    ms_refuse_append(&c->out, why, c->auth ? proof : NULL);
    c->phase = C_CLOSING;
    c->t_close = ms_now_ms();
}

/* Do two "ADDR:PORT" strings name the same address? */
static int same_address(const char *a, const char *b)
{
    const char *ca = strrchr(a, ':'), *cb = strrchr(b, ':');
    size_t na = ca ? (size_t)(ca - a) : strlen(a);
    size_t nb = cb ? (size_t)(cb - b) : strlen(b);
    return na == nb && memcmp(a, b, na) == 0;
}

/* Make room for a connection from `peer` among those in the handshake:
 * when its address has MAX_HANDSHAKING_PER_PEER of them, or all have
 * MAX_HANDSHAKING, close the oldest (of that address, or of all). A real
 * slave answers the CHALLENGE in milliseconds, so the oldest is the most
 * likely to be idle; one closed this way tries again (join_master). Returns
 * how many are left in the handshake. */
static size_t make_room(const char *peer, long long now)
{
    size_t total = 0, mine = 0;
    conn *oldest = NULL, *oldest_mine = NULL;
    for (size_t i = 0; i < M.nconns; i++) {
        conn *c = M.conns[i];
        if (c->phase != C_HANDSHAKE)
            continue;
        total++;
        if (!oldest || c->t_open < oldest->t_open)
            oldest = c;
        if (same_address(c->peer, peer)) {
            mine++;
            if (!oldest_mine || c->t_open < oldest_mine->t_open)
                oldest_mine = c;
        }
    }
    conn *victim = mine >= MAX_HANDSHAKING_PER_PEER ? oldest_mine
                   : total >= MAX_HANDSHAKING      ? oldest
                                                   : NULL;
    if (!victim)
        return total;
    if (now - M.t_accept_log >= 5000) {
        ms_log("closing connection from %s: %zu connections from its address "
               "and %zu in all have not finished the handshake (the oldest "
               "goes; more such messages in the next 5 s are not shown)",
               victim->peer, mine, total);
        M.t_accept_log = now;
    }
    conn_close(victim, "closed to make room for newer connections in the "
                       "handshake");
    return total - 1;
}

/* A new connection in the handshake, its CHALLENGE queued (caller holds
 * M.lock; the I/O thread). TCP connections prove the secret both ways
 * when the master has one (and no --insecure); a local slave's socket
 * pair is reachable by nobody else and is not authenticated. */
static conn *conn_new(int fd, const char *peer, long long now, int local)
{
    conn *c = ms_xcalloc(1, sizeof *c);
    c->fd = fd;
    c->id = ++M.next_conn_id;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->phase = C_HANDSHAKE;
    c->local = local;
    c->auth = !local && M.auth_required;
    c->t_open = c->t_recv = c->t_send = now;
    char err[256];
    if (ms_random_bytes(c->nonce, sizeof c->nonce, err, sizeof err) != 0)
        ms_fatal("%s", err);
    ms_challenge ch = {.version = MS_PROTOCOL_VERSION,
                       .flags = c->auth ? MS_CHALLENGE_AUTH : 0};
    memcpy(ch.fingerprint, M.fingerprint, MS_DIGEST_LEN);
    memcpy(ch.nonce, c->nonce, MS_NONCE_LEN);
    ms_challenge_append(&c->out, &ch);
    if (M.nconns == M.conns_cap) {
        M.conns_cap = M.conns_cap ? 2 * M.conns_cap : 16;
        M.conns = ms_xrealloc(M.conns, M.conns_cap * sizeof *M.conns);
        M.sets = ms_xrealloc(M.sets, M.conns_cap * sizeof *M.sets);
    }
    M.conns[M.nconns++] = c;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(M.ep_fd, EPOLL_CTL_ADD, fd, &ev) != 0)
        ms_fatal("epoll_ctl(ADD): %s", strerror(errno));
    c->ep_events = ev.events;
    return c;
}

/* The master's end of a local slave's socket pair (caller holds M.lock;
 * the I/O thread, right after starting the slave). */
void conn_adopt_local(int fd, pid_t pid, long long now)
{
    conn *c = conn_new(fd, "socketpair", now, 1);
    c->child = pid;
}

void conn_accept(long long now)
{
    for (int k = 0; k < 64; k++) {
        char peer[MS_ADDR_LEN];
        int fd = ms_accept(M.listen_fd, peer, sizeof peer);
        if (fd < 0) {
            if (fd == -EAGAIN || fd == -EWOULDBLOCK || fd == -ECONNABORTED ||
                fd == -EINTR)
                return;
            /* Out of descriptors or memory: stop listening for a moment
             * (the listening socket would stay readable and spin poll). */
            if (now - M.t_accept_log >= 5000) {
                ms_log("accept: %s; not accepting for %d ms", strerror(-fd),
                       ACCEPT_PAUSE_MS);
                M.t_accept_log = now;
            }
            M.accept_paused_until = now + ACCEPT_PAUSE_MS;
            return;
        }
        (void)make_room(peer, now);
        conn *c = conn_new(fd, peer, now, 0);
        ms_logv("connection from %s", c->peer);
    }
}

/* Read what is there (no lock: the buffers are the reader's; the locked
 * part turns rd_failed into conn_close after using what came, and sets
 * t_recv when this returns 1: something came). */
int conn_read(conn *c)
{
    if (c->in_off == c->in.len) {
        c->in_off = c->in.len = 0;
    } else if (c->in_off > 0 && c->in.cap - c->in.len < READ_CHUNK) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    ms_buf_reserve(&c->in, READ_CHUNK);
    if (c->rd_failed)
        return 0;
    ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len,
                     MSG_DONTWAIT);
    if (n < 0) {
        if (!ms_errno_is_retry(errno)) {
            snprintf(c->rd_why, sizeof c->rd_why, "read: %s", strerror(errno));
            c->rd_failed = 1;
        }
        return 0;
    }
    if (n == 0) {
        snprintf(c->rd_why, sizeof c->rd_why, "connection closed");
        c->rd_failed = 1;
        return 0;
    }
    c->in.len += (uint64_t)n;
    c->bytes_in += (uint64_t)n;
    return 1;
}

#define SEG_PIECE (256 * 1024) /* ciphertext of a segment made at a time */

/* On a protected connection, the head segment's next ciphertext: when
 * what was made is all sent, encrypt the next piece from the job's
 * buffer; after its last piece, write the tag into the room reserved for
 * it in `out` (before that part of `out` is sent). Caller holds M.lock. */
static void seg_encrypt(conn *c, oseg *sg)
{
    uint64_t len = sg->len;
    if (sg->sent < c->seg_hi || c->seg_hi == len)
        return;
    if (sg->sent == 0) {
        ms_stream_begin(&c->seg_ctx, &c->tx, sg->seq, sg->head);
        if (!c->segbuf)
            c->segbuf = ms_xmalloc(SEG_PIECE);
    }
    uint64_t n = len - sg->sent < SEG_PIECE ? len - sg->sent : SEG_PIECE;
    ms_stream_update(c->seg_ctx, c->segbuf, sg->data + sg->sent, n);
    c->seg_lo = sg->sent;
    c->seg_hi = sg->sent + n;
    if (c->seg_hi == len)
        ms_stream_end(c->seg_ctx, c->out.data + sg->at);
}

void conn_write(conn *c, long long now)
{
    while (conn_pending(c)) {
        /* Up to three pieces: `out` up to the next segment, the segment
         * (or, protected, the part of it encrypted so far), and `out` from
         * there to the segment after it once the segment is whole. */
        struct iovec iov[3];
        int k = 0;
        oseg *sg = c->seg_head < c->nsegs ? &c->segs[c->seg_head] : NULL;
        uint64_t stop = sg ? sg->at : c->out.len;
        if (c->out_off < stop)
            iov[k++] = (struct iovec){c->out.data + c->out_off,
                                      (size_t)(stop - c->out_off)};
        if (sg) {
            uint64_t len = sg->len, end = len;
            if (c->tx.on) {
                seg_encrypt(c, sg);
                end = c->seg_hi;
                iov[k++] = (struct iovec){c->segbuf + (sg->sent - c->seg_lo),
                                          (size_t)(end - sg->sent)};
            } else {
                iov[k++] = (struct iovec){(void *)(sg->data + sg->sent),
                                          (size_t)(len - sg->sent)};
            }
            uint64_t stop2 = c->seg_head + 1 < c->nsegs
                                 ? c->segs[c->seg_head + 1].at
                                 : c->out.len;
            if (end == len && stop2 > stop)
                iov[k++] = (struct iovec){c->out.data + stop,
                                          (size_t)(stop2 - stop)};
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)k};
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_close(c, "send: %s", strerror(errno));
            return;
        }
        c->bytes_out += (uint64_t)n;
        c->t_send = now;
        uint64_t left = (uint64_t)n;
        uint64_t d = stop - c->out_off < left ? stop - c->out_off : left;
        c->out_off += d;
        left -= d;
        if (sg && left) {
            uint64_t rest = sg->len - sg->sent;
            d = rest < left ? rest : left;
            sg->sent += d;
            left -= d;
            if (sg->sent == sg->len) {
                seg_release(sg);
                c->seg_head++;
                c->seg_lo = c->seg_hi = 0;
            }
        }
        c->out_off += left; /* from the third piece */
    }
    c->out_off = c->out.len = 0;
    c->nsegs = c->seg_head = 0;
    if (c->out.cap > (1u << 20))
        ms_buf_free(&c->out); /* do not keep a huge buffer for heartbeats */
}

/* The job ended: if the main thread waits for it (or for any job, in
 * wait_any), wake it once M.lock is released (so that it does not wake
 * only to block on the lock). */
static void notify_locked(struct ms_job *j)
{
    if (M.waiter == j || M.waiting_any)
        M.notify = 1;
}

static void handle_hello(conn *c, const uint8_t *p, uint32_t len)
{
    ms_hello h;
    if (ms_hello_decode(p, len, &h) != 0) {
        violation(c, "malformed HELLO of %" PRIu32 " bytes", len);
        return;
    }
    c->pid = h.pid;
    memcpy(c->snonce, h.nonce, MS_NONCE_LEN);
    if (h.version != MS_PROTOCOL_VERSION) {
        refuse(c, "the slave speaks protocol version %" PRIu32
                  " but the master speaks version %u",
               h.version, MS_PROTOCOL_VERSION);
        return;
    }
    /* The program first (the fingerprint is public): a slave of another
     * program is told so, not that its proof, which covers the
     * fingerprint, does not match. */
    if (!ms_digest_equal(h.fingerprint, M.fingerprint)) {
        char mine[2 * MS_DIGEST_LEN + 1], theirs[2 * MS_DIGEST_LEN + 1];
        ms_hex(M.fingerprint, 6, mine);
        ms_hex(h.fingerprint, 6, theirs);
        refuse(c, "the slave was built from a different program or version "
                  "than the master (program fingerprint %s, master's %s)",
               theirs, mine);
        return;
    }
    if (c->auth) {
        uint32_t fields[] = {MS_CHALLENGE_AUTH, h.version, h.threads, h.pid};
        uint8_t want[MS_DIGEST_LEN];
        ms_handshake_proof(&M.secret, MS_SLAVE_LABEL, c->nonce, h.nonce,
                           M.fingerprint, fields, 4, want);
        if (!ms_digest_equal(want, h.proof)) {
            refuse(c, "authentication failed: the slave does not prove the "
                      "master's secret (MS_TOKEN or --token-file)");
            return;
        }
    }
    if (h.threads == 0 || h.threads > MS_MAX_THREADS) {
        refuse(c, "the slave offers %" PRIu32 " threads (1 to %d allowed)",
               h.threads, MS_MAX_THREADS);
        return;
    }
    c->threads = h.threads;
    if (c->local)
        local_joined(c->child);
    ms_inflight_init(&c->load, h.threads, ms_now_ms());
    ms_welcome w = {.heartbeat_ms = (uint32_t)M.hb_timeout_ms,
                    .max_message = M.opt.max_message,
                    .slave_id = c->id};
    if (c->auth) {
        uint32_t fields[] = {w.heartbeat_ms, w.max_message, w.slave_id};
        ms_handshake_proof(&M.secret, MS_MASTER_LABEL, c->nonce, h.nonce,
                           M.fingerprint, fields, 3, w.proof);
    }
    ms_welcome_append(&c->out, &w);
    if (c->auth) {
        /* Everything after the WELCOME is sealed both ways. */
        uint8_t m2s[MS_KEY_LEN], s2m[MS_KEY_LEN];
        ms_session_keys(&M.secret, c->nonce, h.nonce, m2s, s2m);
        ms_chan_init(&c->tx, m2s, 1);
        ms_chan_init(&c->rx, s2m, 0);
        OPENSSL_cleanse(m2s, sizeof m2s);
        OPENSSL_cleanse(s2m, sizeof s2m);
    }
    c->phase = C_READY;
    c->was_ready = 1;
    M.ready_slaves++;
    M.st.joined++;
    if (trace_on)
        trace_slave_joined(c);
    ms_logv("slave %" PRIu32 " joined from %s (pid %" PRIu32 ", %s, %" PRIu32
            " threads%s)",
            c->id, c->peer, h.pid, c->local ? "local" : "remote", h.threads,
            c->auth ? ", authenticated, protected" : "");
}

static void handle_result(conn *c, ms_header h, const uint8_t *p)
{
    uint32_t at = ms_inflight_index(&c->load, h.jid);
    struct ms_job *j = at == UINT32_MAX ? NULL : ms_inflight_slot(&c->load, at);
    if (!j) {
        violation(c, "result for job %" PRIu32 ", which it was not running",
                  h.jid);
        return;
    }
    if (j->ordinal != h.ordinal) {
        violation(c, "result for job %" PRIu32 " with ordinal %" PRIu32
                     ", but that job has ordinal %" PRIu32,
                  h.jid, h.ordinal, j->ordinal);
        return;
    }
    const ms_job_entry *e = &ms_job_table[j->ordinal - 1];
    char err[256];
    if (ms_sig_validate(e->ret_sig, p, h.length, err,
                        sizeof err) != 0) {
        violation(c, "result of job %" PRIu32 " ('%s') does not match its "
                     "type \"%s\": %s",
                  h.jid, e->name, e->ret_sig, err);
        return;
    }
    int busy = c->load.n >= c->load.threads;
    (void)ms_inflight_take_at(&c->load, at);
    j->where = NULL;
    c->done++;
    c->n_finished++; /* a result, even for a job cancelled meanwhile */
    ms_inflight_answered(&c->load, ms_now_us(), busy);
    if (trace_on) /* a result for a job cancelled meanwhile is dropped */
        trace_answered(c, j, j->state == MS_J_INFLIGHT ? "ok" : "cancelled",
                       h.length);
    if (j->state == MS_J_INFLIGHT) {
        ms_job_finish(j, p, h.length);
        M.st.finished++;
        notify_locked(j);
    }
    ms_job_release(j);
}

/* The slave lacks a blob that job jid, in flight on it, uses (its cache
 * let it go): send it again. */
static void handle_want(conn *c, uint32_t jid, const uint8_t *digest)
{
    struct ms_job *j = ms_inflight_find(&c->load, jid);
    if (j && j->args_kind == MS_ARGS_SHARED && !ms_job_args(j))
        return; /* cancelled meanwhile: the slave has the CANCEL coming */
    if (j && j->args_kind == MS_ARGS_SHARED) {
        const ms_args_pieces *p = (const ms_args_pieces *)ms_job_args(j);
        for (uint32_t i = 0; i < p->n; i++) {
            if (ms_digest_equal(ms_blob_digest(p->ref[i].blob), digest)) {
                send_blob(c, p->ref[i].blob);
                return;
            }
        }
    }
    violation(c, "WANT for a value that job %" PRIu32 " does not use", jid);
}

static void handle_control(conn *c, ms_header h, const uint8_t *p)
{
    if (h.length == 0) {
        violation(c, "empty control message");
        return;
    }
    uint8_t kind = p[0];
    if (kind == MS_HEARTBEAT && h.length == 1)
        return;
    if (kind == MS_WANT && h.length == MS_WANT_LEN) {
        handle_want(c, h.jid, p + 1);
        return;
    }
    if (kind == MS_OUTPUT) {
        char why[256];
        if (conn_output(c, h, p, why, sizeof why) != 0)
            violation(c, "%s", why);
        return;
    }
    if (kind == MS_WHERE) {
        ms_where w;
        if (c->host[0] || h.jid != 0 || ms_where_decode(p, h.length, &w) != 0) {
            violation(c, "%s WHERE of %" PRIu32 " byte%s",
                      c->host[0] ? "a second" : "a malformed", h.length,
                      ms_plural(h.length));
            return;
        }
        c->tag = w.tag;
        c->task = w.task;
        snprintf(c->host, sizeof c->host, "%s", w.host);
        char origin[600];
        describe_origin_locked(c, origin, sizeof origin);
        ms_logv("slave %" PRIu32 ": %s", c->id, origin);
        return;
    }
    if ((kind == MS_FAILURE) || (kind == MS_CANCELLED && h.length == 1)) {
        int busy = c->load.n >= c->load.threads;
        struct ms_job *j = ms_inflight_take(&c->load, h.jid);
        if (!j) {
            violation(c, "%s for job %" PRIu32 ", which it was not running",
                      ms_ctrl_name(kind), h.jid);
            return;
        }
        j->where = NULL;
        c->done++;
        if (trace_on && !(kind == MS_CANCELLED && j->state == MS_J_INFLIGHT))
            trace_answered(c, j,
                           kind == MS_FAILURE && j->state == MS_J_INFLIGHT
                               ? "failed"
                               : "cancelled",
                           h.length - 1);
        if (kind == MS_FAILURE && j->state == MS_J_INFLIGHT) {
            char text[MS_MAX_TEXT + 1];
            ms_text_decode(p + 1, h.length - 1, text, sizeof text);
            ms_job_fail(j, text);
            M.st.failed++;
            notify_locked(j);
        } else if (kind == MS_CANCELLED && j->state == MS_J_INFLIGHT) {
            /* Only a cancelled job may end without an answer. */
            ms_inflight_add(&c->load, j);
            j->where = c;
            violation(c, "CANCELLED for job %" PRIu32 ", which was not "
                         "cancelled", h.jid);
            return;
        }
        ms_inflight_answered(&c->load, ms_now_us(), busy);
        if (kind == MS_FAILURE)
            c->n_failed++;
        else
            c->n_cancelled++;
        ms_job_release(j);
        return;
    }
    violation(c, "unexpected control message %u (%s) of %" PRIu32 " byte%s",
              kind, ms_ctrl_name(kind), h.length, ms_plural(h.length));
}

/* Parse and act on every complete message received (caller holds
 * M.lock). Returns the bytes (header included) of the partial message
 * left at the front, 0 when none has begun or the connection ends. */
static uint64_t conn_parse(conn *c)
{
    while (c->phase == C_HANDSHAKE || c->phase == C_READY) {
        uint64_t avail = c->in.len - c->in_off;
        if (avail < MS_HDR_LEN)
            return 0;
        uint8_t *head = c->in.data + c->in_off;
        ms_header h = ms_header_decode(head);
        uint32_t limit =
            c->phase == C_READY ? M.opt.max_message : MS_HANDSHAKE_MAX;
        /* A sealed message carries a tag beyond its payload. */
        uint32_t extra = c->rx.on ? MS_TAG_LEN : 0;
        if (h.length < extra) {
            violation(c, "sealed message of %" PRIu32 " bytes, shorter than "
                         "its tag", h.length);
            return 0;
        }
        if (h.length - extra > limit) {
            violation(c, "message of %" PRIu32 " bytes is over the limit of %"
                         PRIu32 " bytes",
                      h.length - extra, limit);
            return 0;
        }
        if (avail - MS_HDR_LEN < h.length)
            return MS_HDR_LEN + (uint64_t)h.length;
        uint8_t *p = head + MS_HDR_LEN;
        c->in_off += MS_HDR_LEN + (uint64_t)h.length;
        if (c->rx.on) {
            if (ms_open(&c->rx, head, p, h.length) != 0) {
                violation(c, "message %" PRIu64 " from the slave fails "
                             "authentication (forged, altered, replayed or "
                             "out of order)",
                          c->rx.seq - 1);
                return 0;
            }
            h.length -= MS_TAG_LEN;
        }
        if (c->phase == C_HANDSHAKE) {
            if (h.ordinal != 0 || h.length == 0 || p[0] != MS_HELLO) {
                violation(c, "expected a HELLO message to start the handshake");
                return 0;
            }
            handle_hello(c, p, h.length);
        } else if (h.ordinal == 0) {
            handle_control(c, h, p);
        } else if (h.ordinal > ms_job_count) {
            violation(c, "unknown job ordinal %" PRIu32 " (the program has %"
                         PRIu32 " jobs)",
                      h.ordinal, ms_job_count);
        } else {
            handle_result(c, h, p);
        }
    }
    return 0;
}

/* Parse what came, then reserve from the budget for the partial message
 * left, or pause c until it can (caller holds M.lock). */
void conn_process(conn *c)
{
    if (c->phase == C_CLOSING) {
        c->in_off = c->in.len; /* not listening any more */
        return;
    }
    if (c->in_paused) /* nothing new was read */
        return;
    uint64_t need = conn_parse(c);
    if (c->phase == C_READY)
        in_settle_locked(c, need);
}

static void tally_add(slave_tally *sum, const slave_tally *t)
{
    sum->slaves += t->slaves;
    sum->ran += t->ran;
    sum->finished += t->finished;
    sum->failed += t->failed;
    sum->cancelled += t->cancelled;
    sum->retried += t->retried;
    sum->bytes_out += t->bytes_out;
    sum->bytes_in += t->bytes_in;
}

/* --stats: c's line goes into the ring of recent slaves; the line it
 * replaces only adds to the sums of the older ones (caller holds M.lock). */
static void stats_slave_left_locked(const conn *c)
{
    slave_line *sl = &M.slave_lines[M.slaves_left++ % STATS_RECENT_SLAVES];
    if (sl->text) {
        tally_add(&M.older, &sl->t);
        free(sl->text);
    }
    sl->t = (slave_tally){1, c->done, c->n_finished, c->n_failed,
                          c->n_cancelled, c->n_retried, c->bytes_out,
                          c->bytes_in};
    char origin[600];
    describe_origin_locked(c, origin, sizeof origin);
    char line[MS_ADDR_LEN + 1100];
    snprintf(line, sizeof line,
             "stats: slave %" PRIu32 " at %s (pid %" PRIu32 ", %s, %" PRIu32
             " thread%s): ran %" PRIu64 " job%s (%" PRIu64 " finished, %" PRIu64
             " failed, %" PRIu64 " cancelled), %" PRIu64 " retried elsewhere "
             "after it was lost; sent %" PRIu64 " byte%s, received %" PRIu64
             " byte%s; %s",
             c->id, c->peer, c->pid, c->local ? "local" : "remote", c->threads,
             ms_plural(c->threads), c->done, ms_plural(c->done), c->n_finished,
             c->n_failed, c->n_cancelled, c->n_retried, c->bytes_out,
             ms_plural(c->bytes_out), c->bytes_in, ms_plural(c->bytes_in),
             origin);
    sl->text = ms_xstrdup(line);
}

/* Forget a closed connection: its jobs go back to the queue, or fail after
 * --max-attempts runs (caller holds M.lock). Frees c. */
void conn_destroy_locked(conn *c)
{
    uint32_t again = 0, failed = 0;
    /* Back to the front of the queue, in their original order; each goes
     * preferably to a slave that was there before this one was lost
     * (ms_sched_pick), not to a newcomer, which may be this one again. */
    long long now = ms_now_ms();
    for (uint32_t i = c->load.span; i-- > 0;) {
        struct ms_job *j = ms_inflight_slot(&c->load, i);
        if (!j)
            continue;
        j->where = NULL;
        if (trace_on)
            trace_answered(c, j,
                           j->state != MS_J_INFLIGHT ? "cancelled"
                           : M.shutting_down         ? "abandoned"
                                                     : "lost",
                           0);
        if (j->state != MS_J_INFLIGHT) {
            ms_job_release(j);
        } else if (j->attempts >= M.opt.max_attempts) {
            char msg[MS_ADDR_LEN + 800];
            snprintf(msg, sizeof msg,
                     "its slaves were lost (%d %s; the last, at %s: %s)",
                     j->attempts, j->attempts == 1 ? "attempt" : "attempts",
                     c->peer, c->why);
            ms_job_fail(j, msg);
            M.st.failed++;
            failed++;
            notify_locked(j);
            ms_job_release(j);
        } else {
            j->state = MS_J_PENDING;
            ms_job_set_lost(j, now);
            M.st.rerun++;
            c->n_retried++;
            again++;
            ms_jobq_push_front(&M.pending, j);
        }
    }
    if (c->was_ready) {
        M.ready_slaves--;
        if (trace_on)
            trace_slave_left(c, !M.shutting_down);
        if (!M.shutting_down) {
            M.st.lost++;
            char what[160] = "";
            if (again)
                snprintf(what, sizeof what, "; %" PRIu32 " of its jobs to run "
                         "again", again);
            if (failed)
                snprintf(what + strlen(what), sizeof what - strlen(what),
                         "; %" PRIu32 " of its jobs failed after %ld %s",
                         failed, M.opt.max_attempts,
                         M.opt.max_attempts == 1 ? "attempt" : "attempts");
            ms_log("lost slave %" PRIu32 " at %s (pid %" PRIu32 "): %s%s",
                   c->id, c->peer, c->pid, c->why, what);
        } else {
            ms_logv("slave %" PRIu32 " at %s left: %s", c->id, c->peer, c->why);
        }
    } else if (c->phase == C_DEAD && !M.shutting_down) {
        ms_logv("connection from %s closed during the handshake: %s", c->peer,
                c->why);
    }
    c->load.n = c->load.span = 0;
    in_forget_locked(c);
    M.st.connections++;
    M.st.bytes_in += c->bytes_in;
    M.st.bytes_out += c->bytes_out;
    if (M.opt.stats && c->was_ready)
        stats_slave_left_locked(c);
    ms_inflight_free(&c->load);
    if (M.ep_fd >= 0)
        (void)epoll_ctl(M.ep_fd, EPOLL_CTL_DEL, c->fd, NULL);
    if (close(c->fd) != 0)
        ms_logv("close: %s", strerror(errno));
    ms_buf_free(&c->in);
    ms_buf_free(&c->out);
    conn_drop_segs(c);
    free(c->segs);
    if (c->tx.on)
        ms_chan_free(&c->tx);
    if (c->rx.on)
        ms_chan_free(&c->rx);
    ms_stream_free(&c->seg_ctx);
    free(c->segbuf);
    free(c->lanes);
    free(c);
}

/* Send pending jobs to slaves with room (caller holds M.lock). A job lost
 * with a slave may wait for a slave it prefers (ms_sched_pick) while the
 * jobs behind it go elsewhere; the first job that no slave can take ends
 * the round. */
void dispatch_locked(void)
{
    if (!M.pending.head || M.shutting_down)
        return;
    for (size_t i = 0; i < M.nconns; i++)
        M.sets[i] = M.conns[i]->phase == C_READY ? &M.conns[i]->load : NULL;
    struct ms_job *prev = NULL, *j;
    long long now = 0;
    while ((j = prev ? prev->next : M.pending.head)) {
        if (j->state != MS_J_PENDING) { /* cancelled while waiting */
            ms_job_release(ms_jobq_take_after(&M.pending, prev));
            continue;
        }
        long k = ms_sched_pick(M.sets, M.nconns, &M.sched_cursor,
                               ms_job_lost_ms(j));
        if (k < 0) {
            if (!j->lost_at)
                return;
            prev = j; /* waits for a slave it prefers */
            continue;
        }
        conn *c = M.conns[k];
        (void)ms_jobq_take_after(&M.pending, prev);
        j->state = MS_J_INFLIGHT;
        j->attempts++;
        j->where = c;
        if (!now)
            now = ms_now_us();
        j->t_sent_us = now;
        if (trace_on)
            trace_sent(c, j);
        conn_send_job(c, j);
        ms_inflight_add(&c->load, j); /* takes the queue's reference */
    }
}

/* Send what the connections have queued, as far as the kernel takes it
 * without blocking (caller holds M.lock). Returns 1 if some remains. */
int flush_locked(void)
{
    int left = 0;
    long long now = 0;
    for (size_t i = 0; i < M.nconns; i++) {
        conn *c = M.conns[i];
        if (c->phase == C_DEAD || !conn_pending(c))
            continue;
        if (!now)
            now = ms_now_ms();
        conn_write(c, now);
        left |= conn_pending(c);
    }
    return left;
}
