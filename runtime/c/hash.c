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

/* The mixer's key (mix_k0, mix_k1), published once drawn. */
_Atomic(const uint64_t *) msm_mix_key_ready;
static uint64_t mix_key[2];

static void publish_mix_key(void)
{
    pthread_once(&hash_key_once, make_hash_key);
    mix_key[0] = mix_k0;
    mix_key[1] = mix_k1;
    atomic_store_explicit(&msm_mix_key_ready, mix_key, memory_order_release);
}

static pthread_once_t mix_key_once = PTHREAD_ONCE_INIT;

const uint64_t *msm_mix_key_slow(void)
{
    pthread_once(&mix_key_once, publish_mix_key);
    return mix_key;
}

/* 8 bytes at p as a little-endian word, in one load. */
static inline uint64_t load_u64le(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

uint64_t msm_siphash13(uint64_t k0, uint64_t k1, const void *p, size_t n)
{
    const uint8_t *in = p;
    uint64_t v[4] = { k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
                      k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL };
    const uint8_t *end = in + (n & ~(size_t)7);
    for (; in != end; in += 8) {
        uint64_t m = load_u64le(in);
        v[3] ^= m;
        sip_round(v);
        v[0] ^= m;
    }
    uint64_t m = (uint64_t)(n & 0xff) << 56;
    switch (n & 7) {
    case 7: m |= (uint64_t)in[6] << 48; /* fall through */
    case 6: m |= (uint64_t)in[5] << 40; /* fall through */
    case 5: m |= (uint64_t)in[4] << 32; /* fall through */
    case 4: m |= (uint64_t)in[3] << 24; /* fall through */
    case 3: m |= (uint64_t)in[2] << 16; /* fall through */
    case 2: m |= (uint64_t)in[1] << 8;  /* fall through */
    case 1: m |= (uint64_t)in[0];       /* fall through */
    default: break;
    }
    v[3] ^= m;
    sip_round(v);
    v[0] ^= m;
    v[2] ^= 0xff;
    sip_round(v);
    sip_round(v);
    sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

uint64_t msm_hash_bytes(const void *p, size_t n)
{
    /* The mixer's key is hash_key's two words (publish_mix_key). */
    const uint64_t *k = msm_mix_key();
    return msm_siphash13(k[0], k[1], p, n);
}

uint64_t msm_hash_u64(uint64_t x)
{
    return msm_mix(x, msm_mix_key());
}
