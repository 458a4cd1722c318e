/*
 * cluster_session_give.c - the owner's side (cluster_session.c says the
 * whole design): another node takes a session over ('T': the connection
 * here ends with 0x8E, the header and every delivery go to the taker), or
 * hands back what its stale copy still held ('A': queued here after this
 * node's own, answered once durable).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl_session.h"
#include "auth.h"
#include "cluster_session_int.h"
#include "conn.h"
#include "hashmap.h"
#include "log.h"
#include "message.h"
#include "mqtt_codec.h"
#include "session.h"
#include "session_state.h"
#include "store.h"

/* ---- the owner's side: give a session up, take a stale copy's rest ------ */

static void reply(const char *subject, const uint8_t *data, size_t len)
{
    if (subject && subject[0])
        natsConnection_Publish(cs.nc, subject, data, (int)len);
}

void csess_reply1(const char *subject, char t)
{
    uint8_t b = (uint8_t)t;
    reply(subject, &b, 1);
}

struct sender {
    const char *subject;
    uint32_t n;
    uint8_t *buf;
    size_t cap;
};

static int send_chunk(const uint8_t *chunk, size_t len, void *arg)
{
    struct sender *sd = arg;
    if (len + 1 > sd->cap) {
        uint8_t *b = realloc(sd->buf, len + 1);
        if (!b)
            return -1;
        sd->buf = b;
        sd->cap = len + 1;
    }
    sd->buf[0] = 'D';
    memcpy(sd->buf + 1, chunk, len);
    reply(sd->subject, sd->buf, len + 1);
    sd->n++;
    return 0;
}

/* Parses a u16-length string at *o; false past the end. */
static bool take_str(const uint8_t *d, size_t len, size_t *o, const uint8_t **s, size_t *sl)
{
    if (*o + 2 > len)
        return false;
    *sl = (size_t)d[*o] << 8 | d[*o + 1];
    *o += 2;
    if (*o + *sl > len)
        return false;
    *s = d + *o;
    *o += *sl;
    return true;
}

static void given_set(const char *id, size_t id_len, const char *to)
{
    struct given *g = hashmap_get(cs.given, id, id_len);
    if (!g) {
        g = malloc(sizeof *g);
        if (!g || hashmap_put(cs.given, id, id_len, g) < 0) {
            free(g);
            return;
        }
    }
    g->until_ms = message_now_ms() + GIVEN_HOLD_MS;
    snprintf(g->to, sizeof g->to, "%s", to);
}

void csess_given_end(const char *id, size_t id_len)
{
    free(cs.given ? hashmap_remove(cs.given, id, id_len) : NULL);
}

/* 'T': another node takes the session over. */
static void give_up(const uint8_t *d, size_t len, const char *rsubj)
{
    size_t o = 1, id_len, ul;
    const uint8_t *id, *user;
    if (!take_str(d, len, &o, &id, &id_len) || o >= len)
        return;
    bool has_user = d[o++] != 0;
    if (!take_str(d, len, &o, &user, &ul) || o >= len)
        return;
    size_t nl = d[o++];
    if (o + nl != len || nl >= NODE_MAX)
        return;
    char who[NODE_MAX];
    for (size_t i = 0; i < nl; i++) /* for the log: printable only */
        who[i] = d[o + i] >= 0x21 && d[o + i] < 0x7f ? (char)d[o + i] : '_';
    who[nl] = '\0';
    if (hashmap_get(cs.claiming, id, id_len)) {
        csess_reply1(rsubj, 'B');
        return;
    }
    struct session *s = session_find((const char *)id, id_len);
    if (!s) {
        csess_reply1(rsubj, 'N');
        return;
    }
    struct given *g = hashmap_get(cs.given, id, id_len);
    if (g && g->until_ms > message_now_ms() && strcmp(g->to, who) != 0) {
        /* Handed to another node a moment ago: were it handed again,
         * both would hold it and this copy's rest would go to the last
         * one twice. */
        csess_reply1(rsubj, 'B');
        return;
    }
    /* Not ours from here: no write of the record may come between the
     * taker's read and its compare-and-set.  (If the taker never sets it,
     * the record still names this node, and a claim here takes it back.) */
    csess_owned_drop((const char *)id, id_len);
    if ((acl_enabled() || auth_current()) &&
        !acl_session_same_user(s, has_user ? (const char *)user : NULL, ul)) {
        csess_reply1(rsubj, 'R');
        return;
    }
    if (s->conn) {
        s->taking_over = true;
        char why[160];
        snprintf(why, sizeof why, "session taken over by a new connection on node %s", who);
        conn_disconnect(s->conn, MQTT_RC_SESSION_TAKEN_OVER, why, true);
        s = session_find((const char *)id, id_len);
        if (s)
            s->taking_over = false;
    }
    if (!s) { /* a clean session ends with its connection */
        csess_reply1(rsubj, 'N');
        return;
    }
    size_t hl = 0;
    uint8_t *hdr = session_state_header_encode(s, NULL, 0, &hl);
    uint8_t *hb = hdr ? malloc(hl + 1) : NULL;
    if (!hb) {
        free(hdr);
        return; /* no answer: the taker gives up, the client tries again */
    }
    hb[0] = 'H';
    memcpy(hb + 1, hdr, hl);
    reply(rsubj, hb, hl + 1);
    free(hb);
    free(hdr);
    csess_marks_start(s); /* what still reaches it here, by id: the taker skips its copies */
    struct sender sd = {rsubj, 0, NULL, 0};
    int64_t last = s->last_seq;
    long n = session_state_export(s, 0, CHUNK_MAX, NULL, send_chunk, &sd);
    free(sd.buf);
    if (n < 0)
        return;
    uint8_t e[13];
    e[0] = 'E';
    csess_put_u64(e + 1, (uint64_t)last);
    e[9] = (uint8_t)(sd.n >> 24);
    e[10] = (uint8_t)(sd.n >> 16);
    e[11] = (uint8_t)(sd.n >> 8);
    e[12] = (uint8_t)sd.n;
    reply(rsubj, e, sizeof e);
    natsConnection_Flush(cs.nc);
    given_set((const char *)id, id_len, who);
    cs.st.given++;
    log_notice("cluster: session of client %s handed to node %s (%ld deliveries)", s->log_id, who,
               n);
}

/* 'A': a stale copy's deliveries for a session this node owns. */
static void adopt_in(const uint8_t *d, size_t len, const char *rsubj)
{
    size_t o = 1, id_len;
    const uint8_t *id;
    if (!take_str(d, len, &o, &id, &id_len))
        return;
    struct session *s = session_find((const char *)id, id_len);
    struct owned *o2 = csess_owned_get((const char *)id, id_len, false);
    if (!o2 || o2->ended || hashmap_get(cs.claiming, id, id_len)) {
        csess_reply1(rsubj, 'X'); /* not this node's now: ask the record again */
        return;
    }
    if (!s) {
        csess_reply1(rsubj, 'K'); /* ended here: its messages go with it */
        return;
    }
    const char *why = NULL;
    long n = session_state_import(s, d + o, len - o, false, csess_marks_of(s) ? csess_have_xid : NULL, NULL,
                                  &why);
    if (n < 0) {
        /* (Any NATS client can send these in a loop: one line per 10 s.) */
        static struct log_ratelimit refused_log;
        long k = log_ratelimit_check(&refused_log, 10);
        if (k >= 0)
            log_warning("cluster: deliveries handed back for client %s refused: %s%s", s->log_id,
                        why, log_suppressed(k));
        csess_reply1(rsubj, 'K'); /* not decodable: asking again would not help */
        return;
    }
    cs.st.adopted += (uint64_t)n;
    size_t sl = strlen(rsubj);
    struct reply_wait *w = malloc(sizeof *w + sl + 1);
    if (!w)
        return; /* no answer: offered again */
    w->batch = store_wait_batch();
    memcpy(w->subject, rsubj, sl + 1);
    w->next = cs.replies;
    cs.replies = w;
}

bool cluster_session_take(natsMsg *nm)
{
    const uint8_t *d = (const uint8_t *)natsMsg_GetData(nm);
    int len = natsMsg_GetDataLength(nm);
    const char *rsubj = natsMsg_GetReply(nm);
    if (!cs.on || len < 1 || !rsubj)
        return false;
    if (d[0] == 'T')
        give_up(d, (size_t)len, rsubj);
    else if (d[0] == 'A')
        adopt_in(d, (size_t)len, rsubj);
    return false;
}
