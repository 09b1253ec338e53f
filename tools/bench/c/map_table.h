/* The small open-addressing table of map_ints.c and map_ints_keyed.c
 * (linear probing, doubling at half full), over the hash `slot_hash` the
 * including file defines, and their work: n int keys inserted, then each
 * looked up. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

static uint64_t slot_hash(int64_t key);

typedef struct { int64_t key, value; int used; } slot;
static slot *tab;
static size_t cap = 16, count;

static size_t find(int64_t key) {
    size_t i = (size_t)slot_hash(key) & (cap - 1);
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

/* The keys: i * 2654435761 (map_ints), or with RANDOM_KEYS defined a
 * 64-bit LCG's values (map_ints_random), the same in both passes. */
static int64_t next_key(uint64_t *x, long i) {
#ifdef RANDOM_KEYS
    (void)i;
    *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
    return (int64_t)*x;
#else
    (void)x;
    return i * 2654435761L;
#endif
}

static int run(long n) {
    tab = calloc(cap, sizeof *tab);
    uint64_t x = 1;
    for (long i = 0; i < n; i++) put(next_key(&x, i), i);
    long sum = 0;
    x = 1;
    for (long i = 0; i < n; i++) sum += tab[find(next_key(&x, i))].value;
    printf("%zu\n%ld\n", count, sum);
    free(tab);
    return 0;
}
