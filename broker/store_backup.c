/*
 * store_backup.c - `petreld --backup DEST`: an online backup of petrel.db
 * with SQLite's backup API, safe while the broker runs, written so that DEST
 * is never a half-written file.
 */
#include "store_backup.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "store_internal.h"

/* Room for a data directory path (config.h allows 4095 bytes) plus names. */
#define PATH_LEN 4400
/* A busy source (a WAL recovery in progress) is retried this often. */
#define BUSY_RETRIES 50
#define BUSY_SLEEP_MS 100

struct backup_counts {
    int64_t sessions, subscriptions, queued, inflight, retained, bytes;
};

/* Runs a pragma that returns one text row and checks it (journal_mode,
 * integrity_check).  Returns 0, or -1 with what it said in err. */
static int pragma_expect(sqlite3 *db, const char *sql, const char *want, char *err, size_t len)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, len, "%s: %s", sql, sqlite3_errmsg(db));
        return -1;
    }
    rc = sqlite3_step(st);
    int ok = rc == SQLITE_ROW && sqlite3_column_text(st, 0) &&
             strcmp((const char *)sqlite3_column_text(st, 0), want) == 0;
    if (!ok)
        snprintf(err, len, "%s: %s", sql,
                 rc == SQLITE_ROW && sqlite3_column_text(st, 0)
                     ? (const char *)sqlite3_column_text(st, 0) : sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

/* What the copy holds, for the summary. */
static int count_copy(sqlite3 *db, struct backup_counts *c)
{
    static const char *const sql[] = {
        "SELECT count(*) FROM sessions",
        "SELECT count(*) FROM subscriptions",
        "SELECT count(*) FROM deliveries WHERE state = 0",
        "SELECT count(*) FROM deliveries WHERE state != 0",
        "SELECT count(*) FROM retained",
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
    };
    int64_t *out[] = {&c->sessions, &c->subscriptions,
                      &c->queued, &c->inflight, &c->retained, &c->bytes};
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++)
        if (store_query_int(db, sql[i], out[i]) != SQLITE_OK)
            return -1;
    return 0;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static void remove_temp(const char *tmp)
{
    char journal[PATH_LEN + 16];
    unlink(tmp);
    snprintf(journal, sizeof journal, "%s-journal", tmp);
    unlink(journal);
}

int store_backup(const char *data_dir, const char *dest, FILE *out)
{
    /* err holds a path and SQLite's message. */
    char src_path[PATH_LEN], tmp[PATH_LEN], err[2 * PATH_LEN];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    snprintf(src_path, sizeof src_path, "%s/%s", data_dir, STORE_FILE);
    if (!*dest || strlen(dest) > PATH_LEN - 32) {
        fprintf(stderr, "petreld: --backup: %s destination\n", *dest ? "too long a" : "empty");
        return 1;
    }

    /* Renaming the copy onto the live database, its WAL or its lock would
     * destroy them; and a backup next to the store shares its disk's fate. */
    struct stat ds, ss;
    if (stat(dest, &ds) == 0 && S_ISDIR(ds.st_mode)) {
        fprintf(stderr, "petreld: --backup: %s is a directory; give a file name\n", dest);
        return 1;
    }
    char dest_dir[PATH_LEN];
    snprintf(dest_dir, sizeof dest_dir, "%s", dest);
    if (stat(dirname(dest_dir), &ds) == 0 && stat(data_dir, &ss) == 0 &&
        ds.st_dev == ss.st_dev && ds.st_ino == ss.st_ino) {
        fprintf(stderr, "petreld: --backup: %s is in the data directory %s; write the backup "
                "elsewhere\n", dest, data_dir);
        return 1;
    }

    sqlite3 *src = NULL, *dst = NULL;
    /* Read-only, and only a Petrel database of this build's schema: the
     * same checks as petreld --inspect. */
    if (store_schema_open(&src, src_path, true, err, sizeof err) != 0) {
        fprintf(stderr, "petreld: --backup: %s\n", err);
        return 1;
    }

    /* The copy is private like the store it comes from (it holds every
     * queued message), and created before SQLite opens it so that it never
     * exists with wider permissions. */
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", dest, (long)getpid());
    remove_temp(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "petreld: --backup: cannot create %s: %s\n", tmp, strerror(errno));
        sqlite3_close(src);
        return 1;
    }
    close(fd);

    int rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, sizeof err, "cannot open %s: %s", tmp,
                 dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(dst, 1);
    /* FULL: the copy's commit is on disk before it is renamed into place. */
    if (sqlite3_exec(dst, "PRAGMA synchronous = FULL", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, sizeof err, "%s: %s", tmp, sqlite3_errmsg(dst));
        goto fail;
    }

    /* All pages in one step: one read transaction on the source, so the
     * copy is a single consistent snapshot.  Copying in slices would
     * restart whenever the broker commits in between, which under load is
     * always. */
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) {
        snprintf(err, sizeof err, "backup of %s: %s", src_path, sqlite3_errmsg(dst));
        goto fail;
    }
    for (int tries = 0;; tries++) {
        rc = sqlite3_backup_step(b, -1);
        if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || tries == BUSY_RETRIES)
            break;
        sqlite3_sleep(BUSY_SLEEP_MS);
    }
    int frc = sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE || frc != SQLITE_OK) {
        snprintf(err, sizeof err, "copying %s: %s", src_path,
                 sqlite3_errstr(rc != SQLITE_DONE ? rc : frc));
        goto fail;
    }
    sqlite3_close(src);
    src = NULL;

    /* The copy takes the source's WAL mode with it; a backup should be one
     * file that can be moved anywhere, so it goes back to a rollback
     * journal (petreld switches it to WAL again when it opens it). */
    if (pragma_expect(dst, "PRAGMA journal_mode = DELETE", "delete", err, sizeof err) != 0 ||
        pragma_expect(dst, "PRAGMA integrity_check", "ok", err, sizeof err) != 0)
        goto fail;
    rc = sqlite3_close(dst);
    dst = NULL;
    if (rc != SQLITE_OK) {
        snprintf(err, sizeof err, "closing %s: %s", tmp, sqlite3_errstr(rc));
        goto fail;
    }

    /* The copy must pass the checks petreld itself makes when it starts:
     * a Petrel database (application id) of a schema this build reads. */
    if (store_schema_open(&dst, tmp, true, err, sizeof err) != 0)
        goto fail;
    struct backup_counts c;
    if (count_copy(dst, &c) != 0) {
        snprintf(err, sizeof err, "reading the copy %s: %s", tmp, sqlite3_errmsg(dst));
        goto fail;
    }
    sqlite3_close(dst);
    dst = NULL;

    /* Durable before it replaces dest, and the rename durable after. */
    if (fsync_path(tmp, O_RDONLY) != 0 || rename(tmp, dest) != 0) {
        snprintf(err, sizeof err, "cannot put the copy in place at %s: %s", dest, strerror(errno));
        goto fail;
    }
    snprintf(dest_dir, sizeof dest_dir, "%s", dest);
    if (fsync_path(dirname(dest_dir), O_RDONLY | O_DIRECTORY) != 0)
        fprintf(stderr, "petreld: --backup: warning: cannot sync the directory of %s: %s\n", dest,
                strerror(errno));

    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
    fprintf(out,
            "backup of %s written to %s (%lld bytes, integrity ok, %ld ms): sessions %lld, "
            "subscriptions %lld, queued messages %lld, in flight %lld, retained %lld\n",
            src_path, dest, (long long)c.bytes, ms, (long long)c.sessions,
            (long long)c.subscriptions, (long long)c.queued, (long long)c.inflight,
            (long long)c.retained);
    return 0;

fail:
    fprintf(stderr, "petreld: --backup: %s\n", err);
    if (dst)
        sqlite3_close(dst);
    if (src)
        sqlite3_close(src);
    remove_temp(tmp);
    return 1;
}
