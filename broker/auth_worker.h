/*
 * auth_worker.h - password verification off the event loop.  A hash check
 * costs about 0.1 s of CPU by design; done in the loop it would stall every
 * client for that long per login.  Worker threads verify, and the result
 * comes back to the loop through a pipe as a callback.
 */
#ifndef PETREL_AUTH_WORKER_H
#define PETREL_AUTH_WORKER_H

#include <stddef.h>
#include <stdint.h>

struct auth_job;

/* Called on the loop thread with 1 (password matches), 0 (it does not) or
 * -1 (the hash could not be checked). */
typedef void (*auth_done_fn)(void *arg, int result);

/* Starts the worker threads on broker.base.  Returns 0 or -1. */
int auth_worker_start(void);
/* Stops and joins the threads; pending jobs are dropped without callback. */
void auth_worker_stop(void);

/* Queues a verification of `password` against `hash` (both copied; the
 * copy of the password is wiped when done).  Returns the job, or NULL when
 * out of memory or when too many verifications already wait (the caller
 * refuses the login: a flood of logins must not grow memory without bound).
 *
 * Jobs of different lanes (the caller's key: a hash of the user name) are
 * served in turn, not first come first served: a flood of logins for one
 * name waits behind itself, and another name's login waits for at most one
 * job of each other lane. */
struct auth_job *auth_worker_submit(const char *hash, const void *password, size_t len,
                                    uint64_t lane, auth_done_fn done, void *arg);
/* The job's callback will not be called (its connection is gone). */
void auth_worker_cancel(struct auth_job *job);

#endif
