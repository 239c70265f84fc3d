/*
 * pcf_kernel.h: the hot loop of the Monte Carlo PCF (internal to forecast/).
 *
 * The flows of a block of samples are an affine function of the sample
 * inputs, F = C X: C holds one row per constraint, [c_0, c_1 .. c_{dim-1}]
 * (c_0 the flow at x = 0), X one column per sample with x_0 = 1 implied.
 * forecast__pcf_min_slack folds the rows into each sample's least slack,
 * min_r (limit_r - F_r), without storing F.
 *
 * Reproducible: every flow is summed in the same order, c_0 + c_1 x_1 +
 * ... + c_{dim-1} x_{dim-1}, by separate multiplies and adds (the file is
 * built with -ffp-contract=off), whichever instruction set the clone that
 * runs uses (SSE2, AVX2, AVX-512); forecast__pcf_flow sums one row in the
 * same order, so a flow recomputed for the rule equals the kernel's to the
 * last bit.
 */
#ifndef FORECAST_PCF_KERNEL_H
#define FORECAST_PCF_KERNEL_H

#include <stddef.h>

/* Rows are taken 4 at a time, samples 16 at a time. */
enum { FORECAST__PCF_ROW_GROUP = 4, FORECAST__PCF_SAMPLE_GROUP = 16 };

/*
 * For i < n_samples: min_slack[i] = min over rows r < n_rows of (limit[r] -
 * (coef[r*dim] + sum_{v=1}^{dim-1} coef[r*dim+v] * x[v*stride+i])).
 * n_rows a multiple of FORECAST__PCF_ROW_GROUP (pad with rows of zero
 * coefficients and an infinite limit), n_samples a multiple of
 * FORECAST__PCF_SAMPLE_GROUP, stride >= n_samples; row v = 0 of x is not
 * read. min_slack is overwritten (INFINITY for n_rows = 0).
 */
void forecast__pcf_min_slack(const double *coef, const double *limit, size_t n_rows, size_t dim,
                             const double *x, size_t stride, size_t n_samples, double *min_slack);

/* One row's flow at one sample, summed exactly as the kernel sums it. */
double forecast__pcf_flow(const double *coef_row, size_t dim, const double *x, size_t stride);

/*
 * The flows of n_rows rows at one sample x[0..dim) (x[0] not read), the
 * coefficients transposed: coef_t[v * n_rows + r] = row r's c_v. Summed as
 * the kernel sums them (same bits); vectorised over rows.
 */
void forecast__pcf_flows(const double *coef_t, size_t n_rows, size_t dim, const double *x,
                         double *flow);

/* The instruction set of the clone forecast__pcf_min_slack runs here. */
const char *forecast__pcf_kernel_name(void);

#endif
