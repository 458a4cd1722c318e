/*
 * cluster_stream.c - the cluster's JetStream stream and this node's
 * durable consumer of it (cluster_js.h): QoS 1/2 from the other nodes,
 * acknowledged to JetStream only once what routing them queued is durable.
 *
 * Making the stream and the consumer takes JetStream API requests, which
 * wait for their answers: the answers are read by the loop (libnats runs
 * on it), so the requests are made by a thread of their own, at start and
 * again each second until both exist (no NATS server yet, JetStream still
 * electing its leader, the consumer still bound to the connection of a
 * killed petreld).  Once subscribed, libnats keeps the subscription across
 * reconnections.
 *
 * Deliveries reach the loop through cluster.c's queue like core messages.
 * Each is routed (unless it is this node's own: the consumer sees every
 * message of the stream, the node's own included) and kept with the batch
 * its routing wrote into; at the end of a turn the messages whose batch is
 * durable are acknowledged, and those whose batch rolled back are
 * negatively acknowledged so that JetStream delivers them again at once.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "array_grow.h"
#include "broker.h"
#include "cluster.h"
#include "cluster_js.h"
#include "log.h"
#include "message.h"
#include "router.h"
#include "store.h"
#include "store_outbox.h"

struct waiting {
    natsMsg *nm;
    uint64_t batch;
};

static struct {
    bool started;
    pthread_t thread;
    pthread_mutex_t lock;      /* guards err and cond */
    pthread_cond_t cond;
    atomic_bool stop;
    atomic_bool ready;         /* the thread has made both */
    bool ready_logged;
    char err[256];             /* the thread's last setup error, for the loop's log */
    unsigned err_seq, err_logged;
    int replicas, replicas_made;
    natsSubscription *sub;
    jsCtx *js;
    char stream[96], filter[100], durable[80];
    struct waiting *w;         /* delivered, not yet acknowledged (loop only) */
    size_t w_len, w_cap;
} st;

void cluster_stream_set_err(const char *what, natsStatus s, jsErrCode je)
{
    pthread_mutex_lock(&st.lock);
    char buf[sizeof st.err];
    snprintf(buf, sizeof buf, "%s: %s (JetStream error %d)", what, natsStatus_GetText(s), (int)je);
    if (strcmp(buf, st.err) != 0) {
        memcpy(st.err, buf, sizeof buf);
        st.err_seq++;
    }
    pthread_mutex_unlock(&st.lock);
}

natsStatus cluster_stream_add(jsCtx *js, const char *name, const char *filter, int64_t max_bytes,
                              int64_t max_age, int64_t per_subject, int replicas, int *made,
                              jsErrCode *je)
{
    const char *subjects[1] = {filter};
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = name;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Retention = js_LimitsPolicy;
    sc.Storage = js_FileStorage;
    sc.Discard = js_DiscardOld;
    sc.MaxBytes = max_bytes;
    sc.MaxAge = max_age;
    if (per_subject)
        sc.MaxMsgsPerSubject = per_subject;
    sc.Duplicates = (int64_t)CLUSTER_JS_DUPLICATES_S * 1000000000LL;
    sc.Replicas = replicas;
    jsStreamInfo *si = NULL;
    *je = 0;
    natsStatus s = js_AddStream(&si, js, &sc, NULL, je);
    if (s != NATS_OK && *je == JSStreamReplicasNotSupportedErr && sc.Replicas > 1) {
        /* A single NATS server without a cluster: one replica. */
        sc.Replicas = 1;
        *je = 0;
        s = js_AddStream(&si, js, &sc, NULL, je);
    }
    if (si) {
        if (made)
            *made = (int)si->Config->Replicas;
        jsStreamInfo_Destroy(si);
    }
    return s;
}

/* Makes the stream if it is missing, with this node's replicas and bounds;
 * an existing one keeps its replicas (the node that made it chose them: a
 * node reaching a single server must not scale it down) and takes this
 * node's bounds when they differ. */
static int make_stream(jsCtx *js)
{
    const struct config *cfg = &broker.cfg;
    int64_t max_bytes = (int64_t)cfg->cluster_stream_max_bytes;
    int64_t max_age = (int64_t)cfg->cluster_stream_max_age * 1000000000LL;
    jsErrCode je = 0;
    jsStreamInfo *si = NULL;
    natsStatus s = js_GetStreamInfo(&si, js, st.stream, NULL, &je);
    if (s == NATS_OK && si) {
        st.replicas_made = (int)si->Config->Replicas;
        if (si->Config->MaxBytes != max_bytes || si->Config->MaxAge != max_age) {
            jsStreamConfig *c = si->Config;
            c->MaxBytes = max_bytes;
            c->MaxAge = max_age;
            jsStreamInfo *u = NULL;
            je = 0;
            natsStatus us = js_UpdateStream(&u, js, c, NULL, &je);
            if (us != NATS_OK)
                cluster_stream_set_err("updating the JetStream stream's bounds (used as it is)",
                                       us, je);
            jsStreamInfo_Destroy(u);
        }
        jsStreamInfo_Destroy(si);
        return 0;
    }
    if (je != JSStreamNotFoundErr) {
        cluster_stream_set_err("looking up the JetStream stream", s, je);
        return -1;
    }
    /* Limits: a message stays for cluster_stream_max_age (or until the
     * stream is at cluster_stream_max_bytes), acknowledged or not.
     * Interest retention (gone once every consumer has it) would keep less,
     * but nats-server 2.9.10 lost messages a restarted node's consumer had
     * not had yet after one server of three restarted (test_cluster_js). */
    s = cluster_stream_add(js, st.stream, st.filter, max_bytes, max_age, 0, st.replicas,
                           &st.replicas_made, &je);
    if (s != NATS_OK && je == JSStreamNameExistErr)
        return make_stream(js); /* another node made it meanwhile */
    if (s != NATS_OK) {
        cluster_stream_set_err("making the JetStream stream", s, je);
        return -1;
    }
    return 0;
}

natsSubscription *cluster_stream_consume(jsCtx *js, const char *stream, const char *filter,
                                         const char *durable, bool from_start, const char *what)
{
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.ManualAck = true;
    so.Config.Durable = durable;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.AckWait = (int64_t)CLUSTER_JS_ACK_WAIT_S * 1000000000LL;
    so.Config.MaxAckPending = CLUSTER_JS_ACK_PENDING;
    so.Config.MaxDeliver = -1;
    so.Config.DeliverPolicy = from_start ? js_DeliverAll : js_DeliverNew;
    so.Config.FilterSubject = filter;
    jsErrCode je = 0;
    natsSubscription *sub = NULL;
    natsStatus s = js_Subscribe(&sub, js, filter, cluster_msg_in, NULL, NULL, &so, &je);
    if (s == NATS_OK)
        s = cluster_sub_track(sub);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(sub, 4 * CLUSTER_JS_ACK_PENDING, 256 * 1024 * 1024);
    if (s != NATS_OK) {
        cluster_stream_set_err(what, s, je);
        if (sub)
            natsSubscription_Destroy(sub);
        return NULL;
    }
    return sub;
}

static int subscribe(jsCtx *js)
{
    /* A new node starts with what is published from now on. */
    st.sub = cluster_stream_consume(js, st.stream, st.filter, st.durable, false,
                                    "subscribing to the JetStream stream");
    return st.sub ? 0 : -1;
}

static void *setup_main(void *arg)
{
    (void)arg;
    bool have_stream = false;
    pthread_mutex_lock(&st.lock);
    while (!atomic_load(&st.stop)) {
        pthread_mutex_unlock(&st.lock);
        jsCtx *js = st.js;
        if (cluster_link_up()) {
            if (!have_stream)
                have_stream = make_stream(js) == 0;
            if (have_stream && !atomic_load(&st.stop) &&
                cluster_retained_setup(js, st.replicas_made ? st.replicas_made : st.replicas) ==
                    0 &&
                !atomic_load(&st.stop) &&
                subscribe(js) == 0) {
                atomic_store(&st.ready, true);
                cluster_wake();
                return NULL;
            }
        }
        pthread_mutex_lock(&st.lock);
        if (atomic_load(&st.stop))
            break;
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_sec += 1;
        pthread_cond_timedwait(&st.cond, &st.lock, &t);
    }
    pthread_mutex_unlock(&st.lock);
    return NULL;
}

int cluster_stream_start(jsCtx *js)
{
    st.js = js;
    const struct config *cfg = &broker.cfg;
    snprintf(st.stream, sizeof st.stream, "%s", cluster_js_prefix());
    snprintf(st.filter, sizeof st.filter, "%s.>", cluster_js_prefix());
    snprintf(st.durable, sizeof st.durable, "%s", cluster_node_name());
    int servers = 0; /* the URLs in cluster_nats */
    for (const char *p = cfg->cluster_nats; *p;) {
        size_t n = strcspn(p, ", ");
        servers += n > 0;
        p += n;
        p += strspn(p, ", ");
    }
    if (servers < 1)
        servers = 1;
    st.replicas = cfg->cluster_stream_replicas ? (int)cfg->cluster_stream_replicas
                                               : (servers < 3 ? servers : 3);
    pthread_mutex_init(&st.lock, NULL);
    pthread_cond_init(&st.cond, NULL);
    if (pthread_create(&st.thread, NULL, setup_main, NULL) != 0) {
        log_error("cluster: cannot start the JetStream setup thread");
        return -1;
    }
    st.started = true;
    return 0;
}

void cluster_stream_stop(void)
{
    if (!st.started)
        return;
    pthread_mutex_lock(&st.lock);
    atomic_store(&st.stop, true);
    pthread_cond_signal(&st.cond);
    pthread_mutex_unlock(&st.lock);
    /* Not acknowledged: JetStream delivers them again after the restart. */
    for (size_t i = 0; i < st.w_len; i++)
        natsMsg_Destroy(st.w[i].nm);
    free(st.w);
    st.w = NULL;
    st.w_len = st.w_cap = 0;
}

void cluster_stream_join(void)
{
    if (!st.started)
        return;
    pthread_join(st.thread, NULL);
    if (st.sub)
        natsSubscription_Destroy(st.sub);
    cluster_retained_stop();
    pthread_cond_destroy(&st.cond);
    pthread_mutex_destroy(&st.lock);
    memset(&st, 0, sizeof st);
}

void cluster_stream_log(void)
{
    if (!st.started)
        return;
    pthread_mutex_lock(&st.lock);
    if (st.err_seq != st.err_logged) {
        st.err_logged = st.err_seq;
        log_warning("cluster: %s; trying again each second", st.err);
    }
    pthread_mutex_unlock(&st.lock);
    if (atomic_load(&st.ready) && !st.ready_logged) {
        st.ready_logged = true;
        cluster_js_st.stream_ready = true;
        log_notice("cluster: JetStream stream %s (%d replicas), consumer %s: QoS 1/2 cross "
                   "nodes at least once; retained messages cluster-wide in %s",
                   st.stream, st.replicas_made, st.durable, cluster_retained_prefix());
    }
}

static void ack_now(natsMsg *nm)
{
    natsMsg_Ack(nm, NULL);
}

bool cluster_stream_take(natsMsg *nm)
{
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, nm) == NATS_OK) {
        if (meta->NumDelivered > 1)
            cluster_js_st.js_redelivered++;
        /* The lag, from what the delivery's reply subject says anyway (no
         * request): the messages behind it, and its wait since it was
         * stored (by the server's clock: a clock ahead of ours reads 0). */
        cluster_js_st.stream_pending = meta->NumPending;
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        int64_t waited = ((int64_t)t.tv_sec * 1000000000 + t.tv_nsec - meta->Timestamp) / 1000000;
        cluster_js_st.stream_lag_ms = waited > 0 ? (uint64_t)waited : 0;
        jsMsgMetaData_Destroy(meta);
    }
    const char *node = NULL;
    if (natsMsgHeader_Get(nm, "Petrel-Node", &node) == NATS_OK && node &&
        strcmp(node, cluster_node_name()) == 0) {
        ack_now(nm); /* this node's own: routed here when it was published */
        return false;
    }
    struct message *m = cluster_msg_decode(nm, cluster_js_prefix());
    if (!m) {
        /* Hostile or broken: never routed, and not delivered again. */
        natsMsg_Term(nm, NULL);
        return false;
    }
    const char *id = NULL;
    bool has_id = natsMsgHeader_Get(nm, "Petrel-Id", &id) == NATS_OK && id && id[0];
    if (m->qos == 2 && has_id && store_inbox_seen(id) == 1) {
        cluster_js_st.js_duplicates++; /* queued when it came the first time */
    } else {
        cluster_js_st.js_received++;
        router_publish_from_cluster(m);
        if (m->qos == 2 && has_id)
            store_inbox_add(id); /* in the batch of the deliveries it queued */
    }
    message_unref(m);
    return cluster_stream_hold(nm);
}

bool cluster_stream_hold(natsMsg *nm)
{
    if (st.w_len == st.w_cap) {
        struct waiting *w = array_grow(st.w, &st.w_cap, st.w_len + 1, sizeof *w, 256);
        if (!w)
            return false; /* not acknowledged: delivered again */
        st.w = w;
    }
    st.w[st.w_len++] = (struct waiting){nm, store_wait_batch()};
    return true;
}

void cluster_stream_turn_end(uint64_t failed)
{
    if (!st.w_len)
        return;
    uint64_t durable = store_durable();
    size_t keep = 0;
    for (size_t i = 0; i < st.w_len; i++) {
        struct waiting *w = &st.w[i];
        if (failed && w->batch == failed) {
            natsMsg_Nak(w->nm, NULL); /* its deliveries were rolled back */
            natsMsg_Destroy(w->nm);
        } else if (w->batch <= durable) {
            ack_now(w->nm);
            natsMsg_Destroy(w->nm);
        } else {
            st.w[keep++] = *w;
        }
    }
    st.w_len = keep;
}
