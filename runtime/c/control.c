/* control.c — the SPEC 12.5 builtins that master and slave share (clock,
 * fail) and the time arithmetic of the others (control.h). */
#include "control.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "ms_abi.h"
#include "proto.h"
#include "values.h"

double ms_clock(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        ms_fatal("clock_gettime(CLOCK_MONOTONIC): %s", strerror(errno));
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* fail(msg): the runtime error whose message is msg (borrowed). A NUL byte
 * ends the message, and it is cut at MS_MAX_TEXT bytes, the longest
 * FAILURE text a slave sends. */
_Noreturn void ms_fail(const ms_vec *msg, int32_t line, int32_t col)
{
    char text[MS_MAX_TEXT];
    size_t n = msg ? (size_t)msg->len : 0;
    if (n > sizeof text - 1)
        n = sizeof text - 1;
    if (n)
        memcpy(text, MSV_DATA(msg), n);
    text[n] = '\0';
    ms_runtime_error(line, col, text);
}

double ms_duration(double seconds)
{
    return isnan(seconds) || seconds < 0 ? 0.0 : seconds;
}

double ms_deadline_after(double seconds)
{
    return isinf(seconds) ? seconds : ms_clock() + seconds;
}

#define MAX_STEP_S 86400.0

struct timespec ms_wait_step(double seconds)
{
    if (!(seconds < MAX_STEP_S))
        seconds = MAX_STEP_S;
    double whole = floor(seconds);
    return (struct timespec){.tv_sec = (time_t)whole,
                             .tv_nsec = (long)((seconds - whole) * 1e9)};
}

int ms_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu,
                       clockid_t cv_clock, double deadline)
{
    if (isinf(deadline)) {
        pthread_cond_wait(cv, mu);
        return 1;
    }
    double left = deadline - ms_clock();
    if (left <= 0)
        return 0;
    struct timespec step = ms_wait_step(left), ts;
    if (clock_gettime(cv_clock, &ts) != 0)
        ms_fatal("clock_gettime: %s", strerror(errno));
    ts.tv_sec += step.tv_sec;
    ts.tv_nsec += step.tv_nsec;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    int rc = pthread_cond_timedwait(cv, mu, &ts);
    if (rc != 0 && rc != ETIMEDOUT)
        ms_fatal("pthread_cond_timedwait: %s", strerror(rc));
    return ms_clock() < deadline;
}
