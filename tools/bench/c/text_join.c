/* The same work as text_join.ms. */
#include "text_common.h"
int main(void) {
    long n = @N@;
    str word = {9, "abcdefghi"}, comma = {1, ","}, wide = {3, ", ;"};
    str *parts = repeat(word, n);
    str a = join(parts, n, comma);
    printf("%ld\n", a.len);
    free(a.p);
    str b = join(parts, n, wide);
    printf("%ld\n", b.len);
    free(b.p); free(parts);
    return 0;
}
