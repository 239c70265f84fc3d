/*
 * gateway.h: the anm-gateway service: the pro-forma mapping, the export of
 * availability/PCF/state from constraint statements and of metered MW from
 * telemetry, the IEC 104 outstation for NESO, the IEC 104 field clients that
 * hand telemetry to ingest, a status endpoint and commissioning.
 *
 *   gateway_config_load(path, &cfg) -> gateway_service_new(&cfg, clock, &s)
 *   -> gateway_service_run(s) (until SIGINT/SIGTERM or gateway_service_stop)
 *   -> gateway_service_destroy(&s) -> gateway_config_free(&cfg)
 *
 * One thread drives a service (run or run_once); gateway_service_stop may be
 * called from any thread. Other routes (MQTT, Data Concentrator, Wider
 * Access) attach through the value and redeclaration hooks.
 */
#ifndef GATEWAY_GATEWAY_H
#define GATEWAY_GATEWAY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/clock.h"
#include "engine/config.h"
#include "engine/log.h"
#include "gateway/export.h"
#include "gateway/proforma.h"

/* ---- latency histogram ---------------------------------------------------- */

/* 0.1 ms buckets to 100 ms, 1 ms to 10 s, then one overflow bucket. */
#define GATEWAY_LATENCY_BUCKETS (1000 + 9900 + 1)
typedef struct gateway_latency {
    uint64_t counts[GATEWAY_LATENCY_BUCKETS];
    uint64_t total;
    double max_ms;
} gateway_latency;

void gateway_latency_reset(gateway_latency *h);
/* Adds n observations of ms (negative counts as 0). */
void gateway_latency_add(gateway_latency *h, double ms, uint64_t n);
/* Upper edge of the bucket of the q-quantile (0 < q <= 1) in ms; -1 when empty. */
double gateway_latency_quantile(const gateway_latency *h, double q);

/* ---- configuration ---------------------------------------------------------- */

typedef struct gateway_iec104_server_settings {
    bool enabled;
    char *bind_address;
    long port;
    long common_address;
    long max_clients;
    bool redundancy_group;
    long k, w, t1_s, t2_s, t3_s;
    long cyclic_period_s; /* 0: no cyclic transmission */
    long time_offset_minutes;
    bool summer_time_bit;
} gateway_iec104_server_settings;

typedef struct gateway_field_map_entry {
    long common_address; /* 0: the field route's */
    long ioa;
    long signal_id;
} gateway_field_map_entry;

typedef struct gateway_field_settings {
    char *name;
    char *host;
    long port;
    long common_address;
    char *ingest_endpoint; /* DEALER to ingest's ROUTER */
    long sender_id;
    long batch_max_samples;
    long batch_max_age_ms;
    long resend_ms;
    bool clock_sync;
    long reconnect_min_ms, reconnect_max_ms;
    long k, w, t1_s, t2_s, t3_s;
    anm_config_array map; /* gateway_field_map_entry */
} gateway_field_settings;

/* MQTT publisher to NESO's broker (section "mqtt"; mqtt_out.h). */
typedef struct gateway_mqtt_settings {
    bool enabled;
    char *host;
    long port;
    char *client_id;     /* "": libmosquitto picks one */
    char *ca_file;       /* required when enabled */
    char *cert_file;     /* optional client certificate (with key_file) */
    char *key_file;
    char *username;      /* "": none */
    char *password_file; /* first line; never logged */
    char *tls_version;   /* "tlsv1.2" or "tlsv1.3" */
    long keepalive_s;
    char *topic_template;   /* "": GATEWAY_MQTT_DEFAULT_TOPIC */
    char *payload_template; /* "": GATEWAY_MQTT_DEFAULT_PAYLOAD */
    char *spool_dir;        /* required when enabled */
    long max_inflight;
} gateway_mqtt_settings;

/* Wider Access API (section "wider_access"; jws.h, wa_client.h, wa_server.h). */
typedef struct gateway_wa_settings {
    bool enabled;             /* client: redeclarations to NESO */
    char *sender;             /* our "sender" in messages */
    char *signing_alg;        /* RS256, PS256, ES256 */
    char *signing_key_file;   /* our signing key (PEM) */
    char *signing_cert_file;  /* its certificate (kid = x5t#S256 unless signing_kid) */
    char *signing_kid;
    char *neso_cert_file;     /* NESO's signing certificate(s), trusted for verification */
    char *base_url;           /* https://host:port of NESO's endpoint */
    char *ca_file;            /* CA for NESO's TLS certificate */
    char *client_cert_file;   /* optional TLS client certificate */
    char *client_key_file;
    char *redeclaration_path; /* "": /wa/v1/redeclaration */
    long request_timeout_ms;
    long max_attempts;
    long retry_ms;            /* a failed send is retried after this long, in order */
    bool server_enabled;      /* endpoint for instructions and normalisation */
    char *bind_address;
    long port;                /* 0: ephemeral */
    char *tls_key_file;       /* the endpoint's TLS key and certificate chain */
    char *tls_cert_file;
    char *instruction_path;   /* "": /wa/v1/instruction */
    char *normalisation_path; /* "": /wa/v1/normalisation */
    char *publish_endpoint;   /* PUB for wa.instruction / wa.normalisation */
    char *spool_dir;          /* client: durable queue (spool_log.h); "": in memory only */
} gateway_wa_settings;

/*
 * Data Concentrator route (section "data_concentrator"; dc_csv.h,
 * dc_upload.h): redeclaration CSV files from the service's redeclaration
 * events and 1 Hz performance-monitoring files from the metered values,
 * spooled and uploaded with the uploader's pacing by a worker thread.
 */
typedef struct gateway_dc_settings {
    bool enabled;
    char *base_url;          /* https://host:port (required when enabled) */
    char *path;              /* "": /ihost/deviceapi/files */
    char *username;
    char *password_file;     /* first line, at least 56 characters; never logged */
    char *ca_file;           /* "": the system trust store */
    char *spool_dir;         /* required when enabled */
    char *unit;              /* "": each DER's unit from the pro-forma */
    long perfmon_interval_s; /* one 1 Hz file per interval per unit; 0: no perfmon files */
    bool perfmon_20hz;       /* also a 20 Hz file per interval per unit, a row per
                                telemetry arrival (needs perfmon_interval_s > 0) */
    long min_interval_ms;    /* between uploads (30000) */
    long retry_after_ms;     /* after a failure (60000) */
    long timeout_ms;         /* per upload (30000) */
} gateway_dc_settings;

typedef struct gateway_config {
    char *proforma_file; /* relative to the config file */
    char *clock;
    anm_log_level log_level;
    char *status_endpoint;       /* ROUTER for gateway.status.request */
    char *telemetry_endpoint;    /* SUB to ingest's signal.latest ("" none) */
    char *statement_endpoint;    /* SUB for constraint statements ("" none) */
    char *statement_topic;       /* topic prefix, default "constraint.statement" */
    char *statement_file;        /* read at start and when it changes ("" none) */
    int confidence;              /* gateway_confidence */
    double redeclaration_threshold_mw;
    char *redeclaration_endpoint; /* PUB for gateway.redeclaration ("" none) */
    long refresh_ms;             /* re-evaluate statement values (period boundaries) */
    gateway_iec104_server_settings iec104;
    anm_config_array field;      /* gateway_field_settings */
    gateway_mqtt_settings mqtt;
    gateway_wa_settings wider_access;
    gateway_dc_settings data_concentrator;
    /* set by gateway_config_load: */
    char *config_path;
} gateway_config;

const anm_config_table *gateway_config_table(void);

/*
 * Loads the service config (keys in docs/gateway.md). proforma_file and
 * statement_file are resolved against the config file's directory.
 * ANM_OK, ANM_EIO, ANM_EPARSE, ANM_ECONFIG (detail), ANM_ENOMEM.
 */
int gateway_config_load(const char *path, gateway_config *out, anm_error_detail *detail);
void gateway_config_free(gateway_config *cfg);

/* ---- service -------------------------------------------------------------------- */

typedef struct gateway_service gateway_service;

/* One exported value as it leaves for the routes. */
typedef struct gateway_export_value {
    const gateway_proforma_point *point; /* borrowed */
    size_t point_index;
    double engineering;
    double sent;     /* engineering * scale + offset, never clipped */
    unsigned flags;  /* GATEWAY_QUALITY_* */
    int64_t utc_ms;  /* measurement (or computation) time */
    int test;        /* commissioning */
} gateway_export_value;

typedef void (*gateway_value_hook)(void *arg, const gateway_export_value *values, size_t n);
typedef void (*gateway_redeclaration_hook)(void *arg, const gateway_redeclaration *events,
                                           size_t n);

/*
 * New service: loads the pro-forma, binds the status endpoint, opens the
 * IEC 104 outstation (defining one point per mapped IOA), subscribes to
 * telemetry and statements, starts the field clients, reads the statement
 * file. clock is borrowed. ANM_ECONFIG / ANM_ENET / ANM_EIO with detail.
 */
int gateway_service_new(const gateway_config *cfg, anm_clock *clock, gateway_service **out,
                        anm_error_detail *detail);
void gateway_service_destroy(gateway_service **s);

/* Runs until stopped; handle_signals: SIGINT/SIGTERM stop it (ANM_OK). */
int gateway_service_run(gateway_service *s, int handle_signals);
/* One iteration, waiting up to max_wait_ms for I/O. */
int gateway_service_run_once(gateway_service *s, int max_wait_ms);
/* Thread-safe: run returns after the current iteration. */
void gateway_service_stop(gateway_service *s);

/* The bound IEC 104 port (0 if the outstation is disabled) and status endpoint. */
int gateway_service_iec104_port(const gateway_service *s);
const char *gateway_service_status_endpoint(const gateway_service *s);

/* The Wider Access endpoint's bound port (0 if off) and its bus PUB endpoint ("" if off). */
int gateway_service_wa_port(const gateway_service *s);
const char *gateway_service_wa_publish_endpoint(const gateway_service *s);

void gateway_service_set_value_hook(gateway_service *s, gateway_value_hook fn, void *arg);
void gateway_service_set_redeclaration_hook(gateway_service *s, gateway_redeclaration_hook fn,
                                            void *arg);

/* Applies a statement (as if received on the bus). */
int gateway_service_apply_statement(gateway_service *s, const json_t *statement,
                                    anm_error_detail *detail);
/* Metered samples (as in signal.latest: signal id, utc ms, value). */
int gateway_service_apply_metered(gateway_service *s, uint32_t signal_id, int64_t utc_ms,
                                  double value);

/*
 * Commissioning: sends, for every mapped point, the value given by
 * pattern at step (fixed: the midpoint of [min, max]; step: min+25% of the
 * range on even steps, min+75% on odd; ramp: min + range * step/(steps-1)),
 * marked as test (IEC 104 T bit). Returns the values sent in *out (n =
 * point count; array owned by the service, valid until the next call).
 */
typedef enum gateway_pattern {
    GATEWAY_PATTERN_FIXED = 0,
    GATEWAY_PATTERN_STEP = 1,
    GATEWAY_PATTERN_RAMP = 2
} gateway_pattern;
int gateway_pattern_parse(const char *text, gateway_pattern *out);
const char *gateway_pattern_name(gateway_pattern pattern);
double gateway_pattern_value(const gateway_proforma_point *point, gateway_pattern pattern,
                             int step, int steps);
int gateway_service_commission_step(gateway_service *s, gateway_pattern pattern, int step,
                                     int steps);
/*
 * From the first commission step until this call, live values (statements,
 * telemetry) update the service's state but are not sent, so they cannot
 * overwrite the test pattern. This sends every point again without the
 * test bit: statement-derived values as they stand, metered MW as invalid
 * (QDS IV) until the next sample.
 */
void gateway_service_commission_end(gateway_service *s);

/* The status report (new reference). */
json_t *gateway_service_status(gateway_service *s);

/* Values handed over on IEC 104 (acknowledged by a client) so far. */
uint64_t gateway_service_iec104_acked_values(const gateway_service *s);
/* IEC 104 hand-over latency histogram (borrowed). */
const gateway_latency *gateway_service_iec104_latency(const gateway_service *s);
/* IEC 104 ASDUs queued or unacknowledged. */
size_t gateway_service_iec104_backlog(const gateway_service *s);

/* --status: asks the service at endpoint; *out a new reference. */
int gateway_status_query(const char *endpoint, int timeout_ms, json_t **out);

/* ---- field route (IEC 104 client -> ingest) -------------------------------------- */

typedef struct gateway_field gateway_field;

/* bus and clock borrowed. ANM_ECONFIG, ANM_ENET, ANM_ENOMEM. */
struct anm_bus;
int gateway_field_new(const gateway_field_settings *settings, struct anm_bus *bus,
                      anm_clock *clock, gateway_field **out, anm_error_detail *detail);
void gateway_field_destroy(gateway_field **f);
/* Drives the IEC 104 client and the ingest DEALER without blocking. */
int gateway_field_run_once(gateway_field *f, int max_wait_ms);
/* Status object of the route (new reference). */
json_t *gateway_field_status(gateway_field *f);
/* Samples handed to ingest and acknowledged. */
uint64_t gateway_field_acked_samples(const gateway_field *f);
int gateway_field_is_started(const gateway_field *f);

#endif
