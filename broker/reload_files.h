/*
 * reload_files.h - reading the password file and the ACL file for a
 * reload on a thread of their own, so that a slow, huge or endless file
 * never stops the event loop: the loop serves clients meanwhile and swaps
 * the result in when the thread is done.
 */
#ifndef PETREL_RELOAD_FILES_H
#define PETREL_RELOAD_FILES_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct auth_table;
struct acl_file;
struct http_tokens;

struct reload_files {
    char password_file[sizeof ((struct config *)0)->password_file]; /* "" = none */
    char acl_file[sizeof ((struct config *)0)->acl_file];           /* "" = none */
    uint8_t allow_anonymous;    /* applied with the files (enum anonymous_policy) */
    char http_token_file[sizeof ((struct config *)0)->http_token_file]; /* "" = none */
    /* results: what loaded (NULL also when the file is "") or why not */
    struct auth_table *users;
    struct acl_file *acl;
    bool users_ok, acl_ok;
    char users_err[CONFIG_ERR_LEN + 64], acl_err[CONFIG_ERR_LEN + 64];
    struct http_tokens *tokens; /* NULL also when the file is "" */
    bool tokens_ok;
    char tokens_err[CONFIG_ERR_LEN + 64];
};

typedef void (*reload_files_done)(struct reload_files *job, void *arg);

/* Starts loading job's files on a new thread; done(job, arg) runs on the
 * event loop (broker.base) when both are read, and owns the job and its
 * results from then on.  Returns 0, or -1 when no thread could be started
 * (nothing was called). */
int reload_files_start(struct reload_files *job, reload_files_done done, void *arg);

/* True while a job's thread is reading (at most one runs at a time). */
bool reload_files_busy(void);

#endif
