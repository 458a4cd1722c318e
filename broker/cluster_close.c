/*
 * cluster_close.c - the orderly end of the node's NATS link (cluster_js.h):
 * which subscriptions libnats may still call back, and the flag that tells
 * its threads that the node is closing.
 *
 * libnats hands messages to its callbacks from threads of its own and frees
 * a subscription asynchronously: a message can be on its way into a
 * handler while the connection closes.  So every subscription the node
 * makes is tracked here with a completion callback (libnats calls it after
 * the subscription's last message handler returned), cluster_stop waits
 * for all of them, bounded, and only then frees what the handlers use.
 * The flag and its lock are never reset or destroyed by cluster_stop: a
 * libnats thread that is late (nats_CloseAndWait timed out) still finds
 * them and only drops what it holds.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "cluster_js.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done = PTHREAD_COND_INITIALIZER;
static unsigned live;          /* tracked subscriptions not yet completed */
static atomic_bool closing;

static void completed(void *closure)
{
    (void)closure;
    pthread_mutex_lock(&lock);
    if (live > 0)
        live--;
    if (live == 0)
        pthread_cond_broadcast(&done);
    pthread_mutex_unlock(&lock);
}

natsStatus cluster_sub_track(natsSubscription *sub)
{
    pthread_mutex_lock(&lock);
    natsStatus s = natsSubscription_SetOnCompleteCB(sub, completed, NULL);
    if (s == NATS_OK)
        live++;
    pthread_mutex_unlock(&lock);
    return s;
}

void cluster_close_reset(void)
{
    atomic_store(&closing, false);
}

void cluster_close_begin(void)
{
    atomic_store(&closing, true);
}

bool cluster_closing(void)
{
    return atomic_load(&closing);
}

bool cluster_subs_wait(int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&lock);
    int rc = 0;
    while (live > 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&done, &lock, &t);
    bool all = live == 0;
    pthread_mutex_unlock(&lock);
    return all;
}
