/*
 * thread_pipe.c - a worker thread's wake-up pipe to the loop (see
 * thread_pipe.h).
 */
#include "thread_pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int thread_pipe_open(struct thread_pipe *p, struct event_base *base, int flags, short events,
                     event_callback_fn cb, void *arg)
{
    int fds[2];
    if (pipe2(fds, flags | O_CLOEXEC) != 0)
        return -1;
    p->rd = fds[0];
    p->wr = fds[1];
    p->ev = event_new(base, p->rd, events, cb, arg);
    if (!p->ev || event_add(p->ev, NULL) != 0) {
        thread_pipe_close(p);
        return -1;
    }
    return 0;
}

void thread_pipe_write(struct thread_pipe *p, const void *buf, size_t len)
{
    ssize_t n;
    do
        n = write(p->wr, buf, len);
    while (n < 0 && errno == EINTR);
}

void thread_pipe_close(struct thread_pipe *p)
{
    if (p->ev)
        event_free(p->ev);
    p->ev = NULL;
    if (p->rd >= 0)
        close(p->rd);
    if (p->wr >= 0)
        close(p->wr);
    p->rd = p->wr = -1;
}
