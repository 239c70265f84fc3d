/*
 * iec104_client.h: an IEC 60870-5-104 client (controlling station) over TCP
 * for field RTUs and ANM outstations: connects (t0), sends STARTDT act,
 * interrogates after each start, hands every decoded monitor ASDU to a
 * callback, and reconnects with exponential back-off after any failure.
 *
 *   client = gateway_iec104_client_new(&config, on_asdu, arg, now)
 *   loop (one thread): gateway_iec104_client_run_once(client, now, max_wait_ms)
 *   gateway_iec104_client_destroy(&client)
 *
 * Mapping IOAs to signals and handing them to ingest is the caller's job
 * (the callback). ASDUs of unknown types are logged and skipped; a
 * malformed ASDU or a protocol violation closes the connection, which is
 * then re-established after the back-off.
 *
 * Not thread-safe: one thread drives a client.
 */
#ifndef GATEWAY_IEC104_CLIENT_H
#define GATEWAY_IEC104_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/iec104.h"
#include "gateway/iec104_link.h"

typedef struct gateway_iec104_client_config {
    char host[256];          /* name or numeric address */
    int port;                /* default 2404 */
    uint16_t common_address; /* of the outstation, default 1 */
    gateway_iec104_link_config link; /* role is forced to controlling */
    gateway_iec104_time_config time;
    int t0_s;                /* connection establishment timeout, 1..255, default 30 */
    int reconnect_min_ms;    /* first back-off, default 1000 */
    int reconnect_max_ms;    /* back-off cap, default 30000 */
    int interrogate_on_start; /* send C_IC_NA_1 after each STARTDT con, default 1 */
} gateway_iec104_client_config;

/* A decoded ASDU from the outstation (borrowed for the call). */
typedef void (*gateway_iec104_client_asdu_fn)(void *arg, const gateway_iec104_asdu *asdu,
                                              int64_t now_ms);

typedef struct gateway_iec104_client gateway_iec104_client;

void gateway_iec104_client_config_default(gateway_iec104_client_config *config);

/* New client; the first connection attempt happens in run_once. ANM_ECONFIG, ANM_ENOMEM. */
int gateway_iec104_client_new(const gateway_iec104_client_config *config,
                              gateway_iec104_client_asdu_fn on_asdu, void *arg, int64_t now_ms,
                              gateway_iec104_client **out, anm_error_detail *detail);
void gateway_iec104_client_destroy(gateway_iec104_client **client);

/*
 * One iteration: connects when due, waits up to max_wait_ms real ms for
 * the socket, reads, runs the link timers at now_ms, writes. ANM_OK, or
 * ANM_ENET if poll itself failed (connection failures are not errors: they
 * schedule a reconnect).
 */
int gateway_iec104_client_run_once(gateway_iec104_client *client, int64_t now_ms,
                                   int max_wait_ms);

/* 1 while data transfer is started on a connection. */
int gateway_iec104_client_is_started(const gateway_iec104_client *client);

/* Sends C_IC_NA_1 act (QOI 20) / C_CS_NA_1 act with utc_ms. ANM_ESTATE if not started. */
int gateway_iec104_client_interrogate(gateway_iec104_client *client, int64_t now_ms);
int gateway_iec104_client_clock_sync(gateway_iec104_client *client, int64_t utc_ms,
                                     int64_t now_ms);

/*
 * Sends STOPDT act on the current connection (the outstation stops sending,
 * acknowledges what is outstanding and answers STOPDT con). The client
 * does not restart data transfer on that connection; a new connection
 * (after a failure) starts again. ANM_ESTATE if not started.
 */
int gateway_iec104_client_stop(gateway_iec104_client *client, int64_t now_ms);

/* Link state of the current connection, GATEWAY_IEC104_LINK_CLOSED if none. */
gateway_iec104_link_state gateway_iec104_client_link_state(const gateway_iec104_client *client);

/* TESTFR con frames received on the current connection (0 if none). */
uint64_t gateway_iec104_client_testfr_confirmed(const gateway_iec104_client *client);

/* Successful connections so far, and the last failure ("" if none). */
size_t gateway_iec104_client_connect_count(const gateway_iec104_client *client);
const char *gateway_iec104_client_last_error(const gateway_iec104_client *client);

#endif
