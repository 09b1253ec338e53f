/* sched.h — choosing a slave for the next pending job: each slave has at
 * most `capacity` jobs in flight (its thread count from the handshake);
 * the least loaded one with room gets the job, ties go round-robin.
 * Pending jobs leave their queue in FIFO order, so none starves. */
#ifndef MS_SCHED_H
#define MS_SCHED_H

#include <stddef.h>
#include <stdint.h>

struct ms_job;

/* The jobs in flight on one slave. Owned by its connection; holds one
 * reference to each job. */
typedef struct ms_inflight {
    uint32_t capacity, n;
    struct ms_job **jobs; /* owned array of `capacity` slots; n used */
} ms_inflight;

void ms_inflight_init(ms_inflight *s, uint32_t capacity);
void ms_inflight_free(ms_inflight *s); /* the set must be empty */
/* Add a job (the set takes over the caller's reference); needs room. */
void ms_inflight_add(ms_inflight *s, struct ms_job *j);
/* The job with this jid, or NULL; `take` also removes it (handing the
 * reference back to the caller). */
struct ms_job *ms_inflight_find(const ms_inflight *s, uint32_t jid);
struct ms_job *ms_inflight_take(ms_inflight *s, uint32_t jid);

/* Choose among `n` sets (borrowed; NULL entries are skipped) the least
 * loaded (in flight / capacity) with room. Ties go to the first at or
 * after *cursor, which then moves past the chosen one. Returns its index,
 * or -1 if none has room. */
long ms_sched_pick(ms_inflight *const *sets, size_t n, size_t *cursor);

#endif
