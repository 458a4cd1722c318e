/*
 * ws_frames.h - the WebSocket (RFC 6455) work both of petreld's WebSocket
 * transports share: the opening handshake's step (ws_handshake.h does the
 * HTTP), frames read with wslay's event layer and frames written with its
 * frame layer.  The plain ws:// transport (conn_ws.h) runs it on the
 * broker's own socket path, the wss:// one (ws_transport.h) inside a
 * bufferevent filter over TLS; neither this file nor they know MQTT.
 */
#ifndef PETREL_WS_FRAMES_H
#define PETREL_WS_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct ws_handshake;
struct wslay_event_context;

/* A listener's WebSocket settings; must outlive its connections' handshakes. */
struct ws_transport_conf {
    const char *path;     /* ws_path */
    const char *origins;  /* allowed_origins, comma list; "" = any */
    uint64_t max_frame;   /* payload bytes of one frame, more = close 1009 */
};

/* Frames may carry this much more than max_packet_size: a client may pack
 * a few small packets with a big one. */
#define WS_FRAME_SLACK 4096

/* Counters of what clients did wrong, for $SYS. */
struct ws_stats {
    uint64_t handshakes;          /* upgrades accepted */
    uint64_t handshake_refused;   /* requests answered with an HTTP error */
    uint64_t frame_too_large;     /* closed with 1009 */
    uint64_t protocol_errors;     /* closed with 1002 or 1003 (text, unmasked,
                                     bad opcode or control frame...) */
    uint64_t pings;               /* pings answered */
};
extern struct ws_stats ws_stats;

/* Close codes sent (RFC 6455 7.4.1). */
#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_PROTOCOL_ERROR 1002

/* The handshake's next `len` bytes at `p`: *used of them were the
 * request's.  The response (101 or an HTTP error) goes to `out`.  Returns
 * 1 once upgraded, 0 for more, -1 refused or out of memory (`why` says,
 * for the log). */
int ws_handshake_step(struct ws_handshake *hs, const struct ws_transport_conf *conf,
                      const uint8_t *p, size_t len, size_t *used, struct evbuffer *out,
                      char *why, size_t why_len);

/* The reading side of one connection.  wslay's reading context (8 KiB)
 * is held only while the connection is inside a frame or a fragmented
 * message; between frames (an idle client) there is none, and the next
 * bytes borrow the broker's spare one. */
#define WS_READER_HELD_BYTES 8192 /* what a held context counts as input */
struct ws_reader {
    struct wslay_event_context *ev;
    uint64_t unframed;     /* bytes given to wslay that no complete frame
                              has accounted for yet */
    uint64_t frame_bytes;  /* header + payload of the frame being read */
    uint8_t cur_opcode;    /* of the frame being read */
    bool in_message : 1;   /* a fragmented data message goes on */
    bool failed : 1;       /* nothing more is read */
};

/* A read's bytes (an evbuffer, drained as read, or `len` bytes at `flat`)
 * and where what they carry goes. */
struct ws_read_io {
    struct evbuffer *src;
    const uint8_t *flat;
    size_t len, off;
    /* Binary frames' payload, in order: 0, or -1 (out of memory). */
    int (*data)(void *arg, const uint8_t *p, size_t n);
    /* Frames wslay sends itself (pongs, the answer to a close frame). */
    int (*send)(void *arg, const uint8_t *p, size_t n);
    void *arg;
};

/* How a read ended the connection. */
struct ws_read_end {
    uint16_t close_code;  /* the close frame to send; 0 = wslay sent one */
    bool by_client;       /* the client's close frame: an end of file */
    char why[160];        /* for the log */
};

/* Reads all that `io` has.  Returns 0, or -1 when the connection ends
 * (after the payload that came before: it went to io->data). */
int ws_read(struct ws_reader *r, uint64_t max_frame, struct ws_read_io *io,
            struct ws_read_end *end);
void ws_reader_free(struct ws_reader *r);

/* One whole frame to `dst`: its header, then `len` payload bytes moved
 * from `payload_buf`, or copied from `payload`.  0 or -1. */
int ws_frame_out(struct evbuffer *dst, uint8_t opcode, struct evbuffer *payload_buf,
                 const uint8_t *payload, size_t len);
/* A binary frame's header (wslay's) for `len` payload bytes, to put before
 * them: returns its length (at most WS_HEADER_MAX), 0 on failure. */
#define WS_HEADER_MAX 14
size_t ws_binary_header(uint8_t hdr[WS_HEADER_MAX], size_t len);
int ws_close_out(struct evbuffer *dst, uint16_t code);

/* Frees the broker-wide contexts (shutdown). */
void ws_frames_shutdown(void);

#endif
