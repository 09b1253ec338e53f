/* proto.c — encoding and decoding of control messages. */
#include "proto.h"

#include <string.h>

#include "ser.h"
#include "wire.h"

void ms_ctrl_append(ms_buf *out, uint32_t jid, uint8_t kind)
{
    ms_msg_append(out, 0, jid, &kind, 1);
}

void ms_ctrl_append_text(ms_buf *out, uint32_t jid, uint8_t kind,
                         const char *text)
{
    size_t n = strlen(text);
    if (n > MS_MAX_TEXT)
        n = MS_MAX_TEXT;
    uint8_t head[MS_HDR_LEN + 1];
    ms_header h = {0, jid, (uint32_t)(n + 1)};
    ms_header_encode(head, h);
    head[MS_HDR_LEN] = kind;
    ms_buf_append(out, head, sizeof head);
    ms_buf_append(out, text, n);
}

void ms_output_append(ms_buf *out, uint32_t jid, uint8_t stream,
                      const void *bytes, uint32_t n)
{
    uint8_t head[MS_HDR_LEN + 2];
    ms_header h = {0, jid, n + 2};
    ms_header_encode(head, h);
    head[MS_HDR_LEN] = MS_OUTPUT;
    head[MS_HDR_LEN + 1] = stream;
    ms_buf_append(out, head, sizeof head);
    ms_buf_append(out, bytes, n);
}

void ms_refuse_append(ms_buf *out, const char *text,
                      const uint8_t proof[MS_DIGEST_LEN])
{
    size_t n = strlen(text);
    if (n > MS_MAX_TEXT)
        n = MS_MAX_TEXT;
    uint8_t head[MS_HDR_LEN + 1];
    ms_header h = {0, 0, (uint32_t)(n + 1 + (proof ? MS_DIGEST_LEN : 0))};
    ms_header_encode(head, h);
    head[MS_HDR_LEN] = MS_REFUSE;
    ms_buf_append(out, head, sizeof head);
    ms_buf_append(out, text, n);
    if (proof)
        ms_buf_append(out, proof, MS_DIGEST_LEN);
}

void ms_challenge_append(ms_buf *out, const ms_challenge *c)
{
    uint8_t p[MS_CHALLENGE_LEN];
    p[0] = MS_CHALLENGE;
    ms_put_u32le(p + 1, c->version);
    ms_put_u32le(p + 5, c->flags);
    memcpy(p + 9, c->fingerprint, MS_DIGEST_LEN);
    memcpy(p + 9 + MS_DIGEST_LEN, c->nonce, MS_NONCE_LEN);
    ms_msg_append(out, 0, 0, p, sizeof p);
}

int ms_challenge_decode(const uint8_t *p, uint32_t len, ms_challenge *c)
{
    /* The version comes first so that any version can be recognized. */
    if (len < 5 || p[0] != MS_CHALLENGE)
        return -1;
    memset(c, 0, sizeof *c);
    c->version = ms_get_u32le(p + 1);
    if (len != MS_CHALLENGE_LEN)
        return c->version != MS_PROTOCOL_VERSION ? 0 : -1;
    c->flags = ms_get_u32le(p + 5);
    memcpy(c->fingerprint, p + 9, MS_DIGEST_LEN);
    memcpy(c->nonce, p + 9 + MS_DIGEST_LEN, MS_NONCE_LEN);
    return 0;
}

void ms_hello_append(ms_buf *out, const ms_hello *h)
{
    uint8_t p[MS_HELLO_LEN];
    p[0] = MS_HELLO;
    ms_put_u32le(p + 1, h->version);
    memcpy(p + 5, h->fingerprint, MS_DIGEST_LEN);
    ms_put_u32le(p + 5 + MS_DIGEST_LEN, h->threads);
    ms_put_u32le(p + 9 + MS_DIGEST_LEN, h->pid);
    memcpy(p + 13 + MS_DIGEST_LEN, h->nonce, MS_NONCE_LEN);
    memcpy(p + 13 + MS_DIGEST_LEN + MS_NONCE_LEN, h->proof, MS_DIGEST_LEN);
    ms_msg_append(out, 0, 0, p, sizeof p);
}

int ms_hello_decode(const uint8_t *p, uint32_t len, ms_hello *h)
{
    if (len < 5 || p[0] != MS_HELLO)
        return -1;
    memset(h, 0, sizeof *h);
    h->version = ms_get_u32le(p + 1);
    if (len != MS_HELLO_LEN)
        return h->version != MS_PROTOCOL_VERSION ? 0 : -1;
    memcpy(h->fingerprint, p + 5, MS_DIGEST_LEN);
    h->threads = ms_get_u32le(p + 5 + MS_DIGEST_LEN);
    h->pid = ms_get_u32le(p + 9 + MS_DIGEST_LEN);
    memcpy(h->nonce, p + 13 + MS_DIGEST_LEN, MS_NONCE_LEN);
    memcpy(h->proof, p + 13 + MS_DIGEST_LEN + MS_NONCE_LEN, MS_DIGEST_LEN);
    return 0;
}

void ms_welcome_append(ms_buf *out, const ms_welcome *w)
{
    uint8_t p[MS_WELCOME_LEN];
    p[0] = MS_WELCOME;
    ms_put_u32le(p + 1, w->heartbeat_ms);
    ms_put_u32le(p + 5, w->max_message);
    ms_put_u32le(p + 9, w->slave_id);
    memcpy(p + 13, w->proof, MS_DIGEST_LEN);
    ms_msg_append(out, 0, 0, p, sizeof p);
}

int ms_welcome_decode(const uint8_t *p, uint32_t len, ms_welcome *w)
{
    if (len != MS_WELCOME_LEN || p[0] != MS_WELCOME)
        return -1;
    w->heartbeat_ms = ms_get_u32le(p + 1);
    w->max_message = ms_get_u32le(p + 5);
    w->slave_id = ms_get_u32le(p + 9);
    memcpy(w->proof, p + 13, MS_DIGEST_LEN);
    return 0;
}

void ms_where_append(ms_buf *out, const ms_where *w)
{
    size_t n = strlen(w->host);
    if (n > MS_WHERE_HOST_MAX)
        n = MS_WHERE_HOST_MAX;
    uint8_t p[1 + 4 + 4 + MS_WHERE_HOST_MAX];
    p[0] = MS_WHERE;
    ms_put_u32le(p + 1, w->tag);
    ms_put_u32le(p + 5, w->task);
    memcpy(p + 9, w->host, n);
    ms_msg_append(out, 0, 0, p, (uint32_t)(9 + n));
}

int ms_where_decode(const uint8_t *p, uint32_t len, ms_where *w)
{
    if (len < MS_WHERE_MIN || len > 9 + MS_WHERE_HOST_MAX || p[0] != MS_WHERE)
        return -1;
    w->tag = ms_get_u32le(p + 1);
    w->task = ms_get_u32le(p + 5);
    ms_text_decode(p + 9, len - 9, w->host, sizeof w->host);
    return 0;
}

/* The length of the valid UTF-8 sequence at p (at most n bytes), or 0
 * when the bytes there are not one (a lone continuation byte, an overlong
 * form, a surrogate, past U+10FFFF, or cut short); *cp gets its code
 * point. */
static size_t utf8_seq(const uint8_t *p, size_t n, uint32_t *cp)
{
    uint8_t b = p[0];
    size_t len;
    uint32_t c, least;
    if (b < 0x80) {
        *cp = b;
        return 1;
    } else if (b >= 0xC2 && b <= 0xDF) {
        len = 2, c = b & 0x1Fu, least = 0x80;
    } else if (b >= 0xE0 && b <= 0xEF) {
        len = 3, c = b & 0x0Fu, least = 0x800;
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4, c = b & 0x07u, least = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3Fu);
    }
    if (c < least || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

/* ms_text_decode, keeping the code point `keep` (0x100: none). */
static void decode(const uint8_t *p, uint32_t len, char *out, size_t outlen,
                   uint32_t keep)
{
    size_t n = len;
    if (n > MS_MAX_TEXT)
        n = MS_MAX_TEXT;
    if (n > outlen - 1)
        n = outlen - 1;
    /* Terminals act on C0 and C1 control characters (ESC, CSI U+009B as
     * the bytes C2 9B, or a lone 9B on terminals that read Latin-1): each
     * control character and each byte that is not part of valid UTF-8
     * becomes one '?'; the rest of the text passes as it is. */
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t m = utf8_seq(p + i, n - i, &cp);
        if (m == 0 || (cp < 0x20 && cp != keep) ||
            (cp >= 0x7F && cp <= 0x9F)) {
            out[k++] = '?';
            i += m ? m : 1;
            continue;
        }
        memcpy(out + k, p + i, m);
        k += m;
        i += m;
    }
    out[k] = '\0';
}

void ms_text_decode(const uint8_t *p, uint32_t len, char *out, size_t outlen)
{
    decode(p, len, out, outlen, 0x100); /* no control character kept */
}

void ms_line_decode(const uint8_t *p, uint32_t len, char *out, size_t outlen)
{
    decode(p, len, out, outlen, '\t');
}

const char *ms_ctrl_name(uint8_t kind)
{
    switch (kind) {
    case MS_CHALLENGE: return "CHALLENGE";
    case MS_HELLO: return "HELLO";
    case MS_WELCOME: return "WELCOME";
    case MS_REFUSE: return "REFUSE";
    case MS_FAILURE: return "FAILURE";
    case MS_CANCEL: return "CANCEL";
    case MS_CANCELLED: return "CANCELLED";
    case MS_HEARTBEAT: return "HEARTBEAT";
    case MS_GOODBYE: return "GOODBYE";
    case MS_BLOB: return "BLOB";
    case MS_SHARED_JOB: return "SHARED_JOB";
    case MS_WANT: return "WANT";
    case MS_OUTPUT: return "OUTPUT";
    case MS_WHERE: return "WHERE";
    default: return "unknown";
    }
}
