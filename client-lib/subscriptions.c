/*
 * subscriptions.c - pending subscription requests and the table of granted
 * subscriptions.  The table is a plain array searched linearly: clients
 * hold few subscriptions and touch it only on SUBACK/UNSUBACK.
 */
#include "subscriptions.h"

#include <stdlib.h>
#include <string.h>

#include "array_grow.h"
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
    for (size_t i = 0; i < s->n_active; i++) {
        free(s->active[i].filter);
        free(s->active[i].props);
    }
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
    free(r->props);
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

static bool same_props(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static uint8_t *copy_props(const uint8_t *p, size_t n, bool *ok)
{
    *ok = true;
    if (!n)
        return NULL;
    uint8_t *c = malloc(n);
    if (!c)
        *ok = false;
    else
        memcpy(c, p, n);
    return c;
}

int subs_set_active(struct subscriptions *s, const char *filter, size_t len, uint8_t qos,
                    const uint8_t *props, size_t props_len)
{
    bool ok;
    uint8_t *pc = copy_props(props, props_len, &ok);
    if (!ok)
        return PETREL_ENOMEM;
    struct sub_entry *e = find_active(s, filter, len);
    if (e) {
        e->qos = qos;
        free(e->props);
        e->props = pc;
        e->props_len = props_len;
        return PETREL_OK;
    }
    if (s->n_active == s->cap_active) {
        struct sub_entry *a =
            array_grow(s->active, &s->cap_active, s->n_active + 1, sizeof *a, 8);
        if (!a) {
            free(pc);
            return PETREL_ENOMEM;
        }
        s->active = a;
    }
    char *f = malloc(len + 1);
    if (!f) {
        free(pc);
        return PETREL_ENOMEM;
    }
    memcpy(f, filter, len);
    f[len] = '\0';
    s->active[s->n_active++] = (struct sub_entry){f, len, qos, pc, props_len};
    return PETREL_OK;
}

void subs_remove_active(struct subscriptions *s, const char *filter, size_t len)
{
    struct sub_entry *e = find_active(s, filter, len);
    if (!e)
        return;
    free(e->filter);
    free(e->props);
    *e = s->active[--s->n_active];
}

/* One renewal request for the active entries whose properties equal those
 * of entry `first` (which has not been taken yet); marks them taken. */
static struct sub_req *renewal_group(const struct subscriptions *s, size_t first, bool *taken)
{
    const struct sub_entry *f = &s->active[first];
    size_t count = 0;
    for (size_t i = first; i < s->n_active; i++)
        if (!taken[i] && same_props(f->props, f->props_len, s->active[i].props,
                                    s->active[i].props_len))
            count++;
    struct sub_req *r = calloc(1, sizeof *r + count * sizeof r->entries[0]);
    bool ok;
    if (!r)
        return NULL;
    r->props = copy_props(f->props, f->props_len, &ok);
    r->props_len = f->props_len;
    if (!ok) {
        free(r);
        return NULL;
    }
    for (size_t i = first; i < s->n_active && r->count < count; i++) {
        const struct sub_entry *a = &s->active[i];
        if (taken[i] || !same_props(f->props, f->props_len, a->props, a->props_len))
            continue;
        struct sub_entry *e = &r->entries[r->count];
        e->filter = malloc(a->len + 1);
        if (!e->filter) {
            subs_request_free(r);
            return NULL;
        }
        r->count++;
        memcpy(e->filter, a->filter, a->len + 1);
        e->len = a->len;
        e->qos = a->qos;
        taken[i] = true;
    }
    return r;
}

int subs_renewal_requests(const struct subscriptions *s, struct sub_req_list *out)
{
    if (s->n_active == 0)
        return PETREL_OK;
    bool *taken = calloc(s->n_active, sizeof *taken);
    if (!taken)
        return PETREL_ENOMEM;
    struct sub_req_list made;
    TAILQ_INIT(&made);
    for (size_t i = 0; i < s->n_active; i++) {
        if (taken[i])
            continue;
        struct sub_req *r = renewal_group(s, i, taken);
        if (!r) {
            while ((r = TAILQ_FIRST(&made))) {
                TAILQ_REMOVE(&made, r, link);
                subs_request_free(r);
            }
            free(taken);
            return PETREL_ENOMEM;
        }
        TAILQ_INSERT_TAIL(&made, r, link);
    }
    free(taken);
    struct sub_req *r;
    while ((r = TAILQ_FIRST(&made))) {
        TAILQ_REMOVE(&made, r, link);
        TAILQ_INSERT_TAIL(out, r, link);
    }
    return PETREL_OK;
}
