/*
 * cluster_retained.c - retained messages cluster-wide (cluster_js.h): a
 * JetStream stream holding one message per topic, replayed into every
 * node's own retained store.
 *
 * The stream "<cluster_name>-retained" takes the subjects
 * "<cluster_name>-retained.<subject>" (the topic mapped as for routing)
 * with MaxMsgsPerSubject = 1: JetStream keeps the last retained publish of
 * each topic, an empty one (a delete) included.  The publishing node
 * retains the message locally as a single node does and sends it to the
 * stream through its outbox (a row of its own, "r." ids: cluster_outbox.c),
 * so a retained publish acknowledged to its client is not lost for the
 * cluster when the node dies.  Each node consumes the stream with a
 * durable consumer "<node_name>_retained", made anew at each start so that
 * it starts with everything the stream holds, and applies each message to
 * its retained store (retain_set: set, or clear for an empty payload), its
 * own included: all
 * nodes apply the same messages in the stream's order, so two nodes
 * retaining on one topic at once end with the same value, the one the
 * stream stored last.  A message is acknowledged once the batch that
 * stored it locally is durable (cluster_stream_hold): a node cut off gets
 * what it missed when the link is back, a node that was down gets every
 * value again at its start.
 */
#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "cluster.h"
#include "cluster_js.h"
#include "message.h"
#include "retain.h"

static struct {
    char stream[96], filter[100], durable[96];
    natsSubscription *sub;
    bool have_stream;
    bool fresh;          /* this start's consumer is a new one */
} rs;

const char *cluster_retained_prefix(void)
{
    return rs.stream;
}

void cluster_retained_init(void)
{
    snprintf(rs.stream, sizeof rs.stream, "%s-retained", broker.cfg.cluster_name);
    snprintf(rs.filter, sizeof rs.filter, "%s.>", rs.stream);
    snprintf(rs.durable, sizeof rs.durable, "%s_retained", cluster_node_name());
}

/* The stream, if missing: replicas as the QoS stream's, bounded by
 * cluster_stream_max_bytes (the oldest topics' values go beyond it), no
 * age limit. */
static int make_stream(jsCtx *js, int replicas)
{
    jsErrCode je = 0;
    jsStreamInfo *si = NULL;
    natsStatus s = js_GetStreamInfo(&si, js, rs.stream, NULL, &je);
    if (s == NATS_OK && si) {
        jsStreamInfo_Destroy(si);
        return 0;
    }
    if (je != JSStreamNotFoundErr) {
        cluster_stream_set_err("looking up the retained messages' stream", s, je);
        return -1;
    }
    s = cluster_stream_add(js, rs.stream, rs.filter, (int64_t)broker.cfg.cluster_stream_max_bytes,
                           0, 1, replicas, NULL, &je);
    if (s != NATS_OK && je == JSStreamNameExistErr)
        return 0; /* another node made it meanwhile */
    if (s != NATS_OK) {
        cluster_stream_set_err("making the retained messages' stream", s, je);
        return -1;
    }
    return 0;
}

int cluster_retained_setup(jsCtx *js, int replicas)
{
    if (rs.sub)
        return 0;
    if (!rs.have_stream)
        rs.have_stream = make_stream(js, replicas) == 0;
    if (!rs.have_stream)
        return -1;
    if (!rs.fresh) {
        /* Each start replays every topic's value: the consumer's position
         * is JetStream's, the store is this node's, and they part when the
         * store is replaced, restored from a backup or lost (a node back
         * with an empty petrel.db under its old name would otherwise get
         * only what is retained from now on). */
        jsErrCode je = 0;
        natsStatus s = js_DeleteConsumer(js, rs.stream, rs.durable, NULL, &je);
        if (s != NATS_OK && je != JSConsumerNotFoundErr) {
            cluster_stream_set_err("renewing the retained messages' consumer", s, je);
            return -1;
        }
        rs.fresh = true;
    }
    /* It starts with every topic's value the stream holds. */
    rs.sub = cluster_stream_consume(js, rs.stream, rs.filter, rs.durable, true,
                                    "subscribing to the retained messages' stream");
    return rs.sub ? 0 : -1;
}

void cluster_retained_stop(void)
{
    if (rs.sub)
        natsSubscription_Destroy(rs.sub);
    memset(&rs, 0, sizeof rs);
}

bool cluster_retained_take(natsMsg *nm)
{
    struct message *m = cluster_msg_decode(nm, rs.stream);
    if (!m) {
        /* Hostile or broken: never applied, and not delivered again. */
        natsMsg_Term(nm, NULL);
        return false;
    }
    /* Retained by being in this stream (a native NATS publish to it needs
     * no Petrel-Retain header). */
    m->retain = true;
    /* The expiry interval it carries counts from when it was published:
     * a node taking it in later (it was down) counts that time too. */
    jsMsgMetaData *meta = NULL;
    if (m->expires_at && natsMsg_GetMetaData(&meta, nm) == NATS_OK) {
        int64_t late = message_now_ms() - meta->Timestamp / 1000000;
        if (late > 0)
            m->expires_at -= late;
        jsMsgMetaData_Destroy(meta);
    }
    cluster_js_st.retained_received++;
    if (m->expires_at && message_expired(m, message_now_ms()) && m->payload_len) {
        /* Gone already: as a delete. */
        struct message *del = message_new(m->topic, m->topic_len, NULL, 0, m->qos, true);
        if (del)
            retain_set(del);
        message_unref(del);
    } else {
        retain_set(m);
    }
    message_unref(m);
    return cluster_stream_hold(nm);
}
