/* master_trace.c — --trace FILE: the run's timeline in the Chrome
 * trace-event format (the JSON array form `ray timeline` writes; Perfetto
 * and chrome://tracing open it).
 *
 * What the file holds:
 *   - a process per slave (pid: the slave's id, as in the log and
 *     --stats), named by process_name metadata; its thread 0,
 *     "connection", carries the instants "slave joined" and "slave lost"
 *     (or "slave left" when the run ended);
 *   - a thread per lane of that slave (tid 1, 2, ...; thread_name "lane
 *     N"): a lane is a slot of jobs in flight on the slave at the same
 *     time, allocated greedily (the lowest free lane) when a job is sent,
 *     freed when its answer comes. The slave does not say which of its
 *     threads ran a job (the protocol is unchanged), so a lane stands for
 *     a thread; with jobs prefetched beyond the slave's threads a slave
 *     has more lanes than threads (docs/architecture.md). Spans on one lane
 *     never overlap;
 *   - a complete event ("ph":"X", ts and dur in microseconds from the
 *     master's start) per attempt of a job: from when the master sent it
 *     to when its answer came or its slave was lost, named by the job, with
 *     args jid, attempt, bytes_to_slave (its arguments), bytes_from_slave
 *     (its result or failure message) and outcome: ok, failed, cancelled,
 *     lost (its slave was lost; the job runs again or fails), or abandoned
 *     (still in flight when the run ended).
 *
 * Cost: off, one test of `trace_on` per job sent and answered. On, one
 * fprintf into a 1 MiB stdio buffer per attempt (no system call per job)
 * and a lane slot per job in flight. The file is completed ("]") when the
 * run ends: normally, after a runtime error of the master block, after
 * SIGINT or SIGTERM. After SIGKILL or a fatal internal error it ends
 * without the closing bracket and without what was still in the buffer;
 * the trace-event format allows the missing bracket, and both viewers open
 * such a file.
 *
 * Locks: every function runs with M.lock held (the event order is the
 * order the master saw things in), except trace_open, in main() before
 * any thread starts, and trace_close when no other thread can trace: after
 * the I/O thread ended, before it started, or by the I/O thread with
 * M.lock held when it ends the process itself. */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "log.h"
#include "master.h"
#include "ms_abi.h"

#define TRACE_BUFFER (1u << 20)

int trace_on; /* read-only once the I/O thread runs */

/* Guarded by M.lock (set up by trace_open before threads start): */
static FILE *trace_f;
static const char *trace_path;
static long long trace_t0;     /* ms_now_us() at trace_open */
static int trace_events;       /* some event written: the next needs a comma */

/* One event, given as the text between its braces. */
static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...)
{
    if (!trace_f)
        return;
    fputs(trace_events ? ",\n{" : "{", trace_f);
    trace_events = 1;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(trace_f, fmt, ap);
    va_end(ap);
    fputc('}', trace_f);
}

/* `s` as the inside of a JSON string into `out` (n bytes, n > 6). */
static const char *json_text(const char *s, char *out, size_t n)
{
    size_t k = 0;
    for (; *s && k + 7 < n; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[k++] = '\\';
            out[k++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            k += (size_t)snprintf(out + k, n - k, "\\u%04x", ch);
        } else {
            out[k++] = (char)ch;
        }
    }
    out[k] = '\0';
    return out;
}

static long long rel_us(long long t_us)
{
    return t_us > trace_t0 ? t_us - trace_t0 : 0;
}

void trace_open(const char *path)
{
    trace_f = fopen(path, "we"); /* close-on-exec: not the slaves' */
    if (!trace_f) {
        ms_log("error: --trace %s: %s", path, strerror(errno));
        exit(1);
    }
    if (setvbuf(trace_f, NULL, _IOFBF, TRACE_BUFFER) != 0)
        ms_log("warning: --trace %s: setvbuf failed; writing with the "
               "default buffer", path);
    trace_path = path;
    trace_t0 = ms_now_us();
    /* Complete the file at every exit() too (one before the I/O thread
     * starts, or master_exit's after it ended). */
    if (atexit(trace_close) != 0)
        ms_log("warning: --trace %s: atexit failed; an early exit leaves "
               "the file without its closing bracket", path);
    trace_on = 1;
    fputs("[\n", trace_f);
    char name[300];
    emit("\"name\":\"process_name\",\"ph\":\"M\",\"pid\":0,\"tid\":0,"
         "\"args\":{\"name\":\"master %s\"}",
         json_text(ms_program_source, name, sizeof name));
}

void trace_slave_joined(conn *c)
{
    char peer[2 * MS_ADDR_LEN];
    json_text(c->peer, peer, sizeof peer);
    emit("\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%" PRIu32 ",\"tid\":0,"
         "\"args\":{\"name\":\"slave %" PRIu32 " at %s (pid %" PRIu32 ", %"
         PRIu32 " thread%s)\"}",
         c->id, c->id, peer, c->pid, c->threads, ms_plural(c->threads));
    emit("\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":%" PRIu32
         ",\"tid\":0,\"args\":{\"sort_index\":%" PRIu32 "}",
         c->id, c->id);
    emit("\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%" PRIu32 ",\"tid\":0,"
         "\"args\":{\"name\":\"connection\"}",
         c->id);
    emit("\"name\":\"slave joined\",\"cat\":\"slave\",\"ph\":\"i\",\"s\":\"p\","
         "\"ts\":%lld,\"pid\":%" PRIu32 ",\"tid\":0,\"args\":{\"slave\":%"
         PRIu32 ",\"peer\":\"%s\",\"pid\":%" PRIu32 ",\"threads\":%" PRIu32
         ",\"local\":%s}",
         rel_us(ms_now_us()), c->id, c->id, peer, c->pid, c->threads,
         c->local ? "true" : "false");
}

void trace_slave_left(conn *c, int lost)
{
    char why[2 * sizeof c->why];
    emit("\"name\":\"%s\",\"cat\":\"slave\",\"ph\":\"i\",\"s\":\"p\","
         "\"ts\":%lld,\"pid\":%" PRIu32 ",\"tid\":0,\"args\":{\"slave\":%"
         PRIu32 ",\"why\":\"%s\"}",
         lost ? "slave lost" : "slave left", rel_us(ms_now_us()), c->id,
         c->id, json_text(c->why, why, sizeof why));
}

void trace_sent(conn *c, struct ms_job *j)
{
    uint32_t k = 0;
    while (k < c->nlanes && c->lanes[k])
        k++;
    if (k == c->nlanes) {
        /* A new lane: at most one per job in flight on c at once. */
        c->lanes = ms_xrealloc(c->lanes, (size_t)(k + 1) * sizeof *c->lanes);
        c->nlanes = k + 1;
        emit("\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%" PRIu32
             ",\"tid\":%" PRIu32 ",\"args\":{\"name\":\"lane %" PRIu32 "\"}",
             c->id, k + 1, k + 1);
    }
    c->lanes[k] = j->jid;
}

void trace_answered(conn *c, struct ms_job *j, const char *outcome,
                    uint64_t bytes_from_slave)
{
    /* The lane is found by jid (lanes are few: the jobs in flight on c),
     * so a job record carries nothing for --trace. */
    uint32_t lane = 0;
    while (lane < c->nlanes && c->lanes[lane] != j->jid)
        lane++;
    if (lane < c->nlanes)
        c->lanes[lane] = 0;
    long long end = ms_now_us();
    long long dur = end > j->t_sent_us ? end - j->t_sent_us : 0;
    emit("\"name\":\"%s\",\"cat\":\"job\",\"ph\":\"X\",\"ts\":%lld,"
         "\"dur\":%lld,\"pid\":%" PRIu32 ",\"tid\":%" PRIu32 ","
         "\"args\":{\"jid\":%" PRIu32 ",\"attempt\":%d,\"bytes_to_slave\":%"
         PRIu32 ",\"bytes_from_slave\":%" PRIu64 ",\"outcome\":\"%s\"}",
         ms_job_table[j->ordinal - 1].name, rel_us(j->t_sent_us), dur, c->id,
         lane + 1, j->jid, j->attempts, j->args_len, bytes_from_slave,
         outcome);
}

void trace_close(void)
{
    if (!trace_f)
        return;
    fputs(trace_events ? "\n]\n" : "]\n", trace_f);
    int bad = ferror(trace_f);
    int err = errno;
    if (fclose(trace_f) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    trace_f = NULL;
    if (bad)
        ms_log("error: --trace %s: writing the file failed: %s", trace_path,
               strerror(err));
}
