/* wire.c — framing helpers and complete reads and writes. */
#include "wire.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "ser.h"

void ms_header_encode(uint8_t out[MS_HDR_LEN], ms_header h)
{
    ms_put_u32le(out, h.ordinal);
    ms_put_u32le(out + 4, h.jid);
    ms_put_u32le(out + 8, h.length);
}

ms_header ms_header_decode(const uint8_t in[MS_HDR_LEN])
{
    ms_header h = {ms_get_u32le(in), ms_get_u32le(in + 4), ms_get_u32le(in + 8)};
    return h;
}

void ms_msg_append(ms_buf *out, uint32_t ordinal, uint32_t jid,
                   const void *payload, uint32_t len)
{
    ms_buf_reserve(out, MS_HDR_LEN + (uint64_t)len);
    ms_header h = {ordinal, jid, len};
    ms_header_encode(out->data + out->len, h);
    out->len += MS_HDR_LEN;
    if (len)
        memcpy(out->data + out->len, payload, len);
    out->len += len;
}

int ms_errno_is_retry(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

int ms_write_full(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    int is_socket = -1;
    while (n > 0) {
        ssize_t w;
        if (is_socket != 0) {
            w = send(fd, p, n, MSG_NOSIGNAL);
            if (w < 0 && errno == ENOTSOCK) {
                is_socket = 0;
                continue;
            }
            is_socket = 1;
        } else {
            w = write(fd, p, n);
        }
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
                    return -errno;
                continue;
            }
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int ms_read_full(int fd, void *buf, size_t n, int timeout_ms)
{
    uint8_t *p = buf;
    long long deadline = timeout_ms < 0 ? -1 : ms_now_ms() + timeout_ms;
    while (n > 0) {
        int wait = -1;
        if (deadline >= 0) {
            long long left = deadline - ms_now_ms();
            if (left <= 0)
                return -ETIMEDOUT;
            wait = (int)left;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, wait);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            continue; /* the deadline check above ends the wait */
        ssize_t got = read(fd, p, n);
        if (got < 0) {
            if (ms_errno_is_retry(errno))
                continue;
            return -errno;
        }
        if (got == 0)
            return -ECONNRESET;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}
