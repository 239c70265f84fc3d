/*
 * statement.c: constraint statements (statement.h).
 */
#include "forecast/statement.h"

#include "engine/clock.h"
#include "engine/version.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *forecast_horizon_name(forecast_horizon horizon)
{
    return horizon == FORECAST_HORIZON_REAL_TIME ? "real_time" : "day_ahead";
}

int forecast_statement_run_day(const forecast_pcf_model *model, const forecast_inputs *inputs,
                               const forecast_pcf_config *config, forecast_pcf_result **results,
                               size_t *n_results, anm_error_detail *err)
{
    *n_results = 0;
    int count = anm_calendar_period_count(inputs->date);
    if (count < 0) {
        return ANM_EINVAL;
    }
    for (int p = 1; p <= count; p++) {
        if (!forecast_inputs_period(inputs, p)) {
            char date[ANM_DATE_SIZE];
            if (anm_settlement_date_format(inputs->date, date, sizeof date) != ANM_OK) {
                date[0] = '\0';
            }
            anm_error_detail_set(err, inputs->path, 0, 0, "periods",
                                 "the inputs give no period %d of %s (%d periods)", p, date, count);
            return ANM_ECONFIG;
        }
    }
    for (int p = 1; p <= count; p++) {
        int rc = forecast_pcf_run(model, forecast_inputs_period(inputs, p), config,
                                  &results[p - 1], err);
        if (rc != ANM_OK) {
            for (int q = 1; q < p; q++) {
                forecast_pcf_result_destroy(&results[q - 1]);
            }
            return rc;
        }
    }
    *n_results = (size_t)count;
    return ANM_OK;
}

/* NaN and infinities have no JSON form: null. */
static json_t *number(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *estimate(forecast_estimate e)
{
    return json_pack("{s:o,s:o}", "value", number(e.value), "se", number(e.se));
}

static json_t *contingency_json(int branch)
{
    return branch > 0 ? json_integer(branch) : json_null();
}

json_t *forecast_statement_period_json(const anm_zone *zone, const anm_settlement_period *period,
                                       const forecast_pcf_result *r)
{
    char start[ANM_UTC_TIME_SIZE], end[ANM_UTC_TIME_SIZE];
    if (anm_calendar_format_utc(period->utc_start_ms, start, sizeof start) != ANM_OK ||
        anm_calendar_format_utc(period->utc_end_ms, end, sizeof end) != ANM_OK) {
        return NULL;
    }
    json_t *ders = json_array();
    json_t *bindings = json_array();
    json_t *contingencies = json_array();
    if (!ders || !bindings || !contingencies) {
        goto fail;
    }
    for (size_t j = 0; j < r->n_ders; j++) {
        const forecast_pcf_der *d = &r->ders[j];
        json_t *sens = json_array();
        for (size_t b = 0; sens && b < r->n_bindings; b++) {
            const forecast_pcf_binding *bd = &r->bindings[b];
            json_array_append_new(
                sens, json_pack("{s:s,s:o,s:o}", "constraint", zone->monitored[bd->monitored].id,
                                "contingency", contingency_json(bd->contingency), "mw_per_mw",
                                number(bd->sensitivity[j])));
        }
        json_t *o = json_pack(
            "{s:s,s:s,s:b,s:o,s:o,s:o,s:{s:o,s:o,s:o},s:o,s:o,s:o}", "der", zone->ders[j].id,
            "technology", anm_technology_name(zone->ders[j].technology), "under_anm",
            zone->ders[j].under_anm, "pcf", estimate(d->pcf), "expected_curtailed_mw",
            estimate(d->expected_curtailed_mw), "expected_curtailed_mwh",
            estimate(d->expected_curtailed_mwh), "curtailment_mw", "p50",
            estimate(d->curtailment_p50_mw), "p90", estimate(d->curtailment_p90_mw), "p99",
            estimate(d->curtailment_p99_mw), "expected_available_mw",
            estimate(d->expected_available_mw), "expected_delivered_mw",
            estimate(d->expected_delivered_mw), "sensitivities", sens ? sens : json_null());
        if (!o || json_array_append_new(ders, o) != 0) {
            goto fail;
        }
    }
    for (size_t b = 0; b < r->n_bindings; b++) {
        const forecast_pcf_binding *bd = &r->bindings[b];
        json_t *o = json_pack("{s:s,s:i,s:o,s:I,s:o}", "constraint",
                              zone->monitored[bd->monitored].id, "branch",
                              zone->monitored[bd->monitored].branch, "contingency",
                              contingency_json(bd->contingency), "outage_state",
                              (json_int_t)bd->state, "frequency", number(bd->frequency));
        if (!o || json_array_append_new(bindings, o) != 0) {
            goto fail;
        }
    }
    for (size_t k = 0; k < r->n_contingencies; k++) {
        json_t *o = json_pack("{s:o,s:o}", "contingency", contingency_json(r->contingency_branch[k]),
                              "frequency", number(r->contingency_frequency[k]));
        if (!o || json_array_append_new(contingencies, o) != 0) {
            goto fail;
        }
    }
    return json_pack("{s:i,s:s,s:s,s:I,s:o,s:o,s:{s:o,s:o,s:o},s:o,s:o,s:o}", "period",
                     period->period, "utc_start", start, "utc_end", end, "samples",
                     (json_int_t)r->samples, "anm_acts_probability", estimate(r->anm_acts),
                     "unresolved_probability", estimate(r->unresolved), "headroom_mw", "p10",
                     estimate(r->headroom_p10_mw), "p50", estimate(r->headroom_p50_mw), "p90",
                     estimate(r->headroom_p90_mw), "binding_constraints", bindings,
                     "binding_contingencies", contingencies, "ders", ders);
fail:
    json_decref(ders);
    json_decref(bindings);
    json_decref(contingencies);
    return NULL;
}

json_t *forecast_statement_build(const anm_zone *zone, const forecast_statement_info *info,
                                 forecast_pcf_result *const *results, size_t n_results)
{
    int count = anm_calendar_period_count(info->date);
    if (count < 0 || (size_t)count != n_results) {
        return NULL;
    }
    char date[ANM_DATE_SIZE], issued[32], id[256];
    if (anm_settlement_date_format(info->date, date, sizeof date) != ANM_OK ||
        anm_time_format_utc(info->issued_ms, issued, sizeof issued) != ANM_OK) {
        return NULL;
    }
    int n = snprintf(id, sizeof id, "%s/%s/%s/%.12s", zone->id, date,
                     forecast_horizon_name(info->horizon),
                     info->inputs_sha256 ? info->inputs_sha256 : "");
    if (n < 0 || (size_t)n >= sizeof id) {
        return NULL;
    }
    json_t *periods = json_array();
    if (!periods) {
        return NULL;
    }
    for (size_t k = 0; k < n_results; k++) {
        anm_settlement_period sp;
        json_t *p = NULL;
        if (anm_calendar_period(info->date, (int)k + 1, &sp) == ANM_OK && results[k] &&
            results[k]->period == (int)k + 1) {
            p = forecast_statement_period_json(zone, &sp, results[k]);
        }
        if (!p || json_array_append_new(periods, p) != 0) {
            json_decref(periods);
            return NULL;
        }
    }
    json_t *constraints = json_array();
    for (size_t m = 0; constraints && m < zone->n_monitored; m++) {
        const anm_monitored *mon = &zone->monitored[m];
        json_array_append_new(constraints,
                              json_pack("{s:s,s:i,s:s,s:f,s:f}", "id", mon->id, "branch",
                                        mon->branch, "export_direction",
                                        mon->direction > 0 ? "from_to" : "to_from", "normal_mw",
                                        mon->normal_mw, "post_fault_mw", mon->post_fault_mw));
    }
    return json_pack(
        "{s:s,s:i,s:s,s:i,s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:o,s:{s:s,s:o,s:o,s:I,s:I,s:f,s:s},s:o}",
        "schema", FORECAST_STATEMENT_SCHEMA, "schema_version", FORECAST_STATEMENT_SCHEMA_VERSION,
        "id", id, "version", info->version, "zone", zone->id, "settlement_date", date,
        "horizon", forecast_horizon_name(info->horizon), "issued_at", issued, "period_count",
        count, "access", anm_access_name(zone->access), "mode", anm_mode_name(zone->mode),
        "monitored", constraints ? constraints : json_array(), "provenance", "inputs_sha256",
        info->inputs_sha256 ? info->inputs_sha256 : "", "inputs_file",
        info->inputs_path ? json_string(info->inputs_path) : json_null(), "case",
        info->case_name ? json_string(info->case_name) : json_null(), "seed",
        (json_int_t)info->seed, "max_samples_per_period", (json_int_t)info->max_samples,
        "ci_width", info->ci_width, "engine_version", ANM_VERSION, "periods", periods);
}
