/* values.c — vectors and reference counts: allocation, retain/release,
 * copy-on-write, append, concatenation and structural equality (of maps
 * too: their table is maps.c's). */
#include "values.h"

#include "maps.h"
#include "pool.h"
#include "ser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ allocation */

_Noreturn void msv_oom(void)
{
    ms_runtime_error(0, 0, "out of memory");
}

/* ---------------------------------------------------- tracking (slave)
 *
 * Only a slave's workers track vectors (ms_values_track_begin), so only
 * the slave's build of this file (libmsslave.a) gives each vector the
 * node in front of it; the master's (values_master.o, built with
 * MS_VALUES_UNTRACKED) gives none, saving 16 bytes per vector: a 9-byte
 * string takes a 40-byte pool block instead of 56. */
#ifdef MS_VALUES_UNTRACKED
#define NODE_BYTES ((size_t)0)
#else
#define NODE_BYTES sizeof(msv_node)
#endif
#define NODE_OF(v) ((msv_node *)((char *)(v) - NODE_BYTES))
#define VEC_OF(n) ((ms_vec *)((char *)(n) + NODE_BYTES))

#ifdef MS_VALUES_UNTRACKED
static inline void node_link(msv_node *n)
{
    (void)n;
}

static inline void node_unlink(msv_node *n)
{
    (void)n;
}

static inline void node_moved(msv_node *n)
{
    (void)n;
}
#else
/* Each thread has a circular list of the vectors it allocated while
 * tracking was on, through the msv_node in front of each vector (see
 * values.h). tl_list is its sentinel; tracking is on exactly when
 * tl_list.next is non-NULL, and a linked node always has non-NULL prev and
 * next (the sentinel closes the circle), so unlinking needs no test of the
 * thread's state. No lock: a vector a worker makes while it tracks stays
 * in its job (a result leaves encoded, as bytes), so only this thread
 * frees it and reaches its list and the nodes on it; a vector that came
 * from another thread (arguments decoded by the connection reader) was
 * made untracked, and its free leaves every list alone. The cost on the
 * normal path is one thread-local load and branch per allocation, one
 * load and branch per free. */
static _Thread_local msv_node tl_list;
_Static_assert(sizeof(msv_node) == 16, "the node keeps the block's alignment");

/* n: a new node; links it when this thread tracks, else marks it unlinked. */
static inline void node_link(msv_node *n)
{
    msv_node *head = &tl_list;
    if (head->next) {
        n->prev = head;
        n->next = head->next;
        head->next->prev = n;
        head->next = n;
    } else {
        n->prev = n->next = NULL;
    }
}

static inline void node_unlink(msv_node *n)
{
    if (n->prev) {
        n->prev->next = n->next;
        n->next->prev = n->prev;
    }
}

/* Empties this thread's list: frees its vectors (free_all) or only unlinks
 * them. Returns how many there were. */
static int64_t list_clear(int free_all)
{
    msv_node *head = &tl_list;
    int64_t n = 0;
    if (!head->next)
        return 0;
    for (msv_node *p = head->next, *next; p != head; p = next, n++) {
        next = p->next;
        if (free_all) {
            ms_pool_free(p);
        } else {
            p->prev = p->next = NULL;
        }
    }
    head->prev = head->next = head;
    return n;
}

void ms_values_track_begin(void)
{
    list_clear(0);
    tl_list.prev = tl_list.next = &tl_list;
}

int64_t ms_values_track_end(int free_all)
{
    int64_t n = list_clear(free_all);
    tl_list.prev = tl_list.next = NULL;
    return n;
}

/* n: a node realloc moved. Its neighbours (the sentinel at least) still
 * point at the old address; they are fixed before anything can raise. */
static inline void node_moved(msv_node *n)
{
    if (n->prev) {
        n->prev->next = n;
        n->next->prev = n;
    }
}
#endif

static int64_t grown_cap(int64_t cap);

/* ------------------------------------------------ the allocator pair
 *
 * msv_alloc, vec_grow and msv_free are the only places vectors are
 * allocated, reallocated and freed (strings.c and codec.c allocate through
 * msv_alloc; nothing frees a vector but msv_free). Their blocks come from
 * pool.c: up to 256 bytes from per-thread free lists, bigger ones (and
 * all of them under ASan and valgrind) from malloc. */

/* Bytes for a vector of `cap` elements of `elem_size` bytes with its hidden
 * node, or 0 when that does not fit in a size_t (or a negative capacity is
 * asked for). */
static size_t vec_bytes(uint32_t elem_size, int64_t cap)
{
    const size_t head = NODE_BYTES + sizeof(ms_vec);
    size_t bytes;
    /* Not a division: it was a quarter of this function's time when every
     * short string came through here. The builtin multiplies exactly, so
     * it also catches a cap beyond size_t. */
    if (cap < 0 || __builtin_mul_overflow(cap, elem_size, &bytes) ||
        bytes > SIZE_MAX - head)
        return 0;
    return head + bytes;
}

static ms_vec *vec_alloc(uint32_t elem_size, int64_t len, int64_t cap, int zeroed)
{
    size_t bytes = vec_bytes(elem_size, cap);
    if (bytes == 0 || len < 0 || len > cap)
        msv_oom();
    msv_node *n = zeroed ? ms_pool_calloc(bytes) : ms_pool_alloc(bytes);
    if (!n)
        msv_oom();
    ms_hint_huge(n, bytes);
    node_link(n);
    /* The elements are 8-aligned either way (a pool block's 8 or malloc's
     * 16, plus 16 for a node, plus 24 for the header). */
    ms_vec *v = VEC_OF(n);
    v->refcount = 1;
    v->len = len;
    v->cap = cap;
    return v;
}

ms_vec *msv_alloc(uint32_t elem_size, int64_t len, int64_t cap)
{
    return vec_alloc(elem_size, len, cap, 0);
}

ms_vec *msv_alloc_zeroed(uint32_t elem_size, int64_t len, int64_t cap)
{
    return vec_alloc(elem_size, len, cap, 1);
}

/* v: a vector msv_alloc made, unique (refcount 1), transferred in; grown
 * to capacity cap >= v->len and returned (owned by the caller), relinked
 * at its new address when it is in this thread's list. When realloc fails,
 * v is left as it was (still linked) and "out of memory" is raised. */
static ms_vec *vec_grow(ms_vec *v, uint32_t elem_size, int64_t cap)
{
    size_t bytes = vec_bytes(elem_size, cap);
    if (bytes == 0)
        msv_oom();
    msv_node *n = ms_pool_realloc(NODE_OF(v), bytes);
    if (!n)
        msv_oom();
    node_moved(n);
    ms_hint_huge(n, bytes);
    ms_vec *g = VEC_OF(n);
    g->cap = cap;
    return g;
}

ms_vec *msv_grow(ms_vec *v, uint32_t elem_size, int64_t cap)
{
    return vec_grow(v, elem_size, cap);
}

void msv_free(ms_vec *v)
{
    msv_node *n = NODE_OF(v);
    node_unlink(n);
    ms_pool_free(n);
}

void msv_walk_grow(msv_walk *w)
{
    int64_t cap = grown_cap(w->cap);
    if (w->heap) {
        w->heap = vec_grow(w->heap, w->fsize, cap);
    } else {
        w->heap = msv_alloc(w->fsize, 0, cap);
        memcpy(MSV_DATA(w->heap), w->base, (size_t)w->n * w->fsize);
    }
    w->base = MSV_DATA(w->heap);
    w->cap = cap;
}

/* Borrowed vt; returns a new vector (owned by the caller), or NULL when len
 * is 0. */
ms_vec *ms_vec_new(const ms_type *vt, int64_t len)
{
    if (len == 0)
        return NULL;
    if (len < 0)
        ms_runtime_error(0, 0, "internal error: negative vector length");
    uint32_t esz = vt->elem->size;
    ms_vec *v = msv_alloc(esz, len, len);
    memset(MSV_DATA(v), 0, (size_t)len * esz);
    return v;
}

/* -------------------------------------------------------------- retain */

static inline void vec_retain(ms_vec *v)
{
    if (v && v->refcount < MS_RC_IMMORTAL)
        v->refcount++;
}

/* Retains what the value of type t at p (both borrowed) refers to.
 * Recursion only through
 * structs held by value, whose nesting the type bounds (a struct cannot
 * contain itself by value). */
static void retain_refs(const ms_type *t, const void *p)
{
    switch (t->kind) {
    case MS_T_VECTOR:
    case MS_T_MAP:
        vec_retain(*(ms_vec *const *)p);
        break;
    case MS_T_JOB:
        ms_handle_retain(*(const ms_handle *)p);
        break;
    case MS_T_STRUCT:
        for (uint32_t i = 0; i < t->nfields; i++)
            if (t->fields[i]->has_refs)
                retain_refs(t->fields[i], (const unsigned char *)p + t->offsets[i]);
        break;
    default:
        break;
    }
}

/* Retains the references of n consecutive elements of type et at data
 * (borrowed). Callers check et->has_refs first. */
static void retain_range(const ms_type *et, const unsigned char *data, int64_t n)
{
    switch (et->kind) {
    case MS_T_VECTOR: {
        ms_vec *const *vs = (ms_vec *const *)data;
        for (int64_t i = 0; i < n; i++)
            vec_retain(vs[i]);
        break;
    }
    case MS_T_JOB: {
        const ms_handle *hs = (const ms_handle *)data;
        for (int64_t i = 0; i < n; i++)
            ms_handle_retain(hs[i]);
        break;
    }
    default:
        for (int64_t i = 0; i < n; i++)
            retain_refs(et, data + (size_t)i * et->size);
        break;
    }
}

void msv_retain_range(const ms_type *et, const unsigned char *data, int64_t n)
{
    if (et->has_refs)
        retain_range(et, data, n);
}

/* Borrowed t and value. */
void ms_value_retain(const ms_type *t, const void *value)
{
    if (t->has_refs)
        retain_refs(t, value);
}

/* ------------------------------------------------------------- release
 *
 * Releasing never recurses through vectors, since a program can build
 * values nested arbitrarily deep through recursive struct types. A vector
 * whose count reaches 0 and whose elements hold references goes onto an
 * intrusive list of dead vectors instead: its (now unused) refcount field
 * holds the next dead vector and its cap field its type. The list is then
 * drained in a loop, each dead vector dropping its elements' references
 * (which may add more dead vectors) before it is freed. */

/* v: a vector whose count reached 0, now owned by the list *dead. */
static inline void push_dead(ms_vec **dead, const ms_type *vt, ms_vec *v)
{
    v->refcount = (int64_t)(intptr_t)*dead;
    v->cap = (int64_t)(intptr_t)vt;
    *dead = v;
}

/* Drops the references the value of type t at p (both borrowed) holds;
 * vectors that die with element references go onto *dead (they then belong
 * to the list), the others are freed at once. */
static void drop_refs(const ms_type *t, void *p, ms_vec **dead)
{
    switch (t->kind) {
    case MS_T_VECTOR: {
        ms_vec *v = *(ms_vec **)p;
        if (v && v->refcount < MS_RC_IMMORTAL && --v->refcount == 0) {
            if (t->elem->has_refs)
                push_dead(dead, t, v);
            else
                msv_free(v);
        }
        break;
    }
    case MS_T_MAP: {
        /* A dead map always goes onto the list: its blocks are freed there. */
        ms_vec *v = *(ms_vec **)p;
        if (v && v->refcount < MS_RC_IMMORTAL && --v->refcount == 0)
            push_dead(dead, t, v);
        break;
    }
    case MS_T_JOB:
        ms_handle_release(*(ms_handle *)p);
        break;
    case MS_T_STRUCT:
        for (uint32_t i = 0; i < t->nfields; i++)
            if (t->fields[i]->has_refs)
                drop_refs(t->fields[i], (unsigned char *)p + t->offsets[i], dead);
        break;
    default:
        break;
    }
}

/* Frees every vector on the dead list (which it owns), and those that die
 * as a result. */
static void drain_dead(ms_vec *dead)
{
    while (dead) {
        ms_vec *v = dead;
        const ms_type *vt = (const ms_type *)(intptr_t)v->cap;
        dead = (ms_vec *)(intptr_t)v->refcount;
        if (vt->kind == MS_T_MAP) {
            ms_map *m = (ms_map *)v;
            const ms_type *kt = MSM_KEY(vt), *mv = MSM_VAL(vt);
            uint32_t esize = msm_esize(vt);
            if (m->entries && (kt->has_refs || mv->has_refs)) {
                for (int64_t i = 0; i < m->entries->len; i++) {
                    if (!msm_live(m, i))
                        continue;
                    unsigned char *e = msm_entry(m, esize, i);
                    if (kt->has_refs)
                        drop_refs(kt, e + msm_key_off(vt), &dead);
                    if (mv->has_refs)
                        drop_refs(mv, e + msm_val_off(vt), &dead);
                }
            }
            msm_free(m);
            continue;
        }
        const ms_type *et = vt->elem;
        unsigned char *data = MSV_DATA(v);
        int64_t n = v->len;
        if (et->kind == MS_T_VECTOR) {
            ms_vec **vs = (ms_vec **)data;
            for (int64_t i = 0; i < n; i++)
                drop_refs(et, &vs[i], &dead);
        } else if (et->kind == MS_T_JOB) {
            ms_handle *hs = (ms_handle *)data;
            for (int64_t i = 0; i < n; i++)
                ms_handle_release(hs[i]);
        } else {
            for (int64_t i = 0; i < n; i++)
                drop_refs(et, data + (size_t)i * et->size, &dead);
        }
        msv_free(v);
    }
}

/* Transfers one reference of v (may be NULL or immortal). */
void ms_vec_release(const ms_type *vt, ms_vec *v)
{
    if (!v || v->refcount >= MS_RC_IMMORTAL || --v->refcount != 0)
        return;
    if (vt->kind != MS_T_MAP && !vt->elem->has_refs) {
        msv_free(v);
        return;
    }
    ms_vec *dead = NULL;
    push_dead(&dead, vt, v);
    drain_dead(dead);
}

/* Borrowed t; the references held by the value at `value` are transferred
 * (dropped). The value's bytes are left as they were. */
void ms_value_release(const ms_type *t, void *value)
{
    if (!t->has_refs)
        return;
    ms_vec *dead = NULL;
    drop_refs(t, value, &dead);
    drain_dead(dead);
}

/* ------------------------------------------------------ copy-on-write */

/* A copy of v (borrowed, non-NULL) with capacity cap >= v->len, its
 * elements retained; the caller owns the result. */
static ms_vec *vec_copy(const ms_type *vt, const ms_vec *v, int64_t cap)
{
    const ms_type *et = vt->elem;
    ms_vec *n = msv_alloc(et->size, v->len, cap);
    memcpy(MSV_DATA(n), MSV_DATA(v), (size_t)v->len * et->size);
    if (et->has_refs)
        retain_range(et, MSV_DATA(n), n->len);
    return n;
}

/* Drops one reference of v, which is shared (count > 1) or immortal, so it
 * never frees. */
static inline void vec_unshare(ms_vec *v)
{
    if (v->refcount < MS_RC_IMMORTAL)
        v->refcount--;
}

/* *vp: one reference, transferred in and out. Returns *vp (borrowed). */
ms_vec *ms_vec_unique(const ms_type *vt, ms_vec **vp)
{
    ms_vec *v = *vp;
    if (!v || v->refcount == 1)
        return v;
    ms_vec *n = vt->kind == MS_T_MAP ? (ms_vec *)msm_copy(vt, (ms_map *)v)
                                     : vec_copy(vt, v, v->len);
    vec_unshare(v);
    *vp = n;
    return n;
}

/* The capacity after growing from `cap`: doubled, at least 4. */
static int64_t grown_cap(int64_t cap)
{
    if (cap < 4)
        return 4;
    if (cap > INT64_MAX / 2)
        msv_oom();
    return cap * 2;
}

/* *vp: one reference, transferred in and out. Returns the address of the
 * new (zeroed) last element, valid until the vector is next changed. */
void *ms_vec_push(const ms_type *vt, ms_vec **vp)
{
    uint32_t esz = vt->elem->size;
    ms_vec *v = *vp;
    if (!v) {
        v = msv_alloc(esz, 0, 4);
    } else if (v->refcount != 1) {
        ms_vec *n = vec_copy(vt, v, v->len < v->cap ? v->cap : grown_cap(v->len));
        vec_unshare(v);
        v = n;
    } else if (v->len == v->cap) {
        v = vec_grow(v, esz, grown_cap(v->cap));
    }
    *vp = v;
    unsigned char *elem = MSV_DATA(v) + (size_t)v->len * esz;
    memset(elem, 0, esz);
    v->len++;
    return elem;
}

/* a and b borrowed; returns a new vector owned by the caller (NULL when
 * both are empty). */
ms_vec *ms_vec_concat(const ms_type *vt, const ms_vec *a, const ms_vec *b)
{
    int64_t la = a ? a->len : 0, lb = b ? b->len : 0;
    if (la > INT64_MAX - lb)
        msv_oom();
    int64_t n = la + lb;
    if (n == 0)
        return NULL;
    const ms_type *et = vt->elem;
    ms_vec *r = msv_alloc(et->size, n, n);
    unsigned char *data = MSV_DATA(r);
    if (la)
        memcpy(data, MSV_DATA(a), (size_t)la * et->size);
    if (lb)
        memcpy(data + (size_t)la * et->size, MSV_DATA(b), (size_t)lb * et->size);
    if (et->has_refs)
        retain_range(et, data, n);
    return r;
}

/* *vp: one reference, transferred in and out; b borrowed (it may be *vp
 * itself: `s += s`). Appends b's elements (retained) to *vp: in place when
 * *vp is unique, growing its capacity at least twofold when it must grow,
 * so that `s += x` in a loop is amortized linear; otherwise into a new
 * vector, dropping one reference of the old. */
void ms_vec_append_all(const ms_type *vt, ms_vec **vp, const ms_vec *b)
{
    int64_t lb = b ? b->len : 0;
    if (lb == 0)
        return;
    ms_vec *a = *vp;
    if (!a) {
        /* Share b: a copy costs a retain (immortal literals included). */
        vec_retain((ms_vec *)b);
        *vp = (ms_vec *)b;
        return;
    }
    const ms_type *et = vt->elem;
    int64_t la = a->len;
    if (la > INT64_MAX - lb)
        msv_oom();
    int64_t n = la + lb;
    unsigned char *src;
    if (a->refcount == 1) {
        if (n > a->cap) {
            int64_t cap = a->cap > INT64_MAX / 2 ? n : a->cap * 2;
            if (cap < n)
                cap = n;
            int self = b == a;
            a = vec_grow(a, et->size, cap);
            if (self)
                b = a;
        }
        src = MSV_DATA(b);
    } else {
        int64_t cap = la > INT64_MAX / 2 ? n : 2 * la;
        if (cap < n)
            cap = n;
        ms_vec *c = msv_alloc(et->size, la, cap);
        memcpy(MSV_DATA(c), MSV_DATA(a), (size_t)la * et->size);
        if (et->has_refs)
            retain_range(et, MSV_DATA(c), la);
        src = MSV_DATA(b);
        vec_unshare(a);
        a = c;
    }
    unsigned char *dst = MSV_DATA(a) + (size_t)la * et->size;
    memmove(dst, src, (size_t)lb * et->size);
    if (et->has_refs)
        retain_range(et, dst, lb);
    a->len = n;
    *vp = a;
}

/* ------------------------------------------------------------ equality */

/* The types a may_hold_double walk has visited (borrowed pointers). */
typedef struct type_set {
    const ms_type *seen[64];
    int n;
} type_set;

/* Whether a value of type t (borrowed) may contain a double, so that it may
 * differ from itself (NaN). A depth-first walk that visits each type once:
 * descriptors of recursive structs (through vectors) form cycles, and a
 * type seen before added nothing. Answers "maybe" (1) when the type has
 * more distinct parts than the set holds. */
static int may_hold_double(const ms_type *t, type_set *set)
{
    for (int i = 0; i < set->n; i++)
        if (set->seen[i] == t)
            return 0;
    if (set->n == (int)(sizeof set->seen / sizeof set->seen[0]))
        return 1;
    set->seen[set->n++] = t;
    switch (t->kind) {
    case MS_T_DOUBLE:
        return 1;
    case MS_T_VECTOR:
    case MS_T_MAP:
        return may_hold_double(t->elem, set);
    case MS_T_STRUCT:
        for (uint32_t i = 0; i < t->nfields; i++)
            if (may_hold_double(t->fields[i], set))
                return 1;
        return 0;
    default:
        return 0;
    }
}

/* Equality walks the two values side by side without recursing through
 * vectors: a pair of vectors whose elements still need comparing is a
 * frame on an msv_walk, and the walk takes the next element of the top
 * frame until the stack is empty. Comparing has no side effects, so the
 * order of the comparisons is free; the stack holds one frame per level
 * of vectors the walk is inside of (plus the other vector fields of the
 * structs on the way). Structs held by value are compared in place, by
 * recursion that their nesting (which the type bounds) limits. */
typedef struct eq_frame {
    const ms_type *et;          /* the element type; a map's type */
    const unsigned char *pa, *pb; /* elements; two maps */
    int64_t i, n;               /* next element, element count; entry slot */
    int is_map;
} eq_frame;

/* Frames kept in the C frame of ms_value_eq before the walk allocates. */
#define EQ_INLINE_FRAMES 32

/* Borrowed a and b (each may be NULL). Returns 0 when they differ, 1 when
 * they are equal or the comparison of their elements went onto w. */
static int vec_eq(const ms_type *vt, const ms_vec *a, const ms_vec *b, msv_walk *w)
{
    int64_t n = a ? a->len : 0;
    if (n != (b ? b->len : 0))
        return 0;
    if (n == 0)
        return 1;
    const ms_type *et = vt->elem;
    const unsigned char *pa = MSV_DATA(a), *pb = MSV_DATA(b);
    switch (et->kind) {
    case MS_T_INT:
    case MS_T_BOOL:
    case MS_T_CHAR:
    case MS_T_JOBSTATE:
    case MS_T_JOB:
        /* No padding and one representation per value: bytes decide. */
        return a == b || memcmp(pa, pb, (size_t)n * et->size) == 0;
    case MS_T_DOUBLE: {
        const double *da = (const double *)pa, *db = (const double *)pb;
        for (int64_t i = 0; i < n; i++)
            if (!(da[i] == db[i]))
                return 0;
        return 1;
    }
    default:
        if (a == b) {
            type_set set = { .n = 0 };
            if (!may_hold_double(et, &set))
                return 1;
        }
        eq_frame *f = msv_walk_push(w);
        *f = (eq_frame){ et, pa, pb, 0, n, 0 };
        return 1;
    }
}

/* Maps a and b (borrowed, may be NULL): 0 when their sizes differ, else 1
 * with the comparison of their entries pushed onto w (each key of a looked
 * up in b, whatever the order: SPEC 13). */
static int map_eq(const ms_type *mt, const ms_vec *a, const ms_vec *b, msv_walk *w)
{
    int64_t n = a ? a->len : 0;
    if (n != (b ? b->len : 0))
        return 0;
    if (n == 0)
        return 1;
    if (a == b) {
        type_set set = { .n = 0 };
        if (!may_hold_double(mt, &set))
            return 1;
    }
    eq_frame *f = msv_walk_push(w);
    *f = (eq_frame){ mt, (const unsigned char *)a, (const unsigned char *)b, 0,
                     ((const ms_map *)a)->entries->len, 1 };
    return 1;
}

/* t, a and b borrowed; vectors inside go onto w (see vec_eq). */
static int value_eq(const ms_type *t, const void *a, const void *b, msv_walk *w)
{
    switch (t->kind) {
    case MS_T_INT:
        return *(const int64_t *)a == *(const int64_t *)b;
    case MS_T_DOUBLE:
        return *(const double *)a == *(const double *)b;
    case MS_T_BOOL:
    case MS_T_CHAR:
        return *(const uint8_t *)a == *(const uint8_t *)b;
    case MS_T_JOBSTATE:
        return *(const int32_t *)a == *(const int32_t *)b;
    case MS_T_JOB:
        return *(const ms_handle *)a == *(const ms_handle *)b;
    case MS_T_VECTOR:
        return vec_eq(t, *(ms_vec *const *)a, *(ms_vec *const *)b, w);
    case MS_T_MAP:
        return map_eq(t, *(ms_vec *const *)a, *(ms_vec *const *)b, w);
    case MS_T_STRUCT:
        for (uint32_t i = 0; i < t->nfields; i++)
            if (!value_eq(t->fields[i], (const unsigned char *)a + t->offsets[i],
                          (const unsigned char *)b + t->offsets[i], w))
                return 0;
        return 1;
    default:
        ms_runtime_error(0, 0, "internal error: bad type descriptor");
    }
}

/* Borrowed t, a and b. */
int8_t ms_value_eq(const ms_type *t, const void *a, const void *b)
{
    eq_frame frames[EQ_INLINE_FRAMES];
    msv_walk w;
    msv_walk_init(&w, frames, sizeof frames[0], EQ_INLINE_FRAMES);
    int eq = value_eq(t, a, b, &w);
    while (eq && w.n > 0) {
        eq_frame *f = msv_walk_top(&w);
        if (f->i == f->n) {
            w.n--;
            continue;
        }
        if (f->is_map) {
            const ms_type *mt = f->et;
            const ms_map *ma = (const ms_map *)f->pa;
            int64_t i = f->i++;
            if (!msm_live(ma, i))
                continue;
            const unsigned char *e = msm_entry(ma, msm_esize(mt), i);
            const void *vb = msm_find(mt, (const ms_map *)f->pb, e + msm_key_off(mt));
            /* f may move when value_eq pushes: not used after. */
            eq = vb != NULL && value_eq(MSM_VAL(mt), e + msm_val_off(mt), vb, &w);
            continue;
        }
        size_t off = (size_t)f->i++ * f->et->size;
        /* f may move when value_eq pushes: everything is read first. */
        eq = value_eq(f->et, f->pa + off, f->pb + off, &w);
    }
    msv_walk_free(&w);
    return (int8_t)eq;
}

/* -------------------------------------------------------- index errors */

_Noreturn void ms_index_error(int64_t index, int64_t len, int32_t line, int32_t col)
{
    /* Thread-local rather than on the stack: ms_runtime_error may unwind
     * (a failing job) before the message has been used up. */
    static _Thread_local char msg[96];
    snprintf(msg, sizeof msg, "index %lld out of bounds for length %lld",
             (long long)index, (long long)len);
    ms_runtime_error(line, col, msg);
}
