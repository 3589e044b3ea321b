/* net/digest.h — the message digests of CPython's authkey handshake (MD5, SHA-256,
 * SHA-384, SHA3-256, SHA3-384) and HMAC (RFC 2104) over them, in plain C.
 *
 * mproc used OpenSSL's libcrypto for these five MACs; loading and initialising
 * libcrypto 3 costs a process about 3.5 MiB of resident memory (most of it
 * libcrypto's pages touched by its relocation and provider set-up), more than a
 * manager server holding ten thousand items, for a few hundred bytes hashed per
 * connection. These are straightforward implementations of the published
 * algorithms (RFC 1321, FIPS 180-4, FIPS 202), checked against RFC 2202/4231
 * vectors and against python3's hmac module (tests/test_digest.c). They are not
 * hardened against timing side channels beyond what the handshake needs: the
 * key and message are processed in data-independent time, and the answer is
 * compared with mp__digest_equal. Thread-safe (no state outside the caller's). */
#ifndef MPROC_INTERNAL_DIGEST_H
#define MPROC_INTERNAL_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#include "core/util.h"

#define MP__DIGEST_MAX 48 /* SHA-384's 48 bytes is the longest */

typedef struct mp__digest mp__digest;

/* The digest called name[0..n) in CPython's spelling ("md5", "sha256", "sha384",
 * "sha3_256", "sha3_384"), or NULL. */
MP__HIDDEN const mp__digest *mp__digest_named(const void *name, size_t n);

/* MD5, for the raw HMAC-MD5 answer of 3.11. */
MP__HIDDEN const mp__digest *mp__digest_md5(void);

/* The length in bytes of d's output. */
MP__HIDDEN size_t mp__digest_size(const mp__digest *d);

/* The digest of msg[0..len) into out (mp__digest_size(d) bytes). */
MP__HIDDEN void mp__digest_of(const mp__digest *d, const void *msg, size_t len,
                              unsigned char out[MP__DIGEST_MAX]);

/* HMAC-d(key, msg) into out; returns its length (mp__digest_size(d)). */
MP__HIDDEN size_t mp__hmac(const mp__digest *d, const void *key, size_t keylen, const void *msg,
                           size_t msglen, unsigned char out[MP__DIGEST_MAX]);

/* a[0..n) == b[0..n), in time that depends only on n. */
MP__HIDDEN bool mp__digest_equal(const void *a, const void *b, size_t n);

#endif /* MPROC_INTERNAL_DIGEST_H */
