/*
 * constraint_set.c: a zone's linearised constraint rows (constraint_set.h).
 *
 * Every row is reduced at build time to (base flow, demand coefficient, one
 * sensitivity per DER): a monitored branch's reduced row comes from the
 * state's PTDF row (its entries at the DER buses, and its dot product with
 * the loads), and a contingency row is the linear combination
 * row_l + LODF[l][k] row_k of two reduced rows, so no n_bus-long row is
 * kept beyond the one being reduced.
 */
#include "forecast/constraint_set.h"

#include "forecast/dcpf.h"
#include "forecast/lodf.h"
#include "forecast/ptdf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct forecast_constraint_set {
    size_t n_constraints;
    size_t n_ders;
    size_t n_monitored;
    anm_curtailment_mode mode;
    double *base_mw;
    double *demand_mw_per_unit;
    double *sensitivity;
    double *limit_mw;
    size_t *row_monitored;
    int *row_contingency;
    unsigned char *der_energised;
};

forecast_constraint_options forecast_constraint_options_default(void)
{
    forecast_constraint_options o;
    memset(&o, 0, sizeof o);
    o.mode = -1;
    return o;
}

/* A reduced row: [0] base flow, [1] demand coefficient, [2 + j] DER j. */
typedef struct reducer {
    const anm_case *c;
    const anm_zone *zone;
    size_t width;      /* 2 + n_ders */
    double *injection; /* [n_bus] the case's own injection */
    double *pf;        /* [n_branch] */
    double *ptdf_row;  /* [n_bus] */
    int *der_bus;      /* [n_ders] bus index */
    double *der_sign;  /* [n_ders] +1 export, -1 demand */
} reducer;

/* Reduced row of branch k in model m, whose case flows are pf. */
static int reduce_branch(const reducer *r, const forecast_dc_model *m, const double *pf, size_t k,
                         double *out)
{
    int rc = forecast_dc_ptdf_rows(m, &k, 1, r->ptdf_row);
    if (rc != ANM_OK) {
        return rc;
    }
    out[0] = pf[k];
    double demand = 0.0;
    for (size_t i = 0; i < r->c->n_bus; i++) {
        demand -= r->ptdf_row[i] * r->c->bus[i].pd_mw;
    }
    out[1] = demand;
    for (size_t j = 0; j < r->zone->n_ders; j++) {
        out[2 + j] = r->der_sign[j] * r->ptdf_row[r->der_bus[j]];
    }
    return ANM_OK;
}

static bool season_covers(const anm_seasonal_rating *s, int month, int day)
{
    int md = month * 100 + day;
    int start = s->start_month * 100 + s->start_day, end = s->end_month * 100 + s->end_day;
    return start <= end ? (md >= start && md <= end) : (md >= start || md <= end);
}

static void ratings_of(const anm_monitored *mon, int month, int day, double *normal,
                       double *post_fault)
{
    *normal = mon->normal_mw;
    *post_fault = mon->post_fault_mw;
    if (month <= 0) {
        return;
    }
    for (size_t s = 0; s < mon->n_seasonal; s++) {
        if (season_covers(&mon->seasonal[s], month, day)) {
            *normal = mon->seasonal[s].normal_mw;
            *post_fault = mon->seasonal[s].post_fault_mw;
            return;
        }
    }
}

static void set_row(forecast_constraint_set *set, size_t row, const double *reduced,
                    double direction, double limit, size_t monitored, int contingency)
{
    size_t nd = set->n_ders;
    set->base_mw[row] = direction * reduced[0];
    set->demand_mw_per_unit[row] = direction * reduced[1];
    for (size_t j = 0; j < nd; j++) {
        set->sensitivity[row * nd + j] = direction * reduced[2 + j];
    }
    set->limit_mw[row] = limit;
    set->row_monitored[row] = monitored;
    set->row_contingency[row] = contingency;
}

/* Keeps the rows whose largest flow over the sample box exceeds the limit. */
static void prune_rows(forecast_constraint_set *set, const anm_zone *zone, double demand_min,
                       double demand_max)
{
    size_t nd = set->n_ders, kept = 0;
    for (size_t c = 0; c < set->n_constraints; c++) {
        double d = set->demand_mw_per_unit[c];
        double worst = set->base_mw[c] + fmax(d * (demand_min - 1.0), d * (demand_max - 1.0));
        for (size_t j = 0; j < nd; j++) {
            double g = set->sensitivity[c * nd + j];
            if (g > 0.0) {
                worst += g * zone->ders[j].capacity_mw;
            }
        }
        if (!(worst > set->limit_mw[c])) {
            continue;
        }
        set->base_mw[kept] = set->base_mw[c];
        set->demand_mw_per_unit[kept] = set->demand_mw_per_unit[c];
        memmove(set->sensitivity + kept * nd, set->sensitivity + c * nd,
                nd * sizeof *set->sensitivity);
        set->limit_mw[kept] = set->limit_mw[c];
        set->row_monitored[kept] = set->row_monitored[c];
        set->row_contingency[kept] = set->row_contingency[c];
        kept++;
    }
    set->n_constraints = kept;
}

int forecast_constraint_set_new(const anm_case *c, const anm_zone *zone,
                                const forecast_constraint_options *opts,
                                forecast_constraint_set **out, anm_error_detail *err)
{
    if (!c || !zone || !out) {
        return ANM_EINVAL;
    }
    *out = NULL;
    forecast_constraint_options defaults = forecast_constraint_options_default();
    if (!opts) {
        opts = &defaults;
    }
    int rc = ANM_OK;
    size_t nm = zone->n_monitored, nd = zone->n_ders, nb = c->n_bus;
    size_t width = 2 + nd;
    forecast_constraint_set *set = NULL;
    forecast_dc_model *model = NULL, *model2 = NULL;
    reducer r;
    memset(&r, 0, sizeof r);
    size_t *outaged = NULL, *monitored = NULL, *cont = NULL;
    double *mon_rows = NULL, *cont_row = NULL, *lodf = NULL, *post = NULL, *pf2 = NULL;
    size_t n_cont = 0;

    outaged = malloc((opts->n_outaged + 1) * sizeof *outaged);
    if (!outaged) {
        rc = ANM_ENOMEM;
        goto free_all;
    }
    for (size_t i = 0; i < opts->n_outaged; i++) {
        int b = opts->outaged_branches[i];
        if (b < 1 || (size_t)b > c->n_branch) {
            anm_error_detail_set(err, NULL, 0, 0, NULL,
                                 "outaged branch %d out of range (the case has branches 1 to %zu)",
                                 b, c->n_branch);
            rc = ANM_EINVAL;
            goto free_all;
        }
        outaged[i] = (size_t)b - 1;
    }
    rc = forecast_dc_model_new_outage(c, outaged, opts->n_outaged, &model, err);
    if (rc != ANM_OK) {
        goto free_all;
    }

    anm_curtailment_mode mode = opts->mode >= 0 ? (anm_curtailment_mode)opts->mode : zone->mode;
    cont = malloc((zone->n_contingencies + 1) * sizeof *cont);
    monitored = malloc((nm + 1) * sizeof *monitored);
    if (!cont || !monitored) {
        rc = ANM_ENOMEM;
        goto free_all;
    }
    for (size_t l = 0; l < nm; l++) {
        monitored[l] = (size_t)zone->monitored[l].branch - 1;
    }
    if (mode == ANM_MODE_PREVENTIVE) {
        for (size_t i = 0; i < zone->n_contingencies; i++) {
            size_t k = (size_t)zone->contingencies[i] - 1;
            bool out_already = false;
            for (size_t o = 0; o < opts->n_outaged; o++) {
                out_already = out_already || outaged[o] == k;
            }
            if (!out_already && k < c->n_branch) {
                cont[n_cont++] = k;
            }
        }
    }

    set = calloc(1, sizeof *set);
    if (!set) {
        rc = ANM_ENOMEM;
        goto free_all;
    }
    size_t n_rows = nm * (1 + n_cont);
    set->n_constraints = n_rows;
    set->n_ders = nd;
    set->n_monitored = nm;
    set->mode = mode;
    set->base_mw = malloc((n_rows + 1) * sizeof *set->base_mw);
    set->demand_mw_per_unit = malloc((n_rows + 1) * sizeof *set->demand_mw_per_unit);
    set->sensitivity = malloc((n_rows * nd + 1) * sizeof *set->sensitivity);
    set->limit_mw = malloc((n_rows + 1) * sizeof *set->limit_mw);
    set->row_monitored = malloc((n_rows + 1) * sizeof *set->row_monitored);
    set->row_contingency = malloc((n_rows + 1) * sizeof *set->row_contingency);
    set->der_energised = malloc(nd + 1);

    r.c = c;
    r.zone = zone;
    r.width = width;
    r.injection = malloc((nb + 1) * sizeof *r.injection);
    r.pf = malloc((c->n_branch + 1) * sizeof *r.pf);
    r.ptdf_row = malloc((nb + 1) * sizeof *r.ptdf_row);
    r.der_bus = malloc((nd + 1) * sizeof *r.der_bus);
    r.der_sign = malloc((nd + 1) * sizeof *r.der_sign);
    mon_rows = malloc((nm * width + 1) * sizeof *mon_rows);
    cont_row = malloc(width * sizeof *cont_row);
    post = malloc(width * sizeof *post);
    lodf = malloc((nm * n_cont + 1) * sizeof *lodf);
    pf2 = malloc((c->n_branch + 1) * sizeof *pf2);
    if (!set->base_mw || !set->demand_mw_per_unit || !set->sensitivity || !set->limit_mw ||
        !set->row_monitored || !set->row_contingency || !set->der_energised || !r.injection ||
        !r.pf || !r.ptdf_row || !r.der_bus || !r.der_sign || !mon_rows || !cont_row || !post ||
        !lodf || !pf2) {
        rc = ANM_ENOMEM;
        goto free_all;
    }
    for (size_t j = 0; j < nd; j++) {
        int bi = anm_case_bus_index(c, zone->ders[j].bus);
        if (bi < 0) {
            anm_error_detail_set(err, NULL, 0, 0, NULL, "der \"%s\": unknown bus %d",
                                 zone->ders[j].id, zone->ders[j].bus);
            rc = ANM_ECONFIG;
            goto free_all;
        }
        r.der_bus[j] = bi;
        set->der_energised[j] = forecast_dc_model_bus_energised(model, (size_t)bi) ? 1 : 0;
        r.der_sign[j] = zone->ders[j].technology == ANM_TECH_DEMAND ? -1.0 : 1.0;
    }

    /* the state itself */
    forecast_dc_case_injection(c, r.injection);
    rc = forecast_dc_model_solve(model, r.injection, NULL, r.pf);
    for (size_t l = 0; l < nm && rc == ANM_OK; l++) {
        rc = reduce_branch(&r, model, r.pf, monitored[l], mon_rows + l * width);
    }
    if (rc != ANM_OK) {
        goto free_all;
    }
    for (size_t l = 0; l < nm; l++) {
        double normal, post_fault;
        ratings_of(&zone->monitored[l], opts->month, opts->day, &normal, &post_fault);
        set_row(set, l, mon_rows + l * width, (double)zone->monitored[l].direction, normal, l, 0);
    }

    /* contingencies: LODF for those the state's network survives */
    if (n_cont > 0) {
        rc = forecast_dc_lodf_pairs(model, monitored, nm, cont, n_cont, lodf);
        if (rc != ANM_OK) {
            goto free_all;
        }
    }
    for (size_t i = 0; i < n_cont; i++) {
        size_t k = cont[i];
        bool bridge = forecast_dc_model_branch_is_bridge(model, k) != 0;
        if (!bridge) {
            rc = reduce_branch(&r, model, r.pf, k, cont_row);
            if (rc != ANM_OK) {
                goto free_all;
            }
        } else {
            /* islands part of the state's network: re-solve without it */
            outaged[opts->n_outaged] = k;
            forecast_dc_model_destroy(&model2);
            rc = forecast_dc_model_new_outage(c, outaged, opts->n_outaged + 1, &model2, err);
            if (rc == ANM_OK) {
                rc = forecast_dc_model_solve(model2, r.injection, NULL, pf2);
            }
            if (rc != ANM_OK) {
                goto free_all;
            }
        }
        for (size_t l = 0; l < nm; l++) {
            if (bridge) {
                rc = reduce_branch(&r, model2, pf2, monitored[l], post);
                if (rc != ANM_OK) {
                    goto free_all;
                }
            } else {
                double f = lodf[l * n_cont + i];
                const double *row_l = mon_rows + l * width;
                for (size_t w = 0; w < width; w++) {
                    post[w] = row_l[w] + f * cont_row[w];
                }
                if (monitored[l] == k) {
                    /* the monitored branch itself is lost: exactly 0 */
                    memset(post, 0, width * sizeof *post);
                }
            }
            double normal, post_fault;
            ratings_of(&zone->monitored[l], opts->month, opts->day, &normal, &post_fault);
            set_row(set, nm * (1 + i) + l, post, (double)zone->monitored[l].direction, post_fault,
                    l, (int)k + 1);
        }
    }
    if (opts->prune) {
        prune_rows(set, zone, opts->prune_demand_min, opts->prune_demand_max);
    }
    *out = set;
    set = NULL;
free_all:
    forecast_constraint_set_destroy(&set);
    forecast_dc_model_destroy(&model);
    forecast_dc_model_destroy(&model2);
    free(outaged);
    free(monitored);
    free(cont);
    free(mon_rows);
    free(cont_row);
    free(post);
    free(lodf);
    free(pf2);
    free(r.injection);
    free(r.pf);
    free(r.ptdf_row);
    free(r.der_bus);
    free(r.der_sign);
    return rc;
}

void forecast_constraint_set_destroy(forecast_constraint_set **p)
{
    if (!p || !*p) {
        return;
    }
    forecast_constraint_set *set = *p;
    free(set->base_mw);
    free(set->demand_mw_per_unit);
    free(set->sensitivity);
    free(set->limit_mw);
    free(set->row_monitored);
    free(set->row_contingency);
    free(set->der_energised);
    free(set);
    *p = NULL;
}

size_t forecast_constraint_set_count(const forecast_constraint_set *set)
{
    return set->n_constraints;
}

size_t forecast_constraint_set_der_count(const forecast_constraint_set *set)
{
    return set->n_ders;
}

size_t forecast_constraint_set_monitored_count(const forecast_constraint_set *set)
{
    return set->n_monitored;
}

anm_curtailment_mode forecast_constraint_set_mode(const forecast_constraint_set *set)
{
    return set->mode;
}

const double *forecast_constraint_set_base_mw(const forecast_constraint_set *set)
{
    return set->base_mw;
}

const double *forecast_constraint_set_demand_mw_per_unit(const forecast_constraint_set *set)
{
    return set->demand_mw_per_unit;
}

const double *forecast_constraint_set_der_sensitivity(const forecast_constraint_set *set)
{
    return set->sensitivity;
}

const double *forecast_constraint_set_limit_mw(const forecast_constraint_set *set)
{
    return set->limit_mw;
}

const unsigned char *forecast_constraint_set_der_energised(const forecast_constraint_set *set)
{
    return set->der_energised;
}

size_t forecast_constraint_set_row_monitored(const forecast_constraint_set *set, size_t c)
{
    return set->row_monitored[c];
}

int forecast_constraint_set_row_contingency(const forecast_constraint_set *set, size_t c)
{
    return set->row_contingency[c];
}

void forecast_constraint_set_flows(const forecast_constraint_set *set, double demand_scale,
                                   const double *der_mw, double *flow_mw)
{
    size_t nd = set->n_ders;
    double ds = demand_scale - 1.0;
    for (size_t c = 0; c < set->n_constraints; c++) {
        const double *g = set->sensitivity + c * nd;
        double f = set->base_mw[c] + set->demand_mw_per_unit[c] * ds;
        for (size_t j = 0; j < nd; j++) {
            f += g[j] * der_mw[j];
        }
        flow_mw[c] = f;
    }
}

/* ---------- per-sample rule view ---------- */

int forecast_constraint_view_new(const forecast_constraint_set *set, const anm_zone *zone,
                                 forecast_constraint_view **out)
{
    if (!set || !zone || !out || zone->n_ders != set->n_ders) {
        return ANM_EINVAL;
    }
    *out = NULL;
    forecast_constraint_view *v = calloc(1, sizeof *v);
    if (!v) {
        return ANM_ENOMEM;
    }
    size_t nd = set->n_ders, nc = set->n_constraints, n_anm = 0;
    for (size_t j = 0; j < nd; j++) {
        n_anm += zone->ders[j].under_anm ? 1 : 0;
    }
    v->n_anm = n_anm;
    v->anm_der = malloc((n_anm + 1) * sizeof *v->anm_der);
    v->lifo_order = malloc((n_anm + 1) * sizeof *v->lifo_order);
    v->sensitivity = malloc((nc * n_anm + 1) * sizeof *v->sensitivity);
    v->flow_mw = malloc((nc + 1) * sizeof *v->flow_mw);
    v->available_mw = malloc((n_anm + 1) * sizeof *v->available_mw);
    if (!v->anm_der || !v->lifo_order || !v->sensitivity || !v->flow_mw || !v->available_mw) {
        forecast_constraint_view_destroy(&v);
        return ANM_ENOMEM;
    }
    size_t a = 0;
    for (size_t j = 0; j < nd; j++) {
        if (zone->ders[j].under_anm) {
            v->anm_der[a] = j;
            v->lifo_order[a] = a;
            a++;
        }
    }
    /* last connected (highest lifo_position) first; positions are unique */
    for (size_t i = 1; i < n_anm; i++) {
        size_t x = v->lifo_order[i], k = i;
        while (k > 0 && zone->ders[v->anm_der[v->lifo_order[k - 1]]].lifo_position <
                            zone->ders[v->anm_der[x]].lifo_position) {
            v->lifo_order[k] = v->lifo_order[k - 1];
            k--;
        }
        v->lifo_order[k] = x;
    }
    for (size_t c = 0; c < nc; c++) {
        for (size_t i = 0; i < n_anm; i++) {
            v->sensitivity[c * n_anm + i] = set->sensitivity[c * nd + v->anm_der[i]];
        }
    }
    memset(&v->problem, 0, sizeof v->problem);
    v->problem.n_constraints = nc;
    v->problem.n_ders = n_anm;
    v->problem.flow_mw = v->flow_mw;
    v->problem.limit_mw = set->limit_mw;
    v->problem.sensitivity = v->sensitivity;
    v->problem.available_mw = v->available_mw;
    v->problem.lifo_order = v->lifo_order;
    v->problem.sensitivity_threshold = 0.01;
    *out = v;
    return ANM_OK;
}

void forecast_constraint_view_destroy(forecast_constraint_view **p)
{
    if (!p || !*p) {
        return;
    }
    forecast_constraint_view *v = *p;
    free(v->anm_der);
    free(v->lifo_order);
    free(v->sensitivity);
    free(v->flow_mw);
    free(v->available_mw);
    free(v);
    *p = NULL;
}

void forecast_constraint_view_fill(forecast_constraint_view *view,
                                   const forecast_constraint_set *set, double demand_scale,
                                   const double *available_mw)
{
    forecast_constraint_set_flows(set, demand_scale, available_mw, view->flow_mw);
    for (size_t i = 0; i < view->n_anm; i++) {
        view->available_mw[i] = available_mw[view->anm_der[i]];
    }
}
