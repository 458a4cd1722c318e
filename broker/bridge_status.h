/*
 * bridge_status.h - the bridges in $SYS, /metrics and the admin API
 * (each bridge's state, queue depth, messages in flight, lag, counters,
 * last error; see bridge.h for where they come from).
 */
#ifndef PETREL_BRIDGE_STATUS_H
#define PETREL_BRIDGE_STATUS_H

struct evbuffer;

/* $SYS/broker/bridges/NAME/{queued,inflight,messages/sent,
 * messages/received,connects,lag_ms,remote,last_error}, retained; called
 * with the broker's other $SYS topics. */
void bridges_publish_sys(void);
/* petrel_bridge_* families with a bridge="NAME" label; nothing without
 * bridges. */
void bridges_metrics_write(struct evbuffer *b);
/* {"bridges":[{"name":..,"state":..,"remote":..,"last_error":..,"queued":..,
 * "inflight":..,"lag_ms":..,"sent":..,"received":..,"connects":..}]} */
void bridges_json(struct evbuffer *b);

#endif
