/* Unit tests of runtime/c/schedule.c: the ring of jobs in flight on a
 * slave (order kept across holes, growth, compaction, capacity) and the
 * in-flight limit that follows the slave's pace. */
#include <stdio.h>
#include <stdlib.h>

#include "jobs.h"
#include "schedule.h"

static int failures;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
            failures++;                                                    \
        }                                                                  \
    } while (0)

static struct ms_job *job(uint32_t jid)
{
    ms_buf none = {0};
    return ms_job_new(jid, 1, &none, NULL, 0);
}

/* The jids in flight, in sending order, into out; returns how many. */
static uint32_t in_order(const ms_inflight *s, uint32_t *out)
{
    uint32_t m = 0;
    for (uint32_t k = 0; k < s->span; k++) {
        struct ms_job *j = ms_inflight_slot(s, k);
        if (j)
            out[m++] = j->jid;
    }
    return m;
}

static void test_ring_keeps_order(void)
{
    ms_inflight s;
    ms_inflight_init(&s, 4, 0); /* capacity 4 * MS_PREFETCH_MAX */
    CHECK(s.capacity == 4 * MS_PREFETCH_MAX);
    enum { N = 200 };
    struct ms_job *js[N + 1];
    for (uint32_t i = 1; i <= N; i++) {
        js[i] = job(i);
        ms_inflight_add(&s, js[i]);
    }
    CHECK(s.n == N);
    /* Answers out of order: every third, then the first, then the last. */
    for (uint32_t i = 3; i <= N; i += 3)
        CHECK(ms_inflight_take(&s, i) == js[i]);
    CHECK(ms_inflight_take(&s, 1) == js[1]);
    CHECK(ms_inflight_take(&s, N) == js[N]);
    CHECK(ms_inflight_take(&s, 3) == NULL); /* already taken */
    CHECK(ms_inflight_find(&s, 2) == js[2]);
    CHECK(ms_inflight_find(&s, 9999) == NULL);
    uint32_t got[N], m = in_order(&s, got), want = 0, ok = 1;
    for (uint32_t i = 1; i <= N; i++) {
        if (i % 3 == 0 || i == 1 || i == N)
            continue;
        ok &= want < m && got[want] == i;
        want++;
    }
    CHECK(ok && m == want && s.n == m);
    /* The ring wraps and compacts: add and take many times over. */
    uint32_t next = N + 1;
    for (int round = 0; round < 5000; round++) {
        struct ms_job *j = job(next++);
        ms_inflight_add(&s, j);
        (void)in_order(&s, got);
        uint32_t first = got[0]; /* the oldest in flight */
        struct ms_job *t = ms_inflight_take(&s, first);
        CHECK(t && t->jid == first);
        ms_job_release(t);
    }
    CHECK(s.n == m);
    CHECK(s.alloc <= s.capacity);
    /* Oldest first after all that. */
    m = in_order(&s, got);
    for (uint32_t k = 1; k < m; k++)
        CHECK(got[k - 1] < got[k]);
    for (uint32_t k = 0; k < m; k++)
        ms_job_release(ms_inflight_take(&s, got[k]));
    CHECK(s.n == 0 && s.span == 0);
    for (uint32_t i = 1; i <= N; i++)
        if (i % 3 == 0 || i == 1 || i == N)
            ms_job_release(js[i]);
    ms_inflight_free(&s);
}

static void test_limit_follows_pace(void)
{
    ms_inflight s;
    ms_inflight_init(&s, 2, 0);
    CHECK(s.limit == MS_SLOW_START); /* slow start, whatever it claims */
    long long t = 1000000;
    /* Unmeasured: the thread count at most, once the window allows. */
    for (int i = 0; i < 10; i++)
        ms_inflight_answered(&s, t, 0);
    CHECK(s.limit == 2);
    /* Tiny jobs (an answer every microsecond while busy): prefetch up to
     * the capacity. */
    for (int i = 0; i < 400; i++)
        ms_inflight_answered(&s, t += 1, 1);
    CHECK(s.limit == s.capacity);
    /* Jobs of 10 ms on 2 threads (an answer every 5 ms): no queue beyond
     * the threads, so a long job never waits behind another here. */
    for (int i = 0; i < 400; i++)
        ms_inflight_answered(&s, t += 5000, 1);
    CHECK(s.limit == 2);
    /* 100 us jobs (every 50 us): about MS_QUEUE_US of work queued. */
    for (int i = 0; i < 400; i++)
        ms_inflight_answered(&s, t += 50, 1);
    CHECK(s.limit >= 2 + MS_QUEUE_US / 50 - 2 && s.limit <= 2 + MS_QUEUE_US / 50 + 2);
    ms_inflight_free(&s);
}

int main(void)
{
    test_ring_keeps_order();
    test_limit_follows_pace();
    if (failures) {
        fprintf(stderr, "%d schedule checks failed\n", failures);
        return 1;
    }
    printf("schedule tests passed\n");
    return 0;
}
