/*
 * sampler.c: draws one sample of a zone's uncertain inputs for one period
 * (see sampler.h and inputs.h for the model).
 */
#include "forecast/sampler.h"

#include "rng_inline.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum der_kind { DER_WIND, DER_SOLAR, DER_FIXED } der_kind;

struct forecast_sampler {
    const anm_zone *zone;
    const forecast_inputs *inputs;
    const forecast_period_inputs *period;
    size_t n_ders;
    der_kind *kind;     /* [n_ders] */
    double *cap_mw;     /* [n_ders] min(capacity, declared availability, PN): a cap on output */
    double *fixed_mw;   /* [n_ders] fixed output (DER_FIXED) */
    size_t n_wind;
    size_t *wind_index; /* [n_wind] DER index of each wind DER */
    double *wind_capacity_mw; /* [n_wind] its capacity */
    double *wind_cap_mw;      /* [n_wind] its cap_mw */
    size_t n_solar, n_fixed;
    size_t *solar_index; /* [n_solar] solar DERs, in zone order */
    size_t *fixed_index; /* [n_fixed] the others, in zone order */
    double *wind_chol;  /* [n_wind * n_wind] lower Cholesky factor, or NULL */
    double *state_cdf;  /* [n_states] cumulative probabilities */
    size_t n_states;
};

static double clip01(double x)
{
    return x < 0.0 ? 0.0 : (x > 1.0 ? 1.0 : x);
}

int forecast_sampler_new(const anm_zone *zone, const forecast_inputs *inputs,
                         const forecast_period_inputs *period, forecast_sampler **out,
                         anm_error_detail *err)
{
    int rc = ANM_ENOMEM;
    *out = NULL;
    forecast_sampler *s = calloc(1, sizeof *s);
    if (!s) {
        return ANM_ENOMEM;
    }
    size_t n = zone->n_ders;
    s->zone = zone;
    s->inputs = inputs;
    s->period = period;
    s->n_ders = n;
    s->kind = calloc(n ? n : 1, sizeof *s->kind);
    s->cap_mw = calloc(n ? n : 1, sizeof *s->cap_mw);
    s->fixed_mw = calloc(n ? n : 1, sizeof *s->fixed_mw);
    s->wind_index = calloc(n ? n : 1, sizeof *s->wind_index);
    s->wind_capacity_mw = calloc(n ? n : 1, sizeof *s->wind_capacity_mw);
    s->wind_cap_mw = calloc(n ? n : 1, sizeof *s->wind_cap_mw);
    s->solar_index = calloc(n ? n : 1, sizeof *s->solar_index);
    s->fixed_index = calloc(n ? n : 1, sizeof *s->fixed_index);
    s->n_states = inputs->n_outage_states;
    s->state_cdf = calloc(s->n_states ? s->n_states : 1, sizeof *s->state_cdf);
    if (!s->kind || !s->cap_mw || !s->fixed_mw || !s->wind_index || !s->wind_capacity_mw ||
        !s->wind_cap_mw || !s->solar_index || !s->fixed_index || !s->state_cdf) {
        goto fail;
    }
    for (size_t j = 0; j < n; j++) {
        const anm_der *der = &zone->ders[j];
        const forecast_der_inputs *di = &period->ders[j];
        s->kind[j] = der->technology == ANM_TECH_WIND    ? DER_WIND
                     : der->technology == ANM_TECH_SOLAR ? DER_SOLAR
                                                         : DER_FIXED;
        double cap = der->capacity_mw;
        if (!isnan(di->available_mw) && di->available_mw < cap) {
            cap = di->available_mw;
        }
        if (!isnan(di->pn_mw) && di->pn_mw < cap) {
            cap = di->pn_mw;
        }
        s->cap_mw[j] = cap > 0.0 ? cap : 0.0;
        double fixed = isnan(di->fixed_mw) ? 0.0 : di->fixed_mw;
        s->fixed_mw[j] = fixed < 0.0 ? 0.0 : (fixed > s->cap_mw[j] ? s->cap_mw[j] : fixed);
        if (s->kind[j] == DER_WIND) {
            s->wind_capacity_mw[s->n_wind] = der->capacity_mw;
            s->wind_cap_mw[s->n_wind] = s->cap_mw[j];
            s->wind_index[s->n_wind++] = j;
        } else if (s->kind[j] == DER_SOLAR) {
            s->solar_index[s->n_solar++] = j;
        } else {
            s->fixed_index[s->n_fixed++] = j;
        }
    }
    double cumulative = 0.0;
    for (size_t k = 0; k < s->n_states; k++) {
        cumulative += inputs->outage_states[k].probability;
        s->state_cdf[k] = cumulative;
    }
    if (s->n_states) {
        s->state_cdf[s->n_states - 1] = 2.0; /* rounding can never fall off the end */
    }
    if (inputs->wind_correlation && s->n_wind > 0) {
        size_t m = s->n_wind;
        gsl_matrix *a = gsl_matrix_alloc(m, m);
        s->wind_chol = calloc(m * m, sizeof *s->wind_chol);
        if (!a || !s->wind_chol) {
            gsl_matrix_free(a);
            goto fail;
        }
        for (size_t r = 0; r < m; r++) {
            for (size_t c = 0; c < m; c++) {
                gsl_matrix_set(a, r, c,
                               inputs->wind_correlation[s->wind_index[r] * n + s->wind_index[c]]);
            }
        }
        int status = gsl_linalg_cholesky_decomp1(a);
        if (status != GSL_SUCCESS) {
            gsl_matrix_free(a);
            anm_error_detail_set(err, inputs->path, 0, 0, "wind_correlation",
                                 "wind correlation matrix is not positive definite");
            rc = ANM_ECONFIG;
            goto fail;
        }
        for (size_t r = 0; r < m; r++) {
            for (size_t c = 0; c <= r; c++) {
                s->wind_chol[r * m + c] = gsl_matrix_get(a, r, c);
            }
        }
        gsl_matrix_free(a);
    }
    *out = s;
    return ANM_OK;
fail:
    forecast_sampler_destroy(&s);
    return rc;
}

void forecast_sampler_destroy(forecast_sampler **sampler)
{
    if (!sampler || !*sampler) {
        return;
    }
    forecast_sampler *s = *sampler;
    free(s->kind);
    free(s->cap_mw);
    free(s->fixed_mw);
    free(s->wind_index);
    free(s->wind_capacity_mw);
    free(s->wind_cap_mw);
    free(s->solar_index);
    free(s->fixed_index);
    free(s->wind_chol);
    free(s->state_cdf);
    free(s);
    *sampler = NULL;
}

static double draw_common(const forecast_weather_dist *d, forecast_rng *rng)
{
    if (d->kind == FORECAST_WEATHER_FORECAST) {
        return clip01(d->forecast + d->sd * forecast__rng_normal(rng));
    }
    if (d->day_probability < 1.0 && forecast__rng_uniform(rng) >= d->day_probability) {
        return 0.0; /* night */
    }
    if (d->scale == 0.0) {
        return 0.0;
    }
    return clip01(d->scale * forecast__rng_beta(rng, d->alpha, d->beta));
}

/* One sample: *demand_scale, DER j's available MW at available_mw[j * stride]. */
static inline void draw_one(const forecast_sampler *s, forecast_rng *rng, double *demand_scale,
                            double *available_mw, size_t stride, size_t *state, double *scratch)
{
    const forecast_period_inputs *p = s->period;
    const forecast_demand_dist *dd = &p->demand;
    double demand;
    switch (dd->kind) {
    case FORECAST_DEMAND_NORMAL:
        demand = dd->forecast + dd->sd * forecast__rng_normal(rng);
        break;
    case FORECAST_DEMAND_EMPIRICAL: {
        size_t k = (size_t)(forecast__rng_uniform(rng) * (double)dd->n_values);
        demand = dd->values[k < dd->n_values ? k : dd->n_values - 1];
        break;
    }
    default:
        demand = dd->a + dd->b * forecast__rng_beta(rng, dd->alpha, dd->beta);
        break;
    }
    *demand_scale = demand > 0.0 ? demand : 0.0;

    double w = s->n_wind ? draw_common(&p->wind, rng) : 0.0;
    double solar = draw_common(&p->solar, rng);
    /* wind: correlated or independent normals */
    double *z = scratch;
    double *zc = scratch + s->n_ders;
    if (s->n_wind) {
        for (size_t i = 0; i < s->n_wind; i++) {
            z[i] = forecast__rng_normal(rng);
        }
        if (s->wind_chol) {
            size_t m = s->n_wind;
            for (size_t r = 0; r < m; r++) {
                double acc = 0.0;
                for (size_t c = 0; c <= r; c++) {
                    acc += s->wind_chol[r * m + c] * z[c];
                }
                zc[r] = acc;
            }
            z = zc;
        }
        const double sigma = p->wind.sigma;
        for (size_t i = 0; i < s->n_wind; i++) {
            double mw = s->wind_capacity_mw[i] * clip01(w + sigma * z[i]);
            available_mw[s->wind_index[i] * stride] = mw < s->wind_cap_mw[i] ? mw : s->wind_cap_mw[i];
        }
    }
    for (size_t k = 0; k < s->n_solar; k++) {
        size_t j = s->solar_index[k];
        double cf = solar;
        if (p->solar.sigma > 0.0 && solar > 0.0) {
            cf = clip01(solar + p->solar.sigma * forecast__rng_normal(rng));
        }
        double mw = s->zone->ders[j].capacity_mw * cf;
        available_mw[j * stride] = mw < s->cap_mw[j] ? mw : s->cap_mw[j];
    }
    for (size_t k = 0; k < s->n_fixed; k++) {
        size_t j = s->fixed_index[k];
        available_mw[j * stride] = s->fixed_mw[j];
    }
    size_t k = 0;
    if (s->n_states > 1) {
        double u = forecast__rng_uniform(rng);
        while (k + 1 < s->n_states && u >= s->state_cdf[k]) {
            k++;
        }
    }
    *state = k;
}

void forecast_sampler_draw(const forecast_sampler *s, forecast_rng *rng, double *demand_scale,
                           double *available_mw, size_t *state, double *scratch)
{
    draw_one(s, rng, demand_scale, available_mw, 1, state, scratch);
}

void forecast_sampler_draw_block(const forecast_sampler *s, forecast_rng *rng, size_t n,
                                 double *x, size_t stride, size_t *state, double *scratch)
{
    for (size_t i = 0; i < n; i++) {
        draw_one(s, rng, x + i, x + stride + i, stride, &state[i], scratch);
    }
}

void forecast_sampler_bounds(const forecast_sampler *s, double *demand_min, double *demand_max,
                             double *der_min_mw, double *der_max_mw)
{
    const forecast_period_inputs *p = s->period;
    const forecast_demand_dist *dd = &p->demand;
    double lo, hi;
    switch (dd->kind) {
    case FORECAST_DEMAND_NORMAL:
        lo = dd->sd > 0.0 ? -HUGE_VAL : dd->forecast;
        hi = dd->sd > 0.0 ? HUGE_VAL : dd->forecast;
        break;
    case FORECAST_DEMAND_EMPIRICAL:
        lo = HUGE_VAL;
        hi = -HUGE_VAL;
        for (size_t k = 0; k < dd->n_values; k++) {
            lo = dd->values[k] < lo ? dd->values[k] : lo;
            hi = dd->values[k] > hi ? dd->values[k] : hi;
        }
        break;
    default: {
        double e0 = dd->a, e1 = dd->a + dd->b;
        lo = e0 < e1 ? e0 : e1;
        hi = e0 < e1 ? e1 : e0;
        break;
    }
    }
    /* the draw floors the scale at 0 */
    *demand_min = lo > 0.0 ? lo : 0.0;
    *demand_max = hi > 0.0 ? hi : 0.0;
    const forecast_weather_dist *solar = &p->solar;
    int solar_dark = solar->kind == FORECAST_WEATHER_BETA &&
                     (solar->day_probability <= 0.0 || solar->scale == 0.0);
    for (size_t j = 0; j < s->n_ders; j++) {
        double cap = s->zone->ders[j].capacity_mw;
        cap = cap < s->cap_mw[j] ? cap : s->cap_mw[j];
        cap = cap > 0.0 ? cap : 0.0;
        switch (s->kind[j]) {
        case DER_FIXED:
            der_min_mw[j] = der_max_mw[j] = s->fixed_mw[j];
            break;
        case DER_SOLAR:
            der_min_mw[j] = 0.0;
            der_max_mw[j] = solar_dark ? 0.0 : cap;
            break;
        default:
            der_min_mw[j] = 0.0;
            der_max_mw[j] = cap;
            break;
        }
    }
}
