/* text.c — SPEC 12.3's text builtins: int(string) and double(string)
 * parsing, split and join.
 *
 * The parsers validate the exact forms SPEC allows before converting
 * (strtod alone would also take hex floats, "infinity", leading
 * whitespace of other kinds and the locale's decimal point); the
 * conversion itself is strtod_l in the C locale, so that rounding is C's.
 * split and join are linear in the bytes involved: split finds separators
 * with glibc's memmem (two-way, linear) and join copies once into a
 * result sized in advance. */
#include "values.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ messages */

#define SHOWN_BYTES MSV_QUOTE_SHOWN

/* The runtime error `cannot convert "S" to TYPE` at line:col. */
static _Noreturn void convert_error(const ms_vec *s, const char *type,
                                    int32_t line, int32_t col)
{
    /* Thread-local: ms_runtime_error may unwind a job before the message
     * has been used up (as ms_index_error's). */
    static _Thread_local char msg[4 * SHOWN_BYTES + 64];
    char quoted[4 * SHOWN_BYTES + 8];
    msv_quote(s, quoted);
    snprintf(msg, sizeof msg, "cannot convert %s to %s", quoted, type);
    ms_runtime_error(line, col, msg);
}

/* ------------------------------------------------------------ parsing */

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* The bytes of s (borrowed) without SPEC's surrounding whitespace:
 * [*begin, *end). */
static void trimmed(const ms_vec *s, const unsigned char **begin,
                    const unsigned char **end)
{
    const unsigned char *b = s ? MSV_DATA(s) : (const unsigned char *)"";
    const unsigned char *e = b + (s ? s->len : 0);
    while (b < e && is_space(*b))
        b++;
    while (e > b && is_space(e[-1]))
        e--;
    *begin = b;
    *end = e;
}

/* s: borrowed. An optional sign and decimal digits, in range. */
int64_t ms_string_to_int(const ms_vec *s, int32_t line, int32_t col)
{
    const unsigned char *p, *end;
    trimmed(s, &p, &end);
    int negative = 0;
    if (p < end && (*p == '+' || *p == '-'))
        negative = *p++ == '-';
    if (p == end)
        convert_error(s, "int", line, col);
    /* The magnitude, at most 2^63 (INT64_MIN's) when negative. */
    const uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t m = 0;
    for (; p < end; p++) {
        if (!is_digit(*p))
            convert_error(s, "int", line, col);
        unsigned d = *p - '0';
        if (m > (limit - d) / 10)
            convert_error(s, "int", line, col);
        m = m * 10 + d;
    }
    if (negative)
        return m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
    return (int64_t)m;
}

/* The C locale, made once (strtod must not see the program's locale). */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (c_locale == (locale_t)0) {
        fprintf(stderr, "newlocale(C): %s\n", strerror(errno));
    }
}

/* Length of the double literal form (SPEC 2) or of digits alone at
 * [p, end): digits [. digits] [exponent] or . digits [exponent], where an
 * exponent is e or E, an optional sign and digits. 0 when it is not one. */
static size_t literal_length(const unsigned char *p, const unsigned char *end)
{
    const unsigned char *q = p;
    size_t before = 0, after = 0;
    while (q < end && is_digit(*q))
        q++, before++;
    if (q < end && *q == '.') {
        q++;
        while (q < end && is_digit(*q))
            q++, after++;
    }
    if (before == 0 && after == 0)
        return 0;
    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        const unsigned char *digits = q;
        while (q < end && is_digit(*q))
            q++;
        if (q == digits)
            return 0;
    }
    return (size_t)(q - p);
}

/* s: borrowed. An optional sign, then a literal's form, digits, inf or
 * nan; too large a value is an infinity, too small 0 or a subnormal. */
double ms_string_to_double(const ms_vec *s, int32_t line, int32_t col)
{
    const unsigned char *start, *end;
    trimmed(s, &start, &end);
    const unsigned char *p = start;
    int negative = 0;
    if (p < end && (*p == '+' || *p == '-'))
        negative = *p++ == '-';
    size_t n = (size_t)(end - p);
    if (n == 3 && memcmp(p, "inf", 3) == 0)
        return negative ? -HUGE_VAL : HUGE_VAL;
    if (n == 3 && memcmp(p, "nan", 3) == 0)
        return negative ? -NAN : NAN;
    if (n == 0 || literal_length(p, end) != n)
        convert_error(s, "double", line, col);
    /* strtod needs a NUL-terminated copy: the string's bytes may go on. */
    size_t len = (size_t)(end - start);
    char small[128];
    char *text = len < sizeof small ? small : malloc(len + 1);
    if (!text)
        msv_oom();
    memcpy(text, start, len);
    text[len] = '\0';
    pthread_once(&c_locale_once, make_c_locale);
    if (c_locale == (locale_t)0) {
        if (text != small)
            free(text);
        ms_runtime_error(line, col, "internal error: no C locale for double()");
    }
    double v = strtod_l(text, NULL, c_locale);
    if (text != small)
        free(text);
    return v;
}

/* ------------------------------------------------------------ split, join */

/* The next occurrence of sep (k bytes, k > 0) in [p, end), or NULL. */
static const unsigned char *next_sep(const unsigned char *p, const unsigned char *end,
                                     const unsigned char *sep, size_t k)
{
    if (k == 1)
        return memchr(p, sep[0], (size_t)(end - p));
    return memmem(p, (size_t)(end - p), sep, k);
}

/* s, sep: borrowed. Returns a new vector<string> owned by the caller: the
 * pieces of s between non-overlapping occurrences of sep, found left to
 * right, empty pieces kept (so never empty: "" gives one empty piece). */
ms_vec *ms_split(const ms_vec *s, const ms_vec *sep, int32_t line, int32_t col)
{
    size_t k = sep ? (size_t)sep->len : 0;
    if (k == 0)
        ms_runtime_error(line, col, "split with an empty separator");
    const unsigned char *sp = MSV_DATA(sep);
    const unsigned char *begin = s ? MSV_DATA(s) : (const unsigned char *)"";
    const unsigned char *end = begin + (s ? s->len : 0);
    /* Two passes, both linear: count the pieces, then make them, so that
     * the result is allocated once at its size. */
    int64_t count = 1;
    for (const unsigned char *p = begin, *q; (q = next_sep(p, end, sp, k)); p = q + k)
        count++;
    ms_vec *r = msv_alloc(sizeof(ms_vec *), count, count);
    ms_vec **pieces = (ms_vec **)MSV_DATA(r);
    const unsigned char *p = begin;
    for (int64_t i = 0; i < count - 1; i++) {
        const unsigned char *q = next_sep(p, end, sp, k);
        pieces[i] = ms_string_from_bytes(p, (int64_t)(q - p));
        p = q + k;
    }
    pieces[count - 1] = ms_string_from_bytes(p, (int64_t)(end - p));
    return r;
}

/* parts, sep: borrowed. Returns a new string owned by the caller: the
 * parts with sep between each two. */
ms_vec *ms_join(const ms_vec *parts, const ms_vec *sep)
{
    int64_t n = parts ? parts->len : 0;
    if (n == 0)
        return NULL;
    ms_vec *const *ps = (ms_vec *const *)MSV_DATA(parts);
    int64_t k = sep ? sep->len : 0;
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t len = ps[i] ? ps[i]->len : 0;
        if (len > INT64_MAX - total)
            msv_oom();
        total += len;
    }
    if (k != 0 && n - 1 > (INT64_MAX - total) / k)
        msv_oom();
    total += (n - 1) * k;
    if (total == 0)
        return NULL;
    ms_vec *r = msv_alloc(1, total, total);
    unsigned char *o = MSV_DATA(r);
    for (int64_t i = 0; i < n; i++) {
        if (i > 0 && k > 0) {
            memcpy(o, MSV_DATA(sep), (size_t)k);
            o += k;
        }
        if (ps[i] && ps[i]->len > 0) {
            memcpy(o, MSV_DATA(ps[i]), (size_t)ps[i]->len);
            o += ps[i]->len;
        }
    }
    return r;
}
