/*
 * cluster_session_stale.c - a copy of a session that another node owns now
 * (cluster_session.c says the whole design): the watch of the bucket finds
 * it, its connection ends, after STALE_GRACE_MS its subscriptions go and
 * what it still holds goes to the owner; and the ids of what reached a
 * session being moved, by which the owner skips its copies.
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
#include "session.h"
#include "session_state.h"

/* ---- the ids of what reached a session being moved ---------------------- */

struct marks *csess_marks_of(const struct session *s)
{
    return cs.marks && hashmap_count(cs.marks) ? hashmap_get(cs.marks, &s, sizeof s) : NULL;
}

void csess_marks_start(struct session *s)
{
    struct marks *mk = csess_marks_of(s);
    if (!mk) {
        mk = calloc(1, sizeof *mk);
        if (!mk || hashmap_put(cs.marks, &s, sizeof s, mk) < 0) {
            free(mk);
            return;
        }
        mk->s = s;
    }
    mk->until = time(NULL) + MARK_KEEP_S;
}

void csess_marks_end(const struct session *s)
{
    struct marks *mk = cs.marks ? hashmap_remove(cs.marks, &s, sizeof s) : NULL;
    if (mk) {
        free(mk->v);
        free(mk);
    }
}

void cluster_session_delivered(struct session *s, const struct message *m)
{
    struct marks *mk = csess_marks_of(s);
    if (!mk || mk->n == MARK_MAX)
        return;
    if (mk->n == mk->cap) {
        size_t cap = mk->cap ? mk->cap * 2 : 256;
        struct mark *v = realloc(mk->v, cap * sizeof *v);
        if (!v)
            return;
        mk->v = v;
        mk->cap = cap;
    }
    mk->v[mk->n++] = (struct mark){s->last_seq, m->xid};
}

static uint64_t xid_of(struct session *s, int64_t seq, void *arg)
{
    (void)s;
    const struct marks *mk = ((struct export_ctx *)arg)->mk;
    size_t lo = 0, hi = mk ? mk->n : 0;
    while (lo < hi) { /* appended in seq order */
        size_t mid = (lo + hi) / 2;
        if (mk->v[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return mk && lo < mk->n && mk->v[lo].seq == seq ? mk->v[lo].xid : 0;
}

bool csess_have_xid(struct session *s, uint64_t xid, void *arg)
{
    (void)arg;
    const struct marks *mk = csess_marks_of(s);
    for (size_t i = 0; mk && i < mk->n; i++)
        if (mk->v[i].xid == xid)
            return true;
    return false;
}

struct expire_scan {
    struct marks *old[64];
    size_t n;
    time_t now;
};

static void expired_one(void *v, void *arg)
{
    struct marks *mk = v;
    struct expire_scan *sc = arg;
    if (mk->until < sc->now && sc->n < 64)
        sc->old[sc->n++] = mk;
}

/* (Few entries: only the sessions moved in the last MARK_KEEP_S.) */
void csess_marks_expire(void)
{
    if (!cs.marks || !hashmap_count(cs.marks))
        return;
    struct expire_scan sc = {.n = 0, .now = time(NULL)};
    hashmap_foreach(cs.marks, expired_one, &sc);
    for (size_t i = 0; i < sc.n; i++)
        csess_marks_end(sc.old[i]->s);
}

/* ---- a stale copy ------------------------------------------------------- */

static void adopt_done(struct job *j);

/* Worker: each chunk to the owner; a 'X' (not the owner) reads the record
 * again and tries its owner, once. */
static void adopt_work(struct job *j)
{
    struct adopt_job *a = (struct adopt_job *)j;
    a->result = -1;
    for (int tries = 0; tries < 2; tries++) {
        char subj[200];
        csess_node_subject(a->owner, subj, sizeof subj);
        bool again = false;
        struct chunk *c = a->chunks.head;
        for (; c; c = c->next) {
            size_t n = 1 + 2 + a->id_len + c->len;
            uint8_t *req = malloc(n);
            if (!req)
                return;
            req[0] = 'A';
            req[1] = (uint8_t)(a->id_len >> 8);
            req[2] = (uint8_t)a->id_len;
            memcpy(req + 3, a->id, a->id_len);
            memcpy(req + 3 + a->id_len, c->data, c->len);
            natsMsg *m = NULL;
            natsStatus s = natsConnection_Request(&m, cs.nc, subj, req, (int)n, 10000);
            free(req);
            const char *t = s == NATS_OK && !natsMsg_IsNoResponders(m) ? natsMsg_GetData(m) : NULL;
            char r = t && natsMsg_GetDataLength(m) == 1 ? t[0] : 0;
            natsMsg_Destroy(m);
            if (r == 'K')
                continue;
            if (r == 'X')
                again = true;
            break;
        }
        if (!c) {
            a->result = 1;
            return;
        }
        if (!again)
            return;
        /* The owner changed: read it again. */
        kvEntry *e = NULL;
        natsStatus s = kvStore_Get(&e, cs.kv, a->key);
        if (s == NATS_NOT_FOUND) {
            a->result = 0;
            return;
        }
        if (s != NATS_OK)
            return;
        struct record r;
        int len = kvEntry_ValueLen(e);
        if (len <= 0 || csess_record_decode(kvEntry_Value(e), (size_t)len, &r) != 0) {
            kvEntry_Destroy(e);
            a->result = 0; /* the session ended: nobody to give them to */
            return;
        }
        snprintf(a->owner, sizeof a->owner, "%s", r.owner);
        kvEntry_Destroy(e);
        if (strcmp(a->owner, cs.node) == 0)
            return; /* ours again: the loop sees it in the watch */
    }
}

void csess_adopt_free(struct adopt_job *a)
{
    if (cs.adopting && hashmap_get(cs.adopting, a->id, a->id_len) == a)
        hashmap_remove(cs.adopting, a->id, a->id_len);
    csess_chunks_free(&a->chunks);
    free(a);
}

static void adopt_done(struct job *j)
{
    struct adopt_job *a = (struct adopt_job *)j;
    if (!cs.on) {
        csess_adopt_free(a);
        return;
    }
    struct session *s = session_find(a->id, a->id_len);
    bool same = s == a->s && !hashmap_get(cs.claiming, a->id, a->id_len) &&
                !csess_owned_get(a->id, a->id_len, false);
    if (a->result < 0 && same) {
        a->job.next = (struct job *)cs.retry; /* at the next tick */
        cs.retry = a;
        return;
    }
    if (same && s && !s->conn) {
        if (a->result > 0)
            cs.st.handed_back += a->chunks.n;
        csess_destroy_quietly(s);
    }
    csess_adopt_free(a);
}

/* Loop: another node owns the session of s now. */
static void go_stale(struct session *s, const char *owner, bool handed_by_us, int64_t from_seq)
{
    size_t id_len = s->client_id_len;
    char *id = malloc(id_len + 1);
    if (!id)
        return;
    memcpy(id, s->client_id, id_len + 1);
    if (s->conn) {
        char why[160];
        snprintf(why, sizeof why, "session taken over on node %s", owner);
        s->taking_over = true;
        conn_disconnect(s->conn, MQTT_RC_SESSION_TAKEN_OVER, why, true);
        s = session_find(id, id_len);
        if (s)
            s->taking_over = false;
    }
    if (!s) {
        free(id);
        return;
    }
    session_drop_will(s);
    /* Nothing more is queued here. */
    while (s->subs) {
        struct subscription *sub = s->subs;
        if (session_unsubscribe(s, sub->filter, strlen(sub->filter)) != 1)
            break;
    }
    struct adopt_job *a = calloc(1, sizeof *a + id_len + 1);
    if (!a) {
        free(id);
        return;
    }
    a->job.work = adopt_work;
    a->job.done = adopt_done;
    a->s = s;
    a->id_len = id_len;
    memcpy(a->id, id, id_len + 1);
    free(id);
    csess_key_of(a->id, id_len, a->key);
    snprintf(a->owner, sizeof a->owner, "%s", owner);
    csess_chunks_init(&a->chunks);
    struct export_ctx ex = {&a->chunks, csess_marks_of(s)};
    long n = session_state_export(s, handed_by_us ? from_seq : 0, CHUNK_MAX,
                                  ex.mk ? xid_of : NULL, csess_emit_chunk, &ex);
    cs.st.stale++;
    if (n <= 0) {
        if (n == 0)
            csess_destroy_quietly(s);
        csess_adopt_free(a);
        return;
    }
    log_notice("cluster: session of client %s is node %s's now: %ld deliveries held here go to it",
               s->log_id, owner, n);
    hashmap_put(cs.adopting, a->id, a->id_len, a); /* (full: only a later copy twice) */
    csess_post(&a->job);
}

/* The subscriptions of a stale copy that the owner's record (h) no longer
 * has go: what the client unsubscribed there is not queued here during the
 * grace (and handed to the owner after it). */
static void stale_prune(struct session *s, const struct session_state_header *h)
{
    for (struct subscription *sub = s->subs, *next; sub; sub = next) {
        next = sub->next;
        bool kept = false;
        for (size_t i = 0; i < h->n_subs && !kept; i++)
            kept = h->subs[i].len == sub->len && memcmp(h->subs[i].filter, sub->filter, sub->len) == 0;
        if (!kept)
            session_unsubscribe(s, sub->filter, sub->len);
    }
}

/* Another node owns s now (r, whose header is h): its connection here ends
 * at once; the rest is sent after STALE_GRACE_MS (tick_cb: go_stale). */
static void stale_later(struct session *s, const struct record *r,
                        const struct session_state_header *h)
{
    size_t id_len = s->client_id_len;
    struct stale_wait *w = cs.stale;
    while (w && !(w->id_len == id_len && memcmp(w->id, s->client_id, id_len) == 0))
        w = w->next;
    struct adopt_job *a = hashmap_get(cs.adopting, s->client_id, id_len);
    if (w) {
        /* The session moved on again within the grace (A -> B -> C): the
         * rest goes to the last owner, but what this copy handed is what
         * the first change says (the later ones name another "from"; read
         * as "handed nothing", they would send everything again). */
        snprintf(w->owner, sizeof w->owner, "%s", r->owner);
    } else if (a && a->s == s) {
        /* Its rest is on its way already (adopt_work follows the owner
         * through 'X'): sent once. */
    } else {
        w = calloc(1, sizeof *w + id_len + 1);
        if (!w)
            return;
        w->id_len = id_len;
        memcpy(w->id, s->client_id, id_len);
        snprintf(w->owner, sizeof w->owner, "%s", r->owner);
        w->handed = strcmp(r->from, cs.node) == 0;
        w->from_seq = r->from_seq;
        w->due_ms = message_now_ms() + STALE_GRACE_MS;
        w->next = cs.stale;
        cs.stale = w;
    }
    stale_prune(s, h);
    if (s->conn) {
        char why[160];
        snprintf(why, sizeof why, "session taken over on node %s", r->owner);
        s->taking_over = true;
        char *id = malloc(id_len + 1);
        if (id)
            memcpy(id, s->client_id, id_len);
        conn_disconnect(s->conn, MQTT_RC_SESSION_TAKEN_OVER, why, true);
        s = id ? session_find(id, id_len) : NULL;
        if (s)
            s->taking_over = false;
        free(id);
    }
}

void csess_stale_run(void)
{
    int64_t now = message_now_ms();
    struct stale_wait **p = &cs.stale;
    while (*p) {
        struct stale_wait *w = *p;
        if (w->due_ms > now) {
            p = &w->next;
            continue;
        }
        *p = w->next;
        struct session *s = session_find(w->id, w->id_len);
        if (s && !hashmap_get(cs.claiming, w->id, w->id_len) &&
            !csess_owned_get(w->id, w->id_len, false))
            go_stale(s, w->owner, w->handed, w->from_seq);
        free(w);
    }
}

/* Loop: a record changed (or was there when the watch began). */
void csess_watch_done(struct job *j)
{
    struct watch_job *w = (struct watch_job *)j;
    if (!cs.on) {
        free(w);
        return;
    }
    if (!w->rev) { /* the watch is in place */
        if (!cs.ready_logged)
            log_notice("cluster: sessions cluster-wide in KV bucket %s", cs.bucket);
        cs.ready_logged = true;
        free(w);
        return;
    }
    struct record r;
    struct session_state_header h;
    memset(&h, 0, sizeof h);
    const char *why = NULL;
    if (w->len == 0 || csess_record_decode(w->value, w->len, &r) != 0 ||
        session_state_header_decode(r.hdr, r.hdr_len, &h, &why) != 0) {
        session_state_header_free(&h);
        free(w);
        return; /* an ended session, or not a record of ours */
    }
    const char *id = h.client_id;
    size_t id_len = h.id_len;
    char key[48];
    csess_key_of(id, id_len, key);
    if (strcmp(key, w->key) != 0) {
        /* Not the record of the id it names (claims read key_of(id)):
         * garbage, which must not end that id's session here. */
        session_state_header_free(&h);
        free(w);
        return;
    }
    if (strcmp(r.owner, cs.node) == 0) {
        /* Ours (our own write coming back, or at start). */
        struct owned *o = csess_owned_get(id, id_len, true);
        if (o && w->rev > o->rev && !o->writing) {
            o->rev = w->rev;
            o->epoch = r.epoch;
        }
    } else if (!hashmap_get(cs.claiming, id, id_len)) {
        csess_owned_drop(id, id_len);
        struct session *s = session_find(id, id_len);
        if (s)
            stale_later(s, &r, &h);
    }
    session_state_header_free(&h);
    free(w);
}
