/* output.h — where print and eprint write (SPEC 12.6). In the master and
 * in a slave with --no-forward, to the process's stdout and stderr; in a
 * forwarding slave, a job's lines go to the master instead (the hook is
 * slave_output.c's). */
#ifndef MS_OUTPUT_H
#define MS_OUTPUT_H

#include <stddef.h>

/* A line a job printed: `n` bytes of `text` (borrowed), without the
 * newline print adds; stream 1 for print, 2 for eprint. Returns 1 when it
 * took the line, 0 when the caller is to write it itself (no job runs on
 * this thread). Set once before any job runs, never changed after; NULL
 * when nothing is forwarded. */
extern int (*ms_output_hook)(int stream, const char *text, size_t n);

#endif
