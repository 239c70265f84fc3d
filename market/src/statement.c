/*
 * statement.c: headroom and sensitivities of one product, and the
 * feasibility rule. Sensitivities are kept per DER in a sorted array of
 * rows (DERs per zone are tens to hundreds), looked up by binary search.
 */
#include "market/statement.h"

#include "engine/error.h"
#include "market/types.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sensitivity differences smaller than this (MW/MW) count as zero, so that
 * rounding noise in a statement never limits a trade. */
#define SENSITIVITY_EPSILON 1e-12
/* A trade may use headroom up to this many MW beyond the exact limit, so
 * that 2.4 / (0.8 - 0.2) gives 4 MW and not 3.999 (decimal sensitivities
 * are not exact in binary). 1e-9 MW is a milliwatt: far below any rating. */
#define FEASIBILITY_TOLERANCE_MW 1e-9

struct market_statement {
    size_t n_constraints;
    double headroom_mw[MARKET_MAX_CONSTRAINTS];
    char names[MARKET_MAX_CONSTRAINTS][32];
    size_t n_ders, cap_ders;
    uint32_t *ders;    /* ascending */
    double *rows;      /* n_ders x n_constraints */
    int32_t *dense;    /* row index by DER id (-1: none) for ids below n_dense */
    size_t n_dense;
};

/* DER ids below this get an O(1) look-up table (4 bytes per id); larger ids
 * (sparse numbering) fall back to binary search. */
#define DENSE_DER_LIMIT (1u << 20)

market_statement *market_statement_new(size_t n_constraints, const double *headroom_mw,
                                       const char *const *names)
{
    if (n_constraints == 0 || n_constraints > MARKET_MAX_CONSTRAINTS || headroom_mw == NULL) {
        return NULL;
    }
    market_statement *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->n_constraints = n_constraints;
    for (size_t c = 0; c < n_constraints; c++) {
        s->headroom_mw[c] = headroom_mw[c];
        if (names != NULL && names[c] != NULL) {
            snprintf(s->names[c], sizeof s->names[c], "%s", names[c]);
        } else {
            snprintf(s->names[c], sizeof s->names[c], "constraint %zu", c);
        }
    }
    return s;
}

void market_statement_destroy(market_statement **statement)
{
    if (statement == NULL || *statement == NULL) {
        return;
    }
    free((*statement)->ders);
    free((*statement)->rows);
    free((*statement)->dense);
    free(*statement);
    *statement = NULL;
}

static size_t der_lower_bound(const market_statement *s, uint32_t der)
{
    size_t lo = 0, hi = s->n_ders;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->ders[mid] < der) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* The row of der, or NULL (all sensitivities zero). */
static const double *row_of(const market_statement *s, uint32_t der)
{
    if (der == MARKET_NO_DER) {
        return NULL;
    }
    if (der < s->n_dense) {
        int32_t row = s->dense[der];
        return row >= 0 ? s->rows + (size_t)row * s->n_constraints : NULL;
    }
    size_t at = der_lower_bound(s, der);
    return at < s->n_ders && s->ders[at] == der ? s->rows + at * s->n_constraints : NULL;
}

int market_statement_set_sensitivity(market_statement *s, uint32_t der, size_t c,
                                     double sensitivity)
{
    if (s == NULL || c >= s->n_constraints || der == MARKET_NO_DER || !isfinite(sensitivity)) {
        return ANM_EINVAL;
    }
    size_t at = der_lower_bound(s, der);
    if (at == s->n_ders || s->ders[at] != der) {
        if (s->n_ders == s->cap_ders) {
            size_t next = s->cap_ders ? s->cap_ders * 2 : 16;
            uint32_t *ders = realloc(s->ders, next * sizeof *ders);
            if (ders == NULL) {
                return ANM_ENOMEM;
            }
            s->ders = ders;
            double *rows = realloc(s->rows, next * s->n_constraints * sizeof *rows);
            if (rows == NULL) {
                return ANM_ENOMEM;
            }
            s->rows = rows;
            s->cap_ders = next;
        }
        size_t n = s->n_constraints;
        memmove(s->ders + at + 1, s->ders + at, (s->n_ders - at) * sizeof *s->ders);
        memmove(s->rows + (at + 1) * n, s->rows + at * n, (s->n_ders - at) * n * sizeof *s->rows);
        s->ders[at] = der;
        for (size_t k = 0; k < n; k++) {
            s->rows[at * n + k] = 0.0;
        }
        s->n_ders++;
        if (der < DENSE_DER_LIMIT && der >= s->n_dense) {
            size_t grown = (size_t)der + 1 > s->n_dense * 2 ? (size_t)der + 1 : s->n_dense * 2;
            grown = grown > DENSE_DER_LIMIT ? DENSE_DER_LIMIT : grown;
            int32_t *dense = realloc(s->dense, grown * sizeof *dense);
            if (dense != NULL) { /* else ids above n_dense use binary search */
                for (size_t k = s->n_dense; k < grown; k++) {
                    dense[k] = -1;
                }
                s->dense = dense;
                s->n_dense = grown;
            }
        }
        /* rows from at on moved up by one */
        for (size_t k = at; k < s->n_ders; k++) {
            if (s->ders[k] < s->n_dense) {
                s->dense[s->ders[k]] = (int32_t)k;
            }
        }
    }
    s->rows[at * s->n_constraints + c] = sensitivity;
    return ANM_OK;
}

size_t market_statement_constraints(const market_statement *s) { return s->n_constraints; }

double market_statement_headroom_mw(const market_statement *s, size_t c)
{
    return c < s->n_constraints ? s->headroom_mw[c] : 0.0;
}

const char *market_statement_constraint_name(const market_statement *s, size_t c)
{
    return c < s->n_constraints ? s->names[c] : "";
}

double market_statement_sensitivity(const market_statement *s, uint32_t der, size_t c)
{
    const double *row = row_of(s, der);
    return row != NULL && c < s->n_constraints ? row[c] : 0.0;
}

size_t market_statement_der_count(const market_statement *s) { return s->n_ders; }

uint32_t market_statement_der_at(const market_statement *s, size_t i)
{
    return i < s->n_ders ? s->ders[i] : MARKET_NO_DER;
}

/* d_c = a_cj - a_ci for every c (a requirement has no j). */
static void effect_per_mw(const market_statement *s, uint32_t sell_der, uint32_t buy_der,
                          double *d)
{
    const double *ri = row_of(s, sell_der);
    const double *rj = row_of(s, buy_der);
    for (size_t c = 0; c < s->n_constraints; c++) {
        double v = (rj ? rj[c] : 0.0) - (ri ? ri[c] : 0.0);
        d[c] = fabs(v) < SENSITIVITY_EPSILON ? 0.0 : v;
    }
}

/* The feasible volume given the per-MW effects d. */
static int64_t feasible_with(const market_statement *s, const double *used_mw, const double *d,
                             int64_t wanted, int *limiting)
{
    if (limiting != NULL) {
        *limiting = -1;
    }
    if (wanted <= 0) {
        return 0;
    }
    int64_t best = wanted;
    for (size_t c = 0; c < s->n_constraints; c++) {
        if (d[c] <= 0.0) {
            continue; /* the trade relieves c or leaves it alone */
        }
        double room =
            s->headroom_mw[c] - (used_mw ? used_mw[c] : 0.0) + FEASIBILITY_TOLERANCE_MW;
        double units = room > 0.0 ? floor(room / d[c] * MARKET_QUANTITY_UNITS_PER_MW) : 0.0;
        /* floor of a rounded quotient can still overshoot by one unit: step back */
        if (units > 0.0 && units < (double)best &&
            d[c] * units / MARKET_QUANTITY_UNITS_PER_MW > room) {
            units -= 1.0;
        }
        if (units < (double)best) {
            best = (int64_t)units;
            if (limiting != NULL) {
                *limiting = (int)c;
            }
        }
    }
    return best;
}

static void apply_with(const market_statement *s, double *used_mw, const double *d, int requirement,
                       int64_t volume)
{
    double mw = (double)volume / MARKET_QUANTITY_UNITS_PER_MW;
    for (size_t c = 0; c < s->n_constraints; c++) {
        double e = d[c] * mw;
        if (requirement && e < 0.0) {
            continue; /* relief bought by a system operator is not resold */
        }
        used_mw[c] += e;
    }
}

int64_t market_statement_feasible(const market_statement *s, const double *used_mw,
                                  uint32_t sell_der, uint32_t buy_der, int64_t wanted,
                                  int *limiting)
{
    double d[MARKET_MAX_CONSTRAINTS];
    effect_per_mw(s, sell_der, buy_der, d);
    return feasible_with(s, used_mw, d, wanted, limiting);
}

void market_statement_apply(const market_statement *s, double *used_mw, uint32_t sell_der,
                            uint32_t buy_der, int64_t volume)
{
    double d[MARKET_MAX_CONSTRAINTS];
    effect_per_mw(s, sell_der, buy_der, d);
    apply_with(s, used_mw, d, buy_der == MARKET_NO_DER, volume);
}

int64_t market_statement_take(const market_statement *s, double *used_mw, uint32_t sell_der,
                              uint32_t buy_der, int64_t wanted, int64_t minimum, int *limiting)
{
    double d[MARKET_MAX_CONSTRAINTS];
    effect_per_mw(s, sell_der, buy_der, d);
    int64_t v = feasible_with(s, used_mw, d, wanted, limiting);
    if (v <= 0 || v < minimum) {
        return 0;
    }
    apply_with(s, used_mw, d, buy_der == MARKET_NO_DER, v);
    return v;
}
