/*
 * reload_files.c - the reload's file reader thread (see reload_files.h).
 * The thread only parses into new structures; it touches no broker state.
 * It tells the loop it is done through a pipe, as the password check
 * threads do (auth_worker.c).
 */
#include "reload_files.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include <event2/event.h>

#include "acl.h"
#include "auth.h"
#include "broker.h"
#include "http_tokens.h"
#include "log.h"

static struct {
    bool busy;
    pthread_t thread;
    int pipe_rd, pipe_wr;
    struct event *ev;
    struct reload_files *job;
    reload_files_done done;
    void *arg;
} rf = {.pipe_rd = -1, .pipe_wr = -1};

bool reload_files_busy(void) { return rf.busy; }

static void *reader(void *arg)
{
    struct reload_files *j = arg;
    j->users_ok = j->acl_ok = true;
    if (j->password_file[0] &&
        !(j->users = auth_table_load(j->password_file, j->users_err, sizeof j->users_err)))
        j->users_ok = false;
    if (j->acl_file[0] && !(j->acl = acl_file_load(j->acl_file, j->acl_err, sizeof j->acl_err)))
        j->acl_ok = false;
    j->tokens_ok = true;
    if (j->http_token_file[0] &&
        !(j->tokens = http_tokens_load(j->http_token_file, j->tokens_err, sizeof j->tokens_err)))
        j->tokens_ok = false;
    char one = 1;
    while (write(rf.pipe_wr, &one, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

static void close_pipe(void)
{
    if (rf.ev)
        event_free(rf.ev);
    rf.ev = NULL;
    if (rf.pipe_rd >= 0)
        close(rf.pipe_rd);
    if (rf.pipe_wr >= 0)
        close(rf.pipe_wr);
    rf.pipe_rd = rf.pipe_wr = -1;
}

static void finished(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    pthread_join(rf.thread, NULL);
    close_pipe();
    rf.busy = false;
    struct reload_files *job = rf.job;
    rf.job = NULL;
    rf.done(job, rf.arg);
}

int reload_files_start(struct reload_files *job, reload_files_done done, void *arg)
{
    if (rf.busy)
        return -1;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    rf.pipe_rd = fds[0];
    rf.pipe_wr = fds[1];
    rf.ev = event_new(broker.base, rf.pipe_rd, EV_READ, finished, NULL);
    if (!rf.ev || event_add(rf.ev, NULL) != 0) {
        close_pipe();
        return -1;
    }
    rf.job = job;
    rf.done = done;
    rf.arg = arg;
    if (pthread_create(&rf.thread, NULL, reader, job) != 0) {
        close_pipe();
        rf.job = NULL;
        return -1;
    }
    rf.busy = true;
    return 0;
}
