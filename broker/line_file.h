/*
 * line_file.h - reading a text file of the broker's own (password file, ACL
 * file) one line at a time, with the same rules and error format for all:
 * "path:line: why", lines of at most LINE_FILE_MAX bytes, no NUL bytes, a
 * regular file of at most LINE_FILE_MAX_BYTES (a FIFO or a device such as
 * /dev/zero would never end, or never begin).
 */
#ifndef PETREL_LINE_FILE_H
#define PETREL_LINE_FILE_H

#include <stdbool.h>
#include <stddef.h>

#define LINE_FILE_MAX 70000
/* A whole file: a bound on what reading it may cost, in time and memory
 * (a password file of 64 MiB holds some 400,000 users). */
#define LINE_FILE_MAX_BYTES (64 * 1024 * 1024)

/* Handles one line (NUL-terminated, without its LF, modifiable).  Returns
 * 0, or -1 with a reason (without location) in why. */
typedef int (*line_file_fn)(char *line, size_t len, void *arg, char *why, size_t whylen);

/* Calls fn for every line of path, in order, stopping at the first error.
 * Returns 0, or -1 with "path:line: why" or "path: strerror" in err. */
int line_file_read(const char *path, line_file_fn fn, void *arg, char *err, size_t errlen);

/* The same into a table its caller has just made: `made` false (out of
 * memory making it) is reported as "path: out of memory".  On -1 the
 * caller frees what it made. */
int line_file_load(const char *path, bool made, line_file_fn fn, void *arg, char *err,
                   size_t errlen);

#endif
