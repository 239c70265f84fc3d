/*
 * iec104_server.h: an IEC 60870-5-104 outstation (controlled station) over
 * TCP for NESO's client: several clients at once, each with its own link
 * state machine (iec104_link.h); one common address; a table of points.
 *
 *   server = gateway_iec104_server_new(&config, now)   listens at once
 *   gateway_iec104_server_define_point(server, ioa, kind)   for each signal
 *   loop (one thread):
 *     gateway_iec104_server_update(server, ioa, value, quality, t, spontaneous, now)
 *     gateway_iec104_server_run_once(server, now, max_wait_ms)
 *   gateway_iec104_server_destroy(&server)
 *
 * Behaviour:
 *   - general interrogation (C_IC_NA_1 act, QOI 20): actcon (COT 7), every
 *     point without time tag (M_ME_NC_1 / M_SP_NA_1, COT 20, packed), actterm
 *     (COT 10); a QOI other than 20 gets a negative actcon
 *   - clock sync (C_CS_NA_1 act): actcon COT 7 echoing the time (the engine
 *     clock is not set from it; the offset is logged)
 *   - test command (C_TS_TA_1 act): actcon COT 7
 *   - negative confirms (P/N = 1), echoing the request: unknown type 44
 *     (including monitor types sent in control direction), unknown cause 45,
 *     unknown common address 46 (broadcast 0xFFFF is accepted), unknown
 *     IOA 47 (commands addressed to an IOA other than 0)
 *   - spontaneous updates: time-tagged (M_ME_TF_1 / M_SP_TB_1), COT 3, to
 *     every connection in data transfer; cyclic: M_ME_NC_1, COT 1
 *   - a client that breaks the protocol (bad frame, bad N(R), out-of-order
 *     N(S), malformed ASDU, t1) is logged and closed; the others carry on
 *   - a connection that is not started receives no spontaneous values (its
 *     client interrogates after STARTDT); one whose queue is full
 *     (max_queue_bytes) is closed rather than silently losing values
 *   - redundancy_group = 1 (dual VPN): the connections form one group in
 *     which only the started one (the active one) receives spontaneous and
 *     cyclic values. While none is active, values wait in a group queue.
 *     When the active connection fails or stops and another is started,
 *     everything not acknowledged on the old one (its unacknowledged
 *     I-frames, then its queue), then the group queue, is sent on the new
 *     one in order: nothing is lost, and only frames the old peer may have
 *     received without acknowledging can arrive twice. A STARTDT act on a
 *     second connection while the active one is still started closes the
 *     old one ("superseded ...") and takes over.
 *
 * Not thread-safe: one thread drives a server.
 */
#ifndef GATEWAY_IEC104_SERVER_H
#define GATEWAY_IEC104_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/iec104.h"
#include "gateway/iec104_link.h"

typedef struct gateway_iec104_server_config {
    char bind_address[64];   /* numeric IPv4/IPv6, default "127.0.0.1" */
    int port;                /* default 2404; 0 picks an ephemeral port */
    uint16_t common_address; /* default 1 */
    int max_clients;         /* default 8; more are accepted and closed at once */
    gateway_iec104_link_config link; /* role is forced to controlled */
    gateway_iec104_time_config time;
    int redundancy_group;    /* 1: all connections form one redundancy group (default 0) */
} gateway_iec104_server_config;

typedef enum gateway_iec104_point_kind {
    GATEWAY_IEC104_POINT_MEASURED = 0, /* short float: M_ME_NC_1 / M_ME_TF_1 */
    GATEWAY_IEC104_POINT_SINGLE = 1    /* single point: M_SP_NA_1 / M_SP_TB_1 */
} gateway_iec104_point_kind;

typedef struct gateway_iec104_server gateway_iec104_server;

void gateway_iec104_server_config_default(gateway_iec104_server_config *config);

/*
 * New server listening on config's address and port. ANM_ECONFIG (bad
 * config, detail names the field), ANM_ENET (bind or listen failed, detail
 * says why), ANM_ENOMEM.
 */
int gateway_iec104_server_new(const gateway_iec104_server_config *config, int64_t now_ms,
                              gateway_iec104_server **out, anm_error_detail *detail);
void gateway_iec104_server_destroy(gateway_iec104_server **server);

/* The port actually bound (useful with port 0). */
int gateway_iec104_server_port(const gateway_iec104_server *server);

/* Declares a point (IOA 1..0xFFFFFF, quality IV until the first update). ANM_EDUP, ANM_EINVAL. */
int gateway_iec104_server_define_point(gateway_iec104_server *server, uint32_t ioa,
                                       gateway_iec104_point_kind kind);

/*
 * New value of a point: value (single points: non-zero = on), quality
 * bits (GATEWAY_IEC104_QDS_*), measurement time utc_ms. With spontaneous,
 * also sent at once with its time tag (COT 3). ANM_ENOTFOUND for an
 * undefined IOA, ANM_ERANGE if utc_ms cannot be a CP56Time2a.
 */
int gateway_iec104_server_update(gateway_iec104_server *server, uint32_t ioa, double value,
                                 uint8_t quality, int64_t utc_ms, int spontaneous,
                                 int64_t now_ms);

/* Sends every measured point without time tag, COT 1, to connections in data transfer. */
int gateway_iec104_server_send_cyclic(gateway_iec104_server *server, int64_t now_ms);

/*
 * One iteration: waits up to max_wait_ms real ms (0: not at all) for
 * sockets, accepts, reads, answers, runs the link timers at now_ms, writes.
 * Returns ANM_OK or ANM_ENET (poll failed).
 */
int gateway_iec104_server_run_once(gateway_iec104_server *server, int64_t now_ms,
                                   int max_wait_ms);

/* Earliest link timer deadline (engine ms), INT64_MAX if none. */
int64_t gateway_iec104_server_next_deadline(const gateway_iec104_server *server);

size_t gateway_iec104_server_client_count(const gateway_iec104_server *server);
size_t gateway_iec104_server_started_count(const gateway_iec104_server *server);
/* Redundancy group: ASDUs waiting for an active connection. */
size_t gateway_iec104_server_group_backlog(const gateway_iec104_server *server);

/* Connections closed so far for breaking the protocol or t1. */
size_t gateway_iec104_server_rejected_count(const gateway_iec104_server *server);

/* One value for gateway_iec104_server_update_many. */
typedef struct gateway_iec104_point_update {
    uint32_t ioa;
    double value;    /* single points: non-zero = on */
    uint8_t quality; /* GATEWAY_IEC104_QDS_* */
    int64_t utc_ms;  /* measurement time */
} gateway_iec104_point_update;

/*
 * Updates n points at once. With spontaneous, sends them time-tagged with
 * COT 3 (the T bit set when test: commissioning), packed in order into as
 * few ASDUs as the types allow (16 M_ME_TF_1 or 22 M_SP_TB_1 an ASDU; a
 * change of kind starts a new one). Each ASDU carries, for latency, the
 * earliest utc_ms of its values: the ack handler gets it when the client
 * acknowledges the ASDU. Stops at the first bad update: ANM_ENOTFOUND
 * (undefined IOA) or ANM_ERANGE (time), earlier ones applied and sent.
 */
int gateway_iec104_server_update_many(gateway_iec104_server *server,
                                      const gateway_iec104_point_update *updates, size_t n,
                                      int spontaneous, int test, int64_t now_ms);

/*
 * Hand-over notification: called when a client acknowledges an ASDU of
 * spontaneous values, with the earliest measurement time of its values,
 * how many values it held and the engine time of the acknowledgement.
 * (Values resent after a redundancy switchover are not reported.)
 */
typedef void (*gateway_iec104_server_ack_fn)(void *arg, int64_t measured_utc_ms, size_t values,
                                             int64_t now_ms);
void gateway_iec104_server_set_ack_handler(gateway_iec104_server *server,
                                           gateway_iec104_server_ack_fn fn, void *arg);

/* ASDUs queued or unacknowledged on every connection plus the group queue. */
size_t gateway_iec104_server_backlog(const gateway_iec104_server *server);

#endif
