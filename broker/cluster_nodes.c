/*
 * cluster_nodes.c - which nodes of the cluster this node hears: each node
 * announces itself on core NATS every CLUSTER_HB_INTERVAL_MS and counts the
 * nodes it heard within the last CLUSTER_HB_MISSED intervals, itself
 * included ($SYS/broker/cluster/nodes, docs/cluster.md "Watching it").
 * Also the node's name, and what `petreld --inspect` says of the cluster.
 *
 * A heartbeat goes to "<cluster_name>-hb.<node>" (the name as one subject
 * token) with the payload "1 NAME STARTED READY": the format's version,
 * the node's name, its start (unix seconds) and whether its JetStream
 * stream and consumer are ready (1 or 0); later fields, if a later version
 * adds any, are ignored.  What arrives is hostile like any input from
 * NATS: a heartbeat over HB_MAX_BYTES is dropped on libnats' thread before
 * it is queued, at most HB_PER_INTERVAL are queued per interval, the rest
 * must parse strictly, and the table holds at most CLUSTER_NODES_MAX nodes;
 * every refusal is counted.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>

#include "broker.h"
#include "cluster.h"
#include "cluster_js.h"
#include "config.h"
#include "hashmap.h"
#include "log.h"

#define HB_MAX_BYTES 256
#define HB_PER_INTERVAL (4 * CLUSTER_NODES_MAX)
/* Join and leave lines per interval; beyond, one line says how many more. */
#define LOG_PER_INTERVAL 16
#define NAME_MAX_LEN 64

struct node {
    char name[NAME_MAX_LEN + 1];
    int64_t heard_ms;  /* monotonic */
    int64_t started;   /* its start, unix seconds */
    bool ready;
};

static struct {
    bool started;
    natsConnection *nc;
    natsSubscription *sub;
    struct event *timer;
    struct hashmap *nodes;     /* name -> struct node; this node not in it */
    char subject[160];         /* this node's heartbeat subject */
    char filter[96];           /* everyone's */
    unsigned logged, unlogged; /* join and leave lines this interval */
    struct log_ratelimit clash_rl;
    uint64_t refused, full, clashes;
    char *list;                /* cluster_nodes_list's buffer */
    size_t list_cap;
} nd;

/* Touched by libnats' threads: outside `nd` so that no reset races them. */
static atomic_uint_fast64_t hb_queued; /* this interval */
static atomic_uint_fast64_t hb_big, hb_over;
static char tag; /* the subscription's closure: its address tells take_in */

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void cluster_node_name_of(const struct config *cfg, char *out, size_t len)
{
    if (cfg->node_name[0])
        snprintf(out, len, "%s", cfg->node_name);
    else if (gethostname(out, len) != 0 || !out[0])
        snprintf(out, len, "petrel");
    out[len - 1] = '\0'; /* (gethostname need not terminate a truncated name) */
}

void *cluster_nodes_tag(void) { return &tag; }

/* A host name (the default node name) may hold what a config's node_name
 * may not, the dot: the subject token has '_' for anything else. */
static void subject_for(const char *name)
{
    static const char token[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    int n = snprintf(nd.subject, sizeof nd.subject, "%s-hb.", cluster_prefix());
    size_t o = n > 0 ? (size_t)n : 0;
    for (const char *p = name; *p && o + 1 < sizeof nd.subject; p++)
        nd.subject[o++] = strchr(token, *p) ? *p : '_';
    nd.subject[o] = '\0';
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.';
}

/* Strict: "1 NAME STARTED READY" and maybe " MORE"; NAME 1 to 64 of
 * letters, digits, '-', '_', '.'; STARTED decimal; READY 0 or 1. */
static bool parse(const char *p, int len, struct node *out)
{
    if (len < 7 || len > HB_MAX_BYTES || memchr(p, '\0', (size_t)len))
        return false;
    const char *end = p + len;
    if (p[0] != '1' || p[1] != ' ')
        return false;
    p += 2;
    size_t n = 0;
    while (p + n < end && name_char(p[n]))
        n++;
    if (n == 0 || n > NAME_MAX_LEN || p + n == end || p[n] != ' ')
        return false;
    memcpy(out->name, p, n);
    out->name[n] = '\0';
    p += n + 1;
    int64_t started = 0;
    size_t digits = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits == 18)
            return false; /* no start that far away */
        started = started * 10 + (*p - '0');
    }
    if (digits == 0 || p + 2 > end || p[0] != ' ' || (p[1] != '0' && p[1] != '1'))
        return false;
    out->started = started;
    out->ready = p[1] == '1';
    p += 2;
    return p == end || *p == ' ';
}

static bool may_log(void)
{
    if (nd.logged < LOG_PER_INTERVAL) {
        nd.logged++;
        return true;
    }
    nd.unlogged++;
    return false;
}

struct gone {
    struct node *v[CLUSTER_NODES_MAX];
    size_t n;
    int64_t before;
};

static void find_gone(void *value, void *arg)
{
    struct node *e = value;
    struct gone *g = arg;
    if (e->heard_ms < g->before && g->n < CLUSTER_NODES_MAX)
        g->v[g->n++] = e;
}

/* The nodes not heard for CLUSTER_HB_MISSED intervals leave the table. */
static void purge(void)
{
    if (!nd.nodes || hashmap_count(nd.nodes) == 0)
        return;
    static struct gone g; /* (8 KiB: not on the stack) */
    g.n = 0;
    g.before = now_ms() - (int64_t)CLUSTER_HB_MISSED * CLUSTER_HB_INTERVAL_MS;
    hashmap_foreach(nd.nodes, find_gone, &g);
    for (size_t i = 0; i < g.n; i++) {
        struct node *e = g.v[i];
        hashmap_remove(nd.nodes, e->name, strlen(e->name));
        if (may_log())
            log_warning("cluster: node %s not heard for %d s; %zu nodes seen", e->name,
                        CLUSTER_HB_MISSED * CLUSTER_HB_INTERVAL_MS / 1000,
                        hashmap_count(nd.nodes) + 1);
        free(e);
    }
}

bool cluster_nodes_take(natsMsg *nm)
{
    struct node in;
    if (!parse(natsMsg_GetData(nm), natsMsg_GetDataLength(nm), &in)) {
        nd.refused++;
        return false;
    }
    const char *self = cluster_node_name();
    if (strcmp(in.name, self) == 0) {
        /* (The connection is "no echo": not this node's own heartbeat.) */
        nd.clashes++;
        long n = log_ratelimit_check(&nd.clash_rl, 60);
        if (n >= 0)
            log_warning("cluster: another node calls itself %s too (started %" PRId64
                        "): give each node its own node_name%s",
                        self, in.started, log_suppressed(n));
        return false;
    }
    size_t len = strlen(in.name);
    struct node *e = hashmap_get(nd.nodes, in.name, len);
    if (!e) {
        if (hashmap_count(nd.nodes) + 1 >= CLUSTER_NODES_MAX)
            purge();
        if (hashmap_count(nd.nodes) + 1 >= CLUSTER_NODES_MAX) {
            nd.full++;
            return false;
        }
        e = malloc(sizeof *e);
        if (!e || hashmap_put(nd.nodes, in.name, len, e) != 0) {
            free(e);
            nd.full++;
            return false;
        }
        *e = in;
        if (may_log())
            log_notice("cluster: node %s heard; %zu nodes seen", in.name,
                       hashmap_count(nd.nodes) + 1);
    } else if (e->started != in.started && may_log()) {
        log_notice("cluster: node %s restarted", in.name);
    }
    e->started = in.started;
    e->ready = in.ready;
    e->heard_ms = now_ms();
    return false;
}

/* libnats' thread: the bounds that need no parsing, before the loop's
 * queue. */
static void hb_in(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)closure;
    if (natsMsg_GetDataLength(msg) > HB_MAX_BYTES) {
        atomic_fetch_add(&hb_big, 1);
        natsMsg_Destroy(msg);
        return;
    }
    if (atomic_fetch_add(&hb_queued, 1) >= HB_PER_INTERVAL) {
        atomic_fetch_add(&hb_over, 1);
        natsMsg_Destroy(msg);
        return;
    }
    cluster_msg_in(nc, sub, msg, &tag);
}

void cluster_nodes_announce(void)
{
    if (!nd.started || !cluster_link_up())
        return;
    char buf[HB_MAX_BYTES];
    int n = snprintf(buf, sizeof buf, "1 %s %" PRId64 " %d", cluster_node_name(),
                     (int64_t)broker.started, cluster_js_st.stream_ready ? 1 : 0);
    if (n > 0 && (size_t)n < sizeof buf)
        natsConnection_Publish(nd.nc, nd.subject, buf, n);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    atomic_store(&hb_queued, 0);
    purge();
    if (nd.unlogged)
        log_notice("cluster: %u more node changes not logged; %zu nodes seen", nd.unlogged,
                   hashmap_count(nd.nodes) + 1);
    nd.logged = nd.unlogged = 0;
    cluster_nodes_announce();
}

int cluster_nodes_start(natsConnection *nc)
{
    nd.nc = nc;
    subject_for(cluster_node_name());
    snprintf(nd.filter, sizeof nd.filter, "%s-hb.*", cluster_prefix());
    nd.nodes = hashmap_new();
    nd.timer = event_new(broker.base, -1, EV_PERSIST, tick, NULL);
    struct timeval tv = {CLUSTER_HB_INTERVAL_MS / 1000, CLUSTER_HB_INTERVAL_MS % 1000 * 1000};
    if (!nd.nodes || !nd.timer || event_add(nd.timer, &tv) != 0) {
        log_error("cluster: out of memory");
        return -1;
    }
    natsStatus s = natsConnection_Subscribe(&nd.sub, nc, nd.filter, hb_in, NULL);
    if (s == NATS_OK)
        s = cluster_sub_track(nd.sub);
    if (s != NATS_OK) {
        log_error("cluster: cannot subscribe to NATS subject %s: %s", nd.filter,
                  natsStatus_GetText(s));
        return -1;
    }
    const char *self = cluster_node_name();
    size_t len = strlen(self), ok = 0;
    while (ok < len && name_char(self[ok]))
        ok++;
    if (ok != len || len > NAME_MAX_LEN)
        log_warning("cluster: the other nodes will not hear of node %s: a name of 1 to %d "
                    "letters, digits, '.', '-' or '_' is (set node_name)", self, NAME_MAX_LEN);
    nd.started = true;
    return 0;
}

static void free_node(void *value, void *arg)
{
    (void)arg;
    free(value);
}

void cluster_nodes_stop(void)
{
    if (nd.timer)
        event_free(nd.timer);
    if (nd.sub)
        natsSubscription_Destroy(nd.sub);
    if (nd.nodes) {
        hashmap_foreach(nd.nodes, free_node, NULL);
        hashmap_free(nd.nodes);
    }
    free(nd.list);
    memset(&nd, 0, sizeof nd);
}

static void count_ready(void *value, void *arg)
{
    *(uint64_t *)arg += ((struct node *)value)->ready;
}

void cluster_nodes_stats(struct cluster_stats *cs)
{
    purge();
    size_t n = nd.nodes ? hashmap_count(nd.nodes) : 0;
    cs->nodes_seen = n + 1;
    cs->nodes_ready = cluster_js_st.stream_ready ? 1 : 0;
    if (n)
        hashmap_foreach(nd.nodes, count_ready, &cs->nodes_ready);
    cs->nodes_refused = nd.refused + nd.clashes + atomic_load(&hb_big);
    cs->nodes_full = nd.full;
    cs->nodes_dropped = atomic_load(&hb_over);
}

struct names {
    const char *v[CLUSTER_NODES_MAX];
    size_t n;
};

static void collect(void *value, void *arg)
{
    struct names *a = arg;
    if (a->n < CLUSTER_NODES_MAX)
        a->v[a->n++] = ((struct node *)value)->name;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char *cluster_nodes_list(void)
{
    static struct names a;
    a.n = 0;
    a.v[a.n++] = cluster_node_name();
    purge();
    if (nd.nodes)
        hashmap_foreach(nd.nodes, collect, &a);
    qsort(a.v, a.n, sizeof a.v[0], by_name);
    size_t need = 1;
    for (size_t i = 0; i < a.n; i++)
        need += strlen(a.v[i]) + 1;
    if (need > nd.list_cap) {
        char *p = realloc(nd.list, need);
        if (!p)
            return "";
        nd.list = p;
        nd.list_cap = need;
    }
    size_t o = 0;
    for (size_t i = 0; i < a.n; i++) {
        size_t l = strlen(a.v[i]);
        if (i)
            nd.list[o++] = ' ';
        memcpy(nd.list + o, a.v[i], l);
        o += l;
    }
    nd.list[o] = '\0';
    return nd.list;
}

void cluster_inspect(const struct config *cfg, FILE *out)
{
    char node[80];
    cluster_node_name_of(cfg, node, sizeof node);
    fprintf(out, "cluster %s, node %s, NATS %s\n", cfg->cluster_name, node, cfg->cluster_nats);
    fprintf(out, "cluster NATS not contacted: --inspect reads this node's store only; the nodes "
                 "seen, the connection and the lag are the running node's "
                 "$SYS/broker/cluster/...\n");
}
