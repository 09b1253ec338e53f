/* hash.h — keyed hashing (hash.c) for maps.c and ser.c. */
#ifndef MS_HASH_H
#define MS_HASH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* SipHash-1-3 of the n bytes at p (borrowed), and a keyed mixer of 64-bit
 * values, under this process's random key (drawn from getrandom at the
 * first call; a failure there ends the process). Thread-safe. */
uint64_t msm_hash_bytes(const void *p, size_t n);
uint64_t msm_hash_u64(uint64_t x);

/* The 64-bit mixer inline, for maps.c's lookups: msm_mix(x, msm_mix_key())
 * is msm_hash_u64(x). msm_mix_key is this process's key for it (two
 * words), drawn at the first call: after that, one load. */
extern _Atomic(const uint64_t *) msm_mix_key_ready;
const uint64_t *msm_mix_key_slow(void);
static inline const uint64_t *msm_mix_key(void)
{
    const uint64_t *k = atomic_load_explicit(&msm_mix_key_ready, memory_order_acquire);
    return k ? k : msm_mix_key_slow();
}

/* MurmurHash3's finalizer: a bijection whose every output bit depends on
 * every input bit. */
static inline uint64_t msm_fmix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* Two rounds of the finalizer, each after xoring in half of the key k:
 * without the key, which inputs share low bits cannot be foreseen. */
static inline uint64_t msm_mix(uint64_t x, const uint64_t *k)
{
    return msm_fmix(msm_fmix(x ^ k[0]) ^ k[1]);
}
/* SipHash with c compression and d finalization rounds under key k
 * (16 bytes), for the tests' reference vectors. */
uint64_t msm_siphash(const uint8_t k[16], const void *p, size_t n, int c, int d);
/* msm_siphash(k, p, n, 1, 3) with k as its two little-endian words k0, k1,
 * the rounds unrolled and whole words loaded at once: msm_hash_bytes. */
uint64_t msm_siphash13(uint64_t k0, uint64_t k1, const void *p, size_t n);

#endif
