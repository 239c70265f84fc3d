/*
 * rng.c: counter-seeded xoshiro256** streams and the variates the sampler
 * needs (see sampler.h).
 */
#include "forecast/sampler.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t forecast_hash_string(const char *text)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)text; p && *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return h;
}

void forecast_rng_seed(forecast_rng *rng, uint64_t seed, uint64_t zone_hash, uint64_t period,
                       uint64_t block)
{
    /* mix the tuple through splitmix64 one field at a time, so that tuples
       differing in any field give unrelated states */
    uint64_t state = seed;
    uint64_t h = splitmix64(&state);
    state = h ^ zone_hash;
    h = splitmix64(&state);
    state = h ^ (period * 0xd1342543de82ef95ULL);
    h = splitmix64(&state);
    state = h ^ (block * 0xaf251af3b0f025b5ULL);
    for (int i = 0; i < 4; i++) {
        rng->s[i] = splitmix64(&state);
    }
    if ((rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]) == 0) {
        rng->s[0] = 1; /* the one state xoshiro must avoid */
    }
    rng->has_spare = 0;
    rng->spare_normal = 0.0;
}

uint64_t forecast_rng_next(forecast_rng *rng)
{
    uint64_t *s = rng->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double forecast_rng_uniform(forecast_rng *rng)
{
    /* (k + 0.5) / 2^53: never 0, never 1 */
    return ((double)(forecast_rng_next(rng) >> 11) + 0.5) * 0x1.0p-53;
}

double forecast_rng_normal(forecast_rng *rng)
{
    if (rng->has_spare) {
        rng->has_spare = 0;
        return rng->spare_normal;
    }
    double u, v, s;
    do {
        u = 2.0 * forecast_rng_uniform(rng) - 1.0;
        v = 2.0 * forecast_rng_uniform(rng) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double f = sqrt(-2.0 * log(s) / s);
    rng->spare_normal = v * f;
    rng->has_spare = 1;
    return u * f;
}

double forecast_rng_gamma(forecast_rng *rng, double shape)
{
    if (shape < 1.0) {
        /* Gamma(a) = Gamma(a + 1) * U^(1/a) */
        double g = forecast_rng_gamma(rng, shape + 1.0);
        return g * pow(forecast_rng_uniform(rng), 1.0 / shape);
    }
    const double d = shape - 1.0 / 3.0;
    const double c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = forecast_rng_normal(rng);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        double u = forecast_rng_uniform(rng);
        double x2 = x * x;
        if (u < 1.0 - 0.0331 * x2 * x2) {
            return d * v;
        }
        if (log(u) < 0.5 * x2 + d * (1.0 - v + log(v))) {
            return d * v;
        }
    }
}

double forecast_rng_beta(forecast_rng *rng, double alpha, double beta)
{
    double x = forecast_rng_gamma(rng, alpha);
    double y = forecast_rng_gamma(rng, beta);
    double sum = x + y;
    return sum > 0.0 ? x / sum : 0.5;
}
