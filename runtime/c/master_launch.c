/* master_launch.c — what the launchers (master_launch_ssh.c,
 * master_launch_srun.c) share: splitting a command like $MS_SSH_COMMAND
 * into words, starting a launcher process (ssh, srun) whose stdout is our
 * stderr and that dies with us, the address slaves connect back to,
 * collecting launchers that ended (reporting the ones that end early),
 * ending them with the run, and saying in --stats how each slave was
 * started.
 *
 * Nothing outlives the run: each launcher process gets PR_SET_PDEATHSIG
 * (SIGKILL), so it ends even when the master is killed with SIGKILL; the
 * slave at the far end then sees its standard input (ssh) or its
 * connection close and exits. On a normal end (shutdown_io) the master
 * closes the launchers' standard input, waits a little for them to exit,
 * then kills them; every one is reaped.
 *
 * Locks: the table M.launched is made by main() before the I/O thread
 * starts; after that its `pid`, `in_fd` and `status` are the I/O
 * thread's (no lock), the rest read-only. launch_check_locked runs with
 * M.lock held; describe_origin_locked too (it reads only read-only
 * fields). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "wire.h"

#define LAUNCH_GRACE_MS 3000 /* for ssh/srun to end after GOODBYE */
#define LAUNCH_TERM_MS 1000  /* after SIGTERM, before SIGKILL */

/* The words of $VAR (else of `dflt`): a launcher's command, with room
 * for `extra` more words; as split_words. A $VAR of no words is a usage
 * error. */
char **command_words(const char *var, const char *dflt, size_t extra,
                     size_t *n)
{
    const char *cmd = getenv(var);
    char **w = split_words(cmd && *cmd ? cmd : dflt, extra, n);
    if (!*n)
        ms_usage_error("%s has no words", var);
    return w;
}

/* The words of `s` split at white space (no quoting), as a NULL-ended
 * array with room for `extra` more words (and the NULL) after them; *n
 * gets their count. For main()'s start-up: the array and the words live
 * as long as the process. */
char **split_words(const char *s, size_t extra, size_t *n)
{
    char *copy = ms_xstrdup(s ? s : "");
    size_t count = 0;
    for (char *p = copy; *p;) {
        p += strspn(p, " \t\n");
        if (*p)
            count++;
        p += strcspn(p, " \t\n");
    }
    char **w = ms_xcalloc(count + extra + 1, sizeof *w);
    size_t k = 0;
    for (char *save = NULL, *t = strtok_r(copy, " \t\n", &save); t;
         t = strtok_r(NULL, " \t\n", &save))
        w[k++] = t;
    if (k == 0)
        free(copy); /* nothing points into it */
    *n = k;
    return w;
}

/* The child's side of a launcher, between fork and execve: only
 * async-signal-safe calls. `in` becomes its stdin (-1: /dev/null), our
 * stderr its stdout and stderr; it dies with the master, in a process
 * group of its own. */
static _Noreturn void launcher_child(const char *path, char **argv,
                                     char **envp, int in, pid_t parent)
{
    child_start(parent);
    /* A process group of its own: a Ctrl-C at the terminal reaches the
     * master alone, which then ends the run in order (GOODBYE, stdin
     * closed, a grace period) instead of srun printing its "one more
     * within 1 sec" or ssh dying before the GOODBYE is through. */
    if (setpgid(0, 0) != 0)
        _exit(127);
    if (in < 0)
        in = open("/dev/null", O_RDONLY);
    if (in < 0 || dup2(in, STDIN_FILENO) < 0 ||
        dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
        _exit(127);
    execve(path, argv, envp);
    static const char msg[] = ": cannot run it\n";
    if (write(STDERR_FILENO, path, strlen(path)) > 0 &&
        write(STDERR_FILENO, msg, sizeof msg - 1) > 0) {
    }
    _exit(127);
}

/* main(), before the I/O thread starts: start l's process, argv[0] looked
 * up on $PATH. With `line` (borrowed) its stdin is a pipe that gets
 * `line` and then stays open (l->in_fd) until the run ends; else
 * /dev/null. argv and envp are borrowed. 0, or -1 after saying why. */
int launch_process(launched *l, char **argv, char **envp, const char *line)
{
    char *path = find_program(argv[0]);
    if (!path) {
        ms_log("error: cannot find the program '%s' (to start %s)", argv[0],
               l->what);
        return -1;
    }
    int p[2] = {-1, -1};
    if (line && pipe2(p, O_CLOEXEC) != 0) {
        ms_log("error: pipe2: %s", strerror(errno));
        free(path);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        ms_log("error: cannot start %s: fork: %s", l->what, strerror(errno));
        if (line)
            close(p[0]), close(p[1]);
        free(path);
        return -1;
    }
    if (pid == 0)
        launcher_child(path, argv, envp, line ? p[0] : -1, parent);
    free(path);
    l->pid = pid;
    l->in_fd = -1;
    if (line) {
        if (close(p[0]) != 0)
            ms_log("close: %s", strerror(errno));
        /* Far shorter than a pipe's buffer: this never blocks. */
        int rc = ms_write_full(p[1], line, strlen(line));
        if (rc != 0)
            ms_log("cannot give %s its secret: write: %s", l->what,
                   strerror(-rc));
        l->in_fd = p[1];
    }
    ms_logv("started %s (pid %d)", l->what, (int)pid);
    return 0;
}

/* The numeric address of ours that packets to `host` leave from (a UDP
 * socket connected to it sends nothing), IPv4 only when `v4_only`; 0,
 * or -1 when it does not resolve or has no route. */
int route_source(const char *host, int v4_only, char *out, size_t n)
{
    struct addrinfo hints = {.ai_family = v4_only ? AF_INET : AF_UNSPEC,
                             .ai_socktype = SOCK_DGRAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, "9", &hints, &res) != 0)
        return -1;
    int rc = -1;
    for (struct addrinfo *ai = res; ai && rc != 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
            getnameinfo((struct sockaddr *)&ss, len, out, (socklen_t)n, NULL,
                        0, NI_NUMERICHOST) == 0)
            rc = 0;
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

/* The listening socket's host and port (main(), after ms_listen). */
void bound_hostport(ms_hostport *out)
{
    char err[256];
    if (ms_parse_hostport(M.bound, out, err, sizeof err) != 0)
        ms_fatal("internal error: the bound address %s: %s", M.bound, err);
}

/* Is the --listen host (or the default) a wildcard: any local address? */
int is_wildcard(const char *host)
{
    return !strcmp(host, "0.0.0.0") || !strcmp(host, "::");
}

/* "HOST:PORT" (brackets around an IPv6 address) into out. */
void join_hostport(const char *host, const char *port, char *out, size_t n)
{
    snprintf(out, n, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
}

/* ------------------------------------------------ while the run goes */

/* Can a slave still come? Local slaves are restarted, slaves started by
 * hand may come while --listen is given, and a launcher still running may
 * yet bring one. (I/O thread.) */
static int slaves_may_come(void)
{
    if (M.nchildren || M.opt.listen)
        return 1;
    for (size_t i = 0; i < M.nlaunched; i++)
        if (M.launched[i].pid > 0)
            return 1;
    return 0;
}

static void describe_exit(int st, char *out, size_t n)
{
    if (WIFEXITED(st))
        snprintf(out, n, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(out, n, "was killed by signal %d (%s)", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    else
        snprintf(out, n, "stopped (status %d)", st);
}

/* Has child `pid` ended? 0: not yet; 1: reaped, *st (if st is not NULL)
 * its wait status (-1 when waitpid failed), `how` what became of it
 * ("exited with status 255", "was killed by signal 9 (Killed)"). */
int child_ended(pid_t pid, int *st, char *how, size_t n)
{
    int status;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR))
        return 0;
    if (r < 0) {
        snprintf(how, n, "vanished (waitpid: %s)", strerror(errno));
        status = -1;
    } else {
        describe_exit(status, how, n);
    }
    if (st)
        *st = status;
    return 1;
}

/* Collect launchers that ended (I/O thread, without M.lock). While the
 * run goes on, each is reported with its host and status. */
void reap_launched(void)
{
    for (size_t i = 0; i < M.nlaunched; i++) {
        launched *l = &M.launched[i];
        if (l->pid <= 0)
            continue;
        int st;
        char how[160];
        if (!child_ended(l->pid, &st, how, sizeof how))
            continue;
        l->pid = 0;
        l->status = st;
        if (l->in_fd >= 0 && close(l->in_fd) != 0)
            ms_log("close: %s", strerror(errno));
        l->in_fd = -1;
        if (M.shutting_down) {
            ms_logv("%s %s", l->what, how);
            continue;
        }
        int unreachable = l->kind == L_SSH && st != -1 && WIFEXITED(st) &&
                          WEXITSTATUS(st) == 255;
        ms_log("%s ended early: %s %s%s; the run goes on with the other "
               "slaves", l->what, l->kind == L_SSH ? "ssh" : "srun", how,
               unreachable ? " (ssh's own failure: the host cannot be "
                             "reached or refused the login)" : "");
        if (!slaves_may_come())
            M.launch_exhausted = 1;
    }
}

/* Caller holds M.lock (I/O thread): when every launched slave is gone and
 * none can come while jobs wait, the run fails instead of hanging. */
void launch_check_locked(void)
{
    if (!M.launch_exhausted || M.ready_slaves || !M.pending.head ||
        M.shutdown_code >= 0)
        return;
    ms_log("error: no slave is left and none can come (every ssh or srun "
           "the master started has ended); giving up");
    M.shutdown_code = 1;
    M.io_ends_process = 1;
}

/* ---------------------------------------------------- ending the run */

static size_t launched_alive(void)
{
    size_t n = 0;
    for (size_t i = 0; i < M.nlaunched; i++)
        n += M.launched[i].pid > 0;
    return n;
}

/* Wait until every launcher ended or `until`, reaping them. */
static void wait_launched(long long until)
{
    for (;;) {
        reap_launched();
        long long now = ms_now_ms();
        if (!launched_alive() || now >= until)
            return;
        nap_on_signals(until - now);
    }
}

static void signal_launched(int sig)
{
    for (size_t i = 0; i < M.nlaunched; i++) {
        launched *l = &M.launched[i];
        if (l->pid > 0 && kill(l->pid, sig) != 0)
            ms_logv("kill(%d, %d): %s", (int)l->pid, sig, strerror(errno));
    }
}

/* The run is over and the slaves were told (I/O thread, without M.lock,
 * M.shutting_down set): close the launchers' standard input (a slave
 * that missed GOODBYE sees it end), give them LAUNCH_GRACE_MS to exit,
 * then SIGTERM, then SIGKILL; all are reaped. */
void end_launched(void)
{
    if (!M.nlaunched)
        return;
    for (size_t i = 0; i < M.nlaunched; i++) {
        launched *l = &M.launched[i];
        if (l->in_fd >= 0 && close(l->in_fd) != 0)
            ms_log("close: %s", strerror(errno));
        l->in_fd = -1;
    }
    wait_launched(ms_now_ms() + LAUNCH_GRACE_MS);
    if (!launched_alive())
        return;
    for (size_t i = 0; i < M.nlaunched; i++)
        if (M.launched[i].pid > 0)
            ms_log("%s did not end with the run; stopping it",
                   M.launched[i].what);
    signal_launched(SIGTERM);
    wait_launched(ms_now_ms() + LAUNCH_TERM_MS);
    signal_launched(SIGKILL);
    for (size_t i = 0; i < M.nlaunched; i++) {
        launched *l = &M.launched[i];
        if (l->pid <= 0)
            continue;
        while (waitpid(l->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        l->pid = 0;
    }
}

/* ------------------------------------------------------------ --stats */

/* How c's slave was started and where it ran, for --stats and the log
 * (caller holds M.lock). */
void describe_origin_locked(const conn *c, char *out, size_t n)
{
    char how[320];
    const launched *l = c->tag >= 1 && c->tag <= M.nlaunched
                            ? &M.launched[c->tag - 1] : NULL;
    if (c->local)
        snprintf(how, sizeof how, "started locally");
    else if (l && l->kind == L_SSH)
        snprintf(how, sizeof how, "started by ssh %s", l->host);
    else if (l && l->kind == L_SRUN && c->task)
        snprintf(how, sizeof how, "started by srun, task %u",
                 (unsigned)(c->task - 1));
    else if (l && l->kind == L_SRUN)
        snprintf(how, sizeof how, "started by srun");
    else
        snprintf(how, sizeof how, "started by hand");
    if (c->host[0])
        snprintf(out, n, "%s, ran on %s", how, c->host);
    else
        snprintf(out, n, "%s, host not told", how);
}
