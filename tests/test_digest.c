/* The handshake's own digests and HMAC (src/net/digest.c): published vectors
 * (RFC 2202, RFC 4231, FIPS 180/202 examples), every block-boundary length, and
 * agreement with python3's hmac and hashlib (OpenSSL's) on many keys and messages. */
// TEST_TIMEOUT 60
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "net/digest.h"

static void hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
    out[2 * n] = '\0';
}

static const mp__digest *named(const char *name)
{
    return mp__digest_named(name, strlen(name));
}

static void check_hmac(const char *name, const void *key, size_t keylen, const char *msg,
                       const char *want)
{
    unsigned char out[MP__DIGEST_MAX];
    char h[2 * MP__DIGEST_MAX + 1];
    const mp__digest *d = named(name);
    CHECK(d != NULL);
    size_t n = mp__hmac(d, key, keylen, msg, strlen(msg), out);
    CHECK_EQ(strlen(want) / 2, n);
    hex(out, n, h);
    CHECK_STR(want, h);
}

static void check_digest(const char *name, const char *msg, const char *want)
{
    unsigned char out[MP__DIGEST_MAX];
    char h[2 * MP__DIGEST_MAX + 1];
    const mp__digest *d = named(name);
    CHECK(d != NULL);
    mp__digest_of(d, msg, strlen(msg), out);
    hex(out, mp__digest_size(d), h);
    CHECK_STR(want, h);
}

TEST(digests_match_published_vectors)
{
    check_digest("md5", "", "d41d8cd98f00b204e9800998ecf8427e");
    check_digest("sha256", "abc",
                 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    check_digest("sha384", "abc",
                 "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc23"
                 "58baeca134c825a7");
    check_digest("sha3_256", "",
                 "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a");
    check_digest("sha3_384", "abc",
                 "ec01498288516fc926459f58e2c6ad8df9b473cb0fc08c2596da7cf0e49be4b298d88cea927ac7f5"
                 "39f1edf228376d25");
}

TEST(hmac_matches_rfc_2202_and_4231)
{
    unsigned char k0b[20], kaa[131];
    memset(k0b, 0x0b, sizeof k0b);
    memset(kaa, 0xaa, sizeof kaa);
    check_hmac("md5", k0b, 16, "Hi There", "9294727a3638bb1c13f48ef8158bfc9d");
    check_hmac("md5", "Jefe", 4, "what do ya want for nothing?",
               "750c783e6ab0b503eaa86e310a5db738");
    check_hmac("md5", kaa, 80, "Test Using Larger Than Block-Size Key - Hash Key First",
               "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd");
    check_hmac("sha256", k0b, 20, "Hi There",
               "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    check_hmac("sha384", k0b, 20, "Hi There",
               "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f"
               "4af152e8b2fa9cb6");
    check_hmac("sha256", kaa, 131, "Test Using Larger Than Block-Size Key - Hash Key First",
               "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(unknown_digest_names_are_refused)
{
    CHECK(named("sha1") == NULL);
    CHECK(named("sha512") == NULL);
    CHECK(named("md") == NULL);
    CHECK(mp__digest_named("md5x", 3) == mp__digest_md5());
    CHECK(mp__digest_named("", 0) == NULL);
}

TEST(equal_compares_every_byte)
{
    CHECK(mp__digest_equal("abcd", "abcd", 4));
    CHECK(!mp__digest_equal("abcd", "abce", 4));
    CHECK(!mp__digest_equal("xbcd", "abcd", 4));
    CHECK(mp__digest_equal("a", "b", 0));
}

/* Every digest, keys of 0..300 bytes and messages of 0..600 bytes across every block
 * boundary, against python3's hmac.new(key, msg, name).hexdigest(). */
TEST(hmac_agrees_with_python)
{
    if (system("python3 -c 'import hmac, hashlib; hashlib.sha3_384' 2>/dev/null") != 0)
        SKIP("python3 with hashlib's sha3 is not available");
    static const char *names[] = {"md5", "sha256", "sha384", "sha3_256", "sha3_384"};
    static const size_t lens[] = {0,   1,   20,  55,  56,  63,  64,  65,  103, 104, 105,
                                  111, 112, 127, 128, 129, 135, 136, 137, 200, 300, 600};
    const size_t nlens = sizeof lens / sizeof lens[0];
    char path[] = "/tmp/mproc-digest-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *in = fdopen(fd, "w");
    CHECK(in != NULL);
    unsigned char key[600], msg[600];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof msg; i++) {
        x = x * 1103515245u + 12345u;
        msg[i] = (unsigned char)(x >> 16);
        key[i] = (unsigned char)(x >> 8);
    }
    char kh[1201], mh[1201];
    for (size_t d = 0; d < 5; d++)
        for (size_t k = 0; k < nlens; k++)
            for (size_t m = 0; m < nlens; m++) {
                if (lens[k] > 300)
                    continue;
                hex(key, lens[k], kh);
                hex(msg, lens[m], mh);
                fprintf(in, "%s %s %s\n", names[d], kh[0] ? kh : "-", mh[0] ? mh : "-");
            }
    fclose(in);
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sys, hmac\nfor l in sys.stdin:\n n, k, m = l.split()\n "
             "b = lambda s: b\"\" if s == \"-\" else bytes.fromhex(s)\n "
             "print(hmac.new(b(k), b(m), n).hexdigest())' < %s",
             path);
    FILE *out = popen(cmd, "r");
    CHECK(out != NULL);
    int compared = 0;
    char line[256], h[2 * MP__DIGEST_MAX + 1];
    for (size_t d = 0; d < 5; d++)
        for (size_t k = 0; k < nlens; k++)
            for (size_t m = 0; m < nlens; m++) {
                if (lens[k] > 300)
                    continue;
                CHECK(fgets(line, sizeof line, out) != NULL);
                line[strcspn(line, "\n")] = '\0';
                unsigned char mac[MP__DIGEST_MAX];
                size_t n = mp__hmac(named(names[d]), key, lens[k], msg, lens[m], mac);
                hex(mac, n, h);
                if (strcmp(h, line) != 0)
                    fprintf(stderr, "%s key %zu msg %zu: %s, python %s\n", names[d], lens[k],
                            lens[m], h, line);
                CHECK_STR(line, h);
                compared++;
            }
    CHECK_EQ(0, pclose(out));
    unlink(path);
    CHECK(compared > 2000);
}
