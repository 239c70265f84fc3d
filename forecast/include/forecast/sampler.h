/*
 * sampler.h: reproducible random streams and the per-period sampler.
 *
 * Streams are counter-based: the stream of block b of period p of zone z
 * under seed s is xoshiro256** seeded with splitmix64 applied to a hash of
 * the tuple (s, z, p, b). A block's samples therefore depend on nothing but
 * that tuple, whichever thread draws them and in whatever order.
 *
 * Variates: uniforms in (0, 1) from the top 53 bits; standard normals by the
 * 256-layer ziggurat of Marsaglia and Tsang (about one 64-bit draw each);
 * Gamma(a) by Marsaglia-Tsang (with the a < 1 boost U^(1/a)); Beta(a, b) =
 * X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b). Exact in distribution (no
 * tables of the inverse CDF, no approximation beyond double rounding).
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

/*
 * Draws n samples, the same values in the same order as n calls of
 * forecast_sampler_draw, laid out one column per sample: sample i's demand
 * scale at x[i], DER j's available MW at x[(1 + j) * stride + i], its state
 * at state[i]. scratch holds at least 2 * n_ders doubles.
 */
void forecast_sampler_draw_block(const forecast_sampler *sampler, forecast_rng *rng, size_t n,
                                 double *x, size_t stride, size_t *state, double *scratch);

/*
 * The support of the period's inputs: every sample's demand scale lies in
 * [*demand_min, *demand_max] (the max may be INFINITY: a normal demand) and
 * DER j's available MW in [der_min_mw[j], der_max_mw[j]] (n_ders values
 * each; 0 to the DER's cap for wind and solar, 0 to 0 for solar that is
 * night with certainty, the fixed output for the others). Curtailment only
 * lowers an output towards 0, so dispatched MW lie in [0, der_max_mw[j]].
 */
void forecast_sampler_bounds(const forecast_sampler *sampler, double *demand_min,
                             double *demand_max, double *der_min_mw, double *der_max_mw);

#endif
