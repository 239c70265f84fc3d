/*
 * DC power flow, PTDF and LODF (forecast/dcpf.h, ptdf.h, lodf.h) against
 * independent references:
 *   - hand-worked 3-bus cases (exact fractions, worked in the comments);
 *   - a dense reference solver written here from MATPOWER's makeBdc/dcpf
 *     formulas (its own B, GSL's dense LU, its own breadth-first search
 *     for the energised part), sharing no code with the module;
 *   - Kirchhoff's current law at every bus, with the flows recomputed here
 *     from the module's angles;
 *   - bridges against a brute-force connectivity test per branch;
 *   - case9's published DC flows (MATPOWER rundcpf).
 *
 * Tolerances: 1e-9 MW relative to the case's largest flow (max(1, |F|)).
 * Both solvers are backward stable; with B's condition numbers on these
 * cases (up to ~1e6) the solutions agree to ~1e-11 relative, so 1e-9 leaves
 * margin yet catches any modelling difference (a missed tap, shift or
 * shunt moves flows by 1e-3 MW or more).
 */
#include "engine/network.h"
#include "forecast/dcpf.h"
#include "forecast/lodf.h"
#include "forecast/ptdf.h"
#include "testlib.h"

#include <criterion/criterion.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------- in-memory cases ---------- */

static anm_case *make_case(size_t n_bus, size_t n_gen, size_t n_branch)
{
    anm_case *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    c->name = strdup("hand");
    c->path = strdup("hand.m");
    c->base_mva = 100.0;
    c->n_bus = n_bus;
    c->n_gen = n_gen;
    c->n_branch = n_branch;
    c->bus = calloc(n_bus, sizeof *c->bus);
    c->gen = calloc(n_gen ? n_gen : 1, sizeof *c->gen);
    c->branch = calloc(n_branch, sizeof *c->branch);
    for (size_t i = 0; i < n_bus; i++) {
        c->bus[i].id = (int)i + 1;
        c->bus[i].type = ANM_BUS_PQ;
        c->bus[i].vm_pu = 1.0;
    }
    c->bus[0].type = ANM_BUS_REF;
    c->ref_bus_index = 0;
    return c;
}

static void free_case(anm_case *c)
{
    free(c->name);
    free(c->path);
    free(c->bus);
    free(c->gen);
    free(c->branch);
    free(c);
}

static void set_branch(anm_case *c, size_t k, int from, int to, double x, double tap,
                       double shift_deg)
{
    c->branch[k].from_bus = from;
    c->branch[k].to_bus = to;
    c->branch[k].x_pu = x;
    c->branch[k].tap = tap;
    c->branch[k].shift_deg = shift_deg;
    c->branch[k].status = 1;
}

/*
 * The hand case (baseMVA 100):
 *   bus 1 reference; bus 2 PD 100 MW, GS 20 MW; bus 3 a generator, PG 50 MW
 *   branch 1: 1-2, x 0.1            b12 = 10
 *   branch 2: 1-3, x 0.2, shift s   b13 = 5, s = 0.01 rad (0.5729... deg)
 *   branch 3: 2-3, x 0.25, tap 0.5  b23 = 1 / (0.25 * 0.5) = 8
 * Pfinj_2 = -b13 s = -0.05; Pbusinj: bus 1 -0.05, bus 3 +0.05.
 * Right-hand side (p.u.): bus 2: (-100 - 20) / 100 = -1.2;
 *                         bus 3: 0.5 - 0.05 = 0.45.
 * Reduced B (buses 2, 3) = [18 -8; -8 13], det 170, inverse
 * [13 8; 8 18] / 170:
 *   theta2 = (13 (-1.2) + 8 (0.45)) / 170 = -12 / 170
 *   theta3 = (8 (-1.2) + 18 (0.45)) / 170 = -1.5 / 170
 * Flows (MW, from end):
 *   pf1 = 100 * 10 (0 + 12/170)                 = 1200/17  =  70.588...
 *   pf2 = 100 * (5 (0 + 1.5/170) - 0.05)        =  -10/17  =  -0.588...
 *   pf3 = 100 * 8 (-12/170 + 1.5/170)           = -840/17  = -49.411...
 * KCL: bus 2 receives 1200/17 + 840/17 = 120 = PD + GS; bus 3 sends
 * 10/17 + 840/17 = 50 = PG; the reference bus sends 1190/17 = 70.
 */
static anm_case *hand_case(void)
{
    anm_case *c = make_case(3, 1, 3);
    c->bus[1].pd_mw = 100.0;
    c->bus[1].gs_mw = 20.0;
    c->gen[0].bus = 3;
    c->gen[0].pg_mw = 50.0;
    c->gen[0].status = 1;
    set_branch(c, 0, 1, 2, 0.1, 0.0, 0.0);
    set_branch(c, 1, 1, 3, 0.2, 0.0, 0.01 * 180.0 / M_PI);
    set_branch(c, 2, 2, 3, 0.25, 0.5, 0.0);
    return c;
}

/* The hand case with a spur: branch 4, 3-4, x 0.5, feeding 10 MW at bus 4. */
static anm_case *hand_case_with_spur(void)
{
    anm_case *c = make_case(4, 1, 4);
    anm_case *h = hand_case();
    memcpy(c->bus, h->bus, 3 * sizeof *c->bus);
    memcpy(c->gen, h->gen, sizeof *c->gen);
    memcpy(c->branch, h->branch, 3 * sizeof *c->branch);
    free_case(h);
    c->bus[3].pd_mw = 10.0;
    set_branch(c, 3, 3, 4, 0.5, 0.0, 0.0);
    return c;
}

static anm_case *load_case(const char *relative)
{
    char path[1024];
    anm_case *c = NULL;
    anm_error_detail err;
    anm_test_source_path(path, sizeof path, relative);
    int rc = anm_case_load(path, &c, &err);
    cr_assert_eq(rc, ANM_OK, "%s: %s", relative, err.message);
    return c;
}

static forecast_dc_model *new_model(const anm_case *c)
{
    forecast_dc_model *m = NULL;
    anm_error_detail err;
    anm_error_detail_clear(&err);
    int rc = forecast_dc_model_new(c, &m, &err);
    cr_assert_eq(rc, ANM_OK, "%s: %s", c->name, err.message);
    return m;
}

static double *zeros(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    cr_assert_not_null(p);
    return p;
}

/* ---------- the independent dense reference ---------- */

typedef struct reference {
    const anm_case *c;
    size_t n;                 /* unknowns: energised non-reference buses */
    long *row;                /* bus -> unknown, or -1 */
    unsigned char *energised; /* bus */
    unsigned char *in_service;/* branch */
    long *from, *to;          /* bus indices */
    double *b, *pfinj;        /* per unit */
    gsl_matrix *lu;
    gsl_permutation *perm;
} reference;

/* MATPOWER's makeBdc, written out afresh, for c without branch `outaged`
 * (SIZE_MAX: none); the part the outage cuts off from the reference bus is
 * left out, as de-energised. */
static reference *reference_new(const anm_case *c, size_t outaged)
{
    reference *r = calloc(1, sizeof *r);
    size_t nb = c->n_bus, nl = c->n_branch;
    r->c = c;
    r->row = malloc(nb * sizeof *r->row);
    r->energised = calloc(nb, 1);
    r->in_service = calloc(nl, 1);
    r->from = malloc(nl * sizeof *r->from);
    r->to = malloc(nl * sizeof *r->to);
    r->b = zeros(nl);
    r->pfinj = zeros(nl);
    for (size_t k = 0; k < nl; k++) {
        r->from[k] = anm_case_bus_index(c, c->branch[k].from_bus);
        r->to[k] = anm_case_bus_index(c, c->branch[k].to_bus);
        r->in_service[k] = c->branch[k].status == 1 && k != outaged;
    }
    /* energised: repeated relaxation until nothing changes (simple, O(n l)) */
    r->energised[c->ref_bus_index] = 1;
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t k = 0; k < nl; k++) {
            if (r->in_service[k] && r->energised[r->from[k]] != r->energised[r->to[k]]) {
                r->energised[r->from[k]] = r->energised[r->to[k]] = 1;
                changed = 1;
            }
        }
    }
    for (size_t i = 0; i < nb; i++) {
        r->row[i] = (r->energised[i] && (int)i != c->ref_bus_index) ? (long)r->n++ : -1;
    }
    /* a reference bus cut off from everything leaves no unknowns */
    size_t size = r->n ? r->n : 1;
    r->lu = gsl_matrix_calloc(size, size);
    r->perm = gsl_permutation_alloc(size);
    if (r->n == 0) {
        gsl_matrix_set(r->lu, 0, 0, 1.0);
    }
    for (size_t k = 0; k < nl; k++) {
        if (!r->in_service[k] || !r->energised[r->from[k]]) {
            continue;
        }
        double tap = c->branch[k].tap != 0.0 ? c->branch[k].tap : 1.0;
        r->b[k] = 1.0 / (c->branch[k].x_pu * tap);
        r->pfinj[k] = r->b[k] * (-c->branch[k].shift_deg * M_PI / 180.0);
        long f = r->row[r->from[k]], t = r->row[r->to[k]];
        if (f >= 0) {
            *gsl_matrix_ptr(r->lu, (size_t)f, (size_t)f) += r->b[k];
        }
        if (t >= 0) {
            *gsl_matrix_ptr(r->lu, (size_t)t, (size_t)t) += r->b[k];
        }
        if (f >= 0 && t >= 0) {
            *gsl_matrix_ptr(r->lu, (size_t)f, (size_t)t) -= r->b[k];
            *gsl_matrix_ptr(r->lu, (size_t)t, (size_t)f) -= r->b[k];
        }
    }
    int signum = 0;
    cr_assert_eq(gsl_linalg_LU_decomp(r->lu, r->perm, &signum), GSL_SUCCESS);
    return r;
}

static void reference_destroy(reference *r)
{
    free(r->row);
    free(r->energised);
    free(r->in_service);
    free(r->from);
    free(r->to);
    free(r->b);
    free(r->pfinj);
    gsl_matrix_free(r->lu);
    gsl_permutation_free(r->perm);
    free(r);
}

/* Flows (MW) for injections (MW per bus). */
static void reference_flows(const reference *r, const double *injection_mw, double *pf)
{
    const anm_case *c = r->c;
    size_t size = r->n ? r->n : 1;
    gsl_vector *rhs = gsl_vector_calloc(size), *theta = gsl_vector_calloc(size);
    for (size_t k = 0; k < c->n_branch; k++) {
        long f = r->row[r->from[k]], t = r->row[r->to[k]];
        if (f >= 0) {
            *gsl_vector_ptr(rhs, (size_t)f) -= r->pfinj[k];
        }
        if (t >= 0) {
            *gsl_vector_ptr(rhs, (size_t)t) += r->pfinj[k];
        }
    }
    for (size_t i = 0; i < c->n_bus; i++) {
        if (r->row[i] >= 0) {
            *gsl_vector_ptr(rhs, (size_t)r->row[i]) += injection_mw[i] / c->base_mva;
        }
    }
    cr_assert_eq(gsl_linalg_LU_solve(r->lu, r->perm, rhs, theta), GSL_SUCCESS);
    for (size_t k = 0; k < c->n_branch; k++) {
        long f = r->row[r->from[k]], t = r->row[r->to[k]];
        double tf = f >= 0 ? gsl_vector_get(theta, (size_t)f) : 0.0;
        double tt = t >= 0 ? gsl_vector_get(theta, (size_t)t) : 0.0;
        pf[k] = r->b[k] != 0.0 ? c->base_mva * (r->b[k] * (tf - tt) + r->pfinj[k]) : 0.0;
    }
    gsl_vector_free(rhs);
    gsl_vector_free(theta);
}

/* MATPOWER's injection: in-service PG less PD less GS, written out afresh. */
static void reference_injection(const anm_case *c, double *p)
{
    for (size_t i = 0; i < c->n_bus; i++) {
        p[i] = -c->bus[i].pd_mw - c->bus[i].gs_mw;
    }
    for (size_t g = 0; g < c->n_gen; g++) {
        if (c->gen[g].status > 0) {
            p[anm_case_bus_index(c, c->gen[g].bus)] += c->gen[g].pg_mw;
        }
    }
}

static double max_abs(const double *v, size_t n)
{
    double m = 1.0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs(v[i]));
    }
    return m;
}

/*
 * Kirchhoff at every energised bus: the flows leaving each non-reference
 * bus (pf at from ends, -pf at to ends) add up to its injection, and the
 * reference bus balances the rest. Returns the largest mismatch (MW).
 */
static double kcl_mismatch(const anm_case *c, const double *pf, const double *injection,
                           const unsigned char *energised)
{
    double *out = zeros(c->n_bus), worst = 0.0, others = 0.0;
    for (size_t k = 0; k < c->n_branch; k++) {
        out[anm_case_bus_index(c, c->branch[k].from_bus)] += pf[k];
        out[anm_case_bus_index(c, c->branch[k].to_bus)] -= pf[k];
    }
    for (size_t i = 0; i < c->n_bus; i++) {
        if ((int)i == c->ref_bus_index) {
            continue;
        }
        if (energised && !energised[i]) {
            worst = fmax(worst, fabs(out[i])); /* no flow reaches a dead bus */
            continue;
        }
        worst = fmax(worst, fabs(out[i] - injection[i]));
        others += injection[i];
    }
    worst = fmax(worst, fabs(out[c->ref_bus_index] + others));
    free(out);
    return worst;
}

static void check_close(const double *got, const double *want, size_t n, double tolerance,
                        const char *what, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        cr_assert(fabs(got[i] - want[i]) <= tolerance, "%s %s[%zu]: %.17g, want %.17g", name,
                  what, i, got[i], want[i]);
    }
}

/* ---------- hand-worked ---------- */

static void suite_init(void)
{
    gsl_set_error_handler_off();
}

TestSuite(dcpf, .init = suite_init);

Test(dcpf, hand_case_flows_and_angles)
{
    anm_case *c = hand_case();
    forecast_dc_model *m = new_model(c);
    double p[3], theta[3], pf[3];
    forecast_dc_case_injection(c, p);
    cr_assert_float_eq(p[1], -120.0, 1e-12, "GS is a withdrawal");
    cr_assert_float_eq(p[2], 50.0, 1e-12);
    cr_assert_eq(forecast_dc_model_solve(m, p, theta, pf), ANM_OK);
    cr_assert_float_eq(theta[1], -12.0 / 170.0, 1e-15);
    cr_assert_float_eq(theta[2], -1.5 / 170.0, 1e-15);
    cr_assert_float_eq(pf[0], 1200.0 / 17.0, 1e-11);
    cr_assert_float_eq(pf[1], -10.0 / 17.0, 1e-11);
    cr_assert_float_eq(pf[2], -840.0 / 17.0, 1e-11);
    forecast_dc_model_destroy(&m);
    forecast_dc_model_destroy(&m); /* idempotent */
    cr_assert_null(m);
    free_case(c);
}

/*
 * PTDF of the hand case (shifts and shunts do not enter): the columns are
 * b_l (X_f - X_t) with X = [13 8; 8 18] / 170 on buses 2, 3:
 *   bus 2: pf1 = 10 (0 - 13/170) = -13/17, pf2 = 5 (0 - 8/170) = -4/17,
 *          pf3 = 8 (13 - 8)/170 = 4/17
 *   bus 3: pf1 = -8/17, pf2 = -90/170 = -9/17, pf3 = 8 (8 - 18)/170 = -8/17
 * LODF: H[:,k] = PTDF[:,f_k] - PTDF[:,t_k]:
 *   k = 1 (1-2): H = (13, 4, -4)/17, 1 - h = 4/17  -> (-1, 1, -1)
 *   k = 2 (1-3): H = (8, 9, 8)/17,   1 - h = 8/17  -> (1, -1, 1)
 *   k = 3 (2-3): H = (-5, 5, 12)/17, 1 - h = 5/17  -> (-1, 1, -1)
 * i.e. in a triangle the lost flow goes round the other two sides.
 */
Test(dcpf, hand_case_ptdf_and_lodf)
{
    anm_case *c = hand_case();
    forecast_dc_model *m = new_model(c);
    double ptdf[9], lodf[9];
    const double want_ptdf[9] = {0, -13.0 / 17, -8.0 / 17, 0, -4.0 / 17, -9.0 / 17,
                                 0, 4.0 / 17,   -8.0 / 17};
    const double want_lodf[9] = {-1, 1, -1, 1, -1, 1, -1, 1, -1};
    cr_assert_eq(forecast_dc_ptdf(m, ptdf), ANM_OK);
    check_close(ptdf, want_ptdf, 9, 1e-14, "ptdf", "hand");
    cr_assert_eq(forecast_dc_lodf(m, ptdf, lodf), ANM_OK);
    check_close(lodf, want_lodf, 9, 1e-13, "lodf", "hand");
    cr_assert_eq(forecast_dc_lodf(m, NULL, lodf), ANM_OK);
    check_close(lodf, want_lodf, 9, 1e-13, "lodf by solves", "hand");
    for (size_t k = 0; k < 3; k++) {
        cr_assert_not(forecast_dc_model_branch_is_bridge(m, k));
    }
    forecast_dc_model_destroy(&m);
    free_case(c);
}

/*
 * The spur branch 4 (3-4) is a bridge: its LODF column is NaN, and losing
 * it drops bus 4's 10 MW load, leaving exactly the hand case's flows on
 * branches 1-3 (1200/17, -10/17, -840/17) and 0 on branch 4.
 */
Test(dcpf, bridge_outage_disconnects_the_spur)
{
    anm_case *c = hand_case_with_spur();
    forecast_dc_model *m = new_model(c);
    double p[4], pf[4], lodf[16];
    unsigned char energised[4];
    double dropped = 0.0;
    cr_assert(forecast_dc_model_branch_is_bridge(m, 3));
    for (size_t k = 0; k < 3; k++) {
        cr_assert_not(forecast_dc_model_branch_is_bridge(m, k), "branch %zu", k + 1);
    }
    cr_assert_eq(forecast_dc_lodf(m, NULL, lodf), ANM_OK);
    for (size_t l = 0; l < 4; l++) {
        cr_assert(isnan(lodf[l * 4 + 3]), "LODF[%zu][4] = %g", l + 1, lodf[l * 4 + 3]);
        cr_assert(!isnan(lodf[l * 4 + 0]));
    }
    forecast_dc_case_injection(c, p);
    cr_assert_eq(forecast_dc_model_solve(m, p, NULL, pf), ANM_OK);
    cr_assert_float_eq(pf[3], 10.0, 1e-11, "the spur feeds its load");
    cr_assert_eq(forecast_dc_outage_flows(c, p, 3, pf, energised, &dropped, NULL), ANM_OK);
    cr_assert_float_eq(pf[0], 1200.0 / 17.0, 1e-11);
    cr_assert_float_eq(pf[1], -10.0 / 17.0, 1e-11);
    cr_assert_float_eq(pf[2], -840.0 / 17.0, 1e-11);
    cr_assert_eq(pf[3], 0.0);
    cr_assert_eq(energised[3], 0);
    cr_assert(energised[0] && energised[1] && energised[2]);
    cr_assert_float_eq(dropped, -10.0, 1e-12);
    forecast_dc_model_destroy(&m);
    free_case(c);
}

Test(dcpf, zero_reactance_is_a_config_error)
{
    anm_case *c = hand_case();
    c->branch[2].x_pu = 0.0;
    forecast_dc_model *m = NULL;
    anm_error_detail err;
    cr_assert_eq(forecast_dc_model_new(c, &m, &err), ANM_ECONFIG);
    cr_assert_null(m);
    cr_assert_str_eq(err.path, "");
    cr_assert(strstr(err.message, "branch[2].x_pu") != NULL, "%s", err.message);
    /* out of service, it is simply left out */
    c->branch[2].status = 0;
    cr_assert_eq(forecast_dc_model_new(c, &m, &err), ANM_OK);
    double p[3], pf[3];
    forecast_dc_case_injection(c, p);
    forecast_dc_model_solve(m, p, NULL, pf);
    cr_assert_eq(pf[2], 0.0);
    cr_assert_float_eq(pf[0], 120.0, 1e-11, "radial: bus 2's 120 MW all on 1-2");
    forecast_dc_model_destroy(&m);
    free_case(c);
}

/* ---------- shipped cases ---------- */

/*
 * Published values: MATPOWER's rundcpf('case9') with PG as in the file
 * prints branch flows 67.00, 28.97, -61.03, 85.00, 23.97, -76.03, -163.00,
 * 86.97, -38.03 MW (the branch table of its DC power flow report; the
 * spurs 1-4, 3-6 and 8-2 carry exactly the generators' 67, 85 and 163 MW,
 * the slack's 67 = 315 MW of load - 85 - 163).
 */
Test(dcpf, case9_published_flows)
{
    anm_case *c = load_case("data/grids/matpower/case9.m");
    forecast_dc_model *m = new_model(c);
    double p[9], pf[9];
    const double published[9] = {67.00, 28.97, -61.03, 85.00, 23.97, -76.03, -163.00, 86.97,
                                 -38.03};
    forecast_dc_case_injection(c, p);
    forecast_dc_model_solve(m, p, NULL, pf);
    check_close(pf, published, 9, 0.005 + 1e-9, "pf (2 decimals)", "case9");
    cr_assert_float_eq(pf[0], 67.0, 1e-9);
    cr_assert_float_eq(pf[3], 85.0, 1e-9);
    cr_assert_float_eq(pf[6], -163.0, 1e-9);
    forecast_dc_model_destroy(&m);
    anm_case_destroy(&c);
}

static const char *const shipped_cases[] = {
    "data/grids/matpower/case9.m",
    "data/grids/matpower/case14.m",
    "data/grids/matpower/case30.m",
    "data/grids/matpower/case33bw.m",
    "data/grids/matpower/case118.m",
    "data/grids/matpower/case300.m",
    "data/grids/pglib-opf/pglib_opf_case30_ieee.m",
};

/* Flows equal the dense reference's; KCL holds with flows recomputed from
 * the module's angles by the formula pf = baseMVA (b (theta_f - theta_t) -
 * b shift). */
Test(dcpf, shipped_cases_flows_match_reference_and_kcl)
{
    for (size_t s = 0; s < sizeof shipped_cases / sizeof shipped_cases[0]; s++) {
        anm_case *c = load_case(shipped_cases[s]);
        forecast_dc_model *m = new_model(c);
        reference *r = reference_new(c, SIZE_MAX);
        double *p = zeros(c->n_bus), *want_p = zeros(c->n_bus), *theta = zeros(c->n_bus);
        double *pf = zeros(c->n_branch), *want = zeros(c->n_branch), *mine = zeros(c->n_branch);
        forecast_dc_case_injection(c, p);
        reference_injection(c, want_p);
        check_close(p, want_p, c->n_bus, 1e-12, "injection", c->name);
        cr_assert_eq(forecast_dc_model_solve(m, p, theta, pf), ANM_OK);
        reference_flows(r, want_p, want);
        double tolerance = 1e-9 * max_abs(want, c->n_branch);
        check_close(pf, want, c->n_branch, tolerance, "pf", c->name);
        for (size_t k = 0; k < c->n_branch; k++) {
            const anm_branch *br = &c->branch[k];
            double tap = br->tap != 0.0 ? br->tap : 1.0, b = br->status / (br->x_pu * tap);
            mine[k] = c->base_mva *
                      b * (theta[anm_case_bus_index(c, br->from_bus)] -
                           theta[anm_case_bus_index(c, br->to_bus)] - br->shift_deg * M_PI / 180);
        }
        check_close(pf, mine, c->n_branch, tolerance, "pf from angles", c->name);
        double mismatch = kcl_mismatch(c, mine, want_p, NULL);
        cr_assert(mismatch <= 1e-9 * max_abs(want, c->n_branch), "%s: KCL off by %g MW",
                  c->name, mismatch);
        free(p);
        free(want_p);
        free(theta);
        free(pf);
        free(want);
        free(mine);
        reference_destroy(r);
        forecast_dc_model_destroy(&m);
        anm_case_destroy(&c);
    }
}

/* Each PTDF column predicts the change of every flow when 100 MW more is
 * injected at its bus (and taken at the reference bus), re-solved by the
 * dense reference. */
Test(dcpf, shipped_cases_ptdf_matches_perturbed_resolve)
{
    for (size_t s = 0; s < sizeof shipped_cases / sizeof shipped_cases[0]; s++) {
        anm_case *c = load_case(shipped_cases[s]);
        size_t n = c->n_bus, nl = c->n_branch;
        forecast_dc_model *m = new_model(c);
        reference *r = reference_new(c, SIZE_MAX);
        double *ptdf = zeros(n * nl), *rows = zeros(3 * n);
        double *p = zeros(n), *base = zeros(nl), *moved = zeros(nl);
        cr_assert_eq(forecast_dc_ptdf(m, ptdf), ANM_OK);
        reference_injection(c, p);
        reference_flows(r, p, base);
        double scale = max_abs(base, nl) + 100.0;
        size_t step = n > 100 ? 3 : 1;
        for (size_t i = 0; i < n; i += step) {
            p[i] += 100.0;
            reference_flows(r, p, moved);
            p[i] -= 100.0;
            for (size_t l = 0; l < nl; l++) {
                double predicted = 100.0 * ptdf[l * n + i];
                cr_assert(fabs(base[l] + predicted - moved[l]) <= 1e-9 * scale,
                          "%s: PTDF[%zu][bus %d] %.17g predicts %.17g, re-solve %.17g", c->name,
                          l + 1, c->bus[i].id, ptdf[l * n + i], base[l] + predicted, moved[l]);
            }
        }
        for (size_t l = 0; l < nl; l++) {
            cr_assert_eq(ptdf[l * n + (size_t)c->ref_bus_index], 0.0);
        }
        /* the zone form gives the same rows */
        size_t pick[3] = {0, nl / 2, nl - 1};
        cr_assert_eq(forecast_dc_ptdf_rows(m, pick, 3, rows), ANM_OK);
        for (size_t r3 = 0; r3 < 3; r3++) {
            check_close(rows + r3 * n, ptdf + pick[r3] * n, n, 1e-12, "ptdf row", c->name);
        }
        free(ptdf);
        free(rows);
        free(p);
        free(base);
        free(moved);
        reference_destroy(r);
        forecast_dc_model_destroy(&m);
        anm_case_destroy(&c);
    }
}

/*
 * Every LODF column (every 7th on the 300-bus cases, to keep the dense
 * reference quick) against the dense reference re-solving the network
 * without branch k, and bridges against brute-force connectivity: a bridge
 * has a NaN column and forecast_dc_outage_flows disconnects what lies
 * beyond it, matching the reference's de-energised re-solve.
 */
Test(dcpf, shipped_cases_lodf_matches_outage_resolve)
{
    for (size_t s = 0; s < sizeof shipped_cases / sizeof shipped_cases[0]; s++) {
        anm_case *c = load_case(shipped_cases[s]);
        size_t n = c->n_bus, nl = c->n_branch;
        forecast_dc_model *m = new_model(c);
        reference *intact = reference_new(c, SIZE_MAX);
        double *lodf = zeros(nl * nl), *p = zeros(n), *pf = zeros(nl), *want = zeros(nl);
        double *outage_pf = zeros(nl);
        unsigned char *energised = calloc(n, 1);
        size_t bridges = 0;
        cr_assert_eq(forecast_dc_lodf(m, NULL, lodf), ANM_OK);
        reference_injection(c, p);
        reference_flows(intact, p, pf);
        double scale = max_abs(pf, nl);
        size_t step = n > 200 ? 7 : 1;
        for (size_t k = 0; k < nl; k++) {
            if (k % step != 0 && c->branch[k].status == 1) {
                continue;
            }
            reference *r = reference_new(c, k);
            size_t reached = 0, expected = 0;
            for (size_t i = 0; i < n; i++) {
                reached += r->energised[i];
                expected += intact->energised[i];
            }
            int islands = c->branch[k].status == 1 && reached < expected;
            cr_assert_eq(forecast_dc_model_branch_is_bridge(m, k), islands, "%s branch %zu",
                         c->name, k + 1);
            reference_flows(r, p, want);
            if (islands) {
                bridges++;
                double dropped = 0.0, want_dropped = 0.0;
                for (size_t l = 0; l < nl; l++) {
                    cr_assert(isnan(lodf[l * nl + k]), "%s LODF[%zu][%zu]", c->name, l + 1,
                              k + 1);
                }
                cr_assert_eq(forecast_dc_outage_flows(c, p, k, outage_pf, energised, &dropped,
                                                      NULL),
                             ANM_OK);
                for (size_t i = 0; i < n; i++) {
                    cr_assert_eq(energised[i], r->energised[i]);
                    want_dropped += r->energised[i] ? 0.0 : p[i];
                }
                cr_assert_float_eq(dropped, want_dropped, 1e-9);
                check_close(outage_pf, want, nl, 1e-9 * scale, "islanded outage pf", c->name);
                cr_assert(kcl_mismatch(c, outage_pf, p, energised) <= 1e-9 * scale);
            } else {
                for (size_t l = 0; l < nl; l++) {
                    double predicted = pf[l] + lodf[l * nl + k] * pf[k];
                    cr_assert(fabs(predicted - want[l]) <= 1e-9 * scale,
                              "%s: outage of %zu, branch %zu: LODF gives %.17g, re-solve %.17g",
                              c->name, k + 1, l + 1, predicted, want[l]);
                }
                cr_assert_eq(lodf[k * nl + k], -1.0);
            }
            reference_destroy(r);
        }
        if (strcmp(c->name, "case33bw") == 0) {
            /* 37 branches, 5 open tie switches: the 32 in service form a tree */
            cr_assert_eq(bridges, 32);
        }
        free(lodf);
        free(p);
        free(pf);
        free(want);
        free(outage_pf);
        free(energised);
        reference_destroy(intact);
        forecast_dc_model_destroy(&m);
        anm_case_destroy(&c);
    }
}

/* The zone form equals the full matrix entry for entry. */
Test(dcpf, lodf_pairs_match_full_matrix)
{
    anm_case *c = load_case("data/grids/matpower/case118.m");
    size_t nl = c->n_branch;
    forecast_dc_model *m = new_model(c);
    double *full = zeros(nl * nl), pairs[4 * 5];
    size_t monitored[4] = {0, 7, 50, 185}, contingencies[5] = {3, 7, 8, 100, 185};
    cr_assert_eq(forecast_dc_lodf(m, NULL, full), ANM_OK);
    cr_assert_eq(forecast_dc_lodf_pairs(m, monitored, 4, contingencies, 5, pairs), ANM_OK);
    for (size_t i = 0; i < 4; i++) {
        for (size_t j = 0; j < 5; j++) {
            double a = pairs[i * 5 + j], b = full[monitored[i] * nl + contingencies[j]];
            cr_assert((isnan(a) && isnan(b)) || fabs(a - b) <= 1e-12, "(%zu, %zu): %g vs %g",
                      monitored[i] + 1, contingencies[j] + 1, a, b);
        }
    }
    cr_assert_eq(pairs[1 * 5 + 1], -1.0, "diagonal");
    size_t bad = nl;
    cr_assert_eq(forecast_dc_lodf_pairs(m, &bad, 1, contingencies, 1, pairs), ANM_EINVAL);
    free(full);
    forecast_dc_model_destroy(&m);
    anm_case_destroy(&c);
}

/*
 * case_ACTIVSg2000 (2,000 buses, 3,206 branches): KCL on the intact flows,
 * PTDF columns of a sample of buses against perturbed re-solves, and a
 * sample of LODF columns against re-solves of the outaged network (a model
 * rebuilt without branch k, its flows checked by KCL here), all within
 * 1e-9 relative to the largest flow.
 */
Test(dcpf, activsg2000_ptdf_and_lodf_against_resolves, .timeout = 120)
{
    anm_case *c = load_case("data/grids/matpower/case_ACTIVSg2000.m");
    size_t n = c->n_bus, nl = c->n_branch;
    forecast_dc_model *m = new_model(c);
    double *ptdf = zeros(n * nl), *p = zeros(n), *pf = zeros(nl), *moved = zeros(nl);
    double *lodf = zeros(nl * 40);
    size_t contingencies[40], monitored[3206];
    cr_assert_eq(nl, 3206);
    forecast_dc_case_injection(c, p);
    cr_assert_eq(forecast_dc_model_solve(m, p, NULL, pf), ANM_OK);
    double scale = max_abs(pf, nl);
    cr_assert(kcl_mismatch(c, pf, p, NULL) <= 1e-9 * scale);
    cr_assert_eq(forecast_dc_ptdf(m, ptdf), ANM_OK);
    for (size_t i = 1; i < n; i += 97) {
        p[i] += 100.0;
        forecast_dc_model_solve(m, p, NULL, moved);
        cr_assert(kcl_mismatch(c, moved, p, NULL) <= 1e-9 * scale);
        p[i] -= 100.0;
        for (size_t l = 0; l < nl; l++) {
            cr_assert(fabs(pf[l] + 100.0 * ptdf[l * n + i] - moved[l]) <= 1e-9 * (scale + 100),
                      "PTDF[%zu][bus %d]", l + 1, c->bus[i].id);
        }
    }
    for (size_t j = 0; j < 40; j++) {
        contingencies[j] = (j * 80 + 3) % nl;
    }
    for (size_t l = 0; l < nl; l++) {
        monitored[l] = l;
    }
    cr_assert_eq(forecast_dc_lodf_pairs(m, monitored, nl, contingencies, 40, lodf), ANM_OK);
    size_t checked = 0;
    for (size_t j = 0; j < 40; j++) {
        size_t k = contingencies[j];
        unsigned char *energised = calloc(n, 1);
        cr_assert_eq(forecast_dc_outage_flows(c, p, k, moved, energised, NULL, NULL), ANM_OK);
        cr_assert(kcl_mismatch(c, moved, p, energised) <= 1e-9 * scale);
        if (forecast_dc_model_branch_is_bridge(m, k)) {
            cr_assert(isnan(lodf[k * 40 + j]));
        } else {
            for (size_t l = 0; l < nl; l++) {
                cr_assert(fabs(pf[l] + lodf[l * 40 + j] * pf[k] - moved[l]) <= 1e-9 * scale,
                          "outage %zu, branch %zu", k + 1, l + 1);
            }
            checked++;
        }
        free(energised);
    }
    cr_assert_geq(checked, 30);
    free(ptdf);
    free(p);
    free(pf);
    free(moved);
    free(lodf);
    forecast_dc_model_destroy(&m);
    anm_case_destroy(&c);
}
