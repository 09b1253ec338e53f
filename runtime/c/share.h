/* share.h — arguments encoded once (issue 13): a vector or map passed to
 * many jobs is encoded once in the master into a blob that all their
 * requests share; each slave receives a blob once (a BLOB message, named
 * by its SHA-256) and keeps it in a bounded cache while jobs use it. A
 * request that uses blobs is a SHARED_JOB control message: the job's
 * literal argument bytes with, at given offsets, blobs named by digest.
 * The bytes are in docs/protocol.md. */
#ifndef MS_SHARE_H
#define MS_SHARE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "ms_abi.h"

/* An argument whose encoding takes at least this many bytes is shared. */
#define MS_SHARE_MIN (64 * 1024)
/* The most blobs one SHARED_JOB message names. */
#define MS_SHARE_MAX_REFS 1024u

/* BLOB payload: kind, digest, the encoded value. */
#define MS_BLOB_HEAD (1 + MS_DIGEST_LEN)
/* SHARED_JOB payload: kind, ordinal u32, literal length u32, count u32;
 * then per blob at u32 (an offset in the literal bytes), length u32,
 * digest; then the literal bytes. */
#define MS_SHARED_JOB_HEAD (1 + 4 + 4 + 4)
#define MS_SHARED_REF_LEN (4 + 4 + MS_DIGEST_LEN)
/* WANT payload: kind, digest. */
#define MS_WANT_LEN (1 + MS_DIGEST_LEN)

void ms_sha256(const uint8_t *p, size_t n, uint8_t out[MS_DIGEST_LEN]);

/* A blob in the master: its BLOB message's payload, made once.
 * References: the cache's, one per job whose arguments use it, one per
 * connection sending it. Atomic: jobs are released in any thread. */
typedef struct ms_blob {
    atomic_uint refs;
    uint32_t len;        /* of the encoded value */
    uint64_t id;         /* unique in the run (connections' sent sets) */
    uint8_t *payload;    /* MS_BLOB_HEAD + len bytes: kind, digest, value */
} ms_blob;

static inline const uint8_t *ms_blob_digest(const ms_blob *b)
{
    return b->payload + 1;
}

void ms_blob_retain(ms_blob *b);  /* jobs.c */
void ms_blob_release(ms_blob *b);

/* The arguments of a job that uses blobs: its literal bytes, and where
 * each blob goes among them (at: an offset in lit, in order). Owned by
 * the job; holds a reference to each blob. */
typedef struct ms_args_pieces {
    uint32_t n, lit_len;
    uint8_t *lit;
    struct ms_piece {
        uint32_t at;
        ms_blob *blob;
    } ref[];
} ms_args_pieces;

void ms_args_pieces_free(ms_args_pieces *p); /* jobs.c */

/* Master: the encoder's hook (codec.c calls it for every aggregate it
 * encodes into ms_args_new's buffer; 0: encode it plainly), the blobs the
 * arguments being built use (taken by ms_job_new), and dropping cached
 * values no job has used for a while (ms_start_job). Main thread only;
 * what is cached at exit is still reachable, not leaked. */
extern int (*ms_share_hook)(const ms_type *t, const void *value, ms_buf *b);
void ms_value_encode_plain(const ms_type *t, const void *value, ms_buf *b);
int ms_is_args_buf(const ms_buf *b); /* ser.c: is b ms_args_new's? */
int ms_share_hook_master(const ms_type *t, const void *value, ms_buf *b);
uint64_t ms_share_pending_bytes(void);
ms_args_pieces *ms_share_take(ms_buf *literal);
void ms_share_sweep(void);

#endif
