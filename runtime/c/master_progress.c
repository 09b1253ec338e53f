/* master_progress.c — --progress: while the master's stderr is a terminal,
 * one status line on it, redrawn a few times a second by the I/O thread:
 * jobs finished, running (in flight on slaves), waiting (for a slave),
 * failed and cancelled; slaves connected and their threads; time elapsed.
 * It is erased when the run ends, and for every other line the master
 * writes to stderr (log.c's ms_err_write erases it, writes the line and
 * draws it again), so lines never mix with it. main() turns
 * M.opt.progress off when stderr is not a terminal: then nothing extra is
 * written at all.
 *
 * Locks: progress_tick copies the counters under M.lock and writes the
 * line without it (log.c's err_lock keeps the writes whole). */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"
#include "master.h"

#define PROGRESS_EVERY_MS 200

static long long progress_due; /* the I/O thread's */

/* The terminal's width, or 80 when it does not say. */
static size_t columns(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

long long progress_tick(long long now, long long next)
{
    if (!M.opt.progress)
        return next;
    if (now < progress_due)
        return progress_due < next ? progress_due : next;
    progress_due = now + PROGRESS_EVERY_MS;
    pthread_mutex_lock(&M.lock);
    stats s = M.st;
    uint64_t waiting = M.pending.n, running = 0, threads = 0;
    uint32_t slaves = 0;
    for (size_t i = 0; i < M.nconns; i++) {
        const conn *c = M.conns[i];
        running += c->load.n;
        if (c->phase == C_READY) {
            slaves++;
            threads += c->threads;
        }
    }
    pthread_mutex_unlock(&M.lock);
    char cancelled[48] = "";
    if (s.cancelled)
        snprintf(cancelled, sizeof cancelled, ", %" PRIu64 " cancelled",
                 s.cancelled);
    long long t = now - M.t_start;
    char line[400];
    snprintf(line, sizeof line,
             "%s: jobs %" PRIu64 " finished, %" PRIu64 " running, %" PRIu64
             " waiting, %" PRIu64 " failed%s; %" PRIu32 " slave%s, %" PRIu64
             " thread%s; %lld:%02lld.%lld",
             ms_log_name(), s.finished, running, waiting, s.failed, cancelled,
             slaves, ms_plural(slaves), threads, ms_plural(threads),
             t / 60000, t / 1000 % 60, t / 100 % 10);
    /* A line wider than the terminal would wrap, and the erasing would
     * leave its first part behind. */
    size_t width = columns();
    if (width < sizeof line)
        line[width - 1] = '\0';
    ms_status_show(line);
    return progress_due < next ? progress_due : next;
}

void progress_end(void)
{
    if (M.opt.progress)
        ms_status_end();
}
