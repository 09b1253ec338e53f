/* print.c — print(e) and eprint(e) of scalars (strings: strings.c), and
 * the value formats of SPEC section 6. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ms_abi.h"
#include "output.h"

int (*ms_output_hook)(int stream, const char *text, size_t n);

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

/* One line, `n` bytes of `text` and its newline (text has room for it), to
 * the master (a forwarding slave's job: output.h), or to f with one
 * fwrite, or to stderr with one ms_err_write (which keeps it apart from a
 * status line): one write(2), so a line is never cut by the lines of
 * other processes writing the same pipe. */
static void put_line(FILE *f, char *text, size_t n)
{
    if (ms_output_hook && ms_output_hook(f == stderr ? 2 : 1, text, n))
        return;
    text[n] = '\n';
    if (f == stderr)
        ms_err_write(text, n + 1);
    else
        fwrite(text, 1, n + 1, f);
}

static void put_int(FILE *f, int64_t v)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%" PRId64, v);
    put_line(f, buf, (size_t)n);
}

static void put_double(FILE *f, double v)
{
    char buf[40];
    put_line(f, buf, (size_t)ms_format_double(v, buf));
}

static void put_bool(FILE *f, int8_t v)
{
    char buf[8];
    memcpy(buf, v ? "true" : "false", v ? 4 : 5);
    put_line(f, buf, v ? 4 : 5);
}

static void put_char(FILE *f, uint8_t v)
{
    char buf[2] = {(char)v};
    put_line(f, buf, 1);
}

static void put_jobstate(FILE *f, int32_t v)
{
    char buf[24];
    const char *name = ms_jobstate_name(v);
    size_t n = strlen(name);
    memcpy(buf, name, n);
    put_line(f, buf, n);
}

void ms_print_int(int64_t v) { put_int(stdout, v); }
void ms_print_double(double v) { put_double(stdout, v); }
void ms_print_bool(int8_t v) { put_bool(stdout, v); }
void ms_print_char(uint8_t v) { put_char(stdout, v); }
void ms_print_jobstate(int32_t v) { put_jobstate(stdout, v); }

void ms_eprint_int(int64_t v) { put_int(stderr, v); }
void ms_eprint_double(double v) { put_double(stderr, v); }
void ms_eprint_bool(int8_t v) { put_bool(stderr, v); }
void ms_eprint_char(uint8_t v) { put_char(stderr, v); }
void ms_eprint_jobstate(int32_t v) { put_jobstate(stderr, v); }
