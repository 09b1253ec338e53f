/* The same work as text_split.ms. */
#include "text_common.h"
int main(void) {
    long n = @N@;
    str word = {9, "abcdefghi"}, comma = {1, ","};
    str *words = repeat(word, n);
    str text = join(words, n, comma);
    long count;
    str *parts = split(text, comma, &count);
    printf("%ld\n%ld\n", count, parts[count - 1].len);
    for (long i = 0; i < count; i++) free(parts[i].p);
    free(parts); free(words); free(text.p);
    return 0;
}
