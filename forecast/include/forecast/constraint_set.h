/*
 * constraint_set.h: the linearised constraint set of one ANM zone in one
 * network state, the input of the ANM rules (rule.h) for any number of
 * samples.
 *
 * A constraint is a monitored branch's export flow (the branch's from-end
 * flow times its export direction, +1 from_to, -1 to_from) against a limit,
 * in one network state:
 *   - corrective mode: one row per monitored branch in the state (intact, or
 *     with the sampled outages), limit the normal rating;
 *   - preventive mode: those rows, plus for each of the zone's
 *     contingencies (not already out in the state) one row per monitored
 *     branch after that outage, limit the post-fault rating.
 * Rows are ordered state by state: rows [0, n_monitored) the state itself,
 * then n_monitored rows per contingency in the zone's order (with
 * options.prune, the rows that can bind, in that order: use
 * forecast_constraint_set_row_monitored / _row_contingency to name a row).
 *
 * Each row's export flow is an affine function of the sample:
 *
 *     flow_c = base_mw[c] + demand_mw_per_unit[c] * (demand_scale - 1)
 *                         + sum_j der_sensitivity[c][j] * der_mw[j]
 *
 * where demand_scale multiplies every bus load PD of the case (GS is not
 * scaled), the case's own generators stay at their PG, the reference bus
 * balances, and der_mw[j] is the output of zone DER j (all of the zone's
 * DERs, in zone order; export positive, a "demand" DER withdraws der_mw[j]
 * MW at its bus). base_mw is the flow of the case's own dispatch at
 * demand_scale 1 with every DER at 0. A sample therefore costs
 * n_constraints * (n_ders + 1) multiply-adds.
 *
 * How rows are computed: the state's model (forecast_dc_model_new_outage;
 * an outage that islands de-energises what lies beyond it, whose loads and
 * DERs then drop out) gives the base flows and the monitored PTDF rows; a
 * contingency k that is not a bridge of the state adds
 * f_l + LODF[l][k] f_k and PTDF_l + LODF[l][k] PTDF_k; one that is a bridge
 * of the state (possible only on top of sampled outages) is re-solved on a
 * model with k out too.
 *
 * A set is immutable after building: any number of threads may read it.
 */
#ifndef FORECAST_CONSTRAINT_SET_H
#define FORECAST_CONSTRAINT_SET_H

#include "engine/error.h"
#include "engine/network.h"
#include "engine/zone.h"
#include "forecast/rule.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct forecast_constraint_set forecast_constraint_set;

typedef struct forecast_constraint_options {
    /* the network state: branches out of service (1-based, as zone files
       number them); NULL / 0 for the intact network */
    const int *outaged_branches;
    size_t n_outaged;
    /* ratings: the seasonal rating covering (month, day) where the zone
       has one; month 0 for the plain normal/post-fault ratings */
    int month, day;
    /* overrides the zone's mode when >= 0 (an anm_curtailment_mode) */
    int mode;
    /* drop the rows that cannot go over their limit for any demand scale in
       [prune_demand_min, prune_demand_max] and any DER output in
       [0, capacity_mw] (the rows no rule can ever act on: on bench118 all
       but ~200 of 1,780); off by default. Samples outside those bounds
       would need the full set. */
    bool prune;
    double prune_demand_min, prune_demand_max;
} forecast_constraint_options;

/* Options for the intact network, plain ratings, the zone's own mode. */
forecast_constraint_options forecast_constraint_options_default(void);

/*
 * Builds the set of zone on case c (both borrowed, used only during the
 * call). opts may be NULL (the defaults). *out is new; free with
 * forecast_constraint_set_destroy. Returns ANM_OK, ANM_ENOMEM, ANM_EINVAL
 * (an outaged branch out of range; err says which) or what building the DC
 * model returns (ANM_ECONFIG, ANM_ENUMERIC). err may be NULL.
 */
int forecast_constraint_set_new(const anm_case *c, const anm_zone *zone,
                                const forecast_constraint_options *opts,
                                forecast_constraint_set **out, anm_error_detail *err);
void forecast_constraint_set_destroy(forecast_constraint_set **set);

size_t forecast_constraint_set_count(const forecast_constraint_set *set);     /* rows */
size_t forecast_constraint_set_der_count(const forecast_constraint_set *set); /* zone DERs */
size_t forecast_constraint_set_monitored_count(const forecast_constraint_set *set);
anm_curtailment_mode forecast_constraint_set_mode(const forecast_constraint_set *set);

/* Borrowed arrays, valid for the set's lifetime. */
const double *forecast_constraint_set_base_mw(const forecast_constraint_set *set);
const double *forecast_constraint_set_demand_mw_per_unit(const forecast_constraint_set *set);
/* [n_constraints * n_ders], row-major, zone DER order */
const double *forecast_constraint_set_der_sensitivity(const forecast_constraint_set *set);
const double *forecast_constraint_set_limit_mw(const forecast_constraint_set *set);

/* [n_ders] 1 if the DER's bus is connected to the reference bus in the
   set's network state, 0 if an outage has disconnected it (its
   sensitivities are then 0: its output reaches no monitored branch) */
const unsigned char *forecast_constraint_set_der_energised(const forecast_constraint_set *set);

/* Row c: index of its monitored element in zone->monitored, and the
   contingency (1-based branch number) it is after, 0 for the state itself. */
size_t forecast_constraint_set_row_monitored(const forecast_constraint_set *set, size_t c);
int forecast_constraint_set_row_contingency(const forecast_constraint_set *set, size_t c);

/*
 * The export flow of every row (flow_mw, n_constraints values) for
 * demand_scale and der_mw (n_ders values, zone order).
 */
void forecast_constraint_set_flows(const forecast_constraint_set *set, double demand_scale,
                                   const double *der_mw, double *flow_mw);

/*
 * The rule input for one sample, restricted to the DERs under ANM (in zone
 * order; DERs not under ANM run at their available output and enter the
 * flows only). A view holds its own arrays; fill it per sample with
 * forecast_constraint_view_fill, then pass view->problem to
 * forecast_rule_apply. One view per thread.
 */
typedef struct forecast_constraint_view {
    forecast_rule_problem problem; /* pointers into the arrays below and the set */
    size_t n_anm;                  /* = problem.n_ders */
    size_t *anm_der;               /* [n_anm] zone DER index of each rule DER */
    size_t *lifo_order;            /* [n_anm] rule DER indices, last connected first */
    double *sensitivity;           /* [n_constraints * n_anm] */
    double *flow_mw;               /* [n_constraints] */
    double *available_mw;          /* [n_anm] */
} forecast_constraint_view;

/* *out is new; free with forecast_constraint_view_destroy. */
int forecast_constraint_view_new(const forecast_constraint_set *set, const anm_zone *zone,
                                 forecast_constraint_view **out);
void forecast_constraint_view_destroy(forecast_constraint_view **view);

/*
 * Sets the view's problem to the sample (demand_scale, available_mw of every
 * zone DER in zone order; under-ANM and not): problem.flow_mw is the export
 * flow with every DER at its available MW.
 */
void forecast_constraint_view_fill(forecast_constraint_view *view,
                                   const forecast_constraint_set *set, double demand_scale,
                                   const double *available_mw);

#endif
