/*
 * test_bridge_config.c - unit tests of the `bridge NAME` sections of
 * petreld.conf: a full section, the defaults, every kind of error with its
 * file:line, where a section ends, and the dump/load round trip.
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

/* Loads text as a file; returns load's result, the message in err. */
static int load(struct config *c, const char *text, char *err, size_t errlen, char **path_out)
{
    config_defaults(c);
    char *path = temp_file("bridgeconf", text, strlen(text));
    int rc = config_load_file(c, path, err, errlen);
    if (path_out)
        *path_out = path;
    else
        temp_file_remove(path);
    return rc;
}

static struct config cfg; /* large: not on the stack */

/* Loads text into cfg; the test fails with load's message if it does not. */
static void load_ok(const char *text)
{
    char err[CONFIG_ERR_LEN] = "";
    if (load(&cfg, text, err, sizeof err, NULL) != 0)
        fail_msg("does not load: %s", err);
}

static void test_full_section(void **state)
{
    (void)state;
    const char *text = "max_inflight = 100\n"
                       "bridge cloud\n"
                       "    address = broker.example.com:8884, [::1]:1900, 10.0.0.2\n"
                       "    cafile = /etc/ca.pem\n"
                       "    certfile = /etc/c.pem\n"
                       "    keyfile = /etc/k.pem\n"
                       "    username = edge\n"
                       "    password_file = /etc/pw\n"
                       "    client_id = edge-17\n"
                       "    protocol = 3.1.1\n"
                       "    keepalive = 30\n"
                       "    clean = false\n"
                       "    # a comment inside the section\n"
                       "\n"
                       "    notification_topic = bridges/edge-17/state\n"
                       "    out sensors/#  qos=2  remote_prefix=site17/\n"
                       "    in  commands/site17/#  qos=0  local_prefix=cmd/\n"
                       "max_qos = 1\n";
    load_ok(text);
    assert_int_equal(cfg.max_inflight, 100);
    assert_int_equal(cfg.max_qos, 1); /* after the section: a normal setting */
    assert_int_equal(cfg.bridges.n, 1);
    const struct bridge_conf *b = bridge_config_find(&cfg.bridges, "cloud");
    assert_non_null(b);
    assert_int_equal(b->line, 2);
    assert_int_equal(b->n_addresses, 3);
    assert_string_equal(b->addresses[0].host, "broker.example.com");
    assert_int_equal(b->addresses[0].port, 8884);
    assert_string_equal(b->addresses[1].host, "::1");
    assert_int_equal(b->addresses[1].port, 1900);
    assert_string_equal(b->addresses[2].host, "10.0.0.2");
    assert_int_equal(b->addresses[2].port, 8883); /* a cafile means TLS */
    assert_true(b->tls);
    assert_string_equal(b->cafile, "/etc/ca.pem");
    assert_string_equal(b->keyfile, "/etc/k.pem");
    assert_string_equal(b->username, "edge");
    assert_string_equal(b->client_id, "edge-17");
    assert_int_equal(b->protocol, 4);
    assert_int_equal(b->keepalive, 30);
    assert_false(b->clean);
    assert_string_equal(b->notification_topic, "bridges/edge-17/state");
    assert_int_equal(b->n_rules, 2);
    assert_true(b->rules[0].out);
    assert_string_equal(b->rules[0].filter, "sensors/#");
    assert_int_equal(b->rules[0].qos, 2);
    assert_string_equal(b->rules[0].remote_prefix, "site17/");
    assert_string_equal(b->rules[0].local_prefix, "");
    assert_false(b->rules[1].out);
    assert_int_equal(b->rules[1].qos, 0);
    assert_string_equal(b->rules[1].local_prefix, "cmd/");
}

static void test_defaults(void **state)
{
    (void)state;
    load_ok("bridge b1\n  address = 127.0.0.1\n  out a/#\n");
    const struct bridge_conf *b = &cfg.bridges.list[0];
    assert_string_equal(b->client_id, "petrel-bridge-b1");
    assert_int_equal(b->addresses[0].port, 1883);
    assert_false(b->tls);
    assert_int_equal(b->protocol, 5);
    assert_int_equal(b->keepalive, 60);
    assert_int_equal(b->rules[0].qos, 1);
    assert_true(b->try_private);
    assert_int_equal(b->reconnect_min_ms, 1000);
    assert_int_equal(b->reconnect_max_ms, 30000);
    assert_int_equal(b->max_queued_messages, 0); /* the sessions' bounds */
    assert_false(b->max_queued_bytes_given);
}

/* The text's error must be "path:LINE: ...WORDS..." */
static void expect_error(const char *text, unsigned line, const char *words)
{
    char err[CONFIG_ERR_LEN] = "";
    char *path;
    assert_int_equal(load(&cfg, text, err, sizeof err, &path), -1);
    char want[64];
    snprintf(want, sizeof want, ":%u: ", line);
    if (strncmp(err, path, strlen(path)) != 0 || strncmp(err + strlen(path), want,
                                                         strlen(want)) != 0 ||
        !strstr(err, words))
        fail_msg("for %s got '%s', want line %u and '%s'", text, err, line, words);
    temp_file_remove(path);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("bridge x\n  out a/#\n", 2, "has no address");
    expect_error("bridge x\n  address = h\nmax_qos = 1\n", 3, "has no out or in rule");
    expect_error("bridge x y\n", 1, "bridge name");
    expect_error("bridge x\n  address = h\n  out a/#\nbridge x\n", 4, "defined twice");
    expect_error("bridge x\n  address = h:0\n", 2, "address port");
    expect_error("bridge x\n  address = h:70000\n", 2, "address port");
    expect_error("bridge x\n  address = [::1\n", 2, "[IPV6]:PORT");
    expect_error("bridge x\n  address = a,b,c,d,e\n", 2, "more than 4 addresses");
    expect_error("bridge x\n  protocol = 3\n", 2, "protocol must be");
    expect_error("bridge x\n  keepalive = 70000\n", 2, "keepalive");
    expect_error("bridge x\n  clean = maybe\n", 2, "true or false");
    expect_error("bridge x\n  colour = blue\n", 2, "unknown bridge setting 'colour'");
    expect_error("bridge x\n  address\n", 2, "expected 'key = value'");
    expect_error("bridge x\n  out a/#/b\n", 2, "not a valid topic filter");
    expect_error("bridge x\n  out $share/g/a\n", 2, "not a valid topic filter");
    expect_error("bridge x\n  out a/# qos=3\n", 2, "qos");
    expect_error("bridge x\n  out a/# colour=1\n", 2, "unknown option");
    expect_error("bridge x\n  out a/# remote_prefix=b/+/\n", 2, "may not hold");
    expect_error("bridge x\n  in a/# local_prefix=x#\n", 2, "may not hold");
    expect_error("bridge x\n  out\n", 2, "expected a topic filter");
    expect_error("bridge x\n  address = h\n  out a/#\n  keyfile = k\n", 4, "keyfile without");
    expect_error("bridge x\n  address = h\n  out a/#\n  password_file = p\n", 4,
                 "password_file without username");
    expect_error("bridge x\n  address = h # comment\n", 2, "comment");
    expect_error("bridge x\n  notification_topic = a/+\n", 2, "not a valid topic name");
    expect_error("bridge x\n  max_queued_messages = 0\n", 2, "max_queued_messages");
    expect_error("bridge x\n  max_queued_bytes = 5X\n", 2, "must be a size");
    expect_error("bridge x\n  max_queued_bytes = 2048G\n", 2, "must be a size");
    /* An indented line with no section open is an ordinary setting. */
    expect_error("  colour = blue\n", 1, "colour");
    /* Limits. */
    char many[4096] = "bridge x\n  address = h\n";
    for (int i = 0; i < BRIDGE_MAX_RULES + 1; i++)
        strcat(many, "  out a/#\n");
    expect_error(many, 2 + BRIDGE_MAX_RULES + 1, "more than 16");
}

static void test_two_sections_and_reload(void **state)
{
    (void)state;
    load_ok("bridge a\n  address = h1\n  out x/#\n"
            "bridge b\n  address = h2\n  in y/# qos=2\n");
    assert_int_equal(cfg.bridges.n, 2);
    assert_string_equal(cfg.bridges.list[1].name, "b");
    assert_false(cfg.bridges.list[1].rules[0].out);
    /* A failed file keeps what was there: all or nothing. */
    char err[CONFIG_ERR_LEN] = "";
    char *path = temp_file("bridgeconf", "bridge c\n  out x\n", 17);
    assert_int_equal(config_load_file(&cfg, path, err, sizeof err), -1);
    temp_file_remove(path);
    assert_int_equal(cfg.bridges.n, 2);
    assert_false(bridge_config_same(&cfg.bridges.list[0], &cfg.bridges.list[1]));
    struct bridge_conf copy = cfg.bridges.list[0];
    copy.line = 99;
    assert_true(bridge_config_same(&cfg.bridges.list[0], &copy));
}

static void test_dump_round_trip(void **state)
{
    (void)state;
    char err[CONFIG_ERR_LEN] = "";
    const char *text = "bridge cloud\n"
                       "    address = broker.example.com:8884, [::1]:1900\n"
                       "    tls = true\n    tls_insecure = true\n"
                       "    username = edge\n    password_file = /etc/pw\n"
                       "    protocol = 3.1.1\n    try_private = false\n"
                       "    reconnect_min = 2\n    reconnect_max = 10\n"
                       "    notification_topic = n/t\n"
                       "    max_queued_messages = 500\n    max_queued_bytes = 2M\n"
                       "    out sensors/#  qos=2  remote_prefix=site17/ local_prefix=l/\n"
                       "    in  c/#  qos=0\n";
    load_ok(text);
    static struct config again;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    config_dump(&cfg, f);
    fclose(f);
    char *path = temp_file("bridgedump", buf, len);
    free(buf);
    config_defaults(&again);
    if (config_load_file(&again, path, err, sizeof err) != 0)
        fail_msg("dump does not load: %s", err);
    temp_file_remove(path);
    assert_int_equal(again.bridges.n, 1);
    assert_true(bridge_config_same(&cfg.bridges.list[0], &again.bridges.list[0]));
    assert_int_equal(again.bridges.list[0].max_queued_messages, 500);
    assert_true(again.bridges.list[0].max_queued_bytes_given);
    assert_int_equal(again.bridges.list[0].max_queued_bytes, 2 * 1024 * 1024);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_section),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_two_sections_and_reload),
        cmocka_unit_test(test_dump_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
