/* master_share.c — arguments encoded once, the master's half (share.h):
 * the cache of shared values (a vector or map, by identity, with the blob
 * its encoding became), the encoder's hook that puts a cached blob in a
 * job's arguments instead of encoding the value again, and blobs'
 * reference counts.
 *
 * Locks: the cache and the pieces being built are the main thread's (only
 * it starts jobs), so they need none; blobs are released in any thread
 * (atomic counts). A cached value is retained, so it is never changed in
 * place while cached (a change copies it: value semantics), and its
 * address is not reused. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proto.h"
#include "ser.h"
#include "share.h"

/* At most this many values, and this many bytes of blobs, are cached; an
 * entry no job uses goes once it has not been used for SWEEP_AFTER_MS. */
#define CACHE_ENTRIES 64
#define CACHE_BYTES ((uint64_t)1 << 30)
#define SWEEP_AFTER_MS 1000

typedef struct entry {
    const void *obj;      /* the vector or map, retained */
    const ms_type *t;
    ms_blob *blob;        /* the cache's reference */
    long long used_ms;
} entry;

static entry cache[CACHE_ENTRIES];
static size_t ncache;
static uint64_t cache_bytes;
static uint64_t next_blob_id = 1;
static long long now_hint_ms; /* the last sweep's clock */

/* The blobs of the arguments being built: (offset in the literal bytes,
 * blob with a reference for the job). */
static struct ms_piece *pieces;
static uint32_t npieces, pieces_cap;
static uint64_t pieces_bytes;

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

static void drop_entry(size_t i)
{
    entry *e = &cache[i];
    cache_bytes -= e->blob->len;
    ms_blob_release(e->blob);
    void *obj = (void *)e->obj;
    ms_value_release(e->t, &obj);
    cache[i] = cache[--ncache];
}

/* Entries that no job uses any more (only the cache holds their blob). */
static void drop_unused(long long older_than_ms)
{
    for (size_t i = ncache; i-- > 0;)
        if (atomic_load_explicit(&cache[i].blob->refs,
                                 memory_order_acquire) == 1 &&
            cache[i].used_ms <= older_than_ms)
            drop_entry(i);
}

void ms_share_sweep(long long now_ms)
{
    now_hint_ms = now_ms;
    if (ncache)
        drop_unused(now_ms - SWEEP_AFTER_MS);
}

static void add_piece(uint64_t at, ms_blob *b)
{
    if (npieces == pieces_cap) {
        pieces_cap = pieces_cap ? pieces_cap * 2 : 8;
        pieces = realloc(pieces, pieces_cap * sizeof *pieces);
        if (!pieces)
            ms_fatal("out of memory: the shared arguments of a job");
    }
    ms_blob_retain(b);
    pieces[npieces++] = (struct ms_piece){(uint32_t)at, b};
    pieces_bytes += b->len;
}

/* A blob of the n bytes at b->data + start (removed from b). When they
 * are all of b, its buffer is taken over rather than copied, so a big
 * value is not held three times. */
static ms_blob *blob_from(ms_buf *b, uint64_t start)
{
    uint64_t n = b->len - start;
    ms_blob *bl = ms_xcalloc(1, sizeof *bl);
    atomic_init(&bl->refs, 1);
    bl->len = (uint32_t)n;
    bl->id = next_blob_id++;
    bl->payload = ms_xmalloc(MS_BLOB_HEAD + n);
    bl->payload[0] = MS_BLOB;
    memcpy(bl->payload + MS_BLOB_HEAD, b->data + start, (size_t)n);
    ms_sha256(bl->payload + MS_BLOB_HEAD, (size_t)n, bl->payload + 1);
    b->len = start;
    if (b->cap > (1u << 20)) /* do not keep the value's size per thread */
        ms_buf_free(b);
    return bl;
}

int ms_share_hook_master(const ms_type *t, const void *value, ms_buf *b)
{
    if (!ms_is_args_buf(b) || (t->kind != MS_T_VECTOR && t->kind != MS_T_MAP))
        return 0;
    const void *obj = *(const void *const *)value;
    if (!obj || npieces >= MS_SHARE_MAX_REFS)
        return 0;
    for (size_t i = 0; i < ncache; i++) {
        if (cache[i].obj == obj && cache[i].t == t) {
            cache[i].used_ms = now_hint_ms;
            add_piece(b->len, cache[i].blob);
            return 1;
        }
    }
    uint64_t start = b->len;
    ms_value_encode_plain(t, value, b);
    uint64_t n = b->len - start;
    if (n < MS_SHARE_MIN || n > UINT32_MAX - MS_BLOB_HEAD)
        return 1; /* small (or too big for a message): stays literal */
    if (ncache == CACHE_ENTRIES || cache_bytes + n > CACHE_BYTES)
        drop_unused(now_hint_ms);
    ms_blob *bl = blob_from(b, start);
    add_piece(start, bl);
    if (ncache < CACHE_ENTRIES && cache_bytes + n <= CACHE_BYTES) {
        ms_value_retain(t, value);
        cache[ncache++] = (entry){obj, t, bl, now_hint_ms};
        cache_bytes += n;
    } else {
        ms_blob_release(bl); /* shared by this job's pieces alone */
    }
    return 1;
}

uint64_t ms_share_pending_bytes(void)
{
    return pieces_bytes;
}

ms_args_pieces *ms_share_take(ms_buf *literal)
{
    if (npieces == 0)
        return NULL;
    ms_args_pieces *p = ms_xmalloc(sizeof *p + npieces * sizeof p->ref[0]);
    p->n = npieces;
    p->lit_len = (uint32_t)literal->len;
    p->lit = literal->len ? ms_xmalloc(literal->len) : NULL;
    if (literal->len)
        memcpy(p->lit, literal->data, literal->len);
    memcpy(p->ref, pieces, npieces * sizeof p->ref[0]); /* references move */
    literal->len = 0;
    npieces = 0;
    pieces_bytes = 0;
    return p;
}
