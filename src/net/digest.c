/* digest.c — MD5 (RFC 1321), SHA-256 and SHA-384 (FIPS 180-4), SHA3-256 and
 * SHA3-384 (FIPS 202), and HMAC (RFC 2104) over them: what the authkey handshake
 * needs (net/digest.h). One streaming context serves every algorithm: update()
 * buffers up to a block and hands whole blocks to the algorithm's compress(). */
#include <stdint.h>
#include <string.h>

#include "net/digest.h"

#define BLOCK_MAX 144 /* SHA3-256's rate (136) rounded up; HMAC's block */

typedef struct ctx {
    uint32_t h32[8];
    uint64_t h64[25]; /* SHA-384's 8 words, or the Keccak state */
    unsigned char buf[BLOCK_MAX];
    size_t nbuf;
    uint64_t total; /* bytes hashed */
} ctx;

struct mp__digest {
    const char *name;
    size_t size, block;
    void (*init)(ctx *c);
    void (*compress)(ctx *c, const unsigned char *block);
    void (*final)(const mp__digest *d, ctx *c, unsigned char *out);
};

static uint32_t rol32(uint32_t x, int n)
{
    return x << n | x >> (32 - n);
}
static uint32_t ror32(uint32_t x, int n)
{
    return x >> n | x << (32 - n);
}
static uint64_t rol64(uint64_t x, int n)
{
    return n == 0 ? x : x << n | x >> (64 - n);
}
static uint64_t ror64(uint64_t x, int n)
{
    return x >> n | x << (64 - n);
}
static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}
static uint64_t le64(const unsigned char *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}
static uint64_t be64(const unsigned char *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static void update(const mp__digest *d, ctx *c, const unsigned char *p, size_t n)
{
    c->total += n;
    if (c->nbuf > 0) {
        size_t take = d->block - c->nbuf < n ? d->block - c->nbuf : n;
        memcpy(c->buf + c->nbuf, p, take);
        c->nbuf += take;
        p += take;
        n -= take;
        if (c->nbuf < d->block)
            return;
        d->compress(c, c->buf);
        c->nbuf = 0;
    }
    for (; n >= d->block; p += d->block, n -= d->block)
        d->compress(c, p);
    memcpy(c->buf, p, n);
    c->nbuf = n;
}

/* The Merkle-Damgard padding: 0x80, zeros, then the length in bits in lenbytes
 * bytes (little-endian for MD5, big-endian for the SHA-2s). */
static void md_pad(const mp__digest *d, ctx *c, size_t lenbytes, int big)
{
    uint64_t bits = c->total * 8;
    c->buf[c->nbuf++] = 0x80;
    if (c->nbuf > d->block - lenbytes) {
        memset(c->buf + c->nbuf, 0, d->block - c->nbuf);
        d->compress(c, c->buf);
        c->nbuf = 0;
    }
    memset(c->buf + c->nbuf, 0, d->block - c->nbuf);
    for (int i = 0; i < 8; i++)
        c->buf[big ? d->block - 1 - (size_t)i : d->block - lenbytes + (size_t)i] =
            (unsigned char)(bits >> (8 * i));
    d->compress(c, c->buf);
}

/* ---- MD5 ---- */

static const uint32_t md5_k[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};
static const int md5_r[16] = {7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21};

static void md5_init(ctx *c)
{
    static const uint32_t iv[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    memcpy(c->h32, iv, sizeof iv);
}

static void md5_compress(ctx *c, const unsigned char *p)
{
    uint32_t m[16];
    for (int i = 0; i < 16; i++)
        m[i] = le32(p + 4 * i);
    uint32_t a = c->h32[0], b = c->h32[1], cc = c->h32[2], d = c->h32[3];
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        if (i < 16) {
            f = (b & cc) | (~b & d);
            g = i;
        } else if (i < 32) {
            f = (d & b) | (~d & cc);
            g = (5 * i + 1) % 16;
        } else if (i < 48) {
            f = b ^ cc ^ d;
            g = (3 * i + 5) % 16;
        } else {
            f = cc ^ (b | ~d);
            g = (7 * i) % 16;
        }
        uint32_t t = d;
        d = cc;
        cc = b;
        b = b + rol32(a + f + md5_k[i] + m[g], md5_r[(i / 16) * 4 + i % 4]);
        a = t;
    }
    c->h32[0] += a;
    c->h32[1] += b;
    c->h32[2] += cc;
    c->h32[3] += d;
}

static void md5_final(const mp__digest *d, ctx *c, unsigned char *out)
{
    md_pad(d, c, 8, 0);
    for (int i = 0; i < 16; i++)
        out[i] = (unsigned char)(c->h32[i / 4] >> (8 * (i % 4)));
}

/* ---- SHA-256 ---- */

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static void sha256_init(ctx *c)
{
    static const uint32_t iv[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    };
    memcpy(c->h32, iv, sizeof iv);
}

static void sha256_compress(ctx *c, const unsigned char *p)
{
    uint32_t w[64], s[8];
    for (int i = 0; i < 16; i++)
        w[i] = be32(p + 4 * i);
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(s, c->h32, sizeof s);
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ror32(s[4], 6) ^ ror32(s[4], 11) ^ ror32(s[4], 25);
        uint32_t ch = (s[4] & s[5]) ^ (~s[4] & s[6]);
        uint32_t t1 = s[7] + S1 + ch + sha256_k[i] + w[i];
        uint32_t S0 = ror32(s[0], 2) ^ ror32(s[0], 13) ^ ror32(s[0], 22);
        uint32_t maj = (s[0] & s[1]) ^ (s[0] & s[2]) ^ (s[1] & s[2]);
        memmove(s + 1, s, 7 * sizeof s[0]);
        s[4] += t1;
        s[0] = t1 + S0 + maj;
    }
    for (int i = 0; i < 8; i++)
        c->h32[i] += s[i];
}

static void sha256_final(const mp__digest *d, ctx *c, unsigned char *out)
{
    md_pad(d, c, 8, 1);
    for (size_t i = 0; i < d->size; i++)
        out[i] = (unsigned char)(c->h32[i / 4] >> (24 - 8 * (i % 4)));
}

/* ---- SHA-384 (SHA-512's compression, its own IV, 48 bytes out) ---- */

static const uint64_t sha512_k[80] = {
    0x428a2f98d728ae22ULL, 0x7137449123ef65cdULL, 0xb5c0fbcfec4d3b2fULL, 0xe9b5dba58189dbbcULL,
    0x3956c25bf348b538ULL, 0x59f111f1b605d019ULL, 0x923f82a4af194f9bULL, 0xab1c5ed5da6d8118ULL,
    0xd807aa98a3030242ULL, 0x12835b0145706fbeULL, 0x243185be4ee4b28cULL, 0x550c7dc3d5ffb4e2ULL,
    0x72be5d74f27b896fULL, 0x80deb1fe3b1696b1ULL, 0x9bdc06a725c71235ULL, 0xc19bf174cf692694ULL,
    0xe49b69c19ef14ad2ULL, 0xefbe4786384f25e3ULL, 0x0fc19dc68b8cd5b5ULL, 0x240ca1cc77ac9c65ULL,
    0x2de92c6f592b0275ULL, 0x4a7484aa6ea6e483ULL, 0x5cb0a9dcbd41fbd4ULL, 0x76f988da831153b5ULL,
    0x983e5152ee66dfabULL, 0xa831c66d2db43210ULL, 0xb00327c898fb213fULL, 0xbf597fc7beef0ee4ULL,
    0xc6e00bf33da88fc2ULL, 0xd5a79147930aa725ULL, 0x06ca6351e003826fULL, 0x142929670a0e6e70ULL,
    0x27b70a8546d22ffcULL, 0x2e1b21385c26c926ULL, 0x4d2c6dfc5ac42aedULL, 0x53380d139d95b3dfULL,
    0x650a73548baf63deULL, 0x766a0abb3c77b2a8ULL, 0x81c2c92e47edaee6ULL, 0x92722c851482353bULL,
    0xa2bfe8a14cf10364ULL, 0xa81a664bbc423001ULL, 0xc24b8b70d0f89791ULL, 0xc76c51a30654be30ULL,
    0xd192e819d6ef5218ULL, 0xd69906245565a910ULL, 0xf40e35855771202aULL, 0x106aa07032bbd1b8ULL,
    0x19a4c116b8d2d0c8ULL, 0x1e376c085141ab53ULL, 0x2748774cdf8eeb99ULL, 0x34b0bcb5e19b48a8ULL,
    0x391c0cb3c5c95a63ULL, 0x4ed8aa4ae3418acbULL, 0x5b9cca4f7763e373ULL, 0x682e6ff3d6b2b8a3ULL,
    0x748f82ee5defb2fcULL, 0x78a5636f43172f60ULL, 0x84c87814a1f0ab72ULL, 0x8cc702081a6439ecULL,
    0x90befffa23631e28ULL, 0xa4506cebde82bde9ULL, 0xbef9a3f7b2c67915ULL, 0xc67178f2e372532bULL,
    0xca273eceea26619cULL, 0xd186b8c721c0c207ULL, 0xeada7dd6cde0eb1eULL, 0xf57d4f7fee6ed178ULL,
    0x06f067aa72176fbaULL, 0x0a637dc5a2c898a6ULL, 0x113f9804bef90daeULL, 0x1b710b35131c471bULL,
    0x28db77f523047d84ULL, 0x32caab7b40c72493ULL, 0x3c9ebe0a15c9bebcULL, 0x431d67c49c100d4cULL,
    0x4cc5d4becb3e42b6ULL, 0x597f299cfc657e2aULL, 0x5fcb6fab3ad6faecULL, 0x6c44198c4a475817ULL,
};

static void sha384_init(ctx *c)
{
    static const uint64_t iv[8] = {
        0xcbbb9d5dc1059ed8ULL, 0x629a292a367cd507ULL, 0x9159015a3070dd17ULL, 0x152fecd8f70e5939ULL,
        0x67332667ffc00b31ULL, 0x8eb44a8768581511ULL, 0xdb0c2e0d64f98fa7ULL, 0x47b5481dbefa4fa4ULL,
    };
    memcpy(c->h64, iv, sizeof iv);
}

static void sha512_compress(ctx *c, const unsigned char *p)
{
    uint64_t w[80], s[8];
    for (int i = 0; i < 16; i++)
        w[i] = be64(p + 8 * i);
    for (int i = 16; i < 80; i++) {
        uint64_t s0 = ror64(w[i - 15], 1) ^ ror64(w[i - 15], 8) ^ (w[i - 15] >> 7);
        uint64_t s1 = ror64(w[i - 2], 19) ^ ror64(w[i - 2], 61) ^ (w[i - 2] >> 6);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(s, c->h64, sizeof s);
    for (int i = 0; i < 80; i++) {
        uint64_t S1 = ror64(s[4], 14) ^ ror64(s[4], 18) ^ ror64(s[4], 41);
        uint64_t ch = (s[4] & s[5]) ^ (~s[4] & s[6]);
        uint64_t t1 = s[7] + S1 + ch + sha512_k[i] + w[i];
        uint64_t S0 = ror64(s[0], 28) ^ ror64(s[0], 34) ^ ror64(s[0], 39);
        uint64_t maj = (s[0] & s[1]) ^ (s[0] & s[2]) ^ (s[1] & s[2]);
        memmove(s + 1, s, 7 * sizeof s[0]);
        s[4] += t1;
        s[0] = t1 + S0 + maj;
    }
    for (int i = 0; i < 8; i++)
        c->h64[i] += s[i];
}

static void sha384_final(const mp__digest *d, ctx *c, unsigned char *out)
{
    md_pad(d, c, 16, 1); /* a 128-bit length: its high 64 bits are zero */
    for (size_t i = 0; i < d->size; i++)
        out[i] = (unsigned char)(c->h64[i / 8] >> (56 - 8 * (i % 8)));
}

/* ---- SHA3 (Keccak-f[1600], rate = block) ---- */

static const uint64_t keccak_rc[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
    0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};
static const int keccak_rot[25] = {
    0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14,
};

static void keccak_f(uint64_t a[25])
{
    for (int round = 0; round < 24; round++) {
        uint64_t cc[5], b[25];
        for (int x = 0; x < 5; x++)
            cc[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
        for (int x = 0; x < 5; x++) {
            uint64_t d = cc[(x + 4) % 5] ^ rol64(cc[(x + 1) % 5], 1);
            for (int y = 0; y < 25; y += 5)
                a[x + y] ^= d;
        }
        for (int x = 0; x < 5; x++)
            for (int y = 0; y < 5; y++)
                b[y + 5 * ((2 * x + 3 * y) % 5)] = rol64(a[x + 5 * y], keccak_rot[x + 5 * y]);
        for (int y = 0; y < 25; y += 5)
            for (int x = 0; x < 5; x++)
                a[x + y] = b[x + y] ^ (~b[(x + 1) % 5 + y] & b[(x + 2) % 5 + y]);
        a[0] ^= keccak_rc[round];
    }
}

static void sha3_init(ctx *c)
{
    memset(c->h64, 0, sizeof c->h64);
}

static void sha3_256_compress(ctx *c, const unsigned char *p)
{
    for (int i = 0; i < 136 / 8; i++)
        c->h64[i] ^= le64(p + 8 * i);
    keccak_f(c->h64);
}

static void sha3_384_compress(ctx *c, const unsigned char *p)
{
    for (int i = 0; i < 104 / 8; i++)
        c->h64[i] ^= le64(p + 8 * i);
    keccak_f(c->h64);
}

static void sha3_final(const mp__digest *d, ctx *c, unsigned char *out)
{
    memset(c->buf + c->nbuf, 0, d->block - c->nbuf);
    c->buf[c->nbuf] = 0x06;
    c->buf[d->block - 1] |= 0x80;
    d->compress(c, c->buf);
    for (size_t i = 0; i < d->size; i++)
        out[i] = (unsigned char)(c->h64[i / 8] >> (8 * (i % 8)));
}

/* ---- the table ---- */

static const mp__digest digests[] = {
    {"md5", 16, 64, md5_init, md5_compress, md5_final},
    {"sha256", 32, 64, sha256_init, sha256_compress, sha256_final},
    {"sha384", 48, 128, sha384_init, sha512_compress, sha384_final},
    {"sha3_256", 32, 136, sha3_init, sha3_256_compress, sha3_final},
    {"sha3_384", 48, 104, sha3_init, sha3_384_compress, sha3_final},
};

const mp__digest *mp__digest_named(const void *name, size_t n)
{
    for (size_t i = 0; i < sizeof digests / sizeof digests[0]; i++)
        if (strlen(digests[i].name) == n && memcmp(digests[i].name, name, n) == 0)
            return &digests[i];
    return NULL;
}

const mp__digest *mp__digest_md5(void)
{
    return &digests[0];
}

size_t mp__digest_size(const mp__digest *d)
{
    return d->size;
}

static void start(const mp__digest *d, ctx *c)
{
    memset(c, 0, sizeof *c);
    d->init(c);
}

void mp__digest_of(const mp__digest *d, const void *msg, size_t len,
                   unsigned char out[MP__DIGEST_MAX])
{
    ctx c;
    start(d, &c);
    update(d, &c, msg, len);
    d->final(d, &c, out);
}

size_t mp__hmac(const mp__digest *d, const void *key, size_t keylen, const void *msg, size_t msglen,
                unsigned char out[MP__DIGEST_MAX])
{
    unsigned char k[BLOCK_MAX] = {0}, pad[BLOCK_MAX], inner[MP__DIGEST_MAX];
    if (keylen > d->block)
        mp__digest_of(d, key, keylen, k); /* a long key is hashed first */
    else if (keylen > 0)
        memcpy(k, key, keylen);
    ctx c;
    start(d, &c);
    for (size_t i = 0; i < d->block; i++)
        pad[i] = k[i] ^ 0x36;
    update(d, &c, pad, d->block);
    update(d, &c, msg, msglen);
    d->final(d, &c, inner);
    start(d, &c);
    for (size_t i = 0; i < d->block; i++)
        pad[i] = k[i] ^ 0x5c;
    update(d, &c, pad, d->block);
    update(d, &c, inner, d->size);
    d->final(d, &c, out);
    memset(k, 0, sizeof k);
    memset(pad, 0, sizeof pad);
    return d->size;
}

bool mp__digest_equal(const void *a, const void *b, size_t n)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= x[i] ^ y[i];
    return diff == 0;
}
