/* log.c — messages to stderr, the status line above them (--progress),
 * fatal errors, checked allocation, clock. */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Written once by ms_log_init before any other thread exists, then only
 * read, so they need no lock. */
static char log_name[128] = "ms";
static int log_verbose;

void ms_log_init(const char *argv0, int verbose)
{
    const char *base = argv0 ? strrchr(argv0, '/') : NULL;
    base = base ? base + 1 : (argv0 && *argv0 ? argv0 : "ms");
    snprintf(log_name, sizeof log_name, "%s", base);
    log_verbose = verbose;
}

int ms_log_verbose(void) { return log_verbose; }
const char *ms_log_name(void) { return log_name; }

/* ------------------------------------------------ the status line */

/* While a status line is on (ms_status_show, the master's --progress),
 * every line for stderr goes through ms_err_write, which erases the
 * status line, writes the line and draws the status line again, in one
 * writev under err_lock, so that lines never mix with it. status_on is set
 * by the first ms_status_show and cleared by ms_status_end; while it is 0
 * ms_err_write writes at once, without the lock (slaves never set it). */
static atomic_int status_on;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
/* Guarded by err_lock: */
static char status_line[512];
static size_t status_len;
static int status_ended;

#define ERASE "\r\033[K" /* to the start of the line, clear to its end */

/* Write the pieces whole (retrying short writes); gives up silently: with
 * stderr gone there is nowhere to report it. */
static void write_all(struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(STDERR_FILENO, iov, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
}

void ms_err_write(const char *s, size_t n)
{
    if (!atomic_load_explicit(&status_on, memory_order_acquire)) {
        struct iovec one = {(void *)s, n};
        write_all(&one, 1);
        return;
    }
    pthread_mutex_lock(&err_lock);
    struct iovec iov[3] = {{ERASE, sizeof ERASE - 1}, {(void *)s, n},
                           {status_line, status_len}};
    /* The status line comes back only below a whole line. */
    write_all(iov, !status_ended && n && s[n - 1] == '\n' ? 3 : 2);
    pthread_mutex_unlock(&err_lock);
}

void ms_status_show(const char *line)
{
    pthread_mutex_lock(&err_lock);
    if (!status_ended) {
        size_t n = strlen(line);
        if (n > sizeof status_line - 1)
            n = sizeof status_line - 1;
        memcpy(status_line, line, n);
        status_len = n;
        struct iovec iov[2] = {{ERASE, sizeof ERASE - 1}, {status_line, n}};
        write_all(iov, 2);
        atomic_store_explicit(&status_on, 1, memory_order_release);
    }
    pthread_mutex_unlock(&err_lock);
}

void ms_status_erase_now(void)
{
    if (atomic_load_explicit(&status_on, memory_order_acquire) &&
        write(STDERR_FILENO, ERASE, sizeof ERASE - 1) < 0) {
        /* nowhere to report it */
    }
}

void ms_status_end(void)
{
    pthread_mutex_lock(&err_lock);
    if (!status_ended && atomic_load(&status_on)) {
        struct iovec iov = {ERASE, sizeof ERASE - 1};
        write_all(&iov, 1);
    }
    status_ended = 1;
    atomic_store_explicit(&status_on, 0, memory_order_release);
    pthread_mutex_unlock(&err_lock);
}

/* ------------------------------------------------------- messages */

static void vlog(const char *tag, const char *fmt, va_list ap)
{
    char line[2048];
    int n = snprintf(line, sizeof line, "%s: %s", log_name, tag);
    if (n < 0 || (size_t)n >= sizeof line)
        n = 0;
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ms_err_write(line, len);
}

void ms_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

void ms_logv(const char *fmt, ...)
{
    if (!log_verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

static void (*fatal_hook)(void);

void ms_log_set_fatal_hook(void (*hook)(void))
{
    fatal_hook = hook;
}

_Noreturn void ms_fatal(const char *fmt, ...)
{
    ms_status_end(); /* the process ends: no status line left behind */
    va_list ap;
    va_start(ap, fmt);
    vlog("fatal: ", fmt, ap);
    va_end(ap);
    if (fatal_hook)
        fatal_hook();
    _exit(1);
}

void *ms_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        ms_fatal("malloc(%zu): %s", n, strerror(errno));
    return p;
}

void *ms_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        ms_fatal("calloc(%zu, %zu): %s", n, size, strerror(errno));
    return p;
}

void *ms_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        ms_fatal("realloc(%zu): %s", n, strerror(errno));
    return q;
}

char *ms_xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        ms_fatal("strdup: %s", strerror(errno));
    return d;
}

long long ms_now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        ms_fatal("clock_gettime: %s", strerror(errno));
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long ms_now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        ms_fatal("clock_gettime: %s", strerror(errno));
    return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

long long ms_now_us(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        ms_fatal("clock_gettime: %s", strerror(errno));
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

_Noreturn void ms_usage_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: error: %s (%s --help prints the usage)\n",
            ms_log_name(), msg, ms_log_name());
    exit(2);
}
