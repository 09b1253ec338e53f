/* control.h — what the master's and the slave's versions of the SPEC 12.5
 * builtins (wait_any, wait, sleep: master_calls.c and slave_worker.c)
 * share: durations as SPEC reads them, deadlines on the monotonic clock. */
#ifndef MS_CONTROL_H
#define MS_CONTROL_H

#include <pthread.h>
#include <time.h>

/* A timeout or duration in seconds as SPEC 12.5 reads it: negative or NaN
 * counts as 0; +inf stays (no end). */
double ms_duration(double seconds);

/* ms_clock() + seconds, for a deadline; +inf when seconds is +inf. */
double ms_deadline_after(double seconds);

/* `seconds` (> 0) as a relative timespec, cut at one day: a longer wait
 * is waited for in steps, so that no timespec overflows. */
struct timespec ms_wait_step(double seconds);

/* Wait on cv (mutex held by the caller, and again on return) until
 * signalled or the monotonic `deadline` (ms_clock's seconds; +inf: none)
 * passes, whichever is first; spurious wake-ups are the caller's loop's.
 * `cv_clock` is the clock cv was made with (CLOCK_REALTIME for a
 * PTHREAD_COND_INITIALIZER one). Returns 0 once the deadline has passed,
 * 1 otherwise. */
int ms_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu,
                       clockid_t cv_clock, double deadline);

#endif
