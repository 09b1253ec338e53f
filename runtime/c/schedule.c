/* schedule.c — in-flight sets and the choice of a slave. */
#include "schedule.h"

#include <stdlib.h>

#include "jobs.h"
#include "log.h"

/* The limit: its threads, plus what they run in MS_QUEUE_US at the pace
 * measured (none until measured), but no more than the slow-start window
 * or its capacity. */
static void set_limit(ms_inflight *s)
{
    uint64_t allow = s->threads;
    if (s->gap_ns) {
        uint64_t gap = s->gap_ns / 16 ? s->gap_ns / 16 : 1;
        allow += (uint64_t)MS_QUEUE_US * 1000 / gap;
    }
    if (allow > s->capacity)
        allow = s->capacity;
    s->limit = s->window < allow ? s->window : (uint32_t)allow;
}

void ms_inflight_init(ms_inflight *s, uint32_t threads, long long now_ms)
{
    *s = (ms_inflight){.threads = threads,
                       .capacity = threads * MS_PREFETCH_MAX,
                       .t_joined_ms = now_ms};
    s->window = MS_SLOW_START < s->capacity ? MS_SLOW_START : s->capacity;
    set_limit(s);
}

void ms_inflight_answered(ms_inflight *s, long long now_us, int busy)
{
    s->answers++;
    if (s->window < s->capacity)
        s->window++;
    /* Answers that come together (one read) count as one gap spread over
     * them: the mean of the gaps is what the EWMA (weight 1/16) follows. */
    if (busy && s->t_answer_us) {
        uint64_t gap = now_us > s->t_answer_us
                           ? (uint64_t)(now_us - s->t_answer_us) * 1000 : 0;
        s->gap_ns = s->gap_ns ? s->gap_ns - s->gap_ns / 16 + gap : gap * 16;
        if (s->gap_ns == 0)
            s->gap_ns = 1; /* measured: faster than the clock */
    }
    s->t_answer_us = now_us;
    set_limit(s);
}

void ms_inflight_free(ms_inflight *s)
{
    free(s->jobs);
    s->jobs = NULL;
    s->capacity = s->n = s->span = s->alloc = s->head = 0;
}

static struct ms_job **slot(const ms_inflight *s, uint32_t k)
{
    return &s->jobs[(s->head + k) % s->alloc];
}

struct ms_job *ms_inflight_slot(const ms_inflight *s, uint32_t k)
{
    return *slot(s, k);
}

/* Room for one more at the ring's end: close the holes, or grow. */
static void make_room(ms_inflight *s)
{
    if (s->span < s->alloc)
        return;
    uint32_t alloc = s->alloc;
    if (s->n * 2 >= alloc || alloc == 0) {
        alloc = alloc ? alloc * 2 : 16;
        if (alloc > s->capacity)
            alloc = s->capacity;
    }
    struct ms_job **jobs = ms_xcalloc(alloc, sizeof *jobs);
    uint32_t m = 0;
    for (uint32_t k = 0; k < s->span; k++)
        if (*slot(s, k))
            jobs[m++] = *slot(s, k);
    free(s->jobs);
    s->jobs = jobs;
    s->alloc = alloc;
    s->head = 0;
    s->span = m;
}

void ms_inflight_add(ms_inflight *s, struct ms_job *j)
{
    if (s->n >= s->capacity)
        ms_fatal("internal error: job %u sent to a full slave", j->jid);
    make_room(s);
    *slot(s, s->span++) = j;
    s->n++;
}

uint32_t ms_inflight_index(const ms_inflight *s, uint32_t jid)
{
    for (uint32_t k = 0; k < s->span; k++) {
        struct ms_job *j = *slot(s, k);
        if (j && j->jid == jid)
            return k;
    }
    return UINT32_MAX;
}

struct ms_job *ms_inflight_find(const ms_inflight *s, uint32_t jid)
{
    uint32_t k = ms_inflight_index(s, jid);
    return k == UINT32_MAX ? NULL : *slot(s, k);
}

struct ms_job *ms_inflight_take_at(ms_inflight *s, uint32_t k)
{
    struct ms_job *j = *slot(s, k);
    *slot(s, k) = NULL;
    s->n--;
    /* Drop the holes at both ends: the order of the others is kept
     * (requeueing after a lost slave keeps the jobs' original order). */
    while (s->span && !*slot(s, 0)) {
        s->head = (s->head + 1) % s->alloc;
        s->span--;
    }
    while (s->span && !*slot(s, s->span - 1))
        s->span--;
    return j;
}

struct ms_job *ms_inflight_take(ms_inflight *s, uint32_t jid)
{
    uint32_t k = ms_inflight_index(s, jid);
    return k == UINT32_MAX ? NULL : ms_inflight_take_at(s, k);
}

/* May s take a job lost at lost_ms (0: any job)? */
static int proven_before(const ms_inflight *s, long long lost_ms)
{
    return !lost_ms || (s->answers > 0 && s->t_joined_ms < lost_ms);
}

long ms_sched_pick(ms_inflight *const *sets, size_t n, size_t *cursor,
                   long long lost_ms)
{
    if (lost_ms) {
        int any = 0;
        for (size_t i = 0; i < n && !any; i++)
            any = sets[i] && proven_before(sets[i], lost_ms);
        if (!any)
            lost_ms = 0; /* no slave it prefers: any will do */
    }
    long best = -1;
    for (size_t k = 0; k < n; k++) {
        size_t i = (*cursor + k) % n;
        const ms_inflight *s = sets[i];
        if (!s || s->n >= s->limit || !proven_before(s, lost_ms))
            continue;
        if (best < 0) {
            best = (long)i;
            continue;
        }
        const ms_inflight *b = sets[best];
        /* s->n / s->limit < b->n / b->limit, without division. */
        if ((uint64_t)s->n * b->limit < (uint64_t)b->n * s->limit)
            best = (long)i;
    }
    if (best >= 0)
        *cursor = ((size_t)best + 1) % n;
    return best;
}
