/*
 * statement.h: the constraint statement of one zone for one settlement day
 * (schema: docs/constraint-statement.md, "anm.constraint_statement"
 * version FORECAST_STATEMENT_SCHEMA_VERSION).
 *
 * A statement covers every period of the settlement day (46, 48 or 50) with
 * the PCF results of each, and carries its id, version, issue time (engine
 * clock), horizon and the provenance of its inputs (inputs file SHA-256,
 * seed, samples).
 */
#ifndef FORECAST_STATEMENT_H
#define FORECAST_STATEMENT_H

#include "engine/calendar.h"
#include "engine/error.h"
#include "engine/zone.h"
#include "forecast/pcf.h"

#include <jansson.h>
#include <stdint.h>

#define FORECAST_STATEMENT_SCHEMA "anm.constraint_statement"
#define FORECAST_STATEMENT_SCHEMA_VERSION 1

typedef enum forecast_horizon {
    FORECAST_HORIZON_DAY_AHEAD = 0,
    FORECAST_HORIZON_REAL_TIME = 1
} forecast_horizon;

const char *forecast_horizon_name(forecast_horizon horizon); /* "day_ahead", "real_time" */

typedef struct forecast_statement_info {
    anm_settlement_date date;
    forecast_horizon horizon;
    int version;             /* >= 1: re-issues of the same statement count up */
    int64_t issued_ms;       /* engine clock, UTC ms */
    uint64_t seed;
    size_t max_samples;      /* per period */
    double ci_width;         /* 0: fixed sample count */
    const char *inputs_sha256; /* 64 hex digits */
    const char *inputs_path;   /* may be NULL */
    const char *case_name;     /* may be NULL */
} forecast_statement_info;

/*
 * Runs the PCF of every period of inputs->date (the inputs must give each
 * one) and writes results[k] for period k + 1 (results has room for
 * ANM_MAX_PERIODS_PER_DAY; *n_results gets the day's period count; each is
 * new, free with forecast_pcf_result_destroy). Returns ANM_OK, ANM_ECONFIG
 * (a period missing from the inputs; err names it) or what
 * forecast_pcf_run returns.
 */
int forecast_statement_run_day(const forecast_pcf_model *model, const forecast_inputs *inputs,
                               const forecast_pcf_config *config, forecast_pcf_result **results,
                               size_t *n_results, anm_error_detail *err);

/*
 * The statement as JSON (new reference), from the day's results in period
 * order. Returns NULL on ENOMEM or when n_results is not the day's period
 * count.
 */
json_t *forecast_statement_build(const anm_zone *zone, const forecast_statement_info *info,
                                 forecast_pcf_result *const *results, size_t n_results);

/* One period's summary as JSON (new reference), the element of "periods". */
json_t *forecast_statement_period_json(const anm_zone *zone, const anm_settlement_period *period,
                                       const forecast_pcf_result *result);

#endif
