/* master_secret.c — the secret file of a run: when no secret was given
 * (no MS_TOKEN, no --token-file) and slaves started by hand may join on
 * loopback, the master writes the fresh secret it made to a file only its
 * user can read, prints the slave command line that uses it, and removes
 * the file (and its directory) at every exit (SPEC 10).
 *
 * The file is DIR/token in a directory made with mkdtemp (mode 0700)
 * under $XDG_RUNTIME_DIR when that is a private directory of ours, else
 * under /tmp; the file itself is made with O_EXCL and mode 0600.
 *
 * Locks: secret_file_write runs in main() before any other thread; the
 * removal uses only async-signal-safe calls (unlink, rmdir) on paths fixed
 * before, so the SIGSEGV handler and any exit path may call it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "stack.h"
#include "wire.h"

/* Set once by secret_file_write; read-only afterwards. */
static char secret_dir[512], secret_path[560];
static volatile int secret_file_made;

void secret_file_remove(void)
{
    if (!secret_file_made)
        return;
    secret_file_made = 0;
    (void)unlink(secret_path);
    (void)rmdir(secret_dir);
}

static void remove_at_fault(int overflow)
{
    (void)overflow;
    secret_file_remove();
}

/* Is `dir` a directory that only we can enter and write? */
static int private_dir(const char *dir)
{
    struct stat st;
    return dir && dir[0] == '/' && stat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
           st.st_uid == geteuid() && (st.st_mode & 077) == 0;
}

const char *secret_file_write(const ms_secret *secret, char *err, size_t n)
{
    const char *base = getenv("XDG_RUNTIME_DIR");
    if (!private_dir(base))
        base = "/tmp";
    if (snprintf(secret_dir, sizeof secret_dir, "%s/ms-%s-XXXXXX", base,
                 ms_log_name()) >= (int)sizeof secret_dir) {
        snprintf(err, n, "cannot make a secret file: the path under %s is too "
                 "long", base);
        return NULL;
    }
    if (!mkdtemp(secret_dir)) {
        snprintf(err, n, "cannot make a directory for the secret file: "
                 "mkdtemp(%s): %s", secret_dir, strerror(errno));
        return NULL;
    }
    snprintf(secret_path, sizeof secret_path, "%s/token", secret_dir);
    int fd = open(secret_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                                   O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, n, "cannot make the secret file: open(%s): %s",
                 secret_path, strerror(errno));
        (void)rmdir(secret_dir);
        return NULL;
    }
    secret_file_made = 1;
    if (atexit(secret_file_remove) != 0) {
        snprintf(err, n, "atexit failed");
        goto fail;
    }
    ms_stack_set_fault_hook(remove_at_fault);
    ms_log_set_fatal_hook(secret_file_remove);
    /* fchmod: the umask may only have taken bits away; be sure. */
    if (fchmod(fd, 0600) != 0) {
        snprintf(err, n, "fchmod(%s): %s", secret_path, strerror(errno));
        goto fail;
    }
    int rc = ms_write_full(fd, secret->data, secret->len);
    if (rc == 0)
        rc = ms_write_full(fd, "\n", 1);
    if (rc != 0) {
        snprintf(err, n, "cannot write the secret file %s: %s", secret_path,
                 strerror(-rc));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        snprintf(err, n, "close(%s): %s", secret_path, strerror(errno));
        goto fail;
    }
    return secret_path;
fail:
    if (fd >= 0)
        close(fd);
    secret_file_remove();
    return NULL;
}
