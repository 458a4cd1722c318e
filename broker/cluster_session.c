/*
 * cluster_session.c - a client id is one session cluster-wide (cluster.h).
 *
 * Who holds a client id's session is written in a replicated JetStream
 * key-value bucket, "<cluster_name>-sessions", one key per client id
 * ("s." and a SHA-256 of the id), whose value is the session's record:
 * its owner node, an epoch counted up at each change of owner, the node it
 * was handed from with the last delivery handed, and the session's header
 * (session_state.h: persistence, expiry, subscriptions, will).  Every
 * change of owner is a compare-and-set on the key's revision.
 *
 * A CONNECT, once its login is decided, waits for claim() (protocol.h):
 *   1. the record is read;
 *   2. no record, or this node owns it: the session is this node's;
 *      another owner B: B is asked over NATS ("<cluster>-sess.<B>") to
 *      give the session up: B ends the client's connection there (5.0:
 *      DISCONNECT 0x8E) and sends the header and every delivery, in flight
 *      and queued (those only in its store too), in chunks; no answer (B
 *      is down): the session starts from the record's header;
 *   3. what came is written into this node's store (the turn's batch) and,
 *      once that batch is durable, the record is set to this node by
 *      compare-and-set (so: this node commits before B lets go);
 *   4. the CONNECT goes on (protocol_claimed): session present.
 * Every node watches the bucket.  A record whose owner became another node
 * makes a node's own copy of that session stale: its connection (if any)
 * ends, its subscriptions go (nothing more is queued to it), and what it
 * still holds that the new owner lacks - everything after the last
 * delivery it handed (the record says which), or everything if it handed
 * nothing (it was down or cut off) - is sent to the owner ("adopt"), which
 * queues it after its own and answers once that is durable; then the copy
 * is destroyed.  A node that was down does this when it is back (the
 * watch gives every record at its start).
 *
 * The owner writes the record again (compare-and-set, asynchronously) when
 * the session's subscriptions or will change, and empties it when the
 * session ends.  KV requests, and the requests to other nodes, wait for
 * their answers: they run on a worker thread of this file, on the share
 * connection (cluster_share.c, libnats' own threads), never on the loop.
 *
 * The files: this one (the state, the threads and the queue between them
 * and the loop, the record's encoding and its writes, start and stop),
 * cluster_session_claim.c (the claim), cluster_session_give.c (the
 * owner's side of 'T' and 'A'), cluster_session_stale.c (a copy found
 * another node's; the ids of what reached a session being moved); what
 * they share is in cluster_session_int.h.
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>
#include <openssl/sha.h>

#include "broker.h"
#include "cluster_session_int.h"
#include "conn.h"
#include "hashmap.h"
#include "log.h"
#include "mqtt_codec.h"
#include "protocol.h"
#include "session.h"
#include "session_state.h"
#include "store.h"
#include "turn.h"

struct csess_state cluster_sess;

static char tag; /* the closure of the session subscription */

const struct cluster_session_stats *cluster_session_stats(void) { return &cs.st; }
void *cluster_session_tag(void) { return &tag; }

/* ---- small pieces ------------------------------------------------------- */

void csess_chunks_init(struct chunk_list *l)
{
    l->head = NULL;
    l->tail = &l->head;
    l->n = 0;
}

int csess_chunks_add(struct chunk_list *l, const uint8_t *data, size_t len)
{
    struct chunk *c = malloc(sizeof *c + len);
    if (!c)
        return -1;
    c->next = NULL;
    c->len = len;
    memcpy(c->data, data, len);
    *l->tail = c;
    l->tail = &c->next;
    l->n++;
    return 0;
}

void csess_chunks_free(struct chunk_list *l)
{
    for (struct chunk *c = l->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    csess_chunks_init(l);
}

int csess_emit_chunk(const uint8_t *chunk, size_t len, void *arg)
{
    return csess_chunks_add(((struct export_ctx *)arg)->chunks, chunk, len);
}

void csess_key_of(const char *id, size_t len, char out[48])
{
    uint8_t h[SHA256_DIGEST_LENGTH];
    SHA256((const uint8_t *)id, len, h);
    memcpy(out, "s.", 2);
    for (int i = 0; i < 20; i++)
        snprintf(out + 2 + 2 * i, 3, "%02x", h[i]);
}

/* A node name as one subject token. */
void csess_node_subject(const char *node, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s.", cs.sess_prefix);
    if (n < 0 || (size_t)n >= outlen)
        return;
    size_t o = (size_t)n;
    for (const char *p = node; *p && o + 1 < outlen; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
        out[o++] = ok ? ch : '_';
    }
    out[o] = '\0';
}

void csess_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint64_t csess_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* Record: 'P' 1, owner (u8 length, bytes), epoch u64, from (u8, bytes),
 * from_seq u64, then the session header (session_state.h). */
uint8_t *csess_record_encode(const char *owner, uint64_t epoch, const char *from,
                              int64_t from_seq, const uint8_t *hdr, size_t hdr_len, size_t *len)
{
    size_t ol = strlen(owner), fl = strlen(from);
    size_t n = 2 + 1 + ol + 8 + 1 + fl + 8 + hdr_len;
    uint8_t *b = malloc(n);
    if (!b)
        return NULL;
    size_t o = 0;
    b[o++] = 'P';
    b[o++] = 1;
    b[o++] = (uint8_t)ol;
    memcpy(b + o, owner, ol);
    o += ol;
    csess_put_u64(b + o, epoch);
    o += 8;
    b[o++] = (uint8_t)fl;
    memcpy(b + o, from, fl);
    o += fl;
    csess_put_u64(b + o, (uint64_t)from_seq);
    o += 8;
    memcpy(b + o, hdr, hdr_len);
    *len = n;
    return b;
}

/* Strict: the value comes from the bucket, which any NATS client of the
 * account may write. */
int csess_record_decode(const uint8_t *b, size_t len, struct record *r)
{
    size_t o = 0;
    if (len < 2 || b[0] != 'P' || b[1] != 1)
        return -1;
    o = 2;
    for (int f = 0; f < 2; f++) {
        if (o >= len)
            return -1;
        size_t l = b[o++];
        if (l >= NODE_MAX || o + l > len || (f == 0 && l == 0))
            return -1; /* (a node name is never empty; "from" may be) */
        char *dst = f == 0 ? r->owner : r->from;
        memcpy(dst, b + o, l);
        dst[l] = '\0';
        if (memchr(dst, '\0', l))
            return -1;
        o += l;
        if (o + 8 > len)
            return -1;
        if (f == 0)
            r->epoch = csess_get_u64(b + o);
        else
            r->from_seq = (int64_t)csess_get_u64(b + o);
        o += 8;
    }
    r->hdr = b + o;
    r->hdr_len = len - o;
    return 0;
}

/* The header of s now: its will is its connection's, or the one waiting
 * for its delay. */
uint8_t *csess_header_of(const struct session *s, size_t *len)
{
    const struct message *will = NULL;
    uint32_t delay = 0;
    if (s->conn && s->conn->will) {
        will = s->conn->will;
        delay = s->conn->will_delay;
    } else if (s->will) {
        will = s->will;
    }
    return session_state_header_encode(s, will, delay, len);
}

/* An empty header for a session not made yet. */
uint8_t *csess_header_empty(const char *id, size_t id_len, size_t *len)
{
    struct session tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.client_id = (char *)id;
    tmp.client_id_len = id_len;
    return session_state_header_encode(&tmp, NULL, 0, len);
}

/* Loop: a session of this id made here is destroyed without a word to the
 * bucket (it is not, or no more, this node's). */
void csess_destroy_quietly(struct session *s)
{
    session_drop_will(s);
    session_destroy(s);
}

void csess_owned_drop(const char *id, size_t len)
{
    struct owned *o = hashmap_remove(cs.owned, id, len);
    if (!o)
        return;
    if (o->listed) {
        /* Unlink from the dirty list. */
        for (struct owned **p = &cs.dirty; *p; p = &(*p)->dirty_next)
            if (*p == o) {
                *p = o->dirty_next;
                break;
            }
    }
    free(o);
}

struct owned *csess_owned_get(const char *id, size_t len, bool make)
{
    struct owned *o = hashmap_get(cs.owned, id, len);
    if (o || !make)
        return o;
    o = calloc(1, sizeof *o + len + 1);
    if (!o)
        return NULL;
    o->id_len = len;
    memcpy(o->id, id, len);
    if (hashmap_put(cs.owned, o->id, len, o) < 0) {
        free(o);
        return NULL;
    }
    return o;
}

static void mark_dirty(struct owned *o)
{
    o->dirty = true;
    if (!o->listed) {
        o->listed = true;
        o->dirty_next = cs.dirty;
        cs.dirty = o;
    }
}

/* ---- the worker and the loop's side of its queue ------------------------ */

void csess_post(struct job *j)
{
    pthread_mutex_lock(&cs.lock);
    j->next = NULL;
    *cs.todo_tail = j;
    cs.todo_tail = &j->next;
    pthread_cond_signal(&cs.cond);
    pthread_mutex_unlock(&cs.lock);
}

static void done_push(struct job *j)
{
    pthread_mutex_lock(&cs.lock);
    j->next = NULL;
    *cs.done_tail = j;
    cs.done_tail = &j->next;
    struct event *ev = cs.ev;
    pthread_mutex_unlock(&cs.lock);
    if (ev && !cluster_closing())
        event_active(ev, EV_READ, 0);
}

static int setup_bucket(void)
{
    kvStore *kv = NULL;
    natsStatus s = js_KeyValue(&kv, cs.js, cs.bucket);
    if (s != NATS_OK) {
        kvConfig kc;
        kvConfig_Init(&kc);
        kc.Bucket = cs.bucket;
        kc.History = 1;
        kc.Replicas = cs.replicas;
        kc.StorageType = js_FileStorage;
        s = js_CreateKeyValue(&kv, cs.js, &kc);
        if (s != NATS_OK && cs.replicas > 1) {
            kc.Replicas = 1; /* a single server without a cluster */
            s = js_CreateKeyValue(&kv, cs.js, &kc);
        }
    }
    if (s != NATS_OK) {
        cluster_stream_set_err("making the sessions' key-value bucket", s, 0);
        return -1;
    }
    pthread_mutex_lock(&cs.lock);
    cs.kv = kv;
    pthread_cond_broadcast(&cs.cond);
    pthread_mutex_unlock(&cs.lock);
    return 0;
}

static void *worker_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&cs.stop) && !cs.kv) {
        if (cluster_link_up() && setup_bucket() == 0)
            break;
        pthread_mutex_lock(&cs.lock);
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_sec += 1;
        if (!atomic_load(&cs.stop))
            pthread_cond_timedwait(&cs.cond, &cs.lock, &t);
        pthread_mutex_unlock(&cs.lock);
    }
    for (;;) {
        pthread_mutex_lock(&cs.lock);
        while (!cs.todo && !atomic_load(&cs.stop))
            pthread_cond_wait(&cs.cond, &cs.lock);
        if (atomic_load(&cs.stop)) {
            pthread_mutex_unlock(&cs.lock);
            break;
        }
        struct job *j = cs.todo;
        cs.todo = j->next;
        if (!cs.todo)
            cs.todo_tail = &cs.todo;
        pthread_mutex_unlock(&cs.lock);
        j->work(j);
        done_push(j);
    }
    return NULL;
}

static void *watcher_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&cs.lock);
    while (!cs.kv && !atomic_load(&cs.stop))
        pthread_cond_wait(&cs.cond, &cs.lock);
    pthread_mutex_unlock(&cs.lock);
    kvWatcher *w = NULL;
    while (!atomic_load(&cs.stop)) {
        if (!w) {
            if (kvStore_WatchAll(&w, cs.kv, NULL) != NATS_OK) {
                w = NULL;
                struct timespec t = {1, 0};
                nanosleep(&t, NULL);
                continue;
            }
            atomic_store(&cs.ready, true);
            struct watch_job *r = calloc(1, sizeof *r); /* "ready", for the log */
            if (r) {
                r->job.done = csess_watch_done;
                done_push(&r->job);
            }
        }
        kvEntry *e = NULL;
        natsStatus s = kvWatcher_Next(&e, w, 500);
        if (s == NATS_TIMEOUT || (s == NATS_OK && !e))
            continue;
        if (s != NATS_OK) {
            if (atomic_load(&cs.stop))
                break;
            struct timespec t = {0, 200 * 1000 * 1000};
            nanosleep(&t, NULL);
            continue;
        }
        if (kvEntry_Operation(e) == kvOp_Put) {
            int len = kvEntry_ValueLen(e);
            struct watch_job *r = len >= 0 ? malloc(sizeof *r + (size_t)len) : NULL;
            if (r) {
                memset(r, 0, sizeof *r);
                r->job.done = csess_watch_done;
                r->rev = kvEntry_Revision(e);
                const char *k = kvEntry_Key(e);
                snprintf(r->key, sizeof r->key, "%s", k ? k : "");
                r->len = (size_t)len;
                if (len)
                    memcpy(r->value, kvEntry_Value(e), (size_t)len);
                done_push(&r->job);
            }
        }
        kvEntry_Destroy(e);
    }
    if (w) {
        kvWatcher_Stop(w);
        kvWatcher_Destroy(w);
    }
    return NULL;
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    turn_begin();
    turn_schedule(); /* what was written commits at the end of the turn */
    for (;;) {
        pthread_mutex_lock(&cs.lock);
        struct job *j = cs.done;
        cs.done = NULL;
        cs.done_tail = &cs.done;
        pthread_mutex_unlock(&cs.lock);
        if (!j)
            break;
        while (j) {
            struct job *n = j->next;
            j->done(j);
            j = n;
        }
    }
}

/* ---- the record kept up to date ------------------------------------------ */

static void write_work(struct job *j)
{
    struct write_job *w = (struct write_job *)j;
    uint64_t rev = 0;
    natsStatus s;
    int tries = 0;
    do
        s = kvStore_Update(&rev, cs.kv, w->key, w->value, (int)w->value_len, w->rev);
    while (s == NATS_NO_RESPONDERS && csess_kv_pause(&tries));
    w->ok = s == NATS_OK;
    w->new_rev = rev;
}

static void write_done(struct job *j)
{
    struct write_job *w = (struct write_job *)j;
    if (cs.on) {
        struct owned *o = csess_owned_get(w->id, w->id_len, false);
        if (o) {
            o->writing = false;
            if (!w->ok) {
                cs.st.writes_lost++;
                csess_owned_drop(w->id, w->id_len); /* someone else's now: the watch says more */
            } else if (o->ended && !o->dirty) {
                csess_owned_drop(w->id, w->id_len);
            } else {
                o->rev = w->new_rev;
                if (o->dirty)
                    mark_dirty(o);
            }
        }
    }
    free(w->value);
    free(w);
}

static void write_dirty(void)
{
    struct owned *list = cs.dirty;
    cs.dirty = NULL;
    while (list) {
        struct owned *o = list;
        list = o->dirty_next;
        o->listed = false;
        if (o->writing || hashmap_get(cs.claiming, o->id, o->id_len)) {
            if (o->dirty)
                mark_dirty(o); /* after the write (or claim) under way */
            continue;
        }
        o->dirty = false;
        struct session *s = o->ended ? NULL : session_find(o->id, o->id_len);
        uint8_t *value = NULL;
        size_t vl = 0;
        if (s) {
            size_t hl = 0;
            uint8_t *hdr = csess_header_of(s, &hl);
            if (hdr)
                value = csess_record_encode(cs.node, o->epoch, o->from, o->from_seq, hdr, hl, &vl);
            free(hdr);
            if (!value)
                continue;
        } else {
            o->ended = true; /* empty: the session is no more */
        }
        struct write_job *w = calloc(1, sizeof *w + o->id_len + 1);
        if (!w) {
            free(value);
            continue;
        }
        w->job.work = write_work;
        w->job.done = write_done;
        csess_key_of(o->id, o->id_len, w->key);
        w->rev = o->rev;
        w->value = value;
        w->value_len = vl;
        w->id_len = o->id_len;
        memcpy(w->id, o->id, o->id_len);
        o->writing = true;
        cs.st.writes++;
        csess_post(&w->job);
    }
}

static void session_changed(struct session *s)
{
    if (!cs.on)
        return;
    struct owned *o = csess_owned_get(s->client_id, s->client_id_len, false);
    if (o && !o->ended)
        mark_dirty(o);
}

static void session_ended(struct session *s)
{
    if (!cs.on)
        return;
    csess_marks_end(s); /* (its pointer may be reused) */
    csess_given_end(s->client_id, s->client_id_len);
    if (hashmap_get(cs.claiming, s->client_id, s->client_id_len))
        return;
    struct owned *o = csess_owned_get(s->client_id, s->client_id_len, false);
    if (o) {
        o->ended = true;
        mark_dirty(o);
    }
}

/* ---- the turn, start and stop ------------------------------------------- */

void cluster_session_turn_end(uint64_t failed)
{
    if (!cs.on)
        return;
    uint64_t durable = store_durable();
    struct claim **p = &cs.durable_wait;
    while (*p) {
        struct claim *cl = *p;
        if (failed && cl->batch == failed) {
            *p = cl->wait_next;
            if (cl->installed) {
                struct session *s = session_find(cl->id, cl->id_len);
                if (s && !s->conn)
                    csess_destroy_quietly(s);
            }
            csess_claim_refuse(cl, "the session could not be written (store)");
        } else if (cl->batch <= durable) {
            *p = cl->wait_next;
            csess_post(&cl->job);
        } else {
            p = &cl->wait_next;
        }
    }
    struct reply_wait **q = &cs.replies;
    while (*q) {
        struct reply_wait *w = *q;
        if ((failed && w->batch == failed) || w->batch <= durable) {
            *q = w->next;
            if (!(failed && w->batch == failed))
                csess_reply1(w->subject, 'K'); /* a rolled-back one is offered again */
            free(w);
        } else {
            q = &w->next;
        }
    }
    if (cs.dirty)
        write_dirty();
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    turn_begin();
    turn_schedule(); /* its end runs cluster_session_turn_end: what waits for durability */
    csess_stale_run();
    csess_marks_expire();
    struct adopt_job *a = cs.retry;
    cs.retry = NULL;
    static time_t last;
    time_t now = time(NULL);
    if (a && now - last < ADOPT_RETRY_S) {
        cs.retry = a;
        return;
    }
    last = now;
    while (a) {
        struct adopt_job *n = (struct adopt_job *)a->job.next;
        csess_post(&a->job);
        a = n;
    }
}

int cluster_session_start(natsConnection *nc, jsCtx *js, int replicas)
{
    static const struct protocol_claim hooks = {csess_claim, csess_claim_abort};
    static const struct session_watch watch = {session_changed, session_ended};
    memset(&cs, 0, sizeof cs);
    cs.nc = nc;
    cs.js = js;
    cs.replicas = replicas;
    snprintf(cs.node, sizeof cs.node, "%s", cluster_node_name());
    snprintf(cs.bucket, sizeof cs.bucket, "%s-sessions", cluster_prefix());
    snprintf(cs.sess_prefix, sizeof cs.sess_prefix, "%s-sess", cluster_prefix());
    csess_node_subject(cs.node, cs.self_subj, sizeof cs.self_subj);
    cs.todo_tail = &cs.todo;
    cs.done_tail = &cs.done;
    pthread_mutex_init(&cs.lock, NULL);
    pthread_cond_init(&cs.cond, NULL);
    cs.owned = hashmap_new();
    cs.claiming = hashmap_new();
    cs.marks = hashmap_new();
    cs.given = hashmap_new();
    cs.adopting = hashmap_new();
    cs.ev = event_new(broker.base, -1, EV_PERSIST, done_cb, NULL);
    cs.tick = event_new(broker.base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval tv = {0, 100 * 1000};
    if (!cs.owned || !cs.claiming || !cs.marks || !cs.given || !cs.adopting || !cs.ev || !cs.tick || event_add(cs.tick, &tv) != 0) {
        log_error("cluster: out of memory (sessions)");
        return -1;
    }
    natsStatus s = natsConnection_Subscribe(&cs.sub, nc, cs.self_subj, cluster_msg_in, &tag);
    if (s == NATS_OK)
        s = cluster_sub_track(cs.sub);
    if (s != NATS_OK) {
        log_error("cluster: cannot subscribe to %s: %s", cs.self_subj, natsStatus_GetText(s));
        return -1;
    }
    if (pthread_create(&cs.worker, NULL, worker_main, NULL) != 0)
        return -1;
    if (pthread_create(&cs.watcher, NULL, watcher_main, NULL) != 0) {
        atomic_store(&cs.stop, true);
        pthread_cond_broadcast(&cs.cond);
        pthread_join(cs.worker, NULL);
        return -1;
    }
    cs.threads = true;
    cs.on = true;
    protocol_set_claim(&hooks);
    session_set_watch(&watch);
    return 0;
}

void cluster_session_stop(void)
{
    if (!cs.threads)
        return;
    cs.on = false;
    protocol_set_claim(NULL);
    session_set_watch(NULL);
    pthread_mutex_lock(&cs.lock);
    atomic_store(&cs.stop, true);
    pthread_cond_broadcast(&cs.cond);
    pthread_mutex_unlock(&cs.lock);
}

static void free_owned(void *v, void *arg)
{
    (void)arg;
    free(v);
}

static void free_marks(void *v, void *arg)
{
    (void)arg;
    struct marks *mk = v;
    free(mk->v);
    free(mk);
}

static void free_claims(void *v, void *arg)
{
    (void)arg;
    for (struct claim *cl = v, *n; cl; cl = n) {
        n = cl->behind;
        csess_claim_free(cl);
    }
}

void cluster_session_join(void)
{
    if (!cs.threads)
        return;
    pthread_join(cs.worker, NULL);
    pthread_join(cs.watcher, NULL);
    cs.threads = false;
    /* What the threads still held: claims are freed with the table (the
     * queues hold only claims listed there, writes, watches, adopts). */
    for (struct job *j = cs.done; j;) {
        struct job *n = j->next;
        if (j->done != csess_claim_get_done && j->done != csess_claim_cas_done)
            j->done(j); /* cs.on is false: they only free */
        j = n;
    }
    for (struct job *j = cs.todo; j;) {
        struct job *n = j->next;
        if (j->done != csess_claim_get_done && j->done != csess_claim_cas_done)
            j->done(j);
        j = n;
    }
    for (struct adopt_job *a = cs.retry, *n; a; a = n) {
        n = (struct adopt_job *)a->job.next;
        csess_adopt_free(a);
    }
    for (struct reply_wait *w = cs.replies, *n; w; w = n) {
        n = w->next;
        free(w);
    }
    if (cs.sub)
        natsSubscription_Destroy(cs.sub);
    hashmap_foreach(cs.claiming, free_claims, NULL);
    hashmap_free(cs.claiming);
    hashmap_foreach(cs.owned, free_owned, NULL);
    hashmap_free(cs.owned);
    hashmap_foreach(cs.marks, free_marks, NULL);
    hashmap_free(cs.marks);
    hashmap_foreach(cs.given, free_owned, NULL); /* (plain blocks) */
    hashmap_free(cs.given);
    hashmap_free(cs.adopting); /* (its jobs were freed above) */
    for (struct stale_wait *w = cs.stale, *n; w; w = n) {
        n = w->next;
        free(w);
    }
    if (cs.kv)
        kvStore_Destroy(cs.kv);
    if (cs.ev)
        event_free(cs.ev);
    if (cs.tick)
        event_free(cs.tick);
    pthread_mutex_destroy(&cs.lock);
    pthread_cond_destroy(&cs.cond);
    memset(&cs, 0, sizeof cs);
}
