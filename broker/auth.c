/*
 * auth.c - loading the password file into a user -> hash table.  Every
 * hash is checked for form at load time, so a typo is reported with its
 * line number when the operator loads the file, not as a mysterious login
 * failure later.
 */
#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"
#include "line_file.h"
#include "password_hash.h"

/* A password file line: user name (at most 65535 bytes in MQTT), ':' and a
 * hash.  Longer lines are refused rather than read without bound. */

struct auth_table {
    struct hashmap *users; /* user -> malloc'd hash string */
};

static struct auth_table *current;

static void free_value(void *value, void *arg)
{
    (void)arg;
    free(value);
}

void auth_table_free(struct auth_table *t)
{
    if (!t)
        return;
    if (t->users)
        hashmap_foreach(t->users, free_value, NULL);
    hashmap_free(t->users);
    free(t);
}

const char *auth_table_lookup(const struct auth_table *t, const char *user, size_t len)
{
    return t ? hashmap_get(t->users, user, len) : NULL;
}

size_t auth_table_count(const struct auth_table *t)
{
    return t ? hashmap_count(t->users) : 0;
}

void auth_set(struct auth_table *t)
{
    auth_table_free(current);
    current = t;
}

const struct auth_table *auth_current(void)
{
    return current;
}

/* Returns 0, or -1 with a reason (without location) in why. */
static int add_line(struct auth_table *t, char *line, size_t len, char *why, size_t whylen)
{
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        line[--len] = '\0';
    char *p = line;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0' || *p == '#')
        return 0;
    char *colon = strchr(p, ':');
    if (!colon || colon == p) {
        snprintf(why, whylen, "expected 'user:hash'");
        return -1;
    }
    *colon = '\0';
    const char *hash = colon + 1;
    size_t ulen = (size_t)(colon - p);
    if (ulen > 65535) {
        snprintf(why, whylen, "user name longer than 65535 bytes");
        return -1;
    }
    char hwhy[96];
    if (pw_hash_parse_check(hash, hwhy, sizeof hwhy) != 0) {
        snprintf(why, whylen, "user '%.100s': %s", p, hwhy);
        return -1;
    }
    if (hashmap_get(t->users, p, ulen)) {
        snprintf(why, whylen, "user '%.100s' is listed twice", p);
        return -1;
    }
    char *copy = strdup(hash);
    if (!copy || hashmap_put(t->users, p, ulen, copy) != 0) {
        free(copy);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    return 0;
}

static int auth_line(char *line, size_t len, void *arg, char *why, size_t whylen)
{
    return add_line(arg, line, len, why, whylen);
}

struct auth_table *auth_table_load(const char *path, char *err, size_t errlen)
{
    struct auth_table *t = calloc(1, sizeof *t);
    if (t)
        t->users = hashmap_new();
    if (line_file_load(path, t && t->users, auth_line, t, err, errlen) != 0) {
        auth_table_free(t);
        return NULL;
    }
    return t;
}
