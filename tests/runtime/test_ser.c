/* test_ser.c — unit tests of the signature validator and the framing
 * helpers (runtime/c/ser.c, wire.c). Linked with libmsslave.a; defines the
 * program symbols the library needs. Prints "ser tests passed". */
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ms_abi.h"
#include "ser.h"
#include "wire.h"

const char ms_program_source[] = "t.ms";
const uint32_t ms_job_count = 0;
const ms_job_entry ms_job_table[1];
void ms_master_main(void) {}

static int failures;

static void check(int cond, const char *what, int line)
{
    if (!cond) {
        fprintf(stderr, "test_ser.c:%d: FAILED: %s\n", line, what);
        failures++;
    }
}
#define CHECK(c) check((c), #c, __LINE__)

static int valid(const char *sig, const void *p, size_t n)
{
    char err[256];
    return ms_sig_validate(sig, p, n, err, sizeof err) == 0;
}

/* A payload of struct L { int v; vector<struct L> next; } ({iv^3}) nested
 * `depth` deep, each level with one next but the last; with bad_bool, of
 * struct B { bool b; vector<struct B> next; } ({bv^3}) whose last bool
 * byte is 2. The caller frees it. */
static uint8_t *deep_payload(size_t depth, int bad_bool, size_t *len)
{
    size_t each = bad_bool ? 5 : 12;
    uint8_t *p = calloc(depth, each);
    if (!p)
        abort();
    for (size_t i = 0; i < depth; i++) {
        uint8_t *at = p + i * each + (each - 4);
        if (bad_bool)
            at[-1] = i + 1 == depth ? 2 : 1;
        at[0] = i + 1 < depth; /* u32 count 1, or 0 at the bottom */
    }
    *len = depth * each;
    return p;
}

/* Validation of 1,000,000-deep payloads, on a thread with a 256 KiB stack:
 * it never recurses per level (SPEC 11). */
static void *deep_validate(void *arg)
{
    (void)arg;
    char err[256];
    size_t n;
    uint8_t *p = deep_payload(1000000, 0, &n);
    CHECK(ms_sig_validate("{iv^3}", p, n, err, sizeof err) == 0);
    CHECK(ms_sig_validate("{iv^3}", p, n - 1, err, sizeof err) != 0 &&
          strstr(err, "vector count 1 at byte 11999984 is more than the 11 bytes"));
    free(p);
    p = deep_payload(1000000, 1, &n);
    CHECK(ms_sig_validate("{bv^3}", p, n, err, sizeof err) != 0 &&
          strstr(err, "bool byte 2 at byte 4999995 is not 0 or 1"));
    p[n - 5] = 0;
    CHECK(ms_sig_validate("{bv^3}", p, n, err, sizeof err) == 0);
    free(p);
    return NULL;
}

static void test_deep_small_stack(void)
{
    pthread_attr_t attr;
    pthread_t th;
    CHECK(pthread_attr_init(&attr) == 0);
    CHECK(pthread_attr_setstacksize(&attr, 256 * 1024) == 0);
    CHECK(pthread_create(&th, &attr, deep_validate, NULL) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    pthread_attr_destroy(&attr);
}

#ifndef __SANITIZE_ADDRESS__
/* The mapping of /proc/self/maps that holds address a, as [*lo, *hi). */
static int mapping_of(uintptr_t a, uintptr_t *lo, uintptr_t *hi)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 0;
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        uintmax_t l, h;
        if (sscanf(line, "%jx-%jx", &l, &h) == 2 && l <= a && a < h) {
            *lo = (uintptr_t)l;
            *hi = (uintptr_t)h;
            found = 1;
        }
    }
    fclose(f);
    return found;
}

/* A big block hinted to huge pages stays one mapping, as malloc made it:
 * when the hint covered only part of it, the mapping split, realloc's
 * mremap failed on it and every growth of a big vector was a copy. */
static void test_huge_hint_keeps_one_mapping(void)
{
    size_t n = MS_HUGE_MIN * 2 + 123;
    char *p = malloc(n);
    CHECK(p != NULL);
    for (int round = 0; p && round < 3; round++) {
        ms_hint_huge(p, n);
        uintptr_t lo = 0, hi = 0;
        uintptr_t start = (uintptr_t)p & ~(uintptr_t)4095;
        uintptr_t end = (uintptr_t)p + malloc_usable_size(p);
        CHECK(mapping_of((uintptr_t)p, &lo, &hi));
        CHECK(lo <= start && end <= hi);
        n *= 2;
        char *q = realloc(p, n);
        CHECK(q != NULL);
        if (q)
            p = q;
    }
    free(p);
}
#endif

int main(void)
{
    char err[256];
    uint8_t b[64];
    memset(b, 0, sizeof b);

#ifndef __SANITIZE_ADDRESS__
    test_huge_hint_keeps_one_mapping();
#endif

    /* signatures */
    CHECK(ms_sig_check("", err, sizeof err) == 0);
    CHECK(ms_sig_check("iv{dbc}vvi{}", err, sizeof err) == 0);
    CHECK(ms_sig_check("v", err, sizeof err) != 0);
    CHECK(ms_sig_check("{i", err, sizeof err) != 0);
    CHECK(ms_sig_check("x", err, sizeof err) != 0);
    /* back-references to an enclosing struct, from inside a vector */
    CHECK(ms_sig_check("{iv^3}", err, sizeof err) == 0);
    CHECK(ms_sig_check("{v{iv^5}}i{vv^3vc}", err, sizeof err) == 0);
    CHECK(ms_sig_check("{v{iv^3}}", err, sizeof err) == 0);
    CHECK(ms_sig_check("{i^2}", err, sizeof err) != 0);   /* not in a vector */
    CHECK(ms_sig_check("{v{i^4}}", err, sizeof err) == 0);
    CHECK(ms_sig_check("v{v{i^2}}", err, sizeof err) != 0); /* by value */
    CHECK(ms_sig_check("{iv^2}", err, sizeof err) != 0);  /* not a { */
    CHECK(ms_sig_check("{iv^9}", err, sizeof err) != 0);  /* before the start */
    CHECK(ms_sig_check("v^1", err, sizeof err) != 0);
    CHECK(ms_sig_check("{iv^}", err, sizeof err) != 0);
    CHECK(ms_sig_check("{iv^0}", err, sizeof err) != 0);
    CHECK(ms_sig_check("{i}v^3", err, sizeof err) != 0);  /* closed already */
    {
        /* {v{iv^5}}: struct A { vector<struct B> bs; },
         * struct B { int x; vector<struct A> as; }: one A holding one B
         * holding one A with no B */
        uint8_t m[] = {1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
                       0, 0, 0, 0};
        CHECK(valid("{v{iv^5}}", m, sizeof m));
        CHECK(!valid("{v{iv^5}}", m, sizeof m - 1));
        m[12] = 2; /* two As, the second missing */
        CHECK(!valid("{v{iv^5}}", m, sizeof m));
    }
    test_deep_small_stack();

    /* scalars: exact length */
    CHECK(valid("", b, 0));
    CHECK(!valid("", b, 1));
    CHECK(valid("i", b, 8));
    CHECK(!valid("i", b, 7));
    CHECK(!valid("i", b, 9));
    CHECK(valid("idbc", b, 18));
    /* bools are 0 or 1 */
    b[0] = 1;
    CHECK(valid("b", b, 1));
    b[0] = 2;
    CHECK(!valid("b", b, 1));
    b[0] = 0;
    /* vectors: count checked against the bytes left */
    ms_put_u32le(b, 2);
    CHECK(valid("vi", b, 4 + 16));
    CHECK(!valid("vi", b, 4 + 15));
    CHECK(!valid("vi", b, 4 + 17));
    ms_put_u32le(b, 0xffffffffu);
    CHECK(!valid("vi", b, 64));
    CHECK(!valid("vb", b, 64));
    /* zero-size elements: any count (they take no memory when decoded) */
    CHECK(valid("v{}", b, 4));
    CHECK(valid("v{{}{}}", b, 4));
    CHECK(!valid("v{}", b, 5));
    ms_put_u32le(b, 1000);
    CHECK(valid("v{}", b, 4));
    /* vector<bool> with a bad element */
    ms_put_u32le(b, 3);
    b[4] = 1, b[5] = 0, b[6] = 7;
    CHECK(!valid("vb", b, 7));
    b[6] = 1;
    CHECK(valid("vb", b, 7));
    /* nested: vector<vector<char>> ["ab", ""] */
    uint8_t n[] = {2, 0, 0, 0, 2, 0, 0, 0, 'a', 'b', 0, 0, 0, 0};
    CHECK(valid("vvc", n, sizeof n));
    CHECK(!valid("vvc", n, sizeof n - 1));
    n[4] = 3;
    CHECK(!valid("vvc", n, sizeof n));
    /* struct {int; bool; vector<double>} */
    uint8_t s[8 + 1 + 4 + 8];
    memset(s, 0, sizeof s);
    s[8] = 1;
    s[9] = 1;
    CHECK(valid("{ibvd}", s, sizeof s));
    s[8] = 9;
    CHECK(!valid("{ibvd}", s, sizeof s));

    /* readers stop at the end */
    uint8_t r8[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    ms_reader r = {r8, 8, 0};
    CHECK(ms_read_i64(&r) == 0x0807060504030201LL);
    CHECK(ms_read_u8(&r) == 0 && r.off == 8);
    r.off = 5;
    CHECK(ms_read_u32(&r) == 0 && r.off == 8);

    /* buffers and headers */
    ms_buf buf = {0};
    ms_buf_put_i64(&buf, -2);
    ms_buf_put_f64(&buf, 0.5);
    ms_buf_put_u32(&buf, 7);
    ms_buf_put_u8(&buf, 1);
    CHECK(buf.len == 21);
    r = (ms_reader){buf.data, buf.len, 0};
    CHECK(ms_read_i64(&r) == -2);
    CHECK(ms_read_f64(&r) == 0.5);
    CHECK(ms_read_u32(&r) == 7);
    CHECK(ms_read_u8(&r) == 1);
    ms_buf_free(&buf);
    uint8_t h[MS_HDR_LEN];
    ms_header_encode(h, (ms_header){3, 0x01020304, 0xfffffffe});
    CHECK(h[0] == 3 && h[4] == 4 && h[7] == 1 && h[8] == 0xfe);
    ms_header d = ms_header_decode(h);
    CHECK(d.ordinal == 3 && d.jid == 0x01020304 && d.length == 0xfffffffe);

    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    puts("ser tests passed");
    return 0;
}
