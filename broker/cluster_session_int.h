/*
 * cluster_session_int.h - what the files of sessions cluster-wide share
 * (cluster_session.c: the directory's state, its worker and watcher
 * threads, the record and its writes; cluster_session_claim.c: a CONNECT's
 * claim; cluster_session_give.c: the owner's side of a take-over and of a
 * stale copy's rest; cluster_session_stale.c: a copy found another node's,
 * and the ids of what reached a session being moved).  Not for the rest of
 * the broker, which uses cluster.h and cluster_js.h.
 */
#ifndef PETREL_CLUSTER_SESSION_INT_H
#define PETREL_CLUSTER_SESSION_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>

#include "cluster.h"
#include "cluster_js.h"

struct conn;
struct session;
struct message;
struct session_state_header;

/* One answer of another node, at most this long in coming. */
#define PART_WAIT_MS 3000
/* A delivery chunk on NATS, at most (NATS' default max_payload is 1 MiB). */
#define CHUNK_MAX (256 * 1024)
/* A stale copy whose owner did not take it is offered again after this. */
#define ADOPT_RETRY_S 5
#define NODE_MAX 80
/* A claim whose compare-and-set lost starts again, this many times in all. */
#define CLAIM_TRIES 4
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

/* A session's deliveries exported into chunks (csess_emit_chunk), with
 * the ids known of them (csess_marks_of). */
struct export_ctx {
    struct chunk_list *chunks;
    const struct marks *mk;
};

/* The state of the files of sessions cluster-wide (cluster_session.c
 * holds it; they call it cs). */
struct csess_state {
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
};
extern struct csess_state cluster_sess;
#define cs cluster_sess

/* cluster_session.c */
void csess_chunks_init(struct chunk_list *l);
int csess_chunks_add(struct chunk_list *l, const uint8_t *data, size_t len);
void csess_chunks_free(struct chunk_list *l);
int csess_emit_chunk(const uint8_t *chunk, size_t len, void *arg);
void csess_key_of(const char *id, size_t len, char out[48]);
void csess_node_subject(const char *node, char *out, size_t outlen);
void csess_put_u64(uint8_t *p, uint64_t v);
uint64_t csess_get_u64(const uint8_t *p);
uint8_t *csess_record_encode(const char *owner, uint64_t epoch, const char *from,
                              int64_t from_seq, const uint8_t *hdr, size_t hdr_len, size_t *len);
int csess_record_decode(const uint8_t *b, size_t len, struct record *r);
uint8_t *csess_header_of(const struct session *s, size_t *len);
uint8_t *csess_header_empty(const char *id, size_t id_len, size_t *len);
void csess_destroy_quietly(struct session *s);
void csess_owned_drop(const char *id, size_t len);
struct owned *csess_owned_get(const char *id, size_t len, bool make);
void csess_post(struct job *j);

/* cluster_session_claim.c */
void csess_claim_free(struct claim *cl);
bool csess_kv_pause(int *tries);
void csess_claim_refuse(struct claim *cl, const char *why);
void csess_claim_get_done(struct job *j);
void csess_claim_cas_done(struct job *j);
int csess_claim(struct conn *c, const char *id, size_t id_len, bool clean, const char *user,
                 size_t user_len);
void csess_claim_abort(struct conn *c, const char *id, size_t id_len);

/* cluster_session_give.c */
void csess_reply1(const char *subject, char t);
void csess_given_end(const char *id, size_t id_len);

/* cluster_session_stale.c */
struct marks *csess_marks_of(const struct session *s);
void csess_marks_start(struct session *s);
void csess_marks_end(const struct session *s);
bool csess_have_xid(struct session *s, uint64_t xid, void *arg);
void csess_marks_expire(void);
void csess_adopt_free(struct adopt_job *a);
void csess_stale_run(void);
void csess_watch_done(struct job *j);

#endif
