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
 * Redundancy groups (one started connection of several) are not here yet.
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
/* Connections closed so far for breaking the protocol or t1. */
size_t gateway_iec104_server_rejected_count(const gateway_iec104_server *server);

#endif
