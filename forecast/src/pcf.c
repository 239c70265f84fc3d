/*
 * pcf.c: the Monte Carlo PCF engine (see pcf.h).
 *
 * Layout of one sample: x = [1, demand_scale, der_mw_0 .. der_mw_{n-1}]
 * (dim = n_ders + 2), and every constraint row is an affine function
 * flow_c = coef_c . x, with coef_c = [base - demand, demand, sens_c0 ..]
 * taken from the state's constraint set.
 *
 * Per block and outage state, with x_bar the block's mean input and sd its
 * per-variable standard deviation: flow_c(x) = flow_c(x_bar) + coef_c . d,
 * d = x - x_bar, and |coef_c . d| <= norm_c * r with norm_c =
 * ||coef_c (.) sd|| and r = ||d (./) sd|| (Cauchy-Schwarz). With slack_c =
 * limit_c - flow_c(x_bar) and t_c = slack_c / norm_c, a row with t_c >= r
 * cannot be over its limit. Rows are walked in increasing t_c; the walk
 * stops once t_c >= r and min_norm * (t_c - r) >= the least headroom found,
 * so the headroom (min over rows of limit - flow) is exact too. When a row
 * binds, the rule gets every row that might bind after curtailment: those
 * with (slack_c - neg_c) / norm_c < r, where neg_c = sum_j max(0, -a_cj)
 * capacity_j bounds how much curtailing any DER can raise the row's flow.
 */
#include "forecast/pcf.h"

#include "forecast/constraint_set.h"
#include "forecast/rule.h"
#include "forecast/sampler.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define Z95 1.959963984540054

typedef struct state_rows {
    forecast_constraint_set *set;
    size_t n_rows;
    double *coef;  /* [n_rows * dim] */
    double *limit; /* [n_rows] */
    double *neg;   /* [n_rows] */
    size_t row_offset; /* into the model's global row numbering */
} state_rows;

struct forecast_pcf_model {
    const anm_zone *zone;
    const forecast_inputs *inputs;
    size_t n_ders, dim;
    size_t n_anm;
    size_t *anm_der;    /* [n_anm] zone DER index */
    size_t *lifo_order; /* [n_anm] rule indices, last connected first */
    size_t n_states;
    state_rows *states;
    size_t total_rows;
    size_t max_rows;
    uint64_t zone_hash;
};

forecast_pcf_config forecast_pcf_config_default(void)
{
    forecast_pcf_config c = {.seed = 1, .max_samples = 100000, .ci_width = 0.0, .threads = 0,
                             .sensitivity_threshold = 0.01};
    return c;
}

static int compare_lifo(const void *a, const void *b, const anm_zone *zone, const size_t *anm_index)
{
    size_t ia = *(const size_t *)a, ib = *(const size_t *)b;
    int pa = zone->ders[anm_index[ia]].lifo_position, pb = zone->ders[anm_index[ib]].lifo_position;
    return (pa < pb) - (pa > pb); /* descending: last connected first */
}

int forecast_pcf_model_new(const anm_case *c, const anm_zone *zone, const forecast_inputs *inputs,
                           forecast_pcf_model **out, anm_error_detail *err)
{
    int rc = ANM_ENOMEM;
    *out = NULL;
    forecast_pcf_model *m = calloc(1, sizeof *m);
    if (!m) {
        return ANM_ENOMEM;
    }
    m->zone = zone;
    m->inputs = inputs;
    m->n_ders = zone->n_ders;
    m->dim = zone->n_ders + 2;
    m->zone_hash = forecast_hash_string(zone->id);
    m->anm_der = calloc(m->n_ders + 1, sizeof *m->anm_der);
    m->lifo_order = calloc(m->n_ders + 1, sizeof *m->lifo_order);
    m->n_states = inputs->n_outage_states;
    m->states = calloc(m->n_states ? m->n_states : 1, sizeof *m->states);
    if (!m->anm_der || !m->lifo_order || !m->states) {
        goto fail;
    }
    for (size_t j = 0; j < m->n_ders; j++) {
        if (zone->ders[j].under_anm) {
            m->anm_der[m->n_anm++] = j;
        }
    }
    for (size_t a = 0; a < m->n_anm; a++) {
        m->lifo_order[a] = a;
    }
    /* insertion sort: n_anm is small, and no qsort_r in C11 */
    for (size_t a = 1; a < m->n_anm; a++) {
        size_t v = m->lifo_order[a];
        size_t k = a;
        while (k > 0 && compare_lifo(&m->lifo_order[k - 1], &v, zone, m->anm_der) > 0) {
            m->lifo_order[k] = m->lifo_order[k - 1];
            k--;
        }
        m->lifo_order[k] = v;
    }
    for (size_t s = 0; s < m->n_states; s++) {
        const forecast_outage_state *os = &inputs->outage_states[s];
        forecast_constraint_options opts = forecast_constraint_options_default();
        opts.outaged_branches = os->branches;
        opts.n_outaged = os->n_branches;
        opts.month = inputs->date.month;
        opts.day = inputs->date.day;
        state_rows *st = &m->states[s];
        rc = forecast_constraint_set_new(c, zone, &opts, &st->set, err);
        if (rc != ANM_OK) {
            goto fail;
        }
        rc = ANM_ENOMEM;
        size_t n = forecast_constraint_set_count(st->set);
        st->n_rows = n;
        st->row_offset = m->total_rows;
        m->total_rows += n;
        if (n > m->max_rows) {
            m->max_rows = n;
        }
        st->coef = calloc(n * m->dim + 1, sizeof *st->coef);
        st->limit = calloc(n + 1, sizeof *st->limit);
        st->neg = calloc(n + 1, sizeof *st->neg);
        if (!st->coef || !st->limit || !st->neg) {
            goto fail;
        }
        const double *base = forecast_constraint_set_base_mw(st->set);
        const double *dem = forecast_constraint_set_demand_mw_per_unit(st->set);
        const double *sens = forecast_constraint_set_der_sensitivity(st->set);
        const double *lim = forecast_constraint_set_limit_mw(st->set);
        for (size_t r = 0; r < n; r++) {
            double *row = st->coef + r * m->dim;
            row[0] = base[r] - dem[r];
            row[1] = dem[r];
            double neg = 0.0;
            for (size_t j = 0; j < m->n_ders; j++) {
                double a = sens[r * m->n_ders + j];
                row[2 + j] = a;
                if (a < 0.0 && zone->ders[j].under_anm) {
                    neg -= a * zone->ders[j].capacity_mw;
                }
            }
            st->neg[r] = neg;
            st->limit[r] = lim[r];
        }
    }
    *out = m;
    return ANM_OK;
fail:
    forecast_pcf_model_destroy(&m);
    return rc;
}

void forecast_pcf_model_destroy(forecast_pcf_model **model)
{
    if (!model || !*model) {
        return;
    }
    forecast_pcf_model *m = *model;
    for (size_t s = 0; m->states && s < m->n_states; s++) {
        forecast_constraint_set_destroy(&m->states[s].set);
        free(m->states[s].coef);
        free(m->states[s].limit);
        free(m->states[s].neg);
    }
    free(m->states);
    free(m->anm_der);
    free(m->lifo_order);
    free(m);
    *model = NULL;
}

size_t forecast_pcf_model_constraint_count(const forecast_pcf_model *model)
{
    return model->n_states ? model->states[0].n_rows : 0;
}

/* ---- per-block work -------------------------------------------------------- */

typedef struct block_result {
    size_t n;
    size_t n_acts, n_unresolved;
    double rows_evaluated;
    double *der_sums; /* [n_ders * 7]: n_curt, sum c, sum c^2, sum a, sum a^2, sum d, sum d^2 */
    unsigned *binding; /* [total_rows] */
    int failed;        /* an anm_err from the rule */
} block_result;

enum { DER_SUMS = 7 };

typedef struct order_entry {
    int group;
    double t;
    size_t row;
} order_entry;

/* norm groups of the screening walk (a factor 2 each; the last takes the rest) */
#define PCF_GROUPS 16

typedef struct worker {
    /* per-thread scratch */
    double *x;          /* [BLOCK * dim] sample inputs */
    size_t *state;      /* [BLOCK] */
    size_t *members;    /* [BLOCK] samples of the current state */
    double *mean, *sd;  /* [dim] */
    order_entry *order; /* [max_rows] */
    double *perm_coef;  /* [max_rows * dim] rows in walk order */
    double *perm_flow;  /* [max_rows] flow at the mean */
    double *perm_t, *perm_norm, *perm_limit;
    double *tprime;     /* [max_rows] by row */
    double *flow_at_mean; /* [max_rows] by row */
    double *cand_flow, *cand_limit, *cand_sens; /* rule problem */
    size_t *cand_row;
    double *avail_anm, *dispatch;
    double *scratch;    /* [2 * n_ders] sampler scratch */
    double *d;          /* [dim] */
    forecast_rule_workspace *rule;
} worker;

typedef struct run_context {
    const forecast_pcf_model *model;
    const forecast_period_inputs *period;
    const forecast_pcf_config *config;
    forecast_sampler *sampler;
    size_t max_samples;
    float *curtail;  /* [n_ders * max_samples] */
    float *headroom; /* [max_samples] */
    block_result *blocks; /* [ROUND] for the current round */
    size_t first_block, n_blocks_round;
    atomic_size_t next;
    worker *workers;
} run_context;

static void worker_free(worker *w)
{
    free(w->x);
    free(w->state);
    free(w->members);
    free(w->mean);
    free(w->sd);
    free(w->order);
    free(w->perm_coef);
    free(w->perm_flow);
    free(w->perm_t);
    free(w->perm_norm);
    free(w->perm_limit);
    free(w->tprime);
    free(w->flow_at_mean);
    free(w->cand_flow);
    free(w->cand_limit);
    free(w->cand_sens);
    free(w->cand_row);
    free(w->avail_anm);
    free(w->dispatch);
    free(w->scratch);
    free(w->d);
    forecast_rule_workspace_destroy(&w->rule);
    memset(w, 0, sizeof *w);
}

static int worker_init(worker *w, const forecast_pcf_model *m)
{
    size_t dim = m->dim, rows = m->max_rows ? m->max_rows : 1, n = m->n_ders + 1;
    w->x = malloc(FORECAST_PCF_BLOCK * dim * sizeof *w->x);
    w->state = malloc(FORECAST_PCF_BLOCK * sizeof *w->state);
    w->members = malloc(FORECAST_PCF_BLOCK * sizeof *w->members);
    w->mean = malloc(dim * sizeof *w->mean);
    w->sd = malloc(dim * sizeof *w->sd);
    w->d = malloc(dim * sizeof *w->d);
    w->order = malloc(rows * sizeof *w->order);
    w->perm_coef = malloc(rows * dim * sizeof *w->perm_coef);
    w->perm_flow = malloc(rows * sizeof *w->perm_flow);
    w->perm_t = malloc(rows * sizeof *w->perm_t);
    w->perm_norm = malloc(rows * sizeof *w->perm_norm);
    w->perm_limit = malloc(rows * sizeof *w->perm_limit);
    w->tprime = malloc(rows * sizeof *w->tprime);
    w->flow_at_mean = malloc(rows * sizeof *w->flow_at_mean);
    w->cand_flow = malloc(rows * sizeof *w->cand_flow);
    w->cand_limit = malloc(rows * sizeof *w->cand_limit);
    w->cand_sens = malloc(rows * (m->n_anm + 1) * sizeof *w->cand_sens);
    w->cand_row = malloc(rows * sizeof *w->cand_row);
    w->avail_anm = malloc(n * sizeof *w->avail_anm);
    w->dispatch = malloc(n * sizeof *w->dispatch);
    w->scratch = malloc(2 * n * sizeof *w->scratch);
    w->rule = forecast_rule_workspace_new(rows, m->n_anm + 1);
    if (!w->x || !w->state || !w->members || !w->mean || !w->sd || !w->d || !w->order ||
        !w->perm_coef || !w->perm_flow || !w->perm_t || !w->perm_norm || !w->perm_limit ||
        !w->tprime || !w->flow_at_mean || !w->cand_flow || !w->cand_limit || !w->cand_sens ||
        !w->cand_row || !w->avail_anm || !w->dispatch || !w->scratch || !w->rule) {
        worker_free(w);
        return ANM_ENOMEM;
    }
    return ANM_OK;
}

static int compare_order(const void *a, const void *b)
{
    const order_entry *x = a, *y = b;
    if (x->group != y->group) {
        return x->group < y->group ? -1 : 1;
    }
    if (x->t < y->t) {
        return -1;
    }
    if (x->t > y->t) {
        return 1;
    }
    return (x->row > y->row) - (x->row < y->row);
}

static double dot(const double *a, const double *b, size_t n)
{
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) {
        acc += a[i] * b[i];
    }
    return acc;
}

/* The samples members[0..n_members) of state st within the block. */
static void process_state(run_context *ctx, worker *w, block_result *br, size_t state_index,
                          size_t n_members, size_t block_start)
{
    const forecast_pcf_model *m = ctx->model;
    const state_rows *st = &m->states[state_index];
    const size_t dim = m->dim, n_ders = m->n_ders, n_anm = m->n_anm, n_rows = st->n_rows;
    const size_t max_samples = ctx->max_samples;

    /* mean and spread of the inputs over these samples */
    for (size_t v = 0; v < dim; v++) {
        double lo = INFINITY, hi = -INFINITY, sum = 0.0;
        for (size_t k = 0; k < n_members; k++) {
            double xv = w->x[w->members[k] * dim + v];
            sum += xv;
            lo = xv < lo ? xv : lo;
            hi = xv > hi ? xv : hi;
        }
        if (lo == hi) {
            w->mean[v] = lo; /* constant in the block: deviation exactly 0 */
            w->sd[v] = 0.0;
            continue;
        }
        double mean = sum / (double)n_members;
        double ss = 0.0;
        for (size_t k = 0; k < n_members; k++) {
            double e = w->x[w->members[k] * dim + v] - mean;
            ss += e * e;
        }
        w->mean[v] = mean;
        w->sd[v] = sqrt(ss / (double)n_members);
        if (!(w->sd[v] > 0.0)) {
            w->sd[v] = hi - lo;
        }
    }
    /* rows are walked group by group, a group holding the rows whose norm
       lies within a factor 2 (group g: norm in (max / 2^(g+1), max / 2^g]),
       each in increasing t, so that the stopping bound
       group_min_norm * (t - r) is within a factor 2 of each row's own */
    double max_norm = 0.0, const_headroom = INFINITY;
    for (size_t r = 0; r < n_rows; r++) {
        const double *row = st->coef + r * dim;
        double f = dot(row, w->mean, dim);
        double nn = 0.0;
        for (size_t v = 1; v < dim; v++) {
            double g = row[v] * w->sd[v];
            nn += g * g;
        }
        double norm = sqrt(nn);
        double slack = st->limit[r] - f;
        w->flow_at_mean[r] = f;
        w->perm_norm[r] = norm;
        double t, tp;
        if (norm > 0.0) {
            t = slack / norm;
            tp = (slack - st->neg[r]) / norm;
            max_norm = norm > max_norm ? norm : max_norm;
        } else {
            t = slack >= 0.0 ? INFINITY : -INFINITY;
            tp = slack - st->neg[r] >= 0.0 ? INFINITY : -INFINITY;
            if (slack < const_headroom) {
                const_headroom = slack;
            }
        }
        w->order[r].t = t;
        w->order[r].row = r;
        w->tprime[r] = tp;
    }
    size_t group_count[PCF_GROUPS + 1];
    memset(group_count, 0, sizeof group_count);
    for (size_t r = 0; r < n_rows; r++) {
        double norm = w->perm_norm[r];
        int g = 0;
        if (norm > 0.0) {
            double ratio = max_norm / norm;
            while (g < PCF_GROUPS - 1 && ratio > 2.0) {
                ratio *= 0.5;
                g++;
            }
        } else if (isinf(w->order[r].t) && w->order[r].t > 0.0) {
            g = PCF_GROUPS; /* constant rows that hold: never walked */
        }
        w->order[r].group = g;
        group_count[g]++;
    }
    qsort(w->order, n_rows, sizeof *w->order, compare_order);
    size_t group_start[PCF_GROUPS + 2];
    double group_min[PCF_GROUPS + 1];
    group_start[0] = 0;
    for (int g = 0; g <= PCF_GROUPS; g++) {
        group_start[g + 1] = group_start[g] + group_count[g];
        group_min[g] = INFINITY;
    }
    for (size_t k = 0; k < n_rows; k++) {
        size_t r = w->order[k].row;
        memcpy(w->perm_coef + k * dim, st->coef + r * dim, dim * sizeof(double));
        w->perm_flow[k] = w->flow_at_mean[r];
        w->perm_t[k] = w->order[k].t;
        w->perm_limit[k] = st->limit[r];
        double norm = w->perm_norm[r];
        int g = w->order[k].group;
        if (norm > 0.0 && norm < group_min[g]) {
            group_min[g] = norm;
        }
    }
    for (int g = 0; g <= PCF_GROUPS; g++) {
        if (isinf(group_min[g])) {
            group_min[g] = 0.0;
        }
    }

    double *d = w->d;
    for (size_t k = 0; k < n_members; k++) {
        size_t i = w->members[k];
        const double *x = w->x + i * dim;
        double r2 = 0.0;
        d[0] = 0.0;
        for (size_t v = 1; v < dim; v++) {
            d[v] = x[v] - w->mean[v];
            if (w->sd[v] > 0.0) {
                double e = d[v] / w->sd[v];
                r2 += e * e;
            }
        }
        double radius = sqrt(r2);
        double headroom = const_headroom;
        int binds = 0;
        size_t evaluated = 0;
        for (int g = 0; g < PCF_GROUPS; g++) {
            double gmin = group_min[g];
            for (size_t q = group_start[g]; q < group_start[g + 1]; q++) {
                double t = w->perm_t[q];
                if (t >= radius && gmin * (t - radius) >= headroom) {
                    break;
                }
                double flow = w->perm_flow[q] + dot(w->perm_coef + q * dim, d, dim);
                double h = w->perm_limit[q] - flow;
                evaluated++;
                if (h < headroom) {
                    headroom = h;
                }
                if (h < -FORECAST_CURTAIL_EPSILON_MW) {
                    binds = 1;
                }
            }
        }
        br->rows_evaluated += (double)evaluated;
        size_t g = block_start + i;
        ctx->headroom[g] = (float)headroom;

        double *sums = br->der_sums;
        if (!binds) {
            for (size_t j = 0; j < n_ders; j++) {
                double a = x[2 + j];
                ctx->curtail[j * max_samples + g] = 0.0f;
                sums[j * DER_SUMS + 3] += a;
                sums[j * DER_SUMS + 4] += a * a;
                sums[j * DER_SUMS + 5] += a;
                sums[j * DER_SUMS + 6] += a * a;
            }
            continue;
        }
        /* every row that might bind after curtailment goes to the rule */
        size_t n_cand = 0;
        for (size_t r = 0; r < n_rows; r++) {
            if (w->tprime[r] < radius) {
                const double *row = st->coef + r * dim;
                w->cand_flow[n_cand] = w->flow_at_mean[r] + dot(row, d, dim);
                w->cand_limit[n_cand] = st->limit[r];
                for (size_t a = 0; a < n_anm; a++) {
                    w->cand_sens[n_cand * n_anm + a] = row[2 + m->anm_der[a]];
                }
                w->cand_row[n_cand] = r;
                n_cand++;
            }
        }
        for (size_t a = 0; a < n_anm; a++) {
            w->avail_anm[a] = x[2 + m->anm_der[a]];
        }
        forecast_rule_problem pb = {
            .n_constraints = n_cand,
            .n_ders = n_anm,
            .flow_mw = w->cand_flow,
            .limit_mw = w->cand_limit,
            .sensitivity = w->cand_sens,
            .available_mw = w->avail_anm,
            .lifo_order = m->lifo_order,
            .sensitivity_threshold = ctx->config->sensitivity_threshold,
        };
        forecast_rule_result res;
        int rc = forecast_rule_apply(m->zone->access, &pb, w->rule, w->dispatch, &res);
        if (rc != ANM_OK) {
            br->failed = rc;
            return;
        }
        for (size_t j = 0; j < n_ders; j++) {
            ctx->curtail[j * max_samples + g] = 0.0f;
        }
        int acted = 0;
        for (size_t a = 0; a < n_anm; a++) {
            double c = w->avail_anm[a] - w->dispatch[a];
            if (c < 0.0) {
                c = 0.0;
            }
            size_t j = m->anm_der[a];
            ctx->curtail[j * max_samples + g] = (float)c;
            if (c > FORECAST_CURTAIL_EPSILON_MW) {
                sums[j * DER_SUMS + 0] += 1.0;
                acted = 1;
            }
            sums[j * DER_SUMS + 1] += c;
            sums[j * DER_SUMS + 2] += c * c;
        }
        for (size_t j = 0; j < n_ders; j++) {
            double a = x[2 + j];
            double dl = a - (double)0.0;
            for (size_t q = 0; q < n_anm; q++) {
                if (m->anm_der[q] == j) {
                    dl = w->dispatch[q];
                    break;
                }
            }
            sums[j * DER_SUMS + 3] += a;
            sums[j * DER_SUMS + 4] += a * a;
            sums[j * DER_SUMS + 5] += dl;
            sums[j * DER_SUMS + 6] += dl * dl;
        }
        if (acted || res.unresolved) {
            br->n_acts++;
        }
        if (res.unresolved) {
            br->n_unresolved++;
        }
        if (res.binding_constraint >= 0 && (size_t)res.binding_constraint < n_cand) {
            br->binding[st->row_offset + w->cand_row[res.binding_constraint]]++;
        }
    }
}

static void run_block(run_context *ctx, worker *w, size_t block, block_result *br)
{
    const forecast_pcf_model *m = ctx->model;
    size_t start = block * FORECAST_PCF_BLOCK;
    size_t n = ctx->max_samples - start;
    if (n > FORECAST_PCF_BLOCK) {
        n = FORECAST_PCF_BLOCK;
    }
    br->n = n;
    forecast_rng rng;
    forecast_rng_seed(&rng, ctx->config->seed, m->zone_hash, (uint64_t)ctx->period->period,
                      (uint64_t)block);
    for (size_t i = 0; i < n; i++) {
        double *x = w->x + i * m->dim;
        x[0] = 1.0;
        forecast_sampler_draw(ctx->sampler, &rng, &x[1], &x[2], &w->state[i], w->scratch);
    }
    for (size_t s = 0; s < m->n_states; s++) {
        size_t n_members = 0;
        for (size_t i = 0; i < n; i++) {
            if (w->state[i] == s) {
                w->members[n_members++] = i;
            }
        }
        if (n_members) {
            process_state(ctx, w, br, s, n_members, start);
            if (br->failed) {
                return;
            }
        }
    }
}

static void *worker_main(void *arg)
{
    void **pair = arg;
    run_context *ctx = pair[0];
    worker *w = pair[1];
    for (;;) {
        size_t k = atomic_fetch_add(&ctx->next, 1);
        if (k >= ctx->n_blocks_round) {
            break;
        }
        run_block(ctx, w, ctx->first_block + k, &ctx->blocks[k]);
    }
    return NULL;
}

/* ---- quantiles ---------------------------------------------------------- */

/* Rearranges x[lo..hi) so that x[k] is the value of rank k, smaller values before it and
 * larger after (Hoare's selection, median-of-three pivot). */
static void select_rank(float *x, size_t lo, size_t hi, size_t k)
{
    while (hi - lo > 2) {
        size_t mid = lo + (hi - lo) / 2;
        float a = x[lo], b = x[mid], c = x[hi - 1];
        float pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        size_t i = lo, j = hi - 1;
        for (;;) {
            while (x[i] < pivot) {
                i++;
            }
            while (x[j] > pivot) {
                j--;
            }
            if (i >= j) {
                break;
            }
            float tmp = x[i];
            x[i] = x[j];
            x[j] = tmp;
            i++;
            j--;
        }
        /* now x[lo..j] <= pivot <= x[j+1..hi) */
        if (k <= j) {
            hi = j + 1;
        } else {
            lo = j + 1;
        }
    }
    if (hi - lo == 2 && x[lo] > x[lo + 1]) {
        float tmp = x[lo];
        x[lo] = x[lo + 1];
        x[lo + 1] = tmp;
    }
}

static size_t clamp_rank(double rank, size_t n)
{
    if (rank < 1.0) {
        return 0;
    }
    if (rank > (double)n) {
        return n - 1;
    }
    return (size_t)rank - 1;
}

forecast_estimate forecast_quantile_estimate(float *x, size_t n, double q)
{
    forecast_estimate e = {NAN, NAN};
    if (n == 0) {
        return e;
    }
    double nq = (double)n * q;
    double half = Z95 * sqrt(nq * (1.0 - q));
    size_t k = clamp_rank(ceil(nq), n);
    size_t l = clamp_rank(floor(nq - half), n);
    size_t u = clamp_rank(ceil(nq + half), n);
    select_rank(x, 0, n, l);
    double xl = x[l];
    select_rank(x, l, n, k);
    double xk = x[k];
    select_rank(x, k, n, u);
    double xu = x[u];
    e.value = xk;
    e.se = (xu - xl) / (2.0 * Z95);
    return e;
}

/* Quantile of non-negative values with many zeros: the zeros are counted, not selected. */
static forecast_estimate quantile_nonneg(float *x, size_t n, double q, size_t n_zero,
                                         size_t n_nonzero)
{
    forecast_estimate e = {NAN, NAN};
    if (n == 0) {
        return e;
    }
    (void)n_nonzero;
    double nq = (double)n * q;
    double half = Z95 * sqrt(nq * (1.0 - q));
    size_t ranks[3] = {clamp_rank(floor(nq - half), n), clamp_rank(ceil(nq), n),
                       clamp_rank(ceil(nq + half), n)};
    double v[3];
    size_t lo = 0;
    for (int i = 0; i < 3; i++) {
        if (ranks[i] < n_zero) {
            v[i] = 0.0;
        } else {
            size_t k = ranks[i] - n_zero;
            select_rank(x, lo, n - n_zero, k);
            v[i] = x[k];
            lo = k;
        }
    }
    e.value = v[1];
    e.se = (v[2] - v[0]) / (2.0 * Z95);
    return e;
}

static forecast_estimate mean_estimate(double sum, double sum2, size_t n)
{
    forecast_estimate e = {0.0, 0.0};
    if (n == 0) {
        return e;
    }
    double mean = sum / (double)n;
    double var = n > 1 ? (sum2 - sum * mean) / (double)(n - 1) : 0.0;
    e.value = mean;
    e.se = var > 0.0 ? sqrt(var / (double)n) : 0.0;
    return e;
}

static forecast_estimate proportion_estimate(double count, size_t n)
{
    forecast_estimate e = {0.0, 0.0};
    if (n == 0) {
        return e;
    }
    double p = count / (double)n;
    e.value = p;
    e.se = sqrt(p * (1.0 - p) / (double)n);
    return e;
}

void forecast_pcf_result_destroy(forecast_pcf_result **result)
{
    if (!result || !*result) {
        return;
    }
    forecast_pcf_result *r = *result;
    for (size_t b = 0; r->bindings && b < r->n_bindings; b++) {
        free(r->bindings[b].sensitivity);
    }
    free(r->bindings);
    free(r->ders);
    free(r->contingency_branch);
    free(r->contingency_frequency);
    free(r);
    *result = NULL;
}

typedef struct count_entry {
    size_t key;
    unsigned long long count;
} count_entry;

static int compare_count(const void *a, const void *b)
{
    const count_entry *x = a, *y = b;
    if (x->count != y->count) {
        return x->count < y->count ? 1 : -1;
    }
    return (x->key > y->key) - (x->key < y->key);
}

static unsigned default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1u;
}

static int summarise(run_context *ctx, size_t n, const double *totals, size_t n_acts,
                     size_t n_unresolved, const unsigned long long *binding,
                     double rows_evaluated, forecast_pcf_result **out)
{
    const forecast_pcf_model *m = ctx->model;
    forecast_pcf_result *r = calloc(1, sizeof *r);
    if (!r) {
        return ANM_ENOMEM;
    }
    r->period = ctx->period->period;
    r->samples = n;
    r->n_ders = m->n_ders;
    r->ders = calloc(m->n_ders + 1, sizeof *r->ders);
    float *scratch = NULL;
    count_entry *entries = calloc(m->total_rows + 1, sizeof *entries);
    if (!r->ders || !entries) {
        goto nomem;
    }
    for (size_t j = 0; j < m->n_ders; j++) {
        const double *t = totals + j * DER_SUMS;
        forecast_pcf_der *d = &r->ders[j];
        d->pcf = proportion_estimate(t[0], n);
        d->expected_curtailed_mw = mean_estimate(t[1], t[2], n);
        d->expected_curtailed_mwh.value = d->expected_curtailed_mw.value * 0.5;
        d->expected_curtailed_mwh.se = d->expected_curtailed_mw.se * 0.5;
        d->expected_available_mw = mean_estimate(t[3], t[4], n);
        d->expected_delivered_mw = mean_estimate(t[5], t[6], n);
        /* zeros to the back, nonzero values to the front */
        float *x = ctx->curtail + j * ctx->max_samples;
        size_t nz = 0;
        for (size_t i = 0; i < n; i++) {
            if (x[i] > 0.0f) {
                x[nz++] = x[i];
            }
        }
        for (size_t i = nz; i < n; i++) {
            x[i] = 0.0f;
        }
        d->curtailment_p50_mw = quantile_nonneg(x, n, 0.50, n - nz, nz);
        d->curtailment_p90_mw = quantile_nonneg(x, n, 0.90, n - nz, nz);
        d->curtailment_p99_mw = quantile_nonneg(x, n, 0.99, n - nz, nz);
    }
    r->anm_acts = proportion_estimate((double)n_acts, n);
    r->unresolved = proportion_estimate((double)n_unresolved, n);
    r->headroom_p10_mw = forecast_quantile_estimate(ctx->headroom, n, 0.10);
    r->headroom_p50_mw = forecast_quantile_estimate(ctx->headroom, n, 0.50);
    r->headroom_p90_mw = forecast_quantile_estimate(ctx->headroom, n, 0.90);
    r->rows_evaluated_per_sample = n ? rows_evaluated / (double)n : 0.0;

    size_t n_entries = 0;
    for (size_t g = 0; g < m->total_rows; g++) {
        if (binding[g]) {
            entries[n_entries].key = g;
            entries[n_entries].count = binding[g];
            n_entries++;
        }
    }
    qsort(entries, n_entries, sizeof *entries, compare_count);
    r->bindings = calloc(n_entries + 1, sizeof *r->bindings);
    if (!r->bindings) {
        goto nomem;
    }
    for (size_t e = 0; e < n_entries; e++) {
        size_t g = entries[e].key, s = 0;
        while (s + 1 < m->n_states && g >= m->states[s + 1].row_offset) {
            s++;
        }
        const state_rows *st = &m->states[s];
        size_t row = g - st->row_offset;
        forecast_pcf_binding *b = &r->bindings[r->n_bindings];
        b->sensitivity = calloc(m->n_ders + 1, sizeof *b->sensitivity);
        if (!b->sensitivity) {
            goto nomem;
        }
        r->n_bindings++;
        b->state = s;
        b->monitored = forecast_constraint_set_row_monitored(st->set, row);
        b->contingency = forecast_constraint_set_row_contingency(st->set, row);
        b->frequency = (double)entries[e].count / (double)n;
        for (size_t j = 0; j < m->n_ders; j++) {
            b->sensitivity[j] = st->coef[row * m->dim + 2 + j];
        }
    }
    /* by contingency */
    r->contingency_branch = calloc(n_entries + 1, sizeof *r->contingency_branch);
    r->contingency_frequency = calloc(n_entries + 1, sizeof *r->contingency_frequency);
    if (!r->contingency_branch || !r->contingency_frequency) {
        goto nomem;
    }
    size_t n_cont = 0;
    for (size_t e = 0; e < r->n_bindings; e++) {
        size_t k = 0;
        while (k < n_cont && r->contingency_branch[k] != r->bindings[e].contingency) {
            k++;
        }
        if (k == n_cont) {
            r->contingency_branch[n_cont++] = r->bindings[e].contingency;
        }
        r->contingency_frequency[k] += r->bindings[e].frequency;
    }
    r->n_contingencies = n_cont;
    /* most frequent first (stable: ties keep first-seen order) */
    for (size_t a = 1; a < n_cont; a++) {
        int cb = r->contingency_branch[a];
        double cf = r->contingency_frequency[a];
        size_t k = a;
        while (k > 0 && r->contingency_frequency[k - 1] < cf) {
            r->contingency_branch[k] = r->contingency_branch[k - 1];
            r->contingency_frequency[k] = r->contingency_frequency[k - 1];
            k--;
        }
        r->contingency_branch[k] = cb;
        r->contingency_frequency[k] = cf;
    }
    free(entries);
    free(scratch);
    *out = r;
    return ANM_OK;
nomem:
    free(entries);
    free(scratch);
    forecast_pcf_result_destroy(&r);
    return ANM_ENOMEM;
}

int forecast_pcf_run(const forecast_pcf_model *model, const forecast_period_inputs *period,
                     const forecast_pcf_config *config, forecast_pcf_result **out,
                     anm_error_detail *err)
{
    *out = NULL;
    if (!model || !period || !config || config->max_samples == 0 || !(config->ci_width >= 0.0)) {
        return ANM_EINVAL;
    }
    int rc = ANM_ENOMEM;
    const forecast_pcf_model *m = model;
    unsigned n_threads = config->threads ? config->threads : default_threads();
    if (n_threads > 256) {
        n_threads = 256;
    }
    run_context ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.model = m;
    ctx.period = period;
    ctx.config = config;
    ctx.max_samples = config->max_samples;
    double *totals = calloc(m->n_ders * DER_SUMS + 1, sizeof *totals);
    unsigned long long *binding = calloc(m->total_rows + 1, sizeof *binding);
    ctx.curtail = malloc((m->n_ders * ctx.max_samples + 1) * sizeof *ctx.curtail);
    ctx.headroom = malloc(ctx.max_samples * sizeof *ctx.headroom);
    ctx.blocks = calloc(FORECAST_PCF_ROUND, sizeof *ctx.blocks);
    ctx.workers = calloc(n_threads, sizeof *ctx.workers);
    pthread_t *tids = calloc(n_threads, sizeof *tids);
    void **pairs = calloc(2 * n_threads, sizeof *pairs);
    unsigned n_workers = 0;
    if (!totals || !binding || !ctx.curtail || !ctx.headroom || !ctx.blocks || !ctx.workers ||
        !tids || !pairs) {
        goto done;
    }
    for (size_t b = 0; b < FORECAST_PCF_ROUND; b++) {
        ctx.blocks[b].der_sums = calloc(m->n_ders * DER_SUMS + 1, sizeof(double));
        ctx.blocks[b].binding = calloc(m->total_rows + 1, sizeof(unsigned));
        if (!ctx.blocks[b].der_sums || !ctx.blocks[b].binding) {
            goto done;
        }
    }
    for (; n_workers < n_threads; n_workers++) {
        if (worker_init(&ctx.workers[n_workers], m) != ANM_OK) {
            goto done;
        }
    }
    rc = forecast_sampler_new(m->zone, m->inputs, period, &ctx.sampler, err);
    if (rc != ANM_OK) {
        goto done;
    }
    size_t n_blocks_total = (ctx.max_samples + FORECAST_PCF_BLOCK - 1) / FORECAST_PCF_BLOCK;
    size_t n_done = 0, n_acts = 0, n_unresolved = 0;
    double rows_evaluated = 0.0;
    for (size_t first = 0; first < n_blocks_total; first += FORECAST_PCF_ROUND) {
        size_t nb = n_blocks_total - first;
        nb = nb > FORECAST_PCF_ROUND ? FORECAST_PCF_ROUND : nb;
        for (size_t b = 0; b < nb; b++) {
            block_result *br = &ctx.blocks[b];
            br->n = br->n_acts = br->n_unresolved = 0;
            br->rows_evaluated = 0.0;
            br->failed = 0;
            memset(br->der_sums, 0, m->n_ders * DER_SUMS * sizeof(double));
            memset(br->binding, 0, m->total_rows * sizeof(unsigned));
        }
        ctx.first_block = first;
        ctx.n_blocks_round = nb;
        atomic_store(&ctx.next, 0);
        unsigned use = n_workers < nb ? n_workers : (unsigned)nb;
        unsigned started = 0;
        if (use <= 1) {
            pairs[0] = &ctx;
            pairs[1] = &ctx.workers[0];
            worker_main(pairs);
        } else {
            for (; started < use; started++) {
                pairs[2 * started] = &ctx;
                pairs[2 * started + 1] = &ctx.workers[started];
                if (pthread_create(&tids[started], NULL, worker_main, &pairs[2 * started]) != 0) {
                    break;
                }
            }
            if (started == 0) {
                worker_main(pairs); /* no thread could start: do the round here */
            }
            for (unsigned t = 0; t < started; t++) {
                pthread_join(tids[t], NULL);
            }
        }
        /* combine in block order */
        for (size_t b = 0; b < nb; b++) {
            const block_result *br = &ctx.blocks[b];
            if (br->failed) {
                rc = br->failed;
                goto done;
            }
            n_done += br->n;
            n_acts += br->n_acts;
            n_unresolved += br->n_unresolved;
            rows_evaluated += br->rows_evaluated;
            for (size_t i = 0; i < m->n_ders * DER_SUMS; i++) {
                totals[i] += br->der_sums[i];
            }
            for (size_t g = 0; g < m->total_rows; g++) {
                binding[g] += br->binding[g];
            }
        }
        if (config->ci_width > 0.0) {
            double worst = 2.0 * Z95 * proportion_estimate((double)n_acts, n_done).se;
            for (size_t j = 0; j < m->n_ders; j++) {
                double w = 2.0 * Z95 * proportion_estimate(totals[j * DER_SUMS], n_done).se;
                worst = w > worst ? w : worst;
            }
            if (worst <= config->ci_width) {
                break;
            }
        }
    }
    /* the curtailment arrays are laid out with stride max_samples; summarise
       reads the first n_done of each */
    rc = summarise(&ctx, n_done, totals, n_acts, n_unresolved, binding, rows_evaluated, out);
done:
    forecast_sampler_destroy(&ctx.sampler);
    for (unsigned t = 0; t < n_workers; t++) {
        worker_free(&ctx.workers[t]);
    }
    if (ctx.blocks) {
        for (size_t b = 0; b < FORECAST_PCF_ROUND; b++) {
            free(ctx.blocks[b].der_sums);
            free(ctx.blocks[b].binding);
        }
    }
    free(ctx.blocks);
    free(ctx.workers);
    free(tids);
    free(pairs);
    free(ctx.curtail);
    free(ctx.headroom);
    free(totals);
    free(binding);
    return rc;
}
