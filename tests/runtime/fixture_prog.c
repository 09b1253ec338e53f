/* fixture_prog.c — a hand-written stand-in for a compiled M/s program
 * (ms_abi.h part A), used by test_runtime.py to test the runtime without
 * the compiler. FIXTURE_MODE (environment) picks what the master block
 * does; -DOTHER_PROGRAM builds a program whose job table differs, so its
 * slave must be refused by this program's master. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ms_abi.h"

const char ms_program_source[] = "prog.ms";

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* job int add(int a, int b) */
static void run_add(ms_reader *args, ms_buf *result)
{
    int64_t a = ms_read_i64(args), b = ms_read_i64(args);
    ms_buf_put_i64(result, a + b);
}

/* job int divide(int a, int b): a runtime error at 4:12 when b is 0 */
static void run_divide(ms_reader *args, ms_buf *result)
{
    int64_t a = ms_read_i64(args), b = ms_read_i64(args);
    if (b == 0)
        ms_runtime_error(4, 12, "division by zero");
    ms_buf_put_i64(result, a / b);
}

/* job int spin(int ms): sleeps in slices, stopping if cancelled */
static void run_spin(ms_reader *args, ms_buf *result)
{
    int64_t ms = ms_read_i64(args);
    for (int64_t t = 0; t < ms; t += 10) {
        ms_cancel_point();
        sleep_ms(10);
    }
    ms_buf_put_i64(result, ms);
}

/* job double sum(vector<double> xs) */
static void run_sum(ms_reader *args, ms_buf *result)
{
    uint32_t n = ms_read_u32(args);
    double s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += ms_read_f64(args);
    ms_buf_put_f64(result, s);
}

/* job bool all(vector<bool> xs) */
static void run_all(ms_reader *args, ms_buf *result)
{
    uint32_t n = ms_read_u32(args);
    uint8_t all = 1;
    for (uint32_t i = 0; i < n; i++)
        all &= ms_read_u8(args);
    ms_buf_put_u8(result, all);
}

/* int depth(int n): recursion with the stack check compiled code does */
static int64_t depth(int64_t n)
{
    volatile int64_t frame[32];
    frame[0] = 0;
    if ((uintptr_t)__builtin_frame_address(0) < *ms_stack_limit_ptr())
        ms_runtime_error(9, 16, "stack overflow");
    if (n > 0)
        frame[0] = depth(n - 1) + 1; /* a volatile store: not a tail call */
    return frame[0];
}

/* job int deep(int n) */
static void run_deep(ms_reader *args, ms_buf *result)
{
    ms_buf_put_i64(result, depth(ms_read_i64(args)));
}

/* job int announce(int ms): says which slave runs it, then sleeps */
static void run_announce(ms_reader *args, ms_buf *result)
{
    int64_t ms = ms_read_i64(args);
    printf("announce running in pid %d\n", (int)getpid());
    fflush(stdout);
    sleep_ms(ms);
    ms_buf_put_i64(result, 1);
}

/* Recursion without the stack check: only the SIGSEGV handler sees it. */
static int64_t smash(int64_t n)
{
    volatile int64_t frame[64];
    frame[0] = n;
    if (n > 0)
        frame[1] = smash(n - 1) + 1;
    return frame[1] + frame[0];
}

/* job int smash(int n) */
static void run_smash(ms_reader *args, ms_buf *result)
{
    ms_buf_put_i64(result, smash(ms_read_i64(args)));
}

/* job void nothing() */
static void run_nothing(ms_reader *args, ms_buf *result)
{
    (void)args;
    (void)result;
}

const ms_job_entry ms_job_table[] = {
    {"add", "ii", "i", run_add},
    {"divide", "ii", "i", run_divide},
    {"spin", "i", "i", run_spin},
#ifdef OTHER_PROGRAM
    {"sum", "vi", "d", run_sum},
#else
    {"sum", "vd", "d", run_sum},
#endif
    {"all", "vb", "b", run_all},
    {"deep", "i", "i", run_deep},
    {"announce", "i", "i", run_announce},
    {"nothing", "", "", run_nothing},
    {"smash", "i", "i", run_smash},
};
const uint32_t ms_job_count = sizeof ms_job_table / sizeof ms_job_table[0];

enum { ADD = 1, DIVIDE, SPIN, SUM, ALL, DEEP, ANNOUNCE, NOTHING, SMASH };

static ms_handle start2(uint32_t ordinal, int64_t a, int64_t b)
{
    ms_buf *args = ms_args_new();
    ms_buf_put_i64(args, a);
    ms_buf_put_i64(args, b);
    return ms_start_job(ordinal, args);
}

static ms_handle start1(uint32_t ordinal, int64_t a)
{
    ms_buf *args = ms_args_new();
    ms_buf_put_i64(args, a);
    return ms_start_job(ordinal, args);
}

static int64_t get_int(ms_handle h, int line)
{
    ms_reader r;
    ms_reap_job(h, &r, line, 5);
    return ms_read_i64(&r);
}

static void mode_basic(void)
{
    ms_handle h = start2(ADD, 2, 40);
    ms_print_int(get_int(h, 20));
    ms_print_jobstate(ms_job_state(h, 21, 5));
    ms_handle_release(h);

    ms_buf *args = ms_args_new();
    ms_buf_put_u32(args, 3);
    ms_buf_put_f64(args, 0.1);
    ms_buf_put_f64(args, 0.2);
    ms_buf_put_f64(args, 1e21);
    h = ms_start_job(SUM, args);
    ms_reader r;
    ms_reap_job(h, &r, 22, 5);
    ms_print_double(ms_read_f64(&r));
    ms_handle_release(h);

    args = ms_args_new();
    ms_buf_put_u32(args, 2);
    ms_buf_put_u8(args, 1);
    ms_buf_put_u8(args, 0);
    h = ms_start_job(ALL, args);
    ms_reap_job(h, &r, 23, 5);
    ms_print_bool((int8_t)ms_read_u8(&r));
    ms_handle_release(h);

    h = ms_start_job(NOTHING, ms_args_new());
    ms_reap_job(h, &r, 24, 5);
    ms_print_int((int64_t)r.len);
    ms_handle_release(h);

    /* Many at once, results in order. */
    enum { N = 200 };
    ms_handle hs[N];
    for (int i = 0; i < N; i++)
        hs[i] = start2(ADD, i, 1000);
    int64_t total = 0;
    for (int i = 0; i < N; i++) {
        total += get_int(hs[i], 25);
        ms_handle_release(hs[i]);
    }
    ms_print_int(total);
    ms_print_char('x');
    double ds[] = {1.0, 100.0, 0.1, 0.1 + 0.2, 1234567.0, 1e7, 1e21, -0.0,
                   1.0 / 0.0, -1.0 / 0.0, 0.0 / 0.0, 5e-324, 1.7976931348623157e308,
                   123456.7, 1.5e-7};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
        ms_print_double(ds[i]);
}

static void mode_many(void)
{
    const char *n_text = getenv("FIXTURE_N");
    long n = n_text ? atol(n_text) : 100000;
    ms_handle *hs = malloc((size_t)n * sizeof *hs);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++)
        hs[i] = start2(ADD, i, 1);
    int64_t total = 0;
    for (long i = 0; i < n; i++) {
        total += get_int(hs[i], 30);
        ms_handle_release(hs[i]);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) +
                  (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ms_print_int(total);
    fprintf(stderr, "RATE %.0f jobs/s\n", (double)n / secs);
    /* Round trips, one at a time. */
    long m = n / 10 > 0 ? n / 10 : 1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < m; i++) {
        ms_handle h = start2(ADD, i, 1);
        total += get_int(h, 31);
        ms_handle_release(h);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs = (double)(t1.tv_sec - t0.tv_sec) +
           (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(stderr, "RTT %.1f us\n", secs / (double)m * 1e6);
    free(hs);
}

static void mode_fail(void)
{
    ms_handle ok = start2(DIVIDE, 10, 2);
    ms_handle bad = start2(DIVIDE, 1, 0);
    ms_print_int(get_int(ok, 11));
    ms_print_jobstate(ms_job_state(bad, 12, 3) == MS_STATE_RUNNING
                          ? MS_STATE_FAILED /* not yet known: wait */
                          : ms_job_state(bad, 12, 3));
    get_int(bad, 12);
    ms_print_int(999); /* not reached */
}

static void mode_cancel(void)
{
    ms_handle h = start1(SPIN, 5000);
    sleep_ms(300); /* let it start on a slave */
    ms_job_cancel(h, 14, 5);
    ms_print_jobstate(ms_job_state(h, 15, 11));
    /* Cancelling a finished job does nothing. */
    ms_handle done = start2(ADD, 1, 2);
    ms_print_int(get_int(done, 16));
    ms_job_cancel(done, 17, 5);
    ms_print_jobstate(ms_job_state(done, 18, 11));
    /* A pending job cancelled before any slave could take it. */
    ms_handle hs[8];
    for (int i = 0; i < 8; i++)
        hs[i] = start1(SPIN, 100);
    for (int i = 0; i < 8; i++)
        ms_job_cancel(hs[i], 19, 5);
    ms_print_int(get_int(start2(ADD, 5, 5), 20));
    get_int(h, 21);
}

static void mode_unset(void)
{
    ms_print_int(1);
    ms_job_state(NULL, 7, 9);
}

static void mode_deep(void)
{
    ms_handle h = start1(DEEP, 100000000);
    ms_print_jobstate(MS_STATE_RUNNING);
    ms_handle ok = start1(DEEP, 1000);
    ms_print_int(get_int(ok, 8));
    get_int(h, 9);
}

static void mode_smash(void)
{
    ms_handle h = start1(SMASH, 1000000000);
    ms_print_jobstate(ms_job_state(h, 70, 5) == MS_STATE_FINISHED
                          ? MS_STATE_FINISHED : MS_STATE_RUNNING);
    ms_reader r;
    ms_reap_job(h, &r, 71, 5);
}

static void mode_master_deep(void)
{
    ms_print_int(depth(1000));
    ms_print_int(depth(100000000));
}

static void mode_announce(void)
{
    const char *n_text = getenv("FIXTURE_N");
    long n = n_text ? atol(n_text) : 1;
    ms_handle hs[64];
    for (long i = 0; i < n && i < 64; i++)
        hs[i] = start1(ANNOUNCE, 1500);
    for (long i = 0; i < n && i < 64; i++)
        ms_print_int(get_int(hs[i], 40));
    ms_print_int(get_int(start2(ADD, 20, 22), 41));
}

static void mode_bools(void)
{
    ms_buf *args = ms_args_new();
    ms_buf_put_u32(args, 3);
    for (int i = 0; i < 3; i++)
        ms_buf_put_u8(args, 1);
    ms_handle h = ms_start_job(ALL, args);
    ms_reader r;
    ms_reap_job(h, &r, 60, 5);
    ms_print_bool((int8_t)ms_read_u8(&r));
    ms_handle_release(h);
}

static void mode_sleep(void)
{
    /* Runs jobs for a while so tests can poke at the master meanwhile. */
    const char *n_text = getenv("FIXTURE_N");
    long n = n_text ? atol(n_text) : 20;
    int64_t total = 0;
    for (long i = 0; i < n; i++) {
        ms_handle h = start2(ADD, i, 1);
        sleep_ms(100);
        total += get_int(h, 50);
        ms_handle_release(h);
    }
    ms_print_int(total);
}

/* Big arguments (sent from the job's own buffer) among small jobs, one of
 * them cancelled at once, perhaps while it is being sent. */
static ms_handle start_big_sum(uint32_t n)
{
    ms_buf *args = ms_args_new();
    ms_buf_put_u32(args, n);
    for (uint32_t i = 0; i < n; i++)
        ms_buf_put_f64(args, (double)(i % 1000));
    return ms_start_job(SUM, args);
}

static void mode_big(void)
{
    enum { K = 6 };
    ms_handle big[K], small[K];
    ms_handle doomed = NULL;
    for (int i = 0; i < K; i++) {
        big[i] = start_big_sum(300000 + (uint32_t)i);
        small[i] = start2(ADD, i, 100);
        if (i == 2) {
            doomed = start_big_sum(400000);
            ms_job_cancel(doomed, 80, 5);
        }
    }
    for (int i = 0; i < K; i++) {
        ms_reader r;
        ms_reap_job(big[i], &r, 81, 5);
        ms_print_double(ms_read_f64(&r));
        ms_print_int(get_int(small[i], 82));
        ms_handle_release(big[i]);
        ms_handle_release(small[i]);
    }
    ms_print_jobstate(ms_job_state(doomed, 83, 5));
    ms_handle_release(doomed);
}

void ms_master_main(void)
{
    const char *mode = getenv("FIXTURE_MODE");
    if (!mode || !strcmp(mode, "basic"))
        mode_basic();
    else if (!strcmp(mode, "many"))
        mode_many();
    else if (!strcmp(mode, "fail"))
        mode_fail();
    else if (!strcmp(mode, "cancel"))
        mode_cancel();
    else if (!strcmp(mode, "unset"))
        mode_unset();
    else if (!strcmp(mode, "deep"))
        mode_deep();
    else if (!strcmp(mode, "smash"))
        mode_smash();
    else if (!strcmp(mode, "master-deep"))
        mode_master_deep();
    else if (!strcmp(mode, "announce"))
        mode_announce();
    else if (!strcmp(mode, "bools"))
        mode_bools();
    else if (!strcmp(mode, "sleep"))
        mode_sleep();
    else if (!strcmp(mode, "big"))
        mode_big();
    else if (!strcmp(mode, "none"))
        return;
    else {
        fprintf(stderr, "fixture: unknown FIXTURE_MODE %s\n", mode);
        exit(3);
    }
}
