/* bigint.c — ints beyond int64: normalisation, decimal text, Python's numeric hash,
 * comparison with floats. Values are kept as the minimal little-endian two's
 * complement bytes pickle uses (LONG1/LONG4), so dumps copies them as they are;
 * arithmetic here works on a magnitude in 32-bit limbs made when needed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mproc/error.h"
#include "pickle/obj.h"

#define HASH_MODULUS (((uint64_t)1 << 61) - 1)

static size_t minimal_len(const uint8_t *le, size_t len)
{
    while (len > 0) {
        uint8_t top = le[len - 1];
        uint8_t below = len > 1 ? le[len - 2] : 0;
        if (top == 0 && (len == 1 || !(below & 0x80)))
            len--;
        else if (top == 0xff && len > 1 && (below & 0x80))
            len--;
        else
            break;
    }
    return len;
}

mp_obj *mp__int_from_le(const uint8_t *le, size_t len)
{
    len = minimal_len(le, len);
    if (len <= 8) {
        uint64_t u = 0;
        for (size_t i = 0; i < len; i++)
            u |= (uint64_t)le[i] << (8 * i);
        if (len > 0 && len < 8 && (le[len - 1] & 0x80))
            u |= ~(uint64_t)0 << (8 * len);
        return mp_int((int64_t)u);
    }
    mp__bigint *b = (mp__bigint *)mp__alloc(sizeof *b + len, MP_OBJ_INT);
    if (b == NULL)
        return NULL;
    b->h.aux = MP__INT_BIG;
    b->n = len;
    memcpy(b->b, le, len);
    return &b->h;
}

size_t mp__int64_to_le(int64_t v, uint8_t *out)
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(u >> (8 * i));
    return minimal_len(out, 8);
}

static bool is_negative(const mp__bigint *b)
{
    return (b->b[b->n - 1] & 0x80) != 0;
}

/* The magnitude as 32-bit limbs, least significant first; *nl limbs. NULL on OOM. */
static uint32_t *magnitude(const mp__bigint *b, size_t *nl)
{
    size_t n = (b->n + 3) / 4;
    uint32_t *l = calloc(n, sizeof *l);
    if (l == NULL)
        return NULL;
    bool neg = is_negative(b);
    unsigned carry = 1;
    for (size_t i = 0; i < b->n; i++) {
        unsigned v = b->b[i];
        if (neg) {
            v = (~v & 0xffu) + carry;
            carry = v >> 8;
            v &= 0xffu;
        }
        l[i / 4] |= (uint32_t)v << (8 * (i % 4));
    }
    /* A negative value pads with ones beyond b->n inside the last limb: clear them. */
    while (n > 0 && l[n - 1] == 0)
        n--;
    *nl = n;
    return l;
}

int64_t mp__bigint_hash(const mp__bigint *b)
{
    size_t nl;
    uint32_t *l = magnitude(b, &nl);
    uint64_t x = 0;
    if (l == NULL) {
        /* Out of memory: still consistent, since it only depends on the bytes. */
        for (size_t i = b->n; i-- > 0;)
            x = (uint64_t)(((unsigned __int128)x * 256 + b->b[i]) % HASH_MODULUS);
        return (int64_t)x == -1 ? -2 : (int64_t)x;
    }
    for (size_t i = nl; i-- > 0;)
        x = (uint64_t)((((unsigned __int128)x << 32) + l[i]) % HASH_MODULUS);
    free(l);
    int64_t h = is_negative(b) ? -(int64_t)x : (int64_t)x;
    return h == -1 ? -2 : h;
}

static size_t bit_length(const uint32_t *l, size_t nl)
{
    if (nl == 0)
        return 0;
    return (nl - 1) * 32 + (32 - (size_t)__builtin_clz(l[nl - 1]));
}

/* The top 64 bits of the magnitude (bit_length >= 64), with bit 0 set when any bit
 * below them is set (for correct rounding). */
static uint64_t top64(const uint32_t *l, size_t bits)
{
    size_t shift = bits - 64;
    uint64_t r = 0;
    for (size_t k = 0; k < 64; k++) {
        size_t bit = shift + k;
        if (l[bit / 32] >> (bit % 32) & 1u)
            r |= (uint64_t)1 << k;
    }
    bool sticky = false;
    for (size_t bit = 0; bit < shift && !sticky; bit++)
        sticky = (l[bit / 32] >> (bit % 32)) & 1u;
    return r | (sticky ? 1u : 0u);
}

double mp__bigint_to_double(const mp__bigint *b)
{
    size_t nl;
    uint32_t *l = magnitude(b, &nl);
    if (l == NULL)
        return NAN;
    size_t bits = bit_length(l, nl);
    double d = bits > 1100 ? INFINITY : ldexp((double)top64(l, bits), (int)bits - 64);
    free(l);
    return is_negative(b) ? -d : d;
}

int mp__bigint_cmp_double(const mp__bigint *b, double d)
{
    bool neg = is_negative(b);
    if (isinf(d))
        return d > 0 ? -1 : 1;
    if ((d < 0) != neg)
        return neg ? -1 : 1;
    /* Same sign: compare magnitudes. A big int has at least 64 bits. */
    double ad = fabs(d);
    size_t nl;
    uint32_t *l = magnitude(b, &nl);
    if (l == NULL)
        return neg ? -1 : 1;
    size_t bits = bit_length(l, nl);
    int e;
    frexp(ad, &e); /* ad in [2^(e-1), 2^e): e bits in its integer part */
    int mag;
    if (ad < 1.0 || (size_t)e < bits) {
        mag = 1;
    } else if ((size_t)e > bits) {
        mag = -1;
    } else {
        /* Same bit length (>= 64, so ad is an integer): compare the top 64 bits, then
         * whether the int has more bits set below them (ad has none there). */
        uint64_t t = top64(l, bits);
        uint64_t dt = (uint64_t)ldexp(ad, 64 - e);
        uint64_t tb = t & ~(uint64_t)1;
        if (tb != dt)
            mag = tb > dt ? 1 : -1;
        else
            mag = (t & 1u) ? 1 : 0;
    }
    free(l);
    return neg ? -mag : mag;
}

char *mp__bigint_decimal(const mp__bigint *b)
{
    size_t nl;
    uint32_t *l = magnitude(b, &nl);
    if (l == NULL)
        return NULL;
    /* Each 32-bit limb gives at most 9.64 decimal digits: 10 per limb is enough. */
    size_t cap = nl * 10 + 3;
    char *out = malloc(cap);
    if (out == NULL) {
        free(l);
        return NULL;
    }
    size_t pos = cap - 1;
    out[pos] = '\0';
    while (nl > 0) {
        uint64_t rem = 0;
        for (size_t i = nl; i-- > 0;) {
            uint64_t cur = (rem << 32) | l[i];
            l[i] = (uint32_t)(cur / 1000000000u);
            rem = cur % 1000000000u;
        }
        while (nl > 0 && l[nl - 1] == 0)
            nl--;
        for (int k = 0; k < 9; k++) {
            out[--pos] = (char)('0' + rem % 10);
            rem /= 10;
            if (nl == 0 && rem == 0)
                break;
        }
    }
    if (is_negative(b))
        out[--pos] = '-';
    memmove(out, out + pos, cap - pos);
    free(l);
    return out;
}

mp_obj *mp__int_from_decimal(const char *s, size_t len)
{
    bool neg = false;
    if (len > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        s++;
        len--;
    }
    if (len == 0)
        return NULL;
    /* Fast path: up to 18 digits fit int64. */
    if (len <= 18) {
        int64_t v = 0;
        for (size_t i = 0; i < len; i++) {
            if (s[i] < '0' || s[i] > '9')
                return NULL;
            v = v * 10 + (s[i] - '0');
        }
        return mp_int(neg ? -v : v);
    }
    size_t cap = len / 9 + 2;
    uint32_t *l = calloc(cap, sizeof *l);
    if (l == NULL)
        return NULL;
    size_t nl = 0;
    size_t i = 0;
    size_t first = len % 9 ? len % 9 : 9;
    while (i < len) {
        size_t take = i == 0 ? first : 9;
        uint32_t chunk = 0, mul = 1;
        for (size_t k = 0; k < take; k++, i++) {
            if (s[i] < '0' || s[i] > '9') {
                free(l);
                return NULL;
            }
            chunk = chunk * 10 + (uint32_t)(s[i] - '0');
            mul *= 10;
        }
        uint64_t carry = chunk;
        for (size_t k = 0; k < nl; k++) {
            uint64_t cur = (uint64_t)l[k] * mul + carry;
            l[k] = (uint32_t)cur;
            carry = cur >> 32;
        }
        if (carry)
            l[nl++] = (uint32_t)carry;
    }
    /* Magnitude to two's complement little-endian bytes, one spare byte for the sign. */
    size_t nb = nl * 4 + 1;
    uint8_t *b = malloc(nb);
    if (b == NULL) {
        free(l);
        return NULL;
    }
    for (size_t k = 0; k < nb; k++)
        b[k] = k / 4 < nl ? (uint8_t)(l[k / 4] >> (8 * (k % 4))) : 0;
    if (neg) {
        unsigned carry = 1;
        for (size_t k = 0; k < nb; k++) {
            unsigned v = (~b[k] & 0xffu) + carry;
            carry = v >> 8;
            b[k] = (uint8_t)v;
        }
    }
    mp_obj *r = mp__int_from_le(b, nb);
    free(b);
    free(l);
    return r;
}

int64_t mp__hash_double(double v)
{
    if (!isfinite(v))
        return isinf(v) ? (v > 0 ? 314159 : -314159) : 0;
    int e;
    double m = frexp(v, &e);
    int sign = 1;
    if (m < 0) {
        sign = -1;
        m = -m;
    }
    uint64_t x = 0;
    while (m) {
        x = ((x << 28) & HASH_MODULUS) | x >> (61 - 28);
        m *= 268435456.0;
        e -= 28;
        uint64_t y = (uint64_t)m;
        m -= (double)y;
        x += y;
        if (x >= HASH_MODULUS)
            x -= HASH_MODULUS;
    }
    e = e >= 0 ? e % 61 : 61 - 1 - ((-1 - e) % 61);
    x = ((x << e) & HASH_MODULUS) | x >> (61 - e);
    int64_t h = (int64_t)x * sign;
    return h == -1 ? -2 : h;
}
