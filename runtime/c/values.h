/* values.h — private helpers shared by values.c, strings.c and codec.c. */
#ifndef MS_VALUES_H
#define MS_VALUES_H

#include "ms_abi.h"

/* The elements of a (non-NULL) vector start right after its header. */
#define MSV_DATA(v) ((unsigned char *)(v) + sizeof(ms_vec))

/* A new vector with refcount 1, length `len` and capacity `cap`
 * (0 < len <= cap is not required: len may be 0 when cap > 0), elements of
 * `elem_size` bytes left UNINITIALIZED. Raises the runtime error
 * "out of memory" when the size overflows or malloc fails. The caller owns
 * the result (one reference). */
ms_vec *msv_alloc(uint32_t elem_size, int64_t len, int64_t cap);

/* Raises "out of memory" (or "internal error: ..." for an impossible case)
 * and never returns. */
_Noreturn void msv_oom(void);

/* Raises the runtime error "stack overflow" when the current frame is below
 * this thread's stack limit (see ms_stack_limit_ptr). Called once per level
 * of recursion through vectors, whose depth the program (or a message)
 * controls, so that deep values fail cleanly instead of crashing. */
void msv_check_stack(void);

#endif
