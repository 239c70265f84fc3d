/*
 * cmd_pcf.c: `anm-forecast pcf` and `anm-forecast day-ahead` (cmd_pcf.h).
 *
 *   pcf --inputs FILE --zones ZONES.json [--case CASE.m] [--zone ID]
 *       [--period N] [--samples N | --ci-width W] [--seed S] [--threads T]
 *       [--format text|json] [--export FILE] [--access lifo|pro_rata|min_mw]
 *   day-ahead --inputs FILE --zones ZONES.json --out STATEMENT.json
 *       [--date D] [--case CASE.m] [--zone ID] [--samples N | --ci-width W]
 *       [--seed S] [--threads T] [--clock SPEC] [--version-number V]
 *
 * Parse, load (case, zones, inputs), build the zone model, run, print.
 */
#include "cmd_pcf.h"

#include "engine/calendar.h"
#include "engine/cli.h"
#include "engine/clock.h"
#include "engine/error.h"
#include "engine/network.h"
#include "engine/zone.h"
#include "forecast/constraint_set.h"
#include "forecast/inputs.h"
#include "forecast/pcf.h"
#include "forecast/statement.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct options {
    const char *case_path, *zones_path, *zone_id, *inputs_path, *out_path, *export_path;
    const char *date, *clock_spec, *format;
    long period, samples, threads, version;
    int access; /* -1: the zone's own rule, else an anm_access */
    double ci_width;
    long long seed;
} options;

static int parse_options(const char *program, const char *command, int argc, char **argv,
                         options *o)
{
    memset(o, 0, sizeof *o);
    o->samples = -1;
    o->access = -1;
    o->seed = 1;
    o->version = 1;
    o->format = "text";
    o->clock_spec = "real";
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0) {
            return anm_cli_usage_error(program, "unexpected argument \"%s\" for %s", arg, command);
        }
        if (i + 1 >= argc) {
            return anm_cli_usage_error(program, "%s needs a value", arg);
        }
        const char *v = argv[++i];
        long lv = 0;
        double dv = 0.0;
        if (strcmp(arg, "--case") == 0) {
            o->case_path = v;
        } else if (strcmp(arg, "--zones") == 0) {
            o->zones_path = v;
        } else if (strcmp(arg, "--zone") == 0) {
            o->zone_id = v;
        } else if (strcmp(arg, "--inputs") == 0) {
            o->inputs_path = v;
        } else if (strcmp(arg, "--out") == 0 && strcmp(command, "day-ahead") == 0) {
            o->out_path = v;
        } else if (strcmp(arg, "--export") == 0 && strcmp(command, "pcf") == 0) {
            o->export_path = v;
        } else if (strcmp(arg, "--date") == 0 && strcmp(command, "day-ahead") == 0) {
            o->date = v;
        } else if (strcmp(arg, "--clock") == 0 && strcmp(command, "day-ahead") == 0) {
            o->clock_spec = v;
        } else if (strcmp(arg, "--format") == 0 && strcmp(command, "pcf") == 0) {
            if (strcmp(v, "text") != 0 && strcmp(v, "json") != 0) {
                return anm_cli_usage_error(program, "unknown format \"%s\" (text or json)", v);
            }
            o->format = v;
        } else if (strcmp(arg, "--access") == 0 && strcmp(command, "pcf") == 0) {
            if (strcmp(v, "lifo") == 0) {
                o->access = ANM_ACCESS_LIFO;
            } else if (strcmp(v, "pro_rata") == 0) {
                o->access = ANM_ACCESS_PRO_RATA;
            } else if (strcmp(v, "min_mw") == 0) {
                o->access = ANM_ACCESS_MIN_MW;
            } else {
                return anm_cli_usage_error(program,
                                           "unknown access \"%s\" (lifo, pro_rata or min_mw)", v);
            }
        } else if (strcmp(arg, "--log-level") == 0) {
            if (anm_cli_apply_log_level(v) != ANM_OK) {
                return anm_cli_usage_error(program, "unknown log level \"%s\"", v);
            }
        } else if (strcmp(arg, "--period") == 0 && strcmp(command, "pcf") == 0) {
            if (anm_parse_long(v, 1, ANM_MAX_PERIODS_PER_DAY, &lv) != ANM_OK) {
                return anm_cli_usage_error(program, "--period must be 1..50, got \"%s\"", v);
            }
            o->period = lv;
        } else if (strcmp(arg, "--samples") == 0) {
            if (anm_parse_long(v, 1, 100000000L, &lv) != ANM_OK) {
                return anm_cli_usage_error(program, "--samples must be 1..100000000, got \"%s\"",
                                           v);
            }
            o->samples = lv;
        } else if (strcmp(arg, "--threads") == 0) {
            if (anm_parse_long(v, 0, 256, &lv) != ANM_OK) {
                return anm_cli_usage_error(program, "--threads must be 0..256, got \"%s\"", v);
            }
            o->threads = lv;
        } else if (strcmp(arg, "--version-number") == 0 && strcmp(command, "day-ahead") == 0) {
            if (anm_parse_long(v, 1, 1000000, &lv) != ANM_OK) {
                return anm_cli_usage_error(program, "--version-number must be >= 1, got \"%s\"",
                                           v);
            }
            o->version = lv;
        } else if (strcmp(arg, "--seed") == 0) {
            /* up to 2^53 so that the statement's JSON integer holds it exactly */
            if (anm_parse_long(v, 0, 9007199254740992L, &lv) != ANM_OK) {
                return anm_cli_usage_error(program, "--seed must be 0..2^53, got \"%s\"", v);
            }
            o->seed = lv;
        } else if (strcmp(arg, "--ci-width") == 0) {
            if (anm_parse_double(v, 1e-6, 1.0, &dv) != ANM_OK) {
                return anm_cli_usage_error(program, "--ci-width must be in [1e-6, 1], got \"%s\"",
                                           v);
            }
            o->ci_width = dv;
        } else {
            return anm_cli_usage_error(program, "unknown option \"%s\" for %s", arg, command);
        }
    }
    if (!o->zones_path) {
        return anm_cli_usage_error(program, "%s needs --zones ZONES.json", command);
    }
    if (!o->inputs_path) {
        return anm_cli_usage_error(program, "%s needs --inputs FILE", command);
    }
    if (strcmp(command, "day-ahead") == 0 && !o->out_path) {
        return anm_cli_usage_error(program, "day-ahead needs --out STATEMENT.json");
    }
    if (o->samples > 0 && o->ci_width > 0.0) {
        return anm_cli_usage_error(program, "give --samples or --ci-width, not both");
    }
    return ANM_EXIT_OK;
}

typedef struct loaded {
    anm_case *network;
    anm_zone_set *zones;
    const anm_zone *zone;
    anm_zone zone_override; /* a shallow copy of the zone with --access's rule */
    forecast_inputs *inputs;
    forecast_pcf_model *model;
    char *case_path;
} loaded;

static void loaded_free(loaded *l)
{
    forecast_pcf_model_destroy(&l->model);
    forecast_inputs_destroy(&l->inputs);
    anm_zone_set_destroy(&l->zones);
    anm_case_destroy(&l->network);
    free(l->case_path);
}

static int report(const char *program, const anm_error_detail *err, int rc)
{
    char where[1024];
    if (err->message[0]) {
        anm_error_detail_format(err, where, sizeof where);
        return anm_cli_fail(program, "%s", where);
    }
    return anm_cli_fail(program, "%s", anm_strerror(rc));
}

/* The zone named by --zone, else the inputs file's "zone" key. */
static int choose_zone_id(const options *o, char *zone_id, size_t size)
{
    if (o->zone_id) {
        int n = snprintf(zone_id, size, "%s", o->zone_id);
        return n >= 0 && (size_t)n < size ? ANM_OK : ANM_ERANGE;
    }
    json_error_t jerr;
    json_t *root = json_load_file(o->inputs_path, 0, &jerr);
    json_t *z = root ? json_object_get(root, "zone") : NULL;
    int rc = ANM_ENOTFOUND;
    if (json_is_string(z)) {
        int n = snprintf(zone_id, size, "%s", json_string_value(z));
        rc = n >= 0 && (size_t)n < size ? ANM_OK : ANM_ERANGE;
    }
    json_decref(root);
    return rc;
}

static int load_all(const char *program, const options *o, loaded *l)
{
    anm_error_detail err;
    anm_error_detail_clear(&err);
    memset(l, 0, sizeof *l);
    int rc;
    if (o->case_path) {
        l->case_path = strdup(o->case_path);
        rc = l->case_path ? ANM_OK : ANM_ENOMEM;
    } else {
        rc = anm_zone_file_case_path(o->zones_path, &l->case_path, &err);
        if (rc == ANM_ENOTFOUND) {
            return anm_cli_usage_error(program, "no --case and the zone file names no case");
        }
    }
    if (rc == ANM_OK) {
        rc = anm_case_load(l->case_path, &l->network, &err);
    }
    if (rc == ANM_OK) {
        rc = anm_zone_set_load(o->zones_path, l->network, &l->zones, &err);
    }
    if (rc != ANM_OK) {
        return report(program, &err, rc);
    }
    char zone_id[ANM_ID_MAX];
    if (choose_zone_id(o, zone_id, sizeof zone_id) != ANM_OK) {
        return anm_cli_usage_error(program, "no --zone and the inputs file names no zone");
    }
    l->zone = anm_zone_set_find(l->zones, zone_id);
    if (!l->zone) {
        return anm_cli_fail(program, "no zone \"%s\" in %s", zone_id, o->zones_path);
    }
    if (o->access >= 0) {
        l->zone_override = *l->zone; /* borrows the zone set's arrays */
        l->zone_override.access = (anm_access)o->access;
        l->zone = &l->zone_override;
    }
    rc = forecast_inputs_load(o->inputs_path, l->zone, &l->inputs, &err);
    if (rc == ANM_OK) {
        rc = forecast_pcf_model_new(l->network, l->zone, l->inputs, &l->model, &err);
    }
    if (rc != ANM_OK) {
        return report(program, &err, rc);
    }
    return ANM_EXIT_OK;
}

static forecast_pcf_config config_of(const options *o)
{
    forecast_pcf_config c = forecast_pcf_config_default();
    c.seed = (uint64_t)o->seed;
    c.threads = (unsigned)o->threads;
    if (o->ci_width > 0.0) {
        c.ci_width = o->ci_width;
        c.max_samples = 1000000;
    } else if (o->samples > 0) {
        c.max_samples = (size_t)o->samples;
    }
    return c;
}

static void print_estimate(FILE *out, forecast_estimate e, int width, int precision)
{
    fprintf(out, " %*.*f ±%-*.*f", width, precision, e.value, precision + 3, precision, e.se);
}

/* The matrices and distributions of one period for the numpy peer (bench/forecast_peer.py). */
static int export_model(const loaded *l, const forecast_period_inputs *p, const char *path)
{
    const anm_zone *z = l->zone;
    anm_error_detail err;
    forecast_constraint_options opts = forecast_constraint_options_default();
    opts.month = l->inputs->date.month;
    opts.day = l->inputs->date.day;
    forecast_constraint_set *set = NULL;
    int rc = forecast_constraint_set_new(l->network, z, &opts, &set, &err);
    if (rc != ANM_OK) {
        return rc;
    }
    size_t n = forecast_constraint_set_count(set), nd = z->n_ders;
    const double *base = forecast_constraint_set_base_mw(set);
    const double *dem = forecast_constraint_set_demand_mw_per_unit(set);
    const double *sens = forecast_constraint_set_der_sensitivity(set);
    const double *lim = forecast_constraint_set_limit_mw(set);
    json_t *rows = json_array(), *ders = json_array();
    for (size_t r = 0; r < n; r++) {
        json_t *row = json_array();
        json_array_append_new(row, json_real(base[r] - dem[r]));
        json_array_append_new(row, json_real(dem[r]));
        for (size_t j = 0; j < nd; j++) {
            json_array_append_new(row, json_real(sens[r * nd + j]));
        }
        json_array_append_new(rows, row);
    }
    json_t *limits = json_array();
    for (size_t r = 0; r < n; r++) {
        json_array_append_new(limits, json_real(lim[r]));
    }
    for (size_t j = 0; j < nd; j++) {
        const anm_der *d = &z->ders[j];
        const forecast_der_inputs *di = &p->ders[j];
        json_array_append_new(
            ders, json_pack("{s:s,s:s,s:f,s:i,s:b,s:o,s:o,s:o}", "id", d->id, "technology",
                            anm_technology_name(d->technology), "capacity_mw", d->capacity_mw,
                            "lifo_position", d->lifo_position, "under_anm", d->under_anm,
                            "available_mw",
                            isnan(di->available_mw) ? json_null() : json_real(di->available_mw),
                            "pn_mw", isnan(di->pn_mw) ? json_null() : json_real(di->pn_mw),
                            "fixed_mw", isnan(di->fixed_mw) ? json_null() : json_real(di->fixed_mw)));
    }
    const forecast_demand_dist *dd = &p->demand;
    json_t *root = json_pack(
        "{s:s,s:i,s:o,s:o,s:o,s:{s:i,s:f,s:f,s:f,s:f,s:f,s:f},s:{s:i,s:f,s:f,s:f,s:f,s:f},"
        "s:{s:i,s:f,s:f,s:f,s:f,s:f,s:f,s:f},s:f}",
        "zone", z->id, "period", p->period, "coef", rows, "limit", limits, "ders", ders, "demand",
        "kind", (int)dd->kind, "a", dd->a, "b", dd->b, "alpha", dd->alpha, "beta", dd->beta,
        "forecast", dd->forecast, "sd", dd->sd, "wind", "kind", (int)p->wind.kind, "alpha",
        p->wind.alpha, "beta", p->wind.beta, "sigma", p->wind.sigma, "forecast",
        p->wind.forecast, "sd", p->wind.sd, "solar", "kind", (int)p->solar.kind, "alpha",
        p->solar.alpha, "beta", p->solar.beta, "sigma", p->solar.sigma, "scale", p->solar.scale,
        "day_probability", p->solar.day_probability, "forecast", p->solar.forecast, "sd",
        p->solar.sd, "sensitivity_threshold", 0.01);
    forecast_constraint_set_destroy(&set);
    if (!root) {
        return ANM_ENOMEM;
    }
    rc = json_dump_file(root, path, JSON_COMPACT) == 0 ? ANM_OK : ANM_EIO;
    json_decref(root);
    return rc;
}

int forecast_cli_pcf(const char *program, int argc, char **argv)
{
    options o;
    int status = parse_options(program, "pcf", argc, argv, &o);
    if (status != ANM_EXIT_OK) {
        return status;
    }
    loaded l;
    status = load_all(program, &o, &l);
    if (status != ANM_EXIT_OK) {
        loaded_free(&l);
        return status;
    }
    int period = o.period ? (int)o.period : l.inputs->periods[0].period;
    const forecast_period_inputs *p = forecast_inputs_period(l.inputs, period);
    if (!p) {
        loaded_free(&l);
        return anm_cli_fail(program, "%s gives no period %d", o.inputs_path, period);
    }
    if (o.export_path) {
        int rc = export_model(&l, p, o.export_path);
        loaded_free(&l);
        return rc == ANM_OK ? ANM_EXIT_OK
                            : anm_cli_fail(program, "could not export to \"%s\": %s",
                                           o.export_path, anm_strerror(rc));
    }
    forecast_pcf_config config = config_of(&o);
    forecast_pcf_result *r = NULL;
    anm_error_detail err;
    anm_error_detail_clear(&err);
    int64_t t0 = anm_monotonic_ns();
    int rc = forecast_pcf_run(l.model, p, &config, &r, &err);
    double seconds = (double)(anm_monotonic_ns() - t0) * 1e-9;
    if (rc != ANM_OK) {
        status = report(program, &err, rc);
        loaded_free(&l);
        return status;
    }
    anm_settlement_period sp;
    if (anm_calendar_period(l.inputs->date, period, &sp) != ANM_OK) {
        forecast_pcf_result_destroy(&r);
        loaded_free(&l);
        return anm_cli_fail(program, "period %d is not a period of the inputs' date", period);
    }
    if (strcmp(o.format, "json") == 0) {
        json_t *j = forecast_statement_period_json(l.zone, &sp, r);
        if (j) {
            json_object_set_new(j, "zone", json_string(l.zone->id));
            json_object_set_new(j, "seed", json_integer((json_int_t)config.seed));
            json_object_set_new(j, "inputs_sha256", json_string(l.inputs->sha256_hex));
            json_dumpf(j, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
            fputc('\n', stdout);
            json_decref(j);
        } else {
            status = anm_cli_fail(program, "out of memory");
        }
    } else {
        printf("zone %s period %d (%s) samples %zu seed %" PRIu64 " access %s\n", l.zone->id,
               period, l.inputs->periods[0].period == period ? "first of the file" : "given",
               r->samples, config.seed, anm_access_name(l.zone->access));
        printf("P(ANM acts) %.6f ±%.6f  P(unresolved) %.6f ±%.6f\n", r->anm_acts.value,
               r->anm_acts.se, r->unresolved.value, r->unresolved.se);
        printf("headroom MW p10 %.3f p50 %.3f p90 %.3f\n", r->headroom_p10_mw.value,
               r->headroom_p50_mw.value, r->headroom_p90_mw.value);
        printf("%-16s %18s %22s %22s %22s\n", "der", "pcf", "E[curtailed] MW", "p90 MW",
               "E[available] MW");
        for (size_t j = 0; j < r->n_ders; j++) {
            printf("%-16s", l.zone->ders[j].id);
            print_estimate(stdout, r->ders[j].pcf, 8, 5);
            print_estimate(stdout, r->ders[j].expected_curtailed_mw, 10, 4);
            print_estimate(stdout, r->ders[j].curtailment_p90_mw, 10, 4);
            print_estimate(stdout, r->ders[j].expected_available_mw, 10, 4);
            fputc('\n', stdout);
        }
        for (size_t b = 0; b < r->n_bindings && b < 5; b++) {
            const forecast_pcf_binding *bd = &r->bindings[b];
            if (bd->contingency) {
                printf("binding %s after branch %d: %.6f\n", l.zone->monitored[bd->monitored].id,
                       bd->contingency, bd->frequency);
            } else {
                printf("binding %s, no contingency: %.6f\n", l.zone->monitored[bd->monitored].id,
                       bd->frequency);
            }
        }
        printf("kernel %s\n", forecast_pcf_kernel_name());
        printf("elapsed_s %.6f samples_per_s %.0f rows_per_sample %.1f threads %u\n", seconds,
               (double)r->samples / seconds, r->rows_evaluated_per_sample, config.threads);
    }
    forecast_pcf_result_destroy(&r);
    loaded_free(&l);
    return status;
}

int forecast_cli_day_ahead(const char *program, int argc, char **argv)
{
    options o;
    int status = parse_options(program, "day-ahead", argc, argv, &o);
    if (status != ANM_EXIT_OK) {
        return status;
    }
    loaded l;
    anm_clock *clock = NULL;
    forecast_pcf_result *results[ANM_MAX_PERIODS_PER_DAY] = {0};
    size_t n_results = 0;
    json_t *statement = NULL;
    status = load_all(program, &o, &l);
    if (status != ANM_EXIT_OK) {
        goto done;
    }
    if (o.date) {
        anm_settlement_date d;
        anm_error_detail derr;
        if (anm_settlement_date_parse(o.date, &d, &derr) != ANM_OK) {
            status = anm_cli_usage_error(program, "--date: %s", derr.message);
            goto done;
        }
        if (anm_settlement_date_compare(d, l.inputs->date) != 0) {
            status = anm_cli_fail(program, "--date %s is not the inputs' settlement date", o.date);
            goto done;
        }
    }
    if (anm_clock_new_from_spec(o.clock_spec, &clock) != ANM_OK) {
        status = anm_cli_usage_error(program, "bad --clock \"%s\"", o.clock_spec);
        goto done;
    }
    forecast_pcf_config config = config_of(&o);
    anm_error_detail err;
    anm_error_detail_clear(&err);
    int64_t t0 = anm_monotonic_ns();
    int rc = forecast_statement_run_day(l.model, l.inputs, &config, results, &n_results, &err);
    double seconds = (double)(anm_monotonic_ns() - t0) * 1e-9;
    if (rc != ANM_OK) {
        status = report(program, &err, rc);
        goto done;
    }
    forecast_statement_info info = {
        .date = l.inputs->date,
        .horizon = FORECAST_HORIZON_DAY_AHEAD,
        .version = (int)o.version,
        .issued_ms = anm_clock_now_ms(clock),
        .seed = config.seed,
        .max_samples = config.max_samples,
        .ci_width = config.ci_width,
        .inputs_sha256 = l.inputs->sha256_hex,
        .inputs_path = o.inputs_path,
        .case_name = l.network->name,
    };
    statement = forecast_statement_build(l.zone, &info, results, n_results);
    if (!statement || json_dump_file(statement, o.out_path, JSON_INDENT(1) |
                                                                JSON_REAL_PRECISION(10)) != 0) {
        status = anm_cli_fail(program, "could not write the statement to \"%s\"", o.out_path);
        goto done;
    }
    char date[ANM_DATE_SIZE];
    anm_settlement_date_format(l.inputs->date, date, sizeof date);
    size_t total_samples = 0;
    for (size_t k = 0; k < n_results; k++) {
        total_samples += results[k]->samples;
    }
    printf("zone %s %s day-ahead: %zu periods, %zu samples, %.3f s -> %s\n", l.zone->id, date,
           n_results, total_samples, seconds, o.out_path);
    printf("%-16s %10s %10s %18s\n", "der", "day_pcf", "max_pcf", "curtailed_mwh");
    for (size_t j = 0; j < l.zone->n_ders; j++) {
        double mean_pcf = 0.0, max_pcf = 0.0, mwh = 0.0;
        for (size_t k = 0; k < n_results; k++) {
            double p = results[k]->ders[j].pcf.value;
            mean_pcf += p / (double)n_results;
            max_pcf = p > max_pcf ? p : max_pcf;
            mwh += results[k]->ders[j].expected_curtailed_mwh.value;
        }
        printf("%-16s %10.5f %10.5f %18.4f\n", l.zone->ders[j].id, mean_pcf, max_pcf, mwh);
    }
    printf("day_ahead_s %.3f\n", seconds);
done:
    json_decref(statement);
    for (size_t k = 0; k < n_results; k++) {
        forecast_pcf_result_destroy(&results[k]);
    }
    anm_clock_destroy(&clock);
    loaded_free(&l);
    return status;
}
