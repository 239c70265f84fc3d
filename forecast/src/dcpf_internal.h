/*
 * dcpf_internal.h: what dcpf.c shares with ptdf.c and lodf.c.
 */
#ifndef FORECAST_DCPF_INTERNAL_H
#define FORECAST_DCPF_INTERNAL_H

#include "forecast/dcpf.h"

/*
 * Solves B x = rhs in place on the full bus vector (n_bus values): the
 * entries of the reference bus and of de-energised buses are ignored on
 * entry and 0 on return. work holds 2 * n_bus doubles.
 */
void forecast__dc_model_solve_raw(const forecast_dc_model *m, double *x, double *work);

#endif
