/* test_ser.c — unit tests of the signature validator and the framing
 * helpers (runtime/c/ser.c, wire.c). Linked with libmsslave.a; defines the
 * program symbols the library needs. Prints "ser tests passed". */
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
    return ms_sig_validate(sig, p, n, 1000, err, sizeof err) == 0;
}

int main(void)
{
    char err[256];
    uint8_t b[64];
    memset(b, 0, sizeof b);

    /* signatures */
    CHECK(ms_sig_check("", err, sizeof err) == 0);
    CHECK(ms_sig_check("iv{dbc}vvi{}", err, sizeof err) == 0);
    CHECK(ms_sig_check("v", err, sizeof err) != 0);
    CHECK(ms_sig_check("{i", err, sizeof err) != 0);
    CHECK(ms_sig_check("x", err, sizeof err) != 0);

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
    CHECK(!valid("v{}", b, 4)); /* zero-size elements: capped count */
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

    /* recursive structs: ^N names the Nth enclosing struct (0 innermost),
     * and only through a vector */
    CHECK(ms_sig_check("{v^0}", err, sizeof err) == 0);
    CHECK(ms_sig_check("{iv{v^1b}}i", err, sizeof err) == 0);
    CHECK(ms_sig_check("{v{v^0}v^0}", err, sizeof err) == 0);
    CHECK(ms_sig_check("{^0}", err, sizeof err) != 0);    /* by value */
    CHECK(ms_sig_check("{{v^0}^1}", err, sizeof err) != 0); /* ^1 by value */
    CHECK(ms_sig_check("v^0", err, sizeof err) != 0);     /* no struct */
    CHECK(ms_sig_check("{v^1}", err, sizeof err) != 0);   /* too far out */
    CHECK(ms_sig_check("{v^}", err, sizeof err) != 0);
    CHECK(ms_sig_check("{v^99999999999999999999}", err, sizeof err) != 0);
    /* struct T { vector<struct T> k; } holding [T{[]}, T{[T{[]}]}] */
    uint8_t t[] = {2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
    CHECK(valid("{v^0}", t, sizeof t));
    CHECK(!valid("{v^0}", t, sizeof t - 1));
    t[8] = 2;
    CHECK(!valid("{v^0}", t, sizeof t));
    /* A { int n; vector<B> } B { vector<A> }: A{7, [B{[A{1, []}]}]} */
    uint8_t m[] = {7, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0,
                   1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK(valid("{iv{v^1}}", m, sizeof m));
    CHECK(!valid("{iv{v^1}}", m, sizeof m - 1));
    /* a value nested deeper than MS_MAX_VALUE_DEPTH is refused, not a
     * stack overflow: 200,000 levels of T{[T{[...]}]} */
    size_t deep_len = 4 * 200000;
    uint8_t *deep = calloc(deep_len, 1);
    CHECK(deep != NULL);
    for (size_t i = 0; deep && i + 4 < deep_len; i += 4)
        deep[i] = 1;
    CHECK(deep && !valid("{v^0}", deep, deep_len));
    CHECK(deep && ms_sig_validate("{v^0}", deep, deep_len, 1000, err,
                                  sizeof err) != 0
          && strstr(err, "nested") != NULL);
    free(deep);

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
