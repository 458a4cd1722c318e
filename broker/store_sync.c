/*
 * store_sync.c - the storage threads, which keep slow disk work off the
 * event loop.  The checkpoint thread copies the WAL into the database every
 * second through its own SQLite connection, and sooner when the loop says
 * the WAL has grown by WAL_KICK_BYTES, or less on a disk with little room
 * (store_sync_kick, fit_to_disk).  The sync thread,
 * with durability =
 * power, fsyncs the WAL after each commit, then tells the loop (through a
 * pipe) which batch is durable so that the acknowledgements waiting for it
 * can go out; commits that arrive while an fsync runs share the next one.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>

#include "broker.h"
#include "log.h"
#include "store_internal.h"
#include "thread_pipe.h"

#define CHECKPOINT_INTERVAL_MS 1000
/* A WAL at least this large is started over after the checkpoint: see
 * checkpoint(). */
#define WAL_RESTART_BYTES (32 * 1024 * 1024)
/* On a filesystem with little room the WAL is kept to a part of it
 * (fit_to_disk), but not below these. */
#define WAL_RESTART_MIN (1024 * 1024)
#define WAL_KICK_MIN (256 * 1024)

static struct {
    pthread_t thread, ckpt_thread;
    bool running, ckpt_running;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    bool fsync_commits;
    uint64_t requested;     /* highest batch committed and waiting for fsync */
    bool kicked;            /* checkpoint now: the WAL grew fast */
    atomic_bool restart_wanted; /* a RESTART checkpoint waits for the write lock */
    atomic_bool truncate_wanted; /* a commit failed: give the WAL's space back */
    atomic_llong kick_bytes;    /* WAL growth that asks for a checkpoint now */
    int64_t restart_bytes;      /* WAL size past which it is started over */
    bool tight;                 /* little room on the disk: truncate the WAL */
    atomic_llong hard_bytes;    /* WAL size at which commits stop (tight only) */
    atomic_bool wal_over;       /* ... reached: commits fail until it starts over */
    char wal_path[4300];
    char db_path[4200];
    struct thread_pipe pipe; /* thread -> loop: durable batch numbers, each
                                with its fsync's time (struct sync_note) */
    int frame_bytes;        /* a WAL frame: a page and its 24-byte header */
} sy = {.pipe = THREAD_PIPE_INIT};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copies the WAL into the database.  PASSIVE never blocks the loop's
 * writes; but under a steady load the loop commits while it copies, so it
 * never copies everything, the WAL is never started over and would grow
 * without end (at 20,000 msg/s by 80 MB/s).  So once the WAL is large, a
 * RESTART copies the rest (what the loop wrote during the pass just done:
 * little) holding the write lock, and the loop's next transaction starts
 * the WAL over; the loop waits for it meanwhile, about one fsync. */
/* Sizes the WAL to the room on its filesystem.  Frames in the WAL are
 * copied into the database before the WAL can start over, which may need
 * as much room again: a WAL allowed to grow to the free space (a fast
 * publisher on a small disk) leaves the database no room to take it, the
 * checkpoint never completes and the store stays full for good, even once
 * the messages are consumed (a 17 MB WAL beside a 1 MB database on 24 MB).
 * So on a disk with little room the WAL is checkpointed and started over
 * at a quarter of the room (free space plus the WAL's own size), and
 * truncated when it starts over. */
static void fit_to_disk(void)
{
    struct statvfs vfs;
    struct stat st;
    if (statvfs(sy.db_path, &vfs) != 0)
        return;
    int64_t room = (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
    if (stat(sy.wal_path, &st) == 0)
        room += (int64_t)st.st_size;
    int64_t restart = room / 4, kick = room / 8;
    restart = restart < WAL_RESTART_MIN ? WAL_RESTART_MIN
              : restart > WAL_RESTART_BYTES ? WAL_RESTART_BYTES : restart;
    kick = kick < WAL_KICK_MIN ? WAL_KICK_MIN : kick > WAL_KICK_BYTES ? WAL_KICK_BYTES : kick;
    sy.restart_bytes = restart;
    sy.tight = restart < WAL_RESTART_BYTES;
    atomic_store(&sy.kick_bytes, kick);
    /* Half the room: the database can then always take what the WAL
     * holds.  On a roomy disk no hard bound: the restarts keep it near
     * WAL_RESTART_BYTES. */
    atomic_store(&sy.hard_bytes, sy.tight ? 2 * restart : INT64_MAX);
}

static void checkpoint(sqlite3 *db)
{
    int n_log = 0, n_done = 0;
    fit_to_disk();
    if (sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &n_log, &n_done) !=
        SQLITE_OK)
        return;
    /* After a failed commit (a full disk), once everything is copied: the
     * WAL is started over and truncated, so that its room goes to the
     * database. */
    bool truncate = (atomic_load(&sy.truncate_wanted) || atomic_load(&sy.wal_over)) &&
                    n_log > 0 && n_done == n_log;
    /* Even "all copied" does not start the WAL over when the loop commits
     * straight after (its transaction was open meanwhile): go by the
     * frames written since it last started over. */
    if (!truncate && (int64_t)n_log * (sqlite3_int64)sy.frame_bytes < sy.restart_bytes)
        return;
    /* A loop that commits turn after turn leaves the write lock free for
     * microseconds at a time: it waits for this RESTART after its next
     * commit instead (store_sync_restart_wait). */
    atomic_store(&sy.restart_wanted, true);
    int rc = sqlite3_wal_checkpoint_v2(db, NULL, truncate || sy.tight ? SQLITE_CHECKPOINT_TRUNCATE
                                                                     : SQLITE_CHECKPOINT_RESTART,
                                       &n_log, &n_done);
    atomic_store(&sy.restart_wanted, false);
    if (rc == SQLITE_OK && n_done == n_log) {
        atomic_store(&sy.truncate_wanted, false);
        atomic_store(&sy.wal_over, false);
    }
}

/* Waits on `cond` until `ms` from now or a signal, `lock` held; shared
 * with the writeback thread (store_internal.h). */
void store_cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(cond, lock, &until);
}

/* Starts a storage thread running `main`; *running says whether one was
 * started (store_internal.h). */
int store_thread_start(pthread_t *thread, void *(*main)(void *), bool *running)
{
    *running = pthread_create(thread, NULL, main, NULL) == 0;
    return *running ? 0 : -1;
}

/* Sets *flag under `lock` and wakes every thread waiting on `cond`; shared
 * with the writeback thread (store_internal.h). */
void store_cond_raise(pthread_cond_t *cond, pthread_mutex_t *lock, bool *flag)
{
    pthread_mutex_lock(lock);
    *flag = true;
    pthread_cond_broadcast(cond);
    pthread_mutex_unlock(lock);
}

static void *checkpoint_main(void *arg)
{
    (void)arg;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(sy.db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        log_error("store: no checkpoints (cannot open %s): the WAL grows until the next start",
                  sy.db_path);
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_handler(db, store_busy_wait, NULL);
    /* A completed checkpoint syncs the database file before the WAL
     * is reused, so nothing committed is exposed to a power loss. */
    sqlite3_exec(db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    int64_t page = 4096;
    store_query_int(db, "PRAGMA page_size", &page);
    sy.frame_bytes = (int)page + 24;
    fit_to_disk();
    int64_t next = mono_ms() + CHECKPOINT_INTERVAL_MS;
    pthread_mutex_lock(&sy.lock);
    while (!sy.stop) {
        int64_t left = next - mono_ms();
        if (left > 0 && !sy.kicked) {
            store_cond_wait_ms(&sy.wake, &sy.lock, left);
            continue;
        }
        sy.kicked = false;
        pthread_mutex_unlock(&sy.lock);
        checkpoint(db);
        next = mono_ms() + CHECKPOINT_INTERVAL_MS;
        pthread_mutex_lock(&sy.lock);
    }
    pthread_mutex_unlock(&sy.lock);
    sqlite3_close(db);
    return NULL;
}

struct sync_note {
    uint64_t batch;
    uint64_t fsync_ns;      /* for the latency histogram (broker.h) */
};

static void *sync_main(void *arg)
{
    (void)arg;
    int wal_fd = -1;
    uint64_t done = 0;
    pthread_mutex_lock(&sy.lock);
    while (!sy.stop) {
        if (sy.requested <= done) {
            pthread_cond_wait(&sy.wake, &sy.lock);
            continue;
        }
        uint64_t batch = sy.requested;
        pthread_mutex_unlock(&sy.lock);
        if (wal_fd < 0)
            wal_fd = open(sy.wal_path, O_RDONLY | O_CLOEXEC);
        /* fsync of any descriptor flushes the file's data to disk. */
        uint64_t t0 = histogram_now_ns();
        if (wal_fd >= 0 && fdatasync(wal_fd) != 0)
            log_error("store: fsync of %s failed: %s", sy.wal_path, strerror(errno));
        struct sync_note note = {batch, histogram_now_ns() - t0};
        done = batch;
        thread_pipe_write(&sy.pipe, &note, sizeof note);
        pthread_mutex_lock(&sy.lock);
    }
    pthread_mutex_unlock(&sy.lock);
    if (wal_fd >= 0)
        close(wal_fd);
    return NULL;
}

static void pipe_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    uint64_t latest = 0;
    struct sync_note note;
    while (read(fd, &note, sizeof note) == (ssize_t)sizeof note) {
        latest = note.batch;
        histogram_observe_ns(&broker.store_fsync_latency, note.fsync_ns);
    }
    if (latest)
        store_synced(latest);
}

int store_sync_start(const char *db_path, bool fsync_commits)
{
    if (thread_pipe_open(&sy.pipe, broker.base, O_NONBLOCK, EV_READ | EV_PERSIST, pipe_cb,
                         NULL) != 0)
        return -1;
    snprintf(sy.db_path, sizeof sy.db_path, "%s", db_path);
    snprintf(sy.wal_path, sizeof sy.wal_path, "%s-wal", db_path);
    sy.fsync_commits = fsync_commits;
    sy.stop = false;
    sy.requested = 0;
    sy.restart_bytes = WAL_RESTART_BYTES;
    atomic_store(&sy.kick_bytes, WAL_KICK_BYTES);
    atomic_store(&sy.hard_bytes, INT64_MAX);
    atomic_store(&sy.wal_over, false);
    atomic_store(&sy.truncate_wanted, false);
    pthread_mutex_init(&sy.lock, NULL);
    pthread_cond_init(&sy.wake, NULL);
    if (store_thread_start(&sy.ckpt_thread, checkpoint_main, &sy.ckpt_running) != 0)
        goto fail;
    if (fsync_commits && store_thread_start(&sy.thread, sync_main, &sy.running) != 0) {
        store_sync_stop();
        return -1;
    }
    return 0;
fail:
    thread_pipe_close(&sy.pipe);
    return -1;
}

void store_sync_restart_wait(void)
{
    /* At most 20 ms: the checkpoint may be stuck on something else. */
    for (int i = 0; i < 400 && atomic_load(&sy.restart_wanted); i++) {
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
}

int64_t store_sync_kick_bytes(void) { return atomic_load(&sy.kick_bytes); }

void store_sync_wal_size(int64_t bytes)
{
    if (bytes >= atomic_load(&sy.hard_bytes) && !atomic_load(&sy.wal_over)) {
        atomic_store(&sy.wal_over, true);
        store_sync_kick();
    }
}

bool store_sync_wal_over(void) { return atomic_load(&sy.wal_over); }

void store_sync_truncate(void)
{
    atomic_store(&sy.truncate_wanted, true);
    store_sync_kick();
}

void store_sync_kick(void)
{
    if (sy.ckpt_running)
        store_cond_raise(&sy.wake, &sy.lock, &sy.kicked);
}

void store_sync_request(uint64_t batch)
{
    pthread_mutex_lock(&sy.lock);
    sy.requested = batch;
    pthread_cond_broadcast(&sy.wake); /* the checkpoint thread waits on it too */
    pthread_mutex_unlock(&sy.lock);
}

void store_sync_stop(void)
{
    if (sy.running || sy.ckpt_running) {
        store_cond_raise(&sy.wake, &sy.lock, &sy.stop);
        if (sy.running)
            pthread_join(sy.thread, NULL);
        if (sy.ckpt_running)
            pthread_join(sy.ckpt_thread, NULL);
        sy.running = sy.ckpt_running = false;
        /* Batches synced by the last fsync are released by the caller's
         * final commit; what is left in the pipe no longer matters. */
    }
    thread_pipe_close(&sy.pipe);
}
