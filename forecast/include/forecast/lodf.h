/*
 * lodf.h: line outage distribution factors of a DC model (dcpf.h).
 *
 * LODF[l][k] is the change of the from-end flow on branch l per MW of
 * pre-outage from-end flow on branch k when k is outaged:
 *
 *   LODF[l][k] = H[l][k] / (1 - H[k][k]),   H[l][k] = PTDF[l][f_k] - PTDF[l][t_k],
 *
 * with LODF[k][k] = -1, as MATPOWER's makeLODF. So the post-outage flow is
 * pf_l + LODF[l][k] * pf_k.
 *
 * Special columns, decided from the topology and never by dividing by
 * almost zero:
 *   - k a bridge (forecast_dc_model_branch_is_bridge: its outage islands
 *     part of the network): the whole column is NaN. Use
 *     forecast_dc_outage_flows, which disconnects the part beyond k;
 *   - k inactive (out of service, de-energised): it carries no flow and its
 *     outage changes nothing: the column is 0 with LODF[k][k] = -1.
 * Rows of inactive branches are 0 (except the diagonal).
 */
#ifndef FORECAST_LODF_H
#define FORECAST_LODF_H

#include "forecast/dcpf.h"

#include <stddef.h>

/*
 * The full matrix into lodf (n_branch x n_branch, row-major). ptdf is the
 * model's full PTDF (forecast_dc_ptdf) if the caller has it, or NULL to
 * solve one column per contingency instead. Returns ANM_OK or ANM_ENOMEM.
 */
int forecast_dc_lodf(const forecast_dc_model *m, const double *ptdf, double *lodf);

/*
 * The entries for the n_monitored branches monitored[] under the
 * n_contingencies outages contingencies[] (0-based) into out
 * (n_monitored x n_contingencies, row-major), without forming PTDF or LODF:
 * one sparse solve per contingency. Returns ANM_OK, ANM_EINVAL (a branch
 * out of range) or ANM_ENOMEM.
 */
int forecast_dc_lodf_pairs(const forecast_dc_model *m, const size_t *monitored,
                           size_t n_monitored, const size_t *contingencies,
                           size_t n_contingencies, double *out);

#endif
