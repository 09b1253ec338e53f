/* files.h — what files.c (read_file, list_dir) shares with master_files.c
 * (write_file, read_stdin, args): paths as C strings, reading an fd to its
 * end, and the runtime error of SPEC 12.2 that names a path and errno's
 * reason; and how main() gives master_files.c the program's arguments.
 * Compiled code calls neither: its calls are in ms_abi.h, part D. */
#ifndef MS_FILES_H
#define MS_FILES_H

#include <stdint.h>

#include "ms_abi.h"

/* The longest string read_file and read_stdin yield: the most bytes a
 * vector's u32 count can say on the wire (SPEC 9), so that whatever a job
 * reads can be sent back, and the master and its jobs agree on the limit.
 * A longer input fails with EFBIG ("File too large"). */
#define MSF_MAX_READ ((int64_t)UINT32_MAX)

/* path: borrowed M/s string. *out: a new NUL-terminated copy the caller
 * frees. Returns 0, or EINVAL (and *out NULL) when the string holds a NUL
 * byte, which no system call can be given. */
int msf_path(const ms_vec *path, char **out);

/* Reads fd (borrowed, left open) to end of file into a new string (NULL
 * for none; the caller owns it). `size_hint`: the bytes expected (a regular
 * file's size), or -1 when unknown (pipes, terminals, /proc): the buffer
 * then grows geometrically. Returns 0, or an errno value with *out NULL
 * and nothing allocated (EFBIG past MSF_MAX_READ). EINTR is retried. */
int msf_read_all(int fd, int64_t size_hint, ms_vec **out);

/* Raises "cannot VERB 'PATH': REASON" (REASON is strerror(err)) at
 * line:col; `path` borrowed. The caller has freed what it owned first: in
 * a job the error leaves its frames by a longjmp. */
_Noreturn void msf_error(int32_t line, int32_t col, const char *verb,
                         const ms_vec *path, int err);

/* SPEC 12.1, master only (master_files.c): main() hands over the program's
 * arguments, argv borrowed for the life of the process, before any thread
 * starts. */
void ms_program_args_set(int argc, char **argv);

#endif
