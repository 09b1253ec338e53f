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

#include "auth.h"
#include "jobs.h"
#include "log.h"
#include "master.h"
#include "ms_abi.h"
#include "net.h"
#include "proto.h"
#include "schedule.h"
#include "ser.h"
#include "wire.h"

#define READ_CHUNK 65536
#define MAX_HANDSHAKING 128    /* connections not yet through the handshake */
#define ACCEPT_PAUSE_MS 200    /* after running out of file descriptors */

/* ------------------------------------------------------ connections */

/* Forget the unsent segments (caller holds M.lock). */
static void conn_drop_segs(conn *c)
{
    for (size_t i = c->seg_head; i < c->nsegs; i++)
        ms_job_unpin(c->segs[i].job);
    c->nsegs = c->seg_head = 0;
}

/* Queue one job message: its header, and its arguments copied or, when
 * big, as a segment (caller holds M.lock). */
static void conn_send_job(conn *c, struct ms_job *j)
{
    if (j->args_len < SEG_MIN) {
        ms_msg_append(&c->out, j->ordinal, j->jid, j->args, j->args_len);
        return;
    }
    ms_buf_reserve(&c->out, MS_HDR_LEN);
    ms_header h = {j->ordinal, j->jid, j->args_len};
    ms_header_encode(c->out.data + c->out.len, h);
    c->out.len += MS_HDR_LEN;
    if (c->nsegs == c->segs_cap) {
        c->segs_cap = c->segs_cap ? 2 * c->segs_cap : 4;
        c->segs = ms_xrealloc(c->segs, c->segs_cap * sizeof *c->segs);
    }
    ms_job_pin(j);
    c->segs[c->nsegs++] = (oseg){.at = c->out.len, .job = j, .sent = 0};
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
    ms_ctrl_append_text(&c->out, 0, MS_REFUSE, why);
    c->phase = C_CLOSING;
    c->t_close = ms_now_ms();
}

void conn_accept(long long now)
{
    size_t handshaking = 0;
    for (size_t i = 0; i < M.nconns; i++)
        handshaking += M.conns[i]->phase == C_HANDSHAKE;
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
        if (handshaking >= MAX_HANDSHAKING) {
            if (now - M.t_accept_log >= 5000) {
                ms_log("closing connection from %s: %d connections are "
                       "already in the handshake",
                       peer, MAX_HANDSHAKING);
                M.t_accept_log = now;
            }
            close(fd);
            continue;
        }
        handshaking++;
        conn *c = ms_xcalloc(1, sizeof *c);
        c->fd = fd;
        c->id = ++M.next_conn_id;
        snprintf(c->peer, sizeof c->peer, "%s", peer);
        c->phase = C_HANDSHAKE;
        c->t_open = c->t_recv = c->t_send = now;
        char err[256];
        if (ms_random_bytes(c->nonce, sizeof c->nonce, err, sizeof err) != 0)
            ms_fatal("%s", err);
        ms_challenge ch = {.version = MS_PROTOCOL_VERSION,
                           .flags = M.auth_required ? MS_CHALLENGE_AUTH : 0};
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

void conn_write(conn *c, long long now)
{
    while (conn_pending(c)) {
        /* Up to three pieces: `out` up to the next segment, the segment,
         * and `out` from there to the segment after it. */
        struct iovec iov[3];
        int k = 0;
        oseg *sg = c->seg_head < c->nsegs ? &c->segs[c->seg_head] : NULL;
        uint64_t stop = sg ? sg->at : c->out.len;
        if (c->out_off < stop)
            iov[k++] = (struct iovec){c->out.data + c->out_off,
                                      (size_t)(stop - c->out_off)};
        if (sg) {
            iov[k++] = (struct iovec){sg->job->args + sg->sent,
                                      (size_t)(sg->job->args_len - sg->sent)};
            uint64_t stop2 = c->seg_head + 1 < c->nsegs
                                 ? c->segs[c->seg_head + 1].at
                                 : c->out.len;
            if (stop2 > stop)
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
            uint64_t rest = sg->job->args_len - sg->sent;
            d = rest < left ? rest : left;
            sg->sent += d;
            left -= d;
            if (sg->sent == sg->job->args_len) {
                ms_job_unpin(sg->job);
                c->seg_head++;
            }
        }
        c->out_off += left; /* from the third piece */
    }
    c->out_off = c->out.len = 0;
    c->nsegs = c->seg_head = 0;
    if (c->out.cap > (1u << 20))
        ms_buf_free(&c->out); /* do not keep a huge buffer for heartbeats */
}

/* The job ended: if the main thread waits for it, wake it once M.lock is
 * released (so that it does not wake only to block on the lock). */
static void notify_locked(struct ms_job *j)
{
    if (M.waiter == j)
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
    if (M.auth_required) {
        uint8_t want[MS_DIGEST_LEN];
        ms_auth_proof(&M.secret, c->nonce, M.fingerprint, want);
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
    c->local = is_local_pid(h.pid);
    ms_inflight_init(&c->load, h.threads);
    ms_welcome w = {.heartbeat_ms = (uint32_t)M.hb_timeout_ms,
                    .max_message = M.opt.max_message,
                    .slave_id = c->id};
    ms_welcome_append(&c->out, &w);
    c->phase = C_READY;
    c->was_ready = 1;
    M.ready_slaves++;
    M.st.joined++;
    ms_logv("slave %" PRIu32 " joined from %s (pid %" PRIu32 ", %s, %" PRIu32
            " threads)",
            c->id, c->peer, h.pid, c->local ? "local" : "remote", h.threads);
}

static void handle_result(conn *c, ms_header h, const uint8_t *p)
{
    struct ms_job *j = ms_inflight_find(&c->load, h.jid);
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
    if (ms_sig_validate(e->ret_sig, p, h.length, M.opt.max_message, err,
                        sizeof err) != 0) {
        violation(c, "result of job %" PRIu32 " ('%s') does not match its "
                     "type \"%s\": %s",
                  h.jid, e->name, e->ret_sig, err);
        return;
    }
    (void)ms_inflight_take(&c->load, h.jid);
    j->where = NULL;
    c->done++;
    c->n_finished++; /* a result, even for a job cancelled meanwhile */
    long long took = ms_now_us() - j->t_sent_us;
    ms_inflight_sample(&c->load, took > 0 ? (uint64_t)took : 0);
    if (j->state == MS_J_INFLIGHT) {
        uint8_t *copy = NULL;
        if (h.length) {
            copy = ms_xmalloc(h.length);
            memcpy(copy, p, h.length);
        }
        ms_job_finish(j, copy, h.length);
        M.st.finished++;
        notify_locked(j);
    }
    ms_job_release(j);
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
    if ((kind == MS_FAILURE) || (kind == MS_CANCELLED && h.length == 1)) {
        struct ms_job *j = ms_inflight_take(&c->load, h.jid);
        if (!j) {
            violation(c, "%s for job %" PRIu32 ", which it was not running",
                      ms_ctrl_name(kind), h.jid);
            return;
        }
        j->where = NULL;
        c->done++;
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

/* Parse and act on every complete message received (caller holds M.lock). */
void conn_process(conn *c)
{
    if (c->phase == C_CLOSING) {
        c->in_off = c->in.len; /* not listening any more */
        return;
    }
    while (c->phase == C_HANDSHAKE || c->phase == C_READY) {
        uint64_t avail = c->in.len - c->in_off;
        if (avail < MS_HDR_LEN)
            return;
        ms_header h = ms_header_decode(c->in.data + c->in_off);
        uint32_t limit =
            c->phase == C_READY ? M.opt.max_message : MS_HANDSHAKE_MAX;
        if (h.length > limit) {
            violation(c, "message of %" PRIu32 " bytes is over the limit of %"
                         PRIu32 " bytes",
                      h.length, limit);
            return;
        }
        if (avail - MS_HDR_LEN < h.length)
            return;
        const uint8_t *p = c->in.data + c->in_off + MS_HDR_LEN;
        c->in_off += MS_HDR_LEN + (uint64_t)h.length;
        if (c->phase == C_HANDSHAKE) {
            if (h.ordinal != 0 || h.length == 0 || p[0] != MS_HELLO) {
                violation(c, "expected a HELLO message to start the handshake");
                return;
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
}

/* Forget a closed connection: its jobs go back to the queue, or fail after
 * --max-attempts runs (caller holds M.lock). Frees c. */
void conn_destroy_locked(conn *c)
{
    uint32_t n = c->load.n, again = 0, failed = 0;
    /* Back to the front of the queue, in their original order. */
    for (uint32_t i = n; i-- > 0;) {
        struct ms_job *j = c->load.jobs[i];
        j->where = NULL;
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
            M.st.rerun++;
            c->n_retried++;
            again++;
            ms_jobq_push_front(&M.pending, j);
        }
    }
    if (c->was_ready) {
        M.ready_slaves--;
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
    c->load.n = 0;
    M.st.connections++;
    M.st.bytes_in += c->bytes_in;
    M.st.bytes_out += c->bytes_out;
    if (M.opt.stats && c->was_ready) {
        char line[MS_ADDR_LEN + 400];
        int len = snprintf(
            line, sizeof line,
            "%s: stats: slave %" PRIu32 " at %s (pid %" PRIu32 ", %s, %" PRIu32
            " thread%s): ran %" PRIu64 " job%s (%" PRIu64 " finished, %" PRIu64
            " failed, %" PRIu64 " cancelled), %" PRIu64 " retried elsewhere "
            "after it was lost; sent %" PRIu64 " byte%s, received %" PRIu64
            " byte%s\n",
            ms_log_name(), c->id, c->peer, c->pid,
            c->local ? "local" : "remote", c->threads, ms_plural(c->threads),
            c->done, ms_plural(c->done), c->n_finished, c->n_failed,
            c->n_cancelled, c->n_retried, c->bytes_out, ms_plural(c->bytes_out),
            c->bytes_in, ms_plural(c->bytes_in));
        if (len > 0)
            ms_buf_append(&M.slave_report, line,
                          (uint64_t)len < sizeof line ? (uint64_t)len
                                                      : sizeof line - 1);
    }
    ms_inflight_free(&c->load);
    if (M.ep_fd >= 0)
        (void)epoll_ctl(M.ep_fd, EPOLL_CTL_DEL, c->fd, NULL);
    if (close(c->fd) != 0)
        ms_logv("close: %s", strerror(errno));
    ms_buf_free(&c->in);
    ms_buf_free(&c->out);
    conn_drop_segs(c);
    free(c->segs);
    free(c);
}

/* Send pending jobs to slaves with room (caller holds M.lock). */
void dispatch_locked(void)
{
    if (!M.pending.head || M.shutting_down)
        return;
    for (size_t i = 0; i < M.nconns; i++)
        M.sets[i] = M.conns[i]->phase == C_READY ? &M.conns[i]->load : NULL;
    struct ms_job *j;
    long long now = 0;
    while ((j = M.pending.head)) {
        if (j->state != MS_J_PENDING) { /* cancelled while waiting */
            ms_job_release(ms_jobq_pop(&M.pending));
            continue;
        }
        long k = ms_sched_pick(M.sets, M.nconns, &M.sched_cursor);
        if (k < 0)
            return;
        conn *c = M.conns[k];
        (void)ms_jobq_pop(&M.pending);
        j->state = MS_J_INFLIGHT;
        j->attempts++;
        j->where = c;
        if (!now)
            now = ms_now_us();
        j->t_sent_us = now;
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
