/* ser.c — ms_buf and ms_reader (ms_abi.h part B), and the signature
 * validator that lets both sides distrust every payload they receive. */
#include "ser.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/mman.h>

#include "log.h"
#include "hash.h"
#include "share.h"
#include "wire.h"

/* ------------------------------------------------------------- buffers */

void ms_hint_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    if (n < MS_HUGE_MIN)
        return;
    /* The whole of malloc's block, rounded out to pages: for a block malloc
     * mapped by itself, that is exactly its mapping (its header shares the
     * first page, and the usable size runs to the mapping's end). Advising
     * only the whole pages inside [p, p + n) split the mapping in three,
     * and then realloc's mremap failed (EFAULT: a range over several
     * mappings), so that every growth of a big vector copied it. */
    uintptr_t page = 4096;
    uintptr_t start = (uintptr_t)p & ~(page - 1);
    uintptr_t end = ((uintptr_t)p + malloc_usable_size(p) + page - 1) & ~(page - 1);
    (void)madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
}


/* Set on a slave's worker thread while it runs a job: a buffer that cannot
 * grow is then a runtime error of that job (which fails alone), not the
 * end of the process. */
static _Thread_local ms_oom_handler tl_oom_handler;

void ms_buf_on_oom(ms_oom_handler h)
{
    tl_oom_handler = h;
}

void ms_buf_reserve(ms_buf *b, uint64_t extra)
{
    if (extra <= b->cap - b->len)
        return;
    if (extra > UINT64_MAX / 2 - b->len)
        ms_fatal("buffer of %" PRIu64 " bytes cannot grow by %" PRIu64,
                 b->len, extra);
    uint64_t need = b->len + extra;
    uint64_t cap = b->cap ? b->cap * 2 : 64;
    if (cap < need)
        cap = need;
    void *data = cap <= SIZE_MAX ? realloc(b->data, (size_t)cap) : NULL;
    if (!data) {
        char msg[128];
        snprintf(msg, sizeof msg, "out of memory: a buffer of %" PRIu64
                 " bytes (for the job's result)", cap);
        if (tl_oom_handler) /* b is as it was: its owner frees it */
            tl_oom_handler(msg); /* does not return */
        ms_fatal("%s", msg);
    }
    b->data = data;
    b->cap = cap;
    ms_hint_huge(b->data, (size_t)cap);
}

void ms_buf_append(ms_buf *b, const void *p, uint64_t n)
{
    if (n == 0)
        return;
    ms_buf_reserve(b, n);
    memcpy(b->data + b->len, p, (size_t)n);
    b->len += n;
}

void ms_buf_free(ms_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* One buffer per thread, reused by every `remote` call: a job's
 * arguments are encoded into it and ms_start_job copies or takes its
 * bytes, leaving it empty, so starting a job allocates once, not three
 * times. */
static _Thread_local ms_buf tl_args;

ms_buf *ms_args_new(void)
{
    tl_args.len = 0;
    return &tl_args;
}

int ms_is_args_buf(const ms_buf *b)
{
    return b == &tl_args;
}

void ms_buf_put_i64(ms_buf *b, int64_t v)
{
    ms_buf_reserve(b, 8);
    ms_put_u64le(b->data + b->len, (uint64_t)v);
    b->len += 8;
}

void ms_buf_put_f64(ms_buf *b, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    ms_buf_reserve(b, 8);
    ms_put_u64le(b->data + b->len, bits);
    b->len += 8;
}

void ms_buf_put_u8(ms_buf *b, uint8_t v)
{
    ms_buf_reserve(b, 1);
    b->data[b->len++] = v;
}

void ms_buf_put_u32(ms_buf *b, uint32_t v)
{
    ms_buf_reserve(b, 4);
    ms_put_u32le(b->data + b->len, v);
    b->len += 4;
}

/* ------------------------------------------------------------- readers */

/* The next n bytes of r, consumed; NULL, with r exhausted, when fewer than
 * n remain. The one bounds check every ms_read_* goes through. The pointer
 * is borrowed from r->data. */
static inline const uint8_t *reader_take(ms_reader *r, uint64_t n)
{
    if (r->off > r->len || r->len - r->off < n) {
        r->off = r->len;
        return NULL;
    }
    const uint8_t *p = r->data + r->off;
    r->off += n;
    return p;
}

int64_t ms_read_i64(ms_reader *r)
{
    const uint8_t *p = reader_take(r, 8);
    return p ? (int64_t)ms_get_u64le(p) : 0;
}

double ms_read_f64(ms_reader *r)
{
    const uint8_t *p = reader_take(r, 8);
    if (!p)
        return 0.0;
    uint64_t bits = ms_get_u64le(p);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

uint8_t ms_read_u8(ms_reader *r)
{
    const uint8_t *p = reader_take(r, 1);
    return p ? *p : 0;
}

uint32_t ms_read_u32(ms_reader *r)
{
    const uint8_t *p = reader_take(r, 4);
    return p ? ms_get_u32le(p) : 0;
}

/* ---------------------------------------------------------- signatures */

/* Facts about the one type at the start of a signature. */
typedef struct sig_info {
    const char *end;   /* just past the type */
    uint64_t min_size; /* fewest bytes an encoding of it takes */
    int fixed;         /* 1: every encoding takes min_size bytes and any
                        * bytes are valid (no bools, no vectors) */
} sig_info;

/* The structs a signature is inside of while sig_one parses it: where each
 * one's `{` is and how many vectors enclosed it, to check back-references. */
typedef struct sig_open {
    const char *at;
    int vectors;
    const struct sig_open *up;
} sig_open;

/* The digits of a back-reference `^N` at s: N (0 when there are none or
 * too many) and, in *end, what follows them. */
static uint64_t backref(const char *s, const char **end)
{
    uint64_t n = 0;
    const char *p = s + 1;
    for (; *p >= '0' && *p <= '9'; p++)
        n = n < 100000000 ? n * 10 + (uint64_t)(*p - '0') : 0;
    *end = p;
    return p == s + 1 ? 0 : n;
}

/* The type a type signature at s stands for: the struct a back-reference
 * `^N` names (N characters back), else s itself. */
static const char *sig_target(const char *s)
{
    if (*s != '^')
        return s;
    const char *end;
    return s - backref(s, &end);
}

/* Parse one type at `s`. Returns 0, or -1 if malformed. With `open` (the
 * structs around s, NULL at the top; `vectors` vectors around s), a
 * back-reference must name one of them from inside a vector of it (a
 * struct holds itself only through a vector); without (check 0), it is
 * trusted. A back-reference counts as no bytes: it only occurs as a
 * vector's element type, whose size does not change the vector's. Depth
 * is bounded by the signature's length, which comes from the compiled
 * program. */
static int sig_one(const char *s, sig_info *out, const sig_open *open,
                   int vectors, int check)
{
    switch (*s) {
    case 'i':
    case 'd':
        *out = (sig_info){s + 1, 8, 1};
        return 0;
    case 'c':
        *out = (sig_info){s + 1, 1, 1};
        return 0;
    case 'b':
        *out = (sig_info){s + 1, 1, 0};
        return 0;
    case '^': {
        const char *end;
        uint64_t n = backref(s, &end);
        if (check) {
            const sig_open *o = open;
            while (o && (uint64_t)(s - o->at) != n)
                o = o->up;
            if (n == 0 || !o || o->vectors >= vectors)
                return -1;
        }
        *out = (sig_info){end, 0, 0};
        return 0;
    }
    case 'v': {
        sig_info elem;
        if (sig_one(s + 1, &elem, open, vectors + 1, check) != 0)
            return -1;
        *out = (sig_info){elem.end, 4, 0};
        return 0;
    }
    case 'm': { /* SPEC 13: a key (i, c, b or vc), then the value, which
                 * holds a struct around it as a vector's element does */
        const char *k = s + 1;
        const char *v = *k == 'v' && k[1] == 'c' ? k + 2
                      : (*k == 'i' || *k == 'c' || *k == 'b') ? k + 1 : NULL;
        sig_info val;
        if (!v || sig_one(v, &val, open, vectors + 1, check) != 0)
            return -1;
        *out = (sig_info){val.end, 4, 0};
        return 0;
    }
    case '{': {
        sig_open me = {s, vectors, open};
        sig_info acc = {s + 1, 0, 1};
        while (*acc.end != '}') {
            sig_info f;
            if (sig_one(acc.end, &f, &me, vectors, check) != 0)
                return -1;
            acc.end = f.end;
            acc.min_size += f.min_size;
            acc.fixed = acc.fixed && f.fixed;
        }
        acc.end++;
        *out = acc;
        return 0;
    }
    default:
        return -1;
    }
}

int ms_sig_check(const char *sig, char *err, size_t errlen)
{
    const char *s = sig;
    while (*s) {
        sig_info t;
        if (sig_one(s, &t, NULL, 0, 1) != 0) {
            snprintf(err, errlen, "malformed type signature \"%s\" at offset %td",
                     sig, s - sig);
            return -1;
        }
        s = t.end;
    }
    return 0;
}

/* Validation walks the payload without recursing through vectors (a
 * message may nest them as deep as it likes): the vectors and structs it
 * is inside of are frames on an explicit stack, inline first, then on the
 * heap. */
typedef struct vframe {
    const char *s;   /* a vector's element type, the next field, a map's
                      * key type */
    uint64_t left;   /* a vector's elements (a map's entries) still to check */
    int is_vec;      /* 1 vector, VFRAME_MAP a map, 0 a struct */
    /* A map's keys seen so far, to reject a repeated one: an open
     * addressing set of 1 + the offset of each key's encoding (0 empty),
     * mask + 1 slots, from malloc; freed when the frame is. */
    uint64_t *keys;
    uint64_t mask;
} vframe;

#define VFRAME_MAP 2

#define VFRAMES_INLINE 32

typedef struct vstate {
    const uint8_t *data;
    uint64_t len, off;
    char *err;
    size_t errlen;
    vframe inline_frames[VFRAMES_INLINE];
    vframe *frames;  /* inline_frames, or a heap block */
    size_t n, cap;
} vstate;

/* A new frame on top; NULL (with the reason in err) when there is no
 * memory for it. */
static vframe *vpush(vstate *v)
{
    if (v->n == v->cap) {
        size_t cap = v->cap * 2;
        vframe *f = NULL;
        if (cap <= SIZE_MAX / sizeof *f)
            f = v->frames == v->inline_frames ? malloc(cap * sizeof *f)
                                              : realloc(v->frames, cap * sizeof *f);
        if (!f) { /* v->frames is left as it was, for the caller to free */
            snprintf(v->err, v->errlen,
                     "out of memory validating a payload nested %zu deep", v->n);
            return NULL;
        }
        if (v->frames == v->inline_frames)
            memcpy(f, v->inline_frames, sizeof v->inline_frames);
        v->frames = f;
        v->cap = cap;
    }
    return &v->frames[v->n++];
}

/* Check one value of the type at `s` (well-formed, not a back-reference),
 * whose facts are t: in place when it is a scalar or fixed, else by
 * pushing its frame. Returns 0 or -1. */
static int validate_item(vstate *v, const char *s, const sig_info *t)
{
    if (t->fixed) {
        if (v->len - v->off < t->min_size) {
            snprintf(v->err, v->errlen,
                     "payload ends inside a value at byte %" PRIu64, v->off);
            return -1;
        }
        v->off += t->min_size;
        return 0;
    }
    switch (*s) {
    case 'b': {
        if (v->off >= v->len) {
            snprintf(v->err, v->errlen,
                     "payload ends inside a value at byte %" PRIu64, v->off);
            return -1;
        }
        uint8_t byte = v->data[v->off];
        if (byte > 1) {
            snprintf(v->err, v->errlen,
                     "bool byte %u at byte %" PRIu64 " is not 0 or 1",
                     byte, v->off);
            return -1;
        }
        v->off++;
        return 0;
    }
    case 'v': {
        if (v->len - v->off < 4) {
            snprintf(v->err, v->errlen,
                     "payload ends inside a vector count at byte %" PRIu64,
                     v->off);
            return -1;
        }
        uint64_t count = ms_get_u32le(v->data + v->off);
        uint64_t at = v->off;
        v->off += 4;
        const char *es = sig_target(s + 1);
        sig_info e;
        (void)sig_one(es, &e, NULL, 0, 0);
        uint64_t left = v->len - v->off;
        /* Elements of zero size (empty structs and structs of them) take
         * no bytes on the wire and none in memory: any count is one the
         * decoder can hold, and the same one it builds. */
        if (e.min_size != 0 && count > left / e.min_size) {
            snprintf(v->err, v->errlen,
                     "vector count %" PRIu64 " at byte %" PRIu64
                     " is more than the %" PRIu64 " bytes left can hold",
                     count, at, left);
            return -1;
        }
        if (e.fixed) {
            v->off += count * e.min_size;
            return 0;
        }
        if (count == 0)
            return 0;
        vframe *f = vpush(v);
        if (!f)
            return -1;
        *f = (vframe){es, count, 1, NULL, 0};
        return 0;
    }
    case '{': {
        vframe *f = vpush(v);
        if (!f)
            return -1;
        *f = (vframe){s + 1, 0, 0, NULL, 0};
        return 0;
    }
    case 'm': {
        if (v->len - v->off < 4) {
            snprintf(v->err, v->errlen,
                     "payload ends inside a map count at byte %" PRIu64, v->off);
            return -1;
        }
        uint64_t count = ms_get_u32le(v->data + v->off);
        uint64_t at = v->off;
        v->off += 4;
        const char *ks = s + 1, *vs = ks + (*ks == 'v' ? 2 : 1);
        sig_info e;
        (void)sig_one(sig_target(vs), &e, NULL, 0, 0);
        uint64_t least = (*ks == 'i' ? 8 : *ks == 'v' ? 4 : 1) + e.min_size;
        uint64_t left = v->len - v->off;
        if (count > left / least || count > UINT32_MAX / 4) {
            snprintf(v->err, v->errlen,
                     "map count %" PRIu64 " at byte %" PRIu64
                     " is more than the %" PRIu64 " bytes left can hold",
                     count, at, left);
            return -1;
        }
        if (count == 0)
            return 0;
        uint64_t slots = 8;
        while (slots < 2 * count)
            slots *= 2;
        uint64_t *keys = calloc((size_t)slots, sizeof *keys);
        if (!keys) {
            snprintf(v->err, v->errlen,
                     "out of memory validating a map of %" PRIu64 " keys", count);
            return -1;
        }
        vframe *f = vpush(v);
        if (!f) {
            free(keys);
            return -1;
        }
        *f = (vframe){ks, count, VFRAME_MAP, keys, slots - 1};
        return 0;
    }
    default:
        snprintf(v->err, v->errlen, "malformed type signature");
        return -1;
    }
}

/* Checks the key of type ks (i, c, b or vc) at v->off of the map whose
 * frame is f, and that the map has not had it before; consumes it.
 * Returns 0 or -1. Keys are compared by their encodings, which are
 * canonical (one per key), and hashed with the keyed hash of maps.c, so
 * that no payload can make this quadratic. */
static int validate_key(vstate *v, vframe *f, const char *ks)
{
    uint64_t at = v->off, left = v->len - v->off, n;
    if (*ks == 'v') {
        if (left < 4 || ms_get_u32le(v->data + at) > left - 4) {
            snprintf(v->err, v->errlen,
                     "payload ends inside a map key at byte %" PRIu64, at);
            return -1;
        }
        n = 4 + (uint64_t)ms_get_u32le(v->data + at);
    } else {
        n = *ks == 'i' ? 8 : 1;
        if (left < n) {
            snprintf(v->err, v->errlen,
                     "payload ends inside a map key at byte %" PRIu64, at);
            return -1;
        }
        if (*ks == 'b' && v->data[at] > 1) {
            snprintf(v->err, v->errlen,
                     "bool byte %u at byte %" PRIu64 " is not 0 or 1",
                     v->data[at], at);
            return -1;
        }
    }
    const uint8_t *key = v->data + at;
    for (uint64_t s = msm_hash_bytes(key, (size_t)n) & f->mask;;
         s = (s + 1) & f->mask) {
        uint64_t seen = f->keys[s];
        if (seen == 0) {
            f->keys[s] = at + 1;
            break;
        }
        const uint8_t *other = v->data + (seen - 1);
        uint64_t m = *ks == 'v' ? 4 + (uint64_t)ms_get_u32le(other) : n;
        if (m == n && memcmp(other, key, (size_t)n) == 0) {
            snprintf(v->err, v->errlen,
                     "map key at byte %" PRIu64 " repeats the key at byte %" PRIu64,
                     at, seen - 1);
            return -1;
        }
    }
    v->off += n;
    return 0;
}

/* Validate one value of the type at `s` (well-formed), setting *end past
 * that type; returns 0 or -1. */
static int validate_one(vstate *v, const char *s, const char **end)
{
    sig_info t;
    if (sig_one(s, &t, NULL, 0, 0) != 0 || *s == '^') {
        snprintf(v->err, v->errlen, "malformed type signature");
        return -1;
    }
    *end = t.end;
    if (validate_item(v, s, &t) != 0)
        return -1;
    while (v->n > 0) {
        vframe *f = &v->frames[v->n - 1];
        const char *item;
        if (f->is_vec == VFRAME_MAP) {
            if (f->left == 0) {
                free(f->keys);
                v->n--;
                continue;
            }
            f->left--;
            const char *ks = f->s;
            if (validate_key(v, f, ks) != 0)
                return -1;
            item = sig_target(ks + (*ks == 'v' ? 2 : 1));
        } else if (f->is_vec) {
            if (f->left == 0) {
                v->n--;
                continue;
            }
            f->left--;
            item = f->s;
        } else {
            if (*f->s == '}') {
                v->n--;
                continue;
            }
            item = f->s;
            (void)sig_one(item, &t, NULL, 0, 0);
            f->s = t.end; /* the next field */
            if (*item == '^')
                item = sig_target(item);
        }
        /* f may move when validate_item pushes: not used after. */
        if (sig_one(item, &t, NULL, 0, 0) != 0 ||
            validate_item(v, item, &t) != 0)
            return -1;
    }
    return 0;
}

int ms_sig_validate(const char *sig, const uint8_t *data, uint64_t len,
                    char *err, size_t errlen)
{
    vstate v = {.data = data, .len = len, .err = err, .errlen = errlen};
    v.frames = v.inline_frames;
    v.cap = VFRAMES_INLINE;
    const char *s = sig;
    int rc = 0;
    while (*s && rc == 0)
        rc = validate_one(&v, s, &s);
    for (size_t i = 0; i < v.n; i++) /* left by a failure */
        if (v.frames[i].is_vec == VFRAME_MAP)
            free(v.frames[i].keys);
    if (v.frames != v.inline_frames)
        free(v.frames);
    if (rc != 0)
        return -1;
    if (v.off != len) {
        snprintf(err, errlen,
                 "payload has %" PRIu64 " bytes but its values take %" PRIu64,
                 len, v.off);
        return -1;
    }
    return 0;
}
