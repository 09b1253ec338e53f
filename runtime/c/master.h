/* master.h — the master's shared state (struct master M and its parts:
 * connections, local slave processes, counters), which lock guards which
 * field and which thread owns what, and the functions the master's files
 * share.
 *
 * The master executable is these files around this header:
 *   master_main.c   main(): the command line and start-up (the listening
 *                   socket, the secret, signals, the I/O thread)
 *   master_local.c  local slave processes: their command line and
 *                   environment, fork/exec, reaping, restarts
 *   master_launch.c what the launchers share: starting ssh or srun so
 *                   that it dies with the master, reaping and reporting
 *                   them, ending them with the run, --stats origins
 *   master_launch_ssh.c   --ssh: a slave per host through OpenSSH
 *   master_launch_srun.c  --srun: a slave per task of a Slurm allocation
 *   master_secret.c the secret file (and the slave command line using it)
 *                   of a master whose slaves are started by hand
 *   master_conn.c   one connection: accepting it, the handshake (CHALLENGE,
 *                   HELLO, WELCOME or REFUSE), reading, acting on messages,
 *                   writing, closing; and sending pending jobs to slaves
 *                   with room (dispatch_locked, flush_locked)
 *   master_output.c the lines jobs printed on slaves (OUTPUT), checked and
 *                   written to the master's stderr with their prefix
 *   master_budget.c the memory budget for partial input across
 *                   connections: reserving, pausing, resuming
 *   master_io.c     the I/O thread: its epoll loop, wake-ups, signals,
 *                   timers (handshake timeouts, heartbeats)
 *   master_calls.c  the job calls of ms_abi.h that compiled master code
 *                   makes (ms_start_job, ms_reap_job, ...) and `get`'s fast
 *                   path: the main thread reading a connection itself
 *   master_exit.c   ending the run: GOODBYE to the slaves, waiting for the
 *                   local ones, --stats, runtime errors of the master block
 *   master_trace.c  --trace FILE: the run's timeline, Chrome trace events
 *   master_progress.c --progress: the status line on a terminal's stderr
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
 * any `get` whose job is pending.
 *
 * Locks: one, M.lock. A function named *_locked, and every function
 * declared below as "caller holds M.lock", runs with it held; the struct
 * comments say which fields it guards and which belong to one thread.
 *
 * Homes for work to come:
 *   - message batching: what a connection sends is queued in conn.out
 *     (conn_send_job, ms_ctrl_append) and written by conn_write, both in
 *     master_conn.c; the slave's side is slave_conn.c's flush_and_unlock.
 *
 * Message protection (protect.c, below the 12-byte framing) is called only
 * where bytes are queued, written and parsed (conn_send_job,
 * conn_send_ctrl, conn_write and conn_process in master_conn.c), so that
 * no message handler sees a tag or a cipher. TCP connections are
 * protected once through the handshake (unless --insecure); local slaves
 * talk over an inherited socket pair, which nobody else can reach, in
 * plain. */
#ifndef MS_MASTER_H
#define MS_MASTER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "auth.h"
#include "jobs.h"
#include "ms_abi.h"
#include "net.h"
#include "protect.h"
#include "proto.h"
#include "schedule.h"
#include "wire.h"

typedef struct options {
    long spawn;            /* local slaves; -1: the default */
    const char *listen;    /* HOST:PORT; NULL: loopback, free port */
    int verbose, insecure, stats;
    int progress;          /* --progress, and stderr is a terminal */
    const char *trace;     /* --trace FILE, or NULL */
    long max_attempts;     /* runs of a job whose slaves are lost, in all */
    double heartbeat_s;
    uint32_t max_message;
    const char *token_file;
    char *ssh;             /* --ssh hosts, comma-separated (owned); NULL */
    int srun;              /* --srun */
    const char *slave_path; /* --slave-path: the launched slaves' program */
    const char *advertise; /* --advertise HOST: launched slaves connect there */
} options;

/* Arguments of at least SEG_MIN bytes are sent from the job's own buffer
 * instead of being copied into a connection's `out`: the connection keeps
 * a segment saying where in `out` they go. */
#define SEG_MIN 65536
typedef struct oseg {
    uint64_t at;         /* the bytes go on the wire just before out.data[at] */
    const uint8_t *data; /* the payload's bytes, owned by one of: */
    uint64_t len;
    struct ms_job *job;  /* pinned (ms_job_pin): its argument bytes, or */
    struct ms_blob *blob; /* retained: a BLOB message's payload */
    uint64_t sent;
    /* On a protected connection the bytes go out encrypted, a piece at a
     * time (conn.segbuf), and their tag is the MS_TAG_LEN bytes reserved
     * at out.data[at]: the message's counter and sealed header. */
    uint64_t seq;
    uint8_t head[12];
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
    uint8_t nonce[MS_NONCE_LEN];   /* the master's nonce in its CHALLENGE */
    uint8_t snonce[MS_NONCE_LEN];  /* the slave's, from its HELLO */
    uint32_t threads;
    uint32_t pid;
    int local;           /* a local slave on its inherited socket pair */
    pid_t child;         /* that slave's process (local only) */
    int auth;            /* the handshake proves the secret both ways */
    /* Protection once through the handshake (auth only): tx seals what is
     * queued in `out`, rx opens what conn_process parses. tx is guarded by
     * M.lock; rx is used under M.lock by conn_process. */
    ms_chan tx, rx;
    void *seg_ctx;       /* cipher of the head segment, M.lock */
    uint8_t *segbuf;     /* its ciphertext [seg_lo, seg_hi), M.lock */
    uint64_t seg_lo, seg_hi;
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
    /* Blobs (share.h) sent on this connection, the last SENT_BLOBS of
     * them by id, M.lock: a shared job's blobs go before it unless sent
     * already; a slave that lost one asks for it again (WANT). */
    uint64_t sent_blobs[16];
    uint32_t nsent_blobs;
    ms_inflight load;
    uint64_t done;       /* results and failures received */
    /* For --stats: answers by kind, jobs put back in the queue when the
     * connection was lost, and bytes both ways (bytes_in is the reader's;
     * the rest is guarded by M.lock). */
    uint64_t n_finished, n_failed, n_cancelled, n_retried;
    uint64_t bytes_in, bytes_out;
    /* The budget for partial input (master_budget.c), M.lock: bytes
     * reserved for the message coming in; paused: waiting to reserve
     * in_need bytes (nobody reads it meanwhile), served in in_ticket
     * order. */
    uint64_t in_grant, in_need, in_ticket;
    int in_paused;
    uint32_t ep_events;  /* what the I/O thread's epoll set waits for */
    /* --trace (master_trace.c), M.lock: the jid of the job in flight in
     * each lane (0: none), nlanes of them so far. */
    uint32_t *lanes;
    uint32_t nlanes;
    char why[600];       /* why it is closing, for the log */
    /* From the slave's WHERE (M.lock): the launcher's tag (an index + 1
     * into M.launched; 0: none), its Slurm task + 1 (0: none), its host
     * name ("" until told). */
    uint32_t tag, task;
    char host[MS_WHERE_HOST_MAX + 1];
} conn;

/* Is there output not yet sent? */
static inline int conn_pending(const conn *c)
{
    return c->out_off < c->out.len || c->seg_head < c->nsegs;
}

/* A local slave process. pid 0: not running, restart at restart_at. */
typedef struct child {
    pid_t pid;
    long long started, restart_at;
    int backoff_ms;
    int joined;          /* it got through the handshake */
    int failed_starts;   /* exits before joining since it last joined */
    char threads[24];    /* its --threads: its share of the CPUs */
} child;

/* A launcher process (ssh to one host, or the srun of all tasks). */
enum { L_SSH = 1, L_SRUN = 2 };
typedef struct launched {
    int kind;            /* L_SSH or L_SRUN */
    char *host;          /* ssh: the destination as given (owned); NULL */
    char *what;          /* "ssh slave on HOST", "srun slaves" (owned) */
    pid_t pid;           /* 0 once it ended (or never started) */
    int in_fd;           /* our end of its stdin, open until the end; -1 */
    int status;          /* its wait status once reaped; -1: unknown */
} launched;

/* --stats of one slave that left, or the sum over several. */
typedef struct slave_tally {
    uint64_t slaves, ran, finished, failed, cancelled, retried;
    uint64_t bytes_out, bytes_in;
} slave_tally;

/* --stats keeps a line for each of the most recent slaves that left, and
 * only the sums of the slaves before them (a master may see millions). */
#define STATS_RECENT_SLAVES 32
typedef struct slave_line {
    char *text;          /* owned; NULL for an unused slot */
    slave_tally t;
} slave_line;

typedef struct stats {
    uint64_t started, finished, failed, cancelled, rerun;
    uint64_t cancelled_sent; /* of `cancelled`: in flight on a slave */
    uint64_t joined, lost, refused, violations;
    uint64_t connections, bytes_in, bytes_out; /* of closed connections */
} stats;

/* The master's state: one instance, M, defined in master_main.c. Each
 * field is read-only once the I/O thread runs, guarded by M.lock, or the
 * I/O thread's own, as the comments in it say. */
struct master {
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
    char **slave_argv;       /* owned array, for execve; the word at
                                threads_word is each child's `threads` */
    size_t threads_word;
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
    int waiting_any;         /* ms_wait_any waits: any job's end notifies */
    int notify;              /* signal done_cv after unlocking */
    int io_idle;             /* the I/O thread is (about to be) in poll */
    int shutdown_code;       /* -1 while running */
    int shutdown_signal;     /* the signal that ended the run, or 0 */
    int io_ends_process;     /* the I/O thread ends the run (the main thread
                                is still in compiled code) */
    uint32_t next_jid;
    uint32_t ready_slaves;
    stats st;
    /* --stats of slaves that left: the last STATS_RECENT_SLAVES in a ring
     * (slave_lines[k % STATS_RECENT_SLAVES] for the k-th to leave, k from
     * 0 to slaves_left - 1), the sums of the earlier ones in `older`. */
    slave_line slave_lines[STATS_RECENT_SLAVES];
    uint64_t slaves_left;
    slave_tally older;
    /* Partial input across connections (master_budget.c): the budget,
     * what connections have reserved of it, how many wait for it, the
     * last waiter's ticket; in_resumed: a waiter was resumed (the I/O
     * thread must wait for its input again). */
    uint64_t in_budget, in_granted, in_tickets;
    uint32_t in_waiting;
    int in_resumed;
    conn **conns;
    size_t nconns, conns_cap;
    ms_inflight **sets;      /* scratch for ms_sched_pick, conns_cap long */
    size_t sched_cursor;
    int shutting_down;

    /* Owned by the I/O thread; no lock: */
    uint32_t next_conn_id;
    child *children;
    size_t nchildren;
    launched *launched;      /* made by main(); see master_launch.c */
    size_t nlaunched;
    int launch_exhausted;    /* every launcher ended and no slave can come */
    long long t_waiting_since, t_last_notice;
    long long accept_paused_until, t_accept_log;
    uint32_t listen_events;
};

static inline void min_deadline(long long *next, long long t)
{
    if (t < *next)
        *next = t;
}

extern struct master M; /* defined in master_main.c */

/* The I/O thread's epoll set: fixed descriptors carry these tags; a
 * connection carries its conn pointer. */
enum { TAG_WAKE = 1, TAG_SIGNAL = 2, TAG_LISTEN = 3 };

/* master_local.c: local slave processes; the child table is the I/O
 * thread's (set up by main() before it starts). */
char *slave_beside(char *why, size_t n); /* caller frees; NULL: why */
char *find_slave_path(void);       /* caller frees (main: M.slave_path) */
void slave_command_line(void);     /* main(): sets M.slave_argv, M.exec_path */
void share_cpus(long cpus);        /* main(), after M.children is made */
char **slave_environment(void);    /* caller owns the array (M.slave_envp) */
void reap_children(long long now);            /* I/O thread, without M.lock */
long long restart_children(long long now, long long next); /* the same */
void local_joined(pid_t pid);      /* caller holds M.lock; I/O thread */
char *find_program(const char *word); /* caller frees; NULL: none on $PATH */
void child_start(pid_t parent);    /* a child of ours before execve */

/* master_launch.c, master_launch_ssh.c, master_launch_srun.c: launchers.
 * main() makes M.launched and starts them before the I/O thread; the
 * rest is the I/O thread's. Strings and arrays are borrowed except where
 * said. */
char **split_words(const char *s, size_t extra, size_t *n); /* never freed */
int launch_process(launched *l, char **argv, char **envp, const char *line);
void bound_hostport(ms_hostport *out);
int is_wildcard(const char *host);
int route_source(const char *host, int v4_only, char *out, size_t n);
void join_hostport(const char *host, const char *port, char *out, size_t n);
int child_ended(pid_t pid, int *st, char *how, size_t n);
char **command_words(const char *var, const char *dflt, size_t extra,
                     size_t *n);         /* never freed */
void reap_launched(void);          /* I/O thread, without M.lock */
void launch_check_locked(void);    /* caller holds M.lock; I/O thread */
void end_launched(void);           /* shutdown_io, without M.lock */
void describe_origin_locked(const conn *c, char *out, size_t n);
void start_ssh_slaves(size_t first);
void check_srun_usage(void);
void start_srun_slaves(size_t at);

/* master_secret.c: the secret file for slaves started by hand (main());
 * the path returned is static storage; NULL with a reason in err. Its
 * removal is async-signal-safe and runs at every exit. */
const char *secret_file_write(const ms_secret *secret, char *err, size_t n);
void secret_file_remove(void);

/* master_conn.c: caller holds M.lock, except for conn_read; every conn is
 * borrowed except by conn_destroy_locked, which frees it. */
void conn_close(conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void conn_accept(long long now);   /* I/O thread */
void conn_adopt_local(int fd, pid_t pid, long long now); /* I/O thread */
void conn_send_ctrl(conn *c, uint32_t jid, uint8_t kind);
int conn_read(conn *c);            /* without M.lock, by c's reader */
void conn_write(conn *c, long long now);
void conn_process(conn *c);
void conn_destroy_locked(conn *c); /* frees c; I/O thread */
void dispatch_locked(void);
int flush_locked(void);

/* master_output.c: an OUTPUT message (p: its payload, kind byte first)
 * from c, written to stderr; caller holds M.lock. -1 with the reason in
 * `why` for a message to close the connection for. */
int conn_output(conn *c, ms_header h, const uint8_t *p, char *why, size_t n);
/* master_budget.c: the memory budget for partial input across
 * connections. in_budget_init: main(), once the options are known; the
 * rest: caller holds M.lock. in_settle_locked: c's next message, still
 * partial, needs `need` bytes (header included; 0: none begun), after
 * conn_process parsed what came: reserves them, pauses c, or gives back
 * what c held (and serves waiters). in_forget_locked: c is going (it
 * serves nobody: M.conns may hold freed connections meanwhile);
 * in_resume_locked: serve waiters, once M.conns is whole again. */
void in_budget_init(void);
void in_settle_locked(conn *c, uint64_t need);
void in_forget_locked(conn *c);
void in_resume_locked(void);

/* master_calls.c: before the main thread blocks (get, wait, wait_any,
 * sleep), what it must do first: flush the master's stdout (SPEC 12.6).
 * Main thread, without M.lock. */
void ms_master_before_wait(void);

/* master_io.c: the I/O thread and waking it. */
void wake_io(void);                /* any thread, with or without M.lock */
void wake_main(void);              /* the same */
int need_wake_locked(void);        /* caller holds M.lock */
void ep_add(int fd, uint64_t tag); /* main(), before the I/O thread starts */
void ep_want_conn(conn *c);        /* caller holds M.lock */
void drain_fd(int fd);            /* read an eventfd empty; any thread */
void *io_main(void *arg);          /* the I/O thread's body; arg unused */

/* master_trace.c: --trace. trace_open in main() before threads start;
 * the rest with M.lock held, each only when trace_on. A job's attempt is
 * traced from trace_sent (dispatch_locked) to trace_answered (its answer,
 * or its slave's end); `outcome` is static text, "ok", "failed",
 * "cancelled", "lost" or "abandoned". */
extern int trace_on;               /* read-only once threads run */
void trace_open(const char *path); /* exits with a message on failure */
void trace_slave_joined(conn *c);
void trace_slave_left(conn *c, int lost);
void trace_sent(conn *c, struct ms_job *j);
void trace_answered(conn *c, struct ms_job *j, const char *outcome,
                    uint64_t bytes_from_slave);
void trace_close(void);            /* completes the file; idempotent */

/* master_progress.c: --progress (M.opt.progress). The I/O thread calls
 * progress_tick each round without M.lock; it redraws the status line
 * when due and returns when it is next due (`next` when off). */
long long progress_tick(long long now, long long next);
void progress_end(void);           /* erase the line for good; any thread */

/* master_exit.c: ending the run. */
void print_stats(void);            /* takes M.lock */
_Noreturn void master_exit(int code); /* main thread, without M.lock */
void shutdown_io(void);            /* I/O thread, without M.lock */
void nap_on_signals(long long left); /* the same */

#endif
