/*
 * bus.h: the one ZeroMQ layer of anm (libzmq C API underneath), used by every
 * service: sockets made from config endpoint strings, multipart send and
 * receive, and the message envelope with its per-kind versioned schemas.
 *
 * Endpoints (CZMQ style): a comma-separated list of ZeroMQ endpoints, each
 * optionally prefixed by '@' (bind) or '>' (connect):
 *     "@tcp://127.0.0.1:5601"           bind
 *     ">tcp://127.0.0.1:5601"           connect
 *     "ipc:///run/anm/ingest.sock"      the type's default (below)
 *     "@tcp://127.0.0.1:*,>ipc:///x"    several
 * Without a prefix PUB, ROUTER and PULL bind; SUB, DEALER and PUSH connect.
 *
 * Envelope (see docs/protocol.md): a message is multipart
 *     [route...] [topic] [body]
 * where [route] is the identity frame a ROUTER adds or needs (absent on
 * PUB/SUB and on the DEALER side), [topic] is the message kind, optionally
 * followed by '/' and a qualifier that subscribers filter on
 * ("signal.latest/zone-a"), and [body] is a JSON object carrying "v" (the
 * schema version, an integer) and "kind" (equal to the topic's kind), or,
 * for telemetry batches only, the binary frame of telemetry_frame.h.
 *
 * Errors from libzmq are converted here: the functions return ANM_OK or a
 * negative anm_err, with the zmq_strerror text in the anm_error_detail when
 * the caller passes one (then the caller logs it) and otherwise in the log
 * (component "bus").
 *
 * Threads: like ZeroMQ sockets, an anm_socket belongs to one thread at a
 * time; the anm_bus context is thread-safe.
 */
#ifndef ANM_ENGINE_BUS_H
#define ANM_ENGINE_BUS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

typedef struct anm_bus anm_bus;
typedef struct anm_socket anm_socket;
typedef struct anm_msg anm_msg;

typedef enum anm_socket_type {
    ANM_SOCKET_PUB,
    ANM_SOCKET_SUB,
    ANM_SOCKET_ROUTER,
    ANM_SOCKET_DEALER,
    ANM_SOCKET_PUSH,
    ANM_SOCKET_PULL
} anm_socket_type;

/* "pub", "sub", "router", "dealer", "push", "pull". */
const char *anm_socket_type_name(anm_socket_type type);

/*
 * Socket options. Zero-initialise and set what matters; anm_socket_options_default
 * fills the defaults given here.
 *   linger_ms          how long close waits for unsent messages (default 0;
 *                      -1 waits forever, which can hang a shutdown)
 *   send_hwm, recv_hwm high-water marks in messages (0: libzmq's 1000)
 *   max_message_bytes  ZMQ_MAXMSGSIZE: a peer sending a larger frame is
 *                      disconnected by libzmq (0: unlimited)
 *   identity           ROUTER routing id of a DEALER (NULL: libzmq picks one)
 *   send_timeout_ms    a blocking send gives up after this (default -1: never)
 *   router_mandatory   ROUTER: a send to an unknown peer fails with ANM_ENOTFOUND
 *                      instead of being dropped silently (default 1)
 */
typedef struct anm_socket_options {
    int linger_ms;
    int send_hwm;
    int recv_hwm;
    int64_t max_message_bytes;
    const char *identity;
    int send_timeout_ms;
    int router_mandatory;
} anm_socket_options;

void anm_socket_options_default(anm_socket_options *options);

/* New ZeroMQ context. ANM_OK, ANM_ENOMEM or ANM_ENET. */
int anm_bus_new(anm_bus **out);

/*
 * Destroys the context. Every socket must have been destroyed before (libzmq
 * blocks otherwise). Idempotent; nulls *bus.
 */
void anm_bus_destroy(anm_bus **bus);

/*
 * New socket of type on bus, bound and/or connected to endpoints (see the top
 * of this file; NULL or "" for none, then use anm_socket_bind/connect).
 * options may be NULL (defaults). On failure *out stays NULL, detail (may be
 * NULL) names the endpoint and the libzmq reason, and the result is
 * ANM_ECONFIG (bad endpoint syntax or option), ANM_ENET (bind/connect
 * refused, e.g. address in use) or ANM_ENOMEM.
 */
int anm_socket_new(anm_bus *bus, anm_socket_type type, const char *endpoints,
                   const anm_socket_options *options, anm_socket **out,
                   anm_error_detail *detail);

/* Closes the socket (lingering per its options). Idempotent; nulls *socket. */
void anm_socket_destroy(anm_socket **socket);

/* Binds or connects one endpoint without a prefix. ANM_OK, ANM_ECONFIG or ANM_ENET. */
int anm_socket_bind(anm_socket *socket, const char *endpoint, anm_error_detail *detail);
int anm_socket_connect(anm_socket *socket, const char *endpoint, anm_error_detail *detail);

/*
 * The endpoint last bound, with the real port when bound to "*"
 * ("tcp://127.0.0.1:41234"). ANM_OK or ANM_ERANGE if buf is too small.
 */
int anm_socket_last_endpoint(anm_socket *socket, char *buf, size_t size);

/* SUB: adds or removes a topic prefix filter ("" receives everything). */
int anm_socket_subscribe(anm_socket *socket, const char *prefix);
int anm_socket_unsubscribe(anm_socket *socket, const char *prefix);

anm_socket_type anm_socket_get_type(const anm_socket *socket);

/* The underlying libzmq socket (borrowed), for zmq_poll and options not wrapped here. */
void *anm_socket_handle(anm_socket *socket);

/* One part of a message to send (borrowed bytes). */
typedef struct anm_frame {
    const void *data;
    size_t size;
} anm_frame;

/* Flags for send and receive. */
enum { ANM_BUS_DONTWAIT = 1 };

/*
 * Sends n_frames parts as one multipart message. Returns ANM_OK,
 * ANM_EAGAIN (DONTWAIT and the high-water mark is reached, or the send
 * timeout passed), ANM_ENOTFOUND (ROUTER with router_mandatory: no such
 * peer), ANM_ESTATE (context terminated) or ANM_ENET.
 */
int anm_socket_send(anm_socket *socket, const anm_frame *frames, size_t n_frames, int flags);

/*
 * Receives one multipart message into *out (new, free with anm_msg_destroy).
 * Returns ANM_OK, ANM_EAGAIN (DONTWAIT and nothing waiting), ANM_EPROTO
 * (more than ANM_MSG_MAX_PARTS parts: the message is read to its end and
 * dropped), ANM_ESTATE or ANM_ENET.
 */
enum { ANM_MSG_MAX_PARTS = 8 };
int anm_socket_recv(anm_socket *socket, anm_msg **out, int flags);

void anm_msg_destroy(anm_msg **msg);
size_t anm_msg_parts(const anm_msg *msg);
/* Part i (borrowed until the message is destroyed); NULL and *size 0 if i is out of range. */
const void *anm_msg_part(const anm_msg *msg, size_t i, size_t *size);

/* ---- envelope and schemas ----------------------------------------------- */

/* Why a message was refused. anm_bus_reason_code gives the wire code. */
typedef enum anm_bus_reason {
    ANM_BUS_OK = 0,
    ANM_BUS_BAD_ENVELOPE,   /* "bad_envelope": wrong part count, bad topic */
    ANM_BUS_OVERSIZED,      /* "oversized": body larger than the kind allows */
    ANM_BUS_BAD_JSON,       /* "bad_json": not JSON, or not an object */
    ANM_BUS_UNKNOWN_KIND,   /* "unknown_kind": no schema for the kind */
    ANM_BUS_KIND_MISMATCH,  /* "kind_mismatch": body "kind" differs from the topic */
    ANM_BUS_WRONG_VERSION,  /* "wrong_version": "v" missing, not an integer, or unsupported */
    ANM_BUS_MISSING_FIELD,  /* "missing_field" */
    ANM_BUS_WRONG_TYPE,     /* "wrong_type": a field of the wrong JSON type */
    ANM_BUS_OUT_OF_RANGE,   /* "out_of_range": an integer outside its bounds, a non-finite number */
    ANM_BUS_UNKNOWN_FIELD   /* "unknown_field": a field the schema does not define */
} anm_bus_reason;

const char *anm_bus_reason_code(anm_bus_reason reason);

typedef struct anm_bus_reject {
    anm_bus_reason reason;
    char text[256]; /* e.g. "field \"seq\": expected integer, got string" */
} anm_bus_reject;

typedef enum anm_field_type {
    ANM_FIELD_STRING,
    ANM_FIELD_INTEGER, /* a JSON integer within [min, max] (both 0: any) */
    ANM_FIELD_NUMBER,  /* integer or real, finite */
    ANM_FIELD_BOOLEAN,
    ANM_FIELD_OBJECT,
    ANM_FIELD_ARRAY,
    ANM_FIELD_TIME     /* an ISO 8601 UTC string, see anm_time_parse_iso8601 */
} anm_field_type;

typedef struct anm_field_spec {
    const char *name;
    anm_field_type type;
    int required;
    json_int_t min, max;
} anm_field_spec;

/*
 * The schema of one message kind at one version. "v" and "kind" are
 * implicit and always required. fields ends with an entry whose name is
 * NULL. Unknown fields are rejected unless allow_extra is set (reports,
 * whose readers take what they know).
 */
typedef struct anm_bus_schema {
    const char *kind;
    int version;
    size_t max_bytes;
    int allow_extra;
    const anm_field_spec *fields;
} anm_bus_schema;

/* The built-in kinds (read-only table, documented in docs/protocol.md). */
const anm_bus_schema *anm_bus_schemas(size_t *count);

/* The schema for kind in table (NULL: the built-ins), or NULL. */
const anm_bus_schema *anm_bus_schema_find(const anm_bus_schema *table, size_t count,
                                          const char *kind, size_t kind_len);

/*
 * The kind part of a topic: its length up to the first '/' (topic need not
 * be NUL-terminated). ANM_OK, or ANM_EPROTO if the topic is empty, longer
 * than 128 bytes or holds a byte outside [a-z0-9._-] before the '/'.
 */
int anm_bus_topic_kind(const void *topic, size_t topic_size, size_t *kind_len);

/*
 * Checks a JSON object against schema: implicit "v" and "kind", then every
 * field. ANM_OK or ANM_EPROTO with why filled (why may be NULL).
 */
int anm_bus_validate(const anm_bus_schema *schema, const json_t *body, anm_bus_reject *why);

/*
 * Parses and checks a [topic][body] pair: topic well formed, a schema for
 * its kind in table (NULL: built-ins), body at most the schema's max_bytes,
 * JSON, valid. On ANM_OK *out is a new reference and *schema_out (may be
 * NULL) the schema used; on ANM_EPROTO (or ANM_ENOMEM) *out is NULL and why
 * says what is wrong.
 */
int anm_bus_parse_json(const anm_bus_schema *table, size_t table_count, const void *topic,
                       size_t topic_size, const void *body, size_t body_size, json_t **out,
                       const anm_bus_schema **schema_out, anm_bus_reject *why);

/*
 * Sends [route][topic][body] with body serialised compactly (route may be
 * NULL for no route frame; body borrowed). Use this for control messages;
 * it does not validate (tests send bad bodies with it on purpose).
 */
int anm_bus_send_json(anm_socket *socket, const anm_frame *route, const char *topic,
                      const json_t *body, int flags);

/*
 * One request and its answer, for command-line clients such as `--status`:
 * connects a DEALER to endpoint (a leading '@' or '>' is ignored), sends
 * [topic][request] (request borrowed), waits up to timeout_ms for the first
 * reply and decodes its last part as JSON into *reply (new). Returns ANM_OK,
 * ANM_ETIMEOUT, ANM_EPROTO (the reply is not JSON) or a socket error.
 */
int anm_bus_request_json(const char *endpoint, const char *topic, const json_t *request,
                         int timeout_ms, json_t **reply);

/*
 * Receives a message and splits it as [route][topic][body] (route expected
 * iff the socket is a ROUTER), then parses and checks the body as
 * anm_bus_parse_json does. On ANM_OK or ANM_EPROTO *msg_out holds the raw
 * message (new; the caller destroys it) so a ROUTER can reply to its route
 * (part 0) even to reject it. Other errors as anm_socket_recv.
 */
int anm_bus_recv_json(anm_socket *socket, const anm_bus_schema *table, size_t table_count,
                      int flags, anm_msg **msg_out, json_t **out, anm_bus_reject *why);

#endif
