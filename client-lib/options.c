/*
 * options.c - petrel_options: defaults, validated setters and deep copies,
 * and the public topic checks they share.  Setters check their arguments
 * here, so a client never has to second-guess the options it was created
 * from.
 */
#include "options.h"

#include <stdlib.h>
#include <string.h>

#include "mqtt_codec.h"

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* malloc(0) may return NULL; a byte string of length 0 still needs a
 * non-NULL pointer to mean "present". */
static uint8_t *dup_bytes(const void *b, size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    if (p && n)
        memcpy(p, b, n);
    return p;
}

int options_init(struct petrel_options *o)
{
    memset(o, 0, sizeof *o);
    o->host = dup_str("localhost");
    o->client_id = dup_str("");
    if (!o->host || !o->client_id) {
        options_clear(o);
        return PETREL_ENOMEM;
    }
    o->port = OPTIONS_DEFAULT_PORT;
    o->port_is_default = true;
    o->clean_session = true;
    o->keepalive = 60;
    o->protocol = PETREL_MQTT_311;
    o->connect_timeout_ms = 10000;
    o->reconnect = true;
    o->reconnect_min_ms = 500;
    o->reconnect_max_ms = 30000;
    o->max_inflight = 20;
    o->max_queued = 1000;
    o->max_queued_bytes = 16u << 20;
    o->max_packet_size = 64u << 20;
    return PETREL_OK;
}

void options_clear(struct petrel_options *o)
{
    free(o->host);
    free(o->client_id);
    free(o->username);
    free(o->password);
    free(o->will_topic);
    free(o->will_payload);
    free(o->tls_cafile);
    free(o->tls_certfile);
    free(o->tls_keyfile);
    free(o->tls_server_name);
    free(o->ws_path);
    options5_clear(o);
    memset(o, 0, sizeof *o);
}

/* A copy of an optional string: 0, or -1 when out of memory. */
static int copy_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (src && !(*dst = dup_str(src)))
        return -1;
    return 0;
}

int options_copy(struct petrel_options *dst, const struct petrel_options *src)
{
    *dst = *src;
    dst->host = dst->client_id = dst->username = dst->will_topic = NULL;
    dst->password = dst->will_payload = NULL;
    dst->tls_cafile = dst->tls_certfile = dst->tls_keyfile = dst->tls_server_name = NULL;
    dst->ws_path = NULL;
    if (copy_opt(&dst->ws_path, src->ws_path) || copy_opt(&dst->tls_cafile, src->tls_cafile) ||
        copy_opt(&dst->tls_certfile, src->tls_certfile) ||
        copy_opt(&dst->tls_keyfile, src->tls_keyfile) ||
        copy_opt(&dst->tls_server_name, src->tls_server_name))
        goto oom;
    dst->connect_props = dst->will_props = NULL;
    if (!(dst->host = dup_str(src->host)) || !(dst->client_id = dup_str(src->client_id)))
        goto oom;
    if (src->username && !(dst->username = dup_str(src->username)))
        goto oom;
    if (src->password && !(dst->password = dup_bytes(src->password, src->password_len)))
        goto oom;
    if (src->will_topic) {
        if (!(dst->will_topic = dup_str(src->will_topic)) ||
            !(dst->will_payload = dup_bytes(src->will_payload, src->will_payload_len)))
            goto oom;
    }
    if (options5_copy(dst, src) != PETREL_OK)
        goto oom;
    return PETREL_OK;
oom:
    options_clear(dst);
    return PETREL_ENOMEM;
}

petrel_options *petrel_options_new(void)
{
    petrel_options *o = malloc(sizeof *o);
    if (!o)
        return NULL;
    if (options_init(o) != PETREL_OK) {
        free(o);
        return NULL;
    }
    return o;
}

void petrel_options_free(petrel_options *o)
{
    if (!o)
        return;
    options_clear(o);
    free(o);
}

/* MQTT strings are at most 65535 bytes of well-formed UTF-8. */
static bool mqtt_string_ok(const char *s)
{
    size_t n = strlen(s);
    return n <= 65535 && mqtt_utf8_valid((const uint8_t *)s, n);
}

/* Replaces *field with a copy of value (NULL clears it). */
static int set_string(char **field, const char *value)
{
    char *copy = NULL;
    if (value && !(copy = dup_str(value)))
        return PETREL_ENOMEM;
    free(*field);
    *field = copy;
    return PETREL_OK;
}

int petrel_options_set_server(petrel_options *o, const char *host, uint16_t port)
{
    if (!o || !host || !*host)
        return PETREL_EINVAL;
    if (set_string(&o->host, host) != PETREL_OK)
        return PETREL_ENOMEM;
    o->port_is_default = port == 0;
    o->port = port ? port : o->tls ? OPTIONS_DEFAULT_TLS_PORT : OPTIONS_DEFAULT_PORT;
    return PETREL_OK;
}

/* ---- TLS ------------------------------------------------------------------ */

static void tls_on(petrel_options *o)
{
    o->tls = true;
    if (o->port_is_default)
        o->port = OPTIONS_DEFAULT_TLS_PORT;
}

int petrel_options_set_tls(petrel_options *o, bool enabled)
{
    if (!o)
        return PETREL_EINVAL;
    if (enabled) {
        tls_on(o);
    } else {
        o->tls = false;
        if (o->port_is_default)
            o->port = OPTIONS_DEFAULT_PORT;
    }
    return PETREL_OK;
}

int petrel_options_set_tls_cafile(petrel_options *o, const char *cafile)
{
    if (!o || (cafile && !*cafile))
        return PETREL_EINVAL;
    int rc = set_string(&o->tls_cafile, cafile);
    if (rc == PETREL_OK && cafile)
        tls_on(o);
    return rc;
}

int petrel_options_set_tls_cert(petrel_options *o, const char *certfile, const char *keyfile)
{
    if (!o || (certfile && !*certfile) || (keyfile && !*keyfile) || (!certfile && keyfile))
        return PETREL_EINVAL;
    char *c = NULL, *k = NULL;
    if (certfile && (!(c = dup_str(certfile)) || !(k = dup_str(keyfile ? keyfile : certfile)))) {
        free(c);
        return PETREL_ENOMEM;
    }
    free(o->tls_certfile);
    free(o->tls_keyfile);
    o->tls_certfile = c;
    o->tls_keyfile = k;
    if (certfile)
        tls_on(o);
    return PETREL_OK;
}

int petrel_options_set_tls_insecure(petrel_options *o, bool insecure)
{
    if (!o)
        return PETREL_EINVAL;
    o->tls_insecure = insecure;
    if (insecure)
        tls_on(o);
    return PETREL_OK;
}

int petrel_options_set_tls_server_name(petrel_options *o, const char *name)
{
    if (!o || (name && !*name))
        return PETREL_EINVAL;
    return set_string(&o->tls_server_name, name);
}

int petrel_options_set_websocket(petrel_options *o, const char *path)
{
    /* The path goes into the request line: no blanks or control bytes. */
    if (!o || (path && path[0] != '/'))
        return PETREL_EINVAL;
    for (const char *p = path; p && *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return PETREL_EINVAL;
    return set_string(&o->ws_path, path);
}

int petrel_options_set_client_id(petrel_options *o, const char *client_id)
{
    if (!o)
        return PETREL_EINVAL;
    if (!client_id)
        client_id = "";
    if (!mqtt_string_ok(client_id))
        return PETREL_EINVAL;
    return set_string(&o->client_id, client_id);
}

int petrel_options_set_clean_session(petrel_options *o, bool clean)
{
    if (!o)
        return PETREL_EINVAL;
    o->clean_session = clean;
    return PETREL_OK;
}

int petrel_options_set_keepalive(petrel_options *o, uint16_t seconds)
{
    if (!o)
        return PETREL_EINVAL;
    o->keepalive = seconds;
    return PETREL_OK;
}

/* Replaces a name and its bytes (the user name and password, the will's
 * topic and payload), freeing the old ones. */
static void set_pair(char **name, uint8_t **bytes, size_t *len, char *new_name,
                     uint8_t *new_bytes, size_t new_len)
{
    free(*name);
    free(*bytes);
    *name = new_name;
    *bytes = new_bytes;
    *len = new_len;
}

int petrel_options_set_credentials(petrel_options *o, const char *username, const void *password,
                                   size_t password_len)
{
    if (!o)
        return PETREL_EINVAL;
    if (!username) {
        set_pair(&o->username, &o->password, &o->password_len, NULL, NULL, 0);
        return PETREL_OK;
    }
    if (!mqtt_string_ok(username) || (password && password_len > 65535) ||
        (!password && password_len))
        return PETREL_EINVAL;
    char *u = dup_str(username);
    uint8_t *p = password ? dup_bytes(password, password_len) : NULL;
    if (!u || (password && !p)) {
        free(u);
        free(p);
        return PETREL_ENOMEM;
    }
    set_pair(&o->username, &o->password, &o->password_len, u, p, password ? password_len : 0);
    return PETREL_OK;
}

int petrel_options_set_will(petrel_options *o, const char *topic, const void *payload,
                            size_t payload_len, int qos, bool retain)
{
    if (!o)
        return PETREL_EINVAL;
    if (!topic) {
        set_pair(&o->will_topic, &o->will_payload, &o->will_payload_len, NULL, NULL, 0);
        o->will_qos = 0;
        o->will_retain = false;
        return PETREL_OK;
    }
    if (!mqtt_topic_name_valid((const uint8_t *)topic, strlen(topic)) || qos < 0 || qos > 2 ||
        payload_len > 65535 || (!payload && payload_len))
        return PETREL_EINVAL;
    char *t = dup_str(topic);
    uint8_t *p = dup_bytes(payload, payload_len);
    if (!t || !p) {
        free(t);
        free(p);
        return PETREL_ENOMEM;
    }
    set_pair(&o->will_topic, &o->will_payload, &o->will_payload_len, t, p, payload_len);
    o->will_qos = (uint8_t)qos;
    o->will_retain = retain;
    return PETREL_OK;
}

int petrel_options_set_protocol(petrel_options *o, int protocol)
{
    if (!o)
        return PETREL_EINVAL;
    if (protocol != PETREL_MQTT_311 && protocol != PETREL_MQTT_5)
        return PETREL_EINVAL;
    o->protocol = (uint8_t)protocol;
    return PETREL_OK;
}

int petrel_options_set_connect_timeout(petrel_options *o, uint32_t ms)
{
    if (!o || ms == 0)
        return PETREL_EINVAL;
    o->connect_timeout_ms = ms;
    return PETREL_OK;
}

int petrel_options_set_reconnect(petrel_options *o, bool enabled, uint32_t min_ms, uint32_t max_ms)
{
    if (!o || (enabled && (min_ms == 0 || max_ms < min_ms)))
        return PETREL_EINVAL;
    o->reconnect = enabled;
    if (enabled) {
        o->reconnect_min_ms = min_ms;
        o->reconnect_max_ms = max_ms;
    }
    return PETREL_OK;
}

int petrel_options_set_max_inflight(petrel_options *o, uint32_t n)
{
    if (!o || n == 0 || n > OPTIONS_MAX_INFLIGHT)
        return PETREL_EINVAL;
    o->max_inflight = n;
    return PETREL_OK;
}

int petrel_options_set_queue_limits(petrel_options *o, size_t max_messages, size_t max_bytes)
{
    if (!o || max_messages == 0 || max_bytes == 0)
        return PETREL_EINVAL;
    o->max_queued = max_messages;
    o->max_queued_bytes = max_bytes;
    return PETREL_OK;
}

int petrel_options_set_max_packet_size(petrel_options *o, uint32_t bytes)
{
    /* Below 16 bytes not even a CONNACK with room to spare fits. */
    if (!o || (bytes && bytes < 16))
        return PETREL_EINVAL;
    o->max_packet_size = bytes ? bytes : MQTT_MAX_REMAINING_LENGTH + MQTT_MAX_FIXED_HEADER;
    return PETREL_OK;
}

bool petrel_topic_valid(const char *topic)
{
    return topic && mqtt_topic_name_valid((const uint8_t *)topic, strlen(topic));
}

bool petrel_filter_valid(const char *filter)
{
    return filter && mqtt_topic_filter_valid((const uint8_t *)filter, strlen(filter));
}
