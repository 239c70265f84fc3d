/* service_dc.c: the Data Concentrator route of the service (see service_dc.h). */
#include "service_dc.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/clock.h"
#include "engine/log.h"
#include "gateway/dc_csv.h"
#include "gateway/dc_upload.h"

#define COMPONENT "gateway"
#define LATENCY_KEEP 1024 /* latest latencies kept for p50/p99 */
#define MAX_COLUMNS 32
#define STAMPS_MAX 4096

/* A file made on the service thread (redeclarations), waiting for the worker. */
typedef struct dc_file {
    char name[GATEWAY_DC_NAME_MAX + 1];
    char *text;
    size_t length;
    int64_t measured_ms;
    struct dc_file *next;
} dc_file;

/* One unit's performance-monitoring file in the making. */
typedef struct perfmon_unit {
    char unit[GATEWAY_DC_UNIT_MAX + 1];
    size_t point_index[MAX_COLUMNS]; /* pro-forma points with a dc_column, in order */
    gateway_dc_column columns[MAX_COLUMNS + 1];
    size_t n_points;
    gateway_dc_csv *csv;
    int64_t file_start_ms, last_row_ms;
    /* the 20 Hz file (perfmon_20hz): a row per telemetry arrival */
    gateway_dc_csv *csv20;
    int64_t file20_start_ms, last_row20_ms;
} perfmon_unit;

typedef struct name_stamp {
    char name[GATEWAY_DC_NAME_MAX + 1];
    int64_t measured_ms;
} name_stamp;

struct gateway__dc_route {
    const gateway_dc_settings *cfg;
    const gateway_proforma *proforma;
    gateway_dc_upload *upload; /* worker only */
    pthread_t thread;
    int started;
    atomic_int stop;
    pthread_mutex_t lock; /* everything below */
    dc_file *head, *tail;
    size_t queued;
    double *latest; /* per pro-forma point: latest sent value (NaN: none) */
    perfmon_unit *units;
    size_t n_units;
    int64_t last_name_ms; /* redeclaration file names are unique: strictly increasing times */
    /* status */
    name_stamp *stamps; /* worker: measurement times of spooled files */
    size_t n_stamps;
    double latencies[LATENCY_KEEP];
    size_t n_latencies, latency_next;
    int64_t last_201_ms;
    uint64_t uploaded, errors;
    uint64_t test_sent, test_acked; /* commissioning: _test files made and answered 201 */
    size_t backlog, parked;
    char state[32];
    char last_error[1024];
};

static const char *unit_for_der(const gateway__dc_route *r, const char *der)
{
    if (r->cfg->unit[0] != '\0')
        return r->cfg->unit;
    int i = gateway_proforma_der_index(r->proforma, der);
    const gateway_proforma_der *d = i >= 0 ? gateway_proforma_der_at(r->proforma, (size_t)i) : NULL;
    return d != NULL && d->unit != NULL && d->unit[0] != '\0' ? d->unit : der;
}

/* Caller holds the lock. A unique file time: now, or 1 ms after the previous one. */
static int64_t next_name_ms(gateway__dc_route *r, int64_t now)
{
    if (now <= r->last_name_ms)
        now = r->last_name_ms + 1;
    r->last_name_ms = now;
    return now;
}

/* Caller holds the lock. Takes ownership of text. */
static void enqueue(gateway__dc_route *r, const char *name, char *text, size_t length,
                    int64_t measured_ms)
{
    dc_file *f = calloc(1, sizeof *f);
    if (f == NULL) {
        free(text);
        r->errors++;
        anm_log_error(COMPONENT, "data concentrator: out of memory, file \"%s\" lost", name);
        return;
    }
    snprintf(f->name, sizeof f->name, "%s", name);
    f->text = text;
    f->length = length;
    f->measured_ms = measured_ms;
    if (r->tail != NULL)
        r->tail->next = f;
    else
        r->head = f;
    r->tail = f;
    r->queued++;
}

/* ---- perfmon -------------------------------------------------------------------------- */

static int setup_units(gateway__dc_route *r)
{
    size_t n_points = gateway_proforma_point_count(r->proforma);
    r->latest = malloc((n_points ? n_points : 1) * sizeof *r->latest);
    r->units = calloc(gateway_proforma_der_count(r->proforma) + 1, sizeof *r->units);
    if (r->latest == NULL || r->units == NULL)
        return ANM_ENOMEM;
    for (size_t i = 0; i < n_points; i++)
        r->latest[i] = NAN;
    if (r->cfg->perfmon_interval_s <= 0)
        return ANM_OK;
    for (size_t i = 0; i < n_points; i++) {
        const gateway_proforma_point *pt = gateway_proforma_point_at(r->proforma, i);
        if (pt->der == NULL || pt->dc_column == NULL || pt->dc_column[0] == '\0')
            continue;
        const char *unit = unit_for_der(r, pt->der);
        perfmon_unit *u = NULL;
        for (size_t k = 0; k < r->n_units; k++)
            if (strcmp(r->units[k].unit, unit) == 0)
                u = &r->units[k];
        if (u == NULL) {
            u = &r->units[r->n_units++];
            snprintf(u->unit, sizeof u->unit, "%s", unit);
            u->columns[0] = (gateway_dc_column){"timestamp_utc", "timestamp", 0};
        }
        if (u->n_points == MAX_COLUMNS)
            continue;
        u->columns[u->n_points + 1] =
            (gateway_dc_column){pt->dc_column, pt->dc_column, 3};
        u->point_index[u->n_points++] = i;
    }
    return ANM_OK;
}

/* Caller holds the lock. Closes a unit's 1 Hz (or 20 Hz) file into the queue. */
static void roll_file(gateway__dc_route *r, perfmon_unit *u, int hz20)
{
    gateway_dc_csv **csv = hz20 ? &u->csv20 : &u->csv;
    if (*csv == NULL)
        return;
    if (gateway_dc_csv_rows(*csv) > 0) {
        gateway_dc_file_info info;
        memset(&info, 0, sizeof info);
        snprintf(info.unit, sizeof info.unit, "%s", u->unit);
        /* one file per unit per interval: unique */
        info.utc_ms = hz20 ? u->file20_start_ms : u->file_start_ms;
        info.kind = hz20 ? GATEWAY_DC_PERFMON_20HZ : GATEWAY_DC_PERFMON_1HZ;
        info.version = 1;
        char name[GATEWAY_DC_NAME_MAX + 1];
        size_t length = 0;
        const char *text = gateway_dc_csv_text(*csv, &length);
        char *copy = malloc(length + 1);
        if (gateway_dc_file_name(name, sizeof name, &info) != ANM_OK || copy == NULL) {
            free(copy);
            r->errors++;
            anm_log_error(COMPONENT, "data concentrator: perfmon file of \"%s\" not made", u->unit);
        } else {
            memcpy(copy, text, length + 1);
            enqueue(r, name, copy, length, hz20 ? u->last_row20_ms : u->last_row_ms);
        }
    }
    gateway_dc_csv_destroy(csv);
}

static void roll_unit(gateway__dc_route *r, perfmon_unit *u)
{
    roll_file(r, u, 0);
    roll_file(r, u, 1);
}

/*
 * Caller holds the lock. 20 Hz: a row for unit u at the measurement time t
 * of the telemetry that just arrived (each column its latest value), in
 * files of perfmon_interval_s from the interval boundary.
 */
static void add_row20(gateway__dc_route *r, perfmon_unit *u, int64_t t)
{
    int64_t interval_ms = (int64_t)r->cfg->perfmon_interval_s * 1000;
    if (t <= u->last_row20_ms)
        return; /* rows strictly in time order */
    gateway_dc_value row[MAX_COLUMNS + 1];
    row[0] = (gateway_dc_value){"timestamp", GATEWAY_DC_TIME, 0.0, t, NULL};
    for (size_t p = 0; p < u->n_points; p++) {
        double v = r->latest[u->point_index[p]];
        if (!isfinite(v))
            return; /* no value yet for a column: no row */
        row[p + 1] = (gateway_dc_value){u->columns[p + 1].field, GATEWAY_DC_NUMBER, v, 0, NULL};
    }
    if (u->csv20 != NULL && t >= u->file20_start_ms + interval_ms)
        roll_file(r, u, 1);
    if (u->csv20 == NULL) {
        if (gateway_dc_csv_new(u->columns, u->n_points + 1, &u->csv20) != ANM_OK) {
            r->errors++;
            return;
        }
        u->file20_start_ms = t - t % interval_ms;
    }
    if (gateway_dc_csv_add_row(u->csv20, row, u->n_points + 1, NULL) == ANM_OK)
        u->last_row20_ms = t;
    else
        r->errors++;
}

/* Caller holds the lock. A row a second per unit with a value; files rolled per interval. */
static void sample_perfmon(gateway__dc_route *r, int64_t now)
{
    int64_t interval_ms = (int64_t)r->cfg->perfmon_interval_s * 1000;
    int64_t second = now - now % 1000;
    for (size_t k = 0; k < r->n_units; k++) {
        perfmon_unit *u = &r->units[k];
        if (u->csv != NULL && second >= u->file_start_ms + interval_ms)
            roll_file(r, u, 0);
        /* a 20 Hz file whose telemetry stopped is closed one interval after its end */
        if (u->csv20 != NULL && now >= u->file20_start_ms + 2 * interval_ms)
            roll_file(r, u, 1);
        if (u->last_row_ms >= second)
            continue;
        gateway_dc_value row[MAX_COLUMNS + 1];
        row[0] = (gateway_dc_value){"timestamp", GATEWAY_DC_TIME, 0.0, second, NULL};
        int complete = 1;
        for (size_t p = 0; p < u->n_points; p++) {
            double v = r->latest[u->point_index[p]];
            if (!isfinite(v))
                complete = 0;
            row[p + 1] = (gateway_dc_value){u->columns[p + 1].field, GATEWAY_DC_NUMBER, v, 0, NULL};
        }
        if (!complete)
            continue; /* no value yet for a column: no row (never a made-up number) */
        if (u->csv == NULL) {
            if (gateway_dc_csv_new(u->columns, u->n_points + 1, &u->csv) != ANM_OK) {
                r->errors++;
                continue;
            }
            u->file_start_ms = second - second % interval_ms;
        }
        if (gateway_dc_csv_add_row(u->csv, row, u->n_points + 1, NULL) == ANM_OK)
            u->last_row_ms = second;
        else
            r->errors++;
    }
}

static void test_redeclarations(gateway__dc_route *r, const gateway_export_value *values,
                                size_t n);

void gateway__dc_route_values(gateway__dc_route *r, const gateway_export_value *values, size_t n)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < n; i++)
        if (!values[i].test && values[i].point->dc_column != NULL)
            r->latest[values[i].point_index] = values[i].sent;
    if (r->cfg->perfmon_20hz) {
        for (size_t k = 0; k < r->n_units; k++) {
            perfmon_unit *u = &r->units[k];
            int64_t t = 0; /* the newest measurement of this unit in the batch */
            for (size_t i = 0; i < n; i++) {
                if (values[i].test || values[i].point->dc_column == NULL)
                    continue;
                for (size_t p = 0; p < u->n_points; p++)
                    if (u->point_index[p] == values[i].point_index && values[i].utc_ms > t)
                        t = values[i].utc_ms;
            }
            if (t > 0)
                add_row20(r, u, t);
        }
    }
    pthread_mutex_unlock(&r->lock);
    test_redeclarations(r, values, n);
}

/* ---- redeclarations ----------------------------------------------------------------- */

static void make_redeclarations(gateway__dc_route *r, const gateway_redeclaration *events,
                                size_t n, int test);

void gateway__dc_route_redeclarations(gateway__dc_route *r, const gateway_redeclaration *events,
                                      size_t n)
{
    make_redeclarations(r, events, n, 0);
}

static void make_redeclarations(gateway__dc_route *r, const gateway_redeclaration *events,
                                size_t n, int test)
{
    if (r == NULL || n == 0)
        return;
    int64_t now = anm_wall_clock_ms();
    size_t n_columns;
    const gateway_dc_column *columns = gateway_dc_default_columns(GATEWAY_DC_REDEC, &n_columns);
    char *done = calloc(n, 1); /* events already written to a unit's file */
    if (done == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        const char *unit = unit_for_der(r, events[i].der);
        char unit_i[GATEWAY_DC_UNIT_MAX + 1];
        snprintf(unit_i, sizeof unit_i, "%s", r->cfg->unit[0] ? r->cfg->unit
                                              : events[i].unit[0] ? events[i].unit : unit);
        gateway_dc_csv *csv = NULL;
        if (gateway_dc_csv_new(columns, n_columns, &csv) != ANM_OK) {
            r->errors++;
            break;
        }
        for (size_t j = i; j < n; j++) {
            const char *unit_j = r->cfg->unit[0] ? r->cfg->unit
                                 : events[j].unit[0] ? events[j].unit
                                                     : unit_for_der(r, events[j].der);
            if (done[j] || strcmp(unit_j, unit_i) != 0)
                continue;
            done[j] = 1;
            char reason[256];
            if (test)
                snprintf(reason, sizeof reason, "commissioning test pattern");
            else
                snprintf(reason, sizeof reason, "constraint statement %s version %ld period %d",
                         events[j].statement_id, events[j].statement_version, events[j].period);
            /* availability below 0 cannot be declared: 0 (the quality is in the reason) */
            int flagged = !(events[j].available_mw >= 0.0);
            if (flagged) {
                size_t len = strlen(reason);
                snprintf(reason + len, sizeof reason - len, " (flagged: %.3f MW)",
                         events[j].available_mw);
            }
            gateway_dc_value row[] = {
                {"unit", GATEWAY_DC_TEXT, 0.0, 0, unit_i},
                {"start", GATEWAY_DC_TIME, 0.0, events[j].utc_start_ms, NULL},
                {"end", GATEWAY_DC_TIME, 0.0, events[j].utc_end_ms, NULL},
                {"available_mw", GATEWAY_DC_NUMBER, flagged ? 0.0 : events[j].available_mw, 0, NULL},
                {"reason", GATEWAY_DC_TEXT, 0.0, 0, reason},
            };
            if (gateway_dc_csv_add_row(csv, row, sizeof row / sizeof row[0], NULL) != ANM_OK)
                r->errors++;
        }
        gateway_dc_file_info info;
        memset(&info, 0, sizeof info);
        snprintf(info.unit, sizeof info.unit, "%s", unit_i);
        info.utc_ms = next_name_ms(r, now);
        info.kind = GATEWAY_DC_REDEC;
        info.version = 1;
        info.test = test;
        char name[GATEWAY_DC_NAME_MAX + 1];
        size_t length = 0;
        const char *text = gateway_dc_csv_text(csv, &length);
        char *copy = malloc(length + 1);
        if (gateway_dc_file_name(name, sizeof name, &info) != ANM_OK || copy == NULL) {
            free(copy);
            r->errors++;
            anm_log_error(COMPONENT, "data concentrator: redeclaration file of \"%s\" not made",
                          unit_i);
        } else {
            memcpy(copy, text, length + 1);
            enqueue(r, name, copy, length, now);
            if (test)
                r->test_sent++;
        }
        gateway_dc_csv_destroy(&csv);
    }
    pthread_mutex_unlock(&r->lock);
    free(done);
}

/*
 * Commissioning: the availability values of a test pattern step become one
 * <unit>_<now>_redecv1_test.csv per unit (a row per value, for the next half
 * hour, reason "commissioning test pattern").
 */
static void test_redeclarations(gateway__dc_route *r, const gateway_export_value *values,
                                size_t n)
{
    int64_t now = anm_wall_clock_ms();
    gateway_redeclaration *events = calloc(n ? n : 1, sizeof *events);
    size_t k = 0;
    if (events == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        const gateway_export_value *v = &values[i];
        if (!v->test || v->point->quantity != GATEWAY_QUANTITY_AVAILABILITY_MW ||
            !isfinite(v->sent))
            continue;
        gateway_redeclaration *ev = &events[k++];
        const char *owner = v->point->der ? v->point->der : v->point->zone;
        snprintf(ev->der, sizeof ev->der, "%s", owner ? owner : "");
        snprintf(ev->unit, sizeof ev->unit, "%s", unit_for_der(r, ev->der));
        ev->utc_start_ms = now;
        ev->utc_end_ms = now + 30 * 60 * 1000;
        ev->available_mw = v->sent;
    }
    if (k > 0)
        make_redeclarations(r, events, k, 1);
    free(events);
}

/* ---- worker ------------------------------------------------------------------------- */

static void add_latency(gateway__dc_route *r, double ms)
{
    r->latencies[r->latency_next] = ms;
    r->latency_next = (r->latency_next + 1) % LATENCY_KEEP;
    if (r->n_latencies < LATENCY_KEEP)
        r->n_latencies++;
}

static void *dc_worker(void *arg)
{
    gateway__dc_route *r = arg;
    while (!atomic_load(&r->stop)) {
        int64_t now = anm_wall_clock_ms();
        pthread_mutex_lock(&r->lock);
        sample_perfmon(r, now);
        dc_file *list = r->head;
        r->head = r->tail = NULL;
        r->queued = 0;
        pthread_mutex_unlock(&r->lock);
        /* spool what the service made (durable from here on) */
        while (list != NULL) {
            dc_file *f = list;
            list = f->next;
            anm_error_detail d;
            anm_error_detail_clear(&d);
            int rc = gateway_dc_upload_submit(r->upload, f->name, f->text, f->length, &d);
            pthread_mutex_lock(&r->lock);
            if (rc != ANM_OK) {
                r->errors++;
                snprintf(r->last_error, sizeof r->last_error, "could not spool \"%s\": %s",
                         f->name, d.message[0] ? d.message : anm_strerror(rc));
                anm_log_error(COMPONENT, "data concentrator: %s", r->last_error);
            } else if (r->n_stamps < STAMPS_MAX) {
                snprintf(r->stamps[r->n_stamps].name, sizeof r->stamps[0].name, "%s", f->name);
                r->stamps[r->n_stamps++].measured_ms = f->measured_ms;
            }
            pthread_mutex_unlock(&r->lock);
            free(f->text);
            free(f);
        }
        gateway_dc_result result;
        memset(&result, 0, sizeof result);
        int rc = gateway_dc_upload_step(r->upload, &result);
        int64_t done_ms = anm_wall_clock_ms();
        pthread_mutex_lock(&r->lock);
        if (rc != ANM_OK) {
            r->errors++;
            snprintf(r->last_error, sizeof r->last_error, "spool: %s", anm_strerror(rc));
        } else if (result.outcome == GATEWAY_DC_UPLOADED) {
            r->uploaded++;
            r->last_201_ms = done_ms;
            if (strstr(result.name, "_test.") != NULL)
                r->test_acked++;
            for (size_t i = 0; i < r->n_stamps; i++) {
                if (strcmp(r->stamps[i].name, result.name) != 0)
                    continue;
                add_latency(r, (double)(done_ms - r->stamps[i].measured_ms));
                r->stamps[i] = r->stamps[--r->n_stamps];
                break;
            }
            snprintf(r->state, sizeof r->state, "uploading");
        } else if (result.outcome == GATEWAY_DC_RETRY || result.outcome == GATEWAY_DC_PARKED) {
            r->errors++;
            snprintf(r->last_error, sizeof r->last_error, "%s \"%s\": HTTP %ld %s",
                     result.outcome == GATEWAY_DC_PARKED ? "parked" : "will retry", result.name,
                     result.http_status, result.message);
            snprintf(r->state, sizeof r->state, "%s",
                     result.outcome == GATEWAY_DC_PARKED ? "parked" : "retrying");
        }
        r->backlog = gateway_dc_upload_pending(r->upload);
        r->parked = gateway_dc_upload_parked(r->upload);
        pthread_mutex_unlock(&r->lock);
        if (result.outcome == GATEWAY_DC_IDLE) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

int gateway__dc_route_new(const gateway_dc_settings *c, const gateway_proforma *proforma,
                          gateway__dc_route **out, anm_error_detail *detail)
{
    *out = NULL;
    const char *missing = c->base_url[0] == '\0'        ? "data_concentrator.base_url"
                          : c->spool_dir[0] == '\0'     ? "data_concentrator.spool_dir"
                          : c->username[0] == '\0'      ? "data_concentrator.username"
                          : c->password_file[0] == '\0' ? "data_concentrator.password_file"
                                                        : NULL;
    if (missing != NULL) {
        anm_error_detail_set(detail, NULL, 0, 0, missing,
                             "required when data_concentrator.enabled is true");
        return ANM_ECONFIG;
    }
    if (c->unit[0] != '\0') {
        char name[GATEWAY_DC_NAME_MAX + 1];
        gateway_dc_file_info probe;
        memset(&probe, 0, sizeof probe);
        snprintf(probe.unit, sizeof probe.unit, "%s", c->unit);
        probe.version = 1;
        probe.kind = GATEWAY_DC_REDEC;
        if (strlen(c->unit) > GATEWAY_DC_UNIT_MAX ||
            gateway_dc_file_name(name, sizeof name, &probe) != ANM_OK) {
            anm_error_detail_set(detail, NULL, 0, 0, "data_concentrator.unit",
                                 "\"%s\" is not a unit id (1..64 of A-Z a-z 0-9 _ -)", c->unit);
            return ANM_ECONFIG;
        }
    }
    gateway__dc_route *r = calloc(1, sizeof *r);
    if (r == NULL)
        return ANM_ENOMEM;
    r->cfg = c;
    r->proforma = proforma;
    pthread_mutex_init(&r->lock, NULL);
    snprintf(r->state, sizeof r->state, "idle");
    int rc = ANM_ENOMEM;
    r->stamps = calloc(STAMPS_MAX, sizeof *r->stamps);
    if (r->stamps == NULL || (rc = setup_units(r)) != ANM_OK)
        goto fail;
    gateway_dc_upload_config uc;
    gateway_dc_upload_config_default(&uc);
    uc.base_url = c->base_url;
    uc.path = c->path[0] ? c->path : NULL;
    uc.username = c->username;
    uc.password_file = c->password_file;
    uc.ca_file = c->ca_file[0] ? c->ca_file : NULL;
    uc.spool_dir = c->spool_dir;
    uc.min_interval_ms = c->min_interval_ms;
    uc.retry_after_ms = c->retry_after_ms;
    uc.timeout_ms = c->timeout_ms;
    if ((rc = gateway_dc_upload_new(&uc, NULL, &r->upload, detail)) != ANM_OK) {
        if (detail != NULL && detail->path[0] != '\0' &&
            strncmp(detail->path, "data_concentrator.", 18) != 0) {
            char key[sizeof detail->path];
            snprintf(key, sizeof key, "%s", detail->path);
            snprintf(detail->path, sizeof detail->path, "data_concentrator.%.200s", key);
        }
        goto fail;
    }
    r->backlog = gateway_dc_upload_pending(r->upload);
    r->parked = gateway_dc_upload_parked(r->upload);
    if (pthread_create(&r->thread, NULL, dc_worker, r) != 0) {
        rc = ANM_ENOMEM;
        goto fail;
    }
    r->started = 1;
    anm_log_info(COMPONENT, "data concentrator route to \"%s\" (%zu files spooled, %zu perfmon units)",
                 c->base_url, r->backlog, r->n_units);
    *out = r;
    return ANM_OK;
fail:
    gateway__dc_route_destroy(&r);
    return rc;
}

void gateway__dc_route_destroy(gateway__dc_route **rp)
{
    if (rp == NULL || *rp == NULL)
        return;
    gateway__dc_route *r = *rp;
    if (r->started) {
        atomic_store(&r->stop, 1);
        pthread_join(r->thread, NULL);
    }
    /* files made and not yet spooled are spooled now; open perfmon files are
       closed (a short file rather than a lost one) */
    if (r->upload != NULL) {
        pthread_mutex_lock(&r->lock);
        for (size_t k = 0; k < r->n_units; k++)
            roll_unit(r, &r->units[k]);
        pthread_mutex_unlock(&r->lock);
    }
    for (dc_file *f = r->head; f != NULL;) {
        dc_file *next = f->next;
        if (r->upload != NULL &&
            gateway_dc_upload_submit(r->upload, f->name, f->text, f->length, NULL) != ANM_OK)
            anm_log_error(COMPONENT, "data concentrator: file \"%s\" lost at shutdown", f->name);
        free(f->text);
        free(f);
        f = next;
    }
    for (size_t k = 0; r->units != NULL && k < r->n_units; k++)
        gateway_dc_csv_destroy(&r->units[k].csv);
    gateway_dc_upload_destroy(&r->upload);
    free(r->units);
    free(r->latest);
    free(r->stamps);
    pthread_mutex_destroy(&r->lock);
    free(r);
    *rp = NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

json_t *gateway__dc_route_status(gateway__dc_route *r)
{
    pthread_mutex_lock(&r->lock);
    double sorted[LATENCY_KEEP];
    size_t n = r->n_latencies;
    memcpy(sorted, r->latencies, n * sizeof *sorted);
    char last[32] = "";
    if (r->last_201_ms > 0)
        anm_time_format_utc(r->last_201_ms, last, sizeof last);
    json_t *o = json_pack(
        "{s:s,s:s,s:o,s:I,s:I,s:I,s:I,s:s}", "kind", "data_concentrator", "state", r->state,
        "last_handover", last[0] ? json_string(last) : json_null(), "backlog",
        (json_int_t)(r->backlog + r->queued), "parked", (json_int_t)r->parked, "handed_over",
        (json_int_t)r->uploaded, "errors", (json_int_t)r->errors, "last_error", r->last_error);
    if (o != NULL) {
        json_object_set_new(o, "test_sent", json_integer((json_int_t)r->test_sent));
        json_object_set_new(o, "test_acknowledged", json_integer((json_int_t)r->test_acked));
    }
    pthread_mutex_unlock(&r->lock);
    if (o == NULL)
        return NULL;
    if (n > 0) {
        qsort(sorted, n, sizeof *sorted, cmp_double);
        json_object_set_new(o, "latency_p50_ms", json_real(sorted[(size_t)(0.5 * (double)(n - 1))]));
        json_object_set_new(o, "latency_p99_ms", json_real(sorted[(size_t)(0.99 * (double)(n - 1))]));
    } else {
        json_object_set_new(o, "latency_p50_ms", json_null());
        json_object_set_new(o, "latency_p99_ms", json_null());
    }
    return o;
}
