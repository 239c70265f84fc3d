/*
 * inputs.h: the uncertain inputs of a zone's forecast, per settlement period,
 * read from a JSON inputs file (documented in docs/inputs.md).
 *
 * Per period: a demand scale applied as one common factor to every bus load
 * of the case (a + b * Beta(alpha, beta), normal around a forecast, or an
 * empirical list of values drawn with equal probability); a wind capacity
 * factor per wind DER, clip(w + sigma * Z_j, 0, 1) with a common
 * w ~ Beta(alpha, beta) and standard normals Z_j (independent, or correlated
 * through the file's wind correlation matrix); a solar capacity factor per
 * solar DER, clip(s + sigma * Z_j, 0, 1) with a common s = day * scale *
 * Beta(alpha, beta), day ~ Bernoulli(day_probability), or s normal around a
 * forecast; per DER optional caps (declared availability in MW, Physical
 * Notification in MW) and, for DERs that are neither wind nor solar, a
 * fixed output. Network states: discrete outage states with probabilities
 * (default: the intact network with probability 1).
 *
 * Everything is a plain value, immutable after loading.
 */
#ifndef FORECAST_INPUTS_H
#define FORECAST_INPUTS_H

#include "engine/calendar.h"
#include "engine/error.h"
#include "engine/zone.h"

#include <stddef.h>
#include <stdint.h>

typedef enum forecast_demand_kind {
    FORECAST_DEMAND_BETA = 0,      /* a + b * Beta(alpha, beta) */
    FORECAST_DEMAND_NORMAL = 1,    /* forecast + sd * Z, floored at 0 */
    FORECAST_DEMAND_EMPIRICAL = 2  /* one of values[], equally likely */
} forecast_demand_kind;

typedef struct forecast_demand_dist {
    forecast_demand_kind kind;
    double a, b, alpha, beta;  /* beta */
    double forecast, sd;       /* normal */
    size_t n_values;           /* empirical */
    double *values;
} forecast_demand_dist;

typedef enum forecast_weather_kind {
    FORECAST_WEATHER_BETA = 0,    /* common factor: scale * Beta(alpha, beta) (times day for solar) */
    FORECAST_WEATHER_FORECAST = 1 /* common factor: clip(forecast + sd * Z, 0, 1) */
} forecast_weather_kind;

typedef struct forecast_weather_dist {
    forecast_weather_kind kind;
    double alpha, beta, scale;   /* beta; scale 1 for wind */
    double day_probability;      /* solar only (1 for wind) */
    double forecast, sd;         /* forecast */
    double sigma;                /* per-DER spread around the common factor */
} forecast_weather_dist;

/* Per-DER entries of a period; NaN where the file gives none. */
typedef struct forecast_der_inputs {
    double available_mw; /* declared availability (a cap), NaN: none */
    double pn_mw;        /* Physical Notification (a cap), NaN: none */
    double fixed_mw;     /* output of a DER that is neither wind nor solar, NaN: 0 */
} forecast_der_inputs;

typedef struct forecast_period_inputs {
    int period; /* 1-based settlement period */
    forecast_demand_dist demand;
    forecast_weather_dist wind;
    forecast_weather_dist solar;
    forecast_der_inputs *ders; /* [n_ders], in the zone's DER order */
} forecast_period_inputs;

typedef struct forecast_outage_state {
    char id[ANM_ID_MAX];
    double probability;
    size_t n_branches;
    int *branches; /* 1-based branch numbers */
} forecast_outage_state;

typedef struct forecast_inputs {
    char *path;
    char zone_id[ANM_ID_MAX];
    anm_settlement_date date;
    size_t n_ders; /* the zone's DER count */
    size_t n_outage_states;
    forecast_outage_state *outage_states; /* probabilities sum to 1 */
    /* wind correlation (n_ders x n_ders over the zone's DERs, only the wind
       DERs' entries used) or NULL: independent */
    double *wind_correlation;
    size_t n_periods;
    forecast_period_inputs *periods; /* in period order */
    char sha256_hex[65]; /* digest of the file's bytes */
} forecast_inputs;

/*
 * Reads an inputs file for zone (borrowed, used to resolve DER ids and to
 * check the zone id). Returns ANM_OK, ANM_EIO, ANM_EPARSE (JSON syntax,
 * line and column in err) or ANM_ECONFIG (err->path names the entry, e.g.
 * "periods[3].wind.alpha"). *out is new; free with forecast_inputs_destroy.
 */
int forecast_inputs_load(const char *path, const anm_zone *zone, forecast_inputs **out,
                         anm_error_detail *err);
int forecast_inputs_parse(const char *text, size_t length, const char *name, const anm_zone *zone,
                          forecast_inputs **out, anm_error_detail *err);
void forecast_inputs_destroy(forecast_inputs **inputs);

/* The inputs of period (1-based), or NULL (borrowed). */
const forecast_period_inputs *forecast_inputs_period(const forecast_inputs *inputs, int period);

/* SHA-256 of data as 64 lower-case hex digits and a NUL into hex[65]. */
void forecast_sha256_hex(const void *data, size_t length, char hex[65]);

#endif
