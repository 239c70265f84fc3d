/*
 * rng.c: counter-seeded xoshiro256** streams and the variates the sampler
 * needs (see sampler.h; the variates themselves are in rng_inline.h).
 */
#include "forecast/sampler.h"

#include "rng_inline.h"

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
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
    return forecast__rng_next(rng);
}

double forecast_rng_uniform(forecast_rng *rng)
{
    return forecast__rng_uniform(rng);
}

double forecast_rng_normal(forecast_rng *rng)
{
    return forecast__rng_normal(rng);
}

double forecast_rng_gamma(forecast_rng *rng, double shape)
{
    return forecast__rng_gamma(rng, shape);
}

double forecast_rng_beta(forecast_rng *rng, double alpha, double beta)
{
    return forecast__rng_beta(rng, alpha, beta);
}
