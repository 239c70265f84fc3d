/*
 * sampler.h: reproducible random streams and the per-period sampler.
 *
 * Streams are counter-based: the stream of block b of period p of zone z
 * under seed s is xoshiro256** seeded with splitmix64 applied to a hash of
 * the tuple (s, z, p, b). A block's samples therefore depend on nothing but
 * that tuple, whichever thread draws them and in whatever order.
 *
 * Variates: uniforms in (0, 1) from the top 53 bits; standard normals by the
 * Marsaglia polar method; Gamma(a) by Marsaglia-Tsang (with the a < 1 boost
 * U^(1/a)); Beta(a, b) = X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
 */
#ifndef FORECAST_SAMPLER_H
#define FORECAST_SAMPLER_H

#include "engine/zone.h"
#include "forecast/inputs.h"

#include <stddef.h>
#include <stdint.h>

typedef struct forecast_rng {
    uint64_t s[4];
    double spare_normal;
    int has_spare;
} forecast_rng;

/* FNV-1a hash of a string (zone ids enter the stream tuple through it). */
uint64_t forecast_hash_string(const char *text);

/* Seeds rng for the tuple (seed, zone_hash, period, block). */
void forecast_rng_seed(forecast_rng *rng, uint64_t seed, uint64_t zone_hash, uint64_t period,
                       uint64_t block);
uint64_t forecast_rng_next(forecast_rng *rng);
double forecast_rng_uniform(forecast_rng *rng);   /* in (0, 1) */
double forecast_rng_normal(forecast_rng *rng);    /* N(0, 1) */
double forecast_rng_gamma(forecast_rng *rng, double shape); /* shape > 0, scale 1 */
double forecast_rng_beta(forecast_rng *rng, double alpha, double beta);

/*
 * The sampler of one zone and period: draws the demand scale, each DER's
 * available MW and the network state of one sample.
 */
typedef struct forecast_sampler forecast_sampler;

/*
 * New sampler for zone (borrowed) and period (borrowed; both must outlive
 * it). wind_correlation is the inputs' matrix or NULL. Returns ANM_OK,
 * ANM_ENOMEM or ANM_ECONFIG (correlation matrix not positive definite; err
 * says so).
 */
int forecast_sampler_new(const anm_zone *zone, const forecast_inputs *inputs,
                         const forecast_period_inputs *period, forecast_sampler **out,
                         anm_error_detail *err);
void forecast_sampler_destroy(forecast_sampler **sampler);

/*
 * Draws one sample: *demand_scale, available_mw[n_ders] (0 <= avail <= cap)
 * and *state (index into the inputs' outage states). scratch holds at
 * least 2 * n_ders doubles.
 */
void forecast_sampler_draw(const forecast_sampler *sampler, forecast_rng *rng,
                           double *demand_scale, double *available_mw, size_t *state,
                           double *scratch);

#endif
