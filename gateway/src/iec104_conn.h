/*
 * iec104_conn.h (private to the gateway module): one IEC 104 TCP
 * connection, a non-blocking socket plus its link state machine, shared by
 * the server and the client.
 */
#ifndef GATEWAY_IEC104_CONN_H
#define GATEWAY_IEC104_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/iec104_link.h"

#define GATEWAY__IEC104_INPUT 16384

typedef struct gateway__iec104_conn {
    int fd;
    gateway_iec104_link *link;
    char peer[80]; /* "address:port" for logs */
    uint8_t input[GATEWAY__IEC104_INPUT];
    size_t input_start;
    size_t input_end;
    int closed;           /* the socket must close */
    /* per submitted ASDU, in link order: earliest measurement time of its
       spontaneous values and their count (count 0: not a measurement);
       a ring owned by the server that submits (the client leaves it empty) */
    int64_t *stamp_ms;
    uint32_t *stamp_values;
    size_t stamp_head, stamp_count, stamp_cap;
    char close_reason[256];
} gateway__iec104_conn;

typedef void (*gateway__iec104_event_fn)(void *arg, gateway__iec104_conn *conn,
                                         const gateway_iec104_event *event, int64_t now_ms);

/* Sets fd non-blocking and close-on-exec, makes a link. Takes ownership of fd. */
int gateway__iec104_conn_open(gateway__iec104_conn *conn, int fd,
                              const gateway_iec104_link_config *config, int64_t now_ms);
void gateway__iec104_conn_close(gateway__iec104_conn *conn);

/*
 * Reads what the socket has (until EAGAIN), feeds the link and hands every
 * event to fn. Sets conn->closed with a reason on end of stream, a socket
 * error or a CLOSED event.
 */
void gateway__iec104_conn_on_readable(gateway__iec104_conn *conn, int64_t now_ms,
                                      gateway__iec104_event_fn fn, void *arg);

/* Drains pending events to fn (after a tick or a submit). */
void gateway__iec104_conn_drain(gateway__iec104_conn *conn, int64_t now_ms,
                                gateway__iec104_event_fn fn, void *arg);

/* Writes the link's output until done or EAGAIN; sets closed on error. */
void gateway__iec104_conn_flush(gateway__iec104_conn *conn);

/* 1 if the link has output waiting (poll for POLLOUT). */
int gateway__iec104_conn_wants_write(const gateway__iec104_conn *conn);

/* "host:port" of the peer of fd into buf. */
void gateway__iec104_peer_name(int fd, char *buf, size_t size);

#endif
