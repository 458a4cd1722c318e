/*
 * security.c - loading and reloading the password file and the ACL file,
 * and the warnings an operator needs about how they combine.  See
 * security.h.
 */
#include "security.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "acl_session.h"
#include "auth.h"
#include "auth_worker.h"
#include "broker.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "message.h"
#include "http_tokens.h"
#include "reload_files.h"

static void warn_unverified(void)
{
    const struct acl_file *acl = acl_current();
    if (acl && acl_file_user_count(acl) && !auth_current())
        log_warning("the ACL has user sections but there is no password_file: user names "
                    "are not verified, any client may claim any of them");
}

static void log_users(const char *when, const char *path)
{
    if (path[0])
        log_notice("%spassword file %s: %zu users", when, path,
                   auth_table_count(auth_current()));
    else if (when[0])
        log_notice("%sno password_file: clients are anonymous", when);
}

static void log_acl(const char *when, const char *path)
{
    const struct acl_file *acl = acl_current();
    if (path[0])
        log_notice("%sACL file %s: %zu rules, %zu user sections", when, path,
                   acl_file_rule_count(acl), acl_file_user_count(acl));
    else if (when[0])
        log_notice("%sno acl_file: every client may do everything", when);
}

int security_load(const struct config *cfg, char *err, size_t errlen)
{
    struct auth_table *users = NULL;
    struct acl_file *acl = NULL;
    if (cfg->password_file[0] && !(users = auth_table_load(cfg->password_file, err, errlen)))
        return -1;
    if (cfg->acl_file[0] && !(acl = acl_file_load(cfg->acl_file, err, errlen))) {
        auth_table_free(users);
        return -1;
    }
    auth_set(users);
    acl_set(acl);
    log_users("", cfg->password_file);
    log_acl("", cfg->acl_file);
    warn_unverified();
    return 0;
}

/* A will that its client may no longer publish under new rules is
 * dropped now, rather than published at the end against the rules. */
static void recheck_wills(void)
{
    for (struct conn *c = broker.conns; c; c = c->next) {
        if (!c->will || !c->session || acl_may_publish_will(c->session, c->will))
            continue;
        message_unref(c->will);
        c->will = NULL;
    }
}

static void (*reload_done)(void); /* of the reload under way */

/* On the loop, once the reader thread is done: swap in what loaded. */
static void reloaded(struct reload_files *j, void *arg)
{
    (void)arg;
    log_capture_resume();
    if (!j->users_ok)
        log_error("SIGHUP: password file not reloaded, the previous users stay: %s",
                  j->users_err);
    if (!j->acl_ok)
        log_error("SIGHUP: ACL file not reloaded, the previous rules stay: %s", j->acl_err);
    if (j->users_ok) {
        auth_set(j->users);
        memcpy(broker.cfg.password_file, j->password_file, sizeof broker.cfg.password_file);
        log_users("SIGHUP: ", j->password_file);
    }
    if (j->acl_ok) {
        acl_set(j->acl);
        memcpy(broker.cfg.acl_file, j->acl_file, sizeof broker.cfg.acl_file);
        log_acl("SIGHUP: ", j->acl_file);
        recheck_wills();
    }
    if (!j->tokens_ok) {
        log_error("SIGHUP: http_token_file not reloaded, the previous tokens stay: %s",
                  j->tokens_err);
    } else {
        http_tokens_set(j->tokens);
        memcpy(broker.cfg.http_token_file, j->http_token_file,
               sizeof broker.cfg.http_token_file);
        if (j->http_token_file[0])
            log_notice("SIGHUP: %zu HTTP API tokens from %s", http_tokens_count(j->tokens),
                       j->http_token_file);
    }
    broker.cfg.allow_anonymous = j->allow_anonymous;
    warn_unverified();
    free(j);
    reload_done();
}

void security_reload(const struct config *fresh, void (*done)(void))
{
    struct reload_files *j = calloc(1, sizeof *j);
    if (!j) {
        log_error("SIGHUP: out of memory: password file and ACL not reloaded");
        done();
        return;
    }
    memcpy(j->password_file, fresh->password_file, sizeof j->password_file);
    memcpy(j->acl_file, fresh->acl_file, sizeof j->acl_file);
    j->allow_anonymous = fresh->allow_anonymous;
    memcpy(j->http_token_file, fresh->http_token_file, sizeof j->http_token_file);
    /* The files are read off the loop: what the loop logs meanwhile is
     * not the reload's. */
    log_capture_suspend();
    reload_done = done;
    if (reload_files_start(j, reloaded, NULL) != 0) {
        log_capture_resume();
        log_error("SIGHUP: cannot start a thread to read the files: password file and ACL "
                  "not reloaded");
        free(j);
        done();
    }
}

int security_start(void)
{
    return auth_worker_start();
}

void security_stop(void)
{
    auth_worker_stop();
    auth_set(NULL);
    acl_set(NULL);
}
