/*
 * conn_args.c - parsing and checking the shared connection flags, and
 * building petrel_options from them.
 */
#include "conn_args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/dns.h>

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "petrel %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

int parse_number(const char *cmd, const char *flag, const char *arg, unsigned long min,
                 unsigned long max, const char *what, unsigned long *out)
{
    if (parse_ulong(arg, max, out) == 0 && *out >= min)
        return 0;
    cli_error(cmd, "%s%s'%s' is not %s", flag, *flag ? ": " : "", arg, what);
    return -1;
}

void conn_args_init(struct conn_args *a, const char *cmd)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->host = "localhost";
    a->port = 0;
    a->keepalive = 60;
    a->clean = true;
    a->timeout = 10;
    a->protocol = PETREL_MQTT_311;
}

void conn_args_free(struct conn_args *a)
{
    for (size_t i = 0; i < sizeof a->props / sizeof a->props[0]; i++) {
        petrel_properties_free(a->props[i]);
        a->props[i] = NULL;
    }
}

/* -L mqtt://HOST[:PORT], mqtts://, ws://HOST[:PORT][/PATH], wss://; a
 * bracketed IPv6 address as in URLs.  1, or -1 (message printed). */
static int parse_url(struct conn_args *a, const char *url)
{
    static const struct {
        const char *scheme;
        bool tls, ws;
        unsigned long port;
    } schemes[] = {
        {"mqtt://", false, false, 1883}, {"mqtts://", true, false, 8883},
        {"ws://", false, true, 80},      {"wss://", true, true, 443},
    };
    size_t i, n = sizeof schemes / sizeof schemes[0];
    for (i = 0; i < n; i++)
        if (strncmp(url, schemes[i].scheme, strlen(schemes[i].scheme)) == 0)
            break;
    if (i == n) {
        cli_error(a->cmd, "-L: '%s' is not an mqtt://, mqtts://, ws:// or wss:// URL", url);
        return -1;
    }
    const char *h = url + strlen(schemes[i].scheme), *end;
    size_t hlen;
    if (*h == '[') {
        end = strchr(h, ']');
        if (!end) {
            cli_error(a->cmd, "-L: '%s': unclosed [ in the address", url);
            return -1;
        }
        h++;
        hlen = (size_t)(end - h);
        end++;
    } else {
        hlen = strcspn(h, ":/");
        end = h + hlen;
    }
    if (hlen == 0 || hlen >= sizeof a->url_host) {
        cli_error(a->cmd, "-L: '%s': no host, or too long a host", url);
        return -1;
    }
    memcpy(a->url_host, h, hlen);
    a->url_host[hlen] = '\0';
    a->host = a->url_host;
    a->port = schemes[i].port;
    if (*end == ':') {
        char port[8];
        size_t plen = strcspn(end + 1, "/");
        if (plen == 0 || plen >= sizeof port) {
            cli_error(a->cmd, "-L: '%s': bad port", url);
            return -1;
        }
        memcpy(port, end + 1, plen);
        port[plen] = '\0';
        if (parse_ulong(port, 65535, &a->port) != 0 || a->port == 0) {
            cli_error(a->cmd, "-L: '%s': '%s' is not a port number (1-65535)", url, port);
            return -1;
        }
        end += 1 + plen;
    }
    if (schemes[i].tls)
        a->tls = true;
    if (!schemes[i].ws) {
        if (*end && strcmp(end, "/") != 0) {
            cli_error(a->cmd, "-L: '%s': an %s URL has no path", url, schemes[i].scheme);
            return -1;
        }
        return 1;
    }
    a->ws = true;
    if (*end) {
        if (strlen(end) >= sizeof a->url_path) {
            cli_error(a->cmd, "-L: '%s': path too long", url);
            return -1;
        }
        snprintf(a->url_path, sizeof a->url_path, "%s", end);
        a->ws_path = a->url_path;
    }
    return 1;
}

/* --tls and the options that only mean something with TLS, which they
 * turn on. */
static int tls_option(struct conn_args *a, int opt, const char *arg)
{
    a->tls = true;
    if (opt == OPT_CAFILE)
        a->cafile = arg;
    else if (opt == OPT_CERT)
        a->certfile = arg;
    else if (opt == OPT_KEY)
        a->keyfile = arg;
    else if (opt == OPT_INSECURE)
        a->insecure = true;
    return 1;
}

int conn_args_option(struct conn_args *a, int opt, const char *arg)
{
    switch (opt) {
    case 'L':
        return parse_url(a, arg);
    case OPT_WS:
        a->ws = true;
        return 1;
    case OPT_WS_PATH:
        if (arg[0] != '/') {
            cli_error(a->cmd, "--ws-path: '%s' does not start with '/'", arg);
            return -1;
        }
        a->ws = true;
        a->ws_path = arg;
        return 1;
    case 'h':
        if (!*arg) {
            cli_error(a->cmd, "-h: empty host");
            return -1;
        }
        a->host = arg;
        return 1;
    case 'p':
        if (parse_number(a->cmd, "-p", arg, 1, 65535, "a port number (1-65535)", &a->port) != 0)
            return -1;
        return 1;
    case 'i':
        if (strlen(arg) > 65535) {
            cli_error(a->cmd, "-i: client id too long");
            return -1;
        }
        a->client_id = arg;
        return 1;
    case 'u':
        a->username = arg;
        return 1;
    case 'P':
        a->password = arg;
        return 1;
    case 'k':
        if (parse_number(a->cmd, "-k", arg, 0, 65535,
                         "a keep alive in seconds (0-65535)", &a->keepalive) != 0)
            return -1;
        return 1;
    case 'c':
        a->clean = false;
        return 1;
    case 'd':
        a->debug = true;
        return 1;
    case 'V':
        return conn_args_protocol(a, arg);
    case 'D':
        return conn_args_property(a, arg);
    case OPT_WILL_TOPIC:
        a->will_topic = arg;
        return 1;
    case OPT_WILL_PAYLOAD:
        a->will_payload = arg;
        a->will_payload_set = true;
        return 1;
    case OPT_WILL_QOS:
        if (parse_number(a->cmd, "--will-qos", arg, 0, 2, "0, 1 or 2", &a->will_qos) != 0)
            return -1;
        return 1;
    case OPT_WILL_RETAIN:
        a->will_retain = true;
        return 1;
    case OPT_TLS:
    case OPT_CAFILE:
    case OPT_CERT:
    case OPT_KEY:
    case OPT_INSECURE:
        return tls_option(a, opt, arg);
    case OPT_TIMEOUT:
        if (parse_number(a->cmd, "--timeout", arg, 1, 86400,
                         "a number of seconds (1-86400)", &a->timeout) != 0)
            return -1;
        return 1;
    default:
        return 0;
    }
}

int conn_args_next(struct conn_args *a, const char *shortopts, const struct option *longopts)
{
    opterr = 0;
    for (;;) {
        int opt = getopt_long(a->argc, a->argv, shortopts, longopts, NULL);
        if (opt == -1) {
            if (optind < a->argc) {
                cli_error(a->cmd, "unexpected argument '%s'", a->argv[optind]);
                return CONN_ARGS_BAD;
            }
            return -1;
        }
        int rc = conn_args_option(a, opt, optarg);
        if (rc < 0)
            return CONN_ARGS_BAD;
        if (rc > 0)
            continue;
        if (opt == ':') {
            cli_error(a->cmd, "option '%s' needs a value", a->argv[optind - 1]);
            return CONN_ARGS_BAD;
        }
        if (opt == '?') {
            cli_error(a->cmd, "unknown option '%s' (see petrel %s --help)", a->argv[optind - 1],
                      a->cmd);
            return CONN_ARGS_BAD;
        }
        return opt;
    }
}

int conn_args_check(const struct conn_args *a)
{
    if (!a->clean && (!a->client_id || !*a->client_id)) {
        cli_error(a->cmd, "-c (persistent session) needs a client id (-i)");
        return -1;
    }
    if (a->password && !a->username) {
        cli_error(a->cmd, "-P needs -u");
        return -1;
    }
    if (!a->will_topic && (a->will_payload_set || a->will_qos || a->will_retain)) {
        cli_error(a->cmd, "--will-payload, --will-qos and --will-retain need --will-topic");
        return -1;
    }
    if (a->keyfile && !a->certfile) {
        cli_error(a->cmd, "--key needs --cert");
        return -1;
    }
    if (a->insecure)
        fprintf(stderr, "petrel %s: warning: --insecure: the server's certificate and name "
                "are not checked; anyone on the path can read and change this connection\n",
                a->cmd);
    return conn_args_check_v5(a);
}

const char *conn_error_text(int err)
{
    static char buf[700];
    if (err == PETREL_ETLS || err == PETREL_ECERT) {
        snprintf(buf, sizeof buf, "%s: %s", petrel_strerror(err), petrel_tls_error_detail());
        return buf;
    }
    return petrel_strerror(err);
}

/* The port shown in messages: the one given, or the default. */
unsigned long conn_args_port(const struct conn_args *a)
{
    if (a->port)
        return a->port;
    if (a->ws)
        return a->tls ? 8443 : 8080; /* petreld's WebSocket defaults */
    return a->tls ? 8883 : 1883;
}

/* Reports a rejected option value; the library said why. */
static petrel_options *refuse(const struct conn_args *a, petrel_options *o, const char *what,
                              int rc)
{
    cli_error(a->cmd, "%s: %s", what, petrel_strerror(rc));
    petrel_options_free(o);
    return NULL;
}

petrel_options *conn_args_options(const struct conn_args *a)
{
    petrel_options *o = petrel_options_new();
    if (!o) {
        cli_error(a->cmd, "out of memory");
        return NULL;
    }
    int rc = petrel_options_set_server(o, a->host, (uint16_t)(a->ws ? conn_args_port(a) : a->port));
    if (rc != PETREL_OK)
        return refuse(a, o, "host", rc);
    if (a->ws && (rc = petrel_options_set_websocket(o, a->ws_path ? a->ws_path : "/mqtt")) != PETREL_OK)
        return refuse(a, o, "--ws-path", rc);

    char generated[64];
    const char *id = a->client_id;
    if (!id) {
        /* Like mosquitto's mosq-XXXX: unique enough that two tools
         * started together do not take over each other's connection. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(generated, sizeof generated, "petrel-%s-%ld-%04lx", a->cmd, (long)getpid(),
                 (unsigned long)(ts.tv_nsec & 0xffff));
        id = generated;
    }
    if ((rc = petrel_options_set_client_id(o, id)) != PETREL_OK)
        return refuse(a, o, "client id", rc);
    petrel_options_set_clean_session(o, a->clean);
    petrel_options_set_keepalive(o, (uint16_t)a->keepalive);
    if (a->username) {
        rc = petrel_options_set_credentials(o, a->username, a->password,
                                            a->password ? strlen(a->password) : 0);
        if (rc != PETREL_OK)
            return refuse(a, o, "credentials", rc);
    }
    if (a->will_topic) {
        const char *p = a->will_payload ? a->will_payload : "";
        rc = petrel_options_set_will(o, a->will_topic, p, strlen(p), (int)a->will_qos,
                                     a->will_retain);
        if (rc != PETREL_OK)
            return refuse(a, o, "will", rc);
    }
    petrel_options_set_connect_timeout(o, (uint32_t)a->timeout * 1000);
    if (a->tls) {
        if ((rc = petrel_options_set_tls(o, true)) != PETREL_OK ||
            (a->cafile && (rc = petrel_options_set_tls_cafile(o, a->cafile)) != PETREL_OK) ||
            (a->certfile &&
             (rc = petrel_options_set_tls_cert(o, a->certfile, a->keyfile)) != PETREL_OK) ||
            (rc = petrel_options_set_tls_insecure(o, a->insecure)) != PETREL_OK)
            return refuse(a, o, "TLS options", rc);
    }
    if (conn_args_apply_v5(a, o) != 0) {
        petrel_options_free(o);
        return NULL;
    }
    return o;
}

static void debug_log(petrel_client *c, int level, const char *line, void *arg)
{
    (void)c;
    (void)level;
    const struct conn_args *a = arg;
    fprintf(stderr, "petrel %s: %s\n", a->cmd, line);
}

/* libpetrel's name lookups run on libevent's evdns, which reports a
 * nameserver that stops answering on its own, through libevent's log
 * (stderr, "[msg] ..."): with -d beside the client's lines, else not at all
 * (the failed connection says why). */
static const char *dns_cmd;

static void dns_log(int is_warning, const char *msg)
{
    (void)is_warning;
    if (dns_cmd)
        fprintf(stderr, "petrel %s: dns: %s\n", dns_cmd, msg);
}

void conn_args_attach_debug(const struct conn_args *a, petrel_client *c)
{
    dns_cmd = a->debug ? a->cmd : NULL;
    evdns_set_log_fn(dns_log);
    if (a->debug)
        petrel_on_log(c, debug_log, (void *)a);
}
