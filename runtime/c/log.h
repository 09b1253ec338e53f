/* log.h — one-line messages to stderr, prefixed with the program's name. */
#ifndef MS_LOG_H
#define MS_LOG_H

#include <stddef.h>

/* Called once by main() before any thread starts: `argv0` is borrowed; its
 * basename is copied. `verbose` enables ms_logv. */
void ms_log_init(const char *argv0, int verbose);
int ms_log_verbose(void);
const char *ms_log_name(void); /* static storage; e.g. "prog-master" */

/* Each message is written with one write(2), so lines from several threads
 * or processes never interleave. */
void ms_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ms_logv(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Every line a process writes to stderr goes through ms_err_write (`s`
 * borrowed, n bytes, a line or a piece of one), one write(2) when it can:
 * while a status line is on, it is erased before the line and drawn again
 * after it. ms_status_show puts up (or replaces) the status line, one
 * line without a newline; ms_status_end erases it for good (later calls
 * of ms_status_show do nothing). Any thread. */
void ms_err_write(const char *s, size_t n);
void ms_status_show(const char *line);
void ms_status_end(void);
/* Erase the status line, if one is on, with one write(2) and no lock:
 * async-signal-safe, for a fatal signal's handler (the process ends). */
void ms_status_erase_now(void);

_Noreturn void ms_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Called by ms_fatal after its message, before _exit (main() sets it once,
 * before other threads start; it must not block). */
void ms_log_set_fatal_hook(void (*hook)(void));
/* A bad command line: one line, "NAME: error: MSG (NAME --help prints the
 * usage)", and exit status 2. */
_Noreturn void ms_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* "s" unless n is 1: "%d job%s", n, ms_plural(n). */
static inline const char *ms_plural(unsigned long long n)
{
    return n == 1 ? "" : "s";
}

/* Allocation that ends the process with a message when memory runs out.
 * The caller owns (and frees) what they return. */
void *ms_xmalloc(size_t n);
void *ms_xcalloc(size_t n, size_t size);
void *ms_xrealloc(void *p, size_t n);
char *ms_xstrdup(const char *s);

/* Monotonic clock in milliseconds. */
long long ms_now_ms(void);
long long ms_now_us(void);
long long ms_now_ns(void);

#endif
