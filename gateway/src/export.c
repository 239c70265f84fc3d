/* export.c: availability, PCF and state from constraint statements (see export.h). */
#include "gateway/export.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/clock.h"

typedef struct record {
    const char *zone; /* borrowed from the pro-forma */
    int64_t utc_start_ms, utc_end_ms;
    int period;
    double *capacity;    /* per pro-forma DER, NAN when not given */
    double *curtailment; /* at the confidence */
    double *pcf;
} record;

struct gateway_export {
    const gateway_proforma *proforma;
    gateway_confidence confidence;
    double threshold_mw;
    record *records;
    size_t n_records, cap_records;
    size_t statements;
    char latest_id[160];
};

static const char *const confidence_names[] = {"p50", "p90", "p99"};

int gateway_confidence_parse(const char *text, gateway_confidence *out)
{
    for (int i = 0; i < 3; i++) {
        if (text != NULL && strcmp(text, confidence_names[i]) == 0) {
            *out = (gateway_confidence)i;
            return ANM_OK;
        }
    }
    return ANM_EINVAL;
}

const char *gateway_confidence_name(gateway_confidence confidence)
{
    return (int)confidence >= 0 && (int)confidence < 3 ? confidence_names[confidence] : "?";
}

int gateway_export_new(const gateway_proforma *proforma, gateway_confidence confidence,
                       double threshold_mw, gateway_export **out)
{
    *out = NULL;
    if (proforma == NULL || !(threshold_mw >= 0.0) || (int)confidence < 0 || (int)confidence > 2)
        return ANM_EINVAL;
    gateway_export *e = calloc(1, sizeof *e);
    if (e == NULL)
        return ANM_ENOMEM;
    e->proforma = proforma;
    e->confidence = confidence;
    e->threshold_mw = threshold_mw;
    *out = e;
    return ANM_OK;
}

static void record_free(record *r)
{
    free(r->capacity);
    free(r->curtailment);
    free(r->pcf);
}

void gateway_export_destroy(gateway_export **e)
{
    if (e == NULL || *e == NULL)
        return;
    for (size_t i = 0; i < (*e)->n_records; i++)
        record_free(&(*e)->records[i]);
    free((*e)->records);
    free(*e);
    *e = NULL;
}

size_t gateway_export_statement_count(const gateway_export *e) { return e->statements; }
const char *gateway_export_latest_statement_id(const gateway_export *e) { return e->latest_id; }

/* The pro-forma's own copy of a zone name (so records can borrow it), or NULL. */
static const char *proforma_zone(const gateway_proforma *p, const char *zone)
{
    for (size_t i = 0; i < gateway_proforma_der_count(p); i++) {
        const gateway_proforma_der *d = gateway_proforma_der_at(p, i);
        if (strcmp(d->zone, zone) == 0)
            return d->zone;
    }
    return NULL;
}

static record *find_record(const gateway_export *e, const char *zone, int64_t utc_ms)
{
    for (size_t i = 0; i < e->n_records; i++) {
        record *r = &e->records[i];
        if (r->zone == zone && utc_ms >= r->utc_start_ms && utc_ms < r->utc_end_ms)
            return r;
    }
    return NULL;
}

/* An estimate {"value": x, ...} or a plain number; NAN for null. 0 ok, -1 wrong type. */
static int estimate(const json_t *v, double *out)
{
    if (json_is_object(v))
        v = json_object_get(v, "value");
    if (v == NULL)
        return -1;
    if (json_is_null(v)) {
        *out = NAN;
        return 0;
    }
    if (!json_is_number(v))
        return -1;
    *out = json_number_value(v);
    return 0;
}

static int bad(anm_error_detail *d, const char *path, const char *what)
{
    anm_error_detail_set(d, NULL, 0, 0, path, "constraint statement: %s", what);
    return ANM_EPARSE;
}

static int parse_time(const json_t *period, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(period, key);
    return json_is_string(v) && anm_time_parse_iso8601(json_string_value(v), out) == ANM_OK ? 0
                                                                                             : -1;
}

static int push_event(gateway_redeclaration **events, size_t *n, const gateway_redeclaration *ev)
{
    gateway_redeclaration *grown = realloc(*events, (*n + 1) * sizeof *grown);
    if (grown == NULL)
        return ANM_ENOMEM;
    grown[*n] = *ev;
    *events = grown;
    (*n)++;
    return ANM_OK;
}

static void copy_text(char *dst, size_t size, const char *src)
{
    int n = snprintf(dst, size, "%s", src ? src : "");
    if (n < 0)
        dst[0] = '\0';
}

static double availability(const record *r, size_t j)
{
    return r->capacity[j] - r->curtailment[j];
}

int gateway_export_apply_statement(gateway_export *e, const json_t *statement,
                                   gateway_redeclaration **events, size_t *n_events,
                                   anm_error_detail *detail)
{
    const gateway_proforma *p = e->proforma;
    size_t n_ders = gateway_proforma_der_count(p);
    const json_t *inner = json_object_get(statement, "statement");
    if (json_is_object(inner))
        statement = inner;
    if (!json_is_object(statement))
        return bad(detail, "", "not a JSON object");
    const json_t *zone_v = json_object_get(statement, "zone");
    if (!json_is_string(zone_v))
        return bad(detail, "zone", "missing or not a string");
    const char *zone = proforma_zone(p, json_string_value(zone_v));
    if (zone == NULL)
        return ANM_OK;
    const json_t *id_v = json_object_get(statement, "id");
    const json_t *version_v = json_object_get(statement, "version");
    const json_t *periods = json_object_get(statement, "periods");
    if (!json_is_array(periods))
        return bad(detail, "periods", "missing or not an array");
    static const char *const quantile_keys[] = {"p50", "p90", "p99"};
    const char *qkey = quantile_keys[e->confidence];
    char path[160];
    /* parse everything first, so a bad statement changes nothing */
    size_t n_periods = json_array_size(periods);
    record *fresh = calloc(n_periods ? n_periods : 1, sizeof *fresh);
    if (fresh == NULL)
        return ANM_ENOMEM;
    int rc = ANM_OK;
    size_t made = 0;
    for (size_t k = 0; k < n_periods; k++) {
        const json_t *period = json_array_get(periods, k);
        record *r = &fresh[made];
        r->zone = zone;
        r->capacity = malloc(n_ders * sizeof(double) + 1);
        r->curtailment = malloc(n_ders * sizeof(double) + 1);
        r->pcf = malloc(n_ders * sizeof(double) + 1);
        made++;
        if (!r->capacity || !r->curtailment || !r->pcf) {
            rc = ANM_ENOMEM;
            goto fail;
        }
        for (size_t j = 0; j < n_ders; j++)
            r->capacity[j] = r->curtailment[j] = r->pcf[j] = NAN;
        const json_t *number = json_object_get(period, "period");
        snprintf(path, sizeof path, "periods[%zu]", k);
        if (!json_is_object(period) || !json_is_integer(number)) {
            rc = bad(detail, path, "missing \"period\" number");
            goto fail;
        }
        r->period = (int)json_integer_value(number);
        if (parse_time(period, "utc_start", &r->utc_start_ms) != 0 ||
            parse_time(period, "utc_end", &r->utc_end_ms) != 0 ||
            r->utc_end_ms <= r->utc_start_ms) {
            rc = bad(detail, path, "\"utc_start\"/\"utc_end\" missing or not ISO 8601 UTC times");
            goto fail;
        }
        const json_t *ders = json_object_get(period, "ders");
        if (!json_is_array(ders)) {
            snprintf(path, sizeof path, "periods[%zu].ders", k);
            rc = bad(detail, path, "missing or not an array");
            goto fail;
        }
        for (size_t i = 0; i < json_array_size(ders); i++) {
            const json_t *der = json_array_get(ders, i);
            const json_t *der_id = json_object_get(der, "der");
            snprintf(path, sizeof path, "periods[%zu].ders[%zu].der", k, i);
            if (!json_is_string(der_id)) {
                rc = bad(detail, path, "missing or not a string");
                goto fail;
            }
            int j = gateway_proforma_der_index(p, json_string_value(der_id));
            if (j < 0 || strcmp(gateway_proforma_der_at(p, (size_t)j)->zone, zone) != 0)
                continue; /* not exported */
            double pcf = NAN, curtailment = NAN;
            snprintf(path, sizeof path, "periods[%zu].ders[%zu].pcf", k, i);
            if (estimate(json_object_get(der, "pcf"), &pcf) != 0) {
                rc = bad(detail, path, "missing or not a number");
                goto fail;
            }
            snprintf(path, sizeof path, "periods[%zu].ders[%zu].curtailment_mw.%s", k, i, qkey);
            const json_t *quantiles = json_object_get(der, "curtailment_mw");
            if (!json_is_object(quantiles) ||
                estimate(json_object_get(quantiles, qkey), &curtailment) != 0) {
                rc = bad(detail, path, "missing or not a number");
                goto fail;
            }
            double capacity = gateway_proforma_der_at(p, (size_t)j)->capacity_mw;
            const json_t *cap = json_object_get(der, "capacity_mw");
            if (cap != NULL && estimate(cap, &capacity) != 0) {
                snprintf(path, sizeof path, "periods[%zu].ders[%zu].capacity_mw", k, i);
                rc = bad(detail, path, "not a number");
                goto fail;
            }
            r->capacity[j] = capacity;
            r->curtailment[j] = curtailment;
            r->pcf[j] = pcf;
        }
    }
    /* merge: compare with what was declared, then replace */
    if (e->n_records + made > e->cap_records) {
        size_t cap = (e->n_records + made) * 2;
        record *grown = realloc(e->records, cap * sizeof *grown);
        if (grown == NULL) {
            rc = ANM_ENOMEM;
            goto fail;
        }
        e->records = grown;
        e->cap_records = cap;
    }
    for (size_t k = 0; k < made; k++) {
        record *r = &fresh[k];
        record *old = NULL;
        for (size_t i = 0; i < e->n_records; i++) {
            if (e->records[i].zone == zone && e->records[i].utc_start_ms == r->utc_start_ms)
                old = &e->records[i];
        }
        if (old != NULL) {
            for (size_t j = 0; j < n_ders; j++) {
                double before = availability(old, j), after = availability(r, j);
                if (isnan(before) || isnan(after) || !(fabs(after - before) > e->threshold_mw))
                    continue;
                const gateway_proforma_der *d = gateway_proforma_der_at(p, j);
                gateway_redeclaration ev;
                memset(&ev, 0, sizeof ev);
                copy_text(ev.der, sizeof ev.der, d->id);
                copy_text(ev.unit, sizeof ev.unit, d->unit);
                copy_text(ev.zone, sizeof ev.zone, zone);
                ev.utc_start_ms = r->utc_start_ms;
                ev.utc_end_ms = r->utc_end_ms;
                ev.period = r->period;
                ev.previous_mw = before;
                ev.available_mw = after;
                copy_text(ev.statement_id, sizeof ev.statement_id,
                          json_is_string(id_v) ? json_string_value(id_v) : "");
                ev.statement_version = json_is_integer(version_v)
                                           ? (long)json_integer_value(version_v)
                                           : 0;
                if (events != NULL && n_events != NULL &&
                    push_event(events, n_events, &ev) != ANM_OK) {
                    rc = ANM_ENOMEM;
                    goto fail;
                }
            }
            record_free(old);
            *old = *r;
        } else {
            e->records[e->n_records++] = *r;
        }
        r->capacity = r->curtailment = r->pcf = NULL;
    }
    free(fresh);
    e->statements++;
    copy_text(e->latest_id, sizeof e->latest_id,
              json_is_string(id_v) ? json_string_value(id_v) : "");
    return ANM_OK;
fail:
    for (size_t k = 0; k < made; k++)
        record_free(&fresh[k]);
    free(fresh);
    return rc;
}

int gateway_export_apply_statement_file(gateway_export *e, const char *path,
                                        gateway_redeclaration **events, size_t *n_events,
                                        anm_error_detail *detail)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        anm_error_detail_set(detail, path, 0, 0, NULL, "could not open constraint statement");
        return ANM_EIO;
    }
    json_error_t jerr;
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    fclose(f);
    if (root == NULL) {
        anm_error_detail_set(detail, path, jerr.line, jerr.column, NULL, "%s", jerr.text);
        return ANM_EPARSE;
    }
    int rc = gateway_export_apply_statement(e, root, events, n_events, detail);
    if (rc != ANM_OK && detail != NULL)
        copy_text(detail->file, sizeof detail->file, path);
    json_decref(root);
    return rc;
}

int gateway_export_der_at(const gateway_export *e, size_t der_index, int64_t utc_ms,
                          gateway_der_export *out)
{
    const gateway_proforma_der *d = gateway_proforma_der_at(e->proforma, der_index);
    if (d == NULL)
        return ANM_EINVAL;
    const char *zone = proforma_zone(e->proforma, d->zone);
    const record *r = find_record(e, zone, utc_ms);
    if (r == NULL || isnan(r->capacity[der_index]))
        return ANM_ENOTFOUND;
    out->utc_start_ms = r->utc_start_ms;
    out->utc_end_ms = r->utc_end_ms;
    out->period = r->period;
    out->capacity_mw = r->capacity[der_index];
    out->curtailment_mw = r->curtailment[der_index];
    out->availability_mw = availability(r, der_index);
    out->pcf = r->pcf[der_index];
    out->state = r->curtailment[der_index] > 0.0;
    return ANM_OK;
}

int gateway_export_point_value(const gateway_export *e, const gateway_proforma_point *point,
                               int64_t utc_ms, double *value)
{
    *value = NAN;
    if (point->quantity == GATEWAY_QUANTITY_METERED_MW)
        return ANM_OK;
    if (point->der != NULL) {
        int j = gateway_proforma_der_index(e->proforma, point->der);
        gateway_der_export x;
        if (j < 0 || gateway_export_der_at(e, (size_t)j, utc_ms, &x) != ANM_OK)
            return ANM_ENOTFOUND;
        switch (point->quantity) {
        case GATEWAY_QUANTITY_AVAILABILITY_MW: *value = x.availability_mw; break;
        case GATEWAY_QUANTITY_PCF: *value = x.pcf; break;
        default: *value = x.state; break;
        }
        return ANM_OK;
    }
    double sum = 0.0;
    int found = 0;
    for (size_t j = 0; j < gateway_proforma_der_count(e->proforma); j++) {
        if (strcmp(gateway_proforma_der_at(e->proforma, j)->zone, point->zone) != 0)
            continue;
        gateway_der_export x;
        if (gateway_export_der_at(e, j, utc_ms, &x) != ANM_OK)
            return ANM_ENOTFOUND;
        sum += x.availability_mw;
        found = 1;
    }
    if (!found)
        return ANM_ENOTFOUND;
    *value = sum;
    return ANM_OK;
}
