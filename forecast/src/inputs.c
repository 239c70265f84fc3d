/*
 * inputs.c: reads the inputs file (inputs.h, docs/inputs.md) with an
 * explicit walk of the JSON, so that a misspelt key fails naming its path;
 * and SHA-256 (FIPS 180-4) for the file's provenance digest.
 */
#include "forecast/inputs.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- SHA-256 ----------------------------------------------------------- */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static uint32_t ror(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha_block(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++) {
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    }
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) +
                      sha_k[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

void forecast_sha256_hex(const void *data, size_t length, char hex[65])
{
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const unsigned char *p = data;
    size_t full = length / 64;
    for (size_t i = 0; i < full; i++) {
        sha_block(h, p + 64 * i);
    }
    unsigned char tail[128];
    size_t rest = length - 64 * full;
    memset(tail, 0, sizeof tail);
    if (rest) {
        memcpy(tail, p + 64 * full, rest);
    }
    tail[rest] = 0x80;
    size_t tail_len = rest + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)length * 8;
    for (int i = 0; i < 8; i++) {
        tail[tail_len - 1 - i] = (unsigned char)(bits >> (8 * i));
    }
    sha_block(h, tail);
    if (tail_len == 128) {
        sha_block(h, tail + 64);
    }
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++) {
        for (int b = 0; b < 4; b++) {
            unsigned v = (h[i] >> (24 - 8 * b)) & 0xff;
            hex[8 * i + 2 * b] = digits[v >> 4];
            hex[8 * i + 2 * b + 1] = digits[v & 15];
        }
    }
    hex[64] = '\0';
}

/* ---- reading ----------------------------------------------------------- */

typedef struct reader {
    const char *file;
    anm_error_detail *err;
} reader;

static int fail(const reader *rd, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(const reader *rd, const char *path, const char *fmt, ...)
{
    char message[384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    (void)n;
    anm_error_detail_set(rd->err, rd->file, 0, 0, path, "%s", message);
    return ANM_ECONFIG;
}

/* Every key of obj must be one of allowed (NULL-terminated). */
static int check_keys(const reader *rd, json_t *obj, const char *path,
                      const char *const *allowed)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value)
    {
        (void)value;
        int ok = 0;
        for (const char *const *a = allowed; *a; a++) {
            if (strcmp(*a, key) == 0) {
                ok = 1;
                break;
            }
        }
        if (!ok) {
            char where[256];
            int n = snprintf(where, sizeof where, "%s%s%s", path, path[0] ? "." : "", key);
            (void)n;
            return fail(rd, where, "unknown key \"%s\"", key);
        }
    }
    return ANM_OK;
}

/* obj.key as a number in [lo, hi]; missing: *out = dflt, or an error if dflt is NaN. */
static int get_number(const reader *rd, json_t *obj, const char *path, const char *key,
                      double lo, double hi, double dflt, double *out)
{
    char where[256];
    int n = snprintf(where, sizeof where, "%s%s%s", path, path[0] ? "." : "", key);
    if (n < 0 || (size_t)n >= sizeof where) {
        where[sizeof where - 1] = '\0';
    }
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (isnan(dflt)) {
            return fail(rd, where, "missing required key \"%s\"", key);
        }
        *out = dflt;
        return ANM_OK;
    }
    if (!json_is_number(v)) {
        return fail(rd, where, "expected a number for \"%s\"", key);
    }
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) {
        anm_error_detail_set(rd->err, rd->file, 0, 0, where, "%s = %g is outside [%g, %g]", key, x,
                             lo, hi);
        return ANM_ECONFIG;
    }
    *out = x;
    return ANM_OK;
}

static int kind_of(const reader *rd, json_t *obj, const char *path, const char *dflt,
                   const char **kind)
{
    json_t *v = json_object_get(obj, "kind");
    if (!v) {
        *kind = dflt;
        return ANM_OK;
    }
    if (!json_is_string(v)) {
        char where[256];
        int n = snprintf(where, sizeof where, "%s.kind", path);
        (void)n;
        return fail(rd, where, "expected a string for \"%s\"", "kind");
    }
    *kind = json_string_value(v);
    return ANM_OK;
}

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        rc = (expr);                                                                               \
        if (rc != ANM_OK)                                                                          \
            goto out;                                                                              \
    } while (0)

static int read_demand(const reader *rd, json_t *obj, const char *path,
                       forecast_demand_dist *d)
{
    int rc = ANM_OK;
    const char *kind = NULL;
    if (!json_is_object(obj)) {
        return fail(rd, path, "expected an object for %s", "demand");
    }
    TRY(kind_of(rd, obj, path, "beta", &kind));
    if (strcmp(kind, "beta") == 0) {
        static const char *const keys[] = {"kind", "a", "b", "alpha", "beta", NULL};
        d->kind = FORECAST_DEMAND_BETA;
        TRY(check_keys(rd, obj, path, keys));
        TRY(get_number(rd, obj, path, "a", 0.0, 100.0, NAN, &d->a));
        TRY(get_number(rd, obj, path, "b", 0.0, 100.0, NAN, &d->b));
        TRY(get_number(rd, obj, path, "alpha", 1e-3, 1e6, NAN, &d->alpha));
        TRY(get_number(rd, obj, path, "beta", 1e-3, 1e6, NAN, &d->beta));
    } else if (strcmp(kind, "normal") == 0) {
        static const char *const keys[] = {"kind", "forecast", "sd", NULL};
        d->kind = FORECAST_DEMAND_NORMAL;
        TRY(check_keys(rd, obj, path, keys));
        TRY(get_number(rd, obj, path, "forecast", 0.0, 100.0, NAN, &d->forecast));
        TRY(get_number(rd, obj, path, "sd", 0.0, 100.0, NAN, &d->sd));
    } else if (strcmp(kind, "empirical") == 0) {
        static const char *const keys[] = {"kind", "values", NULL};
        d->kind = FORECAST_DEMAND_EMPIRICAL;
        TRY(check_keys(rd, obj, path, keys));
        json_t *values = json_object_get(obj, "values");
        char where[256];
        int n = snprintf(where, sizeof where, "%s.values", path);
        (void)n;
        if (!json_is_array(values) || json_array_size(values) == 0) {
            rc = fail(rd, where, "expected a non-empty array of numbers for \"%s\"", "values");
            goto out;
        }
        d->n_values = json_array_size(values);
        d->values = calloc(d->n_values, sizeof *d->values);
        if (!d->values) {
            rc = ANM_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < d->n_values; i++) {
            json_t *v = json_array_get(values, i);
            double x = json_is_number(v) ? json_number_value(v) : -1.0;
            if (!(x >= 0.0 && x <= 100.0)) {
                n = snprintf(where, sizeof where, "%s.values[%zu]", path, i);
                rc = fail(rd, where, "expected a number in [0, 100] in %s", "values");
                goto out;
            }
            d->values[i] = x;
        }
    } else {
        char where[256];
        int n = snprintf(where, sizeof where, "%s.kind", path);
        (void)n;
        rc = fail(rd, where, "unknown demand kind \"%s\" (beta, normal or empirical)", kind);
    }
out:
    return rc;
}

static int read_weather(const reader *rd, json_t *obj, const char *path, int solar,
                        forecast_weather_dist *d)
{
    int rc = ANM_OK;
    const char *kind = NULL;
    if (!json_is_object(obj)) {
        return fail(rd, path, "expected an object for %s", solar ? "solar" : "wind");
    }
    TRY(kind_of(rd, obj, path, "beta", &kind));
    d->scale = 1.0;
    d->day_probability = 1.0;
    if (strcmp(kind, "beta") == 0) {
        static const char *const wind_keys[] = {"kind", "alpha", "beta", "sigma", NULL};
        static const char *const solar_keys[] = {"kind", "alpha", "beta", "sigma", "scale",
                                                 "day_probability", NULL};
        d->kind = FORECAST_WEATHER_BETA;
        TRY(check_keys(rd, obj, path, solar ? solar_keys : wind_keys));
        TRY(get_number(rd, obj, path, "alpha", 1e-3, 1e6, NAN, &d->alpha));
        TRY(get_number(rd, obj, path, "beta", 1e-3, 1e6, NAN, &d->beta));
        TRY(get_number(rd, obj, path, "sigma", 0.0, 10.0, 0.0, &d->sigma));
        if (solar) {
            TRY(get_number(rd, obj, path, "scale", 0.0, 1.0, 1.0, &d->scale));
            TRY(get_number(rd, obj, path, "day_probability", 0.0, 1.0, 1.0, &d->day_probability));
        }
    } else if (strcmp(kind, "forecast") == 0) {
        static const char *const keys[] = {"kind", "forecast", "sd", "sigma", NULL};
        d->kind = FORECAST_WEATHER_FORECAST;
        TRY(check_keys(rd, obj, path, keys));
        TRY(get_number(rd, obj, path, "forecast", 0.0, 1.0, NAN, &d->forecast));
        TRY(get_number(rd, obj, path, "sd", 0.0, 10.0, NAN, &d->sd));
        TRY(get_number(rd, obj, path, "sigma", 0.0, 10.0, 0.0, &d->sigma));
    } else {
        char where[256];
        int n = snprintf(where, sizeof where, "%s.kind", path);
        (void)n;
        rc = fail(rd, where, "unknown weather kind \"%s\" (beta or forecast)", kind);
    }
out:
    return rc;
}

static int read_period(const reader *rd, json_t *obj, size_t index, const anm_zone *zone,
                       forecast_period_inputs *p)
{
    int rc = ANM_OK;
    char path[128], sub[192];
    int n = snprintf(path, sizeof path, "periods[%zu]", index);
    (void)n;
    static const char *const keys[] = {"period", "demand", "wind", "solar", "ders", NULL};
    if (!json_is_object(obj)) {
        return fail(rd, path, "expected an object for %s", "a period");
    }
    TRY(check_keys(rd, obj, path, keys));
    double period;
    TRY(get_number(rd, obj, path, "period", 1, ANM_MAX_PERIODS_PER_DAY, NAN, &period));
    if (period != floor(period)) {
        n = snprintf(sub, sizeof sub, "%s.period", path);
        return fail(rd, sub, "expected a whole %s", "period");
    }
    p->period = (int)period;
    p->ders = calloc(zone->n_ders + 1, sizeof *p->ders);
    if (!p->ders) {
        return ANM_ENOMEM;
    }
    for (size_t j = 0; j < zone->n_ders; j++) {
        p->ders[j].available_mw = NAN;
        p->ders[j].pn_mw = NAN;
        p->ders[j].fixed_mw = NAN;
    }
    json_t *v = json_object_get(obj, "demand");
    n = snprintf(sub, sizeof sub, "%s.demand", path);
    if (!v) {
        return fail(rd, sub, "missing required key \"%s\"", "demand");
    }
    TRY(read_demand(rd, v, sub, &p->demand));
    v = json_object_get(obj, "wind");
    n = snprintf(sub, sizeof sub, "%s.wind", path);
    if (v) {
        TRY(read_weather(rd, v, sub, 0, &p->wind));
    } else {
        p->wind.kind = FORECAST_WEATHER_FORECAST; /* no wind given: calm */
        p->wind.scale = 1.0;
        p->wind.day_probability = 1.0;
    }
    v = json_object_get(obj, "solar");
    n = snprintf(sub, sizeof sub, "%s.solar", path);
    if (v) {
        TRY(read_weather(rd, v, sub, 1, &p->solar));
    } else {
        p->solar.kind = FORECAST_WEATHER_FORECAST; /* no solar given: dark */
        p->solar.scale = 1.0;
        p->solar.day_probability = 1.0;
    }
    v = json_object_get(obj, "ders");
    if (v) {
        n = snprintf(sub, sizeof sub, "%s.ders", path);
        if (!json_is_object(v)) {
            return fail(rd, sub, "expected an object keyed by DER id for %s", "ders");
        }
        const char *key;
        json_t *entry;
        json_object_foreach(v, key, entry)
        {
            char where[320];
            n = snprintf(where, sizeof where, "%s.%s", sub, key);
            int j = anm_zone_der_index(zone, key);
            if (j < 0) {
                return fail(rd, where, "no DER \"%s\" in the zone", key);
            }
            if (!json_is_object(entry)) {
                return fail(rd, where, "expected an object for DER \"%s\"", key);
            }
            static const char *const der_keys[] = {"available_mw", "pn_mw", "fixed_mw", NULL};
            TRY(check_keys(rd, entry, where, der_keys));
            forecast_der_inputs *d = &p->ders[j];
            static const char *const fields[] = {"available_mw", "pn_mw", "fixed_mw"};
            double *targets[] = {&d->available_mw, &d->pn_mw, &d->fixed_mw};
            for (int f = 0; f < 3; f++) {
                if (json_object_get(entry, fields[f])) {
                    TRY(get_number(rd, entry, where, fields[f], 0.0, 1e5, NAN, targets[f]));
                }
            }
        }
    }
out:
    return rc;
}


static int read_outage_states(const reader *rd, json_t *arr, forecast_inputs *in)
{
    int rc = ANM_OK;
    char where[128];
    int n;
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        return fail(rd, "outage_states", "expected a non-empty array for %s", "outage_states");
    }
    in->n_outage_states = json_array_size(arr);
    in->outage_states = calloc(in->n_outage_states, sizeof *in->outage_states);
    if (!in->outage_states) {
        return ANM_ENOMEM;
    }
    double total = 0.0;
    for (size_t k = 0; k < in->n_outage_states; k++) {
        static const char *const keys[] = {"id", "probability", "branches", NULL};
        json_t *obj = json_array_get(arr, k);
        forecast_outage_state *os = &in->outage_states[k];
        n = snprintf(where, sizeof where, "outage_states[%zu]", k);
        if (!json_is_object(obj)) {
            return fail(rd, where, "expected an object for %s", "an outage state");
        }
        TRY(check_keys(rd, obj, where, keys));
        json_t *id = json_object_get(obj, "id");
        if (!json_is_string(id) || strlen(json_string_value(id)) >= ANM_ID_MAX ||
            json_string_value(id)[0] == '\0') {
            char sub[160];
            n = snprintf(sub, sizeof sub, "%s.id", where);
            return fail(rd, sub, "expected a non-empty string of at most 63 bytes for %s", "id");
        }
        snprintf(os->id, sizeof os->id, "%s", json_string_value(id));
        TRY(get_number(rd, obj, where, "probability", 0.0, 1.0, NAN, &os->probability));
        total += os->probability;
        json_t *br = json_object_get(obj, "branches");
        if (br) {
            char sub[160];
            n = snprintf(sub, sizeof sub, "%s.branches", where);
            if (!json_is_array(br)) {
                return fail(rd, sub, "expected an array of branch numbers for %s", "branches");
            }
            os->n_branches = json_array_size(br);
            os->branches = calloc(os->n_branches + 1, sizeof *os->branches);
            if (!os->branches) {
                return ANM_ENOMEM;
            }
            for (size_t b = 0; b < os->n_branches; b++) {
                json_t *v = json_array_get(br, b);
                if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                    json_integer_value(v) > 1000000) {
                    n = snprintf(sub, sizeof sub, "%s.branches[%zu]", where, b);
                    return fail(rd, sub, "expected a 1-based branch number in %s", "branches");
                }
                os->branches[b] = (int)json_integer_value(v);
            }
        }
    }
    (void)n;
    if (fabs(total - 1.0) > 1e-9) {
        anm_error_detail_set(rd->err, rd->file, 0, 0, "outage_states",
                             "outage state probabilities sum to %.12g, not 1", total);
        return ANM_ECONFIG;
    }
out:
    return rc;
}

static int read_correlation(const reader *rd, json_t *obj, const anm_zone *zone,
                            forecast_inputs *in)
{
    static const char *const keys[] = {"ders", "matrix", NULL};
    int rc = ANM_OK;
    int *index = NULL;
    if (!json_is_object(obj)) {
        return fail(rd, "wind_correlation", "expected an object with %s", "ders and matrix");
    }
    TRY(check_keys(rd, obj, "wind_correlation", keys));
    json_t *ders = json_object_get(obj, "ders");
    json_t *matrix = json_object_get(obj, "matrix");
    if (!json_is_array(ders) || !json_is_array(matrix) ||
        json_array_size(ders) != json_array_size(matrix)) {
        return fail(rd, "wind_correlation",
                    "expected \"ders\" (ids) and \"matrix\" (rows) of the same %s", "length");
    }
    size_t n = zone->n_ders, m = json_array_size(ders);
    in->wind_correlation = calloc(n * n + 1, sizeof *in->wind_correlation);
    index = calloc(m + 1, sizeof *index);
    if (!in->wind_correlation || !index) {
        free(index);
        return ANM_ENOMEM;
    }
    for (size_t j = 0; j < n; j++) {
        in->wind_correlation[j * n + j] = 1.0;
    }
    char where[128];
    int w;
    for (size_t a = 0; a < m; a++) {
        json_t *id = json_array_get(ders, a);
        index[a] = json_is_string(id) ? anm_zone_der_index(zone, json_string_value(id)) : -1;
        if (index[a] < 0) {
            w = snprintf(where, sizeof where, "wind_correlation.ders[%zu]", a);
            rc = fail(rd, where, "expected the id of a DER of the zone in %s", "ders");
            goto out;
        }
    }
    for (size_t a = 0; a < m; a++) {
        json_t *row = json_array_get(matrix, a);
        if (!json_is_array(row) || json_array_size(row) != m) {
            w = snprintf(where, sizeof where, "wind_correlation.matrix[%zu]", a);
            rc = fail(rd, where, "expected a row of %s numbers", "len(ders)");
            goto out;
        }
        for (size_t b = 0; b < m; b++) {
            json_t *v = json_array_get(row, b);
            double x = json_is_number(v) ? json_number_value(v) : (double)NAN;
            if (!(x >= -1.0 && x <= 1.0) || (a == b && x != 1.0)) {
                w = snprintf(where, sizeof where, "wind_correlation.matrix[%zu][%zu]", a, b);
                rc = fail(rd, where, "expected a correlation in [-1, 1] (1 on the %s)",
                          "diagonal");
                goto out;
            }
            in->wind_correlation[(size_t)index[a] * n + (size_t)index[b]] = x;
        }
    }
    (void)w;
out:
    free(index);
    return rc;
}

int forecast_inputs_parse(const char *text, size_t length, const char *name, const anm_zone *zone,
                          forecast_inputs **out, anm_error_detail *err)
{
    int rc = ANM_OK;
    reader rd = {name ? name : "", err};
    *out = NULL;
    anm_error_detail_clear(err);
    json_error_t jerr;
    json_t *root = json_loadb(text, length, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        anm_error_detail_set(err, rd.file, jerr.line, jerr.column, NULL, "%s", jerr.text);
        return ANM_EPARSE;
    }
    forecast_inputs *in = calloc(1, sizeof *in);
    if (!in) {
        json_decref(root);
        return ANM_ENOMEM;
    }
    in->n_ders = zone->n_ders;
    in->path = strdup(rd.file);
    if (!in->path) {
        rc = ANM_ENOMEM;
        goto out;
    }
    forecast_sha256_hex(text, length, in->sha256_hex);
    if (!json_is_object(root)) {
        rc = fail(&rd, "", "expected a JSON object at the top %s", "level");
        goto out;
    }
    static const char *const keys[] = {"version", "zone", "settlement_date", "outage_states",
                                       "wind_correlation", "periods", "source", NULL};
    TRY(check_keys(&rd, root, "", keys));
    json_t *v = json_object_get(root, "version");
    if (!json_is_integer(v) || json_integer_value(v) != 1) {
        rc = fail(&rd, "version", "expected \"version\": %s", "1");
        goto out;
    }
    v = json_object_get(root, "zone");
    if (!json_is_string(v) || strcmp(json_string_value(v), zone->id) != 0) {
        anm_error_detail_set(err, rd.file, 0, 0, "zone", "expected \"zone\": \"%s\"", zone->id);
        rc = ANM_ECONFIG;
        goto out;
    }
    snprintf(in->zone_id, sizeof in->zone_id, "%s", zone->id);
    v = json_object_get(root, "settlement_date");
    anm_error_detail dd;
    anm_error_detail_clear(&dd);
    if (!json_is_string(v) ||
        anm_settlement_date_parse(json_string_value(v), &in->date, &dd) != ANM_OK) {
        rc = fail(&rd, "settlement_date", "expected a settlement date as %s", "YYYY-MM-DD");
        goto out;
    }
    v = json_object_get(root, "outage_states");
    if (v) {
        TRY(read_outage_states(&rd, v, in));
    } else {
        in->n_outage_states = 1;
        in->outage_states = calloc(1, sizeof *in->outage_states);
        if (!in->outage_states) {
            rc = ANM_ENOMEM;
            goto out;
        }
        snprintf(in->outage_states[0].id, sizeof in->outage_states[0].id, "intact");
        in->outage_states[0].probability = 1.0;
    }
    v = json_object_get(root, "wind_correlation");
    if (v && !json_is_null(v)) {
        TRY(read_correlation(&rd, v, zone, in));
    }
    v = json_object_get(root, "periods");
    if (!json_is_array(v) || json_array_size(v) == 0) {
        rc = fail(&rd, "periods", "expected a non-empty array for %s", "periods");
        goto out;
    }
    in->n_periods = json_array_size(v);
    in->periods = calloc(in->n_periods, sizeof *in->periods);
    if (!in->periods) {
        rc = ANM_ENOMEM;
        goto out;
    }
    for (size_t k = 0; k < in->n_periods; k++) {
        TRY(read_period(&rd, json_array_get(v, k), k, zone, &in->periods[k]));
        if (k > 0 && in->periods[k].period <= in->periods[k - 1].period) {
            char where[64];
            int n = snprintf(where, sizeof where, "periods[%zu].period", k);
            (void)n;
            rc = fail(&rd, where, "periods must be in increasing order (%s)", "no repeats");
            goto out;
        }
    }
    int count = anm_calendar_period_count(in->date);
    if (in->periods[in->n_periods - 1].period > count) {
        char where[64];
        int n = snprintf(where, sizeof where, "periods[%zu].period", in->n_periods - 1);
        (void)n;
        anm_error_detail_set(err, rd.file, 0, 0, where, "period %d is beyond the %d periods of %s",
                             in->periods[in->n_periods - 1].period, count,
                             json_string_value(json_object_get(root, "settlement_date")));
        rc = ANM_ECONFIG;
        goto out;
    }
out:
    json_decref(root);
    if (rc != ANM_OK) {
        forecast_inputs_destroy(&in);
        return rc;
    }
    *out = in;
    return ANM_OK;
}

int forecast_inputs_load(const char *path, const anm_zone *zone, forecast_inputs **out,
                         anm_error_detail *err)
{
    *out = NULL;
    anm_error_detail_clear(err);
    FILE *f = fopen(path, "rb");
    if (!f) {
        anm_error_detail_set(err, path, 0, 0, NULL, "could not open the inputs file");
        return ANM_EIO;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    int rc = ANM_OK;
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (len < cap) {
            break;
        }
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    if (!buf) {
        rc = ANM_ENOMEM;
    } else if (ferror(f)) {
        anm_error_detail_set(err, path, 0, 0, NULL, "could not read the inputs file");
        rc = ANM_EIO;
    }
    fclose(f);
    if (rc == ANM_OK) {
        rc = forecast_inputs_parse(buf, len, path, zone, out, err);
    }
    free(buf);
    return rc;
}

void forecast_inputs_destroy(forecast_inputs **inputs)
{
    if (!inputs || !*inputs) {
        return;
    }
    forecast_inputs *in = *inputs;
    for (size_t k = 0; in->outage_states && k < in->n_outage_states; k++) {
        free(in->outage_states[k].branches);
    }
    free(in->outage_states);
    for (size_t k = 0; in->periods && k < in->n_periods; k++) {
        free(in->periods[k].ders);
        free(in->periods[k].demand.values);
    }
    free(in->periods);
    free(in->wind_correlation);
    free(in->path);
    free(in);
    *inputs = NULL;
}

const forecast_period_inputs *forecast_inputs_period(const forecast_inputs *inputs, int period)
{
    for (size_t k = 0; k < inputs->n_periods; k++) {
        if (inputs->periods[k].period == period) {
            return &inputs->periods[k];
        }
    }
    return NULL;
}
