/* jobs.h — the master's jobs: their states, results, reference counts,
 * and the queue of jobs waiting for a slave. */
#ifndef MS_JOBS_H
#define MS_JOBS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ms_abi.h"

struct ms_args_pieces;

/* Where a job is in its life. PENDING and INFLIGHT both show as running. */
enum ms_jstate {
    MS_J_PENDING,   /* in the pending queue, waiting for a slave */
    MS_J_INFLIGHT,  /* sent to a slave, no answer yet */
    MS_J_FINISHED,  /* result holds the result */
    MS_J_FAILED,    /* error holds the reason */
    MS_J_CANCELLED, /* cancelled before it finished */
};

/* A job waiting for a slave costs one allocation of sizeof(struct ms_job)
 * plus its argument bytes when they are few (MS_ARGS_INLINE): a million
 * waiting tiny jobs are about 80 MB, not 200 (issue 13). Fields are packed
 * by size for that reason. */
#define MS_ARGS_INLINE 64

/* Where a job's arguments are: a pointer in inline_args to an owned
 * buffer, the bytes themselves in inline_args, or a pointer there to
 * ms_args_pieces (share.h: literal bytes and shared blobs). */
enum ms_args_kind { MS_ARGS_OWNED, MS_ARGS_INLINE_BYTES, MS_ARGS_SHARED };

struct ms_job {
    /* References: one per job<T> handle held by compiled code, plus one
     * while the job is in the pending queue, a slave's in-flight set or the
     * cancel list. Atomic, so handles are copied and dropped without the
     * master lock; the last release frees the job. */
    atomic_uint refs;

    /* Set at creation, never changed. */
    uint32_t jid, ordinal;
    uint32_t args_len;

    /* Guarded by the master lock (M.lock, master.h): */
    uint32_t attempts;    /* times sent to a slave */
    uint8_t state;        /* enum ms_jstate */
    uint8_t args_kind;    /* enum ms_args_kind: where the arguments are */
    uint8_t result_inline; /* the result is in inline_args (see below) */
    uint8_t pins;         /* connections sending args from this buffer */
    uint32_t result_len;  /* valid once FINISHED (a message's length) */
    uint32_t lost_at;     /* ms_job_lost_ms's encoding; 0: never lost */
    long long t_sent_us;  /* when it was last sent */
    void *where;          /* the connection it is in flight on, or NULL */
    struct ms_job *next;  /* link in the pending queue */
    union {
        uint8_t *result;  /* owned; valid once FINISHED */
        char *error;      /* owned; the reason once FAILED */
    } end;
    /* The arguments: ms_job_args(j). Inline when args_inline (then they
     * live as long as the job), else a pointer stored here, owned, freed
     * when the job ends and no connection is sending them (pins == 0).
     * Inline arguments are never pinned (they are copied into the
     * message), so once the job has ended their room may hold a result
     * that fits (result_inline): a tiny job's answer costs no
     * allocation. */
    uint8_t inline_args[]; /* at least a pointer's size allocated */
};

/* The argument bytes (MS_ARGS_OWNED and MS_ARGS_INLINE_BYTES), or the
 * ms_args_pieces (MS_ARGS_SHARED), as stored. */
static inline const uint8_t *ms_job_args(const struct ms_job *j)
{
    if (j->args_kind == MS_ARGS_INLINE_BYTES)
        return j->inline_args;
    const uint8_t *p;
    __builtin_memcpy(&p, j->inline_args, sizeof p);
    return p;
}

/* When a slave was last lost with the job (ms_now_ms's clock), 0 if never;
 * stored in 32 bits as milliseconds since the first job (caller holds the
 * master lock). */
long long ms_job_lost_ms(const struct ms_job *j);
void ms_job_set_lost(struct ms_job *j, long long now_ms);

/* A FIFO of jobs; it holds one reference to each. */
typedef struct ms_jobq {
    struct ms_job *head, *tail;
    uint64_t n;
} ms_jobq;

/* A new PENDING job with refs = 1 (the caller's). The bytes of `args`
 * (ms_args_new's buffer) are copied into the job when few, else taken
 * over; either way `args` is left empty for the next job. `shared`
 * (taken over; NULL when none) holds the blobs its arguments use, of
 * `shared_bytes` in all, with `args` as their literal bytes. */
struct ms_job *ms_job_new(uint32_t jid, uint32_t ordinal, ms_buf *args,
                          struct ms_args_pieces *shared, uint64_t shared_bytes);
void ms_job_retain(struct ms_job *j);
void ms_job_release(struct ms_job *j); /* frees at zero */

/* End a job (caller holds the master lock) with a copy of the `len`
 * bytes at `result`; `error` is copied. The arguments are freed. */
void ms_job_finish(struct ms_job *j, const uint8_t *result, uint32_t len);
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
