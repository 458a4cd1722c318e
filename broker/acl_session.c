/*
 * acl_session.c - per-session identity, compiled rules and read cache on
 * top of the ACL in force.  See acl_session.h for the contract and acl.h for
 * what the rules mean.
 */
#include "acl_session.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "broker.h"
#include "log.h"
#include "message.h"
#include "session.h"

struct session_acl {
    char *user;                   /* NULL = anonymous */
    size_t ulen;
    uint64_t generation;          /* of the ACL `compiled` was made from */
    struct acl_client *compiled;  /* NULL: not compiled, or out of memory */
    int8_t subs_readable;         /* every subscription wholly readable:
                                     1 yes, 0 no, -1 not known yet */
};

/* An anonymous session that has nothing compiled points here instead of
 * to a struct of its own (most idle clients are anonymous: S6); its own is
 * made when rules() first needs it.  Never written. */
static struct session_acl anonymous;

static struct acl_file *current;
/* Bumped by every acl_set, so that sessions notice a reload lazily
 * instead of all being recompiled at once. */
static uint64_t generation = 1;

void acl_set(struct acl_file *f)
{
    acl_file_free(current);
    current = f;
    generation++;
}

bool acl_enabled(void)
{
    return current != NULL;
}

const struct acl_file *acl_current(void)
{
    return current;
}

int acl_session_identify(struct session *s, const char *user, size_t ulen)
{
    if (!user) {
        acl_session_free(s);
        s->acl = &anonymous;
        return 0;
    }
    if (s->acl == &anonymous)
        s->acl = NULL;
    struct session_acl *a = s->acl;
    if (!a) {
        a = calloc(1, sizeof *a);
        if (!a)
            return -1;
        s->acl = a;
    }
    char *copy = malloc(ulen + 1);
    if (!copy)
        return -1;
    memcpy(copy, user, ulen);
    copy[ulen] = '\0';
    free(a->user);
    a->user = copy;
    a->ulen = ulen;
    acl_client_free(a->compiled);
    a->compiled = NULL;
    a->generation = 0;
    a->subs_readable = -1;
    return 0;
}

bool acl_session_same_user(const struct session *s, const char *user, size_t ulen)
{
    const struct session_acl *a = s->acl;
    if (!a)
        return true;
    if (!a->user || !user)
        return !a->user && !user;
    return a->ulen == ulen && memcmp(a->user, user, ulen) == 0;
}

bool acl_session_user(const struct session *s, const char **user, size_t *ulen)
{
    const struct session_acl *a = s->acl;
    if (!a)
        return false;
    *user = a->user;
    *ulen = a->ulen;
    return true;
}

void acl_session_free(struct session *s)
{
    struct session_acl *a = s->acl;
    s->acl = NULL;
    if (!a || a == &anonymous)
        return;
    acl_client_free(a->compiled);
    free(a->user);
    free(a);
}

void acl_session_subs_changed(struct session *s)
{
    if (s->acl && s->acl != &anonymous)
        s->acl->subs_readable = -1;
}

/* The session's compiled rules under the ACL in force, or NULL when they
 * cannot be made (out of memory): callers then deny. */
static const struct acl_client *rules(struct session *s)
{
    struct session_acl *a = s->acl;
    if (a == &anonymous) {
        if (!(a = calloc(1, sizeof *a))) {
            log_error("client %s: out of memory compiling its ACL rules: access denied",
                      s->log_id);
            return NULL;
        }
        s->acl = a;
    }
    if (a->generation != generation || !a->compiled) {
        acl_client_free(a->compiled);
        a->compiled = acl_client_compile(current, a->user, a->ulen, s->client_id,
                                         s->client_id_len);
        a->generation = generation;
        a->subs_readable = -1;
        if (!a->compiled)
            log_error("client %s: out of memory compiling its ACL rules: access denied",
                      s->log_id);
    }
    return a->compiled;
}

bool acl_may_publish_as(const char *user, size_t ulen, const char *client_id, size_t idlen,
                        const char *topic, size_t len)
{
    if (!current)
        return true;
    struct acl_client *c = acl_client_compile(current, user, ulen, client_id, idlen);
    bool ok = c && acl_client_may(c, ACL_WRITE, topic, len);
    acl_client_free(c);
    return ok;
}

bool acl_may_publish(struct session *s, const char *topic, size_t len)
{
    if (!current || !s->acl)
        return current == NULL;
    const struct acl_client *c = rules(s);
    return c && acl_client_may(c, ACL_WRITE, topic, len);
}

bool acl_may_publish_will(struct session *s, const struct message *will)
{
    if (!current || acl_may_publish(s, will->topic, will->topic_len))
        return true;
    broker.stats.acl_publish_denied++;
    log_notice("client %s: will on '%s' dropped: the ACL in force denies it", s->log_id,
               log_str(will->topic, will->topic_len));
    return false;
}

bool acl_may_subscribe(struct session *s, const char *filter, size_t len)
{
    if (!current || !s->acl)
        return current == NULL;
    const struct acl_client *c = rules(s);
    return c && acl_client_may_subscribe(c, filter, len);
}

bool acl_may_share(struct session *s, const char *filter, size_t inner)
{
    if (!acl_file_governs_shares(current))
        return true;
    if (!s->acl)
        return false;
    const struct acl_client *c = rules(s);
    /* "$share/" NAME "/" filter: the name sits between offset 7 and inner-1 */
    return c && inner > 8 && acl_client_may_share(c, filter + 7, inner - 8);
}

bool acl_may_read(struct session *s, const char *topic, size_t len)
{
    if (!current || !s->acl)
        return true;
    const struct acl_client *c = rules(s);
    if (!c)
        return false;
    struct session_acl *a = s->acl;
    if (a->subs_readable < 0) {
        a->subs_readable = 1;
        for (const struct subscription *sub = s->subs; sub; sub = sub->next) {
            /* a shared subscription reads what its filter proper matches */
            if (!acl_client_covers_read(c, sub->filter + sub->inner, sub->len - sub->inner)) {
                a->subs_readable = 0;
                break;
            }
        }
    }
    return a->subs_readable || acl_client_may(c, ACL_READ, topic, len);
}

bool acl_may_read_all(struct session *s, const char *filter, size_t len)
{
    if (!current || !s->acl)
        return true;
    const struct acl_client *c = rules(s);
    return c && acl_client_covers_read(c, filter, len);
}
