/*
 * rng_inline.h: the variates of sampler.h as static inline functions, for
 * the sampler's inner loop (internal to forecast/; rng.c exposes them).
 *
 * Normals: the 256-layer ziggurat (ziggurat_tables.h). One 64-bit draw
 * gives the layer (bits 0-7), the sign (bit 8) and a 53-bit uniform (bits
 * 11-63), disjoint bits, so the three are independent; about 99% of draws
 * are accepted at once (one multiply, one compare). The wedges use exp,
 * the tail beyond r Marsaglia's exponential method (two logs).
 */
#ifndef FORECAST_RNG_INLINE_H
#define FORECAST_RNG_INLINE_H

#include "forecast/sampler.h"
#include "ziggurat_tables.h"

#include <math.h>
#include <stdint.h>

static inline uint64_t forecast__rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t forecast__rng_next(forecast_rng *rng)
{
    uint64_t *s = rng->s;
    const uint64_t result = forecast__rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = forecast__rotl(s[3], 45);
    return result;
}

/* (k + 0.5) / 2^53: never 0, never 1 */
static inline double forecast__rng_uniform(forecast_rng *rng)
{
    return ((double)(forecast__rng_next(rng) >> 11) + 0.5) * 0x1.0p-53;
}

static inline double forecast__rng_normal(forecast_rng *rng)
{
    for (;;) {
        const uint64_t bits = forecast__rng_next(rng);
        const unsigned layer = (unsigned)(bits & 255u);
        const double sign = (bits & 256u) ? -1.0 : 1.0;
        const double z = (double)(bits >> 11) * 0x1.0p-53 * forecast__zig_x[layer];
        if (z < forecast__zig_x[layer + 1]) {
            return sign * z; /* inside the layer's rectangle */
        }
        if (layer == 0) {
            /* the tail beyond r */
            const double r = forecast__zig_r;
            double a, b;
            do {
                a = -log(forecast__rng_uniform(rng)) / r;
                b = -log(forecast__rng_uniform(rng));
            } while (b + b < a * a);
            return sign * (r + a);
        }
        const double f0 = forecast__zig_f[layer], f1 = forecast__zig_f[layer + 1];
        if (f0 + forecast__rng_uniform(rng) * (f1 - f0) < exp(-0.5 * z * z)) {
            return sign * z; /* in the wedge, under the density */
        }
    }
}

static inline double forecast__rng_gamma(forecast_rng *rng, double shape)
{
    double boost = 1.0;
    if (shape < 1.0) {
        /* Gamma(a) = Gamma(a + 1) * U^(1/a) */
        boost = pow(forecast__rng_uniform(rng), 1.0 / shape);
        shape += 1.0;
    }
    /* Marsaglia and Tsang (2000) */
    const double d = shape - 1.0 / 3.0;
    const double c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = forecast__rng_normal(rng);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        const double u = forecast__rng_uniform(rng);
        const double x2 = x * x;
        if (u < 1.0 - 0.0331 * x2 * x2 || log(u) < 0.5 * x2 + d * (1.0 - v + log(v))) {
            return d * v * boost;
        }
    }
}

static inline double forecast__rng_beta(forecast_rng *rng, double alpha, double beta)
{
    const double x = forecast__rng_gamma(rng, alpha);
    const double y = forecast__rng_gamma(rng, beta);
    const double sum = x + y;
    return sum > 0.0 ? x / sum : 0.5;
}

#endif
