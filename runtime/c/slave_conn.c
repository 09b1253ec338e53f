/* slave.c — the slave executable: main() and its command line, connecting
 * to the master, the handshake, and a fixed pool of worker threads that run
 * ms_job_table[ordinal - 1].run. A runtime error in a job longjmps back to
 * its worker (ms_runtime_error), which reports the job failed and goes on.
 *
 * Threads: `threads` + 1 workers, made once. Idle workers wait in one
 * epoll set on the master's socket (edge-triggered) and a "kick" eventfd,
 * so the kernel wakes one of them when a message arrives. That worker
 * reads until the socket is drained (under S.rlock), queues the jobs,
 * answers control messages, then runs a job itself: a job starts on the
 * thread that read it (no thread switch on the way in), and its result
 * goes out from that thread with one send. A worker that takes a job and sees
 * more waiting kicks the eventfd, which wakes another idle one. At most
 * `threads` jobs run at once, so one worker is always left waiting to read.
 * Whoever has a message to send appends it to S.out; one sender at a time
 * writes everything queued with one write, so results that finish together
 * go out together. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "ms_abi.h"
#include "net.h"
#include "proto.h"
#include "ser.h"
#include "stack.h"
#include "values.h"
#include "wire.h"

#define HANDSHAKE_TIMEOUT_MS 10000
#define READ_CHUNK 65536
#define BIG_MESSAGE (256 * 1024)

typedef struct task {
    uint32_t jid, ordinal;
    uint8_t *args; /* owned */
    uint32_t len;
    struct task *next;
} task;

typedef struct worker {
    pthread_t th;
    volatile int32_t cancel; /* set (atomically) when its job is cancelled */
    uint32_t jid;            /* guarded by S.qlock: its job, 0 when idle */
    /* Only the worker's own thread uses the rest. */
    int in_job;
    jmp_buf jb;
    ms_reader args;
    ms_buf result;
    char msg[MS_MAX_TEXT];
    uint8_t altstack[MS_ALTSTACK_SIZE]; /* its signal stack */
} worker;

/* The worker running on this thread, or NULL. */
static _Thread_local worker *tl_worker;

static struct slave {
    /* Set before the workers start; read-only afterwards. */
    int fd;
    char master[MS_ADDR_LEN];
    long threads;
    uint32_t max_message;
    long long hb_timeout_ms, hb_interval_ms;
    worker *workers;

    int epfd, kickfd;        /* set before the workers start */

    pthread_mutex_t qlock;
    /* Guarded by qlock: */
    task *head, *tail;
    size_t nqueued;
    size_t running;          /* jobs running, at most `threads` */

    pthread_mutex_t rlock;
    /* Guarded by rlock (whoever reads from the master holds it): */
    ms_buf in;               /* received bytes; [in_off, in.len) unparsed */
    uint64_t in_off;
    long long t_recv;
    /* A job message of at least BIG_MESSAGE bytes is read straight into a
     * buffer of its length (at most max_message) that becomes its task's
     * arguments: no growing of `in`, no copy. */
    ms_header big;
    uint8_t *big_data;       /* owned; NULL when no big message is coming */
    uint64_t big_have;

    pthread_mutex_t slock;
    /* Guarded by slock: */
    ms_buf out;     /* messages not yet written */
    ms_buf spare;   /* an empty buffer to swap with out */
    int flushing;   /* a thread is writing; others just append */
    int broken;     /* writing failed: the master is gone */
    long long t_send;
} S = {.fd = -1,
       .epfd = -1,
       .kickfd = -1,
       .qlock = PTHREAD_MUTEX_INITIALIZER,
       .rlock = PTHREAD_MUTEX_INITIALIZER,
       .slock = PTHREAD_MUTEX_INITIALIZER};

static _Noreturn void slave_exit(int code)
{
    fflush(stdout);
    _exit(code);
}

/* ------------------------------------------------------------ sending */

/* Caller holds S.slock, which this releases. The first thread here writes
 * until nothing is left; threads that come meanwhile only append. */
static void flush_and_unlock(void)
{
    if (S.flushing) {
        pthread_mutex_unlock(&S.slock);
        return;
    }
    S.flushing = 1;
    while (S.out.len > 0 && !S.broken) {
        ms_buf mine = S.out;
        S.out = S.spare;
        S.spare = (ms_buf){0};
        pthread_mutex_unlock(&S.slock);
        int rc = ms_write_full(S.fd, mine.data, (size_t)mine.len);
        pthread_mutex_lock(&S.slock);
        mine.len = 0;
        if (!S.spare.data && mine.cap <= (1u << 20))
            S.spare = mine;
        else
            ms_buf_free(&mine);
        if (rc != 0) {
            S.broken = 1;
            ms_logv("cannot write to master %s: %s", S.master, strerror(-rc));
        }
        S.t_send = ms_now_ms();
    }
    if (S.broken)
        S.out.len = 0;
    S.flushing = 0;
    pthread_mutex_unlock(&S.slock);
}

static void send_ctrl(uint32_t jid, uint8_t kind)
{
    pthread_mutex_lock(&S.slock);
    ms_ctrl_append(&S.out, jid, kind);
    flush_and_unlock();
}

static void send_text(uint32_t jid, uint8_t kind, const char *text)
{
    pthread_mutex_lock(&S.slock);
    ms_ctrl_append_text(&S.out, jid, kind, text);
    flush_and_unlock();
}

static void send_result(uint32_t ordinal, uint32_t jid, const ms_buf *result)
{
    pthread_mutex_lock(&S.slock);
    ms_msg_append(&S.out, ordinal, jid, result->data, (uint32_t)result->len);
    flush_and_unlock();
}

/* -------------------------------------------------- runtime ABI calls */

/* In a job, longjmp back to its worker. Values the job's frames still own
 * are not released on the way; the worker frees them afterwards, since
 * every vector the job made is in its thread's list (values.h, vector
 * tracking). `msg` is copied first: it may be thread-local storage. */
_Noreturn void ms_runtime_error(int32_t line, int32_t col, const char *msg)
{
    worker *w = tl_worker;
    if (w && w->in_job) {
        snprintf(w->msg, sizeof w->msg, "%s:%d:%d: %s", ms_program_source,
                 (int)line, (int)col, msg);
        w->in_job = 0;
        longjmp(w->jb, 1);
    }
    fflush(stdout);
    fprintf(stderr, "%s:%d:%d: runtime error: %s\n", ms_program_source,
            (int)line, (int)col, msg);
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
static void report_fault(int overflow)
{
    worker *w = tl_worker;
    if (!w || !w->in_job || pthread_mutex_trylock(&S.slock) != 0)
        return;
    if (S.flushing || S.broken) /* S.out is empty unless someone flushes */
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

/* Master-only calls: typecheck keeps them out of job code. */
static _Noreturn void master_only(const char *what)
{
    ms_fatal("internal error: %s called in a slave", what);
}

ms_handle ms_start_job(uint32_t ordinal, ms_buf *args)
{
    (void)ordinal;
    (void)args;
    master_only("ms_start_job");
}

void ms_reap_job(ms_handle h, ms_reader *out, int32_t line, int32_t col)
{
    (void)h;
    (void)out;
    (void)line;
    (void)col;
    master_only("ms_reap_job");
}

int32_t ms_job_state(ms_handle h, int32_t line, int32_t col)
{
    (void)h;
    (void)line;
    (void)col;
    master_only("ms_job_state");
}

void ms_job_cancel(ms_handle h, int32_t line, int32_t col)
{
    (void)h;
    (void)line;
    (void)col;
    master_only("ms_job_cancel");
}

void ms_handle_retain(ms_handle h)
{
    if (h)
        master_only("ms_handle_retain");
}

void ms_handle_release(ms_handle h)
{
    if (h)
        master_only("ms_handle_release");
}

/* ------------------------------------------------------------ workers */

static void run_task(worker *w, task *t)
{
    const ms_job_entry *e = &ms_job_table[t->ordinal - 1];
    w->args = (ms_reader){t->args, t->len, 0};
    w->result.len = 0;
    w->in_job = 1;
    ms_values_track_begin();
    int how = setjmp(w->jb);
    if (how == 0) {
        e->run(&w->args, &w->result);
        w->in_job = 0;
        /* The job released everything it made: 0 unless refcounts are off. */
        int64_t left = ms_values_track_end(0);
        if (left)
            ms_logv("internal error: job '%s' left %" PRId64 " vectors",
                    e->name, left);
        if (w->result.len > S.max_message) {
            char msg[256];
            snprintf(msg, sizeof msg,
                     "its result takes %" PRIu64 " bytes, more than the "
                     "largest message of %" PRIu32 " bytes (--max-message)",
                     w->result.len, S.max_message);
            send_text(t->jid, MS_FAILURE, msg);
        } else {
            send_result(t->ordinal, t->jid, &w->result);
        }
    } else {
        /* Abandoned by a longjmp (its error text is in w->msg already):
         * free the vectors its frames owned. */
        ms_values_track_end(1);
        if (how == 2)
            send_ctrl(t->jid, MS_CANCELLED);
        else
            send_text(t->jid, MS_FAILURE, w->msg);
    }
    /* What the job printed goes out now, not at some later job. */
    fflush(stdout);
    if (w->result.cap > (1u << 20))
        ms_buf_free(&w->result);
}

static void read_master(void);
static void keep_alive(void);

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
            free(t->args);
            free(t);
            pthread_mutex_lock(&S.qlock);
            w->jid = 0;
            S.running--;
            pthread_mutex_unlock(&S.qlock);
            continue;
        }
        /* Idle: wait for a message or a kick. */
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

static void start_workers(void)
{
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc == 0)
        rc = pthread_attr_setstacksize(&attr, MS_WORKER_STACK);
    if (rc != 0)
        ms_fatal("pthread_attr_setstacksize: %s", strerror(rc));
    long n = S.threads + 1;
    S.workers = ms_xcalloc((size_t)n, sizeof *S.workers);
    for (long i = 0; i < n; i++) {
        rc = pthread_create(&S.workers[i].th, &attr, worker_main,
                            &S.workers[i]);
        if (rc != 0)
            ms_fatal("pthread_create (worker %ld of %ld): %s", i + 1, n,
                     strerror(rc));
    }
    pthread_attr_destroy(&attr);
}

/* ------------------------------------------------ messages from master */

static _Noreturn void violation(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static _Noreturn void violation(const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    ms_log("closing the connection to master %s: %s", S.master, why);
    slave_exit(1);
}

/* h.length bytes at p (borrowed; or owned, when `own` is p, and then taken
 * over: a big message read straight into its own buffer). */
static void queue_task(ms_header h, const uint8_t *p, uint8_t *own)
{
    if (h.ordinal > ms_job_count)
        violation("unknown job ordinal %" PRIu32 " (the program has %" PRIu32
                  " jobs)",
                  h.ordinal, ms_job_count);
    const ms_job_entry *e = &ms_job_table[h.ordinal - 1];
    char err[256];
    if (ms_sig_validate(e->arg_sig, p, h.length, S.max_message, err,
                        sizeof err) != 0)
        violation("arguments of job %" PRIu32 " ('%s') do not match its "
                  "parameters \"%s\": %s",
                  h.jid, e->name, e->arg_sig, err);
    task *t = ms_xmalloc(sizeof *t);
    t->jid = h.jid;
    t->ordinal = h.ordinal;
    t->len = h.length;
    t->args = own;
    if (h.length && !own) {
        t->args = ms_xmalloc(h.length);
        memcpy(t->args, p, h.length);
    }
    t->next = NULL;
    pthread_mutex_lock(&S.qlock);
    /* The master sends at most MS_PREFETCH (4) times `threads` jobs at a
     * time; a queue much longer than that is a broken or hostile master. */
    if (S.nqueued + S.running >= (size_t)S.threads * 8 + 16) {
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

static void cancel_task(uint32_t jid)
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
        for (long i = 0; i <= S.threads; i++)
            if (S.workers[i].jid == jid)
                __atomic_store_n(&S.workers[i].cancel, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&S.qlock);
    if (found) {
        free(found->args);
        free(found);
        send_ctrl(jid, MS_CANCELLED);
    }
}

static void handle_message(ms_header h, const uint8_t *p)
{
    if (h.ordinal != 0) {
        queue_task(h, p, NULL);
        return;
    }
    if (h.length == 0)
        violation("empty control message");
    uint8_t kind = p[0];
    if (h.length == 1) {
        switch (kind) {
        case MS_HEARTBEAT:
            return;
        case MS_CANCEL:
            cancel_task(h.jid);
            return;
        case MS_GOODBYE:
            ms_logv("the master ended the run");
            slave_exit(0);
        }
    }
    violation("unexpected control message %u (%s) of %" PRIu32 " bytes", kind,
              ms_ctrl_name(kind), h.length);
}

/* Heartbeats: send one when nothing was sent for a while; give up on a
 * master that sent nothing for the heartbeat timeout. */
static void keep_alive(void)
{
    long long now = ms_now_ms();
    pthread_mutex_lock(&S.slock);
    int due = now - S.t_send >= S.hb_interval_ms && !S.flushing;
    if (due)
        S.t_send = now; /* so other idle workers do not send one too */
    pthread_mutex_unlock(&S.slock);
    if (due)
        send_ctrl(0, MS_HEARTBEAT);
    pthread_mutex_lock(&S.rlock);
    long long silent = now - S.t_recv;
    pthread_mutex_unlock(&S.rlock);
    if (silent >= S.hb_timeout_ms) {
        ms_log("no message from master %s for %.1f s; giving up", S.master,
               (double)silent / 1000.0);
        slave_exit(1);
    }
}

/* The master closed the connection or reading failed (n <= 0 from recv):
 * exit, unless it only means "no more for now" (returns then). */
static void read_failed(ssize_t n)
{
    if (n < 0) {
        if (ms_errno_is_retry(errno)) /* another worker read it first */
            return;
        if (errno == ECONNRESET) {
            ms_logv("master %s reset the connection", S.master);
            slave_exit(0);
        }
        ms_log("read from master %s: %s", S.master, strerror(errno));
        slave_exit(1);
    }
    ms_logv("master %s closed the connection", S.master);
    slave_exit(0);
}

/* Read more of the big message (caller holds S.rlock) until it is whole
 * (then queue its job and return 1) or the socket has nothing more for now
 * (return 0). */
static int read_big(void)
{
    while (S.big_have < S.big.length) {
        ssize_t n = recv(S.fd, S.big_data + S.big_have,
                         (size_t)(S.big.length - S.big_have), MSG_DONTWAIT);
        if (n <= 0) {
            read_failed(n);
            return 0;
        }
        S.big_have += (uint64_t)n;
        S.t_recv = ms_now_ms();
    }
    uint8_t *data = S.big_data;
    S.big_data = NULL;
    queue_task(S.big, data, data);
    return 1;
}

/* Read what the master sent and act on every whole message: queue jobs,
 * handle control messages. The socket is edge-triggered (one worker wakes
 * per arrival, not every idle one in turn), so this reads until the socket
 * is drained: a read that fills less than the room it was given took all
 * there was, and whatever arrives later wakes a worker again. */
static void read_master(void)
{
    pthread_mutex_lock(&S.rlock);
    for (;;) {
        if (S.big_data) {
            if (!read_big())
                break; /* drained */
            continue;  /* more may follow it */
        }
        if (S.in_off == S.in.len) {
            S.in_off = S.in.len = 0;
        } else if (S.in_off > 0 && S.in.cap - S.in.len < READ_CHUNK) {
            memmove(S.in.data, S.in.data + S.in_off, S.in.len - S.in_off);
            S.in.len -= S.in_off;
            S.in_off = 0;
        }
        ms_buf_reserve(&S.in, READ_CHUNK);
        size_t room = (size_t)(S.in.cap - S.in.len);
        ssize_t n = recv(S.fd, S.in.data + S.in.len, room, MSG_DONTWAIT);
        if (n <= 0) {
            read_failed(n);
            break; /* drained (or another worker read it first) */
        }
        S.in.len += (uint64_t)n;
        S.t_recv = ms_now_ms();
        int more = (size_t)n == room;
        while (S.in.len - S.in_off >= MS_HDR_LEN) {
            ms_header h = ms_header_decode(S.in.data + S.in_off);
            if (h.length > S.max_message)
                violation("message of %" PRIu32 " bytes is over the limit of %"
                          PRIu32 " bytes",
                          h.length, S.max_message);
            uint64_t avail = S.in.len - S.in_off - MS_HDR_LEN;
            if (avail < h.length) {
                if (h.ordinal != 0 && h.length >= BIG_MESSAGE) {
                    /* The length passed the limit check above, so this
                     * buffer is at most max_message bytes. */
                    S.big = h;
                    S.big_data = ms_xmalloc(h.length);
                    ms_hint_huge(S.big_data, h.length);
                    S.big_have = avail;
                    memcpy(S.big_data, S.in.data + S.in_off + MS_HDR_LEN,
                           avail);
                    S.in_off = S.in.len;
                    more = 1; /* read_big reads on until drained or whole */
                }
                break;
            }
            const uint8_t *p = S.in.data + S.in_off + MS_HDR_LEN;
            S.in_off += MS_HDR_LEN + (uint64_t)h.length;
            handle_message(h, p);
        }
        if (!more)
            break;
    }
    pthread_mutex_unlock(&S.rlock);
}

/* ---------------------------------------------------------- handshake */

/* Read one whole message of at most `limit` payload bytes into `buf`
 * (borrowed, at least `limit` long). Exits with a message on failure. */
static ms_header read_message(uint8_t *buf, uint32_t limit, const char *what)
{
    uint8_t head[MS_HDR_LEN];
    int rc = ms_read_full(S.fd, head, sizeof head, HANDSHAKE_TIMEOUT_MS);
    if (rc == 0) {
        ms_header h = ms_header_decode(head);
        if (h.ordinal != 0 || h.length == 0 || h.length > limit) {
            ms_log("%s is not an M/s master: unexpected message (ordinal %"
                   PRIu32 ", %" PRIu32 " bytes) instead of %s",
                   S.master, h.ordinal, h.length, what);
            slave_exit(1);
        }
        rc = ms_read_full(S.fd, buf, h.length, HANDSHAKE_TIMEOUT_MS);
        if (rc == 0)
            return h;
    }
    if (rc == -ETIMEDOUT)
        ms_log("master %s sent no %s within %d s", S.master, what,
               HANDSHAKE_TIMEOUT_MS / 1000);
    else if (rc == -ECONNRESET)
        ms_log("master %s closed the connection during the handshake",
               S.master);
    else
        ms_log("read from master %s: %s", S.master, strerror(-rc));
    slave_exit(1);
}

static void handshake(const ms_secret *secret)
{
    uint8_t buf[MS_HANDSHAKE_MAX];
    ms_header h = read_message(buf, sizeof buf, "CHALLENGE");
    ms_challenge ch;
    if (ms_challenge_decode(buf, h.length, &ch) != 0) {
        ms_log("%s is not an M/s master: malformed CHALLENGE", S.master);
        slave_exit(1);
    }
    uint8_t fp[MS_DIGEST_LEN];
    ms_program_fingerprint(fp);
    if ((ch.flags & MS_CHALLENGE_AUTH) && !secret->data)
        ms_log("master %s requires a shared secret, and this slave has none "
               "(set MS_TOKEN or use --token-file)",
               S.master);
    ms_hello hello = {.version = MS_PROTOCOL_VERSION,
                      .threads = (uint32_t)S.threads,
                      .pid = (uint32_t)getpid()};
    memcpy(hello.fingerprint, fp, MS_DIGEST_LEN);
    if (secret->data)
        ms_auth_proof(secret, ch.nonce, fp, hello.proof);
    ms_buf out = {0};
    ms_hello_append(&out, &hello);
    int rc = ms_write_full(S.fd, out.data, (size_t)out.len);
    ms_buf_free(&out);
    if (rc != 0) {
        ms_log("write to master %s: %s", S.master, strerror(-rc));
        slave_exit(1);
    }
    /* The master decides and says why; we only add what we know. */
    h = read_message(buf, sizeof buf, "WELCOME");
    if (buf[0] == MS_REFUSE) {
        char reason[MS_MAX_TEXT + 1];
        ms_text_decode(buf + 1, h.length - 1, reason, sizeof reason);
        ms_log("refused by master %s: %s", S.master, reason);
        slave_exit(1);
    }
    ms_welcome w;
    if (ms_welcome_decode(buf, h.length, &w) != 0) {
        ms_log("%s is not an M/s master: malformed %s message", S.master,
               ms_ctrl_name(buf[0]));
        slave_exit(1);
    }
    if (ch.version != MS_PROTOCOL_VERSION ||
        !ms_digest_equal(ch.fingerprint, fp)) {
        ms_log("master %s runs another program or version; refusing it",
               S.master);
        slave_exit(1);
    }
    if (w.max_message < MS_HANDSHAKE_MAX || w.heartbeat_ms == 0) {
        ms_log("master %s sent impossible limits (max message %" PRIu32
               ", heartbeat %" PRIu32 " ms)",
               S.master, w.max_message, w.heartbeat_ms);
        slave_exit(1);
    }
    S.max_message = w.max_message;
    S.hb_timeout_ms = w.heartbeat_ms;
    S.hb_interval_ms = w.heartbeat_ms / 3 ? w.heartbeat_ms / 3 : 1;
    ms_logv("joined master %s as slave %" PRIu32 " with %ld threads", S.master,
            w.slave_id, S.threads);
}

/* Connect, retrying until the master is up. */
static void connect_master(const ms_hostport *hp)
{
    int delay = 50;
    long long t_first = ms_now_ms(), t_said = 0;
    for (;;) {
        char err[512];
        S.fd = ms_connect(hp, err, sizeof err);
        if (S.fd >= 0)
            return;
        long long now = ms_now_ms();
        if (ms_log_verbose() ? now - t_said >= 5000
                             : now - t_first >= 10000 && now - t_said >= 60000) {
            ms_log("%s; retrying", err);
            t_said = now;
        }
        struct timespec ts = {delay / 1000, (delay % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        delay = delay * 2 > 1000 ? 1000 : delay * 2;
    }
}

/* ------------------------------------------------------------- main */

static const char usage_text[] =
    "usage: %s --master HOST:PORT [options]\n"
    "Runs jobs for the master at HOST:PORT (retrying until it is up).\n"
    "  --threads N        run at most N jobs at a time (default: CPUs)\n"
    "  --token-file FILE  shared secret to prove to the master (else $MS_TOKEN)\n"
    "  --verbose          log the connection to stderr\n"
    "  --help             show this text\n";


int main(int argc, char **argv)
{
    ms_log_init(argv[0], 0);
    const char *master = NULL, *token_file = NULL;
    int verbose = 0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    S.threads = cpus > 0 ? cpus : 1;
    for (int i = 1; i < argc; i++) {
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(argv[i], '=');
        if (strncmp(argv[i], "--", 2) == 0 && eq &&
            (size_t)(eq - argv[i]) < sizeof name) {
            memcpy(name, argv[i], (size_t)(eq - argv[i]));
            name[eq - argv[i]] = '\0';
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", argv[i]);
        }
        int takes = !strcmp(name, "--master") || !strcmp(name, "--threads") ||
                    !strcmp(name, "--token-file");
        if (takes && !val) {
            if (i + 1 >= argc)
                ms_usage_error(usage_text, "%s needs a value", name);
            val = argv[++i];
        } else if (!takes && val) {
            ms_usage_error(usage_text, "%s takes no value", name);
        }
        if (!strcmp(name, "--master")) {
            master = val;
        } else if (!strcmp(name, "--token-file")) {
            token_file = val;
        } else if (!strcmp(name, "--threads")) {
            char *end;
            errno = 0;
            long n = strtol(val, &end, 10);
            if (errno || end == val || *end || n < 1 || n > MS_MAX_THREADS)
                ms_usage_error(usage_text, "--threads takes an integer from 1 to %d, not '%s'",
                            MS_MAX_THREADS, val);
            S.threads = n;
        } else if (!strcmp(name, "--verbose")) {
            verbose = 1;
        } else if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
            printf(usage_text, ms_log_name());
            return 0;
        } else {
            ms_usage_error(usage_text, "unknown option '%s'", argv[i]);
        }
    }
    if (!master)
        ms_usage_error(usage_text, "--master HOST:PORT is required");
    if (S.threads > MS_MAX_THREADS)
        S.threads = MS_MAX_THREADS;
    ms_log_init(argv[0], verbose);
    ms_hostport hp;
    char err[512];
    if (ms_parse_hostport(master, &hp, err, sizeof err) != 0)
        ms_usage_error(usage_text, "--master: %s", err);
    snprintf(S.master, sizeof S.master, "%s", master);
    ms_secret secret;
    if (ms_secret_load(token_file, &secret, err, sizeof err) < 0)
        ms_usage_error(usage_text, "%s", err);
    /* Jobs have no business reading the secret. */
    unsetenv("MS_TOKEN");

    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &ign, NULL) != 0)
        ms_fatal("sigaction(SIGPIPE): %s", strerror(errno));
    ms_stack_install_handler(" in a job; the slave exits and the master runs "
                             "its other jobs elsewhere");
    ms_stack_set_fault_hook(report_fault);

    char check[256];
    for (uint32_t k = 0; k < ms_job_count; k++)
        if (ms_sig_check(ms_job_table[k].arg_sig, check, sizeof check) != 0 ||
            ms_sig_check(ms_job_table[k].ret_sig, check, sizeof check) != 0)
            ms_fatal("internal error: job %u: %s", k + 1, check);

    connect_master(&hp);
    handshake(&secret);
    free(secret.data);
    S.t_send = S.t_recv = ms_now_ms();
    S.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (S.epfd < 0)
        ms_fatal("epoll_create1: %s", strerror(errno));
    S.kickfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC | EFD_SEMAPHORE);
    if (S.kickfd < 0)
        ms_fatal("eventfd: %s", strerror(errno));
    /* The socket is edge-triggered: level-triggered, an event taken by
     * one worker is put back and wakes the next idle one, and so on, each
     * finding nothing to read. The kick eventfd stays level-triggered (a
     * semaphore: every kick must wake a worker, even two kicks that come
     * before any worker looks). */
    int fds[2] = {S.fd, S.kickfd};
    uint32_t trig[2] = {EPOLLET, 0};
    for (int i = 0; i < 2; i++) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE | trig[i],
                                 .data.fd = fds[i]};
        if (epoll_ctl(S.epfd, EPOLL_CTL_ADD, fds[i], &ev) != 0)
            ms_fatal("epoll_ctl: %s", strerror(errno));
    }
    start_workers();
    /* The workers do everything from here on. */
    for (;;)
        pause();
}
