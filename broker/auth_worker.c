/*
 * auth_worker.c - a few threads that run password hash verifications and
 * hand the results back to the event loop through a pipe, in the manner of
 * store_sync.c.  Jobs wait in one list ordered by a virtual time (fair
 * queueing): a job's tag is one more than the last tag of its lane still
 * waiting, or than the tag last served, so lanes take turns.  A cancelled
 * job that no thread has taken yet is simply removed, one that is running
 * is finished and dropped.
 */
#include "auth_worker.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "broker.h"
#include "password_hash.h"
#include "thread_pipe.h"

#define MAX_THREADS 4
/* Logins waiting for a thread.  At ~0.1 s each and a few threads, more
 * would wait longer than any client does. */
#define MAX_PENDING 1024

struct auth_job {
    struct auth_job *next;
    auth_done_fn done;
    void *arg;
    uint64_t lane;
    uint64_t tag;    /* virtual time: the list is in tag order */
    bool running;    /* taken by a thread */
    bool cancelled;
    int result;
    char *hash;
    size_t len;
    unsigned char *password;
};

static struct {
    pthread_t threads[MAX_THREADS];
    int n_threads;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    struct auth_job *todo_head, *todo_tail;
    size_t n_todo;
    uint64_t vtime;             /* tag of the job taken last */
    struct auth_job *done;      /* finished, for the loop */
    struct thread_pipe pipe;
} w = {.pipe = THREAD_PIPE_INIT};

static void job_free(struct auth_job *j)
{
    if (j->password)
        OPENSSL_cleanse(j->password, j->len);
    free(j->password);
    free(j->hash);
    free(j);
}

static void *worker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&w.lock);
    for (;;) {
        while (!w.stop && !w.todo_head)
            pthread_cond_wait(&w.wake, &w.lock);
        if (w.stop)
            break;
        struct auth_job *j = w.todo_head;
        w.todo_head = j->next;
        if (!w.todo_head)
            w.todo_tail = NULL;
        w.n_todo--;
        w.vtime = j->tag;
        j->running = true;
        pthread_mutex_unlock(&w.lock);

        int result = pw_hash_verify(j->hash, j->password, j->len);
        OPENSSL_cleanse(j->password, j->len);

        pthread_mutex_lock(&w.lock);
        j->result = result;
        j->next = w.done;
        w.done = j;
        char one = 1;
        thread_pipe_write(&w.pipe, &one, 1);
    }
    pthread_mutex_unlock(&w.lock);
    return NULL;
}

static void pipe_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0)
        ;
    pthread_mutex_lock(&w.lock);
    struct auth_job *list = w.done;
    w.done = NULL;
    pthread_mutex_unlock(&w.lock);
    /* The list is newest first; order does not matter to logins. */
    while (list) {
        struct auth_job *j = list;
        list = j->next;
        if (!j->cancelled)
            j->done(j->arg, j->result);
        job_free(j);
    }
}

int auth_worker_start(void)
{
    if (thread_pipe_open(&w.pipe, broker.base, O_NONBLOCK, EV_READ | EV_PERSIST, pipe_cb, NULL))
        return -1;
    w.stop = false;
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.wake, NULL);
    /* Leave a core to the event loop: logins may queue, messages should
     * not. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int want = cpus > 2 ? (int)(cpus - 1) : 1;
    if (want > MAX_THREADS)
        want = MAX_THREADS;
    for (int i = 0; i < want; i++) {
        if (pthread_create(&w.threads[i], NULL, worker_main, NULL) != 0)
            break;
        w.n_threads++;
    }
    if (w.n_threads == 0) {
        auth_worker_stop();
        return -1;
    }
    return 0;
}

void auth_worker_stop(void)
{
    if (w.n_threads) {
        pthread_mutex_lock(&w.lock);
        w.stop = true;
        pthread_cond_broadcast(&w.wake);
        pthread_mutex_unlock(&w.lock);
        for (int i = 0; i < w.n_threads; i++)
            pthread_join(w.threads[i], NULL);
        w.n_threads = 0;
    }
    for (struct auth_job *j = w.todo_head, *next; j; j = next) {
        next = j->next;
        job_free(j);
    }
    for (struct auth_job *j = w.done, *next; j; j = next) {
        next = j->next;
        job_free(j);
    }
    w.todo_head = w.todo_tail = w.done = NULL;
    w.n_todo = 0;
    if (w.pipe.rd >= 0) {
        /* Open pipe = started: the lock and the condition exist. */
        thread_pipe_close(&w.pipe);
        pthread_mutex_destroy(&w.lock);
        pthread_cond_destroy(&w.wake);
    }
}

struct auth_job *auth_worker_submit(const char *hash, const void *password, size_t len,
                                    uint64_t lane, auth_done_fn done, void *arg)
{
    if (!w.n_threads)
        return NULL;
    struct auth_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->done = done;
    j->arg = arg;
    j->len = len;
    j->hash = strdup(hash);
    j->password = malloc(len ? len : 1);
    if (!j->hash || !j->password) {
        job_free(j);
        return NULL;
    }
    if (len)
        memcpy(j->password, password, len);
    pthread_mutex_lock(&w.lock);
    if (w.n_todo >= MAX_PENDING) {
        pthread_mutex_unlock(&w.lock);
        job_free(j);
        return NULL;
    }
    /* At most MAX_PENDING jobs: two scans cost microseconds, a hash 0.1 s. */
    uint64_t tag = w.vtime;
    for (struct auth_job *p = w.todo_head; p; p = p->next)
        if (p->lane == lane && p->tag > tag)
            tag = p->tag;
    j->lane = lane;
    j->tag = tag + 1;
    struct auth_job *prev = NULL;
    for (struct auth_job *p = w.todo_head; p && p->tag <= j->tag; p = p->next)
        prev = p;
    j->next = prev ? prev->next : w.todo_head;
    if (prev)
        prev->next = j;
    else
        w.todo_head = j;
    if (!j->next)
        w.todo_tail = j;
    w.n_todo++;
    pthread_cond_signal(&w.wake);
    pthread_mutex_unlock(&w.lock);
    return j;
}

void auth_worker_cancel(struct auth_job *j)
{
    pthread_mutex_lock(&w.lock);
    if (!j->running) {
        /* Still waiting: unlink it, nobody else will see it again. */
        struct auth_job *prev = NULL;
        for (struct auth_job *p = w.todo_head; p; prev = p, p = p->next) {
            if (p != j)
                continue;
            if (prev)
                prev->next = j->next;
            else
                w.todo_head = j->next;
            if (w.todo_tail == j)
                w.todo_tail = prev;
            w.n_todo--;
            break;
        }
        pthread_mutex_unlock(&w.lock);
        job_free(j);
        return;
    }
    j->cancelled = true;
    pthread_mutex_unlock(&w.lock);
}
