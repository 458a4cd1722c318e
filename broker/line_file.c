/*
 * line_file.c - the line loop shared by the password file and ACL readers,
 * so that both reject the same things (over-long lines, NUL bytes, read
 * errors) with the same "path:line: why" messages.
 */
#include "line_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* Opens path for reading if it is a regular file of a bounded size.  The
 * open does not block (a FIFO without a writer would block it forever). */
static FILE *open_bounded(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
    } else if (st.st_size > LINE_FILE_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %d MiB", path, LINE_FILE_MAX_BYTES >> 20);
    } else {
        int fl = fcntl(fd, F_GETFL);
        FILE *in = fl >= 0 && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0 ? fdopen(fd, "r") : NULL;
        if (in)
            return in;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    }
    close(fd);
    return NULL;
}

int line_file_read(const char *path, line_file_fn fn, void *arg, char *err, size_t errlen)
{
    FILE *in = open_bounded(path, err, errlen);
    if (!in)
        return -1;
    size_t total = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned lineno = 0;
    int rc = 0;
    char why[300];
    errno = 0;
    while ((n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        total += len;
        if (total > LINE_FILE_MAX_BYTES) { /* it grew while being read */
            snprintf(err, errlen, "%s: larger than %d MiB", path, LINE_FILE_MAX_BYTES >> 20);
            rc = -1;
            break;
        }
        if (len && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len > LINE_FILE_MAX) {
            snprintf(why, sizeof why, "line longer than %d bytes", LINE_FILE_MAX);
            rc = -1;
        } else if (strlen(line) != len) {
            snprintf(why, sizeof why, "line contains a NUL byte");
            rc = -1;
        } else {
            rc = fn(line, len, arg, why, sizeof why);
        }
        if (rc != 0) {
            snprintf(err, errlen, "%s:%u: %s", path, lineno, why);
            break;
        }
    }
    if (rc == 0 && ferror(in)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno ? errno : EIO));
        rc = -1;
    }
    free(line);
    fclose(in);
    return rc;
}

int line_file_load(const char *path, bool made, line_file_fn fn, void *arg, char *err,
                   size_t errlen)
{
    if (!made) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    return line_file_read(path, fn, arg, err, errlen);
}
