/* auth.h — program fingerprints, shared secrets and the HMAC proof of the
 * handshake (OpenSSL libcrypto). */
#ifndef MS_AUTH_H
#define MS_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define MS_DIGEST_LEN 32 /* SHA-256 */
#define MS_NONCE_LEN 32

/* A shared secret: `len` bytes at `data` (owned by the struct; NULL when
 * there is no secret). */
typedef struct ms_secret {
    uint8_t *data;
    size_t len;
} ms_secret;

/* Fill `out` with `n` cryptographically random bytes; 0, or -1 with a
 * reason in err. */
int ms_random_bytes(uint8_t *out, size_t n, char *err, size_t errlen);

/* SHA-256 over the protocol version, ms_job_count and each job's name,
 * argument and result signatures, and ms_program_hash if the program
 * defines it. */
void ms_program_fingerprint(uint8_t out[MS_DIGEST_LEN]);

/* `--version`: "NAME (M/s VERSION), protocol version P, program
 * fingerprint HEX" on stdout. */
void ms_print_version(void);

/* The proof a slave sends: HMAC-SHA256(secret, "M/s auth v1" || nonce ||
 * fingerprint). */
void ms_auth_proof(const ms_secret *secret, const uint8_t nonce[MS_NONCE_LEN],
                   const uint8_t fingerprint[MS_DIGEST_LEN],
                   uint8_t out[MS_DIGEST_LEN]);

/* Constant-time comparison of two digests: 1 if equal. */
int ms_digest_equal(const uint8_t *a, const uint8_t *b);

/* Load the secret from `token_file` if not NULL, else from the environment
 * variable MS_TOKEN if set and non-empty. Trailing whitespace (a newline at
 * the end of a file) is not part of the secret. Returns 1 with *out filled
 * (caller frees out->data), 0 when there is no secret, -1 with a reason in
 * err. */
int ms_secret_load(const char *token_file, ms_secret *out, char *err,
                   size_t errlen);

/* A fresh random secret, as 64 hex digits (so it can live in an environment
 * variable); the caller frees out->data. 0, or -1 with a reason in err. */
int ms_secret_random(ms_secret *out, char *err, size_t errlen);

/* Lower-case hex of `n` bytes into `out` (2n+1 bytes). */
void ms_hex(const uint8_t *p, size_t n, char *out);

#endif
