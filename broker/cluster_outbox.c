/*
 * cluster_outbox.c - QoS 1/2 messages on their way from this node into the
 * cluster's JetStream stream (cluster_js.h).
 *
 * A message is in one of three places:
 *   pend      routed this turn; its outbox row is in a batch not yet
 *             durable.  Published once the batch is (cluster_outbox_turn_end),
 *             dropped with it when it rolled back (the publisher was not
 *             acknowledged and sends it again).
 *   in flight published, JetStream's acknowledgement awaited (at most
 *             CLUSTER_JS_INFLIGHT): the row is deleted when it comes, kept
 *             when JetStream refused or did not answer in time.
 *   the table only a row (NATS unreachable, too many in flight, a refusal,
 *             a restart): `backlog` is set and rows are read back in id order
 *             and published again while there is room, every turn the link
 *             is up and each second.
 * A retained message also has a row of its own for the retained messages'
 * stream (cluster_retained.c), whatever its QoS, told apart by its id.
 * The rows are counted (messages, bytes) so that a node cut off from NATS
 * holds at most cluster_outbox_max_bytes; beyond, a QoS 1/2 message reaches
 * only this node's subscribers (counted in outbox_full, a 5.0 publisher
 * whose message no local queue took hears 0x97).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "array_grow.h"
#include "broker.h"
#include "cluster.h"
#include "cluster_js.h"
#include "cluster_subject.h"
#include "hashmap.h"
#include "log.h"
#include "message.h"
#include "store.h"
#include "store_outbox.h"
#include "turn.h"

struct cluster_js_stats cluster_js_st;

#define ID_MAX 48
/* In flight after a refusal, until JetStream stores one again: while it
 * elects a leader, 4,096 messages refused each second would only add load. */
#define PROBE_INFLIGHT 16

struct pend {
    struct message *m;
    uint64_t batch;
    int64_t row;
    uint32_t bytes;
    char id[ID_MAX];
};

struct flight {
    int64_t row;
    uint32_t bytes;
};

/* An acknowledgement from JetStream, handed from a libnats thread. */
struct ack {
    char id[ID_MAX];
    bool ok;
};

static struct {
    bool on;
    int64_t next_row;
    int64_t durable_row;     /* rows up to it are committed: the scan's end */
    struct pend *pend;
    size_t pend_len, pend_cap;
    struct hashmap *flights; /* id -> struct flight */
    bool backlog;
    bool hold;               /* JetStream refused one: wait for the next tick */
    bool probing;            /* ... and then send a few until one is stored */
    int64_t scan_after;
    struct ack *acks;        /* guarded by acks_lock */
    size_t acks_len, acks_cap;
    struct event *tick;
    struct log_ratelimit full_log;
    char subj[CLUSTER_SUBJECT_MAX];
} ob;

/* Guards ob.acks, acks_len and acks_cap.  Outside `ob` and never destroyed:
 * libnats may call the acknowledgement handler late (cluster_close.c). */
static pthread_mutex_t acks_lock = PTHREAD_MUTEX_INITIALIZER;

static void tick_cb(evutil_socket_t fd, short what, void *arg);

/* Row `row` is committed and not on its way: the backlog's scan must
 * reach it again. */
static void republish_from(int64_t row)
{
    ob.backlog = true;
    if (ob.scan_after >= row)
        ob.scan_after = row - 1;
}

int cluster_outbox_start(void)
{
    ob.flights = hashmap_new();
    ob.tick = event_new(broker.base, -1, EV_PERSIST, tick_cb, NULL);
    if (!ob.flights || !ob.tick) {
        log_error("cluster: out of memory");
        return -1;
    }
    /* Called before store_load: the store is open and its rows are what
     * the last run left. */
    int64_t rows, bytes, max_id;
    if (store_outbox_totals(&rows, &bytes, &max_id) != 0) {
        log_error("cluster: cannot read the cluster outbox");
        return -1;
    }
    ob.next_row = max_id + 1;
    ob.durable_row = max_id;
    cluster_js_st.outbox_messages = (uint64_t)rows;
    cluster_js_st.outbox_bytes = (uint64_t)bytes;
    ob.backlog = rows > 0;
    if (rows > 0)
        log_notice("cluster: %" PRId64 " messages (%" PRId64 " bytes) left in the outbox by the "
                   "last run: published again", rows, bytes);
    struct timeval one = {1, 0};
    event_add(ob.tick, &one);
    ob.on = true;
    return 0;
}

static void free_flight(void *value, void *arg)
{
    (void)arg;
    free(value);
}

void cluster_outbox_stop(void)
{
    if (!ob.on && !ob.flights)
        return;
    /* Publishes JetStream has not acknowledged: their rows stay and are
     * published again at the next start; libnats gives the messages back
     * (it would not free them with the context). */
    jsCtx *js = cluster_js();
    natsMsgList pending = {0};
    /* (libnats 3.4.1 crashes on it before the context's first publish.) */
    if (js && cluster_js_st.js_sent > 0 && js_PublishAsyncGetPendingList(&pending, js) == NATS_OK)
        natsMsgList_Destroy(&pending);
    for (size_t i = 0; i < ob.pend_len; i++)
        message_unref(ob.pend[i].m);
    free(ob.pend);
    if (ob.flights) {
        hashmap_foreach(ob.flights, free_flight, NULL);
        hashmap_free(ob.flights);
    }
    if (ob.tick)
        event_free(ob.tick);
    pthread_mutex_lock(&acks_lock);
    free(ob.acks);
    memset(&ob, 0, sizeof ob);
    pthread_mutex_unlock(&acks_lock);
}

/* "r." starts the id of a row for the retained messages' stream; the
 * others start with the boot stamp's hex digits. */
static bool is_retained_row(const char *id)
{
    return id[0] == 'r' && id[1] == '.';
}

static bool add(const struct message *m, bool retained_row)
{
    if (!ob.on)
        return true;
    uint32_t bytes = store_outbox_bytes(m);
    uint64_t max = broker.cfg.cluster_outbox_max_bytes;
    if (max && cluster_js_st.outbox_bytes + bytes > max) {
        cluster_js_st.outbox_full++;
        long n = log_ratelimit_check(&ob.full_log, 10);
        if (n >= 0)
            log_warning("cluster: outbox full (%" PRIu64 " messages, %" PRIu64 " bytes, "
                        "cluster_outbox_max_bytes): a QoS %u message on '%s' reaches this "
                        "node's subscribers only%s", cluster_js_st.outbox_messages,
                        cluster_js_st.outbox_bytes, m->qos, log_str(m->topic, m->topic_len),
                        log_suppressed(n));
        return false;
    }
    if (ob.pend_len == ob.pend_cap) {
        struct pend *p = array_grow(ob.pend, &ob.pend_cap, ob.pend_len + 1, sizeof *p, 256);
        if (!p) {
            cluster_js_st.outbox_full++;
            log_error("cluster: out of memory: a message stays on this node");
            return false;
        }
        ob.pend = p;
    }
    struct pend *p = &ob.pend[ob.pend_len];
    p->row = ob.next_row++;
    p->bytes = bytes;
    /* "<this start's stamp>.<row>" ("r." before it for the retained
     * stream): unique across restarts, and kept in the row for the
     * publishes again. */
    snprintf(p->id, sizeof p->id, "%s%s.%" PRId64, retained_row ? "r." : "", cluster_boot(),
             p->row);
    /* A failed write dooms the turn's batch: the publisher is not
     * acknowledged, and the entry goes with the batch. */
    store_outbox_add(p->row, p->id, m);
    p->batch = store_wait_batch();
    p->m = message_ref((struct message *)m);
    if (!retained_row) /* routed after this: the same id on every node */
        p->m->xid = cluster_xid(p->id);
    ob.pend_len++;
    cluster_js_st.outbox_messages++;
    cluster_js_st.outbox_bytes += bytes;
    return true;
}

bool cluster_outbox_add(const struct message *m)
{
    return add(m, false);
}

bool cluster_outbox_add_retained(const struct message *m)
{
    bool ok = add(m, true);
    if (ok && ob.on)
        cluster_js_st.retained_sent++;
    return ok;
}

/* Publishes a committed row's message.  False when it must wait in the
 * table (no link, too many in flight, out of memory, a refusal). */
static bool publish(const struct message *m, const char *id, int64_t row, uint32_t bytes)
{
    jsCtx *js = cluster_js();
    if (!js || ob.hold || !cluster_link_up() || !cluster_js_st.stream_ready ||
        hashmap_count(ob.flights) >= (ob.probing ? PROBE_INFLIGHT : CLUSTER_JS_INFLIGHT))
        return false;
    if (hashmap_get(ob.flights, id, strlen(id)))
        return true; /* already on its way */
    const char *prefix = is_retained_row(id) ? cluster_retained_prefix() : cluster_js_prefix();
    long n = cluster_subject_from_topic(prefix, m->topic, m->topic_len, false, ob.subj,
                                        sizeof ob.subj);
    if (n < 0) {
        /* No subject can carry it: it stays local, as over core NATS. */
        store_outbox_delete(row);
        cluster_js_st.outbox_messages--;
        cluster_js_st.outbox_bytes -= bytes;
        return true;
    }
    natsMsg *nm = cluster_msg_new(ob.subj, m, id);
    struct flight *f = malloc(sizeof *f);
    if (!nm || !f || hashmap_put(ob.flights, id, strlen(id), f) != 0) {
        natsMsg_Destroy(nm);
        free(f);
        return false;
    }
    f->row = row;
    f->bytes = bytes;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = id;                       /* Nats-Msg-Id: JetStream de-duplicates */
    po.MaxWait = CLUSTER_JS_PUB_WAIT_MS; /* then the handler hears a timeout */
    natsStatus s = js_PublishMsgAsync(js, &nm, &po);
    if (s != NATS_OK) {
        natsMsg_Destroy(nm);
        free(hashmap_remove(ob.flights, id, strlen(id)));
        return false;
    }
    cluster_js_st.js_sent++;
    return true;
}

void cluster_outbox_acked(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    (void)closure;
    const char *id = NULL;
    if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) != NATS_OK || !id || strlen(id) >= ID_MAX) {
        natsMsg_Destroy(msg);
        return; /* not one of the outbox's */
    }
    pthread_mutex_lock(&acks_lock);
    if (cluster_closing()) {
        /* The row stays: published again at the next start. */
        pthread_mutex_unlock(&acks_lock);
        natsMsg_Destroy(msg);
        return;
    }
    if (ob.acks_len == ob.acks_cap) {
        struct ack *a = array_grow(ob.acks, &ob.acks_cap, ob.acks_len + 1, sizeof *a, 256);
        if (!a) {
            /* Its row stays: published again after a restart. */
            pthread_mutex_unlock(&acks_lock);
            natsMsg_Destroy(msg);
            return;
        }
        ob.acks = a;
    }
    struct ack *a = &ob.acks[ob.acks_len++];
    snprintf(a->id, sizeof a->id, "%s", id);
    a->ok = pa != NULL && pae == NULL;
    bool first = ob.acks_len == 1;
    pthread_mutex_unlock(&acks_lock);
    natsMsg_Destroy(msg);
    if (first)
        cluster_wake();
}

/* JetStream's answers: a stored message's row goes (in this turn's
 * transaction, with whatever else it deletes); a refused one waits in
 * the table for the backlog. */
static void take_acks(void)
{
    pthread_mutex_lock(&acks_lock);
    struct ack *acks = ob.acks;
    size_t n = ob.acks_len;
    ob.acks = NULL;
    ob.acks_len = ob.acks_cap = 0;
    pthread_mutex_unlock(&acks_lock);
    for (size_t i = 0; i < n; i++) {
        struct flight *f = hashmap_remove(ob.flights, acks[i].id, strlen(acks[i].id));
        if (!f)
            continue;
        if (acks[i].ok) {
            store_outbox_delete(f->row);
            ob.probing = false;
            cluster_js_st.js_stored++;
            cluster_js_st.outbox_messages--;
            cluster_js_st.outbox_bytes -= f->bytes;
        } else {
            /* (No responders while JetStream elects a leader, a timeout:
             * published again at the next tick, not at once.) */
            cluster_js_st.js_retried++;
            republish_from(f->row);
            ob.hold = true;
            ob.probing = true;
        }
        free(f);
    }
    free(acks);
}

static bool scan_failed;

static void scan_row(int64_t id, const char *petrel_id, struct message *m, uint32_t bytes,
                     void *arg)
{
    (void)arg;
    if (scan_failed)
        return;
    if (publish(m, petrel_id, id, bytes))
        ob.scan_after = id;
    else
        scan_failed = true; /* the next scan starts with this row */
}

/* Publishes the rows of the table after scan_after that are not in
 * flight, in id order, while there is room.  Every row that fails (here,
 * at the end of its turn, or refused by JetStream later) moves scan_after
 * back before it, so a scan that reaches the end has seen every row not
 * in flight: the backlog is then empty. */
static void publish_backlog(void)
{
    for (int pass = 0; pass < 2 && ob.backlog; pass++) {
        if (ob.hold || !cluster_link_up() || !cluster_js_st.stream_ready)
            return;
        size_t limit = ob.probing ? PROBE_INFLIGHT : CLUSTER_JS_INFLIGHT;
        size_t inflight = hashmap_count(ob.flights);
        if (inflight >= limit)
            return;
        size_t room = limit - inflight;
        scan_failed = false;
        int want = (int)room;
        int n = store_outbox_scan(ob.scan_after, ob.durable_row, want, scan_row, NULL);
        if (n < 0) {
            ob.scan_after = 0;
            return;
        }
        if (scan_failed)
            return;
        if (n < want) {
            /* The end: everything committed is published or in flight. */
            ob.scan_after = 0;
            ob.backlog = false;
        }
    }
}

void cluster_outbox_run(void)
{
    if (!ob.on)
        return;
    take_acks();
    publish_backlog();
}

void cluster_outbox_turn_end(uint64_t failed)
{
    if (!ob.on)
        return;
    uint64_t durable = store_durable();
    size_t keep = 0;
    for (size_t i = 0; i < ob.pend_len; i++) {
        struct pend *p = &ob.pend[i];
        if (failed && p->batch == failed) {
            /* The row is gone with its batch. */
            cluster_js_st.outbox_messages--;
            cluster_js_st.outbox_bytes -= p->bytes;
            message_unref(p->m);
        } else if (p->batch <= durable) {
            if (p->row > ob.durable_row)
                ob.durable_row = p->row;
            if (!publish(p->m, p->id, p->row, p->bytes))
                republish_from(p->row);
            message_unref(p->m);
        } else {
            ob.pend[keep++] = *p;
        }
    }
    ob.pend_len = keep;
    take_acks();
    publish_backlog();
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    static unsigned ticks;
    turn_begin();
    ob.hold = false;
    cluster_outbox_run();
    if (++ticks % 60 == 0)
        store_inbox_prune(); /* one statement a minute */
    turn_schedule();
}
