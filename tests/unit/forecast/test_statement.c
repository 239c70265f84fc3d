/*
 * test_statement.c: constraint statements on 46-, 48- and 50-period days,
 * validated against the JSON Schema in docs/constraint-statement.md (read
 * from the document itself), from the library and from
 * `anm-forecast day-ahead`.
 */
#include "engine/calendar.h"
#include "engine/network.h"
#include "engine/zone.h"
#include "forecast/inputs.h"
#include "forecast/pcf.h"
#include "forecast/statement.h"
#include "testlib.h"

#include <criterion/criterion.h>
#include <gsl/gsl_errno.h>
#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a validator for the JSON Schema keywords the document uses --------- */

static json_t *schema_root;

static json_t *load_schema(void)
{
    char path[1024];
    anm_test_source_path(path, sizeof path, "docs/constraint-statement.md");
    char *doc = anm_test_read_file(path, NULL);
    cr_assert_not_null(doc, "cannot read %s", path);
    char *begin = strstr(doc, "<!-- schema:begin -->");
    cr_assert_not_null(begin);
    begin = strstr(begin, "```json");
    cr_assert_not_null(begin);
    begin += strlen("```json");
    char *end = strstr(begin, "```");
    cr_assert_not_null(end);
    json_error_t jerr;
    json_t *schema = json_loadb(begin, (size_t)(end - begin), 0, &jerr);
    cr_assert_not_null(schema, "schema in the document does not parse: line %d: %s", jerr.line,
                       jerr.text);
    free(doc);
    return schema;
}

static int type_matches(const char *type, json_t *v)
{
    if (strcmp(type, "object") == 0) return json_is_object(v);
    if (strcmp(type, "array") == 0) return json_is_array(v);
    if (strcmp(type, "string") == 0) return json_is_string(v);
    if (strcmp(type, "integer") == 0) return json_is_integer(v);
    if (strcmp(type, "number") == 0) return json_is_number(v);
    if (strcmp(type, "boolean") == 0) return json_is_boolean(v);
    if (strcmp(type, "null") == 0) return json_is_null(v);
    return 0;
}

/* Returns NULL when v is valid, else a description of the first problem at path. */
static char *validate(json_t *schema, json_t *v, const char *path)
{
    char *msg = NULL;
    json_t *ref = json_object_get(schema, "$ref");
    if (ref) {
        const char *name = json_string_value(ref) + strlen("#/definitions/");
        return validate(json_object_get(json_object_get(schema_root, "definitions"), name), v,
                        path);
    }
    json_t *type = json_object_get(schema, "type");
    if (type) {
        int ok = 0;
        if (json_is_string(type)) {
            ok = type_matches(json_string_value(type), v);
        } else {
            size_t i;
            json_t *t;
            json_array_foreach(type, i, t) { ok |= type_matches(json_string_value(t), v); }
        }
        if (!ok) {
            cr_asprintf(&msg, "%s: wrong type", path);
            return msg;
        }
    }
    json_t *en = json_object_get(schema, "enum");
    if (en) {
        int ok = 0;
        size_t i;
        json_t *e;
        json_array_foreach(en, i, e) { ok |= json_equal(e, v); }
        if (!ok) {
            cr_asprintf(&msg, "%s: not one of the enum", path);
            return msg;
        }
    }
    if (json_is_number(v)) {
        json_t *mn = json_object_get(schema, "minimum"), *mx = json_object_get(schema, "maximum");
        if ((mn && json_number_value(v) < json_number_value(mn)) ||
            (mx && json_number_value(v) > json_number_value(mx))) {
            cr_asprintf(&msg, "%s: %g out of bounds", path, json_number_value(v));
            return msg;
        }
    }
    json_t *pattern = json_object_get(schema, "pattern");
    if (pattern && json_is_string(v)) {
        regex_t re;
        cr_assert_eq(regcomp(&re, json_string_value(pattern), REG_EXTENDED | REG_NOSUB), 0);
        int r = regexec(&re, json_string_value(v), 0, NULL, 0);
        regfree(&re);
        if (r != 0) {
            cr_asprintf(&msg, "%s: \"%s\" does not match %s", path, json_string_value(v),
                        json_string_value(pattern));
            return msg;
        }
    }
    if (json_is_object(v)) {
        json_t *props = json_object_get(schema, "properties");
        json_t *req = json_object_get(schema, "required");
        size_t i;
        json_t *r;
        json_array_foreach(req, i, r)
        {
            if (!json_object_get(v, json_string_value(r))) {
                cr_asprintf(&msg, "%s: missing \"%s\"", path, json_string_value(r));
                return msg;
            }
        }
        const char *key;
        json_t *child;
        json_object_foreach(v, key, child)
        {
            json_t *sub = props ? json_object_get(props, key) : NULL;
            char where[512];
            snprintf(where, sizeof where, "%s.%s", path, key);
            if (!sub) {
                if (json_is_false(json_object_get(schema, "additionalProperties"))) {
                    cr_asprintf(&msg, "%s: not allowed", where);
                    return msg;
                }
                continue;
            }
            if ((msg = validate(sub, child, where)) != NULL) {
                return msg;
            }
        }
    }
    if (json_is_array(v)) {
        json_t *mn = json_object_get(schema, "minItems"), *mx = json_object_get(schema, "maxItems");
        if ((mn && json_array_size(v) < (size_t)json_integer_value(mn)) ||
            (mx && json_array_size(v) > (size_t)json_integer_value(mx))) {
            cr_asprintf(&msg, "%s: %zu items out of bounds", path, json_array_size(v));
            return msg;
        }
        json_t *items = json_object_get(schema, "items");
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child)
        {
            char where[512];
            snprintf(where, sizeof where, "%s[%zu]", path, i);
            if (items && (msg = validate(items, child, where)) != NULL) {
                return msg;
            }
        }
    }
    return NULL;
}

static void expect_valid(json_t *statement)
{
    schema_root = load_schema();
    char *msg = validate(schema_root, statement, "$");
    cr_expect_null(msg, "statement fails the schema: %s", msg ? msg : "");
    free(msg);
    json_decref(schema_root);
    schema_root = NULL;
}

/* ---- statements from the library on 46-, 48- and 50-period days ---------- */

static const char two_bus_case[] =
    "function mpc = twobus\nmpc.version = '2';\nmpc.baseMVA = 100;\nmpc.bus = [\n"
    " 1 3 0 0 0 0 1 1 0 33 1 1.1 0.9;\n 2 1 0 0 0 0 1 1 0 33 1 1.1 0.9;\n];\n"
    "mpc.gen = [\n 1 0 0 100 -100 1 100 1 100 0;\n];\nmpc.branch = [\n"
    " 1 2 0.01 0.1 0 100 100 100 0 0 1 -360 360;\n"
    " 1 2 0.01 0.1 0 100 100 100 0 0 1 -360 360;\n];\n";

static const char two_bus_zones[] =
    "{\"version\":1,\"zones\":[{\"id\":\"z\",\"name\":\"two bus\",\"access\":\"lifo\","
    "\"mode\":\"preventive\",\"monitored\":[{\"id\":\"m1\",\"branch\":1,\"export_direction\":"
    "\"to_from\",\"normal_mw\":20,\"post_fault_mw\":45}],\"contingencies\":[2],"
    "\"ders\":[{\"id\":\"w\",\"bus\":2,\"technology\":\"wind\",\"capacity_mw\":100,"
    "\"connection_date\":\"2020-01-01\",\"lifo_position\":1,\"under_anm\":true}],"
    "\"signals\":[]}]}";

static char *inputs_for(const char *date, int n_periods)
{
    size_t cap = 256 + (size_t)n_periods * 160;
    char *text = malloc(cap);
    size_t len = (size_t)snprintf(text, cap,
                                  "{\"version\":1,\"zone\":\"z\",\"settlement_date\":\"%s\","
                                  "\"periods\":[",
                                  date);
    for (int p = 1; p <= n_periods; p++) {
        len += (size_t)snprintf(text + len, cap - len,
                                "%s{\"period\":%d,\"demand\":{\"kind\":\"empirical\",\"values\":"
                                "[1]},\"wind\":{\"alpha\":2,\"beta\":%d}}",
                                p > 1 ? "," : "", p, 2 + p % 5);
    }
    snprintf(text + len, cap - len, "]}");
    return text;
}

static void statement_for_day(const char *date_text, int expected_periods)
{
    anm_error_detail err;
    anm_case *network = NULL;
    anm_zone_set *zones = NULL;
    forecast_inputs *inputs = NULL;
    forecast_pcf_model *model = NULL;
    gsl_set_error_handler_off();
    cr_assert_eq(anm_case_parse(two_bus_case, strlen(two_bus_case), "twobus.m", &network, &err),
                 ANM_OK);
    cr_assert_eq(anm_zone_set_parse(two_bus_zones, strlen(two_bus_zones), "z.json", network,
                                    &zones, &err),
                 ANM_OK, "%s: %s", err.path, err.message);
    char *text = inputs_for(date_text, expected_periods);
    cr_assert_eq(forecast_inputs_parse(text, strlen(text), "in.json", &zones->zones[0], &inputs,
                                       &err),
                 ANM_OK, "%s: %s", err.path, err.message);
    cr_assert_eq(forecast_pcf_model_new(network, &zones->zones[0], inputs, &model, &err), ANM_OK);
    forecast_pcf_config config = forecast_pcf_config_default();
    config.max_samples = 2048;
    config.threads = 2;
    forecast_pcf_result *results[ANM_MAX_PERIODS_PER_DAY] = {0};
    size_t n = 0;
    cr_assert_eq(forecast_statement_run_day(model, inputs, &config, results, &n, &err), ANM_OK,
                 "%s", err.message);
    cr_assert_eq(n, (size_t)expected_periods);
    forecast_statement_info info = {.date = inputs->date,
                                    .horizon = FORECAST_HORIZON_DAY_AHEAD,
                                    .version = 1,
                                    .issued_ms = 1616889600000LL,
                                    .seed = config.seed,
                                    .max_samples = config.max_samples,
                                    .inputs_sha256 = inputs->sha256_hex,
                                    .inputs_path = "in.json",
                                    .case_name = network->name};
    json_t *st = forecast_statement_build(&zones->zones[0], &info, results, n);
    cr_assert_not_null(st);
    expect_valid(st);
    cr_expect_eq(json_integer_value(json_object_get(st, "period_count")), expected_periods);
    json_t *periods = json_object_get(st, "periods");
    cr_assert_eq(json_array_size(periods), (size_t)expected_periods);
    /* the day's periods tile it: period 1 starts at local midnight, the last
       ends at the next local midnight, each period 30 minutes */
    anm_settlement_date d = inputs->date, next = anm_settlement_date_add_days(d, 1);
    int64_t start_ms, end_ms;
    cr_assert_eq(anm_calendar_day_start_ms(d, &start_ms), ANM_OK);
    cr_assert_eq(anm_calendar_day_start_ms(next, &end_ms), ANM_OK);
    char buf[ANM_UTC_TIME_SIZE];
    anm_calendar_format_utc(start_ms, buf, sizeof buf);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(periods, 0), "utc_start")),
                     buf);
    anm_calendar_format_utc(end_ms, buf, sizeof buf);
    cr_expect_str_eq(json_string_value(json_object_get(
                         json_array_get(periods, (size_t)expected_periods - 1), "utc_end")),
                     buf);
    /* preventive: with branch 2 out, branch 1 carries the whole output; the
       DER is curtailed above 45 MW post-fault or 40 MW intact (20 limit on
       half the output): P = 1 - I_0.4(2, beta) */
    json_t *p1 = json_array_get(periods, 0);
    json_t *binding = json_array_get(json_object_get(p1, "binding_constraints"), 0);
    cr_assert_not_null(binding);
    cr_expect_str_eq(json_string_value(json_object_get(binding, "constraint")), "m1");
    cr_expect_str_eq(json_string_value(json_object_get(st, "horizon")), "day_ahead");
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(st, "provenance"),
                                                       "inputs_sha256")),
                     inputs->sha256_hex);
    json_decref(st);
    for (size_t k = 0; k < n; k++) {
        forecast_pcf_result_destroy(&results[k]);
    }
    free(text);
    forecast_pcf_model_destroy(&model);
    forecast_inputs_destroy(&inputs);
    anm_zone_set_destroy(&zones);
    anm_case_destroy(&network);
}

Test(statement, spring_clock_change_day_has_46_periods)
{
    statement_for_day("2021-03-28", 46);
}

Test(statement, normal_day_has_48_periods)
{
    statement_for_day("2021-06-01", 48);
}

Test(statement, autumn_clock_change_day_has_50_periods)
{
    statement_for_day("2021-10-31", 50);
}

Test(statement, inputs_missing_a_period_are_refused_naming_it)
{
    anm_error_detail err;
    anm_case *network = NULL;
    anm_zone_set *zones = NULL;
    forecast_inputs *inputs = NULL;
    forecast_pcf_model *model = NULL;
    cr_assert_eq(anm_case_parse(two_bus_case, strlen(two_bus_case), "twobus.m", &network, &err),
                 ANM_OK);
    cr_assert_eq(anm_zone_set_parse(two_bus_zones, strlen(two_bus_zones), "z.json", network,
                                    &zones, &err),
                 ANM_OK);
    char *text = inputs_for("2021-06-01", 47);
    cr_assert_eq(forecast_inputs_parse(text, strlen(text), "in.json", &zones->zones[0], &inputs,
                                       &err),
                 ANM_OK);
    cr_assert_eq(forecast_pcf_model_new(network, &zones->zones[0], inputs, &model, &err), ANM_OK);
    forecast_pcf_config config = forecast_pcf_config_default();
    config.max_samples = 1024;
    forecast_pcf_result *results[ANM_MAX_PERIODS_PER_DAY] = {0};
    size_t n = 0;
    anm_error_detail_clear(&err);
    cr_expect_eq(forecast_statement_run_day(model, inputs, &config, results, &n, &err),
                 ANM_ECONFIG);
    cr_expect_str_eq(err.message, "the inputs give no period 48 of 2021-06-01 (48 periods)");
    free(text);
    forecast_pcf_model_destroy(&model);
    forecast_inputs_destroy(&inputs);
    anm_zone_set_destroy(&zones);
    anm_case_destroy(&network);
}

Test(statement, day_ahead_command_writes_a_valid_statement, .timeout = 120)
{
    char bin[1024], zones[1024], inputs[1024];
    snprintf(bin, sizeof bin, "%s/anm-forecast", anm_test_bin_dir());
    anm_test_source_path(zones, sizeof zones, "data/zones/feeder33.json");
    anm_test_source_path(inputs, sizeof inputs, "data/inputs/feeder33_2021-03-11.json");
    char *dir = anm_test_tmpdir("pcf-statement");
    char out[1024];
    snprintf(out, sizeof out, "%s/statement.json", dir);
    char *argv[] = {bin,        (char[]){"day-ahead"}, (char[]){"--zones"},
                    zones,      (char[]){"--inputs"},  inputs,
                    (char[]){"--out"}, out,          (char[]){"--samples"},
                    (char[]){"4096"},  (char[]){"--seed"}, (char[]){"5"},
                    (char[]){"--clock"}, (char[]){"step:2021-03-10T12:00:00Z"}, NULL};
    char *so = NULL, *se = NULL;
    int status = anm_test_run(argv, &so, &se);
    cr_assert_eq(status, 0, "stderr: %s", se ? se : "");
    cr_expect(strstr(so, "solar33") != NULL, "per-DER summary missing: %s", so);
    json_error_t jerr;
    json_t *st = json_load_file(out, 0, &jerr);
    cr_assert_not_null(st, "%s", jerr.text);
    expect_valid(st);
    cr_expect_str_eq(json_string_value(json_object_get(st, "issued_at")),
                     "2021-03-10T12:00:00.000Z");
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(st, "provenance"), "seed")), 5);
    json_decref(st);
    free(so);
    free(se);
    anm_test_rmtree(dir);
    free(dir);
}

Test(statement, schema_rejects_a_statement_without_provenance)
{
    schema_root = load_schema();
    json_t *bad = json_pack("{s:s,s:i}", "schema", "anm.constraint_statement", "schema_version", 1);
    char *msg = validate(schema_root, bad, "$");
    cr_assert_not_null(msg);
    cr_expect(strstr(msg, "missing") != NULL, "%s", msg);
    free(msg);
    json_decref(bad);
    json_decref(schema_root);
    schema_root = NULL;
}
