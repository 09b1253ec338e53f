/* ser.c — ms_buf and ms_reader (ms_abi.h part B), and the signature
 * validator that lets both sides distrust every payload they receive. */
#include "ser.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "wire.h"

/* ------------------------------------------------------------- buffers */

void ms_hint_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    if (n < MS_HUGE_MIN)
        return;
    uintptr_t page = 4096;
    uintptr_t start = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)p + n) & ~(page - 1);
    if (end > start)
        (void)madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
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
    if (cap > SIZE_MAX)
        ms_fatal("out of memory: buffer of %" PRIu64 " bytes", cap);
    b->data = ms_xrealloc(b->data, (size_t)cap);
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

/* Caller owns the result (ms_start_job takes it over). */
ms_buf *ms_args_new(void)
{
    return ms_xcalloc(1, sizeof(ms_buf));
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

/* The struct signatures around the type being read, innermost first: what
 * a back-reference ^N names. Lives on the C stack of the walk. */
typedef struct sig_scope {
    const char *start;          /* the struct's '{' */
    const struct sig_scope *up; /* the struct around it, or NULL */
    unsigned vectors;           /* vectors around the '{' */
} sig_scope;

/* Read the back-reference "^N" at `s` (N decimal, at most 9 digits) inside
 * `scope` and `vectors` vectors. Returns the struct it names, or NULL if
 * there is none that far out, or if the reference is not inside a vector
 * inside that struct (it would hold itself by value). Sets *end. */
static const sig_scope *sig_backref(const char *s, const sig_scope *scope,
                                    unsigned vectors, const char **end)
{
    const char *d = s + 1;
    uint32_t n = 0;
    while (*d >= '0' && *d <= '9' && d - s <= 9)
        n = n * 10 + (uint32_t)(*d++ - '0');
    if (d == s + 1 || (*d >= '0' && *d <= '9'))
        return NULL;
    for (; scope && n > 0; n--)
        scope = scope->up;
    if (!scope || vectors <= scope->vectors)
        return NULL;
    *end = d;
    return scope;
}

/* Parse one type at `s`, inside `scope` and `vectors` vectors. Returns 0,
 * or -1 if malformed. Depth is bounded by the signature's length, which
 * comes from the compiled program: back-references are not followed. */
static int sig_one(const char *s, const sig_scope *scope, unsigned vectors,
                   sig_info *out)
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
    case 'v': {
        sig_info elem;
        if (sig_one(s + 1, scope, vectors + 1, &elem) != 0)
            return -1;
        *out = (sig_info){elem.end, 4, 0};
        return 0;
    }
    case '^': {
        /* The struct named holds the vector around this reference by
         * value, so its encoding takes at least that vector's count. */
        const char *end;
        if (!sig_backref(s, scope, vectors, &end))
            return -1;
        *out = (sig_info){end, 4, 0};
        return 0;
    }
    case '{': {
        sig_scope inner = {s, scope, vectors};
        sig_info acc = {s + 1, 0, 1};
        while (*acc.end != '}') {
            sig_info f;
            if (sig_one(acc.end, &inner, vectors, &f) != 0)
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
        if (sig_one(s, NULL, 0, &t) != 0) {
            snprintf(err, errlen, "malformed type signature \"%s\" at offset %td",
                     sig, s - sig);
            return -1;
        }
        s = t.end;
    }
    return 0;
}

typedef struct vstate {
    const uint8_t *data;
    uint64_t len, off, max_count;
    unsigned depth;    /* validate_one calls under way */
    char *err;
    size_t errlen;
} vstate;

/* Validate one value of the type at `s` (well-formed) inside `scope` and
 * `vectors` vectors; returns 0 or -1. Values of recursive structs nest as
 * deep as the payload says: MS_MAX_VALUE_DEPTH bounds the recursion. */
static int validate_one(vstate *v, const char *s, const sig_scope *scope,
                        unsigned vectors, const char **end)
{
    sig_info t;
    if (sig_one(s, scope, vectors, &t) != 0) {
        snprintf(v->err, v->errlen, "malformed type signature");
        return -1;
    }
    *end = t.end;
    if (t.fixed) {
        if (v->len - v->off < t.min_size) {
            snprintf(v->err, v->errlen,
                     "payload ends inside a value at byte %" PRIu64, v->off);
            return -1;
        }
        v->off += t.min_size;
        return 0;
    }
    if (v->depth >= MS_MAX_VALUE_DEPTH) {
        snprintf(v->err, v->errlen,
                 "value nested more than %d levels deep at byte %" PRIu64,
                 MS_MAX_VALUE_DEPTH, v->off);
        return -1;
    }
    v->depth++;
    int rc = -1;
    switch (*s) {
    case 'b': {
        if (v->off >= v->len) {
            snprintf(v->err, v->errlen,
                     "payload ends inside a value at byte %" PRIu64, v->off);
            break;
        }
        uint8_t byte = v->data[v->off];
        if (byte > 1) {
            snprintf(v->err, v->errlen,
                     "bool byte %u at byte %" PRIu64 " is not 0 or 1",
                     byte, v->off);
            break;
        }
        v->off++;
        rc = 0;
        break;
    }
    case 'v': {
        if (v->len - v->off < 4) {
            snprintf(v->err, v->errlen,
                     "payload ends inside a vector count at byte %" PRIu64,
                     v->off);
            break;
        }
        uint64_t count = ms_get_u32le(v->data + v->off);
        uint64_t at = v->off;
        v->off += 4;
        sig_info e;
        (void)sig_one(s + 1, scope, vectors + 1, &e);
        uint64_t left = v->len - v->off;
        if (e.min_size == 0 ? count > v->max_count
                            : count > left / e.min_size) {
            snprintf(v->err, v->errlen,
                     "vector count %" PRIu64 " at byte %" PRIu64
                     " is more than the %" PRIu64 " bytes left can hold",
                     count, at, left);
            break;
        }
        if (e.fixed) {
            v->off += count * e.min_size;
            rc = 0;
            break;
        }
        rc = 0;
        for (uint64_t i = 0; i < count && rc == 0; i++) {
            const char *ignored;
            rc = validate_one(v, s + 1, scope, vectors + 1, &ignored);
        }
        break;
    }
    case '^': {
        const char *ignored;
        const sig_scope *target = sig_backref(s, scope, vectors, &ignored);
        rc = validate_one(v, target->start, target->up, target->vectors,
                          &ignored);
        break;
    }
    case '{': {
        sig_scope inner = {s, scope, vectors};
        const char *f = s + 1;
        rc = 0;
        while (rc == 0 && *f != '}')
            rc = validate_one(v, f, &inner, vectors, &f);
        break;
    }
    default:
        snprintf(v->err, v->errlen, "malformed type signature");
        break;
    }
    v->depth--;
    return rc;
}

int ms_sig_validate(const char *sig, const uint8_t *data, uint64_t len,
                    uint64_t max_count, char *err, size_t errlen)
{
    vstate v = {data, len, 0, max_count, 0, err, errlen};
    const char *s = sig;
    while (*s) {
        if (validate_one(&v, s, NULL, 0, &s) != 0)
            return -1;
    }
    if (v.off != len) {
        snprintf(err, errlen,
                 "payload has %" PRIu64 " bytes but its values take %" PRIu64,
                 len, v.off);
        return -1;
    }
    return 0;
}
