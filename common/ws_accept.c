/*
 * ws_accept.c - Sec-WebSocket-Accept (see ws_accept.h).
 */
#include "ws_accept.h"

#include <string.h>
#include <openssl/evp.h>

/* Fixed by RFC 6455 section 1.3. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int ws_accept_compute(const char *key, size_t len, char out[WS_ACCEPT_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, key, len) == 1 &&
             EVP_DigestUpdate(ctx, ws_guid, sizeof ws_guid - 1) == 1 &&
             EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == 20;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -1;
    /* 20 bytes make 28 base64 characters and a NUL. */
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    return 0;
}
