/*
 * cluster_share.c - shared subscriptions across the nodes (cluster.h,
 * cluster_js.h): each message of a "$share/GROUP/filter" group goes to one
 * member cluster-wide.
 *
 * The choice of the node is NATS's, the choice of the member within the
 * node is shared_subs.c's round-robin:
 *   - QoS 0: every node with a local group holds a NATS queue subscription
 *     (queue = the group) on the filter's core subject(s); NATS gives each
 *     message to one of them.  These live on a second connection, with
 *     echo on: the node's main connection is "no echo", and through it the
 *     node would never be chosen for what its own clients publish.
 *   - QoS 1/2: one durable JetStream consumer of the QoS stream per group,
 *     shared by the nodes (a push consumer with a deliver group: JetStream
 *     gives each message to one subscribed node, and again to one after
 *     the acknowledgement wait if that node did not acknowledge).  The node
 *     acknowledges once what share_route queued is durable, as for the
 *     node's own consumer (cluster_stream_hold); QoS 2 ids go to
 *     cluster_inbox under the group's name (exactly once per group).
 * The rest of the broker then serves a group only through these (router.c
 * asks cluster_share_here), except for what does not cross: $SYS, topics
 * no subject holds, QoS 1/2 the full outbox kept local, QoS 0 while the
 * share connection is down.
 *
 * An entry per group stays until cluster_stop (a delivery queued for the
 * loop names it), inactive once the group is gone from the node.
 *
 * The consumer is made (and subscriptions made) on the loop, with
 * synchronous JetStream requests: the share connection runs on libnats'
 * own threads, so the answers come while the loop waits (at most
 * SHARE_JS_WAIT_MS, and only once the stream is ready; after a failure,
 * again SHARE_RETRY_S later).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "cluster_js.h"
#include "cluster_subject.h"
#include "hashmap.h"
#include "log.h"
#include "message.h"
#include "mqtt_codec.h"
#include "shared_subs.h"
#include "store_outbox.h"

#define SHARE_JS_WAIT_MS 2000
#define SHARE_RETRY_S 5

struct share_ent {
    natsSubscription *core[2]; /* QoS 0: queue subscriptions (a "#" filter's parent too) */
    natsSubscription *js;      /* QoS 1/2: bound to the group's consumer */
    bool active;               /* a local group exists */
    bool done;                 /* subscribed (or local only) */
    char name[112];            /* "<cluster>-share-<hash>": consumer and queue */
    uint16_t inner, len;
    char key[];                /* "$share/GROUP/filter" */
};

static struct {
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
    struct hashmap *ents; /* key -> struct share_ent (never freed before stop) */
    time_t tick_at;       /* the next look at what is not subscribed */
    time_t retry_at;      /* a JetStream request failed: none before this */
    char subj[CLUSTER_SUBJECT_MAX];
} sh;

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
    return h;
}

static natsSubscription *queue_sub(const char *subject, const char *queue, struct share_ent *e)
{
    natsSubscription *sub = NULL;
    natsStatus s = natsConnection_QueueSubscribe(&sub, sh.nc, subject, queue, cluster_msg_in, e);
    if (s == NATS_OK)
        s = cluster_sub_track(sub);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(sub, 65536, 64 * 1024 * 1024);
    if (s != NATS_OK) {
        log_error("cluster: cannot queue-subscribe to %s for %.*s: %s", subject, (int)e->len,
                  e->key, natsStatus_GetText(s));
        if (sub)
            natsSubscription_Destroy(sub);
        return NULL;
    }
    return sub;
}

/* The group's consumer (made if missing) and this node's subscription to
 * it.  False to try again later. */
static bool js_sub(struct share_ent *e, const char *filter, size_t flen)
{
    char deliver[sizeof e->name + 8];
    snprintf(deliver, sizeof deliver, "%s.d", e->name); /* outside every stream's subjects */
    /* A "#" filter maps to two subjects and a 2.9 consumer takes one: its
     * consumer takes the stream's every subject, the node checks the match. */
    long n = cluster_subject_parent(cluster_js_prefix(), filter, flen, sh.subj, sizeof sh.subj);
    if (n != 0 || (flen == 1 && filter[0] == '#'))
        snprintf(sh.subj, sizeof sh.subj, "%s.>", cluster_js_prefix());
    else if (cluster_subject_from_topic(cluster_js_prefix(), filter, flen, true, sh.subj,
                                        sizeof sh.subj) < 0)
        return true; /* cannot happen: the core subject was made */
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = e->name;
    cc.DeliverSubject = deliver;
    cc.DeliverGroup = e->name;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = (int64_t)CLUSTER_JS_ACK_WAIT_S * 1000000000LL;
    cc.MaxAckPending = CLUSTER_JS_ACK_PENDING;
    cc.MaxDeliver = -1;
    cc.DeliverPolicy = js_DeliverNew;
    cc.FilterSubject = sh.subj;
    jsErrCode je = 0;
    jsConsumerInfo *ci = NULL;
    natsStatus s = js_AddConsumer(&ci, sh.js, cluster_js_prefix(), &cc, NULL, &je);
    jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK && je != JSConsumerNameExistErr) {
        cluster_stream_set_err("making a share group's JetStream consumer", s, je);
        return false;
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = cluster_js_prefix();
    so.Consumer = e->name; /* bound: this node never deletes it */
    so.Queue = e->name;
    so.ManualAck = true;
    je = 0;
    s = js_Subscribe(&e->js, sh.js, sh.subj, cluster_msg_in, e, NULL, &so, &je);
    if (s == NATS_OK)
        s = cluster_sub_track(e->js);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(e->js, 4 * CLUSTER_JS_ACK_PENDING, 256 << 20);
    if (s != NATS_OK) {
        cluster_stream_set_err("subscribing to a share group's JetStream consumer", s, je);
        if (e->js)
            natsSubscription_Destroy(e->js);
        e->js = NULL;
        return false;
    }
    return true;
}

static void ent_subscribe(struct share_ent *e)
{
    if (!sh.nc || e->done || !e->active)
        return;
    const char *filter = e->key + e->inner;
    size_t flen = e->len - e->inner;
    long n = -1;
    if (!(flen >= 4 && memcmp(filter, "$SYS", 4) == 0))
        n = cluster_subject_from_topic(cluster_prefix(), filter, flen, true, sh.subj,
                                       sizeof sh.subj);
    if (n < 0) {
        e->done = true; /* no subject: its messages never cross, served here */
        return;
    }
    if (!e->core[0])
        e->core[0] = queue_sub(sh.subj, e->name, e);
    n = cluster_subject_parent(cluster_prefix(), filter, flen, sh.subj, sizeof sh.subj);
    if (n > 0 && !e->core[1])
        e->core[1] = queue_sub(sh.subj, e->name, e);
    /* JetStream requests only once the stream is there and the link up
     * (else each would wait its full time on the loop). */
    if (!e->js && (!cluster_js_st.stream_ready ||
                   natsConnection_Status(sh.nc) != NATS_CONN_STATUS_CONNECTED ||
                   time(NULL) < sh.retry_at))
        return;
    if (!e->js && !js_sub(e, filter, flen)) {
        sh.retry_at = time(NULL) + SHARE_RETRY_S;
        return;
    }
    e->done = true;
}

static void unsub(natsSubscription **sub)
{
    if (!*sub)
        return;
    natsSubscription_Unsubscribe(*sub); /* (bound: the consumer stays) */
    natsSubscription_Destroy(*sub);
    *sub = NULL;
}

void cluster_share_group(const char *key, size_t len, size_t inner, bool on)
{
    if (!sh.nc)
        return; /* alone, or before cluster_share_start (which asks for the groups) */
    if (!sh.ents && !(sh.ents = hashmap_new()))
        return;
    struct share_ent *e = hashmap_get(sh.ents, key, len);
    if (!on) {
        if (!e)
            return;
        e->active = false;
        e->done = false;
        unsub(&e->core[0]);
        unsub(&e->core[1]);
        unsub(&e->js);
        return;
    }
    if (!e) {
        e = calloc(1, sizeof *e + len);
        if (!e || hashmap_put(sh.ents, key, len, e) < 0) {
            free(e);
            log_error("cluster: out of memory: %.*s shares on this node only", (int)len, key);
            return;
        }
        memcpy(e->key, key, len);
        e->len = (uint16_t)len;
        e->inner = (uint16_t)inner;
        snprintf(e->name, sizeof e->name, "%s-share-%016" PRIx64, cluster_prefix(),
                 fnv(key, len));
    }
    e->active = true;
    ent_subscribe(e);
}

static void each_subscribe(void *value, void *arg)
{
    (void)arg;
    ent_subscribe(value);
}

void cluster_share_tick(void)
{
    time_t now = time(NULL);
    if (!sh.nc || !sh.ents || now < sh.tick_at)
        return;
    sh.tick_at = now + 1;
    hashmap_foreach(sh.ents, each_subscribe, NULL);
}

static void on_connected(natsConnection *nc, void *closure)
{
    (void)nc;
    (void)closure;
}

static void group_found(const char *key, size_t len, size_t inner)
{
    cluster_share_group(key, len, inner, true);
}

natsConnection *cluster_share_conn(void) { return sh.nc; }
jsCtx *cluster_share_js(void) { return sh.js; }

int cluster_share_start(const char **servers, int n, const char *name)
{
    natsStatus s = natsOptions_Create(&sh.opts);
    if (s == NATS_OK)
        s = cluster_options_base(sh.opts, servers, n, name, on_connected);
    if (s == NATS_OK) {
        s = natsConnection_Connect(&sh.nc, sh.opts);
        if (s == NATS_NOT_YET_CONNECTED)
            s = NATS_OK;
    }
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = SHARE_JS_WAIT_MS;
    if (s == NATS_OK)
        s = natsConnection_JetStream(&sh.js, sh.nc, &o);
    if (s != NATS_OK) {
        log_error("cluster: the shared subscriptions' NATS connection: %s",
                  natsStatus_GetText(s));
        return -1;
    }
    share_foreach_group(group_found); /* those restored from the store */
    return 0;
}

void cluster_share_close(void)
{
    if (sh.nc)
        natsConnection_Close(sh.nc);
}

static void free_ent(void *value, void *arg)
{
    (void)arg;
    struct share_ent *e = value;
    for (int i = 0; i < 2; i++)
        if (e->core[i])
            natsSubscription_Destroy(e->core[i]);
    if (e->js)
        natsSubscription_Destroy(e->js);
    free(e);
}

void cluster_share_destroy(void)
{
    if (sh.ents) {
        hashmap_foreach(sh.ents, free_ent, NULL);
        hashmap_free(sh.ents);
    }
    if (sh.js)
        jsCtx_Destroy(sh.js);
    if (sh.nc)
        natsConnection_Destroy(sh.nc);
    natsOptions_Destroy(sh.opts);
    memset(&sh, 0, sizeof sh);
}

bool cluster_share_here(const struct message *m, bool kept_local)
{
    if (!cluster_enabled() || kept_local || !sh.nc)
        return true;
    if (m->topic_len >= 4 && memcmp(m->topic, "$SYS", 4) == 0)
        return true;
    if (cluster_subject_from_topic(cluster_prefix(), m->topic, m->topic_len, false, sh.subj,
                                   sizeof sh.subj) < 0)
        return true;
    if (m->qos == 0)
        return natsConnection_Status(sh.nc) != NATS_CONN_STATUS_CONNECTED;
    return false; /* through the outbox and the group's consumer */
}

bool cluster_share_take(natsMsg *nm, void *closure)
{
    struct share_ent *e = closure;
    const char *reply = natsMsg_GetReply(nm);
    bool js = reply && strncmp(reply, "$JS.ACK.", 8) == 0;
    struct share_group *g = e->active ? share_find(e->key, e->len) : NULL;
    struct message *m = cluster_msg_decode(nm, js ? cluster_js_prefix() : cluster_prefix());
    if (!m) {
        if (js)
            natsMsg_Term(nm, NULL); /* hostile or broken */
        return false;
    }
    bool keep = false;
    if (!g) {
        if (js)
            natsMsg_Nak(nm, NULL); /* the group left this node: another takes it */
    } else if (!mqtt_topic_matches(e->key + e->inner, e->len - e->inner, m->topic,
                                   m->topic_len)) {
        if (js)
            natsMsg_Ack(nm, NULL); /* the broad consumer of a "#" filter */
    } else {
        char id[256] = "";
        const char *pid = NULL;
        if (js && m->qos == 2 && natsMsgHeader_Get(nm, "Petrel-Id", &pid) == NATS_OK && pid &&
            pid[0])
            snprintf(id, sizeof id, "%s/%s", e->name, pid);
        if (id[0] && store_inbox_seen(id) == 1) {
            cluster_js_st.js_duplicates++;
        } else {
            share_route(g, m);
            if (id[0])
                store_inbox_add(id);
        }
        keep = js && cluster_stream_hold(nm);
    }
    message_unref(m);
    return keep;
}
