/* pool.h — the allocator under values.c's vectors: blocks of at most
 * MS_POOL_MAX bytes come from per-thread free lists over slabs of the
 * pool's own mappings, bigger ones from malloc. pool.c holds the design;
 * this header holds the two fast paths (a pop and a push on this thread's
 * list), inlined into values.c. */
#ifndef MS_POOL_H
#define MS_POOL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Under AddressSanitizer every block is malloc's, so that ASan sees each
 * one apart (redzones, use after free). Valgrind is detected at run time
 * (pool.c). */
#if defined __SANITIZE_ADDRESS__
#define MS_POOL_OFF 1
#elif defined __has_feature
#if __has_feature(address_sanitizer)
#define MS_POOL_OFF 1
#endif
#endif

#define MS_POOL_MAX 256 /* bytes; bigger blocks are malloc's */
#define MS_POOL_MIN 24  /* the smallest block: the depot links 3 words */
/* Class c holds blocks of 8c bytes (3 <= c <= 32): vectors need only
 * 8-byte alignment (ms_abi.h: elements are at most 8-aligned), so the step
 * is 8, not malloc's 16. */
#define MS_POOL_CLASSES (MS_POOL_MAX / 8 + 1)
#define MS_POOL_CHUNK_SHIFT 22 /* 4 MiB mappings, aligned to their size */
#define MS_POOL_SLAB_SHIFT 15  /* 32 KiB slabs, each of one class */
#define MS_POOL_SLABS (1u << (MS_POOL_CHUNK_SHIFT - MS_POOL_SLAB_SHIFT))
#define MS_POOL_VA_BITS 48     /* user addresses the chunk map covers */
/* Blocks a thread keeps on one class's list before it moves them aside
 * (to its spare list, and the spare to the depot). */
#define MS_POOL_LIMIT 128u

/* One class's list of free blocks on one thread, linked through each
 * block's first word. room is MS_POOL_LIMIT less the blocks on it; a
 * thread's lists start all-zero (room 0), so its first free takes the slow
 * path, which registers the thread (pool.c) before anything is cached. */
typedef struct ms_pool_list {
    void *head;
    uint32_t room;
} ms_pool_list;

/* A thread's cache: only its own thread touches it (and the thread's exit
 * destructor, on that same thread), so no lock. */
typedef struct ms_pool_cache {
    ms_pool_list list[MS_POOL_CLASSES];
    ms_pool_list spare[MS_POOL_CLASSES]; /* a full list moved aside */
    char *bump[MS_POOL_CLASSES];         /* never-used part of a slab */
    char *end[MS_POOL_CLASSES];
    int registered; /* 1: its exit hands everything to the depot */
} ms_pool_cache;

extern _Thread_local ms_pool_cache ms_pool_tl;
/* Bit k set: the 4 MiB at k << MS_POOL_CHUNK_SHIFT are a pool chunk. Set
 * (never cleared: chunks are never unmapped) under the depot's lock;
 * read without one, relaxed: a block's pointer reaches a freeing thread
 * only through something that orders it after its chunk was mapped, and a
 * malloc block's address is in no chunk whatever the bit read says. */
extern _Atomic uint64_t ms_pool_chunk_map[(size_t)1 << (MS_POOL_VA_BITS - MS_POOL_CHUNK_SHIFT - 6)];

void *ms_pool_alloc_slow(size_t n);
void ms_pool_free_slow(void *p, unsigned c);

/* 1 when p is a pool block (else malloc's, or NULL). */
static inline int ms_pool_owns(const void *p)
{
#ifdef MS_POOL_OFF
    (void)p;
    return 0;
#else
    uintptr_t a = (uintptr_t)p;
    if (a >> MS_POOL_VA_BITS)
        return 0;
    uintptr_t k = a >> MS_POOL_CHUNK_SHIFT;
    uint64_t w = atomic_load_explicit(&ms_pool_chunk_map[k >> 6], memory_order_relaxed);
    return (int)((w >> (k & 63)) & 1);
#endif
}

static inline unsigned ms_pool_class(size_t n)
{
    return n <= MS_POOL_MIN ? MS_POOL_MIN / 8 : (unsigned)((n + 7) >> 3);
}

/* The class of a pool block p: its slab's byte in the table at the start
 * of its chunk. */
static inline unsigned ms_pool_class_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    const unsigned char *classes =
        (const unsigned char *)(a & ~(((uintptr_t)1 << MS_POOL_CHUNK_SHIFT) - 1));
    return classes[(a >> MS_POOL_SLAB_SHIFT) & (MS_POOL_SLABS - 1)];
}

/* A block of n bytes (> 0), 8-aligned (16 when it is malloc's), owned by
 * the caller until ms_pool_free; NULL when there is no memory. */
static inline void *ms_pool_alloc(size_t n)
{
#ifdef MS_POOL_OFF
    return malloc(n);
#else
    if (n > MS_POOL_MAX)
        return malloc(n);
    ms_pool_list *l = &ms_pool_tl.list[ms_pool_class(n)];
    void *b = l->head;
    if (!b)
        return ms_pool_alloc_slow(n);
    /* memcpy: the link is read and written as bytes, whatever type the
     * block's last user stored there (no aliasing assumption). */
    memcpy(&l->head, b, sizeof(void *));
    l->room++;
    return b;
#endif
}

/* Frees p (a block from ms_pool_alloc, ms_pool_calloc or ms_pool_realloc,
 * or NULL), from any thread: a pool block goes onto this thread's list of
 * its class, whichever thread allocated it. Takes p. */
static inline void ms_pool_free(void *p)
{
#ifndef MS_POOL_OFF
    if (ms_pool_owns(p)) {
        unsigned c = ms_pool_class_of(p);
        ms_pool_list *l = &ms_pool_tl.list[c];
        if (!l->room) {
            ms_pool_free_slow(p, c);
            return;
        }
        memcpy(p, &l->head, sizeof(void *));
        l->head = p;
        l->room--;
        return;
    }
#endif
    free(p);
}

/* ms_pool_alloc with the n bytes zeroed. */
void *ms_pool_calloc(size_t n);

/* p (or NULL) resized to n bytes (> 0) as realloc does: its first
 * min(old, n) bytes kept, NULL and p untouched when there is no memory,
 * else p is taken and the result owned by the caller. A pool block that
 * outgrows its class moves to a bigger one, or to malloc past
 * MS_POOL_MAX; a malloc block stays malloc's. */
void *ms_pool_realloc(void *p, size_t n);

/* For the tests and for --stats-like reports: whether this process uses
 * the pool at all (0 under ASan, valgrind or MS_POOL=off), the bytes of
 * chunks mapped, and the free blocks the depot holds. */
int ms_pool_active(void);
size_t ms_pool_mapped(void);
size_t ms_pool_depot_blocks(void);

#endif
