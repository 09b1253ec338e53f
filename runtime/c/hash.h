/* hash.h — keyed hashing (hash.c) for maps.c and ser.c. */
#ifndef MS_HASH_H
#define MS_HASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-1-3 of the n bytes at p (borrowed), and a keyed mixer of 64-bit
 * values, under this process's random key (drawn from getrandom at the
 * first call; a failure there ends the process). Thread-safe. */
uint64_t msm_hash_bytes(const void *p, size_t n);
uint64_t msm_hash_u64(uint64_t x);
/* SipHash with c compression and d finalization rounds under key k
 * (16 bytes), for the tests' reference vectors. */
uint64_t msm_siphash(const uint8_t k[16], const void *p, size_t n, int c, int d);

#endif
