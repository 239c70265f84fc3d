/*
 * rule.c: the ANM principles of access on one linearised sample (rule.h).
 *
 * Notation: F_c the export flow of constraint c with every DER at its
 * available output, L_c its limit, a_cj the sensitivity, A_j the available
 * MW, x_j = A_j - p_j the curtailment of DER j. Constraint c holds when
 * F_c - sum_j a_cj x_j <= L_c + 1e-9.
 *
 * LIFO      one pass down the queue with the current flows kept up to date;
 *           DER j is cut by max over the violated constraints it relieves
 *           (a_cj > threshold) of excess_c / a_cj, clipped to A_j. The pass
 *           stops early once no constraint is violated (no later DER would
 *           be touched). With negative sensitivities further passes follow
 *           (see apply_lifo).
 * pro-rata  flow_c(alpha) = F_c - alpha S_c with S_c = sum_j a_cj A_j is
 *           linear, hence monotone, in alpha: S_c > 0 gives a lower bound
 *           alpha >= (F_c - L_c) / S_c, S_c < 0 an upper bound
 *           alpha <= (F_c - L_c) / S_c, S_c = 0 holds or never does. The
 *           least feasible alpha is the largest lower bound (clipped at 0)
 *           if it lies within every upper bound and 1; otherwise the sample
 *           is unresolved and alpha = 1.
 * min-MW    min sum x_j s.t. sum_j a_cj x_j >= F_c - L_c, 0 <= x_j <= A_j,
 *           by constraint generation: start with the violated rows; with
 *           exactly one, curtail in order of decreasing sensitivity (the
 *           optimum of a one-row covering LP); otherwise, or when that
 *           point violates another row (a negative sensitivity), GLPK's
 *           dual simplex on the rows met so far, adding the rows the
 *           solution violates until none is. Infeasible: unresolved, every
 *           DER at 0.
 */
#include "forecast/rule.h"

#include "engine/error.h"

#include <glpk.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_THRESHOLD 0.01
/* sensitivities below this are left out of the LP (numerical noise of PTDF) */
#define LP_DROP 1e-12
/* rounds of constraint generation before giving up (each adds >= 1 row) */
#define MAX_LP_ROUNDS 64
/* passes down the LIFO queue (more than one only with negative sensitivities) */
#define LIFO_MAX_PASSES 200

struct forecast_rule_workspace {
    size_t max_constraints;
    size_t max_ders;
    double *flow;         /* [max_constraints] current flow */
    double *curtail;      /* [max_ders] x_j */
    size_t *order;        /* [max_ders] scratch order */
    int *index;           /* [max_ders + 1] GLPK 1-based column indices */
    double *value;        /* [max_ders + 1] GLPK row values */
    unsigned char *in_lp; /* [max_constraints] row already in the LP */
    size_t *violated;     /* [max_constraints] */
    glp_prob *lp;         /* created lazily in the solving thread */
    /* forecast_rule_workspace_prepare: a column-major copy of one
       sensitivity matrix, used while problems point at that matrix */
    const double *prepared_for;
    size_t prepared_constraints, prepared_ders;
    double *column; /* [max_ders * max_constraints] */
};

forecast_rule_workspace *forecast_rule_workspace_new(size_t max_constraints, size_t max_ders)
{
    forecast_rule_workspace *ws = calloc(1, sizeof *ws);
    if (!ws) {
        return NULL;
    }
    size_t nc = max_constraints ? max_constraints : 1, nd = max_ders ? max_ders : 1;
    ws->max_constraints = max_constraints;
    ws->max_ders = max_ders;
    ws->flow = malloc(nc * sizeof *ws->flow);
    ws->curtail = malloc(nd * sizeof *ws->curtail);
    ws->order = malloc(nd * sizeof *ws->order);
    ws->index = malloc((nd + 1) * sizeof *ws->index);
    ws->value = malloc((nd + 1) * sizeof *ws->value);
    ws->in_lp = malloc(nc * sizeof *ws->in_lp);
    ws->violated = malloc(nc * sizeof *ws->violated);
    ws->column = malloc(nc * nd * sizeof *ws->column);
    if (!ws->flow || !ws->curtail || !ws->order || !ws->index || !ws->value || !ws->in_lp ||
        !ws->violated || !ws->column) {
        forecast_rule_workspace_destroy(&ws);
        return NULL;
    }
    return ws;
}

void forecast_rule_thread_end(void)
{
    (void)glp_free_env(); /* 1 when the thread never used GLPK: nothing to free */
}

void forecast_rule_workspace_destroy(forecast_rule_workspace **p)
{
    if (!p || !*p) {
        return;
    }
    forecast_rule_workspace *ws = *p;
    if (ws->lp) {
        glp_delete_prob(ws->lp);
    }
    free(ws->flow);
    free(ws->curtail);
    free(ws->order);
    free(ws->index);
    free(ws->value);
    free(ws->in_lp);
    free(ws->violated);
    free(ws->column);
    free(ws);
    *p = NULL;
}

int forecast_rule_workspace_prepare(forecast_rule_workspace *ws,
                                    const forecast_rule_problem *problem)
{
    if (!ws || !problem || problem->n_constraints > ws->max_constraints ||
        problem->n_ders > ws->max_ders ||
        (!problem->sensitivity && problem->n_constraints && problem->n_ders)) {
        return ANM_EINVAL;
    }
    size_t nc = problem->n_constraints, nd = problem->n_ders;
    for (size_t c = 0; c < nc; c++) {
        for (size_t j = 0; j < nd; j++) {
            ws->column[j * nc + c] = problem->sensitivity[c * nd + j];
        }
    }
    ws->prepared_for = problem->sensitivity;
    ws->prepared_constraints = nc;
    ws->prepared_ders = nd;
    return ANM_OK;
}

/* Column j of the sensitivity (stride 1) when prepared, else NULL. */
static const double *column_of(const forecast_rule_problem *pb, const forecast_rule_workspace *ws,
                               size_t j)
{
    if (ws->prepared_for == pb->sensitivity && ws->prepared_constraints == pb->n_constraints &&
        ws->prepared_ders == pb->n_ders) {
        return ws->column + j * pb->n_constraints;
    }
    return NULL;
}

static double threshold_of(const forecast_rule_problem *pb)
{
    double t = pb->sensitivity_threshold;
    return (isnan(t) || t < 0.0) ? DEFAULT_THRESHOLD : t;
}

/* flow of c at curtailment x */
static double flow_at(const forecast_rule_problem *pb, size_t c, const double *x)
{
    const double *a = pb->sensitivity + c * pb->n_ders;
    double f = pb->flow_mw[c];
    for (size_t j = 0; j < pb->n_ders; j++) {
        f -= a[j] * x[j];
    }
    return f;
}

/*
 * The flows at curtailment x into ws->flow, and the indices of the rows over
 * their limit into ws->violated (returns how many). Prepared: one pass over
 * the columns of the DERs with x_j > 0 (stride 1); otherwise row by row.
 */
static size_t find_violated(const forecast_rule_problem *pb, const double *x,
                            forecast_rule_workspace *ws)
{
    size_t nc = pb->n_constraints, n = 0;
    if (column_of(pb, ws, 0) || pb->n_ders == 0) {
        memcpy(ws->flow, pb->flow_mw, nc * sizeof *ws->flow);
        for (size_t j = 0; j < pb->n_ders; j++) {
            if (x[j] != 0.0) {
                const double *col = column_of(pb, ws, j);
                for (size_t c = 0; c < nc; c++) {
                    ws->flow[c] -= col[c] * x[j];
                }
            }
        }
    } else {
        for (size_t c = 0; c < nc; c++) {
            ws->flow[c] = flow_at(pb, c, x);
        }
    }
    for (size_t c = 0; c < nc; c++) {
        if (ws->flow[c] > pb->limit_mw[c] + FORECAST_CURTAIL_EPSILON_MW) {
            ws->violated[n++] = c;
        }
    }
    return n;
}

/* ---------- LIFO ---------- */

static void apply_lifo(const forecast_rule_problem *pb, forecast_rule_workspace *ws, double *x)
{
    size_t nc = pb->n_constraints, nd = pb->n_ders;
    double threshold = threshold_of(pb);
    memcpy(ws->flow, pb->flow_mw, nc * sizeof *ws->flow);
    size_t n_violated = 0;
    for (size_t c = 0; c < nc; c++) {
        if (ws->flow[c] > pb->limit_mw[c] + FORECAST_CURTAIL_EPSILON_MW) {
            ws->violated[n_violated++] = c;
        }
    }
    /* One pass down the queue settles every sample whose sensitivities are
       non-negative. A DER with a negative sensitivity raises that row when
       curtailed, which can put a row over after the DERs relieving it were
       passed: further passes continue from the outputs reached until no row
       is over or a pass changes nothing. */
    for (size_t pass = 0; pass < LIFO_MAX_PASSES && n_violated > 0; pass++) {
        bool changed = false;
        for (size_t q = 0; q < nd && n_violated > 0; q++) {
            size_t j = pb->lifo_order[q];
            double cut = 0.0;
            for (size_t v = 0; v < n_violated; v++) {
                size_t c = ws->violated[v];
                double a = pb->sensitivity[c * nd + j];
                if (a > threshold) {
                    double need = (ws->flow[c] - pb->limit_mw[c]) / a;
                    if (need > cut) {
                        cut = need;
                    }
                }
            }
            if (cut <= 0.0 || x[j] >= pb->available_mw[j]) {
                continue;
            }
            if (cut >= pb->available_mw[j] - x[j]) {
                cut = pb->available_mw[j] - x[j];
                x[j] = pb->available_mw[j]; /* exactly off */
            } else {
                x[j] += cut;
            }
            changed = true;
            n_violated = 0;
            const double *col = column_of(pb, ws, j);
            for (size_t c = 0; c < nc; c++) {
                ws->flow[c] -= (col ? col[c] : pb->sensitivity[c * nd + j]) * cut;
                if (ws->flow[c] > pb->limit_mw[c] + FORECAST_CURTAIL_EPSILON_MW) {
                    ws->violated[n_violated++] = c;
                }
            }
        }
        if (!changed) {
            break;
        }
    }
}

/* ---------- pro-rata ---------- */

/* Returns alpha, or NAN when no alpha in [0, 1] satisfies every constraint. */
static double pro_rata_alpha(const forecast_rule_problem *pb)
{
    size_t nd = pb->n_ders;
    double lower = 0.0, upper = 1.0;
    for (size_t c = 0; c < pb->n_constraints; c++) {
        const double *a = pb->sensitivity + c * nd;
        double s = 0.0;
        for (size_t j = 0; j < nd; j++) {
            s += a[j] * pb->available_mw[j];
        }
        double excess = pb->flow_mw[c] - pb->limit_mw[c];
        if (s > 0.0) {
            double t = excess / s;
            if (t > lower) {
                lower = t;
            }
        } else if (s < 0.0) {
            /* flow rises with alpha: alpha <= (excess - eps) / s, eps lets the
               limit's own tolerance through */
            double t = (excess - FORECAST_CURTAIL_EPSILON_MW) / s;
            if (t < upper) {
                upper = t;
            }
        } else if (excess > FORECAST_CURTAIL_EPSILON_MW) {
            return NAN;
        }
    }
    if (lower > upper) {
        return NAN; /* the constraints pull alpha both ways and cannot all hold */
    }
    return lower;
}

/* ---------- min-MW ---------- */

/* Curtail in order of decreasing sensitivity to row c until it holds.
   Returns 1 if it holds, 0 if it cannot. */
static int greedy_one_row(const forecast_rule_problem *pb, size_t c, forecast_rule_workspace *ws,
                          double *x)
{
    size_t nd = pb->n_ders;
    const double *a = pb->sensitivity + c * nd;
    size_t n = 0;
    for (size_t j = 0; j < nd; j++) {
        if (a[j] > 0.0 && pb->available_mw[j] > 0.0) {
            ws->order[n++] = j;
        }
    }
    /* insertion sort by decreasing sensitivity, ties by index: n is small */
    for (size_t i = 1; i < n; i++) {
        size_t j = ws->order[i], k = i;
        while (k > 0 && a[ws->order[k - 1]] < a[j]) {
            ws->order[k] = ws->order[k - 1];
            k--;
        }
        ws->order[k] = j;
    }
    double excess = pb->flow_mw[c] - pb->limit_mw[c];
    for (size_t i = 0; i < n && excess > 0.0; i++) {
        size_t j = ws->order[i];
        double cut = excess / a[j];
        if (cut > pb->available_mw[j]) {
            cut = pb->available_mw[j];
        }
        x[j] = cut;
        excess -= a[j] * cut;
    }
    return excess <= FORECAST_CURTAIL_EPSILON_MW;
}

/* Returns ANM_OK, or ANM_EINVAL for a non-finite entry (GLPK would abort). */
static int lp_add_row(const forecast_rule_problem *pb, size_t c, forecast_rule_workspace *ws)
{
    double bound = pb->flow_mw[c] - pb->limit_mw[c];
    if (!isfinite(bound)) {
        return ANM_EINVAL;
    }
    size_t nd = pb->n_ders;
    const double *a = pb->sensitivity + c * nd;
    int row = glp_add_rows(ws->lp, 1);
    int n = 0;
    for (size_t j = 0; j < nd; j++) {
        if (!isfinite(a[j])) {
            return ANM_EINVAL;
        }
        if (fabs(a[j]) > LP_DROP) {
            n++;
            ws->index[n] = (int)j + 1;
            ws->value[n] = a[j];
        }
    }
    glp_set_mat_row(ws->lp, row, n, ws->index, ws->value);
    glp_set_row_bnds(ws->lp, row, GLP_LO, bound, 0.0);
    ws->in_lp[c] = 1;
    return ANM_OK;
}

/*
 * Nudges x so that rows violated by a hair (the LP's own 1e-7 feasibility
 * tolerance) hold to 1e-9 MW: more curtailment from the most sensitive DER
 * with room left. Returns the number of rows still violated.
 */
static size_t polish(const forecast_rule_problem *pb, forecast_rule_workspace *ws, double *x)
{
    size_t nd = pb->n_ders;
    for (int round = 0; round < 4; round++) {
        size_t n = find_violated(pb, x, ws);
        if (n == 0) {
            return 0;
        }
        for (size_t v = 0; v < n; v++) {
            size_t c = ws->violated[v];
            const double *a = pb->sensitivity + c * nd;
            double excess = flow_at(pb, c, x) - pb->limit_mw[c];
            if (excess <= FORECAST_CURTAIL_EPSILON_MW || excess > 1e-5) {
                continue;
            }
            size_t best = nd;
            for (size_t j = 0; j < nd; j++) {
                if (a[j] > LP_DROP && x[j] < pb->available_mw[j] &&
                    (best == nd || a[j] > a[best])) {
                    best = j;
                }
            }
            if (best < nd) {
                double cut = x[best] + excess / a[best] * (1.0 + 1e-9);
                x[best] = cut > pb->available_mw[best] ? pb->available_mw[best] : cut;
            }
        }
    }
    return find_violated(pb, x, ws);
}

/* Returns ANM_OK with *feasible set, or ANM_ENUMERIC. */
static int apply_min_mw(const forecast_rule_problem *pb, forecast_rule_workspace *ws, double *x,
                        bool *feasible)
{
    size_t nd = pb->n_ders, nc = pb->n_constraints;
    *feasible = true;
    size_t n_violated = find_violated(pb, x, ws);
    if (n_violated == 0) {
        return ANM_OK;
    }
    if (n_violated == 1) {
        size_t c = ws->violated[0];
        if (greedy_one_row(pb, c, ws, x) && find_violated(pb, x, ws) == 0) {
            return ANM_OK;
        }
        /* the greedy point breaks another row (or cannot fix this one): LP */
        memset(x, 0, nd * sizeof *x);
        n_violated = find_violated(pb, x, ws);
    }

    if (!ws->lp) {
        glp_term_out(GLP_OFF);
        ws->lp = glp_create_prob();
        if (!ws->lp) {
            return ANM_ENOMEM;
        }
    } else {
        glp_erase_prob(ws->lp);
    }
    glp_prob *lp = ws->lp;
    glp_set_obj_dir(lp, GLP_MIN);
    glp_add_cols(lp, (int)nd);
    for (size_t j = 0; j < nd; j++) {
        double avail = pb->available_mw[j];
        if (!isfinite(avail)) {
            return ANM_EINVAL;
        }
        if (avail > 0.0) {
            glp_set_col_bnds(lp, (int)j + 1, GLP_DB, 0.0, avail);
        } else {
            glp_set_col_bnds(lp, (int)j + 1, GLP_FX, 0.0, 0.0);
        }
        glp_set_obj_coef(lp, (int)j + 1, 1.0);
    }
    memset(ws->in_lp, 0, nc * sizeof *ws->in_lp);
    for (size_t v = 0; v < n_violated; v++) {
        int rc = lp_add_row(pb, ws->violated[v], ws);
        if (rc != ANM_OK) {
            return rc;
        }
    }
    glp_smcp parm;
    glp_init_smcp(&parm);
    parm.msg_lev = GLP_MSG_OFF;
    parm.meth = GLP_DUALP;
    /* all rows basic, every curtailment at 0: dual feasible (costs are 1) */
    glp_std_basis(lp);
    for (int round = 0; round < MAX_LP_ROUNDS; round++) {
        int rc = glp_simplex(lp, &parm);
        if (rc != 0) {
            /* a bad basis after adding rows: start over from a fresh one */
            glp_std_basis(lp);
            rc = glp_simplex(lp, &parm);
            if (rc != 0) {
                return ANM_ENUMERIC;
            }
        }
        int status = glp_get_status(lp);
        if (status == GLP_NOFEAS || glp_get_prim_stat(lp) == GLP_NOFEAS) {
            *feasible = false;
            return ANM_OK;
        }
        if (status != GLP_OPT) {
            return ANM_ENUMERIC;
        }
        for (size_t j = 0; j < nd; j++) {
            double v = glp_get_col_prim(lp, (int)j + 1);
            x[j] = v < 0.0 ? 0.0 : (v > pb->available_mw[j] ? pb->available_mw[j] : v);
        }
        /* rows the LP has not seen yet that this point violates */
        size_t added = 0, n_over = find_violated(pb, x, ws);
        for (size_t v = 0; v < n_over; v++) {
            size_t c = ws->violated[v];
            if (!ws->in_lp[c]) {
                rc = lp_add_row(pb, c, ws);
                if (rc != ANM_OK) {
                    return rc;
                }
                added++;
            }
        }
        if (added == 0) {
            if (polish(pb, ws, x) != 0) {
                return ANM_ENUMERIC;
            }
            return ANM_OK;
        }
    }
    return ANM_ENUMERIC;
}

/* ---------- entry point ---------- */

int forecast_rule_apply(anm_access access, const forecast_rule_problem *problem,
                        forecast_rule_workspace *ws, double *dispatch_mw,
                        forecast_rule_result *result)
{
    if (!problem || !ws || !dispatch_mw || !result ||
        problem->n_constraints > ws->max_constraints || problem->n_ders > ws->max_ders ||
        (problem->n_constraints > 0 && (!problem->flow_mw || !problem->limit_mw)) ||
        (problem->n_ders > 0 && !problem->available_mw) ||
        (problem->n_constraints > 0 && problem->n_ders > 0 && !problem->sensitivity) ||
        (access == ANM_ACCESS_LIFO && problem->n_ders > 0 && !problem->lifo_order)) {
        return ANM_EINVAL;
    }
    const forecast_rule_problem *pb = problem;
    size_t nd = pb->n_ders, nc = pb->n_constraints;
    if (access == ANM_ACCESS_LIFO) {
        for (size_t q = 0; q < nd; q++) {
            if (pb->lifo_order[q] >= nd) {
                return ANM_EINVAL;
            }
        }
    }
    memset(result, 0, sizeof *result);
    result->binding_constraint = -1;
    double worst = FORECAST_CURTAIL_EPSILON_MW;
    for (size_t c = 0; c < nc; c++) {
        double excess = pb->flow_mw[c] - pb->limit_mw[c];
        if (excess > worst) {
            worst = excess;
            result->binding_constraint = (long)c;
        }
    }
    double *x = ws->curtail;
    memset(x, 0, (nd ? nd : 1) * sizeof *x);
    int rc = ANM_OK;
    if (result->binding_constraint >= 0) {
        switch (access) {
        case ANM_ACCESS_LIFO:
            apply_lifo(pb, ws, x);
            result->unresolved = find_violated(pb, x, ws) > 0;
            break;
        case ANM_ACCESS_PRO_RATA: {
            double alpha = pro_rata_alpha(pb);
            if (isnan(alpha) || alpha > 1.0) {
                alpha = 1.0;
                result->unresolved = true;
            }
            result->pro_rata_alpha = alpha;
            for (size_t j = 0; j < nd; j++) {
                x[j] = alpha * pb->available_mw[j];
            }
            break;
        }
        case ANM_ACCESS_MIN_MW: {
            bool feasible = true;
            rc = apply_min_mw(pb, ws, x, &feasible);
            if (rc == ANM_OK && !feasible) {
                result->unresolved = true;
                for (size_t j = 0; j < nd; j++) {
                    x[j] = pb->available_mw[j];
                }
            }
            break;
        }
        default: return ANM_EINVAL;
        }
    }
    if (rc != ANM_OK) {
        return rc;
    }
    double total = 0.0;
    for (size_t j = 0; j < nd; j++) {
        dispatch_mw[j] = pb->available_mw[j] - x[j];
        if (dispatch_mw[j] < 0.0) {
            dispatch_mw[j] = 0.0;
        }
        total += pb->available_mw[j] - dispatch_mw[j];
    }
    result->total_curtailed_mw = total;
    result->curtailed = total > FORECAST_CURTAIL_EPSILON_MW || result->unresolved;
    return ANM_OK;
}
