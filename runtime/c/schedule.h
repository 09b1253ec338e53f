/* schedule.h — choosing a slave for the next pending job: each slave has at
 * most `limit` jobs in flight: its thread count from the handshake, or, while
 * its jobs are short, up to MS_PREFETCH times that, so that the round trip
 * does not leave its threads idle between tiny jobs (long jobs are never
 * queued behind each other on one slave while another has room). A new
 * connection starts with MS_SLOW_START jobs whatever it claims, and each
 * answer it returns allows one more (doubling per round trip), so a peer
 * that takes jobs and hangs up loses only the few it was given. The least
 * loaded slave (in flight / limit) with room gets the job, ties go
 * round-robin. A job lost with a slave goes preferably to a slave that
 * was there before the loss and has returned answers. Pending jobs leave
 * their queue in FIFO order, so none starves. */
#ifndef MS_SCHEDULE_H
#define MS_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

struct ms_job;

/* The jobs in flight on one slave. Owned by its connection; holds one
 * reference to each job. */
#define MS_PREFETCH 4
#define MS_SHORT_JOB_US 2000 /* jobs shorter than this may be prefetched */
#define MS_SLOW_START 2      /* jobs a new connection may have in flight */

typedef struct ms_inflight {
    uint32_t threads;   /* the slave's thread count */
    uint32_t capacity;  /* MS_PREFETCH * threads: the most `limit` can be */
    uint32_t limit;     /* jobs it may have in flight now: the smaller of
                           window and what its round trips allow */
    uint32_t window;    /* slow start: MS_SLOW_START + answers, at most
                           capacity */
    uint32_t n;
    uint64_t answers;   /* results, failures and cancels it returned */
    long long t_joined_ms; /* when it got through the handshake */
    uint64_t ewma_us;   /* mean round trip of its recent jobs; 0: none yet */
    struct ms_job **jobs; /* owned array of `capacity` slots; n used */
} ms_inflight;

void ms_inflight_init(ms_inflight *s, uint32_t threads, long long now_ms);
/* The slave answered a job (a result, a failure, a cancel): one more
 * job may be in flight, up to its limit. */
void ms_inflight_answered(ms_inflight *s);
/* A job's result came `us` microseconds after it was sent: adjust the
 * limit. */
void ms_inflight_sample(ms_inflight *s, uint64_t us);
void ms_inflight_free(ms_inflight *s); /* the set must be empty */
/* Add a job (the set takes over the caller's reference); needs room. */
void ms_inflight_add(ms_inflight *s, struct ms_job *j);
/* The job with this jid, or NULL; `take` also removes it (handing the
 * reference back to the caller). */
struct ms_job *ms_inflight_find(const ms_inflight *s, uint32_t jid);
struct ms_job *ms_inflight_take(ms_inflight *s, uint32_t jid);

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
