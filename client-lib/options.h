/*
 * options.h - the contents of a petrel_options object, shared by the
 * modules of libpetrel.  Strings and bytes are owned copies; a client keeps
 * its own deep copy (options_copy) so the caller's object can go away.
 */
#ifndef PETREL_OPTIONS_H
#define PETREL_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "petrel.h"

struct petrel_options {
    char *host;
    uint16_t port;
    char *client_id;          /* never NULL ("" = server assigns) */
    bool clean_session;
    uint16_t keepalive;       /* seconds */
    char *username;           /* NULL = none */
    uint8_t *password;        /* NULL = none */
    size_t password_len;
    char *will_topic;         /* NULL = no will */
    uint8_t *will_payload;
    size_t will_payload_len;
    uint8_t will_qos;
    bool will_retain;
    uint8_t protocol;         /* MQTT protocol level */
    uint32_t connect_timeout_ms;
    bool reconnect;
    uint32_t reconnect_min_ms;
    uint32_t reconnect_max_ms;
    uint32_t max_inflight;
    size_t max_queued;
    size_t max_queued_bytes;
    uint32_t max_packet_size; /* incoming, including the fixed header */
    bool port_is_default;     /* set_server got 0: 1883, or 8883 with TLS */
    bool tls;
    bool tls_insecure;        /* no verification of the server certificate */
    char *tls_cafile;         /* NULL = the system's default CA store */
    char *tls_certfile;       /* client certificate, NULL = none */
    char *tls_keyfile;
    char *tls_server_name;    /* NULL = host */
    char *ws_path;            /* MQTT over WebSocket to this path; NULL = plain MQTT */
    /* MQTT 5.0 property blocks (wire format, owned; NULL/0 = none), set in
     * options5.c. */
    uint8_t *connect_props;
    size_t connect_props_len;
    uint8_t *will_props;
    size_t will_props_len;
};

/* Upper bound of max_inflight: packet identifiers left over serve
 * SUBSCRIBE and UNSUBSCRIBE. */
#define OPTIONS_MAX_INFLIGHT 65000u

#define OPTIONS_DEFAULT_PORT 1883
#define OPTIONS_DEFAULT_TLS_PORT 8883

/* A deep copy of `src` into `dst`; PETREL_OK or PETREL_ENOMEM (dst is then
 * left empty and safe to options_clear). */
int options_copy(struct petrel_options *dst, const struct petrel_options *src);
/* Frees what `o` owns (not `o` itself) and zeroes it. */
void options_clear(struct petrel_options *o);
/* Fills `o` with the defaults documented in petrel.h (allocates host and
 * client id).  PETREL_OK or PETREL_ENOMEM. */
int options_init(struct petrel_options *o);
/* options5.c: deep copy and release of the MQTT 5.0 fields, called by
 * options_copy and options_clear. */
int options5_copy(struct petrel_options *dst, const struct petrel_options *src);
void options5_clear(struct petrel_options *o);

#endif
