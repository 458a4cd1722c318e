/*
 * cluster.c - the node's NATS link: interest, forwarding, and what comes in
 * from the other nodes (cluster.h).
 *
 * libnats reads and writes its socket on the broker's event loop
 * (cluster_loop.c), but hands received messages and connection events to
 * threads of its own: those only queue the message (bounded) and activate
 * `in_ev`, and everything else - routing, counters, the log - happens on
 * the loop.
 *
 * A message goes to NATS as: subject = its topic mapped (cluster_subject.h),
 * data = the payload, headers Nmqtt-Pub (the QoS, as nats-server's MQTT
 * support writes it), Petrel-Node, Petrel-Id (the sending node's boot
 * stamp and a sequence number: copies that arrive through two overlapping
 * subscriptions are routed once), Petrel-Retain, and Petrel-Props (the
 * MQTT 5.0 properties, base64, with the Message Expiry Interval left).
 * What arrives is hostile input like any packet: it is rebuilt into a
 * PUBLISH and decoded by the strict decoder before it is routed.
 */
#include "cluster.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/evp.h>
#include <openssl/rand.h>


#include "broker.h"
#include "cluster_js.h"
#include "cluster_subject.h"
#include "hashmap.h"
#include "log.h"
#include "message.h"
#include "mqtt_codec.h"
#include "router.h"
#include "shared_subs.h"
#include "topic_tree.h"
#include "turn.h"

/* Messages received and not yet routed by the loop; beyond, they are
 * dropped and counted (the loop is far behind). */
#define IN_QUEUE_MAX 65536
/* Ids of the last messages routed, against copies (see above). */
#define RECENT_IDS 64
/* At stop: how long the subscriptions' last callbacks, and then the
 * library's threads, may take. */
#define CLOSE_WAIT_MS 5000

/* One NATS subscription, shared by the local filters mapping to its
 * subject (a filter and another's "#" parent). */
struct interest {
    natsSubscription *sub;
    uint32_t refs;
};

/* A message received, with its subscription's closure (a share group's
 * entry, cluster_share.c; NULL for the others). */
struct in_item {
    natsMsg *nm;
    void *closure;
};

static struct {
    bool enabled;
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;                 /* JetStream on nc (cluster_js) */
    struct hashmap *interests; /* subject -> struct interest */
    char prefix[80];
    char js_prefix[84];        /* prefix + "-js" (cluster_js.h) */
    char node[80];
    char boot[20];             /* this start's random stamp, hex */
    uint64_t seq;
    struct event *in_ev;
    struct in_item *in_q;      /* guarded by in_lock */
    size_t in_len, in_cap;
    uint64_t in_dropped;       /* by the threads: full queue */
    atomic_int link;           /* 1 connected, 0 not; set by the threads */
    atomic_uint_fast64_t link_events; /* reconnects seen by the threads */
    bool logged_up;
    uint64_t logged_events;
    uint64_t recent[RECENT_IDS];
    size_t recent_pos;
    struct cluster_stats stats;
    char subj[CLUSTER_SUBJECT_MAX];
} cl;

/* Guards cl.in_q, in_len, in_cap and in_dropped.  Outside `cl` and never
 * destroyed: a libnats thread may take it after cluster_stop. */
static pthread_mutex_t in_lock = PTHREAD_MUTEX_INITIALIZER;

bool cluster_enabled(void) { return cl.enabled; }
const char *cluster_node_name(void) { return cl.node; }
const char *cluster_prefix(void) { return cl.prefix; }
const char *cluster_js_prefix(void) { return cl.js_prefix; }
const char *cluster_boot(void) { return cl.boot; }
bool cluster_link_up(void) { return atomic_load(&cl.link) == 1; }
natsConnection *cluster_conn(void) { return cl.enabled ? cl.nc : NULL; }
jsCtx *cluster_js(void) { return cl.enabled ? cl.js : NULL; }

const struct cluster_stats *cluster_stats(void)
{
    cl.stats.connected = atomic_load(&cl.link) == 1;
    cl.stats.subjects = cl.interests ? hashmap_count(cl.interests) : 0;
    pthread_mutex_lock(&in_lock);
    cl.stats.dropped += cl.in_dropped;
    cl.in_dropped = 0;
    pthread_mutex_unlock(&in_lock);
    const struct cluster_js_stats *j = &cluster_js_st;
    cl.stats.outbox_messages = j->outbox_messages;
    cl.stats.outbox_bytes = j->outbox_bytes;
    cl.stats.outbox_full = j->outbox_full;
    cl.stats.js_sent = j->js_sent;
    cl.stats.js_stored = j->js_stored;
    cl.stats.js_retried = j->js_retried;
    cl.stats.js_received = j->js_received;
    cl.stats.js_redelivered = j->js_redelivered;
    cl.stats.js_duplicates = j->js_duplicates;
    cl.stats.retained_sent = j->retained_sent;
    cl.stats.retained_received = j->retained_received;
    cl.stats.stream_ready = j->stream_ready;
    cl.stats.stream_pending = j->stream_pending;
    cl.stats.stream_lag_ms = j->stream_lag_ms;
    cluster_nodes_stats(&cl.stats);
    return &cl.stats;
}

void cluster_preinit(const char *cluster_nats)
{
    if (cluster_nats && cluster_nats[0])
        evthread_use_pthreads(); /* before any base: libnats' threads add events */
}

/* ---- from the NATS threads ------------------------------------------- */

void cluster_wake(void)
{
    /* (Under the lock: cluster_stop frees the event under it.) */
    pthread_mutex_lock(&in_lock);
    if (cl.in_ev && !cluster_closing())
        event_active(cl.in_ev, EV_READ, 0);
    pthread_mutex_unlock(&in_lock);
}

void cluster_msg_in(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    pthread_mutex_lock(&in_lock);
    if (cluster_closing()) {
        /* (Checked under the lock: cluster_stop's last look at the queue
         * takes it too, so nothing is queued after that.) */
        pthread_mutex_unlock(&in_lock);
        natsMsg_Destroy(msg);
        return;
    }
    bool first = cl.in_len == 0;
    if (cl.in_len == IN_QUEUE_MAX) {
        cl.in_dropped++;
        pthread_mutex_unlock(&in_lock);
        natsMsg_Destroy(msg);
        return;
    }
    if (cl.in_len == cl.in_cap) {
        size_t cap = cl.in_cap ? cl.in_cap * 2 : 256;
        struct in_item *q = realloc(cl.in_q, cap * sizeof *q);
        if (!q) {
            cl.in_dropped++;
            pthread_mutex_unlock(&in_lock);
            natsMsg_Destroy(msg);
            return;
        }
        cl.in_q = q;
        cl.in_cap = cap;
    }
    cl.in_q[cl.in_len++] = (struct in_item){msg, closure};
    pthread_mutex_unlock(&in_lock);
    if (first)
        cluster_wake();
}

static void on_up(natsConnection *nc, void *closure)
{
    (void)nc;
    (void)closure;
    atomic_store(&cl.link, 1);
    atomic_fetch_add(&cl.link_events, 1);
    cluster_wake();
}

static void on_down(natsConnection *nc, void *closure)
{
    (void)nc;
    (void)closure;
    atomic_store(&cl.link, 0);
    atomic_fetch_add(&cl.link_events, 1);
    cluster_wake();
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)nc;
    (void)sub;
    (void)closure;
    if (err == NATS_SLOW_CONSUMER) {
        pthread_mutex_lock(&in_lock);
        cl.in_dropped++; /* libnats dropped at least one */
        pthread_mutex_unlock(&in_lock);
    }
}

/* ---- on the loop -------------------------------------------------------- */

static void log_link(void)
{
    bool up = atomic_load(&cl.link) == 1;
    uint64_t ev = atomic_load(&cl.link_events);
    if (ev == cl.logged_events)
        return;
    if (up && cl.nc) {
        char url[256] = "";
        natsConnection_GetConnectedUrl(cl.nc, url, sizeof url);
        if (cl.logged_up)
            cl.stats.reconnects++;
        log_notice("cluster: node %s connected to NATS %s", cl.node, url);
        cluster_nodes_announce(); /* the others hear of it at once */
    } else if (!up) {
        log_warning("cluster: node %s lost its NATS connection; QoS 0 published meanwhile "
                    "does not reach the other nodes, QoS 1/2 waits in the outbox", cl.node);
    }
    cl.logged_up = cl.logged_up || up;
    cl.logged_events = ev;
}

static bool seen_recently(uint64_t id)
{
    for (size_t i = 0; i < RECENT_IDS; i++)
        if (cl.recent[i] == id)
            return true;
    cl.recent[cl.recent_pos] = id;
    cl.recent_pos = (cl.recent_pos + 1) % RECENT_IDS;
    return false;
}

/* 64-bit FNV-1a of the id header: only compared with other ids. */
uint64_t cluster_xid(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h ? h : 1;
}

/* Rebuilds the PUBLISH of a message from NATS and decodes it strictly:
 * the topic, the QoS and every property are checked as if a client had
 * sent them.  Returns a new message or NULL (counted as dropped). */
static struct message *message_from_nats(natsMsg *nm, char *topic, long tlen)
{
    const char *v = NULL;
    uint8_t qos = 0;
    if (natsMsgHeader_Get(nm, "Nmqtt-Pub", &v) == NATS_OK && v && v[0] >= '0' && v[0] <= '2')
        qos = (uint8_t)(v[0] - '0');
    if (qos > broker.cfg.max_qos)
        qos = broker.cfg.max_qos;
    bool retain = natsMsgHeader_Get(nm, "Petrel-Retain", &v) == NATS_OK && v && v[0] == '1';
    const uint8_t *payload = (const uint8_t *)natsMsg_GetData(nm);
    int plen = natsMsg_GetDataLength(nm);
    if (plen < 0 || (uint32_t)plen > broker.cfg.max_packet_size)
        return NULL;

    uint8_t *props = NULL;
    int props_len = 0;
    if (natsMsgHeader_Get(nm, "Petrel-Props", &v) == NATS_OK && v && v[0]) {
        size_t b64 = strlen(v);
        if (b64 % 4 != 0 || b64 / 4 * 3 > broker.cfg.max_packet_size)
            return NULL;
        props = malloc(b64 / 4 * 3 + 1);
        if (!props)
            return NULL;
        props_len = EVP_DecodeBlock(props, (const unsigned char *)v, (int)b64);
        if (props_len < 0) {
            free(props);
            return NULL;
        }
        /* EVP_DecodeBlock counts the padding as zero bytes. */
        if (v[b64 - 1] == '=')
            props_len--;
        if (b64 >= 2 && v[b64 - 2] == '=')
            props_len--;
    }
    /* The PUBLISH body: topic, packet id (any, if QoS > 0), properties,
     * payload. */
    size_t body_len = 2 + (size_t)tlen + (qos ? 2 : 0) + 4 + (size_t)props_len + (size_t)plen;
    uint8_t *body = malloc(body_len);
    if (!body) {
        free(props);
        return NULL;
    }
    size_t o = 0;
    body[o++] = (uint8_t)(tlen >> 8);
    body[o++] = (uint8_t)tlen;
    memcpy(body + o, topic, (size_t)tlen);
    o += (size_t)tlen;
    if (qos) {
        body[o++] = 0;
        body[o++] = 1;
    }
    uint32_t pl = (uint32_t)props_len; /* a variable byte integer */
    do {
        uint8_t b = pl & 0x7f;
        pl >>= 7;
        body[o++] = pl ? (uint8_t)(b | 0x80) : b;
    } while (pl);
    if (props_len)
        memcpy(body + o, props, (size_t)props_len);
    o += (size_t)props_len;
    free(props);
    if (plen)
        memcpy(body + o, payload, (size_t)plen);
    o += (size_t)plen;
    struct mqtt_packet p;
    const char *why = NULL;
    uint8_t first = (uint8_t)(MQTT_PUBLISH << 4 | qos << 1 | (retain ? 1 : 0));
    struct message *m = NULL;
    if (mqtt_decode(5, first, body, (uint32_t)o, &p, &why) == MQTT_OK &&
        p.u.publish.topic.len > 0)
        m = message_new_props((const char *)p.u.publish.topic.data, p.u.publish.topic.len,
                              p.u.publish.payload.data, p.u.publish.payload.len, qos, retain,
                              &p.u.publish.props);
    free(body);
    return m;
}

struct message *cluster_msg_decode(natsMsg *nm, const char *prefix)
{
    const char *subject = natsMsg_GetSubject(nm);
    static char topic[65536];
    long tlen = subject ? cluster_topic_from_subject(prefix, subject, strlen(subject), topic,
                                                     sizeof topic)
                        : -1;
    if (tlen <= 0 || tlen > 65535 || !mqtt_topic_name_valid((const uint8_t *)topic, (size_t)tlen) ||
        (tlen >= 5 && memcmp(topic, "$SYS/", 5) == 0))
        return NULL;
    struct message *m = message_from_nats(nm, topic, tlen);
    const char *id = NULL;
    if (m && natsMsgHeader_Get(nm, "Petrel-Id", &id) == NATS_OK && id)
        m->xid = cluster_xid(id);
    return m;
}

/* Returns true when the message was kept (cluster_stream_take). */
static bool take_in(natsMsg *nm, void *closure)
{
    if (closure == cluster_session_tag())
        return cluster_session_take(nm);
    if (closure == cluster_nodes_tag())
        return cluster_nodes_take(nm);
    if (closure)
        return cluster_share_take(nm, closure);
    const char *subject = natsMsg_GetSubject(nm);
    size_t jl = strlen(cl.js_prefix);
    if (subject && strncmp(subject, cl.js_prefix, jl) == 0 && subject[jl] == '.')
        return cluster_stream_take(nm);
    const char *rp = cluster_retained_prefix();
    size_t rl = strlen(rp);
    if (subject && strncmp(subject, rp, rl) == 0 && subject[rl] == '.')
        return cluster_retained_take(nm);
    const char *id = NULL;
    if (natsMsgHeader_Get(nm, "Petrel-Id", &id) == NATS_OK && id && seen_recently(cluster_xid(id))) {
        cl.stats.duplicates++;
        return false;
    }
    struct message *m = cluster_msg_decode(nm, cl.prefix);
    if (!m) {
        cl.stats.dropped++;
        return false;
    }
    cl.stats.received++;
    router_publish_from_cluster(m);
    message_unref(m);
    return false;
}

static void in_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    turn_begin();
    log_link();
    cluster_stream_log();
    cluster_outbox_run();
    turn_schedule(); /* acknowledgements to JetStream go at the end of the turn */
    for (;;) {
        pthread_mutex_lock(&in_lock);
        struct in_item *q = cl.in_q;
        size_t n = cl.in_len;
        cl.in_q = NULL;
        cl.in_len = cl.in_cap = 0;
        pthread_mutex_unlock(&in_lock);
        if (n == 0) {
            free(q);
            break;
        }
        for (size_t i = 0; i < n; i++)
            if (!take_in(q[i].nm, q[i].closure))
                natsMsg_Destroy(q[i].nm);
        free(q);
    }
}

/* ---- interest ----------------------------------------------------------- */

static void subject_ref(const char *subject, size_t len, bool on)
{
    struct interest *in = hashmap_get(cl.interests, subject, len);
    if (on) {
        if (in) {
            in->refs++;
            return;
        }
        in = calloc(1, sizeof *in);
        if (!in || hashmap_put(cl.interests, subject, len, in) < 0) {
            free(in);
            log_error("cluster: out of memory: no NATS subscription for %s", subject);
            return;
        }
        in->refs = 1;
        natsStatus s = natsConnection_Subscribe(&in->sub, cl.nc, subject, cluster_msg_in, NULL);
        if (s == NATS_OK)
            s = cluster_sub_track(in->sub);
        if (s == NATS_OK)
            s = natsSubscription_SetPendingLimits(in->sub, IN_QUEUE_MAX, 64 * 1024 * 1024);
        if (s != NATS_OK)
            log_error("cluster: cannot subscribe to NATS subject %s: %s", subject,
                      natsStatus_GetText(s));
        return;
    }
    if (!in || --in->refs > 0)
        return;
    hashmap_remove(cl.interests, subject, len);
    if (in->sub) {
        natsSubscription_Unsubscribe(in->sub);
        natsSubscription_Destroy(in->sub);
    }
    free(in);
}

/* The topic tree's interest callback: a filter's first subscriber came, or
 * its last went. */
static void interest_cb(const char *filter, size_t len, bool on, void *arg)
{
    (void)arg;
    if (len >= 4 && memcmp(filter, "$SYS", 4) == 0)
        return; /* $SYS is each node's own: never forwarded */
    long n = cluster_subject_from_topic(cl.prefix, filter, len, true, cl.subj, sizeof cl.subj);
    if (n < 0)
        return; /* a filter no subject can carry: local only */
    subject_ref(cl.subj, (size_t)n, on);
    n = cluster_subject_parent(cl.prefix, filter, len, cl.subj, sizeof cl.subj);
    if (n > 0)
        subject_ref(cl.subj, (size_t)n, on);
}

/* ---- forwarding --------------------------------------------------------- */

natsMsg *cluster_msg_new(const char *subject, const struct message *m, const char *id)
{
    natsMsg *nm = NULL;
    if (natsMsg_Create(&nm, subject, NULL, (const char *)m->payload, (int)m->payload_len) !=
        NATS_OK)
        return NULL;
    char qos[2] = {(char)('0' + m->qos), 0};
    natsStatus s = natsMsgHeader_Set(nm, "Nmqtt-Pub", qos);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(nm, "Petrel-Node", cl.node);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(nm, "Petrel-Id", id);
    if (s == NATS_OK && m->retain)
        s = natsMsgHeader_Set(nm, "Petrel-Retain", "1");
    /* The properties, and what is left of the Message Expiry Interval. */
    size_t plen = m->props_len;
    uint8_t *props = (m->props_len || m->expires_at) ? malloc(m->props_len + 5) : NULL;
    char *b64 = props ? malloc((m->props_len + 5 + 2) / 3 * 4 + 1) : NULL;
    if ((m->props_len || m->expires_at) && (!props || !b64))
        s = NATS_NO_MEMORY;
    if (s == NATS_OK && props) {
        if (m->props_len)
            memcpy(props, m->props, m->props_len);
        if (m->expires_at) {
            int64_t left = (m->expires_at - message_now_ms() + 999) / 1000;
            uint32_t sec = left < 1 ? 1 : (uint32_t)left;
            props[plen++] = MQTT_PROP_MESSAGE_EXPIRY;
            for (int i = 3; i >= 0; i--)
                props[plen++] = (uint8_t)(sec >> (8 * i));
        }
        EVP_EncodeBlock((unsigned char *)b64, props, (int)plen);
        s = natsMsgHeader_Set(nm, "Petrel-Props", b64);
    }
    free(props);
    free(b64);
    if (s != NATS_OK) {
        natsMsg_Destroy(nm);
        return NULL;
    }
    return nm;
}

int cluster_forward(const struct message *m)
{
    if (!cl.enabled || (m->topic_len >= 5 && memcmp(m->topic, "$SYS/", 5) == 0))
        return 0;
    if (m->retain) /* the value, for every node's store (cluster_retained.c) */
        cluster_outbox_add_retained(m);
    if (m->qos > 0) /* through JetStream: cluster_outbox.c */
        return cluster_outbox_add(m) ? 0 : -1;
    long n = cluster_subject_from_topic(cl.prefix, m->topic, m->topic_len, false, cl.subj,
                                        sizeof cl.subj);
    if (n < 0)
        return 0;
    char id[64];
    snprintf(id, sizeof id, "%s.%" PRIu64, cl.boot, ++cl.seq);
    natsMsg *nm = cluster_msg_new(cl.subj, m, id);
    natsStatus s = nm ? natsConnection_PublishMsg(cl.nc, nm) : NATS_NO_MEMORY;
    natsMsg_Destroy(nm);
    if (s == NATS_OK)
        cl.stats.sent++;
    else
        cl.stats.dropped++;
    return 0;
}

void cluster_turn_end(uint64_t failed)
{
    if (!cl.enabled)
        return;
    cluster_outbox_turn_end(failed);
    cluster_stream_turn_end(failed);
    cluster_share_tick();
    cluster_session_turn_end(failed);
}

/* ---- start and stop ------------------------------------------------------ */

/* The JetStream context (it needs no server yet: requests made through it
 * wait for the connection). */
static int js_start(void)
{
    jsOptions o;
    natsStatus s = jsOptions_Init(&o);
    if (s == NATS_OK) {
        /* Acknowledgements of the outbox's publishes (cluster_outbox.c);
         * it keeps fewer in flight than MaxPending, so a publish never
         * stalls the loop. */
        o.PublishAsync.AckHandler = cluster_outbox_acked;
        o.PublishAsync.MaxPending = 2 * CLUSTER_JS_INFLIGHT;
        o.PublishAsync.StallWait = 1;
        s = natsConnection_JetStream(&cl.js, cl.nc, &o);
    }
    if (s != NATS_OK) {
        log_error("cluster: no JetStream context: %s", natsStatus_GetText(s));
        return -1;
    }
    if (cluster_outbox_start() != 0 || cluster_stream_start(cl.js) != 0)
        return -1;
    return 0;
}

natsStatus cluster_options_base(natsOptions *o, const char **servers, int n, const char *name,
                                natsConnectionHandler connected)
{
    natsStatus s = natsOptions_SetServers(o, servers, n);
    if (s == NATS_OK)
        s = natsOptions_SetName(o, name);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, 1000);
    if (s == NATS_OK)
        s = natsOptions_UseGlobalMessageDelivery(o, true);
    if (s == NATS_OK) /* (with a callback, Connect does not wait for a server) */
        s = natsOptions_SetRetryOnFailedConnect(o, true, connected, NULL);
    return s;
}

int cluster_start(void)
{
    const struct config *cfg = &broker.cfg;
    if (!cfg->cluster_nats[0])
        return 0;
    /* The router and the share groups call the cluster only through what
     * it gives them here: alone, they have nothing of it. */
    static const struct router_cluster hooks = {cluster_forward, cluster_share_here,
                                                cluster_session_delivered};
    router_set_cluster(&hooks);
    share_set_watch(cluster_share_group);
    cluster_close_reset();
    snprintf(cl.prefix, sizeof cl.prefix, "%s", cfg->cluster_name);
    snprintf(cl.js_prefix, sizeof cl.js_prefix, "%s-js", cfg->cluster_name);
    cluster_node_name_of(cfg, cl.node, sizeof cl.node);
    uint8_t rnd[8];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        memset(rnd, 0, sizeof rnd);
    for (int i = 0; i < 8; i++)
        snprintf(cl.boot + 2 * i, 3, "%02x", rnd[i]);
    cluster_retained_init();
    cl.interests = hashmap_new();
    cl.in_ev = event_new(broker.base, -1, EV_PERSIST, in_cb, NULL);
    if (!cl.interests || !cl.in_ev) {
        log_error("cluster: out of memory");
        return -1;
    }
    char name[128];
    snprintf(name, sizeof name, "petreld %s", cl.node);
    natsStatus s = natsOptions_Create(&cl.opts);
    /* The servers as a list: SetURL's own comma splitting did not connect
     * (libnats 3.4.1 with an event loop).  The config value is at most 1 KiB. */
    char urls[sizeof cfg->cluster_nats];
    const char *servers[64];
    int n_servers = 0;
    snprintf(urls, sizeof urls, "%s", cfg->cluster_nats);
    for (char *save = NULL, *u = strtok_r(urls, ", ", &save); u && n_servers < 64;
         u = strtok_r(NULL, ", ", &save))
        servers[n_servers++] = u;
    if (s == NATS_OK)
        s = n_servers ? cluster_options_base(cl.opts, servers, n_servers, name, on_up)
                      : NATS_INVALID_ARG;
    if (s == NATS_OK)
        s = natsOptions_SetNoEcho(cl.opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(cl.opts, on_down, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(cl.opts, on_up, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(cl.opts, on_error, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetEventLoop(cl.opts, broker.base, cluster_loop_attach, cluster_loop_read,
                                     cluster_loop_write, cluster_loop_detach);
    if (s != NATS_OK) {
        log_error("cluster_nats = %s: %s", cfg->cluster_nats, natsStatus_GetText(s));
        return -1;
    }
    s = natsConnection_Connect(&cl.nc, cl.opts);
    if (s == NATS_OK) {
        on_up(cl.nc, NULL);
    } else if (s == NATS_NOT_YET_CONNECTED) {
        log_warning("cluster: no NATS server of %s answers yet; node %s keeps trying",
                    cfg->cluster_nats, cl.node);
    } else {
        log_error("cluster_nats = %s: %s", cfg->cluster_nats, natsStatus_GetText(s));
        return -1;
    }
    if (js_start() != 0 || cluster_nodes_start(cl.nc) != 0)
        return -1;
    snprintf(name, sizeof name, "petreld %s shares", cl.node);
    if (cluster_share_start(servers, n_servers, name) != 0)
        return -1;
    int replicas = cfg->cluster_stream_replicas ? (int)cfg->cluster_stream_replicas
                                                : (n_servers < 3 ? n_servers : 3);
    if (cluster_session_start(cluster_share_conn(), cluster_share_js(), replicas) != 0)
        return -1;
    cl.enabled = true;
    topic_tree_set_interest_cb(broker.topics, interest_cb, NULL);
    log_notice("cluster: node %s, cluster %s, NATS %s", cl.node, cl.prefix, cfg->cluster_nats);
    log_link();
    return 0;
}

static void free_interest(void *value, void *arg)
{
    (void)arg;
    struct interest *in = value;
    if (in->sub)
        natsSubscription_Destroy(in->sub);
    free(in);
}

void cluster_stop(void)
{
    if (!cl.opts && !cl.interests)
        return;
    if (broker.topics)
        topic_tree_set_interest_cb(broker.topics, NULL, NULL);
    /* From here the library's threads only drop what they hand us. */
    cluster_close_begin();
    cluster_loop_stopping();
    /* (No flush: with the loop stopped nothing would write it.  What is
     * still buffered is lost, as core NATS allows.) */
    cluster_stream_stop();
    cluster_session_stop();
    /* Closing the connection closes every subscription; libnats then
     * finishes the handler calls under way, destroys what was still queued
     * for them and calls each one's completion callback.  (Not
     * natsSubscription_Unsubscribe on the stream's: for a consumer
     * js_Subscribe made, that deletes the durable consumer.) */
    if (cl.nc)
        natsConnection_Close(cl.nc);
    cluster_share_close();
    cluster_session_join(); /* its threads' requests end with the connection */
    if (!cluster_subs_wait(CLOSE_WAIT_MS))
        log_warning("cluster: NATS subscriptions still delivering after %d ms at stop",
                    CLOSE_WAIT_MS);
    cluster_stream_join();
    cluster_nodes_stop();
    cluster_outbox_stop();
    if (cl.interests) {
        hashmap_foreach(cl.interests, free_interest, NULL);
        hashmap_free(cl.interests);
    }
    /* Every message is destroyed before nats_CloseAndWait: libnats frees
     * a destroyed message on its garbage collector's thread, which ends
     * when the library closes, and what is handed to it after that is
     * never freed (LeakSanitizer saw exactly that: a message, or a
     * subscription's close notice, destroyed by a delivery thread still
     * busy while the library closed).  Hence the wait above, and this
     * order. */
    pthread_mutex_lock(&in_lock);
    for (size_t i = 0; i < cl.in_len; i++)
        natsMsg_Destroy(cl.in_q[i].nm);
    free(cl.in_q);
    cl.in_q = NULL;
    cl.in_len = cl.in_cap = 0;
    pthread_mutex_unlock(&in_lock);
    cluster_share_destroy();
    if (cl.js)
        jsCtx_Destroy(cl.js);
    if (cl.nc)
        natsConnection_Destroy(cl.nc);
    natsOptions_Destroy(cl.opts);
    /* Every thread of the library ends. */
    if (nats_CloseAndWait(CLOSE_WAIT_MS) != NATS_OK)
        log_warning("cluster: the NATS library's threads did not end within %d ms at stop",
                    CLOSE_WAIT_MS);
    pthread_mutex_lock(&in_lock);
    if (cl.in_ev)
        event_free(cl.in_ev);
    cl.in_ev = NULL;
    memset(&cl, 0, sizeof cl);
    pthread_mutex_unlock(&in_lock);
}
