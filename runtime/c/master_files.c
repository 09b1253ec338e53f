/* master_files.c — the master-only builtins of SPEC 12.1 and 12.2: args(),
 * read_stdin() and write_file(). Typecheck keeps them out of job code
 * (jobs may run twice; they only mean something in the master), and the
 * slave's library has stubs (slave_files.c).
 *
 * Locks: none. The arguments are set by main() before any thread starts
 * and only read afterwards; stdin_done is touched only by the thread that
 * runs the master block (the only caller of these functions). */
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "values.h"
#include "wire.h"

/* ------------------------------------------------------------ args */

static int prog_argc;
static char **prog_argv; /* borrowed from main(): lives as long as the process */

void ms_program_args_set(int argc, char **argv)
{
    prog_argc = argc;
    prog_argv = argv;
}

/* args(): a new vector<string> owned by the caller (NULL when empty). */
ms_vec *ms_args(void)
{
    if (prog_argc == 0)
        return NULL;
    ms_vec *v = msv_alloc(sizeof(ms_vec *), prog_argc, prog_argc);
    ms_vec **elems = (ms_vec **)MSV_DATA(v);
    for (int i = 0; i < prog_argc; i++)
        elems[i] = ms_string_from_bytes((const uint8_t *)prog_argv[i],
                                        (int64_t)strlen(prog_argv[i]));
    return v;
}

/* ------------------------------------------------------------ read_stdin */

static int stdin_done; /* end of file was reached: what is left is "" */

/* read_stdin(): a new string owned by the caller. */
ms_vec *ms_read_stdin(int32_t line, int32_t col)
{
    if (stdin_done)
        return NULL;
    struct stat st;
    int64_t hint = -1;
    if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode)) {
        off_t at = lseek(STDIN_FILENO, 0, SEEK_CUR);
        if (at >= 0 && st.st_size > at)
            hint = (int64_t)(st.st_size - at);
    }
    ms_vec *s;
    int err = msf_read_all(STDIN_FILENO, hint, &s);
    if (err) {
        char msg[256];
        snprintf(msg, sizeof msg, "cannot read standard input: %s",
                 strerror(err));
        ms_runtime_error(line, col, msg);
    }
    stdin_done = 1;
    return s;
}

/* ------------------------------------------------------------ write_file */

/* The temporary file's name beside `target`: DIR/.BASE.RANDOM.tmp, BASE cut
 * to 64 bytes so that the name stays under NAME_MAX. Caller frees. */
static char *temp_name(const char *target, const uint8_t rnd[8])
{
    const char *slash = strrchr(target, '/');
    size_t dirlen = slash ? (size_t)(slash - target) + 1 : 0;
    const char *base = slash ? slash + 1 : target;
    size_t baselen = strlen(base);
    if (baselen > 64)
        baselen = 64;
    size_t n = dirlen + 1 + baselen + 1 + 16 + 4 + 1;
    char *t = ms_xmalloc(n);
    snprintf(t, n, "%.*s.%.*s.%02x%02x%02x%02x%02x%02x%02x%02x.tmp",
             (int)dirlen, target, (int)baselen, base, rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    return t;
}

/* fsync the directory holding `target`, so that the rename is durable. A
 * file system that cannot sync directories (EINVAL) is not an error. */
static int sync_parent(const char *target)
{
    const char *slash = strrchr(target, '/');
    char *dir = slash ? strndup(target, slash == target ? 1 : (size_t)(slash - target))
                      : strdup(".");
    if (!dir)
        return errno;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int err = fd < 0 ? errno : 0;
    free(dir);
    if (fd < 0)
        return err;
    if (fsync(fd) != 0 && errno != EINVAL)
        err = errno;
    close(fd);
    return err;
}

/* Creates the temporary file (O_EXCL, a random name: retried on a clash)
 * with `mode`; *tmp its name (caller frees). Returns the fd or -errno. */
static int create_temp(const char *target, mode_t mode, char **tmp)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        uint8_t rnd[8];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
            *tmp = NULL;
            return -(errno ? errno : EIO);
        }
        *tmp = temp_name(target, rnd);
        int fd = open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        if (fd >= 0)
            return fd;
        int err = errno;
        free(*tmp);
        *tmp = NULL;
        if (err != EEXIST)
            return -err;
    }
    return -EEXIST;
}

/* Writes `data` to a new file beside `target`, syncs it, renames it over
 * `target` and syncs the directory. Returns 0 or an errno value; on
 * failure before the rename the temporary file is removed. */
static int replace_file(const char *target, const ms_vec *data)
{
    const char *slash = strrchr(target, '/');
    if (*(slash ? slash + 1 : target) == '\0')
        return *target ? EISDIR : ENOENT; /* "dir/" or "": not a file name */
    /* An existing file keeps its permission bits (not set-user-ID and the
     * like, nor its owner); a new one gets 0666 less the umask, as the
     * shell's `>` gives. */
    struct stat st;
    int keep = stat(target, &st) == 0 && S_ISREG(st.st_mode);
    char *tmp;
    int fd = create_temp(target, keep ? (st.st_mode & 0777) : 0666, &tmp);
    if (fd < 0)
        return -fd;
    int err = 0;
    if (keep && fchmod(fd, st.st_mode & 0777) != 0) /* the umask cut it */
        err = errno;
    if (!err && data && data->len > 0)
        err = -ms_write_full(fd, MSV_DATA(data), (size_t)data->len);
    if (!err && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && !err)
        err = errno;
    if (!err && rename(tmp, target) != 0)
        err = errno;
    if (err) {
        unlink(tmp);
        free(tmp);
        return err;
    }
    free(tmp);
    return sync_parent(target);
}

/* write_file(path, data): both borrowed. */
void ms_write_file(const ms_vec *path, const ms_vec *data, int32_t line,
                   int32_t col)
{
    char *p;
    int err = msf_path(path, &p);
    if (!err) {
        err = replace_file(p, data);
        free(p);
    }
    if (err)
        msf_error(line, col, "write", path, err);
}
