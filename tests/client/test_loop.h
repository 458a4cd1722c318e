/*
 * test_loop.h - what the client's cmocka tests on a real event loop share:
 * loop runs with a bound (a test never hangs) and a listener on 127.0.0.1
 * at a port the kernel chooses.
 */
#ifndef PETREL_TEST_LOOP_H
#define PETREL_TEST_LOOP_H

#include <stdint.h>
#include <event2/listener.h>

struct event_base;

/* Runs the loop until something breaks it; the test fails after `ms`. */
void run_bounded(struct event_base *base, int ms);
/* Runs the loop for `ms` at most (something may break it earlier). */
void loop_for(struct event_base *base, int ms);
/* Runs the loop for `ms`, resumed when a callback breaks it. */
void run_for(struct event_base *base, int ms);
/* Listens on 127.0.0.1; *port is where.  Fails the test if it cannot. */
struct evconnlistener *listen_loopback(struct event_base *base, evconnlistener_cb cb, void *arg,
                                       uint16_t *port);

#endif
