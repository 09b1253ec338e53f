/* The same work as text_find.ms: glibc's memmem and memchr. */
#include "text_common.h"
static long find(str s, str sub) {
    const char *hit = memmem(s.p, (size_t)s.len, sub.p, (size_t)sub.len);
    return hit ? hit - s.p : -1;
}
int main(void) {
    long n = @N@;
    str word = {10, "abcdefghi,"}, none = {0, ""}, bang = {1, "!"};
    str *words = repeat(word, n);
    str body = join(words, n, none);
    str both[2] = {body, bang};
    str text = join(both, 2, none);
    str *nw = repeat(word, 1000);
    str nbody = join(nw, 1000, none);
    str nboth[2] = {nbody, bang};
    str needle = join(nboth, 2, none);
    printf("%ld\n", find(text, needle));
    const char *z = memchr(text.p, 'z', (size_t)text.len);
    printf("%ld\n", z ? z - text.p : -1L);
    free(words); free(body.p); free(text.p); free(nw); free(nbody.p); free(needle.p);
    return 0;
}
