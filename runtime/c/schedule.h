/* schedule.h — choosing a slave for the next pending job. Each slave has
 * at most `limit` jobs in flight: its thread count, plus as many more as
 * it runs in about MS_QUEUE_US (measured from the gaps between its
 * answers while it is busy), so that the round trip never leaves its
 * threads idle between tiny jobs and many requests and results share a
 * system call, while long jobs are never queued behind each other on one
 * slave when another has room. A new connection starts with MS_SLOW_START
 * jobs whatever it claims, and each answer it returns allows one more
 * (doubling per round trip), so a peer that takes jobs and hangs up loses
 * only the few it was given. The least loaded slave (in flight / limit)
 * with room gets the job, ties go round-robin. A job lost with a slave
 * goes preferably to a slave that was there before the loss and has
 * returned answers. Pending jobs leave their queue in FIFO order, so none
 * starves. */
#ifndef MS_SCHEDULE_H
#define MS_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct ms_job;

#define MS_QUEUE_US 500   /* queued work per slave worth prefetching */
#define MS_SLOW_START 2   /* jobs a new connection may have in flight */

/* The jobs in flight on one slave, in the order they were sent: a ring
 * [head, head + span) of `alloc` slots in which answered jobs leave holes
 * (NULL) until the ring's head passes them; answers come mostly in order,
 * so finding one is quick. Owned by its connection; holds one reference
 * to each job. */
typedef struct ms_inflight {
    uint32_t threads;   /* the slave's thread count */
    uint32_t capacity;  /* the most `limit` can be (MS_PREFETCH_MAX
                           per thread, what the slave accepts) */
    uint32_t limit;     /* jobs it may have in flight now: the smaller of
                           window and what its pace allows */
    uint32_t window;    /* slow start: MS_SLOW_START + answers, at most
                           capacity */
    uint32_t n;         /* jobs in flight */
    uint32_t head, span, alloc;
    uint64_t answers;   /* results, failures and cancels it returned */
    long long t_joined_ms; /* when it got through the handshake */
    long long t_answer_us; /* when it last answered; 0: never */
    uint64_t gap_ns;    /* mean time between its answers while busy
                           (x16, an EWMA); 0: not measured yet */
    struct ms_job **jobs; /* owned ring of `alloc` slots */
} ms_inflight;

void ms_inflight_init(ms_inflight *s, uint32_t threads, long long now_ms);
/* The slave answered a job (a result, a failure, a cancel) at now_us,
 * with `busy` set when it had at least its thread count in flight before:
 * one more job may be in flight, up to what its pace allows. */
void ms_inflight_answered(ms_inflight *s, long long now_us, int busy);
void ms_inflight_free(ms_inflight *s); /* the set must be empty */
/* Add a job (the set takes over the caller's reference); needs room. */
void ms_inflight_add(ms_inflight *s, struct ms_job *j);
/* The job with this jid, or NULL; `take` also removes it (handing the
 * reference back to the caller). */
struct ms_job *ms_inflight_find(const ms_inflight *s, uint32_t jid);
struct ms_job *ms_inflight_take(ms_inflight *s, uint32_t jid);
/* The same by position, for a caller that looks first and takes after
 * (one search per answer): the slot of jid (< span), or UINT32_MAX; the
 * job at slot k, which must hold one, removed. */
uint32_t ms_inflight_index(const ms_inflight *s, uint32_t jid);
struct ms_job *ms_inflight_take_at(ms_inflight *s, uint32_t k);
/* The k-th slot in sending order, k < span: a job, or NULL (answered). */
struct ms_job *ms_inflight_slot(const ms_inflight *s, uint32_t k);

/* Choose among `n` sets (borrowed; NULL entries are skipped) the least
 * loaded (in flight / limit) with room. Ties go to the first at or
 * after *cursor, which then moves past the chosen one. For a job that
 * was lost with a slave at lost_ms (0: never), only the sets that joined
 * before then and have answered count, if there is any such set (even one
 * without room: the job then waits for it). Returns its index, or -1 if
 * none has room. */
long ms_sched_pick(ms_inflight *const *sets, size_t n, size_t *cursor,
                   long long lost_ms);

#endif
