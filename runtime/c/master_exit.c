/* master_exit.c — ending the run: from the main thread (the master block
 * returned, or a runtime error in it) through master_exit, which hands the
 * end to the I/O thread; the I/O thread's shutdown_io (GOODBYE to every
 * slave, waiting for local slaves, killing those that linger, then the
 * same for launched ones, end_launched); --stats.
 *
 * Locks: master_exit and ms_runtime_error run without M.lock; shutdown_io
 * takes it and drops it while it waits in poll(); print_stats takes it to
 * copy the counters. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "ms_abi.h"
#include "proto.h"

#define GOODBYE_FLUSH_MS 1000  /* to deliver GOODBYEs at the end */
#define CHILD_GRACE_MS 2000    /* for local slaves to exit after GOODBYE */
#define WRAPPED_GRACE_MS 60000 /* the same under MS_SLAVE_WRAPPER (valgrind
                                  checks for leaks as the slave exits) */

/* ------------------------------------------------------ ending the run */

void print_stats(void)
{
    pthread_mutex_lock(&M.lock);
    stats s = M.st;
    pthread_mutex_unlock(&M.lock);
    double secs = (double)(ms_now_ms() - M.t_start) / 1000.0;
    ms_log("stats: %" PRIu64 " job%s started, %" PRIu64 " finished, %" PRIu64
           " failed, %" PRIu64 " cancelled, %" PRIu64 " rerun after a lost "
           "slave; %" PRIu64 " cancelled after being sent to a slave; run time "
           "%.3f s",
           s.started, ms_plural(s.started), s.finished, s.failed, s.cancelled,
           s.rerun, s.cancelled_sent, secs);
    ms_log("stats: %" PRIu64 " slave%s joined, %" PRIu64 " lost, %" PRIu64
           " refused, %" PRIu64 " connection%s closed for protocol errors",
           s.joined, ms_plural(s.joined), s.lost, s.refused, s.violations,
           ms_plural(s.violations));
    /* The slaves that left: the sums over the earliest, then a line for
     * each of the most recent. */
    pthread_mutex_lock(&M.lock);
    const slave_tally *o = &M.older;
    if (o->slaves)
        ms_log("stats: ... and %" PRIu64 " more slave%s before these: ran %"
               PRIu64 " job%s (%" PRIu64 " finished, %" PRIu64 " failed, %"
               PRIu64 " cancelled), %" PRIu64 " retried elsewhere after they "
               "were lost; sent %" PRIu64 " byte%s, received %" PRIu64
               " byte%s",
               o->slaves, ms_plural(o->slaves), o->ran, ms_plural(o->ran),
               o->finished, o->failed, o->cancelled, o->retried, o->bytes_out,
               ms_plural(o->bytes_out), o->bytes_in, ms_plural(o->bytes_in));
    uint64_t first = M.slaves_left > STATS_RECENT_SLAVES
                         ? M.slaves_left - STATS_RECENT_SLAVES
                         : 0;
    for (uint64_t k = first; k < M.slaves_left; k++)
        ms_log("%s", M.slave_lines[k % STATS_RECENT_SLAVES].text);
    pthread_mutex_unlock(&M.lock);
    ms_log("stats: total over %" PRIu64 " connection%s: sent %" PRIu64
           " byte%s, received %" PRIu64 " byte%s",
           s.connections, ms_plural(s.connections), s.bytes_out,
           ms_plural(s.bytes_out), s.bytes_in, ms_plural(s.bytes_in));
}

/* End the run from the main thread: tell the I/O thread, which says
 * GOODBYE to the slaves and waits for local ones, then exit. */
_Noreturn void master_exit(int code)
{
    fflush(stdout);
    progress_end();
    if (M.io_started) {
        pthread_mutex_lock(&M.lock);
        if (M.shutdown_code < 0)
            M.shutdown_code = code;
        code = M.shutdown_code;
        pthread_mutex_unlock(&M.lock);
        wake_io();
        pthread_join(M.io, NULL);
    }
    trace_close(); /* the I/O thread has ended: no lock needed */
    if (M.opt.stats)
        print_stats();
    fflush(stdout);
    exit(code);
}

_Noreturn void ms_runtime_error(int32_t line, int32_t col, const char *msg)
{
    fflush(stdout);
    /* One piece, through the writer that keeps it apart from --progress.
     * Line 0: the runtime call knows no position (an allocation deep in
     * the runtime, the encoder): none is made up. */
    char where[32] = "";
    if (line > 0)
        snprintf(where, sizeof where, ":%d:%d", (int)line, (int)col);
    const char *fmt = "%s%s: runtime error: %s\n";
    int n = snprintf(NULL, 0, fmt, ms_program_source, where, msg);
    if (n > 0) {
        char *text = ms_xmalloc((size_t)n + 1);
        snprintf(text, (size_t)n + 1, fmt, ms_program_source, where, msg);
        ms_err_write(text, (size_t)n);
        free(text);
    }
    master_exit(1);
}

/* While the run ends (I/O thread): wait at most 50 ms (and at most
 * `left`) for a signal, SIGCHLD above all, and drop what came; the caller
 * then reaps and looks again. */
void nap_on_signals(long long left)
{
    struct pollfd pfd = {.fd = M.sig_fd, .events = POLLIN};
    if (poll(&pfd, 1, left > 50 ? 50 : left < 0 ? 0 : (int)left) > 0) {
        struct signalfd_siginfo si;
        while (read(M.sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        }
    }
}

/* Say GOODBYE, deliver it for a moment, then wait for local slaves and
 * kill those that linger. */
void shutdown_io(void)
{
    pthread_mutex_lock(&M.lock);
    M.shutting_down = 1;
    /* The main thread may be reading a connection in `get`: it lets go at
     * once (its job will not end now), and the connections are ours. */
    for (;;) {
        int busy = 0;
        for (size_t i = 0; i < M.nconns; i++)
            busy |= M.conns[i]->reader == R_MAIN;
        if (!busy)
            break;
        wake_main();
        pthread_cond_wait(&M.reader_cv, &M.lock);
    }
    pid_t told[M.nconns + 1];
    size_t ntold = 0;
    for (size_t i = 0; i < M.nconns; i++) {
        conn *c = M.conns[i];
        if (c->phase == C_READY) {
            conn_send_ctrl(c, 0, MS_GOODBYE);
            if (c->local)
                told[ntold++] = (pid_t)c->pid;
        }
    }
    long long deadline = ms_now_ms() + GOODBYE_FLUSH_MS;
    for (;;) {
        long long now = ms_now_ms();
        struct pollfd pfd[M.nconns + 1];
        size_t n = 0;
        for (size_t i = 0; i < M.nconns; i++) {
            conn *c = M.conns[i];
            if (c->phase != C_DEAD)
                conn_write(c, now);
            if (c->phase != C_DEAD && conn_pending(c))
                pfd[n++] = (struct pollfd){.fd = c->fd, .events = POLLOUT};
        }
        if (n == 0 || now >= deadline)
            break;
        pthread_mutex_unlock(&M.lock);
        int r = poll(pfd, n, (int)(deadline - now));
        pthread_mutex_lock(&M.lock);
        if (r < 0 && errno != EINTR)
            break;
    }
    for (size_t i = 0; i < M.nconns; i++) {
        conn_close(M.conns[i], "the run ended");
        conn_destroy_locked(M.conns[i]);
    }
    M.nconns = 0;
    pthread_mutex_unlock(&M.lock);

    /* Local slaves that were not told (still starting) end now. */
    for (size_t i = 0; i < M.nchildren; i++) {
        child *ch = &M.children[i];
        int was_told = 0;
        for (size_t k = 0; k < ntold; k++)
            was_told |= ch->pid == told[k];
        if (ch->pid > 0 && !was_told && kill(ch->pid, SIGTERM) != 0)
            ms_logv("kill(%d, SIGTERM): %s", (int)ch->pid, strerror(errno));
    }
    deadline = ms_now_ms() +
               (M.exec_path != M.slave_path ? WRAPPED_GRACE_MS : CHILD_GRACE_MS);
    for (;;) {
        reap_children(ms_now_ms());
        size_t alive = 0;
        for (size_t i = 0; i < M.nchildren; i++)
            alive += M.children[i].pid > 0;
        long long now = ms_now_ms();
        if (!alive)
            break;
        if (now >= deadline) {
            for (size_t i = 0; i < M.nchildren; i++) {
                child *ch = &M.children[i];
                if (ch->pid <= 0)
                    continue;
                ms_log("local slave pid %d did not exit; killing it",
                       (int)ch->pid);
                kill(ch->pid, SIGKILL);
                while (waitpid(ch->pid, NULL, 0) < 0 && errno == EINTR) {
                }
                ch->pid = -1;
            }
            break;
        }
        nap_on_signals(deadline - now);
    }
    end_launched();
}
