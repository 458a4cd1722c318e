/*
 * protocol_connect.c - CONNECT: client identifier rules, keep alive cap,
 * will, session takeover and resumption, CONNACK.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker.h"
#include "conn.h"
#include "log.h"
#include "message.h"
#include "mqtt_codec.h"
#include "protocol.h"
#include "session.h"

static void refuse(struct conn *c, uint8_t code, const char *why)
{
    log_notice("connection from %s refused: %s", c->peer, why);
    struct mqtt_packet ack = {.type = MQTT_CONNACK};
    ack.u.connack.return_code = code;
    conn_send_and_close(c, &ack, why);
}

/* An id for a client that sent none: "petrel-" and 16 random hex digits. */
static void assign_client_id(char *out, size_t len)
{
    uint8_t rnd[8];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        /* Uniqueness, not secrecy, matters here: fall back to the clock and
         * a counter. */
        static uint64_t counter;
        uint64_t v = (uint64_t)time(NULL) ^ (++counter << 32);
        memcpy(rnd, &v, sizeof rnd);
    }
    snprintf(out, len, "petrel-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3],
             rnd[4], rnd[5], rnd[6], rnd[7]);
}

int handle_connect(struct conn *c, const struct mqtt_connect *ck)
{
    evtimer_del(c->timer);
    c->level = ck->level;

    char assigned[32];
    const char *id = (const char *)ck->client_id.data;
    size_t id_len = ck->client_id.len;
    if (id_len == 0) {
        if (!ck->clean_session) {
            refuse(c, MQTT_CONNACK_ID_REJECTED, "empty client id requires clean session");
            return -1;
        }
        assign_client_id(assigned, sizeof assigned);
        id = assigned;
        id_len = strlen(assigned);
    }
    if (ck->keepalive > broker.cfg.max_keepalive) {
        /* 3.1.1 cannot tell a client to use a shorter keep alive; accepting
         * it would leave a dead peer undetected for longer than the operator
         * allows, so refuse like Mosquitto does. */
        char why[96];
        snprintf(why, sizeof why, "keep alive %u s above max_keepalive %u s", ck->keepalive,
                 broker.cfg.max_keepalive);
        refuse(c, MQTT_CONNACK_ID_REJECTED, why);
        return -1;
    }

    if (ck->will_flag) {
        c->will = message_new((const char *)ck->will_topic.data, ck->will_topic.len,
                              ck->will_payload.data, ck->will_payload.len, ck->will_qos,
                              ck->will_retain);
        if (!c->will) {
            refuse(c, MQTT_CONNACK_UNAVAILABLE, "out of memory");
            return -1;
        }
    }

    struct session *s = session_find(id, id_len);
    if (s && s->conn) {
        /* Takeover: the old connection ends abnormally, will included. */
        conn_close(s->conn, "session taken over by a new connection", true);
        s = session_find(id, id_len); /* a clean session is gone now */
    }
    if (s && ck->clean_session) {
        session_destroy(s);
        s = NULL;
    }
    bool present = s != NULL;
    if (!s) {
        s = session_create(id, id_len, !ck->clean_session);
        if (!s) {
            refuse(c, MQTT_CONNACK_UNAVAILABLE, "out of memory");
            return -1;
        }
    }

    c->session = s;
    c->state = CONN_ACTIVE;
    c->keepalive = ck->keepalive;
    broker.n_clients++;

    struct mqtt_packet ack = {.type = MQTT_CONNACK};
    ack.u.connack.session_present = present;
    ack.u.connack.return_code = MQTT_CONNACK_ACCEPTED;
    conn_send_packet(c, &ack);

    if (ck->keepalive > 0) {
        /* 1.5 x keep alive, as the specification allows the client. */
        uint32_t ms = (uint32_t)ck->keepalive * 1500;
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        bufferevent_set_timeouts(c->bev, &tv, NULL);
    }
    log_notice("client %s connected from %s (clean session %d, keep alive %u s, session %s%s)",
               s->log_id, c->peer, ck->clean_session, ck->keepalive,
               present ? "resumed" : "new", c->will ? ", will set" : "");
    session_attach(s, c);
    return 0;
}
