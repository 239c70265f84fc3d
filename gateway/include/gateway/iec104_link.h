/*
 * iec104_link.h: the IEC 60870-5-104 link layer of one TCP connection as a
 * pure state machine: no sockets, no clock reads. The caller feeds received
 * bytes, takes bytes to send, submits ASDUs, passes the engine time in
 * milliseconds to every call and drains events.
 *
 *   link = gateway_iec104_link_new(&config, now)     both roles start STOPPED
 *   client: gateway_iec104_link_start(link, now)     sends STARTDT act
 *   loop:
 *     feed(link, bytes, n, now, &used)   (repeat until all used, draining
 *                                          events in between)
 *     while (next_event(link, &ev)) ...  ASDU / STARTED / STOPPED / ACKED / CLOSED
 *     out = output(link, &size); write(); output_consume(link, written)
 *     deadline = tick(link, now)          sleep until deadline or input
 *   gateway_iec104_link_destroy(&link)
 *
 * Flow control: at most k I-frames are unacknowledged; further ASDUs wait
 * in a queue bounded by bytes (submit returns ANM_EFULL when full: the
 * caller keeps the ASDU; nothing is ever dropped). Received I-frames are
 * acknowledged after w, on t2 expiry, or piggy-backed on an I-frame.
 * Timers: t1 (no ack of a sent I-frame or no con to a sent U act -> close),
 * t2 (ack delay), t3 (idle -> TESTFR act).
 *
 * Protocol violations (bad frame, N(S) out of order, N(R) acknowledging
 * frames never sent, I-frame while data transfer is stopped, t1 expiry)
 * put the link in CLOSED with a reason; the caller closes the socket.
 *
 * Not thread-safe: one link is driven by one thread.
 */
#ifndef GATEWAY_IEC104_LINK_H
#define GATEWAY_IEC104_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/iec104.h"

typedef enum gateway_iec104_role {
    GATEWAY_IEC104_CONTROLLING = 0, /* client: sends STARTDT act, commands */
    GATEWAY_IEC104_CONTROLLED = 1   /* server (outstation): answers STARTDT act */
} gateway_iec104_role;

typedef struct gateway_iec104_link_config {
    gateway_iec104_role role;
    int k;                   /* max unacknowledged sent I-frames, 1..32767, default 12 */
    int w;                   /* ack after w received I-frames, 1..32767 (w <= k advised), default 8 */
    int t1_s;                /* 1..255, default 15 */
    int t2_s;                /* 1..255, < t1, default 10 */
    int t3_s;                /* 1..255, default 20 */
    size_t max_queue_bytes;  /* ASDU bytes waiting (not yet sent); default 16 MiB */
} gateway_iec104_link_config;

/* Fills the defaults above for role. */
void gateway_iec104_link_config_default(gateway_iec104_link_config *config,
                                        gateway_iec104_role role);

/* ANM_OK or ANM_ECONFIG with detail naming the field ("k", "t2_s", ...). */
int gateway_iec104_link_config_check(const gateway_iec104_link_config *config,
                                     anm_error_detail *detail);

typedef enum gateway_iec104_link_state {
    GATEWAY_IEC104_LINK_STOPPED = 0,       /* no I-frames either way */
    GATEWAY_IEC104_LINK_START_PENDING = 1, /* client: STARTDT act sent, waiting for con */
    GATEWAY_IEC104_LINK_STARTED = 2,       /* data transfer */
    GATEWAY_IEC104_LINK_STOP_PENDING = 3,  /* STOPDT act sent (client) or received with
                                              I-frames still unacknowledged (server) */
    GATEWAY_IEC104_LINK_CLOSED = 4         /* the connection must close */
} gateway_iec104_link_state;

typedef enum gateway_iec104_event_kind {
    GATEWAY_IEC104_EVENT_ASDU = 1,    /* an I-frame arrived: asdu[0..asdu_size) */
    GATEWAY_IEC104_EVENT_STARTED = 2, /* data transfer started */
    GATEWAY_IEC104_EVENT_STOPPED = 3, /* data transfer stopped */
    GATEWAY_IEC104_EVENT_ACKED = 4,   /* `acked` sent ASDUs were acknowledged */
    GATEWAY_IEC104_EVENT_CLOSED = 5   /* the connection must close: reason, error */
} gateway_iec104_event_kind;

typedef struct gateway_iec104_event {
    gateway_iec104_event_kind kind;
    uint8_t asdu[GATEWAY_IEC104_MAX_ASDU];
    size_t asdu_size;
    size_t acked;
    int error;        /* CLOSED: ANM_EPROTO (peer broke the protocol) or ANM_ETIMEOUT (t1) */
    char reason[256]; /* CLOSED: log-style reason, e.g. "bad n(r) 5: ..." */
} gateway_iec104_event;

typedef struct gateway_iec104_link gateway_iec104_link;

/* New link (STOPPED, sequence numbers 0). ANM_ECONFIG, ANM_ENOMEM. */
int gateway_iec104_link_new(const gateway_iec104_link_config *config, int64_t now_ms,
                            gateway_iec104_link **out, anm_error_detail *detail);
void gateway_iec104_link_destroy(gateway_iec104_link **link);

gateway_iec104_link_state gateway_iec104_link_get_state(const gateway_iec104_link *link);
const char *gateway_iec104_link_state_name(gateway_iec104_link_state state);

/*
 * Processes received bytes. Stops early (with *consumed < size) when 64
 * events are waiting, so memory stays bounded: drain events and feed the
 * rest. Returns ANM_OK (also when the link has just closed: see the CLOSED
 * event) or ANM_ESTATE if it was already closed.
 */
int gateway_iec104_link_feed(gateway_iec104_link *link, const uint8_t *data, size_t size,
                             int64_t now_ms, size_t *consumed);

/* Takes the oldest event into *event: 1 if there was one, 0 if none. */
int gateway_iec104_link_next_event(gateway_iec104_link *link, gateway_iec104_event *event);

/*
 * Bytes waiting to be written to the socket (borrowed, valid until the
 * next call on link); *size 0 when there is nothing. After writing n of
 * them call output_consume(n).
 */
const uint8_t *gateway_iec104_link_output(const gateway_iec104_link *link, size_t *size);
void gateway_iec104_link_output_consume(gateway_iec104_link *link, size_t n);

/*
 * Queues an ASDU (1..249 octets, copied) to send as an I-frame; it goes out
 * at once if data transfer is started and the k window allows.
 * ANM_EFULL if the queue's byte bound is reached (not queued), ANM_ESTATE
 * if the link is closed, ANM_EINVAL for a bad size.
 */
int gateway_iec104_link_submit(gateway_iec104_link *link, const uint8_t *asdu, size_t size,
                               int64_t now_ms);

/* Controlling station only: STARTDT act / STOPDT act. ANM_ESTATE otherwise. */
int gateway_iec104_link_start(gateway_iec104_link *link, int64_t now_ms);
int gateway_iec104_link_stop(gateway_iec104_link *link, int64_t now_ms);

/*
 * Runs the timers: t1 expiry closes, t2 expiry sends an S-frame, t3 expiry
 * sends TESTFR act. Returns the next deadline in engine ms (INT64_MAX when
 * no timer runs, e.g. after close).
 */
int64_t gateway_iec104_link_tick(gateway_iec104_link *link, int64_t now_ms);

/* The deadline tick would return, without running anything. */
int64_t gateway_iec104_link_next_deadline(const gateway_iec104_link *link);

/*
 * ASDUs submitted and not yet acknowledged, in submission order: first the
 * ones sent and unacknowledged, then the ones still queued. A redundancy
 * group resubmits these on the connection that takes over. Index 0 is the
 * oldest; pending_get returns a borrowed pointer (valid until the next call
 * that changes link) or NULL past the end.
 */
size_t gateway_iec104_link_pending_count(const gateway_iec104_link *link);
size_t gateway_iec104_link_unacked_count(const gateway_iec104_link *link);
const uint8_t *gateway_iec104_link_pending_get(const gateway_iec104_link *link, size_t index,
                                               size_t *size);

/*
 * Forgets every pending ASDU once the caller has moved them elsewhere
 * (redundancy switchover). Only when nothing is unacknowledged or the link
 * is closed (ANM_ESTATE otherwise), so sequence accounting stays exact.
 */
int gateway_iec104_link_discard_pending(gateway_iec104_link *link);

/* Sequence state, for tests and status: V(S), V(R), V(A) (oldest unacked). */
uint16_t gateway_iec104_link_send_sequence(const gateway_iec104_link *link);
uint16_t gateway_iec104_link_receive_sequence(const gateway_iec104_link *link);
uint16_t gateway_iec104_link_ack_sequence(const gateway_iec104_link *link);

/* TESTFR con frames received on this link so far (answers to our t3 TESTFR act). */
uint64_t gateway_iec104_link_testfr_confirmed(const gateway_iec104_link *link);

/*
 * Tests only: start the sequence numbers at v (V(S) = V(A) = V(R) = v),
 * to exercise the wrap at 32768 without 32768 frames. Only on a new link
 * with nothing sent or received; ANM_ESTATE otherwise.
 */
int gateway_iec104_link_set_initial_sequence(gateway_iec104_link *link, uint16_t v);

#endif
