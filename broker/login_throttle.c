/*
 * login_throttle.c - per-address and per-user-name budgets of failed
 * logins (login_throttle.h): a token bucket each, refilled one failure per
 * LOGIN_FORGIVE_MS, in two fixed tables of 4-way buckets.
 */
#include "login_throttle.h"

#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "broker.h"
#include "keyed_hash.h"

#define WAYS 4

struct slot {
    uint64_t key;      /* keyed hash of the address or name; 0 = free */
    int64_t at_ms;     /* when `spent` was last brought up to date */
    uint32_t spent;    /* failures not yet forgiven */
};

struct table {
    struct slot slots[LOGIN_THROTTLE_SLOTS];
};

static struct table by_source, by_user;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Brings a slot's count down by the failures forgiven since at_ms. */
static void forgive(struct slot *s, int64_t now)
{
    int64_t n = (now - s->at_ms) / LOGIN_FORGIVE_MS;
    if (n <= 0)
        return;
    s->spent = (int64_t)s->spent > n ? s->spent - (uint32_t)n : 0;
    s->at_ms += n * LOGIN_FORGIVE_MS;
}

/* The slot of key, or with `make` a slot for it (the one closest to being
 * forgiven gives way when its bucket is full); NULL when absent. */
static struct slot *find(struct table *t, uint64_t key, int64_t now, int make)
{
    key |= 1; /* never 0, the free mark */
    struct slot *b = &t->slots[(key >> 1) % (LOGIN_THROTTLE_SLOTS / WAYS) * WAYS];
    struct slot *victim = NULL;
    for (int i = 0; i < WAYS; i++) {
        if (b[i].key == key) {
            forgive(&b[i], now);
            return &b[i];
        }
        if (b[i].key)
            forgive(&b[i], now);
        if (!victim || b[i].key == 0 || (victim->key && b[i].spent < victim->spent))
            victim = &b[i];
    }
    if (!make)
        return NULL;
    victim->key = key;
    victim->at_ms = now;
    victim->spent = 0;
    return victim;
}

static uint64_t source_key(const struct login_source *src)
{
    uint8_t buf[17];
    size_t n = src->family == AF_INET6 ? 16 : 4;
    buf[0] = (uint8_t)src->family;
    memcpy(buf + 1, src->addr, n);
    return keyed_hash(hash_key_process(), buf, n + 1);
}

static uint64_t user_key(const char *user, size_t len)
{
    return keyed_hash(hash_key_process(), user, len) ^ 0x5bd1e995u; /* apart from sources */
}

/* Charges or checks one budget: returns 1 when it is spent (refuse),
 * else 0, with *charged set when the attempt was paid up front. */
static int begin_one(struct table *t, uint64_t key, uint32_t budget, int64_t now, int *charged)
{
    *charged = 0;
    if (budget == 0)
        return 0;
    struct slot *s = find(t, key, now, 0);
    if (!s || s->spent == 0)
        return 0;
    if (s->spent >= budget)
        return 1;
    s->spent++;
    *charged = 1;
    return 0;
}

static void end_one(struct table *t, uint64_t key, uint32_t budget, int64_t now, int charged,
                    int ok)
{
    if (budget == 0 || (ok && !charged) || (!ok && charged))
        return;
    struct slot *s = find(t, key, now, !ok);
    if (!s)
        return;
    if (ok)
        s->spent -= s->spent > 0;
    else if (s->spent < UINT32_MAX)
        s->spent++;
}

enum login_verdict login_throttle_begin(const struct login_source *src, const char *user,
                                        size_t user_len, unsigned *charged)
{
    int64_t now = now_ms();
    int cs = 0, cu = 0;
    *charged = 0;
    const struct config *cfg = &broker.cfg;
    if (src->family && begin_one(&by_source, source_key(src), cfg->max_login_failures_per_source,
                                 now, &cs))
        return LOGIN_SOURCE_THROTTLED;
    if (user && begin_one(&by_user, user_key(user, user_len), cfg->max_login_failures_per_user,
                          now, &cu)) {
        if (cs) /* not checked after all */
            end_one(&by_source, source_key(src), cfg->max_login_failures_per_source, now, 1, 1);
        return LOGIN_USER_THROTTLED;
    }
    *charged = (unsigned)cs | (unsigned)cu << 1;
    return LOGIN_CHECK;
}

void login_throttle_end(const struct login_source *src, const char *user, size_t user_len,
                        unsigned charged, int ok)
{
    int64_t now = now_ms();
    const struct config *cfg = &broker.cfg;
    if (src->family)
        end_one(&by_source, source_key(src), cfg->max_login_failures_per_source, now,
                charged & 1, ok);
    if (user)
        end_one(&by_user, user_key(user, user_len), cfg->max_login_failures_per_user, now,
                (charged >> 1) & 1, ok);
}
