#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* The same work as strings.ms: byte appends, repeated concatenation of a
 * one-character string, a copy, an equality and an ordering comparison.
 * t = t + d copies t here, as value semantics do when nothing else is
 * known; M/s now appends in place when t has no other owner (lower-vectors
 * compiles x = x + e as x += e), so its ratio measures that too, not only
 * the code generated: the figure for building strings the same way is
 * text_join's. */
typedef struct { char *p; long len, cap; } str;
static void push(str *s, char c) {
    if (s->len == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 8;
        s->p = realloc(s->p, (size_t)s->cap);
        if (!s->p) exit(1);
    }
    s->p[s->len++] = c;
}
int main(void) {
    long n = @N@;
    int equal = 0;
    for (int rep = 0; rep < 20; rep++) {
        str s = {0}, t = {0};
        for (long i = 0; i < n; i++) {
            push(&s, (char)(97 + i % 26));
            char digit[2] = {(char)('0' + i % 10), 0};
            str nt = {malloc((size_t)t.len + 2), t.len, t.len + 2};
            if (!nt.p) return 1;
            memcpy(nt.p, t.p, (size_t)t.len);
            nt.p[nt.len++] = digit[0];
            free(t.p);
            t = nt;
        }
        str u = {malloc((size_t)s.len + 1), s.len, s.len + 1};
        memcpy(u.p, s.p, (size_t)s.len);
        str sz = {malloc((size_t)s.len + 1), s.len, s.len + 1};
        memcpy(sz.p, s.p, (size_t)s.len);
        sz.p[sz.len++] = 'z';
        if (u.len == s.len && memcmp(u.p, s.p, (size_t)s.len) == 0 &&
            memcmp(s.p, sz.p, (size_t)s.len) <= 0 && s.len < sz.len && t.len == n)
            equal++;
        free(s.p); free(t.p); free(u.p); free(sz.p);
    }
    printf("%d\n", equal);
    return 0;
}
