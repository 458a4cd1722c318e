/*
 * cluster_session_claim.c - a CONNECT's claim of its client id cluster-wide
 * (cluster_session.c says the whole design): the record read, the owner
 * asked to give the session up (or, silent, the record's header taken),
 * what came written into this node's store and, once durable, the record
 * set to this node by compare-and-set; then the CONNECT goes on.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster_session_int.h"
#include "conn.h"
#include "hashmap.h"
#include "log.h"
#include "message.h"
#include "mqtt_codec.h"
#include "protocol.h"
#include "router.h"
#include "session.h"
#include "session_state.h"
#include "store.h"

/* ---- asking another node ------------------------------------------------ */

/* Sends `req` to `node` and reads its answers into cl (a take) until the
 * end.  Returns the claim kind. */
static enum claim_kind ask_take(struct claim *cl, const uint8_t *req, size_t req_len)
{
    char subj[200], inbox[128];
    csess_node_subject(cl->owner, subj, sizeof subj);
    natsInbox *ib = NULL;
    natsSubscription *sub = NULL;
    if (natsInbox_Create(&ib) != NATS_OK)
        return K_FAIL;
    snprintf(inbox, sizeof inbox, "%s", (const char *)ib);
    natsInbox_Destroy(ib);
    if (natsConnection_SubscribeSync(&sub, cs.nc, inbox) != NATS_OK)
        return K_FAIL;
    enum claim_kind k = K_BROKEN;
    if (natsConnection_PublishRequest(cs.nc, subj, inbox, req, (int)req_len) != NATS_OK) {
        k = K_FAIL;
        goto out;
    }
    for (bool first = true;; first = false) {
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, sub, PART_WAIT_MS);
        if (s != NATS_OK || natsMsg_IsNoResponders(m)) {
            natsMsg_Destroy(m);
            /* Nobody there (a node that is down has no subscription), or
             * no word at all: the owner is gone.  Silence half way: the
             * owner still has everything, the client tries again. */
            k = first ? K_RECORD : K_BROKEN;
            break;
        }
        const uint8_t *d = (const uint8_t *)natsMsg_GetData(m);
        int dl = natsMsg_GetDataLength(m);
        char t = dl > 0 ? (char)d[0] : 0;
        bool end = true;
        if (t == 'N') {
            k = K_NONE;
        } else if (t == 'R') {
            k = K_REFUSED;
        } else if (t == 'B') {
            k = K_BUSY;
        } else if (t == 'H' && first && !cl->hdr) {
            cl->hdr = malloc((size_t)dl - 1 + 1);
            if (cl->hdr) {
                memcpy(cl->hdr, d + 1, (size_t)dl - 1);
                cl->hdr_len = (size_t)dl - 1;
                end = false;
            }
        } else if (t == 'D' && cl->hdr) {
            end = csess_chunks_add(&cl->chunks, d + 1, (size_t)dl - 1) != 0;
        } else if (t == 'E' && cl->hdr && dl == 1 + 8 + 4) {
            cl->from_seq = (int64_t)csess_get_u64(d + 1);
            uint32_t n = (uint32_t)d[9] << 24 | (uint32_t)d[10] << 16 | (uint32_t)d[11] << 8 |
                         d[12];
            k = n == cl->chunks.n ? K_TAKEN : K_BROKEN;
        }
        natsMsg_Destroy(m);
        if (end)
            break;
    }
out:
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return k;
}

/* ---- a claim ------------------------------------------------------------ */

void csess_claim_free(struct claim *cl)
{
    free(cl->id);
    free(cl->user);
    free(cl->hdr);
    free(cl->value);
    csess_chunks_free(&cl->chunks);
    free(cl);
}

/* Worker: read the record, and ask its owner. */
static void claim_get_work(struct job *j)
{
    struct claim *cl = (struct claim *)j;
    kvEntry *e = NULL;
    natsStatus s = kvStore_Get(&e, cs.kv, cl->key);
    if (s == NATS_NOT_FOUND) {
        cl->kind = K_LOCAL;
        return;
    }
    if (s != NATS_OK) {
        cl->kind = K_FAIL;
        atomic_store(&cs.kv_down_until, message_now_ms() + KV_DOWN_MS);
        return;
    }
    cl->rev = kvEntry_Revision(e);
    struct record r;
    int len = kvEntry_ValueLen(e);
    const uint8_t *v = kvEntry_Value(e);
    if (len <= 0 || csess_record_decode(v, (size_t)len, &r) != 0) {
        cl->kind = K_LOCAL; /* ended, or not a record: taken over by CAS */
        kvEntry_Destroy(e);
        return;
    }
    cl->epoch = r.epoch;
    snprintf(cl->owner, sizeof cl->owner, "%s", r.owner);
    if (strcmp(r.owner, cs.node) == 0) {
        cl->kind = K_LOCAL;
        kvEntry_Destroy(e);
        return;
    }
    /* The record's header, for the case the owner does not answer. */
    uint8_t *rh = r.hdr_len ? malloc(r.hdr_len) : NULL;
    size_t rh_len = r.hdr_len;
    if (rh)
        memcpy(rh, r.hdr, r.hdr_len);
    kvEntry_Destroy(e);
    /* 'T', id (u16 + bytes), user (u8 has, u16 + bytes), our node (u8 + bytes). */
    size_t nl = strlen(cs.node);
    size_t req_len = 1 + 2 + cl->id_len + 1 + 2 + cl->user_len + 1 + nl;
    uint8_t *req = malloc(req_len);
    if (!req) {
        free(rh);
        cl->kind = K_FAIL;
        return;
    }
    size_t o = 0;
    req[o++] = 'T';
    req[o++] = (uint8_t)(cl->id_len >> 8);
    req[o++] = (uint8_t)cl->id_len;
    memcpy(req + o, cl->id, cl->id_len);
    o += cl->id_len;
    req[o++] = cl->user != NULL;
    req[o++] = (uint8_t)(cl->user_len >> 8);
    req[o++] = (uint8_t)cl->user_len;
    if (cl->user_len)
        memcpy(req + o, cl->user, cl->user_len);
    o += cl->user_len;
    req[o++] = (uint8_t)nl;
    memcpy(req + o, cs.node, nl);
    cl->kind = ask_take(cl, req, req_len);
    free(req);
    if (cl->kind == K_RECORD) {
        free(cl->hdr);
        cl->hdr = rh;
        cl->hdr_len = rh_len;
        csess_chunks_free(&cl->chunks);
    } else {
        free(rh);
    }
}

/* Worker: a KV write found no answer (no responder: the bucket's leader
 * is being elected after a NATS server went down; for the claim's
 * compare-and-set also a timeout): nothing was written; after a pause the
 * same write may go again.  False once it has gone KV_NO_LEADER_TRIES
 * times, or when the node stops. */
bool csess_kv_pause(int *tries)
{
    if (++*tries >= KV_NO_LEADER_TRIES || atomic_load(&cs.stop))
        return false;
    struct timespec t = {0, KV_NO_LEADER_PAUSE_MS * 1000 * 1000};
    nanosleep(&t, NULL);
    return true;
}

/* Did the last KV write fail because the revision was not the expected
 * one (someone wrote meanwhile), rather than for want of an answer? */
static bool kv_conflict(void)
{
    natsStatus st;
    const char *t = nats_GetLastError(&st);
    return t && (strstr(t, "wrong last sequence") || strstr(t, "key exists"));
}

/* Worker: the record set to this node, if nobody changed it meanwhile.
 * Without an answer (no responder: JetStream electing the bucket's leader
 * after a server went; a timeout: the link moving to another server) the
 * same write goes again, KV_NO_LEADER_TRIES in all. */
static void claim_cas_work(struct job *j)
{
    struct claim *cl = (struct claim *)j;
    for (int tries = 0;;) {
        uint64_t rev = 0;
        natsStatus s = cl->rev ? kvStore_Update(&rev, cs.kv, cl->key, cl->value,
                                                (int)cl->value_len, cl->rev)
                               : kvStore_Create(&rev, cs.kv, cl->key, cl->value,
                                                (int)cl->value_len);
        cl->cas_ok = s == NATS_OK;
        if (cl->cas_ok) {
            cl->rev = rev;
            return;
        }
        cl->cas_conflict = kv_conflict();
        if (cl->cas_conflict)
            return;
        /* No answer (JetStream electing a leader after a server went,
         * the link moving to another server): the same write again. */
        snprintf(cl->cas_err, sizeof cl->cas_err, "%s", natsStatus_GetText(s));
        if (!csess_kv_pause(&tries))
            break;
    }
    atomic_store(&cs.kv_down_until, message_now_ms() + KV_DOWN_MS);
}

static void claim_next(struct claim *cl);

/* Loop: what came is made into this node's session. */
static int install(struct claim *cl)
{
    struct session_state_header h;
    const char *why = NULL;
    memset(&h, 0, sizeof h);
    if (session_state_header_decode(cl->hdr, cl->hdr_len, &h, &why) != 0 ||
        h.id_len != cl->id_len || memcmp(h.client_id, cl->id, cl->id_len) != 0) {
        log_warning("cluster: session of client id from node %s refused: %s", cl->owner,
                    why ? why : "another client id");
        session_state_header_free(&h);
        return -1;
    }
    /* What this node still holds of an older copy goes after what came. */
    struct chunk_list stale;
    csess_chunks_init(&stale);
    struct session *old = session_find(cl->id, cl->id_len);
    if (old) {
        if (old->conn)
            conn_disconnect(old->conn, MQTT_RC_SESSION_TAKEN_OVER,
                            "session taken over by a new connection", true);
        old = session_find(cl->id, cl->id_len);
    }
    if (old) {
        struct export_ctx ex = {&stale, NULL};
        if (session_state_export(old, 0, CHUNK_MAX, NULL, csess_emit_chunk, &ex) < 0) {
            csess_chunks_free(&stale);
            session_state_header_free(&h);
            return -1;
        }
        csess_destroy_quietly(old);
    }
    struct session *s = session_create(cl->id, cl->id_len, h.persistent);
    if (!s || session_state_apply_header(s, &h) != 0) {
        if (s)
            csess_destroy_quietly(s);
        csess_chunks_free(&stale);
        session_state_header_free(&h);
        return -1;
    }
    cl->installed = true;
    if (cl->kind == K_TAKEN)
        csess_marks_start(s); /* against the old node's rest (adopt_in) */
    long n = 0;
    for (struct chunk *c = cl->chunks.head; c; c = c->next) {
        long k = session_state_import(s, c->data, c->len, true, NULL, NULL, &why);
        if (k < 0)
            log_warning("cluster: deliveries of a session from node %s refused: %s", cl->owner,
                        why);
        else
            n += k;
    }
    for (struct chunk *c = stale.head; c; c = c->next) {
        long k = session_state_import(s, c->data, c->len, false, NULL, NULL, &why);
        if (k > 0)
            n += k;
    }
    csess_chunks_free(&stale);
    if (cl->kind == K_RECORD && h.will && !cl->clean) {
        /* The owner went down with the client's connection, whose will
         * nobody published: it goes now. */
        router_publish(h.will, NULL);
        cs.st.wills_from_record++;
    }
    session_state_header_free(&h);
    if (cl->kind == K_TAKEN) {
        cs.st.taken++;
        cs.st.deliveries_taken += (uint64_t)n;
    } else {
        cs.st.from_record++;
    }
    log_notice("cluster: session of client %s %s node %s (%ld deliveries)", s->log_id,
               cl->kind == K_TAKEN ? "handed over by" : "started from the record; its owner,",
               cl->owner, n);
    return 0;
}

void csess_claim_refuse(struct claim *cl, const char *why)
{
    if (cl->c) {
        protocol_claimed(cl->c, false, why);
    }
    claim_next(cl);
}

/* Loop: the header of a record (K_RECORD) decodes, and names cl's id. */
static bool record_header_ok(const struct claim *cl)
{
    struct session_state_header h;
    const char *why = NULL;
    memset(&h, 0, sizeof h);
    bool ok = session_state_header_decode(cl->hdr, cl->hdr_len, &h, &why) == 0 &&
              h.id_len == cl->id_len && memcmp(h.client_id, cl->id, cl->id_len) == 0;
    session_state_header_free(&h);
    return ok;
}

/* Loop: the record read, the owner asked. */
void csess_claim_get_done(struct job *j)
{
    struct claim *cl = (struct claim *)j;
    if (!cs.on) {
        csess_claim_free(cl);
        return;
    }
    switch (cl->kind) {
    case K_FAIL:
        /* The directory cannot be reached: the node serves the client
         * from what it has, as alone. */
        cs.st.unclaimed++;
        if (cl->c)
            protocol_claimed(cl->c, true, NULL);
        claim_next(cl);
        return;
    case K_BROKEN:
        cs.st.failed++;
        csess_claim_refuse(cl, "the session's node stopped answering during its hand-over");
        return;
    case K_REFUSED:
        csess_claim_refuse(cl, "the client id belongs to another user's session");
        return;
    case K_BUSY:
        cs.st.failed++;
        csess_claim_refuse(cl, "the session is being taken over on another node");
        return;
    default:
        break;
    }
    if (cl->kind == K_RECORD && cl->hdr && !record_header_ok(cl)) {
        /* The record names an owner that does not answer and a header
         * that does not decode (or another id's): not a session anyone
         * holds; it is overwritten by this claim's compare-and-set.
         * (Refusing would lock the client id out for good.) */
        log_warning("cluster: record %s in KV bucket %s does not decode: overwritten",
                    cl->key, cs.bucket);
        free(cl->hdr);
        cl->hdr = NULL;
        cl->hdr_len = 0;
        cl->kind = K_NONE;
    }
    if ((cl->kind == K_TAKEN || cl->kind == K_RECORD) && !cl->clean && cl->hdr &&
        install(cl) != 0) {
        cs.st.failed++;
        csess_claim_refuse(cl, "the session from another node could not be taken in");
        return;
    }
    if (cl->clean) {
        struct session *old = session_find(cl->id, cl->id_len);
        if (old && !old->conn)
            csess_destroy_quietly(old);
    }
    struct session *s = session_find(cl->id, cl->id_len);
    size_t hl = 0;
    uint8_t *hdr = s ? csess_header_of(s, &hl) : csess_header_empty(cl->id, cl->id_len, &hl);
    bool moved = cl->kind != K_LOCAL;
    const char *from = cl->kind == K_TAKEN ? cl->owner : "";
    if (!moved) {
        struct owned *o = csess_owned_get(cl->id, cl->id_len, false);
        from = o ? o->from : "";
    }
    if (hdr)
        cl->value = csess_record_encode(cs.node, cl->epoch + (moved ? 1 : 0), from,
                                  cl->kind == K_TAKEN ? cl->from_seq : 0, hdr, hl,
                                  &cl->value_len);
    free(hdr);
    if (!cl->value) {
        csess_claim_refuse(cl, "out of memory");
        return;
    }
    cl->job.work = claim_cas_work;
    cl->job.done = csess_claim_cas_done;
    cl->batch = store_wait_batch();
    if (cl->batch && cl->batch > store_durable()) {
        cl->wait_next = cs.durable_wait; /* the CAS once it is durable */
        cs.durable_wait = cl;
        return;
    }
    csess_post(&cl->job);
}

/* Loop: the record is set (or someone else's). */
void csess_claim_cas_done(struct job *j)
{
    struct claim *cl = (struct claim *)j;
    if (!cs.on) {
        csess_claim_free(cl);
        return;
    }
    if (!cl->cas_ok && !cl->cas_conflict && cl->kind == K_LOCAL) {
        /* The record names this node already (or none): the session is
         * ours either way; only its record could not be written now (it is
         * written again when the session changes). */
        cs.st.unclaimed++;
        log_warning("cluster: the session record of client %s could not be written (%s); "
                    "the session stays this node's", log_str(cl->id, cl->id_len), cl->cas_err);
        if (cl->c)
            protocol_claimed(cl->c, true, NULL);
        claim_next(cl);
        return;
    }
    if (!cl->cas_ok) {
        if (!cl->cas_conflict)
            log_warning("cluster: the session record of client %s could not be set to this node "
                        "(%s)", log_str(cl->id, cl->id_len), cl->cas_err);
        if (cl->installed) {
            struct session *s = session_find(cl->id, cl->id_len);
            if (s && !s->conn)
                csess_destroy_quietly(s);
        }
        if (cl->cas_conflict && ++cl->tries < CLAIM_TRIES) {
            /* The record changed between our read and our set: the old
             * owner's own last write (its client just connected or left),
             * or another node's claim.  Read it again, from the start. */
            cl->installed = false;
            cl->rev = cl->epoch = 0;
            cl->from_seq = 0;
            free(cl->hdr);
            cl->hdr = NULL;
            cl->hdr_len = 0;
            free(cl->value);
            cl->value = NULL;
            csess_chunks_free(&cl->chunks);
            cl->job.work = claim_get_work;
            cl->job.done = csess_claim_get_done;
            csess_post(&cl->job);
            return;
        }
        cs.st.lost++;
        csess_claim_refuse(cl, "the session was taken by another node at the same time");
        return;
    }
    csess_given_end(cl->id, cl->id_len); /* ours again */
    struct owned *o = csess_owned_get(cl->id, cl->id_len, true);
    if (o) {
        o->rev = cl->rev;
        o->epoch = cl->epoch + (cl->kind == K_LOCAL ? 0 : 1);
        o->ended = false;
        if (cl->kind == K_TAKEN) {
            snprintf(o->from, sizeof o->from, "%s", cl->owner);
            o->from_seq = cl->from_seq;
        } else if (cl->kind != K_LOCAL) {
            o->from[0] = '\0';
            o->from_seq = 0;
        }
    }
    if (cl->c)
        protocol_claimed(cl->c, true, NULL); /* binds the session; marks it changed */
    claim_next(cl);
}

/* The claim is over: the next one of its id starts. */
static void claim_next(struct claim *cl)
{
    struct claim *b = cl->behind;
    if (b)
        hashmap_put(cs.claiming, b->id, b->id_len, b);
    else
        hashmap_remove(cs.claiming, cl->id, cl->id_len);
    csess_claim_free(cl);
    if (b)
        csess_post(&b->job);
}

int csess_claim(struct conn *c, const char *id, size_t id_len, bool clean, const char *user,
                 size_t user_len)
{
    if (!cs.on || !atomic_load(&cs.ready) || !cluster_link_up() ||
        message_now_ms() < atomic_load(&cs.kv_down_until)) {
        if (cs.on)
            cs.st.unclaimed++;
        return 0; /* alone, or cut off: the node's own session */
    }
    struct claim *cl = calloc(1, sizeof *cl);
    if (!cl)
        return 0;
    cl->job.work = claim_get_work;
    cl->job.done = csess_claim_get_done;
    cl->c = c;
    cl->id = malloc(id_len + 1);
    cl->id_len = id_len;
    cl->clean = clean;
    csess_chunks_init(&cl->chunks);
    if (user) {
        cl->user = malloc(user_len + 1);
        cl->user_len = user_len;
        if (cl->user)
            memcpy(cl->user, user, user_len);
    }
    if (!cl->id || (user && !cl->user)) {
        csess_claim_free(cl);
        return 0;
    }
    memcpy(cl->id, id, id_len);
    cl->id[id_len] = '\0';
    csess_key_of(id, id_len, cl->key);
    cs.st.claims++;
    struct claim *first = hashmap_get(cs.claiming, id, id_len);
    if (first) {
        while (first->behind)
            first = first->behind;
        first->behind = cl;
        return 1;
    }
    if (hashmap_put(cs.claiming, cl->id, id_len, cl) < 0) {
        csess_claim_free(cl);
        return 0;
    }
    csess_post(&cl->job);
    return 1;
}

void csess_claim_abort(struct conn *c, const char *id, size_t id_len)
{
    for (struct claim *cl = hashmap_get(cs.claiming, id, id_len); cl; cl = cl->behind)
        if (cl->c == c)
            cl->c = NULL; /* it runs to its end; nobody is told */
}
