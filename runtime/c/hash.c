/* hash.c — the keyed hashes of maps (SPEC 13) and of the validator's
 * repeated-key check: SipHash-1-3 for bytes, a keyed mixer for 64-bit
 * keys, both under one random 128-bit key per process. */
#include "hash.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"


/* The per-process hash key: 128 random bits from getrandom, drawn once
 * (pthread_once) before the first hash; read-only afterwards, so it needs
 * no lock. */
static uint8_t hash_key[16];
static uint64_t mix_k0, mix_k1;
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

static uint64_t get_u64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void make_hash_key(void)
{
    size_t got = 0;
    while (got < sizeof hash_key) {
        ssize_t n = getrandom(hash_key + got, sizeof hash_key - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            /* No key, no safe hash: the process cannot go on. */
            ms_fatal("getrandom for the map hash key: %s", strerror(errno));
        }
        got += (size_t)n;
    }
    mix_k0 = get_u64le(hash_key);
    mix_k1 = get_u64le(hash_key + 8);
}

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

/* One SipRound on the state v[0..3] (Aumasson and Bernstein, "SipHash: a
 * fast short-input PRF", 2012, section 2). */
static inline void sip_round(uint64_t v[4])
{
    v[0] += v[1]; v[1] = rotl(v[1], 13); v[1] ^= v[0]; v[0] = rotl(v[0], 32);
    v[2] += v[3]; v[3] = rotl(v[3], 16); v[3] ^= v[2];
    v[0] += v[3]; v[3] = rotl(v[3], 21); v[3] ^= v[0];
    v[2] += v[1]; v[1] = rotl(v[1], 17); v[1] ^= v[2]; v[2] = rotl(v[2], 32);
}

/* SipHash-c-d of the n bytes at p under k: the message is taken as
 * little-endian 64-bit words, the last one padded with zeros and holding
 * n mod 256 in its top byte; each word m is absorbed as v3 ^= m, c
 * rounds, v0 ^= m; then v2 ^= 0xff, d rounds, and the result is the xor
 * of the four words. */
uint64_t msm_siphash(const uint8_t k[16], const void *p, size_t n, int c, int d)
{
    uint64_t k0 = get_u64le(k), k1 = get_u64le(k + 8);
    uint64_t v[4] = { k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
                      k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL };
    const uint8_t *in = p;
    size_t whole = n & ~(size_t)7;
    for (size_t off = 0; off <= whole; off += 8) {
        uint64_t m;
        if (off < whole) {
            m = get_u64le(in + off);
        } else {
            m = (uint64_t)(n & 0xff) << 56;
            for (size_t i = 0; i < (n & 7); i++)
                m |= (uint64_t)in[off + i] << (8 * i);
        }
        v[3] ^= m;
        for (int i = 0; i < c; i++)
            sip_round(v);
        v[0] ^= m;
    }
    v[2] ^= 0xff;
    for (int i = 0; i < d; i++)
        sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

uint64_t msm_hash_bytes(const void *p, size_t n)
{
    pthread_once(&hash_key_once, make_hash_key);
    return msm_siphash(hash_key, p, n, 1, 3);
}

/* Two rounds of MurmurHash3's finalizer (a bijection whose every output
 * bit depends on every input bit), each after xoring in half of the key:
 * without the key, which inputs share low bits cannot be foreseen. */
static inline uint64_t fmix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

uint64_t msm_hash_u64(uint64_t x)
{
    pthread_once(&hash_key_once, make_hash_key);
    return fmix(fmix(x ^ mix_k0) ^ mix_k1);
}

