/* master_calls.c — the job calls of ms_abi.h that compiled master code
 * makes (start, get, state, cancel, handles, the cancel flag, a constant 0
 * in the master; wait_any, wait, error, slaves, sleep of SPEC 12.5), and
 * `get`'s fast path: the main thread becomes the
 * reader of the connection its job is in flight on and reads the result
 * itself (master.h).
 *
 * Locks: the main thread, taking M.lock in every call; main_read_locked
 * drops it only to wait in poll() and to read the connection it reads
 * (conn.reader == R_MAIN). */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "control.h"
#include "jobs.h"
#include "log.h"
#include "master.h"
#include "ms_abi.h"
#include "proto.h"
#include "share.h"
#include "values.h"

static int main_may_read_locked(const conn *c);
static void main_read_locked(const struct ms_job *h, conn *c);

/* ---------------------------------------------------------- job calls */

ms_handle ms_start_job(uint32_t ordinal, ms_buf *args)
{
    if (ordinal == 0 || ordinal > ms_job_count)
        ms_fatal("internal error: ms_start_job with ordinal %u of %u", ordinal,
                 ms_job_count);
    uint64_t shared_bytes = ms_share_pending_bytes();
    ms_args_pieces *shared = ms_share_take(args);
    struct ms_job *j = ms_job_new(0, ordinal, args, shared, shared_bytes);
    uint64_t len = j->args_len;
    ms_share_sweep();
    int wake = 0;
    pthread_mutex_lock(&M.lock);
    if (++M.next_jid == 0)
        M.next_jid = 1;
    j->jid = M.next_jid;
    M.st.started++;
    if (len > M.opt.max_message) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "its arguments take %" PRIu64 " bytes, more than the largest "
                 "message of %" PRIu32 " bytes (--max-message)",
                 len, M.opt.max_message);
        ms_job_fail(j, msg);
        M.st.failed++;
    } else {
        ms_job_retain(j); /* the queue's reference */
        ms_jobq_push(&M.pending, j);
        dispatch_locked();
        /* Sent now: a job started while the slaves have room is a lone
         * one or the first of a fan-out, whose later jobs wait in the
         * queue until answers make room; those the I/O thread sends in
         * batches. What the kernel does not take now it sends later. */
        wake = flush_locked() && need_wake_locked();
    }
    pthread_mutex_unlock(&M.lock);
    if (wake)
        wake_io();
    return j;
}

void ms_master_before_wait(void)
{
    if (fflush(stdout) != 0 && errno != EPIPE)
        ms_logv("flushing stdout: %s", strerror(errno));
}

void ms_reap_job(ms_handle h, ms_reader *out, int32_t line, int32_t col)
{
    if (!h)
        ms_runtime_error(line, col, MS_UNSET_HANDLE_ERROR);
    pthread_mutex_lock(&M.lock);
    if (h->state == MS_J_PENDING || h->state == MS_J_INFLIGHT) {
        /* It will wait: not holding the lock while stdout is written. */
        pthread_mutex_unlock(&M.lock);
        ms_master_before_wait();
        pthread_mutex_lock(&M.lock);
        /* Jobs started just before (a lone job's round trip) go now
         * rather than when the I/O thread wakes. */
        (void)flush_locked();
    }
    while (h->state == MS_J_PENDING || h->state == MS_J_INFLIGHT) {
        conn *c = h->state == MS_J_INFLIGHT ? h->where : NULL;
        if (c && main_may_read_locked(c)) {
            main_read_locked(h, c);
            continue;
        }
        M.waiter = h;
        pthread_cond_wait(&M.done_cv, &M.lock);
        M.waiter = NULL;
    }
    M.waiter = NULL;
    int state = h->state;
    pthread_mutex_unlock(&M.lock);
    /* An ended job never changes again, so its fields need no lock now. */
    const char *name = ms_job_table[h->ordinal - 1].name;
    char msg[MS_MAX_TEXT + 512];
    switch (state) {
    case MS_J_FINISHED:
        out->data = h->end.result;
        out->len = h->result_len;
        out->off = 0;
        return;
    case MS_J_FAILED:
        snprintf(msg, sizeof msg, "job '%s' failed: %s", name, h->end.error);
        ms_runtime_error(line, col, msg);
    default:
        snprintf(msg, sizeof msg, "job '%s' was cancelled", name);
        ms_runtime_error(line, col, msg);
    }
}

int32_t ms_job_state(ms_handle h, int32_t line, int32_t col)
{
    if (!h)
        ms_runtime_error(line, col, MS_UNSET_HANDLE_ERROR);
    pthread_mutex_lock(&M.lock);
    int s = h->state;
    pthread_mutex_unlock(&M.lock);
    switch (s) {
    case MS_J_FINISHED: return MS_STATE_FINISHED;
    case MS_J_FAILED: return MS_STATE_FAILED;
    case MS_J_CANCELLED: return MS_STATE_CANCELLED;
    default: return MS_STATE_RUNNING;
    }
}

void ms_job_cancel(ms_handle h, int32_t line, int32_t col)
{
    if (!h)
        ms_runtime_error(line, col, MS_UNSET_HANDLE_ERROR);
    int wake = 0;
    pthread_mutex_lock(&M.lock);
    if (h->state == MS_J_PENDING) {
        /* It stays in the queue; the dispatcher drops it. */
        ms_job_cancel_now(h);
        M.st.cancelled++;
    } else if (h->state == MS_J_INFLIGHT) {
        ms_job_cancel_now(h);
        M.st.cancelled++;
        M.st.cancelled_sent++;
        conn *c = h->where;
        if (c && c->phase == C_READY) {
            conn_send_ctrl(c, h->jid, MS_CANCEL);
            wake = flush_locked() && need_wake_locked();
        }
    }
    pthread_mutex_unlock(&M.lock);
    if (wake)
        wake_io();
}

void ms_handle_retain(ms_handle h)
{
    if (h)
        ms_job_retain(h);
}

void ms_handle_release(ms_handle h)
{
    if (h)
        ms_job_release(h);
}

const volatile int32_t *ms_cancel_flag_ptr(void)
{
    static const volatile int32_t never = 0;
    return &never;
}

int32_t ms_cancel_requested(void)
{
    return 0;
}

void ms_cancel_point(void)
{
}

/* ------------------------------------------- controlling jobs (12.5) */

static int is_running(const struct ms_job *j)
{
    return j->state == MS_J_PENDING || j->state == MS_J_INFLIGHT;
}

/* The smallest index of a set handle of js whose job is not running, or
 * -1; *any_set says whether js holds a set handle (caller holds M.lock). */
static int64_t first_ended_locked(const ms_vec *js, int *any_set)
{
    int64_t n = js ? js->len : 0;
    ms_handle const *h = js ? (ms_handle const *)MSV_DATA(js) : NULL;
    for (int64_t i = 0; i < n; i++) {
        if (!h[i])
            continue;
        *any_set = 1;
        if (!is_running(h[i]))
            return i;
    }
    return -1;
}

/* Waits without spinning: the I/O thread reads every connection and,
 * while M.waiting_any is set, signals done_cv after each round in which a
 * job ended (notify_locked); a timeout ends the sleep too. A job already
 * ended costs one scan of js under M.lock, no system call. */
int64_t ms_wait_any(const ms_vec *js, double seconds)
{
    seconds = ms_duration(seconds);
    double deadline = 0;
    int prepared = 0, expired = 0;
    int64_t found;
    pthread_mutex_lock(&M.lock);
    for (;;) {
        int any_set = 0;
        found = first_ended_locked(js, &any_set);
        if (found >= 0 || !any_set || expired || seconds == 0)
            break;
        if (!prepared) {
            /* About to block: flush stdout first, without the lock. */
            pthread_mutex_unlock(&M.lock);
            ms_master_before_wait();
            deadline = ms_deadline_after(seconds);
            prepared = 1;
            pthread_mutex_lock(&M.lock);
            continue;
        }
        M.waiting_any = 1;
        expired = !ms_cond_wait_until(&M.done_cv, &M.lock, CLOCK_REALTIME,
                                      deadline);
        M.waiting_any = 0;
    }
    pthread_mutex_unlock(&M.lock);
    return found;
}

int8_t ms_wait_job(ms_handle h, double seconds, int32_t line, int32_t col)
{
    if (!h)
        ms_runtime_error(line, col, MS_UNSET_HANDLE_ERROR);
    seconds = ms_duration(seconds);
    pthread_mutex_lock(&M.lock);
    if (is_running(h) && seconds > 0) {
        pthread_mutex_unlock(&M.lock);
        ms_master_before_wait();
        double deadline = ms_deadline_after(seconds);
        pthread_mutex_lock(&M.lock);
        int left = 1;
        while (is_running(h) && left) {
            M.waiter = h;
            left = ms_cond_wait_until(&M.done_cv, &M.lock, CLOCK_REALTIME,
                                      deadline);
            M.waiter = NULL;
        }
    }
    int ended = !is_running(h);
    pthread_mutex_unlock(&M.lock);
    return (int8_t)ended;
}

ms_vec *ms_job_error(ms_handle h, int32_t line, int32_t col)
{
    if (!h)
        ms_runtime_error(line, col, MS_UNSET_HANDLE_ERROR);
    pthread_mutex_lock(&M.lock);
    int state = h->state;
    pthread_mutex_unlock(&M.lock);
    /* An ended job never changes again: its error needs no lock now. */
    if (state == MS_J_FAILED)
        return ms_string_from_bytes((const uint8_t *)h->end.error,
                                    (int64_t)strlen(h->end.error));
    if (state == MS_J_CANCELLED)
        return ms_string_from_bytes((const uint8_t *)"cancelled", 9);
    return NULL;
}

int64_t ms_slaves(void)
{
    pthread_mutex_lock(&M.lock);
    int64_t n = M.ready_slaves;
    pthread_mutex_unlock(&M.lock);
    return n;
}

/* The master has no cancel to honour: a plain sleep on the monotonic
 * clock (in steps: sleep(inf) sleeps for good). */
void ms_sleep(double seconds)
{
    seconds = ms_duration(seconds);
    if (seconds == 0)
        return;
    ms_master_before_wait();
    double deadline = ms_deadline_after(seconds);
    for (;;) {
        double left = deadline - ms_clock();
        if (left <= 0)
            return;
        struct timespec ts = ms_wait_step(left);
        int rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
        if (rc != 0 && rc != EINTR)
            ms_fatal("clock_nanosleep: %s", strerror(rc));
    }
}

/* May the main thread read c, to wait for a job in flight on it (caller
 * holds M.lock)? Not while the I/O thread reads it, nor while it waits
 * for the budget for partial input (the I/O thread resumes it), nor once
 * it is closing or the run is ending. */
static int main_may_read_locked(const conn *c)
{
    return c->phase == C_READY && c->reader == R_NONE && !c->rd_failed &&
           !c->in_paused && M.shutdown_code < 0 && !M.shutting_down;
}

/* `get` of h, in flight on c: read c until h ends, c is closing, or the run
 * ends (caller holds M.lock, and holds it again on return). Everything
 * that comes on c is handled as the I/O thread would; the I/O thread
 * leaves c alone meanwhile, and asks through main_wake_fd when the main
 * thread must let go of it (c closed by a timer, the run ending). */
static void main_read_locked(const struct ms_job *h, conn *c)
{
    c->reader = R_MAIN;
    c->release_asked = 0;
    ep_want_conn(c); /* the I/O thread stops waiting for c's input */
    /* No spinning before the sleep: a spinning main thread keeps its CPU
     * from the slave it waits for whenever the scheduler puts the two on
     * the same CPU (measured: 40 us round trips instead of 24). */
    for (;;) {
        pthread_mutex_unlock(&M.lock);
        struct pollfd pfd[2] = {{.fd = c->fd, .events = POLLIN},
                                {.fd = M.main_wake_fd, .events = POLLIN}};
        int r = poll(pfd, 2, -1);
        if (r < 0 && errno != EINTR)
            ms_fatal("poll: %s", strerror(errno));
        if (r > 0 && pfd[1].revents)
            drain_fd(M.main_wake_fd);
        int got = r > 0 && pfd[0].revents ? conn_read(c) : 0;
        pthread_mutex_lock(&M.lock);
        if (got)
            c->t_recv = ms_now_ms();
        conn_process(c);
        if (c->rd_failed)
            conn_close(c, "%s", c->rd_why);
        /* A result may have made room on c: send it pending jobs now. */
        dispatch_locked();
        int wake = flush_locked() && need_wake_locked();
        /* Budget given back here may have resumed connections that the
         * I/O thread must wait for again. */
        if (M.in_resumed) {
            M.in_resumed = 0;
            M.io_idle = 0;
            wake = 1;
        }
        if (wake)
            wake_io();
        /* Paused for the budget, c is the I/O thread's to resume: this
         * thread waits for the job like any other `get`. */
        if (!(h->state == MS_J_PENDING || h->state == MS_J_INFLIGHT) ||
            c->phase != C_READY || c->in_paused || M.shutdown_code >= 0 ||
            M.shutting_down)
            break;
    }
    c->reader = R_NONE;
    if (c->phase == C_READY) {
        ep_want_conn(c);
    } else if (need_wake_locked()) {
        wake_io(); /* to end c: its jobs go back to the queue */
    }
    pthread_cond_broadcast(&M.reader_cv);
}
