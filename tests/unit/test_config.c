/*
 * test_config.c - unit tests of petreld's settings: defaults, every key
 * with good and bad values, the listen forms, the file syntax with its
 * error messages, and the dump/load round trip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "temp_file.h"

/* ---- helpers ------------------------------------------------------------- */

static void assert_config_equal(const struct config *a, const struct config *b)
{
    assert_int_equal(a->n_listeners, b->n_listeners);
    for (size_t i = 0; i < a->n_listeners; i++) {
        assert_string_equal(a->listeners[i].host, b->listeners[i].host);
        assert_int_equal(a->listeners[i].port, b->listeners[i].port);
        assert_int_equal(a->listeners[i].max_connections, b->listeners[i].max_connections);
        assert_int_equal(a->listeners[i].allow_anonymous, b->listeners[i].allow_anonymous);
        assert_memory_equal(&a->listeners[i].tls, &b->listeners[i].tls,
                            sizeof(a->listeners[i].tls));
        assert_int_equal(a->listeners[i].ws, b->listeners[i].ws);
        assert_string_equal(a->listeners[i].ws_path, b->listeners[i].ws_path);
        assert_string_equal(a->listeners[i].allowed_origins, b->listeners[i].allowed_origins);
    }
    assert_int_equal(a->listeners_are_default, b->listeners_are_default);
    assert_string_equal(a->data_dir, b->data_dir);
    assert_int_equal(a->max_connections, b->max_connections);
    assert_int_equal(a->max_packet_size, b->max_packet_size);
    assert_int_equal(a->max_inflight, b->max_inflight);
    assert_int_equal(a->max_queued_messages, b->max_queued_messages);
    assert_int_equal(a->max_queued_bytes, b->max_queued_bytes);
    assert_int_equal(a->queue_full_policy, b->queue_full_policy);
    assert_int_equal(a->durability, b->durability);
    assert_int_equal(a->session_expiry, b->session_expiry);
    assert_int_equal(a->max_keepalive, b->max_keepalive);
    assert_int_equal(a->connect_timeout, b->connect_timeout);
    assert_int_equal(a->max_qos, b->max_qos);
    assert_int_equal(a->max_output_buffer, b->max_output_buffer);
    assert_int_equal(a->sys_interval, b->sys_interval);
    assert_int_equal(a->log_level, b->log_level);
    assert_string_equal(a->password_file, b->password_file);
    assert_string_equal(a->acl_file, b->acl_file);
    assert_int_equal(a->allow_anonymous, b->allow_anonymous);
    assert_int_equal(a->max_subscriptions_per_client, b->max_subscriptions_per_client);
    assert_int_equal(a->max_retained_messages, b->max_retained_messages);
    assert_int_equal(a->max_retained_bytes, b->max_retained_bytes);
    assert_int_equal(a->max_topic_length, b->max_topic_length);
    assert_int_equal(a->max_topic_levels, b->max_topic_levels);
    assert_int_equal(a->topic_alias_maximum, b->topic_alias_maximum);
}

static struct config cfg;
static char err[CONFIG_ERR_LEN];

static void set_ok(const char *key, const char *value)
{
    err[0] = '\0';
    if (config_set(&cfg, key, value, err, sizeof(err)) != 0)
        fail_msg("%s = '%s' rejected: %s", key, value, err);
}

/* Applies key = value to the defaults, expects it to be refused with
 * exactly `msg` (or any message if msg is NULL), and the config to be
 * left untouched. */
static void set_bad(const char *key, const char *value, const char *msg)
{
    struct config fresh;
    config_defaults(&cfg);
    config_defaults(&fresh);
    err[0] = '\0';
    if (config_set(&cfg, key, value, err, sizeof(err)) != -1)
        fail_msg("%s = '%s' was accepted", key, value);
    assert_true(err[0] != '\0');
    if (msg != NULL)
        assert_string_equal(err, msg);
    assert_config_equal(&cfg, &fresh);
}

static char *write_text(const char *text)
{
    return temp_file("config", text, strlen(text));
}

/* Loads `text` into the defaults; returns the result and leaves the
 * message, with the file name replaced by "F", in err. */
static int load_text(const char *text, size_t len)
{
    char *path = temp_file("config", text, len);
    char raw[CONFIG_ERR_LEN];
    config_defaults(&cfg);
    raw[0] = '\0';
    int rc = config_load_file(&cfg, path, raw, sizeof(raw));
    size_t plen = strlen(path);
    if (strncmp(raw, path, plen) == 0)
        snprintf(err, sizeof(err), "F%s", raw + plen);
    else
        snprintf(err, sizeof(err), "%s", raw);
    temp_file_remove(path);
    return rc;
}

static void load_bad(const char *text, const char *msg)
{
    struct config fresh;
    config_defaults(&fresh);
    if (load_text(text, strlen(text)) != -1)
        fail_msg("file was accepted:\n%s", text);
    assert_string_equal(err, msg);
    assert_config_equal(&cfg, &fresh); /* all or nothing */
}

/* ---- defaults and numbers ------------------------------------------------ */

static void test_defaults(void **state)
{
    (void)state;
    config_defaults(&cfg);
    assert_int_equal(cfg.n_listeners, 1);
    assert_true(cfg.listeners_are_default);
    assert_string_equal(cfg.listeners[0].host, "127.0.0.1");
    assert_int_equal(cfg.listeners[0].port, 1883);
    assert_string_equal(cfg.data_dir, "/var/lib/petrel");
    assert_int_equal(cfg.max_connections, 100000);
    assert_int_equal(cfg.max_packet_size, 1048576);
    assert_int_equal(cfg.max_inflight, 1000);
    assert_int_equal(cfg.max_queued_messages, 4000000);
    assert_int_equal(cfg.max_queued_bytes, 512u * 1024 * 1024);
    assert_int_equal(cfg.max_queued_memory, 16 * 1024 * 1024);
    assert_int_equal(cfg.queue_full_policy, QUEUE_BLOCK);
    assert_int_equal(cfg.durability, DURABILITY_PROCESS);
    assert_int_equal(cfg.session_expiry, 30 * 86400);
    assert_int_equal(cfg.max_keepalive, 65535);
    assert_int_equal(cfg.connect_timeout, 10);
    assert_int_equal(cfg.max_qos, 2);
    assert_int_equal(cfg.max_output_buffer, 1048576);
    assert_int_equal(cfg.sys_interval, 10);
    assert_int_equal(cfg.log_level, LOG_NOTICE);
    assert_int_equal(cfg.listeners[0].max_connections, 0);
    assert_int_equal(cfg.listeners[0].allow_anonymous, ANON_INHERIT);
    assert_string_equal(cfg.password_file, "");
    assert_string_equal(cfg.acl_file, "");
    assert_int_equal(cfg.allow_anonymous, ANON_LOOPBACK);
    assert_int_equal(cfg.max_subscriptions_per_client, 1000);
    assert_int_equal(cfg.max_retained_messages, 100000);
    assert_int_equal(cfg.max_retained_bytes, 64 * 1024 * 1024);
    assert_int_equal(cfg.max_topic_length, 65535);
    assert_int_equal(cfg.max_topic_levels, 128);
    assert_int_equal(cfg.topic_alias_maximum, 10);
}

struct range {
    const char *key;
    uint64_t lo, hi;
};

static uint64_t field_value(const char *key)
{
    if (!strcmp(key, "max_connections")) return cfg.max_connections;
    if (!strcmp(key, "max_packet_size")) return cfg.max_packet_size;
    if (!strcmp(key, "max_inflight")) return cfg.max_inflight;
    if (!strcmp(key, "max_queued_messages")) return cfg.max_queued_messages;
    if (!strcmp(key, "max_keepalive")) return cfg.max_keepalive;
    if (!strcmp(key, "connect_timeout")) return cfg.connect_timeout;
    if (!strcmp(key, "max_qos")) return cfg.max_qos;
    if (!strcmp(key, "max_output_buffer")) return cfg.max_output_buffer;
    if (!strcmp(key, "sys_interval")) return cfg.sys_interval;
    if (!strcmp(key, "max_subscriptions_per_client")) return cfg.max_subscriptions_per_client;
    if (!strcmp(key, "max_retained_messages")) return cfg.max_retained_messages;
    if (!strcmp(key, "max_retained_bytes")) return cfg.max_retained_bytes;
    if (!strcmp(key, "max_topic_length")) return cfg.max_topic_length;
    if (!strcmp(key, "max_topic_levels")) return cfg.max_topic_levels;
    if (!strcmp(key, "topic_alias_maximum")) return cfg.topic_alias_maximum;
    fail_msg("no field %s", key);
    return 0;
}

static const struct range ranges[] = {
    {"max_connections", 0, 4294967295u},
    {"max_packet_size", 16, 268435460},
    {"max_inflight", 1, 65535},
    {"max_queued_messages", 1, 4294967295u},
    {"max_keepalive", 1, 65535},
    {"connect_timeout", 1, 3600},
    {"max_qos", 0, 2},
    {"max_output_buffer", 4096, 4294967295u},
    {"sys_interval", 0, 86400},
    {"max_subscriptions_per_client", 0, 4294967295u},
    {"max_retained_messages", 0, 4294967295u},
    {"max_retained_bytes", 0, 1099511627776ull},
    {"max_topic_length", 1, 65535},
    {"max_topic_levels", 1, 65535},
    {"topic_alias_maximum", 0, 65535},
};

static void test_number_ranges(void **state)
{
    (void)state;
    char v[32], msg[256];
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        const struct range *r = &ranges[i];
        uint64_t good[] = {r->lo, r->hi, (r->lo + r->hi) / 2, r->lo + 1};
        for (size_t j = 0; j < 4; j++) {
            config_defaults(&cfg);
            snprintf(v, sizeof(v), "%llu", (unsigned long long)good[j]);
            set_ok(r->key, v);
            assert_int_equal(field_value(r->key), good[j]);
        }
        /* leading zeros are still decimal */
        snprintf(v, sizeof(v), "00%llu", (unsigned long long)r->hi);
        set_ok(r->key, v);
        assert_int_equal(field_value(r->key), r->hi);

        snprintf(v, sizeof(v), "%llu", (unsigned long long)r->hi + 1);
        snprintf(msg, sizeof(msg), "%s: '%s' is out of range %llu..%llu", r->key, v,
                 (unsigned long long)r->lo, (unsigned long long)r->hi);
        set_bad(r->key, v, NULL);
        assert_true(strncmp(err, msg, strlen(msg)) == 0);
        if (r->lo > 0) {
            snprintf(v, sizeof(v), "%llu", (unsigned long long)r->lo - 1);
            set_bad(r->key, v, NULL);
            snprintf(msg, sizeof(msg), "%s: '%s' is out of range", r->key, v);
            assert_true(strncmp(err, msg, strlen(msg)) == 0);
        }
        /* overflow of any integer type is out of range, not wrapped */
        set_bad(r->key, "99999999999999999999999999", NULL);
        assert_non_null(strstr(err, "out of range"));
        set_bad(r->key, "18446744073709551616", NULL);
        assert_non_null(strstr(err, "out of range"));

        static const char *const junk[] = {"-1", "+5", "10x", " 5", "5 ", "0x10", "1.5",
                                           "1e3", "x", "5\t", "1_000", "½"};
        for (size_t j = 0; j < sizeof(junk) / sizeof(junk[0]); j++) {
            set_bad(r->key, junk[j], NULL);
            assert_non_null(strstr(err, "is not a"));
            assert_true(strncmp(err, r->key, strlen(r->key)) == 0);
        }
        snprintf(msg, sizeof(msg), "%s: value is empty", r->key);
        set_bad(r->key, "", msg);
    }
    /* the example from the documentation, exactly */
    set_bad("max_inflight", "0", "max_inflight: '0' is out of range 1..65535");
    set_bad("max_inflight", "10x", "max_inflight: '10x' is not a decimal number");
    set_bad("max_qos", "3", "max_qos: '3' is out of range 0..2");
}

static void test_zero_meanings(void **state)
{
    (void)state;
    config_defaults(&cfg);
    set_ok("max_connections", "0"); /* no limit */
    assert_int_equal(cfg.max_connections, 0);
    set_ok("sys_interval", "0"); /* off */
    assert_int_equal(cfg.sys_interval, 0);
    set_ok("max_qos", "0");
    assert_int_equal(cfg.max_qos, 0);
    /* a cap of 0 makes no sense; the message says what the setting is */
    set_bad("max_keepalive", "0",
            "max_keepalive: '0' is out of range 1..65535 "
            "(it caps the keep alive, in seconds, that clients ask for)");
    /* Mosquitto users may expect 0 = unlimited: refuse rather than guess */
    set_bad("max_queued_messages", "0", NULL);
    assert_non_null(strstr(err, "out of range 1..4294967295"));
    assert_non_null(strstr(err, "0 does not mean unlimited"));
}

static void test_sizes(void **state)
{
    (void)state;
    config_defaults(&cfg);
    set_ok("max_packet_size", "1k");
    assert_int_equal(cfg.max_packet_size, 1024);
    set_ok("max_packet_size", "16K");
    assert_int_equal(cfg.max_packet_size, 16384);
    set_ok("max_packet_size", "2m");
    assert_int_equal(cfg.max_packet_size, 2097152);
    set_ok("max_packet_size", "256M");
    assert_int_equal(cfg.max_packet_size, 268435456);
    set_ok("max_packet_size", "268435460");
    assert_int_equal(cfg.max_packet_size, 268435460);
    set_ok("max_packet_size", "16");
    assert_int_equal(cfg.max_packet_size, 16);
    set_ok("max_packet_size", "1000");
    assert_int_equal(cfg.max_packet_size, 1000);
    set_ok("max_output_buffer", "4k");
    assert_int_equal(cfg.max_output_buffer, 4096);
    set_ok("max_output_buffer", "1G");
    assert_int_equal(cfg.max_output_buffer, 1073741824);
    set_ok("max_output_buffer", "3g");
    assert_int_equal(cfg.max_output_buffer, 3221225472u);
    set_ok("max_output_buffer", "4194303k");
    assert_int_equal(cfg.max_output_buffer, 4294966272u);

    set_bad("max_packet_size", "1G",
            "max_packet_size: '1G' is out of range 16..268435460 "
            "(the largest packet MQTT can encode)");
    set_bad("max_packet_size", "0k", NULL);
    assert_non_null(strstr(err, "out of range"));
    set_bad("max_output_buffer", "4G", NULL);
    assert_non_null(strstr(err, "out of range 4096..4294967295"));
    set_bad("max_output_buffer", "4095", NULL);
    set_bad("max_output_buffer", "3k", NULL);
    set_bad("max_output_buffer", "99999999999999999999G", NULL);
    assert_non_null(strstr(err, "out of range"));
    /* (2^34 + 1) G is 2^64 + 1G: wrapped around, it would pass as 1G */
    set_bad("max_output_buffer", "17179869185G", NULL);
    assert_non_null(strstr(err, "out of range"));

    static const char *const junk[] = {"k", "1kb", "1KiB", "1 k", "1.5M", "1T", "1kk", "M1",
                                       "-1k", "1e"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        set_bad("max_output_buffer", junk[i], NULL);
        assert_non_null(strstr(err, "is not a size"));
    }
    set_bad("max_packet_size", "10x",
            "max_packet_size: '10x' is not a size (a decimal number of bytes, "
            "optionally followed by k, M or G)");
    /* suffixes are for sizes, not counts */
    set_bad("max_inflight", "1k", "max_inflight: '1k' is not a decimal number");
    set_bad("max_connections", "1M", NULL);
    set_bad("connect_timeout", "1k", NULL);
}

/* The store's settings: two choices and a duration. */
static void test_store_settings(void **state)
{
    (void)state;
    config_defaults(&cfg);
    set_ok("durability", "power");
    assert_int_equal(cfg.durability, DURABILITY_POWER);
    set_ok("durability", "PROCESS");
    assert_int_equal(cfg.durability, DURABILITY_PROCESS);
    set_bad("durability", "fsync", "durability: 'fsync' is not one of process or power");
    assert_int_equal(cfg.durability, DURABILITY_PROCESS);

    set_ok("queue_full_policy", "drop-oldest");
    assert_int_equal(cfg.queue_full_policy, QUEUE_DROP_OLDEST);
    set_ok("queue-full-policy", "drop-new");
    assert_int_equal(cfg.queue_full_policy, QUEUE_DROP_NEW);
    set_bad("queue_full_policy", "drop", NULL);

    struct { const char *text; uint32_t seconds; } durations[] = {
        {"0", 0}, {"90", 90}, {"90s", 90}, {"15m", 900}, {"2h", 7200}, {"30d", 2592000},
    };
    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
        set_ok("session_expiry", durations[i].text);
        assert_int_equal(cfg.session_expiry, durations[i].seconds);
    }
    const char *bad[] = {"1w", "d", "-1", "5 d", "1.5h", "49711d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        set_bad("session_expiry", bad[i], NULL);
    assert_int_equal(cfg.session_expiry, 2592000);

    set_ok("max_queued_bytes", "0");
    assert_int_equal(cfg.max_queued_bytes, 0);
    set_ok("max_queued_bytes", "16M");
    assert_int_equal(cfg.max_queued_bytes, 16 * 1024 * 1024);
    set_bad("max_queued_bytes", "4G", NULL);
}

/* ---- security settings ----------------------------------------------------- */

static void test_security_settings(void **state)
{
    (void)state;
    config_defaults(&cfg);
    set_ok("password_file", "/etc/petrel/passwd");
    assert_string_equal(cfg.password_file, "/etc/petrel/passwd");
    set_ok("acl-file", "/etc/petrel/acl file");
    assert_string_equal(cfg.acl_file, "/etc/petrel/acl file");
    set_bad("password_file", "", "password_file: value is empty");
    set_bad("acl_file", "/etc/\x01", NULL);

    const struct { const char *v; uint8_t policy; } anon[] = {
        {"true", ANON_TRUE}, {"false", ANON_FALSE}, {"loopback", ANON_LOOPBACK},
        {"TRUE", ANON_TRUE},
    };
    for (size_t i = 0; i < sizeof anon / sizeof anon[0]; i++) {
        set_ok("allow_anonymous", anon[i].v);
        assert_int_equal(cfg.allow_anonymous, anon[i].policy);
    }
    set_bad("allow_anonymous", "yes",
            "allow_anonymous: 'yes' is not one of loopback, false or true");
}

static void test_listen_options(void **state)
{
    (void)state;
    config_defaults(&cfg);
    set_ok("listen", "0.0.0.0:1883 max_connections=500");
    assert_string_equal(cfg.listeners[0].host, "0.0.0.0");
    assert_int_equal(cfg.listeners[0].port, 1883);
    assert_int_equal(cfg.listeners[0].max_connections, 500);
    assert_int_equal(cfg.listeners[0].allow_anonymous, ANON_INHERIT);
    set_ok("listen", "[::1]:1884\tallow_anonymous=false   max_connections=0");
    assert_string_equal(cfg.listeners[1].host, "::1");
    assert_int_equal(cfg.listeners[1].allow_anonymous, ANON_FALSE);
    assert_int_equal(cfg.listeners[1].max_connections, 0);
    set_ok("listen", "127.0.0.1:0 allow_anonymous=true");
    assert_int_equal(cfg.listeners[2].allow_anonymous, ANON_TRUE);

    set_bad("listen", "1.2.3.4:1 max_connections=-1",
            "listen: max_connections=-1 is not a number in 0..4294967295");
    set_bad("listen", "1.2.3.4:1 max_connections=4294967296", NULL);
    set_bad("listen", "1.2.3.4:1 allow_anonymous=maybe",
            "listen: allow_anonymous=maybe is not one of loopback, false or true");
    set_bad("listen", "1.2.3.4:1 tlsx",
            "listen: option 'tlsx' should be KEY=VALUE (or 'tls')");
    set_bad("listen", "1.2.3.4:1 colour=blue",
            "listen: unknown option 'colour' (max_connections, allow_anonymous, tls, "
            "certfile, keyfile, cafile, require_certificate, use_identity_as_username, "
            "tls_version, ciphers, ciphersuites, ws, wss, ws_path, allowed_origins)");
    set_bad("listen", "nowhere:1 max_connections=1",
            "listen: 'nowhere' in 'nowhere:1' is not a numeric IPv4 or IPv6 address");
}

static void test_listen_tls(void **state)
{
    (void)state;
    config_defaults(&cfg);
    set_ok("listen", "0.0.0.0 tls certfile=/c.pem keyfile=/k.pem");
    const struct listener_conf *l = &cfg.listeners[0];
    assert_int_equal(l->port, 8883);
    assert_true(l->tls.enabled);
    assert_string_equal(l->tls.certfile, "/c.pem");
    assert_string_equal(l->tls.keyfile, "/k.pem");
    assert_string_equal(l->tls.cafile, "");
    assert_false(l->tls.require_certificate);
    assert_int_equal(l->tls.min_version, TLS_MIN_1_2);
    set_ok("listen", "[::1]:9883 tls=true certfile=/c keyfile=/k cafile=/ca require_certificate=true "
           "use_identity_as_username=TRUE tls_version=tlsv1.3 ciphers=HIGH:!aNULL "
           "ciphersuites=TLS_AES_256_GCM_SHA384 max_connections=5");
    l = &cfg.listeners[1];
    assert_int_equal(l->port, 9883);
    assert_true(l->tls.require_certificate);
    assert_true(l->tls.use_identity_as_username);
    assert_int_equal(l->tls.min_version, TLS_MIN_1_3);
    assert_string_equal(l->tls.cafile, "/ca");
    assert_string_equal(l->tls.ciphers, "HIGH:!aNULL");
    assert_string_equal(l->tls.ciphersuites, "TLS_AES_256_GCM_SHA384");
    assert_int_equal(l->max_connections, 5);
    set_ok("listen", "127.0.0.1 tls=false");
    assert_int_equal(cfg.listeners[2].port, 1883);
    assert_false(cfg.listeners[2].tls.enabled);

    set_bad("listen", "0.0.0.0 tls", "listen: a tls listener needs certfile= and keyfile=");
    set_bad("listen", "0.0.0.0 tls certfile=/c", "listen: a tls listener needs certfile= and "
            "keyfile=");
    set_bad("listen", "0.0.0.0:1 certfile=/c keyfile=/k",
            "listen: TLS options given without 'tls' (add 'tls' to make this a TLS listener)");
    set_bad("listen", "0.0.0.0 tls certfile=/c keyfile=/k require_certificate=true",
            "listen: require_certificate needs cafile= (the CAs that sign client "
            "certificates)");
    set_bad("listen", "0.0.0.0 tls certfile=/c keyfile=/k use_identity_as_username=true",
            "listen: use_identity_as_username needs cafile= (the CAs that sign client "
            "certificates)");
    set_bad("listen", "0.0.0.0 tls certfile=/c keyfile=/k tls_version=tlsv1.1",
            "listen: tls_version=tlsv1.1 is not tlsv1.2 or tlsv1.3 (the lowest version "
            "accepted; older ones are not safe)");
    set_bad("listen", "0.0.0.0 tls certfile=/c keyfile=/k require_certificate=yes",
            "listen: require_certificate=yes is not true or false");
    set_bad("listen", "0.0.0.0 tls certfile= keyfile=/k", "listen: certfile= is empty");
}

static void test_listen_ws(void **state)
{
    (void)state;
    config_defaults(&cfg);
    set_ok("listen", "0.0.0.0 ws");
    const struct listener_conf *l = &cfg.listeners[0];
    assert_true(l->ws);
    assert_false(l->tls.enabled);
    assert_int_equal(l->port, 8080);
    assert_string_equal(l->ws_path, "/mqtt");
    assert_string_equal(l->allowed_origins, "");
    set_ok("listen", "127.0.0.1 wss certfile=/c keyfile=/k ws_path=/x/y "
           "allowed_origins=https://a.example,https://b.example");
    l = &cfg.listeners[1];
    assert_true(l->ws);
    assert_true(l->tls.enabled);
    assert_int_equal(l->port, 8443);
    assert_string_equal(l->ws_path, "/x/y");
    assert_string_equal(l->allowed_origins, "https://a.example,https://b.example");
    set_bad("listen", "0.0.0.0:1 ws_path=/mqtt", "listen: ws_path and allowed_origins need 'ws' "
            "or 'wss'");
    set_bad("listen", "0.0.0.0:1 ws ws_path=mqtt", "listen: ws_path=mqtt should be a path "
            "starting with '/'");
    set_bad("listen", "0.0.0.0:1 wss", "listen: a tls listener needs certfile= and keyfile=");
}

static void test_log_level(void **state)
{
    (void)state;
    static const char *const names[] = {"error", "warning", "notice", "info", "debug"};
    enum log_level l;
    for (int i = 0; i < 5; i++) {
        config_defaults(&cfg);
        set_ok("log_level", names[i]);
        assert_int_equal(cfg.log_level, i);
        assert_string_equal(config_log_level_name((enum log_level)i), names[i]);
        assert_int_equal(config_parse_log_level(names[i], &l), 0);
        assert_int_equal(l, i);
    }
    set_ok("log_level", "DEBUG");
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    assert_int_equal(config_parse_log_level("verbose", &l), -1);
    assert_int_equal(config_parse_log_level("", &l), -1);
    assert_int_equal(config_parse_log_level("info ", &l), -1);
    set_bad("log_level", "verbose",
            "log_level: 'verbose' is not one of error, warning, notice, info, debug");
    set_bad("log_level", "warn", NULL);
    set_bad("log_level", "", "log_level: value is empty");
    assert_string_equal(config_log_level_name((enum log_level)42), "unknown");
}

static void test_data_dir(void **state)
{
    (void)state;
    config_defaults(&cfg);
    set_ok("data_dir", "/srv/petrel data");
    assert_string_equal(cfg.data_dir, "/srv/petrel data");
    set_ok("data_dir", "relative/dir");
    assert_string_equal(cfg.data_dir, "relative/dir");

    static char longest[4097];
    memset(longest, 'd', 4095);
    longest[0] = '/';
    longest[4095] = '\0';
    set_ok("data_dir", longest);
    assert_string_equal(cfg.data_dir, longest);
    longest[4095] = 'd';
    longest[4096] = '\0';
    set_bad("data_dir", longest, "data_dir: longer than 4095 bytes");

    set_bad("data_dir", "", "data_dir: value is empty");
    set_bad("data_dir", "/a\nb", NULL);
    assert_non_null(strstr(err, "control character"));
    set_bad("data_dir", " /a", NULL);
    set_bad("data_dir", "/a\t", NULL);
}

static void test_unknown_key(void **state)
{
    (void)state;
    set_bad("foo", "1", "unknown setting 'foo'");
    set_bad("max_inflights", "1", "unknown setting 'max_inflights'");
    set_bad("Max_Inflight", "1", "unknown setting 'Max_Inflight'");
    set_bad("", "1", "unknown setting ''");
    /* command-line spelling */
    config_defaults(&cfg);
    set_ok("max-inflight", "7");
    assert_int_equal(cfg.max_inflight, 7);
    set_ok("log-level", "info");
    assert_int_equal(cfg.log_level, LOG_INFO);
}

/* ---- listen -------------------------------------------------------------- */

static void test_listen_forms(void **state)
{
    (void)state;
    static const struct {
        const char *value, *host;
        uint16_t port;
    } good[] = {
        {"0.0.0.0:1883", "0.0.0.0", 1883},
        {"127.0.0.1:0", "127.0.0.1", 0},
        {"10.1.2.3:65535", "10.1.2.3", 65535},
        {"[::1]:8883", "::1", 8883},
        {"[::]:0", "::", 0},
        {"::1:1883", "::1", 1883},
        {":::1883", "::", 1883},
        {"fe80::1:2:80", "fe80::1:2", 80},
        {"[2001:db8::42]:1883", "2001:db8::42", 1883},
        {"::ffff:10.0.0.1:80", "::ffff:10.0.0.1", 80},
        {"[::ffff:10.0.0.1]:80", "::ffff:10.0.0.1", 80},
        {"1.2.3.4:01883", "1.2.3.4", 1883},
        /* no port: 1883, or 8883 with tls (test_listen_tls) */
        {"127.0.0.1", "127.0.0.1", 1883},
        {"[::1]", "::1", 1883},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        config_defaults(&cfg);
        set_ok("listen", good[i].value);
        assert_int_equal(cfg.n_listeners, 1);
        assert_string_equal(cfg.listeners[0].host, good[i].host);
        assert_int_equal(cfg.listeners[0].port, good[i].port);
    }

    static const char *const bad[] = {
        "localhost:1883", "127.0.0.1:", ":1883", "1883", "1.2.3.4:65536",
        "1.2.3.4:-1", "1.2.3.4:80x", "1.2.3.4: 80", " 1.2.3.4:80", "1.2.3:80",
        "256.1.1.1:80", "[1.2.3.4]:80", "[::1]1883", "[::1", "::1]:80", "[]:80",
        "::1", "[::1]:", "[::1]:99999999999999999999", "fe80::1%eth0:80", "[fe80::1%lo]:80",
        "*:1883", "0.0.0.0:1883:1", "1.2.3.4:0x50",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        set_bad("listen", bad[i], NULL);
        assert_true(strncmp(err, "listen: ", 8) == 0);
        /* the default listener survives a bad first listen */
        assert_true(cfg.listeners_are_default);
    }
    set_bad("listen", "localhost:1883",
            "listen: 'localhost' in 'localhost:1883' is not a numeric IPv4 or IPv6 address");
    set_bad("listen", "1.2.3.4:65536", "listen: port '65536' is out of range 0..65535");
    set_bad("listen", "1883",
            "listen: '1883' should be HOST:PORT, [IPV6]:PORT or IPV6:PORT");
    set_bad("listen", "[1.2.3.4]:80",
            "listen: '[1.2.3.4]:80': brackets are only for IPv6 addresses");
    set_bad("listen", "", "listen: value is empty");
}

static void test_listen_replaces_default(void **state)
{
    (void)state;
    char v[32];
    config_defaults(&cfg);
    set_ok("listen", "0.0.0.0:1884");
    assert_false(cfg.listeners_are_default);
    assert_int_equal(cfg.n_listeners, 1);
    assert_string_equal(cfg.listeners[0].host, "0.0.0.0");
    assert_int_equal(cfg.listeners[0].port, 1884);

    set_ok("listen", "[::]:1884");
    assert_int_equal(cfg.n_listeners, 2);
    assert_string_equal(cfg.listeners[0].host, "0.0.0.0");
    assert_string_equal(cfg.listeners[1].host, "::");

    /* the default's own address may come back explicitly */
    set_ok("listen", "127.0.0.1:1883");
    assert_int_equal(cfg.n_listeners, 3);

    /* the same address twice would fail to bind: refused here */
    assert_int_equal(config_set(&cfg, "listen", "0.0.0.0:1884", err, sizeof(err)), -1);
    assert_string_equal(err, "listen: '0.0.0.0:1884' is already listed");
    assert_int_equal(config_set(&cfg, "listen", "[0::0]:1884", err, sizeof(err)), -1);
    assert_int_equal(cfg.n_listeners, 3);
    /* but any number of "any free port" listeners are fine */
    set_ok("listen", "127.0.0.1:0");
    set_ok("listen", "127.0.0.1:0");
    assert_int_equal(cfg.n_listeners, 5);

    for (int port = 2000; cfg.n_listeners < CONFIG_MAX_LISTENERS; port++) {
        snprintf(v, sizeof(v), "127.0.0.1:%d", port);
        set_ok("listen", v);
    }
    assert_int_equal(config_set(&cfg, "listen", "127.0.0.1:9999", err, sizeof(err)), -1);
    assert_string_equal(err, "listen: more than 16 listeners");
    assert_int_equal(cfg.n_listeners, CONFIG_MAX_LISTENERS);
}

/* ---- the file ------------------------------------------------------------ */

static void test_file_good(void **state)
{
    (void)state;
    const char *text =
        "# petreld test configuration\n"
        "\n"
        "   # an indented comment\n"
        "\t\n"
        "listen = 0.0.0.0:1883\n"
        "listen=[::]:1883\n"
        "  max_inflight   =   50   \n"
        "max_packet_size = 256k\t\n"
        "data_dir = /srv/petrel#1\n"      /* '#' inside a value is literal */
        "max_connections = 10\r\n"        /* CRLF */
        "log_level = debug\r\n"
        "log_level = info\n"              /* the last one wins */
        "sys_interval = 0";               /* no newline at the end */
    assert_int_equal(load_text(text, strlen(text)), 0);
    assert_int_equal(cfg.n_listeners, 2);
    assert_false(cfg.listeners_are_default);
    assert_string_equal(cfg.listeners[0].host, "0.0.0.0");
    assert_string_equal(cfg.listeners[1].host, "::");
    assert_int_equal(cfg.max_inflight, 50);
    assert_int_equal(cfg.max_packet_size, 262144);
    assert_string_equal(cfg.data_dir, "/srv/petrel#1");
    assert_int_equal(cfg.max_connections, 10);
    assert_int_equal(cfg.log_level, LOG_INFO);
    assert_int_equal(cfg.sys_interval, 0);
    assert_int_equal(cfg.max_qos, 2); /* untouched */

    /* an empty file, and one of comments only, change nothing */
    struct config fresh;
    config_defaults(&fresh);
    assert_int_equal(load_text("", 0), 0);
    assert_config_equal(&cfg, &fresh);
    assert_int_equal(load_text("# nothing\r\n\r\n", 13), 0);
    assert_config_equal(&cfg, &fresh);

    /* a UTF-8 byte order mark is skipped */
    const char *bom = "\xEF\xBB\xBFmax_qos = 1\n";
    assert_int_equal(load_text(bom, strlen(bom)), 0);
    assert_int_equal(cfg.max_qos, 1);

    /* an entirely CRLF file */
    const char *crlf = "listen = [::1]:1\r\nmax_qos = 0\r\n";
    assert_int_equal(load_text(crlf, strlen(crlf)), 0);
    assert_string_equal(cfg.listeners[0].host, "::1");
    assert_int_equal(cfg.max_qos, 0);
}

static void test_file_errors(void **state)
{
    (void)state;
    load_bad("max_inflight = 5\nlog_level = info\njust some words\n",
             "F:3: expected 'key = value'");
    load_bad("max_inflight\n", "F:1: expected 'key = value'");
    load_bad("= 5\n", "F:1: expected 'key = value'");
    load_bad("  = 5\n", "F:1: expected 'key = value'");
    load_bad("\n\nmax_inflight =\n", "F:3: max_inflight: value is empty");
    load_bad("max_inflight =   \r\n", "F:1: max_inflight: value is empty");
    load_bad("foo = 1\n", "F:1: unknown setting 'foo'");
    load_bad("max inflight = 1\n", "F:1: unknown setting 'max inflight'");
    load_bad("# 1\n#2\n\n\n\n\n\n\n\n\n\nmax_inflight = 0\n",
             "F:12: max_inflight: '0' is out of range 1..65535");
    load_bad("listen = 1.2.3.4:1\r\nlisten = nowhere:1\r\n",
             "F:2: listen: 'nowhere' in 'nowhere:1' is not a numeric IPv4 or IPv6 address");
    /* a trailing comment is not silently taken as part of the value */
    load_bad("data_dir = /var/lib/petrel # where the db lives\n",
             "F:1: data_dir: '/var/lib/petrel # where the db lives' looks like it holds a "
             "comment; comments must be on a line of their own");
    load_bad("max_inflight = 20\t# per client\n",
             "F:1: max_inflight: '20\t# per client' looks like it holds a comment; "
             "comments must be on a line of their own");
    load_bad("log_level = # later\n",
             "F:1: log_level: '# later' looks like it holds a comment; "
             "comments must be on a line of their own");

    /* the whole file is refused, including the good lines before the bad */
    struct config fresh;
    config_defaults(&fresh);
    const char *text = "max_qos = 1\nlisten = 1.2.3.4:5\nbad\n";
    assert_int_equal(load_text(text, strlen(text)), -1);
    assert_string_equal(err, "F:3: expected 'key = value'");
    assert_config_equal(&cfg, &fresh);
}

static void test_file_nul_byte(void **state)
{
    (void)state;
    static const char text[] = "max_qos = 1\nmax_qos = 0\0junk\n";
    struct config fresh;
    config_defaults(&fresh);
    assert_int_equal(load_text(text, sizeof(text) - 1), -1);
    assert_string_equal(err, "F:2: line contains a NUL byte");
    assert_config_equal(&cfg, &fresh);
}

static void test_file_long_lines(void **state)
{
    (void)state;
    /* "data_dir = /ddd...d" exactly 4095 bytes long is fine, with LF or CRLF */
    static char text[3 * 4100 + 64];
    size_t size = sizeof(text);
    const char *prefix = "data_dir = /";
    size_t pl = strlen(prefix);

    memcpy(text, prefix, pl);
    memset(text + pl, 'd', 4095 - pl);
    memcpy(text + 4095, "\r\n", 2);
    assert_int_equal(load_text(text, 4097), 0);
    assert_int_equal(strlen(cfg.data_dir), 4095 - pl + 1);
    assert_int_equal(load_text(text, 4095), 0); /* and without a newline */

    /* one byte more is an error, reported on the right line */
    memcpy(text, "max_qos = 1\n", 12);
    memcpy(text + 12, prefix, pl);
    memset(text + 12 + pl, 'd', 4096 - pl);
    memcpy(text + 12 + 4096, "\nmax_qos = 0\n", 13);
    assert_int_equal(load_text(text, 12 + 4096 + 13), -1);
    assert_string_equal(err, "F:2: line is longer than 4095 bytes");

    /* far longer, e.g. a binary file */
    memset(text, 'x', size);
    assert_int_equal(load_text(text, size), -1);
    assert_string_equal(err, "F:1: line is longer than 4095 bytes");
}

static void test_file_cannot_open(void **state)
{
    (void)state;
    struct config fresh;
    config_defaults(&fresh);
    config_defaults(&cfg);
    assert_int_equal(config_load_file(&cfg, "/nonexistent/petreld.conf", err, sizeof(err)), -1);
    assert_string_equal(err, "/nonexistent/petreld.conf: No such file or directory");
    assert_config_equal(&cfg, &fresh);

    assert_int_equal(config_load_file(&cfg, "/", err, sizeof(err)), -1);
    assert_string_equal(err, "/: Is a directory");
    assert_config_equal(&cfg, &fresh);

    /* a NULL or empty error buffer is tolerated */
    assert_int_equal(config_load_file(&cfg, "/nonexistent/x", NULL, 0), -1);
    assert_int_equal(config_set(&cfg, "nope", "1", err, 0), -1);
}

/* ---- dump ---------------------------------------------------------------- */

static void round_trip(const struct config *orig, struct config *back)
{
    char *path = write_text("");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    config_dump(orig, f);
    assert_int_equal(fclose(f), 0);
    config_defaults(back);
    err[0] = '\0';
    if (config_load_file(back, path, err, sizeof(err)) != 0)
        fail_msg("dump does not load back: %s", err);
    temp_file_remove(path);
}

static void test_dump_round_trip(void **state)
{
    (void)state;
    struct config back;

    /* defaults: only the "still the default listener" flag differs */
    config_defaults(&cfg);
    round_trip(&cfg, &back);
    assert_false(back.listeners_are_default);
    back.listeners_are_default = true;
    assert_config_equal(&cfg, &back);

    /* everything changed, including values that sizes cannot abbreviate */
    config_defaults(&cfg);
    set_ok("listen", "0.0.0.0:1883");
    set_ok("listen", "[::1]:8883");
    set_ok("listen", "::ffff:127.0.0.1:0");
    set_ok("listen", "127.0.0.1:0");
    set_ok("listen", "127.0.0.1:8080 ws ws_path=/m allowed_origins=https://a,https://b");
    set_ok("listen", "127.0.0.1:8443 wss certfile=/c keyfile=/k");
    set_ok("data_dir", "/srv/petrel data#2");
    set_ok("max_connections", "0");
    set_ok("max_packet_size", "268435460");
    set_ok("max_inflight", "65535");
    set_ok("max_queued_messages", "4294967295");
    set_ok("max_keepalive", "1");
    set_ok("connect_timeout", "3600");
    set_ok("max_qos", "1");
    set_ok("max_output_buffer", "3G");
    set_ok("sys_interval", "86400");
    set_ok("log_level", "debug");
    set_ok("password_file", "/etc/petrel/passwd");
    set_ok("acl_file", "/etc/petrel/acl");
    set_ok("allow_anonymous", "true");
    set_ok("max_subscriptions_per_client", "7");
    set_ok("max_topic_length", "1");
    set_ok("max_topic_levels", "65535");
    set_ok("listen", "10.0.0.1:1 max_connections=9 allow_anonymous=false");
    set_ok("listen", "10.0.0.1 tls certfile=/c.pem keyfile=/k.pem cafile=/ca.pem "
           "require_certificate=true use_identity_as_username=true tls_version=tlsv1.3 "
           "ciphers=HIGH ciphersuites=TLS_AES_128_GCM_SHA256");
    round_trip(&cfg, &back);
    assert_config_equal(&cfg, &back);

    set_ok("max_output_buffer", "4097");
    set_ok("max_packet_size", "3M");
    set_ok("log_level", "error");
    round_trip(&cfg, &back);
    assert_config_equal(&cfg, &back);

    /* readable, too */
    char *path = write_text("");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    config_dump(&cfg, f);
    fclose(f);
    f = fopen(path, "r");
    assert_non_null(f);
    char text[8192];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    temp_file_remove(path);
    assert_non_null(strstr(text, "\nlisten = [::1]:8883\n"));
    assert_non_null(strstr(text, "\nlisten = 0.0.0.0:1883\n"));
    assert_non_null(strstr(text, "\nmax_packet_size = 3M\n"));
    assert_non_null(strstr(text, "\nmax_output_buffer = 4097\n"));
    assert_non_null(strstr(text, "\nlog_level = error\n"));
    assert_non_null(strstr(text, "\ndata_dir = /srv/petrel data#2\n"));
    assert_non_null(strstr(text, "\nlisten = 10.0.0.1:1 max_connections=9 "
                                 "allow_anonymous=false\n"));
    assert_non_null(strstr(text, "\nallow_anonymous = true\n"));
    assert_non_null(strstr(text, "\nlisten = 10.0.0.1:8883 tls certfile=/c.pem keyfile=/k.pem "
                                 "cafile=/ca.pem require_certificate=true "
                                 "use_identity_as_username=true tls_version=tlsv1.3 "
                                 "ciphers=HIGH ciphersuites=TLS_AES_128_GCM_SHA256\n"));

    /* unset files are written as comments, and load back unset */
    config_defaults(&cfg);
    path = write_text("");
    f = fopen(path, "w");
    assert_non_null(f);
    config_dump(&cfg, f);
    fclose(f);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    temp_file_remove(path);
    assert_non_null(strstr(text, "\n#password_file = (not set)\n"));
    assert_non_null(strstr(text, "\n#acl_file = (not set)\n"));
    round_trip(&cfg, &back);
    back.listeners_are_default = true;
    assert_config_equal(&cfg, &back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_number_ranges),
        cmocka_unit_test(test_zero_meanings),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_store_settings),
        cmocka_unit_test(test_security_settings),
        cmocka_unit_test(test_listen_options),
        cmocka_unit_test(test_log_level),
        cmocka_unit_test(test_data_dir),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_listen_forms),
        cmocka_unit_test(test_listen_replaces_default),
        cmocka_unit_test(test_file_good),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_file_nul_byte),
        cmocka_unit_test(test_file_long_lines),
        cmocka_unit_test(test_file_cannot_open),
        cmocka_unit_test(test_dump_round_trip),
        cmocka_unit_test(test_listen_tls),
        cmocka_unit_test(test_listen_ws),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
