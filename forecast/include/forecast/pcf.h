/*
 * pcf.h: the Monte Carlo Probabilistic Curtailment Factor of one zone and
 * settlement period.
 *
 * A zone model (forecast_pcf_model) holds the zone's linearised constraint
 * sets, one per outage state of the inputs (constraint_set.h), for one
 * settlement date (seasonal ratings). forecast_pcf_run then samples the
 * period's inputs (sampler.h) in blocks of FORECAST_PCF_BLOCK samples, each
 * block on its own random stream (seed, zone, period, block), applies the
 * zone's ANM rule (rule.h) to each sample and summarises.
 *
 * Reproducibility: a run is a pure function of (model, inputs, seed,
 * samples / ci_width): blocks are taken by any thread, their results are
 * kept per block and combined in block order, and the stopping rule is
 * checked only after each round of FORECAST_PCF_ROUND blocks, in block
 * order. The thread count changes the speed, never a digit.
 *
 * Pruning (exact): per run and outage state, over the box of the period's
 * possible inputs (forecast_sampler_bounds), the rows whose flow can never
 * exceed their limit are left out of the rule, and the rows that another
 * row's slack always undercuts are left out of the headroom; each sample
 * then costs a handful of rows (6 of 1,780 on bench118), and only samples
 * whose least slack is below -1e-9 MW go through the rule. Results are
 * those of evaluating every row (forecast_pcf_config.exhaustive).
 */
#ifndef FORECAST_PCF_H
#define FORECAST_PCF_H

#include "engine/error.h"
#include "engine/network.h"
#include "engine/zone.h"
#include "forecast/inputs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { FORECAST_PCF_BLOCK = 1024, FORECAST_PCF_ROUND = 16 };

typedef struct forecast_pcf_model forecast_pcf_model;

/*
 * Builds the model of zone (borrowed; must outlive the model) on case c
 * (used during the call only) for the outage states of inputs (borrowed,
 * must outlive the model) and its settlement date. Returns ANM_OK,
 * ANM_ENOMEM or what building the constraint sets returns (err says why).
 */
int forecast_pcf_model_new(const anm_case *c, const anm_zone *zone, const forecast_inputs *inputs,
                           forecast_pcf_model **out, anm_error_detail *err);
void forecast_pcf_model_destroy(forecast_pcf_model **model);

size_t forecast_pcf_model_constraint_count(const forecast_pcf_model *model); /* state 0 rows */

typedef struct forecast_pcf_config {
    uint64_t seed;
    size_t max_samples;   /* the sample cap (> 0) */
    double ci_width;      /* 0: run max_samples; else stop when every 95% CI width of a
                             DER's PCF and of P(ANM acts) is <= ci_width */
    unsigned threads;     /* 0: all online cores */
    double sensitivity_threshold; /* MW/MW, default 0.01 */
    bool exhaustive;      /* false (default): prune rows that cannot bind or be the
                             least slack (see above); true: every row of every
                             sample, through the rule too (slow; same results, for
                             tests and diagnostics) */
} forecast_pcf_config;

forecast_pcf_config forecast_pcf_config_default(void);

/* A statistic with its standard error. */
typedef struct forecast_estimate {
    double value;
    double se;
} forecast_estimate;

typedef struct forecast_pcf_der {
    forecast_estimate pcf;                   /* P(curtailment > 1e-9 MW) */
    forecast_estimate expected_curtailed_mw;
    forecast_estimate expected_curtailed_mwh; /* over the half hour */
    forecast_estimate curtailment_p50_mw, curtailment_p90_mw, curtailment_p99_mw;
    forecast_estimate expected_available_mw;
    forecast_estimate expected_delivered_mw;
} forecast_pcf_der;

/* How often one constraint row (a monitored element, after a contingency or
   not) was the binding one, and the DERs' sensitivities to it. */
typedef struct forecast_pcf_binding {
    size_t monitored;      /* index into zone->monitored */
    int contingency;       /* 1-based branch number, 0: none (the state itself) */
    size_t state;          /* outage state index */
    double frequency;      /* share of samples in which it was the binding row */
    double *sensitivity;   /* [n_ders] MW of export flow per MW of each DER (zone order) */
} forecast_pcf_binding;

typedef struct forecast_pcf_result {
    int period;
    size_t samples;
    size_t n_ders;
    forecast_pcf_der *ders;               /* [n_ders], zone order */
    forecast_estimate anm_acts;           /* P(some DER curtailed) */
    forecast_estimate unresolved;         /* P(unresolved) */
    forecast_estimate headroom_p10_mw, headroom_p50_mw, headroom_p90_mw;
    size_t n_bindings;                    /* rows that bound at least once, most frequent first */
    forecast_pcf_binding *bindings;
    size_t n_contingencies;               /* contingencies that bound, most frequent first */
    int *contingency_branch;              /* [n_contingencies] 1-based, 0 = no contingency */
    double *contingency_frequency;        /* [n_contingencies] */
    double rows_evaluated_per_sample;     /* rows the screening kernel evaluates per sample */
} forecast_pcf_result;

/*
 * Runs the Monte Carlo for period (borrowed) with config. *out is new; free
 * with forecast_pcf_result_destroy. Returns ANM_OK, ANM_EINVAL (bad config),
 * ANM_ENOMEM, ANM_ECONFIG (inputs the sampler refuses; err says why) or
 * ANM_ENUMERIC (the rule's LP failed).
 */
int forecast_pcf_run(const forecast_pcf_model *model, const forecast_period_inputs *period,
                     const forecast_pcf_config *config, forecast_pcf_result **out,
                     anm_error_detail *err);
void forecast_pcf_result_destroy(forecast_pcf_result **result);

/*
 * Two-sided quantile q of the n values x (modified in place: partially
 * ordered) with its standard error by the order-statistic (binomial)
 * method: the 95% distribution-free interval [x_(l), x_(u)], l, u =
 * n q -/+ 1.96 sqrt(n q (1 - q)), divided by 2 * 1.96. Exposed for tests.
 */
forecast_estimate forecast_quantile_estimate(float *x, size_t n, double q);

/* Which build of the flow kernel this CPU runs, e.g. "x86-64-v4 (AVX-512 ...)"
   (a static string), for benchmarks and diagnostics. */
const char *forecast_pcf_kernel_name(void);

#endif
