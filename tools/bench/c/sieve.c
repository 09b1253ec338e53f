#include <stdio.h>
#include <stdlib.h>
int main(void) {
    long n = @N@, count = 0;
    for (int rep = 0; rep < 5; rep++) {
        char *composite = calloc((size_t)n + 1, 1);
        if (!composite) return 1;
        count = 0;
        for (long i = 2; i <= n; i++)
            if (!composite[i]) {
                count++;
                for (long j = i * i; j <= n; j += i) composite[j] = 1;
            }
        free(composite);
    }
    printf("%ld\n", count);
    return 0;
}
