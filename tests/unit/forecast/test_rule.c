/*
 * The ANM rules (forecast/rule.h) on linearised samples:
 *   - hand-worked problems with the exact curtailment of every DER, worked
 *     in the comments (LIFO, pro-rata, min-MW; thresholds; negative
 *     sensitivities; unresolved samples);
 *   - min-MW against an independent exact reference: enumeration of every
 *     vertex of the feasible polytope {x : A x >= e, 0 <= x <= A_max} of
 *     random 3-DER problems (the LP optimum is attained at a vertex);
 *   - properties on random problems: after every rule each constraint holds
 *     or the sample is unresolved; LIFO curtails along the queue.
 *
 * Tolerances: hand-worked values are sums of a few terms of magnitude <= 100
 * in double precision, exact to ~1e-13, so 1e-9 MW; the LP's results are
 * polished to hold each constraint to 1e-9 MW and GLPK's basic solution is
 * accurate to ~1e-12 relative on these well-scaled problems: 1e-7 MW on the
 * optimum total.
 */
#include "engine/error.h"
#include "forecast/rule.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-9

typedef struct sample {
    size_t nc, nd;
    double flow[8], limit[8], sens[8 * 4], avail[4];
    size_t order[4];
    double threshold;
} sample;

static forecast_rule_problem problem_of(const sample *s)
{
    forecast_rule_problem p;
    memset(&p, 0, sizeof p);
    p.n_constraints = s->nc;
    p.n_ders = s->nd;
    p.flow_mw = s->flow;
    p.limit_mw = s->limit;
    p.sensitivity = s->sens;
    p.available_mw = s->avail;
    p.lifo_order = s->order;
    p.sensitivity_threshold = s->threshold;
    return p;
}

static forecast_rule_result run(anm_access access, const sample *s, double *dispatch)
{
    forecast_rule_problem p = problem_of(s);
    forecast_rule_workspace *ws = forecast_rule_workspace_new(8, 4);
    cr_assert_not_null(ws);
    forecast_rule_result res;
    int rc = forecast_rule_apply(access, &p, ws, dispatch, &res);
    cr_assert_eq(rc, ANM_OK, "rule %d returned %d", (int)access, rc);
    forecast_rule_workspace_destroy(&ws);
    cr_assert_null(ws);
    return res;
}

static void expect_dispatch(const double *got, const double *want, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        cr_expect(fabs(got[j] - want[j]) <= TOL, "DER %zu: dispatched %.12g MW, expected %.12g", j,
                  got[j], want[j]);
    }
}

static double flow_after(const sample *s, size_t c, const double *dispatch)
{
    double f = s->flow[c];
    for (size_t j = 0; j < s->nd; j++) {
        f += s->sens[c * s->nd + j] * (dispatch[j] - s->avail[j]);
    }
    return f;
}

/* ---------- LIFO ---------- */

Test(rule_lifo, last_connected_takes_the_excess)
{
    /* one constraint, unit sensitivities, excess 10 - 6 = 4: the last
       connected DER (index 2, 5 MW available) gives 4 */
    sample s = {.nc = 1,
                .nd = 3,
                .flow = {10},
                .limit = {6},
                .sens = {1, 1, 1},
                .avail = {4, 3, 5},
                .order = {2, 1, 0},
                .threshold = 0.01};
    double d[3];
    forecast_rule_result r = run(ANM_ACCESS_LIFO, &s, d);
    expect_dispatch(d, (double[]){4, 3, 1}, 3);
    cr_expect(fabs(r.total_curtailed_mw - 4.0) <= TOL);
    cr_expect(r.curtailed);
    cr_expect(!r.unresolved);
    cr_expect_eq(r.binding_constraint, 0);
}

Test(rule_lifo, excess_beyond_the_last_der_moves_up_the_queue)
{
    /* excess 8: DER 2 gives all 5, DER 1 its 3, DER 0 (first connected) keeps 4 */
    sample s = {.nc = 1,
                .nd = 3,
                .flow = {10},
                .limit = {2},
                .sens = {1, 1, 1},
                .avail = {4, 3, 5},
                .order = {2, 1, 0},
                .threshold = 0.01};
    double d[3];
    forecast_rule_result r = run(ANM_ACCESS_LIFO, &s, d);
    expect_dispatch(d, (double[]){4, 0, 0}, 3);
    cr_expect(fabs(r.total_curtailed_mw - 8.0) <= TOL);
    cr_expect(!r.unresolved);
}

Test(rule_lifo, two_constraints_and_sensitivities)
{
    /*
     * c0: a = [1, 0.5, 0.2], F = 10, L = 8 (excess 2)
     * c1: a = [0, 1, 0.5],   F = 5,  L = 4 (excess 1); available 3 each.
     * DER 2: needs max(2 / 0.2, 1 / 0.5) = 10 > 3: cut 3; c0 = 9.4, c1 = 3.5.
     * DER 1: c0 still over by 1.4: cut 1.4 / 0.5 = 2.8, leaving 0.2 MW;
     *        c0 = 8, c1 = 0.7. DER 0: nothing over, keeps 3.
     */
    sample s = {.nc = 2,
                .nd = 3,
                .flow = {10, 5},
                .limit = {8, 4},
                .sens = {1, 0.5, 0.2, 0, 1, 0.5},
                .avail = {3, 3, 3},
                .order = {2, 1, 0},
                .threshold = 0.01};
    double d[3];
    forecast_rule_result r = run(ANM_ACCESS_LIFO, &s, d);
    expect_dispatch(d, (double[]){3, 0.2, 0}, 3);
    cr_expect(fabs(r.total_curtailed_mw - 5.8) <= TOL);
    cr_expect_eq(r.binding_constraint, 0, "c0 is over by 2 MW, c1 by 1");
    cr_expect(fabs(flow_after(&s, 0, d) - 8.0) <= TOL);
}

Test(rule_lifo, sensitivity_threshold_skips_ders_that_barely_relieve)
{
    /* a = [1, 0.005], excess 1. Threshold 0.01: DER 1 (last) is skipped,
       DER 0 gives 1. Threshold 0.001: DER 1 gives all 2 MW (relieving
       0.01), DER 0 the remaining 0.99. */
    sample s = {.nc = 1,
                .nd = 2,
                .flow = {5},
                .limit = {4},
                .sens = {1, 0.005},
                .avail = {2, 2},
                .order = {1, 0},
                .threshold = 0.01};
    double d[2];
    run(ANM_ACCESS_LIFO, &s, d);
    expect_dispatch(d, (double[]){1, 2}, 2);
    s.threshold = 0.001;
    run(ANM_ACCESS_LIFO, &s, d);
    expect_dispatch(d, (double[]){1.01, 0}, 2);
}

Test(rule_lifo, unresolved_leaves_the_relieving_ders_off)
{
    /* c0: a = [1, 0], F = 10, L = 2: DER 0 off still leaves 7 > 2 (DER 1
       does not relieve it and keeps its 3 MW) */
    sample s = {.nc = 1,
                .nd = 2,
                .flow = {10},
                .limit = {2},
                .sens = {1, 0},
                .avail = {3, 3},
                .order = {1, 0},
                .threshold = 0.01};
    double d[2];
    forecast_rule_result r = run(ANM_ACCESS_LIFO, &s, d);
    expect_dispatch(d, (double[]){0, 3}, 2);
    cr_expect(r.unresolved);
    cr_expect(r.curtailed);
    cr_expect(fabs(r.total_curtailed_mw - 3.0) <= TOL);
}

Test(rule_lifo, nothing_over_nothing_curtailed)
{
    sample s = {.nc = 2,
                .nd = 2,
                .flow = {4, 2 + 0.5e-9},
                .limit = {4, 2},
                .sens = {1, 1, 1, 1},
                .avail = {3, 3},
                .order = {1, 0},
                .threshold = 0.01};
    double d[2];
    forecast_rule_result r = run(ANM_ACCESS_LIFO, &s, d);
    expect_dispatch(d, (double[]){3, 3}, 2);
    cr_expect(!r.curtailed, "within the 1e-9 MW tolerance");
    cr_expect_eq(r.binding_constraint, -1);
    cr_expect_eq(r.total_curtailed_mw, 0.0);
}

/* ---------- pro-rata ---------- */

Test(rule_pro_rata, largest_ratio_wins)
{
    /*
     * c0: a = [1, 0.5], F = 10, L = 7: S = 4 + 1 = 5, alpha >= 3 / 5 = 0.6
     * c1: a = [0.2, 1], F = 3, L = 2.5: S = 0.8 + 2 = 2.8, alpha >= 0.1786
     * alpha = 0.6: dispatch 0.4 * [4, 2] = [1.6, 0.8].
     */
    sample s = {.nc = 2,
                .nd = 2,
                .flow = {10, 3},
                .limit = {7, 2.5},
                .sens = {1, 0.5, 0.2, 1},
                .avail = {4, 2}};
    double d[2];
    forecast_rule_result r = run(ANM_ACCESS_PRO_RATA, &s, d);
    cr_expect(fabs(r.pro_rata_alpha - 0.6) <= 1e-12);
    expect_dispatch(d, (double[]){1.6, 0.8}, 2);
    cr_expect(fabs(r.total_curtailed_mw - 3.6) <= TOL);
    cr_expect(!r.unresolved);
}

Test(rule_pro_rata, negative_sensitivity_bounds_alpha_from_above)
{
    /*
     * c0: a = [1, 1],    F = 10, L = 7: S = 5, alpha >= 0.6
     * c1: a = [-1, 0.2], F = 4,  L = 5: S = -2 + 0.6 = -1.4, flow 4 + 1.4 alpha
     *     <= 5 gives alpha <= 0.714: alpha = 0.6 holds both.
     * With L1 = 4.5: alpha <= 0.357 < 0.6: no alpha works: unresolved, alpha 1.
     */
    sample s = {.nc = 2,
                .nd = 2,
                .flow = {10, 4},
                .limit = {7, 5},
                .sens = {1, 1, -1, 0.2},
                .avail = {2, 3}};
    double d[2];
    forecast_rule_result r = run(ANM_ACCESS_PRO_RATA, &s, d);
    cr_expect(fabs(r.pro_rata_alpha - 0.6) <= 1e-12);
    expect_dispatch(d, (double[]){0.8, 1.2}, 2);
    cr_expect(flow_after(&s, 1, d) <= 5.0 + TOL);
    s.limit[1] = 4.5;
    r = run(ANM_ACCESS_PRO_RATA, &s, d);
    cr_expect(r.unresolved);
    cr_expect_eq(r.pro_rata_alpha, 1.0);
    expect_dispatch(d, (double[]){0, 0}, 2);
}

Test(rule_pro_rata, unresolved_when_alpha_would_exceed_one)
{
    /* a = [1, 1], excess 8 with 6 MW available: alpha 8/6 > 1 */
    sample s = {.nc = 1, .nd = 2, .flow = {10}, .limit = {2}, .sens = {1, 1}, .avail = {3, 3}};
    double d[2];
    forecast_rule_result r = run(ANM_ACCESS_PRO_RATA, &s, d);
    cr_expect(r.unresolved);
    cr_expect(r.curtailed);
    cr_expect_eq(r.pro_rata_alpha, 1.0);
    expect_dispatch(d, (double[]){0, 0}, 2);
    cr_expect(fabs(r.total_curtailed_mw - 6.0) <= TOL);
}

/* ---------- min-MW ---------- */

Test(rule_min_mw, one_binding_constraint_most_sensitive_first)
{
    /* a = [1, 0.5, 0.8], excess 2: DER 0 (1.0) gives its 1 MW, DER 2 (0.8)
       the remaining 1 / 0.8 = 1.25: total 2.25 (DER 1 would need 2) */
    sample s = {
        .nc = 1, .nd = 3, .flow = {10}, .limit = {8}, .sens = {1, 0.5, 0.8}, .avail = {1, 5, 5}};
    double d[3];
    forecast_rule_result r = run(ANM_ACCESS_MIN_MW, &s, d);
    expect_dispatch(d, (double[]){0, 5, 3.75}, 3);
    cr_expect(fabs(r.total_curtailed_mw - 2.25) <= TOL);
}

Test(rule_min_mw, two_binding_constraints_lp)
{
    /* x0 + 0.2 x1 >= 1 and 0.2 x0 + x1 >= 1: the unique optimum is the
       corner x0 = x1 = 1 / 1.2, total 5/3 (x0 alone would need 5) */
    sample s = {.nc = 2,
                .nd = 2,
                .flow = {10, 10},
                .limit = {9, 9},
                .sens = {1, 0.2, 0.2, 1},
                .avail = {5, 5}};
    double d[2];
    forecast_rule_result r = run(ANM_ACCESS_MIN_MW, &s, d);
    expect_dispatch(d, (double[]){5 - 1 / 1.2, 5 - 1 / 1.2}, 2);
    cr_expect(fabs(r.total_curtailed_mw - 5.0 / 3.0) <= 1e-7);
    cr_expect(!r.unresolved);
}

Test(rule_min_mw, negative_sensitivity_sends_one_binding_row_to_the_lp)
{
    /*
     * c0: a = [1, 0.9], excess 1; c1: a = [-1, 0.5], F = 4.5, L = 5 (holds).
     * Greedy on c0 alone: x0 = 1, but then c1 = 4.5 + 1 = 5.5 > 5. The LP:
     * min x0 + x1, x0 + 0.9 x1 >= 1, x0 - 0.5 x1 <= 0.5: optimum where both
     * bind: x1 = 0.5 / 1.4, x0 = 0.5 + 0.5 x1; total 1.0357 (x1 alone: 1.111).
     */
    sample s = {.nc = 2,
                .nd = 2,
                .flow = {10, 4.5},
                .limit = {9, 5},
                .sens = {1, 0.9, -1, 0.5},
                .avail = {5, 5}};
    double d[2];
    forecast_rule_result r = run(ANM_ACCESS_MIN_MW, &s, d);
    double x1 = 0.5 / 1.4, x0 = 0.5 + 0.5 * x1;
    cr_expect(fabs(d[0] - (5 - x0)) <= 1e-7, "DER 0 %.12g, expected %.12g", d[0], 5 - x0);
    cr_expect(fabs(d[1] - (5 - x1)) <= 1e-7, "DER 1 %.12g, expected %.12g", d[1], 5 - x1);
    cr_expect(fabs(r.total_curtailed_mw - (x0 + x1)) <= 1e-7);
    cr_expect(flow_after(&s, 0, d) <= 9 + TOL);
    cr_expect(flow_after(&s, 1, d) <= 5 + TOL);
}

Test(rule_min_mw, infeasible_is_unresolved_with_every_der_off)
{
    sample s = {.nc = 1, .nd = 2, .flow = {10}, .limit = {2}, .sens = {1, 1}, .avail = {3, 3}};
    double d[2];
    forecast_rule_result r = run(ANM_ACCESS_MIN_MW, &s, d);
    cr_expect(r.unresolved);
    expect_dispatch(d, (double[]){0, 0}, 2);
    /* two rows, so the LP (not the greedy) decides it */
    sample t = {.nc = 2,
                .nd = 2,
                .flow = {10, 10},
                .limit = {5, 5},
                .sens = {1, 0, 0, 0.5},
                .avail = {8, 8}};
    r = run(ANM_ACCESS_MIN_MW, &t, d);
    cr_expect(r.unresolved, "c1 needs x1 >= 10 > 8");
    expect_dispatch(d, (double[]){0, 0}, 2);
}

Test(rule, workspace_too_small_is_einval)
{
    sample s = {.nc = 2,
                .nd = 2,
                .flow = {10, 10},
                .limit = {5, 5},
                .sens = {1, 0, 0, 1},
                .avail = {8, 8},
                .order = {1, 0}};
    forecast_rule_problem p = problem_of(&s);
    forecast_rule_workspace *ws = forecast_rule_workspace_new(1, 2);
    double d[2];
    forecast_rule_result r;
    cr_expect_eq(forecast_rule_apply(ANM_ACCESS_LIFO, &p, ws, d, &r), ANM_EINVAL);
    s.order[0] = 7;
    p.n_constraints = 1;
    cr_expect_eq(forecast_rule_apply(ANM_ACCESS_LIFO, &p, ws, d, &r), ANM_EINVAL,
                 "queue index out of range");
    forecast_rule_workspace_destroy(&ws);
    forecast_rule_workspace_destroy(&ws);
}

/* ---------- random problems against references ---------- */

static uint64_t next_random(uint64_t *state)
{
    /* splitmix64 */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *state, double lo, double hi)
{
    return lo + (hi - lo) * (double)(next_random(state) >> 11) * 0x1.0p-53;
}

static void random_sample(sample *s, uint64_t *state, size_t nc, size_t nd, double negative_lo)
{
    memset(s, 0, sizeof *s);
    s->nc = nc;
    s->nd = nd;
    s->threshold = 0.01;
    for (size_t j = 0; j < nd; j++) {
        s->avail[j] = uniform(state, 0.0, 10.0);
        s->order[j] = nd - 1 - j;
    }
    for (size_t c = 0; c < nc; c++) {
        s->limit[c] = uniform(state, 5.0, 20.0);
        s->flow[c] = s->limit[c] + uniform(state, -6.0, 8.0);
        for (size_t j = 0; j < nd; j++) {
            s->sens[c * nd + j] = uniform(state, negative_lo, 1.0);
        }
    }
}

/* Solves the 3x3 system M x = b by Gaussian elimination with partial
   pivoting; returns 0 if singular. */
static int solve3(double m[3][3], double b[3], double x[3])
{
    for (int k = 0; k < 3; k++) {
        int p = k;
        for (int i = k + 1; i < 3; i++) {
            if (fabs(m[i][k]) > fabs(m[p][k])) {
                p = i;
            }
        }
        if (fabs(m[p][k]) < 1e-12) {
            return 0;
        }
        for (int j = 0; j < 3; j++) {
            double t = m[k][j];
            m[k][j] = m[p][j];
            m[p][j] = t;
        }
        double t = b[k];
        b[k] = b[p];
        b[p] = t;
        for (int i = k + 1; i < 3; i++) {
            double f = m[i][k] / m[k][k];
            for (int j = k; j < 3; j++) {
                m[i][j] -= f * m[k][j];
            }
            b[i] -= f * b[k];
        }
    }
    for (int i = 2; i >= 0; i--) {
        double acc = b[i];
        for (int j = i + 1; j < 3; j++) {
            acc -= m[i][j] * x[j];
        }
        x[i] = acc / m[i][i];
    }
    return 1;
}

/*
 * The least total curtailment of a 3-DER sample by vertex enumeration:
 * every choice of 3 tight constraints among the rows (a_c . x = e_c) and the
 * bounds (x_j = 0, x_j = avail_j), solved and kept if feasible. Returns the
 * optimum, or NAN when no vertex is feasible (the polytope is empty).
 */
static double vertex_minimum(const sample *s)
{
    size_t n_planes = s->nc + 6;
    double best = NAN;
    for (size_t p = 0; p < n_planes; p++) {
        for (size_t q = p + 1; q < n_planes; q++) {
            for (size_t r = q + 1; r < n_planes; r++) {
                size_t pick[3] = {p, q, r};
                double m[3][3], b[3], x[3];
                for (int i = 0; i < 3; i++) {
                    size_t k = pick[i];
                    for (int j = 0; j < 3; j++) {
                        m[i][j] = 0.0;
                    }
                    if (k < s->nc) {
                        for (int j = 0; j < 3; j++) {
                            m[i][j] = s->sens[k * 3 + (size_t)j];
                        }
                        b[i] = s->flow[k] - s->limit[k];
                    } else {
                        size_t j = (k - s->nc) / 2;
                        m[i][j] = 1.0;
                        b[i] = (k - s->nc) % 2 ? s->avail[j] : 0.0;
                    }
                }
                if (!solve3(m, b, x)) {
                    continue;
                }
                int ok = 1;
                for (size_t j = 0; j < 3 && ok; j++) {
                    ok = x[j] >= -1e-9 && x[j] <= s->avail[j] + 1e-9;
                }
                for (size_t c = 0; c < s->nc && ok; c++) {
                    double lhs = 0.0;
                    for (size_t j = 0; j < 3; j++) {
                        lhs += s->sens[c * 3 + j] * x[j];
                    }
                    ok = lhs >= s->flow[c] - s->limit[c] - 1e-9;
                }
                if (ok && (isnan(best) || x[0] + x[1] + x[2] < best)) {
                    best = x[0] + x[1] + x[2];
                }
            }
        }
    }
    return best;
}

Test(rule_min_mw, matches_vertex_enumeration_on_random_problems)
{
    uint64_t state = 20260611;
    forecast_rule_workspace *ws = forecast_rule_workspace_new(8, 4);
    cr_assert_not_null(ws);
    int n_lp = 0, n_infeasible = 0;
    for (int trial = 0; trial < 400; trial++) {
        sample s;
        random_sample(&s, &state, 1 + (size_t)(trial % 5), 3, trial % 2 ? -0.4 : 0.0);
        double best = vertex_minimum(&s);
        forecast_rule_problem p = problem_of(&s);
        double d[3];
        forecast_rule_result r;
        cr_assert_eq(forecast_rule_apply(ANM_ACCESS_MIN_MW, &p, ws, d, &r), ANM_OK);
        if (isnan(best)) {
            n_infeasible++;
            cr_expect(r.unresolved, "trial %d: no feasible vertex but not unresolved", trial);
            continue;
        }
        cr_expect(!r.unresolved, "trial %d: feasible (optimum %g) but unresolved", trial, best);
        cr_expect(fabs(r.total_curtailed_mw - best) <= 1e-7 * (1.0 + best),
                  "trial %d: total %.12g, vertex optimum %.12g", trial, r.total_curtailed_mw, best);
        for (size_t c = 0; c < s.nc; c++) {
            cr_expect(flow_after(&s, c, d) <= s.limit[c] + TOL, "trial %d row %zu", trial, c);
        }
        n_lp += r.binding_constraint >= 0;
    }
    /* the sample mix exercises both outcomes */
    cr_expect(n_infeasible > 10 && n_lp > 100, "infeasible %d, curtailed %d", n_infeasible, n_lp);
    forecast_rule_workspace_destroy(&ws);
}

Test(rule, every_rule_leaves_constraints_held_or_unresolved)
{
    uint64_t state = 7;
    forecast_rule_workspace *ws = forecast_rule_workspace_new(8, 4);
    const anm_access rules[3] = {ANM_ACCESS_LIFO, ANM_ACCESS_PRO_RATA, ANM_ACCESS_MIN_MW};
    for (int trial = 0; trial < 600; trial++) {
        sample s;
        random_sample(&s, &state, 1 + (size_t)(trial % 8), 4, trial % 3 ? -0.3 : 0.0);
        forecast_rule_problem p = problem_of(&s);
        for (int k = 0; k < 3; k++) {
            double d[4];
            forecast_rule_result r;
            cr_assert_eq(forecast_rule_apply(rules[k], &p, ws, d, &r), ANM_OK);
            double total = 0.0;
            for (size_t j = 0; j < s.nd; j++) {
                cr_expect(d[j] >= 0.0 && d[j] <= s.avail[j], "dispatch within [0, available]");
                total += s.avail[j] - d[j];
            }
            cr_expect(fabs(total - r.total_curtailed_mw) <= 1e-12 * (1.0 + total));
            if (!r.unresolved) {
                for (size_t c = 0; c < s.nc; c++) {
                    cr_expect(flow_after(&s, c, d) <= s.limit[c] + TOL,
                              "rule %d trial %d row %zu: %.12g > %.12g", k, trial, c,
                              flow_after(&s, c, d), s.limit[c]);
                }
            } else if (k == 0) {
                /* LIFO unresolved: some row over with every DER that relieves it off */
                int found = 0;
                for (size_t c = 0; c < s.nc && !found; c++) {
                    int all_off = 1;
                    for (size_t j = 0; j < s.nd; j++) {
                        all_off = all_off && (s.sens[c * 4 + j] <= 0.01 || d[j] == 0.0);
                    }
                    found = all_off && flow_after(&s, c, d) > s.limit[c] + TOL;
                }
                cr_expect(found, "trial %d: LIFO unresolved without a hopeless row", trial);
                if (!found) {
                    for (size_t c = 0; c < s.nc; c++) {
                        fprintf(stderr, "row %zu flow %.12g limit %.12g sens %g %g %g %g\n", c,
                                flow_after(&s, c, d), s.limit[c], s.sens[c * 4], s.sens[c * 4 + 1],
                                s.sens[c * 4 + 2], s.sens[c * 4 + 3]);
                    }
                    fprintf(stderr, "d %g %g %g %g avail %g %g %g %g\n", d[0], d[1], d[2], d[3],
                            s.avail[0], s.avail[1], s.avail[2], s.avail[3]);
                }
            }
            if (k == 2 && !r.unresolved && r.binding_constraint >= 0) {
                /* min-MW never curtails more than any other rule that resolved */
                double other[4];
                forecast_rule_result ro;
                for (int o = 0; o < 2; o++) {
                    cr_assert_eq(forecast_rule_apply(rules[o], &p, ws, other, &ro), ANM_OK);
                    if (!ro.unresolved) {
                        cr_expect(r.total_curtailed_mw <= ro.total_curtailed_mw + 1e-7,
                                  "trial %d: min-MW %.9g > rule %d %.9g", trial,
                                  r.total_curtailed_mw, o, ro.total_curtailed_mw);
                    }
                }
            }
        }
    }
    forecast_rule_workspace_destroy(&ws);
}

Test(rule_lifo, curtails_along_the_queue_on_one_constraint)
{
    /* one row, every sensitivity above the threshold: the curtailed DERs are
       a prefix of the queue, all fully off except the last of them */
    uint64_t state = 99;
    forecast_rule_workspace *ws = forecast_rule_workspace_new(8, 4);
    for (int trial = 0; trial < 300; trial++) {
        sample s;
        random_sample(&s, &state, 1, 4, 0.02);
        s.order[0] = 2;
        s.order[1] = 0;
        s.order[2] = 3;
        s.order[3] = 1;
        forecast_rule_problem p = problem_of(&s);
        double d[4];
        forecast_rule_result r;
        cr_assert_eq(forecast_rule_apply(ANM_ACCESS_LIFO, &p, ws, d, &r), ANM_OK);
        int seen_partial_or_untouched = 0;
        for (size_t q = 0; q < 4; q++) {
            size_t j = s.order[q];
            if (seen_partial_or_untouched) {
                cr_expect_eq(d[j], s.avail[j],
                             "trial %d: DER %zu (queue %zu) curtailed after "
                             "a DER later in the queue kept output",
                             trial, j, q);
            } else if (d[j] > 0.0) {
                seen_partial_or_untouched = 1;
            }
        }
    }
    forecast_rule_workspace_destroy(&ws);
}
