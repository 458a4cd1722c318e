/*
 * conn_close_later.c - the list of connections to close at the end of the
 * turn (see conn_close_later.h).
 */
#include "conn_close_later.h"

#include <stdlib.h>

#include "array_grow.h"
#include "conn.h"
#include "conn_io.h"
#include "turn.h"

/* Marked by conn_close_later, with their reasons. */
static struct marked_conn {
    struct conn *c;
    const char *why;
} *marked;
static size_t n_marked, cap_marked;

void conn_close_later(struct conn *c, const char *why)
{
    if (c->state == CONN_DEAD || c->close_marked)
        return;
    if (n_marked == cap_marked) {
        struct marked_conn *v = array_grow(marked, &cap_marked, n_marked + 1, sizeof *v, 16);
        if (!v) {
            /* Nowhere to note it: stop reading it, its timeouts end it. */
            c->read_paused = true;
            conn_io_update(c, 0);
            return;
        }
        marked = v;
    }
    c->close_marked = true;
    marked[n_marked++] = (struct marked_conn){c, why};
    turn_schedule();
}

void conn_close_later_run(void (*close_one)(struct conn *c, const char *why, bool publish_will))
{
    /* Closing may publish wills that mark others: to the end of the list. */
    for (size_t i = 0; i < n_marked; i++)
        close_one(marked[i].c, marked[i].why, true);
    n_marked = 0;
}

void conn_close_later_free(void)
{
    free(marked);
    marked = NULL;
    cap_marked = 0;
}
