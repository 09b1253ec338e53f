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
#include "maps.h"
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

void ms_share_sweep(void)
{
    if (!ncache)
        return; /* no clock read per job while nothing is shared */
    now_hint_ms = ms_now_ms();
    drop_unused(now_hint_ms - SWEEP_AFTER_MS);
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

/* A blob whose payload is `enc` (taken over): MS_BLOB_HEAD bytes of room,
 * then the encoded value. Encoding straight into the payload's buffer
 * means a big value is held twice (itself and its blob), never three
 * times. */
static ms_blob *blob_from(ms_buf *enc)
{
    uint64_t n = enc->len - MS_BLOB_HEAD;
    ms_blob *bl = ms_xcalloc(1, sizeof *bl);
    atomic_init(&bl->refs, 1);
    bl->len = (uint32_t)n;
    bl->id = next_blob_id++;
    uint8_t *fit = realloc(enc->data, (size_t)enc->len); /* give back slack */
    bl->payload = fit ? fit : enc->data;
    bl->payload[0] = MS_BLOB;
    ms_sha256(bl->payload + MS_BLOB_HEAD, (size_t)n, bl->payload + 1);
    *enc = (ms_buf){0};
    return bl;
}

/* Too few elements to reach MS_SHARE_MIN: encoded plainly, with no
 * second buffer (a vector of scalars is 4 + len * size bytes; other
 * values are tried from 64 elements or entries on). */
static int surely_small(const ms_type *t, const void *obj)
{
    if (t->kind == MS_T_MAP)
        return ((const ms_map *)obj)->len < 64;
    int64_t len = ((const ms_vec *)obj)->len;
    const ms_type *e = t->elem;
    if (e->kind <= MS_T_CHAR)
        return 4 + (uint64_t)len * e->size < MS_SHARE_MIN;
    return len < 64;
}

int ms_share_hook_master(const ms_type *t, const void *value, ms_buf *b)
{
    if (!ms_is_args_buf(b) || (t->kind != MS_T_VECTOR && t->kind != MS_T_MAP))
        return 0;
    const void *obj = *(const void *const *)value;
    if (!obj || npieces >= MS_SHARE_MAX_REFS || surely_small(t, obj))
        return 0;
    for (size_t i = 0; i < ncache; i++) {
        if (cache[i].obj == obj && cache[i].t == t) {
            cache[i].used_ms = now_hint_ms;
            add_piece(b->len, cache[i].blob);
            return 1;
        }
    }
    ms_buf enc = {0};
    ms_buf_reserve(&enc, MS_BLOB_HEAD);
    enc.len = MS_BLOB_HEAD;
    ms_value_encode_plain(t, value, &enc);
    uint64_t n = enc.len - MS_BLOB_HEAD;
    if (n < MS_SHARE_MIN || n > UINT32_MAX - MS_BLOB_HEAD) {
        /* Small (or too big for any message): literal, as always. */
        ms_buf_append(b, enc.data + MS_BLOB_HEAD, n);
        ms_buf_free(&enc);
        return 1;
    }
    now_hint_ms = ms_now_ms(); /* the sweep's hint is stale while empty */
    if (ncache == CACHE_ENTRIES || cache_bytes + n > CACHE_BYTES)
        drop_unused(now_hint_ms);
    ms_blob *bl = blob_from(&enc);
    add_piece(b->len, bl);
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
