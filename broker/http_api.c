/*
 * http_api.c - the admin API's handlers (see http_api.h).
 *
 * Lists are sorted by client id or topic and paged with `after` (the last
 * key of the previous page) rather than an offset, so a page stays right
 * while clients come and go.  A page is picked in one pass with a heap of
 * `limit` entries: O(n log limit) on the loop thread, without copying or
 * sorting everything the broker holds.
 *
 * Everything from the request is hostile: the query string is bounded and
 * every parameter known, values are percent-decoded by evhttp_uridecode
 * and refused if they hold a NUL byte, client ids must be UTF-8 as in
 * MQTT, topics and filters pass the MQTT validators.
 */
#include "http_api.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/http.h>

#include "acl_session.h"
#include "bridge_status.h"
#include "broker.h"
#include "conn.h"
#include "hashmap.h"
#include "histogram.h"
#include "http_json.h"
#include "http_metrics.h"
#include "http_server.h"
#include "listener.h"
#include "log.h"
#include "message.h"
#include "mqtt_codec.h"
#include "retain.h"
#include "session.h"
#include "store.h"
#include "topic_tree.h"
#include "turn.h"

static http_reload_fn reload_fn;

void http_api_set_reload(http_reload_fn fn)
{
    reload_fn = fn;
}

/* ---- request parsing ------------------------------------------------------- */

#define MAX_PARAMS 8

struct params {
    size_t n;
    struct {
        char name[16];
        char *value; /* decoded, NUL-free; free() */
        size_t len;
    } v[MAX_PARAMS];
};

static void params_free(struct params *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i].value);
    p->n = 0;
}

/* Splits and decodes the query string; only names in `allowed` (a
 * NULL-terminated list) may appear, each once.  Returns 0, or -1 after
 * replying 400. */
static int parse_params(struct http_call *call, const char *const *allowed, struct params *p)
{
    p->n = 0;
    const char *q = call->query;
    if (!q || !*q)
        return 0;
    if (strlen(q) > HTTP_API_MAX_QUERY) {
        http_reply_error(call, 400, "bad_request", "query string longer than %d bytes",
                         HTTP_API_MAX_QUERY);
        return -1;
    }
    while (*q) {
        const char *end = strchr(q, '&');
        size_t len = end ? (size_t)(end - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        size_t nlen = eq ? (size_t)(eq - q) : len;
        if (len == 0) {
            q += end ? 1 : 0;
            if (!end)
                break;
            continue;
        }
        size_t k;
        for (k = 0; allowed[k]; k++)
            if (strlen(allowed[k]) == nlen && memcmp(allowed[k], q, nlen) == 0)
                break;
        if (!allowed[k]) {
            http_reply_error(call, 400, "bad_request", "unknown parameter '%.*s'",
                             (int)(nlen < 32 ? nlen : 32), q);
            goto bad;
        }
        for (size_t i = 0; i < p->n; i++) {
            if (strcmp(p->v[i].name, allowed[k]) == 0) {
                http_reply_error(call, 400, "bad_request", "parameter '%s' given twice",
                                 allowed[k]);
                goto bad;
            }
        }
        if (p->n == MAX_PARAMS) {
            http_reply_error(call, 400, "bad_request", "too many parameters");
            goto bad;
        }
        char raw[HTTP_API_MAX_QUERY + 1];
        size_t vlen = eq ? len - nlen - 1 : 0;
        memcpy(raw, eq ? eq + 1 : "", vlen);
        raw[vlen] = '\0';
        size_t dlen = 0;
        char *dec = evhttp_uridecode(raw, 1, &dlen);
        if (!dec || strlen(dec) != dlen) {
            free(dec);
            http_reply_error(call, 400, "bad_request", "parameter '%s': bad percent-encoding "
                             "or a NUL byte", allowed[k]);
            goto bad;
        }
        snprintf(p->v[p->n].name, sizeof p->v[0].name, "%s", allowed[k]);
        p->v[p->n].value = dec;
        p->v[p->n].len = dlen;
        p->n++;
        if (!end)
            break;
        q = end + 1;
    }
    return 0;
bad:
    params_free(p);
    return -1;
}

static const char *param(const struct params *p, const char *name, size_t *len)
{
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->v[i].name, name) == 0) {
            if (len)
                *len = p->v[i].len;
            return p->v[i].value;
        }
    }
    return NULL;
}

/* limit=1..HTTP_API_MAX_LIMIT.  Returns it, or 0 after replying 400. */
static size_t parse_limit(struct http_call *call, const struct params *p)
{
    const char *v = param(p, "limit", NULL);
    if (!v)
        return HTTP_API_DEFAULT_LIMIT;
    size_t n = 0;
    bool ok = *v != '\0' && strlen(v) <= 4;
    for (const char *c = v; ok && *c; c++) {
        if (*c < '0' || *c > '9')
            ok = false;
        else
            n = n * 10 + (size_t)(*c - '0');
    }
    if (!ok || n < 1 || n > HTTP_API_MAX_LIMIT) {
        http_reply_error(call, 400, "bad_request", "limit must be a number from 1 to %d",
                         HTTP_API_MAX_LIMIT);
        return 0;
    }
    return n;
}

/* A client id from the request: UTF-8, 1 to 65535 bytes. */
static bool client_id_ok(const char *s, size_t len)
{
    return len >= 1 && len <= 65535 && mqtt_utf8_valid((const uint8_t *)s, len);
}

/* A prefix or `after` value: UTF-8 of at most 65535 bytes (may be empty). */
static bool key_ok(const char *s, size_t len)
{
    return len <= 65535 && mqtt_utf8_valid((const uint8_t *)s, len);
}

/* The percent-decoded path segment at s[0..len) (malloc'd, *out_len) or
 * NULL after replying 400. */
static char *decode_segment(struct http_call *call, const char *s, size_t len, size_t *out_len)
{
    if (len == 0 || len > 3 * 65535) {
        http_reply_error(call, 400, "bad_request", "empty or overlong id in the path");
        return NULL;
    }
    char *raw = malloc(len + 1);
    if (!raw) {
        http_reply_error(call, 503, "unavailable", "out of memory");
        return NULL;
    }
    memcpy(raw, s, len);
    raw[len] = '\0';
    size_t dlen = 0;
    char *dec = evhttp_uridecode(raw, 0, &dlen);
    free(raw);
    if (!dec || strlen(dec) != dlen || !client_id_ok(dec, dlen)) {
        free(dec);
        http_reply_error(call, 400, "bad_request",
                         "the id in the path must be percent-encoded UTF-8, without NUL bytes");
        return NULL;
    }
    *out_len = dlen;
    return dec;
}

/* ---- picking a page ---------------------------------------------------------- */

struct pick {
    const char *key;
    size_t len;
    uint64_t rank; /* sort=queued: bigger first */
    const void *item;
};

static int key_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

/* Order of the page: by key, or (by_rank) by rank descending, then key. */
static int pick_cmp(const struct pick *a, const struct pick *b, bool by_rank)
{
    if (by_rank && a->rank != b->rank)
        return a->rank > b->rank ? -1 : 1;
    return key_cmp(a->key, a->len, b->key, b->len);
}

/* A max-heap of the `limit` first entries seen so far (its top is the last
 * of them), and how many candidates there were in all. */
struct page {
    struct pick *heap;
    size_t n, limit, seen;
    bool by_rank;
};

static void sift_down(struct page *p, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, top = i;
        if (l < p->n && pick_cmp(&p->heap[l], &p->heap[top], p->by_rank) > 0)
            top = l;
        if (r < p->n && pick_cmp(&p->heap[r], &p->heap[top], p->by_rank) > 0)
            top = r;
        if (top == i)
            return;
        struct pick t = p->heap[i];
        p->heap[i] = p->heap[top];
        p->heap[top] = t;
        i = top;
    }
}

static void page_offer(struct page *p, struct pick e)
{
    p->seen++;
    if (p->n < p->limit) {
        size_t i = p->n++;
        p->heap[i] = e;
        while (i > 0) {
            size_t up = (i - 1) / 2;
            if (pick_cmp(&p->heap[i], &p->heap[up], p->by_rank) <= 0)
                break;
            struct pick t = p->heap[i];
            p->heap[i] = p->heap[up];
            p->heap[up] = t;
            i = up;
        }
    } else if (pick_cmp(&e, &p->heap[0], p->by_rank) < 0) {
        p->heap[0] = e;
        sift_down(p, 0);
    }
}

static bool by_rank_flag;
static int qsort_cmp(const void *a, const void *b)
{
    return pick_cmp(a, b, by_rank_flag);
}

/* Sorts what was picked; true when more candidates were left out. */
static bool page_finish(struct page *p)
{
    by_rank_flag = p->by_rank;
    qsort(p->heap, p->n, sizeof p->heap[0], qsort_cmp);
    return p->seen > p->n;
}

/* Which keys a list takes: starting with `prefix`, after `after`. */
struct key_filter {
    const char *prefix, *after;
    size_t prefix_len, after_len;
};

static bool key_wanted(const struct key_filter *f, const char *key, size_t len)
{
    if (f->prefix && (len < f->prefix_len || memcmp(key, f->prefix, f->prefix_len) != 0))
        return false;
    if (f->after && key_cmp(key, len, f->after, f->after_len) <= 0)
        return false;
    return true;
}

/* Reads prefix= and after= (both optional).  -1 after replying 400. */
static int parse_key_filter(struct http_call *call, const struct params *p, const char *after_name,
                            struct key_filter *f)
{
    memset(f, 0, sizeof *f);
    f->prefix = param(p, "prefix", &f->prefix_len);
    f->after = param(p, after_name, &f->after_len);
    if ((f->prefix && !key_ok(f->prefix, f->prefix_len)) ||
        (f->after && !key_ok(f->after, f->after_len))) {
        http_reply_error(call, 400, "bad_request", "prefix and %s must be UTF-8", after_name);
        return -1;
    }
    if (f->prefix && f->prefix_len == 0)
        f->prefix = NULL;
    return 0;
}

/* ---- JSON of broker objects ----------------------------------------------------- */

static const char *protocol_name(const struct conn *c)
{
    return c->level == MQTT_LEVEL_5 ? "5.0" : c->level == 3 ? "3.1" : "3.1.1";
}

static void client_json(struct evbuffer *b, const struct session *s)
{
    const struct conn *c = s->conn;
    const char *user = NULL;
    size_t ulen = 0;
    evbuffer_add(b, "{\"client_id\":", 13);
    json_string(b, s->client_id, s->client_id_len);
    evbuffer_add(b, ",\"username\":", 12);
    if (acl_session_user(s, &user, &ulen) && user)
        json_string(b, user, ulen);
    else
        evbuffer_add(b, "null", 4);
    evbuffer_add(b, ",\"address\":", 11);
    json_string0(b, conn_peer(c));
    evbuffer_add(b, ",\"listener\":", 12);
    json_string0(b, c->listener ? listener_name(c->listener) : "internal");
    int64_t now = (int64_t)time(NULL);
    evbuffer_add_printf(b, ",\"transport\":\"%s\",\"protocol\":\"%s\",\"keepalive\":%u,"
                        "\"connected_seconds\":%lld,\"inflight\":%u,\"queued_messages\":%u}",
                        listener_transport(c->listener), protocol_name(c), (unsigned)c->keepalive,
                        (long long)(now > s->attached_at ? now - s->attached_at : 0),
                        (unsigned)s->inflight.count, (unsigned)s->n_queued);
}

/* One session.  In a list "subscriptions" is their number; `detail` (one
 * session's page) gives the list itself under that name instead, and the
 * number as "subscription_count", so that no key appears twice. */
static void session_json(struct evbuffer *b, const struct session *s, bool detail)
{
    int64_t now = (int64_t)time(NULL);
    evbuffer_add(b, "{\"client_id\":", 13);
    json_string(b, s->client_id, s->client_id_len);
    evbuffer_add_printf(b, ",\"online\":%s,\"queued_messages\":%u,\"queued_bytes\":%llu,"
                        "\"%s\":%zu,\"age_seconds\":%lld,\"expires_in_seconds\":",
                        s->conn ? "true" : "false", (unsigned)s->n_queued,
                        (unsigned long long)s->queued_bytes,
                        detail ? "subscription_count" : "subscriptions", s->n_subs,
                        (long long)(now > s->created_at ? now - s->created_at : 0));
    int64_t due_ms = session_expiry_due(s); /* unix ms, 0 = never */
    int64_t due = (due_ms + 999) / 1000;
    if (due_ms == 0)
        evbuffer_add(b, "null}", 5);
    else
        evbuffer_add_printf(b, "%lld}", (long long)(due > now ? due - now : 0));
}

static void subscriptions_json(struct evbuffer *b, const struct session *s)
{
    evbuffer_add(b, "\"subscriptions\":[", 17);
    bool first = true;
    for (const struct subscription *sub = s->subs; sub; sub = sub->next) {
        evbuffer_add(b, first ? "{\"filter\":" : ",{\"filter\":", first ? 10 : 11);
        json_string(b, sub->filter, sub->len);
        evbuffer_add_printf(b, ",\"qos\":%u}", (unsigned)sub->qos);
        first = false;
    }
    evbuffer_add(b, "]", 1);
}

/* Closes `page` into `b`: ],"next":KEY|null}. */
static void page_end(struct evbuffer *b, const struct page *p, bool more)
{
    evbuffer_add(b, "],\"next\":", 9);
    if (more && p->n > 0 && !p->by_rank)
        json_string(b, p->heap[p->n - 1].key, p->heap[p->n - 1].len);
    else
        evbuffer_add(b, "null", 4);
    evbuffer_add(b, "}\n", 2);
}

/* {"WORD":true}, the answer of a change. */
static void reply_done(struct http_call *call, const char *word)
{
    struct evbuffer *b = http_body_new(call);
    if (!b)
        return;
    evbuffer_add_printf(b, "{\"%s\":true}\n", word);
    http_reply_json_free(call, 200, b);
}

/* One object of a list, then more keys: `head` holds the object, whose
 * closing brace is taken off; more() adds ",KEY:VALUE..." and the brace is
 * put back.  Frees head. */
static void reply_extended(struct http_call *call, struct evbuffer *head, const struct session *s,
                           void (*more)(struct evbuffer *b, const struct session *s))
{
    struct evbuffer *out = http_body_new(call);
    if (!out) {
        evbuffer_free(head);
        return;
    }
    evbuffer_remove_buffer(head, out, evbuffer_get_length(head) - 1);
    evbuffer_free(head);
    more(out, s);
    evbuffer_add(out, "}\n", 2);
    http_reply_json_free(call, 200, out);
}

/* A list request: its parameters, and the page being picked. */
struct list_req {
    struct params p;
    struct key_filter f;
    struct page pg;
    struct evbuffer *b;
};

/* Parses a list's parameters (`allowed`, of which limit, prefix and after
 * are read here) and makes the page; false after replying an error. */
static bool list_begin(struct http_call *call, const char *const *allowed, struct list_req *l)
{
    memset(l, 0, sizeof *l);
    if (parse_params(call, allowed, &l->p) != 0)
        return false;
    size_t limit = parse_limit(call, &l->p);
    if (limit == 0 || parse_key_filter(call, &l->p, "after", &l->f) != 0) {
        params_free(&l->p);
        return false;
    }
    l->pg.limit = limit;
    l->pg.heap = calloc(limit, sizeof(struct pick));
    l->b = l->pg.heap ? http_body_new(call) : NULL;
    if (!l->b) {
        if (!l->pg.heap)
            http_reply_error(call, 503, "unavailable", "out of memory");
        free(l->pg.heap);
        params_free(&l->p);
        return false;
    }
    return true;
}

/* Writes {"NAME":[...],"next":...} with item() for each picked entry, sends
 * it and frees the request. */
static void list_end(struct http_call *call, struct list_req *l, const char *name,
                     void (*item)(struct evbuffer *b, const void *it))
{
    bool more = page_finish(&l->pg);
    evbuffer_add_printf(l->b, "{\"%s\":[", name);
    for (size_t i = 0; i < l->pg.n; i++) {
        if (i)
            evbuffer_add(l->b, ",", 1);
        item(l->b, l->pg.heap[i].item);
    }
    page_end(l->b, &l->pg, more);
    free(l->pg.heap);
    params_free(&l->p);
    http_reply_json_free(call, 200, l->b);
}

/* A failed list request after list_begin: frees it (the caller replied). */
static void list_abort(struct list_req *l)
{
    free(l->pg.heap);
    params_free(&l->p);
    evbuffer_free(l->b);
}

/* ---- stats ------------------------------------------------------------------------ */

static void get_stats(struct http_call *call)
{
    struct evbuffer *b = http_body_new(call);
    if (!b)
        return;
    char node[256] = "";
    if (gethostname(node, sizeof node - 1) != 0)
        node[0] = '\0';
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    evbuffer_add_printf(b, "{\"version\":\"%s\",\"node\":", PETREL_VERSION);
    json_string0(b, node);
    size_t n_conns = 0;
    for (const struct conn *c = broker.conns; c; c = c->next)
        if (c->state != CONN_DEAD)
            n_conns++;
    evbuffer_add_printf(b, ",\"uptime_seconds\":%lld,\"time_ms\":%lld,\"connections\":%zu,"
                        "\"connections_by_listener\":[",
                        (long long)(time(NULL) - broker.started),
                        (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, n_conns);
    bool first = true;
    for (const struct listener *l = listener_next(NULL); l; l = listener_next(l)) {
        size_t n = 0;
        for (const struct conn *c = broker.conns; c; c = c->next)
            if (c->listener == l && c->state != CONN_DEAD)
                n++;
        evbuffer_add(b, first ? "{\"listener\":" : ",{\"listener\":", first ? 12 : 13);
        json_string0(b, listener_name(l));
        evbuffer_add_printf(b, ",\"transport\":\"%s\",\"connections\":%zu}",
                            listener_transport(l), n);
        first = false;
    }
    struct session_totals t;
    http_session_totals(&t);
    const struct broker_stats *st = &broker.stats;
    const struct histogram *h = &broker.store_commit_latency;
    evbuffer_add_printf(
        b,
        "],\"sessions_online\":%llu,\"sessions_offline\":%llu,\"subscriptions\":%zu,"
        "\"retained_messages\":%zu,\"retained_bytes\":%llu,\"queued_messages\":%llu,"
        "\"queued_bytes\":%llu,\"messages_received\":%llu,\"messages_sent\":%llu,"
        "\"messages_dropped\":%llu,\"bytes_received\":%llu,\"bytes_sent\":%llu,"
        "\"store\":{\"commits\":%llu,\"commit_p50_ms\":%.3f,\"commit_p99_ms\":%.3f,"
        "\"status\":\"%s\"}}\n",
        (unsigned long long)t.online, (unsigned long long)t.offline,
        topic_tree_subscription_count(broker.topics), broker.retained_n,
        (unsigned long long)broker.retained_bytes, (unsigned long long)t.queued,
        (unsigned long long)t.queued_bytes, (unsigned long long)st->msgs_received,
        (unsigned long long)st->msgs_sent, (unsigned long long)st->publish_dropped,
        (unsigned long long)st->bytes_received, (unsigned long long)st->bytes_sent,
        (unsigned long long)h->count, histogram_quantile_ms(h, 0.5),
        histogram_quantile_ms(h, 0.99), store_problem() ? "failed" : "ok");
    http_reply_json_free(call, 200, b);
}

/* ---- clients ------------------------------------------------------------------------ */

static void client_item(struct evbuffer *b, const void *it)
{
    client_json(b, it);
}

static void list_clients(struct http_call *call)
{
    static const char *const allowed[] = {"prefix", "limit", "after", NULL};
    struct list_req l;
    if (!list_begin(call, allowed, &l))
        return;
    for (const struct conn *c = broker.conns; c; c = c->next) {
        const struct session *s = c->session;
        if (c->state != CONN_ACTIVE || !s || s->conn != c)
            continue;
        if (key_wanted(&l.f, s->client_id, s->client_id_len))
            page_offer(&l.pg, (struct pick){s->client_id, s->client_id_len, 0, s});
    }
    list_end(call, &l, "clients", client_item);
}

/* The session of the client id in the path, online (`online`) or not;
 * NULL after replying 404. */
static struct session *find_session(struct http_call *call, const char *id, size_t len,
                                    bool online)
{
    struct session *s = session_find(id, len);
    if (!s || (online && (!s->conn || s->conn->state != CONN_ACTIVE))) {
        http_reply_error(call, 404, "not_found", online ? "no client with this id is connected"
                                                        : "no session with this id");
        return NULL;
    }
    return s;
}

static void client_more(struct evbuffer *b, const struct session *s)
{
    evbuffer_add(b, ",", 1);
    subscriptions_json(b, s);
}

static void get_client(struct http_call *call, struct session *s)
{
    struct evbuffer *one = http_body_new(call);
    if (!one)
        return;
    client_json(one, s);
    reply_extended(call, one, s, client_more);
}

static void disconnect_client(struct http_call *call, struct session *s)
{
    log_notice("http: %s (token %s) disconnected client %s", call->peer, call->who,
               s->log_id);
    conn_disconnect(s->conn, MQTT_RC_ADMINISTRATIVE_ACTION,
                    "disconnected by an administrator", true);
    turn_schedule();
    reply_done(call, "disconnected");
}

/* ---- sessions ----------------------------------------------------------------------- */

struct session_scan {
    struct page *pg;
    const struct key_filter *f;
};

static void offer_session(void *value, void *arg)
{
    const struct session *s = value;
    struct session_scan *sc = arg;
    if (key_wanted(sc->f, s->client_id, s->client_id_len))
        page_offer(sc->pg, (struct pick){s->client_id, s->client_id_len, s->n_queued, s});
}

static void session_item(struct evbuffer *b, const void *it)
{
    session_json(b, it, false);
}

static void list_sessions(struct http_call *call)
{
    static const char *const allowed[] = {"prefix", "limit", "after", "sort", NULL};
    struct list_req l;
    if (!list_begin(call, allowed, &l))
        return;
    const char *sort = param(&l.p, "sort", NULL);
    if (sort && strcmp(sort, "queued") == 0) {
        l.pg.by_rank = true;
    } else if (sort && strcmp(sort, "client_id") != 0) {
        http_reply_error(call, 400, "bad_request", "sort must be client_id or queued");
        list_abort(&l);
        return;
    }
    if (l.pg.by_rank && l.f.after) {
        http_reply_error(call, 400, "bad_request", "sort=queued has no pages: no after=");
        list_abort(&l);
        return;
    }
    struct session_scan sc = {&l.pg, &l.f};
    hashmap_foreach(broker.sessions, offer_session, &sc);
    list_end(call, &l, "sessions", session_item);
}

struct peek {
    struct evbuffer *b;
    size_t shown;
};

static void queued_one(struct peek *p, const char *topic, size_t len, uint32_t size, uint8_t qos)
{
    evbuffer_add(p->b, p->shown ? ",{\"topic\":" : "{\"topic\":", p->shown ? 10 : 9);
    json_string(p->b, topic, len);
    evbuffer_add_printf(p->b, ",\"bytes\":%u,\"qos\":%u}", (unsigned)size, (unsigned)qos);
    p->shown++;
}

static void peeked(const char *topic, size_t len, uint32_t size, uint8_t qos, void *arg)
{
    queued_one(arg, topic, len, size, qos);
}

/* The first HTTP_API_MAX_QUEUED_SHOWN deliveries: in flight, queued in
 * memory, then what a stored session keeps in the store only. */
static void session_more(struct evbuffer *b, const struct session *s)
{
    evbuffer_add(b, ",", 1);
    subscriptions_json(b, s);
    struct peek pk = {b, 0};
    evbuffer_add(b, ",\"queued\":[", 11);
    const struct delivery_list *lists[2] = {&s->inflight, &s->queued};
    for (int l = 0; l < 2; l++)
        for (const struct delivery *d = lists[l]->head;
             d && pk.shown < HTTP_API_MAX_QUEUED_SHOWN; d = d->next)
            if (d->msg) /* NULL: QoS 2 past PUBREC, only the id is left */
                queued_one(&pk, d->msg->topic, d->msg->topic_len, d->size, d->qos);
    if (pk.shown < HTTP_API_MAX_QUEUED_SHOWN && s->backlog > 0)
        store_peek_deliveries(s, s->loaded_seq, HTTP_API_MAX_QUEUED_SHOWN - pk.shown, peeked,
                              &pk);
    evbuffer_add_printf(b, "],\"queued_truncated\":%s",
                        pk.shown < (size_t)s->inflight.count + s->n_queued ? "true" : "false");
}

static void get_session(struct http_call *call, struct session *s)
{
    struct evbuffer *one = http_body_new(call);
    if (!one)
        return;
    session_json(one, s, true);
    reply_extended(call, one, s, session_more);
}

static void delete_session(struct http_call *call, struct session *s)
{
    char *id = malloc(s->client_id_len + 1);
    if (!id) {
        http_reply_error(call, 503, "unavailable", "out of memory");
        return;
    }
    size_t len = s->client_id_len;
    memcpy(id, s->client_id, len + 1);
    bool online = s->conn != NULL;
    log_notice("http: %s (token %s) deleted the session of client %s%s", call->peer, call->who,
               s->log_id, online ? " (and disconnected it)" : "");
    if (online)
        conn_disconnect(s->conn, MQTT_RC_ADMINISTRATIVE_ACTION,
                        "session deleted by an administrator", true);
    /* A clean session ends with its connection; a stored one stays until
     * destroyed here (with its rows in the store). */
    s = session_find(id, len);
    if (s)
        session_destroy(s);
    free(id);
    turn_schedule();
    reply_done(call, "deleted");
}

/* ---- retained --------------------------------------------------------------------- */

struct retained_scan {
    struct page *pg;
    const struct key_filter *f;
};

static void offer_retained(void *value, const char *topic, size_t len, void *arg)
{
    struct retained_scan *sc = arg;
    if (key_wanted(sc->f, topic, len))
        page_offer(sc->pg, (struct pick){topic, len, 0, value});
}

static void retained_item(struct evbuffer *b, const void *it)
{
    const struct message *m = it;
    evbuffer_add(b, "{\"topic\":", 9);
    json_string(b, m->topic, m->topic_len);
    evbuffer_add_printf(b, ",\"bytes\":%u,\"qos\":%u}", (unsigned)m->payload_len,
                        (unsigned)m->qos);
}

static void list_retained(struct http_call *call)
{
    static const char *const allowed[] = {"filter", "limit", "after", NULL};
    struct list_req l;
    if (!list_begin(call, allowed, &l))
        return;
    size_t flen = 1;
    const char *filter = param(&l.p, "filter", &flen);
    if (!filter) {
        filter = "#";
        flen = 1;
    }
    if (!mqtt_topic_filter_valid((const uint8_t *)filter, flen)) {
        http_reply_error(call, 400, "bad_request", "filter is not a valid MQTT topic filter");
        list_abort(&l);
        return;
    }
    struct retained_scan sc = {&l.pg, &l.f};
    topic_tree_match_retained(broker.topics, filter, flen, offer_retained, &sc);
    list_end(call, &l, "retained", retained_item);
}

static void delete_retained(struct http_call *call)
{
    static const char *const allowed[] = {"topic", NULL};
    struct params p;
    if (parse_params(call, allowed, &p) != 0)
        return;
    size_t len = 0;
    const char *topic = param(&p, "topic", &len);
    struct message *m = NULL;
    if (!topic || !mqtt_topic_name_valid((const uint8_t *)topic, len))
        http_reply_error(call, 400, "bad_request", "topic= must be a topic name (no wildcards)");
    else if (!topic_tree_get_retained(broker.topics, topic, len))
        http_reply_error(call, 404, "not_found", "no retained message on this topic");
    /* An empty retained message clears the topic, in the tree and the
     * store, with the totals: the way a client would. */
    else if (!(m = message_new(topic, len, NULL, 0, 0, true)))
        http_reply_error(call, 503, "unavailable", "out of memory");
    if (m) {
        log_notice("http: %s (token %s) deleted the retained message of '%s'", call->peer,
                   call->who, log_str(topic, len));
        retain_set(m);
        message_unref(m);
        turn_schedule();
        reply_done(call, "deleted");
    }
    params_free(&p);
}

/* ---- reload --------------------------------------------------------------------------- */

/* The reply waits for the reload.  evhttp keeps the request meanwhile,
 * but frees it with its connection if the client goes (or times out):
 * http_api_connection_closed forgets it then, and only the reply is
 * dropped. */
struct reload_wait {
    struct reload_wait *next;
    struct evhttp_request *req;        /* NULL once its connection is gone */
    struct evhttp_connection *evcon;
    int method;
};
static struct reload_wait *waits;

void http_api_connection_closed(struct evhttp_connection *evcon)
{
    for (struct reload_wait *w = waits; w; w = w->next)
        if (w->evcon == evcon)
            w->req = NULL;
}

static void reload_done(unsigned errors, const char *lines, void *arg)
{
    struct reload_wait *w = arg;
    for (struct reload_wait **pp = &waits; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    struct http_call call;
    memset(&call, 0, sizeof call);
    call.req = w->req;
    call.method = w->method;
    free(w);
    if (!call.req)
        return;
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(call.req, 500, NULL);
        return;
    }
    evbuffer_add(b, "{\"reloaded\":true,\"errors\":[", 27);
    /* lines: "LEVEL MESSAGE\n" each (log.h); the errors are the result */
    bool first = true;
    for (const char *l = lines; l && *l;) {
        const char *end = strchr(l, '\n');
        size_t len = end ? (size_t)(end - l) : strlen(l);
        if (len > 6 && memcmp(l, "error ", 6) == 0) {
            if (!first)
                evbuffer_add(b, ",", 1);
            json_string(b, l + 6, len - 6);
            first = false;
        }
        l += len + (end ? 1 : 0);
    }
    (void)errors;
    evbuffer_add(b, "]}\n", 3);
    http_reply_json(&call, 200, b);
    evbuffer_free(b);
}

static void reload(struct http_call *call)
{
    struct reload_wait *w = malloc(sizeof *w);
    if (!w || !reload_fn) {
        free(w);
        http_reply_error(call, 503, "unavailable", "reload is not possible now");
        return;
    }
    w->req = call->req;
    w->evcon = evhttp_request_get_connection(call->req);
    w->method = call->method;
    log_notice("http: %s (token %s) asked for a reload", call->peer, call->who);
    w->next = waits;
    waits = w;
    if (reload_fn(reload_done, w) != 0) {
        waits = w->next;
        free(w);
        http_reply_error(call, 503, "unavailable", "too many reloads waiting; try again");
    }
}

/* ---- routing ------------------------------------------------------------------------------ */

enum need { NEED_READ, NEED_ADMIN };

/* May the call do this?  Replies 405/403 when not. */
static bool allowed(struct http_call *call, int method, enum need need, const char *allow)
{
    bool head_ok = method == EVHTTP_REQ_GET && call->method == EVHTTP_REQ_HEAD;
    if (call->method != method && !head_ok) {
        evhttp_add_header(evhttp_request_get_output_headers(call->req), "Allow", allow);
        http_reply_error(call, 405, "method_not_allowed", "use %s here", allow);
        return false;
    }
    if (need == NEED_ADMIN && call->role < HTTP_ROLE_ADMIN) {
        http_reply_error(call, 403, "forbidden", "this change needs an admin token");
        return false;
    }
    return true;
}

/* A body on a change must be empty or a JSON object: none of them takes
 * parameters there, and anything else is a mistake worth saying. */
static bool body_ok(struct http_call *call)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(call->req);
    size_t len = evbuffer_get_length(in);
    if (len == 0)
        return true;
    if (len > HTTP_MAX_BODY) {
        http_reply_error(call, 413, "too_large", "body over %d bytes", HTTP_MAX_BODY);
        return false;
    }
    const unsigned char *p = evbuffer_pullup(in, -1);
    size_t i = 0, j = len;
    while (i < j && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    while (j > i && (p[j - 1] == ' ' || p[j - 1] == '\t' || p[j - 1] == '\r' || p[j - 1] == '\n'))
        j--;
    if (j - i >= 2 && p[i] == '{' && p[j - 1] == '}')
        return true;
    http_reply_error(call, 400, "bad_request", "the body must be empty or a JSON object");
    return false;
}

static void list_bridges(struct http_call *call)
{
    struct evbuffer *b = http_body_new(call);
    if (b) {
        bridges_json(b);
        http_reply_json_free(call, 200, b);
    }
}

/* The endpoints without an id in their path and with one method each; a
 * POST's body is checked first. */
static const struct route {
    const char *path;
    int method;
    enum need need;
    void (*run)(struct http_call *call);
} routes[] = {
    {"stats", EVHTTP_REQ_GET, NEED_READ, get_stats},
    {"reload", EVHTTP_REQ_POST, NEED_ADMIN, reload},
    {"clients", EVHTTP_REQ_GET, NEED_READ, list_clients},
    {"bridges", EVHTTP_REQ_GET, NEED_READ, list_bridges},
    {"sessions", EVHTTP_REQ_GET, NEED_READ, list_sessions},
};

void http_api_handle(struct http_call *call)
{
    const char *rest = call->path + strlen("/api/v1/");
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const struct route *r = &routes[i];
        if (strcmp(rest, r->path) != 0)
            continue;
        bool post = r->method == EVHTTP_REQ_POST;
        if (allowed(call, r->method, r->need, post ? "POST" : "GET") && (!post || body_ok(call)))
            r->run(call);
        return;
    }
    if (strcmp(rest, "retained") == 0) {
        if (call->method == EVHTTP_REQ_DELETE) {
            if (allowed(call, EVHTTP_REQ_DELETE, NEED_ADMIN, "GET, DELETE") && body_ok(call))
                delete_retained(call);
        } else if (allowed(call, EVHTTP_REQ_GET, NEED_READ, "GET, DELETE")) {
            list_retained(call);
        }
        return;
    }
    bool clients = strncmp(rest, "clients/", 8) == 0;
    bool sessions = strncmp(rest, "sessions/", 9) == 0;
    if (!clients && !sessions) {
        http_reply_error(call, 404, "not_found", "no such endpoint");
        return;
    }
    const char *seg = rest + (clients ? 8 : 9);
    const char *slash = strchr(seg, '/');
    size_t seg_len = slash ? (size_t)(slash - seg) : strlen(seg);
    const char *tail = slash ? slash : "";
    if (clients ? (*tail && strcmp(tail, "/disconnect") != 0) : *tail != '\0') {
        http_reply_error(call, 404, "not_found", "no such endpoint");
        return;
    }
    size_t id_len = 0;
    char *id = decode_segment(call, seg, seg_len, &id_len);
    if (!id)
        return;
    if (clients && *tail) {
        if (allowed(call, EVHTTP_REQ_POST, NEED_ADMIN, "POST") && body_ok(call)) {
            struct session *s = find_session(call, id, id_len, true);
            if (s)
                disconnect_client(call, s);
        }
    } else if (clients) {
        if (allowed(call, EVHTTP_REQ_GET, NEED_READ, "GET")) {
            struct session *s = find_session(call, id, id_len, true);
            if (s)
                get_client(call, s);
        }
    } else if (call->method == EVHTTP_REQ_DELETE) {
        if (allowed(call, EVHTTP_REQ_DELETE, NEED_ADMIN, "GET, DELETE") && body_ok(call)) {
            struct session *s = find_session(call, id, id_len, false);
            if (s)
                delete_session(call, s);
        }
    } else if (allowed(call, EVHTTP_REQ_GET, NEED_READ, "GET, DELETE")) {
        struct session *s = find_session(call, id, id_len, false);
        if (s)
            get_session(call, s);
    }
    free(id);
}
