/*
 * broker.c - the one broker instance: its creation and its teardown, in
 * the order the modules need (see broker.h).  petreld's main, the fuzz
 * target and the unit tests all make and free the broker here, so that
 * none of them repeats the others' set-up.
 */
#include "broker.h"

#include <string.h>
#include <unistd.h>
#include <event2/event.h>

#include "bridge.h"
#include "cluster.h"
#include "conn.h"
#include "conn_io.h"
#include "conn_wait.h"
#include "hashmap.h"
#include "http_server.h"
#include "http_tokens.h"
#include "listener.h"
#include "memory_budget.h"
#include "notify.h"
#include "protocol.h"
#include "retain.h"
#include "router.h"
#include "security.h"
#include "session.h"
#include "store.h"
#include "sys_topics.h"
#include "topic_tree.h"
#include "turn.h"

struct broker broker;

/* The end of each loop turn (turn.h), in turn.c's order. */
static const struct turn_steps turn_steps = {
    .run_kicked = conn_io_run_kicked,
    .flush = conn_io_flush,
    .commit = store_commit,
    .commit_failed = conn_wait_fail,
    .close_marked = conn_close_marked,
    .durable = store_durable,
    .release = conn_wait_release,
    .after_release = cluster_turn_end,
    .after_output = memory_budget_turn_end,
    .free_closed = conn_free_closed,
};

/* What the CONNECT handler asks of the listeners and the bridges
 * (protocol.h), so that it calls neither by name. */
static bool conn_allows_anonymous(const struct conn *c)
{
    return listener_allows_anonymous(c->listener);
}

static bool conn_uses_identity(const struct conn *c)
{
    return listener_uses_identity(c->listener);
}

static const struct protocol_policy protocol_policy_of_broker = {
    .allows_anonymous = conn_allows_anonymous,
    .uses_identity = conn_uses_identity,
    .bridge_conn = bridge_owns_conn,
};

/* What a rolled-back store batch asks of the sessions (store.h). */
static const struct store_session_hooks store_sessions = {
    .rolled_back = session_store_rolled_back,
    .qos2_forget = session_qos2_forget,
    .qos2_pending = session_qos2_pending,
};

int broker_init(const struct config *cfg)
{
    memset(&broker, 0, sizeof broker);
    broker.cfg = *cfg;
    broker.lock_fd = -1;
    broker.started = time(NULL);
    cluster_preinit(cfg->cluster_nats); /* before the base: see cluster.h */
    broker.base = event_base_new();
    broker.topics = topic_tree_new();
    broker.sessions = hashmap_new();
    conn_init(listener_conn_closed);
    protocol_init(&protocol_policy_of_broker);
    store_set_session_hooks(&store_sessions);
    if (!broker.base || !broker.topics || !broker.sessions || turn_init(broker.base, &turn_steps) != 0)
        return -1;
    return 0;
}

void broker_free(void)
{
    http_server_close();
    http_tokens_set(NULL);
    listeners_close();
    bridges_stop(); /* before the connections: its own local ones among them */
    if (broker.base)
        conn_close_all();
    security_stop();
    sys_topics_stop();
    cluster_stop(); /* after the closing connections' wills went out */
    store_close(); /* commits what the closing connections wrote */
    if (broker.sessions)
        session_destroy_all();
    if (broker.topics) {
        retain_free_all();
        router_shutdown();
        topic_tree_free(broker.topics);
        broker.topics = NULL;
    }
    notify_close();
    turn_shutdown();
    if (broker.base)
        event_base_free(broker.base);
    broker.base = NULL;
    if (broker.lock_fd >= 0)
        close(broker.lock_fd);
    broker.lock_fd = -1;
}
