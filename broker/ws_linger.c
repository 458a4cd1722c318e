/*
 * ws_linger.c - sockets kept to send a gone WebSocket connection's last
 * bytes (see ws_linger.h).  Each costs a bufferevent and a timer, only for
 * the two seconds at most that it lingers.
 */
#include "ws_linger.h"

#include <stdbool.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

/* How long a closed connection's socket may take to send its last bytes. */
#define LINGER_SECONDS 2

struct lingering {
    LIST_ENTRY(lingering) link;
    struct bufferevent *bev;
    struct event *timer;
    bool shut; /* FIN sent */
};

static LIST_HEAD(, lingering) lingering = LIST_HEAD_INITIALIZER(lingering);

static void linger_end(struct lingering *l)
{
    LIST_REMOVE(l, link);
    if (l->timer)
        event_free(l->timer);
    bufferevent_free(l->bev);
    free(l);
}

static void linger_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    linger_end(arg);
}

static void linger_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
}

/* All is sent: the FIN follows. */
static void linger_write(struct bufferevent *bev, void *arg)
{
    struct lingering *l = arg;
    if (!l->shut && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        l->shut = true;
        shutdown(bufferevent_getfd(bev), SHUT_WR);
    }
}

static void linger_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        linger_end(arg);
}

void ws_linger(struct bufferevent *bev)
{
    struct lingering *l = calloc(1, sizeof *l);
    struct timeval tv = {LINGER_SECONDS, 0};
    if (l)
        l->timer = evtimer_new(bufferevent_get_base(bev), linger_timeout, l);
    if (!l || !l->timer || evtimer_add(l->timer, &tv) != 0) {
        if (l && l->timer)
            event_free(l->timer);
        free(l);
        bufferevent_free(bev);
        return;
    }
    l->bev = bev;
    LIST_INSERT_HEAD(&lingering, l, link);
    bufferevent_setcb(bev, linger_read, linger_write, linger_event, l);
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    linger_write(bev, l);
}

void ws_linger_shutdown(void)
{
    while (!LIST_EMPTY(&lingering))
        linger_end(LIST_FIRST(&lingering));
}
