/* map_ints.c with a hash as safe from crafted keys as the M/s map's (two
 * rounds of MurmurHash3's finalizer around a random 128-bit key, as
 * runtime/c/hash.c's mixer) in place of its unkeyed multiplication: what
 * the C table costs when it may not rely on the keys' regularity. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <sys/random.h>

typedef struct { int64_t key, value; int used; } slot;
static slot *tab;
static size_t cap = 16, count;
static uint64_t k[2];

static uint64_t fmix(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static size_t find(int64_t key) {
    size_t i = (size_t)fmix(fmix((uint64_t)key ^ k[0]) ^ k[1]) & (cap - 1);
    while (tab[i].used && tab[i].key != key) i = (i + 1) & (cap - 1);
    return i;
}

static void put(int64_t key, int64_t value) {
    if (2 * (count + 1) > cap) {
        slot *old = tab; size_t oc = cap;
        cap *= 2; tab = calloc(cap, sizeof *tab);
        for (size_t i = 0; i < oc; i++)
            if (old[i].used) tab[find(old[i].key)] = old[i];
        free(old);
    }
    size_t i = find(key);
    if (!tab[i].used) { tab[i].used = 1; tab[i].key = key; count++; }
    tab[i].value = value;
}

int main(void) {
    if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k) { perror("getrandom"); return 1; }
    long n = @N@;
    tab = calloc(cap, sizeof *tab);
    for (long i = 0; i < n; i++) put(i * 2654435761L, i);
    long sum = 0;
    for (long i = 0; i < n; i++) sum += tab[find(i * 2654435761L)].value;
    printf("%zu\n%ld\n", count, sum);
    free(tab);
    return 0;
}
