/* pool.c — the small-block allocator under values.c's vectors.
 *
 * Why: most vectors are short strings (issue 11's word count makes 30
 * million of 30-40 bytes), and glibc's malloc/free (arena lock elision,
 * chunk headers, consolidation) cost a fifth of such a program. Here a
 * block of at most MS_POOL_MAX (256) bytes is one pop from a per-thread
 * list and its free one push, with no lock and no header.
 *
 * Layout. The pool maps chunks of 4 MiB from the kernel (mmap, aligned to
 * 4 MiB by mapping 8 and trimming), never unmapped. A chunk is 128 slabs
 * of 32 KiB; each slab serves one size class (blocks of 8c bytes, 24 to
 * 256), and the chunk's first 128 bytes are the class of each of its
 * slabs (slab 0's blocks start after them). A bit per 4 MiB of the
 * address space (ms_pool_chunk_map, 8 MiB of bss for 48-bit addresses,
 * read-only zero pages except where chunks are) says which chunks are the
 * pool's, so free needs no size: a block's chunk bit says it is a pool
 * block, the chunk's table gives its class; any other pointer is
 * malloc's, and goes to free(). Blocks bigger than 256 bytes, and every
 * block when the pool is off, are malloc's.
 *
 * Threads. Each thread has a cache (ms_pool_tl, pool.h): per class a list
 * of free blocks of at most MS_POOL_LIMIT, a spare list (a full list moved
 * aside), and the untouched rest of the last slab it took (bump, end).
 * Allocating pops the list; else takes the spare; else cuts from the bump
 * region; else goes to the depot. Freeing pushes onto the list of the
 * freeing thread, whoever allocated the block: that is how a block
 * crosses threads (the master's I/O thread decodes a result the main
 * thread frees; a slave's connection reader decodes arguments a worker
 * frees). A full list becomes the spare, and a full spare goes to the
 * depot as one batch. So a thread holds at most 2 * MS_POOL_LIMIT free
 * blocks of a class, and no free block is lost.
 *
 * The depot (D, behind D.lock) holds batches of free blocks per class
 * (a batch: blocks linked through word 0; its first block keeps the next
 * batch in word 1 and its count in word 2, which is why the smallest
 * block is 24 bytes), runs of never-used slab left by exited threads, and
 * the carving of new slabs from the newest chunk. A thread goes there once
 * per MS_POOL_LIMIT blocks at most, and takes a batch or a run before it
 * ever takes a new slab, so memory is bounded by the peak of live blocks
 * plus what caches hold: a producer thread allocating forever while a
 * consumer frees forever reuses the consumer's batches (the unit test
 * checks the mapped bytes stay flat). No chunk is returned to the kernel:
 * a program's small-block footprint is its peak, as with malloc's arena.
 *
 * A thread registers (a pthread key with a destructor) when it first
 * takes a slow path, which its first allocation and its first free both
 * do (lists start with room 0). Its exit hands its lists and its bump
 * runs to the depot and zeroes its cache, so a later free (in another
 * key's destructor) registers it again. The main thread's exit is the
 * process's, which frees everything anyway.
 *
 * Off: under AddressSanitizer (compile time, pool.h) and under valgrind
 * (RUNNING_ON_VALGRIND when valgrind/valgrind.h is there, and valgrind's
 * preload library in LD_PRELOAD either way), every block is malloc's, so
 * the tools see each block apart, its bounds and its leak; MS_POOL=off
 * does the same by hand (to compare with malloc, or for another tool).
 * A chunk that cannot be mapped is not an error here: that block comes
 * from malloc, and only malloc's failure is "out of memory" (msv_oom).
 * fork: the runtime's children only call async-signal-safe functions
 * before execve, so D.lock needs no atfork handler. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* MAP_ANONYMOUS when built alone by the unit tests */
#endif
#include "pool.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#if defined __has_include
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define POOL_HAVE_VALGRIND_H 1
#endif
#endif

#define CHUNK ((size_t)1 << MS_POOL_CHUNK_SHIFT)
#define SLAB ((size_t)1 << MS_POOL_SLAB_SHIFT)
#define CHUNK_HEAD MS_POOL_SLABS /* bytes: one class byte per slab */

_Thread_local ms_pool_cache ms_pool_tl;
_Atomic uint64_t ms_pool_chunk_map[(size_t)1 << (MS_POOL_VA_BITS - MS_POOL_CHUNK_SHIFT - 6)];

/* The depot: every field under lock. Any thread takes it, for at most a
 * few hundred instructions (no system call but a chunk's mmap). */
static struct {
    pthread_mutex_t lock;
    void *batches[MS_POOL_CLASSES]; /* stacks of batches (see the top) */
    size_t blocks[MS_POOL_CLASSES]; /* free blocks in them */
    void *runs[MS_POOL_CLASSES];    /* unused slab runs: word 0 next, word 1 end */
    char *carve, *carve_end;        /* slabs not yet given out, newest chunk */
    size_t mapped;                  /* bytes of chunks mapped */
    int no_chunks;                  /* an mmap landed beyond the chunk map */
} D = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Set once by pool_init (under pool_once), read after it. */
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static pthread_key_t pool_key;
static int pool_on;

/* Words of a free block, as bytes (see pool.h: no aliasing assumption). */
static inline void *word_get(const void *b, int i)
{
    void *w;
    memcpy(&w, (const char *)b + i * sizeof(void *), sizeof w);
    return w;
}

static inline void word_set(void *b, int i, const void *w)
{
    memcpy((char *)b + i * sizeof(void *), &w, sizeof w);
}

static void cache_exit(void *arg);

static int under_valgrind(void)
{
#ifdef POOL_HAVE_VALGRIND_H
    if (RUNNING_ON_VALGRIND)
        return 1;
#endif
    /* Without the header: valgrind starts its client with its preload
     * libraries (vgpreload_core-..., vgpreload_memcheck-...). */
    const char *pre = getenv("LD_PRELOAD");
    return pre && strstr(pre, "vgpreload_");
}

#ifdef MS_POOL_OFF
#define POOL_BUILT_OFF 1
#else
#define POOL_BUILT_OFF 0
#endif

static void pool_init(void)
{
    const char *env = getenv("MS_POOL");
    if (POOL_BUILT_OFF || (env && strcmp(env, "off") == 0) || under_valgrind()) {
        pool_on = 0;
        return;
    }
    int rc = pthread_key_create(&pool_key, cache_exit);
    if (rc != 0) {
        /* No way to hand an exiting thread's blocks back: malloc only. */
        fprintf(stderr, "ms runtime: pthread_key_create: %s (small blocks from malloc)\n",
                strerror(rc));
        pool_on = 0;
        return;
    }
    pool_on = 1;
}

int ms_pool_active(void)
{
    pthread_once(&pool_once, pool_init);
    return pool_on;
}

/* Makes this thread's exit hand its cache to the depot; 0, or -1 when the
 * pool is off or the key cannot be set (then the caller uses malloc, or
 * gives the block straight to the depot). */
static int cache_register(ms_pool_cache *t)
{
    if (!ms_pool_active())
        return -1;
    if (pthread_setspecific(pool_key, t) != 0)
        return -1;
    t->registered = 1;
    for (unsigned c = 0; c < MS_POOL_CLASSES; c++)
        t->list[c].room = MS_POOL_LIMIT;
    return 0;
}

/* Under D.lock: pushes the list (head, n blocks) as one batch. */
static void depot_put_locked(unsigned c, void *head, size_t n)
{
    word_set(head, 1, D.batches[c]);
    word_set(head, 2, (void *)(uintptr_t)n);
    D.batches[c] = head;
    D.blocks[c] += n;
}

/* Under D.lock: a new slab's bounds for class c in *start, *end, or 0 when
 * no chunk can be mapped. */
static int slab_take_locked(unsigned c, char **start, char **end)
{
    if (D.carve == D.carve_end) {
        if (D.no_chunks)
            return 0;
        /* Twice the size, then the unaligned ends cut off: the kernel gives
         * no alignment beyond the page. */
        char *m = mmap(NULL, 2 * CHUNK, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return 0; /* ENOMEM, or a map count limit: malloc's turn */
        char *chunk = (char *)(((uintptr_t)m + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1));
        /* munmap of part of a private anonymous mapping fails only on bad
         * arguments; if it did, the ends would only stay mapped, unused. */
        if (chunk > m && munmap(m, (size_t)(chunk - m)) != 0)
            perror("ms runtime: munmap");
        char *tail = chunk + CHUNK, *mend = m + 2 * CHUNK;
        if (mend > tail && munmap(tail, (size_t)(mend - tail)) != 0)
            perror("ms runtime: munmap");
        uintptr_t k = (uintptr_t)chunk >> MS_POOL_CHUNK_SHIFT;
        if ((uintptr_t)chunk >> MS_POOL_VA_BITS) {
            if (munmap(chunk, CHUNK) != 0)
                perror("ms runtime: munmap");
            D.no_chunks = 1;
            return 0;
        }
        /* No MADV_HUGEPAGE here: measured on issue 11's word count, the
         * kernel's compaction for huge pages cost 3x the system time the
         * 4 KiB faults save. */
        atomic_fetch_or_explicit(&ms_pool_chunk_map[k >> 6], (uint64_t)1 << (k & 63),
                                 memory_order_relaxed);
        D.mapped += CHUNK;
        D.carve = chunk;
        D.carve_end = chunk + CHUNK;
    }
    char *slab = D.carve;
    D.carve += SLAB;
    uintptr_t off = (uintptr_t)slab & (CHUNK - 1);
    char *chunk = slab - off;
    chunk[off >> MS_POOL_SLAB_SHIFT] = (char)c;
    *start = off ? slab : slab + CHUNK_HEAD;
    size_t size = (size_t)c * 8;
    *end = *start + (size_t)(slab + SLAB - *start) / size * size;
    return 1;
}

/* The slow path of ms_pool_alloc: this thread's list of n's class is
 * empty. */
void *ms_pool_alloc_slow(size_t n)
{
    ms_pool_cache *t = &ms_pool_tl;
    if (!t->registered && cache_register(t) != 0)
        return malloc(n);
    unsigned c = ms_pool_class(n);
    size_t size = (size_t)c * 8;
    ms_pool_list *l = &t->list[c];
    if (t->spare[c].head) {
        *l = t->spare[c];
        t->spare[c] = (ms_pool_list){ NULL, 0 };
    } else if (t->bump[c] && (size_t)(t->end[c] - t->bump[c]) >= size) {
        void *b = t->bump[c];
        t->bump[c] += size;
        return b;
    } else {
        pthread_mutex_lock(&D.lock);
        if (D.batches[c]) {
            void *head = D.batches[c];
            size_t k = (size_t)(uintptr_t)word_get(head, 2);
            D.batches[c] = word_get(head, 1);
            D.blocks[c] -= k;
            pthread_mutex_unlock(&D.lock);
            l->head = head;
            l->room = MS_POOL_LIMIT - (uint32_t)k;
        } else {
            char *start, *end;
            int got = 1;
            if (D.runs[c]) {
                start = D.runs[c];
                end = word_get(start, 1);
                D.runs[c] = word_get(start, 0);
            } else {
                got = slab_take_locked(c, &start, &end);
            }
            pthread_mutex_unlock(&D.lock);
            if (!got)
                return malloc(n);
            t->bump[c] = start + size;
            t->end[c] = end;
            return start;
        }
    }
    void *b = l->head;
    l->head = word_get(b, 0);
    l->room++;
    return b;
}

/* The slow path of ms_pool_free: this thread's list of class c is full, or
 * the thread has not registered. */
void ms_pool_free_slow(void *p, unsigned c)
{
    ms_pool_cache *t = &ms_pool_tl;
    if (!t->registered && cache_register(t) != 0) {
        /* Nowhere to keep it that an exit would empty: a batch of one. */
        pthread_mutex_lock(&D.lock);
        word_set(p, 0, NULL);
        depot_put_locked(c, p, 1);
        pthread_mutex_unlock(&D.lock);
        return;
    }
    ms_pool_list *l = &t->list[c];
    if (!l->room) {
        if (t->spare[c].head) {
            pthread_mutex_lock(&D.lock);
            depot_put_locked(c, t->spare[c].head, MS_POOL_LIMIT - t->spare[c].room);
            pthread_mutex_unlock(&D.lock);
        }
        t->spare[c] = *l;
        *l = (ms_pool_list){ NULL, MS_POOL_LIMIT };
    }
    word_set(p, 0, l->head);
    l->head = p;
    l->room--;
}

/* The key's destructor, on the exiting thread: t is its cache. */
static void cache_exit(void *arg)
{
    ms_pool_cache *t = arg;
    pthread_mutex_lock(&D.lock);
    for (unsigned c = 0; c < MS_POOL_CLASSES; c++) {
        if (t->list[c].head)
            depot_put_locked(c, t->list[c].head, MS_POOL_LIMIT - t->list[c].room);
        if (t->spare[c].head)
            depot_put_locked(c, t->spare[c].head, MS_POOL_LIMIT - t->spare[c].room);
        if (t->bump[c] && (size_t)(t->end[c] - t->bump[c]) >= (size_t)c * 8) {
            word_set(t->bump[c], 0, D.runs[c]);
            word_set(t->bump[c], 1, t->end[c]);
            D.runs[c] = t->bump[c];
        }
    }
    pthread_mutex_unlock(&D.lock);
    memset(t, 0, sizeof *t);
}

void *ms_pool_calloc(size_t n)
{
    if (n > MS_POOL_MAX)
        return calloc(1, n);
    void *p = ms_pool_alloc(n);
    if (p)
        memset(p, 0, n);
    return p;
}

void *ms_pool_realloc(void *p, size_t n)
{
    if (!ms_pool_owns(p))
        return realloc(p, n);
    size_t have = (size_t)ms_pool_class_of(p) * 8;
    if (n <= have)
        return p;
    void *q = ms_pool_alloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, have);
    ms_pool_free(p);
    return q;
}

size_t ms_pool_mapped(void)
{
    pthread_mutex_lock(&D.lock);
    size_t n = D.mapped;
    pthread_mutex_unlock(&D.lock);
    return n;
}

size_t ms_pool_depot_blocks(void)
{
    size_t n = 0;
    pthread_mutex_lock(&D.lock);
    for (unsigned c = 0; c < MS_POOL_CLASSES; c++)
        n += D.blocks[c];
    pthread_mutex_unlock(&D.lock);
    return n;
}
