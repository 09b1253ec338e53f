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

/* The proofs of the handshake (docs/protocol.md): HMAC-SHA256 keyed with
 * the secret over a label ("M/s slave v2" or "M/s master v2"), both
 * nonces, the program fingerprint, then `nfields` u32 fields of the
 * message that carries the proof, each as 4 little-endian bytes (HELLO:
 * the CHALLENGE flags, version, threads, pid; WELCOME: heartbeat, max
 * message, slave id). A proof binds the connection (both fresh nonces),
 * the program and every field beside it; the two labels keep one side's
 * proof from ever passing for the other's. */
void ms_handshake_proof(const ms_secret *secret, const char *label,
                        const uint8_t nonce_m[MS_NONCE_LEN],
                        const uint8_t nonce_s[MS_NONCE_LEN],
                        const uint8_t fingerprint[MS_DIGEST_LEN],
                        const uint32_t *fields, size_t nfields,
                        uint8_t out[MS_DIGEST_LEN]);
#define MS_SLAVE_LABEL "M/s slave v2"
#define MS_MASTER_LABEL "M/s master v2"

/* The proof that ends a REFUSE under AUTH: HMAC-SHA256 keyed with the
 * secret over "M/s refuse v2", both nonces, the master's fingerprint and
 * the reason's bytes. Only a slave that holds the secret can check it; a
 * REFUSE without it (or failing it) may come from anyone who answers at
 * the master's address, and the slave tries again instead of exiting. */
void ms_refusal_proof(const ms_secret *secret,
                      const uint8_t nonce_m[MS_NONCE_LEN],
                      const uint8_t nonce_s[MS_NONCE_LEN],
                      const uint8_t fingerprint[MS_DIGEST_LEN],
                      const uint8_t *text, size_t len,
                      uint8_t out[MS_DIGEST_LEN]);
#define MS_REFUSE_LABEL "M/s refuse v2"

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
