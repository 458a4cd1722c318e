/*
 * bridge.h - bridges to other MQTT brokers (docs/bridges.md): each `bridge
 * NAME` section of the configuration is an MQTT client inside petreld, on
 * the broker's own event loop, that forwards matching local messages to a
 * remote broker (`out`) and the remote's to local subscribers (`in`).
 *
 * What makes it durable: the out side is a persistent session of the broker
 * itself, client id "$bridge/NAME" (no network client may take that id),
 * whose subscriptions are the out rules.  Its queue, bounds, flow control
 * and restart recovery are the sessions' (session.h).  The bridge attaches
 * to it through an in-process connection (a bufferevent pair: the broker
 * sees an ordinary MQTT 5.0 client) only while the remote is connected, and
 * relays each PUBLISH and acknowledgement between the two connections
 * keeping its packet identifier, so that the local delivery row goes only
 * when the remote has acknowledged (PUBACK, or PUBCOMP for QoS 2) and a QoS
 * 2 exchange interrupted by a crash resumes on both sides where it stopped.
 * The in side publishes on that same local connection, so the remote is
 * acknowledged only when the broker has committed and routed the message.
 */
#ifndef PETREL_BRIDGE_H
#define PETREL_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge_origin.h"

struct conn;
struct bridges_conf;

/* After the store is loaded: makes (or finds) each bridge's local session,
 * sets its subscriptions to the out rules, and starts connecting.  0 or -1
 * (out of memory, or a TLS file that cannot be read: logged). */
int bridges_start(void);
/* Shutdown: closes every bridge (remote connections get DISCONNECT when
 * the loop still runs; the local sessions stay in the store). */
void bridges_stop(void);
/* SIGHUP: bridges gone from the file are stopped (their sessions are
 * kept, so nothing queued is lost if they come back), new ones started,
 * changed ones restarted; the others are not touched. */
void bridges_reload(const struct bridges_conf *fresh);

/* Whether c is a bridge's own in-process connection: only those may use a
 * client id starting with BRIDGE_CLIENT_ID_PREFIX. */
bool bridge_owns_conn(const struct conn *c);

/* What $SYS, the admin API, /metrics and petreld --inspect show. */
struct bridge_status {
    const char *name;
    const char *state;        /* "connecting", "connected", "backoff", "stopped" */
    const char *remote;       /* "host:port" last tried or connected */
    const char *last_error;   /* "" if none */
    uint32_t queued;          /* messages waiting in its session (store and memory) */
    uint32_t inflight;        /* sent to the remote, not yet acknowledged */
    uint64_t forwarded_out;   /* PUBLISH sent to the remote */
    uint64_t forwarded_in;    /* PUBLISH from the remote given to the broker */
    uint64_t connects;        /* connections accepted by the remote */
    int64_t lag_ms;           /* age of the oldest message the remote has not
                                 acknowledged (in flight or queued in memory), 0 if none */
};
size_t bridges_count(void);
/* false past the end. */
bool bridge_get_status(size_t i, struct bridge_status *out);

#endif
