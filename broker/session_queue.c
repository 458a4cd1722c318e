/*
 * session_queue.c - a session's messages: the outbound queue, its bounds and
 * full-queue policy, the inflight window and packet ids, the pump that
 * sends what the window allows, the acknowledgements that free it, the
 * hand-off of shared deliveries to another member, and the inbound QoS 2
 * ids waiting for PUBREL.  See session.h for the contract.
 */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>

#include "acl_session.h"
#include "broker.h"
#include "conn.h"
#include "conn_wait.h"
#include "flow.h"
#include "log.h"
#include "message.h"
#include "mqtt_codec.h"
#include "store.h"

static struct log_ratelimit drop_log;

void session_free_deliveries(struct delivery_list *l)
{
    struct delivery *d = l->head;
    while (d) {
        struct delivery *next = d->next;
        message_unref(d->msg);
        free(d);
        d = next;
    }
    l->head = l->tail = NULL;
    l->count = 0;
}

/* ---- outbound queue ---- */

static void list_append(struct delivery_list *l, struct delivery *d)
{
    d->next = NULL;
    if (l->tail)
        l->tail->next = d;
    else
        l->head = d;
    l->tail = d;
    l->count++;
}

static struct delivery *list_pop_head(struct delivery_list *l)
{
    struct delivery *d = l->head;
    if (d) {
        l->head = d->next;
        if (!l->head)
            l->tail = NULL;
        l->count--;
        d->next = NULL;
    }
    return d;
}

static void count_drop(struct session *s, const char *why)
{
    broker.stats.publish_dropped++;
    long suppressed = log_ratelimit_check(&drop_log, 10);
    if (suppressed >= 0)
        log_warning("client %s: message dropped: %s%s", s->log_id, why,
                    log_suppressed(suppressed));
}

/* Packet ids in use are those of the in-flight list.  While it is short a
 * scan is cheapest; a session with more in flight keeps a bitmap of the
 * ids it may use: set when an id is given, cleared when its exchange
 * completes.  Other removals (a shared message moved away) leave their bit
 * set: the bitmap may hold more than is in use, never less, and is rebuilt
 * from the list when that costs more than a scan would. */
#define IDS_BITMAP_FROM 16

static bool id_bit(const uint8_t *map, uint16_t id) { return map[id >> 3] & (1u << (id & 7)); }
static void set_id_bit(uint8_t *map, uint16_t id) { map[id >> 3] |= (uint8_t)(1u << (id & 7)); }
static void clear_id_bit(uint8_t *map, uint16_t id) { map[id >> 3] &= (uint8_t)~(1u << (id & 7)); }

static void rebuild_ids(struct session *s)
{
    memset(s->ids_out, 0, 65536 / 8);
    for (const struct delivery *d = s->inflight.head; d; d = d->next)
        set_id_bit(s->ids_out, d->packet_id);
}

static bool packet_id_in_use(const struct session *s, uint16_t id)
{
    if (s->ids_out)
        return id_bit(s->ids_out, id);
    for (const struct delivery *d = s->inflight.head; d; d = d->next)
        if (d->packet_id == id)
            return true;
    return false;
}

static uint16_t next_packet_id(struct session *s)
{
    if (!s->ids_out && s->inflight.count >= IDS_BITMAP_FROM &&
        (s->ids_out = malloc(65536 / 8)) != NULL)
        rebuild_ids(s);
    uint32_t skipped = 0;
    do {
        s->last_packet_id++;
        if (s->last_packet_id == 0)
            s->last_packet_id = 1;
        if (s->ids_out && ++skipped > s->inflight.count + 1) {
            rebuild_ids(s); /* stale bits: more skipped than are in use */
            skipped = 0;
        }
    } while (packet_id_in_use(s, s->last_packet_id));
    if (s->ids_out)
        set_id_bit(s->ids_out, s->last_packet_id);
    return s->last_packet_id;
}

static uint64_t mem_of(uint32_t size) { return (uint64_t)size + SESSION_DELIVERY_OVERHEAD; }

/* The in-memory queue: these keep s->queued_mem true. */
static void queue_push(struct session *s, struct delivery *d)
{
    list_append(&s->queued, d);
    s->queued_mem += mem_of(d->size);
}

static struct delivery *queue_pop(struct session *s)
{
    struct delivery *d = list_pop_head(&s->queued);
    if (d)
        s->queued_mem -= mem_of(d->size);
    return d;
}

/* Would one more message of `size` bytes pass the queue's bound, scaled
 * by pct percent (100 = the bound itself)?  A stored session is bounded
 * on disk; one that is not keeps its whole queue in memory. */
static bool over_bound(const struct session *s, uint32_t size, uint64_t pct)
{
    const struct config *cfg = &broker.cfg;
    uint64_t max_msgs = s->own_bounds ? s->own_max_messages : cfg->max_queued_messages;
    uint64_t max_bytes = s->own_bounds ? s->own_max_bytes : cfg->max_queued_bytes;
    if ((uint64_t)s->n_queued * 100 >= max_msgs * pct)
        return true;
    if (max_bytes && (s->queued_bytes + size) * 100 > max_bytes * pct)
        return true;
    return !s->db_id &&
           (s->queued_mem + mem_of(size)) * 100 > (uint64_t)cfg->max_queued_memory * pct;
}

static bool queue_full(const struct session *s, uint32_t size) { return over_bound(s, size, 100); }

/* Publishers slowed by s go on once it is down to three quarters. */
#define LOW_WATERMARK_PCT 75

static void maybe_release_publishers(struct session *s)
{
    if (!LIST_EMPTY(&s->flow_waiters) && !over_bound(s, 0, LOW_WATERMARK_PCT))
        flow_release(s);
}

/* Drops the oldest unsent delivery; false if there is none. */
static bool drop_oldest(struct session *s)
{
    uint32_t size;
    struct delivery *d = queue_pop(s);
    if (d) {
        if (s->db_id)
            store_delivery_delete(s, d->seq);
        size = d->size;
        message_unref(d->msg);
        free(d);
    } else if (s->backlog == 0 || store_delivery_drop_oldest(s, s->loaded_seq, &size) != 1) {
        return false;
    } else {
        s->backlog--;
    }
    s->n_queued--;
    s->queued_bytes -= size;
    broker.stats.queue_full++;
    count_drop(s, "queue full, oldest message dropped (queue_full_policy drop-oldest)");
    return true;
}

/* Counts a message whose Message Expiry Interval ran out before it could be
 * sent: queued, retained or just routed. */
static bool expired_now(const struct message *msg)
{
    if (msg->expires_at == 0 || !message_expired(msg, message_now_ms()))
        return false;
    broker.stats.msgs_expired++;
    return true;
}

static int deliver(struct session *s, struct message *msg, uint8_t qos, bool retain, bool shared);
static uint32_t window(const struct session *s);

int session_deliver(struct session *s, struct message *msg, uint8_t qos, bool retain)
{
    return deliver(s, msg, qos, retain, false);
}

int session_deliver_shared(struct session *s, struct message *msg, uint8_t qos, bool retain)
{
    return deliver(s, msg, qos, retain, true);
}

/* The queue of s is full for a message of `size`: may it take it all the
 * same?  An online session takes it under the block policy and slows the
 * publisher, which is then bounded by what flow control lets it have
 * unacknowledged (flow.h).  With no publisher to slow (a will, $SYS, a
 * client publishing to itself) it takes up to twice its bound. */
static bool take_over_bound(struct session *s, uint32_t size)
{
    if (broker.cfg.queue_full_policy != QUEUE_BLOCK || !s->conn)
        return false;
    if (flow_wait_for(s, size))
        return true;
    if (over_bound(s, size, 200))
        return false;
    broker.stats.queue_over_bound++;
    return true;
}

/* Records that the open store batch queued seq for s (see
 * session_store_rolled_back); false when no batch is open. */
static bool note_added(struct session *s, int64_t seq)
{
    uint64_t batch = store_open_batch();
    if (batch == 0)
        return false;
    if (s->added_batch != batch) {
        s->added_batch = batch;
        s->added_first_seq = seq;
        s->added_backlog = 0;
        s->added_backlog_bytes = 0;
    }
    return true;
}

static int deliver(struct session *s, struct message *msg, uint8_t qos, bool retain, bool shared)
{
    if (expired_now(msg))
        return 0;
    if (qos == 0) {
        if (!s->conn)
            return 0; /* QoS 0 is not kept for offline sessions */
        if (!conn_can_write(s->conn)) {
            broker.stats.output_buffer_full++;
            count_drop(s, "slow consumer, output buffer full (QoS 0)");
            return 0;
        }
        conn_send_publish(s->conn, msg, 0, 0, false, retain);
        return 0;
    }
    uint32_t size = msg->payload_len;
    if (queue_full(s, size) && !take_over_bound(s, size)) {
        if (broker.cfg.queue_full_policy == QUEUE_DROP_OLDEST)
            while (queue_full(s, size) && drop_oldest(s))
                ;
        if (queue_full(s, size)) {
            broker.stats.queue_full++;
            count_drop(s, s->conn ? "queue full (max_queued_messages / max_queued_bytes)"
                                  : "queue of an offline session full (max_queued_messages / "
                                    "max_queued_bytes)");
            return SESSION_REFUSED;
        }
    }
    struct delivery *d = calloc(1, sizeof *d);
    if (!d) {
        count_drop(s, "out of memory");
        return 0;
    }
    d->msg = message_ref(msg);
    d->qos = qos;
    d->retain = retain;
    d->shared = shared;
    d->size = size;
    d->state = DELIVERY_QUEUED;
    d->seq = ++s->last_seq;
    if (s->db_id && (store_message_add(msg) != 0 || store_delivery_add(s, d, msg) != 0)) {
        /* The turn's transaction is doomed: the publisher gets no
         * acknowledgement and will resend. */
        message_unref(d->msg);
        free(d);
        return 0;
    }
    s->n_queued++;
    s->queued_bytes += size;
    bool added_now = s->db_id && note_added(s, d->seq);
    if (s->db_id && (s->backlog > 0 || !s->conn ||
                     s->queued_mem + mem_of(size) > broker.cfg.max_queued_memory)) {
        /* Later than what is in memory, or for an offline session (which
         * costs no message memory): it waits in the store, in order. */
        s->backlog++;
        if (added_now) {
            s->added_backlog++;
            s->added_backlog_bytes += size;
        }
        message_unref(d->msg);
        free(d);
        return SESSION_TAKEN;
    }
    queue_push(s, d);
    s->loaded_seq = d->seq;
    if (s->conn && s->inflight.count >= window(s))
        broker.stats.inflight_full++;
    if (s->conn)
        session_pump(s);
    return SESSION_TAKEN;
}

void session_loaded_delivery(struct session *s, struct delivery *d)
{
    if (s->backlog)
        s->backlog--;
    if (s->added_backlog && s->added_batch == store_open_batch() && d->seq >= s->added_first_seq) {
        s->added_backlog--; /* read back in the batch that added it */
        s->added_backlog_bytes -= d->size;
    }
    s->loaded_seq = d->seq;
    /* Rows in a QoS 2 handshake were in flight when petreld stopped. */
    if (d->state == DELIVERY_QUEUED)
        queue_push(s, d);
    else
        list_append(&s->inflight, d);
}

static void send_pubrel(struct session *s, const struct delivery *d)
{
    struct mqtt_packet p = {.type = MQTT_PUBREL};
    p.u.ack.packet_id = d->packet_id;
    conn_send_packet(s->conn, &p);
}

/* Marks in-flight deliveries from `d` on as to be resent on this
 * connection (session_pump sends them within the window); a PUBREL goes at
 * once: it adds nothing to what the client holds. */
static void mark_unsent(struct session *s, struct delivery *d)
{
    for (; d; d = d->next) {
        if (d->state == DELIVERY_WAIT_PUBCOMP) {
            send_pubrel(s, d);
        } else if (!d->unsent) {
            d->unsent = true;
            s->n_unsent++;
        }
    }
}

/* Reads the next window of a stored queue; deliveries that were in a QoS 2
 * handshake when petreld stopped are resent at once. */
/* Rows read back at once at most: one ordered range read, a few ms. */
#define REFILL_ROWS 2048

/* How many rows to read back: as many as max_queued_memory holds at the
 * queue's average message size, within REFILL_ROWS. */
static uint32_t refill_rows(const struct session *s)
{
    uint64_t avg = s->n_queued ? s->queued_bytes / s->n_queued : 0;
    uint64_t rows = broker.cfg.max_queued_memory / mem_of((uint32_t)avg);
    return rows < 1 ? 1 : rows > REFILL_ROWS ? REFILL_ROWS : (uint32_t)rows;
}

static void refill(struct session *s)
{
    struct delivery *last = s->inflight.tail;
    int n = store_load_deliveries(s, s->loaded_seq, refill_rows(s), session_loaded_delivery);
    if (n == 0) {
        log_error("client %s: %u queued messages expected in the store, none found", s->log_id,
                  s->backlog);
        s->backlog = 0;
    }
    if (n <= 0)
        return;
    mark_unsent(s, last ? last->next : s->inflight.head);
}

/* The outbound window: max_inflight, and for a 5.0 client no more than its
 * Receive Maximum. */
static uint32_t window(const struct session *s)
{
    uint32_t w = broker.cfg.max_inflight;
    return s->conn->receive_max_out < w ? s->conn->receive_max_out : w;
}

/* A delivery taken off the queue that will never be sent. */
static void discard(struct session *s, struct delivery *d)
{
    if (s->db_id)
        store_delivery_delete(s, d->seq);
    message_unref(d->msg);
    free(d);
}

/* ---- moving shared deliveries to another member ---- */

/* Removes d, which follows prev (NULL: d is the head), from l. */
static void list_unlink(struct delivery_list *l, struct delivery *prev, struct delivery *d)
{
    if (prev)
        prev->next = d->next;
    else
        l->head = d->next;
    if (l->tail == d)
        l->tail = prev;
    l->count--;
    d->next = NULL;
}

/* d, which followed prev, left the in-flight list: keeps n_unsent and the
 * resend cursor true. */
static void inflight_unlinked(struct session *s, struct delivery *prev, struct delivery *d)
{
    if (d->unsent) {
        d->unsent = false;
        s->n_unsent--;
    }
    if (s->resend_after == d)
        s->resend_after = prev;
}

/* Removes in-flight d (after prev) for good: its packet id is free again
 * and its row is deleted. */
static void inflight_drop(struct session *s, struct delivery *prev, struct delivery *d)
{
    list_unlink(&s->inflight, prev, d);
    inflight_unlinked(s, prev, d);
    if (s->ids_out)
        clear_id_bit(s->ids_out, d->packet_id);
    discard(s, d);
}

static bool in_list(const struct delivery_list *l, int64_t seq)
{
    for (const struct delivery *d = l->head; d; d = d->next)
        if (d->seq == seq)
            return true;
    return false;
}

/* One pass of session_move_shared over what is in s's lists, the two
 * merged by seq.  Rows also in `skip` (the in-memory in-flight list while
 * a stored window is read) were offered already. */
static uint32_t move_listed(struct session *s, bool queued_only, const struct delivery_list *skip,
                            bool (*take)(struct session *, struct message *, void *), void *arg)
{
    struct delivery_list *lists[2] = {&s->inflight, &s->queued};
    struct delivery *prev[2] = {NULL, NULL};
    struct delivery *cur[2] = {s->inflight.head, s->queued.head};
    uint32_t moved = 0;
    while (cur[0] || cur[1]) {
        int i = !cur[0] || (cur[1] && cur[1]->seq < cur[0]->seq);
        struct delivery *d = cur[i];
        cur[i] = d->next;
        /* Past PUBREC the client has the message: nothing to move. */
        bool movable = d->shared && d->msg &&
                       (queued_only ? d->state == DELIVERY_QUEUED
                                    : d->state != DELIVERY_WAIT_PUBCOMP) &&
                       !(skip && in_list(skip, d->seq));
        if (!movable || !take(s, d->msg, arg)) {
            prev[i] = d;
            continue;
        }
        list_unlink(lists[i], prev[i], d);
        if (i == 0)
            inflight_unlinked(s, prev[i], d);
        else
            s->queued_mem -= mem_of(d->size);
        if (d->state == DELIVERY_QUEUED) {
            s->n_queued--;
            s->queued_bytes -= d->size;
        }
        discard(s, d);
        moved++;
    }
    return moved;
}

uint32_t session_move_shared(struct session *s, bool queued_only,
                             bool (*take)(struct session *s, struct message *msg, void *arg),
                             void *arg)
{
    uint32_t moved = move_listed(s, queued_only, NULL, take, arg);
    if (!s->db_id || s->backlog == 0)
        return moved;
    /* The rest is only in the store: read it a window at a time into
     * empty lists, move what goes, and let the rest go from memory again
     * (its rows stay).  Lower seqs are always read first, so the order
     * holds across the windows and after what was in memory. */
    struct delivery_list inflight = s->inflight, queued = s->queued;
    uint64_t queued_mem = s->queued_mem;
    int64_t loaded_seq = s->loaded_seq;
    uint32_t backlog = s->backlog;
    s->inflight = (struct delivery_list){0};
    s->queued = (struct delivery_list){0};
    s->queued_mem = 0;
    int64_t after = loaded_seq;
    for (;;) {
        int n = store_load_deliveries(s, after, refill_rows(s), session_loaded_delivery);
        if (n <= 0)
            break;
        after = s->loaded_seq;
        uint32_t m = move_listed(s, queued_only, &inflight, take, arg);
        moved += m;
        backlog -= m < backlog ? m : backlog;
        session_free_deliveries(&s->inflight);
        session_free_deliveries(&s->queued);
        s->queued_mem = 0;
    }
    s->inflight = inflight;
    s->queued = queued;
    s->queued_mem = queued_mem;
    s->loaded_seq = loaded_seq;
    s->backlog = backlog;
    return moved;
}

/* ---- the whole queue, for a hand-off to another node (session_state.c) ---- */

/* Rows read back by session_each_delivery: all in one list, in seq order
 * whatever their state, and no counter touched. */
static void collect_row(struct session *s, struct delivery *d)
{
    list_append(&s->queued, d);
    s->loaded_seq = d->seq;
}

static int each_listed(struct session *s, const struct delivery_list *l,
                       const struct delivery_list *skip,
                       int (*fn)(struct session *, const struct delivery *, void *), void *arg)
{
    for (const struct delivery *d = l->head; d; d = d->next)
        if (!(skip && in_list(skip, d->seq)) && fn(s, d, arg) != 0)
            return -1;
    return 0;
}

int session_each_delivery(struct session *s,
                          int (*fn)(struct session *s, const struct delivery *d, void *arg),
                          void *arg)
{
    if (each_listed(s, &s->inflight, NULL, fn, arg) != 0 ||
        each_listed(s, &s->queued, NULL, fn, arg) != 0)
        return -1;
    if (!s->db_id || s->backlog == 0)
        return 0;
    /* As in session_move_shared: windows read into empty lists, then let
     * go; rows also in the in-memory in-flight list were visited. */
    struct delivery_list inflight = s->inflight, queued = s->queued;
    int64_t loaded_seq = s->loaded_seq;
    uint32_t rows = refill_rows(s);
    s->inflight = (struct delivery_list){0};
    s->queued = (struct delivery_list){0};
    int rc = 0;
    for (int64_t after = loaded_seq;;) {
        int n = store_load_deliveries(s, after, rows, collect_row);
        if (n < 0)
            rc = -1;
        else if (n > 0)
            rc = each_listed(s, &s->queued, &inflight, fn, arg);
        after = s->loaded_seq;
        session_free_deliveries(&s->queued);
        if (n <= 0 || rc != 0)
            break;
    }
    s->inflight = inflight;
    s->queued = queued;
    s->loaded_seq = loaded_seq;
    return rc;
}

int session_append_delivery(struct session *s, struct delivery *d)
{
    bool queued = d->state == DELIVERY_QUEUED;
    d->next = NULL;
    d->unsent = false;
    d->seq = ++s->last_seq;
    if (s->db_id) {
        struct message *row = d->msg ? message_ref(d->msg) : message_new("", 0, NULL, 0, 2, false);
        int rc = !row || store_message_add(row) != 0 || store_delivery_add(s, d, row) != 0 ||
                         (!queued && store_delivery_state(s, d) != 0)
                     ? -1
                     : 0;
        message_unref(row);
        if (rc != 0) {
            message_unref(d->msg);
            free(d);
            return -1;
        }
    }
    if (queued) {
        s->n_queued++;
        s->queued_bytes += d->size;
    }
    bool added_now = s->db_id && note_added(s, d->seq);
    if (s->db_id && (queued || s->backlog > 0)) {
        /* In the store only, like an offline session's new messages; an
         * in-flight one after such rows too, so that the memory holds no
         * seq past loaded_seq (refill would read it twice).  A rollback
         * takes back the queued ones (session_store_rolled_back). */
        s->backlog++;
        if (added_now && queued) {
            s->added_backlog++;
            s->added_backlog_bytes += d->size;
        }
        message_unref(d->msg);
        free(d);
        return 0;
    }
    s->loaded_seq = d->seq;
    if (queued)
        queue_push(s, d);
    else
        list_append(&s->inflight, d);
    return 0;
}

void session_store_rolled_back(struct session *s, uint64_t batch)
{
    if (s->added_batch != batch)
        return;
    s->added_batch = 0;
    uint32_t n = s->added_backlog < s->backlog ? s->added_backlog : s->backlog;
    s->backlog -= n;
    s->n_queued -= n < s->n_queued ? n : s->n_queued;
    s->queued_bytes -= s->added_backlog_bytes < s->queued_bytes ? s->added_backlog_bytes
                                                                 : s->queued_bytes;
    /* Unsent ones still in memory (in seq order: the batch's are last).
     * Those already sent stay in flight: their acknowledgement deletes
     * nothing, and the publisher's resend is a QoS 1 duplicate. */
    struct delivery *prev = NULL, *d = s->queued.head;
    while (d && d->seq < s->added_first_seq) {
        prev = d;
        d = d->next;
    }
    while (d) {
        struct delivery *next = d->next;
        list_unlink(&s->queued, prev, d);
        s->queued_mem -= mem_of(d->size);
        s->n_queued--;
        s->queued_bytes -= d->size;
        message_unref(d->msg);
        free(d);
        d = next;
    }
    maybe_release_publishers(s);
}

/* Resends the first in-flight delivery marked unsent, or removes it if its
 * Message Expiry Interval has passed [MQTT-3.3.2-5] or it is over the
 * client's Maximum Packet Size (5.0 3.1.2.11.4: as if delivered).  A
 * dropped one's packet id comes back only after the 65535 others (ids are
 * given in turn), long after a client could still hold it. */
static void resend_next(struct session *s)
{
    struct delivery *prev = s->resend_after;
    struct delivery *d = prev ? prev->next : s->inflight.head;
    while (d && !d->unsent) {
        prev = d;
        d = d->next;
    }
    if (!d) { /* cannot happen: n_unsent counts the marked ones */
        s->n_unsent = 0;
        return;
    }
    d->unsent = false;
    s->n_unsent--;
    int rc = conn_send_publish(s->conn, d->msg, d->qos, d->packet_id, true, d->retain);
    if (rc == CONN_TOO_LARGE || rc == CONN_EXPIRED) {
        if (rc == CONN_EXPIRED)
            broker.stats.msgs_expired++;
        else
            count_drop(s, "over the client's maximum packet size (in flight, resumed)");
        inflight_drop(s, prev, d);
        s->resend_after = prev;
        return;
    }
    s->resend_after = d;
}

void session_pump(struct session *s)
{
    while (s->conn && conn_can_write(s->conn)) {
        if (s->n_unsent > 0) {
            /* What the client holds unacknowledged from this connection
             * stays within the window; new messages wait for the old. */
            if (s->inflight.count - s->n_unsent >= window(s))
                break;
            resend_next(s);
            continue;
        }
        if (s->inflight.count >= window(s))
            break;
        if (!s->queued.head && s->backlog > 0) {
            refill(s);
            if (s->n_unsent > 0)
                continue; /* in-flight rows read back go first */
        }
        struct delivery *d = queue_pop(s);
        if (!d)
            break;
        s->n_queued--;
        s->queued_bytes -= d->size;
        if (acl_enabled() && !acl_may_read(s, d->msg->topic, d->msg->topic_len)) {
            /* Queued under rules that a reload has since taken away. */
            broker.stats.acl_read_denied++;
            discard(s, d);
            continue;
        }
        if (expired_now(d->msg)) {
            discard(s, d);
            continue;
        }
        d->packet_id = next_packet_id(s);
        d->state = d->qos == 1 ? DELIVERY_WAIT_PUBACK : DELIVERY_WAIT_PUBREC;
        int rc;
        if (d->qos == 2 && s->db_id) {
            /* Exactly once across a crash needs the packet id on disk
             * before the client sees it: resent after a restart with
             * another id, the message would be a new one to the client. */
            store_delivery_state(s, d);
            rc = conn_send_publish_durable(s->conn, d->msg, 2, d->packet_id, false, d->retain);
        } else {
            /* QoS 1 may be duplicated: its in-flight state is stored only
             * when the session goes offline (session_detach), not per
             * message, which would cost a third more writes. */
            rc = conn_send_publish(s->conn, d->msg, d->qos, d->packet_id, false, d->retain);
        }
        if (rc == CONN_TOO_LARGE || rc == CONN_EXPIRED) {
            /* 5.0: a message the client cannot take is dropped as if it had
             * been delivered (section 3.1.2.11.4). */
            if (rc == CONN_EXPIRED)
                broker.stats.msgs_expired++;
            else
                count_drop(s, "over the client's maximum packet size");
            discard(s, d);
            continue;
        }
        list_append(&s->inflight, d);
    }
    maybe_release_publishers(s);
}

/* Finds the in-flight delivery with this id in the given state; unlinks it
 * when `unlink` is set. */
static struct delivery *find_inflight(struct session *s, uint16_t id, uint8_t state, bool unlink)
{
    struct delivery *prev = NULL;
    for (struct delivery *d = s->inflight.head; d; prev = d, d = d->next) {
        if (d->packet_id != id || d->state != state)
            continue;
        if (unlink) {
            list_unlink(&s->inflight, prev, d);
            inflight_unlinked(s, prev, d);
        }
        return d;
    }
    return NULL;
}

int session_inflight_state(const struct session *s, uint16_t id)
{
    for (const struct delivery *d = s->inflight.head; d; d = d->next)
        if (d->packet_id == id)
            return d->state;
    return -1;
}

static bool complete(struct session *s, uint16_t id, uint8_t state)
{
    struct delivery *d = find_inflight(s, id, state, true);
    if (!d)
        return false;
    if (s->ids_out)
        clear_id_bit(s->ids_out, id);
    if (s->db_id)
        store_delivery_delete(s, d->seq);
    message_unref(d->msg);
    free(d);
    session_pump(s);
    return true;
}

bool session_puback(struct session *s, uint16_t id) { return complete(s, id, DELIVERY_WAIT_PUBACK); }
bool session_pubrec_refused(struct session *s, uint16_t id) { return complete(s, id, DELIVERY_WAIT_PUBREC); }
bool session_pubcomp(struct session *s, uint16_t id) { return complete(s, id, DELIVERY_WAIT_PUBCOMP); }

bool session_pubrec(struct session *s, uint16_t id)
{
    struct delivery *d = find_inflight(s, id, DELIVERY_WAIT_PUBREC, false);
    if (!d) {
        /* A repeated PUBREC for a message already released still needs its
         * PUBREL so that the client can finish. */
        d = find_inflight(s, id, DELIVERY_WAIT_PUBCOMP, false);
        if (!d)
            return false;
    }
    if (d->state != DELIVERY_WAIT_PUBCOMP) {
        d->state = DELIVERY_WAIT_PUBCOMP;
        message_unref(d->msg); /* the client has it now: keep only the id */
        d->msg = NULL;
        if (s->db_id)
            store_delivery_state(s, d);
    }
    /* After the state is stored: a PUBREL that overtook it and a crash
     * would make the restarted broker resend the PUBLISH. */
    struct mqtt_packet p = {.type = MQTT_PUBREL};
    p.u.ack.packet_id = d->packet_id;
    conn_wait_send(s->conn, &p, false);
    return true;
}

void session_resend_inflight(struct session *s)
{
    /* Expired ones go at once, not when the window reaches them. */
    struct delivery *prev = NULL, *d = s->inflight.head;
    while (d) {
        struct delivery *next = d->next;
        d->unsent = false;
        if (d->msg && expired_now(d->msg))
            inflight_drop(s, prev, d);
        else
            prev = d;
        d = next;
    }
    s->n_unsent = 0;
    s->resend_after = NULL;
    mark_unsent(s, s->inflight.head);
    session_pump(s);
}

/* ---- inbound QoS 2 ---- */

bool session_qos2_pending(const struct session *s, uint16_t id)
{
    return s->qos2_ids && (s->qos2_ids[id >> 3] & (1u << (id & 7)));
}

int session_qos2_mark(struct session *s, uint16_t id)
{
    if (!s->qos2_ids) {
        s->qos2_ids = calloc(65536 / 8, 1);
        if (!s->qos2_ids)
            return -1;
    }
    if (!session_qos2_pending(s, id)) {
        s->qos2_ids[id >> 3] |= (uint8_t)(1u << (id & 7));
        s->n_qos2_ids++;
        store_qos2_add(s, id);
    }
    return 0;
}

void session_qos2_release(struct session *s, uint16_t id)
{
    if (!session_qos2_pending(s, id))
        return;
    s->qos2_ids[id >> 3] &= (uint8_t)~(1u << (id & 7));
    s->n_qos2_ids--;
    store_qos2_delete(s, id);
}
