/* master_launch_ssh.c — --ssh HOST[,HOST...]: one slave on each listed
 * host (a host listed twice gets two), started with the OpenSSH client
 * ($MS_SSH_COMMAND, default "ssh", split at white space like git's
 * GIT_SSH_COMMAND) with the user's own configuration and keys, in
 * BatchMode so that it never prompts.
 *
 * The remote command line holds no secret: the slave is started with
 * --token-stdin and the secret (hex) is the first line ssh forwards to
 * its standard input, which then stays open until the run ends; its end
 * (the master or ssh gone) ends the slave. What the slave writes comes
 * back through ssh to the master's stderr.
 *
 * Locks: start_ssh_slaves runs in main() before the I/O thread starts. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "log.h"
#include "master.h"

/* `s` in single quotes for the remote shell (a ' becomes '\''), appended
 * to out (n bytes in all); -1 when it does not fit. */
static int shell_quote(const char *s, char *out, size_t n)
{
    size_t k = strlen(out);
    if (k + 1 >= n)
        return -1;
    out[k++] = '\'';
    for (; *s; s++) {
        if (*s == '\'') {
            if (k + 4 >= n)
                return -1;
            memcpy(out + k, "'\\''", 4);
            k += 4;
        } else {
            if (k + 1 >= n)
                return -1;
            out[k++] = *s;
        }
    }
    if (k + 2 > n)
        return -1;
    out[k++] = '\'';
    out[k] = '\0';
    return 0;
}

/* The name ssh connects to for `dest` after the user's configuration
 * (`ssh -G DEST`, its "hostname" line), into out; 0, or -1. */
static int ssh_hostname(char **ssh, size_t nssh, const char *dest, char *out,
                        size_t n)
{
    char **argv = ms_xcalloc(nssh + 4, sizeof *argv);
    memcpy(argv, ssh, nssh * sizeof *argv);
    argv[nssh] = "-G";
    argv[nssh + 1] = "--";
    argv[nssh + 2] = (char *)dest;
    char *path = find_program(ssh[0]);
    int p[2];
    if (!path || pipe2(p, O_CLOEXEC) != 0) {
        free(path);
        free(argv);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        child_start(parent);
        int null = open("/dev/null", O_RDWR);
        if (null < 0 || dup2(null, STDIN_FILENO) < 0 ||
            dup2(p[1], STDOUT_FILENO) < 0 || dup2(null, STDERR_FILENO) < 0)
            _exit(127);
        execv(path, argv);
        _exit(127);
    }
    free(path);
    free(argv);
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return -1;
    }
    char buf[65536];
    size_t len = 0;
    for (;;) {
        ssize_t r = read(p[0], buf + len, sizeof buf - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == sizeof buf - 1)
            break;
    }
    close(p[0]);
    buf[len] = '\0';
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (!strncmp(line, "hostname ", 9) && line[9]) {
            snprintf(out, n, "%s", line + 9);
            return 0;
        }
        line = nl ? nl + 1 : NULL;
    }
    return -1;
}

/* The host the slave on `dest` connects back to: --advertise, or the
 * --listen host when it names one, or the address of ours that the route
 * to the host leaves from, or our host name. */
static void advertise_for(char **ssh, size_t nssh, const char *dest,
                          const ms_hostport *bound, char *out, size_t n)
{
    if (M.opt.advertise) {
        snprintf(out, n, "%s", M.opt.advertise);
        return;
    }
    if (!is_wildcard(bound->host)) {
        snprintf(out, n, "%s", bound->host);
        return;
    }
    char name[256];
    const char *at = strrchr(dest, '@');
    if (ssh_hostname(ssh, nssh, dest, name, sizeof name) != 0)
        snprintf(name, sizeof name, "%s", at ? at + 1 : dest);
    if (route_source(name, !strcmp(bound->host, "0.0.0.0"), out, n) == 0)
        return;
    if (gethostname(out, n) != 0)
        snprintf(out, n, "localhost");
    out[n - 1] = '\0';
}

/* main(), after the listening socket is bound, before the I/O thread:
 * one ssh per host of --ssh (M.launched[first..]). A host whose ssh
 * cannot start is reported; the run goes on with the others. */
void start_ssh_slaves(size_t first)
{
    size_t nssh;
    char **ssh = command_words("MS_SSH_COMMAND", "ssh", 0, &nssh);
    ms_hostport bound;
    bound_hostport(&bound);
    char line[2 * 65536 + 2] = "";
    if (M.auth_required)
        ms_hex(M.secret.data, M.secret.len, line);
    strcat(line, "\n");
    for (size_t i = first; i < M.nlaunched; i++) {
        launched *l = &M.launched[i];
        char host[256], addr[MS_ADDR_LEN], tag[24];
        advertise_for(ssh, nssh, l->host, &bound, host, sizeof host);
        join_hostport(host, bound.port, addr, sizeof addr);
        snprintf(tag, sizeof tag, "%zu", i + 1);
        char remote[8192] = "exec ";
        if (shell_quote(M.slave_path, remote, sizeof remote) != 0 ||
            strlen(remote) + strlen(addr) + 200 > sizeof remote)
            ms_usage_error("--slave-path is too long");
        strcat(remote, " --master ");
        shell_quote(addr, remote, sizeof remote);
        strcat(remote, " --token-stdin --launch-tag ");
        strcat(remote, tag);
        if (!M.auth_required)
            strcat(remote, " --insecure");
        if (M.opt.verbose)
            strcat(remote, " --verbose");
        char *argv[nssh + 8];
        memcpy(argv, ssh, nssh * sizeof *argv);
        size_t k = nssh;
        argv[k++] = "-o";
        argv[k++] = "BatchMode=yes";
        argv[k++] = "-T";
        argv[k++] = "--";
        argv[k++] = l->host;
        argv[k++] = remote;
        argv[k] = NULL;
        ms_logv("%s: connects back to %s", l->what, addr);
        if (launch_process(l, argv, M.slave_envp, line) != 0) {
            l->pid = 0;
            l->status = -1;
        }
    }
    OPENSSL_cleanse(line, sizeof line);
}
