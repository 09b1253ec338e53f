#include <stdio.h>
#include <stdlib.h>
int main(void) {
    long n = @N@;
    double *a = malloc(sizeof(double) * n * n), *b = malloc(sizeof(double) * n * n),
           *c = calloc((size_t)(n * n), sizeof(double));
    if (!a || !b || !c) return 1;
    for (long i = 0; i < n * n; i++) {
        a[i] = (double)(i % 7) * 0.5;
        b[i] = (double)(i % 5) * 0.25;
    }
    for (long i = 0; i < n; i++)
        for (long k = 0; k < n; k++) {
            double aik = a[i * n + k];
            for (long j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j];
        }
    double trace = 0;
    for (long i = 0; i < n; i++) trace += c[i * n + i];
    printf("%.17g\n", trace);
    free(a); free(b); free(c);
    return 0;
}
