/*
 * A zone's linearised constraint set (forecast/constraint_set.h) and the
 * rules applied to it, against independent references:
 *   - a hand-worked 3-bus triangle (equal reactances: PTDF 2/3 and 1/3,
 *     every single outage leaves a radial network whose flows are sums of
 *     injections), with the curtailment of each DER under LIFO, pro-rata
 *     and min-MW, preventive and corrective;
 *   - the radial 33-bus feeder, whose export flows are sums of the
 *     injections downstream, found here by a walk of the tree;
 *   - mesh30 and bench118: every row's affine flow against a full DC
 *     solve, on a model with the contingency taken out, of the explicit
 *     injections of random samples (a second method: no LODF).
 *
 * Tolerances: hand values 1e-9 MW (a few exact fractions in double); the
 * affine rows against full solves 1e-8 MW relative to max(1, |flow|):
 * both are backward stable solves of B with condition numbers below 1e6
 * (test_dcpf.c), and LODF adds one division by 1 - H_kk >= 1e-3 on these
 * cases.
 */
#include "engine/error.h"
#include "engine/network.h"
#include "engine/zone.h"
#include "forecast/constraint_set.h"
#include "forecast/dcpf.h"
#include "forecast/ptdf.h"
#include "forecast/rule.h"
#include "testlib.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-9

/* ---------- the hand triangle ---------- */

/*
 * Buses 1 (reference, generator 90 MW), 2 (load 30 MW), 3 (load 60 MW);
 * branches 1: 1-2, 2: 1-3, 3: 2-3, all x = 0.1. One MW injected at bus 2
 * splits 2/3 over 2-1 and 1/3 over 2-3-1: PTDF(branch 1, bus 2) = -2/3,
 * PTDF(branch 2, bus 2) = -1/3, PTDF(branch 3, bus 2) = 1/3; at bus 3 by
 * symmetry -1/3, -2/3, -1/3.
 *
 * Zone: DER A at bus 2, DER B at bus 3; monitored branch 1 ("m12") and
 * branch 2 ("m13"), export to_from (towards bus 1), normal 50 / 40 MW,
 * post-fault 60 / 60 MW; contingencies 1, 2, 3.
 *
 * Export flows (s demand scale, pA, pB the DER outputs):
 *   intact  m12 = -(-2/3 (pA - 30 s) - 1/3 (pB - 60 s)) = 2/3 pA + 1/3 pB - 40 s
 *           m13 = 1/3 pA + 2/3 pB - 50 s
 *   lose 1  m12 = 0,                 m13 = pA + pB - 90 s (all through 1-3)
 *   lose 2  m12 = pA + pB - 90 s,    m13 = 0
 *   lose 3  m12 = pA - 30 s,         m13 = pB - 60 s (radial)
 */
static anm_case *triangle_case(void)
{
    anm_case *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    c->name = strdup("triangle");
    c->path = strdup("triangle.m");
    c->base_mva = 100.0;
    c->n_bus = 3;
    c->n_gen = 1;
    c->n_branch = 3;
    c->bus = calloc(3, sizeof *c->bus);
    c->gen = calloc(1, sizeof *c->gen);
    c->branch = calloc(3, sizeof *c->branch);
    c->bus_by_id = calloc(3, sizeof *c->bus_by_id);
    for (int i = 0; i < 3; i++) {
        c->bus[i].id = i + 1;
        c->bus[i].type = i == 0 ? ANM_BUS_REF : ANM_BUS_PQ;
        c->bus[i].vm_pu = 1.0;
        c->bus_by_id[i] = i;
    }
    c->bus[1].pd_mw = 30.0;
    c->bus[2].pd_mw = 60.0;
    c->gen[0].bus = 1;
    c->gen[0].pg_mw = 90.0;
    c->gen[0].status = 1;
    int ends[3][2] = {{1, 2}, {1, 3}, {2, 3}};
    for (int k = 0; k < 3; k++) {
        c->branch[k].from_bus = ends[k][0];
        c->branch[k].to_bus = ends[k][1];
        c->branch[k].x_pu = 0.1;
        c->branch[k].status = 1;
    }
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
    free(c->bus_by_id);
    free(c);
}

typedef struct triangle {
    anm_case *c;
    anm_zone zone;
    anm_monitored monitored[2];
    anm_der ders[2];
    int contingencies[3];
} triangle;

static void triangle_init(triangle *t, anm_access access, anm_curtailment_mode mode)
{
    memset(t, 0, sizeof *t);
    t->c = triangle_case();
    snprintf(t->zone.id, sizeof t->zone.id, "tri");
    t->zone.access = access;
    t->zone.mode = mode;
    const char *mid[2] = {"m12", "m13"};
    double normal[2] = {50.0, 40.0};
    for (int l = 0; l < 2; l++) {
        snprintf(t->monitored[l].id, sizeof t->monitored[l].id, "%s", mid[l]);
        t->monitored[l].branch = l + 1;
        t->monitored[l].direction = -1;
        t->monitored[l].normal_mw = normal[l];
        t->monitored[l].post_fault_mw = 60.0;
    }
    const char *did[2] = {"A", "B"};
    for (int j = 0; j < 2; j++) {
        snprintf(t->ders[j].id, sizeof t->ders[j].id, "%s", did[j]);
        t->ders[j].bus = j + 2;
        t->ders[j].technology = ANM_TECH_WIND;
        t->ders[j].capacity_mw = 100.0;
        t->ders[j].lifo_position = j + 1; /* B connected last */
        t->ders[j].under_anm = true;
    }
    for (int k = 0; k < 3; k++) {
        t->contingencies[k] = k + 1;
    }
    t->zone.n_monitored = 2;
    t->zone.monitored = t->monitored;
    t->zone.n_ders = 2;
    t->zone.ders = t->ders;
    t->zone.n_contingencies = 3;
    t->zone.contingencies = t->contingencies;
}

/* Expected rows at (s, pA, pB): flow and limit, in the set's row order. */
static void triangle_expected(double s, double pa, double pb, bool preventive, double *flow,
                              double *limit)
{
    double rows[8] = {2.0 / 3.0 * pa + 1.0 / 3.0 * pb - 40 * s,
                      1.0 / 3.0 * pa + 2.0 / 3.0 * pb - 50 * s,
                      0.0,
                      pa + pb - 90 * s,
                      pa + pb - 90 * s,
                      0.0,
                      pa - 30 * s,
                      pb - 60 * s};
    double limits[8] = {50, 40, 60, 60, 60, 60, 60, 60};
    size_t n = preventive ? 8 : 2;
    memcpy(flow, rows, n * sizeof *flow);
    memcpy(limit, limits, n * sizeof *limit);
}

Test(constraint_set, triangle_rows_by_hand)
{
    triangle t;
    triangle_init(&t, ANM_ACCESS_LIFO, ANM_MODE_PREVENTIVE);
    forecast_constraint_set *set = NULL;
    cr_assert_eq(forecast_constraint_set_new(t.c, &t.zone, NULL, &set, NULL), ANM_OK);
    cr_assert_eq(forecast_constraint_set_count(set), 8, "2 monitored x (intact + 3 outages)");
    const double samples[3][3] = {{1.0, 0.0, 0.0}, {0.7, 100.0, 20.0}, {1.3, 12.5, 80.0}};
    for (int i = 0; i < 3; i++) {
        double flow[8], want[8], limit[8];
        double der[2] = {samples[i][1], samples[i][2]};
        forecast_constraint_set_flows(set, samples[i][0], der, flow);
        triangle_expected(samples[i][0], der[0], der[1], true, want, limit);
        for (size_t c = 0; c < 8; c++) {
            cr_expect(fabs(flow[c] - want[c]) <= TOL, "sample %d row %zu: %.12g, expected %.12g", i,
                      c, flow[c], want[c]);
            cr_expect_eq(forecast_constraint_set_limit_mw(set)[c], limit[c]);
        }
    }
    const int contingency[8] = {0, 0, 1, 1, 2, 2, 3, 3};
    for (size_t c = 0; c < 8; c++) {
        cr_expect_eq(forecast_constraint_set_row_contingency(set, c), contingency[c]);
        cr_expect_eq(forecast_constraint_set_row_monitored(set, c), c % 2);
    }
    cr_expect(fabs(forecast_constraint_set_demand_mw_per_unit(set)[0] + 40.0) <= TOL);
    cr_expect(fabs(forecast_constraint_set_der_sensitivity(set)[0] - 2.0 / 3.0) <= TOL);
    forecast_constraint_set_destroy(&set);
    forecast_constraint_set_destroy(&set);
    free_case(t.c);
}

/* Runs the zone's rule on the triangle at s = 1, both DERs at 100 MW. */
static forecast_rule_result triangle_rule(triangle *t, const forecast_constraint_options *opts,
                                          double *dispatch, double *flow_after)
{
    forecast_constraint_set *set = NULL;
    forecast_constraint_view *view = NULL;
    cr_assert_eq(forecast_constraint_set_new(t->c, &t->zone, opts, &set, NULL), ANM_OK);
    cr_assert_eq(forecast_constraint_view_new(set, &t->zone, &view), ANM_OK);
    cr_assert_eq(view->lifo_order[0], 1, "B (queue 2) is curtailed first");
    forecast_rule_workspace *ws = forecast_rule_workspace_new(8, 2);
    double available[2] = {100.0, 100.0};
    forecast_constraint_view_fill(view, set, 1.0, available);
    forecast_rule_result res;
    cr_assert_eq(forecast_rule_apply(t->zone.access, &view->problem, ws, dispatch, &res), ANM_OK);
    forecast_constraint_set_flows(set, 1.0, dispatch, flow_after);
    for (size_t c = 0; c < forecast_constraint_set_count(set); c++) {
        cr_expect(flow_after[c] <= forecast_constraint_set_limit_mw(set)[c] + TOL,
                  "row %zu after the rule: %.12g", c, flow_after[c]);
    }
    forecast_rule_workspace_destroy(&ws);
    forecast_constraint_view_destroy(&view);
    forecast_constraint_set_destroy(&set);
    return res;
}

Test(constraint_set, triangle_lifo_preventive)
{
    /*
     * At 100/100 MW: intact m12 = 60 (> 50 by 10), m13 = 50 (> 40 by 10);
     * lose 1: m13 = 110 (> 60 by 50); lose 2: m12 = 110 (by 50); lose 3:
     * m12 = 70 (by 10), m13 = 40.
     * B first: it relieves intact m12 (1/3: needs 30), intact m13 (2/3: 15),
     * lose-1 m13 (1: 50), lose-2 m12 (1: 50), not lose-3 m12: cut 50.
     * Then lose-3 m12 = 70 still: A (sensitivity 1) cuts 10.
     * Result A = 90, B = 50, total 60.
     */
    triangle t;
    triangle_init(&t, ANM_ACCESS_LIFO, ANM_MODE_PREVENTIVE);
    double d[2], flow[8];
    forecast_rule_result r = triangle_rule(&t, NULL, d, flow);
    cr_expect(fabs(d[0] - 90.0) <= TOL, "A %.12g", d[0]);
    cr_expect(fabs(d[1] - 50.0) <= TOL, "B %.12g", d[1]);
    cr_expect(fabs(r.total_curtailed_mw - 60.0) <= TOL);
    cr_expect(!r.unresolved);
    cr_expect(r.binding_constraint == 3 || r.binding_constraint == 4,
              "the most violated rows are the post-fault ones, over by 50");
    free_case(t.c);
}

Test(constraint_set, triangle_pro_rata_and_min_mw_preventive)
{
    /*
     * Pro-rata: S = a . avail per row: intact 100 and 100 (alpha >= 0.1),
     * lose-1 m13 and lose-2 m12 200 (>= 50/200 = 0.25), lose-3 m12 100
     * (>= 0.1): alpha = 0.25, both at 75, total 50.
     * Min-MW: xA + xB >= 50 (lose 1, lose 2), xA >= 10 (lose 3), intact
     * rows then hold (2/3 xA + 1/3 xB >= 50/3 > 10): the least total is 50.
     */
    triangle t;
    triangle_init(&t, ANM_ACCESS_PRO_RATA, ANM_MODE_PREVENTIVE);
    double d[2], flow[8];
    forecast_rule_result r = triangle_rule(&t, NULL, d, flow);
    cr_expect(fabs(r.pro_rata_alpha - 0.25) <= 1e-12);
    cr_expect(fabs(d[0] - 75.0) <= TOL && fabs(d[1] - 75.0) <= TOL, "%g %g", d[0], d[1]);
    t.zone.access = ANM_ACCESS_MIN_MW;
    r = triangle_rule(&t, NULL, d, flow);
    cr_expect(fabs(r.total_curtailed_mw - 50.0) <= 1e-7, "%.12g", r.total_curtailed_mw);
    cr_expect(100.0 - d[0] >= 10.0 - 1e-7, "A gives at least the 10 MW lose-3 needs");
    free_case(t.c);
}

Test(constraint_set, triangle_corrective_with_an_outage)
{
    /* branch 3 out, corrective: m12 = pA - 30 = 70 > 50, m13 = pB - 60 = 40
       <= 40. LIFO: B does not relieve m12 (sensitivity 0); A cuts 20. */
    triangle t;
    triangle_init(&t, ANM_ACCESS_LIFO, ANM_MODE_CORRECTIVE);
    int out[1] = {3};
    forecast_constraint_options opts = forecast_constraint_options_default();
    opts.outaged_branches = out;
    opts.n_outaged = 1;
    double d[2], flow[2];
    forecast_rule_result r = triangle_rule(&t, &opts, d, flow);
    cr_expect(fabs(d[0] - 80.0) <= TOL && fabs(d[1] - 100.0) <= TOL, "%g %g", d[0], d[1]);
    cr_expect(fabs(flow[0] - 50.0) <= TOL && fabs(flow[1] - 40.0) <= TOL);
    cr_expect(fabs(r.total_curtailed_mw - 20.0) <= TOL);
    /* preventive on top of the outage: branches 1 and 2 are now bridges,
       re-solved: losing 1 leaves bus 2 dark (m13 = pB - 60), losing 2 bus 3 */
    opts.mode = ANM_MODE_PREVENTIVE;
    forecast_constraint_set *set = NULL;
    cr_assert_eq(forecast_constraint_set_new(t.c, &t.zone, &opts, &set, NULL), ANM_OK);
    cr_assert_eq(forecast_constraint_set_count(set), 6, "contingency 3 is already out");
    double f[6], der[2] = {100.0, 100.0};
    forecast_constraint_set_flows(set, 1.0, der, f);
    const double want[6] = {70, 40, 0, 40, 70, 0};
    for (size_t c = 0; c < 6; c++) {
        cr_expect(fabs(f[c] - want[c]) <= TOL, "row %zu: %.12g, expected %g", c, f[c], want[c]);
    }
    forecast_constraint_set_destroy(&set);
    free_case(t.c);
}

Test(constraint_set, triangle_unresolved_and_bad_outage)
{
    /* m12's post-fault rating at -1 MW: after losing branch 1, m12 carries
       exactly 0 MW whatever the DERs do, so no dispatch holds: unresolved
       under min-MW (every DER off) and LIFO */
    triangle t;
    triangle_init(&t, ANM_ACCESS_MIN_MW, ANM_MODE_PREVENTIVE);
    t.monitored[0].post_fault_mw = -1.0;
    double d[2];
    forecast_constraint_set *set = NULL;
    forecast_constraint_view *view = NULL;
    cr_assert_eq(forecast_constraint_set_new(t.c, &t.zone, NULL, &set, NULL), ANM_OK);
    cr_assert_eq(forecast_constraint_view_new(set, &t.zone, &view), ANM_OK);
    forecast_rule_workspace *ws = forecast_rule_workspace_new(8, 2);
    double available[2] = {100.0, 100.0};
    forecast_constraint_view_fill(view, set, 1.0, available);
    forecast_rule_result r;
    cr_assert_eq(forecast_rule_apply(ANM_ACCESS_MIN_MW, &view->problem, ws, d, &r), ANM_OK);
    cr_expect(r.unresolved);
    cr_expect(d[0] == 0.0 && d[1] == 0.0);
    cr_assert_eq(forecast_rule_apply(ANM_ACCESS_LIFO, &view->problem, ws, d, &r), ANM_OK);
    cr_expect(r.unresolved);
    forecast_rule_workspace_destroy(&ws);
    forecast_constraint_view_destroy(&view);
    forecast_constraint_set_destroy(&set);

    int out[1] = {4};
    forecast_constraint_options opts = forecast_constraint_options_default();
    opts.outaged_branches = out;
    opts.n_outaged = 1;
    anm_error_detail err;
    anm_error_detail_clear(&err);
    cr_expect_eq(forecast_constraint_set_new(t.c, &t.zone, &opts, &set, &err), ANM_EINVAL);
    cr_expect_str_eq(err.message, "outaged branch 4 out of range (the case has branches 1 to 3)");
    cr_expect_null(set);
    free_case(t.c);
}

/* ---------- shipped zones ---------- */

typedef struct loaded {
    anm_case *c;
    anm_zone_set *zones;
    const anm_zone *zone;
} loaded;

static loaded load_zone(const char *zone_file, const char *zone_id)
{
    loaded l = {NULL, NULL, NULL};
    char path[1024];
    anm_test_source_path(path, sizeof path, zone_file);
    char *case_path = NULL;
    anm_error_detail err;
    cr_assert_eq(anm_zone_file_case_path(path, &case_path, &err), ANM_OK);
    cr_assert_eq(anm_case_load(case_path, &l.c, &err), ANM_OK, "%s", err.message);
    free(case_path);
    cr_assert_eq(anm_zone_set_load(path, l.c, &l.zones, &err), ANM_OK, "%s", err.message);
    l.zone = anm_zone_set_find(l.zones, zone_id);
    cr_assert_not_null(l.zone);
    return l;
}

static void unload(loaded *l)
{
    anm_zone_set_destroy(&l->zones);
    anm_case_destroy(&l->c);
}

/* 1 if bus index b lies downstream of branch k (from -> to, to side) in the
   radial case c with the reference bus at the root: a walk from the to bus
   that never crosses k and never reaches the reference bus. */
static int downstream(const anm_case *c, size_t k, size_t b, const unsigned char *out_of_service)
{
    size_t n = c->n_bus;
    unsigned char *seen = calloc(n, 1);
    size_t *stack = calloc(n, sizeof *stack);
    size_t top = 0;
    int to = anm_case_bus_index(c, c->branch[k].to_bus);
    int from = anm_case_bus_index(c, c->branch[k].from_bus);
    /* the side of k away from the reference bus */
    size_t start = (size_t)to;
    (void)from;
    stack[top++] = start;
    seen[start] = 1;
    int reached_ref = 0, found = 0;
    while (top > 0) {
        size_t u = stack[--top];
        found = found || u == b;
        reached_ref = reached_ref || (int)u == c->ref_bus_index;
        for (size_t e = 0; e < c->n_branch; e++) {
            if (e == k || c->branch[e].status <= 0 || (out_of_service && out_of_service[e])) {
                continue;
            }
            size_t f = (size_t)anm_case_bus_index(c, c->branch[e].from_bus);
            size_t t = (size_t)anm_case_bus_index(c, c->branch[e].to_bus);
            size_t v = f == u ? t : (t == u ? f : n);
            if (v < n && !seen[v]) {
                seen[v] = 1;
                stack[top++] = v;
            }
        }
    }
    free(seen);
    free(stack);
    cr_assert(!reached_ref, "the feeder is radial with the reference bus upstream");
    return found;
}

Test(constraint_set, feeder33_radial_sums_and_lifo)
{
    loaded l = load_zone("data/zones/feeder33.json", "feeder33");
    const anm_case *c = l.c;
    forecast_constraint_set *set = NULL;
    cr_assert_eq(forecast_constraint_set_new(c, l.zone, NULL, &set, NULL), ANM_OK);
    cr_assert_eq(forecast_constraint_set_count(set), 2, "corrective, 2 monitored");
    /* export (towards the substation) = sum downstream of (DER - s PD) */
    for (size_t m = 0; m < 2; m++) {
        size_t k = (size_t)l.zone->monitored[m].branch - 1;
        double load = 0.0;
        for (size_t b = 0; b < c->n_bus; b++) {
            if (downstream(c, k, b, NULL)) {
                load += c->bus[b].pd_mw + c->bus[b].gs_mw;
            }
        }
        cr_expect(fabs(forecast_constraint_set_base_mw(set)[m] + load) <= TOL,
                  "row %zu: base %.12g, downstream load %.12g", m,
                  forecast_constraint_set_base_mw(set)[m], load);
        for (size_t j = 0; j < l.zone->n_ders; j++) {
            int b = anm_case_bus_index(c, l.zone->ders[j].bus);
            double want = downstream(c, k, (size_t)b, NULL) ? 1.0 : 0.0;
            cr_expect(fabs(forecast_constraint_set_der_sensitivity(set)[m * 3 + j] - want) <= TOL,
                      "row %zu DER %s", m, l.zone->ders[j].id);
        }
    }
    /*
     * LIFO at s = 1, solar33 4, battery25 2, wind18 8 MW: head export =
     * 14 - D1, branch 5 export = 12 - D5 (battery25 is not behind bus 6).
     * wind18 (queue 3) relieves both: cut max(14 - D1 - 5, 12 - D5 - 3.5).
     */
    double d1 = -forecast_constraint_set_base_mw(set)[0];
    double d5 = -forecast_constraint_set_base_mw(set)[1];
    double cut = fmax(14.0 - d1 - 5.0, 12.0 - d5 - 3.5);
    cr_assert(cut > 0.0 && cut < 8.0);
    forecast_constraint_view *view = NULL;
    cr_assert_eq(forecast_constraint_view_new(set, l.zone, &view), ANM_OK);
    forecast_rule_workspace *ws = forecast_rule_workspace_new(2, 3);
    double available[3];
    for (size_t j = 0; j < 3; j++) {
        available[j] = l.zone->ders[j].capacity_mw;
    }
    forecast_constraint_view_fill(view, set, 1.0, available);
    double d[3];
    forecast_rule_result r;
    cr_assert_eq(forecast_rule_apply(ANM_ACCESS_LIFO, &view->problem, ws, d, &r), ANM_OK);
    int wind = anm_zone_der_index(l.zone, "wind18");
    for (size_t j = 0; j < 3; j++) {
        double want = (int)j == wind ? 8.0 - cut : available[j];
        cr_expect(fabs(d[j] - want) <= TOL, "%s: %.12g, expected %.12g", l.zone->ders[j].id, d[j],
                  want);
    }
    /* seasonal rating: 1 December is winter, head 5.5 MW */
    forecast_constraint_options opts = forecast_constraint_options_default();
    opts.month = 12;
    opts.day = 1;
    forecast_constraint_set *winter = NULL;
    cr_assert_eq(forecast_constraint_set_new(c, l.zone, &opts, &winter, NULL), ANM_OK);
    cr_expect_eq(forecast_constraint_set_limit_mw(winter)[0], 5.5);
    cr_expect_eq(forecast_constraint_set_limit_mw(winter)[1], 3.5, "no seasonal rating");
    forecast_constraint_set_destroy(&winter);
    forecast_rule_workspace_destroy(&ws);
    forecast_constraint_view_destroy(&view);
    forecast_constraint_set_destroy(&set);
    unload(&l);
}

Test(constraint_set, feeder33_islanding_outage_disconnects_downstream)
{
    /* branch 6 (bus 6 - 7) out: buses 7-18 go dark with wind18; the head
       then carries the rest: export = solar33 + battery25 - s * (load still
       connected) */
    loaded l = load_zone("data/zones/feeder33.json", "feeder33");
    const anm_case *c = l.c;
    int out[1] = {6};
    forecast_constraint_options opts = forecast_constraint_options_default();
    opts.outaged_branches = out;
    opts.n_outaged = 1;
    forecast_constraint_set *set = NULL;
    cr_assert_eq(forecast_constraint_set_new(c, l.zone, &opts, &set, NULL), ANM_OK);
    double dark_load = 0.0, total_load = 0.0;
    for (size_t b = 0; b < c->n_bus; b++) {
        total_load += c->bus[b].pd_mw + c->bus[b].gs_mw;
        if (downstream(c, 5, b, NULL)) {
            dark_load += c->bus[b].pd_mw + c->bus[b].gs_mw;
        }
    }
    double der[3];
    for (size_t j = 0; j < 3; j++) {
        der[j] = l.zone->ders[j].capacity_mw;
    }
    double flow[2];
    forecast_constraint_set_flows(set, 1.2, der, flow);
    double want = 4.0 + 2.0 - 1.2 * (total_load - dark_load);
    cr_expect(fabs(flow[0] - want) <= TOL, "head %.12g, expected %.12g", flow[0], want);
    int wind = anm_zone_der_index(l.zone, "wind18");
    cr_expect_eq(forecast_constraint_set_der_sensitivity(set)[(size_t)wind], 0.0);
    cr_expect_eq(forecast_constraint_set_der_energised(set)[(size_t)wind], 0, "wind18 is dark");
    cr_expect_eq(forecast_constraint_set_der_energised(set)[anm_zone_der_index(l.zone, "solar33")],
                 1);
    forecast_constraint_set_destroy(&set);
    unload(&l);
}

/* Every row of the zone's set against full solves of random samples. */
static void check_against_solves(const char *zone_file, const char *zone_id, size_t want_rows,
                                 int n_samples)
{
    loaded l = load_zone(zone_file, zone_id);
    const anm_case *c = l.c;
    const anm_zone *z = l.zone;
    forecast_constraint_set *set = NULL;
    cr_assert_eq(forecast_constraint_set_new(c, z, NULL, &set, NULL), ANM_OK);
    size_t nc = forecast_constraint_set_count(set), nd = z->n_ders, nm = z->n_monitored;
    cr_assert_eq(nc, want_rows);
    size_t n_states = nc / nm;
    double *injection = calloc(c->n_bus, sizeof *injection);
    double *pf = calloc(c->n_branch, sizeof *pf);
    double *flow = calloc(nc, sizeof *flow);
    double *der = calloc(nd, sizeof *der);
    double *want = calloc(nc, sizeof *want);
    uint64_t state = 12345;
    double scales[8];
    double ders[8][32];
    for (int s = 0; s < n_samples; s++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        scales[s] = 0.5 + (double)(state >> 40) / (double)(1ULL << 24);
        for (size_t j = 0; j < nd; j++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            ders[s][j] = z->ders[j].capacity_mw * (double)(state >> 40) / (double)(1ULL << 24);
        }
    }
    for (size_t st = 0; st < n_states; st++) {
        int k = forecast_constraint_set_row_contingency(set, st * nm);
        forecast_dc_model *m = NULL;
        size_t out = k > 0 ? (size_t)k - 1 : 0;
        cr_assert_eq(forecast_dc_model_new_outage(c, &out, k > 0 ? 1 : 0, &m, NULL), ANM_OK);
        for (int s = 0; s < n_samples; s++) {
            for (size_t b = 0; b < c->n_bus; b++) {
                injection[b] = -scales[s] * c->bus[b].pd_mw - c->bus[b].gs_mw;
            }
            for (size_t g = 0; g < c->n_gen; g++) {
                if (c->gen[g].status > 0) {
                    injection[anm_case_bus_index(c, c->gen[g].bus)] += c->gen[g].pg_mw;
                }
            }
            for (size_t j = 0; j < nd; j++) {
                double sign = z->ders[j].technology == ANM_TECH_DEMAND ? -1.0 : 1.0;
                injection[anm_case_bus_index(c, z->ders[j].bus)] += sign * ders[s][j];
            }
            cr_assert_eq(forecast_dc_model_solve(m, injection, NULL, pf), ANM_OK);
            forecast_constraint_set_flows(set, scales[s], ders[s], flow);
            for (size_t i = 0; i < nm; i++) {
                size_t row = st * nm + i;
                double expect = z->monitored[i].direction * pf[z->monitored[i].branch - 1];
                cr_expect(fabs(flow[row] - expect) <= 1e-8 * fmax(1.0, fabs(expect)),
                          "%s row %zu (contingency %d): affine %.12g, solve %.12g", zone_id, row, k,
                          flow[row], expect);
                double rating = k > 0 ? z->monitored[i].post_fault_mw : z->monitored[i].normal_mw;
                cr_expect_eq(forecast_constraint_set_limit_mw(set)[row], rating);
            }
        }
        forecast_dc_model_destroy(&m);
    }
    free(injection);
    free(pf);
    free(flow);
    free(der);
    free(want);
    forecast_constraint_set_destroy(&set);
    unload(&l);
}

Test(constraint_set, mesh30_rows_match_full_solves)
{
    check_against_solves("data/zones/mesh30.json", "mesh30", 3 * (1 + 38), 4);
}

Test(constraint_set, bench118_rows_match_full_solves)
{
    check_against_solves("data/zones/bench118.json", "bench118", 10 * 178, 2);
}

Test(constraint_set, mesh30_rules_at_full_output)
{
    /* docs/zones.md: at full DER output, post-fault rows of branch 33 reach
       38.5 MW and of branch 31 32.4 MW, over their 32.4 / 31.2 MW ratings:
       every rule must curtail and then hold every row */
    loaded l = load_zone("data/zones/mesh30.json", "mesh30");
    forecast_constraint_set *set = NULL;
    forecast_constraint_view *view = NULL;
    cr_assert_eq(forecast_constraint_set_new(l.c, l.zone, NULL, &set, NULL), ANM_OK);
    cr_assert_eq(forecast_constraint_view_new(set, l.zone, &view), ANM_OK);
    size_t nc = forecast_constraint_set_count(set), nd = l.zone->n_ders;
    double available[8], dispatched[8], d[8], flow[128];
    for (size_t j = 0; j < nd; j++) {
        available[j] = l.zone->ders[j].capacity_mw;
    }
    forecast_constraint_set_flows(set, 1.0, available, flow);
    double worst33 = -INFINITY;
    for (size_t c = 0; c < nc; c++) {
        if (forecast_constraint_set_row_monitored(set, c) == 0 &&
            forecast_constraint_set_row_contingency(set, c) > 0) {
            worst33 = fmax(worst33, flow[c]);
        }
    }
    cr_expect(fabs(worst33 - 38.5) < 0.05, "worst post-fault flow on branch 33: %.4f", worst33);
    forecast_rule_workspace *ws = forecast_rule_workspace_new(nc, nd);
    forecast_constraint_view_fill(view, set, 1.0, available);
    double totals[3];
    const anm_access rules[3] = {ANM_ACCESS_LIFO, ANM_ACCESS_PRO_RATA, ANM_ACCESS_MIN_MW};
    for (int k = 0; k < 3; k++) {
        forecast_rule_result r;
        cr_assert_eq(forecast_rule_apply(rules[k], &view->problem, ws, d, &r), ANM_OK);
        cr_expect(r.curtailed && !r.unresolved);
        memcpy(dispatched, available, nd * sizeof *dispatched);
        for (size_t i = 0; i < view->n_anm; i++) {
            dispatched[view->anm_der[i]] = d[i];
        }
        forecast_constraint_set_flows(set, 1.0, dispatched, flow);
        for (size_t c = 0; c < nc; c++) {
            cr_expect(flow[c] <= forecast_constraint_set_limit_mw(set)[c] + TOL,
                      "rule %d row %zu: %.12g", k, c, flow[c]);
        }
        totals[k] = r.total_curtailed_mw;
    }
    cr_expect(totals[2] <= totals[0] + 1e-7 && totals[2] <= totals[1] + 1e-7,
              "min-MW %.9g, LIFO %.9g, pro-rata %.9g", totals[2], totals[0], totals[1]);
    forecast_rule_workspace_destroy(&ws);
    forecast_constraint_view_destroy(&view);
    forecast_constraint_set_destroy(&set);
    unload(&l);
}

Test(constraint_set, bench118_pruned_set_gives_the_same_curtailment)
{
    /* pruning drops only rows that no sample in the box can put over their
       limit, so every rule must dispatch exactly as on the full set */
    loaded l = load_zone("data/zones/bench118.json", "bench118");
    forecast_constraint_options opts = forecast_constraint_options_default();
    opts.prune = true;
    opts.prune_demand_min = 0.6;
    opts.prune_demand_max = 1.0;
    forecast_constraint_set *full = NULL, *pruned = NULL;
    forecast_constraint_view *vf = NULL, *vp = NULL;
    cr_assert_eq(forecast_constraint_set_new(l.c, l.zone, NULL, &full, NULL), ANM_OK);
    cr_assert_eq(forecast_constraint_set_new(l.c, l.zone, &opts, &pruned, NULL), ANM_OK);
    size_t nc = forecast_constraint_set_count(pruned), nd = l.zone->n_ders;
    cr_expect(nc > 0 && nc < 1780, "pruned to %zu rows", nc); /* 1,214 of 1,780 */
    cr_assert_eq(forecast_constraint_view_new(full, l.zone, &vf), ANM_OK);
    cr_assert_eq(forecast_constraint_view_new(pruned, l.zone, &vp), ANM_OK);
    forecast_rule_workspace *wf = forecast_rule_workspace_new(1780, nd);
    forecast_rule_workspace *wp = forecast_rule_workspace_new(nc, nd);
    cr_assert_eq(forecast_rule_workspace_prepare(wp, &vp->problem), ANM_OK);
    uint64_t state = 5;
    const anm_access rules[3] = {ANM_ACCESS_LIFO, ANM_ACCESS_PRO_RATA, ANM_ACCESS_MIN_MW};
    int n_curtailed = 0;
    for (int s = 0; s < 60; s++) {
        double available[32], df[32], dp[32];
        for (size_t j = 0; j < nd; j++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            available[j] = l.zone->ders[j].capacity_mw * (double)(state >> 11) * 0x1.0p-53;
        }
        double scale = 0.6 + 0.4 * (double)(s % 7) / 6.0;
        forecast_constraint_view_fill(vf, full, scale, available);
        forecast_constraint_view_fill(vp, pruned, scale, available);
        for (int k = 0; k < 3; k++) {
            forecast_rule_result rf, rp;
            cr_assert_eq(forecast_rule_apply(rules[k], &vf->problem, wf, df, &rf), ANM_OK);
            cr_assert_eq(forecast_rule_apply(rules[k], &vp->problem, wp, dp, &rp), ANM_OK);
            cr_expect_eq(rf.unresolved, rp.unresolved);
            cr_expect(fabs(rf.total_curtailed_mw - rp.total_curtailed_mw) <= 1e-7,
                      "sample %d rule %d: full %.12g, pruned %.12g", s, k, rf.total_curtailed_mw,
                      rp.total_curtailed_mw);
            if (k != 2) { /* min-MW optima need not be unique per DER */
                for (size_t j = 0; j < vf->n_anm; j++) {
                    cr_expect(fabs(df[j] - dp[j]) <= TOL, "sample %d rule %d DER %zu", s, k, j);
                }
            }
            n_curtailed += k == 0 && rf.curtailed;
        }
    }
    cr_expect(n_curtailed > 5, "the samples exercise the rule (%d curtailed)", n_curtailed);
    forecast_rule_workspace_destroy(&wf);
    forecast_rule_workspace_destroy(&wp);
    forecast_constraint_view_destroy(&vf);
    forecast_constraint_view_destroy(&vp);
    forecast_constraint_set_destroy(&full);
    forecast_constraint_set_destroy(&pruned);
    unload(&l);
}
