/* jobs.h — the master's jobs: their states, results, reference counts,
 * and the queue of jobs waiting for a slave. */
#ifndef MS_JOBS_H
#define MS_JOBS_H

#include <stdatomic.h>
#include <stdint.h>

#include "ms_abi.h"

/* Where a job is in its life. PENDING and INFLIGHT both show as running. */
enum ms_jstate {
    MS_J_PENDING,   /* in the pending queue, waiting for a slave */
    MS_J_INFLIGHT,  /* sent to a slave, no answer yet */
    MS_J_FINISHED,  /* result holds the result */
    MS_J_FAILED,    /* error holds the reason */
    MS_J_CANCELLED, /* cancelled before it finished */
};

struct ms_job {
    /* References: one per job<T> handle held by compiled code, plus one
     * while the job is in the pending queue, a slave's in-flight set or the
     * cancel list. Atomic, so handles are copied and dropped without the
     * master lock; the last release frees the job. */
    atomic_uint refs;

    /* Set at creation, never changed. */
    uint32_t jid, ordinal;

    /* Guarded by the master lock (M.lock, master.h): */
    int state;            /* enum ms_jstate */
    int attempts;         /* times sent to a slave */
    long long t_sent_us;  /* when it was last sent */
    long long t_lost_ms;  /* when a slave was last lost with it; 0: never */
    void *where;          /* the connection it is in flight on, or NULL */
    uint8_t *args;        /* owned; freed when the job ends and no
                             connection is sending them (pins == 0) */
    uint32_t args_len;
    uint32_t pins;        /* connections sending args from this buffer */
    uint8_t *result;      /* owned; valid once FINISHED */
    uint64_t result_len;
    char *error;          /* owned; the reason once FAILED */
    struct ms_job *next;  /* link in the pending queue */
    /* --trace only (master_trace.c): the lane of the attempt in flight and
     * the size of its arguments when sent (they may be freed before the
     * answer comes). */
    uint32_t lane, sent_len;
};

/* A FIFO of jobs; it holds one reference to each. */
typedef struct ms_jobq {
    struct ms_job *head, *tail;
    uint64_t n;
} ms_jobq;

/* A new PENDING job with refs = 1 (the caller's). `args` is transferred:
 * its bytes move into the job and the ms_buf itself is freed. */
struct ms_job *ms_job_new(uint32_t jid, uint32_t ordinal, ms_buf *args);
void ms_job_retain(struct ms_job *j);
void ms_job_release(struct ms_job *j); /* frees at zero */

/* End a job (caller holds the master lock). `result` is transferred;
 * `error` is copied. The arguments are freed. */
void ms_job_finish(struct ms_job *j, uint8_t *result, uint64_t len);
void ms_job_fail(struct ms_job *j, const char *error);
void ms_job_cancel_now(struct ms_job *j);

/* A connection sends the job's arguments straight from j->args: pin keeps
 * them (and the job) alive until unpin, even if the job ends meanwhile
 * (caller holds the master lock for both). */
void ms_job_pin(struct ms_job *j);
void ms_job_unpin(struct ms_job *j);

/* The queue takes over the caller's reference on push and hands it back on
 * pop. */
void ms_jobq_push(ms_jobq *q, struct ms_job *j);
void ms_jobq_push_front(ms_jobq *q, struct ms_job *j);
struct ms_job *ms_jobq_pop(ms_jobq *q);
/* Remove the job after `prev` (the head when prev is NULL) and return it. */
struct ms_job *ms_jobq_take_after(ms_jobq *q, struct ms_job *prev);

#endif
