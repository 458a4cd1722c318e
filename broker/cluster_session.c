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
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>
#include <openssl/sha.h>

#include "acl.h"
#include "acl_session.h"
#include "auth.h"
#include "broker.h"
#include "cluster.h"
#include "cluster_js.h"
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
#include "turn.h"

/* One answer of another node, at most this long in coming. */
#define PART_WAIT_MS 3000
/* A delivery chunk on NATS, at most (NATS' default max_payload is 1 MiB). */
#define CHUNK_MAX (256 * 1024)
/* A stale copy whose owner did not take it is offered again after this. */
#define ADOPT_RETRY_S 5
#define NODE_MAX 80
/* A claim whose compare-and-set lost starts again, this many times in all. */
#define CLAIM_TRIES 4
/* A compare-and-set without an answer is made again, this many times in
 * all, this far apart (with the JetStream context's 2 s wait each). */
#define CAS_ATTEMPTS 5
#define CAS_PAUSE_MS 250
/* After the directory failed to answer, CONNECTs do not wait for it for
 * this long (each is served with the node's own session, counted
 * unclaimed): a JetStream outage must not hold every login for seconds. */
#define KV_DOWN_MS 5000
/* The ids of what reaches a session being moved are kept this long (and
 * this many at most): long enough for the old node's rest to come. */
#define MARK_KEEP_S 30
#define MARK_MAX 65536
/* A node whose session went to another keeps queuing to it this long
 * before it sends the rest: the two nodes take the QoS stream at their own
 * pace, and what the new owner routed before it had the session may reach
 * the old one only now. */
#define STALE_GRACE_MS 2000
/* A session handed to a node is not handed to another for this long,
 * unless that node's compare-and-set came back first (the watch): a
 * second 'T' meanwhile (two CONNECTs at once on two nodes) is answered
 * 'B'.  The same node may ask again (its compare-and-set lost against our
 * last write). */
#define GIVEN_HOLD_MS 10000
/* A KV write that found no responder (JetStream electing the bucket's
 * leader) goes again after this pause, this many times in all (about 1 s:
 * a CONNECT waits for it).  A claim's compare-and-set that still finds
 * none was not lost to another node: with nothing taken (K_LOCAL) the
 * client goes on as when the directory cannot be read (unclaimed). */
#define KV_NO_LEADER_TRIES 5
#define KV_NO_LEADER_PAUSE_MS 250

/* What reached a session being moved (router.h: delivered), by seq. */
struct mark {
    int64_t seq;
    uint64_t xid;
};
struct marks {
    struct session *s;
    time_t until;
    size_t n, cap;
    struct mark *v;
};

/* A copy found another node's, its rest sent after the grace. */
struct stale_wait {
    struct stale_wait *next;
    int64_t due_ms;
    int64_t from_seq;
    bool handed;
    char owner[NODE_MAX];
    size_t id_len;
    char id[];
};

struct chunk {
    struct chunk *next;
    size_t len;
    uint8_t data[];
};

struct chunk_list {
    struct chunk *head, **tail;
    uint32_t n;
};

/* A session this node handed over, to whom, until when (GIVEN_HOLD_MS). */
struct given {
    int64_t until_ms;
    char to[NODE_MAX];
};

/* Work for the worker thread (work), finished on the loop (done). */
struct job {
    struct job *next;
    void (*work)(struct job *);
    void (*done)(struct job *);
};

/* The decoded record of a client id. */
struct record {
    char owner[NODE_MAX], from[NODE_MAX];
    uint64_t epoch;
    int64_t from_seq;
    const uint8_t *hdr; /* into the value */
    size_t hdr_len;
};

enum claim_kind {
    K_FAIL,    /* the directory cannot be reached: go on locally */
    K_BROKEN,  /* the owner's answer stopped half way: refuse, the owner keeps it */
    K_REFUSED, /* the owner says: another user's session */
    K_BUSY,    /* the owner is claiming it itself right now */
    K_LOCAL,   /* no record, or this node owns it */
    K_NONE,    /* the owner has no such session (any more) */
    K_TAKEN,   /* handed over by the owner */
    K_RECORD,  /* the owner does not answer: from the record */
};

struct claim {
    struct job job;            /* first */
    struct claim *behind;      /* the next claim of the same id */
    struct conn *c;            /* NULL once the connection went */
    char *id;
    size_t id_len;
    char *user;                /* NULL: none */
    size_t user_len;
    bool clean;
    bool installed;            /* a session was made here from what came */
    bool cas_ok;
    bool cas_unreachable;      /* no responder: nobody else could set it either */
    uint8_t tries;             /* CAS lost: read and asked again */
    bool cas_conflict;         /* the CAS failed on the revision (not for want of an answer) */
    char cas_err[64];
    char key[48];
    enum claim_kind kind;
    uint64_t rev, epoch;       /* the record read (rev 0: none) */
    char owner[NODE_MAX];
    int64_t from_seq;          /* K_TAKEN: the owner's last delivery handed */
    uint8_t *hdr;              /* the header that came (K_TAKEN, K_RECORD) */
    size_t hdr_len;
    struct chunk_list chunks;  /* K_TAKEN: the deliveries */
    uint8_t *value;            /* the record to set (CAS) */
    size_t value_len;
    uint64_t batch;            /* what was written must be durable first */
    struct claim *wait_next;   /* in cs.durable_wait */
};

/* A session this node owns by the record: its revision, for the next
 * compare-and-set. */
struct owned {
    struct owned *dirty_next;
    uint64_t rev, epoch;
    int64_t from_seq;
    bool dirty, writing, ended, listed;
    char from[NODE_MAX];
    size_t id_len;
    char id[];
};

struct write_job {
    struct job job;
    char key[48];
    uint64_t rev, new_rev;
    bool ok;
    uint8_t *value;
    size_t value_len;
    size_t id_len;
    char id[];
};

struct watch_job {
    struct job job;
    uint64_t rev;
    char key[48];             /* the entry's key, without the bucket */
    size_t len;
    uint8_t value[];
};

/* A stale copy's deliveries, offered to the owner. */
struct adopt_job {
    struct job job;
    struct session *s;        /* checked on the loop: still the same one? */
    struct chunk_list chunks;
    char key[48];
    char owner[NODE_MAX];
    int result;               /* 1 taken, 0 owner gone (drop), -1 again later */
    size_t id_len;
    char id[];
};

/* An adopt request answered once its deliveries are durable. */
struct reply_wait {
    struct reply_wait *next;
    uint64_t batch;
    char subject[];
};

static struct {
    bool on;
    atomic_bool stop, ready;
    _Atomic int64_t kv_down_until; /* unix ms: see KV_DOWN_MS */
    bool ready_logged;
    pthread_t worker, watcher;
    bool threads;
    pthread_mutex_t lock;      /* the two queues, kv, cond */
    pthread_cond_t cond;
    struct job *todo, **todo_tail;
    struct job *done, **done_tail;
    natsConnection *nc;        /* the share connection */
    jsCtx *js;
    kvStore *kv;
    int replicas;
    char bucket[96];
    char sess_prefix[96];      /* "<cluster>-sess" */
    char self_subj[200];
    char node[NODE_MAX];
    natsSubscription *sub;
    struct event *ev, *tick;
    struct hashmap *owned;     /* client id -> struct owned */
    struct hashmap *claiming;  /* client id -> struct claim (the first) */
    struct owned *dirty;
    struct claim *durable_wait;
    struct reply_wait *replies;
    struct adopt_job *retry;   /* offered again at the next tick */
    struct hashmap *marks;     /* session pointer -> struct marks */
    struct hashmap *given;     /* client id -> struct given */
    struct hashmap *adopting;  /* client id -> struct adopt_job under way */
    struct stale_wait *stale;
    struct cluster_session_stats st;
} cs;

static char tag; /* the closure of the session subscription */

const struct cluster_session_stats *cluster_session_stats(void) { return &cs.st; }
void *cluster_session_tag(void) { return &tag; }

/* ---- small pieces ------------------------------------------------------- */

static void chunks_init(struct chunk_list *l)
{
    l->head = NULL;
    l->tail = &l->head;
    l->n = 0;
}

static int chunks_add(struct chunk_list *l, const uint8_t *data, size_t len)
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

static void chunks_free(struct chunk_list *l)
{
    for (struct chunk *c = l->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    chunks_init(l);
}

/* ---- the ids of what reached a session being moved ---------------------- */

struct export_ctx {
    struct chunk_list *chunks;
    const struct marks *mk;
};

static struct marks *marks_of(const struct session *s)
{
    return cs.marks && hashmap_count(cs.marks) ? hashmap_get(cs.marks, &s, sizeof s) : NULL;
}

static void marks_start(struct session *s)
{
    struct marks *mk = marks_of(s);
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

static void marks_end(const struct session *s)
{
    struct marks *mk = cs.marks ? hashmap_remove(cs.marks, &s, sizeof s) : NULL;
    if (mk) {
        free(mk->v);
        free(mk);
    }
}

void cluster_session_delivered(struct session *s, const struct message *m)
{
    struct marks *mk = marks_of(s);
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

static bool have_xid(struct session *s, uint64_t xid, void *arg)
{
    (void)arg;
    const struct marks *mk = marks_of(s);
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
static void marks_expire(void)
{
    if (!cs.marks || !hashmap_count(cs.marks))
        return;
    struct expire_scan sc = {.n = 0, .now = time(NULL)};
    hashmap_foreach(cs.marks, expired_one, &sc);
    for (size_t i = 0; i < sc.n; i++)
        marks_end(sc.old[i]->s);
}

static int emit_chunk(const uint8_t *chunk, size_t len, void *arg)
{
    return chunks_add(((struct export_ctx *)arg)->chunks, chunk, len);
}

static void key_of(const char *id, size_t len, char out[48])
{
    uint8_t h[SHA256_DIGEST_LENGTH];
    SHA256((const uint8_t *)id, len, h);
    memcpy(out, "s.", 2);
    for (int i = 0; i < 20; i++)
        snprintf(out + 2 + 2 * i, 3, "%02x", h[i]);
}

/* A node name as one subject token. */
static void node_subject(const char *node, char *out, size_t outlen)
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

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* Record: 'P' 1, owner (u8 length, bytes), epoch u64, from (u8, bytes),
 * from_seq u64, then the session header (session_state.h). */
static uint8_t *record_encode(const char *owner, uint64_t epoch, const char *from,
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
    put_u64(b + o, epoch);
    o += 8;
    b[o++] = (uint8_t)fl;
    memcpy(b + o, from, fl);
    o += fl;
    put_u64(b + o, (uint64_t)from_seq);
    o += 8;
    memcpy(b + o, hdr, hdr_len);
    *len = n;
    return b;
}

/* Strict: the value comes from the bucket, which any NATS client of the
 * account may write. */
static int record_decode(const uint8_t *b, size_t len, struct record *r)
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
            r->epoch = get_u64(b + o);
        else
            r->from_seq = (int64_t)get_u64(b + o);
        o += 8;
    }
    r->hdr = b + o;
    r->hdr_len = len - o;
    return 0;
}

/* The header of s now: its will is its connection's, or the one waiting
 * for its delay. */
static uint8_t *header_of(const struct session *s, size_t *len)
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
static uint8_t *header_empty(const char *id, size_t id_len, size_t *len)
{
    struct session tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.client_id = (char *)id;
    tmp.client_id_len = id_len;
    return session_state_header_encode(&tmp, NULL, 0, len);
}

/* ---- the worker and the loop's side of its queue ------------------------ */

static void post(struct job *j)
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

static void watch_done(struct job *j);

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
                r->job.done = watch_done;
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
                r->job.done = watch_done;
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

/* ---- asking another node ------------------------------------------------ */

/* Sends `req` to `node` and reads its answers into cl (a take) until the
 * end.  Returns the claim kind. */
static enum claim_kind ask_take(struct claim *cl, const uint8_t *req, size_t req_len)
{
    char subj[200], inbox[128];
    node_subject(cl->owner, subj, sizeof subj);
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
            end = chunks_add(&cl->chunks, d + 1, (size_t)dl - 1) != 0;
        } else if (t == 'E' && cl->hdr && dl == 1 + 8 + 4) {
            cl->from_seq = (int64_t)get_u64(d + 1);
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

static void claim_free(struct claim *cl)
{
    free(cl->id);
    free(cl->user);
    free(cl->hdr);
    free(cl->value);
    chunks_free(&cl->chunks);
    free(cl);
}

static void claim_get_done(struct job *j);
static void claim_cas_done(struct job *j);
static void given_end(const char *id, size_t id_len);

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
    if (len <= 0 || record_decode(v, (size_t)len, &r) != 0) {
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
        chunks_free(&cl->chunks);
    } else {
        free(rh);
    }
}

/* Worker: JetStream had no responder for a KV request (its stream's
 * leader is being elected: a NATS server went down): nothing was written;
 * after a pause the same request may go again.  False once it has gone
 * KV_NO_LEADER_TRIES times, or when the node stops. */
static bool kv_again(natsStatus s, int *tries)
{
    if (s != NATS_NO_RESPONDERS || ++*tries >= KV_NO_LEADER_TRIES || atomic_load(&cs.stop))
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
 * same write goes again, CAS_ATTEMPTS in all. */
static void claim_cas_work(struct job *j)
{
    struct claim *cl = (struct claim *)j;
    for (int i = 0; i < CAS_ATTEMPTS; i++) {
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
        cl->cas_unreachable = !cl->cas_conflict;
        if (cl->cas_conflict || atomic_load(&cs.stop))
            return;
        /* No answer (JetStream electing a leader after a server went,
         * the link moving to another server): the same write again. */
        snprintf(cl->cas_err, sizeof cl->cas_err, "%s", natsStatus_GetText(s));
        struct timespec t = {0, CAS_PAUSE_MS * 1000 * 1000};
        nanosleep(&t, NULL);
    }
    atomic_store(&cs.kv_down_until, message_now_ms() + KV_DOWN_MS);
}

static void claim_next(struct claim *cl);

/* Loop: a session of this id made here is destroyed without a word to the
 * bucket (it is not, or no more, this node's). */
static void destroy_quietly(struct session *s)
{
    session_drop_will(s);
    session_destroy(s);
}

static void owned_drop(const char *id, size_t len)
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

static struct owned *owned_get(const char *id, size_t len, bool make)
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
    chunks_init(&stale);
    struct session *old = session_find(cl->id, cl->id_len);
    if (old) {
        if (old->conn)
            conn_disconnect(old->conn, MQTT_RC_SESSION_TAKEN_OVER,
                            "session taken over by a new connection", true);
        old = session_find(cl->id, cl->id_len);
    }
    if (old) {
        struct export_ctx ex = {&stale, NULL};
        if (session_state_export(old, 0, CHUNK_MAX, NULL, emit_chunk, &ex) < 0) {
            chunks_free(&stale);
            session_state_header_free(&h);
            return -1;
        }
        destroy_quietly(old);
    }
    struct session *s = session_create(cl->id, cl->id_len, h.persistent);
    if (!s || session_state_apply_header(s, &h) != 0) {
        if (s)
            destroy_quietly(s);
        chunks_free(&stale);
        session_state_header_free(&h);
        return -1;
    }
    cl->installed = true;
    if (cl->kind == K_TAKEN)
        marks_start(s); /* against the old node's rest (adopt_in) */
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
    chunks_free(&stale);
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

static void claim_refuse(struct claim *cl, const char *why)
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
static void claim_get_done(struct job *j)
{
    struct claim *cl = (struct claim *)j;
    if (!cs.on) {
        claim_free(cl);
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
        claim_refuse(cl, "the session's node stopped answering during its hand-over");
        return;
    case K_REFUSED:
        claim_refuse(cl, "the client id belongs to another user's session");
        return;
    case K_BUSY:
        cs.st.failed++;
        claim_refuse(cl, "the session is being taken over on another node");
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
        claim_refuse(cl, "the session from another node could not be taken in");
        return;
    }
    if (cl->clean) {
        struct session *old = session_find(cl->id, cl->id_len);
        if (old && !old->conn)
            destroy_quietly(old);
    }
    struct session *s = session_find(cl->id, cl->id_len);
    size_t hl = 0;
    uint8_t *hdr = s ? header_of(s, &hl) : header_empty(cl->id, cl->id_len, &hl);
    bool moved = cl->kind != K_LOCAL;
    const char *from = cl->kind == K_TAKEN ? cl->owner : "";
    if (!moved) {
        struct owned *o = owned_get(cl->id, cl->id_len, false);
        from = o ? o->from : "";
    }
    if (hdr)
        cl->value = record_encode(cs.node, cl->epoch + (moved ? 1 : 0), from,
                                  cl->kind == K_TAKEN ? cl->from_seq : 0, hdr, hl,
                                  &cl->value_len);
    free(hdr);
    if (!cl->value) {
        claim_refuse(cl, "out of memory");
        return;
    }
    cl->job.work = claim_cas_work;
    cl->job.done = claim_cas_done;
    cl->batch = store_wait_batch();
    if (cl->batch && cl->batch > store_durable()) {
        cl->wait_next = cs.durable_wait; /* the CAS once it is durable */
        cs.durable_wait = cl;
        return;
    }
    post(&cl->job);
}

/* Loop: the record is set (or someone else's). */
static void claim_cas_done(struct job *j)
{
    struct claim *cl = (struct claim *)j;
    if (!cs.on) {
        claim_free(cl);
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
                destroy_quietly(s);
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
            chunks_free(&cl->chunks);
            cl->job.work = claim_get_work;
            cl->job.done = claim_get_done;
            post(&cl->job);
            return;
        }
        cs.st.lost++;
        claim_refuse(cl, "the session was taken by another node at the same time");
        return;
    }
    given_end(cl->id, cl->id_len); /* ours again */
    struct owned *o = owned_get(cl->id, cl->id_len, true);
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
    claim_free(cl);
    if (b)
        post(&b->job);
}

static int claim(struct conn *c, const char *id, size_t id_len, bool clean, const char *user,
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
    cl->job.done = claim_get_done;
    cl->c = c;
    cl->id = malloc(id_len + 1);
    cl->id_len = id_len;
    cl->clean = clean;
    chunks_init(&cl->chunks);
    if (user) {
        cl->user = malloc(user_len + 1);
        cl->user_len = user_len;
        if (cl->user)
            memcpy(cl->user, user, user_len);
    }
    if (!cl->id || (user && !cl->user)) {
        claim_free(cl);
        return 0;
    }
    memcpy(cl->id, id, id_len);
    cl->id[id_len] = '\0';
    key_of(id, id_len, cl->key);
    cs.st.claims++;
    struct claim *first = hashmap_get(cs.claiming, id, id_len);
    if (first) {
        while (first->behind)
            first = first->behind;
        first->behind = cl;
        return 1;
    }
    if (hashmap_put(cs.claiming, cl->id, id_len, cl) < 0) {
        claim_free(cl);
        return 0;
    }
    post(&cl->job);
    return 1;
}

static void claim_abort(struct conn *c, const char *id, size_t id_len)
{
    for (struct claim *cl = hashmap_get(cs.claiming, id, id_len); cl; cl = cl->behind)
        if (cl->c == c)
            cl->c = NULL; /* it runs to its end; nobody is told */
}

/* ---- the owner's side: give a session up, take a stale copy's rest ------ */

static void reply(const char *subject, const uint8_t *data, size_t len)
{
    if (subject && subject[0])
        natsConnection_Publish(cs.nc, subject, data, (int)len);
}

static void reply1(const char *subject, char t)
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

static void given_end(const char *id, size_t id_len)
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
        reply1(rsubj, 'B');
        return;
    }
    struct session *s = session_find((const char *)id, id_len);
    if (!s) {
        reply1(rsubj, 'N');
        return;
    }
    struct given *g = hashmap_get(cs.given, id, id_len);
    if (g && g->until_ms > message_now_ms() && strcmp(g->to, who) != 0) {
        /* Handed to another node a moment ago: were it handed again,
         * both would hold it and this copy's rest would go to the last
         * one twice. */
        reply1(rsubj, 'B');
        return;
    }
    /* Not ours from here: no write of the record may come between the
     * taker's read and its compare-and-set.  (If the taker never sets it,
     * the record still names this node, and a claim here takes it back.) */
    owned_drop((const char *)id, id_len);
    if ((acl_enabled() || auth_current()) &&
        !acl_session_same_user(s, has_user ? (const char *)user : NULL, ul)) {
        reply1(rsubj, 'R');
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
        reply1(rsubj, 'N');
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
    marks_start(s); /* what still reaches it here, by id: the taker skips its copies */
    struct sender sd = {rsubj, 0, NULL, 0};
    int64_t last = s->last_seq;
    long n = session_state_export(s, 0, CHUNK_MAX, NULL, send_chunk, &sd);
    free(sd.buf);
    if (n < 0)
        return;
    uint8_t e[13];
    e[0] = 'E';
    put_u64(e + 1, (uint64_t)last);
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
    struct owned *o2 = owned_get((const char *)id, id_len, false);
    if (!o2 || o2->ended || hashmap_get(cs.claiming, id, id_len)) {
        reply1(rsubj, 'X'); /* not this node's now: ask the record again */
        return;
    }
    if (!s) {
        reply1(rsubj, 'K'); /* ended here: its messages go with it */
        return;
    }
    const char *why = NULL;
    long n = session_state_import(s, d + o, len - o, false, marks_of(s) ? have_xid : NULL, NULL,
                                  &why);
    if (n < 0) {
        /* (Any NATS client can send these in a loop: one line per 10 s.) */
        static struct log_ratelimit refused_log;
        long k = log_ratelimit_check(&refused_log, 10);
        if (k >= 0)
            log_warning("cluster: deliveries handed back for client %s refused: %s%s", s->log_id,
                        why, log_suppressed(k));
        reply1(rsubj, 'K'); /* not decodable: asking again would not help */
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
        node_subject(a->owner, subj, sizeof subj);
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
        if (len <= 0 || record_decode(kvEntry_Value(e), (size_t)len, &r) != 0) {
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

static void adopt_free(struct adopt_job *a)
{
    if (cs.adopting && hashmap_get(cs.adopting, a->id, a->id_len) == a)
        hashmap_remove(cs.adopting, a->id, a->id_len);
    chunks_free(&a->chunks);
    free(a);
}

static void adopt_done(struct job *j)
{
    struct adopt_job *a = (struct adopt_job *)j;
    if (!cs.on) {
        adopt_free(a);
        return;
    }
    struct session *s = session_find(a->id, a->id_len);
    bool same = s == a->s && !hashmap_get(cs.claiming, a->id, a->id_len) &&
                !owned_get(a->id, a->id_len, false);
    if (a->result < 0 && same) {
        a->job.next = (struct job *)cs.retry; /* at the next tick */
        cs.retry = a;
        return;
    }
    if (same && s && !s->conn) {
        if (a->result > 0)
            cs.st.handed_back += a->chunks.n;
        destroy_quietly(s);
    }
    adopt_free(a);
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
    key_of(a->id, id_len, a->key);
    snprintf(a->owner, sizeof a->owner, "%s", owner);
    chunks_init(&a->chunks);
    struct export_ctx ex = {&a->chunks, marks_of(s)};
    long n = session_state_export(s, handed_by_us ? from_seq : 0, CHUNK_MAX,
                                  ex.mk ? xid_of : NULL, emit_chunk, &ex);
    cs.st.stale++;
    if (n <= 0) {
        if (n == 0)
            destroy_quietly(s);
        adopt_free(a);
        return;
    }
    log_notice("cluster: session of client %s is node %s's now: %ld deliveries held here go to it",
               s->log_id, owner, n);
    hashmap_put(cs.adopting, a->id, a->id_len, a); /* (full: only a later copy twice) */
    post(&a->job);
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

static void stale_run(void)
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
            !owned_get(w->id, w->id_len, false))
            go_stale(s, w->owner, w->handed, w->from_seq);
        free(w);
    }
}

/* Loop: a record changed (or was there when the watch began). */
static void watch_done(struct job *j)
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
    if (w->len == 0 || record_decode(w->value, w->len, &r) != 0 ||
        session_state_header_decode(r.hdr, r.hdr_len, &h, &why) != 0) {
        session_state_header_free(&h);
        free(w);
        return; /* an ended session, or not a record of ours */
    }
    const char *id = h.client_id;
    size_t id_len = h.id_len;
    char key[48];
    key_of(id, id_len, key);
    if (strcmp(key, w->key) != 0) {
        /* Not the record of the id it names (claims read key_of(id)):
         * garbage, which must not end that id's session here. */
        session_state_header_free(&h);
        free(w);
        return;
    }
    if (strcmp(r.owner, cs.node) == 0) {
        /* Ours (our own write coming back, or at start). */
        struct owned *o = owned_get(id, id_len, true);
        if (o && w->rev > o->rev && !o->writing) {
            o->rev = w->rev;
            o->epoch = r.epoch;
        }
    } else if (!hashmap_get(cs.claiming, id, id_len)) {
        owned_drop(id, id_len);
        struct session *s = session_find(id, id_len);
        if (s)
            stale_later(s, &r, &h);
    }
    session_state_header_free(&h);
    free(w);
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
    while (kv_again(s, &tries));
    w->ok = s == NATS_OK;
    w->new_rev = rev;
}

static void write_done(struct job *j)
{
    struct write_job *w = (struct write_job *)j;
    if (cs.on) {
        struct owned *o = owned_get(w->id, w->id_len, false);
        if (o) {
            o->writing = false;
            if (!w->ok) {
                cs.st.writes_lost++;
                owned_drop(w->id, w->id_len); /* someone else's now: the watch says more */
            } else if (o->ended && !o->dirty) {
                owned_drop(w->id, w->id_len);
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
            uint8_t *hdr = header_of(s, &hl);
            if (hdr)
                value = record_encode(cs.node, o->epoch, o->from, o->from_seq, hdr, hl, &vl);
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
        key_of(o->id, o->id_len, w->key);
        w->rev = o->rev;
        w->value = value;
        w->value_len = vl;
        w->id_len = o->id_len;
        memcpy(w->id, o->id, o->id_len);
        o->writing = true;
        cs.st.writes++;
        post(&w->job);
    }
}

static void session_changed(struct session *s)
{
    if (!cs.on)
        return;
    struct owned *o = owned_get(s->client_id, s->client_id_len, false);
    if (o && !o->ended)
        mark_dirty(o);
}

static void session_ended(struct session *s)
{
    if (!cs.on)
        return;
    marks_end(s); /* (its pointer may be reused) */
    given_end(s->client_id, s->client_id_len);
    if (hashmap_get(cs.claiming, s->client_id, s->client_id_len))
        return;
    struct owned *o = owned_get(s->client_id, s->client_id_len, false);
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
                    destroy_quietly(s);
            }
            claim_refuse(cl, "the session could not be written (store)");
        } else if (cl->batch <= durable) {
            *p = cl->wait_next;
            post(&cl->job);
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
                reply1(w->subject, 'K'); /* a rolled-back one is offered again */
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
    turn_schedule();
    cluster_session_turn_end(0);
    stale_run();
    marks_expire();
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
        post(&a->job);
        a = n;
    }
}

int cluster_session_start(natsConnection *nc, jsCtx *js, int replicas)
{
    static const struct protocol_claim hooks = {claim, claim_abort};
    static const struct session_watch watch = {session_changed, session_ended};
    memset(&cs, 0, sizeof cs);
    cs.nc = nc;
    cs.js = js;
    cs.replicas = replicas;
    snprintf(cs.node, sizeof cs.node, "%s", cluster_node_name());
    snprintf(cs.bucket, sizeof cs.bucket, "%s-sessions", cluster_prefix());
    snprintf(cs.sess_prefix, sizeof cs.sess_prefix, "%s-sess", cluster_prefix());
    node_subject(cs.node, cs.self_subj, sizeof cs.self_subj);
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
        claim_free(cl);
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
        if (j->done != claim_get_done && j->done != claim_cas_done)
            j->done(j); /* cs.on is false: they only free */
        j = n;
    }
    for (struct job *j = cs.todo; j;) {
        struct job *n = j->next;
        if (j->done != claim_get_done && j->done != claim_cas_done)
            j->done(j);
        j = n;
    }
    for (struct adopt_job *a = cs.retry, *n; a; a = n) {
        n = (struct adopt_job *)a->job.next;
        adopt_free(a);
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
