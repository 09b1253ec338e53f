/* vecops.c — SPEC 12.3's builtins on vectors of any element type: find
 * (an element, or a contiguous run), slice, sort and repeat.
 *
 * Costs: find is linear (memchr/memmem for byte elements, KMP otherwise,
 * which needs only equality, so it serves every element type through the
 * runtime's value equality); slice and repeat are linear in the result;
 * sort is a stable merge sort, O(n log n), or a counting sort for bytes. */
#include "values.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ equality */

/* Equality of two elements of type et (borrowed), as `==` means it. */
typedef int (*elem_eq_fn)(const ms_type *et, const void *a, const void *b);

static int eq_bytes(const ms_type *et, const void *a, const void *b)
{
    return memcmp(a, b, et->size) == 0;
}

static int eq_double(const ms_type *et, const void *a, const void *b)
{
    (void)et;
    return *(const double *)a == *(const double *)b;
}

static int eq_value(const ms_type *et, const void *a, const void *b)
{
    return ms_value_eq(et, a, b);
}

/* Doubles compare by IEEE ==, vectors, maps and structs through
 * ms_value_eq, and the other kinds (ints, bools, chars, jobstates,
 * handles), which have one representation per value, by their bytes. */
static elem_eq_fn eq_for(const ms_type *et)
{
    if (et->kind == MS_T_DOUBLE)
        return eq_double;
    if (et->kind == MS_T_VECTOR || et->kind == MS_T_STRUCT ||
        et->kind == MS_T_MAP)
        return eq_value;
    return eq_bytes;
}

/* ------------------------------------------------------------ find */

/* vt, v and x (an element value in memory) borrowed. The index of the
 * first element of v equal to x, or -1. */
int64_t ms_vec_find(const ms_type *vt, const ms_vec *v, const void *x)
{
    int64_t n = v ? v->len : 0;
    if (n == 0)
        return -1;
    const ms_type *et = vt->elem;
    const unsigned char *data = MSV_DATA(v);
    if (et->size == 1 && et->kind != MS_T_STRUCT) {
        const unsigned char *hit = memchr(data, *(const unsigned char *)x, (size_t)n);
        return hit ? hit - data : -1;
    }
    if (et->kind == MS_T_INT) {
        const int64_t *is = (const int64_t *)data;
        int64_t want = *(const int64_t *)x;
        for (int64_t i = 0; i < n; i++)
            if (is[i] == want)
                return i;
        return -1;
    }
    elem_eq_fn eq = eq_for(et);
    for (int64_t i = 0; i < n; i++)
        if (eq(et, data + (size_t)i * et->size, x))
            return i;
    return -1;
}

/* KMP over elements of type et: the first i with text[i..i+m) equal to
 * pat[0..m), or -1; 0 < m <= n. It needs only an equality that is
 * symmetric and transitive where it holds (IEEE == on doubles is: NaN
 * equals nothing), so it serves every element type. O(n + m)
 * comparisons. */
static int64_t kmp(const ms_type *et, elem_eq_fn eq, const unsigned char *text,
                   int64_t n, const unsigned char *pat, int64_t m)
{
    size_t es = et->size;
    /* The failure table lives in a vector so that a slave reclaims it if
     * an equality raises (stack overflow) and abandons the job. */
    ms_vec *table = msv_alloc(sizeof(int64_t), m, m);
    int64_t *fail = (int64_t *)MSV_DATA(table);
    fail[0] = 0;
    for (int64_t i = 1, k = 0; i < m; i++) {
        while (k > 0 && !eq(et, pat + (size_t)i * es, pat + (size_t)k * es))
            k = fail[k - 1];
        if (eq(et, pat + (size_t)i * es, pat + (size_t)k * es))
            k++;
        fail[i] = k;
    }
    int64_t found = -1;
    for (int64_t i = 0, k = 0; i < n; i++) {
        while (k > 0 && !eq(et, text + (size_t)i * es, pat + (size_t)k * es))
            k = fail[k - 1];
        if (eq(et, text + (size_t)i * es, pat + (size_t)k * es))
            k++;
        if (k == m) {
            found = i - m + 1;
            break;
        }
    }
    msv_free(table);
    return found;
}

/* vt, v and sub borrowed. The index where sub first occurs in v as a
 * contiguous run, or -1; 0 when sub is empty. */
int64_t ms_vec_find_run(const ms_type *vt, const ms_vec *v, const ms_vec *sub)
{
    int64_t n = v ? v->len : 0, m = sub ? sub->len : 0;
    if (m == 0)
        return 0;
    if (m > n)
        return -1;
    const ms_type *et = vt->elem;
    const unsigned char *data = MSV_DATA(v);
    if (et->size == 1 && et->kind != MS_T_STRUCT) {
        /* glibc's memmem is two-way: linear, with no quadratic corner. */
        const unsigned char *hit = memmem(data, (size_t)n, MSV_DATA(sub), (size_t)m);
        return hit ? hit - data : -1;
    }
    if (et->size == 0)      /* empty structs: all equal */
        return 0;
    return kmp(et, eq_for(et), data, n, MSV_DATA(sub), m);
}

/* ------------------------------------------------------------ slice */

/* vt and v borrowed. Returns a new vector (owned by the caller) of the
 * elements from .. to - 1; the runtime error
 * "slice(from F, to T) out of range for length N" at line:col unless
 * 0 <= from <= to <= len(v). */
ms_vec *ms_vec_slice(const ms_type *vt, const ms_vec *v, int64_t from, int64_t to,
                     int32_t line, int32_t col)
{
    int64_t n = v ? v->len : 0;
    if (from < 0 || from > to || to > n) {
        static _Thread_local char msg[128];
        snprintf(msg, sizeof msg, "slice(from %lld, to %lld) out of range for length %lld",
                 (long long)from, (long long)to, (long long)n);
        ms_runtime_error(line, col, msg);
    }
    if (from == to)
        return NULL;
    if (from == 0 && to == n) {
        /* The whole vector: a copy, which shares it (copy on write). */
        ms_value_retain(vt, &v);
        return (ms_vec *)v;
    }
    const ms_type *et = vt->elem;
    ms_vec *r = msv_alloc(et->size, to - from, to - from);
    memcpy(MSV_DATA(r), MSV_DATA(v) + (size_t)from * et->size,
           (size_t)(to - from) * et->size);
    msv_retain_range(et, MSV_DATA(r), to - from);
    return r;
}

/* ------------------------------------------------------------ sort */

/* Stable merge sorts of n elements of one C type at a, with scratch space
 * b of n elements: insertion sort of runs of RUN elements, then
 * bottom-up merges between a and b, taking from the right run only when
 * its element is strictly less (stability). The result ends in a. */
#define RUN 32
#define DEFINE_MERGE_SORT(NAME, TYPE, LESS)                                   \
    static void NAME(TYPE *a, TYPE *b, int64_t n)                             \
    {                                                                         \
        for (int64_t lo = 0; lo < n; lo += RUN) {                             \
            int64_t hi = lo + RUN < n ? lo + RUN : n;                         \
            for (int64_t i = lo + 1; i < hi; i++) {                           \
                TYPE x = a[i];                                                \
                int64_t j = i;                                                \
                for (; j > lo && LESS(x, a[j - 1]); j--)                      \
                    a[j] = a[j - 1];                                          \
                a[j] = x;                                                     \
            }                                                                 \
        }                                                                     \
        TYPE *src = a, *dst = b;                                              \
        for (int64_t w = RUN; w < n; w *= 2) {                                \
            for (int64_t lo = 0; lo < n; lo += 2 * w) {                       \
                int64_t mid = lo + w < n ? lo + w : n;                        \
                int64_t hi = lo + 2 * w < n ? lo + 2 * w : n;                 \
                int64_t i = lo, j = mid, k = lo;                              \
                while (i < mid && j < hi)                                     \
                    dst[k++] = LESS(src[j], src[i]) ? src[j++] : src[i++];    \
                while (i < mid)                                               \
                    dst[k++] = src[i++];                                      \
                while (j < hi)                                                \
                    dst[k++] = src[j++];                                      \
            }                                                                 \
            TYPE *t = src;                                                    \
            src = dst;                                                        \
            dst = t;                                                          \
        }                                                                     \
        if (src != a)                                                         \
            memcpy(a, src, (size_t)n * sizeof(TYPE));                         \
    }

#define INT_LESS(x, y) ((x) < (y))
/* By <, with every NaN after all numbers (-0.0 and 0.0 are equal). */
#define DOUBLE_LESS(x, y) ((x) < (y) || (!isnan(x) && isnan(y)))
#define STRING_LESS(x, y) (ms_string_cmp((x), (y)) < 0)

DEFINE_MERGE_SORT(sort_ints, int64_t, INT_LESS)
DEFINE_MERGE_SORT(sort_doubles, double, DOUBLE_LESS)
typedef ms_vec *vec_ptr;
DEFINE_MERGE_SORT(sort_strings, vec_ptr, STRING_LESS)

/* Bytes (chars, bools) by counting: equal bytes are indistinguishable, so
 * this is stable as well. */
static void sort_bytes(unsigned char *a, int64_t n)
{
    int64_t count[256] = { 0 };
    for (int64_t i = 0; i < n; i++)
        count[a[i]]++;
    for (int c = 0; c < 256; c++) {
        memset(a, c, (size_t)count[c]);
        a += count[c];
    }
}

/* vt and v borrowed; vt's elements are int, double, char, bool or string
 * (typecheck's rule). Returns a new vector, owned by the caller, holding
 * v's elements in ascending order, equal ones in their order in v. */
ms_vec *ms_vec_sort(const ms_type *vt, const ms_vec *v)
{
    int64_t n = v ? v->len : 0;
    if (n == 0)
        return NULL;
    const ms_type *et = vt->elem;
    ms_vec *r = msv_alloc(et->size, n, n);
    unsigned char *data = MSV_DATA(r);
    memcpy(data, MSV_DATA(v), (size_t)n * et->size);
    msv_retain_range(et, data, n);
    if (et->kind == MS_T_CHAR || et->kind == MS_T_BOOL) {
        sort_bytes(data, n);
        return r;
    }
    /* One run needs no scratch space (the merges never start). */
    ms_vec *scratch = n > RUN ? msv_alloc(et->size, n, n) : NULL;
    void *b = scratch ? MSV_DATA(scratch) : NULL;
    switch (et->kind) {
    case MS_T_INT:
        sort_ints((int64_t *)data, b, n);
        break;
    case MS_T_DOUBLE:
        sort_doubles((double *)data, b, n);
        break;
    case MS_T_VECTOR:
        sort_strings((ms_vec **)data, b, n);
        break;
    default:
        ms_runtime_error(0, 0, "internal error: sort of an unsortable type");
    }
    if (scratch)
        msv_free(scratch);
    return r;
}

/* ------------------------------------------------------------ repeat */

/* vt (the result's type, vector<T>) and x (a T in memory) borrowed.
 * Returns a new vector, owned by the caller, of n copies of x (copies of
 * vectors share them, copy on write); the runtime error
 * "repeat count N is negative" at line:col when n < 0. */
ms_vec *ms_vec_repeat(const ms_type *vt, const void *x, int64_t n,
                      int32_t line, int32_t col)
{
    if (n < 0) {
        static _Thread_local char msg[64];
        snprintf(msg, sizeof msg, "repeat count %lld is negative", (long long)n);
        ms_runtime_error(line, col, msg);
    }
    if (n == 0)
        return NULL;
    const ms_type *et = vt->elem;
    size_t es = et->size;
    if (es != 0 && (uint64_t)n > (SIZE_MAX / 2) / es)
        ms_runtime_error(line, col, "out of memory");
    ms_vec *r = msv_alloc((uint32_t)es, n, n);
    unsigned char *data = MSV_DATA(r);
    if (es != 0) {
        /* Doubling copies: log n memcpy calls. */
        memcpy(data, x, es);
        size_t done = es, total = (size_t)n * es;
        while (done < total) {
            size_t k = done < total - done ? done : total - done;
            memcpy(data + done, data, k);
            done += k;
        }
    }
    msv_retain_range(et, data, n);
    return r;
}
