/*
 * reload_files.c - the reload's file reader thread (see reload_files.h).
 * The thread only parses into new structures; it touches no broker state.
 * It tells the loop it is done through a pipe, as the password check
 * threads do (auth_worker.c).
 */
#include "reload_files.h"

#include <pthread.h>
#include <stdlib.h>
#include <event2/event.h>

#include "acl.h"
#include "auth.h"
#include "broker.h"
#include "http_tokens.h"
#include "log.h"
#include "thread_pipe.h"

static struct {
    bool busy;
    pthread_t thread;
    struct thread_pipe pipe;
    struct reload_files *job;
    reload_files_done done;
    void *arg;
} rf = {.pipe = THREAD_PIPE_INIT};

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
    thread_pipe_write(&rf.pipe, &one, 1);
    return NULL;
}

static void finished(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    pthread_join(rf.thread, NULL);
    thread_pipe_close(&rf.pipe);
    rf.busy = false;
    struct reload_files *job = rf.job;
    rf.job = NULL;
    rf.done(job, rf.arg);
}

int reload_files_start(struct reload_files *job, reload_files_done done, void *arg)
{
    if (rf.busy)
        return -1;
    if (thread_pipe_open(&rf.pipe, broker.base, 0, EV_READ, finished, NULL) != 0)
        return -1;
    rf.job = job;
    rf.done = done;
    rf.arg = arg;
    if (pthread_create(&rf.thread, NULL, reader, job) != 0) {
        thread_pipe_close(&rf.pipe);
        rf.job = NULL;
        return -1;
    }
    rf.busy = true;
    return 0;
}
