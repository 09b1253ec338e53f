/* The same work as map_words.ms: the text built the same way, its words
 * counted in a small open-addressing table of (pointer, length) keys
 * hashed with FNV-1a (no copy of a word). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

typedef struct { const char *p; long len; long count; } slot;
static slot *tab;
static size_t cap = 16, used;

static uint64_t fnv(const char *p, long n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (long i = 0; i < n; i++) { h ^= (unsigned char)p[i]; h *= 0x100000001b3ULL; }
    return h;
}

static size_t find(const char *p, long n) {
    size_t i = fnv(p, n) & (cap - 1);
    while (tab[i].p && !(tab[i].len == n && memcmp(tab[i].p, p, (size_t)n) == 0))
        i = (i + 1) & (cap - 1);
    return i;
}

static void add(const char *p, long n) {
    if (2 * (used + 1) > cap) {
        slot *old = tab; size_t oc = cap;
        cap *= 2; tab = calloc(cap, sizeof *tab);
        for (size_t i = 0; i < oc; i++)
            if (old[i].p) tab[find(old[i].p, old[i].len)] = old[i];
        free(old);
    }
    size_t i = find(p, n);
    if (!tab[i].p) { tab[i].p = p; tab[i].len = n; used++; }
    tab[i].count++;
}

int main(void) {
    long n = @N@;
    char *text = malloc((size_t)n * 11 + 1);
    long len = 0;
    for (long i = 0; i < n; i++) {
        if (i) text[len++] = ' ';
        len += sprintf(text + len, "word%ld", i * 2654435761L % 100000);
    }
    tab = calloc(cap, sizeof *tab);
    long start = 0;
    for (long i = 0; i <= len; i++)
        if (i == len || text[i] == ' ') { add(text + start, i - start); start = i + 1; }
    size_t at = find("word42", 6);
    printf("%zu\n%ld\n", used, tab[at].p ? tab[at].count : 0);
    free(tab); free(text);
    return 0;
}
