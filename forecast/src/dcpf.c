/*
 * dcpf.c: the DC model of a case (B, phase-shift injections, energised
 * part, bridges) and its power flow. See forecast/dcpf.h.
 */
#include "forecast/dcpf.h"

#include "dcpf_internal.h"
#include "sparse_ldl.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct forecast_dc_model {
    size_t n_bus, n_branch;
    size_t reference_bus;
    double base_mva;
    double reference_angle_rad;
    size_t *from, *to;           /* bus indices of each branch */
    double *susceptance;         /* b_k per unit, 0 when inactive */
    double *pfinj;               /* per unit */
    double *pbusinj;             /* per unit */
    unsigned char *energised;    /* per bus */
    unsigned char *active;       /* per branch */
    unsigned char *bridge;       /* per branch */
    size_t *reduced;             /* bus -> row of reduced B, or SIZE_MAX */
    size_t n_reduced;
    forecast__ldl *factor;
};

typedef struct bus_key {
    int id;
    size_t index;
} bus_key;

static int compare_bus_key(const void *a, const void *b)
{
    const bus_key *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static long find_bus(const bus_key *keys, size_t n, int id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (keys[mid].id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return (lo < n && keys[lo].id == id) ? (long)keys[lo].index : -1;
}

void forecast_dc_model_destroy(forecast_dc_model **m)
{
    if (!m || !*m) {
        return;
    }
    free((*m)->from);
    free((*m)->to);
    free((*m)->susceptance);
    free((*m)->pfinj);
    free((*m)->pbusinj);
    free((*m)->energised);
    free((*m)->active);
    free((*m)->bridge);
    free((*m)->reduced);
    forecast__ldl_destroy(&(*m)->factor);
    free(*m);
    *m = NULL;
}

/*
 * Bridges of the active network by Tarjan's lowlink search, iteratively
 * (a radial feeder of thousands of buses would overflow a recursive one).
 * Parallel branches are distinct edges, so a doubled circuit is no bridge.
 */
static int find_bridges(forecast_dc_model *m)
{
    int rc = ANM_ENOMEM;
    size_t n = m->n_bus, n_branch = m->n_branch;
    size_t *start = calloc(n + 1, sizeof *start);
    size_t *edge = malloc((2 * n_branch + 1) * sizeof *edge);
    size_t *fill = malloc((n + 1) * sizeof *fill);
    size_t *discovery = calloc(n + 1, sizeof *discovery); /* 0: unvisited */
    size_t *low = malloc((n + 1) * sizeof *low);
    size_t *stack_vertex = malloc((n + 1) * sizeof *stack_vertex);
    size_t *stack_edge = malloc((n + 1) * sizeof *stack_edge);
    size_t *stack_next = malloc((n + 1) * sizeof *stack_next);
    if (!start || !edge || !fill || !discovery || !low || !stack_vertex || !stack_edge ||
        !stack_next) {
        goto free_all;
    }
    for (size_t k = 0; k < n_branch; k++) {
        if (m->active[k] && m->from[k] != m->to[k]) {
            start[m->from[k] + 1]++;
            start[m->to[k] + 1]++;
        }
    }
    for (size_t i = 0; i < n; i++) {
        start[i + 1] += start[i];
        fill[i] = start[i];
    }
    for (size_t k = 0; k < n_branch; k++) {
        if (m->active[k] && m->from[k] != m->to[k]) {
            edge[fill[m->from[k]]++] = k;
            edge[fill[m->to[k]]++] = k;
        }
    }
    size_t time = 0, depth = 0;
    const size_t no_edge = (size_t)-1;
    stack_vertex[0] = m->reference_bus;
    stack_edge[0] = no_edge;
    stack_next[0] = start[m->reference_bus];
    discovery[m->reference_bus] = low[m->reference_bus] = ++time;
    depth = 1;
    while (depth > 0) {
        size_t u = stack_vertex[depth - 1];
        if (stack_next[depth - 1] < start[u + 1]) {
            size_t k = edge[stack_next[depth - 1]++];
            if (k == stack_edge[depth - 1]) {
                continue;
            }
            size_t w = m->from[k] == u ? m->to[k] : m->from[k];
            if (discovery[w]) {
                if (discovery[w] < low[u]) {
                    low[u] = discovery[w];
                }
            } else {
                discovery[w] = low[w] = ++time;
                stack_vertex[depth] = w;
                stack_edge[depth] = k;
                stack_next[depth] = start[w];
                depth++;
            }
        } else {
            depth--;
            if (depth > 0) {
                size_t parent = stack_vertex[depth - 1];
                if (low[u] < low[parent]) {
                    low[parent] = low[u];
                }
                if (low[u] > discovery[parent]) {
                    m->bridge[stack_edge[depth]] = 1;
                }
            }
        }
    }
    rc = ANM_OK;
free_all:
    free(start);
    free(edge);
    free(fill);
    free(discovery);
    free(low);
    free(stack_vertex);
    free(stack_edge);
    free(stack_next);
    return rc;
}

static int build(const anm_case *c, const size_t *outaged, size_t n_outaged,
                 forecast_dc_model **out, anm_error_detail *err)
{
    int rc = ANM_ENOMEM;
    forecast_dc_model *m = NULL;
    bus_key *keys = NULL;
    size_t *queue = NULL;
    int *t_row = NULL, *t_col = NULL;
    double *t_val = NULL;
    const char *file = c->path ? c->path : "";

    *out = NULL;
    if (c->n_bus == 0 || c->ref_bus_index < 0 || (size_t)c->ref_bus_index >= c->n_bus) {
        anm_error_detail_set(err, file, 0, 0, "bus", "case has no reference bus");
        return ANM_ECONFIG;
    }
    for (size_t o = 0; o < n_outaged; o++) {
        if (outaged[o] >= c->n_branch) {
            anm_error_detail_set(err, file, 0, 0, NULL, "no branch %zu (the case has %zu)",
                                 outaged[o] + 1, c->n_branch);
            return ANM_EINVAL;
        }
    }
    size_t n = c->n_bus, nb = c->n_branch, nb1 = nb ? nb : 1;
    m = calloc(1, sizeof *m);
    if (!m) {
        goto fail;
    }
    m->n_bus = n;
    m->n_branch = nb;
    m->reference_bus = (size_t)c->ref_bus_index;
    m->base_mva = c->base_mva;
    m->reference_angle_rad = c->bus[m->reference_bus].va_deg * M_PI / 180.0;
    m->from = malloc(nb1 * sizeof *m->from);
    m->to = malloc(nb1 * sizeof *m->to);
    m->susceptance = calloc(nb1, sizeof *m->susceptance);
    m->pfinj = calloc(nb1, sizeof *m->pfinj);
    m->pbusinj = calloc(n, sizeof *m->pbusinj);
    m->energised = calloc(n, 1);
    m->active = calloc(nb1, 1);
    m->bridge = calloc(nb1, 1);
    m->reduced = malloc(n * sizeof *m->reduced);
    keys = malloc(n * sizeof *keys);
    queue = malloc(n * sizeof *queue);
    if (!m->from || !m->to || !m->susceptance || !m->pfinj || !m->pbusinj || !m->energised ||
        !m->active || !m->bridge || !m->reduced || !keys || !queue) {
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        keys[i].id = c->bus[i].id;
        keys[i].index = i;
    }
    qsort(keys, n, sizeof *keys, compare_bus_key);

    /* in service: status, not outaged; b = 1 / (x tap) */
    for (size_t k = 0; k < nb; k++) {
        const anm_branch *br = &c->branch[k];
        long f = find_bus(keys, n, br->from_bus), t = find_bus(keys, n, br->to_bus);
        if (f < 0 || t < 0) {
            anm_error_detail_set(err, file, 0, 0, NULL, "branch[%zu].%s: no bus %d", k,
                                 f < 0 ? "from_bus" : "to_bus",
                                 f < 0 ? br->from_bus : br->to_bus);
            rc = ANM_ECONFIG;
            goto fail;
        }
        m->from[k] = (size_t)f;
        m->to[k] = (size_t)t;
        m->active[k] = br->status > 0;
    }
    for (size_t o = 0; o < n_outaged; o++) {
        m->active[outaged[o]] = 0;
    }

    /* energised: reachable from the reference bus through in-service branches */
    {
        size_t *start = calloc(n + 1, sizeof *start);
        size_t *adjacent = malloc(2 * nb1 * sizeof *adjacent);
        size_t *fill = malloc(n * sizeof *fill);
        if (!start || !adjacent || !fill) {
            free(start);
            free(adjacent);
            free(fill);
            goto fail;
        }
        for (size_t k = 0; k < nb; k++) {
            if (m->active[k]) {
                start[m->from[k] + 1]++;
                start[m->to[k] + 1]++;
            }
        }
        for (size_t i = 0; i < n; i++) {
            start[i + 1] += start[i];
            fill[i] = start[i];
        }
        for (size_t k = 0; k < nb; k++) {
            if (m->active[k]) {
                adjacent[fill[m->from[k]]++] = m->to[k];
                adjacent[fill[m->to[k]]++] = m->from[k];
            }
        }
        size_t head = 0, tail = 0;
        queue[tail++] = m->reference_bus;
        m->energised[m->reference_bus] = 1;
        while (head < tail) {
            size_t u = queue[head++];
            for (size_t p = start[u]; p < start[u + 1]; p++) {
                size_t w = adjacent[p];
                if (!m->energised[w] && c->bus[w].type != ANM_BUS_ISOLATED) {
                    m->energised[w] = 1;
                    queue[tail++] = w;
                }
            }
        }
        free(start);
        free(adjacent);
        free(fill);
    }

    size_t n_active = 0;
    for (size_t k = 0; k < nb; k++) {
        const anm_branch *br = &c->branch[k];
        if (m->active[k] && !(m->energised[m->from[k]] && m->energised[m->to[k]])) {
            m->active[k] = 0;
        }
        if (!m->active[k]) {
            continue;
        }
        double tap = br->tap == 0.0 ? 1.0 : br->tap;
        if (br->x_pu == 0.0 || !isfinite(br->x_pu) || !isfinite(tap)) {
            anm_error_detail_set(err, file, 0, 0, NULL,
                                 "branch[%zu].x_pu: an in-service branch needs a non-zero "
                                 "reactance (branch %zu, %d-%d)",
                                 k, k + 1, br->from_bus, br->to_bus);
            rc = ANM_ECONFIG;
            goto fail;
        }
        double b = 1.0 / (br->x_pu * tap);
        m->susceptance[k] = b;
        m->pfinj[k] = -b * br->shift_deg * M_PI / 180.0;
        m->pbusinj[m->from[k]] += m->pfinj[k];
        m->pbusinj[m->to[k]] -= m->pfinj[k];
        n_active++;
    }

    m->n_reduced = 0;
    for (size_t i = 0; i < n; i++) {
        m->reduced[i] = (m->energised[i] && i != m->reference_bus) ? m->n_reduced++ : SIZE_MAX;
    }
    size_t cap = 3 * n_active + 1;
    t_row = malloc(cap * sizeof *t_row);
    t_col = malloc(cap * sizeof *t_col);
    t_val = malloc(cap * sizeof *t_val);
    if (!t_row || !t_col || !t_val) {
        goto fail;
    }
    size_t nnz = 0;
    for (size_t k = 0; k < nb; k++) {
        if (!m->active[k] || m->from[k] == m->to[k]) {
            continue;
        }
        size_t f = m->reduced[m->from[k]], t = m->reduced[m->to[k]];
        double b = m->susceptance[k];
        if (f != SIZE_MAX) {
            t_row[nnz] = (int)f, t_col[nnz] = (int)f, t_val[nnz++] = b;
        }
        if (t != SIZE_MAX) {
            t_row[nnz] = (int)t, t_col[nnz] = (int)t, t_val[nnz++] = b;
        }
        if (f != SIZE_MAX && t != SIZE_MAX) {
            t_row[nnz] = (int)f, t_col[nnz] = (int)t, t_val[nnz++] = -b;
        }
    }
    rc = forecast__ldl_factor(m->n_reduced, nnz, t_row, t_col, t_val, &m->factor);
    if (rc == ANM_ENUMERIC) {
        anm_error_detail_set(err, file, 0, 0, NULL,
                             "the susceptance matrix is singular to working precision");
    }
    if (rc != ANM_OK) {
        goto fail;
    }
    rc = find_bridges(m);
    if (rc != ANM_OK) {
        goto fail;
    }
    *out = m;
    m = NULL;
fail:
    forecast_dc_model_destroy(&m);
    free(keys);
    free(queue);
    free(t_row);
    free(t_col);
    free(t_val);
    return rc;
}

int forecast_dc_model_new(const anm_case *c, forecast_dc_model **out, anm_error_detail *err)
{
    return build(c, NULL, 0, out, err);
}

int forecast_dc_model_new_outage(const anm_case *c, const size_t *outaged, size_t n_outaged,
                                 forecast_dc_model **out, anm_error_detail *err)
{
    return build(c, outaged, n_outaged, out, err);
}

size_t forecast_dc_model_bus_count(const forecast_dc_model *m)
{
    return m->n_bus;
}

size_t forecast_dc_model_branch_count(const forecast_dc_model *m)
{
    return m->n_branch;
}

size_t forecast_dc_model_reference_bus(const forecast_dc_model *m)
{
    return m->reference_bus;
}

double forecast_dc_model_base_mva(const forecast_dc_model *m)
{
    return m->base_mva;
}

int forecast_dc_model_bus_energised(const forecast_dc_model *m, size_t bus)
{
    return bus < m->n_bus && m->energised[bus];
}

int forecast_dc_model_branch_active(const forecast_dc_model *m, size_t branch)
{
    return branch < m->n_branch && m->active[branch];
}

int forecast_dc_model_branch_is_bridge(const forecast_dc_model *m, size_t branch)
{
    return branch < m->n_branch && m->bridge[branch];
}

double forecast_dc_model_branch_susceptance(const forecast_dc_model *m, size_t branch)
{
    return branch < m->n_branch ? m->susceptance[branch] : 0.0;
}

size_t forecast_dc_model_branch_from(const forecast_dc_model *m, size_t branch)
{
    return m->from[branch];
}

size_t forecast_dc_model_branch_to(const forecast_dc_model *m, size_t branch)
{
    return m->to[branch];
}

void forecast_dc_case_injection(const anm_case *c, double *injection_mw)
{
    bus_key *keys = malloc((c->n_bus ? c->n_bus : 1) * sizeof *keys);
    for (size_t i = 0; i < c->n_bus; i++) {
        injection_mw[i] = -c->bus[i].pd_mw - c->bus[i].gs_mw;
        if (keys) {
            keys[i].id = c->bus[i].id;
            keys[i].index = i;
        }
    }
    if (keys) {
        qsort(keys, c->n_bus, sizeof *keys, compare_bus_key);
    }
    for (size_t g = 0; g < c->n_gen; g++) {
        if (c->gen[g].status <= 0) {
            continue;
        }
        long i = -1;
        if (keys) {
            i = find_bus(keys, c->n_bus, c->gen[g].bus);
        } else {
            for (size_t j = 0; j < c->n_bus && i < 0; j++) {
                i = c->bus[j].id == c->gen[g].bus ? (long)j : -1;
            }
        }
        if (i >= 0) {
            injection_mw[i] += c->gen[g].pg_mw;
        }
    }
    free(keys);
}

void forecast__dc_model_solve_raw(const forecast_dc_model *m, double *x, double *work)
{
    /* gather into the reduced order, solve, scatter back */
    double *reduced = work;
    size_t n = m->n_bus;
    for (size_t i = 0; i < n; i++) {
        if (m->reduced[i] != SIZE_MAX) {
            reduced[m->reduced[i]] = x[i];
        }
    }
    forecast__ldl_solve(m->factor, reduced, work + m->n_reduced);
    for (size_t i = 0; i < n; i++) {
        x[i] = m->reduced[i] != SIZE_MAX ? reduced[m->reduced[i]] : 0.0;
    }
}

int forecast_dc_model_solve(const forecast_dc_model *m, const double *injection_mw,
                            double *theta_rad, double *pf_mw)
{
    size_t n = m->n_bus;
    double *theta = malloc(3 * n * sizeof *theta);
    if (!theta) {
        return ANM_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        theta[i] = injection_mw[i] / m->base_mva - m->pbusinj[i];
    }
    forecast__dc_model_solve_raw(m, theta, theta + n);
    for (size_t i = 0; i < n; i++) {
        if (m->energised[i]) {
            theta[i] += m->reference_angle_rad;
        }
    }
    if (pf_mw) {
        for (size_t k = 0; k < m->n_branch; k++) {
            pf_mw[k] = m->active[k] ? m->base_mva * (m->susceptance[k] *
                                                         (theta[m->from[k]] - theta[m->to[k]]) +
                                                     m->pfinj[k])
                                    : 0.0;
        }
    }
    if (theta_rad) {
        memcpy(theta_rad, theta, n * sizeof *theta);
    }
    free(theta);
    return ANM_OK;
}

int forecast_dc_outage_flows(const anm_case *c, const double *injection_mw, size_t branch,
                             double *pf_mw, unsigned char *bus_energised,
                             double *dropped_injection_mw, anm_error_detail *err)
{
    forecast_dc_model *m = NULL;
    int rc = forecast_dc_model_new_outage(c, &branch, 1, &m, err);
    if (rc != ANM_OK) {
        return rc;
    }
    rc = forecast_dc_model_solve(m, injection_mw, NULL, pf_mw);
    double dropped = 0.0;
    for (size_t i = 0; i < m->n_bus; i++) {
        if (bus_energised) {
            bus_energised[i] = m->energised[i];
        }
        if (!m->energised[i]) {
            dropped += injection_mw[i];
        }
    }
    if (dropped_injection_mw) {
        *dropped_injection_mw = dropped;
    }
    forecast_dc_model_destroy(&m);
    return rc;
}
