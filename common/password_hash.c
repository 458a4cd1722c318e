/*
 * password_hash.c - PBKDF2-HMAC-SHA512 password hashes in the
 * "$pbkdf2-sha512$ITER$SALT$HASH" format (see password_hash.h).
 */
#include "password_hash.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define SALT_LEN 16
#define KEY_LEN 64 /* SHA-512 output: more would only cost the defender */

struct parsed {
    unsigned long iterations;
    unsigned char salt[SALT_LEN];
    unsigned char key[KEY_LEN];
};

static void set_why(char *why, size_t len, const char *msg)
{
    if (why && len)
        snprintf(why, len, "%s", msg);
}

/* Standard base64 with padding, exactly `n` bytes; false if the text is
 * not the encoding of exactly n bytes. */
static bool decode_b64(const char *s, size_t slen, unsigned char *out, size_t n)
{
    size_t want = 4 * ((n + 2) / 3), pad = (3 - n % 3) % 3;
    if (slen != want)
        return false;
    for (size_t i = 0; i < slen; i++) {
        char ch = s[i];
        bool ok = i >= slen - pad ? ch == '='
                                  : (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                                        (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
        if (!ok)
            return false;
    }
    unsigned char buf[4 * ((KEY_LEN + 2) / 3)];
    if (slen > sizeof buf)
        return false;
    /* EVP_DecodeBlock decodes whole 3-byte groups, padding included. */
    int got = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)slen);
    if (got < 0 || (size_t)got != n + pad)
        return false;
    memcpy(out, buf, n);
    OPENSSL_cleanse(buf, sizeof buf);
    return true;
}

static int parse(const char *enc, struct parsed *p, char *why, size_t whylen)
{
    size_t plen = strlen(PW_HASH_PREFIX);
    if (strncmp(enc, PW_HASH_PREFIX, plen) != 0) {
        set_why(why, whylen, "not a " PW_HASH_PREFIX " hash (create it with petrel passwd)");
        return -1;
    }
    const char *s = enc + plen;
    char *end;
    if (*s < '1' || *s > '9') {
        set_why(why, whylen, "bad iteration count");
        return -1;
    }
    p->iterations = strtoul(s, &end, 10);
    if (*end != '$' || p->iterations < PW_HASH_MIN_ITERATIONS ||
        p->iterations > PW_HASH_MAX_ITERATIONS) {
        set_why(why, whylen, "bad iteration count");
        return -1;
    }
    const char *salt = end + 1;
    const char *dollar = strchr(salt, '$');
    if (!dollar || !decode_b64(salt, (size_t)(dollar - salt), p->salt, SALT_LEN)) {
        set_why(why, whylen, "bad salt");
        return -1;
    }
    const char *key = dollar + 1;
    if (!decode_b64(key, strlen(key), p->key, KEY_LEN)) {
        set_why(why, whylen, "bad hash value");
        return -1;
    }
    return 0;
}

int pw_hash_parse_check(const char *encoded, char *why, size_t whylen)
{
    struct parsed p;
    int rc = parse(encoded, &p, why, whylen);
    OPENSSL_cleanse(&p, sizeof p);
    return rc;
}

static int derive(const void *pw, size_t len, const unsigned char *salt, unsigned long iter,
                  unsigned char *key)
{
    if (len > INT32_MAX)
        return -1;
    /* PKCS5_PBKDF2_HMAC wants a char pointer even for binary passwords;
     * MQTT passwords are binary data. */
    return PKCS5_PBKDF2_HMAC(len ? pw : "", (int)len, salt, SALT_LEN, (int)iter, EVP_sha512(),
                             KEY_LEN, key) == 1
               ? 0
               : -1;
}

int pw_hash_make(const void *password, size_t len, unsigned iterations, char *out, size_t outlen)
{
    if (iterations < PW_HASH_MIN_ITERATIONS || iterations > PW_HASH_MAX_ITERATIONS ||
        outlen < PW_HASH_MAX_LEN)
        return -1;
    unsigned char salt[SALT_LEN], key[KEY_LEN];
    if (RAND_bytes(salt, sizeof salt) != 1 || derive(password, len, salt, iterations, key) != 0)
        return -1;
    char salt64[4 * ((SALT_LEN + 2) / 3) + 1], key64[4 * ((KEY_LEN + 2) / 3) + 1];
    EVP_EncodeBlock((unsigned char *)salt64, salt, SALT_LEN);
    EVP_EncodeBlock((unsigned char *)key64, key, KEY_LEN);
    int n = snprintf(out, outlen, PW_HASH_PREFIX "%u$%s$%s", iterations, salt64, key64);
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(key64, sizeof key64);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

int pw_hash_verify(const char *encoded, const void *password, size_t len)
{
    struct parsed p;
    unsigned char key[KEY_LEN];
    int rc = -1;
    if (parse(encoded, &p, NULL, 0) == 0 &&
        derive(password, len, p.salt, p.iterations, key) == 0)
        rc = CRYPTO_memcmp(key, p.key, KEY_LEN) == 0 ? 1 : 0;
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(&p, sizeof p);
    return rc;
}
