/* strings.c — strings (vector<char>): construction, str(), print and
 * eprint, compare, and quoting for runtime errors (msv_quote).
 *
 * A string is a vector<char>: an ms_vec whose elements are its bytes (no
 * terminating NUL; a string may contain NUL bytes), or NULL when empty.
 * String literals are emitted by the compiler as constants in that same
 * layout, { MS_RC_IMMORTAL, n, n, the n bytes }, so they are never freed
 * and never written (a write copies them first); the empty literal is NULL.
 */
#include "values.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "output.h"

/* bytes: borrowed, n of them. Returns a new string owned by the caller
 * (NULL when n is 0). */
ms_vec *ms_string_from_bytes(const uint8_t *bytes, int64_t n)
{
    if (n <= 0)
        return NULL;
    ms_vec *s = msv_alloc(1, n, n);
    memcpy(MSV_DATA(s), bytes, (size_t)n);
    return s;
}

/* Each ms_str_* returns a new string owned by the caller. */
ms_vec *ms_str_int(int64_t v)
{
    /* The digits written backwards from the end of buf, as "%" PRId64
     * would write them, without printf's cost (str() of an int is hot in
     * text building). */
    char buf[24];
    char *p = buf + sizeof buf;
    uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return ms_string_from_bytes((const uint8_t *)p, buf + sizeof buf - p);
}

ms_vec *ms_str_double(double v)
{
    char buf[64];
    int n = ms_format_double(v, buf);
    return ms_string_from_bytes((const uint8_t *)buf, n);
}

ms_vec *ms_str_bool(int8_t v)
{
    return v ? ms_string_from_bytes((const uint8_t *)"true", 4)
             : ms_string_from_bytes((const uint8_t *)"false", 5);
}

ms_vec *ms_str_char(uint8_t v)
{
    return ms_string_from_bytes(&v, 1);
}

ms_vec *ms_str_jobstate(int32_t v)
{
    static const char *const names[] = {
        [MS_STATE_RUNNING] = "running", [MS_STATE_FINISHED] = "finished",
        [MS_STATE_FAILED] = "failed", [MS_STATE_CANCELLED] = "cancelled",
    };
    if (v < 0 || v > MS_STATE_CANCELLED)
        ms_runtime_error(0, 0, "internal error: bad jobstate value");
    return ms_string_from_bytes((const uint8_t *)names[v], (int64_t)strlen(names[v]));
}

/* s: borrowed; its bytes as one line to the master (a forwarding slave's
 * job: output.h), or its bytes and a newline to f, with one fwrite when the line
 * fits a pipe's atomic write (so that on unbuffered stderr other
 * processes' lines cannot cut it), else under the stream's lock. */
static void put_string_line(FILE *f, const ms_vec *s)
{
    size_t n = s ? (size_t)s->len : 0;
    if (ms_output_hook &&
        ms_output_hook(f == stderr ? 2 : 1, n ? (const char *)MSV_DATA(s) : "", n))
        return;
    char line[4096];
    if (n < sizeof line) {
        if (n > 0)
            memcpy(line, MSV_DATA(s), n);
        line[n] = '\n';
        if (f == stderr)
            ms_err_write(line, n + 1);
        else
            fwrite(line, 1, n + 1, f);
        return;
    }
    if (f == stderr) { /* one piece, to keep it apart from a status line */
        char *big = ms_xmalloc(n + 1);
        memcpy(big, MSV_DATA(s), n);
        big[n] = '\n';
        ms_err_write(big, n + 1);
        free(big);
        return;
    }
    flockfile(f);
    fwrite(MSV_DATA(s), 1, n, f);
    fputc('\n', f);
    funlockfile(f);
}

void ms_print_string(const ms_vec *s)
{
    put_string_line(stdout, s);
}

void ms_eprint_string(const ms_vec *s)
{
    put_string_line(stderr, s);
}

/* a, b: borrowed. Unsigned bytes, a proper prefix first. */
int32_t ms_string_cmp(const ms_vec *a, const ms_vec *b)
{
    int64_t la = a ? a->len : 0, lb = b ? b->len : 0;
    int64_t n = la < lb ? la : lb;
    if (n > 0) {
        int c = memcmp(MSV_DATA(a), MSV_DATA(b), (size_t)n);
        if (c != 0)
            return c < 0 ? -1 : 1;
    }
    return la < lb ? -1 : la > lb ? 1 : 0;
}

/* values.h: how int(s) (text.c) and maps.c's `key "K" not in map` show
 * a string. */
void msv_quote(const ms_vec *s, char *out)
{
    int64_t n = s ? s->len : 0;
    const unsigned char *p = s ? MSV_DATA(s) : NULL;
    int64_t shown = n < MSV_QUOTE_SHOWN ? n : MSV_QUOTE_SHOWN;
    char *o = out;
    *o++ = '"';
    for (int64_t i = 0; i < shown; i++) {
        unsigned char c = p[i];
        switch (c) {
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        case '\0': *o++ = '\\'; *o++ = '0'; break;
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '"': *o++ = '\\'; *o++ = '"'; break;
        default:
            if (c >= 0x20 && c < 0x7f) {
                *o++ = (char)c;
            } else {
                static const char hex[] = "0123456789abcdef";
                *o++ = '\\'; *o++ = 'x';
                *o++ = hex[c >> 4]; *o++ = hex[c & 15];
            }
        }
    }
    *o++ = '"';
    if (shown < n) {
        memcpy(o, "...", 3);
        o += 3;
    }
    *o = '\0';
}
