/* db_registry.c: upserts a zone set into the registry tables. */
#include "engine/db_registry.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char upsert_zone_sql[] =
    "INSERT INTO zones (zone_id, name, case_name, case_file, zone_file, access, curtailment_mode,"
    " all_contingencies, contingencies)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::integer[])"
    " ON CONFLICT (zone_id) DO UPDATE SET name = EXCLUDED.name, case_name = EXCLUDED.case_name,"
    " case_file = EXCLUDED.case_file, zone_file = EXCLUDED.zone_file, access = EXCLUDED.access,"
    " curtailment_mode = EXCLUDED.curtailment_mode, all_contingencies = EXCLUDED.all_contingencies,"
    " contingencies = EXCLUDED.contingencies, loaded_at = now()";

static const char upsert_monitored_sql[] =
    "INSERT INTO monitored_elements (zone_id, element_id, branch, from_bus, to_bus, direction,"
    " normal_mw, post_fault_mw, seasonal_ratings)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)"
    " ON CONFLICT (zone_id, element_id) DO UPDATE SET branch = EXCLUDED.branch,"
    " from_bus = EXCLUDED.from_bus, to_bus = EXCLUDED.to_bus, direction = EXCLUDED.direction,"
    " normal_mw = EXCLUDED.normal_mw, post_fault_mw = EXCLUDED.post_fault_mw,"
    " seasonal_ratings = EXCLUDED.seasonal_ratings";

/* the WHERE makes a DER of another zone a conflict that updates nothing */
static const char upsert_der_sql[] =
    "INSERT INTO ders (der_id, zone_id, bus, technology, capacity_mw, connection_date,"
    " lifo_position, under_anm)"
    " VALUES ($1, $2, $3, $4, $5, $6::date, $7, $8)"
    " ON CONFLICT (der_id) DO UPDATE SET bus = EXCLUDED.bus, technology = EXCLUDED.technology,"
    " capacity_mw = EXCLUDED.capacity_mw, connection_date = EXCLUDED.connection_date,"
    " lifo_position = EXCLUDED.lifo_position, under_anm = EXCLUDED.under_anm"
    " WHERE ders.zone_id = EXCLUDED.zone_id";

static const char upsert_signal_sql[] =
    "INSERT INTO signals (signal_id, zone_id, kind, unit, element, scale, \"offset\")"
    " VALUES ($1, $2, $3, $4, $5, $6, $7)"
    " ON CONFLICT (signal_id) DO UPDATE SET kind = EXCLUDED.kind, unit = EXCLUDED.unit,"
    " element = EXCLUDED.element, scale = EXCLUDED.scale, \"offset\" = EXCLUDED.\"offset\""
    " WHERE signals.zone_id = EXCLUDED.zone_id";

static const char *signal_kind_name(anm_signal_kind kind)
{
    switch (kind) {
    case ANM_SIGNAL_BRANCH_MW:
        return "branch_mw";
    case ANM_SIGNAL_BRANCH_MVA:
        return "branch_mva";
    case ANM_SIGNAL_BRANCH_A:
        return "branch_a";
    case ANM_SIGNAL_BUS_KV:
        return "bus_kv";
    case ANM_SIGNAL_DER_MW:
        return "der_mw";
    case ANM_SIGNAL_TRANSFORMER_TEMP_C:
        return "transformer_temp_c";
    case ANM_SIGNAL_BREAKER_STATE:
        return "breaker_state";
    }
    return "unknown";
}

/* Number formatting for parameters; each returns 0 or -1 on truncation. */
static int fmt_int(char *buf, size_t size, long long value)
{
    int n = snprintf(buf, size, "%lld", value);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int fmt_double(char *buf, size_t size, double value)
{
    int n = snprintf(buf, size, "%.17g", value);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* "{1,2,3}": a new string (an array literal passed as a parameter value). */
static char *int_array_text(const int *values, size_t n)
{
    size_t size = 3 + n * 12;
    char *text = malloc(size);
    if (text == NULL)
        return NULL;
    size_t at = 0;
    text[at++] = '{';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(text + at, size - at, "%s%d", i ? "," : "", values[i]);
        if (w < 0 || (size_t)w >= size - at) {
            free(text);
            return NULL;
        }
        at += (size_t)w;
    }
    text[at++] = '}';
    text[at] = '\0';
    return text;
}

static char *seasonal_json(const anm_monitored *m)
{
    json_t *list = json_array();
    if (list == NULL)
        return NULL;
    for (size_t i = 0; i < m->n_seasonal; i++) {
        const anm_seasonal_rating *s = &m->seasonal[i];
        char start[8], end[8];
        int a = snprintf(start, sizeof start, "%02d-%02d", s->start_month, s->start_day);
        int b = snprintf(end, sizeof end, "%02d-%02d", s->end_month, s->end_day);
        if (a < 0 || (size_t)a >= sizeof start || b < 0 || (size_t)b >= sizeof end)
            goto fail;
        json_t *entry = json_pack("{s:s, s:s, s:s, s:f, s:f}", "season", s->season, "start", start, "end",
                                  end, "normal_mw", s->normal_mw, "post_fault_mw", s->post_fault_mw);
        if (entry == NULL || json_array_append_new(list, entry) != 0)
            goto fail;
    }
    char *text = json_dumps(list, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(list);
    return text;
fail:
    json_decref(list);
    return NULL;
}

static int db_error(anm_db *db, int rc, const char *path, anm_error_detail *err)
{
    anm_error_detail_set(err, NULL, 0, 0, path, "%s", anm_db_error_message(db));
    return rc;
}

static int load_zone(anm_db *db, const anm_zone_set *set, size_t zi, const char *zone_file,
                     const char *case_file, anm_db_registry_counts *counts, anm_error_detail *err)
{
    const anm_zone *z = &set->zones[zi];
    char path[128];
    int rc = ANM_OK;
    long long affected = 0;
    char *contingencies = int_array_text(z->contingencies, z->n_contingencies);
    if (contingencies == NULL)
        return ANM_ENOMEM;
    {
        const char *params[] = {z->id,
                                z->name,
                                set->network && set->network->name ? set->network->name : "",
                                case_file ? case_file : "",
                                zone_file ? zone_file : "",
                                anm_access_name(z->access),
                                anm_mode_name(z->mode),
                                z->all_contingencies ? "true" : "false",
                                contingencies};
        rc = anm_db_exec(db, upsert_zone_sql, 9, params, NULL, NULL);
        free(contingencies);
        if (rc != ANM_OK) {
            int w = snprintf(path, sizeof path, "zones[%zu]", zi);
            (void)w;
            return db_error(db, rc, path, err);
        }
        counts->zones++;
    }
    for (size_t i = 0; i < z->n_monitored; i++) {
        const anm_monitored *m = &z->monitored[i];
        char branch[16], from_bus[16], to_bus[16], direction[8], normal[32], post_fault[32];
        int from = 0, to = 0;
        if (set->network && m->branch >= 1 && (size_t)m->branch <= set->network->n_branch) {
            from = set->network->branch[m->branch - 1].from_bus;
            to = set->network->branch[m->branch - 1].to_bus;
        }
        char *seasonal = seasonal_json(m);
        if (seasonal == NULL)
            return ANM_ENOMEM;
        if (fmt_int(branch, sizeof branch, m->branch) || fmt_int(from_bus, sizeof from_bus, from) ||
            fmt_int(to_bus, sizeof to_bus, to) || fmt_int(direction, sizeof direction, m->direction) ||
            fmt_double(normal, sizeof normal, m->normal_mw) ||
            fmt_double(post_fault, sizeof post_fault, m->post_fault_mw)) {
            free(seasonal);
            return ANM_EINTERNAL;
        }
        const char *params[] = {z->id,     m->id,  branch,     from_bus, to_bus,
                                direction, normal, post_fault, seasonal};
        rc = anm_db_exec(db, upsert_monitored_sql, 9, params, NULL, NULL);
        free(seasonal);
        if (rc != ANM_OK) {
            int w = snprintf(path, sizeof path, "zones[%zu].monitored[%zu]", zi, i);
            (void)w;
            return db_error(db, rc, path, err);
        }
        counts->monitored++;
    }
    for (size_t i = 0; i < z->n_ders; i++) {
        const anm_der *d = &z->ders[i];
        char bus[16], capacity[32], date[16], lifo[16];
        int date_ok = d->connection_year > 0;
        if (date_ok) {
            int n = snprintf(date, sizeof date, "%04d-%02d-%02d", d->connection_year, d->connection_month,
                             d->connection_day);
            if (n < 0 || (size_t)n >= sizeof date)
                return ANM_EINTERNAL;
        }
        if (fmt_int(bus, sizeof bus, d->bus) || fmt_double(capacity, sizeof capacity, d->capacity_mw) ||
            fmt_int(lifo, sizeof lifo, d->lifo_position))
            return ANM_EINTERNAL;
        const char *params[] = {d->id,   z->id, bus, anm_technology_name(d->technology), capacity,
                                date_ok ? date : NULL, lifo, d->under_anm ? "true" : "false"};
        rc = anm_db_exec(db, upsert_der_sql, 8, params, NULL, &affected);
        int w = snprintf(path, sizeof path, "zones[%zu].ders[%zu].id", zi, i);
        (void)w;
        if (rc != ANM_OK)
            return db_error(db, rc, path, err);
        if (affected == 0) {
            anm_error_detail_set(err, NULL, 0, 0, path, "der \"%s\" already belongs to another zone", d->id);
            return ANM_EDUP;
        }
        counts->ders++;
    }
    for (size_t i = 0; i < z->n_signals; i++) {
        const anm_signal *s = &z->signals[i];
        char scale[32], offset[32];
        if (fmt_double(scale, sizeof scale, s->scale) || fmt_double(offset, sizeof offset, s->offset))
            return ANM_EINTERNAL;
        const char *params[] = {s->id, z->id, signal_kind_name(s->kind), s->unit, s->element, scale, offset};
        rc = anm_db_exec(db, upsert_signal_sql, 7, params, NULL, &affected);
        int w = snprintf(path, sizeof path, "zones[%zu].signals[%zu].id", zi, i);
        (void)w;
        if (rc != ANM_OK)
            return db_error(db, rc, path, err);
        if (affected == 0) {
            anm_error_detail_set(err, NULL, 0, 0, path, "signal \"%s\" already belongs to another zone",
                                 s->id);
            return ANM_EDUP;
        }
        counts->signals++;
    }
    return ANM_OK;
}

int anm_db_registry_load(anm_db *db, const anm_zone_set *set, const char *zone_file,
                         const char *case_file, anm_db_registry_counts *counts, anm_error_detail *err)
{
    anm_db_registry_counts local = {0, 0, 0, 0};
    if (counts != NULL)
        *counts = local;
    if (db == NULL || set == NULL)
        return ANM_EINVAL;
    int rc = anm_db_begin(db);
    if (rc != ANM_OK)
        return db_error(db, rc, NULL, err);
    for (size_t zi = 0; zi < set->n_zones; zi++) {
        rc = load_zone(db, set, zi, zone_file, case_file, &local, err);
        if (rc != ANM_OK)
            goto rollback;
    }
    rc = anm_db_commit(db); /* deferred checks (LIFO positions) run here */
    if (rc != ANM_OK) {
        db_error(db, rc, NULL, err);
        goto rollback;
    }
    if (counts != NULL)
        *counts = local;
    return ANM_OK;
rollback:
    (void)anm_db_rollback(db);
    return rc;
}
