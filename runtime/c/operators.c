/* operators.c — runtime errors of operators whose message names a value
 * (a shift count out of range); compiled code checks, this reports. */
#include "ms_abi.h"

#include <stdio.h>

_Noreturn void ms_shift_error(int64_t count, int32_t line, int32_t col)
{
    /* Thread-local rather than on the stack: ms_runtime_error may unwind
     * (a failing job) before the message has been used up. */
    static _Thread_local char msg[64];
    snprintf(msg, sizeof msg, "shift count %lld out of range 0..63",
             (long long)count);
    ms_runtime_error(line, col, msg);
}
