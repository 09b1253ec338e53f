/* proto.h — control messages (ordinal 0): kinds and byte layouts.
 * docs/protocol.md describes the same layouts for people. */
#ifndef MS_PROTO_H
#define MS_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "ms_abi.h"

#define MS_PROTOCOL_VERSION 3u

/* The most jobs a master keeps in flight on a slave, per thread of the
 * slave (tiny jobs prefetched, schedule.h); a slave holding more than
 * this many for its threads is talking to a broken or hostile master. */
#define MS_PREFETCH_MAX 64u

/* The first payload byte of a control message. */
enum ms_ctrl_kind {
    MS_CHALLENGE = 1, /* master -> slave, first message on a connection */
    MS_HELLO = 2,     /* slave -> master, answers CHALLENGE */
    MS_WELCOME = 3,   /* master -> slave: accepted */
    MS_REFUSE = 4,    /* master -> slave: refused, with a reason */
    MS_FAILURE = 5,   /* slave -> master: job jid failed, with its error */
    MS_CANCEL = 6,    /* master -> slave: stop job jid */
    MS_CANCELLED = 7, /* slave -> master: job jid stopped, no result */
    MS_HEARTBEAT = 8, /* both ways, when nothing else was sent for a while */
    MS_GOODBYE = 9,   /* master -> slave: the run is over */
    MS_OUTPUT = 10,   /* slave -> master: a line job jid printed */
    MS_WHERE = 11,    /* slave -> master, right after WELCOME: how it was
                         started and on which host it runs (--stats) */
    /* Arguments encoded once (share.h): */
    MS_BLOB = 16,       /* master -> slave: a shared value, named by digest */
    MS_SHARED_JOB = 17, /* master -> slave: a job request using blobs */
    MS_WANT = 18,       /* slave -> master: send the blob of this digest */
};

/* OUTPUT: the kind byte, a stream byte, then the line (no newline) or,
 * for MS_STREAM_DROPPED, a u32 count of lines dropped. */
enum ms_output_stream {
    MS_STREAM_STDOUT = 1,  /* print */
    MS_STREAM_STDERR = 2,  /* eprint */
    MS_STREAM_DROPPED = 3, /* the slave's output buffer was full */
};
#define MS_MAX_LINE 3584 /* longest line in an OUTPUT; longer ones are split */

/* CHALLENGE flags. */
#define MS_CHALLENGE_AUTH 1u /* mutual proofs of the secret, then protection */

#define MS_CHALLENGE_LEN (1 + 4 + 4 + MS_DIGEST_LEN + MS_NONCE_LEN)
#define MS_HELLO_LEN (1 + 4 + MS_DIGEST_LEN + 4 + 4 + MS_NONCE_LEN + MS_DIGEST_LEN)
#define MS_WELCOME_LEN (1 + 4 + 4 + 4 + MS_DIGEST_LEN)
#define MS_WHERE_MIN (1 + 4 + 4 + 1)
#define MS_WHERE_HOST_MAX 255 /* longest host name in a WHERE */
#define MS_MAX_TEXT 4096   /* longest REFUSE reason or FAILURE text */
#define MS_HANDSHAKE_MAX 4096 /* longest message before the handshake ends */
#define MS_MAX_THREADS 1024

typedef struct ms_challenge {
    uint32_t version, flags;
    uint8_t fingerprint[MS_DIGEST_LEN];
    uint8_t nonce[MS_NONCE_LEN];
} ms_challenge;

typedef struct ms_hello {
    uint32_t version;
    uint8_t fingerprint[MS_DIGEST_LEN];
    uint32_t threads, pid;
    uint8_t nonce[MS_NONCE_LEN];  /* the slave's, fresh for the connection */
    uint8_t proof[MS_DIGEST_LEN]; /* ms_slave_proof; zeros without a secret */
} ms_hello;

typedef struct ms_welcome {
    uint32_t heartbeat_ms; /* send something at least this often */
    uint32_t max_message;  /* longest payload either side may send */
    uint32_t slave_id;     /* the master's number for this slave (logs) */
    uint8_t proof[MS_DIGEST_LEN]; /* ms_master_proof; zeros unless AUTH */
} ms_welcome;

typedef struct ms_where {
    uint32_t tag;   /* the --launch-tag its launcher gave it, 0: none */
    uint32_t task;  /* its Slurm task (SLURM_PROCID) + 1, 0: none */
    char host[MS_WHERE_HOST_MAX + 1]; /* its host name (decoded: no
                                         control characters) */
} ms_where;

/* Append whole messages (header included) to `out` (borrowed). */
void ms_ctrl_append(ms_buf *out, uint32_t jid, uint8_t kind);
void ms_ctrl_append_text(ms_buf *out, uint32_t jid, uint8_t kind,
                         const char *text);
/* An OUTPUT message: `n` (at most MS_MAX_LINE) bytes of a line, or the
 * u32 count of MS_STREAM_DROPPED. */
void ms_output_append(ms_buf *out, uint32_t jid, uint8_t stream,
                      const void *bytes, uint32_t n);
/* A REFUSE: the reason (at most MS_MAX_TEXT bytes of it), then, under
 * AUTH, the proof of ms_refusal_proof over those bytes (NULL: none). */
void ms_refuse_append(ms_buf *out, const char *text,
                      const uint8_t proof[MS_DIGEST_LEN]);
void ms_challenge_append(ms_buf *out, const ms_challenge *c);
void ms_hello_append(ms_buf *out, const ms_hello *h);
void ms_welcome_append(ms_buf *out, const ms_welcome *w);
void ms_where_append(ms_buf *out, const ms_where *w);

/* Decode a control payload (kind byte included) of exactly the right
 * length; 0, or -1 if the length is wrong. */
int ms_challenge_decode(const uint8_t *p, uint32_t len, ms_challenge *c);
int ms_hello_decode(const uint8_t *p, uint32_t len, ms_hello *h);
int ms_welcome_decode(const uint8_t *p, uint32_t len, ms_welcome *w);
/* WHERE: a host name of 1 to MS_WHERE_HOST_MAX bytes. */
int ms_where_decode(const uint8_t *p, uint32_t len, ms_where *w);

/* Copy the text of a REFUSE or FAILURE payload (after the kind byte) into
 * `out`, at most MS_MAX_TEXT bytes, replacing control characters (C0, DEL
 * and C1, U+0080..U+009F) and bytes that are not valid UTF-8 with '?', so
 * a peer cannot write escape sequences to our terminal. */
void ms_text_decode(const uint8_t *p, uint32_t len, char *out, size_t outlen);

/* The same for a line a job printed (OUTPUT), which keeps its tabs. */
void ms_line_decode(const uint8_t *p, uint32_t len, char *out, size_t outlen);

const char *ms_ctrl_name(uint8_t kind);

#endif
