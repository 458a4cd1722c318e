/*
 * store_inspect.c - `petreld --inspect`: a read-only look into petrel.db for
 * operators: sessions with their subscriptions and queue depth, and retained
 * topics.  Safe while the broker runs (WAL readers do not block writers).
 */
#include <stdio.h>
#include <time.h>

#include "store.h"
#include "store_internal.h"

/* Client ids and topics are arbitrary bytes: escape what a terminal would
 * interpret. */
static void print_escaped(FILE *out, const unsigned char *s, int len)
{
    fputc('"', out);
    for (int i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] == 0x7f || s[i] == '"' || s[i] == '\\')
            fprintf(out, "\\x%02x", s[i]);
        else
            fputc(s[i], out);
    }
    fputc('"', out);
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fprintf(stderr, "petreld: --inspect: %s\n", sqlite3_errmsg(db));
    return st;
}

int store_inspect(const char *data_dir, uint32_t session_expiry, bool cluster, FILE *out)
{
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/%s", data_dir, STORE_FILE);
    sqlite3 *db;
    if (store_schema_open(&db, path, true, err, sizeof err) != 0) {
        fprintf(stderr, "petreld: %s\n", err);
        return 1;
    }
    int rc = 1;
    sqlite3_stmt *sessions = prep(db, "SELECT id, client_id, offline_since, "
                                      "(SELECT count(*) FROM deliveries d WHERE d.session_id = s.id AND state = 0), "
                                      "(SELECT total(size) FROM deliveries d WHERE d.session_id = s.id AND state = 0), "
                                      "(SELECT count(*) FROM deliveries d WHERE d.session_id = s.id AND state != 0), "
                                      "expiry, will_at, will_topic, will_qos "
                                      "FROM sessions s ORDER BY client_id");
    sqlite3_stmt *subs = prep(db, "SELECT filter, options FROM subscriptions WHERE session_id = ?1 ORDER BY filter");
    sqlite3_stmt *retained = prep(db, "SELECT r.topic, m.qos, length(m.payload) FROM retained r "
                                      "JOIN messages m ON m.id = r.message_id ORDER BY r.topic");
    sqlite3_stmt *counts = prep(db, "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM retained), "
                                    "(SELECT count(*) FROM cluster_outbox), "
                                    "(SELECT total(size) FROM cluster_outbox)");
    if (!sessions || !subs || !retained || !counts || sqlite3_step(counts) != SQLITE_ROW)
        goto out;

    fprintf(out, "database %s (schema %d)\n", path, STORE_SCHEMA_VERSION);
    fprintf(out, "sessions %lld\n", (long long)sqlite3_column_int64(counts, 0));
    time_t now = time(NULL);
    while (sqlite3_step(sessions) == SQLITE_ROW) {
        fprintf(out, "session ");
        print_escaped(out, sqlite3_column_blob(sessions, 1), sqlite3_column_bytes(sessions, 1));
        int64_t since = sqlite3_column_int64(sessions, 2);
        if (since == 0) {
            fprintf(out, " online\n");
        } else {
            char stamp[32];
            time_t t = (time_t)since;
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
            fprintf(out, " offline since %s, ", stamp);
            /* A 5.0 session has its own Session Expiry Interval. */
            bool own = sqlite3_column_type(sessions, 6) != SQLITE_NULL;
            int64_t expiry = own ? sqlite3_column_int64(sessions, 6) : (int64_t)session_expiry;
            if (own ? expiry >= UINT32_MAX : expiry == 0)
                fprintf(out, "never expires\n");
            else
                fprintf(out, "expires in %lld s\n",
                        (long long)(since + expiry > now ? since + expiry - now : 0));
        }
        sqlite3_reset(subs);
        sqlite3_bind_int64(subs, 1, sqlite3_column_int64(sessions, 0));
        while (sqlite3_step(subs) == SQLITE_ROW) {
            fprintf(out, "  subscription ");
            print_escaped(out, sqlite3_column_blob(subs, 0), sqlite3_column_bytes(subs, 0));
            fprintf(out, " qos %d\n", sqlite3_column_int(subs, 1) & 3);
        }
        fprintf(out, "  queue %lld messages, %lld bytes, %lld in flight\n",
                (long long)sqlite3_column_int64(sessions, 3),
                (long long)sqlite3_column_double(sessions, 4),
                (long long)sqlite3_column_int64(sessions, 5));
        if (sqlite3_column_type(sessions, 7) != SQLITE_NULL) {
            /* A will waiting for its Will Delay Interval (unix ms). */
            int64_t left = sqlite3_column_int64(sessions, 7) - (int64_t)now * 1000;
            fprintf(out, "  will ");
            print_escaped(out, sqlite3_column_blob(sessions, 8), sqlite3_column_bytes(sessions, 8));
            fprintf(out, " qos %d, due in %lld s\n", sqlite3_column_int(sessions, 9),
                    (long long)(left > 0 ? left / 1000 : 0));
        }
    }
    fprintf(out, "retained %lld\n", (long long)sqlite3_column_int64(counts, 1));
    while (sqlite3_step(retained) == SQLITE_ROW) {
        fprintf(out, "retained ");
        print_escaped(out, sqlite3_column_blob(retained, 0), sqlite3_column_bytes(retained, 0));
        fprintf(out, " qos %d, %lld bytes\n", sqlite3_column_int(retained, 1),
                (long long)sqlite3_column_int64(retained, 2));
    }
    /* A cluster node's QoS 1/2 messages that JetStream has not stored yet
     * (published again at the next start): docs/cluster.md. */
    if (cluster || sqlite3_column_int64(counts, 2) > 0)
        fprintf(out, "cluster outbox %lld messages, %lld bytes\n",
                (long long)sqlite3_column_int64(counts, 2),
                (long long)sqlite3_column_double(counts, 3));
    rc = 0;
out:
    sqlite3_finalize(sessions);
    sqlite3_finalize(subs);
    sqlite3_finalize(retained);
    sqlite3_finalize(counts);
    sqlite3_close(db);
    return rc;
}
