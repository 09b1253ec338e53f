#include <stdio.h>
#include <stdlib.h>
typedef struct { double x, y; } vec2;
typedef struct { vec2 pos, vel; long bounces; } particle;
int main(void) {
    long n = @N@;
    particle *ps = calloc((size_t)n, sizeof *ps);
    if (!ps) return 1;
    for (long i = 0; i < n; i++) {
        ps[i].pos.x = (double)(i % 100);
        ps[i].pos.y = (double)(i % 37);
        ps[i].vel.x = 0.5 + (double)(i % 3);
        ps[i].vel.y = 0.25 - (double)(i % 2);
    }
    for (int step = 0; step < 200; step++)
        for (long i = 0; i < n; i++) {
            ps[i].pos.x += ps[i].vel.x;
            ps[i].pos.y += ps[i].vel.y;
            if (ps[i].pos.x < 0.0 || ps[i].pos.x > 100.0) { ps[i].vel.x = -ps[i].vel.x; ps[i].bounces++; }
            if (ps[i].pos.y < 0.0 || ps[i].pos.y > 100.0) { ps[i].vel.y = -ps[i].vel.y; ps[i].bounces++; }
        }
    long total = 0;
    for (long i = 0; i < n; i++) total += ps[i].bounces;
    printf("%ld\n", total);
    free(ps);
    return 0;
}
