/*
 * memory_budget.c - the broker-wide memory budget (memory_budget.h).
 * Output is counted by output_memory.c, input by input_bound.c, messages
 * by message.c.  Paused publishers are kept in a list and read again
 * together, through the functions conn.c gives (memory_budget_init): this
 * file touches no connection.
 */
#include "memory_budget.h"

#include <stdlib.h>

#include "array_grow.h"
#include "broker.h"
#include "conn_timer.h"
#include "log.h"
#include "message.h"
#include "output_memory.h"

/* Output a connection may have waiting and still count as keeping up. */
#define SLOW_OUTPUT (64 * 1024)

static struct conn **paused;
static size_t n_paused, cap_paused;
static struct log_ratelimit over_log, refused_log;
static bool reached; /* the budget was passed and the use is not below 7/8 yet */
static void (*pause_reading)(struct conn *c);
static void (*resume_reading)(struct conn *c, uint32_t now);

void memory_budget_init(void (*pause)(struct conn *c), void (*resume)(struct conn *c, uint32_t now))
{
    pause_reading = pause;
    resume_reading = resume;
}

uint64_t memory_budget_used(void)
{
    return broker.input_held + output_memory_bytes() + message_memory();
}

bool memory_budget_over(void)
{
    /* Once reached, the budget holds until the use is below 7/8 of it
     * (memory_budget_turn_end), so that it does not flap at its edge:
     * otherwise the use settles just under the budget, each new message
     * crossing it only while it is routed (and dropped for the slow
     * consumers), and a publisher, looked at between two messages, is
     * never paused. */
    if (!broker.cfg.memory_budget)
        return false;
    if (!reached && memory_budget_used() > broker.cfg.memory_budget)
        reached = true;
    return reached;
}

static void note_over(const char *what)
{
    long n = log_ratelimit_check(&over_log, 10);
    if (n >= 0)
        log_warning("memory_budget (%llu bytes) reached (%llu used: %llu input, %llu output, "
                    "%llu messages): %s%s",
                    (unsigned long long)broker.cfg.memory_budget,
                    (unsigned long long)memory_budget_used(),
                    (unsigned long long)broker.input_held,
                    (unsigned long long)output_memory_bytes(),
                    (unsigned long long)message_memory(), what, log_suppressed(n));
}

bool memory_budget_pause(struct conn *c, bool owes_acks)
{
    if (!memory_budget_over())
        return false;
    /* What it sends frees memory: its acknowledgements are read. */
    if (owes_acks)
        return false;
    if (n_paused == cap_paused) {
        struct conn **v = array_grow(paused, &cap_paused, n_paused + 1, sizeof *v, 64);
        if (!v)
            return false;
        paused = v;
    }
    paused[n_paused++] = c;
    broker.stats.memory_budget_hits++;
    note_over("publishers are not read");
    pause_reading(c);
    return true;
}

void memory_budget_forget(struct conn *c)
{
    for (size_t i = 0; i < n_paused; i++) {
        if (paused[i] == c) {
            paused[i] = paused[--n_paused];
            break;
        }
    }
    if (!n_paused) {
        free(paused);
        paused = NULL;
        cap_paused = 0;
    }
}

void memory_budget_turn_end(void)
{
    if (!reached && !n_paused)
        return;
    if (broker.cfg.memory_budget && memory_budget_used() > broker.cfg.memory_budget / 8 * 7)
        return;
    reached = false;
    if (!n_paused)
        return;
    uint32_t now = conn_timer_now();
    /* Resuming may pause others again: work on a copy of the list. */
    size_t n = n_paused;
    struct conn **v = paused;
    paused = NULL;
    n_paused = cap_paused = 0;
    for (size_t i = 0; i < n; i++)
        resume_reading(v[i], now);
    free(v);
}

bool memory_budget_admit(void)
{
    if (!memory_budget_over())
        return true;
    broker.stats.memory_budget_hits++;
    long n = log_ratelimit_check(&refused_log, 10);
    if (n >= 0)
        log_warning("connection refused: memory_budget (%llu bytes) reached%s",
                    (unsigned long long)broker.cfg.memory_budget, log_suppressed(n));
    return false;
}

bool memory_budget_may_write(const struct conn *c, size_t out_len)
{
    (void)c;
    if (out_len < SLOW_OUTPUT || !memory_budget_over())
        return true;
    broker.stats.memory_budget_hits++;
    note_over("slow consumers get no new output");
    return false;
}
