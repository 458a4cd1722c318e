/*
 * session_state.c - a session's state as bytes and back, for a hand-off
 * between nodes: the header (client id, persistence, expiry,
 * subscriptions, inbound QoS 2 ids, will) and the deliveries in chunks.
 * The format and the contract are in session_state.h; the walk over a
 * stored queue and the appending of deliveries are session_queue.c's.
 */
#include "session_state.h"

#include <stdlib.h>
#include <string.h>

#include "message.h"
#include "mqtt_codec.h"
#include "mqtt_props_check.h"
#include "session.h"
#include "shared_subs.h"
#include "store.h"

#define KIND_HEADER 'H'
#define KIND_CHUNK 'D'

#define FLAG_PERSISTENT 0x01
#define FLAG_EXPIRY_SET 0x02
#define FLAG_WILL 0x04

#define DFLAG_RETAIN 0x01
#define DFLAG_SHARED 0x02
#define DFLAG_MESSAGE 0x04

/* The fewest bytes each repeated item takes: a count is refused when the
 * rest of the input cannot hold that many, which bounds what is allocated. */
#define MIN_SUB (2 + 1 + 1 + 4)
#define MIN_DELIVERY (1 + 1 + 1 + 2 + 8)

#define MAX_SUB_ID 268435455u
/* The longest Message Expiry Interval, in ms. */
#define MAX_MS_LEFT ((uint64_t)UINT32_MAX * 1000)

/* ---- writing ---- */

struct out {
    uint8_t *p;
    size_t len, cap;
    bool oom;
};

static void put(struct out *o, const void *src, size_t n)
{
    if (o->oom || n == 0)
        return;
    if (o->cap - o->len < n) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap - o->len < n)
            cap *= 2;
        uint8_t *p = realloc(o->p, cap);
        if (!p) {
            o->oom = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, src, n);
    o->len += n;
}

static void put_uint(struct out *o, uint64_t v, int bytes)
{
    uint8_t b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    put(o, b, (size_t)bytes);
}

static void put_u8(struct out *o, uint8_t v) { put_uint(o, v, 1); }
static void put_u16(struct out *o, uint16_t v) { put_uint(o, v, 2); }
static void put_u32(struct out *o, uint32_t v) { put_uint(o, v, 4); }
static void put_u64(struct out *o, uint64_t v) { put_uint(o, v, 8); }

static void put_message(struct out *o, const struct message *m, int64_t now)
{
    put_u8(o, m->qos);
    put_u8(o, m->retain ? 1 : 0);
    put_u16(o, m->topic_len);
    put(o, m->topic, m->topic_len);
    put_u32(o, m->props_len);
    put(o, m->props, m->props_len);
    put_u32(o, m->payload_len);
    put(o, m->payload, m->payload_len);
    put_u32(o, m->expiry_interval);
    uint64_t left = 0;
    if (m->expires_at) /* one that is due already still expires there */
        left = m->expires_at > now ? (uint64_t)(m->expires_at - now) : 1;
    put_u64(o, left < MAX_MS_LEFT ? left : MAX_MS_LEFT);
}

/* ---- reading: every read checks what is left; the first failure sticks ---- */

struct in {
    const uint8_t *p;
    size_t left;
    const char *why; /* NULL while all is well */
};

static bool refuse(struct in *r, const char *why)
{
    if (!r->why)
        r->why = why;
    return false;
}

static const uint8_t *take(struct in *r, size_t n)
{
    if (r->why)
        return NULL;
    if (n > r->left) {
        refuse(r, "truncated");
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static uint64_t get_uint(struct in *r, int bytes)
{
    const uint8_t *p = take(r, (size_t)bytes);
    uint64_t v = 0;
    for (int i = 0; p && i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

static uint8_t get_u8(struct in *r) { return (uint8_t)get_uint(r, 1); }
static uint16_t get_u16(struct in *r) { return (uint16_t)get_uint(r, 2); }
static uint32_t get_u32(struct in *r) { return (uint32_t)get_uint(r, 4); }
static uint64_t get_u64(struct in *r) { return get_uint(r, 8); }

/* Reads a count of items of at least `min_size` bytes each. */
static uint32_t get_count(struct in *r, size_t min_size)
{
    uint32_t n = get_u32(r);
    if (!r->why && n > r->left / min_size)
        refuse(r, "count larger than the bytes that follow");
    return r->why ? 0 : n;
}

static bool at_end(struct in *r)
{
    return !r->why && (r->left == 0 || refuse(r, "bytes after the end"));
}

static bool start(struct in *r, const uint8_t *buf, size_t len, uint8_t kind)
{
    *r = (struct in){buf, len, NULL};
    uint8_t version = get_u8(r), k = get_u8(r);
    if (r->why)
        return false;
    if (version != SESSION_STATE_VERSION)
        return refuse(r, "unknown version");
    return k == kind || refuse(r, kind == KIND_HEADER ? "not a session header" : "not a chunk");
}

/* A message as the bytes hold it, pointing into them. */
struct msg_view {
    uint8_t qos;
    bool retain;
    const uint8_t *topic, *props, *payload;
    uint32_t topic_len, props_len, payload_len;
    uint32_t interval;
    uint64_t ms_left;
};

/* Only what a server forwards (message.c keeps no other): one hop's
 * properties (topic alias, subscription identifier) are not a message's. */
static bool forwardable(const uint8_t *block, uint32_t len)
{
    struct mqtt_props props = {block, len};
    struct mqtt_prop_iter it;
    struct mqtt_prop pr;
    mqtt_prop_iter_init(&it, &props);
    while (mqtt_prop_next(&it, &pr))
        switch (pr.id) {
        case MQTT_PROP_PAYLOAD_FORMAT:
        case MQTT_PROP_CONTENT_TYPE:
        case MQTT_PROP_RESPONSE_TOPIC:
        case MQTT_PROP_CORRELATION_DATA:
        case MQTT_PROP_USER_PROPERTY:
            break;
        default:
            return false;
        }
    return true;
}

static bool get_message(struct in *r, struct msg_view *m)
{
    m->qos = get_u8(r);
    uint8_t retain = get_u8(r);
    m->topic_len = get_u16(r);
    m->topic = take(r, m->topic_len);
    m->props_len = get_u32(r);
    m->props = take(r, m->props_len);
    m->payload_len = get_u32(r);
    m->payload = take(r, m->payload_len);
    m->interval = get_u32(r);
    m->ms_left = get_u64(r);
    if (r->why)
        return false;
    m->retain = retain != 0;
    const char *why = NULL;
    if (m->qos > 2)
        return refuse(r, "message QoS above 2");
    if (retain > 1)
        return refuse(r, "message retain flag not 0 or 1");
    if (!mqtt_topic_name_valid(m->topic, m->topic_len))
        return refuse(r, "message topic not a valid topic name");
    if (m->props_len > MQTT_MAX_REMAINING_LENGTH || m->payload_len > MQTT_MAX_REMAINING_LENGTH)
        return refuse(r, "message larger than a PUBLISH can be");
    if (mqtt_props_validate(MQTT_PUBLISH, m->props, m->props_len, &why) != MQTT_OK)
        return refuse(r, why ? why : "message properties invalid");
    if (!forwardable(m->props, m->props_len))
        return refuse(r, "message property a server does not forward");
    if (m->ms_left > MAX_MS_LEFT)
        return refuse(r, "message expiry beyond the longest interval");
    return true;
}

static struct message *make_message(const struct msg_view *v, int64_t now)
{
    struct message *m =
        message_new_raw((const char *)v->topic, v->topic_len, v->payload, v->payload_len, v->qos,
                        v->retain, v->props, v->props_len, v->ms_left ? now + (int64_t)v->ms_left : 0);
    if (m)
        m->expiry_interval = v->interval;
    return m;
}

/* ---- the header ---- */

uint8_t *session_state_header_encode(const struct session *s, const struct message *will,
                                     uint32_t will_delay, size_t *len)
{
    struct out o = {0};
    put_u8(&o, SESSION_STATE_VERSION);
    put_u8(&o, KIND_HEADER);
    put_u16(&o, (uint16_t)s->client_id_len);
    put(&o, s->client_id, s->client_id_len);
    put_u8(&o, (uint8_t)((s->persistent ? FLAG_PERSISTENT : 0) |
                         (s->expiry_set ? FLAG_EXPIRY_SET : 0) | (will ? FLAG_WILL : 0)));
    put_u32(&o, s->expiry_set ? s->expiry : 0);
    put_u32(&o, (uint32_t)s->n_subs);
    /* Oldest first (the list is newest first), so that subscribing in turn
     * gives the other node the same list. */
    const struct subscription *last = s->subs;
    while (last && last->next)
        last = last->next;
    for (const struct subscription *sub = last; sub; sub = sub->prev) {
        put_u16(&o, sub->len);
        put(&o, sub->filter, sub->len);
        put_u8(&o, sub->options);
        put_u32(&o, sub->id);
    }
    put_u32(&o, s->n_qos2_ids);
    for (uint32_t id = 1; id <= UINT16_MAX && s->qos2_ids; id++)
        if (session_qos2_pending(s, (uint16_t)id))
            put_u16(&o, (uint16_t)id);
    if (will) {
        put_u32(&o, will_delay);
        put_message(&o, will, message_now_ms());
    }
    if (o.oom) {
        free(o.p);
        return NULL;
    }
    *len = o.len;
    return o.p;
}

void session_state_header_free(struct session_state_header *h)
{
    for (size_t i = 0; h->subs && i < h->n_subs; i++)
        free(h->subs[i].filter);
    free(h->subs);
    free(h->qos2_ids);
    free(h->client_id);
    message_unref(h->will);
    memset(h, 0, sizeof *h);
}

static char *dup_bytes(const uint8_t *p, size_t len)
{
    char *c = malloc(len + 1);
    if (c) {
        memcpy(c, p, len);
        c[len] = '\0';
    }
    return c;
}

/* A filter and options as a client's SUBSCRIBE could have made them. */
static bool sub_valid(struct in *r, const uint8_t *f, size_t len, uint8_t options, uint32_t id)
{
    size_t inner = 0;
    if (!mqtt_topic_filter_valid(f, len))
        return refuse(r, "subscription filter not a valid topic filter");
    int shared = share_parse((const char *)f, len, &inner);
    if (shared < 0 || (shared == 1 && !mqtt_topic_filter_valid(f + inner, len - inner)))
        return refuse(r, "malformed shared subscription");
    if (MQTT_SUBOPT_QOS(options) > 2 || (options & 0xC0) ||
        MQTT_SUBOPT_RETAIN_HANDLING(options) == 3)
        return refuse(r, "subscription options out of range");
    if (shared == 1 && (options & MQTT_SUBOPT_NO_LOCAL))
        return refuse(r, "No Local on a shared subscription");
    return id <= MAX_SUB_ID || refuse(r, "subscription identifier out of range");
}

static bool get_subs(struct in *r, struct session_state_header *h)
{
    uint32_t n = get_count(r, MIN_SUB);
    if (n == 0)
        return !r->why;
    h->subs = calloc(n, sizeof *h->subs);
    if (!h->subs)
        return refuse(r, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        uint16_t flen = get_u16(r);
        const uint8_t *f = take(r, flen);
        uint8_t options = get_u8(r);
        uint32_t id = get_u32(r);
        if (r->why || !sub_valid(r, f, flen, options, id))
            return false;
        struct session_state_sub *sub = &h->subs[h->n_subs];
        if (!(sub->filter = dup_bytes(f, flen)))
            return refuse(r, "out of memory");
        sub->len = flen;
        sub->options = options;
        sub->id = id;
        h->n_subs++;
    }
    return true;
}

static bool get_qos2(struct in *r, struct session_state_header *h)
{
    uint32_t n = get_count(r, 2);
    if (n == 0)
        return !r->why;
    h->qos2_ids = malloc(n * sizeof *h->qos2_ids);
    if (!h->qos2_ids)
        return refuse(r, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        uint16_t id = get_u16(r);
        if (r->why)
            return false;
        if (id == 0 || (i > 0 && id <= h->qos2_ids[i - 1]))
            return refuse(r, "QoS 2 ids not increasing from 1");
        h->qos2_ids[h->n_qos2++] = id;
    }
    return true;
}

static bool get_header(struct in *r, struct session_state_header *h)
{
    uint16_t id_len = get_u16(r);
    const uint8_t *id = take(r, id_len);
    uint8_t flags = get_u8(r);
    uint32_t expiry = get_u32(r);
    if (r->why)
        return false;
    if (!mqtt_utf8_valid(id, id_len))
        return refuse(r, "client id not valid UTF-8");
    if (flags & ~(FLAG_PERSISTENT | FLAG_EXPIRY_SET | FLAG_WILL))
        return refuse(r, "unknown session flags");
    h->persistent = flags & FLAG_PERSISTENT;
    h->expiry_set = flags & FLAG_EXPIRY_SET;
    if (h->expiry_set ? h->persistent != (expiry > 0) : expiry != 0)
        return refuse(r, "session expiry does not agree with persistence");
    h->expiry = expiry;
    if (!(h->client_id = dup_bytes(id, id_len)))
        return refuse(r, "out of memory");
    h->id_len = id_len;
    if (!get_subs(r, h) || !get_qos2(r, h))
        return false;
    if (flags & FLAG_WILL) {
        struct msg_view v;
        h->will_delay = get_u32(r);
        if (!get_message(r, &v) || !at_end(r))
            return false;
        if (!(h->will = make_message(&v, message_now_ms())))
            return refuse(r, "out of memory");
        return true;
    }
    return at_end(r);
}

int session_state_header_decode(const uint8_t *buf, size_t len, struct session_state_header *h,
                                const char **why)
{
    struct in r;
    memset(h, 0, sizeof *h);
    if (start(&r, buf, len, KIND_HEADER) && get_header(&r, h))
        return 0;
    session_state_header_free(h);
    *why = r.why;
    return -1;
}

int session_state_apply_header(struct session *s, const struct session_state_header *h)
{
    if (h->expiry_set) {
        session_set_expiry(s, true, h->expiry);
    } else {
        if (h->persistent && !s->db_id)
            store_session_add(s); /* logged by the store if it fails */
        s->persistent = h->persistent;
        session_set_expiry(s, false, 0);
    }
    for (size_t i = 0; i < h->n_subs; i++)
        if (session_subscribe(s, h->subs[i].filter, h->subs[i].len, h->subs[i].options,
                              h->subs[i].id) < 0)
            return -1;
    for (size_t i = 0; i < h->n_qos2; i++)
        if (session_qos2_mark(s, h->qos2_ids[i]) < 0)
            return -1;
    return 0;
}

/* ---- the deliveries ---- */

struct export {
    struct out o;
    uint32_t count; /* deliveries in the chunk being built */
    long total;
    size_t max_chunk;
    int64_t after_seq; /* only deliveries after it */
    int64_t now;
    uint64_t (*xid_of)(struct session *, int64_t, void *);
    int (*emit)(const uint8_t *, size_t, void *);
    void *arg;
};

#define CHUNK_HEAD (1 + 1 + 4)

static void chunk_begin(struct export *e)
{
    e->o.len = 0;
    e->count = 0;
    put_u8(&e->o, SESSION_STATE_VERSION);
    put_u8(&e->o, KIND_CHUNK);
    put_u32(&e->o, 0); /* the count, set by chunk_emit */
}

static int chunk_emit(struct export *e)
{
    if (e->o.oom)
        return -1;
    for (int i = 0; i < 4; i++)
        e->o.p[2 + i] = (uint8_t)(e->count >> (8 * (3 - i)));
    int rc = e->emit(e->o.p, e->o.len, e->arg);
    e->total += e->count;
    chunk_begin(e);
    return rc;
}

static int export_one(struct session *s, const struct delivery *d, void *arg)
{
    struct export *e = arg;
    if (d->seq <= e->after_seq)
        return 0;
    size_t before = e->o.len;
    put_u8(&e->o, d->state);
    put_u8(&e->o, d->qos);
    put_u8(&e->o, (uint8_t)((d->retain ? DFLAG_RETAIN : 0) | (d->shared ? DFLAG_SHARED : 0) |
                            (d->msg ? DFLAG_MESSAGE : 0)));
    put_u16(&e->o, d->state == DELIVERY_QUEUED ? 0 : d->packet_id);
    put_u64(&e->o, e->xid_of ? e->xid_of(s, d->seq, e->arg) : 0);
    if (d->msg)
        put_message(&e->o, d->msg, e->now);
    if (e->o.oom)
        return -1;
    if (e->count > 0 && e->o.len > e->max_chunk) {
        /* It does not fit with the others: they go first, it starts the
         * next chunk. */
        size_t n = e->o.len - before;
        uint8_t *copy = malloc(n);
        if (!copy)
            return -1;
        memcpy(copy, e->o.p + before, n);
        e->o.len = before;
        int rc = chunk_emit(e);
        put(&e->o, copy, n);
        free(copy);
        if (rc != 0 || e->o.oom)
            return -1;
    }
    e->count++;
    return 0;
}

long session_state_export(struct session *s, int64_t after_seq, size_t max_chunk,
                          uint64_t (*xid_of)(struct session *s, int64_t seq, void *arg),
                          int (*emit)(const uint8_t *chunk, size_t len, void *arg), void *arg)
{
    struct export e = {.max_chunk = max_chunk, .after_seq = after_seq, .now = message_now_ms(), .xid_of = xid_of,
                       .emit = emit, .arg = arg};
    chunk_begin(&e);
    int rc = session_each_delivery(s, export_one, &e);
    if (rc == 0 && e.count > 0)
        rc = chunk_emit(&e);
    free(e.o.p);
    return rc == 0 ? e.total : -1;
}

/* One delivery as the bytes hold it. */
struct delivery_view {
    uint8_t state, qos;
    bool retain, shared, has_msg;
    uint16_t packet_id;
    uint64_t xid;
    struct msg_view msg;
};

static bool get_delivery(struct in *r, struct delivery_view *d)
{
    d->state = get_u8(r);
    d->qos = get_u8(r);
    uint8_t flags = get_u8(r);
    d->packet_id = get_u16(r);
    d->xid = get_u64(r);
    if (r->why)
        return false;
    if (d->state > DELIVERY_WAIT_PUBCOMP)
        return refuse(r, "delivery state out of range");
    if (d->qos < 1 || d->qos > 2 || (d->state == DELIVERY_WAIT_PUBACK && d->qos != 1) ||
        (d->state >= DELIVERY_WAIT_PUBREC && d->qos != 2))
        return refuse(r, "delivery QoS out of range for its state");
    if (flags & ~(DFLAG_RETAIN | DFLAG_SHARED | DFLAG_MESSAGE))
        return refuse(r, "unknown delivery flags");
    d->retain = flags & DFLAG_RETAIN;
    d->shared = flags & DFLAG_SHARED;
    d->has_msg = flags & DFLAG_MESSAGE;
    if (d->has_msg != (d->state != DELIVERY_WAIT_PUBCOMP))
        return refuse(r, "a message where none belongs, or none where one does");
    if ((d->packet_id == 0) != (d->state == DELIVERY_QUEUED))
        return refuse(r, "packet id does not agree with the delivery state");
    return !d->has_msg || get_message(r, &d->msg);
}

/* Puts one decoded delivery into s: 1 if it was taken, 0 if not, -1 when
 * out of memory or the store write failed. */
static int import_one(struct session *s, const struct delivery_view *v, bool keep_inflight,
                      int64_t now)
{
    struct message *m = NULL;
    if (v->has_msg && !(m = make_message(&v->msg, now)))
        return -1;
    if (!keep_inflight) {
        int rc = 0;
        if (m)
            rc = v->shared ? session_deliver_shared(s, m, v->qos, v->retain)
                           : session_deliver(s, m, v->qos, v->retain);
        message_unref(m);
        return rc == SESSION_TAKEN;
    }
    struct delivery *d = calloc(1, sizeof *d);
    if (!d) {
        message_unref(m);
        return -1;
    }
    d->msg = m;
    d->size = m ? m->payload_len : 0;
    d->qos = v->qos;
    d->state = v->state;
    d->packet_id = v->packet_id;
    d->retain = v->retain;
    d->shared = v->shared;
    return session_append_delivery(s, d) == 0 ? 1 : -1;
}

long session_state_import(struct session *s, const uint8_t *chunk, size_t len, bool keep_inflight,
                          bool (*skip)(struct session *s, uint64_t xid, void *arg), void *arg,
                          const char **why)
{
    struct in r;
    struct delivery_view v;
    /* The whole chunk is checked before anything of it is imported. */
    uint32_t n = start(&r, chunk, len, KIND_CHUNK) ? get_count(&r, MIN_DELIVERY) : 0;
    for (uint32_t i = 0; i < n && get_delivery(&r, &v); i++)
        ;
    if (!at_end(&r)) {
        *why = r.why;
        return -1;
    }
    start(&r, chunk, len, KIND_CHUNK);
    n = get_u32(&r);
    int64_t now = message_now_ms();
    long imported = 0;
    for (uint32_t i = 0; i < n; i++) {
        get_delivery(&r, &v);
        if (v.xid != 0 && skip && skip(s, v.xid, arg))
            continue;
        int rc = import_one(s, &v, keep_inflight, now);
        if (rc < 0) {
            *why = "out of memory or a store write failed";
            return -1;
        }
        imported += rc;
    }
    return imported;
}
