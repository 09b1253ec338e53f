/* values.h — private helpers shared by values.c, strings.c and codec.c,
 * and the per-thread tracking of vectors that the slave uses to reclaim a
 * failed job's values (the slave's workers are the only other caller).
 * Compiled code never calls anything here, which is why it is not in
 * ms_abi.h: the ABI between compiler and runtime stays as it was. */
#ifndef MS_VALUES_H
#define MS_VALUES_H

#include "ms_abi.h"

/* The elements of a (non-NULL) vector start right after its header. */
#define MSV_DATA(v) ((unsigned char *)(v) + sizeof(ms_vec))

/* In a slave, every heap vector is allocated with a hidden prefix, a doubly
 * linked list node, just in front of its ms_vec header; the pointer
 * compiled code sees (header, elements at +24) is unchanged. The master's
 * build of values.c (MS_VALUES_UNTRACKED) has no prefix and no tracking:
 * nothing there tracks. Constant vectors (string
 * literals, refcount >= MS_RC_IMMORTAL) are emitted by the compiler without
 * the prefix: the runtime never frees, grows or links them. */
typedef struct msv_node {
    struct msv_node *prev; /* NULL: not in any thread's list */
    struct msv_node *next;
} msv_node;

/* Vector tracking, per thread. A slave's worker turns it on around each job
 * so that a job abandoned by a longjmp (ms_runtime_error, ms_cancel_point)
 * does not leak the vectors its frames owned:
 *   ms_values_track_begin()  start tracking on this thread with an empty
 *     list: every vector this thread allocates from now on is linked into
 *     it, and unlinked when it is freed (a grown vector is relinked at its
 *     new address). Vectors allocated while tracking was off are never
 *     linked, so freeing them never touches any list. Calling it while
 *     tracking is on first unlinks what the list holds (as end(0) would).
 *   ms_values_track_end(free_all)  stop tracking and empty the list. With
 *     free_all, every vector still in the list is freed WITHOUT releasing
 *     what its elements refer to (those vectors are in the list too; job
 *     handles cannot occur in a slave) and without reading refcounts: for
 *     a job that was abandoned, whose vectors nothing can reach any more.
 *     Without it, the vectors are only unlinked and stay as they are.
 *     Returns how many vectors the list held: after a job that finished
 *     normally every vector it made was released, so 0 is expected (the
 *     slave's tests check it).
 * Values are confined to the thread that made them (ms_abi.h, part C), so
 * the list needs no lock: only its own thread ever reaches it. */
void ms_values_track_begin(void);
int64_t ms_values_track_end(int free_all);

/* A new vector with refcount 1, length `len` and capacity `cap`
 * (0 < len <= cap is not required: len may be 0 when cap > 0), elements of
 * `elem_size` bytes left UNINITIALIZED. Raises the runtime error
 * "out of memory" when the size overflows or no memory is left (pool.c:
 * small blocks from per-thread lists, big ones from malloc). The caller
 * owns the result (one reference). */
ms_vec *msv_alloc(uint32_t elem_size, int64_t len, int64_t cap);

/* msv_alloc with the elements zeroed (calloc: a large block comes zeroed
 * from the kernel, not written twice). */
ms_vec *msv_alloc_zeroed(uint32_t elem_size, int64_t len, int64_t cap);

/* v (from msv_alloc, unique, transferred in) with capacity cap >= v->len,
 * its elements kept (realloc: a large block is remapped, not copied);
 * returned, owned by the caller. Raises "out of memory" leaving v as it
 * was. */
ms_vec *msv_grow(ms_vec *v, uint32_t elem_size, int64_t cap);

/* Frees a vector msv_alloc made (never an immortal constant) without
 * looking at its elements; unlinks it from its thread's list. Takes v. */
void msv_free(ms_vec *v);

/* Retains what n consecutive elements of type et at data (borrowed)
 * refer to, as copying them needs; nothing when et holds no references. */
void msv_retain_range(const ms_type *et, const unsigned char *data, int64_t n);

/* Raises "out of memory" (or "internal error: ..." for an impossible case)
 * and never returns. */
_Noreturn void msv_oom(void);

/* The explicit stack of the walks over values (equality in values.c,
 * encoding and decoding in codec.c). Values nest as deep as a program or a
 * message makes them (a struct holding a vector of itself), so no walk
 * recurses in C once per level of vectors: each keeps the vectors it is
 * inside of as frames of `fsize` bytes on one of these. The first frames
 * live in an array in the caller's C frame, so a shallow value costs no
 * allocation; deeper, they move to a block from msv_alloc, which a job
 * abandoned in the middle of a walk has freed with its other vectors
 * (tracking, above). Growing raises "out of memory" when it cannot. */
typedef struct msv_walk {
    unsigned char *base; /* the frames: the caller's array, or heap's data */
    int64_t n, cap;      /* frames in use, frames there is room for */
    uint32_t fsize;
    ms_vec *heap;        /* NULL until the frames outgrow the array */
} msv_walk;

/* frames: `cap` frames of fsize bytes in the caller, borrowed until
 * msv_walk_free. */
static inline void msv_walk_init(msv_walk *w, void *frames, uint32_t fsize,
                                 int64_t cap)
{
    *w = (msv_walk){ frames, 0, cap, fsize, NULL };
}

/* Moves the frames to a block with twice the room. */
void msv_walk_grow(msv_walk *w);

/* A new frame on top (uninitialized), valid until the next push. */
static inline void *msv_walk_push(msv_walk *w)
{
    if (w->n == w->cap)
        msv_walk_grow(w);
    return w->base + (size_t)w->n++ * w->fsize;
}

/* The top frame (w->n > 0), valid until the next push. */
static inline void *msv_walk_top(const msv_walk *w)
{
    return w->base + (size_t)(w->n - 1) * w->fsize;
}

/* Frees the block the frames moved to, if they did. */
static inline void msv_walk_free(msv_walk *w)
{
    if (w->heap)
        msv_free(w->heap);
}

/* Writes `s` (borrowed) as an M/s string literal, at most
 * MSV_QUOTE_SHOWN of its bytes then `...` after the closing quote, into
 * out (at least MSV_QUOTE_BYTES), NUL-terminated: how runtime errors show
 * a string (`cannot convert "12x" to int`, `key "apple" not in map`). */
#define MSV_QUOTE_SHOWN 64
#define MSV_QUOTE_BYTES (4 * MSV_QUOTE_SHOWN + 8)
void msv_quote(const ms_vec *s, char *out);

#endif
