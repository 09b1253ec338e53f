/* master_local.c — local slave processes: the slave program beside the
 * master, its command line and environment, starting it (fork/exec),
 * collecting the ones that ended, and starting replacements.
 *
 * Locks: the child table (M.children) is the I/O thread's and needs no
 * lock; spawning runs without M.lock (fork takes a while). The command
 * line and environment are made by main() before the I/O thread starts.
 * reap_children takes M.lock only to end the run, spawn_child to add the
 * slave's connection; local_joined runs with it held (from the
 * handshake).
 *
 * Launchers for slaves on other hosts (ssh, srun) are beside this file
 * (master_launch*.c). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "master.h"

extern char **environ;

/* Without --listen the local slaves are the only ones: when every one of
 * them has exited this many times in a row before joining, the run cannot
 * go on, and the master says so instead of waiting for ever. */
#define MAX_FAILED_STARTS 5

/* ------------------------------------------------------ local slaves */

/* The descriptor a local slave finds its socket pair on (`--fd 3`). */
#define LOCAL_FD 3
#define LOCAL_FD_ARG "3"

/* In a child of ours between fork and execve (async-signal-safe): no
 * signal blocked, SIGPIPE back to its default, and killed when the master
 * (`parent`) dies, even by SIGKILL; if it already has, the child ends. */
void child_start(pid_t parent)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(127);
}

/* Start a local slave connected to us through a socket pair: its end
 * becomes its descriptor LOCAL_FD (the only one it inherits besides the
 * standard ones: every other descriptor of ours is close-on-exec), ours a
 * connection in the handshake. Nobody else can reach it, so it needs no
 * secret and no protection. */
static void spawn_child(child *ch, long long now)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        ms_log("cannot start a local slave: socketpair: %s", strerror(errno));
        ch->pid = 0;
        ch->restart_at = now + 1000;
        return;
    }
    int fl = fcntl(sv[0], F_GETFL);
    if (fl < 0 || fcntl(sv[0], F_SETFL, fl | O_NONBLOCK) != 0)
        ms_fatal("fcntl(O_NONBLOCK): %s", strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        ms_log("cannot start a local slave: fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        ch->pid = 0;
        ch->restart_at = now + 1000;
        return;
    }
    if (pid == 0) {
        /* The child: only async-signal-safe calls until execve. */
        child_start(parent);
        /* Its stdout is the master's stderr: the master's stdout holds only
         * what the master block prints. */
        if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
            _exit(127);
        /* dup2 clears close-on-exec on the copy; a socket already at
         * LOCAL_FD needs it cleared by hand. */
        if (sv[1] == LOCAL_FD ? fcntl(sv[1], F_SETFD, 0) != 0
                              : dup2(sv[1], LOCAL_FD) < 0)
            _exit(127);
        M.slave_argv[M.threads_word] = ch->threads; /* our copy of it */
        execve(M.exec_path, M.slave_argv, M.slave_envp);
        static const char msg[] = ": cannot run the local slave program\n";
        if (write(STDERR_FILENO, M.exec_path, strlen(M.exec_path)) > 0 &&
            write(STDERR_FILENO, msg, sizeof msg - 1) > 0) {
        }
        _exit(127);
    }
    if (close(sv[1]) != 0)
        ms_log("close: %s", strerror(errno));
    ch->pid = pid;
    ch->started = now;
    ch->joined = 0;
    pthread_mutex_lock(&M.lock);
    conn_adopt_local(sv[0], pid, now);
    pthread_mutex_unlock(&M.lock);
    ms_logv("started local slave pid %d", (int)pid);
}

/* Collect local slaves that ended; while running, schedule replacements
 * (sooner for slaves that lived long, later for ones that die at once). */
void reap_children(long long now)
{
    for (size_t i = 0; i < M.nchildren; i++) {
        child *ch = &M.children[i];
        if (ch->pid <= 0)
            continue;
        char how[160];
        if (!child_ended(ch->pid, NULL, how, sizeof how))
            continue;
        if (M.shutting_down) {
            ms_logv("local slave pid %d %s", (int)ch->pid, how);
            ch->pid = -1;
            continue;
        }
        /* Only a slave that never got through the handshake died "at
         * once": one that joined (and so may have run jobs) is replaced
         * after the shortest delay however young it was, or killing local
         * slaves again and again would make the delay grow to 5 s. */
        int quick = !ch->joined && now - ch->started < 2000;
        ch->backoff_ms = quick ? (ch->backoff_ms ? 2 * ch->backoff_ms : 100) : 50;
        if (ch->backoff_ms > 5000)
            ch->backoff_ms = 5000;
        if (!ch->joined)
            ch->failed_starts++;
        ms_log("local slave pid %d %s%s; starting another", (int)ch->pid, how,
               ch->joined ? "" : " before joining");
        ch->pid = 0;
        ch->restart_at = now + ch->backoff_ms;
    }
    if (M.shutting_down || M.opt.listen || !M.nchildren || M.nlaunched)
        return;
    for (size_t i = 0; i < M.nchildren; i++)
        if (M.children[i].failed_starts < MAX_FAILED_STARTS)
            return;
    pthread_mutex_lock(&M.lock);
    if (M.shutdown_code < 0 && M.ready_slaves == 0) {
        ms_log("error: the local slaves (%s) keep exiting before they join; "
               "giving up",
               M.slave_path);
        M.shutdown_code = 1;
        M.io_ends_process = 1;
    }
    pthread_mutex_unlock(&M.lock);
}

/* The local slave `pid` got through the handshake (caller holds M.lock;
 * the I/O thread's). */
void local_joined(pid_t pid)
{
    for (size_t i = 0; i < M.nchildren; i++) {
        child *ch = &M.children[i];
        if (ch->pid > 0 && ch->pid == pid) {
            ch->joined = 1;
            ch->failed_starts = 0;
        }
    }
}

/* Start local slaves that are due (without M.lock: fork takes a while).
 * Returns the time of the next restart, or `next`. */
long long restart_children(long long now, long long next)
{
    for (size_t i = 0; i < M.nchildren; i++) {
        child *ch = &M.children[i];
        if (ch->pid == 0) {
            if (ch->restart_at <= now)
                spawn_child(ch, now);
            else
                min_deadline(&next, ch->restart_at);
        }
    }
    return next;
}

/* The slave program beside this one: /proc/self/exe with its trailing
 * "-master" replaced by "-slave". Caller frees; NULL with the reason in
 * `why` when there is none. */
char *slave_beside(char *why, size_t n)
{
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len < 0) {
        snprintf(why, n, "readlink(/proc/self/exe): %s", strerror(errno));
        return NULL;
    }
    self[len] = '\0';
    static const char suffix[] = "-master";
    size_t stem = (size_t)len - (sizeof suffix - 1);
    if ((size_t)len < sizeof suffix - 1 || strcmp(self + stem, suffix) != 0) {
        snprintf(why, n, "this program's name (%s) does not end in '-master'",
                 self);
        return NULL;
    }
    char *path = ms_xmalloc(stem + sizeof "-slave");
    memcpy(path, self, stem);
    strcpy(path + stem, "-slave");
    if (access(path, X_OK) != 0) {
        snprintf(why, n, "cannot run the slave program %s: %s", path,
                 strerror(errno));
        free(path);
        return NULL;
    }
    return path;
}

/* The slave program of the local slaves, or the end of the run (status 2)
 * saying how to go on without them. Caller frees. */
char *find_slave_path(void)
{
    char why[PATH_MAX + 128];
    char *path = slave_beside(why, sizeof why);
    if (!path) {
        ms_log("error: cannot find the slave program: %s; run with --spawn 0 "
               "and start the slave program built with this one by hand (the "
               "master prints its command line)",
               why);
        exit(2);
    }
    return path;
}

/* The program named by `word`: itself if it holds a '/', else the first
 * executable of that name on $PATH. Caller frees; NULL if none. */
char *find_program(const char *word)
{
    if (strchr(word, '/'))
        return access(word, X_OK) == 0 ? strdup(word) : NULL;
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        char *full = ms_xmalloc(n + strlen(word) + 3);
        if (n == 0)
            strcpy(full, ".");
        else
            memcpy(full, path, n), full[n] = '\0';
        strcat(full, "/");
        strcat(full, word);
        if (access(full, X_OK) == 0)
            return full;
        free(full);
        path += n + (path[n] == ':');
    }
    return NULL;
}

/* The local slaves' threads together are the CPU count, each at least 1:
 * with as many slaves as CPUs (SPEC 8's default) one each, with fewer the
 * CPUs shared out (the first ones get one more when they do not divide),
 * so a default run does not oversubscribe the machine. */
void share_cpus(long cpus)
{
    long n = (long)M.nchildren;
    for (long i = 0; i < n; i++) {
        long share = cpus / n + (i < cpus % n);
        snprintf(M.children[i].threads, sizeof M.children[i].threads, "%ld",
                 share > 0 ? share : 1);
    }
}

/* The local slaves' command line: NAME-slave --fd 3 --threads N
 * [--verbose] (N: the child's share of the CPUs, set by spawn_child),
 * after the words of $MS_SLAVE_WRAPPER if it is set (a debugging aid, e.g.
 * "valgrind --log-file=/tmp/slave.%p": words split at white space, no
 * quoting; the first is looked up on $PATH). */
void slave_command_line(void)
{
    const char *wrap = getenv("MS_SLAVE_WRAPPER");
    size_t nwords;
    M.slave_argv = split_words(wrap, 6, &nwords);
    size_t k = nwords;
    M.exec_path = M.slave_path;
    if (nwords) {
        M.exec_path = find_program(M.slave_argv[0]);
        if (!M.exec_path) {
            ms_log("error: MS_SLAVE_WRAPPER: cannot find the program '%s'",
                   M.slave_argv[0]);
            exit(2);
        }
        ms_logv("local slaves run under: %s", wrap);
    }
    M.slave_argv[k++] = M.slave_path;
    M.slave_argv[k++] = "--fd";
    M.slave_argv[k++] = LOCAL_FD_ARG;
    M.slave_argv[k++] = "--threads";
    M.threads_word = k;
    M.slave_argv[k++] = "1"; /* each child's share, in spawn_child */
    if (M.opt.verbose)
        M.slave_argv[k++] = "--verbose";
    M.slave_argv[k] = NULL;
}

/* The environment of local slaves: ours without MS_TOKEN (their socket
 * pair needs no secret, and jobs have no business reading it). */
char **slave_environment(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = ms_xcalloc(n + 1, sizeof *envp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "MS_TOKEN=", 9) != 0)
            envp[k++] = environ[i];
    envp[k] = NULL;
    return envp;
}
