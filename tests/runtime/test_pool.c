/* test_pool.c — unit tests of runtime/c/pool.c, the small-block allocator
 * under the vectors: class round trips, realloc across classes and out to
 * malloc, malloc blocks freed through it, cross-thread frees (a producer
 * thread allocating, a consumer freeing, for many rounds, with the mapped
 * bytes staying flat), an exiting thread's blocks handed back, and an
 * address-space limit making it return NULL, not crash.
 *
 * Built by tests/runtime/test_pool.py with pool.c alone. With
 * MS_TEST_EXPECT_OFF=1 in the environment (under valgrind, under ASan,
 * with MS_POOL=off) it checks the pool is off and every block is malloc's,
 * then runs the same checks, which must hold either way.
 * Exits 0 when every check passes, 1 otherwise. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool.h"

static int failures;
static int pool_on;

#define CHECK(c)                                                             \
    do {                                                                     \
        if (!(c)) {                                                          \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #c);                                                     \
            failures++;                                                      \
        }                                                                    \
    } while (0)

#define MiB ((size_t)1 << 20)

static void *xalloc(size_t n)
{
    void *p = ms_pool_alloc(n);
    if (!p) {
        fprintf(stderr, "ms_pool_alloc(%zu): out of memory\n", n);
        exit(1);
    }
    return p;
}

static void fill(void *p, size_t n, unsigned seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed + i * 7);
}

static int filled(const void *p, size_t n, unsigned seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed + i * 7))
            return 0;
    return 1;
}

/* ------------------------------------------------------------ classes */

static void test_classes(void)
{
    for (size_t n = 1; n <= MS_POOL_MAX + 8; n++) {
        void *p = xalloc(n);
        CHECK(((uintptr_t)p & 7) == 0);
        CHECK(ms_pool_owns(p) == (pool_on && n <= MS_POOL_MAX));
        if (ms_pool_owns(p)) {
            size_t have = (size_t)ms_pool_class_of(p) * 8;
            CHECK(have == (n <= MS_POOL_MIN ? MS_POOL_MIN : (n + 7) / 8 * 8));
        }
        fill(p, n, (unsigned)n);
        CHECK(filled(p, n, (unsigned)n));
        ms_pool_free(p);
        /* A freed block is the next one of its class this thread gets. */
        void *q = xalloc(n);
        if (pool_on && n <= MS_POOL_MAX)
            CHECK(q == p);
        ms_pool_free(q);
    }
    /* Many blocks of each class live at once: all distinct, all intact. */
    enum { K = 3000 };
    static void *live[K];
    for (int i = 0; i < K; i++) {
        size_t n = 1 + (size_t)(i * 37) % MS_POOL_MAX;
        live[i] = xalloc(n);
        fill(live[i], n, (unsigned)i);
    }
    for (int i = 0; i < K; i++)
        CHECK(filled(live[i], 1 + (size_t)(i * 37) % MS_POOL_MAX, (unsigned)i));
    for (int i = 0; i < K; i++)
        ms_pool_free(live[i]);
}

static void test_calloc_and_malloc_blocks(void)
{
    void *p = xalloc(100);
    memset(p, 0xff, 100);
    ms_pool_free(p);
    unsigned char *z = ms_pool_calloc(100);
    CHECK(z != NULL);
    if (pool_on)
        CHECK((void *)z == p); /* the dirty block, zeroed */
    for (int i = 0; z && i < 100; i++)
        CHECK(z[i] == 0);
    ms_pool_free(z);
    unsigned char *big = ms_pool_calloc(5000);
    CHECK(big && !ms_pool_owns(big) && big[4999] == 0);
    ms_pool_free(big);

    /* Blocks that are malloc's go back to free(). */
    void *m = malloc(100);
    CHECK(m && !ms_pool_owns(m));
    ms_pool_free(m);
    ms_pool_free(NULL);
    /* A malloc block reallocated stays malloc's, even small. */
    m = malloc(1000);
    fill(m, 1000, 3);
    m = ms_pool_realloc(m, 40);
    CHECK(m && !ms_pool_owns(m) && filled(m, 40, 3));
    ms_pool_free(m);
    /* realloc of NULL allocates. */
    void *r = ms_pool_realloc(NULL, 5000);
    CHECK(r != NULL);
    ms_pool_free(r);
}

static void test_realloc(void)
{
    void *p = xalloc(30);
    fill(p, 30, 1);
    void *q = ms_pool_realloc(p, 100); /* class 32 to class 104 */
    CHECK(q && filled(q, 30, 1));
    if (pool_on) {
        CHECK(q != p && ms_pool_owns(q) && ms_pool_class_of(q) * 8 == 104);
        /* p went back to its class's list. */
        void *again = xalloc(30);
        CHECK(again == p);
        ms_pool_free(again);
    }
    fill(q, 100, 2);
    void *s = ms_pool_realloc(q, 104); /* still fits its block */
    if (pool_on)
        CHECK(s == q);
    CHECK(filled(s, 100, 2));
    fill(s, 104, 4);
    void *t = ms_pool_realloc(s, 200);
    CHECK(t && filled(t, 104, 4));
    fill(t, 200, 5);
    void *u = ms_pool_realloc(t, 300); /* out of the pool, to malloc */
    CHECK(u && !ms_pool_owns(u) && filled(u, 200, 5));
    fill(u, 300, 6);
    void *v = ms_pool_realloc(u, 1 << 20); /* malloc's realloc from here */
    CHECK(v && !ms_pool_owns(v) && filled(v, 300, 6));
    ms_pool_free(v);
    /* A shrink keeps the block. */
    void *w = xalloc(200);
    fill(w, 200, 7);
    void *x = ms_pool_realloc(w, 50);
    if (pool_on)
        CHECK(x == w);
    CHECK(filled(x, 50, 7));
    ms_pool_free(x);
}

/* ------------------------------------------------- producer, consumer
 *
 * The producer fills a batch of ROUND_BLOCKS blocks while the consumer
 * frees the batch before (two slots, handed over under a lock): every
 * block is allocated by one thread and freed by the other. Without the
 * depot, the consumer's lists would grow forever and the producer would
 * map new slabs for every round: ROUNDS * ROUND_BLOCKS * ~140 bytes. */
enum { ROUND_BLOCKS = 20000, ROUNDS = 150 };

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    void **slot[2];     /* a full batch, or NULL: guarded by lock */
    int produced, done; /* guarded by lock */
    size_t mapped_early;
} pc = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, { 0, 0 }, 0, 0, 0 };

static size_t round_size(int r, int i)
{
    return 24 + (size_t)((r * 31 + i * 13) % (MS_POOL_MAX - 23));
}

static void *producer(void *arg)
{
    (void)arg;
    for (int r = 0; r < ROUNDS; r++) {
        void **b = malloc(ROUND_BLOCKS * sizeof *b);
        if (!b)
            abort();
        for (int i = 0; i < ROUND_BLOCKS; i++) {
            size_t n = round_size(r, i);
            b[i] = xalloc(n);
            memset(b[i], (r + i) & 0xff, n);
        }
        pthread_mutex_lock(&pc.lock);
        while (pc.slot[r & 1])
            pthread_cond_wait(&pc.cond, &pc.lock);
        pc.slot[r & 1] = b;
        pc.produced = r + 1;
        pthread_cond_broadcast(&pc.cond);
        pthread_mutex_unlock(&pc.lock);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (int r = 0; r < ROUNDS; r++) {
        pthread_mutex_lock(&pc.lock);
        while (!pc.slot[r & 1])
            pthread_cond_wait(&pc.cond, &pc.lock);
        void **b = pc.slot[r & 1];
        pthread_mutex_unlock(&pc.lock);
        int bad = 0;
        for (int i = 0; i < ROUND_BLOCKS; i++) {
            unsigned char *p = b[i];
            size_t n = round_size(r, i);
            if (p[0] != ((r + i) & 0xff) || p[n - 1] != ((r + i) & 0xff))
                bad++;
            ms_pool_free(p);
        }
        CHECK(bad == 0);
        free(b);
        if (r == 4)
            pc.mapped_early = ms_pool_mapped();
        pthread_mutex_lock(&pc.lock);
        pc.slot[r & 1] = NULL;
        pc.done = r + 1;
        pthread_cond_broadcast(&pc.cond);
        pthread_mutex_unlock(&pc.lock);
    }
    return NULL;
}

static void test_cross_thread(void)
{
    size_t before = ms_pool_mapped();
    pthread_t a, b;
    CHECK(pthread_create(&a, NULL, producer, NULL) == 0);
    CHECK(pthread_create(&b, NULL, consumer, NULL) == 0);
    CHECK(pthread_join(a, NULL) == 0);
    CHECK(pthread_join(b, NULL) == 0);
    size_t end = ms_pool_mapped();
    if (pool_on) {
        /* At most 3 rounds live at once (~8 MiB): the mapping after round
         * 5 already holds them; 150 rounds without reuse would be 400 MiB. */
        fprintf(stderr, "producer/consumer: %zu MiB mapped after 5 rounds, %zu after %d\n",
                pc.mapped_early / MiB, end / MiB, ROUNDS);
        CHECK(pc.mapped_early > 0);
        CHECK(end <= pc.mapped_early + 8 * MiB);
        CHECK(end <= before + 32 * MiB);
    } else {
        CHECK(end == 0);
    }
}

/* ------------------------------------------------------- thread exits */

enum { EXIT_CLASS_BYTES = 160, EXIT_FREES = 100 };
static void *exit_block; /* thread_keeps_one's block, freed by main */

static void *thread_keeps_one(void *arg)
{
    (void)arg;
    exit_block = xalloc(EXIT_CLASS_BYTES);
    return NULL;
}

static void *thread_takes_one(void *arg)
{
    *(void **)arg = xalloc(EXIT_CLASS_BYTES);
    return NULL;
}

static void **frees_only_blocks;

static void *thread_frees_only(void *arg)
{
    (void)arg;
    for (int i = 0; i < EXIT_FREES; i++)
        ms_pool_free(frees_only_blocks[i]);
    return NULL;
}

static void *thread_churns(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    enum { K = 20000 };
    void **b = malloc(K * sizeof *b);
    if (!b)
        abort();
    for (int i = 0; i < K; i++)
        b[i] = xalloc(24 + (seed * 7 + (unsigned)i * 11) % (MS_POOL_MAX - 23));
    for (int i = 0; i < K; i++)
        ms_pool_free(b[i]);
    free(b);
    return NULL;
}

static void run_thread(void *(*fn)(void *), void *arg)
{
    pthread_t th;
    CHECK(pthread_create(&th, NULL, fn, arg) == 0);
    CHECK(pthread_join(th, NULL) == 0);
}

static void test_thread_exit(void)
{
    /* The unused rest of an exited thread's slab is the next thread's. */
    run_thread(thread_keeps_one, NULL);
    void *next = NULL;
    run_thread(thread_takes_one, &next);
    if (pool_on)
        CHECK((char *)next == (char *)exit_block + EXIT_CLASS_BYTES);
    ms_pool_free(exit_block);
    ms_pool_free(next);

    /* Blocks a thread freed and kept (fewer than a list holds) go to the
     * depot when it exits, even when it never allocated. */
    frees_only_blocks = malloc(EXIT_FREES * sizeof *frees_only_blocks);
    if (!frees_only_blocks)
        abort();
    for (int i = 0; i < EXIT_FREES; i++)
        frees_only_blocks[i] = xalloc(48);
    size_t before = ms_pool_depot_blocks();
    run_thread(thread_frees_only, NULL);
    if (pool_on)
        CHECK(ms_pool_depot_blocks() == before + EXIT_FREES);
    free(frees_only_blocks);

    /* Many threads, each allocating and freeing 20000 blocks: what each
     * left is reused by the next, so the mapping stays flat (a cache lost
     * at every exit would be about 1 MiB a thread, 200 MiB here). */
    run_thread(thread_churns, (void *)(uintptr_t)1);
    size_t early = ms_pool_mapped();
    for (unsigned i = 2; i <= 200; i++)
        run_thread(thread_churns, (void *)(uintptr_t)i);
    size_t end = ms_pool_mapped();
    if (pool_on) {
        fprintf(stderr, "thread exits: %zu MiB mapped after 1 thread, %zu after 200\n",
                early / MiB, end / MiB);
        CHECK(end <= early + 8 * MiB);
    }
}

/* ------------------------------------------------------ out of memory */

static size_t vm_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kb = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %zu kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

/* In a child under an address-space limit 64 MiB above its size: blocks
 * until the pool cannot map a chunk and malloc fails too, then NULL (never
 * a crash), and blocks freed then can be had again. */
static void test_out_of_memory(void)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        size_t vs = vm_size();
        struct rlimit rl = { vs + 64 * MiB, vs + 64 * MiB };
        if (vs == 0 || setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(2);
        void *head = NULL;
        size_t n = 0;
        for (;;) {
            void *p = ms_pool_alloc(200);
            if (!p)
                break;
            memcpy(p, &head, sizeof head);
            head = p;
            n++;
        }
        if (n < 100000) /* 64 MiB hold some 300000 */
            _exit(3);
        /* What is freed can be had again. */
        for (int i = 0; i < 1000; i++) {
            void *p = head;
            memcpy(&head, p, sizeof head);
            ms_pool_free(p);
        }
        for (int i = 0; i < 1000; i++)
            if (!ms_pool_alloc(200))
                _exit(4);
        _exit(0);
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "out of memory child: status %d\n", st);
}

int main(void)
{
    const char *off = getenv("MS_TEST_EXPECT_OFF");
    int expect_off = off && strcmp(off, "1") == 0;
    pool_on = ms_pool_active();
    CHECK(pool_on == !expect_off);
    test_classes();
    test_calloc_and_malloc_blocks();
    test_realloc();
    /* Before the producer and consumer fill the depot with batches of
     * every class: its first check wants none of 160 bytes there. */
    test_thread_exit();
    test_cross_thread();
    /* ASan's shadow memory does not fit under a limit (and with ASan,
     * pool.h's MS_POOL_OFF, the limit would test only malloc). */
#ifdef MS_POOL_OFF
    const int asan = 1;
#else
    const int asan = 0;
#endif
    if (!asan && !getenv("MS_TEST_NO_RLIMIT"))
        test_out_of_memory();
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("pool tests passed\n");
    return 0;
}
