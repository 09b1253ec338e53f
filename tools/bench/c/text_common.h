/* Strings as M/s holds them (a length and its own bytes), for the text_*
 * kernels: repeat, join and split doing what the runtime's do. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { long len; char *p; } str;

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { perror("malloc"); exit(1); }
    return p;
}

/* n references to the same string, as repeat(x, n) shares x. */
static str *repeat(str x, long n) {
    str *v = xmalloc((size_t)n * sizeof *v);
    for (long i = 0; i < n; i++) v[i] = x;
    return v;
}

static str join(const str *parts, long n, str sep) {
    long total = 0;
    for (long i = 0; i < n; i++) total += parts[i].len;
    if (n > 0) total += (n - 1) * sep.len;
    str r = {total, xmalloc((size_t)total)};
    char *o = r.p;
    for (long i = 0; i < n; i++) {
        if (i > 0) { memcpy(o, sep.p, (size_t)sep.len); o += sep.len; }
        memcpy(o, parts[i].p, (size_t)parts[i].len);
        o += parts[i].len;
    }
    return r;
}

/* Every piece is a string of its own (one allocation each), as in M/s. */
static str *split(str s, str sep, long *count) {
    long n = 1;
    const char *p = s.p, *end = s.p + s.len, *q;
    while ((q = memmem(p, (size_t)(end - p), sep.p, (size_t)sep.len))) { n++; p = q + sep.len; }
    str *v = xmalloc((size_t)n * sizeof *v);
    p = s.p;
    for (long i = 0; i < n; i++) {
        q = i < n - 1 ? memmem(p, (size_t)(end - p), sep.p, (size_t)sep.len) : end;
        v[i].len = q - p;
        v[i].p = xmalloc((size_t)v[i].len);
        memcpy(v[i].p, p, (size_t)v[i].len);
        p = q + sep.len;
    }
    *count = n;
    return v;
}
