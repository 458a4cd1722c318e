/*
 * store_identity.c - is petrel.db still the file the store opened?  An
 * operator (or a cleanup job) that deletes, replaces or write-protects the
 * database while petreld runs would otherwise see every commit succeed into
 * an unlinked inode, and lose all of it at the next start.  Checked each
 * second and after a failed write; once the file is lost, commits fail
 * (store_write.c) so that nothing more is acknowledged.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/event.h>

#include "broker.h"
#include "log.h"
#include "notify.h"
#include "store_internal.h"

#define IDENTITY_INTERVAL_S 1

static struct event *identity_ev;
static dev_t db_dev;
static ino_t db_ino;

static void identity_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    store_identity_check();
}

int store_identity_start(void)
{
    struct stat st;
    if (stat(store_st.path, &st) != 0)
        return -1;
    db_dev = st.st_dev;
    db_ino = st.st_ino;
    store_st.lost[0] = '\0';
    store_st.unwritable = false;
    identity_ev = event_new(broker.base, -1, EV_PERSIST, identity_cb, NULL);
    struct timeval tv = {IDENTITY_INTERVAL_S, 0};
    if (!identity_ev || event_add(identity_ev, &tv) != 0)
        return -1;
    return 0;
}

void store_identity_stop(void)
{
    if (identity_ev)
        event_free(identity_ev);
    identity_ev = NULL;
}

/* A deleted or replaced file does not come back: the inode petreld writes
 * is gone from the directory, so the state stays until a restart.  A file
 * made read-only may become writable again. */
void store_identity_check(void)
{
    if (!store_st.db || store_st.lost[0])
        return;
    struct stat st;
    char why[sizeof store_st.lost];
    why[0] = '\0';
    if (stat(store_st.path, &st) != 0) {
        if (errno == ENOENT)
            snprintf(why, sizeof why, "%s was deleted", store_st.path);
        else
            snprintf(why, sizeof why, "%s cannot be looked at: %s", store_st.path,
                     strerror(errno));
    } else if (st.st_dev != db_dev || st.st_ino != db_ino) {
        snprintf(why, sizeof why, "%s was replaced by another file", store_st.path);
    }
    if (why[0]) {
        memcpy(store_st.lost, why, sizeof why);
        log_error("store: %s since petreld opened it: what is written now would be lost at "
                  "the next start, so QoS 1/2 publishes are no longer acknowledged; restore "
                  "the file and restart petreld", why);
        broker.stats.store_errors++;
        notify_status();
        return;
    }
    bool unwritable = access(store_st.path, W_OK) != 0;
    if (unwritable != store_st.unwritable) {
        store_st.unwritable = unwritable;
        if (unwritable)
            log_error("store: %s is no longer writable (%s): petreld could not open it at "
                      "the next start, so QoS 1/2 publishes are not acknowledged until it is",
                      store_st.path, strerror(errno));
        else
            log_notice("store: %s is writable again", store_st.path);
        notify_status();
    }
}

const char *store_problem(void)
{
    if (store_st.lost[0])
        return store_st.lost;
    if (store_st.unwritable)
        return "petrel.db is not writable";
    if (store_st.degraded)
        return "writes failing";
    return NULL;
}
