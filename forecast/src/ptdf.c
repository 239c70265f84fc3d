/*
 * ptdf.c: PTDF of a DC model, in full or by rows. See forecast/ptdf.h.
 */
#include "forecast/ptdf.h"

#include "dcpf_internal.h"

#include <stdlib.h>
#include <string.h>

int forecast_dc_ptdf(const forecast_dc_model *m, double *ptdf)
{
    size_t n = forecast_dc_model_bus_count(m), nb = forecast_dc_model_branch_count(m);
    size_t reference = forecast_dc_model_reference_bus(m);
    double *x = malloc(3 * n * sizeof *x);
    if (!x) {
        return ANM_ENOMEM;
    }
    memset(ptdf, 0, nb * n * sizeof *ptdf);
    for (size_t i = 0; i < n; i++) {
        if (i == reference || !forecast_dc_model_bus_energised(m, i)) {
            continue;
        }
        memset(x, 0, n * sizeof *x);
        x[i] = 1.0;
        forecast__dc_model_solve_raw(m, x, x + n);
        for (size_t l = 0; l < nb; l++) {
            if (forecast_dc_model_branch_active(m, l)) {
                ptdf[l * n + i] = forecast_dc_model_branch_susceptance(m, l) *
                                  (x[forecast_dc_model_branch_from(m, l)] -
                                   x[forecast_dc_model_branch_to(m, l)]);
            }
        }
    }
    free(x);
    return ANM_OK;
}

int forecast_dc_ptdf_rows(const forecast_dc_model *m, const size_t *rows, size_t n_rows,
                          double *out)
{
    size_t n = forecast_dc_model_bus_count(m), nb = forecast_dc_model_branch_count(m);
    for (size_t r = 0; r < n_rows; r++) {
        if (rows[r] >= nb) {
            return ANM_EINVAL;
        }
    }
    double *work = malloc(2 * n * sizeof *work);
    if (!work) {
        return ANM_ENOMEM;
    }
    for (size_t r = 0; r < n_rows; r++) {
        size_t l = rows[r];
        double *row = out + r * n;
        memset(row, 0, n * sizeof *row);
        if (!forecast_dc_model_branch_active(m, l)) {
            continue;
        }
        /* B symmetric: row l of b_l Cft B^-1 is b_l B^-1 (e_f - e_t) */
        double b = forecast_dc_model_branch_susceptance(m, l);
        row[forecast_dc_model_branch_from(m, l)] += b;
        row[forecast_dc_model_branch_to(m, l)] -= b;
        forecast__dc_model_solve_raw(m, row, work);
    }
    free(work);
    return ANM_OK;
}
