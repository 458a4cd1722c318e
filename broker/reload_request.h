/*
 * reload_request.h - `petreld --reload`: tells the petreld that runs on a
 * data directory to reload (SIGHUP) and waits until it has, printing what
 * it reloaded.  The unit's ExecReload= uses it, so a reload needs no kill(1)
 * and `systemctl reload` returns once the reload is done, failing if it
 * went wrong.  The running broker keeps the record this reads (its pid and
 * its last reload) in the lock file of its data directory.
 */
#ifndef PETREL_RELOAD_REQUEST_H
#define PETREL_RELOAD_REQUEST_H

#include <stdio.h>

/* Broker side, once the data directory is locked (lock_fd open for
 * writing): records this process as the one to signal. */
void reload_record_start(int lock_fd);

/* Broker side, after each reload: what it logged ("LEVEL MESSAGE" lines,
 * see log_capture_begin) and how many of those lines were errors.  A small
 * write to the page cache, no fsync: the record is for the process that
 * asked, not for after a crash. */
void reload_record_done(int lock_fd, unsigned errors, const char *lines);

/* The whole of `petreld --reload`: finds the petreld holding the lock of
 * data_dir, sends it SIGHUP and waits (at most timeout_s) for its record
 * of that reload, which goes to out.  Returns the exit status: 0 reloaded,
 * 1 reloaded with errors (the settings that failed stay as they were), no
 * petreld running there, or no answer in time; the reason is on err. */
int reload_request(const char *data_dir, int timeout_s, FILE *out, FILE *err);

#endif
