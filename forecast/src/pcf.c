/*
 * pcf.c: the Monte Carlo PCF engine (see pcf.h).
 *
 * Layout of one sample: x = [1, demand_scale, der_mw_0 .. der_mw_{n-1}]
 * (dim = n_ders + 2), and every constraint row is an affine function
 * flow_c = coef_c . x, with coef_c = [base - demand, demand, sens_c0 ..]
 * taken from the state's constraint set.
 *
 * Per run and outage state, a plan (plan_build; sound pruning over the box
 * B of the period's possible inputs, forecast_sampler_bounds: demand scale
 * and each DER's available MW; curtailment keeps outputs in B):
 *   - bind rows: those whose flow can exceed the limit somewhere in B. No
 *     other row can be over its limit in any sample, before or after any
 *     curtailment, so the rule sees exactly these and gives the result it
 *     would give on all rows.
 *   - screening rows: every row that no other row dominates (min over B of
 *     slack_r - slack_d > 0: a linear function, so its minimum over the box
 *     is exact). The least slack over them is the least over all rows, the
 *     headroom (min over rows of limit - flow before ANM), and it is below
 *     -1e-9 MW exactly when a bind row is over its limit. Margins (1e-6 MW
 *     plus 1e-9 of the terms' magnitude) keep both true under rounding.
 * Per block (FORECAST_PCF_BLOCK samples, its own random stream), the samples
 * are drawn one column per sample; per state the kernel (pcf_kernel.h) folds
 * the screening rows into each sample's least slack, and only a sample
 * below -1e-9 MW goes to the rule, with the bind rows' flows recomputed by
 * forecast__pcf_flow (the same bits as the kernel). A pool of threads, one
 * per worker for the whole run, takes the blocks of each round from an
 * atomic counter; per-block results are combined in block order, so the
 * thread count never changes a digit. forecast_pcf_config.exhaustive keeps
 * every row in both sets (for tests: the results must not change).
 */
#include "forecast/pcf.h"

#include "forecast/constraint_set.h"
#include "forecast/rule.h"
#include "forecast/sampler.h"
#include "pcf_kernel.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define Z95 1.959963984540054

/* pruning margins: absolute MW, and relative to the magnitude of the terms */
#define PRUNE_ABS_MW 1e-6
#define PRUNE_REL 1e-9
/* headroom rows are tested for dominance against this many rows of least
   greatest slack */
enum { PRUNE_DOMINATORS = 256 };
/* blocks per round when the run has a fixed sample count */
enum { PCF_FIXED_ROUND = 64 };

typedef struct state_rows {
    forecast_constraint_set *set;
    size_t n_rows;
    double *coef;  /* [n_rows * dim] */
    double *limit; /* [n_rows] */
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
        if (!st->coef || !st->limit) {
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
            for (size_t j = 0; j < m->n_ders; j++) {
                row[2 + j] = sens[r * m->n_ders + j];
            }
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

/* ---- the per-run plan: which rows each state evaluates --------------------- */

typedef struct state_plan {
    size_t n_screen, n_screen_pad; /* screening rows, and padded to a row group */
    double *screen_coef;           /* [n_screen_pad * dim] */
    double *screen_limit;          /* [n_screen_pad] (INFINITY: padding) */
    size_t n_bind;                 /* rows that can go over their limit */
    size_t *bind_row;              /* [n_bind] state row of each */
    double *bind_coef_t;           /* [dim * n_bind] transposed: c_v of row r at v * n_bind + r */
    double *bind_limit;            /* [n_bind] */
    double *bind_sens;             /* [n_bind * n_anm] rule sensitivities (row-major) */
} state_plan;

static void plan_free(state_plan *p)
{
    free(p->screen_coef);
    free(p->screen_limit);
    free(p->bind_row);
    free(p->bind_coef_t);
    free(p->bind_limit);
    free(p->bind_sens);
    memset(p, 0, sizeof *p);
}

/* Max (sign +1) or min (sign -1) over the box [lo, hi] of c . x, x_0 = 1. */
static double box_extreme(const double *c, const double *lo, const double *hi, size_t dim,
                          double sign)
{
    double acc = c[0];
    for (size_t v = 1; v < dim; v++) {
        double k = c[v] * sign;
        if (k > 0.0) {
            acc += c[v] * hi[v];
        } else if (k < 0.0) {
            acc += c[v] * lo[v];
        }
    }
    return acc;
}

/* Magnitude of the terms of c . x over the box (for rounding margins). */
static double box_magnitude(const double *c, const double *lo, const double *hi, size_t dim)
{
    double acc = fabs(c[0]);
    for (size_t v = 1; v < dim; v++) {
        if (c[v] != 0.0) {
            double a = fabs(lo[v]) > fabs(hi[v]) ? fabs(lo[v]) : fabs(hi[v]);
            acc += fabs(c[v]) * a;
        }
    }
    return acc;
}

typedef struct slack_entry {
    double slack;
    size_t row;
} slack_entry;

static int compare_slack(const void *a, const void *b)
{
    const slack_entry *x = a, *y = b;
    if (x->slack != y->slack) {
        return x->slack < y->slack ? -1 : 1;
    }
    return (x->row > y->row) - (x->row < y->row);
}

/*
 * Builds the plan of one state over the input box [lo, hi]:
 *   bind rows: max over the box of the flow + margin > limit;
 *   screening rows: the rows no other row dominates. d dominates r when
 *     min over the box of (slack_r - slack_d) > margin; then d's slack is
 *     below r's at the box's midpoint too, so walking the rows by their
 *     slack at the midpoint, every row that could dominate r comes before
 *     it, and is either kept or dominated by a row kept before it
 *     (dominance is transitive, margins add). A row is therefore tested
 *     against the kept rows only (the first PRUNE_DOMINATORS of them: a
 *     row not tested against all is kept, which is always sound).
 * The least slack over the screening rows is the least over all rows (the
 * headroom); below -1e-9 MW it is a bind row's, and the rule runs.
 */
static int plan_build(state_plan *p, const forecast_pcf_model *m, const state_rows *st,
                      const double *lo, const double *hi, bool exhaustive)
{
    const size_t n = st->n_rows, dim = m->dim, n_anm = m->n_anm;
    int rc = ANM_ENOMEM;
    memset(p, 0, sizeof *p);
    unsigned char *bind = calloc(n + 1, 1);
    double *mag = calloc(n + 1, sizeof *mag);
    slack_entry *by_slack = calloc(n + 1, sizeof *by_slack);
    size_t *kept = calloc(n + 1, sizeof *kept);
    double *mid = calloc(dim, sizeof *mid);
    double *diff = calloc(dim, sizeof *diff);
    if (!bind || !mag || !by_slack || !kept || !mid || !diff) {
        goto done;
    }
    for (size_t v = 0; v < dim; v++) {
        mid[v] = isfinite(hi[v]) ? 0.5 * (lo[v] + hi[v]) : lo[v];
    }
    for (size_t r = 0; r < n; r++) {
        const double *c = st->coef + r * dim;
        double max_flow = box_extreme(c, lo, hi, dim, 1.0);
        mag[r] = box_magnitude(c, lo, hi, dim);
        double margin = PRUNE_ABS_MW + PRUNE_REL * mag[r];
        if (exhaustive || !(st->limit[r] - max_flow - margin > 0.0)) {
            bind[r] = 1; /* might go over its limit (NaN-safe: kept) */
            p->n_bind++;
        }
        double at_mid = c[0];
        for (size_t v = 1; v < dim; v++) {
            at_mid += c[v] * mid[v];
        }
        by_slack[r].slack = st->limit[r] - at_mid;
        by_slack[r].row = r;
    }
    qsort(by_slack, n, sizeof *by_slack, compare_slack);
    size_t n_kept = 0;
    for (size_t q = 0; q < n; q++) {
        size_t r = by_slack[q].row;
        const double *c = st->coef + r * dim;
        int dominated = 0;
        size_t n_test = exhaustive ? 0 : n_kept < PRUNE_DOMINATORS ? n_kept : PRUNE_DOMINATORS;
        for (size_t k = 0; k < n_test && !dominated; k++) {
            size_t d = kept[k];
            const double *cd = st->coef + d * dim;
            /* slack_r - slack_d = (limit_r - limit_d) - (c_r - c_d) . x */
            for (size_t v = 0; v < dim; v++) {
                diff[v] = c[v] - cd[v];
            }
            double gap = (st->limit[r] - st->limit[d]) - box_extreme(diff, lo, hi, dim, 1.0);
            double tol = PRUNE_ABS_MW + PRUNE_REL * (mag[r] + mag[d]);
            dominated = gap - tol > 0.0;
        }
        if (!dominated) {
            kept[n_kept++] = r;
        }
    }
    /* screening rows in state row order (any order gives the same minimum) */
    for (size_t a = 1; a < n_kept; a++) {
        size_t v = kept[a], k = a;
        while (k > 0 && kept[k - 1] > v) {
            kept[k] = kept[k - 1];
            k--;
        }
        kept[k] = v;
    }
    p->n_screen = n_kept;
    p->n_screen_pad = (n_kept + FORECAST__PCF_ROW_GROUP - 1) / FORECAST__PCF_ROW_GROUP *
                      FORECAST__PCF_ROW_GROUP;
    p->screen_coef = calloc(p->n_screen_pad * dim + 1, sizeof *p->screen_coef);
    p->screen_limit = malloc((p->n_screen_pad + 1) * sizeof *p->screen_limit);
    p->bind_row = calloc(p->n_bind + 1, sizeof *p->bind_row);
    p->bind_coef_t = calloc(p->n_bind * dim + 1, sizeof *p->bind_coef_t);
    p->bind_limit = calloc(p->n_bind + 1, sizeof *p->bind_limit);
    p->bind_sens = calloc(p->n_bind * n_anm + 1, sizeof *p->bind_sens);
    if (!p->screen_coef || !p->screen_limit || !p->bind_row || !p->bind_coef_t || !p->bind_limit ||
        !p->bind_sens) {
        goto done;
    }
    for (size_t k = 0; k < p->n_screen_pad; k++) {
        p->screen_limit[k] = HUGE_VAL; /* padding: zero coefficients, never the minimum */
    }
    for (size_t k = 0; k < n_kept; k++) {
        memcpy(p->screen_coef + k * dim, st->coef + kept[k] * dim, dim * sizeof(double));
        p->screen_limit[k] = st->limit[kept[k]];
    }
    size_t nb = 0;
    for (size_t r = 0; r < n; r++) {
        if (!bind[r]) {
            continue;
        }
        p->bind_row[nb] = r;
        for (size_t v = 0; v < dim; v++) {
            p->bind_coef_t[v * p->n_bind + nb] = st->coef[r * dim + v];
        }
        p->bind_limit[nb] = st->limit[r];
        for (size_t a = 0; a < n_anm; a++) {
            p->bind_sens[nb * n_anm + a] = st->coef[r * dim + 2 + m->anm_der[a]];
        }
        nb++;
    }
    rc = ANM_OK;
done:
    if (rc != ANM_OK) {
        plan_free(p);
    }
    free(bind);
    free(mag);
    free(by_slack);
    free(kept);
    free(mid);
    free(diff);
    return rc;
}

/* ---- per-block work -------------------------------------------------------- */

enum { DER_SUMS = 7 };

typedef struct block_result {
    size_t n;
    size_t n_acts, n_unresolved;
    double rows_evaluated;
    double *der_sums;  /* [n_ders * 7]: n_curt, sum c, sum c^2, sum a, sum a^2, sum d, sum d^2 */
    unsigned *binding; /* [total_rows] */
    float *curtailed;  /* [n_ders * BLOCK]: each DER's curtailments > 0 in the block */
    size_t *n_curtailed; /* [n_ders] */
    int failed;        /* an anm_err from the rule */
} block_result;

/* samples of a block, one column each (stride FORECAST_PCF_BLOCK) */
enum { STRIDE = FORECAST_PCF_BLOCK };

typedef struct worker {
    double *x;         /* [dim * STRIDE] the block's inputs, row v = variable v */
    double *xs;        /* [dim * STRIDE] the samples of one state (several states only) */
    double *delivered; /* [n_ders * STRIDE] output after the rule */
    size_t *state;     /* [BLOCK] */
    size_t *members;   /* [BLOCK] samples of the current state */
    double *slack;                   /* [STRIDE] each sample's least slack */
    double *cand_flow;               /* [max_rows] rule problem */
    double *avail_anm, *dispatch;    /* [n_anm] */
    double *sample;                  /* [dim] one sample's inputs, contiguous */
    double *scratch;                 /* [2 * n_ders] sampler scratch */
    size_t prepared_state;           /* state the rule workspace is prepared for */
    forecast_rule_workspace *rule;
} worker;

typedef struct run_context {
    const forecast_pcf_model *model;
    const forecast_period_inputs *period;
    const forecast_pcf_config *config;
    forecast_sampler *sampler;
    state_plan *plans; /* [n_states] */
    size_t max_samples;
    float *curtail;    /* [n_ders * max_samples]: DER j's curtailments > 0 from j * max_samples */
    size_t *n_curtail; /* [n_ders] */
    float *headroom;   /* [max_samples] */
    block_result *blocks; /* [ROUND] for the current round */
    size_t first_block, n_blocks_round;
    atomic_size_t next;
    worker *workers;
    /* the thread pool (n_pool threads; 0: the calling thread does the work) */
    pthread_mutex_t lock;
    pthread_cond_t go, done;
    unsigned n_pool, finished, generation;
    int quit;
} run_context;

static void worker_free(worker *w)
{
    free(w->x);
    free(w->xs);
    free(w->delivered);
    free(w->state);
    free(w->members);
    free(w->slack);
    free(w->cand_flow);
    free(w->avail_anm);
    free(w->dispatch);
    free(w->sample);
    free(w->scratch);
    forecast_rule_workspace_destroy(&w->rule);
    memset(w, 0, sizeof *w);
}

static int worker_init(worker *w, const forecast_pcf_model *m)
{
    size_t dim = m->dim, rows = m->max_rows ? m->max_rows : 1, n = m->n_ders + 1;
    w->x = calloc(dim * STRIDE, sizeof *w->x);
    w->xs = m->n_states > 1 ? calloc(dim * STRIDE, sizeof *w->xs) : NULL;
    w->delivered = calloc(n * STRIDE, sizeof *w->delivered);
    w->state = calloc(FORECAST_PCF_BLOCK, sizeof *w->state);
    w->members = calloc(FORECAST_PCF_BLOCK, sizeof *w->members);
    w->slack = calloc(STRIDE, sizeof *w->slack);
    w->cand_flow = calloc(rows, sizeof *w->cand_flow);
    w->avail_anm = calloc(n, sizeof *w->avail_anm);
    w->dispatch = calloc(n, sizeof *w->dispatch);
    w->sample = calloc(dim, sizeof *w->sample);
    w->scratch = calloc(2 * n, sizeof *w->scratch);
    w->rule = forecast_rule_workspace_new(rows, m->n_anm + 1);
    w->prepared_state = SIZE_MAX;
    if (!w->x || (m->n_states > 1 && !w->xs) || !w->delivered || !w->state || !w->members ||
        !w->slack || !w->cand_flow || !w->avail_anm || !w->dispatch ||
        !w->sample || !w->scratch || !w->rule) {
        worker_free(w);
        return ANM_ENOMEM;
    }
    return ANM_OK;
}

/* The rule for sample k of xs (state st, plan p); i its index in the block. */
static int apply_rule(run_context *ctx, worker *w, block_result *br, const state_plan *p,
                      size_t state_index, const double *xs, size_t k, size_t i)
{
    const forecast_pcf_model *m = ctx->model;
    const size_t dim = m->dim, n_anm = m->n_anm;
    for (size_t v = 1; v < dim; v++) {
        w->sample[v] = xs[v * STRIDE + k];
    }
    forecast__pcf_flows(p->bind_coef_t, p->n_bind, dim, w->sample, w->cand_flow);
    for (size_t a = 0; a < n_anm; a++) {
        w->avail_anm[a] = xs[(2 + m->anm_der[a]) * STRIDE + k];
    }
    forecast_rule_problem pb = {
        .n_constraints = p->n_bind,
        .n_ders = n_anm,
        .flow_mw = w->cand_flow,
        .limit_mw = p->bind_limit,
        .sensitivity = p->bind_sens,
        .available_mw = w->avail_anm,
        .lifo_order = m->lifo_order,
        .sensitivity_threshold = ctx->config->sensitivity_threshold,
    };
    if (w->prepared_state != state_index) {
        int prc = forecast_rule_workspace_prepare(w->rule, &pb);
        if (prc != ANM_OK) {
            return prc;
        }
        w->prepared_state = state_index;
    }
    forecast_rule_result res;
    int rc = forecast_rule_apply(m->zone->access, &pb, w->rule, w->dispatch, &res);
    if (rc != ANM_OK) {
        return rc;
    }
    int acted = 0;
    double *sums = br->der_sums;
    for (size_t a = 0; a < n_anm; a++) {
        double c = w->avail_anm[a] - w->dispatch[a];
        if (c < 0.0) {
            c = 0.0;
        }
        size_t j = m->anm_der[a];
        w->delivered[j * STRIDE + i] = w->dispatch[a];
        float cf = (float)c;
        if (cf > 0.0f) {
            br->curtailed[j * FORECAST_PCF_BLOCK + br->n_curtailed[j]++] = cf;
        }
        if (c > FORECAST_CURTAIL_EPSILON_MW) {
            sums[j * DER_SUMS + 0] += 1.0;
            acted = 1;
        }
        sums[j * DER_SUMS + 1] += c;
        sums[j * DER_SUMS + 2] += c * c;
    }
    if (acted || res.unresolved) {
        br->n_acts++;
    }
    if (res.unresolved) {
        br->n_unresolved++;
    }
    if (res.binding_constraint >= 0 && (size_t)res.binding_constraint < p->n_bind) {
        const state_rows *st = &ctx->model->states[state_index];
        br->binding[st->row_offset + p->bind_row[res.binding_constraint]]++;
    }
    return ANM_OK;
}

/* Sum of a[0..n) (squared: of a[i]^2) in a fixed order: 8 interleaved
   partial sums, added pairwise at the end, so the loop vectorises without
   reassociation and gives the same bits on every machine. */
enum { LANES = 8 };
static double sum_lanes(const double *a, size_t n, int squared)
{
    double lane[LANES] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    size_t i = 0;
    if (squared) {
        for (; i + LANES <= n; i += LANES) {
            for (size_t k = 0; k < LANES; k++) {
                lane[k] += a[i + k] * a[i + k];
            }
        }
        for (; i < n; i++) {
            lane[0] += a[i] * a[i];
        }
    } else {
        for (; i + LANES <= n; i += LANES) {
            for (size_t k = 0; k < LANES; k++) {
                lane[k] += a[i + k];
            }
        }
        for (; i < n; i++) {
            lane[0] += a[i];
        }
    }
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

static void run_block(run_context *ctx, worker *w, size_t block, block_result *br)
{
    const forecast_pcf_model *m = ctx->model;
    const size_t dim = m->dim, n_ders = m->n_ders;
    size_t start = block * FORECAST_PCF_BLOCK;
    size_t n = ctx->max_samples - start;
    if (n > FORECAST_PCF_BLOCK) {
        n = FORECAST_PCF_BLOCK;
    }
    br->n = n;
    forecast_rng rng;
    forecast_rng_seed(&rng, ctx->config->seed, m->zone_hash, (uint64_t)ctx->period->period,
                      (uint64_t)block);
    double *x = w->x;
    forecast_sampler_draw_block(ctx->sampler, &rng, n, x + STRIDE, STRIDE, w->state, w->scratch);
    /* padding columns up to a sample group: zeros, results ignored */
    size_t n_pad = (n + FORECAST__PCF_SAMPLE_GROUP - 1) / FORECAST__PCF_SAMPLE_GROUP *
                   FORECAST__PCF_SAMPLE_GROUP;
    for (size_t v = 1; v < dim; v++) {
        for (size_t i = n; i < n_pad; i++) {
            x[v * STRIDE + i] = 0.0;
        }
    }
    for (size_t j = 0; j < n_ders; j++) {
        memcpy(w->delivered + j * STRIDE, x + (2 + j) * STRIDE, n * sizeof(double));
    }
    for (size_t s = 0; s < m->n_states; s++) {
        const state_plan *p = &ctx->plans[s];
        const double *xs = x;
        size_t n_members = n;
        if (m->n_states > 1) {
            n_members = 0;
            for (size_t i = 0; i < n; i++) {
                if (w->state[i] == s) {
                    w->members[n_members++] = i;
                }
            }
            if (!n_members) {
                continue;
            }
            for (size_t v = 1; v < dim; v++) {
                double *dst = w->xs + v * STRIDE;
                const double *src = x + v * STRIDE;
                for (size_t k = 0; k < n_members; k++) {
                    dst[k] = src[w->members[k]];
                }
                for (size_t k = n_members; k < n_pad && k < STRIDE; k++) {
                    dst[k] = 0.0;
                }
            }
            xs = w->xs;
        }
        size_t m_pad = (n_members + FORECAST__PCF_SAMPLE_GROUP - 1) /
                       FORECAST__PCF_SAMPLE_GROUP * FORECAST__PCF_SAMPLE_GROUP;
        forecast__pcf_min_slack(p->screen_coef, p->screen_limit, p->n_screen_pad, dim, xs, STRIDE,
                                m_pad, w->slack);
        br->rows_evaluated += (double)n_members * (double)p->n_screen;
        for (size_t k = 0; k < n_members; k++) {
            size_t i = m->n_states > 1 ? w->members[k] : k;
            double h = w->slack[k];
            ctx->headroom[start + i] = (float)h;
            if (h < -FORECAST_CURTAIL_EPSILON_MW && p->n_bind > 0) {
                int rc = apply_rule(ctx, w, br, p, s, xs, k, i);
                if (rc != ANM_OK) {
                    br->failed = rc;
                    return;
                }
            }
        }
    }
    /* available and delivered sums */
    double *sums = br->der_sums;
    for (size_t j = 0; j < n_ders; j++) {
        sums[j * DER_SUMS + 3] += sum_lanes(x + (2 + j) * STRIDE, n, 0);
        sums[j * DER_SUMS + 4] += sum_lanes(x + (2 + j) * STRIDE, n, 1);
        sums[j * DER_SUMS + 5] += sum_lanes(w->delivered + j * STRIDE, n, 0);
        sums[j * DER_SUMS + 6] += sum_lanes(w->delivered + j * STRIDE, n, 1);
    }
}

/* Takes the round's blocks one at a time until none is left. */
static void take_blocks(run_context *ctx, worker *w)
{
    for (;;) {
        size_t k = atomic_fetch_add(&ctx->next, 1);
        if (k >= ctx->n_blocks_round) {
            break;
        }
        run_block(ctx, w, ctx->first_block + k, &ctx->blocks[k]);
    }
}

typedef struct pool_arg {
    run_context *ctx;
    worker *w;
} pool_arg;

/*
 * A pool thread: one per worker for the whole run (not per round), so that
 * a worker's rule workspace is only ever used by the thread that created
 * its GLPK problem (GLPK keeps its environment per thread), and destroyed
 * there, with that thread's GLPK environment, before it exits.
 */
static void *pool_main(void *arg)
{
    const pool_arg *pa = arg;
    run_context *ctx = pa->ctx;
    worker *w = pa->w;
    unsigned seen = 0;
    for (;;) {
        pthread_mutex_lock(&ctx->lock);
        while (ctx->generation == seen && !ctx->quit) {
            pthread_cond_wait(&ctx->go, &ctx->lock);
        }
        if (ctx->quit) {
            pthread_mutex_unlock(&ctx->lock);
            break;
        }
        seen = ctx->generation;
        pthread_mutex_unlock(&ctx->lock);
        take_blocks(ctx, w);
        pthread_mutex_lock(&ctx->lock);
        if (++ctx->finished == ctx->n_pool) {
            pthread_cond_signal(&ctx->done);
        }
        pthread_mutex_unlock(&ctx->lock);
    }
    forecast_rule_workspace_destroy(&w->rule);
    forecast_rule_thread_end();
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

/* Rearranges x[lo..hi) so that x[k] is the value of rank k for every k in
 * ranks[0..n_ranks) (ascending, within [lo, hi)): one partition serves
 * every rank on its side, so several nearby quantiles cost little more
 * than one. */
static void select_ranks(float *x, size_t lo, size_t hi, const size_t *ranks, size_t n_ranks)
{
    while (n_ranks > 0 && hi - lo > 16) {
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
        /* x[lo..j] <= pivot <= x[j+1..hi): ranks <= j left, the rest right */
        size_t split = 0;
        while (split < n_ranks && ranks[split] <= j) {
            split++;
        }
        if (split > 0 && split < n_ranks) {
            select_ranks(x, lo, j + 1, ranks, split);
            ranks += split;
            n_ranks -= split;
            lo = j + 1;
        } else if (split == n_ranks) {
            hi = j + 1;
        } else {
            lo = j + 1;
        }
    }
    if (n_ranks > 0) {
        for (size_t a = lo + 1; a < hi; a++) { /* insertion sort of the last few */
            float v = x[a];
            size_t k = a;
            while (k > lo && x[k - 1] > v) {
                x[k] = x[k - 1];
                k--;
            }
            x[k] = v;
        }
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

/* Quantiles q[0..n_q) (n_q <= 3) of x[0..n), with their standard errors as
   forecast_quantile_estimate gives them, by one multi-rank selection. */
static void quantiles_estimate(float *x, size_t n, const double *q, size_t n_q,
                               forecast_estimate *out)
{
    size_t want[9], ranks[9];
    size_t n_ranks = 0;
    for (size_t t = 0; t < n_q; t++) {
        out[t].value = NAN;
        out[t].se = NAN;
    }
    if (n == 0) {
        return;
    }
    for (size_t t = 0; t < n_q; t++) {
        double nq = (double)n * q[t];
        double half = Z95 * sqrt(nq * (1.0 - q[t]));
        want[3 * t + 0] = clamp_rank(floor(nq - half), n);
        want[3 * t + 1] = clamp_rank(ceil(nq), n);
        want[3 * t + 2] = clamp_rank(ceil(nq + half), n);
    }
    for (size_t a = 0; a < 3 * n_q; a++) { /* sorted, without repeats */
        size_t v = want[a], k = n_ranks;
        int seen = 0;
        for (size_t b = 0; b < n_ranks; b++) {
            seen |= ranks[b] == v;
        }
        if (seen) {
            continue;
        }
        while (k > 0 && ranks[k - 1] > v) {
            ranks[k] = ranks[k - 1];
            k--;
        }
        ranks[k] = v;
        n_ranks++;
    }
    select_ranks(x, 0, n, ranks, n_ranks);
    for (size_t t = 0; t < n_q; t++) {
        double xl = x[want[3 * t]], xk = x[want[3 * t + 1]], xu = x[want[3 * t + 2]];
        out[t].value = xk;
        out[t].se = (xu - xl) / (2.0 * Z95);
    }
}

const char *forecast_pcf_kernel_name(void)
{
    return forecast__pcf_kernel_name();
}

forecast_estimate forecast_quantile_estimate(float *x, size_t n, double q)
{
    forecast_estimate e;
    quantiles_estimate(x, n, &q, 1, &e);
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
        /* the nonzero curtailments; the other n - nz samples are 0 */
        float *x = ctx->curtail + j * ctx->max_samples;
        size_t nz = ctx->n_curtail[j];
        d->curtailment_p50_mw = quantile_nonneg(x, n, 0.50, n - nz, nz);
        d->curtailment_p90_mw = quantile_nonneg(x, n, 0.90, n - nz, nz);
        d->curtailment_p99_mw = quantile_nonneg(x, n, 0.99, n - nz, nz);
    }
    r->anm_acts = proportion_estimate((double)n_acts, n);
    r->unresolved = proportion_estimate((double)n_unresolved, n);
    const double headroom_q[3] = {0.10, 0.50, 0.90};
    forecast_estimate headroom_e[3];
    quantiles_estimate(ctx->headroom, n, headroom_q, 3, headroom_e);
    r->headroom_p10_mw = headroom_e[0];
    r->headroom_p50_mw = headroom_e[1];
    r->headroom_p90_mw = headroom_e[2];
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
    /* written only where a DER is curtailed: the pages of the rest are never touched */
    ctx.curtail = malloc((m->n_ders * ctx.max_samples + 1) * sizeof *ctx.curtail);
    ctx.n_curtail = calloc(m->n_ders + 1, sizeof *ctx.n_curtail);
    ctx.plans = calloc(m->n_states + 1, sizeof *ctx.plans);
    double *box_lo = calloc(m->dim, sizeof *box_lo);
    double *box_hi = calloc(m->dim, sizeof *box_hi);
    ctx.headroom = malloc(ctx.max_samples * sizeof *ctx.headroom);
    /* the stopping rule looks at FORECAST_PCF_ROUND blocks at a time; a fixed
       sample count has none, and takes longer rounds (fewer joins; the
       results, combined block by block in block order, are the same) */
    size_t round = config->ci_width > 0.0 ? FORECAST_PCF_ROUND : PCF_FIXED_ROUND;
    size_t n_blocks_total = (ctx.max_samples + FORECAST_PCF_BLOCK - 1) / FORECAST_PCF_BLOCK;
    round = round < n_blocks_total ? round : n_blocks_total;
    ctx.blocks = calloc(round, sizeof *ctx.blocks);
    ctx.workers = calloc(n_threads, sizeof *ctx.workers);
    pthread_t *tids = calloc(n_threads, sizeof *tids);
    pool_arg *pool_args = calloc(n_threads, sizeof *pool_args);
    unsigned n_workers = 0;
    int sync_ready = 0;
    if (!totals || !binding || !ctx.curtail || !ctx.n_curtail || !ctx.plans || !box_lo ||
        !box_hi || !ctx.headroom || !ctx.blocks || !ctx.workers || !tids || !pool_args) {
        goto done;
    }
    for (size_t b = 0; b < round; b++) {
        ctx.blocks[b].der_sums = calloc(m->n_ders * DER_SUMS + 1, sizeof(double));
        ctx.blocks[b].binding = calloc(m->total_rows + 1, sizeof(unsigned));
        ctx.blocks[b].curtailed = calloc(m->n_ders * FORECAST_PCF_BLOCK + 1, sizeof(float));
        ctx.blocks[b].n_curtailed = calloc(m->n_ders + 1, sizeof(size_t));
        if (!ctx.blocks[b].der_sums || !ctx.blocks[b].binding || !ctx.blocks[b].curtailed ||
            !ctx.blocks[b].n_curtailed) {
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
    box_lo[0] = box_hi[0] = 1.0;
    forecast_sampler_bounds(ctx.sampler, &box_lo[1], &box_hi[1], box_lo + 2, box_hi + 2);
    for (size_t s = 0; s < m->n_states; s++) {
        rc = plan_build(&ctx.plans[s], m, &m->states[s], box_lo, box_hi, config->exhaustive);
        if (rc != ANM_OK) {
            goto done;
        }
    }
    rc = ANM_ENOMEM;
    if (pthread_mutex_init(&ctx.lock, NULL) != 0) {
        goto done;
    }
    if (pthread_cond_init(&ctx.go, NULL) != 0) {
        pthread_mutex_destroy(&ctx.lock);
        goto done;
    }
    if (pthread_cond_init(&ctx.done, NULL) != 0) {
        pthread_cond_destroy(&ctx.go);
        pthread_mutex_destroy(&ctx.lock);
        goto done;
    }
    sync_ready = 1;
    if (n_workers > 1 && n_blocks_total > 1) {
        unsigned want = n_blocks_total < n_workers ? (unsigned)n_blocks_total : n_workers;
        for (; ctx.n_pool < want; ctx.n_pool++) {
            pool_args[ctx.n_pool].ctx = &ctx;
            pool_args[ctx.n_pool].w = &ctx.workers[ctx.n_pool];
            if (pthread_create(&tids[ctx.n_pool], NULL, pool_main, &pool_args[ctx.n_pool]) != 0) {
                break; /* run with the threads that started (or none: this one) */
            }
        }
    }
    size_t n_done = 0, n_acts = 0, n_unresolved = 0;
    double rows_evaluated = 0.0;
    for (size_t first = 0; first < n_blocks_total; first += round) {
        size_t nb = n_blocks_total - first;
        nb = nb > round ? round : nb;
        for (size_t b = 0; b < nb; b++) {
            block_result *br = &ctx.blocks[b];
            br->n = br->n_acts = br->n_unresolved = 0;
            br->rows_evaluated = 0.0;
            br->failed = 0;
            memset(br->der_sums, 0, m->n_ders * DER_SUMS * sizeof(double));
            memset(br->binding, 0, m->total_rows * sizeof(unsigned));
            memset(br->n_curtailed, 0, m->n_ders * sizeof(size_t));
        }
        ctx.first_block = first;
        ctx.n_blocks_round = nb;
        atomic_store(&ctx.next, 0);
        if (ctx.n_pool == 0) {
            take_blocks(&ctx, &ctx.workers[0]);
        } else {
            pthread_mutex_lock(&ctx.lock);
            ctx.finished = 0;
            ctx.generation++;
            pthread_cond_broadcast(&ctx.go);
            while (ctx.finished < ctx.n_pool) {
                pthread_cond_wait(&ctx.done, &ctx.lock);
            }
            pthread_mutex_unlock(&ctx.lock);
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
            for (size_t j = 0; j < m->n_ders; j++) {
                memcpy(ctx.curtail + j * ctx.max_samples + ctx.n_curtail[j],
                       br->curtailed + j * FORECAST_PCF_BLOCK, br->n_curtailed[j] * sizeof(float));
                ctx.n_curtail[j] += br->n_curtailed[j];
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
    if (ctx.n_pool > 0) {
        pthread_mutex_lock(&ctx.lock);
        ctx.quit = 1;
        pthread_cond_broadcast(&ctx.go);
        pthread_mutex_unlock(&ctx.lock);
        for (unsigned t = 0; t < ctx.n_pool; t++) {
            pthread_join(tids[t], NULL);
        }
    }
    if (sync_ready) {
        pthread_cond_destroy(&ctx.done);
        pthread_cond_destroy(&ctx.go);
        pthread_mutex_destroy(&ctx.lock);
    }
    forecast_sampler_destroy(&ctx.sampler);
    for (unsigned t = 0; t < n_workers; t++) {
        worker_free(&ctx.workers[t]);
    }
    if (ctx.blocks) {
        for (size_t b = 0; b < round; b++) {
            free(ctx.blocks[b].der_sums);
            free(ctx.blocks[b].binding);
            free(ctx.blocks[b].curtailed);
            free(ctx.blocks[b].n_curtailed);
        }
    }
    for (size_t s = 0; ctx.plans && s < m->n_states; s++) {
        plan_free(&ctx.plans[s]);
    }
    free(ctx.plans);
    free(ctx.n_curtail);
    free(box_lo);
    free(box_hi);
    free(ctx.blocks);
    free(ctx.workers);
    free(tids);
    free(pool_args);
    free(ctx.curtail);
    free(ctx.headroom);
    free(totals);
    free(binding);
    return rc;
}
