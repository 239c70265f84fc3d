/*
 * zone.c: the zone file (JSON) decoded strictly against its network.
 *
 * The decoder walks the JSON tree explicitly: every object's keys are
 * checked against the keys its table allows, so a misspelt key fails naming
 * its key path ("zones[0].ders[2].capcity_mw: unknown key"). jansson gives
 * line and column for syntax errors only; semantic errors carry the key
 * path. JSON arrays are numbered from 0 in key paths, as jq does.
 */
#include "engine/zone.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_LENGTH 256

typedef struct walker {
    const char *file;
    anm_error_detail *err;
    const anm_case *network;
    unsigned char *bridges; /* per branch: 1 if it islands the network */
} walker;

static int fail(walker *w, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(walker *w, const char *path, const char *fmt, ...)
{
    if (w->err != NULL) {
        char message[sizeof w->err->message];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
        if (n < 0)
            message[0] = '\0';
        anm_error_detail_set(w->err, w->file, 0, 0, path, "%s", message);
    }
    return ANM_ECONFIG;
}

/* path + "." + key, or path + "[index]" (key NULL) */
static void child_path(char *out, const char *path, const char *key, size_t index)
{
    int n;
    if (key != NULL)
        n = snprintf(out, PATH_MAX_LENGTH, "%s%s%s", path, path[0] ? "." : "", key);
    else
        n = snprintf(out, PATH_MAX_LENGTH, "%s[%zu]", path, index);
    if (n < 0)
        out[0] = '\0';
}

/* ------------------------------------------------------- typed accessors */

static int check_keys(walker *w, json_t *object, const char *path, const char *const *keys)
{
    const char *key;
    json_t *value;
    json_object_foreach(object, key, value)
    {
        bool known = false;
        for (size_t i = 0; keys[i] != NULL && !known; i++)
            known = strcmp(keys[i], key) == 0;
        if (!known) {
            char p[PATH_MAX_LENGTH];
            child_path(p, path, key, 0);
            return fail(w, p, "unknown key");
        }
    }
    return ANM_OK;
}

static int need_object(walker *w, json_t *value, const char *path)
{
    if (!json_is_object(value))
        return fail(w, path, "must be an object");
    return ANM_OK;
}

/* The member key of object; NULL and an error when it is required and missing. */
static json_t *member(walker *w, json_t *object, const char *path, const char *key, bool required,
                      int *rc)
{
    json_t *value = json_object_get(object, key);
    if (value == NULL && required) {
        char p[PATH_MAX_LENGTH];
        child_path(p, path, key, 0);
        *rc = fail(w, p, "missing");
    }
    return value;
}

static int get_string(walker *w, json_t *object, const char *path, const char *key, bool required,
                      char *out, size_t size)
{
    int rc = ANM_OK;
    json_t *value = member(w, object, path, key, required, &rc);
    if (value == NULL)
        return rc;
    char p[PATH_MAX_LENGTH];
    child_path(p, path, key, 0);
    if (!json_is_string(value))
        return fail(w, p, "must be a string");
    size_t n = json_string_length(value);
    if (n >= size)
        return fail(w, p, "must be at most %zu characters", size - 1);
    if (strlen(json_string_value(value)) != n)
        return fail(w, p, "must not contain a NUL character");
    memcpy(out, json_string_value(value), n + 1);
    return ANM_OK;
}

/* An identifier: 1 to 63 of [A-Za-z0-9_.-], starting with a letter or digit. */
static int get_id(walker *w, json_t *object, const char *path, const char *key,
                  char out[ANM_ID_MAX])
{
    int rc = get_string(w, object, path, key, true, out, ANM_ID_MAX);
    if (rc != ANM_OK)
        return rc;
    bool ok = isalnum((unsigned char)out[0]) != 0;
    for (size_t i = 1; ok && out[i] != '\0'; i++)
        ok = isalnum((unsigned char)out[i]) || out[i] == '_' || out[i] == '-' || out[i] == '.';
    if (!ok) {
        char p[PATH_MAX_LENGTH];
        child_path(p, path, key, 0);
        return fail(w, p,
                    "must start with a letter or digit and contain only letters, digits, "
                    "'_', '-' and '.'");
    }
    return ANM_OK;
}

static int get_number(walker *w, json_t *object, const char *path, const char *key, bool required,
                      double fallback, double *out)
{
    int rc = ANM_OK;
    json_t *value = member(w, object, path, key, required, &rc);
    *out = fallback;
    if (value == NULL)
        return rc;
    if (!json_is_number(value)) {
        char p[PATH_MAX_LENGTH];
        child_path(p, path, key, 0);
        return fail(w, p, "must be a number");
    }
    *out = json_number_value(value);
    return ANM_OK;
}

static int get_int(walker *w, json_t *object, const char *path, const char *key, bool required,
                   int *out)
{
    int rc = ANM_OK;
    json_t *value = member(w, object, path, key, required, &rc);
    if (value == NULL)
        return rc;
    char p[PATH_MAX_LENGTH];
    child_path(p, path, key, 0);
    if (!json_is_integer(value))
        return fail(w, p, "must be an integer");
    json_int_t v = json_integer_value(value);
    if (v < -2147483647 || v > 2147483647)
        return fail(w, p, "out of range");
    *out = (int)v;
    return ANM_OK;
}

static int get_bool(walker *w, json_t *object, const char *path, const char *key, bool fallback,
                    bool *out)
{
    json_t *value = json_object_get(object, key);
    *out = fallback;
    if (value == NULL)
        return ANM_OK;
    if (!json_is_boolean(value)) {
        char p[PATH_MAX_LENGTH];
        child_path(p, path, key, 0);
        return fail(w, p, "must be true or false");
    }
    *out = json_is_true(value);
    return ANM_OK;
}

/* A string that must be one of names[]; *out is its index. */
static int get_enum(walker *w, json_t *object, const char *path, const char *key,
                    const char *const *names, const char *expected, int *out)
{
    int rc = ANM_OK;
    json_t *value = member(w, object, path, key, true, &rc);
    if (value == NULL)
        return rc;
    char p[PATH_MAX_LENGTH];
    child_path(p, path, key, 0);
    if (!json_is_string(value))
        return fail(w, p, "must be %s", expected);
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(names[i], json_string_value(value)) == 0) {
            *out = i;
            return ANM_OK;
        }
    }
    return fail(w, p, "must be %s, not \"%.64s\"", expected, json_string_value(value));
}

static int get_array(walker *w, json_t *object, const char *path, const char *key, bool required,
                     json_t **out)
{
    int rc = ANM_OK;
    json_t *value = member(w, object, path, key, required, &rc);
    *out = value;
    if (value == NULL)
        return rc;
    if (!json_is_array(value)) {
        char p[PATH_MAX_LENGTH];
        child_path(p, path, key, 0);
        return fail(w, p, "must be an array");
    }
    return ANM_OK;
}

static bool valid_month_day(int month, int day)
{
    static const int days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month >= 1 && month <= 12 && day >= 1 && day <= days[month - 1];
}

static bool parse_digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* ------------------------------------------------------------- sections */

static const char *const access_names[] = {"lifo", "pro_rata", "min_mw", NULL};
static const char *const mode_names[] = {"corrective", "preventive", NULL};
static const char *const technology_names[] = {"wind", "solar", "battery", "demand", "other", NULL};
static const char *const direction_names[] = {"from_to", "to_from", NULL};
static const char *const signal_kind_names[] = {"branch_mw",     "branch_mva", "branch_a",
                                                "bus_kv",        "der_mw",     "transformer_temp_c",
                                                "breaker_state", NULL};
static const char *const signal_units[] = {"MW", "MVA", "A", "kV", "MW", "degC", "state"};

static int check_branch_number(walker *w, const char *path, int branch, bool allow_bridge)
{
    const anm_case *c = w->network;
    if (branch < 1 || (size_t)branch > c->n_branch)
        return fail(w, path, "branch %d out of range (the case has branches 1 to %zu)", branch,
                    c->n_branch);
    if (c->branch[branch - 1].status <= 0)
        return fail(w, path, "branch %d is out of service in the case", branch);
    if (!allow_bridge && w->bridges[branch - 1])
        return fail(w, path,
                    "branch %d islands the network (a bridge) and cannot be a "
                    "contingency",
                    branch);
    return ANM_OK;
}

static int parse_seasonal(walker *w, json_t *array, const char *path, anm_monitored *m)
{
    static const char *const keys[] = {"season",    "start",         "end",
                                       "normal_mw", "post_fault_mw", NULL};
    int rc = ANM_OK;
    size_t n = json_array_size(array);
    if (n == 0)
        return ANM_OK;
    m->seasonal = calloc(n, sizeof *m->seasonal);
    if (m->seasonal == NULL)
        return ANM_ENOMEM;
    m->n_seasonal = n;
    for (size_t i = 0; i < n; i++) {
        json_t *entry = json_array_get(array, i);
        anm_seasonal_rating *s = &m->seasonal[i];
        char p[PATH_MAX_LENGTH], q[PATH_MAX_LENGTH];
        child_path(p, path, NULL, i);
        if ((rc = need_object(w, entry, p)) != ANM_OK ||
            (rc = check_keys(w, entry, p, keys)) != ANM_OK ||
            (rc = get_string(w, entry, p, "season", true, s->season, sizeof s->season)) != ANM_OK)
            return rc;
        const char *ends[2] = {"start", "end"};
        int *months[2] = {&s->start_month, &s->end_month};
        int *days[2] = {&s->start_day, &s->end_day};
        for (int k = 0; k < 2; k++) {
            char text[16];
            if ((rc = get_string(w, entry, p, ends[k], true, text, sizeof text)) != ANM_OK)
                return rc;
            child_path(q, p, ends[k], 0);
            if (strlen(text) != 5 || text[2] != '-' || !parse_digits(text, 2, months[k]) ||
                !parse_digits(text + 3, 2, days[k]) || !valid_month_day(*months[k], *days[k]))
                return fail(w, q, "must be a date \"MM-DD\", not \"%s\"", text);
        }
        if ((rc = get_number(w, entry, p, "normal_mw", true, 0, &s->normal_mw)) != ANM_OK ||
            (rc = get_number(w, entry, p, "post_fault_mw", true, 0, &s->post_fault_mw)) != ANM_OK)
            return rc;
        if (!(s->normal_mw > 0)) {
            child_path(q, p, "normal_mw", 0);
            return fail(w, q, "must be > 0");
        }
        if (!(s->post_fault_mw >= s->normal_mw)) {
            child_path(q, p, "post_fault_mw", 0);
            return fail(w, q, "must be >= normal_mw (%g)", s->normal_mw);
        }
    }
    return ANM_OK;
}

static int parse_monitored(walker *w, json_t *array, const char *path, anm_zone *z)
{
    static const char *const keys[] = {
        "id", "branch", "export_direction", "normal_mw", "post_fault_mw", "seasonal", NULL};
    int rc = ANM_OK;
    size_t n = json_array_size(array);
    if (n == 0)
        return fail(w, path, "must list at least one monitored branch");
    z->monitored = calloc(n, sizeof *z->monitored);
    if (z->monitored == NULL)
        return ANM_ENOMEM;
    z->n_monitored = n;
    for (size_t i = 0; i < n; i++) {
        json_t *entry = json_array_get(array, i);
        anm_monitored *m = &z->monitored[i];
        char p[PATH_MAX_LENGTH], q[PATH_MAX_LENGTH];
        child_path(p, path, NULL, i);
        int direction = 0;
        if ((rc = need_object(w, entry, p)) != ANM_OK ||
            (rc = check_keys(w, entry, p, keys)) != ANM_OK ||
            (rc = get_id(w, entry, p, "id", m->id)) != ANM_OK ||
            (rc = get_int(w, entry, p, "branch", true, &m->branch)) != ANM_OK)
            return rc;
        child_path(q, p, "branch", 0);
        if ((rc = check_branch_number(w, q, m->branch, true)) != ANM_OK)
            return rc;
        if ((rc = get_enum(w, entry, p, "export_direction", direction_names,
                           "\"from_to\" or \"to_from\"", &direction)) != ANM_OK ||
            (rc = get_number(w, entry, p, "normal_mw", true, 0, &m->normal_mw)) != ANM_OK ||
            (rc = get_number(w, entry, p, "post_fault_mw", true, 0, &m->post_fault_mw)) != ANM_OK)
            return rc;
        m->direction = direction == 0 ? 1 : -1;
        if (!(m->normal_mw > 0)) {
            child_path(q, p, "normal_mw", 0);
            return fail(w, q, "must be > 0");
        }
        if (!(m->post_fault_mw >= m->normal_mw)) {
            child_path(q, p, "post_fault_mw", 0);
            return fail(w, q, "must be >= normal_mw (%g)", m->normal_mw);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(z->monitored[j].id, m->id) == 0) {
                child_path(q, p, "id", 0);
                return fail(w, q, "duplicate id \"%s\" (also %s[%zu])", m->id, path, j);
            }
            if (z->monitored[j].branch == m->branch) {
                child_path(q, p, "branch", 0);
                return fail(w, q, "branch %d is already monitored by %s[%zu]", m->branch, path, j);
            }
        }
        json_t *seasonal = NULL;
        if ((rc = get_array(w, entry, p, "seasonal", false, &seasonal)) != ANM_OK)
            return rc;
        if (seasonal != NULL) {
            child_path(q, p, "seasonal", 0);
            if ((rc = parse_seasonal(w, seasonal, q, m)) != ANM_OK)
                return rc;
        }
    }
    return ANM_OK;
}

static int parse_contingencies(walker *w, json_t *zone, const char *path, anm_zone *z)
{
    const anm_case *c = w->network;
    json_t *value = json_object_get(zone, "contingencies");
    char p[PATH_MAX_LENGTH];
    child_path(p, path, "contingencies", 0);
    if (value == NULL)
        return ANM_OK; /* none: the zone is only checked intact */
    if (json_is_string(value)) {
        if (strcmp(json_string_value(value), "all_non_islanding") != 0)
            return fail(w, p, "must be \"all_non_islanding\" or a list of branch numbers");
        z->all_contingencies = true;
        size_t count = 0;
        for (size_t b = 0; b < c->n_branch; b++)
            count += c->branch[b].status > 0 && !w->bridges[b];
        if (count == 0)
            return ANM_OK;
        z->contingencies = calloc(count, sizeof *z->contingencies);
        if (z->contingencies == NULL)
            return ANM_ENOMEM;
        for (size_t b = 0; b < c->n_branch; b++)
            if (c->branch[b].status > 0 && !w->bridges[b])
                z->contingencies[z->n_contingencies++] = (int)b + 1;
        return ANM_OK;
    }
    if (!json_is_array(value))
        return fail(w, p, "must be \"all_non_islanding\" or a list of branch numbers");
    size_t n = json_array_size(value);
    if (n == 0)
        return ANM_OK;
    z->contingencies = calloc(n, sizeof *z->contingencies);
    if (z->contingencies == NULL)
        return ANM_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *entry = json_array_get(value, i);
        char q[PATH_MAX_LENGTH];
        child_path(q, p, NULL, i);
        if (!json_is_integer(entry))
            return fail(w, q, "must be a branch number");
        json_int_t branch = json_integer_value(entry);
        if (branch < 1 || (size_t)branch > c->n_branch)
            return fail(w, q, "branch %lld out of range (the case has branches 1 to %zu)",
                        (long long)branch, c->n_branch);
        int rc = check_branch_number(w, q, (int)branch, false);
        if (rc != ANM_OK)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (z->contingencies[j] == (int)branch)
                return fail(w, q, "branch %d is listed twice (also %s[%zu])", (int)branch, p, j);
        z->contingencies[z->n_contingencies++] = (int)branch;
    }
    return ANM_OK;
}

static int parse_date(const char *text, int *year, int *month, int *day)
{
    if (strlen(text) != 10 || text[4] != '-' || text[7] != '-' || !parse_digits(text, 4, year) ||
        !parse_digits(text + 5, 2, month) || !parse_digits(text + 8, 2, day))
        return -1;
    bool leap = (*year % 4 == 0 && *year % 100 != 0) || *year % 400 == 0;
    if (!valid_month_day(*month, *day) || (*month == 2 && *day == 29 && !leap) || *year < 1900)
        return -1;
    return 0;
}

static int parse_ders(walker *w, json_t *array, const char *path, anm_zone *z)
{
    static const char *const keys[] = {
        "id",        "bus", "technology", "capacity_mw", "connection_date", "lifo_position",
        "under_anm", NULL};
    int rc = ANM_OK;
    size_t n = json_array_size(array);
    if (n == 0)
        return ANM_OK;
    z->ders = calloc(n, sizeof *z->ders);
    if (z->ders == NULL)
        return ANM_ENOMEM;
    z->n_ders = n;
    for (size_t i = 0; i < n; i++) {
        json_t *entry = json_array_get(array, i);
        anm_der *d = &z->ders[i];
        char p[PATH_MAX_LENGTH], q[PATH_MAX_LENGTH];
        child_path(p, path, NULL, i);
        int technology = 0;
        if ((rc = need_object(w, entry, p)) != ANM_OK ||
            (rc = check_keys(w, entry, p, keys)) != ANM_OK ||
            (rc = get_id(w, entry, p, "id", d->id)) != ANM_OK ||
            (rc = get_int(w, entry, p, "bus", true, &d->bus)) != ANM_OK)
            return rc;
        if (anm_case_bus_index(w->network, d->bus) < 0) {
            child_path(q, p, "bus", 0);
            return fail(w, q, "unknown bus %d", d->bus);
        }
        if ((rc = get_enum(w, entry, p, "technology", technology_names,
                           "\"wind\", \"solar\", \"battery\", \"demand\" or \"other\"",
                           &technology)) != ANM_OK ||
            (rc = get_number(w, entry, p, "capacity_mw", true, 0, &d->capacity_mw)) != ANM_OK)
            return rc;
        d->technology = (anm_technology)technology;
        if (!(d->capacity_mw >= 0)) {
            child_path(q, p, "capacity_mw", 0);
            return fail(w, q, "must be >= 0");
        }
        json_t *date = member(w, entry, p, "connection_date", true, &rc);
        if (date == NULL)
            return rc;
        child_path(q, p, "connection_date", 0);
        if (!json_is_string(date) || parse_date(json_string_value(date), &d->connection_year,
                                                &d->connection_month, &d->connection_day) != 0)
            return fail(w, q, "must be a date \"YYYY-MM-DD\"");
        if ((rc = get_int(w, entry, p, "lifo_position", true, &d->lifo_position)) != ANM_OK ||
            (rc = get_bool(w, entry, p, "under_anm", true, &d->under_anm)) != ANM_OK)
            return rc;
        if (d->lifo_position < 1) {
            child_path(q, p, "lifo_position", 0);
            return fail(w, q, "must be >= 1");
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(z->ders[j].id, d->id) == 0) {
                child_path(q, p, "id", 0);
                return fail(w, q, "duplicate id \"%s\" (also %s[%zu])", d->id, path, j);
            }
            if (z->ders[j].lifo_position == d->lifo_position) {
                child_path(q, p, "lifo_position", 0);
                return fail(w, q, "position %d is already used by %s[%zu]", d->lifo_position, path,
                            j);
            }
        }
    }
    return ANM_OK;
}

/* Checks "branch:N", "bus:ID" or a DER id against the kind of the signal. */
static int check_element(walker *w, const char *path, const anm_zone *z, anm_signal_kind kind,
                         const char *element)
{
    bool wants_branch = kind == ANM_SIGNAL_BRANCH_MW || kind == ANM_SIGNAL_BRANCH_MVA ||
                        kind == ANM_SIGNAL_BRANCH_A || kind == ANM_SIGNAL_TRANSFORMER_TEMP_C ||
                        kind == ANM_SIGNAL_BREAKER_STATE;
    const char *prefix = wants_branch ? "branch:" : kind == ANM_SIGNAL_BUS_KV ? "bus:" : NULL;
    if (prefix == NULL) {
        if (anm_zone_der_index(z, element) < 0)
            return fail(w, path, "\"%s\" is not a DER of this zone", element);
        return ANM_OK;
    }
    size_t lp = strlen(prefix);
    char *end = NULL;
    long number = 0;
    bool ok = strncmp(element, prefix, lp) == 0 && isdigit((unsigned char)element[lp]);
    if (ok) {
        number = strtol(element + lp, &end, 10);
        ok = *end == '\0' && number <= 2147483647L;
    }
    if (!ok)
        return fail(w, path, "must be \"%sN\" for this kind, not \"%s\"", prefix, element);
    if (wants_branch) {
        if (number < 1 || (size_t)number > w->network->n_branch)
            return fail(w, path, "branch %ld out of range (the case has branches 1 to %zu)", number,
                        w->network->n_branch);
    } else if (anm_case_bus_index(w->network, (int)number) < 0) {
        return fail(w, path, "unknown bus %ld", number);
    }
    return ANM_OK;
}

static int parse_signals(walker *w, json_t *array, const char *path, anm_zone *z)
{
    static const char *const keys[] = {"id", "kind", "unit", "element", "scale", "offset", NULL};
    int rc = ANM_OK;
    size_t n = json_array_size(array);
    if (n == 0)
        return ANM_OK;
    z->signals = calloc(n, sizeof *z->signals);
    if (z->signals == NULL)
        return ANM_ENOMEM;
    z->n_signals = n;
    for (size_t i = 0; i < n; i++) {
        json_t *entry = json_array_get(array, i);
        anm_signal *s = &z->signals[i];
        char p[PATH_MAX_LENGTH], q[PATH_MAX_LENGTH];
        child_path(p, path, NULL, i);
        int kind = 0;
        if ((rc = need_object(w, entry, p)) != ANM_OK ||
            (rc = check_keys(w, entry, p, keys)) != ANM_OK ||
            (rc = get_id(w, entry, p, "id", s->id)) != ANM_OK ||
            (rc = get_enum(w, entry, p, "kind", signal_kind_names,
                           "\"branch_mw\", \"branch_mva\", \"branch_a\", \"bus_kv\", \"der_mw\", "
                           "\"transformer_temp_c\" or \"breaker_state\"",
                           &kind)) != ANM_OK ||
            (rc = get_string(w, entry, p, "unit", true, s->unit, sizeof s->unit)) != ANM_OK ||
            (rc = get_string(w, entry, p, "element", true, s->element, sizeof s->element)) !=
                ANM_OK ||
            (rc = get_number(w, entry, p, "scale", false, 1.0, &s->scale)) != ANM_OK ||
            (rc = get_number(w, entry, p, "offset", false, 0.0, &s->offset)) != ANM_OK)
            return rc;
        s->kind = (anm_signal_kind)kind;
        if (strcmp(s->unit, signal_units[kind]) != 0) {
            child_path(q, p, "unit", 0);
            return fail(w, q, "must be \"%s\" for kind %s", signal_units[kind],
                        signal_kind_names[kind]);
        }
        child_path(q, p, "element", 0);
        if ((rc = check_element(w, q, z, s->kind, s->element)) != ANM_OK)
            return rc;
        if (s->scale == 0) {
            child_path(q, p, "scale", 0);
            return fail(w, q, "must not be 0");
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(z->signals[j].id, s->id) == 0) {
                child_path(q, p, "id", 0);
                return fail(w, q, "duplicate id \"%s\" (also %s[%zu])", s->id, path, j);
            }
        }
    }
    return ANM_OK;
}

static int parse_zone(walker *w, json_t *value, const char *path, anm_zone *z)
{
    static const char *const keys[] = {
        "id", "name", "access", "mode", "monitored", "contingencies", "ders", "signals", NULL};
    int rc = ANM_OK;
    int access = 0, mode = 0;
    json_t *array = NULL;
    char p[PATH_MAX_LENGTH];
    if ((rc = need_object(w, value, path)) != ANM_OK ||
        (rc = check_keys(w, value, path, keys)) != ANM_OK ||
        (rc = get_id(w, value, path, "id", z->id)) != ANM_OK)
        return rc;
    memcpy(z->name, z->id, sizeof z->id);
    if ((rc = get_string(w, value, path, "name", false, z->name, sizeof z->name)) != ANM_OK ||
        (rc = get_enum(w, value, path, "access", access_names,
                       "\"lifo\", \"pro_rata\" or \"min_mw\"", &access)) != ANM_OK ||
        (rc = get_enum(w, value, path, "mode", mode_names, "\"corrective\" or \"preventive\"",
                       &mode)) != ANM_OK)
        return rc;
    z->access = (anm_access)access;
    z->mode = (anm_curtailment_mode)mode;
    if ((rc = get_array(w, value, path, "monitored", true, &array)) != ANM_OK)
        return rc;
    child_path(p, path, "monitored", 0);
    if ((rc = parse_monitored(w, array, p, z)) != ANM_OK ||
        (rc = parse_contingencies(w, value, path, z)) != ANM_OK ||
        (rc = get_array(w, value, path, "ders", false, &array)) != ANM_OK)
        return rc;
    child_path(p, path, "ders", 0);
    if (array != NULL && (rc = parse_ders(w, array, p, z)) != ANM_OK)
        return rc;
    if ((rc = get_array(w, value, path, "signals", false, &array)) != ANM_OK)
        return rc;
    child_path(p, path, "signals", 0);
    if (array != NULL && (rc = parse_signals(w, array, p, z)) != ANM_OK)
        return rc;
    return ANM_OK;
}

static void zone_free(anm_zone *z)
{
    for (size_t i = 0; i < z->n_monitored; i++)
        free(z->monitored[i].seasonal);
    free(z->monitored);
    free(z->contingencies);
    free(z->ders);
    free(z->signals);
}

/* ------------------------------------------------------------ public API */

char *anm_path_resolve_against(const char *base_file, const char *relative)
{
    if (base_file == NULL || relative == NULL)
        return NULL;
    const char *slash = strrchr(base_file, '/');
    size_t dir = relative[0] == '/' || slash == NULL ? 0 : (size_t)(slash - base_file) + 1;
    size_t n = strlen(relative);
    char *out = malloc(dir + n + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, base_file, dir);
    memcpy(out + dir, relative, n + 1);
    return out;
}

static int load_json(const char *text, size_t length, const char *name, json_t **out,
                     anm_error_detail *err)
{
    json_error_t jerr;
    *out = json_loadb(text, length, JSON_REJECT_DUPLICATES, &jerr);
    if (*out == NULL) {
        anm_error_detail_set(err, name, jerr.line, jerr.column, NULL, "%s", jerr.text);
        return ANM_EPARSE;
    }
    return ANM_OK;
}

static int read_whole_file(const char *path, char **text, size_t *length, anm_error_detail *err)
{
    int rc = ANM_OK;
    size_t size = 0, cap = 0;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        anm_error_detail_set(err, path, 0, 0, NULL, "could not open: %s", strerror(errno));
        return ANM_EIO;
    }
    for (;;) {
        if (size == cap) {
            cap = cap ? cap * 2 : 16384;
            char *grown = realloc(buf, cap);
            if (grown == NULL) {
                rc = ANM_ENOMEM;
                goto close_file;
            }
            buf = grown;
        }
        size_t n = fread(buf + size, 1, cap - size, f);
        size += n;
        if (n == 0) {
            if (ferror(f)) {
                anm_error_detail_set(err, path, 0, 0, NULL, "could not read: %s", strerror(errno));
                rc = ANM_EIO;
            }
            break;
        }
    }
close_file:
    fclose(f);
    if (rc != ANM_OK) {
        free(buf);
        return rc;
    }
    *text = buf;
    *length = size;
    return ANM_OK;
}

int anm_zone_set_parse(const char *text, size_t length, const char *name, const anm_case *network,
                       anm_zone_set **out, anm_error_detail *err)
{
    static const char *const keys[] = {"version", "case", "zones", NULL};
    int rc = ANM_OK;
    json_t *root = NULL;
    anm_zone_set *set = NULL;
    walker w = {.file = name != NULL ? name : "", .err = err, .network = network};
    if (out == NULL || network == NULL || (text == NULL && length > 0))
        return ANM_EINVAL;
    *out = NULL;
    anm_error_detail_clear(err);
    if ((rc = load_json(text, length, w.file, &root, err)) != ANM_OK)
        return rc;
    set = calloc(1, sizeof *set);
    w.bridges = calloc(network->n_branch + 1, 1);
    if (set == NULL || w.bridges == NULL) {
        rc = ANM_ENOMEM;
        goto fail;
    }
    set->network = network;
    if ((rc = anm_case_find_bridges(network, w.bridges)) != ANM_OK)
        goto fail;
    if ((rc = need_object(&w, root, "")) != ANM_OK ||
        (rc = check_keys(&w, root, "", keys)) != ANM_OK)
        goto fail;
    json_t *version = json_object_get(root, "version");
    if (version != NULL && !(json_is_integer(version) && json_integer_value(version) == 1)) {
        rc = fail(&w, "version", "must be 1 (the only zone file version)");
        goto fail;
    }
    char case_path[1024] = "";
    if ((rc = get_string(&w, root, "", "case", false, case_path, sizeof case_path)) != ANM_OK)
        goto fail;
    json_t *zones = NULL;
    if ((rc = get_array(&w, root, "", "zones", true, &zones)) != ANM_OK)
        goto fail;
    size_t n = json_array_size(zones);
    if (n == 0) {
        rc = fail(&w, "zones", "must list at least one zone");
        goto fail;
    }
    set->zones = calloc(n, sizeof *set->zones);
    if (set->zones == NULL) {
        rc = ANM_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        char p[PATH_MAX_LENGTH];
        child_path(p, "zones", NULL, i);
        set->n_zones = i + 1;
        if ((rc = parse_zone(&w, json_array_get(zones, i), p, &set->zones[i])) != ANM_OK)
            goto fail;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(set->zones[j].id, set->zones[i].id) == 0) {
                char q[PATH_MAX_LENGTH];
                child_path(q, p, "id", 0);
                rc = fail(&w, q, "duplicate zone id \"%s\" (also zones[%zu])", set->zones[i].id, j);
                goto fail;
            }
        }
    }
    set->path = malloc(strlen(w.file) + 1);
    if (set->path == NULL) {
        rc = ANM_ENOMEM;
        goto fail;
    }
    memcpy(set->path, w.file, strlen(w.file) + 1);
    if (case_path[0] != '\0') {
        set->case_path = anm_path_resolve_against(w.file, case_path);
        if (set->case_path == NULL) {
            rc = ANM_ENOMEM;
            goto fail;
        }
    }
    *out = set;
    set = NULL;
fail:
    free(w.bridges);
    json_decref(root);
    anm_zone_set_destroy(&set);
    return rc;
}

int anm_zone_set_load(const char *path, const anm_case *network, anm_zone_set **out,
                      anm_error_detail *err)
{
    char *text = NULL;
    size_t length = 0;
    if (path == NULL || out == NULL || network == NULL)
        return ANM_EINVAL;
    *out = NULL;
    anm_error_detail_clear(err);
    int rc = read_whole_file(path, &text, &length, err);
    if (rc != ANM_OK)
        return rc;
    rc = anm_zone_set_parse(text, length, path, network, out, err);
    free(text);
    return rc;
}

int anm_zone_file_case_path(const char *zone_path, char **case_path, anm_error_detail *err)
{
    char *text = NULL;
    size_t length = 0;
    json_t *root = NULL;
    if (zone_path == NULL || case_path == NULL)
        return ANM_EINVAL;
    *case_path = NULL;
    anm_error_detail_clear(err);
    int rc = read_whole_file(zone_path, &text, &length, err);
    if (rc != ANM_OK)
        return rc;
    if ((rc = load_json(text, length, zone_path, &root, err)) != ANM_OK)
        goto free_text;
    json_t *value = json_is_object(root) ? json_object_get(root, "case") : NULL;
    if (value == NULL) {
        anm_error_detail_set(err, zone_path, 0, 0, "case", "missing");
        rc = ANM_ENOTFOUND;
        goto free_root;
    }
    if (!json_is_string(value)) {
        anm_error_detail_set(err, zone_path, 0, 0, "case", "must be a string");
        rc = ANM_ECONFIG;
        goto free_root;
    }
    *case_path = anm_path_resolve_against(zone_path, json_string_value(value));
    if (*case_path == NULL)
        rc = ANM_ENOMEM;
free_root:
    json_decref(root);
free_text:
    free(text);
    return rc;
}

void anm_zone_set_destroy(anm_zone_set **set)
{
    if (set == NULL || *set == NULL)
        return;
    for (size_t i = 0; i < (*set)->n_zones; i++)
        zone_free(&(*set)->zones[i]);
    free((*set)->zones);
    free((*set)->path);
    free((*set)->case_path);
    free(*set);
    *set = NULL;
}

const anm_zone *anm_zone_set_find(const anm_zone_set *set, const char *zone_id)
{
    if (set == NULL || zone_id == NULL)
        return NULL;
    for (size_t i = 0; i < set->n_zones; i++)
        if (strcmp(set->zones[i].id, zone_id) == 0)
            return &set->zones[i];
    return NULL;
}

int anm_zone_der_index(const anm_zone *zone, const char *der_id)
{
    if (zone == NULL || der_id == NULL)
        return -1;
    for (size_t i = 0; i < zone->n_ders; i++)
        if (strcmp(zone->ders[i].id, der_id) == 0)
            return (int)i;
    return -1;
}

const char *anm_access_name(anm_access access)
{
    return (unsigned)access < 3 ? access_names[access] : "unknown";
}

const char *anm_mode_name(anm_curtailment_mode mode)
{
    return (unsigned)mode < 2 ? mode_names[mode] : "unknown";
}

const char *anm_technology_name(anm_technology technology)
{
    return (unsigned)technology < 5 ? technology_names[technology] : "unknown";
}
