/* protect.h — message protection below the 12-byte framing (protocol
 * version 2 and 3, docs/protocol.md "Protection"): session keys from the shared
 * secret and both nonces (HKDF-SHA256), and AES-256-GCM sealing of whole
 * messages with an implicit per-direction message counter as the nonce.
 *
 * A sealed message is the 12-byte header, whose `length` counts the
 * ciphertext and the 16-byte tag, then the ciphertext (as long as the
 * plaintext payload), then the tag. The header (as sent) is the
 * additional authenticated data, so nothing of a message can change
 * unseen; the counter is never sent, so a message replayed, dropped or
 * reordered fails to open.
 *
 * Only the byte layer calls this file: master_conn.c where a connection's
 * bytes are queued, written and parsed, and slave_conn.c where the
 * slave's are; message handlers never see a tag or a cipher. A channel is
 * used by one thread at a time (the caller's lock says which). */
#ifndef MS_PROTECT_H
#define MS_PROTECT_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "ms_abi.h"

#define MS_KEY_LEN 32 /* AES-256 */
#define MS_TAG_LEN 16 /* GCM tag */

/* One direction of a protected connection. `on` is 0 until the handshake
 * has made the keys (and for connections that are not protected). */
typedef struct ms_chan {
    int on;
    uint64_t seq;               /* the next message's counter */
    uint8_t key[MS_KEY_LEN];
    void *ctx;                  /* EVP_CIPHER_CTX *, owned */
} ms_chan;

/* The two session keys of a connection: HKDF-SHA256 with the secret as
 * input key material, nonce_m || nonce_s as salt, and "M/s v2 m2s" or
 * "M/s v2 s2m" as info. */
void ms_session_keys(const ms_secret *secret, const uint8_t nonce_m[MS_NONCE_LEN],
                     const uint8_t nonce_s[MS_NONCE_LEN],
                     uint8_t m2s[MS_KEY_LEN], uint8_t s2m[MS_KEY_LEN]);

/* Turn a channel on with `key` (copied), counter 0, for sealing
 * (encrypt 1: what we send) or opening (0: what we receive). */
void ms_chan_init(ms_chan *ch, const uint8_t key[MS_KEY_LEN], int encrypt);
/* Forget the key; the channel is off again. */
void ms_chan_free(ms_chan *ch);

/* Seal the whole plaintext message that starts at buf->data[start] and
 * runs to buf->len (its header's length must be exact): the header's
 * length grows by MS_TAG_LEN, the payload is encrypted in place and the
 * tag appended. */
void ms_seal_last(ms_chan *ch, ms_buf *buf, uint64_t start);

/* Open a sealed message in place: `head` is its header as received,
 * `body` its `length` bytes (ciphertext then tag; length >= MS_TAG_LEN,
 * checked by the caller). On success the first length - MS_TAG_LEN bytes
 * of body are the plaintext payload and 0 is returned; -1 when the tag
 * does not match (the message was forged, altered, replayed, reordered or
 * one before it was dropped). */
int ms_open(ms_chan *ch, const uint8_t head[12], uint8_t *body, uint32_t length);

/* Sealing a message whose payload is encrypted piece by piece from a
 * buffer that must stay as it is (a big job argument, kept for a retry):
 * ms_seal_header writes the sealed header of a payload of `len` bytes into
 * `head` and returns the message's counter; ms_stream_begin starts the
 * cipher for that counter on a context of the caller's (`*ctx`, made on
 * first use, freed with ms_stream_free); ms_stream_update encrypts the
 * next `n` bytes from `in` to `out`; ms_stream_end writes the tag. */
uint64_t ms_seal_header(ms_chan *ch, uint8_t head[12], uint32_t ordinal,
                        uint32_t jid, uint32_t len);
void ms_stream_begin(void **ctx, const ms_chan *ch, uint64_t seq,
                     const uint8_t head[12]);
void ms_stream_update(void *ctx, uint8_t *out, const uint8_t *in, size_t n);
void ms_stream_end(void *ctx, uint8_t tag[MS_TAG_LEN]);
void ms_stream_free(void **ctx);

#endif
