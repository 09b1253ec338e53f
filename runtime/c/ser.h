/* ser.h — byte buffers, readers, and the type-signature validator that
 * every received payload passes before compiled code decodes it. */
#ifndef MS_SER_H
#define MS_SER_H

#include <stddef.h>
#include <stdint.h>

#include "ms_abi.h"

/* Make room for `extra` more bytes (ends the process if memory runs out). */
void ms_buf_reserve(ms_buf *b, uint64_t extra);
/* Append `n` bytes of `p` (borrowed). */
void ms_buf_append(ms_buf *b, const void *p, uint64_t n);
/* Allocations of at least MS_HUGE_MIN bytes ask the kernel for
 * transparent huge pages (madvise MADV_HUGEPAGE on the pages of malloc's
 * block at p, which must come from malloc or realloc): filling a fresh 80 MB buffer then takes 40 page faults
 * instead of 20,000, and freeing it is as quick. A hint only. */
#define MS_HUGE_MIN ((size_t)4 << 20)
void ms_hint_huge(void *p, size_t n);

/* Free the bytes (not the ms_buf itself) and make it empty. */
void ms_buf_free(ms_buf *b);

/* On this thread from now on, a buffer that cannot grow (ms_buf_reserve)
 * calls h with the message (the slave's workers, while they run a job:
 * a runtime error, so that the job fails alone; h does not return), or,
 * with h NULL (the default), ends the process. */
typedef void (*ms_oom_handler)(const char *msg);
void ms_buf_on_oom(ms_oom_handler h);

/* Check that `sig` is a well-formed signature (section "Type signatures" of
 * ms_abi.h). Returns 0, or -1 with a reason in err. */
int ms_sig_check(const char *sig, char *err, size_t errlen);

/* Check that the `len` bytes at `data` (borrowed) are exactly one encoding
 * of the values of `sig`: every bool byte is 0 or 1, every vector count is
 * possible given the bytes left (checked before looking at the elements;
 * elements of zero size, which take no memory either, may have any u32
 * count: exactly what ms_value_decode builds), and nothing is left over. Returns 0, or -1 with a reason in err. Never recurses per
 * level of the payload's nesting; allocates (and frees) only when it is
 * more than 32 vectors and structs deep. */
int ms_sig_validate(const char *sig, const uint8_t *data, uint64_t len,
                    char *err, size_t errlen);

#endif
