/*
 * cmd_admin.c - `petrel admin`: petreld's admin API (http_listen) from the
 * shell: stats, clients, sessions and retained messages as tables, or the
 * API's JSON as it came with --json; disconnecting clients, deleting
 * sessions and retained messages, and reloading.  Lists are fetched page
 * by page until the end.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/http.h>
#include <jansson.h>

#include "admin_http.h"
#include "commands.h"
#include "exit_codes.h"

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 9883

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: petrel admin [OPTIONS] COMMAND [ARGS]\n"
            "Talk to petreld's admin API (its http_listen listener).\n\n"
            "Commands:\n"
            "  stats                    broker totals\n"
            "  clients [--prefix P]     connected clients\n"
            "  client ID                one client, with its subscriptions\n"
            "  disconnect ID            disconnect a client (MQTT 5.0: reason 0x98)\n"
            "  sessions [--sort queued] sessions (--sort queued: deepest queues first)\n"
            "  session ID               one session: subscriptions, queued messages\n"
            "  delete-session ID        delete a session (disconnecting its client)\n"
            "  retained [FILTER]        retained messages matching FILTER (default #)\n"
            "  delete-retained TOPIC    delete the retained message of TOPIC\n"
            "  reload                   reload like SIGHUP; prints the errors, if any\n\n"
            "Options:\n"
            "  -H, --host HOST[:PORT]   the listener (default %s:%d; [V6]:PORT for IPv6)\n"
            "      --token TOKEN        bearer token (default: $PETREL_TOKEN)\n"
            "      --token-file FILE    read the token from FILE (its first line that is\n"
            "                           not a comment; of a NAME ROLE TOKEN line, the last\n"
            "                           word)\n"
            "      --tls                HTTPS, checking the server's certificate\n"
            "      --cafile FILE        PEM CAs for that check (implies --tls)\n"
            "      --insecure           HTTPS without checking the certificate\n"
            "      --json               print the API's JSON instead of a table\n"
            "      --prefix P           clients, sessions: ids starting with P\n"
            "      --sort client_id|queued  sessions: the order\n"
            "      --limit N            sessions --sort queued: how many (default 100)\n"
            "      --timeout SECONDS    wait this long for a reply (default 10)\n"
            "  -h, --help               show this help\n\n"
            "Exit status: 0 success, 1 failure (404 and server errors included), 2 bad\n"
            "arguments (also a 400 or 405 reply), 3 listener unreachable or TLS refused,\n"
            "4 no token, wrong token or read-only token (401, 403), 5 timeout.\n",
            DEFAULT_HOST, DEFAULT_PORT);
}

struct opts {
    struct admin_target t;
    bool json;
    const char *prefix, *sort, *limit;
    char host[256];
    char token_buf[512];
};

static int parse_host(struct opts *o, const char *arg)
{
    const char *port = NULL;
    size_t hlen;
    if (arg[0] == '[') {
        const char *close = strchr(arg, ']');
        if (!close || (close[1] && close[1] != ':'))
            return -1;
        hlen = (size_t)(close - arg - 1);
        memcpy(o->host, arg + 1, hlen < sizeof o->host ? hlen : 0);
        port = close[1] ? close + 2 : NULL;
    } else {
        const char *colon = strchr(arg, ':');
        if (colon && strchr(colon + 1, ':'))
            colon = NULL; /* a bare IPv6 address */
        hlen = colon ? (size_t)(colon - arg) : strlen(arg);
        if (hlen >= sizeof o->host)
            return -1;
        memcpy(o->host, arg, hlen);
        port = colon ? colon + 1 : NULL;
    }
    if (hlen == 0 || hlen >= sizeof o->host)
        return -1;
    o->host[hlen] = '\0';
    if (port) {
        char *end;
        long p = strtol(port, &end, 10);
        if (*port == '\0' || *end || p < 1 || p > 65535)
            return -1;
        o->t.port = (unsigned)p;
    }
    return 0;
}

static int read_token_file(struct opts *o, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    char line[512];
    int rc = -1;
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\n' || *p == '\r' || *p == '\0')
            continue;
        p[strcspn(p, "\r\n")] = '\0';
        char *last = strrchr(p, ' ');
        char *tab = strrchr(p, '\t');
        if (tab && (!last || tab > last))
            last = tab;
        snprintf(o->token_buf, sizeof o->token_buf, "%s", last ? last + 1 : p);
        rc = o->token_buf[0] ? 0 : -1;
        break;
    }
    fclose(f);
    if (rc != 0)
        fprintf(stderr, "petrel admin: %s: no token in it\n", path);
    return rc;
}

/* ---- output --------------------------------------------------------------- */

/* Strings from the broker may hold anything its clients sent: control
 * characters are shown as '?' so that they cannot drive the terminal. */
static void fput_safe(FILE *out, const char *s, int width)
{
    int n = 0;
    for (; s && *s; s++, n++)
        fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, out);
    for (; n < width; n++)
        fputc(' ', out);
}

static void put_safe(const char *s, int width)
{
    fput_safe(stdout, s, width);
}

static const char *str_of(json_t *o, const char *key, char *buf, size_t len)
{
    json_t *v = json_object_get(o, key);
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v))
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, len, "%.3f", json_real_value(v));
    else if (json_is_true(v))
        snprintf(buf, len, "yes");
    else if (json_is_false(v))
        snprintf(buf, len, "no");
    else
        snprintf(buf, len, "-");
    return buf;
}

struct column {
    const char *title;
    const char *key;
    int width;
};

static void table_head(const struct column *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        put_safe(c[i].title, i + 1 < n ? c[i].width : 0);
        if (i + 1 < n)
            putchar(' ');
    }
    putchar('\n');
}

static void table_row(json_t *o, const struct column *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char buf[64];
        put_safe(str_of(o, c[i].key, buf, sizeof buf), i + 1 < n ? c[i].width : 0);
        if (i + 1 < n)
            putchar(' ');
    }
    putchar('\n');
}

static void key_values(json_t *o, const char *indent)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (json_is_array(v))
            continue;
        if (json_is_object(v)) {
            printf("%s%s:\n", indent, key);
            key_values(v, "  ");
            continue;
        }
        char buf[64];
        printf("%s%-22s ", indent, key);
        put_safe(str_of(o, key, buf, sizeof buf), 0);
        putchar('\n');
    }
}

static const struct column client_cols[] = {
    {"CLIENT ID", "client_id", 24}, {"PROTO", "protocol", 5}, {"TRANSPORT", "transport", 9},
    {"ADDRESS", "address", 21},     {"KEEPALIVE", "keepalive", 9},
    {"CONNECTED_S", "connected_seconds", 11}, {"INFLIGHT", "inflight", 8},
    {"QUEUED", "queued_messages", 6},
};
static const struct column session_cols[] = {
    {"CLIENT ID", "client_id", 24}, {"ONLINE", "online", 6}, {"QUEUED", "queued_messages", 8},
    {"BYTES", "queued_bytes", 10},  {"SUBS", "subscriptions", 5}, {"AGE_S", "age_seconds", 8},
    {"EXPIRES_S", "expires_in_seconds", 9},
};
static const struct column retained_cols[] = {
    {"TOPIC", "topic", 40}, {"BYTES", "bytes", 8}, {"QOS", "qos", 3},
};
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- requests ---------------------------------------------------------------- */

static int exit_for_status(int status)
{
    if (status >= 200 && status < 300)
        return CLI_EXIT_OK;
    if (status == 401 || status == 403)
        return CLI_EXIT_NOT_AUTHORIZED;
    if (status == 400 || status == 405 || status == 413)
        return CLI_EXIT_USAGE;
    return CLI_EXIT_FAILURE;
}

/* One request; the parsed body in *out (NULL with --json, whose body is
 * printed as it came).  Returns an exit status. */
static int call(struct opts *o, const char *method, const char *path, json_t **out)
{
    struct admin_reply r;
    *out = NULL;
    if (admin_request(&o->t, method, path, &r) != 0) {
        fprintf(stderr, "petrel admin: %s:%u: %s\n", o->t.host, o->t.port, r.error);
        admin_reply_free(&r);
        return r.timed_out ? CLI_EXIT_TIMEOUT : CLI_EXIT_REFUSED;
    }
    int rc = exit_for_status(r.status);
    json_error_t jerr;
    json_t *j = r.body ? json_loadb(r.body, r.len, 0, &jerr) : NULL;
    if (rc != CLI_EXIT_OK) {
        json_t *msg = j ? json_object_get(j, "message") : NULL;
        fprintf(stderr, "petrel admin: %s %s: HTTP %d: ", method, path, r.status);
        fput_safe(stderr, json_is_string(msg) ? json_string_value(msg) : "(no message)", 0);
        fputc('\n', stderr);
        json_decref(j);
    } else if (o->json) {
        fwrite(r.body ? r.body : "", 1, r.len, stdout);
        if (r.len && r.body[r.len - 1] != '\n')
            putchar('\n');
        json_decref(j);
    } else if (!j) {
        fprintf(stderr, "petrel admin: %s: the reply is not JSON: %s\n", path, jerr.text);
        rc = CLI_EXIT_FAILURE;
    } else {
        *out = j;
    }
    admin_reply_free(&r);
    return rc;
}

/* "/api/v1/clients/ENCODED-ID" + tail */
static char *id_path(const char *base, const char *id, const char *tail)
{
    char *enc = evhttp_uriencode(id, -1, 0);
    if (!enc)
        return NULL;
    size_t len = strlen(base) + strlen(enc) + strlen(tail) + 1;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%s%s%s", base, enc, tail);
    free(enc);
    return p;
}

/* A list, page after page (pages of 1000) until "next" is null. */
static int list(struct opts *o, const char *what, const char *query_fmt_base,
                const struct column *cols, size_t n_cols, bool one_page)
{
    char *after = NULL;
    bool first = true;
    int rc = CLI_EXIT_OK;
    for (;;) {
        char path[8192];
        int n = snprintf(path, sizeof path, "%s", query_fmt_base);
        if (after && n > 0 && (size_t)n < sizeof path) {
            char *enc = evhttp_uriencode(after, -1, 0);
            if (!enc)
                break;
            snprintf(path + n, sizeof path - (size_t)n, "&after=%s", enc);
            free(enc);
        }
        json_t *j;
        rc = call(o, "GET", path, &j);
        if (rc != CLI_EXIT_OK || o->json) {
            json_decref(j);
            break;
        }
        if (first && !o->json)
            table_head(cols, n_cols);
        first = false;
        json_t *items = json_object_get(j, what), *v;
        size_t i;
        json_array_foreach(items, i, v)
            table_row(v, cols, n_cols);
        json_t *next = json_object_get(j, "next");
        free(after);
        after = json_is_string(next) && !one_page ? strdup(json_string_value(next)) : NULL;
        json_decref(j);
        if (!after)
            break;
    }
    free(after);
    return rc;
}

static void subscriptions_and_queue(json_t *j)
{
    json_t *subs = json_object_get(j, "subscriptions"), *v;
    size_t i;
    if (json_is_array(subs)) {
        printf("subscriptions (%zu):\n", json_array_size(subs));
        json_array_foreach(subs, i, v) {
            printf("  qos %lld  ", (long long)json_integer_value(json_object_get(v, "qos")));
            put_safe(json_string_value(json_object_get(v, "filter")), 0);
            putchar('\n');
        }
    }
    json_t *queued = json_object_get(j, "queued");
    if (json_is_array(queued)) {
        printf("queued (first %zu%s):\n", json_array_size(queued),
               json_is_true(json_object_get(j, "queued_truncated")) ? ", more not shown" : "");
        json_array_foreach(queued, i, v) {
            printf("  qos %lld  %8lld bytes  ",
                   (long long)json_integer_value(json_object_get(v, "qos")),
                   (long long)json_integer_value(json_object_get(v, "bytes")));
            put_safe(json_string_value(json_object_get(v, "topic")), 0);
            putchar('\n');
        }
    }
}

static int one(struct opts *o, const char *base, const char *id)
{
    char *path = id_path(base, id, "");
    if (!path)
        return CLI_EXIT_FAILURE;
    json_t *j;
    int rc = call(o, "GET", path, &j);
    free(path);
    if (j) {
        key_values(j, "");
        subscriptions_and_queue(j);
        json_decref(j);
    }
    return rc;
}

static int change(struct opts *o, const char *method, const char *path, const char *done,
                  const char *what)
{
    json_t *j;
    int rc = call(o, method, path, &j);
    if (j) {
        printf("%s ", done);
        put_safe(what, 0);
        putchar('\n');
        json_decref(j);
    }
    return rc;
}

static int reload(struct opts *o)
{
    json_t *j;
    int rc = call(o, "POST", "/api/v1/reload", &j);
    if (j) {
        json_t *errors = json_object_get(j, "errors"), *v;
        size_t i;
        if (json_array_size(errors) == 0)
            printf("reloaded\n");
        json_array_foreach(errors, i, v) {
            fputs("error: ", stdout);
            put_safe(json_string_value(v), 0);
            putchar('\n');
        }
        if (json_array_size(errors))
            rc = CLI_EXIT_FAILURE;
        json_decref(j);
    }
    return rc;
}

static int need_args(const char *cmd, int have, int want)
{
    if (have == want)
        return 0;
    fprintf(stderr, "petrel admin %s: %s\n", cmd, have < want ? "missing argument" :
                                                               "too many arguments");
    return -1;
}

int cmd_admin(int argc, char **argv)
{
    enum { O_TOKEN = 1000, O_TOKEN_FILE, O_TLS, O_CAFILE, O_INSECURE, O_JSON, O_PREFIX,
           O_SORT, O_LIMIT, O_TIMEOUT };
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"token", required_argument, NULL, O_TOKEN},
        {"token-file", required_argument, NULL, O_TOKEN_FILE},
        {"tls", no_argument, NULL, O_TLS},
        {"cafile", required_argument, NULL, O_CAFILE},
        {"insecure", no_argument, NULL, O_INSECURE},
        {"json", no_argument, NULL, O_JSON},
        {"prefix", required_argument, NULL, O_PREFIX},
        {"sort", required_argument, NULL, O_SORT},
        {"limit", required_argument, NULL, O_LIMIT},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct opts o;
    memset(&o, 0, sizeof o);
    snprintf(o.host, sizeof o.host, "%s", DEFAULT_HOST);
    o.t.port = DEFAULT_PORT;
    o.t.timeout_s = 10;
    const char *token_file = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "H:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'H':
            if (parse_host(&o, optarg) != 0) {
                fprintf(stderr, "petrel admin: --host %s: want HOST, HOST:PORT or [V6]:PORT\n",
                        optarg);
                return CLI_EXIT_USAGE;
            }
            break;
        case O_TOKEN: o.t.token = optarg; break;
        case O_TOKEN_FILE: token_file = optarg; break;
        case O_TLS: o.t.tls = true; break;
        case O_CAFILE: o.t.cafile = optarg; o.t.tls = true; break;
        case O_INSECURE: o.t.insecure = true; o.t.tls = true; break;
        case O_JSON: o.json = true; break;
        case O_PREFIX: o.prefix = optarg; break;
        case O_SORT: o.sort = optarg; break;
        case O_LIMIT: o.limit = optarg; break;
        case O_TIMEOUT: {
            char *end;
            long s = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end || s < 1 || s > 3600) {
                fprintf(stderr, "petrel admin: --timeout: 1 to 3600 seconds\n");
                return CLI_EXIT_USAGE;
            }
            o.t.timeout_s = (int)s;
            break;
        }
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: usage(stderr); return CLI_EXIT_USAGE;
        }
    }
    o.t.host = o.host;
    if (o.t.token && token_file) {
        fprintf(stderr, "petrel admin: --token and --token-file: give one\n");
        return CLI_EXIT_USAGE;
    }
    if (token_file) {
        if (read_token_file(&o, token_file) != 0)
            return CLI_EXIT_USAGE;
        o.t.token = o.token_buf;
    } else if (!o.t.token && getenv("PETREL_TOKEN") && *getenv("PETREL_TOKEN")) {
        o.t.token = getenv("PETREL_TOKEN");
    }
    if (o.t.token && strpbrk(o.t.token, "\r\n")) {
        fprintf(stderr, "petrel admin: the token holds a line break\n");
        return CLI_EXIT_USAGE;
    }
    if (optind >= argc) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[optind];
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;
    if (strcmp(cmd, "stats") == 0) {
        if (need_args(cmd, nargs, 0))
            return CLI_EXIT_USAGE;
        json_t *j;
        int rc = call(&o, "GET", "/api/v1/stats", &j);
        if (j) {
            key_values(j, "");
            json_t *ls = json_object_get(j, "connections_by_listener"), *v;
            size_t i;
            json_array_foreach(ls, i, v) {
                printf("listener %-30s %s %lld\n",
                       json_string_value(json_object_get(v, "listener")),
                       json_string_value(json_object_get(v, "transport")),
                       (long long)json_integer_value(json_object_get(v, "connections")));
            }
            json_decref(j);
        }
        return rc;
    }
    if (strcmp(cmd, "clients") == 0 || strcmp(cmd, "sessions") == 0) {
        if (need_args(cmd, nargs, 0))
            return CLI_EXIT_USAGE;
        bool sessions = cmd[0] == 's';
        bool by_queue = sessions && o.sort && strcmp(o.sort, "queued") == 0;
        if (o.sort && (!sessions || (!by_queue && strcmp(o.sort, "client_id") != 0))) {
            fprintf(stderr, "petrel admin: --sort is for sessions: client_id or queued\n");
            return CLI_EXIT_USAGE;
        }
        char q[8192];
        char *enc = o.prefix ? evhttp_uriencode(o.prefix, -1, 0) : NULL;
        char *lim = o.limit ? evhttp_uriencode(o.limit, -1, 0) : NULL;
        snprintf(q, sizeof q, "/api/v1/%s?limit=%s%s%s%s", cmd,
                 lim ? lim : (by_queue ? "100" : "1000"), enc ? "&prefix=" : "", enc ? enc : "",
                 by_queue ? "&sort=queued" : "");
        free(enc);
        free(lim);
        return list(&o, cmd, q, sessions ? session_cols : client_cols,
                    sessions ? N(session_cols) : N(client_cols), by_queue);
    }
    if (strcmp(cmd, "retained") == 0) {
        if (nargs > 1) {
            need_args(cmd, nargs, 1);
            return CLI_EXIT_USAGE;
        }
        char *enc = evhttp_uriencode(nargs ? args[0] : "#", -1, 0);
        char q[8192];
        snprintf(q, sizeof q, "/api/v1/retained?limit=1000&filter=%s", enc ? enc : "");
        free(enc);
        return list(&o, "retained", q, retained_cols, N(retained_cols), false);
    }
    if (strcmp(cmd, "client") == 0 || strcmp(cmd, "session") == 0) {
        if (need_args(cmd, nargs, 1))
            return CLI_EXIT_USAGE;
        return one(&o, cmd[0] == 'c' ? "/api/v1/clients/" : "/api/v1/sessions/", args[0]);
    }
    if (strcmp(cmd, "disconnect") == 0 || strcmp(cmd, "delete-session") == 0) {
        if (need_args(cmd, nargs, 1))
            return CLI_EXIT_USAGE;
        bool disc = cmd[1] == 'i';
        char *path = id_path(disc ? "/api/v1/clients/" : "/api/v1/sessions/", args[0],
                             disc ? "/disconnect" : "");
        if (!path)
            return CLI_EXIT_FAILURE;
        int rc = change(&o, disc ? "POST" : "DELETE", path,
                        disc ? "disconnected" : "deleted the session of", args[0]);
        free(path);
        return rc;
    }
    if (strcmp(cmd, "delete-retained") == 0) {
        if (need_args(cmd, nargs, 1))
            return CLI_EXIT_USAGE;
        char *enc = evhttp_uriencode(args[0], -1, 0);
        if (!enc)
            return CLI_EXIT_FAILURE;
        char path[8192];
        snprintf(path, sizeof path, "/api/v1/retained?topic=%s", enc);
        free(enc);
        return change(&o, "DELETE", path, "deleted the retained message of", args[0]);
    }
    if (strcmp(cmd, "reload") == 0) {
        if (need_args(cmd, nargs, 0))
            return CLI_EXIT_USAGE;
        return reload(&o);
    }
    fprintf(stderr, "petrel admin: unknown command '%s'\n", cmd);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
