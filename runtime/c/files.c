/* files.c — read_file and list_dir (SPEC 12.2), in the master and in jobs
 * (on the slave's machine), and the helpers files.h shares with
 * master_files.c. Every failure is a runtime error naming the path and
 * strerror's reason; nothing is left open or allocated when one is raised. */
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "values.h"

int msf_path(const ms_vec *path, char **out)
{
    size_t n = path ? (size_t)path->len : 0;
    *out = NULL;
    if (n > 0 && memchr(MSV_DATA(path), '\0', n))
        return EINVAL;
    char *s = ms_xmalloc(n + 1);
    if (n > 0)
        memcpy(s, MSV_DATA(path), n);
    s[n] = '\0';
    *out = s;
    return 0;
}

_Noreturn void msf_error(int32_t line, int32_t col, const char *verb,
                         const ms_vec *path, int err)
{
    /* A path longer than the message can hold is cut (a job's error text
     * has MS_MAX_TEXT bytes in all). */
    char msg[3072];
    size_t n = path ? (size_t)path->len : 0, max = 2048;
    int head = snprintf(msg, sizeof msg, "cannot %s '", verb);
    size_t at = (size_t)head;
    size_t take = n > max ? max : n;
    if (take > 0)
        memcpy(msg + at, MSV_DATA(path), take);
    at += take;
    snprintf(msg + at, sizeof msg - at, "%s': %s", n > max ? "..." : "",
             strerror(err));
    /* A NUL byte in the path would end the message early: show it as '?'. */
    for (size_t i = (size_t)head; i < at; i++)
        if (msg[i] == '\0')
            msg[i] = '?';
    ms_runtime_error(line, col, msg);
}

/* v: unique, transferred; returns it with room for `cap` bytes (a copy;
 * the old one freed). */
static ms_vec *regrow(ms_vec *v, int64_t cap)
{
    ms_vec *w = msv_alloc(1, v->len, cap);
    memcpy(MSV_DATA(w), MSV_DATA(v), (size_t)v->len);
    msv_free(v);
    return w;
}

int msf_read_all(int fd, int64_t size_hint, ms_vec **out)
{
    *out = NULL;
    if (size_hint > MSF_MAX_READ)
        return EFBIG;
    /* One byte more than expected, so that end of file is seen without
     * growing: a file read whole costs one allocation. */
    int64_t cap = size_hint >= 0 ? size_hint + 1 : 4096;
    ms_vec *v = msv_alloc(1, 0, cap);
    for (;;) {
        if (v->len == v->cap) {
            if (v->cap > MSF_MAX_READ) {
                msv_free(v);
                return EFBIG;
            }
            int64_t grown = v->cap * 2;
            v = regrow(v, grown > MSF_MAX_READ + 1 ? MSF_MAX_READ + 1 : grown);
        }
        ssize_t r = read(fd, MSV_DATA(v) + v->len, (size_t)(v->cap - v->len));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            msv_free(v);
            return err;
        }
        if (r == 0)
            break;
        v->len += r;
    }
    if (v->len > MSF_MAX_READ) {
        msv_free(v);
        return EFBIG;
    }
    if (v->len == 0) {
        msv_free(v);
        return 0; /* the empty string is NULL */
    }
    *out = v;
    return 0;
}

/* read_file(path): path borrowed; returns a new string owned by the caller. */
ms_vec *ms_read_file(const ms_vec *path, int32_t line, int32_t col)
{
    char *p;
    int err = msf_path(path, &p);
    if (err)
        msf_error(line, col, "read", path, err);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    err = errno;
    free(p);
    if (fd < 0)
        msf_error(line, col, "read", path, err);
    struct stat st;
    ms_vec *s = NULL;
    if (fstat(fd, &st) != 0)
        err = errno;
    else if (S_ISDIR(st.st_mode))
        err = EISDIR;
    else
        err = msf_read_all(fd, S_ISREG(st.st_mode) && st.st_size > 0
                                   ? (int64_t)st.st_size : -1, &s);
    close(fd); /* read-only: nothing close could lose */
    if (err)
        msf_error(line, col, "read", path, err);
    return s;
}

static int by_byte(const void *a, const void *b)
{
    /* strcmp compares as unsigned char (C11 7.24.4). */
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* list_dir(path): path borrowed; returns a new vector<string> owned by the
 * caller (NULL for an empty directory). The names are gathered as C
 * strings first, so that a failure part way leaves no M/s value behind. */
ms_vec *ms_list_dir(const ms_vec *path, int32_t line, int32_t col)
{
    char *p;
    int err = msf_path(path, &p);
    if (err)
        msf_error(line, col, "list", path, err);
    DIR *d = opendir(p);
    err = errno;
    free(p);
    if (!d)
        msf_error(line, col, "list", path, err);
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            err = errno;
            break;
        }
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            names = ms_xrealloc(names, cap * sizeof *names);
        }
        names[n++] = ms_xstrdup(e->d_name);
    }
    closedir(d); /* only a bad DIR* makes closedir fail */
    if (err) {
        free_names(names, n);
        msf_error(line, col, "list", path, err);
    }
    if (n == 0) {
        free(names);
        return NULL;
    }
    qsort(names, n, sizeof *names, by_byte);
    ms_vec *v = msv_alloc(sizeof(ms_vec *), (int64_t)n, (int64_t)n);
    ms_vec **elems = (ms_vec **)MSV_DATA(v);
    for (size_t i = 0; i < n; i++)
        elems[i] = ms_string_from_bytes((const uint8_t *)names[i],
                                        (int64_t)strlen(names[i]));
    free_names(names, n);
    return v;
}
