/*
 * resolver.h - host names to addresses without blocking the event loop:
 * libevent's evdns on the owner's event_base, set up like the system's
 * resolver (/etc/hosts first, then the nameservers of /etc/resolv.conf),
 * with timeouts short enough that a dead nameserver fails in seconds.
 */
#ifndef PETREL_RESOLVER_H
#define PETREL_RESOLVER_H

#include <stdint.h>
#include <event2/util.h> /* evutil_addrinfo: a macro for struct addrinfo */

struct event_base;
struct resolver;
struct resolver_lookup;

/* The outcome of one lookup: the addresses (the callee owns them and frees
 * them with evutil_freeaddrinfo) and 0, or NULL and a petrel error
 * (PETREL_ERESOLVE: no such name, no answer in time; PETREL_ENOMEM). */
typedef void (*resolver_cb)(void *arg, struct evutil_addrinfo *addrs, int err);

/* Nothing is read and no socket is opened until the first lookup, so an
 * owner that only ever connects to numeric addresses pays nothing; the
 * files are read again by every lookup that starts while none runs.  NULL
 * when out of memory. */
struct resolver *resolver_new(struct event_base *base);

/* For tests: read this file instead of /etc/resolv.conf (its nameserver
 * lines may carry a port: "nameserver 127.0.0.1:5300"), from the next
 * lookup on; 0, or PETREL_EINVAL. */
int resolver_set_conf(struct resolver *r, const char *path);

/* Looks up host for a TCP connection to `port`.  cb runs exactly once,
 * unless the lookup is abandoned first: before this returns when the
 * answer is known at once (a name in /etc/hosts, out of memory), and NULL
 * is returned (cb must not free the resolver then); otherwise later from
 * the loop, and the lookup is returned. */
struct resolver_lookup *resolver_lookup(struct resolver *r, const char *host, uint16_t port,
                                        resolver_cb cb, void *arg);

/* cb will not run.  evdns may still be waiting for the nameserver: the
 * lookup's memory goes when it answers or gives up (seconds). */
void resolver_abandon(struct resolver_lookup *l);

/* Frees the resolver; lookups still running are abandoned and fail.
 * libevent finishes them from the loop (deferred callbacks), so their few
 * bytes come back the next time the loop runs. */
void resolver_free(struct resolver *r);

#endif
