/* master.c — the master executable: main() and its command line, the I/O
 * thread (accepting slaves, the handshake, sending jobs, receiving results,
 * heartbeats, local slave processes) and the job calls of ms_abi.h that
 * compiled master code makes.
 *
 * Threads: the main thread runs ms_master_main (compiled code); the I/O
 * thread polls every socket, reads, accepts and manages child processes.
 * They share the job records, the pending queue and the connections'
 * output, guarded by M.lock: so that a job starts without a thread switch,
 * ms_start_job hands it to a slave and sends it itself (a non-blocking
 * send; the I/O thread finishes what the kernel did not take). Neither
 * thread ever blocks on sending, and the I/O thread sleeps only in
 * epoll_wait() (one epoll set: a wake-up costs the same however many
 * connections are open).
 *
 * `get` on a job in flight reads its connection itself: the main thread
 * becomes that connection's reader (conn.reader, under M.lock), takes it
 * out of the I/O thread's epoll set, and sleeps in poll() on the socket
 * until the result is there, handling whatever else comes
 * on it the way the I/O thread would (results of other jobs, sending
 * queued jobs to slaves with room). So a result reaches the thread that
 * needs it with no thread switch on the way. The I/O thread keeps the
 * timers (heartbeats, timeouts), everything else, and the connection's
 * end: when the connection is closed (by either thread) or the run ends,
 * the main thread lets go of it and waits on a condition variable like
 * any `get` whose job is pending. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth.h"
#include "jobs.h"
#include "log.h"
#include "ms_abi.h"
#include "net.h"
#include "proto.h"
#include "schedule.h"
#include "ser.h"
#include "stack.h"
#include "wire.h"

extern char **environ;

#define HANDSHAKE_TIMEOUT_MS 5000
#define CLOSE_GRACE_MS 1000    /* to deliver a REFUSE before closing */
#define GOODBYE_FLUSH_MS 1000  /* to deliver GOODBYEs at the end */
#define CHILD_GRACE_MS 2000    /* for local slaves to exit after GOODBYE */
#define WRAPPED_GRACE_MS 60000 /* the same under MS_SLAVE_WRAPPER (valgrind
                                  checks for leaks as the slave exits) */
#define WAIT_NOTICE_FIRST_MS 3000
#define WAIT_NOTICE_EVERY_MS 15000
#define READ_CHUNK 65536
#define MAX_HANDSHAKING 128    /* connections not yet through the handshake */
#define ACCEPT_PAUSE_MS 200    /* after running out of file descriptors */

/* ------------------------------------------------------------ options */

typedef struct options {
    long spawn;            /* local slaves; -1: the default */
    const char *listen;    /* HOST:PORT; NULL: loopback, free port */
    int verbose, insecure, stats;
    long max_retries;
    double heartbeat_s;
    uint32_t max_message;
    const char *token_file;
} options;

static const char usage_text[] =
    "usage: %s [options]\n"
    "Runs the program's master block; its jobs run on slaves.\n"
    "  --spawn N               start N local slaves (default: the number of\n"
    "                          CPUs, at least 2; 0 with --listen)\n"
    "  --listen HOST:PORT      listen there for slaves started by hand\n"
    "                          (default 127.0.0.1:0, a free loopback port)\n"
    "  --token-file FILE       shared secret slaves must prove (else $MS_TOKEN)\n"
    "  --insecure              allow a non-loopback --listen without a secret\n"
    "  --max-retries N         runs of a job whose slaves are lost (default 3)\n"
    "  --heartbeat-timeout S   seconds of silence before a slave counts as\n"
    "                          lost (default 10)\n"
    "  --max-message BYTES     largest message accepted (default 1073741824)\n"
    "  --verbose               log connections and slaves to stderr\n"
    "  --stats                 print job and slave statistics at the end\n"
    "  --help                  show this text\n";


static long parse_long(const char *opt, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        ms_usage_error(usage_text, "%s takes an integer from %ld to %ld, not '%s'", opt, min,
                    max, s);
    return v;
}

static void parse_options(int argc, char **argv, options *o)
{
    *o = (options){.spawn = -1, .max_retries = 3, .heartbeat_s = 10.0,
                   .max_message = 1u << 30};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char name[64];
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) == 0 && eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = '\0';
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
        }
#define TAKES_VALUE()                                                     \
    do {                                                                  \
        if (!val) {                                                       \
            if (i + 1 >= argc)                                            \
                ms_usage_error(usage_text, "%s needs a value", name);                    \
            val = argv[++i];                                              \
        }                                                                 \
    } while (0)
#define NO_VALUE()                                                        \
    do {                                                                  \
        if (val)                                                          \
            ms_usage_error(usage_text, "%s takes no value", name);                       \
    } while (0)
        if (!strcmp(name, "--spawn")) {
            TAKES_VALUE();
            o->spawn = parse_long(name, val, 0, 1024);
        } else if (!strcmp(name, "--listen")) {
            TAKES_VALUE();
            o->listen = val;
        } else if (!strcmp(name, "--token-file")) {
            TAKES_VALUE();
            o->token_file = val;
        } else if (!strcmp(name, "--max-retries")) {
            TAKES_VALUE();
            o->max_retries = parse_long(name, val, 1, 1000000);
        } else if (!strcmp(name, "--max-message")) {
            TAKES_VALUE();
            o->max_message =
                (uint32_t)parse_long(name, val, MS_HANDSHAKE_MAX, UINT32_MAX);
        } else if (!strcmp(name, "--heartbeat-timeout")) {
            TAKES_VALUE();
            char *end;
            errno = 0;
            double s = strtod(val, &end);
            if (errno || end == val || *end || !(s >= 0.05 && s <= 86400))
                ms_usage_error(usage_text, "--heartbeat-timeout takes seconds from 0.05 to "
                            "86400, not '%s'", val);
            o->heartbeat_s = s;
        } else if (!strcmp(name, "--verbose")) {
            NO_VALUE();
            o->verbose = 1;
        } else if (!strcmp(name, "--insecure")) {
            NO_VALUE();
            o->insecure = 1;
        } else if (!strcmp(name, "--stats")) {
            NO_VALUE();
            o->stats = 1;
        } else if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
            printf(usage_text, ms_log_name());
            exit(0);
        } else {
            ms_usage_error(usage_text, "unknown option '%s'", a);
        }
#undef TAKES_VALUE
#undef NO_VALUE
    }
}

/* ------------------------------------------------------------ state */

/* Arguments of at least SEG_MIN bytes are sent from the job's own buffer
 * instead of being copied into a connection's `out`: the connection keeps
 * a segment saying where in `out` they go. */
#define SEG_MIN 65536
typedef struct oseg {
    uint64_t at;         /* the bytes go on the wire just before out.data[at] */
    struct ms_job *job;  /* pinned (ms_job_pin): job->args are the bytes */
    uint64_t sent;
} oseg;

enum { C_HANDSHAKE, C_READY, C_CLOSING, C_DEAD };

/* Who reads a connection: nobody at the moment, the I/O thread, or the
 * main thread waiting in `get` for a job in flight on it. */
enum { R_NONE, R_IO, R_MAIN };

/* One connection, normally to a slave. Created and freed by the I/O
 * thread with M.lock held; never freed while the main thread reads it.
 * `in`, `in_off`, `rd_*` and `bytes_in` belong to the thread named by
 * `reader` (it reads without the lock); every other field is guarded by
 * M.lock. */
typedef struct conn {
    int fd;
    uint32_t id;
    char peer[MS_ADDR_LEN];
    int phase;
    int was_ready;
    uint8_t nonce[MS_NONCE_LEN];
    uint32_t threads;
    uint32_t pid;
    int local;
    ms_buf in;           /* received bytes; [in_off, in.len) unparsed */
    uint64_t in_off;
    int reader;          /* R_NONE, R_IO or R_MAIN */
    int release_asked;   /* the I/O thread asked the main thread to let go */
    int rd_failed;       /* reading ended: EOF or an error (rd_why) */
    char rd_why[160];
    ms_buf out;          /* bytes to send; [out_off, out.len) unsent */
    uint64_t out_off;
    oseg *segs;          /* big arguments among them, in order of `at`; */
    size_t nsegs, seg_head, segs_cap; /* [seg_head, nsegs) unsent */
    long long t_open, t_recv, t_send, t_close;
    ms_inflight load;
    uint64_t done;       /* results and failures received */
    /* For --stats: answers by kind, jobs put back in the queue when the
     * connection was lost, and bytes both ways (bytes_in is the reader's;
     * the rest is guarded by M.lock). */
    uint64_t n_finished, n_failed, n_cancelled, n_retried;
    uint64_t bytes_in, bytes_out;
    uint32_t ep_events;  /* what the I/O thread's epoll set waits for */
    char why[600];       /* why it is closing, for the log */
} conn;

/* Is there output not yet sent? */
static int conn_pending(const conn *c)
{
    return c->out_off < c->out.len || c->seg_head < c->nsegs;
}

/* Forget the unsent segments (caller holds M.lock). */
static void conn_drop_segs(conn *c)
{
    for (size_t i = c->seg_head; i < c->nsegs; i++)
        ms_job_unpin(c->segs[i].job);
    c->nsegs = c->seg_head = 0;
}

/* Queue one job message: its header, and its arguments copied or, when
 * big, as a segment (caller holds M.lock). */
static void conn_send_job(conn *c, struct ms_job *j)
{
    if (j->args_len < SEG_MIN) {
        ms_msg_append(&c->out, j->ordinal, j->jid, j->args, j->args_len);
        return;
    }
    ms_buf_reserve(&c->out, MS_HDR_LEN);
    ms_header h = {j->ordinal, j->jid, j->args_len};
    ms_header_encode(c->out.data + c->out.len, h);
    c->out.len += MS_HDR_LEN;
    if (c->nsegs == c->segs_cap) {
        c->segs_cap = c->segs_cap ? 2 * c->segs_cap : 4;
        c->segs = ms_xrealloc(c->segs, c->segs_cap * sizeof *c->segs);
    }
    ms_job_pin(j);
    c->segs[c->nsegs++] = (oseg){.at = c->out.len, .job = j, .sent = 0};
}

/* A local slave process. pid 0: not running, restart at restart_at. */
typedef struct child {
    pid_t pid;
    long long started, restart_at;
    int backoff_ms;
    int joined;          /* it got through the handshake */
    int failed_starts;   /* exits before joining since it last joined */
} child;

/* Without --listen the local slaves are the only ones: when every one of
 * them has exited this many times in a row before joining, the run cannot
 * go on, and the master says so instead of waiting for ever. */
#define MAX_FAILED_STARTS 5

typedef struct stats {
    uint64_t started, finished, failed, cancelled, rerun;
    uint64_t joined, lost, refused, violations;
    uint64_t connections, bytes_in, bytes_out; /* of closed connections */
} stats;

static struct master {
    /* Set by main() before the I/O thread starts; read-only afterwards. */
    options opt;
    int listen_fd, wake_fd, sig_fd;
    int ep_fd;               /* the I/O thread's epoll set (all of the above
                                and every connection) */
    char bound[MS_ADDR_LEN], local_addr[MS_ADDR_LEN];
    uint8_t fingerprint[MS_DIGEST_LEN];
    ms_secret secret;
    int auth_required;
    char *slave_path;        /* owned */
    char *exec_path;         /* what execve runs: slave_path or a wrapper */
    char **slave_argv;       /* owned array, for execve */
    char **slave_envp;       /* owned array, for execve */
    long long hb_timeout_ms, hb_interval_ms, t_start;
    pthread_t io;
    int io_started;
    int main_wake_fd;        /* eventfd: the main thread must let go of the
                                connection it reads */

    pthread_mutex_t lock;
    pthread_cond_t done_cv;  /* signalled when `waiter` ends */
    pthread_cond_t reader_cv; /* broadcast when the main thread stops
                                 reading a connection */
    /* Guarded by lock: */
    ms_jobq pending;
    struct ms_job *waiter;   /* the job ms_reap_job waits for, or NULL */
    int notify;              /* signal done_cv after unlocking */
    int io_idle;             /* the I/O thread is (about to be) in poll */
    int shutdown_code;       /* -1 while running */
    int shutdown_signal;     /* the signal that ended the run, or 0 */
    int io_ends_process;     /* the I/O thread ends the run (the main thread
                                is still in compiled code) */
    uint32_t next_jid;
    uint32_t ready_slaves;
    stats st;
    ms_buf slave_report;     /* --stats lines of slaves that left */
    conn **conns;
    size_t nconns, conns_cap;
    ms_inflight **sets;      /* scratch for ms_sched_pick, conns_cap long */
    size_t sched_cursor;
    int shutting_down;

    /* Owned by the I/O thread; no lock: */
    uint32_t next_conn_id;
    child *children;
    size_t nchildren;
    long long t_waiting_since, t_last_notice;
    long long accept_paused_until, t_accept_log;
    uint32_t listen_events;
} M = {.listen_fd = -1, .wake_fd = -1, .sig_fd = -1, .ep_fd = -1,
       .lock = PTHREAD_MUTEX_INITIALIZER,
       .done_cv = PTHREAD_COND_INITIALIZER,
       .reader_cv = PTHREAD_COND_INITIALIZER, .main_wake_fd = -1,
       .shutdown_code = -1};

/* --------------------------------------------------------- waking I/O */

static void wake_io(void)
{
    uint64_t one = 1;
    while (write(M.wake_fd, &one, sizeof one) < 0) {
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) /* the counter is full: it is awake anyway */
            return;
        ms_fatal("write(eventfd): %s", strerror(errno));
    }
}

/* Ask the main thread to let go of the connection it reads. */
static void wake_main(void)
{
    uint64_t one = 1;
    while (write(M.main_wake_fd, &one, sizeof one) < 0) {
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            return;
        ms_fatal("write(eventfd): %s", strerror(errno));
    }
}

/* Caller holds M.lock: a wake-up is needed only when the I/O thread may be
 * sleeping in poll. Returns whether the caller must call wake_io. */
static int need_wake_locked(void)
{
    if (!M.io_idle)
        return 0;
    M.io_idle = 0;
    return 1;
}

static void dispatch_locked(void);
static int flush_locked(void);
static int main_may_read_locked(const conn *c);
static void main_read_locked(const struct ms_job *h, conn *c);

/* ---------------------------------------------------------- job calls */

ms_handle ms_start_job(uint32_t ordinal, ms_buf *args)
{
    if (ordinal == 0 || ordinal > ms_job_count)
        ms_fatal("internal error: ms_start_job with ordinal %u of %u", ordinal,
                 ms_job_count);
    uint64_t len = args->len;
    struct ms_job *j = ms_job_new(0, ordinal, args);
    int wake = 0;
    pthread_mutex_lock(&M.lock);
    if (++M.next_jid == 0)
        M.next_jid = 1;
    j->jid = M.next_jid;
    M.st.started++;
    if (len > M.opt.max_message) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "its arguments take %" PRIu64 " bytes, more than the largest "
                 "message of %" PRIu32 " bytes (--max-message)",
                 len, M.opt.max_message);
        ms_job_fail(j, msg);
        M.st.failed++;
    } else {
        ms_job_retain(j); /* the queue's reference */
        ms_jobq_push(&M.pending, j);
        dispatch_locked();
        /* What the kernel does not take now, the I/O thread sends later. */
        wake = flush_locked() && need_wake_locked();
    }
    pthread_mutex_unlock(&M.lock);
    if (wake)
        wake_io();
    return j;
}

void ms_reap_job(ms_handle h, ms_reader *out, int32_t line, int32_t col)
{
    if (!h)
        ms_runtime_error(line, col, "job handle is not set");
    pthread_mutex_lock(&M.lock);
    while (h->state == MS_J_PENDING || h->state == MS_J_INFLIGHT) {
        conn *c = h->state == MS_J_INFLIGHT ? h->where : NULL;
        if (c && main_may_read_locked(c)) {
            main_read_locked(h, c);
            continue;
        }
        M.waiter = h;
        pthread_cond_wait(&M.done_cv, &M.lock);
        M.waiter = NULL;
    }
    M.waiter = NULL;
    int state = h->state;
    pthread_mutex_unlock(&M.lock);
    /* An ended job never changes again, so its fields need no lock now. */
    const char *name = ms_job_table[h->ordinal - 1].name;
    char msg[MS_MAX_TEXT + 512];
    switch (state) {
    case MS_J_FINISHED:
        out->data = h->result;
        out->len = h->result_len;
        out->off = 0;
        return;
    case MS_J_FAILED:
        snprintf(msg, sizeof msg, "job '%s' failed: %s", name, h->error);
        ms_runtime_error(line, col, msg);
    default:
        snprintf(msg, sizeof msg, "job '%s' was cancelled", name);
        ms_runtime_error(line, col, msg);
    }
}

int32_t ms_job_state(ms_handle h, int32_t line, int32_t col)
{
    if (!h)
        ms_runtime_error(line, col, "job handle is not set");
    pthread_mutex_lock(&M.lock);
    int s = h->state;
    pthread_mutex_unlock(&M.lock);
    switch (s) {
    case MS_J_FINISHED: return MS_STATE_FINISHED;
    case MS_J_FAILED: return MS_STATE_FAILED;
    case MS_J_CANCELLED: return MS_STATE_CANCELLED;
    default: return MS_STATE_RUNNING;
    }
}

void ms_job_cancel(ms_handle h, int32_t line, int32_t col)
{
    if (!h)
        ms_runtime_error(line, col, "job handle is not set");
    int wake = 0;
    pthread_mutex_lock(&M.lock);
    if (h->state == MS_J_PENDING) {
        /* It stays in the queue; the dispatcher drops it. */
        ms_job_cancel_now(h);
        M.st.cancelled++;
    } else if (h->state == MS_J_INFLIGHT) {
        ms_job_cancel_now(h);
        M.st.cancelled++;
        conn *c = h->where;
        if (c && c->phase == C_READY) {
            ms_ctrl_append(&c->out, h->jid, MS_CANCEL);
            wake = flush_locked() && need_wake_locked();
        }
    }
    pthread_mutex_unlock(&M.lock);
    if (wake)
        wake_io();
}

void ms_handle_retain(ms_handle h)
{
    if (h)
        ms_job_retain(h);
}

void ms_handle_release(ms_handle h)
{
    if (h)
        ms_job_release(h);
}

const volatile int32_t *ms_cancel_flag_ptr(void)
{
    static const volatile int32_t never = 0;
    return &never;
}

int32_t ms_cancel_requested(void)
{
    return 0;
}

void ms_cancel_point(void)
{
}

/* ------------------------------------------------------ ending the run */

static void print_stats(void)
{
    pthread_mutex_lock(&M.lock);
    stats s = M.st;
    pthread_mutex_unlock(&M.lock);
    double secs = (double)(ms_now_ms() - M.t_start) / 1000.0;
    ms_log("stats: %" PRIu64 " jobs started, %" PRIu64 " finished, %" PRIu64
           " failed, %" PRIu64 " cancelled, %" PRIu64 " rerun after a lost "
           "slave; %.3f s",
           s.started, s.finished, s.failed, s.cancelled, s.rerun, secs);
    ms_log("stats: %" PRIu64 " slaves joined, %" PRIu64 " lost, %" PRIu64
           " refused, %" PRIu64 " connections closed for protocol errors",
           s.joined, s.lost, s.refused, s.violations);
    if (M.slave_report.len)
        if (write(STDERR_FILENO, M.slave_report.data, M.slave_report.len) < 0)
            return; /* stderr is gone; nothing to do */
    ms_log("stats: total over %" PRIu64 " connections: sent %" PRIu64
           " bytes, received %" PRIu64 " bytes",
           s.connections, s.bytes_out, s.bytes_in);
}

/* End the run from the main thread: tell the I/O thread, which says
 * GOODBYE to the slaves and waits for local ones, then exit. */
static _Noreturn void master_exit(int code)
{
    fflush(stdout);
    if (M.io_started) {
        pthread_mutex_lock(&M.lock);
        if (M.shutdown_code < 0)
            M.shutdown_code = code;
        code = M.shutdown_code;
        pthread_mutex_unlock(&M.lock);
        wake_io();
        pthread_join(M.io, NULL);
    }
    if (M.opt.stats)
        print_stats();
    fflush(stdout);
    exit(code);
}

_Noreturn void ms_runtime_error(int32_t line, int32_t col, const char *msg)
{
    fflush(stdout);
    fprintf(stderr, "%s:%d:%d: runtime error: %s\n", ms_program_source,
            (int)line, (int)col, msg);
    fflush(stderr);
    master_exit(1);
}

/* ------------------------------------------------------ local slaves */

static void spawn_child(child *ch, long long now)
{
    pid_t pid = fork();
    if (pid < 0) {
        ms_log("cannot start a local slave: fork: %s", strerror(errno));
        ch->pid = 0;
        ch->restart_at = now + 1000;
        return;
    }
    if (pid == 0) {
        /* The child: only async-signal-safe calls until execve. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigaction(SIGPIPE, &dfl, NULL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* Its stdout is the master's stderr: the master's stdout holds only
         * what the master block prints. */
        if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
            _exit(127);
        execve(M.exec_path, M.slave_argv, M.slave_envp);
        static const char msg[] = ": cannot run the local slave program\n";
        if (write(STDERR_FILENO, M.exec_path, strlen(M.exec_path)) > 0 &&
            write(STDERR_FILENO, msg, sizeof msg - 1) > 0) {
        }
        _exit(127);
    }
    ch->pid = pid;
    ch->started = now;
    ch->joined = 0;
    ms_logv("started local slave pid %d", (int)pid);
}

static void describe_status(int st, char *out, size_t n)
{
    if (WIFEXITED(st))
        snprintf(out, n, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(out, n, "was killed by signal %d (%s)", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    else
        snprintf(out, n, "stopped (status %d)", st);
}

/* Collect local slaves that ended; while running, schedule replacements
 * (sooner for slaves that lived long, later for ones that die at once). */
static void reap_children(long long now)
{
    for (size_t i = 0; i < M.nchildren; i++) {
        child *ch = &M.children[i];
        if (ch->pid <= 0)
            continue;
        int st;
        pid_t r = waitpid(ch->pid, &st, WNOHANG);
        if (r == 0)
            continue;
        if (r < 0 && errno == EINTR)
            continue;
        char how[128];
        if (r < 0)
            snprintf(how, sizeof how, "vanished (waitpid: %s)", strerror(errno));
        else
            describe_status(st, how, sizeof how);
        if (M.shutting_down) {
            ms_logv("local slave pid %d %s", (int)ch->pid, how);
            ch->pid = -1;
            continue;
        }
        int quick = now - ch->started < 2000;
        ch->backoff_ms = quick ? (ch->backoff_ms ? 2 * ch->backoff_ms : 100) : 50;
        if (ch->backoff_ms > 5000)
            ch->backoff_ms = 5000;
        if (!ch->joined)
            ch->failed_starts++;
        ms_log("local slave pid %d %s%s; starting another", (int)ch->pid, how,
               ch->joined ? "" : " before joining");
        ch->pid = 0;
        ch->restart_at = now + ch->backoff_ms;
    }
    if (M.shutting_down || M.opt.listen || !M.nchildren)
        return;
    for (size_t i = 0; i < M.nchildren; i++)
        if (M.children[i].failed_starts < MAX_FAILED_STARTS)
            return;
    pthread_mutex_lock(&M.lock);
    if (M.shutdown_code < 0 && M.ready_slaves == 0) {
        ms_log("error: the local slaves (%s) keep exiting before they join; "
               "giving up",
               M.slave_path);
        M.shutdown_code = 1;
        M.io_ends_process = 1;
    }
    pthread_mutex_unlock(&M.lock);
}

/* Is pid one of our local slaves? If so, it has joined (caller holds
 * M.lock; the I/O thread's). */
static int is_local_pid(uint32_t pid)
{
    for (size_t i = 0; i < M.nchildren; i++) {
        child *ch = &M.children[i];
        if (ch->pid > 0 && (uint32_t)ch->pid == pid) {
            ch->joined = 1;
            ch->failed_starts = 0;
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------ connections */

static void conn_close(conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void conn_close(conn *c, const char *fmt, ...)
{
    if (c->phase == C_DEAD)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    c->phase = C_DEAD;
}

/* A protocol violation: log it, count it, close the connection. */
static void violation(conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void violation(conn *c, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    ms_log("closing connection from %s: %s", c->peer, why);
    M.st.violations++;
    conn_close(c, "protocol error: %s", why);
}

static void refuse(conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void refuse(conn *c, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    ms_log("refused slave %s (pid %" PRIu32 "): %s", c->peer, c->pid, why);
    M.st.refused++;
    ms_ctrl_append_text(&c->out, 0, MS_REFUSE, why);
    c->phase = C_CLOSING;
    c->t_close = ms_now_ms();
}

static void conn_accept(long long now)
{
    size_t handshaking = 0;
    for (size_t i = 0; i < M.nconns; i++)
        handshaking += M.conns[i]->phase == C_HANDSHAKE;
    for (int k = 0; k < 64; k++) {
        char peer[MS_ADDR_LEN];
        int fd = ms_accept(M.listen_fd, peer, sizeof peer);
        if (fd < 0) {
            if (fd == -EAGAIN || fd == -EWOULDBLOCK || fd == -ECONNABORTED ||
                fd == -EINTR)
                return;
            /* Out of descriptors or memory: stop listening for a moment
             * (the listening socket would stay readable and spin poll). */
            if (now - M.t_accept_log >= 5000) {
                ms_log("accept: %s; not accepting for %d ms", strerror(-fd),
                       ACCEPT_PAUSE_MS);
                M.t_accept_log = now;
            }
            M.accept_paused_until = now + ACCEPT_PAUSE_MS;
            return;
        }
        if (handshaking >= MAX_HANDSHAKING) {
            if (now - M.t_accept_log >= 5000) {
                ms_log("closing connection from %s: %d connections are "
                       "already in the handshake",
                       peer, MAX_HANDSHAKING);
                M.t_accept_log = now;
            }
            close(fd);
            continue;
        }
        handshaking++;
        conn *c = ms_xcalloc(1, sizeof *c);
        c->fd = fd;
        c->id = ++M.next_conn_id;
        snprintf(c->peer, sizeof c->peer, "%s", peer);
        c->phase = C_HANDSHAKE;
        c->t_open = c->t_recv = c->t_send = now;
        char err[256];
        if (ms_random_bytes(c->nonce, sizeof c->nonce, err, sizeof err) != 0)
            ms_fatal("%s", err);
        ms_challenge ch = {.version = MS_PROTOCOL_VERSION,
                           .flags = M.auth_required ? MS_CHALLENGE_AUTH : 0};
        memcpy(ch.fingerprint, M.fingerprint, MS_DIGEST_LEN);
        memcpy(ch.nonce, c->nonce, MS_NONCE_LEN);
        ms_challenge_append(&c->out, &ch);
        if (M.nconns == M.conns_cap) {
            M.conns_cap = M.conns_cap ? 2 * M.conns_cap : 16;
            M.conns = ms_xrealloc(M.conns, M.conns_cap * sizeof *M.conns);
            M.sets = ms_xrealloc(M.sets, M.conns_cap * sizeof *M.sets);
        }
        M.conns[M.nconns++] = c;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
        if (epoll_ctl(M.ep_fd, EPOLL_CTL_ADD, fd, &ev) != 0)
            ms_fatal("epoll_ctl(ADD): %s", strerror(errno));
        c->ep_events = ev.events;
        ms_logv("connection from %s", c->peer);
    }
}

/* Read what is there (no lock: the buffers are the reader's; the locked
 * part turns rd_failed into conn_close after using what came, and sets
 * t_recv when this returns 1: something came). */
static int conn_read(conn *c)
{
    if (c->in_off == c->in.len) {
        c->in_off = c->in.len = 0;
    } else if (c->in_off > 0 && c->in.cap - c->in.len < READ_CHUNK) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    ms_buf_reserve(&c->in, READ_CHUNK);
    if (c->rd_failed)
        return 0;
    ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len,
                     MSG_DONTWAIT);
    if (n < 0) {
        if (!ms_errno_is_retry(errno)) {
            snprintf(c->rd_why, sizeof c->rd_why, "read: %s", strerror(errno));
            c->rd_failed = 1;
        }
        return 0;
    }
    if (n == 0) {
        snprintf(c->rd_why, sizeof c->rd_why, "connection closed");
        c->rd_failed = 1;
        return 0;
    }
    c->in.len += (uint64_t)n;
    c->bytes_in += (uint64_t)n;
    return 1;
}

static void conn_write(conn *c, long long now)
{
    while (conn_pending(c)) {
        /* Up to three pieces: `out` up to the next segment, the segment,
         * and `out` from there to the segment after it. */
        struct iovec iov[3];
        int k = 0;
        oseg *sg = c->seg_head < c->nsegs ? &c->segs[c->seg_head] : NULL;
        uint64_t stop = sg ? sg->at : c->out.len;
        if (c->out_off < stop)
            iov[k++] = (struct iovec){c->out.data + c->out_off,
                                      (size_t)(stop - c->out_off)};
        if (sg) {
            iov[k++] = (struct iovec){sg->job->args + sg->sent,
                                      (size_t)(sg->job->args_len - sg->sent)};
            uint64_t stop2 = c->seg_head + 1 < c->nsegs
                                 ? c->segs[c->seg_head + 1].at
                                 : c->out.len;
            if (stop2 > stop)
                iov[k++] = (struct iovec){c->out.data + stop,
                                          (size_t)(stop2 - stop)};
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)k};
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_close(c, "send: %s", strerror(errno));
            return;
        }
        c->bytes_out += (uint64_t)n;
        c->t_send = now;
        uint64_t left = (uint64_t)n;
        uint64_t d = stop - c->out_off < left ? stop - c->out_off : left;
        c->out_off += d;
        left -= d;
        if (sg && left) {
            uint64_t rest = sg->job->args_len - sg->sent;
            d = rest < left ? rest : left;
            sg->sent += d;
            left -= d;
            if (sg->sent == sg->job->args_len) {
                ms_job_unpin(sg->job);
                c->seg_head++;
            }
        }
        c->out_off += left; /* from the third piece */
    }
    c->out_off = c->out.len = 0;
    c->nsegs = c->seg_head = 0;
    if (c->out.cap > (1u << 20))
        ms_buf_free(&c->out); /* do not keep a huge buffer for heartbeats */
}

/* The job ended: if the main thread waits for it, wake it once M.lock is
 * released (so that it does not wake only to block on the lock). */
static void notify_locked(struct ms_job *j)
{
    if (M.waiter == j)
        M.notify = 1;
}

static void handle_hello(conn *c, const uint8_t *p, uint32_t len)
{
    ms_hello h;
    if (ms_hello_decode(p, len, &h) != 0) {
        violation(c, "malformed HELLO of %" PRIu32 " bytes", len);
        return;
    }
    c->pid = h.pid;
    if (h.version != MS_PROTOCOL_VERSION) {
        refuse(c, "the slave speaks protocol version %" PRIu32
                  " but the master speaks version %u",
               h.version, MS_PROTOCOL_VERSION);
        return;
    }
    if (M.auth_required) {
        uint8_t want[MS_DIGEST_LEN];
        ms_auth_proof(&M.secret, c->nonce, M.fingerprint, want);
        if (!ms_digest_equal(want, h.proof)) {
            refuse(c, "authentication failed: the slave does not prove the "
                      "master's secret (MS_TOKEN or --token-file)");
            return;
        }
    }
    if (!ms_digest_equal(h.fingerprint, M.fingerprint)) {
        char mine[2 * MS_DIGEST_LEN + 1], theirs[2 * MS_DIGEST_LEN + 1];
        ms_hex(M.fingerprint, 6, mine);
        ms_hex(h.fingerprint, 6, theirs);
        refuse(c, "the slave was built from a different program or version "
                  "than the master (program fingerprint %s, master's %s)",
               theirs, mine);
        return;
    }
    if (h.threads == 0 || h.threads > MS_MAX_THREADS) {
        refuse(c, "the slave offers %" PRIu32 " threads (1 to %d allowed)",
               h.threads, MS_MAX_THREADS);
        return;
    }
    c->threads = h.threads;
    c->local = is_local_pid(h.pid);
    ms_inflight_init(&c->load, h.threads);
    ms_welcome w = {.heartbeat_ms = (uint32_t)M.hb_timeout_ms,
                    .max_message = M.opt.max_message,
                    .slave_id = c->id};
    ms_welcome_append(&c->out, &w);
    c->phase = C_READY;
    c->was_ready = 1;
    M.ready_slaves++;
    M.st.joined++;
    ms_logv("slave %" PRIu32 " joined from %s (pid %" PRIu32 ", %s, %" PRIu32
            " threads)",
            c->id, c->peer, h.pid, c->local ? "local" : "remote", h.threads);
}

static void handle_result(conn *c, ms_header h, const uint8_t *p)
{
    struct ms_job *j = ms_inflight_find(&c->load, h.jid);
    if (!j) {
        violation(c, "result for job %" PRIu32 ", which it was not running",
                  h.jid);
        return;
    }
    if (j->ordinal != h.ordinal) {
        violation(c, "result for job %" PRIu32 " with ordinal %" PRIu32
                     ", but that job has ordinal %" PRIu32,
                  h.jid, h.ordinal, j->ordinal);
        return;
    }
    const ms_job_entry *e = &ms_job_table[j->ordinal - 1];
    char err[256];
    if (ms_sig_validate(e->ret_sig, p, h.length, M.opt.max_message, err,
                        sizeof err) != 0) {
        violation(c, "result of job %" PRIu32 " ('%s') does not match its "
                     "type \"%s\": %s",
                  h.jid, e->name, e->ret_sig, err);
        return;
    }
    (void)ms_inflight_take(&c->load, h.jid);
    j->where = NULL;
    c->done++;
    c->n_finished++; /* a result, even for a job cancelled meanwhile */
    long long took = ms_now_us() - j->t_sent_us;
    ms_inflight_sample(&c->load, took > 0 ? (uint64_t)took : 0);
    if (j->state == MS_J_INFLIGHT) {
        uint8_t *copy = NULL;
        if (h.length) {
            copy = ms_xmalloc(h.length);
            memcpy(copy, p, h.length);
        }
        ms_job_finish(j, copy, h.length);
        M.st.finished++;
        notify_locked(j);
    }
    ms_job_release(j);
}

static void handle_control(conn *c, ms_header h, const uint8_t *p)
{
    if (h.length == 0) {
        violation(c, "empty control message");
        return;
    }
    uint8_t kind = p[0];
    if (kind == MS_HEARTBEAT && h.length == 1)
        return;
    if ((kind == MS_FAILURE) || (kind == MS_CANCELLED && h.length == 1)) {
        struct ms_job *j = ms_inflight_take(&c->load, h.jid);
        if (!j) {
            violation(c, "%s for job %" PRIu32 ", which it was not running",
                      ms_ctrl_name(kind), h.jid);
            return;
        }
        j->where = NULL;
        c->done++;
        if (kind == MS_FAILURE && j->state == MS_J_INFLIGHT) {
            char text[MS_MAX_TEXT + 1];
            ms_text_decode(p + 1, h.length - 1, text, sizeof text);
            ms_job_fail(j, text);
            M.st.failed++;
            notify_locked(j);
        } else if (kind == MS_CANCELLED && j->state == MS_J_INFLIGHT) {
            /* Only a cancelled job may end without an answer. */
            ms_inflight_add(&c->load, j);
            j->where = c;
            violation(c, "CANCELLED for job %" PRIu32 ", which was not "
                         "cancelled", h.jid);
            return;
        }
        if (kind == MS_FAILURE)
            c->n_failed++;
        else
            c->n_cancelled++;
        ms_job_release(j);
        return;
    }
    violation(c, "unexpected control message %u (%s) of %" PRIu32 " bytes",
              kind, ms_ctrl_name(kind), h.length);
}

/* Parse and act on every complete message received (caller holds M.lock). */
static void conn_process(conn *c)
{
    if (c->phase == C_CLOSING) {
        c->in_off = c->in.len; /* not listening any more */
        return;
    }
    while (c->phase == C_HANDSHAKE || c->phase == C_READY) {
        uint64_t avail = c->in.len - c->in_off;
        if (avail < MS_HDR_LEN)
            return;
        ms_header h = ms_header_decode(c->in.data + c->in_off);
        uint32_t limit =
            c->phase == C_READY ? M.opt.max_message : MS_HANDSHAKE_MAX;
        if (h.length > limit) {
            violation(c, "message of %" PRIu32 " bytes is over the limit of %"
                         PRIu32 " bytes",
                      h.length, limit);
            return;
        }
        if (avail - MS_HDR_LEN < h.length)
            return;
        const uint8_t *p = c->in.data + c->in_off + MS_HDR_LEN;
        c->in_off += MS_HDR_LEN + (uint64_t)h.length;
        if (c->phase == C_HANDSHAKE) {
            if (h.ordinal != 0 || h.length == 0 || p[0] != MS_HELLO) {
                violation(c, "expected a HELLO message to start the handshake");
                return;
            }
            handle_hello(c, p, h.length);
        } else if (h.ordinal == 0) {
            handle_control(c, h, p);
        } else if (h.ordinal > ms_job_count) {
            violation(c, "unknown job ordinal %" PRIu32 " (the program has %"
                         PRIu32 " jobs)",
                      h.ordinal, ms_job_count);
        } else {
            handle_result(c, h, p);
        }
    }
}

/* Forget a closed connection: its jobs go back to the queue, or fail after
 * --max-retries runs (caller holds M.lock). Frees c. */
static void conn_destroy_locked(conn *c)
{
    uint32_t n = c->load.n;
    if (c->was_ready) {
        M.ready_slaves--;
        if (!M.shutting_down) {
            M.st.lost++;
            ms_log("lost slave %" PRIu32 " at %s (pid %" PRIu32 "): %s; %"
                   PRIu32 " of its jobs to run again",
                   c->id, c->peer, c->pid, c->why, n);
        } else {
            ms_logv("slave %" PRIu32 " at %s left: %s", c->id, c->peer, c->why);
        }
    } else if (c->phase == C_DEAD && !M.shutting_down) {
        ms_logv("connection from %s closed during the handshake: %s", c->peer,
                c->why);
    }
    /* Back to the front of the queue, in their original order. */
    for (uint32_t i = n; i-- > 0;) {
        struct ms_job *j = c->load.jobs[i];
        j->where = NULL;
        if (j->state != MS_J_INFLIGHT) {
            ms_job_release(j);
        } else if (j->attempts >= M.opt.max_retries) {
            char msg[MS_ADDR_LEN + 800];
            snprintf(msg, sizeof msg,
                     "its slaves were lost (%d attempts; the last, at %s: %s)",
                     j->attempts, c->peer, c->why);
            ms_job_fail(j, msg);
            M.st.failed++;
            notify_locked(j);
            ms_job_release(j);
        } else {
            j->state = MS_J_PENDING;
            M.st.rerun++;
            c->n_retried++;
            ms_jobq_push_front(&M.pending, j);
        }
    }
    c->load.n = 0;
    M.st.connections++;
    M.st.bytes_in += c->bytes_in;
    M.st.bytes_out += c->bytes_out;
    if (M.opt.stats && c->was_ready) {
        char line[MS_ADDR_LEN + 400];
        int len = snprintf(
            line, sizeof line,
            "%s: stats: slave %" PRIu32 " at %s (pid %" PRIu32 ", %s, %" PRIu32
            " threads): ran %" PRIu64 " jobs (%" PRIu64 " finished, %" PRIu64
            " failed, %" PRIu64 " cancelled), %" PRIu64 " retried elsewhere "
            "after it was lost; sent %" PRIu64 " bytes, received %" PRIu64
            " bytes\n",
            ms_log_name(), c->id, c->peer, c->pid,
            c->local ? "local" : "remote", c->threads, c->done, c->n_finished,
            c->n_failed, c->n_cancelled, c->n_retried, c->bytes_out,
            c->bytes_in);
        if (len > 0)
            ms_buf_append(&M.slave_report, line,
                          (uint64_t)len < sizeof line ? (uint64_t)len
                                                      : sizeof line - 1);
    }
    ms_inflight_free(&c->load);
    if (M.ep_fd >= 0)
        (void)epoll_ctl(M.ep_fd, EPOLL_CTL_DEL, c->fd, NULL);
    if (close(c->fd) != 0)
        ms_logv("close: %s", strerror(errno));
    ms_buf_free(&c->in);
    ms_buf_free(&c->out);
    conn_drop_segs(c);
    free(c->segs);
    free(c);
}

/* Send pending jobs to slaves with room (caller holds M.lock). */
static void dispatch_locked(void)
{
    if (!M.pending.head || M.shutting_down)
        return;
    for (size_t i = 0; i < M.nconns; i++)
        M.sets[i] = M.conns[i]->phase == C_READY ? &M.conns[i]->load : NULL;
    struct ms_job *j;
    long long now = 0;
    while ((j = M.pending.head)) {
        if (j->state != MS_J_PENDING) { /* cancelled while waiting */
            ms_job_release(ms_jobq_pop(&M.pending));
            continue;
        }
        long k = ms_sched_pick(M.sets, M.nconns, &M.sched_cursor);
        if (k < 0)
            return;
        conn *c = M.conns[k];
        (void)ms_jobq_pop(&M.pending);
        j->state = MS_J_INFLIGHT;
        j->attempts++;
        j->where = c;
        if (!now)
            now = ms_now_us();
        j->t_sent_us = now;
        conn_send_job(c, j);
        ms_inflight_add(&c->load, j); /* takes the queue's reference */
    }
}

/* Send what the connections have queued, as far as the kernel takes it
 * without blocking (caller holds M.lock). Returns 1 if some remains. */
static int flush_locked(void)
{
    int left = 0;
    long long now = 0;
    for (size_t i = 0; i < M.nconns; i++) {
        conn *c = M.conns[i];
        if (c->phase == C_DEAD || !conn_pending(c))
            continue;
        if (!now)
            now = ms_now_ms();
        conn_write(c, now);
        left |= conn_pending(c);
    }
    return left;
}

/* Is there work the I/O thread could do now without waiting for input? */
static int work_ready_locked(void)
{
    if (M.shutdown_code >= 0)
        return 1;
    if (!M.pending.head)
        return 0;
    for (size_t i = 0; i < M.nconns; i++) {
        conn *c = M.conns[i];
        if (c->phase == C_READY && c->load.n < c->load.limit)
            return 1;
    }
    /* Cancelled jobs at the head are dropped by dispatch_locked. */
    return M.pending.head->state != MS_J_PENDING;
}

static void min_deadline(long long *next, long long t)
{
    if (t < *next)
        *next = t;
}

/* Timeouts and heartbeats (caller holds M.lock); returns the time of the
 * next such event. */
static long long timers(long long now)
{
    long long next = now + 1000;
    for (size_t i = 0; i < M.nconns; i++) {
        conn *c = M.conns[i];
        switch (c->phase) {
        case C_HANDSHAKE:
            if (now - c->t_open >= HANDSHAKE_TIMEOUT_MS) {
                ms_log("closing connection from %s: no handshake within %d s",
                       c->peer, HANDSHAKE_TIMEOUT_MS / 1000);
                conn_close(c, "handshake timeout");
            } else {
                min_deadline(&next, c->t_open + HANDSHAKE_TIMEOUT_MS);
            }
            break;
        case C_READY:
            if (now - c->t_recv >= M.hb_timeout_ms) {
                conn_close(c, "nothing received for %.1f s (heartbeat timeout)",
                           (double)(now - c->t_recv) / 1000.0);
                break;
            }
            min_deadline(&next, c->t_recv + M.hb_timeout_ms);
            if (now - c->t_send >= M.hb_interval_ms && !conn_pending(c)) {
                ms_ctrl_append(&c->out, 0, MS_HEARTBEAT);
                c->t_send = now; /* counts as sent; the write follows */
            }
            min_deadline(&next, c->t_send + M.hb_interval_ms);
            break;
        case C_CLOSING:
            if (!conn_pending(c) || now - c->t_close >= CLOSE_GRACE_MS)
                conn_close(c, "%s", "refused");
            else
                min_deadline(&next, c->t_close + CLOSE_GRACE_MS);
            break;
        }
    }
    return next;
}

/* Start local slaves that are due (without M.lock: fork takes a while).
 * Returns the time of the next restart, or `next`. */
static long long restart_children(long long now, long long next)
{
    for (size_t i = 0; i < M.nchildren; i++) {
        child *ch = &M.children[i];
        if (ch->pid == 0) {
            if (ch->restart_at <= now)
                spawn_child(ch, now);
            else
                min_deadline(&next, ch->restart_at);
        }
    }
    return next;
}

static void waiting_notice_locked(long long now)
{
    if (!M.pending.head || M.ready_slaves > 0) {
        M.t_waiting_since = 0;
        return;
    }
    if (!M.t_waiting_since) {
        M.t_waiting_since = now;
        M.t_last_notice = 0;
        return;
    }
    if (now - M.t_waiting_since >= WAIT_NOTICE_FIRST_MS &&
        (!M.t_last_notice || now - M.t_last_notice >= WAIT_NOTICE_EVERY_MS)) {
        ms_log("waiting for a slave: %" PRIu64 " jobs are waiting and no slave "
               "is connected (listening on %s)",
               M.pending.n, M.bound);
        M.t_last_notice = now;
    }
}

static void read_signals(void)
{
    struct signalfd_siginfo si;
    for (;;) {
        ssize_t n = read(M.sig_fd, &si, sizeof si);
        if (n != (ssize_t)sizeof si)
            return;
        if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM) {
            pthread_mutex_lock(&M.lock);
            if (M.shutdown_code < 0) {
                M.shutdown_code = 128 + (int)si.ssi_signo;
                M.shutdown_signal = (int)si.ssi_signo;
                M.io_ends_process = 1;
            }
            pthread_mutex_unlock(&M.lock);
        }
    }
}


/* Say GOODBYE, deliver it for a moment, then wait for local slaves and
 * kill those that linger. */
static void shutdown_io(void)
{
    pthread_mutex_lock(&M.lock);
    M.shutting_down = 1;
    /* The main thread may be reading a connection in `get`: it lets go at
     * once (its job will not end now), and the connections are ours. */
    for (;;) {
        int busy = 0;
        for (size_t i = 0; i < M.nconns; i++)
            busy |= M.conns[i]->reader == R_MAIN;
        if (!busy)
            break;
        wake_main();
        pthread_cond_wait(&M.reader_cv, &M.lock);
    }
    pid_t told[M.nconns + 1];
    size_t ntold = 0;
    for (size_t i = 0; i < M.nconns; i++) {
        conn *c = M.conns[i];
        if (c->phase == C_READY) {
            ms_ctrl_append(&c->out, 0, MS_GOODBYE);
            if (c->local)
                told[ntold++] = (pid_t)c->pid;
        }
    }
    long long deadline = ms_now_ms() + GOODBYE_FLUSH_MS;
    for (;;) {
        long long now = ms_now_ms();
        struct pollfd pfd[M.nconns + 1];
        size_t n = 0;
        for (size_t i = 0; i < M.nconns; i++) {
            conn *c = M.conns[i];
            if (c->phase != C_DEAD)
                conn_write(c, now);
            if (c->phase != C_DEAD && conn_pending(c))
                pfd[n++] = (struct pollfd){.fd = c->fd, .events = POLLOUT};
        }
        if (n == 0 || now >= deadline)
            break;
        pthread_mutex_unlock(&M.lock);
        int r = poll(pfd, n, (int)(deadline - now));
        pthread_mutex_lock(&M.lock);
        if (r < 0 && errno != EINTR)
            break;
    }
    for (size_t i = 0; i < M.nconns; i++) {
        conn_close(M.conns[i], "the run ended");
        conn_destroy_locked(M.conns[i]);
    }
    M.nconns = 0;
    pthread_mutex_unlock(&M.lock);

    /* Local slaves that were not told (still starting) end now. */
    for (size_t i = 0; i < M.nchildren; i++) {
        child *ch = &M.children[i];
        int was_told = 0;
        for (size_t k = 0; k < ntold; k++)
            was_told |= ch->pid == told[k];
        if (ch->pid > 0 && !was_told && kill(ch->pid, SIGTERM) != 0)
            ms_logv("kill(%d, SIGTERM): %s", (int)ch->pid, strerror(errno));
    }
    deadline = ms_now_ms() +
               (M.exec_path != M.slave_path ? WRAPPED_GRACE_MS : CHILD_GRACE_MS);
    for (;;) {
        reap_children(ms_now_ms());
        size_t alive = 0;
        for (size_t i = 0; i < M.nchildren; i++)
            alive += M.children[i].pid > 0;
        long long now = ms_now_ms();
        if (!alive)
            break;
        if (now >= deadline) {
            for (size_t i = 0; i < M.nchildren; i++) {
                child *ch = &M.children[i];
                if (ch->pid <= 0)
                    continue;
                ms_log("local slave pid %d did not exit; killing it",
                       (int)ch->pid);
                kill(ch->pid, SIGKILL);
                while (waitpid(ch->pid, NULL, 0) < 0 && errno == EINTR) {
                }
                ch->pid = -1;
            }
            break;
        }
        struct pollfd pfd = {.fd = M.sig_fd, .events = POLLIN};
        long long wait = deadline - now;
        if (poll(&pfd, 1, wait > 50 ? 50 : (int)wait) > 0) {
            struct signalfd_siginfo si;
            while (read(M.sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
            }
        }
    }
}

/* The I/O thread's epoll set: fixed descriptors carry these tags; a
 * connection carries its conn pointer. */
enum { TAG_WAKE = 1, TAG_SIGNAL = 2, TAG_LISTEN = 3 };

static void ep_add(int fd, uint64_t tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    if (epoll_ctl(M.ep_fd, EPOLL_CTL_ADD, fd, &ev) != 0)
        ms_fatal("epoll_ctl(ADD): %s", strerror(errno));
}

static void ep_want(int fd, uint32_t *have, uint32_t want, epoll_data_t data)
{
    if (*have == want)
        return;
    struct epoll_event ev = {.events = want, .data = data};
    if (epoll_ctl(M.ep_fd, EPOLL_CTL_MOD, fd, &ev) != 0)
        ms_fatal("epoll_ctl(MOD): %s", strerror(errno));
    *have = want;
}

/* What the I/O thread's epoll set waits for on a connection (caller holds
 * M.lock): nothing once it is dead, its input unless the main thread reads
 * it, and room to send while output is queued. */
static void ep_want_conn(conn *c)
{
    uint32_t want = c->phase == C_DEAD || c->reader == R_MAIN ? 0 : EPOLLIN;
    if (conn_pending(c))
        want |= EPOLLOUT;
    ep_want(c->fd, &c->ep_events, want, (epoll_data_t){.ptr = c});
}

/* May the main thread read c, to wait for a job in flight on it (caller
 * holds M.lock)? Not while the I/O thread reads it, nor once it is
 * closing or the run is ending. */
static int main_may_read_locked(const conn *c)
{
    return c->phase == C_READY && c->reader == R_NONE && !c->rd_failed &&
           M.shutdown_code < 0 && !M.shutting_down;
}

static void drain_fd(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof v) < 0 && errno == EINTR) {
    }
}

/* `get` of h, in flight on c: read c until h ends, c is closing, or the run
 * ends (caller holds M.lock, and holds it again on return). Everything
 * that comes on c is handled as the I/O thread would; the I/O thread
 * leaves c alone meanwhile, and asks through main_wake_fd when the main
 * thread must let go of it (c closed by a timer, the run ending). */
static void main_read_locked(const struct ms_job *h, conn *c)
{
    c->reader = R_MAIN;
    c->release_asked = 0;
    ep_want_conn(c); /* the I/O thread stops waiting for c's input */
    /* No spinning before the sleep: a spinning main thread keeps its CPU
     * from the slave it waits for whenever the scheduler puts the two on
     * the same CPU (measured: 40 us round trips instead of 24). */
    for (;;) {
        pthread_mutex_unlock(&M.lock);
        struct pollfd pfd[2] = {{.fd = c->fd, .events = POLLIN},
                                {.fd = M.main_wake_fd, .events = POLLIN}};
        int r = poll(pfd, 2, -1);
        if (r < 0 && errno != EINTR)
            ms_fatal("poll: %s", strerror(errno));
        if (r > 0 && pfd[1].revents)
            drain_fd(M.main_wake_fd);
        int got = r > 0 && pfd[0].revents ? conn_read(c) : 0;
        pthread_mutex_lock(&M.lock);
        if (got)
            c->t_recv = ms_now_ms();
        conn_process(c);
        if (c->rd_failed)
            conn_close(c, "%s", c->rd_why);
        /* A result may have made room on c: send it pending jobs now. */
        dispatch_locked();
        int wake = flush_locked() && need_wake_locked();
        if (wake)
            wake_io();
        if (!(h->state == MS_J_PENDING || h->state == MS_J_INFLIGHT) ||
            c->phase != C_READY || M.shutdown_code >= 0 || M.shutting_down)
            break;
    }
    c->reader = R_NONE;
    if (c->phase == C_READY) {
        ep_want_conn(c);
    } else if (need_wake_locked()) {
        wake_io(); /* to end c: its jobs go back to the queue */
    }
    pthread_cond_broadcast(&M.reader_cv);
}

/* The I/O thread waits in one epoll set, so a wake-up costs the same
 * however many connections are open (idle ones included); only what it
 * waits for on a connection changes, with a system call only when it
 * does. */
static void *io_main(void *arg)
{
    (void)arg;
    enum { MAX_EVENTS = 64 };
    struct epoll_event evs[MAX_EVENTS];
    long long next = ms_now_ms();
    int again = 0;
    for (;;) {
        long long now = ms_now_ms();
        next = restart_children(now, next);
        /* The connections' output may change once the lock is dropped; a
         * sender that leaves bytes unsent wakes this thread. */
        pthread_mutex_lock(&M.lock);
        uint32_t listen_want = EPOLLIN;
        if (M.accept_paused_until > now) {
            listen_want = 0;
            min_deadline(&next, M.accept_paused_until);
        }
        ep_want(M.listen_fd, &M.listen_events, listen_want,
                (epoll_data_t){.u64 = TAG_LISTEN});
        for (size_t i = 0; i < M.nconns; i++)
            ep_want_conn(M.conns[i]);
        pthread_mutex_unlock(&M.lock);
        long long wait = again ? 0 : next - now;
        if (wait < 0)
            wait = 0;
        again = 0;
        int r = epoll_wait(M.ep_fd, evs, MAX_EVENTS, (int)wait);
        if (r < 0 && errno != EINTR)
            ms_fatal("epoll_wait: %s", strerror(errno));
        now = ms_now_ms();
        int accepting = 0;
        /* Only this thread frees connections, so the pointers are good. */
        conn *rd[MAX_EVENTS];
        int nrd = 0;
        for (int k = 0; k < r; k++) {
            uint64_t tag = evs[k].data.u64;
            if (tag == TAG_WAKE) {
                drain_fd(M.wake_fd);
            } else if (tag == TAG_SIGNAL) {
                read_signals();
                reap_children(now);
            } else if (tag == TAG_LISTEN) {
                accepting = 1;
            } else if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                rd[nrd++] = evs[k].data.ptr;
            }
        }
        if (r == 0 && M.nchildren)
            reap_children(now); /* in case a SIGCHLD was merged away */
        if (nrd) {
            /* Read, without the lock, the connections no one else reads
             * (the main thread may have taken one since epoll_wait). */
            pthread_mutex_lock(&M.lock);
            for (int k = 0; k < nrd; k++) {
                if (rd[k]->reader == R_NONE)
                    rd[k]->reader = R_IO;
                else
                    rd[k] = NULL;
            }
            pthread_mutex_unlock(&M.lock);
            for (int k = 0; k < nrd; k++)
                if (rd[k] && !conn_read(rd[k]))
                    rd[k] = NULL;
        }

        pthread_mutex_lock(&M.lock);
        M.io_idle = 0;
        for (size_t i = 0; i < M.nconns; i++)
            if (M.conns[i]->reader == R_IO)
                M.conns[i]->reader = R_NONE;
        for (int k = 0; k < nrd; k++)
            if (rd[k])
                rd[k]->t_recv = now;
        if (accepting)
            conn_accept(now);
        for (size_t i = 0; i < M.nconns; i++) {
            if (M.conns[i]->reader == R_MAIN)
                continue;
            conn_process(M.conns[i]);
            if (M.conns[i]->rd_failed)
                conn_close(M.conns[i], "%s", M.conns[i]->rd_why);
        }
        next = timers(now);
        size_t kept = 0;
        for (size_t i = 0; i < M.nconns; i++) {
            conn *c = M.conns[i];
            if (c->phase == C_DEAD && c->reader == R_MAIN) {
                /* The main thread lets go of it, then wakes this thread. */
                if (!c->release_asked) {
                    c->release_asked = 1;
                    wake_main();
                }
                M.conns[kept++] = c;
            } else if (c->phase == C_DEAD) {
                conn_destroy_locked(c);
            } else {
                M.conns[kept++] = c;
            }
        }
        M.nconns = kept;
        if (M.shutdown_code >= 0) {
            pthread_mutex_unlock(&M.lock);
            break;
        }
        dispatch_locked();
        flush_locked();
        waiting_notice_locked(now);
        for (size_t i = 0; i < M.nconns; i++)
            again |= M.conns[i]->phase == C_DEAD &&
                     M.conns[i]->reader != R_MAIN;
        if (!again && !work_ready_locked())
            M.io_idle = 1;
        else
            again = 1;
        int notify = M.notify;
        M.notify = 0;
        pthread_mutex_unlock(&M.lock);
        if (notify)
            pthread_cond_signal(&M.done_cv);
    }
    shutdown_io();
    pthread_mutex_lock(&M.lock);
    int sig = M.shutdown_signal, code = M.shutdown_code;
    int ends = M.io_ends_process;
    pthread_mutex_unlock(&M.lock);
    if (ends) {
        /* The main thread is still in compiled code: end the process here. */
        if (sig)
            ms_log("stopped by signal %d (%s)", sig, strsignal(sig));
        if (M.opt.stats)
            print_stats();
        fflush(stdout);
        _exit(code);
    }
    return NULL;
}

/* ------------------------------------------------------------- main */

static long cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

/* The slave program beside this one: /proc/self/exe with its trailing
 * "-master" replaced by "-slave". Caller frees. */
static char *find_slave_path(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0)
        ms_fatal("readlink(/proc/self/exe): %s", strerror(errno));
    self[n] = '\0';
    size_t len = (size_t)n;
    static const char suffix[] = "-master";
    if (len < sizeof suffix - 1 ||
        strcmp(self + len - (sizeof suffix - 1), suffix) != 0) {
        ms_log("error: cannot find the slave program: this program's name "
               "(%s) does not end in '-master'; use --spawn 0 and start "
               "slaves by hand",
               self);
        exit(2);
    }
    char *path = ms_xmalloc(len + 8);
    memcpy(path, self, len - (sizeof suffix - 1));
    strcpy(path + len - (sizeof suffix - 1), "-slave");
    if (access(path, X_OK) != 0) {
        ms_log("error: cannot run the slave program %s: %s", path,
               strerror(errno));
        exit(1);
    }
    return path;
}

/* The program named by `word`: itself if it holds a '/', else the first
 * executable of that name on $PATH. Caller frees; NULL if none. */
static char *find_program(const char *word)
{
    if (strchr(word, '/'))
        return access(word, X_OK) == 0 ? strdup(word) : NULL;
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        char *full = ms_xmalloc(n + strlen(word) + 3);
        if (n == 0)
            strcpy(full, ".");
        else
            memcpy(full, path, n), full[n] = '\0';
        strcat(full, "/");
        strcat(full, word);
        if (access(full, X_OK) == 0)
            return full;
        free(full);
        path += n + (path[n] == ':');
    }
    return NULL;
}

/* The local slaves' command line: NAME-slave --master ADDR [--verbose],
 * after the words of $MS_SLAVE_WRAPPER if it is set (a debugging aid, e.g.
 * "valgrind --log-file=/tmp/slave.%p": words split at white space, no
 * quoting; the first is looked up on $PATH). */
static void slave_command_line(void)
{
    const char *wrap = getenv("MS_SLAVE_WRAPPER");
    size_t nwords = 0;
    char *copy = strdup(wrap ? wrap : "");
    if (!copy)
        ms_fatal("out of memory");
    for (char *p = copy; *p;) {
        p += strspn(p, " \t\n");
        if (*p)
            nwords++;
        p += strcspn(p, " \t\n");
    }
    M.slave_argv = ms_xcalloc(nwords + 5, sizeof *M.slave_argv);
    size_t k = 0;
    for (char *save = NULL, *w = strtok_r(copy, " \t\n", &save); w;
         w = strtok_r(NULL, " \t\n", &save))
        M.slave_argv[k++] = w; /* `copy` lives as long as the process */
    M.exec_path = M.slave_path;
    if (nwords) {
        M.exec_path = find_program(M.slave_argv[0]);
        if (!M.exec_path) {
            ms_log("error: MS_SLAVE_WRAPPER: cannot find the program '%s'",
                   M.slave_argv[0]);
            exit(2);
        }
        ms_logv("local slaves run under: %s", wrap);
    } else {
        free(copy);
    }
    M.slave_argv[k++] = M.slave_path;
    M.slave_argv[k++] = "--master";
    M.slave_argv[k++] = M.local_addr;
    if (M.opt.verbose)
        M.slave_argv[k++] = "--verbose";
    M.slave_argv[k] = NULL;
}

/* The environment of local slaves: ours, with MS_TOKEN set to the secret
 * (never on a command line, where other users could read it). */
static char **slave_environment(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = ms_xcalloc(n + 2, sizeof *envp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "MS_TOKEN=", 9) != 0)
            envp[k++] = environ[i];
    if (M.secret.data) {
        char *tok = ms_xmalloc(9 + M.secret.len + 1);
        memcpy(tok, "MS_TOKEN=", 9);
        memcpy(tok + 9, M.secret.data, M.secret.len);
        tok[9 + M.secret.len] = '\0';
        envp[k++] = tok;
    }
    envp[k] = NULL;
    return envp;
}

static void check_job_table(void)
{
    char err[256];
    for (uint32_t k = 0; k < ms_job_count; k++) {
        const ms_job_entry *e = &ms_job_table[k];
        if (!e->name || !e->arg_sig || !e->ret_sig || !e->run)
            ms_fatal("internal error: job table entry %u is incomplete", k + 1);
        if (ms_sig_check(e->arg_sig, err, sizeof err) != 0 ||
            ms_sig_check(e->ret_sig, err, sizeof err) != 0)
            ms_fatal("internal error: job '%s': %s", e->name, err);
    }
}

int main(int argc, char **argv)
{
    ms_log_init(argv[0], 0);
    parse_options(argc, argv, &M.opt);
    ms_log_init(argv[0], M.opt.verbose);
    M.t_start = ms_now_ms();
    check_job_table();
    ms_program_fingerprint(M.fingerprint);

    char err[512];
    int have = ms_secret_load(M.opt.token_file, &M.secret, err, sizeof err);
    if (have < 0)
        ms_usage_error(usage_text, "%s", err);
    ms_hostport hp;
    if (ms_parse_hostport(M.opt.listen ? M.opt.listen : "127.0.0.1:0", &hp,
                          err, sizeof err) != 0)
        ms_usage_error(usage_text, "--listen: %s", err);
    int loopback = 0;
    M.listen_fd = ms_listen(&hp, &loopback, M.bound, M.local_addr, err,
                            sizeof err);
    if (M.listen_fd < 0) {
        ms_log("error: %s", err);
        return 1;
    }
    if (!loopback && !have && !M.opt.insecure) {
        close(M.listen_fd);
        ms_usage_error(usage_text, "refusing to listen on %s without a shared secret: set "
                    "MS_TOKEN or --token-file (or pass --insecure)",
                    M.bound);
    }
    if (!have && !M.opt.listen) {
        /* Only local slaves can join: give them a fresh secret. */
        if (ms_secret_random(&M.secret, err, sizeof err) != 0)
            ms_fatal("%s", err);
        have = 1;
    }
    M.auth_required = have;
    if (!loopback && !have)
        ms_log("warning: listening on %s with no shared secret (--insecure): "
               "anyone who can reach it can run jobs and read their arguments",
               M.bound);
    if (M.opt.listen)
        ms_log("listening on %s", M.bound);
    else
        ms_logv("listening on %s", M.bound);

    long spawn = M.opt.spawn;
    if (spawn < 0)
        spawn = M.opt.listen ? 0 : (cpu_count() > 2 ? cpu_count() : 2);
    if (spawn > 0) {
        M.slave_path = find_slave_path();
        slave_command_line();
        M.slave_envp = slave_environment();
        M.children = ms_xcalloc((size_t)spawn, sizeof *M.children);
        M.nchildren = (size_t)spawn;
    }
    M.hb_timeout_ms = (long long)(M.opt.heartbeat_s * 1000.0);
    M.hb_interval_ms = M.hb_timeout_ms / 3 > 0 ? M.hb_timeout_ms / 3 : 1;

    /* Signals: SIGINT, SIGTERM and SIGCHLD arrive through a signalfd read
     * by the I/O thread; every thread blocks them. */
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &ign, NULL) != 0)
        ms_fatal("sigaction(SIGPIPE): %s", strerror(errno));
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (rc != 0)
        ms_fatal("pthread_sigmask: %s", strerror(rc));
    M.sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (M.sig_fd < 0)
        ms_fatal("signalfd: %s", strerror(errno));
    M.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    M.main_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (M.wake_fd < 0 || M.main_wake_fd < 0)
        ms_fatal("eventfd: %s", strerror(errno));
    M.ep_fd = epoll_create1(EPOLL_CLOEXEC);
    if (M.ep_fd < 0)
        ms_fatal("epoll_create1: %s", strerror(errno));
    ep_add(M.wake_fd, TAG_WAKE);
    ep_add(M.sig_fd, TAG_SIGNAL);
    ep_add(M.listen_fd, TAG_LISTEN);
    M.listen_events = EPOLLIN;

    static uint8_t altstack[MS_ALTSTACK_SIZE];
    ms_stack_init_thread(altstack);
    ms_stack_install_handler(" in the master");

    rc = pthread_create(&M.io, NULL, io_main, NULL);
    if (rc != 0)
        ms_fatal("pthread_create: %s", strerror(rc));
    M.io_started = 1;

    ms_master_main();
    master_exit(0);
}
