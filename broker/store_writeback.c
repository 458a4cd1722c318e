/*
 * store_writeback.c - the writeback thread: keeps the store's files from
 * holding many dirty pages, so that the event loop's writes to the WAL never
 * wait behind a large writeback.
 *
 * Why: with durability = process nothing is fsynced on commit, so the WAL's
 * new pages stay dirty in the page cache until the checkpoint thread fsyncs
 * the WAL (each second, store_sync.c).  That fsync then writes back the
 * second's worth of WAL (about 25 MB at 20,000 msg/s), and while it does
 * (ext4 locks each page and maps its blocks as it goes), the loop's next
 * append to the WAL waits: 5-14 ms turns about once a second, the p99 of
 * a durable subscriber's latency.  Starting the writeback of what is dirty
 * every WRITEBACK_MS (sync_file_range, SYNC_FILE_RANGE_WRITE: start it, do
 * not wait for it) keeps each batch small, and the fsyncs find little
 * left to do.  Nothing is written that would not be written anyway (each
 * WAL frame and database page reaches the disk at the next checkpoint),
 * and no guarantee depends on it: durability is still the fsyncs'.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "log.h"
#include "store_internal.h"

/* Measured with S2r's load (20,000 msg/s to a persistent subscriber,
 * 7 runs each): p99 0.38-1.22 ms with 20 ms against 0.69-3.02 ms without
 * the thread; 5 ms was worse (more, smaller writebacks in the loop's way),
 * 50 ms about the same as 20. */
#define WRITEBACK_MS 20

static struct {
    pthread_t thread;
    bool running;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    char paths[2][4300]; /* the database and its WAL */
} wb = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* The WAL may not exist yet when the thread starts (and is recreated by a
 * new connection after a clean close), so each file is opened when it can
 * be; a descriptor stays valid while SQLite truncates or rewrites the file
 * in place. */
static void start_writeback(int fds[2])
{
    for (int i = 0; i < 2; i++) {
        if (fds[i] == -2)
            continue;
        if (fds[i] < 0)
            fds[i] = open(wb.paths[i], O_RDONLY | O_CLOEXEC);
        if (fds[i] >= 0 && sync_file_range(fds[i], 0, 0, SYNC_FILE_RANGE_WRITE) != 0 &&
            (errno == ESPIPE || errno == EINVAL)) {
            /* Not for this file or filesystem: nothing to pace.  Other
             * errors (EIO, ENOSPC on a full disk) pass: the next round
             * tries again, and the fsyncs report what matters. */
            close(fds[i]);
            fds[i] = -2;
        }
    }
}

static void *writeback_main(void *arg)
{
    (void)arg;
    int fds[2] = {-1, -1};
    pthread_mutex_lock(&wb.lock);
    while (!wb.stop) {
        store_cond_wait_ms(&wb.wake, &wb.lock, WRITEBACK_MS);
        if (wb.stop)
            break;
        pthread_mutex_unlock(&wb.lock);
        start_writeback(fds);
        pthread_mutex_lock(&wb.lock);
    }
    pthread_mutex_unlock(&wb.lock);
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return NULL;
}

int store_writeback_start(const char *db_path)
{
    snprintf(wb.paths[0], sizeof wb.paths[0], "%s", db_path);
    snprintf(wb.paths[1], sizeof wb.paths[1], "%s-wal", db_path);
    wb.stop = false;
    if (store_thread_start(&wb.thread, writeback_main, &wb.running) != 0) {
        log_warning("store: no writeback thread: the loop may wait behind the WAL's fsync");
        return -1;
    }
    return 0;
}

void store_writeback_stop(void)
{
    if (!wb.running)
        return;
    store_cond_raise(&wb.wake, &wb.lock, &wb.stop);
    pthread_join(wb.thread, NULL);
    wb.running = false;
}
