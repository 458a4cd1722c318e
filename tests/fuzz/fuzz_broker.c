/*
 * fuzz_broker.c - libFuzzer target for a whole broker connection: arbitrary
 * byte streams from up to three clients are fed through real petreld code
 * (framing, decoding, the protocol handlers, sessions, routing, retained
 * messages, wills) in process, over socketpairs, on one event loop.
 *
 * Input format: a sequence of chunks [client index byte][length byte][bytes];
 * each chunk is written to that client's socket and the loop is run until it
 * is idle, so that interleavings between clients are explored too.  The store
 * is not opened: its writes are no-ops, which keeps each run fast.  Two
 * clients are plain sockets, the third a bufferevent (as TLS ones are).
 */
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker.h"
#include "config.h"
#include "conn.h"
#include "log.h"

#define CLIENTS 3

/* Reads and discards what the broker sent, so its output never blocks. */
static void drain(int fd)
{
    char buf[4096];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

static void run_loop(const int *peer)
{
    /* A few rounds: a packet's effects (a will, a takeover) may schedule
     * more work for the next round. */
    for (int round = 0; round < 4; round++) {
        event_base_loop(broker.base, EVLOOP_NONBLOCK);
        for (int i = 0; i < CLIENTS; i++)
            if (peer[i] >= 0)
                drain(peer[i]);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR); /* protocol violations are expected here */
    signal(SIGPIPE, SIG_IGN);  /* as petreld does: peers hang up mid-write */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct config cfg; /* large: not on the stack */
    config_defaults(&cfg);
    cfg.max_packet_size = 4096;
    cfg.max_inflight = 4;
    cfg.max_queued_messages = 8;
    cfg.sys_interval = 0;
    if (broker_init(&cfg) != 0)
        abort();

    int peer[CLIENTS];
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(40000)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < CLIENTS; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
            abort();
        peer[i] = sv[1];
        /* The last client is on a bufferevent, as TLS connections are:
         * both kinds of connection I/O (conn_io.c) are explored. */
        if (i == CLIENTS - 1) {
            struct bufferevent *bev =
                bufferevent_socket_new(broker.base, sv[0], BEV_OPT_CLOSE_ON_FREE);
            if (!bev || !conn_new_bufferevent(bev))
                abort();
        } else if (!conn_new(sv[0], (struct sockaddr *)&addr, NULL)) {
            abort();
        }
    }

    size_t pos = 0;
    while (pos + 2 <= size) {
        int who = data[pos] % CLIENTS;
        size_t len = data[pos + 1];
        pos += 2;
        if (len > size - pos)
            len = size - pos;
        if (data[pos - 2] >= 0xF0) {
            /* A client hangs up: its will (if any) must go out cleanly. */
            close(peer[who]);
            peer[who] = -1;
        } else if (peer[who] >= 0 && len > 0) {
            if (write(peer[who], data + pos, len) < 0)
                drain(peer[who]);
        }
        pos += len;
        run_loop(peer);
    }
    run_loop(peer);

    broker_free();
    for (int i = 0; i < CLIENTS; i++)
        if (peer[i] >= 0)
            close(peer[i]);
    return 0;
}
