/*
 * ptdf.h: power transfer distribution factors of a DC model (dcpf.h).
 *
 * PTDF[l][i] is the change of the from-end flow on branch l (MW) per MW
 * injected at bus i and withdrawn at the reference bus, as MATPOWER's
 * makePTDF with the reference bus as slack: the reference bus's column is
 * 0, and so are the columns of de-energised buses and the rows of inactive
 * branches. Phase shifts do not enter: PTDF is the linear part of the flow.
 * Matrices are row-major, one row per branch in file order.
 */
#ifndef FORECAST_PTDF_H
#define FORECAST_PTDF_H

#include "forecast/dcpf.h"

#include <stddef.h>

/*
 * The full matrix into ptdf (n_branch x n_bus doubles, caller-allocated):
 * one sparse solve per energised bus. Returns ANM_OK or ANM_ENOMEM.
 */
int forecast_dc_ptdf(const forecast_dc_model *m, double *ptdf);

/*
 * Only the rows of the n_rows branches rows[] (0-based) into out
 * (n_rows x n_bus), for a zone's monitored branches: one solve per row
 * (B is symmetric, so row l is b_l B^-1 (e_f - e_t)). Returns ANM_OK,
 * ANM_EINVAL (a branch out of range) or ANM_ENOMEM.
 */
int forecast_dc_ptdf_rows(const forecast_dc_model *m, const size_t *rows, size_t n_rows,
                          double *out);

#endif
