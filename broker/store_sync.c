/*
 * store_sync.c - the storage thread.  It keeps slow disk work off the event
 * loop: it checkpoints the WAL into the database every second through its
 * own SQLite connection, and with durability = power it fsyncs the WAL after
 * each commit, then tells the loop (through a pipe) which batch is durable so
 * that the acknowledgements waiting for it can go out.  Commits that arrive
 * while an fsync runs share the next one.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>

#include "broker.h"
#include "log.h"
#include "store_internal.h"

#define CHECKPOINT_INTERVAL_MS 1000

static struct {
    pthread_t thread;
    bool running;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    bool fsync_commits;
    uint64_t requested;     /* highest batch committed and waiting for fsync */
    char wal_path[4300];
    char db_path[4200];
    int pipe_rd, pipe_wr;   /* thread -> loop: durable batch numbers */
    struct event *pipe_ev;
} sy = {.pipe_rd = -1, .pipe_wr = -1};

static void *sync_main(void *arg)
{
    (void)arg;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(sy.db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        db = NULL; /* no checkpoints: the WAL grows until the next start */
    } else {
        sqlite3_busy_timeout(db, 1000);
        /* A completed checkpoint syncs the database file before the WAL
         * is reused, so nothing committed is exposed to a power loss. */
        sqlite3_exec(db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    }
    int wal_fd = -1;
    uint64_t done = 0;
    pthread_mutex_lock(&sy.lock);
    while (!sy.stop) {
        if (sy.requested > done) {
            uint64_t batch = sy.requested;
            pthread_mutex_unlock(&sy.lock);
            if (wal_fd < 0)
                wal_fd = open(sy.wal_path, O_RDONLY | O_CLOEXEC);
            /* fsync of any descriptor flushes the file's data to disk. */
            if (wal_fd >= 0 && fdatasync(wal_fd) != 0)
                log_error("store: fsync of %s failed: %s", sy.wal_path, strerror(errno));
            done = batch;
            ssize_t w;
            do
                w = write(sy.pipe_wr, &batch, sizeof batch);
            while (w < 0 && errno == EINTR);
            pthread_mutex_lock(&sy.lock);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += CHECKPOINT_INTERVAL_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        int rc = pthread_cond_timedwait(&sy.wake, &sy.lock, &until);
        if (rc == ETIMEDOUT && db && !sy.stop) {
            pthread_mutex_unlock(&sy.lock);
            /* PASSIVE never blocks the loop's writes. */
            sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
            pthread_mutex_lock(&sy.lock);
        }
    }
    pthread_mutex_unlock(&sy.lock);
    if (wal_fd >= 0)
        close(wal_fd);
    sqlite3_close(db);
    return NULL;
}

static void pipe_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    uint64_t batch, latest = 0;
    while (read(fd, &batch, sizeof batch) == (ssize_t)sizeof batch)
        latest = batch;
    if (latest)
        store_synced(latest);
}

int store_sync_start(const char *db_path, bool fsync_commits)
{
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return -1;
    sy.pipe_rd = fds[0];
    sy.pipe_wr = fds[1];
    snprintf(sy.db_path, sizeof sy.db_path, "%s", db_path);
    snprintf(sy.wal_path, sizeof sy.wal_path, "%s-wal", db_path);
    sy.fsync_commits = fsync_commits;
    sy.stop = false;
    sy.requested = 0;
    sy.pipe_ev = event_new(broker.base, sy.pipe_rd, EV_READ | EV_PERSIST, pipe_cb, NULL);
    if (!sy.pipe_ev || event_add(sy.pipe_ev, NULL) != 0)
        goto fail;
    pthread_mutex_init(&sy.lock, NULL);
    pthread_cond_init(&sy.wake, NULL);
    if (pthread_create(&sy.thread, NULL, sync_main, NULL) != 0)
        goto fail;
    sy.running = true;
    return 0;
fail:
    if (sy.pipe_ev)
        event_free(sy.pipe_ev);
    sy.pipe_ev = NULL;
    close(sy.pipe_rd);
    close(sy.pipe_wr);
    sy.pipe_rd = sy.pipe_wr = -1;
    return -1;
}

void store_sync_request(uint64_t batch)
{
    pthread_mutex_lock(&sy.lock);
    sy.requested = batch;
    pthread_cond_signal(&sy.wake);
    pthread_mutex_unlock(&sy.lock);
}

void store_sync_stop(void)
{
    if (sy.running) {
        pthread_mutex_lock(&sy.lock);
        sy.stop = true;
        pthread_cond_signal(&sy.wake);
        pthread_mutex_unlock(&sy.lock);
        pthread_join(sy.thread, NULL);
        sy.running = false;
        /* Batches synced by the last fsync are released by the caller's
         * final commit; what is left in the pipe no longer matters. */
    }
    if (sy.pipe_ev)
        event_free(sy.pipe_ev);
    sy.pipe_ev = NULL;
    if (sy.pipe_rd >= 0)
        close(sy.pipe_rd);
    if (sy.pipe_wr >= 0)
        close(sy.pipe_wr);
    sy.pipe_rd = sy.pipe_wr = -1;
}
