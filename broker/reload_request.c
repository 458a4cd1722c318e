/*
 * reload_request.c - `petreld --reload` and the record it reads: the
 * running broker writes its pid and, after each reload, what the reload
 * logged into DATA_DIR/petreld.lock; --reload signals that pid and waits
 * for the record of the next reload.
 *
 * The record is text:
 *     petreld PID
 *     reload GENERATION errors N
 *     LEVEL MESSAGE            (one line per message the reload logged)
 *     end GENERATION
 * It is rewritten in place; a reader that catches it half written finds no
 * matching "end" line and reads again.
 */
#include "reload_request.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define RECORD_MAX 8192

static unsigned generation;

static void record_write(int fd, unsigned errors, const char *lines)
{
    char buf[RECORD_MAX];
    int n = snprintf(buf, sizeof buf, "petreld %ld\nreload %u errors %u\n%s", (long)getpid(),
                     generation, errors, lines);
    if (n < 0)
        return;
    if ((size_t)n > sizeof buf - 32)
        n = (int)(sizeof buf - 32); /* the lines are cut, the trailer stays */
    n += snprintf(buf + n, sizeof buf - (size_t)n, "%send %u\n",
                  n > 0 && buf[n - 1] != '\n' ? "\n" : "", generation);
    /* A failure here costs only the answer to a --reload, which says so. */
    if (pwrite(fd, buf, (size_t)n, 0) == n)
        (void)!ftruncate(fd, n);
}

void reload_record_start(int lock_fd)
{
    if (lock_fd >= 0)
        record_write(lock_fd, 0, "");
}

void reload_record_done(int lock_fd, unsigned errors, const char *lines)
{
    generation++;
    if (lock_fd >= 0)
        record_write(lock_fd, errors, lines);
}

struct record {
    long pid;
    unsigned generation, errors;
    const char *lines; /* into the caller's buffer, up to "end" */
    size_t lines_len;
};

/* Reads and parses the record.  Returns 0, or -1 when it is missing or
 * incomplete (being written, or written by a petreld without --reload). */
static int record_read(int fd, char *buf, size_t len, struct record *r)
{
    ssize_t n = pread(fd, buf, len - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    int off = 0;
    if (sscanf(buf, "petreld %ld\nreload %u errors %u\n%n", &r->pid, &r->generation, &r->errors,
               &off) != 3 || off == 0 || r->pid <= 0)
        return -1;
    char trailer[32];
    snprintf(trailer, sizeof trailer, "end %u\n", r->generation);
    const char *lines = buf + off;
    const char *end = lines;
    /* the first line that is exactly the trailer */
    while (strncmp(end, trailer, strlen(trailer)) != 0) {
        end = strchr(end, '\n');
        if (!end)
            return -1;
        end++;
    }
    r->lines = lines;
    r->lines_len = (size_t)(end - lines);
    return 0;
}

/* True while some process holds the data directory's lock: petreld takes
 * it exclusively for its whole run.  (Probing takes a shared lock for an
 * instant; a petreld starting in that instant would find the directory
 * busy.) */
static int lock_is_held(int fd)
{
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
        flock(fd, LOCK_UN);
        return 0;
    }
    return errno == EWOULDBLOCK;
}

int reload_request(const char *data_dir, int timeout_s, FILE *out, FILE *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/petreld.lock", data_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(err, "petreld --reload: no petreld runs on %s (%s: %s)\n", data_dir, path,
                strerror(errno));
        return 1;
    }
    static char buf[RECORD_MAX];
    struct record before, after;
    int rc = 1;
    if (!lock_is_held(fd)) {
        fprintf(err, "petreld --reload: no petreld runs on %s (%s is not locked)\n", data_dir,
                path);
        goto out;
    }
    if (record_read(fd, buf, sizeof buf, &before) != 0) {
        fprintf(err, "petreld --reload: %s names no process to signal (a petreld older than "
                "--reload?); send SIGHUP to it instead\n", path);
        goto out;
    }
    if (kill((pid_t)before.pid, SIGHUP) != 0) {
        fprintf(err, "petreld --reload: cannot signal petreld %ld: %s\n", before.pid,
                strerror(errno));
        goto out;
    }
    /* The reload reads a few files on the broker's loop: milliseconds,
     * unless the loop is busy or stuck. */
    struct timespec start, now, pause = {0, 10 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        nanosleep(&pause, NULL);
        if (record_read(fd, buf, sizeof buf, &after) == 0 &&
            (after.pid != before.pid || after.generation != before.generation))
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!lock_is_held(fd)) {
            fprintf(err, "petreld --reload: petreld %ld stopped before it reloaded\n",
                    before.pid);
            goto out;
        }
        if (now.tv_sec - start.tv_sec >= timeout_s) {
            fprintf(err, "petreld --reload: petreld %ld sent SIGHUP, no reload within %d s\n",
                    before.pid, timeout_s);
            goto out;
        }
    }
    if (after.pid != before.pid) {
        fprintf(err, "petreld --reload: petreld %ld was replaced by %ld before it reloaded\n",
                before.pid, after.pid);
        goto out;
    }
    const char *plural = after.errors == 1 ? "" : "s";
    fprintf(out, "petreld %ld reloaded (reload %u, %u error%s):\n%.*s", after.pid,
            after.generation, after.errors, plural, (int)after.lines_len, after.lines);
    if (after.errors)
        fprintf(err, "petreld --reload: the reload logged %u error%s; what failed to load "
                "stays as it was\n", after.errors, plural);
    rc = after.errors ? 1 : 0;
out:
    close(fd);
    return rc;
}
