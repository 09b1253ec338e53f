/* slave.h — the slave's shared state (struct slave S: the connection's
 * input and output, the queue of jobs, the workers), which lock guards
 * which field, and the functions the slave's files share.
 *
 * The slave executable is these files around this header:
 *   slave_main.c    main(): the command line and start-up
 *   slave_conn.c    the connection to the master: connecting, the
 *                   handshake, reading and acting on messages, sending
 *   slave_launched.c the secret on standard input (--token-stdin) and
 *                   watching it (its end means the master is gone); the
 *                   WHERE message
 *   slave_worker.c  the queue of jobs, the worker threads that run
 *                   ms_job_table[ordinal - 1].run, and the job calls of
 *                   ms_abi.h that job code makes (runtime errors, cancel)
 *   slave_output.c  what jobs print, to the master (OUTPUT): the bounded
 *                   buffer of lines and the thread that sends them
 *
 * The slave runs a fixed pool of worker threads that run
 * ms_job_table[ordinal - 1].run. A runtime error in a job longjmps back to
 * its worker (ms_runtime_error), which reports the job failed and goes on.
 *
 * Threads: `threads` + 1 workers, made once. Idle workers wait in one
 * epoll set on the master's socket (edge-triggered) and a "kick" eventfd,
 * so the kernel wakes one of them when a message arrives. That worker
 * reads until the socket is drained (under S.rlock), queues the jobs,
 * answers control messages, then runs a job itself: a job starts on the
 * thread that read it (no thread switch on the way in), and its result
 * goes out from that thread with one send — or, when it ran in
 * microseconds and the job queued behind it was of a kind that does too,
 * with the next send, so that the results of a batch of tiny jobs share a
 * write (a worker that finds no job sends what is held). A worker that takes a job and sees
 * more waiting kicks the eventfd, which wakes another idle one. At most
 * `threads` jobs run at once, so one worker is always left waiting to read.
 * Whoever has a message to send appends it to S.out; one sender at a time
 * writes everything queued with one write, so results that finish together
 * go out together.
 *
 * Locks: three, each guarding the fields listed under it in struct
 * slave: S.qlock (the job queue, which worker runs which job), S.rlock
 * (held by whoever reads from the master), S.slock (what is to be
 * sent). S.qlock or S.slock may be taken while S.rlock is held, never
 * the other way round, and never S.qlock and S.slock together. A fourth,
 * slave_output.c's own, guards the lines printed and not yet queued; it
 * may be taken while S.slock is held, never the other way round.
 *
 * Message batching is slave_conn.c's flush_and_unlock (one write for
 * everything queued). Message protection (protect.c, below the 12-byte
 * framing) is called from slave_conn.c only: the send_* functions seal
 * what they queue in S.out, read_master and read_big open what they
 * parse, so no message handler sees it (master.h says the same for the
 * master). */
#ifndef MS_SLAVE_H
#define MS_SLAVE_H

#include <pthread.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "ms_abi.h"
#include "net.h"
#include "protect.h"
#include "proto.h"
#include "stack.h"
#include "wire.h"

struct shared_args; /* slave_blobs.c */

typedef struct task {
    uint32_t jid, ordinal;
    struct shared_args *shared; /* owned: arguments that name blobs, or NULL */
    uint8_t *args; /* `inline_args`, or an owned buffer (a big message) */
    uint32_t len;
    struct task *next;
    uint8_t inline_args[]; /* a small message's arguments: one allocation */
} task;

typedef struct worker {
    pthread_t th;
    volatile int32_t cancel; /* set (atomically) when its job is cancelled */
    uint32_t jid;            /* guarded by S.qlock: its job, 0 when idle */
    int next_short;          /* S.qlock: a short job was queued behind it */
    pthread_cond_t sleep_cv; /* with S.qlock: a cancel wakes a sleep() */
    /* Only the worker's own thread uses the rest. */
    int in_job;
    jmp_buf jb;
    ms_reader args;
    ms_buf result;
    char msg[MS_MAX_TEXT];
    uint8_t altstack[MS_ALTSTACK_SIZE]; /* its signal stack */
} worker;

struct slave {
    /* Set before the workers start; read-only afterwards. */
    int fd;
    int local;               /* fd is a socket pair from the master (--fd) */
    uint32_t launch_tag;     /* --launch-tag: a master's launcher started us */
    char master[MS_ADDR_LEN];
    long threads;
    uint32_t max_message;
    uint64_t share_cache_bytes; /* --share-cache: idle blobs kept */
    long long hb_timeout_ms, hb_interval_ms;
    int forward;             /* jobs' lines go to the master (no --no-forward) */
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
    uint8_t big_head[12];    /* its header as received (a sealed one's AAD) */
    uint8_t *big_data;       /* owned; NULL when no big message is coming */
    uint64_t big_have;
    ms_chan rx;              /* opens what the master sends (protected) */

    pthread_mutex_t slock;
    /* Guarded by slock: */
    ms_buf out;     /* messages not yet written */
    ms_buf spare;   /* an empty buffer to swap with out */
    int flushing;   /* a thread is writing; others just append */
    int broken;     /* writing failed: the master is gone */
    long long t_send;
    uint64_t out_output; /* bytes of OUTPUT messages in out (slave_output.c) */
    ms_chan tx;     /* seals what is appended to out (protected) */
};

extern struct slave S; /* defined in slave_main.c */

/* slave_main.c */
_Noreturn void slave_exit(int code);

/* slave_conn.c: the connection to the master. */
/* main(): connect to the master and get through the handshake, retrying
 * while the master fails to prove the secret (the real one may come);
 * with S.local, the handshake on the inherited S.fd, once. */
void join_master(const ms_hostport *hp, const ms_secret *secret, int insecure);
void read_master(void);            /* a worker; takes S.rlock */
void keep_alive(void);             /* a worker; takes S.slock, S.rlock */
void send_ctrl(uint32_t jid, uint8_t kind);                 /* take S.slock */
void send_text(uint32_t jid, uint8_t kind, const char *text); /* text borrowed */
/* `hold`: the worker runs a short job next, so the result may wait in
 * S.out for the next send (at most HOLD_MAX_BYTES of them, and a worker
 * that goes idle sends them: send_held). */
void send_result(uint32_t ordinal, uint32_t jid, const ms_buf *result,
                 int hold); /* result borrowed */
void send_held(void);              /* takes S.slock */
/* A control message whose payload (its kind first) is the len bytes at p. */
void send_payload(uint32_t jid, const uint8_t *p, uint32_t len);
/* An OUTPUT message to S.out (caller holds S.slock; p borrowed). */
void output_append_locked(uint32_t jid, uint8_t stream, const uint8_t *p,
                          uint32_t n);
/* Lines pending in slave_output.c to S.out (takes S.slock), and written
 * when `flush` (else the answer sent next writes them). */
void queue_output(int flush);
void send_where_msg(const ms_where *w);                      /* borrowed */
_Noreturn void violation(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* slave_blobs.c: arguments encoded once (share.h). The reader (S.rlock)
 * receives BLOB and SHARED_JOB and cancels parked jobs; workers join a
 * task's arguments and free them. */
void blob_receive(const uint8_t *p, uint32_t len);
void shared_job_receive(uint32_t jid, const uint8_t *p, uint32_t len);
int parked_cancel(uint32_t jid);   /* 1: it was parked, and is gone */
uint8_t *shared_args_join(const struct shared_args *sa, uint32_t *len);
void shared_args_free(struct shared_args *sa);

/* slave_launched.c: main(), before the workers start. */
void token_from_stdin(ms_secret *out); /* caller frees out->data */
void send_where(uint32_t tag);

/* slave_worker.c: the job queue and the workers. */
void queue_task(ms_header h, const uint8_t *p, uint8_t *own); /* takes S.qlock */
void queue_shared_task(uint32_t jid, uint32_t ordinal,
                       struct shared_args *sa); /* takes sa; S.qlock */
void cancel_task(uint32_t jid);    /* takes S.qlock */
void start_workers(void);          /* main(), once */
void report_fault(int overflow);   /* the SIGSEGV handler's hook */

/* slave_output.c: what jobs print (SPEC 12.6), with S.forward. */
void start_output(void);           /* main(), once, before the workers */
void output_job_begin(uint32_t jid, const char *name); /* on the job's worker */
void output_job_end(void);         /* the same, before the job's answer */
void output_move_locked(void);     /* caller holds S.slock */
void output_written(uint64_t bytes); /* any thread: they left the slave */

#endif
