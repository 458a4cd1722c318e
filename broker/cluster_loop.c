/*
 * cluster_loop.c - libnats on the broker's libevent loop (cluster_js.h).
 *
 * libnats asks an event loop to watch its socket through four callbacks.
 * It calls them from its own threads too: Attach again from its reconnect
 * thread, holding its connection lock.  The adapter libnats ships frees the
 * old socket's events there with event_free(), which waits for a callback
 * of that event running on the loop; that callback (a read) waits for the
 * same connection lock: the loop and the reconnect thread wait for each
 * other for ever (seen as a broker that stopped answering after a NATS
 * server was killed under load).  Here the events are made with
 * EV_FINALIZE and torn down with event_free_finalize(), which never waits:
 * the loop frees them once no callback of theirs runs.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <event2/event.h>

#include "cluster_js.h"

struct nats_watch {
    natsConnection *nc;
    struct event_base *base;
    struct event *read, *write;
};

static atomic_bool loop_stopped; /* cluster_stop: nothing runs on the loop any more */

void cluster_loop_stopping(void) { atomic_store(&loop_stopped, true); }

static void on_socket(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct nats_watch *w = arg;
    if (what & EV_READ)
        natsConnection_ProcessReadEvent(w->nc);
    if (what & EV_WRITE)
        natsConnection_ProcessWriteEvent(w->nc);
}

static void finalized(struct event *ev, void *arg)
{
    (void)ev;
    (void)arg;
}

/* The loop frees it when no callback of it runs; after cluster_stop the
 * loop runs nothing, so it is freed at once. */
static void drop_event(struct event **ev)
{
    if (!*ev)
        return;
    if (atomic_load(&loop_stopped))
        event_free(*ev);
    else
        event_free_finalize(0, *ev, finalized);
    *ev = NULL;
}

natsStatus cluster_loop_attach(void **user, void *loop, natsConnection *nc, natsSock sock)
{
    struct nats_watch *w = *user;
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w)
            return NATS_NO_MEMORY;
        w->nc = nc;
        w->base = loop;
    }
    /* A reconnection: the old socket's events go. */
    drop_event(&w->read);
    drop_event(&w->write);
    w->read = event_new(w->base, sock, EV_READ | EV_PERSIST | EV_FINALIZE, on_socket, w);
    w->write = event_new(w->base, sock, EV_WRITE | EV_PERSIST | EV_FINALIZE, on_socket, w);
    if (!w->read || !w->write || event_add(w->read, NULL) != 0) {
        drop_event(&w->read);
        drop_event(&w->write);
        if (!*user)
            free(w);
        return NATS_NO_MEMORY;
    }
    *user = w;
    return NATS_OK;
}

natsStatus cluster_loop_read(void *user, bool add)
{
    struct nats_watch *w = user;
    return (add ? event_add(w->read, NULL) : event_del_noblock(w->read)) == 0 ? NATS_OK
                                                                               : NATS_ERR;
}

natsStatus cluster_loop_write(void *user, bool add)
{
    struct nats_watch *w = user;
    return (add ? event_add(w->write, NULL) : event_del_noblock(w->write)) == 0 ? NATS_OK
                                                                                : NATS_ERR;
}

natsStatus cluster_loop_detach(void *user)
{
    struct nats_watch *w = user;
    drop_event(&w->read);
    drop_event(&w->write);
    /* (w itself: a callback the loop is about to run may still name it;
     * it is small and there is one per connection, freed here only once
     * the loop has stopped.) */
    if (atomic_load(&loop_stopped))
        free(w);
    return NATS_OK;
}
