/* master_launch_srun.c — --srun: inside a Slurm allocation (SLURM_JOB_ID
 * set), the slaves start through Slurm's srun ($MS_SRUN_COMMAND, default
 * "srun", split at white space): one srun, one slave per task of the
 * allocation, each with --threads equal to the task's CPUs
 * (SLURM_CPUS_PER_TASK, else 1, Slurm's own default).
 *
 * The secret goes to the slaves in the environment srun passes on to its
 * tasks (MS_TOKEN, which the slave removes from its own environment before
 * any job runs), never on a command line. srun's standard input is
 * /dev/null; its output, the slaves', goes to the master's stderr.
 *
 * Locks: start_srun_slaves runs in main() before the I/O thread starts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "log.h"
#include "master.h"

/* The usage check of main(): --srun outside an allocation is an error
 * (status 2). */
void check_srun_usage(void)
{
    const char *job = getenv("SLURM_JOB_ID");
    if (!job || !*job)
        ms_usage_error("--srun works only inside a Slurm allocation "
                       "(SLURM_JOB_ID is not set): run the master from an "
                       "sbatch script or under salloc");
}

/* The task's CPUs: SLURM_CPUS_PER_TASK when set, else 1. */
static long task_cpus(void)
{
    const char *v = getenv("SLURM_CPUS_PER_TASK");
    if (!v || !*v)
        return 1;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < 1)
        return 1;
    return n > MS_MAX_THREADS ? MS_MAX_THREADS : n;
}

/* The host slaves connect back to: --advertise, the --listen host when it
 * names one, else our host name (the node the master runs on, which the
 * allocation's nodes resolve). */
static void advertise(const ms_hostport *bound, char *out, size_t n)
{
    if (M.opt.advertise)
        snprintf(out, n, "%s", M.opt.advertise);
    else if (!is_wildcard(bound->host))
        snprintf(out, n, "%s", bound->host);
    else if (gethostname(out, n) != 0)
        snprintf(out, n, "localhost");
    out[n - 1] = '\0';
}

/* main(), after the listening socket is bound, before the I/O thread:
 * the srun of M.launched[at]. */
void start_srun_slaves(size_t at)
{
    launched *l = &M.launched[at];
    size_t nw;
    char **argv = command_words("MS_SRUN_COMMAND", "srun", 16, &nw);
    ms_hostport bound;
    bound_hostport(&bound);
    char host[256], addr[MS_ADDR_LEN], threads[24], tag[24];
    advertise(&bound, host, sizeof host);
    join_hostport(host, bound.port, addr, sizeof addr);
    snprintf(threads, sizeof threads, "%ld", task_cpus());
    snprintf(tag, sizeof tag, "%zu", at + 1);
    size_t k = nw;
    argv[k++] = M.slave_path;
    argv[k++] = "--master";
    argv[k++] = addr;
    argv[k++] = "--threads";
    argv[k++] = threads;
    argv[k++] = "--launch-tag";
    argv[k++] = tag;
    if (!M.auth_required)
        argv[k++] = "--insecure";
    if (M.opt.verbose)
        argv[k++] = "--verbose";
    argv[k] = NULL;

    /* The slaves' environment (ours without MS_TOKEN), then the secret as
     * MS_TOKEN. */
    size_t e = 0;
    while (M.slave_envp[e])
        e++;
    char **envp = ms_xcalloc(e + 2, sizeof *envp);
    memcpy(envp, M.slave_envp, e * sizeof *envp);
    char *token = NULL;
    if (M.auth_required) {
        /* The secret holds no NUL byte (ms_secret_load); an environment
         * variable can hold any other byte. */
        token = ms_xmalloc(9 + M.secret.len + 1);
        memcpy(token, "MS_TOKEN=", 9);
        memcpy(token + 9, M.secret.data, M.secret.len);
        token[9 + M.secret.len] = '\0';
        envp[e++] = token;
    }
    envp[e] = NULL;
    ms_logv("%s: slaves connect back to %s with %s thread%s each", l->what,
            addr, threads, strcmp(threads, "1") ? "s" : "");
    if (launch_process(l, argv, envp, NULL) != 0) {
        l->pid = 0;
        l->status = -1;
    }
    if (token) {
        OPENSSL_cleanse(token, strlen(token));
        free(token);
    }
    free(envp);
}
