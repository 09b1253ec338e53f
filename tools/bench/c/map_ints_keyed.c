/* map_ints.c with a hash as safe from crafted keys as the M/s map's (two
 * rounds of MurmurHash3's finalizer around a random 128-bit key, as
 * runtime/c/hash.c's mixer) in place of its unkeyed multiplication: what
 * the C table costs when it may not rely on the keys' regularity. */
#include <sys/random.h>

#include "map_table.h"

static uint64_t k[2];

static uint64_t fmix(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static uint64_t slot_hash(int64_t key) {
    return fmix(fmix((uint64_t)key ^ k[0]) ^ k[1]);
}

int main(void) {
    if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k) { perror("getrandom"); return 1; }
    return run(@N@);
}
