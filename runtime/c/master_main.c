/* master_main.c — the master's main(): its command line, and start-up:
 * the listening socket, the shared secret, local slaves' command line,
 * signals, the I/O thread; then the master block (ms_master_main).
 *
 * Locks: main() runs before the I/O thread starts and sets the read-only
 * fields of M (master.h) without M.lock. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "auth.h"
#include "files.h"
#include "log.h"
#include "master.h"
#include "share.h"
#include "ms_abi.h"
#include "net.h"
#include "proto.h"
#include "ser.h"
#include "stack.h"

/* ------------------------------------------------------------ options */

static const char usage_text[] =
    "usage: %s [options] [--] [ARG ...]\n"
    "Runs the program's master block; its jobs run on slaves. The first\n"
    "argument that is not an option (or all after --) and the rest are the\n"
    "program's, its args().\n"
    "  --spawn N               start N local slaves (default: the number of\n"
    "                          CPUs, at least 2; 0 with --listen); their\n"
    "                          --threads add up to the CPUs, 1 at least each\n"
    "  --listen HOST:PORT      listen there for slaves started by hand\n"
    "                          (default 127.0.0.1:0, a free loopback port)\n"
    "  --ssh HOST[,HOST...]    start a slave on each host (twice: two) with\n"
    "                          ssh ($MS_SSH_COMMAND, default ssh: the user's\n"
    "                          config and keys; HOST may be user@host)\n"
    "  --srun                  inside a Slurm allocation: a slave per task,\n"
    "                          started with srun ($MS_SRUN_COMMAND)\n"
    "  --slave-path PATH       the slave program on the hosts (default: the\n"
    "                          same absolute path as this one's NAME-slave)\n"
    "  --advertise HOST        the host launched slaves connect back to\n"
    "                          (default: the address the route to each host\n"
    "                          leaves from; with --srun, this host's name)\n"
    "                          With --ssh or --srun the master listens on\n"
    "                          0.0.0.0:0 (or --listen), makes a fresh secret\n"
    "                          unless given one, and starts no local slaves\n"
    "                          unless --spawn says so\n"
    "  --token-file FILE       shared secret slaves must prove (else $MS_TOKEN;\n"
    "                          with neither, slaves started by hand get a\n"
    "                          secret file the master prints)\n"
    "  --insecure              no authentication, no protection of messages\n"
    "                          (allows a non-loopback --listen without a secret)\n"
    "  --max-attempts N        runs in all of a job whose slaves are lost\n"
    "                          (default 3)\n"
    "  --max-retries N         deprecated: --max-attempts N+1\n"
    "  --heartbeat-timeout S   seconds of silence before a slave counts as\n"
    "                          lost (default 10)\n"
    "  --max-message BYTES     largest message accepted (default 1073741824)\n"
    "  --verbose               log connections and slaves to stderr\n"
    "  --stats                 print job and slave statistics at the end\n"
    "  --progress              while stderr is a terminal, keep a status line\n"
    "                          on it: jobs finished, running, waiting and\n"
    "                          failed, slaves and threads, time elapsed\n"
    "  --trace FILE            write the run's timeline to FILE as Chrome\n"
    "                          trace events (Perfetto, chrome://tracing): a\n"
    "                          span per job attempt, a track per slave lane\n"
    "  --version               print the M/s and protocol versions and the\n"
    "                          program's fingerprint\n"
    "  --help                  show this text\n";

static long parse_long(const char *opt, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        ms_usage_error("%s takes an integer from %ld to %ld, not '%s'", opt, min,
                    max, s);
    return v;
}

/* SPEC 12.1: the program's arguments start at argv[i] when it is `--`
 * (they follow it) or not an option (`-` alone is not one); then they are
 * stored, all of them, a later `--` included, and 1 is returned. */
static int program_args_start(int argc, char **argv, int i)
{
    const char *a = argv[i];
    if (!strcmp(a, "--")) {
        ms_program_args_set(argc - i - 1, argv + i + 1);
        return 1;
    }
    if (a[0] != '-' || a[1] == '\0') {
        ms_program_args_set(argc - i, argv + i);
        return 1;
    }
    return 0;
}

static void parse_options(int argc, char **argv, options *o)
{
    *o = (options){.spawn = -1, .max_attempts = 3, .heartbeat_s = 10.0,
                   .max_message = 1u << 30};
    for (int i = 1; i < argc; i++) {
        if (program_args_start(argc, argv, i))
            break;
        const char *a = argv[i];
        const char *val = NULL;
        char name[64];
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) == 0 && eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = '\0';
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
        }
#define TAKES_VALUE()                                                     \
    do {                                                                  \
        if (!val) {                                                       \
            if (i + 1 >= argc)                                            \
                ms_usage_error("%s needs a value", name);                    \
            val = argv[++i];                                              \
        }                                                                 \
    } while (0)
#define NO_VALUE()                                                        \
    do {                                                                  \
        if (val)                                                          \
            ms_usage_error("%s takes no value", name);                       \
    } while (0)
        if (!strcmp(name, "--spawn")) {
            TAKES_VALUE();
            o->spawn = parse_long(name, val, 0, 1024);
        } else if (!strcmp(name, "--listen")) {
            TAKES_VALUE();
            o->listen = val;
        } else if (!strcmp(name, "--token-file")) {
            TAKES_VALUE();
            o->token_file = val;
        } else if (!strcmp(name, "--ssh")) {
            /* Repeating it adds hosts. */
            TAKES_VALUE();
            if (!*val)
                ms_usage_error("--ssh needs at least one host");
            size_t had = o->ssh ? strlen(o->ssh) : 0;
            o->ssh = ms_xrealloc(o->ssh, had + strlen(val) + 2);
            if (had)
                o->ssh[had++] = ',';
            strcpy(o->ssh + had, val);
        } else if (!strcmp(name, "--srun")) {
            NO_VALUE();
            o->srun = 1;
        } else if (!strcmp(name, "--slave-path")) {
            TAKES_VALUE();
            if (val[0] != '/')
                ms_usage_error("--slave-path takes an absolute path, not '%s'",
                               val);
            o->slave_path = val;
        } else if (!strcmp(name, "--advertise")) {
            TAKES_VALUE();
            if (!*val || strchr(val, '/') || strchr(val, ' '))
                ms_usage_error("--advertise takes a host name or address, "
                               "not '%s'", val);
            o->advertise = val;
        } else if (!strcmp(name, "--max-attempts")) {
            TAKES_VALUE();
            o->max_attempts = parse_long(name, val, 1, 1000000);
        } else if (!strcmp(name, "--max-retries")) {
            /* Deprecated: it counted runs, which its name did not say. It
             * now means what it says: N retries after the first run. */
            TAKES_VALUE();
            o->max_attempts = parse_long(name, val, 0, 999999) + 1;
            ms_log("warning: --max-retries is deprecated: %ld %s %ld %s in "
                   "all; use --max-attempts %ld",
                   o->max_attempts - 1,
                   o->max_attempts == 2 ? "retry is" : "retries are",
                   o->max_attempts, o->max_attempts == 1 ? "attempt" : "attempts",
                   o->max_attempts);
        } else if (!strcmp(name, "--max-message")) {
            TAKES_VALUE();
            o->max_message =
                (uint32_t)parse_long(name, val, MS_HANDSHAKE_MAX, UINT32_MAX);
        } else if (!strcmp(name, "--heartbeat-timeout")) {
            TAKES_VALUE();
            char *end;
            errno = 0;
            double s = strtod(val, &end);
            if (errno || end == val || *end || !(s >= 0.05 && s <= 86400))
                ms_usage_error("--heartbeat-timeout takes seconds from 0.05 to "
                            "86400, not '%s'", val);
            o->heartbeat_s = s;
        } else if (!strcmp(name, "--verbose")) {
            NO_VALUE();
            o->verbose = 1;
        } else if (!strcmp(name, "--insecure")) {
            NO_VALUE();
            o->insecure = 1;
        } else if (!strcmp(name, "--stats")) {
            NO_VALUE();
            o->stats = 1;
        } else if (!strcmp(name, "--progress")) {
            NO_VALUE();
            o->progress = 1;
        } else if (!strcmp(name, "--trace")) {
            TAKES_VALUE();
            if (!*val)
                ms_usage_error("--trace needs a file name");
            o->trace = val;
        } else if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
            printf(usage_text, ms_log_name());
            exit(0);
        } else if (!strcmp(name, "--version")) {
            NO_VALUE();
            ms_print_version();
            exit(0);
        } else {
            ms_usage_error("unknown option '%s'", a);
        }
#undef TAKES_VALUE
#undef NO_VALUE
    }
}

struct master M = {.listen_fd = -1, .wake_fd = -1, .sig_fd = -1, .ep_fd = -1,
       .lock = PTHREAD_MUTEX_INITIALIZER,
       .done_cv = PTHREAD_COND_INITIALIZER,
       .reader_cv = PTHREAD_COND_INITIALIZER, .main_wake_fd = -1,
       .shutdown_code = -1};

/* ------------------------------------------------------------- main */

/* The table of launchers from --ssh and --srun (M.launched): one ssh per
 * listed host, then one srun. Returns whether there are any. */
static int make_launched(void)
{
    if (M.opt.srun)
        check_srun_usage();
    size_t n = M.opt.srun ? 1 : 0;
    if (M.opt.ssh) {
        for (const char *p = M.opt.ssh; *p; p++)
            n += *p == ',';
        n++;
    }
    if (!n) {
        if (M.opt.slave_path || M.opt.advertise)
            ms_usage_error("%s goes with --ssh or --srun",
                           M.opt.slave_path ? "--slave-path" : "--advertise");
        return 0;
    }
    M.launched = ms_xcalloc(n, sizeof *M.launched);
    size_t k = 0;
    for (char *save = NULL, *h = M.opt.ssh ? strtok_r(M.opt.ssh, ",", &save)
                                           : NULL;
         h; h = strtok_r(NULL, ",", &save)) {
        if (h[0] == '-')
            ms_usage_error("--ssh: '%s' is not a host", h);
        launched *l = &M.launched[k++];
        l->kind = L_SSH;
        l->host = ms_xstrdup(h);
        size_t len = strlen(h) + 32;
        l->what = ms_xmalloc(len);
        snprintf(l->what, len, "ssh slave on %s", h);
        l->in_fd = -1;
    }
    if (M.opt.ssh && k == 0)
        ms_usage_error("--ssh needs at least one host");
    if (M.opt.srun) {
        launched *l = &M.launched[k++];
        l->kind = L_SRUN;
        l->what = ms_xstrdup("srun slaves");
        l->in_fd = -1;
    }
    M.nlaunched = k;
    return 1;
}

static long cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

static void check_job_table(void)
{
    char err[256];
    for (uint32_t k = 0; k < ms_job_count; k++) {
        const ms_job_entry *e = &ms_job_table[k];
        if (!e->name || !e->arg_sig || !e->ret_sig || !e->run)
            ms_fatal("internal error: job table entry %u is incomplete", k + 1);
        if (ms_sig_check(e->arg_sig, err, sizeof err) != 0 ||
            ms_sig_check(e->ret_sig, err, sizeof err) != 0)
            ms_fatal("internal error: job '%s': %s", e->name, err);
    }
}

int main(int argc, char **argv)
{
    ms_log_init(argv[0], 0);
    parse_options(argc, argv, &M.opt);
    in_budget_init();
    ms_log_init(argv[0], M.opt.verbose);
    M.t_start = ms_now_ms();
    check_job_table();
    /* --progress writes nothing unless someone watches stderr. */
    if (M.opt.progress && !isatty(STDERR_FILENO))
        M.opt.progress = 0;
    if (M.opt.trace)
        trace_open(M.opt.trace);
    ms_program_fingerprint(M.fingerprint);
    ms_share_hook = ms_share_hook_master; /* arguments encoded once */

    /* Signals: SIGINT, SIGTERM and SIGCHLD arrive through a signalfd read
     * by the I/O thread; every thread blocks them, from before the secret
     * file exists (a signal then ends the run through the I/O thread,
     * which removes the file). */
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &ign, NULL) != 0)
        ms_fatal("sigaction(SIGPIPE): %s", strerror(errno));
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (rc != 0)
        ms_fatal("pthread_sigmask: %s", strerror(rc));
    M.sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (M.sig_fd < 0)
        ms_fatal("signalfd: %s", strerror(errno));
    char err[512];
    int launching = make_launched();
    int have = ms_secret_load(M.opt.token_file, &M.secret, err, sizeof err);
    if (have < 0)
        ms_usage_error("%s", err);
    long spawn = M.opt.spawn;
    if (spawn < 0)
        spawn = M.opt.listen || launching ? 0
                                          : (cpu_count() > 2 ? cpu_count() : 2);
    /* Local slaves come through socket pairs: only slaves started by hand
     * (--listen, or --spawn 0 on a loopback port of its own) or by a
     * launcher (SPEC 14: off loopback) need a TCP port. */
    int by_hand = M.opt.listen || spawn == 0 || launching;
    ms_hostport hp;
    int loopback = 1;
    if (by_hand) {
        const char *where = M.opt.listen ? M.opt.listen
                            : launching  ? "0.0.0.0:0"
                                         : "127.0.0.1:0";
        if (ms_parse_hostport(where, &hp, err, sizeof err) != 0)
            ms_usage_error("--listen: %s", err);
        /* Check first, bind second: a master that may not listen there
         * says so before its port is open even for a moment. */
        loopback = ms_host_is_loopback(&hp, err, sizeof err);
        if (loopback < 0)
            ms_usage_error("--listen: %s", err);
    }
    if (!have && !M.opt.insecure && !loopback && spawn == 0 && !launching) {
        ms_log("error: refusing to listen on %s:%s without a shared secret: "
               "set MS_TOKEN (in the environment of the master and of its "
               "slaves) or pass --token-file FILE to both (or --insecure)",
               hp.host, hp.port);
        exit(2);
    }
    const char *secret_file = NULL;
    int fresh = !have && !M.opt.insecure && by_hand;
    if (fresh) {
        /* A fresh secret for the slaves of this run started by hand, in a
         * private file (local slaves need none: their socket pairs are
         * theirs alone), or for the launched ones, which get it from the
         * master (SPEC 14). */
        if (ms_secret_random(&M.secret, err, sizeof err) != 0)
            ms_fatal("%s", err);
        have = 1;
        if (loopback && !launching) {
            secret_file = secret_file_write(&M.secret, err, sizeof err);
            if (!secret_file) {
                ms_log("error: %s", err);
                return 1;
            }
        }
    }
    /* Slaves on TCP and the master prove the secret to each other, and
     * every message after the handshake is sealed; --insecure turns both
     * off. */
    M.auth_required = have && !M.opt.insecure;
    if (by_hand) {
        M.listen_fd = ms_listen(&hp, &loopback, M.bound, M.local_addr, err,
                                sizeof err);
        if (M.listen_fd < 0) {
            ms_log("error: %s", err);
            exit(1); /* exit, not return: the secret file goes (atexit) */
        }
    }
    if (by_hand && !M.auth_required)
        ms_log("warning: listening on %s without authentication (%s): anyone "
               "who can reach it can run jobs, read their arguments and forge "
               "their results",
               M.bound, M.opt.insecure ? "--insecure" : "no shared secret");
    if (by_hand)
        ms_log("listening on %s", M.bound);
    if (secret_file) {
        char why[512];
        char *slave = slave_beside(why, sizeof why);
        ms_log("start slaves with: %s --master %s --token-file %s",
               slave ? slave : "SLAVE", M.local_addr, secret_file);
        if (!slave)
            ms_log("(SLAVE: the slave program built with this master; %s)",
                   why);
        free(slave);
    } else if (fresh) {
        ms_log("note: no secret was given, so only the slaves this master "
               "starts can join; set MS_TOKEN or --token-file for slaves "
               "started by hand");
    }

    if (spawn > 0) {
        M.slave_path = find_slave_path();
        slave_command_line();
        M.children = ms_xcalloc((size_t)spawn, sizeof *M.children);
        M.nchildren = (size_t)spawn;
        share_cpus(cpu_count());
    }
    M.slave_envp = slave_environment();
    if (launching) {
        /* The slaves on other hosts run --slave-path, else the program at
         * the same absolute path as ours beside us (M.slave_path while
         * they start; the local slaves' program afterwards). */
        char *local = M.slave_path, why[512];
        M.slave_path = M.opt.slave_path ? ms_xstrdup(M.opt.slave_path)
                                        : slave_beside(why, sizeof why);
        if (!M.slave_path)
            ms_usage_error("cannot find the slave program: %s; name it with "
                           "--slave-path PATH", why);
        size_t nssh = M.nlaunched - (M.opt.srun ? 1 : 0);
        if (nssh)
            start_ssh_slaves(0);
        if (M.opt.srun)
            start_srun_slaves(nssh);
        free(M.slave_path);
        M.slave_path = local;
    }
    M.hb_timeout_ms = (long long)(M.opt.heartbeat_s * 1000.0);
    M.hb_interval_ms = M.hb_timeout_ms / 3 > 0 ? M.hb_timeout_ms / 3 : 1;

    M.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    M.main_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (M.wake_fd < 0 || M.main_wake_fd < 0)
        ms_fatal("eventfd: %s", strerror(errno));
    M.ep_fd = epoll_create1(EPOLL_CLOEXEC);
    if (M.ep_fd < 0)
        ms_fatal("epoll_create1: %s", strerror(errno));
    ep_add(M.wake_fd, TAG_WAKE);
    ep_add(M.sig_fd, TAG_SIGNAL);
    if (M.listen_fd >= 0) {
        ep_add(M.listen_fd, TAG_LISTEN);
        M.listen_events = EPOLLIN;
    }

    static uint8_t altstack[MS_ALTSTACK_SIZE];
    ms_stack_init_thread(altstack);
    ms_stack_install_handler(" in the master");

    rc = pthread_create(&M.io, NULL, io_main, NULL);
    if (rc != 0)
        ms_fatal("pthread_create: %s", strerror(rc));
    M.io_started = 1;

    ms_master_main();
    master_exit(0);
}
