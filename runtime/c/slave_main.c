/* slave_main.c — the slave's main(): its command line, the secret,
 * signals, connecting to the master and the handshake; then it starts the
 * workers, which do everything from there on.
 *
 * Locks: main() runs before the workers start and sets the read-only
 * fields of S (slave.h) without a lock. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "log.h"
#include "ms_abi.h"
#include "net.h"
#include "proto.h"
#include "ser.h"
#include "slave.h"
#include "stack.h"

struct slave S = {.fd = -1,
       .epfd = -1,
       .kickfd = -1,
       .qlock = PTHREAD_MUTEX_INITIALIZER,
       .rlock = PTHREAD_MUTEX_INITIALIZER,
       .slock = PTHREAD_MUTEX_INITIALIZER,
       .forward = 1};

_Noreturn void slave_exit(int code)
{
    fflush(stdout);
    _exit(code);
}

/* ------------------------------------------------------------- main */

static const char usage_text[] =
    "usage: %s --master HOST:PORT [options]\n"
    "Runs jobs for the master at HOST:PORT (retrying until it is up).\n"
    "  --threads N        run at most N jobs at a time (default: CPUs)\n"
    "  --token-file FILE  shared secret to prove to the master (else $MS_TOKEN)\n"
    "  --insecure         accept a master that does not authenticate itself\n"
    "  --no-forward       jobs print to this slave's stdout and stderr, not\n"
    "                     to the master's stderr\n"
    "  --share-cache MIB  keep at most MIB MiB of values shared by several\n"
    "                     jobs that no job uses now (default 512)\n"
    "  --token-stdin      read the secret (hex) from the first line of stdin,\n"
    "                     then exit when stdin closes (the master's --ssh)\n"
    "  --fd N             (local slaves) the master's socket pair is fd N\n"
    "  --launch-tag N     (set by the master's launchers) which one started\n"
    "                     this slave, for the master's --stats\n"
    "  --verbose          log the connection to stderr\n"
    "  --version          print the M/s and protocol versions and the\n"
    "                     program's fingerprint\n"
    "  --help             show this text\n";

int main(int argc, char **argv)
{
    ms_log_init(argv[0], 0);
    const char *master = NULL, *token_file = NULL;
    int verbose = 0, insecure = 0, token_stdin = 0;
    long fd = -1;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    S.threads = cpus > 0 ? cpus : 1;
    S.share_cache_bytes = (uint64_t)512 << 20;
    for (int i = 1; i < argc; i++) {
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(argv[i], '=');
        if (strncmp(argv[i], "--", 2) == 0 && eq &&
            (size_t)(eq - argv[i]) < sizeof name) {
            memcpy(name, argv[i], (size_t)(eq - argv[i]));
            name[eq - argv[i]] = '\0';
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", argv[i]);
        }
        int takes = !strcmp(name, "--master") || !strcmp(name, "--threads") ||
                    !strcmp(name, "--token-file") || !strcmp(name, "--fd") ||
                    !strcmp(name, "--share-cache") ||
                    !strcmp(name, "--launch-tag");
        if (takes && !val) {
            if (i + 1 >= argc)
                ms_usage_error("%s needs a value", name);
            val = argv[++i];
        } else if (!takes && val) {
            ms_usage_error("%s takes no value", name);
        }
        if (!strcmp(name, "--master")) {
            master = val;
        } else if (!strcmp(name, "--token-file")) {
            token_file = val;
        } else if (!strcmp(name, "--threads")) {
            char *end;
            errno = 0;
            long n = strtol(val, &end, 10);
            if (errno || end == val || *end || n < 1 || n > MS_MAX_THREADS)
                ms_usage_error("--threads takes an integer from 1 to %d, not '%s'",
                            MS_MAX_THREADS, val);
            S.threads = n;
        } else if (!strcmp(name, "--fd")) {
            char *end;
            errno = 0;
            fd = strtol(val, &end, 10);
            if (errno || end == val || *end || fd < 3 || fd > 1000000)
                ms_usage_error("--fd takes a descriptor from 3 up, "
                               "not '%s'", val);
        } else if (!strcmp(name, "--share-cache")) {
            char *end;
            errno = 0;
            long mib = strtol(val, &end, 10);
            if (errno || end == val || *end || mib < 0 || mib > (1L << 30))
                ms_usage_error("--share-cache takes mebibytes from 0 up, "
                               "not '%s'", val);
            S.share_cache_bytes = (uint64_t)mib << 20;
        } else if (!strcmp(name, "--launch-tag")) {
            char *end;
            errno = 0;
            unsigned long n = strtoul(val, &end, 10);
            if (errno || end == val || *end || val[0] == '-' || n > UINT32_MAX)
                ms_usage_error("--launch-tag takes an integer from 0 to %u, "
                               "not '%s'", UINT32_MAX, val);
            S.launch_tag = (uint32_t)n;
        } else if (!strcmp(name, "--token-stdin")) {
            token_stdin = 1;
        } else if (!strcmp(name, "--insecure")) {
            insecure = 1;
        } else if (!strcmp(name, "--no-forward")) {
            S.forward = 0;
        } else if (!strcmp(name, "--verbose")) {
            verbose = 1;
        } else if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
            printf(usage_text, ms_log_name());
            return 0;
        } else if (!strcmp(name, "--version")) {
            ms_print_version();
            return 0;
        } else {
            ms_usage_error("unknown option '%s'", argv[i]);
        }
    }
    if (!master && fd < 0)
        ms_usage_error("--master HOST:PORT is required");
    if (master && fd >= 0)
        ms_usage_error("--master and --fd exclude each other");
    if (token_stdin && token_file)
        ms_usage_error("--token-stdin and --token-file exclude each other");
    if (S.threads > MS_MAX_THREADS)
        S.threads = MS_MAX_THREADS;
    ms_log_init(argv[0], verbose);
    ms_hostport hp;
    char err[512];
    if (master) {
        if (ms_parse_hostport(master, &hp, err, sizeof err) != 0)
            ms_usage_error("--master: %s", err);
        snprintf(S.master, sizeof S.master, "%s", master);
    } else {
        /* A socket pair inherited from the master that started us. */
        struct stat st;
        errno = 0;
        if (fstat((int)fd, &st) != 0 || !S_ISSOCK(st.st_mode))
            ms_usage_error("--fd %ld is not a socket%s%s", fd,
                           errno ? ": " : "", errno ? strerror(errno) : "");
        if (fcntl((int)fd, F_SETFD, FD_CLOEXEC) != 0)
            ms_fatal("fcntl(FD_CLOEXEC): %s", strerror(errno));
        S.fd = (int)fd;
        S.local = 1;
        snprintf(S.master, sizeof S.master, "on fd %ld", fd);
    }
    ms_secret secret;
    if (token_stdin)
        token_from_stdin(&secret);
    else if (ms_secret_load(token_file, &secret, err, sizeof err) < 0)
        ms_usage_error("%s", err);
    /* Jobs have no business reading the secret. */
    unsetenv("MS_TOKEN");

    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &ign, NULL) != 0)
        ms_fatal("sigaction(SIGPIPE): %s", strerror(errno));
    ms_stack_install_handler(" in a job; the slave exits and the master runs "
                             "its other jobs elsewhere");
    ms_stack_set_fault_hook(report_fault);

    char check[256];
    for (uint32_t k = 0; k < ms_job_count; k++)
        if (ms_sig_check(ms_job_table[k].arg_sig, check, sizeof check) != 0 ||
            ms_sig_check(ms_job_table[k].ret_sig, check, sizeof check) != 0)
            ms_fatal("internal error: job %u: %s", k + 1, check);

    join_master(&hp, &secret, insecure);
    if (secret.data)
        OPENSSL_cleanse(secret.data, secret.len);
    free(secret.data);
    send_where(S.launch_tag);
    S.t_send = S.t_recv = ms_now_ms();
    S.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (S.epfd < 0)
        ms_fatal("epoll_create1: %s", strerror(errno));
    S.kickfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC | EFD_SEMAPHORE);
    if (S.kickfd < 0)
        ms_fatal("eventfd: %s", strerror(errno));
    /* The socket is edge-triggered: level-triggered, an event taken by
     * one worker is put back and wakes the next idle one, and so on, each
     * finding nothing to read. The kick eventfd stays level-triggered (a
     * semaphore: every kick must wake a worker, even two kicks that come
     * before any worker looks). */
    int fds[2] = {S.fd, S.kickfd};
    uint32_t trig[2] = {EPOLLET, 0};
    for (int i = 0; i < 2; i++) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE | trig[i],
                                 .data.fd = fds[i]};
        if (epoll_ctl(S.epfd, EPOLL_CTL_ADD, fds[i], &ev) != 0)
            ms_fatal("epoll_ctl: %s", strerror(errno));
    }
    if (S.forward)
        start_output();
    start_workers();
    /* The workers do everything from here on. */
    for (;;)
        pause();
}
