/*
 * rule.h: the ANM principles of access applied to one sample (one period,
 * one network state), on a linearised constraint set.
 *
 * A constraint c is a monitored element's export flow against its limit, in
 * one network state (intact, or after a contingency). Its flow is linear in
 * the output of the DERs under ANM:
 *
 *     flow_c(p) = flow_mw[c] + sum_j sensitivity[c * n_ders + j] * (p_j - available_mw[j])
 *
 * where flow_mw[c] is the export flow with every DER at its available
 * output and sensitivity[c][j] the change of that export flow per MW more
 * from DER j (PTDF, post-contingency through LODF, signed by the export
 * direction). A constraint holds when flow_c(p) <= limit_mw[c] + 1e-9.
 *
 * Rules (issue 6, "ANM rules"):
 *   LIFO      DERs in `order` (last connected first): each set to the
 *             largest output in [0, available] at which every constraint it
 *             relieves (sensitivity > threshold) holds, given the outputs
 *             already set (earlier DERs in the queue at available, later
 *             ones as already curtailed).
 *   pro-rata  one common fraction alpha in [0, 1] curtailed from every DER,
 *             the least that satisfies every constraint.
 *   min-MW    the least total curtailment satisfying every constraint (LP).
 * Unresolved: a constraint still over its limit by more than 1e-9 MW with
 * every DER at 0 (or alpha = 1); outputs stay at that.
 */
#ifndef FORECAST_RULE_H
#define FORECAST_RULE_H

#include "engine/zone.h"

#include <stdbool.h>
#include <stddef.h>

#define FORECAST_CURTAIL_EPSILON_MW 1e-9

typedef struct forecast_rule_problem {
    size_t n_constraints;
    size_t n_ders;
    const double *flow_mw;      /* [n_constraints] export flow with every DER at available */
    const double *limit_mw;     /* [n_constraints] */
    const double *sensitivity;  /* [n_constraints * n_ders], row-major, MW/MW */
    const double *available_mw; /* [n_ders], >= 0 */
    const size_t *lifo_order;   /* [n_ders] DER indices, last connected first (LIFO only) */
    double sensitivity_threshold; /* MW/MW; default 0.01 */
} forecast_rule_problem;

typedef struct forecast_rule_result {
    bool curtailed;        /* total curtailment > 1e-9 MW */
    bool unresolved;       /* a constraint over its limit with every DER off */
    double total_curtailed_mw;
    double pro_rata_alpha; /* pro-rata only */
    long binding_constraint; /* index of the most violated (pre-ANM) constraint, -1 if none */
} forecast_rule_result;

typedef struct forecast_rule_workspace forecast_rule_workspace;

/* Scratch space for problems up to these sizes (reused across samples, one per thread). */
forecast_rule_workspace *forecast_rule_workspace_new(size_t max_constraints, size_t max_ders);
void forecast_rule_workspace_destroy(forecast_rule_workspace **ws);

/*
 * Optional speed-up for many samples over one sensitivity matrix (a
 * constraint view's): keeps a column-major copy of problem->sensitivity in
 * ws, used by forecast_rule_apply whenever a problem has the same
 * sensitivity pointer and sizes (LIFO's and min-MW's flow updates then run
 * at stride 1). Prepare again if the matrix's contents change. Returns
 * ANM_OK or ANM_EINVAL (sizes beyond the workspace).
 */
int forecast_rule_workspace_prepare(forecast_rule_workspace *ws,
                                    const forecast_rule_problem *problem);

/*
 * Frees the calling thread's GLPK environment (the min-MW LP's). A thread
 * that applied rules and is about to exit calls it after destroying its
 * workspaces (GLPK keeps one environment per thread; a workspace's LP
 * belongs to the thread that first solved with it and must be used and
 * destroyed there). Harmless in a thread that never solved an LP; never
 * call it in a thread whose other GLPK objects are still in use.
 */
void forecast_rule_thread_end(void);

/*
 * Applies rule `access` to problem: writes dispatch_mw[j] (the output each
 * DER is allowed, 0 <= dispatch <= available) and fills result. Returns
 * ANM_OK, ANM_EINVAL (sizes beyond the workspace) or ANM_ENUMERIC (the LP
 * failed).
 */
int forecast_rule_apply(anm_access access, const forecast_rule_problem *problem,
                        forecast_rule_workspace *ws, double *dispatch_mw,
                        forecast_rule_result *result);

#endif
