/* test_maps.c — unit tests of the map table (runtime/c/maps.c) through the
 * calls compiled code makes: SipHash against the paper's test vectors,
 * insertion, lookup, removal, tombstones and compaction, growth, insertion
 * order after removals, copy on write, 1M keys, and crafted keys: strings
 * that all collide in the low bits of an unkeyed hash (FNV-1a), and ints
 * that collide under the mixer without its key, read no more index slots
 * than random ones (counted, msm_probe_length) and take no longer; and
 * placement by value: progressions at home, absent keys stopped at
 * max_disp + 1, colliding residues moving the map to the hash, prime sizes. Linked with libmsslave.a; defines the program symbols
 * the library needs, and its own ms_runtime_error (none is expected). Prints "map tests passed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "maps.h"

const char ms_program_source[] = "t.ms";
const uint32_t ms_job_count = 0;
const ms_job_entry ms_job_table[1];
void ms_master_main(void) {}

/* Runtime errors end the test: none is expected. */
_Noreturn void ms_runtime_error(int32_t line, int32_t col, const char *msg)
{
    fprintf(stderr, "test:%d:%d: runtime error: %s\n", line, col, msg);
    exit(1);
}
void ms_handle_retain(ms_handle h) { (void)h; }
void ms_handle_release(ms_handle h) { (void)h; }

static int failures;

static void check(int cond, const char *what, int line)
{
    if (!cond) {
        fprintf(stderr, "test_maps.c:%d: FAILED: %s\n", line, what);
        failures++;
    }
}
#define CHECK(c) check((c), #c, __LINE__)

/* Descriptors as the compiler emits them. */
static const ms_type T_INT = { MS_T_INT, 8, 0, 0, NULL, NULL, NULL, NULL };
static const ms_type T_CHAR = { MS_T_CHAR, 1, 0, 0, NULL, NULL, NULL, NULL };
static const ms_type T_STR = { MS_T_VECTOR, 8, 1, 0, &T_CHAR, NULL, NULL, NULL };
static const ms_type T_VINT = { MS_T_VECTOR, 8, 0, 0, &T_INT, NULL, NULL, NULL };
static const ms_type *const II_FIELDS[2] = { &T_INT, &T_INT };
static const ms_type MAP_II = { MS_T_MAP, 8, 1, 2, &T_INT, II_FIELDS, NULL, NULL };
static const ms_type *const SI_FIELDS[2] = { &T_STR, &T_INT };
static const ms_type MAP_SI = { MS_T_MAP, 8, 1, 2, &T_INT, SI_FIELDS, NULL, NULL };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void put_ii(ms_vec **m, int64_t k, int64_t v)
{
    *(int64_t *)ms_map_insert(&MAP_II, m, &k) = v;
}

static int64_t get_ii(ms_vec *m, int64_t k)
{
    return *(int64_t *)ms_map_get(&MAP_II, m, &k, 1, 1);
}

static int has_ii(ms_vec *m, int64_t k)
{
    return ms_map_has(&MAP_II, m, &k);
}

static void test_siphash(void)
{
    /* SipHash-2-4, key 00..0f (the paper's appendix A): the 15-byte
     * message 00..0e, and the empty message. */
    uint8_t k[16], msg[15];
    for (int i = 0; i < 16; i++)
        k[i] = (uint8_t)i;
    for (int i = 0; i < 15; i++)
        msg[i] = (uint8_t)i;
    CHECK(msm_siphash(k, msg, 15, 2, 4) == 0xa129ca6149be45e5ULL);
    CHECK(msm_siphash(k, msg, 0, 2, 4) == 0x726fdb47dd0e0e31ULL);
    CHECK(msm_siphash(k, msg, 8, 2, 4) == 0x93f5f5799a932462ULL);
    /* The unrolled SipHash-1-3 of the maps is the reference one, for
     * every tail length. */
    uint8_t buf[40];
    for (int i = 0; i < 40; i++)
        buf[i] = (uint8_t)(i * 37 + 11);
    uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;
    for (size_t n = 0; n <= sizeof buf; n++)
        CHECK(msm_siphash13(k0, k1, buf, n) == msm_siphash(k, buf, n, 1, 3));
    CHECK(msm_hash_bytes("abc", 3) == msm_hash_bytes("abc", 3));
    CHECK(msm_hash_bytes("abc", 3) != msm_hash_bytes("abd", 3));
}

static void test_basic_and_order(void)
{
    ms_vec *m = NULL;
    for (int64_t i = 0; i < 20; i++)
        put_ii(&m, i, i * i);
    CHECK(m->len == 20);
    for (int64_t i = 0; i < 20; i += 2)
        ms_map_remove(&MAP_II, &m, &i);
    CHECK(m->len == 10 && !has_ii(m, 4) && has_ii(m, 5));
    put_ii(&m, 4, -4);  /* re-inserted: at the end */
    put_ii(&m, 1, 100); /* replaced: keeps its place */
    ms_vec *ks = ms_map_keys(&MAP_II, m), *vs = ms_map_values(&MAP_II, m);
    int64_t *kk = (int64_t *)MSV_DATA(ks), *vv = (int64_t *)MSV_DATA(vs);
    CHECK(ks->len == 11 && kk[0] == 1 && vv[0] == 100 && kk[1] == 3);
    CHECK(kk[10] == 4 && vv[10] == -4);
    ms_vec_release(&T_VINT, ks);
    ms_vec_release(&T_VINT, vs);
    /* Tombstones are compacted when the table must grow: removing and
     * inserting forever keeps the entry array bounded. */
    for (int64_t i = 1000; i < 100000; i++) {
        put_ii(&m, i, i);
        int64_t old = i - 1;
        if (old >= 1000)
            ms_map_remove(&MAP_II, &m, &old);
    }
    ms_map *mm = (ms_map *)m;
    CHECK(m->len == 12);
    CHECK(mm->entries->cap <= 64);
    CHECK(get_ii(m, 99999) == 99999 && get_ii(m, 1) == 100);
    /* Removing everything empties the table for free. */
    ks = ms_map_keys(&MAP_II, m);
    for (int64_t i = 0; i < ks->len; i++)
        ms_map_remove(&MAP_II, &m, (int64_t *)MSV_DATA(ks) + i);
    CHECK(m->len == 0 && mm->entries->len == 0);
    ms_vec_release(&T_VINT, ks);
    ms_vec_release(&MAP_II, m);
}

static void test_copy_on_write(void)
{
    ms_vec *a = NULL;
    put_ii(&a, 1, 1);
    ms_vec *b = a;
    a->refcount++; /* b = a */
    put_ii(&b, 1, 2);
    CHECK(b != a && get_ii(a, 1) == 1 && get_ii(b, 1) == 2);
    int64_t one = 1;
    ms_vec *c = a;
    a->refcount++;
    ms_map_remove(&MAP_II, &c, &one);
    CHECK(c != a && a->len == 1 && c->len == 0);
    int64_t absent = 7;
    ms_vec *d = a;
    a->refcount++;
    ms_map_remove(&MAP_II, &d, &absent); /* nothing removed: no copy */
    CHECK(d == a && a->refcount == 2);
    ms_vec_release(&MAP_II, d);
    ms_vec_release(&MAP_II, a);
    ms_vec_release(&MAP_II, b);
    ms_vec_release(&MAP_II, c);
}

/* A map with tombstones, copied: each copy knows its own dead entries
 * (the bit set is copied, not shared), and a removed key stays absent
 * in both while the other copy changes. */
static void test_copy_with_tombstones(void)
{
    ms_vec *a = NULL;
    for (int64_t i = 0; i < 40; i++)
        put_ii(&a, i, i);
    for (int64_t i = 0; i < 40; i += 3)
        ms_map_remove(&MAP_II, &a, &i);
    ms_vec *b = a;
    a->refcount++;
    int64_t five = 5, three = 3;
    ms_map_remove(&MAP_II, &b, &five); /* b is a copy now */
    put_ii(&b, 3, 33);                 /* back, at b's end */
    CHECK(b != a && a->len == 26 && b->len == 26);
    CHECK(has_ii(a, 5) && !has_ii(b, 5) && !has_ii(a, 3) && get_ii(b, 3) == 33);
    ms_vec *ka = ms_map_keys(&MAP_II, a), *kb = ms_map_keys(&MAP_II, b);
    const int64_t *xa = (const int64_t *)MSV_DATA(ka), *xb = (const int64_t *)MSV_DATA(kb);
    CHECK(xa[0] == 1 && xa[1] == 2 && xa[2] == 4 && xa[3] == 5);
    CHECK(xb[2] == 4 && xb[3] == 7 && xb[25] == 3);
    CHECK(!ms_value_eq(&MAP_II, &a, &b));
    ms_map_remove(&MAP_II, &b, &three);
    put_ii(&b, 5, 5);
    CHECK(ms_value_eq(&MAP_II, &a, &b)); /* equal in any order */
    ms_vec_release(&T_VINT, ka);
    ms_vec_release(&T_VINT, kb);
    ms_vec_release(&MAP_II, a);
    ms_vec_release(&MAP_II, b);
}

static void test_million(void)
{
    ms_vec *m = NULL;
    const int64_t n = 1000000;
    for (int64_t i = 0; i < n; i++)
        put_ii(&m, i * 2654435761LL, i);
    CHECK(m->len == n);
    int ok = 1;
    for (int64_t i = 0; i < n; i++)
        ok &= get_ii(m, i * 2654435761LL) == i;
    CHECK(ok);
    for (int64_t i = 0; i < n; i += 2) {
        int64_t k = i * 2654435761LL;
        ms_map_remove(&MAP_II, &m, &k);
    }
    CHECK(m->len == n / 2 && !has_ii(m, 0) && has_ii(m, 2654435761LL));
    ms_vec *ks = ms_map_keys(&MAP_II, m);
    CHECK(((int64_t *)MSV_DATA(ks))[0] == 2654435761LL);
    ms_vec_release(&T_VINT, ks);
    ms_vec_release(&MAP_II, m);
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Seconds to insert then look up the n strings of keys (each 16 bytes,
 * NUL-padded) as map<string, int> keys. */
static double time_string_keys(const char *keys, int n)
{
    ms_vec **strs = malloc((size_t)n * sizeof *strs);
    for (int i = 0; i < n; i++) {
        const char *k = keys + (size_t)i * 16;
        strs[i] = ms_string_from_bytes((const uint8_t *)k, (int64_t)strlen(k));
    }
    double t0 = now();
    ms_vec *m = NULL;
    for (int i = 0; i < n; i++)
        *(int64_t *)ms_map_insert(&MAP_SI, &m, &strs[i]) = i;
    int ok = m->len == n;
    for (int i = 0; i < n; i++)
        ok &= *(int64_t *)ms_map_get(&MAP_SI, m, &strs[i], 1, 1) == i;
    double t = now() - t0;
    CHECK(ok);
    ms_vec_release(&MAP_SI, m);
    for (int i = 0; i < n; i++)
        ms_vec_release(&T_STR, strs[i]);
    free(strs);
    return t;
}

/* Index slots read by lookups of the n keys at keys (key_size bytes
 * apart), summed, after inserting them all into a map of type mt. */
static int64_t probes_of(const ms_type *mt, const unsigned char *keys,
                         size_t key_size, int n)
{
    ms_vec *m = NULL;
    for (int i = 0; i < n; i++)
        *(int64_t *)ms_map_insert(mt, &m, keys + (size_t)i * key_size) = i;
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        total += msm_probe_length(mt, (ms_map *)m, keys + (size_t)i * key_size);
    CHECK(m->len == n);
    ms_vec_release(mt, m);
    return total;
}

/* The inverse of x * c mod 2^64 for odd c (Newton's iteration). */
static uint64_t mul_inverse(uint64_t c)
{
    uint64_t x = c;
    for (int i = 0; i < 6; i++)
        x *= 2 - c * x;
    return x;
}

/* The inverse of msm_fmix (each step of it is a bijection: x ^= x >> 33
 * undoes itself, the multiplications are by odd constants). */
static uint64_t fmix_inverse(uint64_t x)
{
    x ^= x >> 33;
    x *= mul_inverse(0xc4ceb9fe1a85ec53ULL);
    x ^= x >> 33;
    x *= mul_inverse(0xff51afd7ed558ccdULL);
    x ^= x >> 33;
    return x;
}

/* Crafted keys against random ones, counted in index slots read rather
 * than timed: int keys whose hashes under the mixer without its key
 * (fmix(fmix(x)), inverted) are (i + 1) << 20, colliding in their low 20
 * bits and in their top 28 (which the index uses), and multiples of 2^32; string keys whose FNV-1a hashes agree in their low 12 bits.
 * Without the per-process key each set would probe one chain (about n/2
 * slots a lookup); with it, as few as random keys. */
static void test_crafted_probe_counts(void)
{
    const int n = 20000;
    int64_t *crafted = malloc((size_t)n * sizeof *crafted);
    int64_t *shifted = malloc((size_t)n * sizeof *shifted);
    int64_t *random = malloc((size_t)n * sizeof *random);
    uint64_t r = 88172645463325252ULL;
    for (int i = 0; i < n; i++) {
        uint64_t x = fmix_inverse(fmix_inverse((uint64_t)(i + 1) << 20));
        CHECK(msm_fmix(msm_fmix(x)) == (uint64_t)(i + 1) << 20);
        crafted[i] = (int64_t)x;
        shifted[i] = (int64_t)((uint64_t)(i + 1) << 32);
        r ^= r << 13; r ^= r >> 7; r ^= r << 17; /* xorshift64 */
        random[i] = (int64_t)r;
    }
    int64_t pc = probes_of(&MAP_II, (unsigned char *)crafted, 8, n);
    int64_t ps = probes_of(&MAP_II, (unsigned char *)shifted, 8, n);
    int64_t pr = probes_of(&MAP_II, (unsigned char *)random, 8, n);
    printf("int keys: slots read a lookup: crafted %.3f, multiples of 2^32 %.3f, "
           "random %.3f\n", (double)pc / n, (double)ps / n, (double)pr / n);
    CHECK(pc >= n && pr >= n && ps >= n);
    CHECK(pc <= 2 * pr && ps <= 2 * pr);
    free(crafted);
    free(shifted);
    free(random);

    ms_vec **cs = malloc((size_t)n * sizeof *cs), **rs = malloc((size_t)n * sizeof *rs);
    int found = 0;
    for (uint64_t i = 0; found < n; i++) {
        char buf[16];
        int len = 0;
        buf[len++] = 'k';
        for (uint64_t x = i; x; x >>= 4)
            buf[len++] = "0123456789abcdef"[x & 15];
        if ((fnv1a(buf, (size_t)len) & 0xfff) == 0x123)
            cs[found++] = ms_string_from_bytes((const uint8_t *)buf, len);
    }
    for (int i = 0; i < n; i++) {
        char buf[16];
        int len = snprintf(buf, sizeof buf, "r%d", i * 7919);
        rs[i] = ms_string_from_bytes((const uint8_t *)buf, len);
    }
    int64_t sc = probes_of(&MAP_SI, (unsigned char *)cs, sizeof *cs, n);
    int64_t sr = probes_of(&MAP_SI, (unsigned char *)rs, sizeof *rs, n);
    printf("string keys: slots read a lookup: crafted %.3f, random %.3f\n",
           (double)sc / n, (double)sr / n);
    CHECK(sc >= n && sr >= n && sc <= 2 * sr);
    for (int i = 0; i < n; i++) {
        ms_vec_release(&T_STR, cs[i]);
        ms_vec_release(&T_STR, rs[i]);
    }
    free(cs);
    free(rs);
}

static int is_prime(int64_t n)
{
    if (n < 2)
        return 0;
    for (int64_t d = 2; d * d <= n; d++)
        if (n % d == 0)
            return 0;
    return 1;
}

/* Whether every one of the n keys at keys is in m with value i + base,
 * and each lookup reads at most `most` index slots. */
static int all_found(ms_vec *m, const int64_t *keys, int n, int64_t base, int64_t most)
{
    int ok = 1;
    for (int i = 0; i < n; i++) {
        const int64_t *v = msm_find(&MAP_II, (ms_map *)m, &keys[i]);
        ok &= v && *v == i + base && msm_probe_length(&MAP_II, (ms_map *)m, &keys[i]) <= most;
    }
    return ok;
}

/* Placement by value (maps.c): consecutive keys, keys around zero and
 * keys in arithmetic progression sit at home (one slot read a lookup);
 * an absent key reads no more than max_disp + 1 slots however long the
 * run at its home; keys that share a residue of the index's prime, at an
 * insertion or at a growth, move the map to hashed placement, after which
 * they cost what random keys cost; the index sizes are primes. */
static void test_value_placement(void)
{
    const int n = 20000;
    int64_t *keys = malloc((size_t)n * sizeof *keys);
    static const int64_t steps[] = { 1, 2, 10, 1000, 2654435761LL, (int64_t)1 << 32, -7 };
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        ms_vec *m = NULL;
        for (int i = 0; i < n; i++) {
            keys[i] = (int64_t)(i - n / 2) * steps[k];
            put_ii(&m, keys[i], i);
        }
        ms_map *mm = (ms_map *)m;
        CHECK(mm->mixed == 0 && mm->max_disp == 0);
        CHECK(all_found(m, keys, n, 0, 1));
        CHECK(is_prime(mm->index->len));
        /* Absent keys homed inside the run of present ones stop after one
         * slot (max_disp is 0), not at the run's end. */
        int64_t slots = mm->index->len, most = 0;
        for (int i = 0; i < 1000; i++) {
            int64_t absent = keys[i] + slots * (n + 1) * (steps[k] < 0 ? -1 : 1);
            CHECK(msm_find(&MAP_II, mm, &absent) == NULL);
            int64_t p = msm_probe_length(&MAP_II, mm, &absent);
            most = p > most ? p : most;
        }
        CHECK(most == 1);
        ms_vec_release(&MAP_II, m);
    }

    /* Every size an index takes on the way to 200,000 keys is prime. */
    ms_vec *m = NULL;
    int64_t last = 0, sizes = 0;
    for (int64_t i = 0; i < 200000; i++) {
        put_ii(&m, i * 7919, i);
        int64_t len = ((ms_map *)m)->index->len;
        if (len != last) {
            CHECK(is_prime(len));
            CHECK(((ms_map *)m)->entries->cap == len - len / 4);
            last = len;
            sizes++;
        }
    }
    CHECK(sizes == 17); /* 7, 13, 31, ..., 524287: none skipped */
    ms_vec_release(&MAP_II, m);

    /* Multiples of 8191: spread out in an index of 4093 slots (8191 mod
     * 4093 is 5), all at home 0 in one of 8191, which growth builds: the
     * rebuild gives up placement by value. */
    m = NULL;
    for (int i = 0; i < n; i++) {
        keys[i] = (int64_t)(i + 1) * 8191;
        put_ii(&m, keys[i], i);
        if (i == 3000)
            CHECK(((ms_map *)m)->mixed == 0);
    }
    CHECK(((ms_map *)m)->mixed == 1);
    CHECK(all_found(m, keys, n, 0, 200));
    ms_vec_release(&MAP_II, m);

    /* An index of 32749 slots holding 13,000 consecutive keys, then
     * multiples of 32749, all at home 0, the start of that run: the first
     * would sit 13,000 slots from home, and the insertion moves the map to
     * hashed placement instead. */
    m = NULL;
    for (int i = 0; i < 13000; i++)
        put_ii(&m, i, i);
    CHECK(((ms_map *)m)->index->len == 32749 && ((ms_map *)m)->mixed == 0);
    for (int i = 0; i < 5000; i++)
        keys[i] = (int64_t)(i + 1) * 32749;
    put_ii(&m, keys[0], 0);
    CHECK(((ms_map *)m)->mixed == 1 && ((ms_map *)m)->max_disp < 64);
    for (int i = 1; i < 5000; i++)
        put_ii(&m, keys[i], i);
    CHECK(all_found(m, keys, 5000, 0, 200));
    for (int64_t i = 0; i < 13000; i++) {
        const int64_t *v = msm_find(&MAP_II, (ms_map *)m, &i);
        CHECK(v && *v == i);
    }
    /* A copy keeps its placement. */
    ms_vec *c = m;
    m->refcount++; /* c = m */
    put_ii(&c, -1, -1);
    CHECK(((ms_map *)c)->mixed == 1 && ((ms_map *)c)->len == 18001);
    ms_vec_release(&MAP_II, c);
    ms_vec_release(&MAP_II, m);
    free(keys);
}

static void test_crafted_keys(void)
{
    /* 20,000 keys whose FNV-1a hashes agree in their low 12 bits: in a
     * table indexed by those bits (any size up to 4096 slots) they would
     * all probe one chain, making n insertions quadratic. */
    const int n = 20000;
    char *crafted = calloc((size_t)n, 16), *random = calloc((size_t)n, 16);
    int found = 0;
    for (uint64_t i = 0; found < n; i++) {
        char buf[16];
        int len = 0;
        buf[len++] = 'k';
        for (uint64_t x = i; x; x >>= 4) /* hex digits, lowest first */
            buf[len++] = "0123456789abcdef"[x & 15];
        if ((fnv1a(buf, (size_t)len) & 0xfff) == 0x123)
            memcpy(crafted + (size_t)found++ * 16, buf, (size_t)len);
    }
    for (int i = 0; i < n; i++)
        snprintf(random + (size_t)i * 16, 16, "r%d", i * 7919);
    double best_crafted = 1e9, best_random = 1e9;
    for (int round = 0; round < 5; round++) {
        double c = time_string_keys(crafted, n), r = time_string_keys(random, n);
        best_crafted = c < best_crafted ? c : best_crafted;
        best_random = r < best_random ? r : best_random;
    }
    double ratio = best_crafted / best_random;
    printf("crafted/random time ratio: %.2f (%.4fs, %.4fs)\n", ratio, best_crafted, best_random);
    CHECK(ratio < 3.0);
    free(crafted);
    free(random);
}

static void test_string_keys(void)
{
    ms_vec *m = NULL;
    ms_vec *a = ms_string_from_bytes((const uint8_t *)"apple", 5);
    ms_vec *empty = NULL;
    *(int64_t *)ms_map_insert(&MAP_SI, &m, &a) = 1;
    *(int64_t *)ms_map_insert(&MAP_SI, &m, &empty) = 2;
    CHECK(a->refcount == 2); /* the map holds the key */
    CHECK(*(int64_t *)ms_map_get(&MAP_SI, m, &empty, 1, 1) == 2);
    ms_vec *a2 = ms_string_from_bytes((const uint8_t *)"apple", 5);
    CHECK(ms_map_has(&MAP_SI, m, &a2));
    ms_map_remove(&MAP_SI, &m, &a2);
    CHECK(a->refcount == 1 && m->len == 1);
    ms_vec_release(&MAP_SI, m);
    ms_vec_release(&T_STR, a);
    ms_vec_release(&T_STR, a2);
}

/* The hint of string-keyed maps (maps.h): a lookup just after another
 * finds the right entry whether it is the same key, another key, a key
 * freed and made again at the same address with other bytes, a key
 * removed in between, or after the table was rebuilt. */
static void test_string_hint(void)
{
    ms_vec *m = NULL;
    ms_vec *keys[40];
    for (int i = 0; i < 40; i++) {
        char buf[8];
        int len = snprintf(buf, sizeof buf, "k%d", i);
        keys[i] = ms_string_from_bytes((const uint8_t *)buf, len);
        *(int64_t *)ms_map_insert(&MAP_SI, &m, &keys[i]) = i;
    }
    for (int i = 0; i < 40; i++) {
        CHECK(ms_map_has(&MAP_SI, m, &keys[i]));
        CHECK(*(int64_t *)ms_map_get(&MAP_SI, m, &keys[i], 1, 1) == i);
        CHECK(*(int64_t *)ms_map_get(&MAP_SI, m, &keys[(i + 7) % 40], 1, 1) == (i + 7) % 40);
    }
    /* The hinted key's string freed; another one, likely at its address. */
    ms_vec *tmp = ms_string_from_bytes((const uint8_t *)"k5", 2);
    CHECK(*(int64_t *)ms_map_get(&MAP_SI, m, &tmp, 1, 1) == 5);
    ms_vec_release(&T_STR, tmp);
    tmp = ms_string_from_bytes((const uint8_t *)"k6", 2);
    CHECK(*(int64_t *)ms_map_get(&MAP_SI, m, &tmp, 1, 1) == 6);
    ms_vec_release(&T_STR, tmp);
    tmp = ms_string_from_bytes((const uint8_t *)"zz", 2);
    CHECK(!ms_map_has(&MAP_SI, m, &tmp));
    ms_vec_release(&T_STR, tmp);
    /* Removed after being found: absent, and inserting it again starts a
     * new entry at the end. */
    CHECK(ms_map_has(&MAP_SI, m, &keys[3]));
    ms_map_remove(&MAP_SI, &m, &keys[3]);
    CHECK(!ms_map_has(&MAP_SI, m, &keys[3]));
    int inserted = 0;
    *(int64_t *)msm_insert(&MAP_SI, (ms_map *)m, &keys[3], &inserted) = 33;
    CHECK(inserted && *(int64_t *)ms_map_get(&MAP_SI, m, &keys[3], 1, 1) == 33);
    /* Rebuilt (grown): the hint does not outlive the entries' slots. */
    for (int i = 0; i < 1000; i++) {
        char buf[8];
        int len = snprintf(buf, sizeof buf, "x%d", i);
        ms_vec *x = ms_string_from_bytes((const uint8_t *)buf, len);
        *(int64_t *)ms_map_insert(&MAP_SI, &m, &x) = -i;
        CHECK(*(int64_t *)ms_map_get(&MAP_SI, m, &keys[i % 40], 1, 1) ==
              (i % 40 == 3 ? 33 : i % 40));
        ms_vec_release(&T_STR, x);
    }
    CHECK(m->len == 1040);
    ms_vec_release(&MAP_SI, m);
    for (int i = 0; i < 40; i++)
        ms_vec_release(&T_STR, keys[i]);
}

int main(void)
{
    test_siphash();
    test_basic_and_order();
    test_copy_on_write();
    test_copy_with_tombstones();
    test_string_keys();
    test_string_hint();
    test_million();
    test_crafted_keys();
    test_crafted_probe_counts();
    test_value_placement();
    if (failures) {
        fprintf(stderr, "%d map test(s) failed\n", failures);
        return 1;
    }
    printf("map tests passed\n");
    return 0;
}
