/*
 * sparse_ldl.c: minimum-degree ordering and up-looking sparse LDL^T.
 * See sparse_ldl.h for the contract.
 */
#include "sparse_ldl.h"

#include "engine/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct forecast__ldl {
    size_t n;
    size_t *perm;     /* perm[k]: original index of the k-th pivot */
    size_t *col_ptr;  /* L in compressed columns, strictly lower part */
    size_t *row_idx;
    double *values;
    double *diagonal; /* D */
};

typedef struct adjacency_list {
    size_t *items;
    size_t size;
    size_t capacity;
} adjacency_list;

static int adjacency_push(adjacency_list *list, size_t item)
{
    if (list->size == list->capacity) {
        size_t capacity = list->capacity ? 2 * list->capacity : 4;
        size_t *items = realloc(list->items, capacity * sizeof *items);
        if (!items) {
            return ANM_ENOMEM;
        }
        list->items = items;
        list->capacity = capacity;
    }
    list->items[list->size++] = item;
    return ANM_OK;
}

/*
 * Minimum-degree ordering on the explicit elimination graph: at each step
 * the uneliminated vertex of least degree (lowest index on ties, so the
 * order is deterministic) is eliminated and its neighbours made a clique.
 * Power networks are sparse and nearly planar, so the cliques stay small;
 * the O(n^2) scan for the minimum costs a few milliseconds at 2,000 buses.
 */
static int minimum_degree_order(size_t n, size_t nnz, const int *row, const int *col,
                                size_t *perm)
{
    int rc = ANM_ENOMEM;
    adjacency_list *adj = calloc(n ? n : 1, sizeof *adj);
    size_t *marker = calloc(n ? n : 1, sizeof *marker);
    unsigned char *done = calloc(n ? n : 1, 1);
    size_t stamp = 0;
    if (!adj || !marker || !done) {
        goto free_all;
    }
    for (size_t e = 0; e < nnz; e++) {
        size_t i = (size_t)row[e], j = (size_t)col[e];
        if (i == j) {
            continue;
        }
        if (adjacency_push(&adj[i], j) != ANM_OK || adjacency_push(&adj[j], i) != ANM_OK) {
            goto free_all;
        }
    }
    /* remove duplicate neighbours (parallel branches) */
    for (size_t v = 0; v < n; v++) {
        stamp++;
        size_t kept = 0;
        for (size_t p = 0; p < adj[v].size; p++) {
            size_t w = adj[v].items[p];
            if (marker[w] != stamp) {
                marker[w] = stamp;
                adj[v].items[kept++] = w;
            }
        }
        adj[v].size = kept;
    }
    for (size_t k = 0; k < n; k++) {
        size_t best = n;
        for (size_t v = 0; v < n; v++) {
            if (!done[v] && (best == n || adj[v].size < adj[best].size)) {
                best = v;
            }
        }
        size_t v = best;
        perm[k] = v;
        done[v] = 1;
        for (size_t p = 0; p < adj[v].size; p++) {
            size_t u = adj[v].items[p];
            adjacency_list *list = &adj[u];
            stamp++;
            for (size_t q = 0; q < list->size;) {
                if (list->items[q] == v) {
                    list->items[q] = list->items[--list->size];
                } else {
                    marker[list->items[q]] = stamp;
                    q++;
                }
            }
            for (size_t q = 0; q < adj[v].size; q++) {
                size_t w = adj[v].items[q];
                if (w != u && marker[w] != stamp) {
                    marker[w] = stamp;
                    if (adjacency_push(list, w) != ANM_OK) {
                        goto free_all;
                    }
                }
            }
        }
        free(adj[v].items);
        adj[v].items = NULL;
        adj[v].size = adj[v].capacity = 0;
    }
    rc = ANM_OK;
free_all:
    if (adj) {
        for (size_t v = 0; v < n; v++) {
            free(adj[v].items);
        }
    }
    free(adj);
    free(marker);
    free(done);
    return rc;
}

void forecast__ldl_destroy(forecast__ldl **f)
{
    if (!f || !*f) {
        return;
    }
    free((*f)->perm);
    free((*f)->col_ptr);
    free((*f)->row_idx);
    free((*f)->values);
    free((*f)->diagonal);
    free(*f);
    *f = NULL;
}

int forecast__ldl_factor(size_t n, size_t nnz, const int *row, const int *col,
                         const double *val, forecast__ldl **out)
{
    int rc = ANM_ENOMEM;
    forecast__ldl *f = NULL;
    size_t *inverse = NULL, *upper_ptr = NULL, *upper_row = NULL, *parent = NULL;
    size_t *flag = NULL, *count = NULL, *pattern = NULL;
    double *upper_val = NULL, *y = NULL;
    const size_t none = (size_t)-1;

    *out = NULL;
    for (size_t e = 0; e < nnz; e++) {
        if (row[e] < 0 || col[e] < 0 || (size_t)row[e] >= n || (size_t)col[e] >= n) {
            return ANM_EINVAL;
        }
    }
    size_t m = n ? n : 1;
    f = calloc(1, sizeof *f);
    if (!f) {
        goto fail;
    }
    f->n = n;
    f->perm = malloc(m * sizeof *f->perm);
    f->col_ptr = calloc(m + 1, sizeof *f->col_ptr);
    f->diagonal = calloc(m, sizeof *f->diagonal);
    inverse = malloc(m * sizeof *inverse);
    upper_ptr = calloc(m + 1, sizeof *upper_ptr);
    upper_row = malloc((nnz ? nnz : 1) * sizeof *upper_row);
    upper_val = malloc((nnz ? nnz : 1) * sizeof *upper_val);
    parent = malloc(m * sizeof *parent);
    flag = malloc(m * sizeof *flag);
    count = calloc(m, sizeof *count);
    pattern = malloc(m * sizeof *pattern);
    y = calloc(m, sizeof *y);
    if (!f->perm || !f->col_ptr || !f->diagonal || !inverse || !upper_ptr || !upper_row ||
        !upper_val || !parent || !flag || !count || !pattern || !y) {
        goto fail;
    }
    rc = minimum_degree_order(n, nnz, row, col, f->perm);
    if (rc != ANM_OK) {
        goto fail;
    }
    for (size_t k = 0; k < n; k++) {
        inverse[f->perm[k]] = k;
    }

    /* the permuted matrix's upper triangle, by columns (duplicates kept) */
    double max_diagonal = 0.0;
    for (size_t e = 0; e < nnz; e++) {
        size_t i = inverse[row[e]], j = inverse[col[e]];
        upper_ptr[(i > j ? i : j) + 1]++;
    }
    for (size_t k = 0; k < n; k++) {
        upper_ptr[k + 1] += upper_ptr[k];
    }
    for (size_t k = 0; k < n; k++) {
        count[k] = upper_ptr[k];
    }
    for (size_t e = 0; e < nnz; e++) {
        size_t i = inverse[row[e]], j = inverse[col[e]];
        size_t c = i > j ? i : j, r = i > j ? j : i;
        upper_row[count[c]] = r;
        upper_val[count[c]++] = val[e];
        if (i == j && fabs(val[e]) > max_diagonal) {
            max_diagonal = fabs(val[e]);
        }
    }

    /* symbolic: elimination tree and column counts of L */
    for (size_t k = 0; k < n; k++) {
        parent[k] = none;
        flag[k] = k;
        count[k] = 0;
        for (size_t p = upper_ptr[k]; p < upper_ptr[k + 1]; p++) {
            size_t i = upper_row[p];
            if (i >= k) {
                continue;
            }
            for (; flag[i] != k; i = parent[i]) {
                if (parent[i] == none) {
                    parent[i] = k;
                }
                count[i]++;
                flag[i] = k;
            }
        }
    }
    for (size_t k = 0; k < n; k++) {
        f->col_ptr[k + 1] = f->col_ptr[k] + count[k];
    }
    size_t lnz = f->col_ptr[n];
    f->row_idx = malloc((lnz ? lnz : 1) * sizeof *f->row_idx);
    f->values = malloc((lnz ? lnz : 1) * sizeof *f->values);
    if (!f->row_idx || !f->values) {
        rc = ANM_ENOMEM;
        goto fail;
    }

    /* numeric: row k of L by a sparse triangular solve along the tree */
    for (size_t k = 0; k < n; k++) {
        size_t top = n;
        y[k] = 0.0;
        flag[k] = k;
        count[k] = 0;
        for (size_t p = upper_ptr[k]; p < upper_ptr[k + 1]; p++) {
            size_t i = upper_row[p];
            y[i] += upper_val[p];
            size_t length = 0;
            for (; flag[i] != k; i = parent[i]) {
                pattern[length++] = i;
                flag[i] = k;
            }
            while (length > 0) {
                pattern[--top] = pattern[--length];
            }
        }
        double d = y[k];
        y[k] = 0.0;
        for (; top < n; top++) {
            size_t i = pattern[top];
            double yi = y[i];
            y[i] = 0.0;
            size_t end = f->col_ptr[i] + count[i];
            for (size_t p = f->col_ptr[i]; p < end; p++) {
                y[f->row_idx[p]] -= f->values[p] * yi;
            }
            double l_ki = yi / f->diagonal[i];
            d -= l_ki * yi;
            f->row_idx[end] = k;
            f->values[end] = l_ki;
            count[i]++;
        }
        if (!(fabs(d) > 1e-14 * max_diagonal)) {
            rc = ANM_ENUMERIC;
            goto fail;
        }
        f->diagonal[k] = d;
    }
    *out = f;
    f = NULL;
    rc = ANM_OK;
fail:
    forecast__ldl_destroy(&f);
    free(inverse);
    free(upper_ptr);
    free(upper_row);
    free(upper_val);
    free(parent);
    free(flag);
    free(count);
    free(pattern);
    free(y);
    return rc;
}

size_t forecast__ldl_size(const forecast__ldl *f)
{
    return f->n;
}

size_t forecast__ldl_nnz(const forecast__ldl *f)
{
    return f->col_ptr[f->n];
}

void forecast__ldl_solve(const forecast__ldl *f, double *x, double *work)
{
    size_t n = f->n;
    for (size_t k = 0; k < n; k++) {
        work[k] = x[f->perm[k]];
    }
    for (size_t j = 0; j < n; j++) {
        double xj = work[j];
        if (xj != 0.0) {
            for (size_t p = f->col_ptr[j]; p < f->col_ptr[j + 1]; p++) {
                work[f->row_idx[p]] -= f->values[p] * xj;
            }
        }
    }
    for (size_t j = 0; j < n; j++) {
        work[j] /= f->diagonal[j];
    }
    for (size_t j = n; j-- > 0;) {
        double sum = work[j];
        for (size_t p = f->col_ptr[j]; p < f->col_ptr[j + 1]; p++) {
            sum -= f->values[p] * work[f->row_idx[p]];
        }
        work[j] = sum;
    }
    for (size_t k = 0; k < n; k++) {
        x[f->perm[k]] = work[k];
    }
}
