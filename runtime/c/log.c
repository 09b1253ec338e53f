/* log.c — messages to stderr, fatal errors, checked allocation, clock. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(STDERR_FILENO, line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* nowhere left to report it */
        off += (size_t)w;
    }
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
