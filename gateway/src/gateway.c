/* gateway.c: the anm-gateway service (see gateway.h and docs/gateway.md). */
#include "gateway/gateway.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine/bus.h"
#include "engine/reactor.h"
#include "engine/zone.h"
#include "gateway/iec104_server.h"
#include "service_routes.h"

#define COMPONENT "gateway"

/* ---- latency ------------------------------------------------------------------ */

void gateway_latency_reset(gateway_latency *h) { memset(h, 0, sizeof *h); }

void gateway_latency_add(gateway_latency *h, double ms, uint64_t n)
{
    if (!(ms > 0.0))
        ms = 0.0;
    size_t b;
    if (ms < 100.0)
        b = (size_t)(ms * 10.0);
    else if (ms < 10000.0)
        b = 1000 + (size_t)(ms - 100.0);
    else
        b = GATEWAY_LATENCY_BUCKETS - 1;
    if (b >= GATEWAY_LATENCY_BUCKETS)
        b = GATEWAY_LATENCY_BUCKETS - 1;
    h->counts[b] += n;
    h->total += n;
    if (ms > h->max_ms)
        h->max_ms = ms;
}

double gateway_latency_quantile(const gateway_latency *h, double q)
{
    if (h->total == 0)
        return -1.0;
    uint64_t want = (uint64_t)ceil(q * (double)h->total);
    if (want == 0)
        want = 1;
    uint64_t seen = 0;
    for (size_t b = 0; b < GATEWAY_LATENCY_BUCKETS; b++) {
        seen += h->counts[b];
        if (seen >= want) {
            if (b < 1000)
                return (double)(b + 1) / 10.0;
            if (b < GATEWAY_LATENCY_BUCKETS - 1)
                return 100.0 + (double)(b - 1000 + 1);
            return h->max_ms;
        }
    }
    return h->max_ms;
}

/* ---- configuration --------------------------------------------------------------- */

static const char *const confidence_names[] = {"p50", "p90", "p99", NULL};

#define SRV(m, t) ANM_CONFIG_OFFSET(gateway_iec104_server_settings, m, t)
static const anm_config_entry server_entries[] = {
    {.name = "enabled", .type = ANM_CONFIG_BOOL, .offset = SRV(enabled, bool),
     .default_bool = true, .help = "serve NESO's IEC 104 client(s)"},
    {.name = "bind_address", .type = ANM_CONFIG_STRING, .offset = SRV(bind_address, char *),
     .default_string = "127.0.0.1", .min_length = 1, .max_length = 63,
     .help = "numeric address to listen on"},
    {.name = "port", .type = ANM_CONFIG_INT, .offset = SRV(port, long), .int_min = 0,
     .int_max = 65535, .default_int = 2404, .help = "TCP port (0: ephemeral)"},
    {.name = "common_address", .type = ANM_CONFIG_INT, .offset = SRV(common_address, long),
     .int_min = 1, .int_max = 65534, .default_int = 1, .help = "the outstation's common address"},
    {.name = "max_clients", .type = ANM_CONFIG_INT, .offset = SRV(max_clients, long),
     .int_min = 1, .int_max = 64, .default_int = 8, .help = "connections accepted at once"},
    {.name = "redundancy_group", .type = ANM_CONFIG_BOOL, .offset = SRV(redundancy_group, bool),
     .default_bool = false, .help = "connections form one redundancy group (dual VPN)"},
    {.name = "k", .type = ANM_CONFIG_INT, .offset = SRV(k, long), .int_min = 1,
     .int_max = 32767, .default_int = 12, .help = "max unacknowledged I-frames"},
    {.name = "w", .type = ANM_CONFIG_INT, .offset = SRV(w, long), .int_min = 1,
     .int_max = 32767, .default_int = 8, .help = "acknowledge after w I-frames"},
    {.name = "t1_s", .type = ANM_CONFIG_INT, .offset = SRV(t1_s, long), .int_min = 1,
     .int_max = 255, .default_int = 15, .help = "t1 (s)"},
    {.name = "t2_s", .type = ANM_CONFIG_INT, .offset = SRV(t2_s, long), .int_min = 1,
     .int_max = 255, .default_int = 10, .help = "t2 (s), < t1"},
    {.name = "t3_s", .type = ANM_CONFIG_INT, .offset = SRV(t3_s, long), .int_min = 1,
     .int_max = 255, .default_int = 20, .help = "t3 (s)"},
    {.name = "cyclic_period_s", .type = ANM_CONFIG_INT, .offset = SRV(cyclic_period_s, long),
     .int_min = 0, .int_max = 86400, .default_int = 60,
     .help = "cyclic transmission (COT 1) period; 0: none"},
    {.name = "time_offset_minutes", .type = ANM_CONFIG_INT,
     .offset = SRV(time_offset_minutes, long), .int_min = -1440, .int_max = 1440,
     .default_int = 0, .help = "CP56Time2a wire time = UTC + offset (NESO convention open)"},
    {.name = "summer_time_bit", .type = ANM_CONFIG_BOOL, .offset = SRV(summer_time_bit, bool),
     .default_bool = false, .help = "SU bit written in time tags"},
    ANM_CONFIG_END};
static const anm_config_table server_table = {server_entries,
                                              sizeof(gateway_iec104_server_settings), NULL};

#define MAP(m, t) ANM_CONFIG_OFFSET(gateway_field_map_entry, m, t)
static const anm_config_entry map_entries[] = {
    {.name = "common_address", .type = ANM_CONFIG_INT, .offset = MAP(common_address, long),
     .int_min = 0, .int_max = 65534, .default_int = 0, .help = "0: the route's"},
    {.name = "ioa", .type = ANM_CONFIG_INT, .offset = MAP(ioa, long), .int_min = 1,
     .int_max = 16777215, .flags = ANM_CONFIG_REQUIRED, .help = "information object address"},
    {.name = "signal_id", .type = ANM_CONFIG_INT, .offset = MAP(signal_id, long), .int_min = 1,
     .int_max = 4294967295L, .flags = ANM_CONFIG_REQUIRED, .help = "registry signal id"},
    ANM_CONFIG_END};
static const anm_config_table map_table = {map_entries, sizeof(gateway_field_map_entry), NULL};

#define FLD(m, t) ANM_CONFIG_OFFSET(gateway_field_settings, m, t)
static const anm_config_entry field_entries[] = {
    {.name = "name", .type = ANM_CONFIG_STRING, .offset = FLD(name, char *),
     .flags = ANM_CONFIG_REQUIRED, .min_length = 1, .max_length = 63, .help = "route name"},
    {.name = "host", .type = ANM_CONFIG_STRING, .offset = FLD(host, char *),
     .flags = ANM_CONFIG_REQUIRED, .min_length = 1, .max_length = 255,
     .help = "RTU / ANM outstation host"},
    {.name = "port", .type = ANM_CONFIG_INT, .offset = FLD(port, long), .int_min = 1,
     .int_max = 65535, .default_int = 2404, .help = "its port"},
    {.name = "common_address", .type = ANM_CONFIG_INT, .offset = FLD(common_address, long),
     .int_min = 1, .int_max = 65534, .default_int = 1, .help = "its common address"},
    {.name = "ingest_endpoint", .type = ANM_CONFIG_STRING, .offset = FLD(ingest_endpoint, char *),
     .default_string = ">tcp://127.0.0.1:5601", .min_length = 1, .max_length = 1024,
     .help = "ingest's ROUTER"},
    {.name = "sender_id", .type = ANM_CONFIG_INT, .offset = FLD(sender_id, long), .int_min = 1,
     .int_max = 4294967295L, .flags = ANM_CONFIG_REQUIRED, .help = "telemetry sender id"},
    {.name = "batch_max_samples", .type = ANM_CONFIG_INT,
     .offset = FLD(batch_max_samples, long), .int_min = 1, .int_max = 100000,
     .default_int = 1000, .help = "a batch closes at this many samples"},
    {.name = "batch_max_age_ms", .type = ANM_CONFIG_INT, .offset = FLD(batch_max_age_ms, long),
     .int_min = 0, .int_max = 60000, .default_int = 50, .help = "or after this long"},
    {.name = "resend_ms", .type = ANM_CONFIG_INT, .offset = FLD(resend_ms, long), .int_min = 10,
     .int_max = 600000, .default_int = 2000, .help = "resend an unacknowledged batch after"},
    {.name = "clock_sync", .type = ANM_CONFIG_BOOL, .offset = FLD(clock_sync, bool),
     .default_bool = true, .help = "send C_CS_NA_1 after each start"},
    {.name = "reconnect_min_ms", .type = ANM_CONFIG_INT, .offset = FLD(reconnect_min_ms, long),
     .int_min = 10, .int_max = 600000, .default_int = 1000, .help = "first back-off"},
    {.name = "reconnect_max_ms", .type = ANM_CONFIG_INT, .offset = FLD(reconnect_max_ms, long),
     .int_min = 10, .int_max = 600000, .default_int = 30000, .help = "back-off cap"},
    {.name = "k", .type = ANM_CONFIG_INT, .offset = FLD(k, long), .int_min = 1, .int_max = 32767,
     .default_int = 12, .help = "k"},
    {.name = "w", .type = ANM_CONFIG_INT, .offset = FLD(w, long), .int_min = 1, .int_max = 32767,
     .default_int = 8, .help = "w"},
    {.name = "t1_s", .type = ANM_CONFIG_INT, .offset = FLD(t1_s, long), .int_min = 1,
     .int_max = 255, .default_int = 15, .help = "t1 (s)"},
    {.name = "t2_s", .type = ANM_CONFIG_INT, .offset = FLD(t2_s, long), .int_min = 1,
     .int_max = 255, .default_int = 10, .help = "t2 (s)"},
    {.name = "t3_s", .type = ANM_CONFIG_INT, .offset = FLD(t3_s, long), .int_min = 1,
     .int_max = 255, .default_int = 20, .help = "t3 (s)"},
    {.name = "map", .type = ANM_CONFIG_SECTION_ARRAY, .offset = FLD(map, anm_config_array),
     .section = &map_table, .max_items = 1000000, .help = "(common address, IOA) -> signal id"},
    ANM_CONFIG_END};
static const anm_config_table field_table = {field_entries, sizeof(gateway_field_settings), NULL};

#define MQ(m, t) ANM_CONFIG_OFFSET(gateway_mqtt_settings, m, t)
#define MQ_STR(n, d, h)                                                                            \
    {.name = #n, .type = ANM_CONFIG_STRING, .offset = MQ(n, char *), .default_string = d,          \
     .max_length = 2048, .help = h}
static const anm_config_entry mqtt_entries[] = {
    {.name = "enabled", .type = ANM_CONFIG_BOOL, .offset = MQ(enabled, bool),
     .default_bool = false, .help = "publish exported values to NESO's MQTT broker"},
    MQ_STR(host, "127.0.0.1", "broker host"),
    {.name = "port", .type = ANM_CONFIG_INT, .offset = MQ(port, long), .int_min = 1,
     .int_max = 65535, .default_int = 8883, .help = "broker TLS port"},
    MQ_STR(client_id, "", "MQTT client id (empty: random)"),
    MQ_STR(ca_file, "", "CA that signed the broker's certificate (required)"),
    MQ_STR(cert_file, "", "client certificate (optional)"),
    MQ_STR(key_file, "", "its key"),
    MQ_STR(username, "", "username (empty: none)"),
    MQ_STR(password_file, "", "file whose first line is the password"),
    {.name = "tls_version", .type = ANM_CONFIG_STRING, .offset = MQ(tls_version, char *),
     .default_string = "tlsv1.2", .min_length = 7, .max_length = 7,
     .help = "minimum TLS version: tlsv1.2 or tlsv1.3"},
    {.name = "keepalive_s", .type = ANM_CONFIG_INT, .offset = MQ(keepalive_s, long),
     .int_min = 5, .int_max = 3600, .default_int = 30, .help = "MQTT keepalive (s)"},
    MQ_STR(topic_template, "", "topic template (empty: {topic}, the pro-forma mqtt_topic)"),
    MQ_STR(payload_template, "", "payload template (empty: the documented JSON)"),
    MQ_STR(spool_dir, "", "durable spool directory (required)"),
    {.name = "max_inflight", .type = ANM_CONFIG_INT, .offset = MQ(max_inflight, long),
     .int_min = 1, .int_max = 65535, .default_int = 100, .help = "unacknowledged publishes"},
    ANM_CONFIG_END};
static const anm_config_table mqtt_table = {mqtt_entries, sizeof(gateway_mqtt_settings), NULL};

#define WA(m, t) ANM_CONFIG_OFFSET(gateway_wa_settings, m, t)
#define WA_STR(n, d, h)                                                                            \
    {.name = #n, .type = ANM_CONFIG_STRING, .offset = WA(n, char *), .default_string = d,          \
     .max_length = 2048, .help = h}
static const anm_config_entry wa_entries[] = {
    {.name = "enabled", .type = ANM_CONFIG_BOOL, .offset = WA(enabled, bool),
     .default_bool = false, .help = "send redeclarations to NESO's Wider Access API"},
    WA_STR(sender, "participant", "our sender id in messages"),
    WA_STR(signing_alg, "ES256", "JWS algorithm: RS256, PS256 or ES256"),
    WA_STR(signing_key_file, "", "our signing key (PEM)"),
    WA_STR(signing_cert_file, "", "our signing certificate (PEM)"),
    WA_STR(signing_kid, "", "kid (empty: the certificate's x5t#S256)"),
    WA_STR(neso_cert_file, "", "NESO's signing certificate(s) (PEM), trusted"),
    WA_STR(base_url, "", "https://host:port of NESO's endpoint"),
    WA_STR(ca_file, "", "CA for NESO's TLS certificate"),
    WA_STR(client_cert_file, "", "TLS client certificate (optional)"),
    WA_STR(client_key_file, "", "its key"),
    WA_STR(redeclaration_path, "", "path for redeclarations (empty: /wa/v1/redeclaration)"),
    {.name = "request_timeout_ms", .type = ANM_CONFIG_INT, .offset = WA(request_timeout_ms, long),
     .int_min = 100, .int_max = 600000, .default_int = 10000, .help = "per request"},
    {.name = "max_attempts", .type = ANM_CONFIG_INT, .offset = WA(max_attempts, long),
     .int_min = 1, .int_max = 100, .default_int = 3, .help = "attempts per send"},
    {.name = "retry_ms", .type = ANM_CONFIG_INT, .offset = WA(retry_ms, long), .int_min = 10,
     .int_max = 3600000, .default_int = 60000, .help = "wait after a failed send"},
    {.name = "server_enabled", .type = ANM_CONFIG_BOOL, .offset = WA(server_enabled, bool),
     .default_bool = false, .help = "receive instructions and normalisation"},
    WA_STR(bind_address, "127.0.0.1", "address of the endpoint"),
    {.name = "port", .type = ANM_CONFIG_INT, .offset = WA(port, long), .int_min = 0,
     .int_max = 65535, .default_int = 8443, .help = "endpoint port (0: ephemeral)"},
    WA_STR(tls_key_file, "", "endpoint TLS key (PEM)"),
    WA_STR(tls_cert_file, "", "endpoint TLS certificate chain (PEM)"),
    WA_STR(instruction_path, "", "path for instructions (empty: /wa/v1/instruction)"),
    WA_STR(normalisation_path, "", "path for normalisation (empty: /wa/v1/normalisation)"),
    WA_STR(publish_endpoint, "@tcp://127.0.0.1:5612", "PUB for received messages"),
    WA_STR(spool_dir, "", "durable queue of unsent messages (empty: in memory, lost at exit)"),
    ANM_CONFIG_END};
static const anm_config_table wa_table = {wa_entries, sizeof(gateway_wa_settings), NULL};

#define DC(m, t) ANM_CONFIG_OFFSET(gateway_dc_settings, m, t)
#define DC_STR(n, d, h)                                                                            \
    {.name = #n, .type = ANM_CONFIG_STRING, .offset = DC(n, char *), .default_string = d,          \
     .max_length = 2048, .help = h}
static const anm_config_entry dc_entries[] = {
    {.name = "enabled", .type = ANM_CONFIG_BOOL, .offset = DC(enabled, bool),
     .default_bool = false, .help = "upload redeclaration and perfmon files to the Data Concentrator"},
    DC_STR(base_url, "", "https://host:port of the Data Concentrator (required)"),
    DC_STR(path, "", "upload path (empty: /ihost/deviceapi/files)"),
    DC_STR(username, "", "Basic auth username"),
    DC_STR(password_file, "", "file whose first line is the password"),
    DC_STR(ca_file, "", "CA for the server's certificate (empty: system store)"),
    DC_STR(spool_dir, "", "durable spool directory (required)"),
    DC_STR(unit, "", "unit id in file names (empty: each DER's unit from the pro-forma)"),
    {.name = "perfmon_interval_s", .type = ANM_CONFIG_INT, .offset = DC(perfmon_interval_s, long),
     .int_min = 0, .int_max = 86400, .default_int = 60,
     .help = "one 1 Hz perfmon file per unit per interval (0: none)"},
    {.name = "perfmon_20hz", .type = ANM_CONFIG_BOOL, .offset = DC(perfmon_20hz, bool),
     .default_bool = false,
     .help = "also a 20 Hz perfmon file per unit per interval, a row per telemetry arrival"},
    {.name = "min_interval_ms", .type = ANM_CONFIG_INT, .offset = DC(min_interval_ms, long),
     .int_min = 0, .int_max = 3600000, .default_int = 30000, .help = "between uploads"},
    {.name = "retry_after_ms", .type = ANM_CONFIG_INT, .offset = DC(retry_after_ms, long),
     .int_min = 0, .int_max = 3600000, .default_int = 60000, .help = "after a failed upload"},
    {.name = "timeout_ms", .type = ANM_CONFIG_INT, .offset = DC(timeout_ms, long),
     .int_min = 100, .int_max = 600000, .default_int = 30000, .help = "per upload"},
    ANM_CONFIG_END};
static const anm_config_table dc_table = {dc_entries, sizeof(gateway_dc_settings), NULL};

#define CFG(m, t) ANM_CONFIG_OFFSET(gateway_config, m, t)
static const anm_config_entry entries[] = {
    {.name = "proforma_file", .type = ANM_CONFIG_STRING, .offset = CFG(proforma_file, char *),
     .flags = ANM_CONFIG_REQUIRED, .min_length = 1, .max_length = 2048,
     .help = "the pro-forma mapping (relative to this file)"},
    {.name = "clock", .type = ANM_CONFIG_STRING, .offset = CFG(clock, char *),
     .default_string = "real", .min_length = 1, .max_length = 64,
     .help = "engine clock: real, sim:TIME[@SPEED] or step:TIME"},
    {.name = "log_level", .type = ANM_CONFIG_LOG_LEVEL, .offset = CFG(log_level, anm_log_level),
     .default_string = "info", .help = "log threshold"},
    {.name = "status_endpoint", .type = ANM_CONFIG_STRING, .offset = CFG(status_endpoint, char *),
     .default_string = "@tcp://127.0.0.1:5611", .min_length = 1, .max_length = 1024,
     .help = "ROUTER for gateway.status.request"},
    {.name = "telemetry_endpoint", .type = ANM_CONFIG_STRING,
     .offset = CFG(telemetry_endpoint, char *), .default_string = "", .max_length = 1024,
     .help = "SUB to ingest's signal.latest PUB (empty: none)"},
    {.name = "statement_endpoint", .type = ANM_CONFIG_STRING,
     .offset = CFG(statement_endpoint, char *), .default_string = "", .max_length = 1024,
     .help = "SUB for constraint statements (empty: none)"},
    {.name = "statement_topic", .type = ANM_CONFIG_STRING, .offset = CFG(statement_topic, char *),
     .default_string = "constraint.statement", .min_length = 1, .max_length = 128,
     .help = "topic prefix of statements on the bus"},
    {.name = "statement_file", .type = ANM_CONFIG_STRING, .offset = CFG(statement_file, char *),
     .default_string = "", .max_length = 2048,
     .help = "statement file read at start and whenever it changes (empty: none)"},
    {.name = "confidence", .type = ANM_CONFIG_ENUM, .offset = CFG(confidence, int),
     .names = confidence_names, .default_string = "p90",
     .help = "curtailment quantile subtracted from capacity: p50, p90 or p99"},
    {.name = "redeclaration_threshold_mw", .type = ANM_CONFIG_DOUBLE,
     .offset = CFG(redeclaration_threshold_mw, double), .min = 0.0, .max = 1e6,
     .default_double = 1.0, .help = "availability change that triggers a redeclaration"},
    {.name = "redeclaration_endpoint", .type = ANM_CONFIG_STRING,
     .offset = CFG(redeclaration_endpoint, char *), .default_string = "", .max_length = 1024,
     .help = "PUB for gateway.redeclaration events (empty: none)"},
    {.name = "refresh_ms", .type = ANM_CONFIG_INT, .offset = CFG(refresh_ms, long),
     .int_min = 10, .int_max = 60000, .default_int = 1000,
     .help = "how often statement values are re-evaluated (period boundaries)"},
    {.name = "iec104", .type = ANM_CONFIG_SECTION,
     .offset = CFG(iec104, gateway_iec104_server_settings), .section = &server_table,
     .help = "IEC 104 outstation for NESO"},
    {.name = "field", .type = ANM_CONFIG_SECTION_ARRAY, .offset = CFG(field, anm_config_array),
     .section = &field_table, .max_items = 64, .help = "IEC 104 field clients -> ingest"},
    {.name = "mqtt", .type = ANM_CONFIG_SECTION, .offset = CFG(mqtt, gateway_mqtt_settings),
     .section = &mqtt_table, .help = "MQTT publisher to NESO"},
    {.name = "wider_access", .type = ANM_CONFIG_SECTION,
     .offset = CFG(wider_access, gateway_wa_settings), .section = &wa_table,
     .help = "Wider Access API client and endpoint"},
    {.name = "data_concentrator", .type = ANM_CONFIG_SECTION,
     .offset = CFG(data_concentrator, gateway_dc_settings), .section = &dc_table,
     .help = "Data Concentrator HTTPS file uploads"},
    ANM_CONFIG_END};
static const anm_config_table table = {entries, sizeof(gateway_config), NULL};

const anm_config_table *gateway_config_table(void) { return &table; }

static int resolve(char **field, const char *base)
{
    if (*field == NULL || (*field)[0] == '\0')
        return ANM_OK;
    char *full = anm_path_resolve_against(base, *field);
    if (full == NULL)
        return ANM_ENOMEM;
    free(*field);
    *field = full;
    return ANM_OK;
}

int gateway_config_load(const char *path, gateway_config *out, anm_error_detail *detail)
{
    memset(out, 0, sizeof *out);
    int rc = anm_config_load_file(&table, path, out, detail);
    if (rc != ANM_OK)
        return rc;
    gateway_mqtt_settings *m = &out->mqtt;
    gateway_wa_settings *w = &out->wider_access;
    char **files[] = {&m->ca_file, &m->cert_file, &m->key_file, &m->password_file,
                      &m->spool_dir, &w->signing_key_file, &w->signing_cert_file,
                      &w->neso_cert_file, &w->ca_file, &w->client_cert_file,
                      &w->client_key_file, &w->tls_key_file, &w->tls_cert_file,
                      &out->data_concentrator.password_file, &out->data_concentrator.ca_file,
                      &out->data_concentrator.spool_dir, &w->spool_dir};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (resolve(files[i], path) != ANM_OK) {
            gateway_config_free(out);
            return ANM_ENOMEM;
        }
    }
    if (resolve(&out->proforma_file, path) != ANM_OK ||
        resolve(&out->statement_file, path) != ANM_OK ||
        (out->config_path = strdup(path)) == NULL) {
        gateway_config_free(out);
        return ANM_ENOMEM;
    }
    return ANM_OK;
}

void gateway_config_free(gateway_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->config_path);
    cfg->config_path = NULL;
    anm_config_free(&table, cfg);
}

/* ---- service ------------------------------------------------------------------- */

typedef struct point_state {
    int has_value;
    double sent;
    unsigned flags;
    uint8_t qds;
} point_state;

struct gateway_service {
    const gateway_config *cfg; /* borrowed */
    int commissioning; /* live values are held back while a test pattern is out */
    gateway__routes *routes; /* MQTT and Wider Access */
    anm_clock *clock;
    gateway_proforma *proforma;
    gateway_export *export;
    anm_bus *bus;
    anm_reactor *reactor;
    anm_socket *status;
    anm_socket *telemetry;
    anm_socket *statements;
    anm_socket *redeclaration_pub;
    gateway_iec104_server *server;
    gateway_field **fields;
    size_t n_fields;
    point_state *points;
    double *metered; /* latest engineering MW per pro-forma DER (NAN: none) */
    int64_t *metered_ms;
    gateway_iec104_point_update *updates;
    gateway_export_value *values;
    size_t n_values;
    gateway_value_hook value_hook;
    void *value_arg;
    gateway_redeclaration_hook redeclaration_hook;
    void *redeclaration_arg;
    atomic_int stop;
    int64_t next_refresh_ms, next_cyclic_ms;
    struct timespec statement_mtime;
    char status_bound[256];
    /* IEC 104 route figures */
    gateway_latency iec104_latency;
    uint64_t iec104_acked_values;
    int64_t iec104_last_ack_ms;
    uint64_t errors, statements_applied, redeclarations, metered_samples;
};

static void on_ack(void *arg, int64_t measured_utc_ms, size_t values, int64_t now_ms)
{
    gateway_service *s = arg;
    gateway_latency_add(&s->iec104_latency, (double)(now_ms - measured_utc_ms), values);
    s->iec104_acked_values += values;
    s->iec104_last_ack_ms = now_ms;
}

void gateway_service_set_value_hook(gateway_service *s, gateway_value_hook fn, void *arg)
{
    s->value_hook = fn;
    s->value_arg = arg;
}

void gateway_service_set_redeclaration_hook(gateway_service *s, gateway_redeclaration_hook fn,
                                            void *arg)
{
    s->redeclaration_hook = fn;
    s->redeclaration_arg = arg;
}

int gateway_service_iec104_port(const gateway_service *s)
{
    return s->server ? gateway_iec104_server_port(s->server) : 0;
}

uint64_t gateway_service_iec104_acked_values(const gateway_service *s)
{
    return s->iec104_acked_values;
}
const gateway_latency *gateway_service_iec104_latency(const gateway_service *s)
{
    return &s->iec104_latency;
}
size_t gateway_service_iec104_backlog(const gateway_service *s)
{
    return gateway_iec104_server_backlog(s->server);
}

/*
 * Queues point i with engineering value x (sent when it changed, or always
 * when force) for this round; publish() sends the round.
 */
static void stage(gateway_service *s, size_t i, double x, int64_t utc_ms, int test, int force)
{
    const gateway_proforma_point *pt = gateway_proforma_point_at(s->proforma, i);
    unsigned flags = 0;
    double sent = gateway_proforma_scale(pt, x, &flags);
    point_state *ps = &s->points[i];
    uint8_t qds = gateway_proforma_qds(flags);
    if (!force && ps->has_value && ps->flags == flags &&
        (ps->sent == sent || (isnan(ps->sent) && isnan(sent))))
        return;
    ps->has_value = 1;
    ps->sent = sent;
    ps->flags = flags;
    ps->qds = qds;
    s->values[s->n_values++] = (gateway_export_value){
        .point = pt, .point_index = i, .engineering = x, .sent = sent, .flags = flags,
        .utc_ms = utc_ms, .test = test};
}

static void publish(gateway_service *s, int test)
{
    if (s->n_values == 0)
        return;
    if (s->commissioning && !test) {
        /* a live value must not overwrite the pattern NESO is checking;
           gateway_service_commission_end sends the live values again */
        s->n_values = 0;
        return;
    }
    int64_t now = anm_clock_now_ms(s->clock);
    size_t n = 0;
    for (size_t k = 0; k < s->n_values; k++) {
        const gateway_export_value *v = &s->values[k];
        if (v->point->iec104.ioa == 0)
            continue;
        double sent = isfinite(v->sent) ? v->sent : 0.0;
        s->updates[n++] = (gateway_iec104_point_update){
            .ioa = (uint32_t)v->point->iec104.ioa, .value = sent,
            .quality = s->points[v->point_index].qds, .utc_ms = v->utc_ms};
    }
    if (s->server != NULL && n > 0) {
        int rc = gateway_iec104_server_update_many(s->server, s->updates, n, 1, test, now);
        if (rc != ANM_OK) {
            s->errors++;
            anm_log_warn(COMPONENT, "iec104 update refused: %s", anm_strerror(rc));
        }
    }
    gateway__routes_values(s->routes, s->values, s->n_values);
    if (s->value_hook != NULL)
        s->value_hook(s->value_arg, s->values, s->n_values);
    s->n_values = 0;
}

/* Re-evaluates every statement-derived point at the engine time. */
static void refresh_statement_points(gateway_service *s)
{
    int64_t now = anm_clock_now_ms(s->clock);
    for (size_t i = 0; i < gateway_proforma_point_count(s->proforma); i++) {
        const gateway_proforma_point *pt = gateway_proforma_point_at(s->proforma, i);
        if (pt->quantity == GATEWAY_QUANTITY_METERED_MW)
            continue;
        double x = NAN;
        (void)gateway_export_point_value(s->export, pt, now, &x);
        if (isnan(x) && !s->points[i].has_value)
            continue; /* nothing known yet: stays IV from the outstation */
        stage(s, i, x, now, 0, 0);
    }
    publish(s, 0);
}

static void handle_redeclarations(gateway_service *s, gateway_redeclaration *events, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const gateway_redeclaration *ev = &events[i];
        char start[32], end[32];
        anm_time_format_utc(ev->utc_start_ms, start, sizeof start);
        anm_time_format_utc(ev->utc_end_ms, end, sizeof end);
        anm_log_info(COMPONENT, "redeclaration of \"%s\" for %s: %.3f -> %.3f MW", ev->der,
                     start, ev->previous_mw, ev->available_mw);
        if (s->redeclaration_pub != NULL) {
            json_t *body = json_pack(
                "{s:i,s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:f,s:f,s:s,s:I}", "v", 1, "kind",
                "gateway.redeclaration", "der", ev->der, "unit", ev->unit, "zone", ev->zone,
                "period", ev->period, "utc_start", start, "utc_end", end, "previous_mw",
                ev->previous_mw, "available_mw", ev->available_mw, "statement_id",
                ev->statement_id, "statement_version", (json_int_t)ev->statement_version);
            if (body != NULL)
                (void)anm_bus_send_json(s->redeclaration_pub, NULL, "gateway.redeclaration", body,
                                        ANM_BUS_DONTWAIT);
            json_decref(body);
        }
    }
    s->redeclarations += n;
    gateway__routes_redeclarations(s->routes, events, n);
    if (n > 0 && s->redeclaration_hook != NULL)
        s->redeclaration_hook(s->redeclaration_arg, events, n);
}

int gateway_service_apply_statement(gateway_service *s, const json_t *statement,
                                    anm_error_detail *detail)
{
    gateway_redeclaration *events = NULL;
    size_t n = 0;
    int rc = gateway_export_apply_statement(s->export, statement, &events, &n, detail);
    if (rc == ANM_OK) {
        s->statements_applied++;
        handle_redeclarations(s, events, n);
        refresh_statement_points(s);
    } else {
        s->errors++;
    }
    free(events);
    return rc;
}

static void check_statement_file(gateway_service *s)
{
    const char *path = s->cfg->statement_file;
    struct stat st;
    if (path == NULL || path[0] == '\0' || stat(path, &st) != 0)
        return;
    if (st.st_mtim.tv_sec == s->statement_mtime.tv_sec &&
        st.st_mtim.tv_nsec == s->statement_mtime.tv_nsec)
        return;
    s->statement_mtime = st.st_mtim;
    gateway_redeclaration *events = NULL;
    size_t n = 0;
    anm_error_detail d;
    anm_error_detail_clear(&d);
    int rc = gateway_export_apply_statement_file(s->export, path, &events, &n, &d);
    if (rc == ANM_OK) {
        s->statements_applied++;
        handle_redeclarations(s, events, n);
        refresh_statement_points(s);
    } else {
        char line[1200];
        anm_error_detail_format(&d, line, sizeof line);
        anm_log_warn(COMPONENT, "could not read statement: %s", line);
        s->errors++;
    }
    free(events);
}

int gateway_service_apply_metered(gateway_service *s, uint32_t signal_id, int64_t utc_ms,
                                  double value)
{
    const gateway_proforma *p = s->proforma;
    int matched = 0;
    for (size_t j = 0; j < gateway_proforma_der_count(p); j++) {
        const gateway_proforma_der *d = gateway_proforma_der_at(p, j);
        if (d->metered_signal_id != (long)signal_id)
            continue;
        s->metered[j] = value;
        s->metered_ms[j] = utc_ms;
        matched = 1;
    }
    if (!matched)
        return ANM_ENOTFOUND;
    s->metered_samples++;
    for (size_t i = 0; i < gateway_proforma_point_count(p); i++) {
        const gateway_proforma_point *pt = gateway_proforma_point_at(p, i);
        if (pt->quantity != GATEWAY_QUANTITY_METERED_MW)
            continue;
        double x = 0.0;
        int64_t t = 0, involved = 0;
        for (size_t j = 0; j < gateway_proforma_der_count(p); j++) {
            const gateway_proforma_der *d = gateway_proforma_der_at(p, j);
            int mine = pt->der ? strcmp(pt->der, d->id) == 0 : strcmp(pt->zone, d->zone) == 0;
            if (!mine)
                continue;
            if (d->metered_signal_id == (long)signal_id)
                involved = 1;
            x += s->metered[j]; /* NAN while a DER of a zone point has no value */
            if (s->metered_ms[j] > t)
                t = s->metered_ms[j];
        }
        if (involved)
            stage(s, i, x, t, 0, 0);
    }
    publish(s, 0);
    return ANM_OK;
}

static void handle_signal_latest(gateway_service *s, const json_t *body)
{
    const json_t *samples = json_object_get(body, "samples");
    size_t i;
    const json_t *sample;
    json_array_foreach(samples, i, sample)
    {
        const json_t *id = json_array_get(sample, 0), *t = json_array_get(sample, 1),
                     *v = json_array_get(sample, 2);
        if (!json_is_integer(id) || !json_is_integer(t) || !json_is_number(v))
            continue;
        (void)gateway_service_apply_metered(s, (uint32_t)json_integer_value(id),
                                            (int64_t)json_integer_value(t),
                                            json_number_value(v));
    }
}

/* [topic][body] JSON from a SUB or DEALER (route ignored). */
static json_t *read_json(anm_msg *msg, char *topic, size_t topic_size)
{
    size_t n = anm_msg_parts(msg), size = 0;
    if (n < 2)
        return NULL;
    const char *t = anm_msg_part(msg, n - 2, &size);
    if (size >= topic_size)
        size = topic_size - 1;
    memcpy(topic, t, size);
    topic[size] = '\0';
    const void *body = anm_msg_part(msg, n - 1, &size);
    return json_loadb(body, size, JSON_REJECT_DUPLICATES, NULL);
}

static int on_telemetry(anm_reactor *r, anm_socket *socket, void *arg)
{
    (void)r;
    gateway_service *s = arg;
    anm_msg *msg = NULL;
    while (anm_socket_recv(socket, &msg, ANM_BUS_DONTWAIT) == ANM_OK) {
        char topic[160];
        json_t *body = read_json(msg, topic, sizeof topic);
        if (body != NULL && strncmp(topic, "signal.latest", 13) == 0)
            handle_signal_latest(s, body);
        else
            s->errors++;
        json_decref(body);
        anm_msg_destroy(&msg);
    }
    return ANM_OK;
}

static int on_statement(anm_reactor *r, anm_socket *socket, void *arg)
{
    (void)r;
    gateway_service *s = arg;
    anm_msg *msg = NULL;
    while (anm_socket_recv(socket, &msg, ANM_BUS_DONTWAIT) == ANM_OK) {
        char topic[160];
        json_t *body = read_json(msg, topic, sizeof topic);
        anm_error_detail d;
        anm_error_detail_clear(&d);
        if (body == NULL || gateway_service_apply_statement(s, body, &d) != ANM_OK) {
            anm_log_warn(COMPONENT, "bad statement on \"%s\": %s", topic,
                         body ? d.message : "not JSON");
            if (body == NULL)
                s->errors++;
        }
        json_decref(body);
        anm_msg_destroy(&msg);
    }
    return ANM_OK;
}

static int on_status(anm_reactor *r, anm_socket *socket, void *arg)
{
    (void)r;
    gateway_service *s = arg;
    anm_msg *msg = NULL;
    while (anm_socket_recv(socket, &msg, ANM_BUS_DONTWAIT) == ANM_OK) {
        char topic[160];
        json_t *body = read_json(msg, topic, sizeof topic);
        size_t route_size = 0;
        const void *route = anm_msg_part(msg, 0, &route_size);
        if (body != NULL && anm_msg_parts(msg) == 3 &&
            strcmp(topic, "gateway.status.request") == 0) {
            json_t *status = gateway_service_status(s);
            const json_t *id = json_object_get(body, "id");
            if (status != NULL && json_is_string(id))
                json_object_set(status, "id", (json_t *)(uintptr_t)id);
            anm_frame rf = {route, route_size};
            if (status != NULL)
                (void)anm_bus_send_json(socket, &rf, "gateway.status", status, ANM_BUS_DONTWAIT);
            json_decref(status);
        }
        json_decref(body);
        anm_msg_destroy(&msg);
    }
    return ANM_OK;
}

json_t *gateway_service_status(gateway_service *s)
{
    char now[32], last[32] = "";
    anm_time_format_utc(anm_clock_now_ms(s->clock), now, sizeof now);
    if (s->iec104_last_ack_ms > 0)
        anm_time_format_utc(s->iec104_last_ack_ms, last, sizeof last);
    json_t *routes = json_object();
    if (s->server != NULL) {
        double p50 = gateway_latency_quantile(&s->iec104_latency, 0.5);
        double p99 = gateway_latency_quantile(&s->iec104_latency, 0.99);
        json_object_set_new(
            routes, "iec104",
            json_pack("{s:s,s:i,s:I,s:I,s:o,s:o,s:o,s:I,s:I,s:I}", "kind", "iec104_outstation",
                      "port", gateway_iec104_server_port(s->server), "clients",
                      (json_int_t)gateway_iec104_server_client_count(s->server), "started",
                      (json_int_t)gateway_iec104_server_started_count(s->server),
                      "last_handover", last[0] ? json_string(last) : json_null(),
                      "latency_p50_ms", p50 < 0 ? json_null() : json_real(p50),
                      "latency_p99_ms", p99 < 0 ? json_null() : json_real(p99), "backlog",
                      (json_int_t)gateway_iec104_server_backlog(s->server), "handed_over",
                      (json_int_t)s->iec104_acked_values, "errors",
                      (json_int_t)gateway_iec104_server_rejected_count(s->server)));
    }
    for (size_t i = 0; i < s->n_fields; i++) {
        char name[96];
        snprintf(name, sizeof name, "field:%s",
                 ANM_CONFIG_ITEM(s->cfg->field, gateway_field_settings, i)->name);
        json_object_set_new(routes, name, gateway_field_status(s->fields[i]));
    }
    gateway__routes_status(s->routes, routes);
    return json_pack("{s:i,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:o}", "v", 1, "kind", "gateway.status",
                     "time", now, "latest_statement",
                     gateway_export_latest_statement_id(s->export), "statements",
                     (json_int_t)s->statements_applied, "redeclarations",
                     (json_int_t)s->redeclarations, "metered_samples",
                     (json_int_t)s->metered_samples, "errors", (json_int_t)s->errors, "routes",
                     routes);
}

static int open_sub(gateway_service *s, const char *endpoint, const char *topic,
                    anm_socket **out, anm_reactor_socket_fn fn, anm_error_detail *detail)
{
    if (endpoint == NULL || endpoint[0] == '\0')
        return ANM_OK;
    int rc = anm_socket_new(s->bus, ANM_SOCKET_SUB, endpoint, NULL, out, detail);
    if (rc == ANM_OK)
        rc = anm_socket_subscribe(*out, topic);
    if (rc == ANM_OK)
        rc = anm_reactor_add_socket(s->reactor, *out, fn, s);
    return rc;
}

int gateway_service_new(const gateway_config *cfg, anm_clock *clock, gateway_service **out,
                        anm_error_detail *detail)
{
    *out = NULL;
    gateway_service *s = calloc(1, sizeof *s);
    if (s == NULL)
        return ANM_ENOMEM;
    s->cfg = cfg;
    s->clock = clock;
    gateway_latency_reset(&s->iec104_latency);
    int rc = gateway_proforma_load_file(cfg->proforma_file, &s->proforma, detail);
    if (rc != ANM_OK)
        goto fail;
    size_t n_points = gateway_proforma_point_count(s->proforma);
    size_t n_ders = gateway_proforma_der_count(s->proforma);
    rc = ANM_ENOMEM;
    s->points = calloc(n_points, sizeof *s->points);
    s->values = calloc(n_points, sizeof *s->values);
    s->updates = calloc(n_points, sizeof *s->updates);
    s->metered = malloc(n_ders * sizeof *s->metered);
    s->metered_ms = calloc(n_ders, sizeof *s->metered_ms);
    if (!s->points || !s->values || !s->updates || !s->metered || !s->metered_ms)
        goto fail;
    for (size_t j = 0; j < n_ders; j++)
        s->metered[j] = NAN;
    rc = gateway_export_new(s->proforma, (gateway_confidence)cfg->confidence,
                            cfg->redeclaration_threshold_mw, &s->export);
    if (rc != ANM_OK)
        goto fail;
    if ((rc = anm_bus_new(&s->bus)) != ANM_OK || (rc = anm_reactor_new(clock, &s->reactor)) != ANM_OK)
        goto fail;
    rc = anm_socket_new(s->bus, ANM_SOCKET_ROUTER, cfg->status_endpoint, NULL, &s->status, detail);
    if (rc != ANM_OK || (rc = anm_reactor_add_socket(s->reactor, s->status, on_status, s)) != ANM_OK)
        goto fail;
    if (anm_socket_last_endpoint(s->status, s->status_bound, sizeof s->status_bound) != ANM_OK)
        s->status_bound[0] = '\0';
    if ((rc = open_sub(s, cfg->telemetry_endpoint, "signal.latest", &s->telemetry, on_telemetry,
                       detail)) != ANM_OK ||
        (rc = open_sub(s, cfg->statement_endpoint, cfg->statement_topic, &s->statements,
                       on_statement, detail)) != ANM_OK)
        goto fail;
    if (cfg->redeclaration_endpoint && cfg->redeclaration_endpoint[0] &&
        (rc = anm_socket_new(s->bus, ANM_SOCKET_PUB, cfg->redeclaration_endpoint, NULL,
                             &s->redeclaration_pub, detail)) != ANM_OK)
        goto fail;
    int64_t now = anm_clock_now_ms(clock);
    if (cfg->iec104.enabled) {
        gateway_iec104_server_config sc;
        gateway_iec104_server_config_default(&sc);
        snprintf(sc.bind_address, sizeof sc.bind_address, "%s", cfg->iec104.bind_address);
        sc.port = (int)cfg->iec104.port;
        sc.common_address = (uint16_t)cfg->iec104.common_address;
        sc.max_clients = (int)cfg->iec104.max_clients;
        sc.redundancy_group = cfg->iec104.redundancy_group;
        sc.link.k = (int)cfg->iec104.k;
        sc.link.w = (int)cfg->iec104.w;
        sc.link.t1_s = (int)cfg->iec104.t1_s;
        sc.link.t2_s = (int)cfg->iec104.t2_s;
        sc.link.t3_s = (int)cfg->iec104.t3_s;
        sc.time.offset_minutes = (int)cfg->iec104.time_offset_minutes;
        sc.time.summer = cfg->iec104.summer_time_bit;
        for (size_t i = 0; i < n_points; i++) {
            const gateway_proforma_point *pt = gateway_proforma_point_at(s->proforma, i);
            if (pt->iec104.ioa != 0 && pt->iec104.common_address != cfg->iec104.common_address) {
                char path[64];
                snprintf(path, sizeof path, "points[%zu].iec104.common_address", i);
                anm_error_detail_set(detail, cfg->proforma_file, 0, 0, path,
                                     "common address %ld is not the outstation's (%ld)",
                                     pt->iec104.common_address, cfg->iec104.common_address);
                rc = ANM_ECONFIG;
                goto fail;
            }
        }
        rc = gateway_iec104_server_new(&sc, now, &s->server, detail);
        if (rc != ANM_OK)
            goto fail;
        gateway_iec104_server_set_ack_handler(s->server, on_ack, s);
        for (size_t i = 0; i < n_points; i++) {
            const gateway_proforma_point *pt = gateway_proforma_point_at(s->proforma, i);
            if (pt->iec104.ioa == 0)
                continue;
            rc = gateway_iec104_server_define_point(
                s->server, (uint32_t)pt->iec104.ioa,
                pt->iec104.type == GATEWAY_PROFORMA_SINGLE ? GATEWAY_IEC104_POINT_SINGLE
                                                           : GATEWAY_IEC104_POINT_MEASURED);
            if (rc != ANM_OK)
                goto fail;
        }
    }
    s->n_fields = cfg->field.count;
    s->fields = calloc(s->n_fields ? s->n_fields : 1, sizeof *s->fields);
    if (s->fields == NULL) {
        rc = ANM_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < s->n_fields; i++) {
        rc = gateway_field_new(ANM_CONFIG_ITEM(cfg->field, gateway_field_settings, i), s->bus,
                               clock, &s->fields[i], detail);
        if (rc != ANM_OK)
            goto fail;
    }
    if ((rc = gateway__routes_new(cfg, s->bus, s->proforma, clock, &s->routes, detail)) != ANM_OK)
        goto fail;
    s->next_refresh_ms = now + cfg->refresh_ms;
    s->next_cyclic_ms = now + cfg->iec104.cyclic_period_s * 1000;
    check_statement_file(s);
    *out = s;
    return ANM_OK;
fail:
    gateway_service_destroy(&s);
    return rc;
}

void gateway_service_destroy(gateway_service **sp)
{
    if (sp == NULL || *sp == NULL)
        return;
    gateway_service *s = *sp;
    gateway__routes_destroy(&s->routes);
    for (size_t i = 0; i < s->n_fields && s->fields; i++)
        gateway_field_destroy(&s->fields[i]);
    free(s->fields);
    gateway_iec104_server_destroy(&s->server);
    anm_reactor_destroy(&s->reactor);
    anm_socket_destroy(&s->status);
    anm_socket_destroy(&s->telemetry);
    anm_socket_destroy(&s->statements);
    anm_socket_destroy(&s->redeclaration_pub);
    anm_bus_destroy(&s->bus);
    gateway_export_destroy(&s->export);
    gateway_proforma_destroy(&s->proforma);
    free(s->points);
    free(s->values);
    free(s->updates);
    free(s->metered);
    free(s->metered_ms);
    free(s);
    *sp = NULL;
}

int gateway_service_wa_port(const gateway_service *s) { return gateway__routes_wa_port(s->routes); }

const char *gateway_service_wa_publish_endpoint(const gateway_service *s)
{
    return gateway__routes_wa_publish_endpoint(s->routes);
}

const char *gateway_service_status_endpoint(const gateway_service *s)
{
    return s->status_bound[0] ? s->status_bound : s->cfg->status_endpoint;
}

void gateway_service_stop(gateway_service *s) { atomic_store(&s->stop, 1); }

int gateway_service_run_once(gateway_service *s, int max_wait_ms)
{
    int rc = anm_reactor_run_once(s->reactor, s->server ? 0 : max_wait_ms);
    if (rc < 0)
        return rc;
    int64_t now = anm_clock_now_ms(s->clock);
    if (s->server != NULL) {
        int64_t deadline = gateway_iec104_server_next_deadline(s->server);
        int wait = max_wait_ms;
        if (deadline != INT64_MAX && deadline - now < wait)
            wait = deadline - now < 0 ? 0 : (int)(deadline - now);
        if ((rc = gateway_iec104_server_run_once(s->server, now, wait)) != ANM_OK)
            return rc;
    }
    for (size_t i = 0; i < s->n_fields; i++) {
        if ((rc = gateway_field_run_once(s->fields[i], 0)) != ANM_OK)
            return rc;
    }
    now = anm_clock_now_ms(s->clock);
    if (now >= s->next_refresh_ms) {
        s->next_refresh_ms = now + s->cfg->refresh_ms;
        check_statement_file(s);
        refresh_statement_points(s);
    }
    if (s->server != NULL && s->cfg->iec104.cyclic_period_s > 0 && now >= s->next_cyclic_ms) {
        s->next_cyclic_ms = now + s->cfg->iec104.cyclic_period_s * 1000;
        (void)gateway_iec104_server_send_cyclic(s->server, now);
    }
    return ANM_OK;
}

static int on_drain(anm_reactor *r, int signal_number, void *arg)
{
    (void)r;
    gateway_service *s = arg;
    anm_log_info(COMPONENT, "signal %d: stopping", signal_number);
    gateway_service_stop(s);
    return ANM_OK;
}

int gateway_service_run(gateway_service *s, int handle_signals)
{
    if (handle_signals) {
        int rc = anm_reactor_handle_signals(s->reactor, on_drain, s);
        if (rc != ANM_OK)
            return rc;
    }
    anm_log_info(COMPONENT, "running: iec104 port %d, %zu field route(s)",
                 gateway_service_iec104_port(s), s->n_fields);
    while (!atomic_load(&s->stop) && !anm_reactor_stopped(s->reactor)) {
        int rc = gateway_service_run_once(s, s->n_fields > 0 ? 2 : 20);
        if (rc != ANM_OK)
            return rc;
    }
    anm_log_info(COMPONENT, "stopped");
    return ANM_OK;
}

/* ---- commissioning ------------------------------------------------------------------ */

static const char *const pattern_names[] = {"fixed", "step", "ramp"};

int gateway_pattern_parse(const char *text, gateway_pattern *out)
{
    for (int i = 0; i < 3; i++) {
        if (text != NULL && strcmp(text, pattern_names[i]) == 0) {
            *out = (gateway_pattern)i;
            return ANM_OK;
        }
    }
    return ANM_EINVAL;
}

const char *gateway_pattern_name(gateway_pattern pattern)
{
    return (int)pattern >= 0 && (int)pattern < 3 ? pattern_names[pattern] : "?";
}

double gateway_pattern_value(const gateway_proforma_point *point, gateway_pattern pattern,
                             int step, int steps)
{
    double lo = point->min, range = point->max - point->min;
    if (point->quantity == GATEWAY_QUANTITY_STATE)
        return pattern == GATEWAY_PATTERN_FIXED ? 1.0 : (double)(step % 2);
    switch (pattern) {
    case GATEWAY_PATTERN_STEP: return lo + range * (step % 2 ? 0.75 : 0.25);
    case GATEWAY_PATTERN_RAMP:
        return steps > 1 ? lo + range * (double)step / (double)(steps - 1) : lo;
    default: return lo + range * 0.5;
    }
}

int gateway_service_commission_step(gateway_service *s, gateway_pattern pattern, int step,
                                     int steps)
{
    int64_t now = anm_clock_now_ms(s->clock);
    s->commissioning = 1;
    for (size_t i = 0; i < gateway_proforma_point_count(s->proforma); i++) {
        const gateway_proforma_point *pt = gateway_proforma_point_at(s->proforma, i);
        /* the pattern is in sent units: engineering = (sent - offset) / scale */
        double sent = gateway_pattern_value(pt, pattern, step, steps);
        stage(s, i, (sent - pt->offset) / pt->scale, now, 1, 1);
    }
    publish(s, 1);
    return ANM_OK;
}

void gateway_service_commission_end(gateway_service *s)
{
    if (s == NULL || !s->commissioning)
        return;
    s->commissioning = 0;
    /* no test value may stay in the outstation's table (GI answers from it):
       statement points get their live value, metered points IV until the
       next sample */
    int64_t now = anm_clock_now_ms(s->clock);
    for (size_t i = 0; i < gateway_proforma_point_count(s->proforma); i++) {
        const gateway_proforma_point *pt = gateway_proforma_point_at(s->proforma, i);
        double x = NAN;
        if (pt->quantity != GATEWAY_QUANTITY_METERED_MW)
            (void)gateway_export_point_value(s->export, pt, now, &x);
        stage(s, i, x, now, 0, 1);
    }
    publish(s, 0);
}

/* ---- --status client ----------------------------------------------------------------- */

int gateway_status_query(const char *endpoint, int timeout_ms, json_t **out)
{
    json_t *request =
        json_pack("{s:i,s:s,s:s}", "v", 1, "kind", "gateway.status.request", "id", "status");
    if (request == NULL) {
        *out = NULL;
        return ANM_ENOMEM;
    }
    int rc = anm_bus_request_json(endpoint, "gateway.status.request", request, timeout_ms, out);
    json_decref(request);
    return rc;
}
