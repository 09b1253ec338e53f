/* stack.c — stack limits (ms_stack_limit_ptr) and the last-resort SIGSEGV
 * handler. */
#include "stack.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "ms_abi.h"

/* Each thread's own; compiled code reads the limit through the pointer. */
static _Thread_local uintptr_t stack_limit;
static _Thread_local uintptr_t stack_low;

/* Set once before threads start, then read by the signal handler. */
static const char *segv_next = "";
static void (*fault_hook)(int overflow);

void ms_stack_set_fault_hook(void (*hook)(int overflow))
{
    fault_hook = hook;
}

uintptr_t *ms_stack_limit_ptr(void)
{
    return &stack_limit;
}

void ms_stack_init_thread(void *alt)
{
    pthread_attr_t attr;
    int rc = pthread_getattr_np(pthread_self(), &attr);
    if (rc != 0)
        ms_fatal("pthread_getattr_np: %s", strerror(rc));
    void *addr = NULL;
    size_t size = 0;
    rc = pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        ms_fatal("pthread_attr_getstack: %s", strerror(rc));
    stack_low = (uintptr_t)addr;
    stack_limit = (uintptr_t)addr + (size > 2 * MS_STACK_MARGIN
                                         ? MS_STACK_MARGIN : size / 2);

    /* An alternate stack, so the handler can run when the stack is gone. */
    stack_t ss = {.ss_sp = alt, .ss_size = MS_ALTSTACK_SIZE};
    if (sigaltstack(&ss, NULL) != 0)
        ms_fatal("sigaltstack: %s", strerror(errno));
}

static void put(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void on_segv(int sig, siginfo_t *info, void *ctx)
{
    (void)ctx;
    uintptr_t a = (uintptr_t)info->si_addr;
    int overflow = stack_low != 0 && a + 1024 * 1024 >= stack_low &&
                   a < stack_limit;
    ms_status_erase_now();
    put(ms_log_name());
    put(overflow ? ": fatal: stack overflow"
                 : sig == SIGBUS ? ": fatal: bus error"
                                 : ": fatal: segmentation fault");
    put(segv_next);
    put("\n");
    if (fault_hook)
        fault_hook(overflow);
    _exit(1);
}

void ms_stack_install_handler(const char *what_next)
{
    segv_next = what_next;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0 || sigaction(SIGBUS, &sa, NULL) != 0)
        ms_fatal("sigaction(SIGSEGV): %s", strerror(errno));
}
