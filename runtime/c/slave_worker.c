/* slave_worker.c — the slave's queue of jobs and its worker threads:
 * taking a job, running ms_job_table[ordinal - 1].run, sending its result
 * or failure; the job calls of ms_abi.h that job code makes (runtime
 * errors, the cancel flag; the master-only calls end the slave); and the
 * report of a crashing job from the SIGSEGV handler.
 *
 * Locks: the queue and which worker runs which job are guarded by S.qlock;
 * the rest of a worker is its own thread's. An idle worker reads from the
 * master (read_master, under S.rlock) and then runs a job itself. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "ms_abi.h"
#include "proto.h"
#include "ser.h"
#include "slave.h"
#include "stack.h"
#include "values.h"
#include "wire.h"

/* The worker running on this thread, or NULL. */
static _Thread_local worker *tl_worker;

/* -------------------------------------------------- runtime ABI calls */

/* In a job, longjmp back to its worker. Values the job's frames still own
 * are not released on the way; the worker frees them afterwards, since
 * every vector the job made is in its thread's list (values.h, vector
 * tracking). `msg` is copied first: it may be thread-local storage. */
_Noreturn void ms_runtime_error(int32_t line, int32_t col, const char *msg)
{
    worker *w = tl_worker;
    /* Line 0: the runtime call knows no position (an allocation deep in
     * the runtime, the encoder of the result): none is made up. */
    char at[32] = "";
    if (line > 0)
        snprintf(at, sizeof at, ":%d:%d", (int)line, (int)col);
    if (w && w->in_job) {
        snprintf(w->msg, sizeof w->msg, "%s%s: %s", ms_program_source, at,
                 msg);
        w->in_job = 0;
        longjmp(w->jb, 1);
    }
    fflush(stdout);
    fprintf(stderr, "%s%s: runtime error: %s\n", ms_program_source, at, msg);
    slave_exit(1);
}

const volatile int32_t *ms_cancel_flag_ptr(void)
{
    static const volatile int32_t never = 0;
    worker *w = tl_worker;
    return w ? &w->cancel : &never;
}

int32_t ms_cancel_requested(void)
{
    worker *w = tl_worker;
    return w && w->in_job && __atomic_load_n(&w->cancel, __ATOMIC_RELAXED);
}

void ms_cancel_point(void)
{
    worker *w = tl_worker;
    if (w && w->in_job && __atomic_load_n(&w->cancel, __ATOMIC_RELAXED)) {
        w->in_job = 0;
        longjmp(w->jb, 2);
    }
}

/* From the SIGSEGV handler, just before the slave exits: tell the master
 * the running job failed, so that it is not run again only to crash
 * another slave. Only when no other thread is sending (the stream must
 * stay whole), and only with async-signal-safe calls (pthread_mutex_trylock
 * does not block, which is what matters here). */
void report_fault(int overflow)
{
    worker *w = tl_worker;
    if (!w || !w->in_job || pthread_mutex_trylock(&S.slock) != 0)
        return;
    /* Unless someone flushes, S.out holds only whole messages (lines a
     * job printed, queued just before its answer): they are lost with the
     * slave, and this one goes out whole. */
    if (S.flushing || S.broken)
        return;
    static uint8_t msg[MS_HDR_LEN + 1 + 256];
    const char *what = overflow ? ": stack overflow (the slave crashed)"
                                : ": segmentation fault (the slave crashed)";
    size_t n = 0;
    uint8_t *text = msg + MS_HDR_LEN + 1;
    for (const char *p = ms_program_source; *p && n < 128; p++)
        text[n++] = (uint8_t)*p;
    for (const char *p = what; *p; p++)
        text[n++] = (uint8_t)*p;
    ms_header h = {0, w->jid, (uint32_t)(n + 1)};
    ms_header_encode(msg, h);
    msg[MS_HDR_LEN] = MS_FAILURE;
    size_t len = MS_HDR_LEN + 1 + n, off = 0;
    while (off < len) {
        ssize_t r = send(S.fd, msg + off, len - off, MSG_NOSIGNAL);
        if (r <= 0)
            return;
        off += (size_t)r;
    }
}

/* sleep(seconds) in a job: waits on its worker's sleep_cv, which
 * cancel_task signals, so that a cancelled job stops at once. */
void ms_sleep(double seconds)
{
    seconds = ms_duration(seconds);
    worker *w = tl_worker;
    if (seconds == 0 || !w || !w->in_job)
        return;
    double deadline = ms_deadline_after(seconds);
    pthread_mutex_lock(&S.qlock);
    while (!__atomic_load_n(&w->cancel, __ATOMIC_RELAXED) &&
           ms_cond_wait_until(&w->sleep_cv, &S.qlock, CLOCK_MONOTONIC,
                              deadline)) {
    }
    pthread_mutex_unlock(&S.qlock);
    ms_cancel_point();
}

/* Master-only calls. Typecheck keeps `remote` out of job code, and a job
 * handle is not serializable, so job code only ever holds unset handles:
 * get, state and cancel of one are the runtime error the master gives
 * (SPEC 6), which fails the job; copies and releases of one do nothing. A
 * set handle or a job started here would be the compiler's bug. */
static _Noreturn void master_only(const char *what)
{
    ms_fatal("internal error: %s called in a slave", what);
}

/* Job code may hold job<T> variables, but never a set handle (handles
 * are not serializable and a job cannot start jobs): a call on one is the
 * unset-handle error, as in the master. */
static _Noreturn void unset_handle(ms_handle h, int32_t line, int32_t col,
                                   const char *what)
{
    if (!h)
        ms_runtime_error(line, col, MS_UNSET_HANDLE_ERROR);
    master_only(what);
}

int64_t ms_wait_any(const ms_vec *js, double seconds)
{
    (void)seconds;
    int64_t n = js ? js->len : 0;
    ms_handle const *h = js ? (ms_handle const *)MSV_DATA(js) : NULL;
    for (int64_t i = 0; i < n; i++)
        if (h[i])
            master_only("ms_wait_any with a set handle");
    return -1;
}

int8_t ms_wait_job(ms_handle h, double seconds, int32_t line, int32_t col)
{
    (void)seconds;
    unset_handle(h, line, col, "ms_wait_job");
}

ms_vec *ms_job_error(ms_handle h, int32_t line, int32_t col)
{
    unset_handle(h, line, col, "ms_job_error");
}

int64_t ms_slaves(void)
{
    master_only("ms_slaves");
}

ms_handle ms_start_job(uint32_t ordinal, ms_buf *args)
{
    (void)ordinal;
    (void)args;
    master_only("ms_start_job");
}

void ms_reap_job(ms_handle h, ms_reader *out, int32_t line, int32_t col)
{
    (void)out;
    unset_handle(h, line, col, "ms_reap_job");
}

int32_t ms_job_state(ms_handle h, int32_t line, int32_t col)
{
    unset_handle(h, line, col, "ms_job_state");
}

void ms_job_cancel(ms_handle h, int32_t line, int32_t col)
{
    unset_handle(h, line, col, "ms_job_cancel");
}

void ms_handle_retain(ms_handle h)
{
    if (h)
        master_only("ms_handle_retain with a set handle");
}

void ms_handle_release(ms_handle h)
{
    if (h)
        master_only("ms_handle_release with a set handle");
}

/* ------------------------------------------------------------ workers */

/* A buffer of the job's could not grow: the job fails (ms_buf_on_oom). */
static _Noreturn void job_out_of_memory(const char *msg)
{
    ms_runtime_error(0, 0, msg);
}

/* Mean run time of each kind of job on this slave (an EWMA, weight 1/8,
 * in ns, saturating; 0: none ran yet), indexed by ordinal - 1. Written by
 * the worker that ran one, read by any: relaxed atomics, as a hint. */
static _Atomic uint32_t *run_ns;

/* A job under this mean lets the result before it wait for its own. */
#define SHORT_JOB_NS 20000

static void note_run_time(uint32_t ordinal, long long ns)
{
    _Atomic uint32_t *m = &run_ns[ordinal - 1];
    uint64_t old = atomic_load_explicit(m, memory_order_relaxed);
    uint64_t v = ns < 1 ? 1 : ns > UINT32_MAX ? UINT32_MAX : (uint64_t)ns;
    uint64_t mean = old ? old - old / 8 + v / 8 : v;
    atomic_store_explicit(m, mean ? (uint32_t)mean : 1, memory_order_relaxed);
}

/* Is the job at the head of the queue of a kind known to be short here?
 * (caller holds S.qlock: take_task_locked asks it for the job after the
 * one it takes, so that deciding whether to hold a result costs no lock
 * of its own). */
static int head_is_short_locked(void)
{
    uint32_t mean = S.head ? atomic_load_explicit(&run_ns[S.head->ordinal - 1],
                                                  memory_order_relaxed)
                           : 0;
    return mean && mean < SHORT_JOB_NS;
}

/* A task whose arguments name blobs: put them together now (so only the
 * jobs running hold a copy) and check them like any job's. */
static void join_shared_args(task *t)
{
    const ms_job_entry *e = &ms_job_table[t->ordinal - 1];
    uint32_t len;
    uint8_t *args = shared_args_join(t->shared, &len);
    shared_args_free(t->shared);
    t->shared = NULL;
    char err[256];
    if (ms_sig_validate(e->arg_sig, args, len, err, sizeof err) != 0) {
        free(args);
        violation("arguments of job %" PRIu32 " ('%s') do not match its "
                  "parameters \"%s\": %s",
                  t->jid, e->name, e->arg_sig, err);
    }
    t->args = args;
    t->len = len;
}

static void run_task(worker *w, task *t)
{
    const ms_job_entry *e = &ms_job_table[t->ordinal - 1];
    if (t->shared)
        join_shared_args(t);
    long long t0 = ms_now_ns();
    w->args = (ms_reader){t->args, t->len, 0};
    w->result.len = 0;
    w->in_job = 1;
    output_job_begin(t->jid, e->name);
    ms_values_track_begin();
    int how = setjmp(w->jb);
    if (how == 0) {
        ms_buf_on_oom(job_out_of_memory);
        e->run(&w->args, &w->result);
        ms_buf_on_oom(NULL);
        w->in_job = 0;
        long long ran_ns = ms_now_ns() - t0;
        note_run_time(t->ordinal, ran_ns);
        /* The job released everything it made: 0 unless refcounts are off. */
        int64_t left = ms_values_track_end(0);
        if (left)
            ms_logv("internal error: job '%s' left %" PRId64 " vectors",
                    e->name, left);
        /* What the job printed goes out before its answer: once the master
         * has the answer, the slave may be lost at any moment. */
        output_job_end();
        fflush(stdout);
        if (w->result.len > S.max_message) {
            char msg[256];
            snprintf(msg, sizeof msg,
                     "its result takes %" PRIu64 " bytes, more than the "
                     "largest message of %" PRIu32 " bytes (--max-message)",
                     w->result.len, S.max_message);
            send_text(t->jid, MS_FAILURE, msg);
        } else {
            /* Held only after a short job, before another one queued when
             * this one was taken: a result waits microseconds, never for
             * a long job (a worker that finds none sends it). */
            send_result(t->ordinal, t->jid, &w->result,
                        w->next_short && ran_ns < SHORT_JOB_NS);
        }
    } else {
        /* Abandoned by a longjmp (its error text is in w->msg already):
         * free the vectors its frames owned. */
        ms_buf_on_oom(NULL);
        ms_values_track_end(1);
        output_job_end();
        fflush(stdout);
        if (how == 2)
            send_ctrl(t->jid, MS_CANCELLED);
        else
            send_text(t->jid, MS_FAILURE, w->msg);
    }
    if (w->result.cap > (1u << 20))
        ms_buf_free(&w->result);
}

static void free_task(task *t)
{
    if (t->args != t->inline_args)
        free(t->args);
    shared_args_free(t->shared);
    free(t);
}

/* Wake one idle worker (to run a queued job). */
static void kick(void)
{
    uint64_t one = 1;
    while (write(S.kickfd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

/* Take a job if one can run now (caller holds S.qlock). */
static task *take_task_locked(worker *w)
{
    if (!S.head || S.running >= (size_t)S.threads)
        return NULL;
    task *t = S.head;
    S.head = t->next;
    if (!S.head)
        S.tail = NULL;
    S.nqueued--;
    S.running++;
    w->jid = t->jid;
    w->next_short = head_is_short_locked();
    __atomic_store_n(&w->cancel, 0, __ATOMIC_RELAXED);
    return t;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    tl_worker = w;
    ms_stack_init_thread(w->altstack);
    for (;;) {
        pthread_mutex_lock(&S.qlock);
        task *t = take_task_locked(w);
        int more = t && S.head && S.running < (size_t)S.threads;
        pthread_mutex_unlock(&S.qlock);
        if (t) {
            if (more)
                kick();
            run_task(w, t);
            free_task(t);
            pthread_mutex_lock(&S.qlock);
            w->jid = 0;
            S.running--;
            pthread_mutex_unlock(&S.qlock);
            continue;
        }
        /* Idle: send what was held for a next job, then wait for a
         * message or a kick. */
        send_held();
        struct epoll_event ev[2];
        int n = epoll_wait(S.epfd, ev, 2, (int)S.hb_interval_ms);
        if (n < 0 && errno != EINTR)
            ms_fatal("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            if (ev[i].data.fd == S.kickfd) {
                uint64_t v;
                if (read(S.kickfd, &v, sizeof v) < 0 && errno != EAGAIN &&
                    errno != EINTR)
                    ms_fatal("read(eventfd): %s", strerror(errno));
            } else {
                read_master();
            }
        }
        keep_alive();
    }
    return NULL;
}

void start_workers(void)
{
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc == 0)
        rc = pthread_attr_setstacksize(&attr, MS_WORKER_STACK);
    if (rc != 0)
        ms_fatal("pthread_attr_setstacksize: %s", strerror(rc));
    long n = S.threads + 1;
    S.workers = ms_xcalloc((size_t)n, sizeof *S.workers);
    run_ns = ms_xcalloc(ms_job_count ? ms_job_count : 1, sizeof *run_ns);
    pthread_condattr_t monotonic;
    rc = pthread_condattr_init(&monotonic);
    if (rc == 0)
        rc = pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    if (rc != 0)
        ms_fatal("pthread_condattr_setclock: %s", strerror(rc));
    for (long i = 0; i < n; i++) {
        rc = pthread_cond_init(&S.workers[i].sleep_cv, &monotonic);
        if (rc != 0)
            ms_fatal("pthread_cond_init: %s", strerror(rc));
        rc = pthread_create(&S.workers[i].th, &attr, worker_main,
                            &S.workers[i]);
        if (rc != 0)
            ms_fatal("pthread_create (worker %ld of %ld): %s", i + 1, n,
                     strerror(rc));
    }
    pthread_attr_destroy(&attr);
    pthread_condattr_destroy(&monotonic);
}

/* ------------------------------------------------------- the job queue */

static void enqueue(task *t)
{
    t->next = NULL;
    pthread_mutex_lock(&S.qlock);
    /* The master sends at most MS_PREFETCH_MAX times `threads` jobs at a
     * time; a queue longer than that is a broken or hostile master. */
    if (S.nqueued + S.running >= (size_t)S.threads * MS_PREFETCH_MAX + 16) {
        pthread_mutex_unlock(&S.qlock);
        violation("%zu jobs queued on %ld threads", S.nqueued + S.running,
                  S.threads);
    }
    if (S.tail)
        S.tail->next = t;
    else
        S.head = t;
    S.tail = t;
    S.nqueued++;
    pthread_mutex_unlock(&S.qlock);
}

/* h.length bytes at p (borrowed; or owned, when `own` is p, and then taken
 * over: a big message read straight into its own buffer). */
void queue_task(ms_header h, const uint8_t *p, uint8_t *own)
{
    if (h.ordinal > ms_job_count)
        violation("unknown job ordinal %" PRIu32 " (the program has %" PRIu32
                  " jobs)",
                  h.ordinal, ms_job_count);
    const ms_job_entry *e = &ms_job_table[h.ordinal - 1];
    char err[256];
    if (ms_sig_validate(e->arg_sig, p, h.length, err,
                        sizeof err) != 0)
        violation("arguments of job %" PRIu32 " ('%s') do not match its "
                  "parameters \"%s\": %s",
                  h.jid, e->name, e->arg_sig, err);
    task *t = ms_xmalloc(sizeof *t + (own ? 0 : h.length));
    t->jid = h.jid;
    t->ordinal = h.ordinal;
    t->len = h.length;
    t->args = own;
    t->shared = NULL;
    if (!own) {
        t->args = t->inline_args;
        if (h.length)
            memcpy(t->args, p, h.length);
    }
    enqueue(t);
}

void queue_shared_task(uint32_t jid, uint32_t ordinal, struct shared_args *sa)
{
    task *t = ms_xmalloc(sizeof *t);
    *t = (task){.jid = jid, .ordinal = ordinal, .shared = sa};
    enqueue(t);
}

void cancel_task(uint32_t jid)
{
    task *found = NULL;
    pthread_mutex_lock(&S.qlock);
    for (task **pp = &S.head; *pp; pp = &(*pp)->next) {
        if ((*pp)->jid == jid) {
            found = *pp;
            *pp = found->next;
            if (S.tail == found) {
                S.tail = NULL;
                for (task *q = S.head; q; q = q->next)
                    S.tail = q;
            }
            S.nqueued--;
            break;
        }
    }
    if (!found) {
        for (long i = 0; i <= S.threads; i++) {
            if (S.workers[i].jid == jid) {
                __atomic_store_n(&S.workers[i].cancel, 1, __ATOMIC_RELAXED);
                pthread_cond_signal(&S.workers[i].sleep_cv);
            }
        }
    }
    pthread_mutex_unlock(&S.qlock);
    if (found) {
        free_task(found);
        send_ctrl(jid, MS_CANCELLED);
    } else if (parked_cancel(jid)) {
        send_ctrl(jid, MS_CANCELLED);
    }
}
