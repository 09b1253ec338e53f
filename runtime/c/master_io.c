/* master_io.c — the master's I/O thread: one epoll set over the listening
 * socket, the signalfd, the wake-up eventfd and every connection; waking
 * it and the main thread; the timers (handshake timeouts, heartbeats,
 * the "waiting for a slave" notice); SIGINT and SIGTERM.
 *
 * Locks: io_main holds M.lock for each round's bookkeeping and drops it to
 * wait in epoll_wait, to start local slaves and to read the connections it
 * has made itself the reader of (conn.reader == R_IO). The *_locked
 * functions and timers run with M.lock held; wake_io and wake_main need
 * no lock. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "jobs.h"
#include "log.h"
#include "master.h"
#include "proto.h"

#define HANDSHAKE_TIMEOUT_MS 2000 /* a real slave answers in milliseconds */
#define CLOSE_GRACE_MS 1000    /* to deliver a REFUSE before closing */
#define WAIT_NOTICE_FIRST_MS 3000
#define WAIT_NOTICE_EVERY_MS 15000

/* --------------------------------------------------------- waking I/O */

void wake_io(void)
{
    uint64_t one = 1;
    while (write(M.wake_fd, &one, sizeof one) < 0) {
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) /* the counter is full: it is awake anyway */
            return;
        ms_fatal("write(eventfd): %s", strerror(errno));
    }
}

/* Ask the main thread to let go of the connection it reads. */
void wake_main(void)
{
    uint64_t one = 1;
    while (write(M.main_wake_fd, &one, sizeof one) < 0) {
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            return;
        ms_fatal("write(eventfd): %s", strerror(errno));
    }
}

/* Caller holds M.lock: a wake-up is needed only when the I/O thread may be
 * sleeping in poll. Returns whether the caller must call wake_io. */
int need_wake_locked(void)
{
    if (!M.io_idle)
        return 0;
    M.io_idle = 0;
    return 1;
}

/* Is there work the I/O thread could do now without waiting for input? */
static int work_ready_locked(void)
{
    if (M.shutdown_code >= 0)
        return 1;
    if (!M.pending.head)
        return 0;
    for (size_t i = 0; i < M.nconns; i++) {
        conn *c = M.conns[i];
        /* A job lost with a slave may wait for another (dispatch_locked). */
        if (c->phase == C_READY && c->load.n < c->load.limit &&
            !M.pending.head->lost_at)
            return 1;
    }
    /* Cancelled jobs at the head are dropped by dispatch_locked. */
    return M.pending.head->state != MS_J_PENDING;
}

/* Timeouts and heartbeats (caller holds M.lock); returns the time of the
 * next such event. */
static long long timers(long long now)
{
    long long next = now + 1000;
    for (size_t i = 0; i < M.nconns; i++) {
        conn *c = M.conns[i];
        switch (c->phase) {
        case C_HANDSHAKE:
            if (now - c->t_open >= HANDSHAKE_TIMEOUT_MS) {
                ms_log("closing connection from %s: no handshake within %d s",
                       c->peer, HANDSHAKE_TIMEOUT_MS / 1000);
                conn_close(c, "handshake timeout");
            } else {
                min_deadline(&next, c->t_open + HANDSHAKE_TIMEOUT_MS);
            }
            break;
        case C_READY:
            /* Not read while it waits for the budget, its silence is
             * ours: its clock starts again when it resumes. */
            if (!c->in_paused) {
                if (now - c->t_recv >= M.hb_timeout_ms) {
                    conn_close(c, "nothing received for %.1f s (heartbeat "
                                  "timeout)",
                               (double)(now - c->t_recv) / 1000.0);
                    break;
                }
                min_deadline(&next, c->t_recv + M.hb_timeout_ms);
            }
            if (now - c->t_send >= M.hb_interval_ms && !conn_pending(c)) {
                conn_send_ctrl(c, 0, MS_HEARTBEAT);
                c->t_send = now; /* counts as sent; the write follows */
            }
            min_deadline(&next, c->t_send + M.hb_interval_ms);
            break;
        case C_CLOSING:
            if (!conn_pending(c) || now - c->t_close >= CLOSE_GRACE_MS)
                conn_close(c, "%s", "refused");
            else
                min_deadline(&next, c->t_close + CLOSE_GRACE_MS);
            break;
        }
    }
    return next;
}

static void waiting_notice_locked(long long now)
{
    if (!M.pending.head || M.ready_slaves > 0) {
        M.t_waiting_since = 0;
        return;
    }
    if (!M.t_waiting_since) {
        M.t_waiting_since = now;
        M.t_last_notice = 0;
        return;
    }
    if (now - M.t_waiting_since >= WAIT_NOTICE_FIRST_MS &&
        (!M.t_last_notice || now - M.t_last_notice >= WAIT_NOTICE_EVERY_MS)) {
        ms_log("waiting for a slave: %" PRIu64 " %s waiting and no slave "
               "is connected (%s%s)",
               M.pending.n, M.pending.n == 1 ? "job is" : "jobs are",
               M.listen_fd >= 0 ? "listening on " : "local slaves only",
               M.listen_fd >= 0 ? M.bound : "");
        M.t_last_notice = now;
    }
}

static void read_signals(void)
{
    struct signalfd_siginfo si;
    for (;;) {
        ssize_t n = read(M.sig_fd, &si, sizeof si);
        if (n != (ssize_t)sizeof si)
            return;
        if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM) {
            pthread_mutex_lock(&M.lock);
            if (M.shutdown_code < 0) {
                M.shutdown_code = 128 + (int)si.ssi_signo;
                M.shutdown_signal = (int)si.ssi_signo;
                M.io_ends_process = 1;
            }
            pthread_mutex_unlock(&M.lock);
        }
    }
}

void ep_add(int fd, uint64_t tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    if (epoll_ctl(M.ep_fd, EPOLL_CTL_ADD, fd, &ev) != 0)
        ms_fatal("epoll_ctl(ADD): %s", strerror(errno));
}

static void ep_want(int fd, uint32_t *have, uint32_t want, epoll_data_t data)
{
    if (*have == want)
        return;
    struct epoll_event ev = {.events = want, .data = data};
    if (epoll_ctl(M.ep_fd, EPOLL_CTL_MOD, fd, &ev) != 0)
        ms_fatal("epoll_ctl(MOD): %s", strerror(errno));
    *have = want;
}

/* What the I/O thread's epoll set waits for on a connection (caller holds
 * M.lock): nothing once it is dead, its input unless the main thread reads
 * it or it waits for the budget (master_budget.c), and room to send while
 * output is queued. */
void ep_want_conn(conn *c)
{
    uint32_t want =
        c->phase == C_DEAD || c->reader == R_MAIN || c->in_paused ? 0 : EPOLLIN;
    if (conn_pending(c))
        want |= EPOLLOUT;
    ep_want(c->fd, &c->ep_events, want, (epoll_data_t){.ptr = c});
}

void drain_fd(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof v) < 0 && errno == EINTR) {
    }
}

/* The I/O thread waits in one epoll set, so a wake-up costs the same
 * however many connections are open (idle ones included); only what it
 * waits for on a connection changes, with a system call only when it
 * does. */
void *io_main(void *arg)
{
    (void)arg;
    enum { MAX_EVENTS = 64 };
    struct epoll_event evs[MAX_EVENTS];
    long long next = ms_now_ms();
    int again = 0;
    for (;;) {
        long long now = ms_now_ms();
        next = restart_children(now, next);
        /* The connections' output may change once the lock is dropped; a
         * sender that leaves bytes unsent wakes this thread. */
        pthread_mutex_lock(&M.lock);
        uint32_t listen_want = EPOLLIN;
        if (M.accept_paused_until > now) {
            listen_want = 0;
            min_deadline(&next, M.accept_paused_until);
        }
        if (M.listen_fd >= 0)
            ep_want(M.listen_fd, &M.listen_events, listen_want,
                    (epoll_data_t){.u64 = TAG_LISTEN});
        for (size_t i = 0; i < M.nconns; i++)
            ep_want_conn(M.conns[i]);
        pthread_mutex_unlock(&M.lock);
        long long wait = again ? 0 : next - now;
        if (wait < 0)
            wait = 0;
        again = 0;
        int r = epoll_wait(M.ep_fd, evs, MAX_EVENTS, (int)wait);
        if (r < 0 && errno != EINTR)
            ms_fatal("epoll_wait: %s", strerror(errno));
        now = ms_now_ms();
        int accepting = 0;
        /* Only this thread frees connections, so the pointers are good. */
        conn *rd[MAX_EVENTS];
        uint32_t rd_ev[MAX_EVENTS];
        int nrd = 0;
        for (int k = 0; k < r; k++) {
            uint64_t tag = evs[k].data.u64;
            if (tag == TAG_WAKE) {
                drain_fd(M.wake_fd);
            } else if (tag == TAG_SIGNAL) {
                read_signals();
                reap_children(now);
                reap_launched();
            } else if (tag == TAG_LISTEN) {
                accepting = 1;
            } else if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                rd_ev[nrd] = evs[k].events;
                rd[nrd++] = evs[k].data.ptr;
            }
        }
        if (r == 0 && M.nchildren)
            reap_children(now); /* in case a SIGCHLD was merged away */
        if (r == 0 && M.nlaunched)
            reap_launched();
        if (nrd) {
            /* Read, without the lock, the connections no one else reads
             * (the main thread may have taken one since epoll_wait). */
            pthread_mutex_lock(&M.lock);
            for (int k = 0; k < nrd; k++) {
                if (rd[k]->in_paused) {
                    /* Not read; a hang-up (reported whatever the set waits
                     * for) would wake this thread again and again. */
                    if (rd_ev[k] & (EPOLLHUP | EPOLLERR))
                        conn_close(rd[k], "the connection failed while its "
                                          "message waited for memory");
                    rd[k] = NULL;
                } else if (rd[k]->reader == R_NONE) {
                    rd[k]->reader = R_IO;
                } else {
                    rd[k] = NULL;
                }
            }
            pthread_mutex_unlock(&M.lock);
            for (int k = 0; k < nrd; k++)
                if (rd[k] && !conn_read(rd[k]))
                    rd[k] = NULL;
        }

        pthread_mutex_lock(&M.lock);
        M.io_idle = 0;
        for (size_t i = 0; i < M.nconns; i++)
            if (M.conns[i]->reader == R_IO)
                M.conns[i]->reader = R_NONE;
        for (int k = 0; k < nrd; k++)
            if (rd[k])
                rd[k]->t_recv = now;
        for (size_t i = 0; i < M.nconns; i++) {
            if (M.conns[i]->reader == R_MAIN)
                continue;
            conn_process(M.conns[i]);
            if (M.conns[i]->rd_failed)
                conn_close(M.conns[i], "%s", M.conns[i]->rd_why);
        }
        /* After the HELLOs that came are handled: accepting may close the
         * oldest connections still in the handshake. */
        if (accepting)
            conn_accept(now);
        next = timers(now);
        size_t kept = 0;
        for (size_t i = 0; i < M.nconns; i++) {
            conn *c = M.conns[i];
            if (c->phase == C_DEAD && c->reader == R_MAIN) {
                /* The main thread lets go of it, then wakes this thread. */
                if (!c->release_asked) {
                    c->release_asked = 1;
                    wake_main();
                }
                M.conns[kept++] = c;
            } else if (c->phase == C_DEAD) {
                conn_destroy_locked(c);
            } else {
                M.conns[kept++] = c;
            }
        }
        M.nconns = kept;
        /* The budget that closed connections gave back goes to those that
         * wait for it (now that M.conns holds live connections only). */
        in_resume_locked();
        M.in_resumed = 0; /* ep_want_conn runs for every one next round */
        if (M.shutdown_code >= 0) {
            pthread_mutex_unlock(&M.lock);
            break;
        }
        dispatch_locked();
        flush_locked();
        waiting_notice_locked(now);
        launch_check_locked(); /* may end the run: work_ready_locked */
        for (size_t i = 0; i < M.nconns; i++)
            again |= M.conns[i]->phase == C_DEAD &&
                     M.conns[i]->reader != R_MAIN;
        if (!again && !work_ready_locked())
            M.io_idle = 1;
        else
            again = 1;
        int notify = M.notify;
        M.notify = 0;
        pthread_mutex_unlock(&M.lock);
        if (notify)
            pthread_cond_signal(&M.done_cv);
        next = progress_tick(now, next);
    }
    pthread_mutex_lock(&M.lock);
    int ends = M.io_ends_process;
    pthread_mutex_unlock(&M.lock);
    if (ends)
        progress_end();
    shutdown_io();
    pthread_mutex_lock(&M.lock);
    int sig = M.shutdown_signal, code = M.shutdown_code;
    if (ends)
        trace_close(); /* the main thread may still start jobs: M.lock */
    pthread_mutex_unlock(&M.lock);
    if (ends) {
        /* The main thread is still in compiled code: end the process here. */
        if (sig)
            ms_log("stopped by signal %d (%s)", sig, strsignal(sig));
        if (M.opt.stats)
            print_stats();
        fflush(stdout);
        secret_file_remove();
        _exit(code);
    }
    return NULL;
}
