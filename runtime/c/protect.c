/* protect.c — session keys (HKDF-SHA256) and AES-256-GCM sealing of
 * messages below the framing (protect.h; OpenSSL libcrypto). */
#include "protect.h"

#include <limits.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "log.h"
#include "ser.h"
#include "wire.h"

#define IV_LEN 12

static void derive(const ms_secret *secret, const uint8_t *salt, size_t saltlen,
                   const char *info, uint8_t out[MS_KEY_LEN])
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    if (!kctx)
        ms_fatal("cannot start HKDF (EVP_KDF_fetch)");
    static uint8_t empty[1];
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_octet_string(
            OSSL_KDF_PARAM_KEY, secret->data ? secret->data : empty, secret->len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt,
                                          saltlen),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info,
                                          strlen(info)),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_KDF_derive(kctx, out, MS_KEY_LEN, params) != 1)
        ms_fatal("HKDF-SHA256 failed (EVP_KDF_derive)");
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
}

void ms_session_keys(const ms_secret *secret, const uint8_t nonce_m[MS_NONCE_LEN],
                     const uint8_t nonce_s[MS_NONCE_LEN],
                     uint8_t m2s[MS_KEY_LEN], uint8_t s2m[MS_KEY_LEN])
{
    uint8_t salt[2 * MS_NONCE_LEN];
    memcpy(salt, nonce_m, MS_NONCE_LEN);
    memcpy(salt + MS_NONCE_LEN, nonce_s, MS_NONCE_LEN);
    derive(secret, salt, sizeof salt, "M/s v2 m2s", m2s);
    derive(secret, salt, sizeof salt, "M/s v2 s2m", s2m);
}

void ms_chan_init(ms_chan *ch, const uint8_t key[MS_KEY_LEN], int encrypt)
{
    ch->ctx = EVP_CIPHER_CTX_new();
    if (!ch->ctx ||
        EVP_CipherInit_ex(ch->ctx, EVP_aes_256_gcm(), NULL, key, NULL,
                          encrypt) != 1)
        ms_fatal("cannot start AES-256-GCM (EVP_CipherInit_ex)");
    memcpy(ch->key, key, MS_KEY_LEN);
    ch->seq = 0;
    ch->on = 1;
}

void ms_chan_free(ms_chan *ch)
{
    EVP_CIPHER_CTX_free(ch->ctx);
    OPENSSL_cleanse(ch->key, sizeof ch->key);
    *ch = (ms_chan){0};
}

/* The nonce of message number `seq`: 4 zero bytes, then seq as u64le. */
static void make_iv(uint8_t iv[IV_LEN], uint64_t seq)
{
    memset(iv, 0, 4);
    ms_put_u64le(iv + 4, seq);
}

/* Start message `seq` on ctx: with a key, the cipher is set up anew;
 * without, ctx keeps its cipher, key and direction (a channel's). */
static void start(EVP_CIPHER_CTX *ctx, const uint8_t *key, uint64_t seq,
                  const uint8_t head[MS_HDR_LEN], int enc)
{
    uint8_t iv[IV_LEN];
    make_iv(iv, seq);
    int len = 0;
    if (EVP_CipherInit_ex(ctx, key ? EVP_aes_256_gcm() : NULL, NULL, key, iv,
                          enc) != 1 ||
        EVP_CipherUpdate(ctx, NULL, &len, head, MS_HDR_LEN) != 1)
        ms_fatal("AES-256-GCM: cannot start a message");
}

/* Encrypt or decrypt n bytes (any size: EVP takes an int at a time). */
static void gcm_crypt(EVP_CIPHER_CTX *ctx, uint8_t *out, const uint8_t *in,
                  uint64_t n)
{
    while (n > 0) {
        int step = n > (1u << 30) ? 1 << 30 : (int)n, got = 0;
        if (EVP_CipherUpdate(ctx, out, &got, in, step) != 1 || got != step)
            ms_fatal("AES-256-GCM: EVP_CipherUpdate failed");
        out += step;
        in += step;
        n -= (uint64_t)step;
    }
}

void ms_seal_last(ms_chan *ch, ms_buf *buf, uint64_t start_at)
{
    uint8_t *head = buf->data + start_at;
    uint32_t len = ms_get_u32le(head + 8);
    ms_put_u32le(head + 8, len + MS_TAG_LEN);
    start(ch->ctx, NULL, ch->seq++, head, 1);
    gcm_crypt(ch->ctx, head + MS_HDR_LEN, head + MS_HDR_LEN, len);
    uint8_t tag[MS_TAG_LEN];
    ms_stream_end(ch->ctx, tag);
    ms_buf_append(buf, tag, MS_TAG_LEN);
}

int ms_open(ms_chan *ch, const uint8_t head[MS_HDR_LEN], uint8_t *body,
            uint32_t length)
{
    uint32_t n = length - MS_TAG_LEN;
    start(ch->ctx, NULL, ch->seq++, head, 0);
    gcm_crypt(ch->ctx, body, body, n);
    if (EVP_CIPHER_CTX_ctrl(ch->ctx, EVP_CTRL_GCM_SET_TAG, MS_TAG_LEN,
                            body + n) != 1)
        ms_fatal("AES-256-GCM: cannot set the tag");
    int got = 0;
    uint8_t last[16];
    return EVP_CipherFinal_ex(ch->ctx, last, &got) == 1 ? 0 : -1;
}

uint64_t ms_seal_header(ms_chan *ch, uint8_t head[MS_HDR_LEN], uint32_t ordinal,
                        uint32_t jid, uint32_t len)
{
    ms_header h = {ordinal, jid, len + MS_TAG_LEN};
    ms_header_encode(head, h);
    return ch->seq++;
}

void ms_stream_begin(void **ctx, const ms_chan *ch, uint64_t seq,
                     const uint8_t head[MS_HDR_LEN])
{
    if (!*ctx && !(*ctx = EVP_CIPHER_CTX_new()))
        ms_fatal("out of memory (EVP_CIPHER_CTX_new)");
    start(*ctx, ch->key, seq, head, 1);
}

void ms_stream_update(void *ctx, uint8_t *out, const uint8_t *in, size_t n)
{
    gcm_crypt(ctx, out, in, n);
}

void ms_stream_end(void *ctx, uint8_t tag[MS_TAG_LEN])
{
    int got = 0;
    uint8_t last[16];
    if (EVP_CipherFinal_ex(ctx, last, &got) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, MS_TAG_LEN, tag) != 1)
        ms_fatal("AES-256-GCM: cannot finish a message");
}

void ms_stream_free(void **ctx)
{
    EVP_CIPHER_CTX_free(*ctx);
    *ctx = NULL;
}
