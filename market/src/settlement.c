/*
 * settlement.c: metered delivery against a baseline, payments, reports.
 * See settlement.h and docs/settlement.md.
 */
#include "market/settlement.h"

#include "engine/cli.h"
#include "engine/calendar.h"
#include "engine/error.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS INT64_C(86400000)
#define HOUR_MS 3600000.0

/* ---- meter sets ------------------------------------------------------------------ */

typedef struct reading {
    uint32_t der;
    int64_t period_start_ms;
    double mwh;
} reading;

struct settlement_meter {
    reading *readings; /* sorted by (der, period_start_ms) */
    size_t n, cap;
};

static int reading_cmp(uint32_t der, int64_t start, const reading *r)
{
    if (der != r->der) {
        return der < r->der ? -1 : 1;
    }
    if (start != r->period_start_ms) {
        return start < r->period_start_ms ? -1 : 1;
    }
    return 0;
}

/* First index whose key is >= (der, start). */
static size_t lower_bound(const settlement_meter *m, uint32_t der, int64_t start)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (reading_cmp(der, start, &m->readings[mid]) > 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

settlement_meter *settlement_meter_new(void) { return calloc(1, sizeof(settlement_meter)); }

void settlement_meter_destroy(settlement_meter **meter)
{
    if (meter == NULL || *meter == NULL) {
        return;
    }
    free((*meter)->readings);
    free(*meter);
    *meter = NULL;
}

int settlement_meter_add(settlement_meter *m, uint32_t der, int64_t period_start_ms, double mwh)
{
    if (m == NULL || !isfinite(mwh)) {
        return ANM_EINVAL;
    }
    size_t at = m->n;
    if (m->n > 0 && reading_cmp(der, period_start_ms, &m->readings[m->n - 1]) <= 0) {
        at = lower_bound(m, der, period_start_ms);
        if (at < m->n && reading_cmp(der, period_start_ms, &m->readings[at]) == 0) {
            return ANM_EDUP;
        }
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        reading *r = realloc(m->readings, cap * sizeof *r);
        if (r == NULL) {
            return ANM_ENOMEM;
        }
        m->readings = r;
        m->cap = cap;
    }
    memmove(&m->readings[at + 1], &m->readings[at], (m->n - at) * sizeof *m->readings);
    m->readings[at] = (reading){.der = der, .period_start_ms = period_start_ms, .mwh = mwh};
    m->n++;
    return ANM_OK;
}

int settlement_meter_get(const settlement_meter *m, uint32_t der, int64_t period_start_ms,
                         double *mwh)
{
    if (m == NULL) {
        return ANM_ENOTFOUND;
    }
    size_t at = lower_bound(m, der, period_start_ms);
    if (at == m->n || reading_cmp(der, period_start_ms, &m->readings[at]) != 0) {
        return ANM_ENOTFOUND;
    }
    if (mwh != NULL) {
        *mwh = m->readings[at].mwh;
    }
    return ANM_OK;
}

size_t settlement_meter_count(const settlement_meter *m) { return m == NULL ? 0 : m->n; }

/* ---- CSV meter import ------------------------------------------------------------ */

static const char CSV_HEADER[] = "der,settlement_date,period,mwh";

typedef struct field {
    const char *start;
    size_t length;
    int column; /* 1-based */
} field;

/* A field as a NUL-terminated copy (fields longer than the buffer are cut: they are
 * wrong anyway and the message shows their start). */
static void field_text(const field *f, char *buf, size_t size)
{
    size_t n = f->length < size - 1 ? f->length : size - 1;
    memcpy(buf, f->start, n);
    buf[n] = '\0';
}

static int parse_line(settlement_meter *m, const char *line, size_t length, const char *name,
                      int line_number, anm_error_detail *detail)
{
    field fields[5];
    int n_fields = 0;
    size_t start = 0;
    for (size_t i = 0; i <= length; i++) {
        if (i == length || line[i] == ',') {
            if (n_fields == 4) {
                anm_error_detail_set(detail, name, line_number, (int)start + 1, NULL,
                                     "expected 4 fields (%s), found more", CSV_HEADER);
                return ANM_EPARSE;
            }
            fields[n_fields++] = (field){line + start, i - start, (int)start + 1};
            start = i + 1;
        }
    }
    if (n_fields < 4) {
        anm_error_detail_set(detail, name, line_number, (int)length + 1, NULL,
                             "expected 4 fields (%s), found %d", CSV_HEADER, n_fields);
        return ANM_EPARSE;
    }
    char text[64];
    long der = 0, period = 0;
    double mwh = 0;
    field_text(&fields[0], text, sizeof text);
    int rc = anm_parse_long(text, 0, (long)UINT32_MAX - 1, &der);
    if (rc != ANM_OK) {
        anm_error_detail_set(detail, name, line_number, fields[0].column, NULL,
                             "der \"%s\" is not an integer from 0 to 4294967294", text);
        return rc;
    }
    anm_settlement_date date;
    anm_error_detail date_detail;
    anm_error_detail_clear(&date_detail);
    field_text(&fields[1], text, sizeof text);
    rc = anm_settlement_date_parse(text, &date, &date_detail);
    if (rc != ANM_OK) {
        int column = fields[1].column + (date_detail.column > 0 ? date_detail.column - 1 : 0);
        anm_error_detail_set(detail, name, line_number, column, NULL, "settlement_date: %s",
                             date_detail.message);
        return rc;
    }
    int count = anm_calendar_period_count(date);
    field_text(&fields[2], text, sizeof text);
    rc = anm_parse_long(text, 1, count, &period);
    if (rc != ANM_OK) {
        if (rc == ANM_ERANGE) {
            anm_error_detail_set(detail, name, line_number, fields[2].column, NULL,
                                 "period %s is outside 1..%d of %.10s", text, count,
                                 fields[1].start);
        } else {
            anm_error_detail_set(detail, name, line_number, fields[2].column, NULL,
                                 "period \"%s\" is not an integer", text);
        }
        return rc;
    }
    field_text(&fields[3], text, sizeof text);
    rc = anm_parse_double(text, -1e9, 1e9, &mwh);
    if (rc != ANM_OK) {
        anm_error_detail_set(detail, name, line_number, fields[3].column, NULL,
                             rc == ANM_ERANGE ? "mwh %s is outside -1e9..1e9"
                                              : "mwh \"%s\" is not a number",
                             text);
        return rc;
    }
    anm_settlement_period sp;
    rc = anm_calendar_period(date, (int)period, &sp);
    if (rc != ANM_OK) {
        anm_error_detail_set(detail, name, line_number, fields[2].column, NULL,
                             "period %ld of %.10s is not in the calendar", period,
                             fields[1].start);
        return ANM_ERANGE;
    }
    rc = settlement_meter_add(m, (uint32_t)der, sp.utc_start_ms, mwh);
    if (rc == ANM_EDUP) {
        anm_error_detail_set(detail, name, line_number, 1, NULL,
                             "second reading of der %ld for %.10s period %ld", der,
                             fields[1].start, period);
    } else if (rc != ANM_OK) {
        anm_error_detail_set(detail, name, line_number, 1, NULL, "out of memory");
    }
    return rc;
}

int settlement_meter_parse_csv(settlement_meter *m, const char *text, size_t length,
                               const char *name, anm_error_detail *detail)
{
    if (m == NULL || (text == NULL && length > 0)) {
        return ANM_EINVAL;
    }
    anm_error_detail_clear(detail);
    size_t pos = 0;
    int line_number = 0, saw_header = 0;
    while (pos < length) {
        size_t end = pos;
        while (end < length && text[end] != '\n') {
            end++;
        }
        size_t len = end - pos;
        if (len > 0 && text[pos + len - 1] == '\r') {
            len--;
        }
        line_number++;
        const char *line = text + pos;
        pos = end + 1;
        if (len == 0) {
            continue;
        }
        if (!saw_header) {
            if (len != sizeof CSV_HEADER - 1 || memcmp(line, CSV_HEADER, len) != 0) {
                anm_error_detail_set(detail, name, line_number, 1, NULL,
                                     "expected the header %s", CSV_HEADER);
                return ANM_EPARSE;
            }
            saw_header = 1;
            continue;
        }
        int rc = parse_line(m, line, len, name, line_number, detail);
        if (rc != ANM_OK) {
            return rc;
        }
    }
    if (!saw_header) {
        anm_error_detail_set(detail, name, line_number > 0 ? line_number : 1, 1, NULL,
                             "expected the header %s", CSV_HEADER);
        return ANM_EPARSE;
    }
    return ANM_OK;
}

int settlement_meter_load_csv(settlement_meter *m, const char *path, anm_error_detail *detail)
{
    if (m == NULL || path == NULL) {
        return ANM_EINVAL;
    }
    anm_error_detail_clear(detail);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        anm_error_detail_set(detail, path, 0, 0, NULL, "could not open \"%s\": %s", path,
                             strerror(errno));
        return ANM_EIO;
    }
    int rc = ANM_OK;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            size_t grown = cap ? cap * 2 : 65536;
            char *b = realloc(buf, grown);
            if (b == NULL) {
                rc = ANM_ENOMEM;
                goto close_file;
            }
            buf = b;
            cap = grown;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            break;
        }
    }
    if (ferror(f)) {
        anm_error_detail_set(detail, path, 0, 0, NULL, "could not read \"%s\"", path);
        rc = ANM_EIO;
        goto close_file;
    }
    rc = settlement_meter_parse_csv(m, buf, n, path, detail);
close_file:
    free(buf);
    fclose(f);
    return rc;
}

/* ---- telemetry integration ------------------------------------------------------- */

static settlement_integration integration_defaults(const settlement_integration *config)
{
    settlement_integration c = {.max_gap_ms = 60000, .min_coverage = 0.9};
    if (config != NULL) {
        if (config->max_gap_ms > 0) {
            c.max_gap_ms = config->max_gap_ms;
        }
        if (config->min_coverage > 0) {
            c.min_coverage = config->min_coverage;
        }
    }
    return c;
}

static double interpolate(const settlement_sample *a, const settlement_sample *b, int64_t t)
{
    double span = (double)(b->time_ms - a->time_ms);
    return a->mw + (b->mw - a->mw) * ((double)(t - a->time_ms) / span);
}

int settlement_integrate(const settlement_sample *samples, size_t n, int64_t start_ms,
                         int64_t end_ms, const settlement_integration *config,
                         settlement_energy *out)
{
    if ((samples == NULL && n > 0) || out == NULL || end_ms <= start_ms) {
        return ANM_EINVAL;
    }
    settlement_integration c = integration_defaults(config);
    double energy = 0; /* MW x ms */
    int64_t covered = 0;
    const settlement_sample *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && samples[i].time_ms < samples[i - 1].time_ms) {
            return ANM_EINVAL;
        }
        const settlement_sample *s = &samples[i];
        if (s->quality != 0 || !isfinite(s->mw)) {
            continue;
        }
        if (prev != NULL && s->time_ms > prev->time_ms &&
            s->time_ms - prev->time_ms <= c.max_gap_ms) {
            int64_t lo = prev->time_ms > start_ms ? prev->time_ms : start_ms;
            int64_t hi = s->time_ms < end_ms ? s->time_ms : end_ms;
            if (lo < hi) {
                double v_lo = interpolate(prev, s, lo), v_hi = interpolate(prev, s, hi);
                energy += 0.5 * (v_lo + v_hi) * (double)(hi - lo);
                covered += hi - lo;
            }
        }
        prev = s;
    }
    double length = (double)(end_ms - start_ms);
    out->coverage = (double)covered / length;
    out->valid = covered > 0 && out->coverage >= c.min_coverage;
    out->mwh = covered > 0 ? energy / (double)covered * length / HOUR_MS : 0.0;
    return ANM_OK;
}

static int format_i64(char *buf, size_t size, int64_t v)
{
    int n = snprintf(buf, size, "%" PRId64, v);
    return n < 0 || (size_t)n >= size ? ANM_ERANGE : ANM_OK;
}

int settlement_meter_load_telemetry(settlement_meter *m, anm_db *db, uint32_t der,
                                    int32_t signal_key, int64_t from_ms, int64_t to_ms,
                                    const settlement_integration *config, size_t *added)
{
    if (m == NULL || db == NULL || to_ms < from_ms) {
        return ANM_EINVAL;
    }
    if (added != NULL) {
        *added = 0;
    }
    settlement_integration c = integration_defaults(config);
    char key[24], lo[24], hi[24];
    if (format_i64(key, sizeof key, signal_key) != ANM_OK ||
        format_i64(lo, sizeof lo, (from_ms - c.max_gap_ms) * 1000) != ANM_OK ||
        format_i64(hi, sizeof hi, (to_ms + c.max_gap_ms) * 1000) != ANM_OK) {
        return ANM_ERANGE;
    }
    const char *params[3] = {key, lo, hi};
    anm_db_result *r = NULL;
    int rc = anm_db_exec(db,
                         "SELECT (extract(epoch FROM time) * 1000)::bigint, value, quality "
                         "FROM telemetry WHERE signal_key = $1 "
                         "AND time >= timestamptz 'epoch' + $2::bigint * interval '1 microsecond' "
                         "AND time <= timestamptz 'epoch' + $3::bigint * interval '1 microsecond' "
                         "ORDER BY time",
                         3, params, &r, NULL);
    if (rc != ANM_OK) {
        return rc;
    }
    int rows = anm_db_result_rows(r);
    settlement_sample *s = calloc(rows > 0 ? (size_t)rows : 1, sizeof *s);
    if (s == NULL) {
        rc = ANM_ENOMEM;
        goto free_result;
    }
    for (int i = 0; i < rows; i++) {
        long long t = strtoll(anm_db_result_value(r, i, 0), NULL, 10);
        double v = strtod(anm_db_result_value(r, i, 1), NULL);
        long q = strtol(anm_db_result_value(r, i, 2), NULL, 10);
        s[i] = (settlement_sample){.time_ms = (int64_t)t, .mw = v, .quality = (int)q};
    }
    size_t first = 0;
    for (int64_t start = from_ms; start < to_ms; start += ANM_PERIOD_MS) {
        /* samples from max_gap before the period on */
        while (first < (size_t)rows && s[first].time_ms < start - c.max_gap_ms) {
            first++;
        }
        settlement_energy e;
        rc = settlement_integrate(s + first, (size_t)rows - first, start, start + ANM_PERIOD_MS,
                                  &c, &e);
        if (rc != ANM_OK) {
            goto free_samples;
        }
        if (e.valid) {
            rc = settlement_meter_add(m, der, start, e.mwh);
            if (rc != ANM_OK) {
                goto free_samples;
            }
            if (added != NULL) {
                (*added)++;
            }
        }
    }
free_samples:
    free(s);
free_result:
    anm_db_result_destroy(&r);
    return rc;
}

/* ---- settling ---------------------------------------------------------------------- */

const char *settlement_party_kind_name(settlement_party_kind kind)
{
    switch (kind) {
    case SETTLEMENT_PARTY_DSO:
        return "dso";
    case SETTLEMENT_PARTY_NESO:
        return "neso";
    default:
        return "participant";
    }
}

const char *settlement_status_name(settlement_status status)
{
    switch (status) {
    case SETTLEMENT_NO_METERING:
        return "no_metering";
    case SETTLEMENT_NO_BASELINE:
        return "no_baseline";
    default:
        return "settled";
    }
}

const char *settlement_source_name(settlement_source source)
{
    switch (source) {
    case SETTLEMENT_SOURCE_METER:
        return "meter";
    case SETTLEMENT_SOURCE_TELEMETRY:
        return "telemetry";
    default:
        return "none";
    }
}

const char *settlement_baseline_name(settlement_baseline_kind kind)
{
    switch (kind) {
    case SETTLEMENT_BASELINE_NOMINATED:
        return "nominated";
    case SETTLEMENT_BASELINE_FIXED:
        return "fixed";
    default:
        return "historical";
    }
}

void settlement_report_destroy(settlement_report **report)
{
    if (report == NULL || *report == NULL) {
        return;
    }
    free((*report)->lines);
    free((*report)->differences);
    free(*report);
    *report = NULL;
}

/* The local half hour (0..47) a period starts in. */
static int local_slot(const anm_settlement_period *p)
{
    int64_t local = p->utc_start_ms + (int64_t)p->utc_offset_minutes * 60000;
    int64_t in_day = ((local % DAY_MS) + DAY_MS) % DAY_MS;
    return (int)(in_day / ANM_PERIOD_MS);
}

/* Metered energy: meter data first, else telemetry. */
static settlement_source metered(const settlement_input *in, uint32_t der, int64_t start,
                                 double *mwh)
{
    if (settlement_meter_get(in->meter, der, start, mwh) == ANM_OK) {
        return SETTLEMENT_SOURCE_METER;
    }
    if (settlement_meter_get(in->telemetry, der, start, mwh) == ANM_OK) {
        return SETTLEMENT_SOURCE_TELEMETRY;
    }
    return SETTLEMENT_SOURCE_NONE;
}

static const settlement_der *find_der(const settlement_input *in, uint32_t der)
{
    for (size_t i = 0; i < in->n_ders; i++) {
        if (in->ders[i].der == der) {
            return &in->ders[i];
        }
    }
    return NULL;
}

/* 1 if der has a trade (as seller) in the period starting at start. */
static int has_trade(const settlement_input *in, uint32_t der, int64_t start)
{
    for (size_t i = 0; i < in->n_trades; i++) {
        if (in->trades[i].sell_der == der && in->trades[i].product.period_start_ms == start) {
            return 1;
        }
    }
    return 0;
}

/* The baseline in MWh, or NAN when it cannot be formed. */
static double baseline(const settlement_input *in, const settlement_der *d, uint32_t der,
                       const anm_settlement_period *p)
{
    settlement_baseline_kind kind = d ? d->baseline : SETTLEMENT_BASELINE_HISTORICAL;
    int slot = local_slot(p);
    double v = (double)NAN;
    switch (kind) {
    case SETTLEMENT_BASELINE_NOMINATED:
        if (settlement_meter_get(in->nominations, der, p->utc_start_ms, &v) != ANM_OK) {
            v = (double)NAN;
        }
        return v;
    case SETTLEMENT_BASELINE_FIXED:
        return d->fixed_mw[slot] * 0.5;
    case SETTLEMENT_BASELINE_HISTORICAL:
    default: {
        int days = in->historical_days > 0 ? in->historical_days : 10;
        double sum = 0;
        int count = 0;
        for (int k = 1; k <= days; k++) {
            anm_settlement_date date = anm_settlement_date_add_days(p->date, -k);
            int64_t utc = 0;
            anm_settlement_period past;
            if (anm_calendar_local_to_utc(date, slot * ANM_PERIOD_MINUTES, &utc) != ANM_OK ||
                anm_calendar_period_at(utc, &past) != ANM_OK || local_slot(&past) != slot ||
                anm_settlement_date_compare(past.date, date) != 0) {
                continue; /* that half hour did not exist (spring clock change) */
            }
            double mwh;
            if (has_trade(in, der, past.utc_start_ms) ||
                metered(in, der, past.utc_start_ms, &mwh) == SETTLEMENT_SOURCE_NONE) {
                continue;
            }
            sum += mwh;
            count++;
        }
        return count > 0 ? sum / count : (double)NAN;
    }
    }
}

/* round(numerator / denominator), halves away from zero; denominator > 0 */
static int64_t div_round(int64_t numerator, int64_t denominator)
{
    int64_t q = numerator / denominator, r = numerator % denominator;
    if (2 * (r < 0 ? -r : r) >= denominator) {
        q += numerator < 0 ? -1 : 1;
    }
    return q;
}

/* Energies are rounded to the watt-hour, so binary noise (0.1 + 0.2) never
 * shows in a payment. */
static double round_wh(double mwh) { return round(mwh * 1e6) / 1e6; }

static int line_order(const void *a, const void *b)
{
    const settlement_line *x = a, *y = b;
    if (x->trade.sell_der != y->trade.sell_der) {
        return x->trade.sell_der < y->trade.sell_der ? -1 : 1;
    }
    if (x->trade.product.period_start_ms != y->trade.product.period_start_ms) {
        return x->trade.product.period_start_ms < y->trade.product.period_start_ms ? -1 : 1;
    }
    return x->trade.trade_id < y->trade.trade_id ? -1 : x->trade.trade_id > y->trade.trade_id;
}

static int trade_order(const void *a, const void *b)
{
    const settlement_line *x = a, *y = b;
    return x->trade.trade_id < y->trade.trade_id ? -1 : x->trade.trade_id > y->trade.trade_id;
}

static void pay(const settlement_input *in, settlement_line *l)
{
    const market_trade *t = &l->trade;
    l->shortfall_mwh = round_wh(l->instructed_mwh - l->delivered_mwh);
    /* availability: ticks (0.01 GBP/MW/h) x volume (0.001 MW) x 0.5 h = ticks x volume / 2000 */
    l->seller_availability_pence = div_round((int64_t)t->seller_availability_ticks * t->volume, 2000);
    l->buyer_availability_pence = div_round((int64_t)t->buyer_availability_ticks * t->volume, 2000);
    l->seller_utilisation_pence = llround((double)t->seller_price_ticks * l->delivered_mwh);
    l->buyer_utilisation_pence = llround((double)t->buyer_price_ticks * l->delivered_mwh);
    l->seller_penalty_pence = llround((double)in->shortfall_penalty_ticks * l->shortfall_mwh);
    l->seller_total_pence =
        l->seller_availability_pence + l->seller_utilisation_pence - l->seller_penalty_pence;
    l->buyer_total_pence = l->buyer_availability_pence + l->buyer_utilisation_pence;
}

static int reconcile(const settlement_input *in, settlement_report *r)
{
    if (in->meter == NULL || in->telemetry == NULL) {
        return ANM_OK;
    }
    const settlement_meter *tm = in->telemetry;
    size_t cap = tm->n;
    r->differences = calloc(cap ? cap : 1, sizeof *r->differences);
    if (r->differences == NULL) {
        return ANM_ENOMEM;
    }
    for (size_t i = 0; i < tm->n; i++) {
        const reading *t = &tm->readings[i];
        double meter_mwh;
        anm_settlement_period p;
        if (settlement_meter_get(in->meter, t->der, t->period_start_ms, &meter_mwh) != ANM_OK ||
            anm_calendar_period_at(t->period_start_ms, &p) != ANM_OK) {
            continue;
        }
        r->differences[r->n_differences++] =
            (settlement_difference){.der = t->der,
                                    .period = p,
                                    .telemetry_mwh = t->mwh,
                                    .meter_mwh = meter_mwh,
                                    .difference_mwh = round_wh(t->mwh - meter_mwh)};
    }
    return ANM_OK;
}

int settlement_run(const settlement_input *in, settlement_report **out)
{
    if (in == NULL || out == NULL || (in->trades == NULL && in->n_trades > 0) ||
        (in->ders == NULL && in->n_ders > 0) || in->shortfall_penalty_ticks < 0) {
        return ANM_EINVAL;
    }
    *out = NULL;
    int rc = ANM_ENOMEM;
    settlement_report *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return ANM_ENOMEM;
    }
    r->dso = in->dso;
    r->neso = in->neso;
    r->lines = calloc(in->n_trades ? in->n_trades : 1, sizeof *r->lines);
    if (r->lines == NULL) {
        goto fail;
    }
    r->n_lines = in->n_trades;
    for (size_t i = 0; i < in->n_trades; i++) {
        settlement_line *l = &r->lines[i];
        l->trade = in->trades[i];
        if (l->trade.volume <= 0 ||
            anm_calendar_period_at(l->trade.product.period_start_ms, &l->period) != ANM_OK ||
            l->period.utc_start_ms != l->trade.product.period_start_ms) {
            rc = ANM_EINVAL; /* not the start of a settlement period */
            goto fail;
        }
        l->instructed_mwh = (double)l->trade.volume / 2000.0;
    }
    /* each DER and period: one delivery, shared by its trades in trade id order */
    qsort(r->lines, r->n_lines, sizeof *r->lines, line_order);
    for (size_t a = 0; a < r->n_lines;) {
        size_t b = a;
        double instructed = 0;
        while (b < r->n_lines && r->lines[b].trade.sell_der == r->lines[a].trade.sell_der &&
               r->lines[b].trade.product.period_start_ms ==
                   r->lines[a].trade.product.period_start_ms) {
            instructed += r->lines[b].instructed_mwh;
            b++;
        }
        uint32_t der = r->lines[a].trade.sell_der;
        const settlement_der *d = find_der(in, der);
        double meter_mwh = (double)NAN;
        settlement_source source = metered(in, der, r->lines[a].period.utc_start_ms, &meter_mwh);
        double base = baseline(in, d, der, &r->lines[a].period);
        settlement_status status = SETTLEMENT_SETTLED;
        double delivered = 0;
        if (source == SETTLEMENT_SOURCE_NONE) {
            status = SETTLEMENT_NO_METERING;
            meter_mwh = (double)NAN;
        } else if (isnan(base)) {
            status = SETTLEMENT_NO_BASELINE;
        } else {
            int up = d != NULL && d->direction == SETTLEMENT_TURN_UP;
            delivered = round_wh(up ? meter_mwh - base : base - meter_mwh);
            delivered = delivered < 0 ? 0 : delivered > instructed ? instructed : delivered;
        }
        for (size_t k = a; k < b; k++) {
            settlement_line *l = &r->lines[k];
            l->status = status;
            l->source = source;
            l->baseline_kind = d ? d->baseline : SETTLEMENT_BASELINE_HISTORICAL;
            l->baseline_mwh = base;
            l->metered_mwh = meter_mwh;
            l->delivered_mwh = delivered < l->instructed_mwh ? delivered : l->instructed_mwh;
            delivered = round_wh(delivered - l->delivered_mwh);
            pay(in, l);
        }
        a = b;
    }
    qsort(r->lines, r->n_lines, sizeof *r->lines, trade_order);
    rc = reconcile(in, r);
    if (rc != ANM_OK) {
        goto fail;
    }
    *out = r;
    return ANM_OK;
fail:
    settlement_report_destroy(&r);
    return rc;
}

/* ---- reports ------------------------------------------------------------------------ */

static int line_concerns(const settlement_report *r, const settlement_line *l,
                         settlement_party_kind kind, uint32_t party)
{
    switch (kind) {
    case SETTLEMENT_PARTY_DSO:
        return 1;
    case SETTLEMENT_PARTY_NESO:
        return r->neso != SETTLEMENT_NO_PARTICIPANT && l->trade.buyer == r->neso;
    default:
        return l->trade.buyer == party || l->trade.seller == party;
    }
}

static const char *role(const settlement_line *l, settlement_party_kind kind, uint32_t party)
{
    if (kind == SETTLEMENT_PARTY_DSO) {
        return "operator";
    }
    if (kind == SETTLEMENT_PARTY_NESO) {
        return "buyer";
    }
    if (l->trade.buyer == party && l->trade.seller == party) {
        return "both";
    }
    return l->trade.seller == party ? "seller" : "buyer";
}

/* A growing text buffer. */
typedef struct text {
    char *data;
    size_t length, cap;
    int failed;
} text;

static void append(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(text *t, const char *fmt, ...)
{
    if (t->failed) {
        return;
    }
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->data ? t->data + t->length : NULL, t->data ? t->cap - t->length : 0,
                          fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->data != NULL && (size_t)n < t->cap - t->length) {
            t->length += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 4096;
        while (cap - t->length <= (size_t)n) {
            cap *= 2;
        }
        char *d = realloc(t->data, cap);
        if (d == NULL) {
            t->failed = 1;
            return;
        }
        t->data = d;
        t->cap = cap;
    }
}

/* "-12.34" from pence. */
static void gbp(char *buf, size_t size, int64_t pence)
{
    uint64_t a = pence < 0 ? (uint64_t)0 - (uint64_t)pence : (uint64_t)pence;
    int n = snprintf(buf, size, "%s%" PRIu64 ".%02" PRIu64, pence < 0 ? "-" : "", a / 100, a % 100);
    if (n < 0 || (size_t)n >= size) {
        buf[0] = '\0';
    }
}

/* A number for a report: up to 6 decimals, "" for NAN. */
static void number(char *buf, size_t size, double v)
{
    if (isnan(v)) {
        buf[0] = '\0';
        return;
    }
    int n = snprintf(buf, size, "%.6f", v);
    if (n < 0 || (size_t)n >= size) {
        buf[0] = '\0';
    }
}

static const char CSV_COLUMNS[] =
    "trade_id,settlement_date,period,period_start_utc,zone,role,buyer,seller,sell_der,status,"
    "metering_source,baseline_kind,instructed_mwh,baseline_mwh,metered_mwh,delivered_mwh,"
    "shortfall_mwh,seller_availability_gbp,seller_utilisation_gbp,seller_penalty_gbp,"
    "seller_total_gbp,buyer_availability_gbp,buyer_utilisation_gbp,buyer_total_gbp\n";

int settlement_report_csv(const settlement_report *r, settlement_party_kind kind, uint32_t party,
                          char **out)
{
    if (r == NULL || out == NULL) {
        return ANM_EINVAL;
    }
    *out = NULL;
    text t = {0};
    append(&t, "%s", CSV_COLUMNS);
    for (size_t i = 0; i < r->n_lines; i++) {
        const settlement_line *l = &r->lines[i];
        if (!line_concerns(r, l, kind, party)) {
            continue;
        }
        char date[ANM_DATE_SIZE], start[ANM_UTC_TIME_SIZE];
        char n[5][32], m[7][32];
        if (anm_settlement_date_format(l->period.date, date, sizeof date) != ANM_OK ||
            anm_calendar_format_utc(l->period.utc_start_ms, start, sizeof start) != ANM_OK) {
            free(t.data);
            return ANM_ERANGE;
        }
        number(n[0], sizeof n[0], l->instructed_mwh);
        number(n[1], sizeof n[1], l->baseline_mwh);
        number(n[2], sizeof n[2], l->metered_mwh);
        number(n[3], sizeof n[3], l->delivered_mwh);
        number(n[4], sizeof n[4], l->shortfall_mwh);
        gbp(m[0], sizeof m[0], l->seller_availability_pence);
        gbp(m[1], sizeof m[1], l->seller_utilisation_pence);
        gbp(m[2], sizeof m[2], l->seller_penalty_pence);
        gbp(m[3], sizeof m[3], l->seller_total_pence);
        gbp(m[4], sizeof m[4], l->buyer_availability_pence);
        gbp(m[5], sizeof m[5], l->buyer_utilisation_pence);
        gbp(m[6], sizeof m[6], l->buyer_total_pence);
        append(&t,
               "%" PRIu64 ",%s,%d,%s,%" PRIu32 ",%s,%" PRIu32 ",%" PRIu32 ",%" PRIu32
               ",%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n",
               l->trade.trade_id, date, l->period.period, start, l->trade.product.zone,
               role(l, kind, party), l->trade.buyer, l->trade.seller, l->trade.sell_der,
               settlement_status_name(l->status), settlement_source_name(l->source),
               settlement_baseline_name(l->baseline_kind), n[0], n[1], n[2], n[3], n[4], m[0],
               m[1], m[2], m[3], m[4], m[5], m[6]);
    }
    if (t.failed) {
        free(t.data);
        return ANM_ENOMEM;
    }
    *out = t.data;
    return ANM_OK;
}

static json_t *json_number(double v) { return isnan(v) ? json_null() : json_real(v); }

static json_t *json_gbp(int64_t pence)
{
    char buf[32];
    gbp(buf, sizeof buf, pence);
    return json_string(buf);
}

int settlement_report_json(const settlement_report *r, settlement_party_kind kind, uint32_t party,
                           char **out)
{
    if (r == NULL || out == NULL) {
        return ANM_EINVAL;
    }
    *out = NULL;
    int rc = ANM_ENOMEM;
    uint32_t who = kind == SETTLEMENT_PARTY_DSO    ? r->dso
                   : kind == SETTLEMENT_PARTY_NESO ? r->neso
                                                   : party;
    json_t *root = json_object(), *lines = json_array();
    if (root == NULL || lines == NULL) {
        json_decref(lines);
        goto free_root;
    }
    json_object_set_new(root, "schema", json_string("anm.settlement_report/1"));
    json_object_set_new(root, "party_kind", json_string(settlement_party_kind_name(kind)));
    json_object_set_new(root, "party", who == SETTLEMENT_NO_PARTICIPANT
                                           ? json_null()
                                           : json_integer((json_int_t)who));
    json_object_set_new(root, "lines", lines);
    int64_t receivable = 0, payable = 0;
    for (size_t i = 0; i < r->n_lines; i++) {
        const settlement_line *l = &r->lines[i];
        if (!line_concerns(r, l, kind, party)) {
            continue;
        }
        if (kind == SETTLEMENT_PARTY_DSO) {
            receivable += l->buyer_total_pence;
            payable += l->seller_total_pence;
        } else {
            uint32_t me = kind == SETTLEMENT_PARTY_NESO ? r->neso : party;
            receivable += l->trade.seller == me ? l->seller_total_pence : 0;
            payable += l->trade.buyer == me ? l->buyer_total_pence : 0;
        }
        char date[ANM_DATE_SIZE], start[ANM_UTC_TIME_SIZE];
        if (anm_settlement_date_format(l->period.date, date, sizeof date) != ANM_OK ||
            anm_calendar_format_utc(l->period.utc_start_ms, start, sizeof start) != ANM_OK) {
            rc = ANM_ERANGE;
            goto free_root;
        }
        json_t *o = json_pack(
            "{s:I,s:s,s:i,s:s,s:I,s:s,s:I,s:I,s:I,s:s,s:s,s:s}", "trade_id",
            (json_int_t)l->trade.trade_id, "settlement_date", date, "period", l->period.period,
            "period_start_utc", start, "zone", (json_int_t)l->trade.product.zone, "role",
            role(l, kind, party), "buyer", (json_int_t)l->trade.buyer, "seller",
            (json_int_t)l->trade.seller, "sell_der", (json_int_t)l->trade.sell_der, "status",
            settlement_status_name(l->status), "metering_source",
            settlement_source_name(l->source), "baseline_kind",
            settlement_baseline_name(l->baseline_kind));
        if (o == NULL) {
            goto free_root;
        }
        json_object_set_new(o, "instructed_mwh", json_number(l->instructed_mwh));
        json_object_set_new(o, "baseline_mwh", json_number(l->baseline_mwh));
        json_object_set_new(o, "metered_mwh", json_number(l->metered_mwh));
        json_object_set_new(o, "delivered_mwh", json_number(l->delivered_mwh));
        json_object_set_new(o, "shortfall_mwh", json_number(l->shortfall_mwh));
        json_object_set_new(o, "seller_availability_gbp", json_gbp(l->seller_availability_pence));
        json_object_set_new(o, "seller_utilisation_gbp", json_gbp(l->seller_utilisation_pence));
        json_object_set_new(o, "seller_penalty_gbp", json_gbp(l->seller_penalty_pence));
        json_object_set_new(o, "seller_total_gbp", json_gbp(l->seller_total_pence));
        json_object_set_new(o, "buyer_availability_gbp", json_gbp(l->buyer_availability_pence));
        json_object_set_new(o, "buyer_utilisation_gbp", json_gbp(l->buyer_utilisation_pence));
        json_object_set_new(o, "buyer_total_gbp", json_gbp(l->buyer_total_pence));
        if (json_array_append_new(lines, o) != 0) {
            goto free_root;
        }
    }
    json_t *totals = json_object();
    if (totals == NULL) {
        goto free_root;
    }
    json_object_set_new(totals, "receivable_gbp", json_gbp(receivable));
    json_object_set_new(totals, "payable_gbp", json_gbp(payable));
    json_object_set_new(totals, "net_gbp", json_gbp(receivable - payable));
    json_object_set_new(root, "totals", totals);
    if (kind == SETTLEMENT_PARTY_DSO) {
        json_t *diffs = json_array();
        if (diffs == NULL) {
            goto free_root;
        }
        json_object_set_new(root, "reconciliation", diffs);
        for (size_t i = 0; i < r->n_differences; i++) {
            const settlement_difference *d = &r->differences[i];
            char date[ANM_DATE_SIZE];
            if (anm_settlement_date_format(d->period.date, date, sizeof date) != ANM_OK) {
                rc = ANM_ERANGE;
                goto free_root;
            }
            json_t *o = json_pack("{s:I,s:s,s:i,s:f,s:f,s:f}", "der", (json_int_t)d->der,
                                  "settlement_date", date, "period", d->period.period,
                                  "telemetry_mwh", d->telemetry_mwh, "meter_mwh", d->meter_mwh,
                                  "difference_mwh", d->difference_mwh);
            if (o == NULL || json_array_append_new(diffs, o) != 0) {
                goto free_root;
            }
        }
    }
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
    if (s == NULL) {
        goto free_root;
    }
    /* jansson's memory comes from malloc (the default allocator), so free() works */
    *out = s;
    rc = ANM_OK;
free_root:
    json_decref(root);
    return rc;
}

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int settlement_report_participants(const settlement_report *r, uint32_t **out, size_t *n)
{
    if (r == NULL || out == NULL || n == NULL) {
        return ANM_EINVAL;
    }
    *out = NULL;
    *n = 0;
    uint32_t *ids = malloc((2 * r->n_lines + 1) * sizeof *ids);
    if (ids == NULL) {
        return ANM_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < r->n_lines; i++) {
        ids[k++] = r->lines[i].trade.buyer;
        ids[k++] = r->lines[i].trade.seller;
    }
    qsort(ids, k, sizeof *ids, u32_cmp);
    size_t u = 0;
    for (size_t i = 0; i < k; i++) {
        if (u == 0 || ids[u - 1] != ids[i]) {
            ids[u++] = ids[i];
        }
    }
    *out = ids;
    *n = u;
    return ANM_OK;
}

/* ---- storage ----------------------------------------------------------------------- */

static int store_line(anm_db *db, const settlement_line *l)
{
    char v[23][32];
    const char *p[23];
    int rc = ANM_OK;
    rc |= format_i64(v[0], sizeof v[0], (int64_t)l->trade.trade_id);
    rc |= anm_settlement_date_format(l->period.date, v[1], sizeof v[1]);
    rc |= format_i64(v[2], sizeof v[2], l->period.period);
    rc |= format_i64(v[3], sizeof v[3], l->period.utc_start_ms);
    rc |= format_i64(v[4], sizeof v[4], l->trade.product.zone);
    rc |= format_i64(v[5], sizeof v[5], l->trade.buyer);
    rc |= format_i64(v[6], sizeof v[6], l->trade.seller);
    rc |= format_i64(v[7], sizeof v[7], l->trade.sell_der);
    if (rc != ANM_OK) {
        return ANM_ERANGE;
    }
    for (int i = 0; i < 8; i++) {
        p[i] = v[i];
    }
    p[8] = settlement_status_name(l->status);
    p[9] = settlement_source_name(l->source);
    p[10] = settlement_baseline_name(l->baseline_kind);
    double d[5] = {l->instructed_mwh, l->baseline_mwh, l->metered_mwh, l->delivered_mwh,
                   l->shortfall_mwh};
    for (int i = 0; i < 5; i++) {
        int n = snprintf(v[11 + i], sizeof v[11 + i], "%.17g", d[i]);
        if (n < 0 || (size_t)n >= sizeof v[11 + i]) {
            return ANM_ERANGE;
        }
        p[11 + i] = isnan(d[i]) ? NULL : v[11 + i];
    }
    int64_t money[7] = {l->seller_availability_pence, l->seller_utilisation_pence,
                        l->seller_penalty_pence,      l->seller_total_pence,
                        l->buyer_availability_pence,  l->buyer_utilisation_pence,
                        l->buyer_total_pence};
    for (int i = 0; i < 7; i++) {
        if (format_i64(v[16 + i], sizeof v[16 + i], money[i]) != ANM_OK) {
            return ANM_ERANGE;
        }
        p[16 + i] = v[16 + i];
    }
    return anm_db_exec(
        db,
        "INSERT INTO settlement_lines (trade_id, settlement_date, period, period_start, zone, "
        "buyer, seller, sell_der, status, metering_source, baseline_kind, instructed_mwh, "
        "baseline_mwh, metered_mwh, delivered_mwh, shortfall_mwh, seller_availability_pence, "
        "seller_utilisation_pence, seller_penalty_pence, seller_total_pence, "
        "buyer_availability_pence, buyer_utilisation_pence, buyer_total_pence) VALUES ($1, $2, "
        "$3, timestamptz 'epoch' + $4::bigint * interval '1 millisecond', $5, $6, $7, $8, $9, "
        "$10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23) "
        "ON CONFLICT (trade_id) DO UPDATE SET settlement_date = EXCLUDED.settlement_date, "
        "period = EXCLUDED.period, period_start = EXCLUDED.period_start, zone = EXCLUDED.zone, "
        "buyer = EXCLUDED.buyer, seller = EXCLUDED.seller, sell_der = EXCLUDED.sell_der, "
        "status = EXCLUDED.status, metering_source = EXCLUDED.metering_source, "
        "baseline_kind = EXCLUDED.baseline_kind, instructed_mwh = EXCLUDED.instructed_mwh, "
        "baseline_mwh = EXCLUDED.baseline_mwh, metered_mwh = EXCLUDED.metered_mwh, "
        "delivered_mwh = EXCLUDED.delivered_mwh, shortfall_mwh = EXCLUDED.shortfall_mwh, "
        "seller_availability_pence = EXCLUDED.seller_availability_pence, "
        "seller_utilisation_pence = EXCLUDED.seller_utilisation_pence, "
        "seller_penalty_pence = EXCLUDED.seller_penalty_pence, "
        "seller_total_pence = EXCLUDED.seller_total_pence, "
        "buyer_availability_pence = EXCLUDED.buyer_availability_pence, "
        "buyer_utilisation_pence = EXCLUDED.buyer_utilisation_pence, "
        "buyer_total_pence = EXCLUDED.buyer_total_pence, settled_at = now()",
        23, p, NULL, NULL);
}

static int store_difference(anm_db *db, const settlement_difference *d)
{
    char v[7][32];
    int rc = ANM_OK;
    rc |= format_i64(v[0], sizeof v[0], d->der);
    rc |= format_i64(v[1], sizeof v[1], d->period.utc_start_ms);
    rc |= anm_settlement_date_format(d->period.date, v[2], sizeof v[2]);
    rc |= format_i64(v[3], sizeof v[3], d->period.period);
    int a = snprintf(v[4], sizeof v[4], "%.17g", d->telemetry_mwh);
    int b = snprintf(v[5], sizeof v[5], "%.17g", d->meter_mwh);
    int c = snprintf(v[6], sizeof v[6], "%.17g", d->difference_mwh);
    if (rc != ANM_OK || a < 0 || b < 0 || c < 0) {
        return ANM_ERANGE;
    }
    const char *p[7] = {v[0], v[1], v[2], v[3], v[4], v[5], v[6]};
    return anm_db_exec(db,
                       "INSERT INTO settlement_reconciliation (der, period_start, "
                       "settlement_date, period, telemetry_mwh, meter_mwh, difference_mwh) "
                       "VALUES ($1, timestamptz 'epoch' + $2::bigint * interval '1 millisecond', "
                       "$3, $4, $5, $6, $7) ON CONFLICT (der, period_start) DO UPDATE SET "
                       "telemetry_mwh = EXCLUDED.telemetry_mwh, meter_mwh = EXCLUDED.meter_mwh, "
                       "difference_mwh = EXCLUDED.difference_mwh",
                       7, p, NULL, NULL);
}

static int store_party(anm_db *db, const settlement_report *r, const char *date,
                       settlement_party_kind kind, uint32_t party)
{
    char *csv = NULL, *json = NULL;
    int rc = settlement_report_csv(r, kind, party, &csv);
    if (rc == ANM_OK) {
        rc = settlement_report_json(r, kind, party, &json);
    }
    char id[24];
    if (rc == ANM_OK) {
        rc = format_i64(id, sizeof id, party);
    }
    for (int f = 0; f < 2 && rc == ANM_OK; f++) {
        const char *p[5] = {date, settlement_party_kind_name(kind), id, f ? "json" : "csv",
                            f ? json : csv};
        rc = anm_db_exec(db,
                         "INSERT INTO settlement_reports (settlement_date, party_kind, party, "
                         "format, body) VALUES ($1, $2, $3, $4, $5) ON CONFLICT "
                         "(settlement_date, party_kind, party, format) DO UPDATE SET "
                         "body = EXCLUDED.body, created_at = now()",
                         5, p, NULL, NULL);
    }
    free(csv);
    free(json);
    return rc;
}

int settlement_store(anm_db *db, const settlement_report *r, anm_settlement_date settlement_date)
{
    if (db == NULL || r == NULL) {
        return ANM_EINVAL;
    }
    char date[ANM_DATE_SIZE];
    if (anm_settlement_date_format(settlement_date, date, sizeof date) != ANM_OK) {
        return ANM_EINVAL;
    }
    uint32_t *parties = NULL;
    size_t n_parties = 0;
    int rc = settlement_report_participants(r, &parties, &n_parties);
    if (rc != ANM_OK) {
        return rc;
    }
    rc = anm_db_begin(db);
    if (rc != ANM_OK) {
        goto free_parties;
    }
    for (size_t i = 0; i < r->n_lines && rc == ANM_OK; i++) {
        rc = store_line(db, &r->lines[i]);
    }
    for (size_t i = 0; i < r->n_differences && rc == ANM_OK; i++) {
        rc = store_difference(db, &r->differences[i]);
    }
    for (size_t i = 0; i < n_parties && rc == ANM_OK; i++) {
        rc = store_party(db, r, date, SETTLEMENT_PARTY_PARTICIPANT, parties[i]);
    }
    if (rc == ANM_OK && r->dso != SETTLEMENT_NO_PARTICIPANT) {
        rc = store_party(db, r, date, SETTLEMENT_PARTY_DSO, r->dso);
    }
    if (rc == ANM_OK && r->neso != SETTLEMENT_NO_PARTICIPANT) {
        rc = store_party(db, r, date, SETTLEMENT_PARTY_NESO, r->neso);
    }
    if (rc == ANM_OK) {
        rc = anm_db_commit(db);
    } else {
        int rb = anm_db_rollback(db);
        (void)rb;
    }
free_parties:
    free(parties);
    return rc;
}
