/*
 * main.c: anm-gateway, the edge service to NESO and the field.
 *
 *   anm-gateway run --config FILE [--log-level L]
 *   anm-gateway --status [--config FILE] [--endpoint E]
 *   anm-gateway commission --config FILE --pattern fixed|step|ramp --report FILE
 *                [--wait-s N] [--interval-ms N] [--ack-wait-s N]
 *   anm-gateway client --host H --port P [--gi] [--duration S] [--common-address CA]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cli.h"
#include "engine/log.h"
#include "bench.h"
#include "client.h"
#include "gateway/gateway.h"

#define PROG "anm-gateway"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: anm-gateway run --config FILE [--log-level LEVEL]\n"
            "       anm-gateway --status [--config FILE] [--endpoint E]\n"
            "       anm-gateway commission --config FILE --pattern fixed|step|ramp --report FILE\n"
            "                   [--wait-s N] [--interval-ms N] [--ack-wait-s N]\n"
            "       anm-gateway bench [--quick] [--mqtt-port N --mqtt-ca FILE ...] (bench/gateway)\n"
            "       anm-gateway client --host H --port P [--gi] [--duration S] [--common-address CA]\n"
            "       anm-gateway --help | --version\n\n"
            "Exports availability, PCF, state and metered MW per DER to NESO over IEC 104\n"
            "(outstation) as the pro-forma maps them, and hands field IEC 104 telemetry to\n"
            "ingest (docs/gateway.md).\n\n"
            "options:\n"
            "  --config FILE      service settings (keys in docs/gateway.md)\n"
            "  --status           ask the running service for its per-route status\n"
            "  --endpoint E       status endpoint (default: the config's status_endpoint)\n"
            "  --pattern P        commissioning pattern: fixed, step or ramp\n"
            "  --report FILE      commissioning report (JSON; FILE.txt readable text)\n"
            "  --wait-s N         commissioning: wait up to N s for a client (default 60)\n"
            "  --interval-ms N    commissioning: time between pattern steps (default 1000)\n"
            "  --ack-wait-s N     commissioning: wait up to N s for every route's\n"
            "                     acknowledgements (default 300)\n"
            "  --log-level LEVEL  debug, info, warn, error or off\n\n"
            "SIGINT/SIGTERM: stop and exit 0.\n");
}

static int fail_detail(const char *what, const anm_error_detail *d, int rc)
{
    char line[1200];
    anm_error_detail_format(d, line, sizeof line);
    return anm_cli_fail(PROG, "%s: %s (%s)", what, line, anm_strerror(rc));
}

static int pattern_steps(gateway_pattern p)
{
    return p == GATEWAY_PATTERN_FIXED ? 1 : p == GATEWAY_PATTERN_STEP ? 4 : 5;
}

typedef struct commission_log {
    json_t *sent; /* array of {step, point, der/zone, quantity, ioa, value, quality} */
    int step;
} commission_log;

static void record_values(void *arg, const gateway_export_value *v, size_t n)
{
    commission_log *log = arg;
    for (size_t i = 0; i < n; i++) {
        const gateway_proforma_point *pt = v[i].point;
        json_array_append_new(
            log->sent,
            json_pack("{s:i,s:I,s:s,s:s,s:I,s:I,s:f,s:s,s:b}", "step", log->step, "point",
                      (json_int_t)v[i].point_index, "owner", pt->der ? pt->der : pt->zone,
                      "quantity", gateway_quantity_name((gateway_quantity)pt->quantity),
                      "common_address", (json_int_t)pt->iec104.common_address, "ioa",
                      (json_int_t)pt->iec104.ioa, "value", v[i].sent, "quality",
                      gateway_proforma_quality_name(v[i].flags), "test", v[i].test));
    }
}

static int wait_ms(gateway_service *s, int64_t ms, int (*done)(gateway_service *))
{
    int64_t end = anm_monotonic_ns() + ms * 1000000;
    while (anm_monotonic_ns() < end) {
        if (gateway_service_run_once(s, 5) != ANM_OK)
            return ANM_ENET;
        if (done != NULL && done(s))
            return ANM_OK;
    }
    return done ? ANM_ETIMEOUT : ANM_OK;
}

static int client_started(gateway_service *s)
{
    json_t *st = gateway_service_status(s);
    json_t *started = json_object_get(json_object_get(json_object_get(st, "routes"), "iec104"),
                                      "started");
    int ok = json_integer_value(started) > 0;
    json_decref(st);
    return ok;
}

static int all_acked(gateway_service *s) { return gateway_service_iec104_backlog(s) == 0; }

/* The routes other than IEC 104 that count commissioning traffic (status names). */
static const char *const test_routes[] = {"mqtt", "wider_access_client", "data_concentrator"};
static const char *const test_route_names[] = {"mqtt", "wider_access", "data_concentrator"};
static const char *const test_route_marks[] = {"\"test\": true in the payload",
                                               "\"test\": true in the signed message",
                                               "_test in the file name"};
static const char *const test_route_acks[] = {"PUBACK", "NESO's signed acknowledgement",
                                              "HTTP 201"};
#define TEST_ROUTES 3

/* A route's test counts from the status (0 when the route is not enabled). */
static int route_counts(gateway_service *s, int k, json_int_t *sent, json_int_t *acked)
{
    json_t *st = gateway_service_status(s);
    json_t *o = json_object_get(json_object_get(st, "routes"), test_routes[k]);
    int enabled = o != NULL;
    *sent = json_integer_value(json_object_get(o, "test_sent"));
    *acked = json_integer_value(json_object_get(o, "test_acknowledged"));
    json_decref(st);
    return enabled;
}

static int routes_acked(gateway_service *s)
{
    for (int k = 0; k < TEST_ROUTES; k++) {
        json_int_t sent, acked;
        if (route_counts(s, k, &sent, &acked) && acked < sent)
            return 0;
    }
    return all_acked(s);
}

static int commission(gateway_service *s, gateway_pattern pattern, const char *report,
                      long wait_s, long interval_ms, long ack_wait_s)
{
    commission_log log = {json_array(), 0};
    gateway_service_set_value_hook(s, record_values, &log);
    int exit_code = ANM_EXIT_FAILURE;
    json_t *doc = NULL;
    fprintf(stderr, "%s: waiting up to %ld s for an IEC 104 client on port %d\n", PROG, wait_s,
            gateway_service_iec104_port(s));
    if (wait_ms(s, wait_s * 1000, client_started) != ANM_OK) {
        anm_cli_fail(PROG, "no IEC 104 client started data transfer within %ld s", wait_s);
        goto done;
    }
    int steps = pattern_steps(pattern);
    uint64_t before = gateway_service_iec104_acked_values(s);
    for (int k = 0; k < steps; k++) {
        log.step = k;
        gateway_service_commission_step(s, pattern, k, steps);
        (void)wait_ms(s, interval_ms, NULL);
    }
    (void)wait_ms(s, ack_wait_s * 1000, routes_acked);
    int acked_all = all_acked(s);
    uint64_t acked = gateway_service_iec104_acked_values(s) - before;
    /* put the live values back (no test bit) before leaving */
    gateway_service_set_value_hook(s, NULL, NULL);
    gateway_service_commission_end(s);
    (void)wait_ms(s, 2000, all_acked);
    size_t sent_iec = 0;
    for (size_t i = 0; i < json_array_size(log.sent); i++) {
        if (json_integer_value(json_object_get(json_array_get(log.sent, i), "ioa")) > 0)
            sent_iec++;
    }
    char now[32];
    anm_time_format_utc(anm_wall_clock_ms(), now, sizeof now);
    doc = json_pack("{s:s,s:s,s:i,s:{s:b,s:I,s:I,s:b,s:s,s:s},s:o}", "time", now, "pattern",
                    gateway_pattern_name(pattern), "steps", steps, "iec104", "enabled", 1, "sent",
                    (json_int_t)sent_iec, "acknowledged", (json_int_t)acked, "all_acknowledged",
                    acked_all, "test_bit", "set (COT T=1)", "acknowledged_by",
                    "I-frame receive sequence (S/I frames)", "values", json_incref(log.sent));
    int every_route = acked_all;
    json_int_t r_sent[TEST_ROUTES], r_acked[TEST_ROUTES];
    int r_enabled[TEST_ROUTES];
    for (int k = 0; doc != NULL && k < TEST_ROUTES; k++) {
        r_enabled[k] = route_counts(s, k, &r_sent[k], &r_acked[k]);
        int ok = !r_enabled[k] || r_acked[k] >= r_sent[k];
        every_route = every_route && ok;
        json_object_set_new(doc, test_route_names[k],
                            json_pack("{s:b,s:I,s:I,s:b,s:s,s:s}", "enabled", r_enabled[k],
                                      "sent", r_sent[k], "acknowledged", r_acked[k],
                                      "all_acknowledged", ok, "marked", test_route_marks[k],
                                      "acknowledged_by", test_route_acks[k]));
    }
    if (doc == NULL || json_dump_file(doc, report, JSON_INDENT(2)) != 0) {
        anm_cli_fail(PROG, "could not write report \"%s\"", report);
        goto done;
    }
    char txt[2100];
    snprintf(txt, sizeof txt, "%s.txt", report);
    FILE *f = fopen(txt, "w");
    if (f == NULL) {
        anm_cli_fail(PROG, "could not write report \"%s\"", txt);
        goto done;
    }
    fprintf(f, "anm-gateway commissioning report, %s\npattern %s, %d step(s)\n\n", now,
            gateway_pattern_name(pattern), steps);
    fprintf(f, "%-5s %-20s %-16s %6s %9s %14s %-12s\n", "step", "owner", "quantity", "ca", "ioa",
            "value", "quality");
    for (size_t i = 0; i < json_array_size(log.sent); i++) {
        json_t *v = json_array_get(log.sent, i);
        fprintf(f, "%-5lld %-20s %-16s %6lld %9lld %14.4f %-12s\n",
                (long long)json_integer_value(json_object_get(v, "step")),
                json_string_value(json_object_get(v, "owner")),
                json_string_value(json_object_get(v, "quantity")),
                (long long)json_integer_value(json_object_get(v, "common_address")),
                (long long)json_integer_value(json_object_get(v, "ioa")),
                json_real_value(json_object_get(v, "value")),
                json_string_value(json_object_get(v, "quality")));
    }
    fprintf(f, "\nIEC 104: %zu value(s) sent with the test bit, %llu acknowledged by the client%s\n",
            sent_iec, (unsigned long long)acked, acked_all ? "" : " (NOT ALL ACKNOWLEDGED)");
    for (int k = 0; k < TEST_ROUTES; k++) {
        if (!r_enabled[k]) {
            fprintf(f, "%s: not enabled\n", test_route_names[k]);
            continue;
        }
        fprintf(f, "%s: %lld test item(s) sent (%s), %lld acknowledged (%s)%s\n",
                test_route_names[k], (long long)r_sent[k], test_route_marks[k],
                (long long)r_acked[k], test_route_acks[k],
                r_acked[k] >= r_sent[k] ? "" : " (NOT ALL ACKNOWLEDGED)");
    }
    fclose(f);
    printf("commissioning: %zu sent, %llu acknowledged on IEC 104%s; report %s and %s\n", sent_iec,
           (unsigned long long)acked, every_route ? ", every route acknowledged" : "", report,
           txt);
    exit_code = every_route ? ANM_EXIT_OK : ANM_EXIT_FAILURE;
done:
    json_decref(doc);
    json_decref(log.sent);
    return exit_code;
}

int main(int argc, char **argv)
{
    const char *config_file = NULL, *endpoint = NULL, *log_level = NULL, *pattern_text = NULL;
    const char *report = NULL, *wait_text = NULL, *interval_text = NULL, *ack_text = NULL;
    const char *command = NULL;
    int status = 0;
    if (argc >= 2 && strcmp(argv[1], "bench") == 0)
        return gateway_bench_main(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "client") == 0)
        return gateway_client_main(argc - 2, argv + 2);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **target = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return ANM_EXIT_OK;
        }
        if (strcmp(a, "--version") == 0)
            return anm_cli_version(PROG);
        if (strcmp(a, "--status") == 0) {
            status = 1;
            continue;
        }
        if (command == NULL && (strcmp(a, "run") == 0 || strcmp(a, "commission") == 0)) {
            command = a;
            continue;
        }
        if (strcmp(a, "--config") == 0)
            target = &config_file;
        else if (strcmp(a, "--endpoint") == 0)
            target = &endpoint;
        else if (strcmp(a, "--log-level") == 0)
            target = &log_level;
        else if (strcmp(a, "--pattern") == 0)
            target = &pattern_text;
        else if (strcmp(a, "--report") == 0)
            target = &report;
        else if (strcmp(a, "--wait-s") == 0)
            target = &wait_text;
        else if (strcmp(a, "--interval-ms") == 0)
            target = &interval_text;
        else if (strcmp(a, "--ack-wait-s") == 0)
            target = &ack_text;
        else
            return anm_cli_usage_error(PROG, "unknown option '%s'", a);
        if (i + 1 >= argc)
            return anm_cli_usage_error(PROG, "option '%s' needs a value", a);
        *target = argv[++i];
    }
    if (anm_cli_apply_log_level(log_level) != ANM_OK)
        return anm_cli_usage_error(PROG, "unknown log level '%s'", log_level ? log_level : "");
    if (!status && command == NULL)
        return anm_cli_usage_error(PROG, "give a command: run, commission or --status");
    if (status && endpoint != NULL) {
        json_t *reply = NULL;
        int rc = gateway_status_query(endpoint, 3000, &reply);
        if (rc != ANM_OK)
            return anm_cli_fail(PROG, "no status from \"%s\": %s", endpoint, anm_strerror(rc));
        char *text = json_dumps(reply, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(reply);
        return ANM_EXIT_OK;
    }
    if (config_file == NULL)
        return anm_cli_usage_error(PROG, "--config FILE is required");
    gateway_pattern pattern = GATEWAY_PATTERN_FIXED;
    long wait_s = 60, interval_ms = 1000, ack_wait_s = 300;
    if (command != NULL && strcmp(command, "commission") == 0) {
        if (pattern_text == NULL || gateway_pattern_parse(pattern_text, &pattern) != ANM_OK)
            return anm_cli_usage_error(PROG, "--pattern must be fixed, step or ramp");
        if (report == NULL)
            return anm_cli_usage_error(PROG, "--report FILE is required");
        if ((wait_text && anm_parse_long(wait_text, 1, 86400, &wait_s) != ANM_OK) ||
            (interval_text && anm_parse_long(interval_text, 0, 600000, &interval_ms) != ANM_OK) ||
            (ack_text && anm_parse_long(ack_text, 1, 86400, &ack_wait_s) != ANM_OK))
            return anm_cli_usage_error(PROG, "bad --wait-s, --interval-ms or --ack-wait-s");
    }
    gateway_config cfg;
    anm_error_detail detail;
    anm_error_detail_clear(&detail);
    int rc = gateway_config_load(config_file, &cfg, &detail);
    if (rc != ANM_OK)
        return fail_detail("bad config", &detail, rc);
    if (!log_level)
        anm_log_set_level(cfg.log_level);
    int exit_code = ANM_EXIT_FAILURE;
    anm_clock *clock = NULL;
    gateway_service *service = NULL;
    if (status) {
        json_t *reply = NULL;
        rc = gateway_status_query(cfg.status_endpoint, 3000, &reply);
        if (rc != ANM_OK) {
            anm_cli_fail(PROG, "no status from \"%s\": %s", cfg.status_endpoint,
                         anm_strerror(rc));
            goto done;
        }
        char *text = json_dumps(reply, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(reply);
        exit_code = ANM_EXIT_OK;
        goto done;
    }
    if (anm_clock_new_from_spec(cfg.clock, &clock) != ANM_OK) {
        anm_cli_fail(PROG, "bad clock \"%s\"", cfg.clock);
        goto done;
    }
    anm_error_detail_clear(&detail);
    rc = gateway_service_new(&cfg, clock, &service, &detail);
    if (rc != ANM_OK) {
        fail_detail("could not start", &detail, rc);
        goto done;
    }
    if (strcmp(command, "commission") == 0) {
        exit_code = commission(service, pattern, report, wait_s, interval_ms, ack_wait_s);
        goto done;
    }
    rc = gateway_service_run(service, 1);
    exit_code = rc == ANM_OK ? ANM_EXIT_OK : ANM_EXIT_FAILURE;
    if (rc != ANM_OK)
        anm_log_error("gateway", "stopped with an error: %s", anm_strerror(rc));
done:
    gateway_service_destroy(&service);
    anm_clock_destroy(&clock);
    gateway_config_free(&cfg);
    return exit_code;
}
