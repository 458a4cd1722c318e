/*
 * store_backup.h - `petreld --backup DEST`: a consistent copy of the live
 * store, taken with SQLite's online backup API while petreld keeps running.
 */
#ifndef PETREL_STORE_BACKUP_H
#define PETREL_STORE_BACKUP_H

#include <stdio.h>

/* Copies data_dir/petrel.db to dest as one self-contained database file
 * (no -wal needed) that a fresh petreld starts from when it is placed in an
 * empty data directory as petrel.db.  The copy is one snapshot: a single
 * read transaction, which in WAL mode never blocks the broker's writes.  It
 * is written to a temporary file next to dest, checked (integrity_check,
 * application id, schema version), synced, and renamed onto dest, so dest
 * is either the old file or a complete new backup.  Prints a summary to
 * out and errors to stderr.  Returns an exit code: 0, or 1 on failure. */
int store_backup(const char *data_dir, const char *dest, FILE *out);

#endif
