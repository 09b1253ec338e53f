/* slave_output.c — what jobs print, forwarded to the master (SPEC 12.6,
 * docs/protocol.md's OUTPUT): the print hook of output.h, the bounded
 * buffer of lines not yet sent, and the thread that sends them.
 *
 * A job's print never waits for the master. Each line becomes a record
 * in `pending` (under olock, so that the lines of jobs on other threads
 * never cut it); the sender thread moves the records into S.out as OUTPUT
 * messages and writes them, at once (a slave killed -9 just after a
 * print has sent the line). Output accepted and not yet written to the
 * socket, in `pending` or in S.out, is at most OUTPUT_BOUND bytes: a line
 * beyond it is dropped and counted, and the master is told how many
 * (MS_STREAM_DROPPED) before the job's next line that fits and at the
 * job's end, which the slave also logs.
 *
 * A job's lines go out before its answer: output_job_end, on the job's
 * worker before it sends the answer, moves everything pending into S.out
 * (under S.slock, which the sender's moves hold too, so no line of the
 * job can still be on its way there).
 *
 * Locks: olock guards `pending` and sender_idle; S.slock (slave.h)
 * guards `spare`. olock may be taken while S.slock is held, never the
 * other way round. `held` is atomic. The thread-local `tl` is the worker
 * thread's own. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "output.h"
#include "proto.h"
#include "ser.h"
#include "slave.h"
#include "wire.h"

#define OUTPUT_BOUND (1u << 20)
/* A record in `pending`: jid u32, stream u8, length u32, then the bytes.
 * Its cost against OUTPUT_BOUND is what its message takes on the wire
 * (header, kind and stream bytes, the line; a seal's tag aside). */
#define REC_HEAD 9
#define REC_COST(n) (MS_HDR_LEN + 2 + (uint64_t)(n))

static pthread_mutex_t olock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ocv = PTHREAD_COND_INITIALIZER;
static ms_buf pending;      /* olock */
static int sender_idle;     /* olock: the sender waits on ocv */
static ms_buf spare;        /* S.slock: an empty buffer to swap in */
/* Both have room for OUTPUT_BOUND bytes, and only grow beyond it for
 * the drop notices of output_job_end. */
static uint64_t held;       /* atomic: output bytes accepted, not written */

/* The job running on this thread. */
static _Thread_local struct {
    uint32_t jid;           /* 0: no job (print writes as it is) */
    const char *name;
    int printed;
    uint32_t dropped;       /* lines dropped since the last notice */
    uint64_t dropped_all;   /* lines dropped in the whole job */
} tl;

static void put_record_locked(uint32_t jid, uint8_t stream, const void *p,
                              uint32_t n)
{
    uint8_t head[REC_HEAD];
    ms_put_u32le(head, jid);
    head[4] = stream;
    ms_put_u32le(head + 5, n);
    ms_buf_append(&pending, head, sizeof head);
    ms_buf_append(&pending, p, n);
    __atomic_add_fetch(&held, REC_COST(n), __ATOMIC_RELAXED);
}

static void put_notice_locked(void)
{
    uint8_t count[4];
    ms_put_u32le(count, tl.dropped);
    put_record_locked(tl.jid, MS_STREAM_DROPPED, count, sizeof count);
    tl.dropped = 0;
}

/* One line of at most MS_MAX_LINE bytes (caller holds olock): queued, or
 * dropped when the bound is reached. `pending` never grows here (it has
 * room for OUTPUT_BOUND bytes from the start): out of memory in a job
 * longjmps out of it (its ms_buf_on_oom handler), olock held. */
static void add_line_locked(uint8_t stream, const char *p, size_t n)
{
    uint64_t cost = REC_COST(n) + (tl.dropped ? REC_COST(4) : 0);
    if (__atomic_load_n(&held, __ATOMIC_RELAXED) + cost > OUTPUT_BOUND ||
        pending.cap - pending.len < 2 * REC_HEAD + 4 + n) {
        tl.dropped++;
        tl.dropped_all++;
        return;
    }
    if (tl.dropped)
        put_notice_locked();
    put_record_locked(tl.jid, stream, p, (uint32_t)n);
}

/* The hook of output.h: `text` split at its newlines into lines, and
 * each line longer than MS_MAX_LINE into pieces of at most that many
 * bytes, cut before a UTF-8 continuation byte where there is one within 3
 * bytes (docs/language.md). One print's lines stay together. */
static int forward(int stream, const char *text, size_t n)
{
    if (!tl.jid)
        return 0;
    tl.printed = 1;
    const char *p = text, *end = text + n;
    pthread_mutex_lock(&olock);
    int wake = pending.len == 0 && sender_idle;
    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        do {
            size_t len = (size_t)(stop - p);
            if (len > MS_MAX_LINE) {
                len = MS_MAX_LINE;
                for (int k = 0; k < 3 && ((uint8_t)p[len] & 0xC0) == 0x80; k++)
                    len--;
                if (((uint8_t)p[len] & 0xC0) == 0x80)
                    len = MS_MAX_LINE; /* not UTF-8: cut anywhere */
            }
            add_line_locked((uint8_t)stream, p, len);
            p += len;
        } while (p < stop);
        if (!nl)
            break;
        p = nl + 1;
    }
    pthread_mutex_unlock(&olock);
    if (wake)
        pthread_cond_signal(&ocv);
    return 1;
}

void output_job_begin(uint32_t jid, const char *name)
{
    tl.jid = jid;
    tl.name = name;
}

void output_job_end(void)
{
    uint32_t jid = tl.jid;
    tl.jid = 0;
    if (!tl.printed)
        return;
    tl.printed = 0;
    if (tl.dropped) {
        tl.jid = jid;
        pthread_mutex_lock(&olock);
        put_notice_locked(); /* beyond the bound: it is small */
        pthread_mutex_unlock(&olock);
        tl.jid = 0;
    }
    if (tl.dropped_all) {
        ms_log("job %" PRIu32 " (%s): %" PRIu64 " line%s of output dropped: "
               "the master did not take them as fast as the job printed "
               "(more than %u KiB waiting)",
               jid, tl.name, tl.dropped_all, ms_plural(tl.dropped_all),
               OUTPUT_BOUND / 1024);
        tl.dropped_all = 0;
    }
    queue_output(0);
}

void output_move_locked(void)
{
    pthread_mutex_lock(&olock);
    ms_buf mine = pending;
    pending = spare;
    pthread_mutex_unlock(&olock);
    spare = (ms_buf){0};
    for (uint64_t at = 0; at < mine.len;) {
        const uint8_t *r = mine.data + at;
        uint32_t n = ms_get_u32le(r + 5);
        output_append_locked(ms_get_u32le(r), r[4], r + REC_HEAD, n);
        at += REC_HEAD + (uint64_t)n;
    }
    mine.len = 0;
    spare = mine; /* room for OUTPUT_BOUND bytes, like every buffer here */
}

void output_written(uint64_t bytes)
{
    __atomic_sub_fetch(&held, bytes, __ATOMIC_RELAXED);
}

static void *sender_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&olock);
        while (pending.len == 0) {
            sender_idle = 1;
            int rc = pthread_cond_wait(&ocv, &olock);
            if (rc != 0)
                ms_fatal("pthread_cond_wait: %s", strerror(rc));
        }
        sender_idle = 0;
        pthread_mutex_unlock(&olock);
        queue_output(1);
    }
    return NULL;
}

void start_output(void)
{
    ms_buf_reserve(&pending, OUTPUT_BOUND);
    ms_buf_reserve(&spare, OUTPUT_BOUND);
    pthread_t th;
    int rc = pthread_create(&th, NULL, sender_main, NULL);
    if (rc != 0)
        ms_fatal("pthread_create (the output sender): %s", strerror(rc));
    rc = pthread_detach(th);
    if (rc != 0)
        ms_fatal("pthread_detach: %s", strerror(rc));
    ms_output_hook = forward;
}
