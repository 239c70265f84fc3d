/*
 * lodf.c: LODF of a DC model, in full or for (monitored, contingency)
 * pairs. See forecast/lodf.h.
 */
#include "forecast/lodf.h"

#include "dcpf_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * y = B^-1 (e_f - e_t) for contingency k, so that H[l][k] = b_l (y_fl - y_tl):
 * the flow on l per MW moved from k's from bus to its to bus.
 */
static void transfer_angles(const forecast_dc_model *m, size_t k, double *y, double *work)
{
    size_t n = forecast_dc_model_bus_count(m);
    memset(y, 0, n * sizeof *y);
    y[forecast_dc_model_branch_from(m, k)] += 1.0;
    y[forecast_dc_model_branch_to(m, k)] -= 1.0;
    forecast__dc_model_solve_raw(m, y, work);
}

static double transfer_flow(const forecast_dc_model *m, size_t l, const double *y)
{
    return forecast_dc_model_branch_susceptance(m, l) *
           (y[forecast_dc_model_branch_from(m, l)] - y[forecast_dc_model_branch_to(m, l)]);
}

/* The column of contingency k for the n_rows branches rows[] (all if NULL). */
static void lodf_column(const forecast_dc_model *m, size_t k, const size_t *rows, size_t n_rows,
                        const double *ptdf, double *y, double *work, double *out,
                        size_t stride)
{
    size_t n = forecast_dc_model_bus_count(m);
    if (!forecast_dc_model_branch_active(m, k)) {
        for (size_t r = 0; r < n_rows; r++) {
            out[r * stride] = (rows ? rows[r] : r) == k ? -1.0 : 0.0;
        }
        return;
    }
    if (forecast_dc_model_branch_is_bridge(m, k)) {
        for (size_t r = 0; r < n_rows; r++) {
            out[r * stride] = NAN;
        }
        return;
    }
    size_t f = forecast_dc_model_branch_from(m, k), t = forecast_dc_model_branch_to(m, k);
    double h;
    if (ptdf) {
        h = ptdf[k * n + f] - ptdf[k * n + t];
    } else {
        transfer_angles(m, k, y, work);
        h = transfer_flow(m, k, y);
    }
    /* not a bridge: another path joins f and t, so 1 - h > 0 */
    double denominator = 1.0 - h;
    for (size_t r = 0; r < n_rows; r++) {
        size_t l = rows ? rows[r] : r;
        double value;
        if (l == k) {
            value = -1.0;
        } else if (!forecast_dc_model_branch_active(m, l)) {
            value = 0.0;
        } else {
            double transfer = ptdf ? ptdf[l * n + f] - ptdf[l * n + t] : transfer_flow(m, l, y);
            value = transfer / denominator;
        }
        out[r * stride] = value;
    }
}

int forecast_dc_lodf(const forecast_dc_model *m, const double *ptdf, double *lodf)
{
    size_t n = forecast_dc_model_bus_count(m), nb = forecast_dc_model_branch_count(m);
    double *y = malloc(3 * n * sizeof *y);
    if (!y) {
        return ANM_ENOMEM;
    }
    for (size_t k = 0; k < nb; k++) {
        lodf_column(m, k, NULL, nb, ptdf, y, y + n, lodf + k, nb);
    }
    free(y);
    return ANM_OK;
}

int forecast_dc_lodf_pairs(const forecast_dc_model *m, const size_t *monitored,
                           size_t n_monitored, const size_t *contingencies,
                           size_t n_contingencies, double *out)
{
    size_t n = forecast_dc_model_bus_count(m), nb = forecast_dc_model_branch_count(m);
    for (size_t r = 0; r < n_monitored; r++) {
        if (monitored[r] >= nb) {
            return ANM_EINVAL;
        }
    }
    for (size_t c = 0; c < n_contingencies; c++) {
        if (contingencies[c] >= nb) {
            return ANM_EINVAL;
        }
    }
    double *y = malloc(3 * n * sizeof *y);
    if (!y) {
        return ANM_ENOMEM;
    }
    for (size_t c = 0; c < n_contingencies; c++) {
        lodf_column(m, contingencies[c], monitored, n_monitored, NULL, y, y + n, out + c,
                    n_contingencies);
    }
    free(y);
    return ANM_OK;
}
