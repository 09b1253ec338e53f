/* stack.h — per-thread stack limits for compiled code, and the SIGSEGV
 * handler (on an alternate stack) that reports an overflow the limit did
 * not catch. */
#ifndef MS_STACK_H
#define MS_STACK_H

#include <stddef.h>

#define MS_STACK_MARGIN (256u * 1024)       /* kept free below the limit */
#define MS_WORKER_STACK (64u * 1024 * 1024) /* slave worker threads */

#define MS_ALTSTACK_SIZE (64u * 1024)

/* Set this thread's limit from its real stack (pthread_getattr_np) and make
 * `alt` (MS_ALTSTACK_SIZE bytes, borrowed for the thread's whole life) its
 * alternate signal stack. Ends the process on failure. */
void ms_stack_init_thread(void *alt);

/* Install the SIGSEGV/SIGBUS handler: it writes "NAME: fatal: stack
 * overflow" (or "segmentation fault") and the text `what_next`, a string
 * with static storage, to stderr and calls _exit(1). */
void ms_stack_install_handler(const char *what_next);

/* Called by the handler (so only async-signal-safe work) before it exits,
 * with 1 for a stack overflow and 0 for another fault: the slave uses it to
 * report the running job failed. */
void ms_stack_set_fault_hook(void (*hook)(int overflow));

#endif
