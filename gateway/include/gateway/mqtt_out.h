/*
 * mqtt_out.h: the MQTT-over-TLS publisher to NESO's broker (libmosquitto),
 * and the connection settings shared with the subscriber (mqtt_in.h).
 *
 * Every sample is rendered through the topic and payload templates, appended
 * to a durable record log (spool_log.h, group commit: one fdatasync per
 * batch) and then published with QoS 1. A spooled message is dropped only
 * when its PUBACK arrives (on_publish with its mid) and the acknowledged
 * watermark is committed. While the broker is unreachable samples accumulate on disk; on
 * reconnection they are published oldest first, at most max_inflight
 * unacknowledged at a time, so the broker receives them in order. Each
 * connection uses a fresh libmosquitto client (clean session), so nothing
 * is re-sent behind our back: after a reconnection the unacknowledged
 * messages are sent again in order (at least once: a message whose PUBACK
 * was lost with the connection is delivered twice).
 *
 * Templates: placeholders in braces, replaced per sample:
 *   {unit} {quantity} {timestamp} (ISO 8601 UTC, ms) {utc_ms} {value}
 *   {quality} {test} (true/false) {signal_id} {topic} (the sample's own topic:
 *   the pro-forma point's mqtt_topic when the gateway service publishes)
 * In the payload the string placeholders are JSON-escaped (the template is
 * JSON). Defaults: topic "anm/{unit}/{quantity}", payload
 * GATEWAY_MQTT_DEFAULT_PAYLOAD.
 *
 * Threads: one thread calls publish and run; libmosquitto's callbacks run
 * inside run, on that thread.
 */
#ifndef GATEWAY_MQTT_OUT_H
#define GATEWAY_MQTT_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

#define GATEWAY_MQTT_DEFAULT_TOPIC "anm/{unit}/{quantity}"
#define GATEWAY_MQTT_DEFAULT_PAYLOAD                                                               \
    "{\"ts\":\"{timestamp}\",\"unit\":\"{unit}\",\"quantity\":\"{quantity}\",\"value\":{value},"   \
    "\"quality\":\"{quality}\",\"test\":{test}}"

/* Broker connection (both directions). */
typedef struct gateway_mqtt_connection {
    const char *host;
    int port;                  /* 8883 if 0 */
    const char *client_id;     /* NULL: libmosquitto picks a random one */
    const char *ca_file;       /* required: the broker's certificate is verified */
    const char *cert_file;     /* optional client certificate (with key_file) */
    const char *key_file;
    const char *username;      /* NULL: no username/password */
    const char *password_file; /* first line is the password; never logged */
    const char *tls_version;   /* minimum, "tlsv1.2" (default) or "tlsv1.3" */
    int keepalive_s;           /* 30 if 0 */
    int64_t reconnect_min_ms;  /* back-off after a failed attempt, doubling: 500 if 0 */
    int64_t reconnect_max_ms;  /* its ceiling: 30000 if 0 */
} gateway_mqtt_connection;

/* Connection state of a publisher or subscriber. */
typedef enum gateway_mqtt_state {
    GATEWAY_MQTT_DISCONNECTED = 0, /* waiting to (re)connect */
    GATEWAY_MQTT_CONNECTING,       /* TCP/TLS up, CONNACK awaited */
    GATEWAY_MQTT_CONNECTED,        /* CONNACK accepted */
    GATEWAY_MQTT_REFUSED           /* the broker refused (bad credentials...); retried with back-off */
} gateway_mqtt_state;

const char *gateway_mqtt_state_name(gateway_mqtt_state state);

typedef struct gateway_mqtt_out_config {
    gateway_mqtt_connection connection;
    const char *topic_template;   /* NULL: GATEWAY_MQTT_DEFAULT_TOPIC */
    const char *payload_template; /* NULL: GATEWAY_MQTT_DEFAULT_PAYLOAD */
    const char *spool_dir;        /* required */
    int max_inflight;             /* 100 if 0 */
} gateway_mqtt_out_config;

typedef struct gateway_mqtt_sample {
    const char *unit;     /* e.g. the BM unit id */
    const char *quantity; /* e.g. "active_power_mw" */
    uint32_t signal_id;
    int64_t utc_ms;
    double value;         /* finite */
    const char *quality;  /* NULL: "good"; out-of-limits values carry e.g. "out_of_range" */
    int test;             /* commissioning: test flag */
    const char *topic;    /* for {topic}: e.g. the pro-forma point's mqtt_topic; NULL: "" */
} gateway_mqtt_sample;

/*
 * Renders topic and payload of a sample (exposed for tests and the
 * commissioning report). ANM_OK, ANM_ERANGE (a buffer too small or a
 * non-finite value), ANM_EINVAL (unknown placeholder, a topic with '+', '#'
 * or a newline).
 */
int gateway_mqtt_render(const char *topic_template, const char *payload_template,
                        const gateway_mqtt_sample *sample, char *topic, size_t topic_size,
                        char *payload, size_t payload_size);

typedef struct gateway_mqtt_out gateway_mqtt_out;

/*
 * New publisher (not yet connected: run connects). Reads the password file
 * and opens the spool, whose contents from an earlier run become the
 * backlog. ANM_ECONFIG (detail names the setting), ANM_EIO, ANM_ENOMEM.
 */
int gateway_mqtt_out_new(const gateway_mqtt_out_config *config, gateway_mqtt_out **out,
                         anm_error_detail *detail);

/* Disconnects; the spooled backlog stays for the next run. Idempotent; nulls *out. */
void gateway_mqtt_out_destroy(gateway_mqtt_out **out);

/*
 * Renders and appends a sample to the spool log (spool_log.h): written with
 * one write(2) on return, so it survives kill -9. It becomes durable against
 * power loss and is published at the next run or flush, which syncs every
 * sample appended since the last one with a single fdatasync (group commit;
 * a publish forces one after 1000 unsynced samples). ANM_OK, ANM_EINVAL or
 * ANM_ERANGE (as gateway_mqtt_render), ANM_EIO.
 */
int gateway_mqtt_out_publish(gateway_mqtt_out *out, const gateway_mqtt_sample *sample);

/* Syncs the spool now and publishes what the in-flight window allows. ANM_OK or ANM_EIO. */
int gateway_mqtt_out_flush(gateway_mqtt_out *out);

/*
 * Drives the connection for up to timeout_ms: connects when due (with
 * back-off), processes network traffic and PUBACKs, publishes the backlog.
 * Returns ANM_OK, or the reason of the latest failure when not connected
 * (ANM_EAUTH refused credentials, ANM_ENET no connection or TLS failure),
 * with the text in gateway_mqtt_out_last_error.
 */
int gateway_mqtt_out_run(gateway_mqtt_out *out, int timeout_ms);

gateway_mqtt_state gateway_mqtt_out_state(const gateway_mqtt_out *out);

/* The last connection error, e.g. "connack refused: not authorised" ("" if none). */
const char *gateway_mqtt_out_last_error(const gateway_mqtt_out *out);

/* Messages spooled and not yet acknowledged by the broker. */
size_t gateway_mqtt_out_pending(const gateway_mqtt_out *out);

/* Messages acknowledged (PUBACK) since new. */
uint64_t gateway_mqtt_out_acked(const gateway_mqtt_out *out);

#endif
