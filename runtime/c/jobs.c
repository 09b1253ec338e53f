/* jobs.c — job records, their reference counts and the pending queue. */
#include "jobs.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

struct ms_job *ms_job_new(uint32_t jid, uint32_t ordinal, ms_buf *args)
{
    struct ms_job *j = ms_xcalloc(1, sizeof *j);
    atomic_init(&j->refs, 1);
    j->jid = jid;
    j->ordinal = ordinal;
    j->state = MS_J_PENDING;
    j->args = args->data;
    j->args_len = (uint32_t)args->len;
    free(args);
    return j;
}

void ms_job_retain(struct ms_job *j)
{
    atomic_fetch_add_explicit(&j->refs, 1, memory_order_relaxed);
}

void ms_job_release(struct ms_job *j)
{
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(j->args);
    free(j->result);
    free(j->error);
    free(j);
}

static void drop_args(struct ms_job *j)
{
    if (j->pins)
        return; /* the last unpin frees them */
    free(j->args);
    j->args = NULL;
    j->args_len = 0;
}

void ms_job_pin(struct ms_job *j)
{
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

void ms_job_finish(struct ms_job *j, uint8_t *result, uint64_t len)
{
    j->state = MS_J_FINISHED;
    j->result = result;
    j->result_len = len;
    drop_args(j);
}

void ms_job_fail(struct ms_job *j, const char *error)
{
    j->state = MS_J_FAILED;
    free(j->error);
    j->error = ms_xstrdup(error);
    drop_args(j);
}

void ms_job_cancel_now(struct ms_job *j)
{
    j->state = MS_J_CANCELLED;
    drop_args(j);
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
