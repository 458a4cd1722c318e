/*
 * subscriptions.c - pending subscription requests and the table of granted
 * subscriptions.  The table is a plain array searched linearly: clients
 * hold few subscriptions and touch it only on SUBACK/UNSUBACK.
 */
#include "subscriptions.h"

#include <stdlib.h>
#include <string.h>

#include "petrel.h"

void subs_init(struct subscriptions *s)
{
    TAILQ_INIT(&s->reqs);
    s->active = NULL;
    s->n_active = s->cap_active = 0;
}

void subs_clear(struct subscriptions *s)
{
    struct sub_req *r;
    while ((r = TAILQ_FIRST(&s->reqs))) {
        TAILQ_REMOVE(&s->reqs, r, link);
        subs_request_free(r);
    }
    for (size_t i = 0; i < s->n_active; i++)
        free(s->active[i].filter);
    free(s->active);
    s->active = NULL;
    s->n_active = s->cap_active = 0;
}

struct sub_req *subs_request_new(uint64_t id, bool unsubscribe, const char *const *filters,
                                 const int *qos, size_t count)
{
    struct sub_req *r = calloc(1, sizeof *r + count * sizeof r->entries[0]);
    if (!r)
        return NULL;
    r->id = id;
    r->unsubscribe = unsubscribe;
    r->count = count;
    for (size_t i = 0; i < count; i++) {
        size_t n = strlen(filters[i]);
        r->entries[i].filter = malloc(n + 1);
        if (!r->entries[i].filter) {
            subs_request_free(r);
            return NULL;
        }
        memcpy(r->entries[i].filter, filters[i], n + 1);
        r->entries[i].len = n;
        r->entries[i].qos = qos ? (uint8_t)qos[i] : 0;
    }
    return r;
}

void subs_request_free(struct sub_req *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->count; i++)
        free(r->entries[i].filter);
    free(r);
}

struct sub_req *subs_find_sent(const struct subscriptions *s, bool unsubscribe,
                               uint16_t packet_id)
{
    struct sub_req *r;
    TAILQ_FOREACH(r, &s->reqs, link)
        if (r->packet_id == packet_id && r->unsubscribe == unsubscribe)
            return r;
    return NULL;
}

static struct sub_entry *find_active(const struct subscriptions *s, const char *filter,
                                     size_t len)
{
    for (size_t i = 0; i < s->n_active; i++)
        if (s->active[i].len == len && memcmp(s->active[i].filter, filter, len) == 0)
            return &s->active[i];
    return NULL;
}

int subs_set_active(struct subscriptions *s, const char *filter, size_t len, uint8_t qos)
{
    struct sub_entry *e = find_active(s, filter, len);
    if (e) {
        e->qos = qos;
        return PETREL_OK;
    }
    if (s->n_active == s->cap_active) {
        size_t cap = s->cap_active ? s->cap_active * 2 : 8;
        struct sub_entry *a = realloc(s->active, cap * sizeof *a);
        if (!a)
            return PETREL_ENOMEM;
        s->active = a;
        s->cap_active = cap;
    }
    char *f = malloc(len + 1);
    if (!f)
        return PETREL_ENOMEM;
    memcpy(f, filter, len);
    f[len] = '\0';
    s->active[s->n_active++] = (struct sub_entry){f, len, qos};
    return PETREL_OK;
}

void subs_remove_active(struct subscriptions *s, const char *filter, size_t len)
{
    struct sub_entry *e = find_active(s, filter, len);
    if (!e)
        return;
    free(e->filter);
    *e = s->active[--s->n_active];
}

struct sub_req *subs_renewal_request(const struct subscriptions *s)
{
    if (s->n_active == 0)
        return NULL;
    struct sub_req *r = calloc(1, sizeof *r + s->n_active * sizeof r->entries[0]);
    if (!r)
        return NULL;
    r->count = s->n_active;
    for (size_t i = 0; i < s->n_active; i++) {
        const struct sub_entry *a = &s->active[i];
        r->entries[i].filter = malloc(a->len + 1);
        if (!r->entries[i].filter) {
            subs_request_free(r);
            return NULL;
        }
        memcpy(r->entries[i].filter, a->filter, a->len + 1);
        r->entries[i].len = a->len;
        r->entries[i].qos = a->qos;
    }
    return r;
}
