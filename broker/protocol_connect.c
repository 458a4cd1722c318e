/*
 * protocol_connect.c - CONNECT: client identifier rules, keep alive cap,
 * will, authentication, session takeover and resumption, CONNACK; for 5.0
 * also the CONNECT properties (session expiry, flow control, packet size,
 * topic aliases, will delay) and the CONNACK properties that answer them.
 *
 * A password check runs on a worker thread (auth_worker.h): meanwhile the
 * CONNECT waits in a `connect_wait` and the connection's input is held.
 * A refused login is answered only a second after its CONNECT arrived,
 * however fast the refusal was decided, so that guessing is slow and a
 * wrong password cannot be told from an unknown user by timing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <event2/event.h>

#include "acl_session.h"
#include "auth.h"
#include "auth_worker.h"
#include "bridge_origin.h"
#include "broker.h"
#include "conn.h"
#include "conn_log.h"
#include "keyed_hash.h"
#include "login_throttle.h"
#include "log.h"
#include "message.h"
#include "mqtt_codec.h"
#include "protocol.h"
#include "session.h"
#include "store.h"
#include "tls.h"

/* Time from CONNECT to the CONNACK of a refused login. */
#define REFUSAL_DELAY_MS 1000

/* What is kept of a CONNECT while it waits: the packet itself lives in the
 * input buffer only during handle_connect. */
struct connect_wait {
    struct conn *c;
    struct auth_job *job;       /* password check in progress */
    struct event *delay;        /* refusal delay */
    struct timespec arrived;    /* CLOCK_MONOTONIC */
    uint8_t refuse_code;
    uint8_t refuse_code5;       /* 5.0 reason code, 0 = mapped from refuse_code */
    char *client_id;
    size_t id_len;
    char *user;                 /* NULL = no user name */
    size_t user_len;
    char *user_log;             /* printable user name, for logs */
    unsigned throttle_charged;  /* login_throttle_begin's charges */
    bool clean_session;
    uint16_t keepalive;         /* granted (5.0: capped by max_keepalive) */
    /* 5.0 */
    bool keepalive_capped;      /* tell the client with Server Keep Alive */
    bool assigned_id;           /* tell the client its Assigned Client Id */
    uint32_t expiry;            /* granted Session Expiry Interval */
    bool expiry_capped;         /* tell the client it was lowered */
    bool claiming;              /* waiting for the cluster (protocol_claim) */
};

static struct log_ratelimit refused_log;
static const struct protocol_claim *claim_hook;

void protocol_set_claim(const struct protocol_claim *pc) { claim_hook = pc; }

/* The 5.0 reason code of a 3.1.1 CONNACK refusal. */
static uint8_t reason5(uint8_t code311)
{
    switch (code311) {
    case MQTT_CONNACK_BAD_PROTOCOL: return MQTT_RC_UNSUPPORTED_VERSION;
    case MQTT_CONNACK_ID_REJECTED: return MQTT_RC_CLIENT_ID_INVALID;
    case MQTT_CONNACK_UNAVAILABLE: return MQTT_RC_SERVER_UNAVAILABLE;
    case MQTT_CONNACK_BAD_CREDENTIALS: return MQTT_RC_BAD_USER_OR_PASSWORD;
    case MQTT_CONNACK_NOT_AUTHORIZED: return MQTT_RC_NOT_AUTHORIZED;
    default: return code311 >= 0x80 ? code311 : MQTT_RC_UNSPECIFIED;
    }
}

void connect_refuse(struct conn *c, uint8_t code311, uint8_t code5, const char *reason,
                    const char *why)
{
    struct mqtt_packet ack = {.type = MQTT_CONNACK};
    ack.u.connack.return_code = code311;
    struct mqtt_props_builder b;
    uint8_t buf[256];
    if (c->level == MQTT_LEVEL_5) {
        ack.u.connack.return_code = code5 ? code5 : reason5(code311);
        mqtt_pb_init(&b, buf, sizeof buf);
        if (reason && c->problem_info)
            mqtt_pb_bytes(&b, MQTT_PROP_REASON_STRING, reason,
                          strlen(reason) > 200 ? 200 : strlen(reason));
        if (!b.overflow)
            ack.u.connack.props = mqtt_pb_props(&b);
    }
    conn_send_and_close(c, &ack, why);
}

static void refuse5(struct conn *c, uint8_t code311, uint8_t code5, const char *why)
{
    if (conn_log_allow())
        log_notice("connection from %s refused: %s", conn_peer(c), why);
    /* The close keeps its reason until later: why may be on the caller's
     * stack (it was, and the close line printed what the stack held next). */
    connect_refuse(c, code311, code5, why, "CONNECT refused");
}

static void refuse(struct conn *c, uint8_t code, const char *why)
{
    refuse5(c, code, 0, why);
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

static void wait_free(struct connect_wait *w)
{
    if (w->job)
        auth_worker_cancel(w->job);
    if (w->delay)
        event_free(w->delay);
    free(w->client_id);
    free(w->user);
    free(w->user_log);
    free(w);
}

void connect_abort(struct conn *c)
{
    struct connect_wait *w = c->auth_wait;
    c->auth_wait = NULL;
    if (w && w->claiming && claim_hook)
        claim_hook->abort(c, w->client_id, w->id_len);
    if (w)
        wait_free(w);
}

/* ---- accepting --------------------------------------------------------- */

static int accept_client(struct conn *c, struct connect_wait *w)
{
    const char *id = w->client_id;
    size_t id_len = w->id_len;

    if (c->will && !acl_may_publish_as(w->user, w->user_len, id, id_len, c->will->topic,
                                       c->will->topic_len)) {
        /* As Mosquitto 2: a will the client could not publish itself is a
         * reason to refuse the connection, told at once, not at its end. */
        broker.stats.acl_publish_denied++;
        char why[160];
        snprintf(why, sizeof why, "will topic not allowed by the ACL (user '%s')",
                 w->user_log ? w->user_log : "");
        refuse(c, MQTT_CONNACK_NOT_AUTHORIZED, why);
        return -1;
    }

    struct session *s = session_find(id, id_len);
    if (s && (acl_enabled() || auth_current()) &&
        !acl_session_same_user(s, w->user, w->user_len)) {
        /* A session belongs to the user who made it: another user who
         * knows (or guesses) its client id is refused before anything of
         * it is touched, its connection included.  Without a password
         * file or an ACL user names mean nothing and any client may take
         * any id over. */
        broker.stats.auth_refused++;
        char why[300];
        snprintf(why, sizeof why, "client id '%s' belongs to another user's session (user '%s')",
                 s->log_id, w->user_log ? w->user_log : "");
        refuse(c, MQTT_CONNACK_NOT_AUTHORIZED, why);
        return -1;
    }
    if (s && s->conn) {
        /* Takeover: the old connection ends abnormally, will included. */
        s->taking_over = true;
        conn_disconnect(s->conn, MQTT_RC_SESSION_TAKEN_OVER,
                        "session taken over by a new connection", true);
        s = session_find(id, id_len); /* a clean session is gone now */
        if (s)
            s->taking_over = false;
    }
    if (s) /* back in time: a will waiting for its delay is not sent */
        session_cancel_will(s);
    if (s && w->clean_session) {
        session_destroy(s);
        s = NULL;
    }
    bool present = s != NULL;
    bool persistent = c->level == MQTT_LEVEL_5 ? w->expiry > 0 : !w->clean_session;
    if (!s) {
        s = session_create(id, id_len, persistent);
        if (!s) {
            refuse(c, MQTT_CONNACK_UNAVAILABLE, "out of memory");
            return -1;
        }
    }
    if (c->level == MQTT_LEVEL_5)
        session_set_expiry(s, true, w->expiry);
    else if (s->expiry_set)
        session_set_expiry(s, false, 0); /* a 3.1.1 client resumes a 5.0 session */
    if (acl_session_identify(s, w->user, w->user_len) != 0) {
        if (!present)
            session_destroy(s);
        refuse(c, MQTT_CONNACK_UNAVAILABLE, "out of memory");
        return -1;
    }
    store_session_identity(s);

    c->session = s;
    c->state = CONN_ACTIVE;
    c->keepalive = w->keepalive;
    broker.n_clients++;

    struct mqtt_packet ack = {.type = MQTT_CONNACK};
    ack.u.connack.session_present = present;
    ack.u.connack.return_code = MQTT_CONNACK_ACCEPTED;
    uint8_t props[128];
    struct mqtt_props_builder b;
    if (c->level == MQTT_LEVEL_5) {
        mqtt_pb_init(&b, props, sizeof props);
        if (w->assigned_id)
            mqtt_pb_bytes(&b, MQTT_PROP_ASSIGNED_CLIENT_ID, id, id_len);
        if (w->keepalive_capped)
            mqtt_pb_num(&b, MQTT_PROP_SERVER_KEEP_ALIVE, w->keepalive);
        if (w->expiry_capped)
            mqtt_pb_num(&b, MQTT_PROP_SESSION_EXPIRY, w->expiry);
        if (broker.cfg.max_inflight < UINT16_MAX)
            mqtt_pb_num(&b, MQTT_PROP_RECEIVE_MAXIMUM, broker.cfg.max_inflight);
        mqtt_pb_num(&b, MQTT_PROP_MAXIMUM_PACKET_SIZE, broker.cfg.max_packet_size);
        if (broker.cfg.topic_alias_maximum)
            mqtt_pb_num(&b, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, broker.cfg.topic_alias_maximum);
        if (broker.cfg.max_qos < 2)
            mqtt_pb_num(&b, MQTT_PROP_MAXIMUM_QOS, broker.cfg.max_qos);
        mqtt_pb_num(&b, MQTT_PROP_RETAIN_AVAILABLE, 1);
        mqtt_pb_num(&b, MQTT_PROP_WILDCARD_SUB_AVAILABLE, 1);
        mqtt_pb_num(&b, MQTT_PROP_SUB_ID_AVAILABLE, 1);
        mqtt_pb_num(&b, MQTT_PROP_SHARED_SUB_AVAILABLE, 1);
        if (!b.overflow)
            ack.u.connack.props = mqtt_pb_props(&b);
    }
    conn_send_packet(c, &ack);

    /* 1.5 x keep alive, as the specification allows the client. */
    conn_set_keepalive(c, w->keepalive);
    char user[260] = "";
    if (w->user_log)
        snprintf(user, sizeof user, "user '%s', ", w->user_log);
    char v5[64] = "";
    if (c->level == MQTT_LEVEL_5)
        snprintf(v5, sizeof v5, "MQTT 5.0, session expiry %u s, ", w->expiry);
    if (conn_log_allow())
        log_notice("client %s connected from %s (%s%sclean %s %d, keep alive %u s, session %s%s)",
                   s->log_id, conn_peer(c), v5, user,
                   c->level == MQTT_LEVEL_5 ? "start" : "session", w->clean_session,
                   w->keepalive, present ? "resumed" : "new", c->will ? ", will set" : "");
    session_attach(s, c);
    return 0;
}

static int accept_bound(struct conn *c, struct connect_wait *w);

/* ---- refusing after the delay ------------------------------------------ */

static void delay_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct connect_wait *w = arg;
    struct conn *c = w->c;
    c->auth_wait = NULL;
    /* The reason was logged when the refusal was decided; this string
     * must outlive w (conn_send_and_close keeps the pointer).  A 5.0
     * client learns the kind of refusal from the reason code only: which
     * of user name or password was wrong is not told. */
    connect_refuse(c, w->refuse_code, w->refuse_code5, NULL, "login refused");
    wait_free(w);
}

/* Refuses the login at REFUSAL_DELAY_MS after its CONNECT; the input stays
 * held until then. */
static void refuse_later(struct conn *c, struct connect_wait *w, uint8_t code, uint8_t code5,
                         const char *why)
{
    w->refuse_code5 = code5;
    broker.stats.auth_refused++;
    long n = log_ratelimit_check(&refused_log, 1);
    if (n >= 0)
        log_notice("connection from %s refused: %s%s", conn_peer(c), why, log_suppressed(n));
    w->refuse_code = code;
    conn_stop_connect_timeout(c); /* the delay, not connect_timeout, ends it now */
    conn_hold_input(c);

    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long elapsed_ms = (long)(now.tv_sec - w->arrived.tv_sec) * 1000 +
                      (now.tv_nsec - w->arrived.tv_nsec) / 1000000;
    long left = REFUSAL_DELAY_MS - elapsed_ms;
    if (left < 0)
        left = 0;
    w->delay = evtimer_new(broker.base, delay_done, w);
    struct timeval tv = {left / 1000, (left % 1000) * 1000};
    if (!w->delay || evtimer_add(w->delay, &tv) != 0) {
        delay_done(-1, 0, w);
        return;
    }
    c->auth_wait = w;
}

/* ---- the password check ------------------------------------------------- */

static void password_checked(void *arg, int result)
{
    struct connect_wait *w = arg;
    struct conn *c = w->c;
    w->job = NULL;
    c->auth_wait = NULL;
    if (result >= 0)
        login_throttle_end(&(struct login_source){c->peer.family, c->peer.addr}, w->user,
                           w->user_len, w->throttle_charged, result == 1);
    if (result != 1) {
        char why[300];
        snprintf(why, sizeof why, "%s (user '%s')",
                 result == 0 ? "wrong password" : "password hash cannot be checked", w->user_log);
        if (result < 0)
            log_error("password file: the hash of user '%s' cannot be checked", w->user_log);
        refuse_later(c, w, MQTT_CONNACK_NOT_AUTHORIZED, MQTT_RC_BAD_USER_OR_PASSWORD, why);
        return;
    }
    int rc = accept_bound(c, w);
    if (rc == 0)
        conn_release_input(c); /* what was sent after CONNECT may be buffered */
}

/* ---- CONNECT ------------------------------------------------------------- */

/* The 5.0 CONNECT properties: what the client accepts from us (packet size,
 * receive maximum, topic aliases, problem information) goes to the
 * connection; its Session Expiry Interval to *expiry.  Returns 0, or -1
 * when the CONNECT was refused (connection closing). */
static int read_connect_props(struct conn *c, const struct mqtt_connect *ck, uint32_t *expiry)
{
    c->problem_info = true;
    struct mqtt_prop_iter it;
    struct mqtt_prop pr;
    bool auth_method = false;
    mqtt_prop_iter_init(&it, &ck->props);
    while (mqtt_prop_next(&it, &pr)) {
        switch (pr.id) {
        case MQTT_PROP_SESSION_EXPIRY: *expiry = pr.num; break;
        case MQTT_PROP_RECEIVE_MAXIMUM: c->receive_max_out = (uint16_t)pr.num; break;
        case MQTT_PROP_MAXIMUM_PACKET_SIZE: c->max_packet_out = pr.num; break;
        case MQTT_PROP_TOPIC_ALIAS_MAXIMUM:
            /* We use no more than we allow the client: both directions
             * cost the same memory. */
            c->alias_max_out = (uint16_t)(pr.num < broker.cfg.topic_alias_maximum
                                              ? pr.num
                                              : broker.cfg.topic_alias_maximum);
            break;
        case MQTT_PROP_REQUEST_PROBLEM_INFO: c->problem_info = pr.num != 0; break;
        case MQTT_PROP_AUTH_METHOD: auth_method = true; break;
        default: break; /* request response information, user properties */
        }
    }
    c->expiry_was_zero = *expiry == 0;
    if (auth_method) {
        /* No enhanced authentication method is supported (yet). */
        conn_stop_connect_timeout(c);
        refuse5(c, 0, MQTT_RC_BAD_AUTH_METHOD, "authentication method not supported");
        return -1;
    }
    return 0;
}

/* The will's own 5.0 properties: its delay, and a UTF-8 check when its
 * payload says it is UTF-8.  Returns 0, or -1 when refused. */
static int read_will_props(struct conn *c, const struct mqtt_connect *ck)
{
    struct mqtt_prop pr;
    if (mqtt_props_find(&ck->will_props, MQTT_PROP_WILL_DELAY, &pr))
        c->will_delay = pr.num;
    if (mqtt_props_find(&ck->will_props, MQTT_PROP_PAYLOAD_FORMAT, &pr) && pr.num == 1 &&
        !mqtt_utf8_valid(ck->will_payload.data, ck->will_payload.len)) {
        conn_stop_connect_timeout(c);
        refuse5(c, 0, MQTT_RC_PAYLOAD_FORMAT_INVALID, "will payload is not valid UTF-8");
        return -1;
    }
    return 0;
}

static struct connect_wait *wait_new(struct conn *c, const struct mqtt_connect *ck,
                                     const char *id, size_t id_len)
{
    struct connect_wait *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->c = c;
    clock_gettime(CLOCK_MONOTONIC, &w->arrived);
    w->clean_session = ck->clean_session;
    w->keepalive = ck->keepalive;
    w->id_len = id_len;
    w->client_id = malloc(id_len + 1);
    if (!w->client_id)
        goto fail;
    memcpy(w->client_id, id, id_len);
    w->client_id[id_len] = '\0';
    if (ck->has_username) {
        w->user_len = ck->username.len;
        w->user = malloc(w->user_len + 1);
        w->user_log = log_escape_dup((const char *)ck->username.data, ck->username.len);
        if (!w->user || !w->user_log)
            goto fail;
        memcpy(w->user, ck->username.data, w->user_len);
        w->user[w->user_len] = '\0';
    }
    return w;
fail:
    wait_free(w);
    return NULL;
}

/* The login is decided: the session is bound now, or once the cluster
 * made the client id this node's.  Returns accept_client's 0 or -1, or 1
 * while the cluster works (the input held). */
static int accept_bound(struct conn *c, struct connect_wait *w)
{
    if (claim_hook && claim_hook->claim(c, w->client_id, w->id_len, w->clean_session, w->user,
                                        w->user_len) == 1) {
        w->claiming = true;
        c->auth_wait = w;
        conn_hold_input(c);
        return 1;
    }
    conn_stop_connect_timeout(c);
    int rc = accept_client(c, w);
    wait_free(w);
    return rc;
}

static int accept_now(struct conn *c, struct connect_wait *w)
{
    int rc = accept_bound(c, w);
    return rc == 1 ? 0 : rc;
}

void protocol_claimed(struct conn *c, bool ok, const char *why)
{
    struct connect_wait *w = c->auth_wait;
    if (!w || !w->claiming)
        return;
    c->auth_wait = NULL;
    conn_stop_connect_timeout(c);
    if (!ok) {
        char buf[200];
        snprintf(buf, sizeof buf, "cluster: %s", why ? why : "the session cannot be had");
        refuse(c, MQTT_CONNACK_UNAVAILABLE, buf);
        wait_free(w);
        return;
    }
    int rc = accept_client(c, w);
    wait_free(w);
    if (rc == 0)
        conn_release_input(c);
}

static int refuse_out_of_memory(struct conn *c, struct connect_wait *w)
{
    if (w)
        wait_free(w);
    conn_stop_connect_timeout(c);
    refuse(c, MQTT_CONNACK_UNAVAILABLE, "out of memory");
    return -1;
}

int handle_connect(struct conn *c, const struct mqtt_connect *ck)
{
    c->level = ck->level;
    c->bridge_peer = ck->bridge;
    bool v5 = ck->level == MQTT_LEVEL_5;
    uint32_t expiry = 0;
    if (v5 && read_connect_props(c, ck, &expiry) != 0)
        return -1;

    char assigned[32];
    const char *id = (const char *)ck->client_id.data;
    size_t id_len = ck->client_id.len;
    if (id_len == 0) {
        /* 5.0 lets any client have an id assigned: its session is new
         * anyway, whatever Clean Start says. */
        if (!ck->clean_session && !v5) {
            conn_stop_connect_timeout(c);
            refuse(c, MQTT_CONNACK_ID_REJECTED, "empty client id requires clean session");
            return -1;
        }
        assign_client_id(assigned, sizeof assigned);
        id = assigned;
        id_len = strlen(assigned);
    }
    if (id_len >= strlen(BRIDGE_CLIENT_ID_PREFIX) &&
        memcmp(id, BRIDGE_CLIENT_ID_PREFIX, strlen(BRIDGE_CLIENT_ID_PREFIX)) == 0 &&
        !protocol_policy->bridge_conn(c)) {
        /* The sessions of the bridges (bridge.h): taking one over would
         * read or end what a bridge forwards. */
        conn_stop_connect_timeout(c);
        refuse(c, MQTT_CONNACK_ID_REJECTED, "client id prefix $bridge/ is reserved for bridges");
        return -1;
    }
    uint16_t keepalive = ck->keepalive;
    bool keepalive_capped = false;
    /* Keep alive 0 is "never": above any max_keepalive but the largest
     * one (65535, the default), which caps nothing. */
    bool over = ck->keepalive > broker.cfg.max_keepalive ||
                (ck->keepalive == 0 && broker.cfg.max_keepalive < UINT16_MAX);
    if (over) {
        char why[96];
        if (ck->keepalive == 0)
            snprintf(why, sizeof why, "keep alive 0 (none) while max_keepalive is %u s",
                     broker.cfg.max_keepalive);
        else
            snprintf(why, sizeof why, "keep alive %u s above max_keepalive %u s",
                     ck->keepalive, broker.cfg.max_keepalive);
        broker.stats.keepalive_refused++;
        if (v5) {
            /* 5.0 can say so: Server Keep Alive in CONNACK. */
            keepalive = broker.cfg.max_keepalive;
            keepalive_capped = true;
        } else {
            /* 3.1.1 cannot tell a client to use a shorter keep alive;
             * accepting it would leave a dead peer undetected for longer
             * than the operator allows, so refuse like Mosquitto does. */
            conn_stop_connect_timeout(c);
            refuse(c, MQTT_CONNACK_ID_REJECTED, why);
            return -1;
        }
    }

    if (ck->will_flag) {
        const char *over = topic_over_limits(ck->will_topic.data, ck->will_topic.len);
        if (over) {
            char why[96];
            snprintf(why, sizeof why, "will topic over %s", over);
            if (v5) {
                conn_stop_connect_timeout(c);
                refuse5(c, 0, MQTT_RC_TOPIC_NAME_INVALID, why);
                return -1;
            }
            return protocol_violation(c, why);
        }
        if (topic_reserved(ck->will_topic.data, ck->will_topic.len)) {
            /* The rule of a PUBLISH to $SYS, told at once as for a will
             * the ACL does not allow (a will cannot be dropped quietly
             * later: the client would believe it set). */
            conn_stop_connect_timeout(c);
            refuse(c, MQTT_CONNACK_NOT_AUTHORIZED, "will topic in $SYS, reserved for the broker");
            return -1;
        }
        if (topic_share_name(ck->will_topic.data, ck->will_topic.len)) {
            /* Refused like a PUBLISH there: 5.0 Topic Name invalid. */
            conn_stop_connect_timeout(c);
            refuse5(c, MQTT_CONNACK_NOT_AUTHORIZED, MQTT_RC_TOPIC_NAME_INVALID,
                    "will topic under $share/, which names shared subscriptions");
            return -1;
        }
        if (v5 && ck->will_qos > broker.cfg.max_qos) {
            /* [MQTT-3.2.2-12]: a will QoS beyond what the server supports
             * refuses the connection, CONNACK 0x9B.  (3.1.1 has no such
             * code: its will goes out at max_qos, as its publishes do.) */
            char why[64];
            snprintf(why, sizeof why, "will QoS %u above max_qos %u", ck->will_qos,
                     broker.cfg.max_qos);
            conn_stop_connect_timeout(c);
            refuse5(c, 0, MQTT_RC_QOS_NOT_SUPPORTED, why);
            return -1;
        }
        if (v5 && read_will_props(c, ck) != 0)
            return -1;
        c->will = message_new_props((const char *)ck->will_topic.data, ck->will_topic.len,
                                    ck->will_payload.data, ck->will_payload.len, ck->will_qos,
                                    ck->will_retain, v5 ? &ck->will_props : NULL);
        if (!c->will)
            return refuse_out_of_memory(c, NULL);
    }

    struct connect_wait *w = wait_new(c, ck, id, id_len);
    if (!w)
        return refuse_out_of_memory(c, NULL);
    w->keepalive = keepalive;
    w->keepalive_capped = keepalive_capped;
    w->assigned_id = v5 && id == assigned;
    if (v5) {
        w->expiry = session_cap_expiry(expiry);
        w->expiry_capped = w->expiry != expiry;
    }
    /* Input stays held from here until the login is decided. */
    if (protocol_policy->uses_identity(c)) {
        /* use_identity_as_username: the verified client certificate names
         * the user (for the ACL too); CONNECT's user name and password
         * are not looked at. */
        size_t cn_len = 0;
        char *cn = tls_peer_cn(c->bev, &cn_len);
        if (!cn) {
            refuse_later(c, w, MQTT_CONNACK_NOT_AUTHORIZED, MQTT_RC_NOT_AUTHORIZED,
                         "no verified client certificate with a common name "
                         "(use_identity_as_username)");
            return 0;
        }
        free(w->user);
        free(w->user_log);
        w->user = cn;
        w->user_len = cn_len;
        w->user_log = log_escape_dup(cn, cn_len);
        if (!w->user_log) {
            return refuse_out_of_memory(c, w);
        }
        return accept_now(c, w);
    }
    const struct auth_table *users = auth_current();
    if (ck->has_username && users) {
        char why[300];
        struct login_source src = {c->peer.family, c->peer.addr};
        enum login_verdict v = login_throttle_begin(&src, w->user, w->user_len,
                                                    &w->throttle_charged);
        if (v != LOGIN_CHECK) {
            /* Refused with no hash spent on it: see login_throttle.h. */
            broker.stats.auth_throttled++;
            snprintf(why, sizeof why, "too many failed logins %s (user '%s')",
                     v == LOGIN_SOURCE_THROTTLED ? "from this address" : "for this user name",
                     w->user_log);
            refuse_later(c, w, MQTT_CONNACK_NOT_AUTHORIZED, MQTT_RC_BAD_USER_OR_PASSWORD, why);
            return 0;
        }
        const char *hash = auth_table_lookup(users, w->user, w->user_len);
        if (!hash || !ck->has_password) {
            login_throttle_end(&src, w->user, w->user_len, w->throttle_charged, 0);
            snprintf(why, sizeof why, "%s (user '%s')",
                     hash ? "no password given" : "unknown user", w->user_log);
            refuse_later(c, w, MQTT_CONNACK_NOT_AUTHORIZED, MQTT_RC_BAD_USER_OR_PASSWORD, why);
            return 0;
        }
        w->job = auth_worker_submit(hash, ck->password.data, ck->password.len,
                                    keyed_hash(hash_key_process(), w->user, w->user_len),
                                    password_checked, w);
        if (!w->job) {
            login_throttle_end(&src, w->user, w->user_len, w->throttle_charged, 1); /* unchecked */
            broker.stats.auth_busy++;
            long n = log_ratelimit_check(&refused_log, 1);
            if (n >= 0)
                log_warning("connection from %s refused: too many password checks waiting%s",
                            conn_peer(c), log_suppressed(n));
            wait_free(w);
            conn_stop_connect_timeout(c);
            connect_refuse(c, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_SERVER_BUSY,
                         "server busy checking passwords", "server busy checking passwords");
            return 0;
        }
        /* connect_timeout keeps running: a login that waits longer for a
         * worker is dropped with its job, which sheds load in a storm. */
        c->auth_wait = w;
        conn_hold_input(c);
        return 0;
    }
    /* No verified user name: an anonymous client, whether or not it sent a
     * user name (without a password file nothing can verify it). */
    if (!protocol_policy->allows_anonymous(c) && !protocol_policy->bridge_conn(c)) {
        refuse_later(c, w, MQTT_CONNACK_NOT_AUTHORIZED, MQTT_RC_NOT_AUTHORIZED,
                     ck->has_username ? "user name given but no password_file to check it, "
                                        "and anonymous clients are not allowed on this listener"
                                      : "anonymous clients are not allowed on this listener");
        return 0;
    }
    if (protocol_policy->bridge_conn(c) && !w->user) {
        /* A bridge's own connection (bridge.h): its ACL identity is its
         * client id, so that an acl_file can give `user $bridge/NAME` the
         * topics of its rules. */
        w->user = malloc(w->id_len + 1);
        if (w->user) {
            memcpy(w->user, w->client_id, w->id_len + 1);
            w->user_len = w->id_len;
            w->user_log = log_escape_dup(w->user, w->user_len);
        }
        if (!w->user || !w->user_log) {
            return refuse_out_of_memory(c, w);
        }
    }
    return accept_now(c, w);
}

/* ---- the end of a connection, and PINGREQ -------------------------------- */

/* DISCONNECT from the client.  3.1.1, and 5.0 reason 0x00: a clean end,
 * the will is discarded; any other 5.0 reason (0x04 "with will", errors)
 * publishes it.  5.0 may change the Session Expiry Interval, but not from
 * 0 to more. */
int handle_disconnect(struct conn *c, const struct mqtt_disconnect *d)
{
    if (c->level != MQTT_LEVEL_5) {
        conn_close(c, "client sent DISCONNECT", false);
        return -1;
    }
    struct mqtt_prop pr;
    if (mqtt_props_find(&d->props, MQTT_PROP_SESSION_EXPIRY, &pr)) {
        if (c->expiry_was_zero && pr.num != 0)
            return protocol_error(c, MQTT_RC_PROTOCOL_ERROR,
                                  "DISCONNECT sets a session expiry after CONNECT set 0");
        session_set_expiry(c->session, true, session_cap_expiry(pr.num));
    }
    char why[96];
    snprintf(why, sizeof why, "client sent DISCONNECT (0x%02x %s)", d->reason_code,
             mqtt_reason_str(d->reason_code));
    conn_close(c, why, d->reason_code != MQTT_RC_SUCCESS);
    return -1;
}

int handle_pingreq(struct conn *c)
{
    struct mqtt_packet resp = {.type = MQTT_PINGRESP};
    conn_send_packet(c, &resp);
    return 0;
}
