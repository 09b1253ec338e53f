/* slave_blobs.c — arguments encoded once, the slave's half (share.h): the
 * cache of blobs the master sent (by SHA-256, checked on arrival), jobs
 * that name blobs (SHARED_JOB) resolved against it or parked until the
 * blobs they lack come (asked for with WANT), and the arguments of such a
 * job put together when a worker runs it.
 *
 * Locks: the cache has its own, blobs_lock (taken by the reader, under
 * S.rlock, and by workers letting go of a job's blobs; no other lock is
 * taken while it is held). The parked jobs are the reader's (S.rlock). */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proto.h"
#include "ser.h"
#include "share.h"
#include "slave.h"
#include "wire.h"

/* Blobs no queued or running job uses are let go, least recently used
 * first, beyond S.share_cache_bytes (--share-cache) in all. */

typedef struct sblob {
    uint8_t digest[MS_DIGEST_LEN];
    uint32_t len;
    uint32_t refs;       /* jobs queued or running that use it */
    uint64_t used;       /* the cache's clock when last named */
    uint8_t *data;
} sblob;

struct shared_args {
    uint32_t n, lit_len;
    uint8_t *lit;
    uint64_t total;
    struct sref {
        uint32_t at, len;
        uint8_t digest[MS_DIGEST_LEN];
        sblob *blob;     /* NULL until resolved */
    } ref[];
};

static pthread_mutex_t blobs_lock = PTHREAD_MUTEX_INITIALIZER;
/* Guarded by blobs_lock: */
static sblob **blobs;
static size_t nblobs, blobs_cap;
static uint64_t blobs_bytes, blobs_clock;

/* Jobs waiting for blobs, the reader's (S.rlock). */
typedef struct parked {
    uint32_t jid, ordinal;
    struct shared_args *sa;
    struct parked *next;
} parked;
static parked *parked_jobs;
static size_t nparked;

static sblob *find_locked(const uint8_t *digest)
{
    for (size_t i = 0; i < nblobs; i++)
        if (memcmp(blobs[i]->digest, digest, MS_DIGEST_LEN) == 0)
            return blobs[i];
    return NULL;
}

static void evict_locked(uint64_t room)
{
    while (blobs_bytes + room > S.share_cache_bytes) {
        size_t victim = SIZE_MAX;
        for (size_t i = 0; i < nblobs; i++)
            if (blobs[i]->refs == 0 &&
                (victim == SIZE_MAX || blobs[i]->used < blobs[victim]->used))
                victim = i;
        if (victim == SIZE_MAX)
            return; /* all in use: jobs queued bound them */
        ms_logv("shared value %02x%02x... (%" PRIu32 " bytes) let go",
                blobs[victim]->digest[0], blobs[victim]->digest[1],
                blobs[victim]->len);
        blobs_bytes -= blobs[victim]->len;
        free(blobs[victim]->data);
        free(blobs[victim]);
        blobs[victim] = blobs[--nblobs];
    }
}

/* Resolve what sa still lacks; returns 1 when nothing is missing. */
static int resolve(struct shared_args *sa)
{
    int whole = 1;
    pthread_mutex_lock(&blobs_lock);
    for (uint32_t i = 0; i < sa->n; i++) {
        struct sref *r = &sa->ref[i];
        if (r->blob)
            continue;
        sblob *b = find_locked(r->digest);
        if (b && b->len == r->len) {
            b->refs++;
            b->used = ++blobs_clock;
            r->blob = b;
        } else {
            whole = 0;
        }
    }
    pthread_mutex_unlock(&blobs_lock);
    return whole;
}

void shared_args_free(struct shared_args *sa)
{
    if (!sa)
        return;
    pthread_mutex_lock(&blobs_lock);
    for (uint32_t i = 0; i < sa->n; i++)
        if (sa->ref[i].blob)
            sa->ref[i].blob->refs--;
    pthread_mutex_unlock(&blobs_lock);
    free(sa->lit);
    free(sa);
}

void blob_receive(const uint8_t *p, uint32_t len)
{
    if (len < MS_BLOB_HEAD)
        violation("BLOB of %" PRIu32 " bytes, shorter than its digest", len);
    uint32_t n = len - MS_BLOB_HEAD;
    uint8_t digest[MS_DIGEST_LEN];
    ms_sha256(p + MS_BLOB_HEAD, n, digest);
    if (!ms_digest_equal(digest, p + 1))
        violation("BLOB of %" PRIu32 " bytes does not match its digest", n);
    pthread_mutex_lock(&blobs_lock);
    if (!find_locked(digest)) {
        evict_locked(n);
        sblob *b = ms_xcalloc(1, sizeof *b);
        memcpy(b->digest, digest, MS_DIGEST_LEN);
        b->len = n;
        b->used = ++blobs_clock;
        b->data = ms_xmalloc(n ? n : 1);
        memcpy(b->data, p + MS_BLOB_HEAD, n);
        if (nblobs == blobs_cap) {
            blobs_cap = blobs_cap ? blobs_cap * 2 : 8;
            blobs = ms_xrealloc(blobs, blobs_cap * sizeof *blobs);
        }
        blobs[nblobs++] = b;
        blobs_bytes += n;
    }
    pthread_mutex_unlock(&blobs_lock);
    /* Jobs that waited for it may run now. */
    for (parked **pp = &parked_jobs; *pp;) {
        parked *k = *pp;
        if (resolve(k->sa)) {
            *pp = k->next;
            nparked--;
            queue_shared_task(k->jid, k->ordinal, k->sa);
            free(k);
        } else {
            pp = &k->next;
        }
    }
}

static void want(uint32_t jid, const uint8_t *digest)
{
    ms_logv("job %" PRIu32 " needs shared value %02x%02x..., which this "
            "slave no longer has: asking the master", jid, digest[0],
            digest[1]);
    uint8_t msg[MS_WANT_LEN];
    msg[0] = MS_WANT;
    memcpy(msg + 1, digest, MS_DIGEST_LEN);
    send_payload(jid, msg, sizeof msg);
}

void shared_job_receive(uint32_t jid, const uint8_t *p, uint32_t len)
{
    if (len < MS_SHARED_JOB_HEAD)
        violation("SHARED_JOB of %" PRIu32 " bytes", len);
    uint32_t ordinal = ms_get_u32le(p + 1), lit_len = ms_get_u32le(p + 5),
             n = ms_get_u32le(p + 9);
    if (ordinal == 0 || ordinal > ms_job_count)
        violation("SHARED_JOB for job ordinal %" PRIu32 " (the program has %"
                  PRIu32 " jobs)", ordinal, ms_job_count);
    if (n == 0 || n > MS_SHARE_MAX_REFS ||
        (uint64_t)len != MS_SHARED_JOB_HEAD +
                             (uint64_t)n * MS_SHARED_REF_LEN + lit_len)
        violation("SHARED_JOB of %" PRIu32 " bytes naming %" PRIu32
                  " values with %" PRIu32 " literal bytes", len, n, lit_len);
    struct shared_args *sa = ms_xcalloc(1, sizeof *sa + n * sizeof sa->ref[0]);
    sa->n = n;
    sa->lit_len = lit_len;
    sa->total = lit_len;
    const uint8_t *q = p + MS_SHARED_JOB_HEAD;
    uint32_t last_at = 0;
    for (uint32_t i = 0; i < n; i++, q += MS_SHARED_REF_LEN) {
        struct sref *r = &sa->ref[i];
        r->at = ms_get_u32le(q);
        r->len = ms_get_u32le(q + 4);
        memcpy(r->digest, q + 8, MS_DIGEST_LEN);
        sa->total += r->len;
        if (r->at < last_at || r->at > lit_len || sa->total > S.max_message) {
            uint32_t at = r->at;
            uint64_t total = sa->total;
            shared_args_free(sa);
            violation("SHARED_JOB for job %" PRIu32 ": value %" PRIu32
                      " at %" PRIu32 " of %" PRIu32 " literal bytes, %"
                      PRIu64 " bytes in all (largest message %" PRIu32 ")",
                      jid, i, at, lit_len, total, S.max_message);
        }
        last_at = r->at;
    }
    sa->lit = ms_xmalloc(lit_len ? lit_len : 1);
    memcpy(sa->lit, q, lit_len);
    if (resolve(sa)) {
        queue_shared_task(jid, ordinal, sa);
        return;
    }
    if (nparked >= (size_t)S.threads * MS_PREFETCH_MAX + 16) {
        shared_args_free(sa);
        violation("%zu jobs wait for shared values", nparked);
    }
    parked *k = ms_xmalloc(sizeof *k);
    *k = (parked){jid, ordinal, sa, parked_jobs};
    parked_jobs = k;
    nparked++;
    for (uint32_t i = 0; i < n; i++)
        if (!sa->ref[i].blob)
            want(jid, sa->ref[i].digest);
}

int parked_cancel(uint32_t jid)
{
    for (parked **pp = &parked_jobs; *pp; pp = &(*pp)->next) {
        parked *k = *pp;
        if (k->jid == jid) {
            *pp = k->next;
            nparked--;
            shared_args_free(k->sa);
            free(k);
            return 1;
        }
    }
    return 0;
}

uint8_t *shared_args_join(const struct shared_args *sa, uint32_t *len)
{
    uint8_t *out = ms_xmalloc(sa->total ? sa->total : 1);
    uint64_t o = 0;
    uint32_t from = 0;
    for (uint32_t i = 0; i < sa->n; i++) {
        const struct sref *r = &sa->ref[i];
        memcpy(out + o, sa->lit + from, r->at - from);
        o += r->at - from;
        from = r->at;
        memcpy(out + o, r->blob->data, r->len);
        o += r->len;
    }
    memcpy(out + o, sa->lit + from, sa->lit_len - from);
    *len = (uint32_t)sa->total;
    return out;
}
