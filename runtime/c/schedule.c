/* schedule.c — in-flight sets and the choice of a slave. */
#include "schedule.h"

#include <stdlib.h>

#include "jobs.h"
#include "log.h"

/* The limit: what the round trips allow (all of capacity while jobs are
 * short, else the thread count; the thread count until one is measured),
 * but no more than the slow-start window. */
static void set_limit(ms_inflight *s)
{
    uint32_t allow = s->ewma_us && s->ewma_us < MS_SHORT_JOB_US ? s->capacity
                                                                : s->threads;
    s->limit = s->window < allow ? s->window : allow;
}

void ms_inflight_init(ms_inflight *s, uint32_t threads, long long now_ms)
{
    s->threads = threads;
    s->capacity = threads * MS_PREFETCH;
    s->window = MS_SLOW_START < s->capacity ? MS_SLOW_START : s->capacity;
    s->n = 0;
    s->ewma_us = 0;
    s->answers = 0;
    s->t_joined_ms = now_ms;
    set_limit(s);
    s->jobs = ms_xcalloc(s->capacity, sizeof *s->jobs);
}

void ms_inflight_answered(ms_inflight *s)
{
    s->answers++;
    if (s->window < s->capacity)
        s->window++;
    set_limit(s);
}

void ms_inflight_sample(ms_inflight *s, uint64_t us)
{
    /* An exponentially weighted mean (weight 1/8) of the round trips. */
    s->ewma_us = s->ewma_us ? s->ewma_us - s->ewma_us / 8 + us / 8 : us;
    if (s->ewma_us == 0)
        s->ewma_us = 1; /* measured */
    set_limit(s);
}

void ms_inflight_free(ms_inflight *s)
{
    free(s->jobs);
    s->jobs = NULL;
    s->capacity = s->n = 0;
}

void ms_inflight_add(ms_inflight *s, struct ms_job *j)
{
    if (s->n >= s->capacity)
        ms_fatal("internal error: job %u sent to a full slave", j->jid);
    s->jobs[s->n++] = j;
}

struct ms_job *ms_inflight_find(const ms_inflight *s, uint32_t jid)
{
    for (uint32_t i = 0; i < s->n; i++)
        if (s->jobs[i]->jid == jid)
            return s->jobs[i];
    return NULL;
}

struct ms_job *ms_inflight_take(ms_inflight *s, uint32_t jid)
{
    for (uint32_t i = 0; i < s->n; i++) {
        if (s->jobs[i]->jid == jid) {
            struct ms_job *j = s->jobs[i];
            /* Keep the order of the others: requeueing after a lost slave
             * then keeps the jobs' original order. */
            for (uint32_t k = i + 1; k < s->n; k++)
                s->jobs[k - 1] = s->jobs[k];
            s->n--;
            return j;
        }
    }
    return NULL;
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
