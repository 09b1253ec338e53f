/* jobs.c — job records, their reference counts and the pending queue. */
#include "jobs.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "share.h"

/* Blobs (share.h) live here, beside the jobs that hold them, so that
 * job records need nothing of master_share.c. */
void ms_blob_retain(ms_blob *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void ms_blob_release(ms_blob *b)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(b->payload);
    free(b);
}

void ms_args_pieces_free(ms_args_pieces *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; i < p->n; i++)
        ms_blob_release(p->ref[i].blob);
    free(p->lit);
    free(p);
}

struct ms_job *ms_job_new(uint32_t jid, uint32_t ordinal, ms_buf *args,
                          ms_args_pieces *shared, uint64_t shared_bytes)
{
    uint64_t total = args->len + shared_bytes;
    int inl = !shared && args->len <= MS_ARGS_INLINE;
    size_t tail = inl && args->len > sizeof(uint8_t *) ? (size_t)args->len
                                                       : sizeof(uint8_t *);
    struct ms_job *j = ms_xmalloc(offsetof(struct ms_job, inline_args) + tail);
    memset(j, 0, offsetof(struct ms_job, inline_args));
    atomic_init(&j->refs, 1);
    j->jid = jid;
    j->ordinal = ordinal;
    j->state = MS_J_PENDING;
    /* A total over the largest message fails the job (ms_start_job). */
    j->args_len = total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
    j->args_kind = shared ? MS_ARGS_SHARED
                          : inl ? MS_ARGS_INLINE_BYTES : MS_ARGS_OWNED;
    if (shared) {
        memcpy(j->inline_args, &shared, sizeof shared);
    } else if (inl) {
        if (args->len)
            memcpy(j->inline_args, args->data, (size_t)args->len);
        args->len = 0; /* the buffer stays for the next job */
    } else {
        uint8_t *own = args->data;
        /* A buffer grown by doubling may be half empty: give it back. */
        if (args->cap - args->len > args->len / 8) {
            uint8_t *fit = realloc(own, (size_t)args->len);
            if (fit)
                own = fit;
        }
        memcpy(j->inline_args, &own, sizeof own);
        args->data = NULL;
        args->len = args->cap = 0;
    }
    return j;
}

void ms_job_retain(struct ms_job *j)
{
    atomic_fetch_add_explicit(&j->refs, 1, memory_order_relaxed);
}

/* Bytes of inline_args that may hold a result once the job has ended. */
static uint32_t inline_room(const struct ms_job *j)
{
    if (j->args_kind != MS_ARGS_INLINE_BYTES)
        return 0;
    return j->args_len > sizeof(uint8_t *) ? j->args_len
                                           : (uint32_t)sizeof(uint8_t *);
}

static void free_end(struct ms_job *j)
{
    if (j->state == MS_J_FINISHED && !j->result_inline)
        free(j->end.result);
    else if (j->state == MS_J_FAILED)
        free(j->end.error);
    j->end.result = NULL;
}

static void free_args(struct ms_job *j)
{
    if (j->args_kind == MS_ARGS_SHARED) {
        ms_args_pieces_free((ms_args_pieces *)ms_job_args(j));
        uint8_t *none = NULL;
        memcpy(j->inline_args, &none, sizeof none);
    } else if (j->args_kind == MS_ARGS_OWNED) {
        free((void *)ms_job_args(j));
        uint8_t *none = NULL;
        memcpy(j->inline_args, &none, sizeof none);
    }
}

void ms_job_release(struct ms_job *j)
{
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1)
        return;
    free_args(j);
    free_end(j);
    free(j);
}

static void drop_args(struct ms_job *j)
{
    if (j->pins || j->args_kind == MS_ARGS_INLINE_BYTES)
        return; /* the last unpin frees them; inline ones go with the job */
    free_args(j);
    /* args_len stays: what was sent (--stats, --trace). */
}

void ms_job_pin(struct ms_job *j)
{
    if (j->pins == UINT8_MAX)
        ms_fatal("internal error: job %u pinned %u times", j->jid, j->pins);
    j->pins++;
    ms_job_retain(j);
}

void ms_job_unpin(struct ms_job *j)
{
    if (--j->pins == 0 && j->state != MS_J_PENDING &&
        j->state != MS_J_INFLIGHT)
        drop_args(j);
    ms_job_release(j);
}

void ms_job_finish(struct ms_job *j, const uint8_t *result, uint32_t len)
{
    free_end(j);
    drop_args(j);
    j->state = MS_J_FINISHED;
    j->result_len = len;
    if (len <= inline_room(j) && j->pins == 0) {
        if (len)
            memcpy(j->inline_args, result, len);
        j->end.result = j->inline_args;
        j->result_inline = 1;
    } else {
        j->end.result = len ? ms_xmalloc(len) : NULL;
        if (len)
            memcpy(j->end.result, result, len);
    }
}

void ms_job_fail(struct ms_job *j, const char *error)
{
    free_end(j);
    j->state = MS_J_FAILED;
    j->end.error = ms_xstrdup(error);
    drop_args(j);
}

void ms_job_cancel_now(struct ms_job *j)
{
    free_end(j);
    j->state = MS_J_CANCELLED;
    drop_args(j);
}

/* lost_at is 1 + milliseconds since the epoch below (taken at the first
 * loss, under the master lock), saturating: enough for the scheduler's
 * "a slave that was there before" test over a run of 49 days. */
static long long lost_epoch_ms;

void ms_job_set_lost(struct ms_job *j, long long now_ms)
{
    if (!lost_epoch_ms)
        lost_epoch_ms = now_ms - 1;
    long long d = now_ms - lost_epoch_ms;
    j->lost_at = d < 1 ? 1 : d >= UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

long long ms_job_lost_ms(const struct ms_job *j)
{
    return j->lost_at ? lost_epoch_ms + j->lost_at : 0;
}

void ms_jobq_push(ms_jobq *q, struct ms_job *j)
{
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->n++;
}

void ms_jobq_push_front(ms_jobq *q, struct ms_job *j)
{
    j->next = q->head;
    q->head = j;
    if (!q->tail)
        q->tail = j;
    q->n++;
}

struct ms_job *ms_jobq_pop(ms_jobq *q)
{
    struct ms_job *j = q->head;
    if (!j)
        return NULL;
    q->head = j->next;
    if (!q->head)
        q->tail = NULL;
    j->next = NULL;
    q->n--;
    return j;
}

struct ms_job *ms_jobq_take_after(ms_jobq *q, struct ms_job *prev)
{
    if (!prev)
        return ms_jobq_pop(q);
    struct ms_job *j = prev->next;
    if (!j)
        return NULL;
    prev->next = j->next;
    if (q->tail == j)
        q->tail = prev;
    j->next = NULL;
    q->n--;
    return j;
}
