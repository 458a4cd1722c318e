/*
 * acl.c - parsing the ACL file and deciding on a client's compiled rules.
 * See acl.h for the file format and the meaning of each rule.  Deny rules
 * are kept first in a compiled client so that a decision stops at the first
 * allow that matches.
 */
#include "acl.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "hashmap.h"
#include "line_file.h"
#include "mqtt_codec.h"


struct rule {
    STAILQ_ENTRY(rule) next; /* in the file's order */
    uint8_t access;      /* enum acl_access bits, or ACL_DENY */
    bool has_c, has_u;   /* pattern mentions %c / %u */
    size_t len;
    char filter[];       /* NUL-terminated */
};

struct rule_list {
    STAILQ_HEAD(, rule) rules;
    size_t count;
};

struct acl_file {
    struct hashmap *users;    /* user name -> struct rule_list */
    struct rule_list anon;    /* rules before the first `user` line */
    struct rule_list patterns;
    size_t n_users;
    size_t n_rules;
    size_t n_share;           /* `share` rules: when > 0 they govern groups */
};

struct crule {
    uint8_t access;
    bool all;                 /* a deny pattern that could not be substituted */
    size_t len;
    const char *filter;       /* into the file, or into `owned` */
};

struct acl_client {
    size_t n;
    struct crule *rules;      /* deny rules first */
    char **owned;             /* substituted pattern filters */
    size_t n_owned;
};

/* ---- filter algebra ----------------------------------------------------- */

static size_t level_end(const char *s, size_t len, size_t from)
{
    const char *slash = memchr(s + from, '/', len - from);
    return slash ? (size_t)(slash - s) : len;
}

static bool is_wild(const char *s, size_t len)
{
    return len > 0 && (s[0] == '+' || s[0] == '#');
}

static bool level_is(const char *s, size_t from, size_t end, char ch)
{
    return end - from == 1 && s[from] == ch;
}

bool acl_filter_covers(const char *o, size_t olen, const char *in, size_t ilen)
{
    /* `in` starting with '$' matches only '$' topics, which a filter that
     * starts with a wildcard never matches. */
    if (is_wild(o, olen) && ilen > 0 && in[0] == '$')
        return false;
    size_t oi = 0, ii = 0;
    for (;;) {
        size_t oe = level_end(o, olen, oi), ie = level_end(in, ilen, ii);
        if (level_is(o, oi, oe, '#'))
            return true;
        if (level_is(in, ii, ie, '#'))
            return false;
        if (!level_is(o, oi, oe, '+')) {
            if (level_is(in, ii, ie, '+'))
                return false;
            if (oe - oi != ie - ii || memcmp(o + oi, in + ii, oe - oi) != 0)
                return false;
        }
        bool o_last = oe == olen, i_last = ie == ilen;
        if (o_last && i_last)
            return true;
        if (i_last) /* "a" is covered by "a/#" only */
            return olen - (oe + 1) == 1 && o[oe + 1] == '#';
        if (o_last)
            return false;
        oi = oe + 1;
        ii = ie + 1;
    }
}

bool acl_filter_intersects(const char *a, size_t alen, const char *b, size_t blen)
{
    if ((is_wild(a, alen) && blen > 0 && b[0] == '$') ||
        (is_wild(b, blen) && alen > 0 && a[0] == '$'))
        return false;
    size_t ai = 0, bi = 0;
    for (;;) {
        size_t ae = level_end(a, alen, ai), be = level_end(b, blen, bi);
        if (level_is(a, ai, ae, '#') || level_is(b, bi, be, '#'))
            return true;
        if (!level_is(a, ai, ae, '+') && !level_is(b, bi, be, '+') &&
            (ae - ai != be - bi || memcmp(a + ai, b + bi, ae - ai) != 0))
            return false;
        bool a_last = ae == alen, b_last = be == blen;
        if (a_last && b_last)
            return true;
        if (a_last)
            return blen - (be + 1) == 1 && b[be + 1] == '#';
        if (b_last)
            return alen - (ae + 1) == 1 && a[ae + 1] == '#';
        ai = ae + 1;
        bi = be + 1;
    }
}

/* ---- the file ------------------------------------------------------------ */

static void free_list(struct rule_list *l)
{
    struct rule *r;
    while ((r = STAILQ_FIRST(&l->rules))) {
        STAILQ_REMOVE_HEAD(&l->rules, next);
        free(r);
    }
    l->count = 0;
}

static void free_user(void *value, void *arg)
{
    (void)arg;
    free_list(value);
    free(value);
}

void acl_file_free(struct acl_file *f)
{
    if (!f)
        return;
    if (f->users) {
        hashmap_foreach(f->users, free_user, NULL);
        hashmap_free(f->users);
    }
    free_list(&f->anon);
    free_list(&f->patterns);
    free(f);
}

size_t acl_file_rule_count(const struct acl_file *f) { return f ? f->n_rules : 0; }
size_t acl_file_user_count(const struct acl_file *f) { return f ? f->n_users : 0; }
bool acl_file_governs_shares(const struct acl_file *f) { return f && f->n_share > 0; }

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

static char *skip_blanks(char *p)
{
    while (is_blank(*p))
        p++;
    return p;
}

/* Splits off the first word of *p (NUL-terminates it) and advances *p past
 * the blanks that follow. */
static char *next_word(char **p)
{
    char *w = *p, *e = w;
    while (*e && !is_blank(*e))
        e++;
    if (*e) {
        *e = '\0';
        e = skip_blanks(e + 1);
    }
    *p = e;
    return w;
}

static int parse_access(const char *w)
{
    static const struct { const char *name; int access; } names[] = {
        {"read", ACL_READ},           {"write", ACL_WRITE},
        {"readwrite", ACL_READ | ACL_WRITE}, {"subscribe", ACL_SUBSCRIBE},
        {"deny", ACL_DENY},           {"share", ACL_SHARE},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(w, names[i].name) == 0)
            return names[i].access;
    return -1;
}

/* A share name as a `share` rule gives it: a name, or a prefix ending in
 * '*' ("*" alone: every group); no '/', '+', '#' (MQTT-4.8.2-2) and no
 * blanks. */
static bool share_name_valid(const char *name, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (name[i] == '/' || name[i] == '+' || name[i] == '#' || is_blank(name[i]) ||
            (name[i] == '*' && i + 1 != len))
            return false;
    return true;
}

/* Checks a pattern filter as it will be after substitution, with a
 * harmless stand-in for %c and %u. */
static bool pattern_valid(const char *filter, bool share, bool *has_c, bool *has_u)
{
    size_t len = strlen(filter);
    char *probe = malloc(len + 1);
    if (!probe)
        return false;
    size_t n = 0;
    *has_c = *has_u = false;
    for (size_t i = 0; i < len; i++) {
        if (filter[i] == '%' && (filter[i + 1] == 'c' || filter[i + 1] == 'u')) {
            *(filter[i + 1] == 'c' ? has_c : has_u) = true;
            probe[n++] = 'x';
            i++;
        } else {
            probe[n++] = filter[i];
        }
    }
    bool ok = n > 0 && (share ? share_name_valid(probe, n)
                              : mqtt_topic_filter_valid((const uint8_t *)probe, n));
    free(probe);
    return ok;
}

static int add_rule(struct acl_file *f, struct rule_list *l, bool pattern, char *rest, char *why,
                    size_t whylen)
{
    char *p = rest;
    char *first = next_word(&p);
    int access = parse_access(first);
    const char *filter;
    if (access < 0 || *p == '\0') {
        /* No access word (or nothing after it): the whole rest is the
         * filter, with readwrite access, as in Mosquitto. */
        if (*first == '\0') {
            snprintf(why, whylen, "%s: missing topic filter", pattern ? "pattern" : "topic");
            return -1;
        }
        if (*p != '\0')
            first[strlen(first)] = ' '; /* undo next_word's cut: filters may hold blanks */
        access = ACL_READ | ACL_WRITE;
        filter = first;
    } else {
        filter = p;
    }
    bool share = access == ACL_SHARE;
    size_t len = strlen(filter);
    bool has_c = false, has_u = false;
    bool valid = pattern ? pattern_valid(filter, share, &has_c, &has_u)
                 : share ? share_name_valid(filter, len)
                         : mqtt_topic_filter_valid((const uint8_t *)filter, len);
    if (!valid) {
        snprintf(why, whylen,
                 share ? "'%.200s' is not a share name (a name or a prefix ending in '*', "
                         "without '/', '+', '#' or blanks)"
                       : "'%.200s' is not a valid topic filter",
                 filter);
        return -1;
    }
    if (share)
        f->n_share++;
    struct rule *r = malloc(sizeof *r + len + 1);
    if (!r) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    r->access = (uint8_t)access;
    r->has_c = has_c;
    r->has_u = has_u;
    r->len = len;
    memcpy(r->filter, filter, len + 1);
    STAILQ_INSERT_TAIL(&l->rules, r, next);
    l->count++;
    f->n_rules++;
    return 0;
}

/* Returns 0, or -1 with a reason in why.  *section is the user section
 * being read (NULL before the first `user` line). */
static int parse_line(struct acl_file *f, char *line, struct rule_list **section, char *why,
                      size_t whylen)
{
    char *end = line + strlen(line);
    while (end > line && is_blank(end[-1]))
        *--end = '\0';
    char *p = skip_blanks(line);
    if (*p == '\0' || *p == '#')
        return 0;
    char *kw = next_word(&p);
    if (strcmp(kw, "user") == 0) {
        if (*p == '\0') {
            snprintf(why, whylen, "user: missing user name");
            return -1;
        }
        size_t ulen = strlen(p);
        struct rule_list *l = hashmap_get(f->users, p, ulen);
        if (!l) {
            l = calloc(1, sizeof *l);
            if (l)
                STAILQ_INIT(&l->rules);
            if (!l || hashmap_put(f->users, p, ulen, l) != 0) {
                free(l);
                snprintf(why, whylen, "out of memory");
                return -1;
            }
            f->n_users++;
        }
        *section = l;
        return 0;
    }
    if (strcmp(kw, "topic") == 0)
        return add_rule(f, *section ? *section : &f->anon, false, p, why, whylen);
    if (strcmp(kw, "pattern") == 0)
        return add_rule(f, &f->patterns, true, p, why, whylen);
    snprintf(why, whylen, "unknown keyword '%.100s' (expected user, topic or pattern)", kw);
    return -1;
}

struct acl_parse {
    struct acl_file *f;
    struct rule_list *section; /* the `user` section being read, NULL before */
};

static int acl_line(char *line, size_t len, void *arg, char *why, size_t whylen)
{
    (void)len;
    struct acl_parse *ps = arg;
    return parse_line(ps->f, line, &ps->section, why, whylen);
}

struct acl_file *acl_file_load(const char *path, char *err, size_t errlen)
{
    struct acl_file *f = calloc(1, sizeof *f);
    if (f) {
        STAILQ_INIT(&f->anon.rules);
        STAILQ_INIT(&f->patterns.rules);
        f->users = hashmap_new();
    }
    struct acl_parse ps = {f, NULL};
    if (line_file_load(path, f && f->users, acl_line, &ps, err, errlen) != 0) {
        acl_file_free(f);
        return NULL;
    }
    return f;
}

/* ---- compiled clients ---------------------------------------------------- */

static bool widens(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '+' || s[i] == '#' || s[i] == '/')
            return true;
    return false;
}

/* In a share name '*' widens too, and blanks make no name. */
static bool widens_share(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '*' || is_blank(s[i]))
            return true;
    return widens(s, len);
}

/* The pattern with %c and %u replaced, malloc'd; NULL when out of memory
 * or when the result is not a valid filter. */
static char *substitute(const struct rule *r, const char *user, size_t ulen, const char *id,
                        size_t idlen, size_t *out_len)
{
    size_t n = 0;
    for (size_t i = 0; i < r->len; i++) {
        if (r->filter[i] == '%' && (r->filter[i + 1] == 'c' || r->filter[i + 1] == 'u')) {
            n += r->filter[i + 1] == 'c' ? idlen : ulen;
            i++;
        } else {
            n++;
        }
    }
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    char *o = s;
    for (size_t i = 0; i < r->len; i++) {
        if (r->filter[i] == '%' && (r->filter[i + 1] == 'c' || r->filter[i + 1] == 'u')) {
            bool c = r->filter[i + 1] == 'c';
            memcpy(o, c ? id : user, c ? idlen : ulen);
            o += c ? idlen : ulen;
            i++;
        } else {
            *o++ = r->filter[i];
        }
    }
    *o = '\0';
    if (n == 0 || (r->access == ACL_SHARE ? !share_name_valid(s, n)
                                          : !mqtt_topic_filter_valid((const uint8_t *)s, n))) {
        free(s);
        return NULL;
    }
    *out_len = n;
    return s;
}

void acl_client_free(struct acl_client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_owned; i++)
        free(c->owned[i]);
    free(c->owned);
    free(c->rules);
    free(c);
}

static void put(struct acl_client *c, size_t *deny_at, size_t *allow_at, struct crule cr)
{
    /* Deny rules fill the array from the front, allows from the back. */
    if (cr.access & ACL_DENY)
        c->rules[(*deny_at)++] = cr;
    else
        c->rules[--*allow_at] = cr;
}

struct acl_client *acl_client_compile(const struct acl_file *f, const char *user, size_t ulen,
                                      const char *id, size_t idlen)
{
    const struct rule_list *own = user ? hashmap_get(f->users, user, ulen) : &f->anon;
    size_t max = (own ? own->count : 0) + f->patterns.count;
    struct acl_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->rules = calloc(max ? max : 1, sizeof *c->rules);
    c->owned = calloc(f->patterns.count ? f->patterns.count : 1, sizeof *c->owned);
    if (!c->rules || !c->owned) {
        acl_client_free(c);
        return NULL;
    }
    size_t deny_at = 0, allow_at = max;
    const struct rule *r;
    if (own)
        STAILQ_FOREACH(r, &own->rules, next)
            put(c, &deny_at, &allow_at, (struct crule){r->access, false, r->len, r->filter});
    bool id_unsafe = widens(id, idlen), user_unsafe = user && widens(user, ulen);
    bool id_unsafe_share = widens_share(id, idlen);
    bool user_unsafe_share = user && widens_share(user, ulen);
    STAILQ_FOREACH(r, &f->patterns.rules, next) {
        bool deny = r->access & ACL_DENY;
        bool share = r->access == ACL_SHARE;
        if (r->has_u && !user)
            continue; /* names no one here */
        if ((r->has_c && (share ? id_unsafe_share : id_unsafe)) ||
            (r->has_u && (share ? user_unsafe_share : user_unsafe))) {
            if (deny)
                put(c, &deny_at, &allow_at, (struct crule){r->access, true, 0, ""});
            continue;
        }
        if (!r->has_c && !r->has_u) {
            put(c, &deny_at, &allow_at, (struct crule){r->access, false, r->len, r->filter});
            continue;
        }
        size_t len = 0;
        char *s = substitute(r, user, ulen, id, idlen, &len);
        if (!s) {
            /* Out of memory or an invalid result (too long): fail closed. */
            if (deny)
                put(c, &deny_at, &allow_at, (struct crule){r->access, true, 0, ""});
            continue;
        }
        c->owned[c->n_owned++] = s;
        put(c, &deny_at, &allow_at, (struct crule){r->access, false, len, s});
    }
    /* Close the gap between the denies and the allows. */
    size_t n_allow = max - allow_at;
    memmove(c->rules + deny_at, c->rules + allow_at, n_allow * sizeof *c->rules);
    c->n = deny_at + n_allow;
    return c;
}

/* How a compiled rule's filter is held against what the client asks for. */
typedef bool (*rule_test)(const char *rule, size_t rlen, const char *asked, size_t alen);

/* The first rule that decides, denies before allows (see acl_client_new):
 * a deny whose `deny_test` holds refuses; an allow of one of the `access`
 * bits whose `allow_test` holds grants; nothing that decides refuses. */
static inline bool first_decides(const struct acl_client *c, unsigned access, rule_test deny_test,
                                 rule_test allow_test, const char *asked, size_t len)
{
    for (size_t i = 0; i < c->n; i++) {
        const struct crule *r = &c->rules[i];
        if (r->access & ACL_DENY) {
            if (r->all || deny_test(r->filter, r->len, asked, len))
                return false;
        } else if ((r->access & access) && allow_test(r->filter, r->len, asked, len)) {
            return true;
        }
    }
    return false;
}

bool acl_client_may(const struct acl_client *c, enum acl_access access, const char *topic,
                    size_t len)
{
    return first_decides(c, access, mqtt_topic_matches, mqtt_topic_matches, topic, len);
}

bool acl_client_may_subscribe(const struct acl_client *c, const char *filter, size_t len)
{
    return first_decides(c, ACL_READ | ACL_SUBSCRIBE, acl_filter_covers, acl_filter_covers,
                         filter, len);
}

bool acl_client_covers_read(const struct acl_client *c, const char *filter, size_t len)
{
    return first_decides(c, ACL_READ, acl_filter_intersects, acl_filter_covers, filter, len);
}

bool acl_client_may_share(const struct acl_client *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->n; i++) {
        const struct crule *r = &c->rules[i];
        if (r->access != ACL_SHARE)
            continue;
        if (r->len > 0 && r->filter[r->len - 1] == '*') {
            if (len >= r->len - 1 && memcmp(r->filter, name, r->len - 1) == 0)
                return true;
        } else if (r->len == len && memcmp(r->filter, name, len) == 0) {
            return true;
        }
    }
    return false;
}
