/*
 * line_file.c - the line loop shared by the password file and ACL readers,
 * so that both reject the same things (over-long lines, NUL bytes, read
 * errors) with the same "path:line: why" messages.
 */
#include "line_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

int line_file_read(const char *path, line_file_fn fn, void *arg, char *err, size_t errlen)
{
    FILE *in = fopen(path, "r");
    if (!in) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
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
