/* test_values.c — unit tests of the value runtime (values.c, strings.c,
 * codec.c): vectors, refcounts, copy-on-write, equality, strings, codec.
 *
 * Built by tests/runtime/test_values.py in two ways:
 *   - with -DMS_TEST_LOCAL_STUBS: linked with only the three files under
 *     test, plus the test-local stand-ins below for the other runtime
 *     functions they call (handle counts are then checked exactly);
 *   - without it: linked with the real build/libmsmaster.a.
 * Runtime errors end the process, so each error case runs in a new
 * process: the test binary itself (path in $MS_TEST_SELF, else argv[0]),
 * run with $MS_TEST_CASE naming the case; its stderr is searched for the
 * expected message. With the real library that process is a master started
 * with --spawn 0 whose master block (ms_master_main) runs the case, so the
 * real runtime-error path is what is checked.
 * Exits 0 when every check passes, 1 otherwise. */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ms_abi.h"
#include "output.h" /* ms_output_hook, stood in for below */
#include "values.h" /* vector tracking and the hidden msv_node */

static int failures;

/* A job run the way a slave's worker runs one (see run_tracked): a runtime
 * error raised while job_armed longjmps to job_jb (stub build). */
#if defined MS_TEST_LOCAL_STUBS || !defined MS_VALUES_UNTRACKED
static jmp_buf job_jb;
#endif
static volatile int job_armed;
#define CHECK(c)                                                             \
    do {                                                                     \
        if (!(c)) {                                                          \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #c);                                                     \
            failures++;                                                      \
        }                                                                    \
    } while (0)

#define DATA(v) ((unsigned char *)(v) + sizeof(ms_vec))

/* ===================================================================
 * TEST-LOCAL STAND-INS for functions owned by the other runtime files
 * (print.c, ser.c, jobs.c, master_*.c). Only in the stub build.
 * =================================================================== */
#ifdef MS_TEST_LOCAL_STUBS
static uintptr_t stub_stack_limit;
static long stub_handle_count; /* retains minus releases of non-NULL handles */

_Noreturn void ms_runtime_error(int32_t line, int32_t col, const char *msg)
{
    if (job_armed) {
        job_armed = 0;
        longjmp(job_jb, 1);
    }
    fprintf(stderr, "test:%d:%d: runtime error: %s\n", line, col, msg);
    fflush(stderr);
    _exit(1);
}
uintptr_t *ms_stack_limit_ptr(void) { return &stub_stack_limit; }
void ms_handle_retain(ms_handle h) { if (h) stub_handle_count++; }
void ms_handle_release(ms_handle h) { if (h) stub_handle_count--; }
/* print.c's: nothing forwards here (strings print to stdout and stderr). */
int (*ms_output_hook)(int stream, const char *text, size_t n);

int ms_format_double(double v, char *out)
{
    if (isnan(v))
        return sprintf(out, "nan");
    if (isinf(v))
        return sprintf(out, v < 0 ? "-inf" : "inf");
    int p = 1;
    for (; p < 17; p++) {
        char tmp[40];
        snprintf(tmp, sizeof tmp, "%.*g", p, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    return sprintf(out, "%.*g", p < 6 ? 6 : p, v);
}

static void stub_put(ms_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->data = realloc(b->data, b->cap);
        if (!b->data)
            abort();
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}
static void stub_put_le(ms_buf *b, uint64_t v, int n)
{
    uint8_t bytes[8];
    for (int i = 0; i < n; i++)
        bytes[i] = (uint8_t)(v >> (8 * i));
    stub_put(b, bytes, (size_t)n);
}
/* ser.h's buffer calls that codec.c uses for its whole-vector copies. */
void ms_buf_reserve(ms_buf *b, uint64_t extra)
{
    if (b->cap - b->len >= extra)
        return;
    /* Doubling, as the real one: a deep value reserves at every level. */
    b->cap = b->len + extra > 2 * b->cap ? b->len + extra : 2 * b->cap;
    b->data = realloc(b->data, b->cap);
    if (!b->data)
        abort();
}
void ms_hint_huge(void *p, size_t n) { (void)p; (void)n; }
/* log.c's, for hash.c (maps' keyed hashes): a failure ends the test. */
_Noreturn void ms_fatal(const char *fmt, ...)
{
    fprintf(stderr, "fatal: %s\n", fmt);
    _exit(1);
}
/* log.c's, for strings.c's eprint (the writer that keeps lines apart
 * from a status line) and its copy of a long line. */
void ms_err_write(const char *s, size_t n) { fwrite(s, 1, n, stderr); }
void *ms_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        ms_fatal("malloc");
    return p;
}
void ms_buf_put_i64(ms_buf *b, int64_t v) { stub_put_le(b, (uint64_t)v, 8); }
void ms_buf_put_f64(ms_buf *b, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    stub_put_le(b, bits, 8);
}
void ms_buf_put_u8(ms_buf *b, uint8_t v) { stub_put_le(b, v, 1); }
void ms_buf_put_u32(ms_buf *b, uint32_t v) { stub_put_le(b, v, 4); }
static uint64_t stub_get_le(ms_reader *r, int n)
{
    if (r->off > r->len || r->len - r->off < (uint64_t)n) {
        r->off = r->len;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)r->data[r->off + i] << (8 * i);
    r->off += (uint64_t)n;
    return v;
}
int64_t ms_read_i64(ms_reader *r) { return (int64_t)stub_get_le(r, 8); }
double ms_read_f64(ms_reader *r)
{
    uint64_t bits = stub_get_le(r, 8);
    double v;
    memcpy(&v, &bits, 8);
    return v;
}
uint8_t ms_read_u8(ms_reader *r) { return (uint8_t)stub_get_le(r, 1); }
uint32_t ms_read_u32(ms_reader *r) { return (uint32_t)stub_get_le(r, 4); }
static void buf_free(ms_buf *b) { free(b->data); b->data = NULL; b->len = b->cap = 0; }
#else
/* The real library: part A of the ABI, which compiled code would define. */
const char ms_program_source[] = "test_values.ms";
const uint32_t ms_job_count = 0;
const ms_job_entry ms_job_table[1];
static void buf_free(ms_buf *b) { free(b->data); b->data = NULL; b->len = b->cap = 0; }
#endif

/* ============================================================ types */

#define SCALAR(k, sz) { .kind = (k), .size = (sz) }
static const ms_type T_INT = SCALAR(MS_T_INT, 8);
static const ms_type T_DOUBLE = SCALAR(MS_T_DOUBLE, 8);
static const ms_type T_BOOL = SCALAR(MS_T_BOOL, 1);
static const ms_type T_CHAR = SCALAR(MS_T_CHAR, 1);
static const ms_type T_JOBSTATE = SCALAR(MS_T_JOBSTATE, 4);
static const ms_type T_JOB = { .kind = MS_T_JOB, .size = 8, .has_refs = 1 };
#define VEC(e) { .kind = MS_T_VECTOR, .size = 8, .has_refs = 1, .elem = (e) }
static const ms_type T_VINT = VEC(&T_INT);
static const ms_type T_VDOUBLE = VEC(&T_DOUBLE);
static const ms_type T_VBOOL = VEC(&T_BOOL);
static const ms_type T_STR = VEC(&T_CHAR);
static const ms_type T_VJOB = VEC(&T_JOB);
static const ms_type T_VSTR = VEC(&T_STR);
static const ms_type T_VVINT = VEC(&T_VINT);

/* struct Item { int id; string name; } */
static const ms_type *const ITEM_F[] = { &T_INT, &T_STR };
static const uint32_t ITEM_O[] = { 0, 8 };
static const ms_type T_ITEM = { .kind = MS_T_STRUCT, .size = 16, .has_refs = 1,
    .nfields = 2, .fields = ITEM_F, .offsets = ITEM_O, .name = "Item" };
typedef struct { int64_t id; ms_vec *name; } Item;
static const ms_type T_VITEM = VEC(&T_ITEM);
static const ms_type T_VVITEM = VEC(&T_VITEM);

/* struct Mixed { bool b; double d; char c; } */
static const ms_type *const MIXED_F[] = { &T_BOOL, &T_DOUBLE, &T_CHAR };
static const uint32_t MIXED_O[] = { 0, 8, 16 };
static const ms_type T_MIXED = { .kind = MS_T_STRUCT, .size = 24, .nfields = 3,
    .fields = MIXED_F, .offsets = MIXED_O, .name = "Mixed" };
typedef struct { uint8_t b; double d; uint8_t c; } Mixed;
static const ms_type T_VMIXED = VEC(&T_MIXED);

/* struct Empty {} */
static const ms_type T_EMPTY = { .kind = MS_T_STRUCT, .size = 0, .name = "Empty" };
static const ms_type T_VEMPTY = VEC(&T_EMPTY);

/* struct Watch { jobstate s; job<int> h; } */
static const ms_type *const WATCH_F[] = { &T_JOBSTATE, &T_JOB };
static const uint32_t WATCH_O[] = { 0, 8 };
static const ms_type T_WATCH = { .kind = MS_T_STRUCT, .size = 16, .has_refs = 1,
    .nfields = 2, .fields = WATCH_F, .offsets = WATCH_O, .name = "Watch" };
typedef struct { int32_t s; ms_handle h; } Watch;
static const ms_type T_VWATCH = VEC(&T_WATCH);

/* struct Node { int v; vector<struct Node> kids; } — recursive through a
 * vector, so its descriptors form a cycle. */
static const ms_type T_VNODE;
static const ms_type *const NODE_F[] = { &T_INT, &T_VNODE };
static const uint32_t NODE_O[] = { 0, 8 };
static const ms_type T_NODE = { .kind = MS_T_STRUCT, .size = 16, .has_refs = 1,
    .nfields = 2, .fields = NODE_F, .offsets = NODE_O, .name = "Node" };
static const ms_type T_VNODE = VEC(&T_NODE);
typedef struct { int64_t v; ms_vec *kids; } Node;

/* struct DNode { vector<struct DNode> kids; double d; } — recursive
 * through its first field, holding a double in its second. */
static const ms_type T_VDNODE;
static const ms_type *const DNODE_F[] = { &T_VDNODE, &T_DOUBLE };
static const uint32_t DNODE_O[] = { 0, 8 };
static const ms_type T_DNODE = { .kind = MS_T_STRUCT, .size = 16, .has_refs = 1,
    .nfields = 2, .fields = DNODE_F, .offsets = DNODE_O, .name = "DNode" };
static const ms_type T_VDNODE = VEC(&T_DNODE);
typedef struct { ms_vec *kids; double d; } DNode;

/* A string literal as the compiler emits it, in read-only memory: any
 * write to it would crash the test. */
static const struct { ms_vec h; char bytes[5]; } LIT_HELLO = {
    { MS_RC_IMMORTAL, 5, 5 }, "hello" };
#define HELLO ((ms_vec *)&LIT_HELLO)

/* ========================================================== helpers */

static ms_vec *str(const char *s) { return ms_string_from_bytes((const uint8_t *)s, (int64_t)strlen(s)); }

static int str_is(const ms_vec *v, const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return v == NULL;
    return v && v->len == (int64_t)n && memcmp(DATA(v), s, n) == 0;
}

static ms_vec *ints(int n, const int64_t *xs)
{
    ms_vec *v = NULL;
    for (int i = 0; i < n; i++)
        *(int64_t *)ms_vec_push(&T_VINT, &v) = xs[i];
    return v;
}

/* Runs the error case `name` in a new process (see the top of the file)
 * and checks that it ends with status 1 and a runtime error whose text
 * contains `want`. */
static const char *self_path;
static void expect_error(const char *name, const char *want)
{
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(2);
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        setenv("MS_TEST_CASE", name, 1);
        execl(self_path, self_path, "--spawn", "0", (char *)NULL);
        perror("execl");
        _exit(98);
    }
    close(fds[1]);
    char out[4096];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof out - 1 && (k = read(fds[0], out + n, sizeof out - 1 - n)) > 0)
        n += (size_t)k;
    out[n] = 0;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 1 && strstr(out, want);
    if (!ok) {
        fprintf(stderr, "case %s: expected runtime error containing '%s', got status %d, stderr: %s\n",
                name, want, status, out);
        failures++;
    }
}

/* ============================================================ tests */

static void test_new_and_push(void)
{
    CHECK(ms_vec_new(&T_VINT, 0) == NULL);
    ms_vec *v = ms_vec_new(&T_VMIXED, 3);
    CHECK(v && v->refcount == 1 && v->len == 3);
    static const unsigned char zero[72];
    CHECK(memcmp(DATA(v), zero, 72) == 0);
    ms_vec_release(&T_VMIXED, v);

    ms_vec *w = NULL;
    int64_t caps_seen = 0, last_cap = 0;
    for (int64_t i = 0; i < 1000; i++) {
        int64_t *e = ms_vec_push(&T_VINT, &w);
        CHECK(*e == 0);
        *e = i * i;
        if (w->cap != last_cap) {
            caps_seen++;
            CHECK(last_cap == 0 ? w->cap == 4 : w->cap == 2 * last_cap);
            last_cap = w->cap;
        }
    }
    CHECK(w->len == 1000 && w->cap == 1024 && caps_seen == 9);
    int ok = 1;
    for (int64_t i = 0; i < 1000; i++)
        ok &= ((int64_t *)DATA(w))[i] == i * i;
    CHECK(ok);
    ms_vec_release(&T_VINT, w);

    /* Vectors of a zero-size element type still count. */
    ms_vec *e = NULL;
    for (int i = 0; i < 10; i++)
        ms_vec_push(&T_VEMPTY, &e);
    CHECK(e->len == 10);
    ms_vec_release(&T_VEMPTY, e);
}

static void test_copy_on_write(void)
{
    int64_t xs[] = { 1, 2, 3 };
    ms_vec *a = ints(3, xs);
    ms_vec *b = a;
    ms_value_retain(&T_VINT, &b); /* b = a */
    CHECK(a->refcount == 2);
    ms_vec *u = ms_vec_unique(&T_VINT, &b);
    CHECK(u == b && b != a && a->refcount == 1 && b->refcount == 1);
    ((int64_t *)DATA(b))[1] = 20;
    CHECK(((int64_t *)DATA(a))[1] == 2 && ((int64_t *)DATA(b))[1] == 20);
    CHECK(ms_vec_unique(&T_VINT, &a) == a); /* already unique */
    ms_vec *empty = NULL;
    CHECK(ms_vec_unique(&T_VINT, &empty) == NULL);

    /* Push on a shared vector copies; the other copy keeps its length. */
    ms_vec *c = a;
    ms_value_retain(&T_VINT, &c);
    *(int64_t *)ms_vec_push(&T_VINT, &c) = 4;
    CHECK(a->len == 3 && c->len == 4 && a->refcount == 1 && c != a);
    ms_vec_release(&T_VINT, a);
    ms_vec_release(&T_VINT, b);
    ms_value_release(&T_VINT, &c);

    /* Nested: copying the outer vector shares the strings; making the
     * outer unique retains them; writing one string of the copy leaves
     * the original's untouched. */
    ms_vec *names = NULL;
    *(ms_vec **)ms_vec_push(&T_VSTR, &names) = str("ab");
    *(ms_vec **)ms_vec_push(&T_VSTR, &names) = str("cd");
    ms_vec *copy = names;
    ms_value_retain(&T_VSTR, &copy);
    ms_vec_unique(&T_VSTR, &copy);
    ms_vec *s0 = ((ms_vec **)DATA(names))[0];
    CHECK(copy != names && s0->refcount == 2 && ((ms_vec **)DATA(copy))[0] == s0);
    ms_vec **slot = (ms_vec **)DATA(copy);
    ms_vec_unique(&T_STR, slot);
    DATA(*slot)[0] = 'X';
    CHECK(str_is(s0, "ab") && str_is(*slot, "Xb") && s0->refcount == 1);
    ms_vec_release(&T_VSTR, names);
    ms_vec_release(&T_VSTR, copy);
}

static void test_immortal(void)
{
    ms_vec *s = HELLO;
    ms_value_retain(&T_STR, &s);
    ms_value_retain(&T_STR, &s);
    ms_vec_release(&T_STR, s);
    ms_value_release(&T_STR, &s);
    CHECK(LIT_HELLO.h.refcount == MS_RC_IMMORTAL);

    ms_vec *t = HELLO;
    ms_vec *u = ms_vec_unique(&T_STR, &t);
    CHECK(u != HELLO && t == u && u->refcount == 1 && str_is(u, "hello"));
    DATA(u)[0] = 'j';
    CHECK(str_is(HELLO, "hello") && str_is(u, "jello"));
    CHECK(LIT_HELLO.h.refcount == MS_RC_IMMORTAL);
    ms_vec_release(&T_STR, u);

    ms_vec *p = HELLO;
    *(uint8_t *)ms_vec_push(&T_STR, &p) = '!';
    CHECK(str_is(p, "hello!") && str_is(HELLO, "hello"));
    ms_vec_release(&T_STR, p);

    /* An immortal element inside a mortal vector survives its release. */
    ms_vec *v = NULL;
    *(ms_vec **)ms_vec_push(&T_VSTR, &v) = HELLO;
    ms_vec *w = ms_vec_concat(&T_VSTR, v, v);
    ms_vec_release(&T_VSTR, v);
    ms_vec_release(&T_VSTR, w);
    CHECK(LIT_HELLO.h.refcount == MS_RC_IMMORTAL);
}

/* vector<vector<Item>> with shared parts: valgrind checks nothing leaks. */
static void test_nested_release(void)
{
    ms_vec *outer = NULL;
    for (int i = 0; i < 5; i++) {
        ms_vec *inner = NULL;
        for (int j = 0; j < 4; j++) {
            Item *it = ms_vec_push(&T_VITEM, &inner);
            it->id = i * 10 + j;
            char name[32];
            snprintf(name, sizeof name, "n%d.%d", i, j);
            it->name = j == 3 ? HELLO : str(name);
        }
        *(ms_vec **)ms_vec_push(&T_VVITEM, &outer) = inner;
    }
    ms_vec *copy = outer;
    ms_value_retain(&T_VVITEM, &copy);
    ms_vec_unique(&T_VVITEM, &copy);             /* outer copied */
    ms_vec **slot = (ms_vec **)DATA(copy) + 2;
    CHECK((*slot)->refcount == 2);
    ms_vec_unique(&T_VITEM, slot);              /* one inner copied */
    Item *it = (Item *)DATA(*slot) + 1;
    CHECK(it->name->refcount == 2);
    ms_vec_release(&T_STR, it->name);           /* overwrite one field */
    it->name = str("changed");
    Item *orig = (Item *)DATA(((ms_vec **)DATA(outer))[2]) + 1;
    CHECK(str_is(orig->name, "n2.1") && orig->name->refcount == 1);
    CHECK(!ms_value_eq(&T_VVITEM, &outer, &copy));
    ms_vec *cat = ms_vec_concat(&T_VVITEM, outer, copy);
    CHECK(cat->len == 10 && ((ms_vec **)DATA(outer))[0]->refcount == 4);
    ms_vec_release(&T_VVITEM, outer);
    ms_vec_release(&T_VVITEM, copy);
    ms_value_release(&T_VVITEM, &cat);

    /* A struct value holding a vector. */
    Item solo = { 7, str("solo") };
    Item solo2 = solo;
    ms_value_retain(&T_ITEM, &solo2);
    CHECK(solo.name->refcount == 2 && ms_value_eq(&T_ITEM, &solo, &solo2));
    ms_value_release(&T_ITEM, &solo);
    ms_value_release(&T_ITEM, &solo2);
}

/* A list nested 300000 deep (built iteratively, as a program can): its
 * release must not recurse once per level. */
#define DEEP 300000
static ms_vec *deep_list(int depth)
{
    ms_vec *list = NULL; /* vector<Node> */
    for (int i = 0; i < depth; i++) {
        ms_vec *next = NULL;
        Node *n = ms_vec_push(&T_VNODE, &next);
        n->v = i;
        n->kids = list;
        list = next;
    }
    return list;
}

/* The walks over values at depth 1,000,000 on a thread whose stack is
 * only 256 KiB: equality (equal, and differing at the bottom), encoding,
 * decoding and release never recurse once per level (SPEC 11). */
#define SMALL_STACK (256 * 1024)

/* The depth: $MS_TEST_DEEP when set (the sanitizer and valgrind runs ask
 * for less, to finish in time), else 1,000,000. */
static int64_t huge_deep(void)
{
    const char *e = getenv("MS_TEST_DEEP");
    return e ? atoll(e) : 1000000;
}

/* The innermost node of a deep_list (borrowed). */
static Node *deep_bottom(ms_vec *list)
{
    Node *n = (Node *)DATA(list);
    while (n->kids)
        n = (Node *)DATA(n->kids);
    return n;
}

static void *deep_walks(void *arg)
{
    (void)arg;
    int64_t depth = huge_deep();
    ms_vec *a = deep_list((int)depth), *b = deep_list((int)depth);
    CHECK(ms_value_eq(&T_VNODE, &a, &b));
    deep_bottom(b)->v = 7;
    CHECK(!ms_value_eq(&T_VNODE, &a, &b));
    ms_buf buf = { 0 };
    ms_value_encode(&T_VNODE, &a, &buf);
    CHECK(buf.len == (uint64_t)depth * 12 + 4);
    ms_reader r = { buf.data, buf.len, 0 };
    ms_vec *c = NULL;
    ms_value_decode(&T_VNODE, &r, &c);
    CHECK(r.off == r.len && ms_value_eq(&T_VNODE, &a, &c));
    CHECK(((Node *)DATA(c))->v == depth - 1 && deep_bottom(c)->v == 0);
    buf_free(&buf);
    ms_vec_release(&T_VNODE, a);
    ms_vec_release(&T_VNODE, b);
    ms_vec_release(&T_VNODE, c);
    return NULL;
}

static void test_deep_small_stack(void)
{
    pthread_attr_t attr;
    pthread_t th;
    CHECK(pthread_attr_init(&attr) == 0);
    CHECK(pthread_attr_setstacksize(&attr, SMALL_STACK) == 0);
    CHECK(pthread_create(&th, &attr, deep_walks, NULL) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    pthread_attr_destroy(&attr);
}

static void test_deep(void)
{
    ms_vec *a = deep_list(DEEP);
    ms_vec *b = deep_list(DEEP);
    CHECK(ms_value_eq(&T_VNODE, &a, &b));
    ms_vec_release(&T_VNODE, a);
    ms_value_release(&T_VNODE, &b);
    test_deep_small_stack();

    ms_vec *s = deep_list(50);
    ms_vec *t = deep_list(50);
    CHECK(ms_value_eq(&T_VNODE, &s, &t));
    CHECK(ms_value_eq(&T_VNODE, &s, &s)); /* same vector, no doubles */
    ms_vec *dn = NULL, *kid = NULL;
    ((DNode *)ms_vec_push(&T_VDNODE, &kid))->d = NAN;
    ((DNode *)ms_vec_push(&T_VDNODE, &dn))->kids = kid;
    CHECK(!ms_value_eq(&T_VDNODE, &dn, &dn)); /* a NaN inside: not equal */
    ((DNode *)DATA(kid))->d = 2.5;
    CHECK(ms_value_eq(&T_VDNODE, &dn, &dn));
    ms_vec_release(&T_VDNODE, dn);
    ((Node *)DATA(t))->v = -1;
    CHECK(!ms_value_eq(&T_VNODE, &s, &t));
    ms_vec_release(&T_VNODE, s);
    ms_vec_release(&T_VNODE, t);
}

static void test_concat(void)
{
    int64_t xs[] = { 1, 2 }, ys[] = { 3 };
    ms_vec *a = ints(2, xs), *b = ints(1, ys);
    ms_vec *c = ms_vec_concat(&T_VINT, a, b);
    CHECK(c->refcount == 1 && c->len == 3 && ((int64_t *)DATA(c))[2] == 3);
    ms_vec *d = ms_vec_concat(&T_VINT, NULL, b);
    CHECK(d != b && d->len == 1 && b->refcount == 1);
    ms_vec *e = ms_vec_concat(&T_VINT, a, NULL);
    CHECK(e != a && e->len == 2);
    CHECK(ms_vec_concat(&T_VINT, NULL, NULL) == NULL);
    ms_vec *f = ms_vec_concat(&T_VINT, c, c);
    CHECK(f->len == 6 && ((int64_t *)DATA(f))[5] == 3);
    ms_vec *g = ms_vec_concat(&T_STR, HELLO, HELLO);
    CHECK(str_is(g, "hellohello"));
    ms_vec *strs = NULL;
    *(ms_vec **)ms_vec_push(&T_VSTR, &strs) = str("x");
    ms_vec *h = ms_vec_concat(&T_VSTR, strs, strs);
    CHECK(((ms_vec **)DATA(strs))[0]->refcount == 3);
    ms_vec *all[] = { a, b, c, d, e, f, g };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ms_vec_release(&T_VINT, all[i]);
    ms_vec_release(&T_VSTR, strs);
    ms_vec_release(&T_VSTR, h);
}

static void test_eq(void)
{
    int64_t i1 = 5, i2 = 5, i3 = 6;
    CHECK(ms_value_eq(&T_INT, &i1, &i2) && !ms_value_eq(&T_INT, &i1, &i3));
    double nan = NAN, pz = 0.0, nz = -0.0, one = 1.0;
    CHECK(!ms_value_eq(&T_DOUBLE, &nan, &nan));
    CHECK(ms_value_eq(&T_DOUBLE, &pz, &nz) && !ms_value_eq(&T_DOUBLE, &pz, &one));
    uint8_t t = 1, f = 0;
    CHECK(!ms_value_eq(&T_BOOL, &t, &f) && ms_value_eq(&T_CHAR, &t, &t));
    int32_t s1 = MS_STATE_FAILED, s2 = MS_STATE_FAILED;
    CHECK(ms_value_eq(&T_JOBSTATE, &s1, &s2));
    ms_handle h1 = (ms_handle)&i1, h2 = (ms_handle)&i2, hn = NULL, hn2 = NULL;
    CHECK(!ms_value_eq(&T_JOB, &h1, &h2) && ms_value_eq(&T_JOB, &h1, &h1));
    CHECK(ms_value_eq(&T_JOB, &hn, &hn2) && !ms_value_eq(&T_JOB, &hn, &h1));

    /* Vectors of doubles: NaN differs even from itself, -0.0 == 0.0. */
    ms_vec *dv = NULL, *dw = NULL;
    *(double *)ms_vec_push(&T_VDOUBLE, &dv) = -0.0;
    *(double *)ms_vec_push(&T_VDOUBLE, &dw) = 0.0;
    CHECK(ms_value_eq(&T_VDOUBLE, &dv, &dw));
    *(double *)ms_vec_push(&T_VDOUBLE, &dv) = NAN;
    CHECK(!ms_value_eq(&T_VDOUBLE, &dv, &dv));
    CHECK(!ms_value_eq(&T_VDOUBLE, &dv, &dw)); /* lengths differ */
    ms_vec *mv = NULL;
    ((Mixed *)ms_vec_push(&T_VMIXED, &mv))->d = NAN;
    CHECK(!ms_value_eq(&T_VMIXED, &mv, &mv));
    ms_vec *vv = NULL; /* vector<vector<double>> holding dv */
    static const ms_type T_VVDOUBLE = VEC(&T_VDOUBLE);
    *(ms_vec **)ms_vec_push(&T_VVDOUBLE, &vv) = dv;
    ms_value_retain(&T_VDOUBLE, &dv);
    CHECK(!ms_value_eq(&T_VVDOUBLE, &vv, &vv));

    /* Empty is NULL; equal contents in distinct vectors are equal. */
    ms_vec *e = NULL, *z = NULL;
    CHECK(ms_value_eq(&T_VINT, &e, &z));
    int64_t xs[] = { 1, 2, 3 }, ys[] = { 1, 2, 4 };
    ms_vec *a = ints(3, xs), *b = ints(3, xs), *c = ints(3, ys);
    CHECK(ms_value_eq(&T_VINT, &a, &b) && !ms_value_eq(&T_VINT, &a, &c));
    CHECK(!ms_value_eq(&T_VINT, &a, &e));
    ms_vec *va = NULL, *vb = NULL;
    *(ms_vec **)ms_vec_push(&T_VVINT, &va) = a;
    *(ms_vec **)ms_vec_push(&T_VVINT, &vb) = b;
    CHECK(ms_value_eq(&T_VVINT, &va, &vb));
    *(ms_vec **)ms_vec_push(&T_VVINT, &vb) = NULL;
    CHECK(!ms_value_eq(&T_VVINT, &va, &vb));

    /* Structs field by field (padding ignored). */
    Mixed m1, m2;
    memset(&m1, 0xAA, sizeof m1);
    memset(&m2, 0x55, sizeof m2);
    m1.b = m2.b = 1; m1.d = 0.0; m2.d = -0.0; m1.c = m2.c = 'q';
    CHECK(ms_value_eq(&T_MIXED, &m1, &m2));
    m2.c = 'r';
    CHECK(!ms_value_eq(&T_MIXED, &m1, &m2));
    char e1 = 0, e2 = 1;
    CHECK(ms_value_eq(&T_EMPTY, &e1, &e2));
    Item i_a = { 1, str("x") }, i_b = { 1, str("x") }, i_c = { 1, str("y") };
    CHECK(ms_value_eq(&T_ITEM, &i_a, &i_b) && !ms_value_eq(&T_ITEM, &i_a, &i_c));

    ms_vec_release(&T_VDOUBLE, dv);
    ms_vec_release(&T_VDOUBLE, dw);
    ms_vec_release(&T_VMIXED, mv);
    ms_vec_release(&T_VVDOUBLE, vv);
    ms_vec_release(&T_VINT, c);
    ms_vec_release(&T_VVINT, va);
    ms_vec_release(&T_VVINT, vb);
    ms_value_release(&T_ITEM, &i_a);
    ms_value_release(&T_ITEM, &i_b);
    ms_value_release(&T_ITEM, &i_c);
}

static void test_handles(void)
{
#ifdef MS_TEST_LOCAL_STUBS
    int x, y;
    ms_vec *v = NULL;
    *(ms_handle *)ms_vec_push(&T_VJOB, &v) = (ms_handle)&x;
    *(ms_handle *)ms_vec_push(&T_VJOB, &v) = NULL;
    Watch *w = NULL;
    ms_vec *wv = NULL;
    w = ms_vec_push(&T_VWATCH, &wv);
    w->s = MS_STATE_FINISHED;
    w->h = (ms_handle)&y;
    stub_handle_count = 0;
    ms_vec *c = v;
    ms_value_retain(&T_VJOB, &c);
    ms_vec_unique(&T_VJOB, &c);
    CHECK(stub_handle_count == 1);
    ms_vec *d = ms_vec_concat(&T_VWATCH, wv, wv);
    CHECK(stub_handle_count == 3);
    ms_vec_release(&T_VJOB, c);
    ms_vec_release(&T_VWATCH, d);
    CHECK(stub_handle_count == 0);
    ms_vec_release(&T_VJOB, v);
    ms_vec_release(&T_VWATCH, wv);
    CHECK(stub_handle_count == -2); /* the two handles the vectors owned */
#else
    /* The real handle functions: only the unset handle can be used here. */
    ms_vec *v = NULL;
    ms_vec_push(&T_VJOB, &v);
    ms_vec *c = ms_vec_concat(&T_VJOB, v, v);
    CHECK(c->len == 2);
    ms_vec_release(&T_VJOB, c);
    ms_vec_release(&T_VJOB, v);
    (void)T_VWATCH;
#endif
}

static void test_strings(void)
{
    ms_vec *ab = str("ab"), *abc = str("abc"), *b = str("b"), *hi = str("\xff");
    ms_vec *e = NULL;
    CHECK(ms_string_cmp(ab, abc) < 0 && ms_string_cmp(abc, ab) > 0);
    CHECK(ms_string_cmp(abc, b) < 0 && ms_string_cmp(b, hi) < 0);
    CHECK(ms_string_cmp(e, NULL) == 0 && ms_string_cmp(e, ab) < 0 && ms_string_cmp(ab, e) > 0);
    ms_vec *ab2 = ms_string_from_bytes((const uint8_t *)"abc", 2);
    CHECK(ms_string_cmp(ab, ab2) == 0 && ab2 != ab);
    CHECK(ms_string_from_bytes((const uint8_t *)"", 0) == NULL);
    ms_vec *nul = ms_string_from_bytes((const uint8_t *)"a\0b", 3);
    ms_vec *nul2 = ms_string_from_bytes((const uint8_t *)"a\0c", 3);
    CHECK(nul->len == 3 && ms_string_cmp(nul, nul2) < 0);

    struct { ms_vec *v; const char *want; } cases[] = {
        { ms_str_int(0), "0" },
        { ms_str_int(-42), "-42" },
        { ms_str_int(INT64_MIN), "-9223372036854775808" },
        { ms_str_int(INT64_MAX), "9223372036854775807" },
        { ms_str_double(1.0), "1" },
        { ms_str_double(0.1 + 0.2), "0.30000000000000004" },
        { ms_str_double(1e21), "1e+21" },
        { ms_str_double(1234567.0), "1234567" },
        { ms_str_double(-0.0), "-0" },
        { ms_str_double(-INFINITY), "-inf" },
        { ms_str_double(NAN), "nan" },
        { ms_str_bool(1), "true" },
        { ms_str_bool(0), "false" },
        { ms_str_char('z'), "z" },
        { ms_str_jobstate(MS_STATE_RUNNING), "running" },
        { ms_str_jobstate(MS_STATE_FINISHED), "finished" },
        { ms_str_jobstate(MS_STATE_FAILED), "failed" },
        { ms_str_jobstate(MS_STATE_CANCELLED), "cancelled" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!str_is(cases[i].v, cases[i].want)) {
            fprintf(stderr, "str case %zu: want '%s'\n", i, cases[i].want);
            failures++;
        }
        if (cases[i].v)
            CHECK(cases[i].v->refcount == 1);
        ms_vec_release(&T_STR, cases[i].v);
    }
    ms_vec *c0 = ms_str_char(0);
    CHECK(c0 && c0->len == 1 && DATA(c0)[0] == 0);
    ms_vec *all[] = { ab, abc, b, hi, ab2, nul, nul2, c0 };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ms_vec_release(&T_STR, all[i]);
}

/* print_string writes the bytes (NUL included) and a newline. */
static void test_print_string(void)
{
    int fds[2];
    if (pipe(fds) != 0)
        exit(2);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 1);
        ms_vec *s = ms_string_from_bytes((const uint8_t *)"a\0b", 3);
        ms_print_string(s);
        ms_print_string(NULL);
        ms_print_string(HELLO);
        fflush(stdout);
        ms_vec_release(&T_STR, s);
        _exit(0);
    }
    close(fds[1]);
    char out[64];
    size_t n = 0;
    ssize_t k;
    while ((k = read(fds[0], out + n, sizeof out - n)) > 0)
        n += (size_t)k;
    close(fds[0]);
    waitpid(pid, NULL, 0);
    CHECK(n == 11 && memcmp(out, "a\0b\n\nhello\n", 11) == 0);
}

static void case_index(void) { ms_index_error(7, 3, 12, 9); }
static void case_index_neg(void) { ms_index_error(-1, 0, 1, 1); }
static void case_huge_new(void) { ms_vec_new(&T_VINT, INT64_MAX / 4); }
static void case_too_long(void)
{
    ms_vec *v = ms_vec_new(&T_VEMPTY, (int64_t)UINT32_MAX + 1); /* header only */
    ms_buf b = { 0 };
    ms_value_encode(&T_VEMPTY, &v, &b);
}
static void case_bad_jobstate(void) { ms_str_jobstate(9); }

static void test_errors(void)
{
    expect_error("index", ":12:9: runtime error: index 7 out of bounds for length 3\n");
    expect_error("index_neg", ":1:1: runtime error: index -1 out of bounds for length 0\n");
    expect_error("huge_new", "runtime error: out of memory");
    expect_error("too_long", "runtime error: vector too long to send");
    expect_error("bad_jobstate", "runtime error: internal error");
}

/* ----------------------------------------------------------- codec */

static int bytes_are(const ms_buf *b, const uint8_t *want, size_t n)
{
    if (b->len != n || memcmp(b->data, want, n) != 0) {
        fprintf(stderr, "encoded %zu bytes:", (size_t)b->len);
        for (uint64_t i = 0; i < b->len; i++)
            fprintf(stderr, " %02x", b->data[i]);
        fprintf(stderr, "\n");
        return 0;
    }
    return 1;
}

static void test_codec_layout(void)
{
    /* vector<vector<Item>>: [[{1,"ab"}, {-2,""}], []] */
    ms_vec *inner = NULL, *outer = NULL;
    Item *it = ms_vec_push(&T_VITEM, &inner);
    it->id = 1;
    it->name = str("ab");
    it = ms_vec_push(&T_VITEM, &inner);
    it->id = -2;
    *(ms_vec **)ms_vec_push(&T_VVITEM, &outer) = inner;
    ms_vec_push(&T_VVITEM, &outer);
    static const uint8_t want[] = {
        2, 0, 0, 0,                          /* outer count */
        2, 0, 0, 0,                          /* inner count */
        1, 0, 0, 0, 0, 0, 0, 0,              /* id 1 */
        2, 0, 0, 0, 'a', 'b',                /* "ab" */
        0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* id -2 */
        0, 0, 0, 0,                          /* "" */
        0, 0, 0, 0,                          /* [] */
    };
    ms_buf b = { 0 };
    ms_value_encode(&T_VVITEM, &outer, &b);
    CHECK(bytes_are(&b, want, sizeof want));
    ms_reader r = { b.data, b.len, 0 };
    ms_vec *back = (ms_vec *)0x1; /* overwritten, not released */
    ms_value_decode(&T_VVITEM, &r, &back);
    CHECK(r.off == r.len && back != outer && back->refcount == 1);
    CHECK(ms_value_eq(&T_VVITEM, &outer, &back));
    ms_vec_release(&T_VVITEM, back);
    ms_vec_release(&T_VVITEM, outer);
    buf_free(&b);

    /* Mixed {true, 1.5, 'x'}, then an empty struct, then vector<bool>. */
    Mixed m = { 1, 1.5, 'x' };
    char empty = 0;
    ms_vec *bools = NULL;
    *(uint8_t *)ms_vec_push(&T_VBOOL, &bools) = 1;
    ms_vec_push(&T_VBOOL, &bools);
    ms_value_encode(&T_MIXED, &m, &b);
    ms_value_encode(&T_EMPTY, &empty, &b);
    ms_value_encode(&T_VBOOL, &bools, &b);
    static const uint8_t want2[] = {
        1, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 'x',  /* 1.5 = 0x3FF8000000000000 */
        2, 0, 0, 0, 1, 0,
    };
    CHECK(bytes_are(&b, want2, sizeof want2));
    r = (ms_reader){ b.data, b.len, 0 };
    Mixed m2;
    ms_vec *bools2;
    ms_value_decode(&T_MIXED, &r, &m2);
    ms_value_decode(&T_EMPTY, &r, &empty);
    ms_value_decode(&T_VBOOL, &r, &bools2);
    CHECK(r.off == r.len && ms_value_eq(&T_MIXED, &m, &m2) && ms_value_eq(&T_VBOOL, &bools, &bools2));
    ms_vec_release(&T_VBOOL, bools);
    ms_vec_release(&T_VBOOL, bools2);
    buf_free(&b);

    /* Doubles keep their bits (NaN payload, -0.0) and ints their range. */
    ms_vec *dv = NULL;
    double ds[] = { -0.0, INFINITY, 5e-324, -1.0 };
    for (int i = 0; i < 4; i++)
        *(double *)ms_vec_push(&T_VDOUBLE, &dv) = ds[i];
    ms_value_encode(&T_VDOUBLE, &dv, &b);
    CHECK(b.len == 4 + 32 && b.data[4 + 7] == 0x80 && b.data[4 + 8 + 7] == 0x7f);
    r = (ms_reader){ b.data, b.len, 0 };
    ms_vec *dv2;
    ms_value_decode(&T_VDOUBLE, &r, &dv2);
    CHECK(dv2->len == 4 && memcmp(DATA(dv), DATA(dv2), 32) == 0);
    ms_vec_release(&T_VDOUBLE, dv);
    ms_vec_release(&T_VDOUBLE, dv2);
    buf_free(&b);

    /* Vectors of scalars are copied whole: a big vector<int> after other
     * bytes, little-endian on the wire, decodes to the same elements. */
    ms_buf_put_u8(&b, 0xaa);
    int64_t nbig = 1 << 20;
    ms_vec *iv = ms_vec_new(&T_VINT, nbig);
    for (int64_t i = 0; i < nbig; i++)
        ((int64_t *)DATA(iv))[i] = i * 0x10001 - 7;
    ms_value_encode(&T_VINT, &iv, &b);
    CHECK(b.len == 1 + 4 + 8 * (uint64_t)nbig && b.data[0] == 0xaa);
    CHECK(b.data[1] == 0 && b.data[3] == 0x10 && b.data[4] == 0);
    CHECK(b.data[5] == 0xf9 && b.data[12] == 0xff);     /* -7 */
    CHECK(b.data[5 + 8] == 0xfa && b.data[5 + 9] == 0xff && b.data[5 + 10] == 0x00); /* 0x10001 - 7 */
    r = (ms_reader){ b.data, b.len, 1 };
    ms_vec *iv2;
    ms_value_decode(&T_VINT, &r, &iv2);
    CHECK(r.off == r.len && ms_value_eq(&T_VINT, &iv, &iv2));
    ms_vec_release(&T_VINT, iv);
    ms_vec_release(&T_VINT, iv2);
    buf_free(&b);
    /* vector<char> and vector<bool> too; a bool byte other than 0/1
     * decodes to 1. */
    ms_vec *cv = str("hello, world");
    ms_value_encode(&T_STR, &cv, &b);
    static const uint8_t wantc[] = { 12, 0, 0, 0, 'h', 'e', 'l', 'l', 'o', ',', ' ', 'w', 'o', 'r', 'l', 'd' };
    CHECK(bytes_are(&b, wantc, sizeof wantc));
    r = (ms_reader){ b.data, b.len, 0 };
    ms_vec *cv2;
    ms_value_decode(&T_STR, &r, &cv2);
    CHECK(r.off == r.len && ms_value_eq(&T_STR, &cv, &cv2));
    ms_vec_release(&T_STR, cv);
    ms_vec_release(&T_STR, cv2);
    buf_free(&b);
    static const uint8_t odd_bools[] = { 4, 0, 0, 0, 1, 0, 5, 1 };
    r = (ms_reader){ odd_bools, sizeof odd_bools, 0 };
    ms_vec *bv;
    ms_value_decode(&T_VBOOL, &r, &bv);
    CHECK(r.off == r.len && bv && bv->len == 4 && DATA(bv)[0] == 1 && DATA(bv)[1] == 0 &&
          DATA(bv)[2] == 1 && DATA(bv)[3] == 1);
    ms_vec_release(&T_VBOOL, bv);

    /* vector<Empty> of 3: a count, nothing else. */
    ms_vec *ev = ms_vec_new(&T_VEMPTY, 3);
    ms_value_encode(&T_VEMPTY, &ev, &b);
    static const uint8_t want3[] = { 3, 0, 0, 0 };
    CHECK(bytes_are(&b, want3, sizeof want3));
    r = (ms_reader){ b.data, b.len, 0 };
    ms_vec *ev2;
    ms_value_decode(&T_VEMPTY, &r, &ev2);
    CHECK(ev2 && ev2->len == 3);
    ms_vec_release(&T_VEMPTY, ev);
    ms_vec_release(&T_VEMPTY, ev2);
    buf_free(&b);

    /* A decoded recursive value round-trips. */
    ms_vec *tree = deep_list(20);
    ms_value_encode(&T_VNODE, &tree, &b);
    CHECK(b.len == 20 * 12 + 4);
    r = (ms_reader){ b.data, b.len, 0 };
    ms_vec *tree2;
    ms_value_decode(&T_VNODE, &r, &tree2);
    CHECK(r.off == r.len && ms_value_eq(&T_VNODE, &tree, &tree2));
    ms_vec_release(&T_VNODE, tree);
    ms_vec_release(&T_VNODE, tree2);
    buf_free(&b);
}

static void test_codec_hostile(void)
{
    /* Counts far beyond the bytes present: nothing allocated, reader
     * exhausted, the vector empty. */
    static const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8 };
    const ms_type *types[] = { &T_VINT, &T_STR, &T_VVITEM, &T_VNODE, &T_VMIXED };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        ms_reader r = { huge, sizeof huge, 0 };
        ms_vec *v = (ms_vec *)0x1;
        ms_value_decode(types[i], &r, &v);
        CHECK(v == NULL && r.off == r.len);
    }
    /* 2 ints claimed, 1 present. */
    static const uint8_t short_ints[] = { 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0 };
    ms_reader r = { short_ints, sizeof short_ints, 0 };
    ms_vec *v;
    ms_value_decode(&T_VINT, &r, &v);
    CHECK(v == NULL);
    /* Zero-size elements take no bytes and no memory: any count is
     * decoded as it is (as the validator accepts it), and what follows is
     * read on from the right place. */
    static const uint8_t e_more[] = { 1, 0, 0, 1, 9 };
    r = (ms_reader){ e_more, sizeof e_more, 0 };
    ms_value_decode(&T_VEMPTY, &r, &v);
    CHECK(v && v->len == (1 << 24) + 1 && r.off == 4);
    ms_vec_release(&T_VEMPTY, v);
    r = (ms_reader){ huge, sizeof huge, 0 };
    ms_value_decode(&T_VEMPTY, &r, &v);
    CHECK(v && v->len == 0xffffffffLL && r.off == 4);
    ms_vec_release(&T_VEMPTY, v);
    /* A bool byte other than 0/1 still decodes to a bool. */
    static const uint8_t bad_bool[] = { 7, 0, 0, 0, 0, 0, 0, 0, 0, 'c' };
    r = (ms_reader){ bad_bool, sizeof bad_bool, 0 };
    Mixed m;
    ms_value_decode(&T_MIXED, &r, &m);
    CHECK(m.b == 1 && m.d == 0.0 && m.c == 'c');

    /* Every prefix of a valid encoding, and random bytes, decode safely
     * (valgrind checks reads and leaks). */
    ms_vec *outer = NULL;
    for (int i = 0; i < 3; i++) {
        ms_vec *inner = NULL;
        for (int j = 0; j <= i; j++) {
            Item *it = ms_vec_push(&T_VITEM, &inner);
            it->id = j;
            it->name = str("name");
        }
        *(ms_vec **)ms_vec_push(&T_VVITEM, &outer) = inner;
    }
    ms_buf b = { 0 };
    ms_value_encode(&T_VVITEM, &outer, &b);
    for (uint64_t n = 0; n < b.len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.data, n);
        r = (ms_reader){ copy, n, 0 };
        ms_value_decode(&T_VVITEM, &r, &v);
        CHECK(r.off <= r.len);
        ms_vec_release(&T_VVITEM, v);
        free(copy);
    }
    buf_free(&b);
    ms_vec_release(&T_VVITEM, outer);

    srand(12345);
    uint8_t junk[64];
    for (int round = 0; round < 3000; round++) {
        size_t n = (size_t)(rand() % 64);
        for (size_t i = 0; i < n; i++) {
            int x = rand();
            junk[i] = (uint8_t)(x % 7 == 0 ? 0 : x % 5 == 0 ? x % 4 : x >> 8);
        }
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, junk, n);
        const ms_type *t = types[round % (sizeof types / sizeof types[0])];
        r = (ms_reader){ copy, n, 0 };
        ms_value_decode(t, &r, &v);
        CHECK(r.off <= r.len);
        ms_vec_release(t, v);
        free(copy);
    }
}

#ifndef MS_VALUES_UNTRACKED /* the master's build of values.c tracks nothing */
/* ====================================================== tracking
 *
 * The slave turns on vector tracking around each job (values.h) so that a
 * job abandoned by a longjmp does not leak its vectors. */

#define NODE(v) ((msv_node *)(v) - 1)

/* The number of vectors in the list v (borrowed) is linked into, walking
 * the whole circle and checking that every neighbour points back; -1 when
 * v is not linked, -2 when the list is broken. */
static int64_t list_len_via(const ms_vec *v)
{
    msv_node *start = NODE(v), *p = start;
    if (!start->prev)
        return start->next ? -2 : -1;
    int64_t n = 0;
    do {
        if (p->next->prev != p || p->prev->next != p)
            return -2;
        p = p->next;
        if (++n > 100000000)
            return -2;
    } while (p != start);
    return n - 1; /* the sentinel is not a vector */
}

static int unlinked(const ms_vec *v)
{
    return NODE(v)->prev == NULL && NODE(v)->next == NULL;
}

static void test_track_links(void)
{
    CHECK(ms_values_track_end(0) == 0); /* off: nothing to end */
    ms_vec *off = str("made while off");
    CHECK(unlinked(off));

    ms_values_track_begin();
    ms_vec *a = str("abc");
    CHECK(list_len_via(a) == 1);
    ms_vec *b = ms_vec_new(&T_VINT, 3);
    ms_vec *c = ms_str_int(42);
    ms_vec *d = ms_vec_concat(&T_STR, a, c);
    CHECK(str_is(d, "abc42") && list_len_via(a) == 4 && list_len_via(d) == 4);
    /* Copy-on-write links the copy. */
    ms_vec *e = a;
    ms_value_retain(&T_STR, &e);
    *DATA(ms_vec_unique(&T_STR, &e)) = 'x';
    CHECK(e != a && str_is(e, "xbc") && list_len_via(a) == 5);
    /* Releasing unlinks, from the middle and from either end. */
    ms_vec_release(&T_STR, d);
    CHECK(list_len_via(a) == 4 && list_len_via(e) == 4);
    ms_vec_release(&T_STR, e);
    CHECK(list_len_via(a) == 3);
    /* A vector made while tracking was off leaves the list alone. */
    ms_vec_release(&T_STR, off);
    CHECK(list_len_via(a) == 3);
    /* Nested values die through the dead list: each one is unlinked. */
    ms_vec *vs = NULL;
    for (int i = 0; i < 3; i++)
        *(ms_vec **)ms_vec_push(&T_VSTR, &vs) = ms_str_int(i);
    CHECK(list_len_via(a) == 7);
    ms_buf buf = { 0 };
    ms_value_encode(&T_VSTR, &vs, &buf);
    ms_vec *decoded = NULL;
    ms_reader r = { buf.data, buf.len, 0 };
    ms_value_decode(&T_VSTR, &r, &decoded);
    buf_free(&buf);
    CHECK(ms_value_eq(&T_VSTR, &vs, &decoded) && list_len_via(a) == 11);
    ms_vec_release(&T_VSTR, vs);
    ms_value_release(&T_VSTR, &decoded);
    CHECK(list_len_via(a) == 3 && list_len_via(b) == 3);

    /* Ending without free_all unlinks the survivors, which stay valid and
     * are freed later as usual. */
    CHECK(ms_values_track_end(0) == 3);
    CHECK(unlinked(a) && unlinked(b) && unlinked(c));
    CHECK(str_is(a, "abc") && str_is(c, "42") && b->len == 3);
    ms_vec *after = str("after");
    CHECK(unlinked(after));
    ms_vec_release(&T_STR, a);
    ms_vec_release(&T_VINT, b);
    ms_vec_release(&T_STR, c);
    ms_vec_release(&T_STR, after);

    /* Beginning again while on starts an empty list, unlinking the old. */
    ms_values_track_begin();
    ms_vec *old = str("old");
    ms_values_track_begin();
    CHECK(unlinked(old));
    ms_vec *fresh = str("fresh");
    CHECK(list_len_via(fresh) == 1);
    ms_vec_release(&T_STR, old);
    ms_vec_release(&T_STR, fresh);
    CHECK(ms_values_track_end(0) == 0);
}

/* Growth by realloc moves vectors: each one is relinked at its new
 * address, with neighbours that move too. */
static void test_track_realloc(void)
{
    ms_values_track_begin();
    ms_vec *w = NULL, *x = NULL, *s = str("ab");
    int ok = 1;
    for (int64_t i = 0; i < 20000; i++) {
        *(int64_t *)ms_vec_push(&T_VINT, &w) = i;
        if (i % 3 == 0)
            *(uint8_t *)ms_vec_push(&T_STR, &x) = (uint8_t)('a' + i % 26);
        ok &= list_len_via(w) == (x ? 3 : 2);
    }
    CHECK(ok && w->len == 20000 && ((int64_t *)DATA(w))[19999] == 19999);
    for (int i = 0; i < 12; i++) { /* s += s: grows in place */
        ms_vec_append_all(&T_STR, &s, s);
        ok &= list_len_via(s) == 3 && list_len_via(x) == 3;
    }
    CHECK(ok && s->len == 2 << 12 && DATA(s)[s->len - 1] == 'b');
    ms_vec_append_all(&T_STR, &x, s); /* x += s: grows past doubling */
    CHECK(list_len_via(x) == 3 && list_len_via(w) == 3);
    ms_vec_release(&T_VINT, w);
    ms_vec_release(&T_STR, x);
    ms_vec_release(&T_STR, s);
    CHECK(ms_values_track_end(0) == 0);

    /* A vector made before tracking, grown while tracking, stays out. */
    ms_vec *pre = NULL;
    *(int64_t *)ms_vec_push(&T_VINT, &pre) = 1;
    ms_values_track_begin();
    for (int i = 0; i < 100; i++)
        *(int64_t *)ms_vec_push(&T_VINT, &pre) = i;
    CHECK(unlinked(pre) && ms_values_track_end(1) == 0);
    ms_vec_release(&T_VINT, pre);
}

/* ---- jobs: run like a slave worker runs them */

static ms_vec *job_kept; /* a vector a job leaves behind on purpose */

/* Runs body with tracking on. Normal finish: returns what
 * ms_values_track_end(0) counts. Failure (a longjmp to job_jb): *failed is
 * set and the job's vectors are freed with ms_values_track_end(1), whose
 * count is returned. */
static int64_t run_tracked(void (*body)(void), int *failed)
{
    ms_values_track_begin();
    job_armed = 1;
    if (setjmp(job_jb) == 0) {
        body();
        job_armed = 0;
        *failed = 0;
        return ms_values_track_end(0);
    }
    *failed = 1;
#ifdef MS_TEST_LOCAL_STUBS
    stub_stack_limit = 0;
#endif
    return ms_values_track_end(1);
}

/* Fails the running job: a real runtime error in the stub build, where
 * ms_runtime_error longjmps to the job; with the real library (a master,
 * whose runtime errors exit) the same longjmp, done directly. */
static _Noreturn void fail_job(void)
{
#ifdef MS_TEST_LOCAL_STUBS
    ms_index_error(5, 2, 1, 1);
#else
    job_armed = 0;
    longjmp(job_jb, 1);
#endif
}

/* Builds values of many shapes, all owned by the job's "frames" (locals
 * the longjmp abandons), some in the middle of growing. */
static void build_values(ms_vec **keep)
{
    ms_vec *grid = NULL; /* vector<vector<int>> */
    for (int i = 0; i < 40; i++) {
        ms_vec *row = NULL;
        for (int j = 0; j < 40; j++)
            *(int64_t *)ms_vec_push(&T_VINT, &row) = i * j;
        *(ms_vec **)ms_vec_push(&T_VVINT, &grid) = row;
    }
    ms_vec *items = NULL; /* vector<Item>, shared strings */
    ms_vec *name = str("shared");
    for (int i = 0; i < 30; i++) {
        Item *it = ms_vec_push(&T_VITEM, &items);
        it->id = i;
        it->name = i % 2 ? HELLO : name;
        if (i % 2 == 0)
            ms_value_retain(&T_STR, &name);
    }
    ms_vec *text = NULL;
    for (int i = 0; i < 200; i++) {
        ms_vec *part = ms_str_double(i * 0.5);
        ms_vec_append_all(&T_STR, &text, part);
        ms_vec_release(&T_STR, part);
    }
    ms_buf buf = { 0 };
    ms_value_encode(&T_VVINT, &grid, &buf);
    ms_reader r = { buf.data, buf.len, 0 };
    ms_vec *copy = NULL;
    ms_value_decode(&T_VVINT, &r, &copy);
    buf_free(&buf);
    ms_vec *shared = grid; /* a second reference: refcount 2 */
    ms_value_retain(&T_VVINT, &shared);
    ms_vec *deep = deep_list(1000);
    keep[0] = grid, keep[1] = items, keep[2] = name, keep[3] = text;
    keep[4] = copy, keep[5] = shared, keep[6] = deep;
}

static void job_fails_index(void)
{
    ms_vec *mine[7];
    build_values(mine);
    fail_job();
}

static void job_finishes(void)
{
    ms_vec *mine[7];
    build_values(mine);
    ms_vec_release(&T_VVINT, mine[0]);
    ms_vec_release(&T_VITEM, mine[1]);
    ms_vec_release(&T_STR, mine[2]);
    ms_vec_release(&T_STR, mine[3]);
    ms_vec_release(&T_VVINT, mine[4]);
    ms_vec_release(&T_VVINT, mine[5]);
    ms_vec_release(&T_VNODE, mine[6]);
}

static void job_keeps_one(void)
{
    job_finishes();
    job_kept = str("kept");
}

#ifdef MS_TEST_LOCAL_STUBS
/* Out of memory raised inside the runtime, after the job built values. */
static void job_fails_oom(void)
{
    ms_vec *mine[7];
    build_values(mine);
    ms_vec_new(&T_VINT, INT64_MAX / 4);
}

static uint8_t *deep_bytes;
static uint64_t deep_len;

/* struct Bad { vector<struct Bad> kids; vector<struct Handle> hs; } and
 * struct Handle { job<int> h; }: decoding a Bad fails ("not
 * serializable") at the first non-empty hs, which comes after every level
 * of kids, so the levels decoded so far are allocated and stored only in
 * each other when the job is abandoned. */
static const ms_type *const HANDLE_F[] = { &T_JOB };
static const uint32_t HANDLE_O[] = { 0 };
static const ms_type T_HANDLE = { .kind = MS_T_STRUCT, .size = 8, .has_refs = 1,
    .nfields = 1, .fields = HANDLE_F, .offsets = HANDLE_O, .name = "Handle" };
static const ms_type T_VHANDLE = VEC(&T_HANDLE);
static const ms_type T_VBAD;
static const ms_type *const BAD_F[] = { &T_VBAD, &T_VHANDLE };
static const uint32_t BAD_O[] = { 0, 8 };
static const ms_type T_BAD = { .kind = MS_T_STRUCT, .size = 16, .has_refs = 1,
    .nfields = 2, .fields = BAD_F, .offsets = BAD_O, .name = "Bad" };
static const ms_type T_VBAD = VEC(&T_BAD);

static void job_fails_decode(void)
{
    ms_vec *v = NULL;
    ms_reader r = { deep_bytes, deep_len, 0 };
    ms_value_decode(&T_VBAD, &r, &v);
}
#endif

static void test_track_jobs(void)
{
    int failed;
    int64_t n = run_tracked(job_fails_index, &failed);
    /* grid 41, items 1, name 1, text 1, copy 41, deep 1000 (shared is
     * grid); HELLO is never counted. */
    CHECK(failed && n == 41 + 1 + 1 + 1 + 41 + 1000);
    CHECK(LIT_HELLO.h.refcount == MS_RC_IMMORTAL && str_is(HELLO, "hello"));
    ms_vec *after = str("after");
    CHECK(unlinked(after)); /* tracking is off again */
    ms_vec_release(&T_STR, after);

    n = run_tracked(job_finishes, &failed);
    CHECK(!failed && n == 0);
    n = run_tracked(job_keeps_one, &failed);
    CHECK(!failed && n == 1 && unlinked(job_kept) && str_is(job_kept, "kept"));
    ms_vec_release(&T_STR, job_kept);

    /* Many failing jobs in a row: each one's vectors are freed (valgrind
     * would report any of them as definitely lost). */
    int all = 1;
    for (int i = 0; i < 20; i++)
        all &= run_tracked(job_fails_index, &failed) == 1085 && failed;
    CHECK(all);
#ifdef MS_TEST_LOCAL_STUBS
    n = run_tracked(job_fails_oom, &failed);
    CHECK(failed && n == 1085);

    /* A vector of one Bad, 3000 levels of one kid each, the last with no
     * kids and one Handle. */
    ms_buf buf = { 0 };
    for (int i = 0; i < 3000; i++)
        ms_buf_put_u32(&buf, 1);
    ms_buf_put_u32(&buf, 0);
    ms_buf_put_u32(&buf, 1);
    deep_bytes = buf.data, deep_len = buf.len;
    n = run_tracked(job_fails_decode, &failed);
    CHECK(failed && n == 3000 + 1); /* the levels and the walk's frames */
    buf_free(&buf);
#endif
}

/* Immortal vectors are never linked, freed or written, even by free_all. */
static void test_track_immortal(void)
{
    ms_values_track_begin();
    ms_vec *h = HELLO;
    ms_value_retain(&T_STR, &h);
    ms_vec *h2 = HELLO;
    *(uint8_t *)ms_vec_push(&T_STR, &h2) = '!'; /* a linked copy */
    ms_vec *h3 = NULL;
    ms_vec_append_all(&T_STR, &h3, HELLO);      /* shares HELLO */
    CHECK(h3 == HELLO);
    ms_vec_append_all(&T_STR, &h3, HELLO);      /* a linked copy */
    ms_vec *list = NULL;
    *(ms_vec **)ms_vec_push(&T_VSTR, &list) = HELLO;
    ms_vec_release(&T_STR, HELLO);
    CHECK(str_is(h2, "hello!") && str_is(h3, "hellohello"));
    CHECK(list_len_via(h2) == 3);
    CHECK(ms_values_track_end(1) == 3);
    CHECK(LIT_HELLO.h.refcount == MS_RC_IMMORTAL && LIT_HELLO.h.len == 5 &&
          str_is(HELLO, "hello"));
}

#endif

static const struct { const char *name; void (*run)(void); } CASES[] = {
    { "index", case_index }, { "index_neg", case_index_neg },
    { "huge_new", case_huge_new }, { "too_long", case_too_long },
    { "bad_jobstate", case_bad_jobstate },
};

/* Runs every test, or only the error case named by $MS_TEST_CASE (which
 * is expected not to return). Returns the number of failed checks. */
static int run_tests(void)
{
    const char *c = getenv("MS_TEST_CASE");
    if (c) {
        for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
            if (strcmp(CASES[i].name, c) == 0)
                CASES[i].run();
        fprintf(stderr, "error case %s returned\n", c);
        _exit(99);
    }
    test_new_and_push();
    test_copy_on_write();
    test_immortal();
    test_nested_release();
    test_deep();
    test_concat();
    test_eq();
    test_handles();
    test_strings();
    test_print_string();
    test_errors();
    test_codec_layout();
    test_codec_hostile();
#ifndef MS_VALUES_UNTRACKED
    test_track_links();
    test_track_realloc();
    test_track_jobs();
    test_track_immortal();
#endif
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return failures;
    }
    printf("all value runtime tests passed\n");
    return 0;
}

#ifdef MS_TEST_LOCAL_STUBS
int main(int argc, char **argv)
{
    (void)argc;
    self_path = getenv("MS_TEST_SELF") ? getenv("MS_TEST_SELF") : argv[0];
    return run_tests() ? 1 : 0;
}
#else
/* The master block of this "program": the library's main() calls it. */
void ms_master_main(void)
{
    self_path = getenv("MS_TEST_SELF") ? getenv("MS_TEST_SELF") : "/proc/self/exe";
    if (run_tests())
        ms_runtime_error(0, 0, "value runtime checks failed");
}
#endif
