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

void ms_text_decode(const uint8_t *p, uint32_t len, char *out, size_t outlen)
{
    size_t n = len;
    if (n > MS_MAX_TEXT)
        n = MS_MAX_TEXT;
    if (n > outlen - 1)
        n = outlen - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (p[i] < 0x20 || p[i] == 0x7f) ? '?' : (char)p[i];
    out[n] = '\0';
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
    default: return "unknown";
    }
}
