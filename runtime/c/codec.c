/* codec.c — type-driven encoding and decoding of values (SPEC section 9).
 *
 * Wire form: int and double 8 bytes little-endian, bool and char 1 byte,
 * a vector its u32 element count then its elements, a struct its fields in
 * declaration order (an empty struct nothing), a map its u32 key count then
 * each key and its value in insertion order (SPEC 13). No padding, no
 * tags.
 *
 * Decoding trusts nothing even though callers validate payloads first:
 * every read goes through the bounds-checked ms_read_* calls, and a vector
 * count is checked against the bytes left before anything is allocated. A
 * count that cannot fit makes the vector empty and exhausts the reader, so
 * the rest decodes as zeros; the validator rejects every such payload, and
 * accepts nothing this decoder would not build as it is (elements of zero
 * size, which take no bytes and no memory, have any count in both). */
#include "share.h"
#include "values.h"

#include "maps.h"
#include "ser.h"

#include <string.h>

/* Vectors of int, double, char and bool have the same bytes in memory as on
 * the wire on a little-endian host: they are copied whole. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define MSV_WIRE_IS_MEMORY 1
#else
#define MSV_WIRE_IS_MEMORY 0
#endif

_Noreturn static void not_serializable(void)
{
    ms_runtime_error(0, 0, "internal error: value type is not serializable");
}

/* The fewest bytes a value of type t (borrowed) takes on the wire. Recursion only
 * through structs held by value (vectors count 4), so it terminates. */
static uint64_t min_wire_size(const ms_type *t)
{
    switch (t->kind) {
    case MS_T_INT:
    case MS_T_DOUBLE:
        return 8;
    case MS_T_BOOL:
    case MS_T_CHAR:
        return 1;
    case MS_T_VECTOR:
    case MS_T_MAP:
        return 4;
    case MS_T_STRUCT: {
        uint64_t n = 0;
        for (uint32_t i = 0; i < t->nfields; i++)
            n += min_wire_size(t->fields[i]);
        return n;
    }
    default:
        not_serializable();
    }
}

/* Both directions walk the value without recursing through vectors (they
 * nest as deep as a program or a message makes them): the vectors and
 * structs being written or read are frames on an msv_walk, each with the
 * next of its items (elements or fields) to do. A struct without
 * references (only scalars, nested by value to a depth its type bounds) is
 * done in place by recursion instead, as are the vectors of scalars, whose
 * bytes are copied whole. */
typedef struct codec_frame {
    const ms_type *t;  /* a vector's element type, the struct or map type */
    unsigned char *p;  /* its elements, the struct, the map */
    int64_t i, n;      /* next item, item count (a map: entry slots, or
                        * keys to decode) */
    int is_struct;     /* 1 struct, FRAME_MAP a map, 0 a vector */
} codec_frame;

#define FRAME_MAP 2

/* Frames kept in the caller's C frame before the walk allocates. */
#define CODEC_INLINE_FRAMES 32

/* Item i of frame f: its type and address. */
static inline const ms_type *item_of(const codec_frame *f, int64_t i,
                                     unsigned char **at)
{
    if (f->is_struct) {
        *at = f->p + f->t->offsets[i];
        return f->t->fields[i];
    }
    *at = f->p + (size_t)i * f->t->size;
    return f->t;
}

static inline void push_frame(msv_walk *w, const ms_type *t, unsigned char *p,
                              int64_t n, int is_struct)
{
    codec_frame *f = msv_walk_push(w);
    *f = (codec_frame){ t, p, 0, n, is_struct };
}

/* ---------------------------------------------------------------- encode */

/* A value of type t (no references: scalars and structs of them) at p,
 * appended to b. Recursion only through structs held by value. */
static void encode_plain(const ms_type *t, const void *p, ms_buf *b)
{
    switch (t->kind) {
    case MS_T_INT:
        ms_buf_put_i64(b, *(const int64_t *)p);
        break;
    case MS_T_DOUBLE:
        ms_buf_put_f64(b, *(const double *)p);
        break;
    case MS_T_BOOL:
    case MS_T_CHAR:
        ms_buf_put_u8(b, *(const uint8_t *)p);
        break;
    case MS_T_STRUCT:
        for (uint32_t i = 0; i < t->nfields; i++)
            encode_plain(t->fields[i], (const unsigned char *)p + t->offsets[i], b);
        break;
    default:
        not_serializable();
    }
}

/* v borrowed; its count, and its elements when they are plain, appended to
 * b; otherwise a frame for its elements goes onto w. */
static void encode_vec(const ms_type *vt, const ms_vec *v, ms_buf *b, msv_walk *w)
{
    int64_t n = v ? v->len : 0;
    if ((uint64_t)n > UINT32_MAX)
        ms_runtime_error(0, 0, "vector too long to send");
    const ms_type *et = vt->elem;
    uint64_t least = n ? min_wire_size(et) : 0;
    /* One reservation for the least the elements take (all of it for
     * scalars), so that big vectors are not copied by buffer doubling. */
    ms_buf_reserve(b, 4 + (uint64_t)n * least);
    ms_buf_put_u32(b, (uint32_t)n);
    if (n == 0 || least == 0)
        return; /* elements of only empty structs: nothing to write */
    const unsigned char *data = MSV_DATA(v);
    switch (et->kind) {
    case MS_T_INT:
    case MS_T_DOUBLE:
        if (MSV_WIRE_IS_MEMORY) {
            memcpy(b->data + b->len, data, (size_t)n * 8);
            b->len += (uint64_t)n * 8;
        } else if (et->kind == MS_T_INT) {
            const int64_t *xs = (const int64_t *)data;
            for (int64_t i = 0; i < n; i++)
                ms_buf_put_i64(b, xs[i]);
        } else {
            const double *xs = (const double *)data;
            for (int64_t i = 0; i < n; i++)
                ms_buf_put_f64(b, xs[i]);
        }
        break;
    case MS_T_BOOL:
    case MS_T_CHAR:
        memcpy(b->data + b->len, data, (size_t)n);
        b->len += (uint64_t)n;
        break;
    default:
        if (!et->has_refs) {
            for (int64_t i = 0; i < n; i++)
                encode_plain(et, data + (size_t)i * et->size, b);
        } else {
            push_frame(w, et, (unsigned char *)data, n, 0);
        }
        break;
    }
}

/* One item of type t at p: appended to b, or (a vector or struct holding
 * references) its frame pushed onto w. */
/* m borrowed: its count appended to b, a frame for its entries onto w. */
static void encode_map(const ms_type *mt, const ms_map *m, ms_buf *b, msv_walk *w)
{
    int64_t n = m ? m->len : 0;
    if ((uint64_t)n > UINT32_MAX)
        ms_runtime_error(0, 0, "map too large to send");
    ms_buf_put_u32(b, (uint32_t)n);
    if (n > 0)
        push_frame(w, mt, (unsigned char *)m, m->entries->len, FRAME_MAP);
}

static inline void encode_item(const ms_type *t, const void *p, ms_buf *b,
                               msv_walk *w)
{
    if (t->kind == MS_T_VECTOR)
        encode_vec(t, *(ms_vec *const *)p, b, w);
    else if (t->kind == MS_T_MAP)
        encode_map(t, *(const ms_map *const *)p, b, w);
    else if (t->kind == MS_T_STRUCT && t->has_refs)
        push_frame(w, t, (unsigned char *)p, t->nfields, 1);
    else
        encode_plain(t, p, b);
}

int (*ms_share_hook)(const ms_type *t, const void *value, ms_buf *b);

/* t, value borrowed; b borrowed, appended to. In the master, a job's
 * argument may be shared instead (share.h). */
void ms_value_encode(const ms_type *t, const void *value, ms_buf *b)
{
    if (ms_share_hook && ms_share_hook(t, value, b))
        return;
    ms_value_encode_plain(t, value, b);
}

void ms_value_encode_plain(const ms_type *t, const void *value, ms_buf *b)
{
    codec_frame frames[CODEC_INLINE_FRAMES];
    msv_walk w;
    msv_walk_init(&w, frames, sizeof frames[0], CODEC_INLINE_FRAMES);
    encode_item(t, value, b, &w);
    while (w.n > 0) {
        codec_frame *f = msv_walk_top(&w);
        if (f->i == f->n) {
            w.n--;
            continue;
        }
        if (f->is_struct == FRAME_MAP) {
            /* One live entry: its key (never deep: a scalar or a string),
             * then its value, which may push. */
            const ms_type *mt = f->t;
            const ms_map *m = (const ms_map *)f->p;
            int64_t i = f->i++;
            if (!msm_live(m, i))
                continue;
            unsigned char *e = msm_entry(m, msm_esize(mt), i);
            encode_item(MSM_KEY(mt), e + msm_key_off(mt), b, &w);
            encode_item(MSM_VAL(mt), e + msm_val_off(mt), b, &w); /* f may move */
            continue;
        }
        unsigned char *at;
        const ms_type *it = item_of(f, f->i++, &at);
        encode_item(it, at, b, &w); /* f may move: not used after */
    }
    msv_walk_free(&w);
}

/* ---------------------------------------------------------------- decode */

static uint64_t bytes_left(const ms_reader *r)
{
    return r->off < r->len ? r->len - r->off : 0;
}

/* A value of type t (no references) read from r into out. Recursion only
 * through structs held by value. */
static void decode_plain(const ms_type *t, ms_reader *r, void *out)
{
    switch (t->kind) {
    case MS_T_INT:
        *(int64_t *)out = ms_read_i64(r);
        break;
    case MS_T_DOUBLE:
        *(double *)out = ms_read_f64(r);
        break;
    case MS_T_BOOL:
        /* Validation rejects other bytes; keep the 0/1 invariant anyway. */
        *(uint8_t *)out = ms_read_u8(r) != 0;
        break;
    case MS_T_CHAR:
        *(uint8_t *)out = ms_read_u8(r);
        break;
    case MS_T_STRUCT:
        for (uint32_t i = 0; i < t->nfields; i++)
            decode_plain(t->fields[i], r, (unsigned char *)out + t->offsets[i]);
        break;
    default:
        not_serializable();
    }
}

/* Returns a new vector (owned by the caller) read from r (borrowed): whole
 * when its elements are plain, else zeroed with a frame for its elements
 * pushed onto w (the vector is stored by the caller before the walk goes
 * on, so a job abandoned in the middle leaves nothing unreachable but
 * tracked vectors). */
static ms_vec *decode_vec(const ms_type *vt, ms_reader *r, msv_walk *w)
{
    uint32_t n = ms_read_u32(r);
    if (n == 0)
        return NULL;
    const ms_type *et = vt->elem;
    uint64_t least = min_wire_size(et);
    if (least == 0) {
        /* Elements of only empty structs: no bytes to read and none to
         * hold (their size is 0), so any count is decoded as it is, the
         * count the validator accepted (ms_sig_validate). */
        if (et->size != 0)
            ms_runtime_error(0, 0, "internal error: a type of no wire bytes "
                                   "has a size in memory");
        return msv_alloc(et->size, n, n);
    }
    if (n > bytes_left(r) / least) {
        r->off = r->len;
        return NULL;
    }
    ms_vec *v = msv_alloc(et->size, n, n);
    unsigned char *data = MSV_DATA(v);
    const uint8_t *src = r->data + r->off; /* n * least bytes are left */
    switch (et->kind) {
    case MS_T_INT:
    case MS_T_DOUBLE:
        if (MSV_WIRE_IS_MEMORY) {
            memcpy(data, src, (size_t)n * 8);
            r->off += (uint64_t)n * 8;
        } else if (et->kind == MS_T_INT) {
            int64_t *xs = (int64_t *)data;
            for (uint32_t i = 0; i < n; i++)
                xs[i] = ms_read_i64(r);
        } else {
            double *xs = (double *)data;
            for (uint32_t i = 0; i < n; i++)
                xs[i] = ms_read_f64(r);
        }
        break;
    case MS_T_BOOL:
        /* Validation rejects other bytes; keep the 0/1 invariant anyway. */
        for (uint32_t i = 0; i < n; i++)
            data[i] = src[i] != 0;
        r->off += n;
        break;
    case MS_T_CHAR:
        memcpy(data, src, n);
        r->off += n;
        break;
    default:
        /* Zeroed first so that struct padding is defined, and so that the
         * elements not read yet are valid (empty) values. */
        memset(data, 0, (size_t)n * et->size);
        if (!et->has_refs) {
            for (uint32_t i = 0; i < n; i++)
                decode_plain(et, r, data + (size_t)i * et->size);
        } else {
            push_frame(w, et, data, n, 0);
        }
        break;
    }
    return v;
}

/* One item of type t read from r into out, or (a vector or struct holding
 * references) started there with its frame pushed onto w. */
/* A new map (owned by the caller) read from r: allocated for its count
 * (checked against the bytes left first: each entry takes at least its
 * key's and value's least bytes), empty, with a frame that decodes its
 * entries pushed onto w; NULL when the count is 0 or cannot fit. */
static ms_map *decode_map(const ms_type *mt, ms_reader *r, msv_walk *w)
{
    uint32_t n = ms_read_u32(r);
    if (n == 0)
        return NULL;
    uint64_t least = min_wire_size(MSM_KEY(mt)) + min_wire_size(MSM_VAL(mt));
    if (n > bytes_left(r) / least) {
        r->off = r->len;
        return NULL;
    }
    ms_map *m = msm_new(mt, n);
    push_frame(w, mt, (unsigned char *)m, n, FRAME_MAP);
    return m;
}

static inline void decode_item(const ms_type *t, ms_reader *r, void *out,
                               msv_walk *w)
{
    if (t->kind == MS_T_VECTOR)
        *(ms_vec **)out = decode_vec(t, r, w);
    else if (t->kind == MS_T_MAP)
        *(ms_map **)out = decode_map(t, r, w);
    else if (t->kind == MS_T_STRUCT && t->has_refs)
        push_frame(w, t, out, t->nfields, 1);
    else
        decode_plain(t, r, out);
}

/* t borrowed; r borrowed, advanced; the value written at out is owned by
 * the caller (its vectors are new, refcount 1). */
void ms_value_decode(const ms_type *t, ms_reader *r, void *out)
{
    codec_frame frames[CODEC_INLINE_FRAMES];
    msv_walk w;
    msv_walk_init(&w, frames, sizeof frames[0], CODEC_INLINE_FRAMES);
    decode_item(t, r, out, &w);
    while (w.n > 0) {
        codec_frame *f = msv_walk_top(&w);
        if (f->i == f->n) {
            w.n--;
            continue;
        }
        if (f->is_struct == FRAME_MAP) {
            /* One entry: the key (a scalar or a string: decoding it pushes
             * nothing), inserted (the map has room for every entry, so
             * no value moves while the walk fills it), then its value. */
            const ms_type *mt = f->t;
            ms_map *m = (ms_map *)f->p;
            f->i++;
            unsigned char key[8] = {0};
            decode_item(MSM_KEY(mt), r, key, &w);
            int inserted;
            void *slot = msm_insert(mt, m, key, &inserted);
            ms_value_release(MSM_KEY(mt), key);
            if (!inserted) {
                /* A repeated key, which validation rejects first: the
                 * later value wins. */
                ms_value_release(MSM_VAL(mt), slot);
                memset(slot, 0, MSM_VAL(mt)->size);
            }
            decode_item(MSM_VAL(mt), r, slot, &w); /* f may move */
            continue;
        }
        unsigned char *at;
        const ms_type *it = item_of(f, f->i++, &at);
        decode_item(it, r, at, &w); /* f may move: not used after */
    }
    msv_walk_free(&w);
}
