/*
 * bridge_local.c - a bridge's in-process connection to this broker: a
 * bufferevent pair whose other end the broker takes as an ordinary client
 * connection (conn_new_bufferevent), MQTT 5.0, client id "$bridge/NAME",
 * persistent session.  Everything the broker does for a client - the
 * store, queue bounds, flow control, acknowledgements after the commit,
 * resending in-flight messages on reattach - applies unchanged.
 *
 * libevent does not tell one end of a pair that the other was freed, so
 * bridge_local_alive asks whether the partner is still there; the broker
 * frees its end when it closes the connection.
 */
#include "bridge_int.h"

#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker.h"
#include "conn.h"
#include "log.h"
#include "session.h"
#include "transport.h"

/* Output towards the broker beyond this stops reading the remote. */
#define LOCAL_HIGH_WATER (256u * 1024u)

bool bridge_local_alive(struct bridge *b)
{
    return b->local && bufferevent_pair_get_partner(b->local) != NULL;
}

int bridge_local_write(struct bridge *b, const void *data, size_t len)
{
    if (!bridge_local_alive(b))
        return -1;
    if (bufferevent_write(b->local, data, len) != 0)
        return -1;
    b->local_last_sent_ms = bridge_now_ms();
    return 0;
}

bool bridge_local_can_write(const struct bridge *b)
{
    return b->local && evbuffer_get_length(bufferevent_get_output(b->local)) < LOCAL_HIGH_WATER;
}

void bridge_local_set_reading(struct bridge *b, bool reading)
{
    b->local_read_paused = !reading;
    if (b->local)
        transport_bev_reading(b->local, reading);
}

void bridge_local_close(struct bridge *b)
{
    if (!b->local)
        return;
    if (bridge_local_alive(b) && b->local_conn)
        conn_close(b->local_conn, "bridge connection closed", false);
    b->local_conn = NULL;
    b->local_up = false;
    b->local_read_paused = false;
    struct bufferevent *bev = b->local;
    b->local = NULL;
    if (b->local_depth > 0) {
        /* Inside our own callback: freed on the way out. */
        bufferevent_disable(bev, EV_READ | EV_WRITE);
        bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
        b->local_zombie = bev;
        return;
    }
    bufferevent_free(bev);
}

static void on_connack(struct bridge *b, const struct mqtt_connack *ca)
{
    if (ca->return_code != 0) {
        bridge_fail(b, "the broker refused the bridge's local connection: %s",
                    mqtt_reason_str(ca->return_code));
        return;
    }
    struct mqtt_prop pr;
    b->local_keepalive = 0;
    if (mqtt_props_find(&ca->props, MQTT_PROP_SERVER_KEEP_ALIVE, &pr))
        b->local_keepalive = (uint16_t)pr.num;
    b->local_up = true;
    /* CONNECT's Session Expiry Interval was capped by session_expiry: the
     * bridge's session does not expire (bridge.c). */
    struct session *s = session_find(b->local_id, strlen(b->local_id));
    if (s)
        session_set_expiry(s, true, UINT32_MAX);
    bridge_set_state(b, BRIDGE_UP);
    bridge_remote_set_reading(b, true);
    /* Until the remote's SUBACK, the local session's PUBLISHes wait unread:
     * their ids go to the remote, and the SUBSCRIBE has id 1 (bridge_remote.c). */
    if (b->suback_pending)
        bridge_local_set_reading(b, false);
}

static void handle(struct bridge *b, uint8_t first, const uint8_t *body, uint32_t len)
{
    struct mqtt_packet p;
    const char *why = NULL;
    enum mqtt_err e = mqtt_decode(BRIDGE_LOCAL_LEVEL, first, body, len, &p, &why);
    if (e != MQTT_OK) {
        bridge_fail(b, "bad packet from the broker: %s", why ? why : mqtt_err_str(e));
        return;
    }
    if (!b->local_up) {
        if (p.type == MQTT_CONNACK)
            on_connack(b, &p.u.connack);
        else
            bridge_fail(b, "the broker sent %s before CONNACK", mqtt_type_name(p.type));
        return;
    }
    switch (p.type) {
    case MQTT_PINGRESP:
        return;
    case MQTT_DISCONNECT:
        bridge_fail(b, "the broker ended the local connection: %s",
                    mqtt_reason_str(p.u.disconnect.reason_code));
        return;
    default:
        bridge_relay_from_local(b, &p);
        return;
    }
}

static void readcb(struct bufferevent *bev, void *arg)
{
    struct bridge *b = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    b->local_depth++;
    while (b->local == bev && !b->local_read_paused) {
        size_t avail = evbuffer_get_length(in);
        if (avail < 2)
            break;
        uint8_t hdr[MQTT_MAX_FIXED_HEADER];
        ev_ssize_t n = evbuffer_copyout(in, hdr, avail < sizeof hdr ? avail : sizeof hdr);
        uint8_t first;
        uint32_t rem;
        size_t hl;
        enum mqtt_err e = mqtt_frame_header(hdr, (size_t)n, 0, &first, &rem, &hl);
        if (e == MQTT_INCOMPLETE)
            break;
        if (e != MQTT_OK) {
            bridge_fail(b, "bad frame from the broker");
            break;
        }
        if (avail < hl + rem)
            break;
        uint8_t *pkt = evbuffer_pullup(in, (ev_ssize_t)(hl + rem));
        if (!pkt) {
            bridge_fail(b, "out of memory reading from the broker");
            break;
        }
        handle(b, first, pkt + hl, rem);
        if (b->local == bev)
            evbuffer_drain(in, hl + rem);
    }
    if (--b->local_depth == 0 && b->local_zombie) {
        bufferevent_free(b->local_zombie);
        b->local_zombie = NULL;
    }
}

static void writecb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct bridge *b = arg;
    b->local_depth++;
    bridge_relay_drained(b);
    if (--b->local_depth == 0 && b->local_zombie) {
        bufferevent_free(b->local_zombie);
        b->local_zombie = NULL;
    }
}

static void eventcb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct bridge *b = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        b->local_depth++;
        bridge_fail(b, "the local connection ended");
        if (--b->local_depth == 0 && b->local_zombie) {
            bufferevent_free(b->local_zombie);
            b->local_zombie = NULL;
        }
    }
}

static int send_connect(struct bridge *b)
{
    struct mqtt_packet p = {.type = MQTT_CONNECT};
    struct mqtt_connect *ck = &p.u.connect;
    ck->clean_session = false;
    ck->keepalive = 0;
    ck->client_id.data = (const uint8_t *)b->local_id;
    ck->client_id.len = (uint32_t)strlen(b->local_id);
    uint8_t props[32];
    struct mqtt_props_builder pb;
    mqtt_pb_init(&pb, props, sizeof props);
    mqtt_pb_num(&pb, MQTT_PROP_SESSION_EXPIRY, 0xFFFFFFFFu);
    /* The broker keeps in flight to us what the remote lets us have in
     * flight to it: every one we relay keeps its packet id. */
    mqtt_pb_num(&pb, MQTT_PROP_RECEIVE_MAXIMUM, b->remote_receive_max ? b->remote_receive_max : 1);
    if (b->remote_max_packet)
        mqtt_pb_num(&pb, MQTT_PROP_MAXIMUM_PACKET_SIZE, b->remote_max_packet);
    ck->props = mqtt_pb_props(&pb);
    return bridge_encode(BRIDGE_LOCAL_LEVEL, &p, bridge_local_write, b);
}

int bridge_local_connect(struct bridge *b)
{
    struct bufferevent *pair[2];
    if (bufferevent_pair_new(broker.base, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, pair) !=
        0)
        return -1;
    struct conn *c = conn_new_bufferevent(pair[1]); /* takes pair[1], frees it on failure */
    if (!c) {
        bufferevent_free(pair[0]);
        return -1;
    }
    b->local = pair[0];
    b->local_conn = c;
    b->local_up = false;
    b->local_read_paused = false;
    bufferevent_setcb(pair[0], readcb, writecb, eventcb, b);
    bufferevent_setwatermark(pair[0], EV_WRITE, LOCAL_HIGH_WATER / 2, 0);
    bufferevent_enable(pair[0], EV_READ | EV_WRITE);
    if (send_connect(b) != 0)
        return -1;
    return 0;
}

void bridge_local_tick(struct bridge *b, int64_t now)
{
    if (!b->local_up || b->local_keepalive == 0)
        return;
    if (now - b->local_last_sent_ms >= (int64_t)b->local_keepalive * 500) {
        struct mqtt_packet p = {.type = MQTT_PINGREQ};
        bridge_encode(BRIDGE_LOCAL_LEVEL, &p, bridge_local_write, b);
    }
}
