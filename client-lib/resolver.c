/*
 * resolver.c - asynchronous name lookups on libevent's evdns.  An
 * evdns_base lives only while lookups run: made (reading the files afresh)
 * by a lookup that starts when none runs, freed when the last one has its
 * answer, so an idle client holds no socket and no timer (evdns may leave
 * a probe of a failed nameserver armed, which keeps a loop from running
 * dry).
 *
 * Nothing is ever cancelled inside evdns: libevent delivers a cancellation
 * later, from the loop, and reads the evdns_base then, which may be gone by
 * that time.  An abandoned lookup instead forgets its callback and frees
 * itself when evdns is done with it; for the same reason the wait for the
 * second address family (SKEW) outlasts the queries' own timeouts, since
 * giving up on it is a cancellation too.
 */
#include "resolver.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <event2/dns.h>
#include <event2/util.h>

#include "petrel.h"

/* A dead nameserver costs at most ATTEMPTS x TIMEOUT seconds (A and AAAA
 * are asked in parallel), well under the client's connect timeout; glibc's
 * 5 s x 2 is long for a client that reconnects.  An answer to the first
 * query is still taken during the second wait. */
#define TIMEOUT "1.5"
#define ATTEMPTS "2"
/* One family answered: how long to wait for the other before using it;
 * longer than any wait of its own (see above). */
#define SKEW "60"

struct resolver_lookup;
LIST_HEAD(lookup_list, resolver_lookup);

struct resolver {
    struct event_base *base;
    struct evdns_base *dns;          /* while lookups run */
    char conf[256];                  /* test override of /etc/resolv.conf */
    struct lookup_list lookups;      /* running, so resolver_free can detach them */
};

struct resolver_lookup {
    struct resolver *r;              /* NULL once detached by resolver_free */
    LIST_ENTRY(resolver_lookup) link;
    resolver_cb cb;                  /* NULL once abandoned */
    void *arg;
    bool in_call;                    /* inside evdns_getaddrinfo */
    bool answered;
};

struct resolver *resolver_new(struct event_base *base)
{
    struct resolver *r = calloc(1, sizeof *r);
    if (r) {
        r->base = base;
        LIST_INIT(&r->lookups);
    }
    return r;
}

int resolver_set_conf(struct resolver *r, const char *path)
{
    if (!path || strlen(path) >= sizeof r->conf)
        return PETREL_EINVAL;
    snprintf(r->conf, sizeof r->conf, "%s", path);
    return 0;
}

static struct evdns_base *setup(struct resolver *r)
{
    /* Inactive, it holds no event: a loop with nothing else to do ends. */
    struct evdns_base *dns = evdns_base_new(r->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!dns)
        return NULL;
    /* /etc/hosts is read first whatever follows.  A missing file, or one
     * without a nameserver, leaves 127.0.0.1 as the nameserver, as glibc
     * does; any other complaint (a file too large, say) leaves hosts
     * alone, and the fallback below. */
    (void)evdns_base_resolv_conf_parse(dns, DNS_OPTIONS_ALL,
                                       r->conf[0] ? r->conf : "/etc/resolv.conf");
    if (evdns_base_count_nameservers(dns) == 0)
        evdns_base_nameserver_ip_add(dns, "127.0.0.1");
    /* After resolv.conf, whose own "options timeout:" would apply else. */
    evdns_base_set_option(dns, "timeout:", TIMEOUT);
    evdns_base_set_option(dns, "attempts:", ATTEMPTS);
    evdns_base_set_option(dns, "getaddrinfo-allow-skew:", SKEW);
    return dns;
}

static void unlink_lookup(struct resolver_lookup *l)
{
    if (!l->r)
        return;
    LIST_REMOVE(l, link);
    l->r = NULL;
}

/* No lookup runs: the evdns_base goes.  Also from inside its final
 * callback, after which evdns reads nothing of it. */
static void retire(struct resolver *r)
{
    if (r->dns && LIST_EMPTY(&r->lookups)) {
        evdns_base_free(r->dns, 0);
        r->dns = NULL;
    }
}

static void answered(int result, struct evutil_addrinfo *res, void *arg)
{
    struct resolver_lookup *l = arg;
    struct resolver *r = l->r;
    resolver_cb cb = l->cb;
    void *cb_arg = l->arg;
    unlink_lookup(l);
    l->answered = true;
    /* Before cb, which may free the resolver or start another lookup. */
    if (!l->in_call) {
        free(l);
        if (r)
            retire(r);
    } /* else resolver_lookup finishes it on the way out */
    if (!cb || result != 0 || !res) {
        if (res)
            evutil_freeaddrinfo(res);
        if (cb)
            cb(cb_arg, NULL, result == EVUTIL_EAI_MEMORY ? PETREL_ENOMEM : PETREL_ERESOLVE);
        return;
    }
    cb(cb_arg, res, 0);
}

struct resolver_lookup *resolver_lookup(struct resolver *r, const char *host, uint16_t port,
                                        resolver_cb cb, void *arg)
{
    /* A fresh evdns_base reads the files again, as glibc reads a changed
     * resolv.conf again: a long-lived client follows the network it is on.
     * (One still running, say for an abandoned lookup, serves this one.) */
    if (!r->dns)
        r->dns = setup(r);
    struct resolver_lookup *l = r->dns ? calloc(1, sizeof *l) : NULL;
    if (!l) {
        retire(r);
        cb(arg, NULL, PETREL_ENOMEM);
        return NULL;
    }
    l->r = r;
    l->cb = cb;
    l->arg = arg;
    LIST_INSERT_HEAD(&r->lookups, l, link);

    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    l->in_call = true;
    evdns_getaddrinfo(r->dns, host, service, &hints, answered, l);
    l->in_call = false;
    if (l->answered) {
        free(l);
        retire(r);
        return NULL;
    }
    return l;
}

void resolver_abandon(struct resolver_lookup *l)
{
    if (l)
        l->cb = NULL;
}

void resolver_free(struct resolver *r)
{
    if (!r)
        return;
    struct resolver_lookup *l;
    while ((l = LIST_FIRST(&r->lookups))) {
        l->cb = NULL;
        unlink_lookup(l);
    }
    /* Running requests fail; their callbacks (answered, which frees each
     * lookup) are deferred to the loop and no longer read the base. */
    if (r->dns)
        evdns_base_free(r->dns, 1);
    free(r);
}
