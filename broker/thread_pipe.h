/*
 * thread_pipe.h - the pipe through which a worker thread wakes the event
 * loop (the password checks, the storage threads, the reload's file
 * reader).  The thread writes; the loop's read event runs the owner's
 * callback, which reads what it needs from `rd`.
 *
 * Contract: the owner embeds the struct (THREAD_PIPE_INIT before the first
 * open) and closes it once its threads have stopped; this file holds no
 * state of its own and knows no broker.
 */
#ifndef PETREL_THREAD_PIPE_H
#define PETREL_THREAD_PIPE_H

#include <stddef.h>
#include <event2/event.h>

struct thread_pipe {
    int rd, wr;          /* -1 while closed */
    struct event *ev;    /* read event on `rd`, added */
};

#define THREAD_PIPE_INIT {.rd = -1, .wr = -1, .ev = NULL}

/* Opens the pipe with pipe2 `flags` (O_CLOEXEC is always added) and adds
 * an event on `base` for `events` (EV_READ, and EV_PERSIST where the pipe
 * serves more than once) calling `cb`.  0, or -1 with nothing left open. */
int thread_pipe_open(struct thread_pipe *p, struct event_base *base, int flags, short events,
                     event_callback_fn cb, void *arg);

/* From the thread: writes `len` bytes, again after EINTR.  A full
 * non-blocking pipe already holds a wake-up, so that write is dropped. */
void thread_pipe_write(struct thread_pipe *p, const void *buf, size_t len);

/* Frees the event and closes both ends; harmless when closed. */
void thread_pipe_close(struct thread_pipe *p);

#endif
