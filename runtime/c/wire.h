/* wire.h — framing: the 12-byte message header, little-endian integers
 * built from byte shifts, and complete reads and writes on sockets. */
#ifndef MS_WIRE_H
#define MS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "ms_abi.h"

#define MS_HDR_LEN 12

/* A message header: [ordinal; jid; length] as three u32 little-endian. */
typedef struct ms_header {
    uint32_t ordinal; /* 0: control message; k > 0: job k */
    uint32_t jid;     /* job id (0 in control messages about no job) */
    uint32_t length;  /* payload bytes that follow */
} ms_header;

static inline void ms_put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t ms_get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline void ms_put_u64le(uint8_t *p, uint64_t v)
{
    ms_put_u32le(p, (uint32_t)v);
    ms_put_u32le(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t ms_get_u64le(const uint8_t *p)
{
    return (uint64_t)ms_get_u32le(p) | (uint64_t)ms_get_u32le(p + 4) << 32;
}

void ms_header_encode(uint8_t out[MS_HDR_LEN], ms_header h);
ms_header ms_header_decode(const uint8_t in[MS_HDR_LEN]);

/* Append one whole message (header, then `len` bytes of `payload`, which is
 * borrowed) to `out` (borrowed). */
void ms_msg_append(ms_buf *out, uint32_t ordinal, uint32_t jid,
                   const void *payload, uint32_t len);

/* Complete I/O on a blocking socket or pipe. EINTR is retried, short
 * transfers are continued. ms_write_full never raises SIGPIPE on sockets.
 * ms_read_full waits at most `timeout_ms` in all (-1: forever).
 * Both return 0, or a negative errno: -ETIMEDOUT when the time ran out and
 * -ECONNRESET when the peer closed the connection before `n` bytes came. */
int ms_write_full(int fd, const void *buf, size_t n);
int ms_read_full(int fd, void *buf, size_t n, int timeout_ms);

/* True for errors that mean "try again later" on a non-blocking fd. */
int ms_errno_is_retry(int err);

#endif
