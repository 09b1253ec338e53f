/* auth.c — fingerprints, secrets and HMAC proofs (OpenSSL libcrypto). */
#include "auth.h"
#include "share.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "log.h"
#include "ms_abi.h"
#include "proto.h"
#include "wire.h"

/* Optional: a compiled program may define it (see ms_abi.h part C). */
extern const char ms_program_hash[] __attribute__((weak));
extern const char ms_compiler_version[] __attribute__((weak));

#define MAX_SECRET 4096

int ms_random_bytes(uint8_t *out, size_t n, char *err, size_t errlen)
{
    if (RAND_bytes(out, (int)n) != 1) {
        snprintf(err, errlen, "RAND_bytes: %s",
                 ERR_error_string(ERR_get_error(), NULL));
        return -1;
    }
    return 0;
}

static void digest_update(EVP_MD_CTX *ctx, const void *p, size_t n)
{
    if (EVP_DigestUpdate(ctx, p, n) != 1)
        ms_fatal("EVP_DigestUpdate failed");
}

static void digest_str(EVP_MD_CTX *ctx, const char *s)
{
    /* Length-prefixed, so ("ab","c") and ("a","bc") differ. */
    uint8_t len[4];
    size_t n = strlen(s);
    ms_put_u32le(len, (uint32_t)n);
    digest_update(ctx, len, 4);
    digest_update(ctx, s, n);
}

void ms_program_fingerprint(uint8_t out[MS_DIGEST_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        ms_fatal("cannot start SHA-256 (EVP_DigestInit_ex)");
    uint8_t word[4];
    digest_str(ctx, "M/s program");
    ms_put_u32le(word, MS_PROTOCOL_VERSION);
    digest_update(ctx, word, 4);
    ms_put_u32le(word, ms_job_count);
    digest_update(ctx, word, 4);
    for (uint32_t k = 0; k < ms_job_count; k++) {
        digest_str(ctx, ms_job_table[k].name);
        digest_str(ctx, ms_job_table[k].arg_sig);
        digest_str(ctx, ms_job_table[k].ret_sig);
    }
    digest_str(ctx, &ms_program_hash ? ms_program_hash : "");
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != MS_DIGEST_LEN)
        ms_fatal("cannot finish SHA-256 (EVP_DigestFinal_ex)");
    EVP_MD_CTX_free(ctx);
}

void ms_sha256(const uint8_t *p, size_t n, uint8_t out[MS_DIGEST_LEN])
{
    unsigned int len = 0;
    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 ||
        len != MS_DIGEST_LEN)
        ms_fatal("cannot compute SHA-256 (EVP_Digest)");
}

void ms_print_version(void)
{
    uint8_t fp[MS_DIGEST_LEN];
    char hex[2 * MS_DIGEST_LEN + 1];
    ms_program_fingerprint(fp);
    ms_hex(fp, MS_DIGEST_LEN, hex);
    if (&ms_compiler_version)
        printf("%s (M/s %s), ", ms_log_name(), ms_compiler_version);
    else
        printf("%s (M/s, its compiler's version not recorded), ", ms_log_name());
    printf("protocol version %u, program fingerprint %s\n",
           MS_PROTOCOL_VERSION, hex);
}

/* HMAC-SHA256 keyed with the secret over label || nonce_m || nonce_s ||
 * fingerprint || tail: every proof of the handshake. */
static void proof_over(const ms_secret *secret, const char *label,
                       const uint8_t nonce_m[MS_NONCE_LEN],
                       const uint8_t nonce_s[MS_NONCE_LEN],
                       const uint8_t fingerprint[MS_DIGEST_LEN],
                       const uint8_t *tail, size_t tail_len,
                       uint8_t out[MS_DIGEST_LEN])
{
    enum { MAX_LABEL = 32, MAX_TAIL = MS_MAX_TEXT };
    uint8_t msg[MAX_LABEL + 2 * MS_NONCE_LEN + MS_DIGEST_LEN + MAX_TAIL];
    size_t n = strlen(label);
    if (n > MAX_LABEL || tail_len > MAX_TAIL)
        ms_fatal("internal error: proof label or text too long");
    memcpy(msg, label, n);
    memcpy(msg + n, nonce_m, MS_NONCE_LEN);
    n += MS_NONCE_LEN;
    memcpy(msg + n, nonce_s, MS_NONCE_LEN);
    n += MS_NONCE_LEN;
    memcpy(msg + n, fingerprint, MS_DIGEST_LEN);
    n += MS_DIGEST_LEN;
    if (tail_len)
        memcpy(msg + n, tail, tail_len);
    n += tail_len;
    unsigned int got = 0;
    static const uint8_t empty[1];
    const uint8_t *key = secret->data ? secret->data : empty;
    if (!HMAC(EVP_sha256(), key, (int)secret->len, msg, n, out, &got) ||
        got != MS_DIGEST_LEN)
        ms_fatal("HMAC-SHA256 failed");
}

void ms_handshake_proof(const ms_secret *secret, const char *label,
                        const uint8_t nonce_m[MS_NONCE_LEN],
                        const uint8_t nonce_s[MS_NONCE_LEN],
                        const uint8_t fingerprint[MS_DIGEST_LEN],
                        const uint32_t *fields, size_t nfields,
                        uint8_t out[MS_DIGEST_LEN])
{
    enum { MAX_FIELDS = 8 };
    if (nfields > MAX_FIELDS)
        ms_fatal("internal error: %zu proof fields", nfields);
    uint8_t tail[4 * MAX_FIELDS];
    for (size_t i = 0; i < nfields; i++)
        ms_put_u32le(tail + 4 * i, fields[i]);
    proof_over(secret, label, nonce_m, nonce_s, fingerprint, tail,
               4 * nfields, out);
}

void ms_refusal_proof(const ms_secret *secret,
                      const uint8_t nonce_m[MS_NONCE_LEN],
                      const uint8_t nonce_s[MS_NONCE_LEN],
                      const uint8_t fingerprint[MS_DIGEST_LEN],
                      const uint8_t *text, size_t len,
                      uint8_t out[MS_DIGEST_LEN])
{
    proof_over(secret, MS_REFUSE_LABEL, nonce_m, nonce_s, fingerprint, text,
               len > MS_MAX_TEXT ? MS_MAX_TEXT : len, out);
}

int ms_digest_equal(const uint8_t *a, const uint8_t *b)
{
    return CRYPTO_memcmp(a, b, MS_DIGEST_LEN) == 0;
}

static size_t trim_len(const uint8_t *p, size_t n)
{
    while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' ' ||
                     p[n - 1] == '\t'))
        n--;
    return n;
}

int ms_secret_load(const char *token_file, ms_secret *out, char *err,
                   size_t errlen)
{
    out->data = NULL;
    out->len = 0;
    if (token_file) {
        int fd = open(token_file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            snprintf(err, errlen, "cannot open token file %s: %s", token_file,
                     strerror(errno));
            return -1;
        }
        uint8_t *buf = ms_xmalloc(MAX_SECRET + 1);
        size_t n = 0;
        for (;;) {
            ssize_t r = read(fd, buf + n, MAX_SECRET + 1 - n);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                snprintf(err, errlen, "cannot read token file %s: %s",
                         token_file, strerror(errno));
                goto fail;
            }
            if (r == 0)
                break;
            n += (size_t)r;
            if (n > MAX_SECRET) {
                snprintf(err, errlen, "token file %s is longer than %d bytes",
                         token_file, MAX_SECRET);
                goto fail;
            }
        }
        close(fd);
        n = trim_len(buf, n);
        if (n == 0) {
            snprintf(err, errlen, "token file %s is empty", token_file);
            free(buf);
            return -1;
        }
        if (memchr(buf, '\0', n)) {
            snprintf(err, errlen, "token file %s contains a NUL byte",
                     token_file);
            free(buf);
            return -1;
        }
        out->data = buf;
        out->len = n;
        return 1;
    fail:
        close(fd);
        free(buf);
        return -1;
    }
    const char *env = getenv("MS_TOKEN");
    if (!env || !*env)
        return 0;
    size_t n = trim_len((const uint8_t *)env, strlen(env));
    if (n == 0 || n > MAX_SECRET) {
        snprintf(err, errlen, "MS_TOKEN must hold 1 to %d bytes", MAX_SECRET);
        return -1;
    }
    out->data = ms_xmalloc(n);
    memcpy(out->data, env, n);
    out->len = n;
    return 1;
}

void ms_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int ms_secret_random(ms_secret *out, char *err, size_t errlen)
{
    uint8_t raw[32];
    if (ms_random_bytes(raw, sizeof raw, err, errlen) != 0)
        return -1;
    out->data = ms_xmalloc(2 * sizeof raw + 1);
    ms_hex(raw, sizeof raw, (char *)out->data);
    out->len = 2 * sizeof raw;
    return 0;
}
