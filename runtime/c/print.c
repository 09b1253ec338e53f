/* print.c — print(e) and the value formats of SPEC section 6. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ms_abi.h"

int ms_format_double(double v, char *out)
{
    if (isnan(v)) {
        memcpy(out, "nan", 4);
        return 3;
    }
    if (isinf(v)) {
        const char *s = v < 0 ? "-inf" : "inf";
        size_t n = strlen(s);
        memcpy(out, s, n + 1);
        return (int)n;
    }
    /* The smallest precision whose output reads back to the same double;
     * 17 significant digits always do. */
    int p = 17;
    char tmp[40];
    for (int q = 1; q < 17; q++) {
        snprintf(tmp, sizeof tmp, "%.*g", q, v);
        if (strtod(tmp, NULL) == v) {
            p = q;
            break;
        }
    }
    int n = snprintf(out, 32, "%.*g", p < 6 ? 6 : p, v);
    return n;
}


const char *ms_jobstate_name(int32_t v)
{
    switch (v) {
    case MS_STATE_RUNNING: return "running";
    case MS_STATE_FINISHED: return "finished";
    case MS_STATE_FAILED: return "failed";
    case MS_STATE_CANCELLED: return "cancelled";
    default: return "invalid-jobstate";
    }
}

void ms_print_int(int64_t v)
{
    printf("%" PRId64 "\n", v);
}

void ms_print_double(double v)
{
    char buf[40];
    ms_format_double(v, buf);
    fputs(buf, stdout);
    putchar('\n');
}

void ms_print_bool(int8_t v)
{
    fputs(v ? "true\n" : "false\n", stdout);
}

void ms_print_char(uint8_t v)
{
    putchar(v);
    putchar('\n');
}

void ms_print_jobstate(int32_t v)
{
    fputs(ms_jobstate_name(v), stdout);
    putchar('\n');
}
