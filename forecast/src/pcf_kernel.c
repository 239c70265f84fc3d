/*
 * pcf_kernel.c: the least slack of a block of samples over a set of
 * constraint rows (pcf_kernel.h).
 *
 * Blocking: 4 rows x 16 samples of accumulators (8 zmm registers with
 * AVX-512, 16 ymm with AVX2), one load of 16 inputs per variable shared by
 * the 4 rows, each row's coefficient broadcast (vbroadcastsd), then
 * vsubpd/vminpd into the 16 samples' running minimum; no flow is stored.
 * The inner loops have fixed trip counts, so GCC unrolls and vectorises
 * them (-O3, set for this file in forecast/CMakeLists.txt). GCC 12 keeps
 * part of the accumulator arrays on the stack between iterations (vmovapd
 * to and from L1); with the pruning leaving ~6 rows a sample the kernel is
 * ~6% of a sample's instructions, so it is left at that.
 *
 * Built as function multi-versions where GCC supports it: x86-64-v4
 * (AVX-512), AVX2 and the baseline (SSE2), picked at load time by the CPU.
 * No clone contracts a multiply and an add into an FMA (-ffp-contract=off),
 * so all return the same bits.
 */
#include "pcf_kernel.h"

#include <math.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) &&      \
    !defined(__SANITIZE_ADDRESS__)
#define PCF_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define PCF_CLONES
#endif

PCF_CLONES
void forecast__pcf_min_slack(const double *restrict coef, const double *restrict limit,
                             size_t n_rows, size_t dim, const double *restrict x, size_t stride,
                             size_t n_samples, double *restrict min_slack)
{
    enum { S = FORECAST__PCF_SAMPLE_GROUP };
    for (size_t i0 = 0; i0 + S <= n_samples; i0 += S) {
        double h[S];
        for (size_t i = 0; i < S; i++) {
            h[i] = HUGE_VAL;
        }
        for (size_t r = 0; r + FORECAST__PCF_ROW_GROUP <= n_rows; r += FORECAST__PCF_ROW_GROUP) {
            const double *c0 = coef + r * dim;
            const double *c1 = c0 + dim;
            const double *c2 = c1 + dim;
            const double *c3 = c2 + dim;
            double a0[S], a1[S], a2[S], a3[S];
            for (size_t i = 0; i < S; i++) {
                a0[i] = c0[0];
                a1[i] = c1[0];
                a2[i] = c2[0];
                a3[i] = c3[0];
            }
            for (size_t v = 1; v < dim; v++) {
                const double *xv = x + v * stride + i0;
                const double k0 = c0[v], k1 = c1[v], k2 = c2[v], k3 = c3[v];
                for (size_t i = 0; i < S; i++) {
                    const double xi = xv[i];
                    a0[i] += k0 * xi;
                    a1[i] += k1 * xi;
                    a2[i] += k2 * xi;
                    a3[i] += k3 * xi;
                }
            }
            const double l0 = limit[r], l1 = limit[r + 1], l2 = limit[r + 2], l3 = limit[r + 3];
            for (size_t i = 0; i < S; i++) {
                double s0 = l0 - a0[i], s1 = l1 - a1[i], s2 = l2 - a2[i], s3 = l3 - a3[i];
                double m01 = s0 < s1 ? s0 : s1;
                double m23 = s2 < s3 ? s2 : s3;
                double m = m01 < m23 ? m01 : m23;
                h[i] = m < h[i] ? m : h[i];
            }
        }
        for (size_t i = 0; i < S; i++) {
            min_slack[i0 + i] = h[i];
        }
    }
}

double forecast__pcf_flow(const double *coef_row, size_t dim, const double *x, size_t stride)
{
    double acc = coef_row[0];
    for (size_t v = 1; v < dim; v++) {
        acc += coef_row[v] * x[v * stride];
    }
    return acc;
}

PCF_CLONES
void forecast__pcf_flows(const double *restrict coef_t, size_t n_rows, size_t dim,
                         const double *restrict x, double *restrict flow)
{
    for (size_t r = 0; r < n_rows; r++) {
        flow[r] = coef_t[r];
    }
    for (size_t v = 1; v < dim; v++) {
        const double *c = coef_t + v * n_rows;
        const double xv = x[v];
        for (size_t r = 0; r < n_rows; r++) {
            flow[r] += c[r] * xv;
        }
    }
}

const char *forecast__pcf_kernel_name(void)
{
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) &&      \
    !defined(__SANITIZE_ADDRESS__)
    /* the order GCC's resolver tries the clones in */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) {
        return "x86-64-v4 (AVX-512: vmulpd/vaddpd/vminpd on zmm)";
    }
    if (__builtin_cpu_supports("avx2")) {
        return "avx2 (vmulpd/vaddpd/vminpd on ymm)";
    }
    return "x86-64 baseline (SSE2: mulpd/addpd/minpd on xmm)";
#else
    return "portable C (no multi-versioning in this build)";
#endif
}
