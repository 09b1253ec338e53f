/* master_output.c — the lines jobs printed on slaves (OUTPUT messages,
 * SPEC 12.6): checked like every message, made safe for a terminal, and
 * written to the master's stderr with the job and its slave in front
 * (docs/language.md gives the form). Called by master_conn.c's
 * handle_control, which closes the connection when this says no. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "master.h"
#include "proto.h"
#include "schedule.h"
#include "wire.h"

/* A job's name longer than this is cut in the prefix, so that a whole
 * line stays within one atomic write to a pipe (PIPE_BUF, 4096). */
#define NAME_MAX_SHOWN 200

int conn_output(conn *c, ms_header h, const uint8_t *p, char *why, size_t n)
{
    if (h.length < 2) {
        snprintf(why, n, "OUTPUT of %" PRIu32 " byte%s, without its stream",
                 h.length, ms_plural(h.length));
        return -1;
    }
    struct ms_job *j = ms_inflight_find(&c->load, h.jid);
    if (!j) {
        snprintf(why, n, "OUTPUT for job %" PRIu32 ", which it was not "
                 "running", h.jid);
        return -1;
    }
    uint8_t stream = p[1];
    const uint8_t *text = p + 2;
    uint32_t len = h.length - 2;
    char line[NAME_MAX_SHOWN + 64 + MS_MAX_LINE + 2];
    int k = snprintf(line, sizeof line, "[%.*s#%" PRIu32 " slave %" PRIu32
                     "%s] ", NAME_MAX_SHOWN,
                     ms_job_table[j->ordinal - 1].name, h.jid, c->id,
                     stream == MS_STREAM_STDERR ? " stderr" : "");
    size_t room = sizeof line - (size_t)k - 1;
    if (stream == MS_STREAM_STDOUT || stream == MS_STREAM_STDERR) {
        if (len > MS_MAX_LINE) {
            snprintf(why, n, "OUTPUT line of %" PRIu32 " bytes for job %"
                     PRIu32 ", over the limit of %d", len, h.jid,
                     MS_MAX_LINE);
            return -1;
        }
        ms_line_decode(text, len, line + k, room + 1);
    } else if (stream == MS_STREAM_DROPPED && len == 4) {
        uint32_t lost = ms_get_u32le(text);
        snprintf(line + k, room + 1, "%" PRIu32 " line%s of output dropped "
                 "(the slave's buffer was full)", lost, ms_plural(lost));
    } else {
        snprintf(why, n, "OUTPUT for job %" PRIu32 " on stream %u with %"
                 PRIu32 " byte%s", h.jid, stream, len, ms_plural(len));
        return -1;
    }
    size_t total = strlen(line);
    line[total++] = '\n';
    ms_err_write(line, total); /* one write(2), apart from --progress */
    return 0;
}
