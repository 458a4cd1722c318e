/*
 * subscriptions.h - what the client has asked to subscribe to: pending
 * SUBSCRIBE/UNSUBSCRIBE requests (sent or waiting for a connection) and the
 * table of granted subscriptions, which is renewed after a reconnection
 * that finds no session on the server.
 */
#ifndef PETREL_SUBSCRIPTIONS_H
#define PETREL_SUBSCRIPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct sub_entry {
    char *filter;       /* NUL-terminated copy */
    size_t len;
    uint8_t qos;        /* subscription options: the requested QoS, plus the
                           MQTT 5.0 option bits (no local, retain...) */
    uint8_t *props;     /* table only: the request's MQTT 5.0 properties
                           (subscription identifier...), for renewals */
    size_t props_len;
};

struct sub_req {
    TAILQ_ENTRY(sub_req) link;
    uint64_t id;        /* the application's handle; 0 = automatic renewal */
    bool unsubscribe;
    uint16_t packet_id; /* 0 = not sent on the current connection */
    uint8_t *props;     /* MQTT 5.0 property block (owned); NULL = none */
    size_t props_len;
    size_t count;
    struct sub_entry entries[];
};

TAILQ_HEAD(sub_req_list, sub_req);

struct subscriptions {
    struct sub_req_list reqs;   /* in the order they were made */
    struct sub_entry *active;
    size_t n_active;
    size_t cap_active;
};

void subs_init(struct subscriptions *s);
void subs_clear(struct subscriptions *s);
/* A request holding copies of the filters (qos may be NULL for an
 * unsubscribe).  NULL when out of memory. */
struct sub_req *subs_request_new(uint64_t id, bool unsubscribe, const char *const *filters,
                                 const int *qos, size_t count);
void subs_request_free(struct sub_req *r);
/* The sent request with this packet identifier, or NULL. */
struct sub_req *subs_find_sent(const struct subscriptions *s, bool unsubscribe,
                               uint16_t packet_id);
/* Records a granted subscription (replacing the same filter's options and
 * properties), or forgets one.  Returns PETREL_OK or PETREL_ENOMEM. */
int subs_set_active(struct subscriptions *s, const char *filter, size_t len, uint8_t qos,
                    const uint8_t *props, size_t props_len);
void subs_remove_active(struct subscriptions *s, const char *filter, size_t len);
/* Requests (id 0) renewing every granted subscription, appended to `out`:
 * one per distinct property block, since a SUBSCRIBE carries one (MQTT
 * 3.1.1: a single request).  Nothing is appended when there is no
 * subscription; PETREL_ENOMEM leaves `out` as it was. */
int subs_renewal_requests(const struct subscriptions *s, struct sub_req_list *out);

#endif
