/*
 * mqtt_in.h: the MQTT-over-TLS subscriber for DER sites and DERMS that
 * publish telemetry (libmosquitto), handing samples to the ingest service
 * over the bus (telemetry.batch, DEALER to ingest's ROUTER, resent until
 * acked; engine/bus.h, engine/telemetry_frame.h).
 *
 * Mapping: each configured topic (exact, no wildcards) maps to one signal
 * id; it is subscribed with QoS 1. Payload: a JSON object with a number
 * under value_field ("value"), optionally a time under time_field ("ts":
 * ISO 8601 string or integer UTC ms; receive time if absent) and a quality
 * under quality_field ("quality": integer 0..65535, default 0); or a bare
 * number (receive time, quality 0). Other payloads are counted and logged
 * (rate-limited) and dropped.
 *
 * Durability: libmosquitto sends the PUBACK of a QoS 1 message before the
 * application sees it, so a message is journalled (spool.h, fdatasync)
 * as soon as on_message runs, before it is handed on; journal entries are
 * deleted only when ingest acks the batch that carried them, and are
 * re-sent after a restart. The window that remains: between libmosquitto's
 * PUBACK and the journal write (microseconds, within one on_message call)
 * a crash loses the message and the broker will not resend it.
 *
 * Batches: one in flight at a time, up to max_batch samples, seq = journal
 * sequence number of its first sample; resent with the resend flag after
 * resend_after_ms without an ack.
 */
#ifndef GATEWAY_MQTT_IN_H
#define GATEWAY_MQTT_IN_H

#include <stddef.h>
#include <stdint.h>

#include "engine/bus.h"
#include "engine/error.h"
#include "gateway/mqtt_out.h"

typedef struct gateway_mqtt_in_map {
    const char *topic;
    uint32_t signal_id;
} gateway_mqtt_in_map;

typedef struct gateway_mqtt_in_config {
    gateway_mqtt_connection connection;
    const gateway_mqtt_in_map *maps;
    size_t n_maps;
    const char *value_field;   /* "value" if NULL */
    const char *time_field;    /* "ts" if NULL */
    const char *quality_field; /* "quality" if NULL */
    const char *journal_dir;   /* required */
    const char *ingest_endpoint; /* e.g. ">tcp://127.0.0.1:5601" */
    uint32_t sender_id;
    int64_t resend_after_ms;   /* 2000 if 0 */
    size_t max_batch;          /* 500 if 0 */
} gateway_mqtt_in_config;

typedef struct gateway_mqtt_in gateway_mqtt_in;

/*
 * New subscriber on bus (borrowed; the DEALER socket is made here).
 * ANM_ECONFIG (detail names the setting), ANM_EIO, ANM_ENET, ANM_ENOMEM.
 */
int gateway_mqtt_in_new(const gateway_mqtt_in_config *config, anm_bus *bus,
                        gateway_mqtt_in **out, anm_error_detail *detail);

void gateway_mqtt_in_destroy(gateway_mqtt_in **in);

/*
 * Drives MQTT and the bus for about timeout_ms: connects (with back-off),
 * receives and journals messages, sends and resends batches, takes acks.
 * Returns as gateway_mqtt_out_run.
 */
int gateway_mqtt_in_run(gateway_mqtt_in *in, int timeout_ms);

gateway_mqtt_state gateway_mqtt_in_state(const gateway_mqtt_in *in);
const char *gateway_mqtt_in_last_error(const gateway_mqtt_in *in);

typedef struct gateway_mqtt_in_stats {
    uint64_t received;   /* messages journalled */
    uint64_t dropped;    /* unmapped topic or bad payload */
    uint64_t acked;      /* samples acked by ingest */
    uint64_t rejected;   /* samples in batches ingest rejected (dropped, logged) */
    size_t journalled;   /* in the journal, not yet acked */
} gateway_mqtt_in_stats;

void gateway_mqtt_in_get_stats(const gateway_mqtt_in *in, gateway_mqtt_in_stats *out);

#endif
