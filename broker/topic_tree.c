/*
 * topic_tree.c - the tree of topic levels that holds subscriptions and
 * retained messages, and the MQTT matching of topics against filters.
 * See topic_tree.h for the contract.
 *
 * Shape of the tree.  Every node is one topic level.  Its literal children
 * live in a small open-addressing hash table that grows and shrinks with
 * them, so a parent with 100,000 children costs one probe per lookup.  The
 * wildcard children of filters ('+' and '#') are kept in two dedicated
 * pointers instead: matching a topic then needs exactly one hash lookup per
 * node visited, and topic names (which cannot contain wildcards) are always
 * looked up literally, so a topic level "+" can never be confused with a
 * filter level "+".
 *
 * No recursion.  Topics and filters may be 65535 bytes long, i.e. tens of
 * thousands of levels, and matching must neither allocate nor risk the
 * stack.  Every walk is therefore an iterative depth-first search that
 * climbs back up through parent pointers; the position in the topic (or
 * filter) for the parent is recovered by scanning back to the previous '/'.
 * The walks assume that callbacks do not modify the tree while it is walked.
 */
#include "topic_tree.h"

#include "keyed_hash.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Full topic name of a retained value; may contain any byte. */
struct rtopic {
    size_t len;
    char name[];
};

struct sub_entry {
    void *subscriber; /* NULL marks a free slot */
    uint8_t options;
};

struct tnode {
    struct tnode *parent;

    /* Literal children: open addressing with linear probing, capacity a
     * power of two (or 0 when there are none). */
    struct tnode **kids;
    uint32_t n_kids, kid_cap;

    /* Children for the filter levels "+" and "#". */
    struct tnode *plus, *hash;

    /* Subscriptions whose filter ends here, a hash set keyed by subscriber
     * pointer so that fan-out nodes with many subscribers stay fast to
     * subscribe to and unsubscribe from. */
    struct sub_entry *subs;
    uint32_t n_subs, sub_cap;

    /* The retained value of the topic ending here, with a copy of that
     * topic: match_retained must report full names, and keeping the name
     * costs less than rebuilding it (which would need a buffer of up to
     * 64 KiB per walk). */
    void *retained;
    struct rtopic *retained_topic;

    uint64_t hval; /* hash of name, cached for table probing and resizing */
    uint32_t len;
    char name[];   /* this level, not NUL-terminated; may be empty */
};

struct topic_tree {
    struct tnode *root; /* the level above the first: never holds anything */
    size_t n_subs;
    size_t n_retained;
    struct hash_key key; /* SipHash key, random per tree */
    topic_interest_cb interest;
    void *interest_arg;
};

/* ---- hashing -------------------------------------------------------------
 * Topic levels come from the network: keyed hashing (keyed_hash.h), with a
 * random key per tree. */

static uint64_t level_hash(const struct topic_tree *t, const char *s, size_t len)
{
    return keyed_hash(&t->key, s, len);
}

/* Subscriber pointers are not chosen by clients: a cheap mix is enough. */
static uint64_t ptr_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

/* ---- tables --------------------------------------------------------------
 * Both tables keep their load at or below 3/4 (so probes always reach an
 * empty slot) and shrink when they fall below 1/8 full, so that memory
 * follows what is stored after mass unsubscribes. */

#define MIN_CAP 2

static bool must_grow(uint32_t n, uint32_t cap)
{
    return ((uint64_t)n + 1) * 4 > (uint64_t)cap * 3;
}

static bool should_shrink(uint32_t n, uint32_t cap)
{
    return cap > MIN_CAP && (uint64_t)n * 8 < cap;
}

static bool level_eq(const struct tnode *n, uint64_t h, const char *s, size_t len)
{
    return n->hval == h && n->len == len && memcmp(n->name, s, len) == 0;
}

static struct tnode *kid_find(const struct topic_tree *t, const struct tnode *n,
                              const char *s, size_t len)
{
    if (n->n_kids == 0)
        return NULL;
    uint64_t h = level_hash(t, s, len);
    uint32_t mask = n->kid_cap - 1;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        struct tnode *k = n->kids[i];
        if (k == NULL)
            return NULL;
        if (level_eq(k, h, s, len))
            return k;
    }
}

/* Index of the slot holding child k; k must be in the table. */
static uint32_t kid_slot(const struct tnode *n, const struct tnode *k)
{
    uint32_t mask = n->kid_cap - 1;
    uint32_t i = (uint32_t)k->hval & mask;
    while (n->kids[i] != k)
        i = (i + 1) & mask;
    return i;
}

/* Rebuilds the child table with capacity cap (0 frees it). */
static int kids_resize(struct tnode *n, uint32_t cap)
{
    struct tnode **nk = NULL;
    if (cap > 0) {
        nk = calloc(cap, sizeof(*nk));
        if (nk == NULL)
            return -1;
        for (uint32_t i = 0; i < n->kid_cap; i++) {
            struct tnode *k = n->kids[i];
            if (k == NULL)
                continue;
            uint32_t j = (uint32_t)k->hval & (cap - 1);
            while (nk[j] != NULL)
                j = (j + 1) & (cap - 1);
            nk[j] = k;
        }
    }
    free(n->kids);
    n->kids = nk;
    n->kid_cap = cap;
    return 0;
}

static int kid_insert(struct tnode *n, struct tnode *k)
{
    if (must_grow(n->n_kids, n->kid_cap) &&
        kids_resize(n, n->kid_cap ? n->kid_cap * 2 : MIN_CAP) < 0)
        return -1;
    uint32_t mask = n->kid_cap - 1;
    uint32_t i = (uint32_t)k->hval & mask;
    while (n->kids[i] != NULL)
        i = (i + 1) & mask;
    n->kids[i] = k;
    n->n_kids++;
    return 0;
}

/* Linear-probing deletion without tombstones: later entries of the same
 * probe run are shifted back into the hole when their home slot allows. */
static void kid_remove(struct tnode *n, struct tnode *k)
{
    uint32_t mask = n->kid_cap - 1;
    uint32_t hole = kid_slot(n, k);
    uint32_t j = hole;
    for (;;) {
        j = (j + 1) & mask;
        struct tnode *e = n->kids[j];
        if (e == NULL)
            break;
        uint32_t home = (uint32_t)e->hval & mask;
        bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            n->kids[hole] = e;
            hole = j;
        }
    }
    n->kids[hole] = NULL;
    n->n_kids--;
    if (n->n_kids == 0)
        kids_resize(n, 0);
    else if (should_shrink(n->n_kids, n->kid_cap))
        kids_resize(n, n->kid_cap / 2); /* on failure the old table stays */
}

static struct sub_entry *sub_find(const struct tnode *n, const void *subscriber)
{
    if (n->n_subs == 0)
        return NULL;
    uint32_t mask = n->sub_cap - 1;
    for (uint32_t i = (uint32_t)ptr_hash(subscriber) & mask;; i = (i + 1) & mask) {
        if (n->subs[i].subscriber == NULL)
            return NULL;
        if (n->subs[i].subscriber == subscriber)
            return &n->subs[i];
    }
}

static int subs_resize(struct tnode *n, uint32_t cap)
{
    struct sub_entry *ns = NULL;
    if (cap > 0) {
        ns = calloc(cap, sizeof(*ns));
        if (ns == NULL)
            return -1;
        for (uint32_t i = 0; i < n->sub_cap; i++) {
            if (n->subs[i].subscriber == NULL)
                continue;
            uint32_t j = (uint32_t)ptr_hash(n->subs[i].subscriber) & (cap - 1);
            while (ns[j].subscriber != NULL)
                j = (j + 1) & (cap - 1);
            ns[j] = n->subs[i];
        }
    }
    free(n->subs);
    n->subs = ns;
    n->sub_cap = cap;
    return 0;
}

static int sub_insert(struct tnode *n, void *subscriber, uint8_t options)
{
    if (must_grow(n->n_subs, n->sub_cap) &&
        subs_resize(n, n->sub_cap ? n->sub_cap * 2 : MIN_CAP) < 0)
        return -1;
    uint32_t mask = n->sub_cap - 1;
    uint32_t i = (uint32_t)ptr_hash(subscriber) & mask;
    while (n->subs[i].subscriber != NULL)
        i = (i + 1) & mask;
    n->subs[i].subscriber = subscriber;
    n->subs[i].options = options;
    n->n_subs++;
    return 0;
}

static void sub_remove(struct tnode *n, struct sub_entry *e)
{
    uint32_t mask = n->sub_cap - 1;
    uint32_t hole = (uint32_t)(e - n->subs);
    uint32_t j = hole;
    for (;;) {
        j = (j + 1) & mask;
        if (n->subs[j].subscriber == NULL)
            break;
        uint32_t home = (uint32_t)ptr_hash(n->subs[j].subscriber) & mask;
        bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            n->subs[hole] = n->subs[j];
            hole = j;
        }
    }
    n->subs[hole].subscriber = NULL;
    n->n_subs--;
    if (n->n_subs == 0)
        subs_resize(n, 0);
    else if (should_shrink(n->n_subs, n->sub_cap))
        subs_resize(n, n->sub_cap / 2);
}

static void report_subs(const struct tnode *n, topic_match_cb cb, void *arg)
{
    if (n == NULL || n->n_subs == 0)
        return;
    for (uint32_t i = 0; i < n->sub_cap; i++)
        if (n->subs[i].subscriber != NULL)
            cb(n->subs[i].subscriber, n->subs[i].options, arg);
}

/* ---- nodes ---------------------------------------------------------------*/

static struct tnode *node_new(struct tnode *parent, const char *s, size_t len, uint64_t h)
{
    struct tnode *n = calloc(1, sizeof(*n) + len);
    if (n == NULL)
        return NULL;
    n->parent = parent;
    n->hval = h;
    n->len = (uint32_t)len;
    if (len > 0)
        memcpy(n->name, s, len);
    return n;
}

static bool node_is_empty(const struct tnode *n)
{
    return n->n_subs == 0 && n->retained == NULL && n->n_kids == 0 &&
           n->plus == NULL && n->hash == NULL;
}

/* Frees n and every ancestor that no longer holds anything, stopping at
 * the first one still in use (or at the root, which is never freed). */
static void prune(struct topic_tree *t, struct tnode *n)
{
    while (n != t->root && node_is_empty(n)) {
        struct tnode *p = n->parent;
        if (p->plus == n)
            p->plus = NULL;
        else if (p->hash == n)
            p->hash = NULL;
        else
            kid_remove(p, n);
        free(n->kids);
        free(n->subs);
        free(n);
        n = p;
    }
}

/* Position just past the level starting at pos: the next '/' or len. */
static size_t level_end(const char *s, size_t len, size_t pos)
{
    const char *slash = pos < len ? memchr(s + pos, '/', len - pos) : NULL;
    return slash ? (size_t)(slash - s) : len;
}

/* Start of the level that ends at `end` (a '/' position or len). */
static size_t level_start(const char *s, size_t end)
{
    while (end > 0 && s[end - 1] != '/')
        end--;
    return end;
}

static bool is_wild(const char *s, size_t len, char w)
{
    return len == 1 && s[0] == w;
}

/* Returns the node at the end of the path of `s` (a filter if `filter`,
 * else a topic name), or NULL if it does not exist. */
static struct tnode *find_path(const struct topic_tree *t, const char *s, size_t len,
                               bool filter)
{
    struct tnode *n = t->root;
    size_t pos = 0;

    for (;;) {
        size_t end = level_end(s, len, pos);
        const char *lvl = s + pos;
        size_t llen = end - pos;

        if (filter && is_wild(lvl, llen, '+'))
            n = n->plus;
        else if (filter && is_wild(lvl, llen, '#'))
            n = n->hash;
        else
            n = kid_find(t, n, lvl, llen);
        if (n == NULL || end >= len)
            return n;
        pos = end + 1;
    }
}

/* Like find_path but adds the missing nodes.  On out of memory the nodes
 * added so far are pruned again and NULL is returned. */
static struct tnode *make_path(struct topic_tree *t, const char *s, size_t len, bool filter)
{
    struct tnode *n = t->root;
    size_t pos = 0;

    for (;;) {
        size_t end = level_end(s, len, pos);
        const char *lvl = s + pos;
        size_t llen = end - pos;
        struct tnode **slot = NULL;
        struct tnode *next;

        if (filter && is_wild(lvl, llen, '+'))
            slot = &n->plus;
        else if (filter && is_wild(lvl, llen, '#'))
            slot = &n->hash;
        next = slot ? *slot : kid_find(t, n, lvl, llen);

        if (next == NULL) {
            next = node_new(n, lvl, llen, slot ? 0 : level_hash(t, lvl, llen));
            if (next == NULL) {
                prune(t, n);
                return NULL;
            }
            if (slot) {
                *slot = next;
            } else if (kid_insert(n, next) < 0) {
                free(next);
                prune(t, n);
                return NULL;
            }
        }
        n = next;
        if (end >= len)
            return n;
        pos = end + 1;
    }
}

/* ---- public API ----------------------------------------------------------*/

struct topic_tree *topic_tree_new(void)
{
    struct topic_tree *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->root = node_new(NULL, "", 0, 0);
    if (t->root == NULL) {
        free(t);
        return NULL;
    }
    hash_key_init(&t->key);
    return t;
}

/* Frees every node without recursion: descend while a node still has a
 * child, detaching it on the way down; free on the way back up.  kid_cap
 * doubles as a cursor through a table that is about to be freed anyway. */
void topic_tree_free(struct topic_tree *t)
{
    if (t == NULL)
        return;
    struct tnode *n = t->root;
    while (n != NULL) {
        struct tnode *c = NULL;
        if (n->plus) {
            c = n->plus;
            n->plus = NULL;
        } else if (n->hash) {
            c = n->hash;
            n->hash = NULL;
        } else {
            while (c == NULL && n->kid_cap > 0)
                c = n->kids[--n->kid_cap];
        }
        if (c != NULL) {
            n = c;
            continue;
        }
        struct tnode *p = n->parent;
        free(n->kids);
        free(n->subs);
        free(n->retained_topic);
        free(n);
        n = p;
    }
    free(t);
}

void topic_tree_set_interest_cb(struct topic_tree *t, topic_interest_cb cb, void *arg)
{
    t->interest = cb;
    t->interest_arg = arg;
}

int topic_tree_subscribe(struct topic_tree *t, const char *filter, size_t len,
                         void *subscriber, uint8_t options)
{
    if (subscriber == NULL) /* NULL marks free slots in the set */
        return -1;
    struct tnode *n = make_path(t, filter, len, true);
    if (n == NULL)
        return -1;
    struct sub_entry *e = sub_find(n, subscriber);
    if (e != NULL) {
        e->options = options;
        return 0;
    }
    if (sub_insert(n, subscriber, options) < 0) {
        prune(t, n);
        return -1;
    }
    t->n_subs++;
    if (n->n_subs == 1 && t->interest)
        t->interest(filter, len, true, t->interest_arg);
    return 1;
}

int topic_tree_unsubscribe(struct topic_tree *t, const char *filter, size_t len,
                           void *subscriber)
{
    struct tnode *n = find_path(t, filter, len, true);
    if (n == NULL)
        return 0;
    struct sub_entry *e = sub_find(n, subscriber);
    if (e == NULL)
        return 0;
    sub_remove(n, e);
    t->n_subs--;
    bool last = n->n_subs == 0;
    prune(t, n);
    if (last && t->interest)
        t->interest(filter, len, false, t->interest_arg);
    return 1;
}

/*
 * Depth-first search over every node whose path matches a prefix of the
 * topic.  At a node that has consumed the levels before `pos`:
 *   - its '#' child matches whatever remains, including nothing at all
 *     ("a/#" matches "a");
 *   - once every level is consumed, its own subscriptions match;
 *   - otherwise the search goes down to the literal child for the next
 *     level, and afterwards to the '+' child.
 * On the way back up, a literal child is followed by its '+' sibling and a
 * '+' child by the parent's own way back.  `pos` > len means "all levels
 * consumed", which keeps a trailing empty level ("a/") distinct from none.
 * Wildcards at the root are skipped for topics starting with '$'.
 */
void topic_tree_match(const struct topic_tree *t, const char *topic, size_t len,
                      topic_match_cb cb, void *arg)
{
    const struct tnode *root = t->root;
    const struct tnode *n = root;
    const bool dollar = len > 0 && topic[0] == '$';
    size_t pos = 0;

    for (;;) {
        /* Visit n, arrived at from above. */
        bool wild_ok = !(n == root && dollar);
        if (wild_ok)
            report_subs(n->hash, cb, arg);
        if (pos > len) {
            report_subs(n, cb, arg);
        } else {
            size_t end = level_end(topic, len, pos);
            const struct tnode *c = kid_find(t, n, topic + pos, end - pos);
            if (c == NULL && wild_ok)
                c = n->plus;
            if (c != NULL) {
                n = c;
                pos = end + 1;
                continue;
            }
        }

        /* Climb until a '+' sibling is still to be visited. */
        for (;;) {
            if (n == root)
                return;
            const struct tnode *p = n->parent;
            if (n != p->plus && p->plus != NULL && !(p == root && dollar)) {
                n = p->plus; /* consumes the same level: pos unchanged */
                break;
            }
            pos = level_start(topic, pos - 1);
            n = p;
        }
    }
}

void *topic_tree_set_retained(struct topic_tree *t, const char *topic, size_t len, void *value)
{
    struct tnode *n = value ? make_path(t, topic, len, false) : find_path(t, topic, len, false);
    if (n == NULL)
        return value; /* clearing an absent topic returns NULL == value */
    void *old = n->retained;
    if (value == NULL) {
        if (old != NULL) {
            n->retained = NULL;
            free(n->retained_topic);
            n->retained_topic = NULL;
            t->n_retained--;
            prune(t, n);
        }
        return old;
    }
    if (n->retained_topic == NULL) {
        n->retained_topic = malloc(sizeof(struct rtopic) + len);
        if (n->retained_topic == NULL) {
            prune(t, n);
            return value;
        }
        n->retained_topic->len = len;
        if (len > 0)
            memcpy(n->retained_topic->name, topic, len);
    }
    n->retained = value;
    if (old == NULL)
        t->n_retained++;
    return old;
}

void *topic_tree_get_retained(const struct topic_tree *t, const char *topic, size_t len)
{
    const struct tnode *n = find_path(t, topic, len, false);
    return n ? n->retained : NULL;
}

static void report_retained(const struct tnode *n, topic_retained_cb cb, void *arg)
{
    if (n->retained != NULL)
        cb(n->retained, n->retained_topic->name, n->retained_topic->len, arg);
}

/* First literal child in slots [from, cap), skipping '$' levels if asked. */
static const struct tnode *kid_first(const struct tnode *n, uint32_t from, bool skip_dollar)
{
    for (uint32_t i = from; i < n->kid_cap; i++) {
        const struct tnode *k = n->kids[i];
        if (k != NULL && !(skip_dollar && k->len > 0 && k->name[0] == '$'))
            return k;
    }
    return NULL;
}

static const struct tnode *kid_next(const struct tnode *p, const struct tnode *k, bool skip_dollar)
{
    return kid_first(p, kid_slot(p, k) + 1, skip_dollar);
}

/* Reports top's retained value and every one below it, in pre-order. */
static void report_subtree(const struct tnode *top, bool skip_dollar,
                           topic_retained_cb cb, void *arg)
{
    const struct tnode *n = top;
    report_retained(n, cb, arg);
    n = kid_first(n, 0, skip_dollar);
    while (n != NULL) {
        report_retained(n, cb, arg);
        const struct tnode *c = kid_first(n, 0, false);
        if (c != NULL) {
            n = c;
            continue;
        }
        for (;;) {
            const struct tnode *p = n->parent;
            c = kid_next(p, n, p == top && skip_dollar);
            if (c != NULL || p == top) {
                n = c;
                break;
            }
            n = p;
        }
    }
}

/*
 * The mirror image of topic_tree_match: here the filter has the wildcards
 * and the tree holds plain topic levels, so only literal children are
 * walked.  A '+' level visits every child in turn; a '#' level reports the
 * whole subtree (including the node itself: "a/#" matches "a").
 */
void topic_tree_match_retained(const struct topic_tree *t, const char *filter, size_t len,
                               topic_retained_cb cb, void *arg)
{
    const struct tnode *root = t->root;
    const struct tnode *n = root;
    size_t pos = 0;

    if (t->n_retained == 0)
        return;
    for (;;) {
        /* Visit n, arrived at from above. */
        if (pos > len) {
            report_retained(n, cb, arg);
        } else {
            size_t end = level_end(filter, len, pos);
            const char *lvl = filter + pos;
            size_t llen = end - pos;
            const struct tnode *c;
            if (is_wild(lvl, llen, '#')) {
                report_subtree(n, n == root, cb, arg);
                c = NULL;
            } else if (is_wild(lvl, llen, '+')) {
                c = kid_first(n, 0, n == root);
            } else {
                c = kid_find(t, n, lvl, llen);
            }
            if (c != NULL) {
                n = c;
                pos = end + 1;
                continue;
            }
        }

        /* Climb until a sibling is still to be visited for a '+' level. */
        for (;;) {
            if (n == root)
                return;
            const struct tnode *p = n->parent;
            size_t start = level_start(filter, pos - 1);
            if (is_wild(filter + start, pos - 1 - start, '+')) {
                const struct tnode *c = kid_next(p, n, p == root);
                if (c != NULL) {
                    n = c; /* consumes the same level: pos unchanged */
                    break;
                }
            }
            pos = start;
            n = p;
        }
    }
}

void topic_tree_foreach_retained(const struct topic_tree *t, topic_retained_cb cb, void *arg)
{
    if (t->n_retained > 0)
        report_subtree(t->root, false, cb, arg);
}

size_t topic_tree_subscription_count(const struct topic_tree *t)
{
    return t->n_subs;
}

size_t topic_tree_retained_count(const struct topic_tree *t)
{
    return t->n_retained;
}
