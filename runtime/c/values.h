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

/* Every heap vector is allocated with a hidden prefix, a doubly linked list
 * node, just in front of its ms_vec header; the pointer compiled code sees
 * (header, elements at +24) is unchanged. Constant vectors (string
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
 * "out of memory" when the size overflows or malloc fails. The caller owns
 * the result (one reference). */
ms_vec *msv_alloc(uint32_t elem_size, int64_t len, int64_t cap);

/* Frees a vector msv_alloc made (never an immortal constant) without
 * looking at its elements; unlinks it from its thread's list. Takes v. */
void msv_free(ms_vec *v);

/* Retains what n consecutive elements of type et at data (borrowed)
 * refer to, as copying them needs; nothing when et holds no references. */
void msv_retain_range(const ms_type *et, const unsigned char *data, int64_t n);

/* Raises "out of memory" (or "internal error: ..." for an impossible case)
 * and never returns. */
_Noreturn void msv_oom(void);

/* Raises the runtime error "stack overflow" when the current frame is below
 * this thread's stack limit (see ms_stack_limit_ptr). Called once per level
 * of recursion through vectors, whose depth the program (or a message)
 * controls, so that deep values fail cleanly instead of crashing. */
void msv_check_stack(void);

#endif
