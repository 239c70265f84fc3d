/*
 * wa_messages.c: every Wider Access message kind's schema, in one place,
 * and the strict validator (see wa_messages.h and docs/wider-access.md).
 */
#include "gateway/wa_messages.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "engine/clock.h"

/* Bounds shared by the tables. */
#define ID_LEN 1, 64
#define TEXT_LEN 0, 1024
#define MW_LIMIT 10000.0 /* |MW| of one BM unit; GB's largest units are ~1,800 MW */
#define MAX_POINTS 1000.0
#define NO_BOUNDS 0, 0
#define END {NULL, GATEWAY_WA_STRING, 0, 0, 0, NULL, NULL}

static const char *const health_status[] = {"ok", "degraded", "down", NULL};
static const char *const quality_values[] = {"good", "flagged", NULL};
static const char *const data_types[] = {"PN", "QPN", "MEL", "MIL", NULL};
static const char *const ack_status[] = {"accepted", "rejected", NULL};

static const gateway_wa_field common_fields[] = {
    {"v", GATEWAY_WA_INTEGER, 1, 1, 1000, NULL, NULL},
    {"kind", GATEWAY_WA_STRING, 1, ID_LEN, NULL, NULL},
    {"message_id", GATEWAY_WA_STRING, 1, ID_LEN, NULL, NULL},
    {"sender", GATEWAY_WA_STRING, 1, ID_LEN, NULL, NULL},
    {"created_at", GATEWAY_WA_TIME, 1, NO_BOUNDS, NULL, NULL},
    {"test", GATEWAY_WA_BOOLEAN, 0, NO_BOUNDS, NULL, NULL},
    END,
};

static const gateway_wa_field component_fields[] = {
    {"name", GATEWAY_WA_STRING, 1, ID_LEN, NULL, NULL},
    {"status", GATEWAY_WA_ENUM, 1, NO_BOUNDS, health_status, NULL},
    END,
};

static const gateway_wa_field health_fields[] = {
    {"status", GATEWAY_WA_ENUM, 1, NO_BOUNDS, health_status, NULL},
    {"detail", GATEWAY_WA_STRING, 0, TEXT_LEN, NULL, NULL},
    {"components", GATEWAY_WA_ARRAY, 0, 0, 64, NULL, component_fields},
    END,
};

static const gateway_wa_field normalisation_fields[] = {
    {"bmu", GATEWAY_WA_STRING, 1, ID_LEN, NULL, NULL},
    {"effective_at", GATEWAY_WA_TIME, 1, NO_BOUNDS, NULL, NULL},
    {"instruction_id", GATEWAY_WA_STRING, 0, ID_LEN, NULL, NULL},
    {"reason", GATEWAY_WA_STRING, 0, TEXT_LEN, NULL, NULL},
    END,
};

static const gateway_wa_field point_fields[] = {
    {"time", GATEWAY_WA_TIME, 1, NO_BOUNDS, NULL, NULL},
    {"level_mw", GATEWAY_WA_NUMBER, 1, -MW_LIMIT, MW_LIMIT, NULL, NULL},
    END,
};

static const gateway_wa_field instruction_fields[] = {
    {"instruction_id", GATEWAY_WA_STRING, 1, ID_LEN, NULL, NULL},
    {"bmu", GATEWAY_WA_STRING, 1, ID_LEN, NULL, NULL},
    {"issued_at", GATEWAY_WA_TIME, 1, NO_BOUNDS, NULL, NULL},
    {"points", GATEWAY_WA_ARRAY, 1, 1, MAX_POINTS, NULL, point_fields},
    {"reason_code", GATEWAY_WA_STRING, 0, ID_LEN, NULL, NULL},
    END,
};

static const gateway_wa_field redeclaration_fields[] = {
    {"bmu", GATEWAY_WA_STRING, 1, ID_LEN, NULL, NULL},
    {"effective_from", GATEWAY_WA_TIME, 1, NO_BOUNDS, NULL, NULL},
    {"effective_to", GATEWAY_WA_TIME, 1, NO_BOUNDS, NULL, NULL},
    {"availability_mw", GATEWAY_WA_NUMBER, 1, 0, MW_LIMIT, NULL, NULL},
    {"pcf", GATEWAY_WA_NUMBER, 0, 0, 1, NULL, NULL},
    {"confidence", GATEWAY_WA_NUMBER, 0, 0, 1, NULL, NULL},
    {"quality", GATEWAY_WA_ENUM, 1, NO_BOUNDS, quality_values, NULL},
    {"reason", GATEWAY_WA_STRING, 0, TEXT_LEN, NULL, NULL},
    END,
};

static const gateway_wa_field submission_fields[] = {
    {"bmu", GATEWAY_WA_STRING, 1, ID_LEN, NULL, NULL},
    {"data_type", GATEWAY_WA_ENUM, 1, NO_BOUNDS, data_types, NULL},
    {"points", GATEWAY_WA_ARRAY, 1, 1, MAX_POINTS, NULL, point_fields},
    END,
};

static const gateway_wa_field ack_fields[] = {
    {"ref", GATEWAY_WA_STRING, 0, ID_LEN, NULL, NULL},
    {"status", GATEWAY_WA_ENUM, 1, NO_BOUNDS, ack_status, NULL},
    {"reason", GATEWAY_WA_STRING, 0, ID_LEN, NULL, NULL},
    {"text", GATEWAY_WA_STRING, 0, TEXT_LEN, NULL, NULL},
    END,
};

/* Indexed by gateway_wa_kind. */
static const gateway_wa_schema schemas[GATEWAY_WA_KIND_COUNT] = {
    {GATEWAY_WA_HEALTH, "health", 1, GATEWAY_WA_TO_NESO, 64u << 10, health_fields},
    {GATEWAY_WA_NORMALISATION, "normalisation", 1, GATEWAY_WA_FROM_NESO, 16u << 10,
     normalisation_fields},
    {GATEWAY_WA_INSTRUCTION, "instruction", 1, GATEWAY_WA_FROM_NESO, 256u << 10,
     instruction_fields},
    {GATEWAY_WA_REDECLARATION, "redeclaration", 1, GATEWAY_WA_TO_NESO, 16u << 10,
     redeclaration_fields},
    {GATEWAY_WA_SUBMISSION, "submission", 1, GATEWAY_WA_TO_NESO, 256u << 10, submission_fields},
    {GATEWAY_WA_ACK, "ack", 1, GATEWAY_WA_BOTH, 16u << 10, ack_fields},
};

const gateway_wa_schema *gateway_wa_schema_get(gateway_wa_kind kind)
{
    if ((unsigned)kind >= GATEWAY_WA_KIND_COUNT)
        return NULL;
    return &schemas[kind];
}

const gateway_wa_field *gateway_wa_common_fields(void)
{
    return common_fields;
}

const char *gateway_wa_kind_name(gateway_wa_kind kind)
{
    const gateway_wa_schema *schema = gateway_wa_schema_get(kind);
    return schema != NULL ? schema->name : "?";
}

int gateway_wa_kind_parse(const char *name, gateway_wa_kind *out)
{
    for (int i = 0; i < GATEWAY_WA_KIND_COUNT; i++) {
        if (name != NULL && strcmp(name, schemas[i].name) == 0) {
            *out = (gateway_wa_kind)i;
            return ANM_OK;
        }
    }
    return ANM_ENOTFOUND;
}

const char *gateway_wa_reason_code(gateway_wa_reason reason)
{
    switch (reason) {
    case GATEWAY_WA_OK: return "ok";
    case GATEWAY_WA_BAD_JSON: return "bad_json";
    case GATEWAY_WA_UNKNOWN_KIND: return "unknown_kind";
    case GATEWAY_WA_WRONG_KIND: return "wrong_kind";
    case GATEWAY_WA_WRONG_VERSION: return "wrong_version";
    case GATEWAY_WA_MISSING_FIELD: return "missing_field";
    case GATEWAY_WA_WRONG_TYPE: return "wrong_type";
    case GATEWAY_WA_OUT_OF_RANGE: return "out_of_range";
    case GATEWAY_WA_BAD_ENUM: return "bad_enum";
    case GATEWAY_WA_UNKNOWN_FIELD: return "unknown_field";
    }
    return "unknown";
}

/* ---- validation ------------------------------------------------------------- */

static int reject(gateway_wa_reject *why, gateway_wa_reason reason, const char *path,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int reject(gateway_wa_reject *why, gateway_wa_reason reason, const char *path,
                  const char *fmt, ...)
{
    if (why != NULL) {
        va_list ap;
        va_start(ap, fmt);
        why->reason = reason;
        snprintf(why->path, sizeof why->path, "%s", path);
        if (vsnprintf(why->text, sizeof why->text, fmt, ap) < 0)
            why->text[0] = '\0';
        va_end(ap);
    }
    return ANM_EPROTO;
}

static const char *json_type_name(const json_t *value)
{
    if (value == NULL)
        return "missing";
    switch (json_typeof(value)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

static const char *type_name(gateway_wa_field_type type)
{
    switch (type) {
    case GATEWAY_WA_STRING: return "string";
    case GATEWAY_WA_INTEGER: return "integer";
    case GATEWAY_WA_NUMBER: return "number";
    case GATEWAY_WA_BOOLEAN: return "boolean";
    case GATEWAY_WA_TIME: return "ISO 8601 UTC time string";
    case GATEWAY_WA_ENUM: return "string";
    case GATEWAY_WA_ARRAY: return "array";
    }
    return "unknown";
}

/* Joins prefix and name into a key path ("points[2]" + "level_mw"). */
static void join_path(char *buf, size_t size, const char *prefix, const char *name)
{
    if (prefix[0] == '\0')
        snprintf(buf, size, "%s", name);
    else
        snprintf(buf, size, "%.100s.%.26s", prefix, name);
}

static int check_object(const gateway_wa_field *const *tables, size_t n_tables,
                        const json_t *object, const char *prefix, const char *what,
                        gateway_wa_reject *why);

static int check_value(const gateway_wa_field *f, const json_t *value, const char *path,
                       gateway_wa_reject *why)
{
    int type_ok = 0;
    switch (f->type) {
    case GATEWAY_WA_STRING:
    case GATEWAY_WA_TIME:
    case GATEWAY_WA_ENUM: type_ok = json_is_string(value); break;
    case GATEWAY_WA_INTEGER: type_ok = json_is_integer(value); break;
    case GATEWAY_WA_NUMBER: type_ok = json_is_number(value); break;
    case GATEWAY_WA_BOOLEAN: type_ok = json_is_boolean(value); break;
    case GATEWAY_WA_ARRAY: type_ok = json_is_array(value); break;
    }
    if (!type_ok)
        return reject(why, GATEWAY_WA_WRONG_TYPE, path, "field \"%s\": expected %s, got %s", path,
                      type_name(f->type), json_type_name(value));
    switch (f->type) {
    case GATEWAY_WA_STRING: {
        size_t n = json_string_length(value);
        if ((double)n < f->min || (double)n > f->max)
            return reject(why, GATEWAY_WA_OUT_OF_RANGE, path,
                          "field \"%s\": length %zu is outside [%.0f, %.0f]", path, n, f->min,
                          f->max);
        if (strlen(json_string_value(value)) != n)
            return reject(why, GATEWAY_WA_OUT_OF_RANGE, path, "field \"%s\": contains a NUL", path);
        return ANM_OK;
    }
    case GATEWAY_WA_INTEGER: {
        json_int_t v = json_integer_value(value);
        if ((double)v < f->min || (double)v > f->max)
            return reject(why, GATEWAY_WA_OUT_OF_RANGE, path,
                          "field \"%s\": %lld is outside [%.0f, %.0f]", path, (long long)v, f->min,
                          f->max);
        return ANM_OK;
    }
    case GATEWAY_WA_NUMBER: {
        double v = json_number_value(value);
        if (!isfinite(v) || v < f->min || v > f->max)
            return reject(why, GATEWAY_WA_OUT_OF_RANGE, path,
                          "field \"%s\": %g is outside [%g, %g]", path, v, f->min, f->max);
        return ANM_OK;
    }
    case GATEWAY_WA_BOOLEAN: return ANM_OK;
    case GATEWAY_WA_TIME: {
        int64_t ms;
        if (anm_time_parse_iso8601(json_string_value(value), &ms) != ANM_OK)
            return reject(why, GATEWAY_WA_WRONG_TYPE, path,
                          "field \"%s\": expected %s, got \"%.40s\"", path, type_name(f->type),
                          json_string_value(value));
        return ANM_OK;
    }
    case GATEWAY_WA_ENUM: {
        const char *s = json_string_value(value);
        for (const char *const *e = f->enum_values; *e != NULL; e++)
            if (strcmp(*e, s) == 0)
                return ANM_OK;
        return reject(why, GATEWAY_WA_BAD_ENUM, path, "field \"%s\": \"%.40s\" is not allowed",
                      path, s);
    }
    case GATEWAY_WA_ARRAY: {
        size_t n = json_array_size(value);
        if ((double)n < f->min || (double)n > f->max)
            return reject(why, GATEWAY_WA_OUT_OF_RANGE, path,
                          "field \"%s\": %zu items, allowed [%.0f, %.0f]", path, n, f->min, f->max);
        for (size_t i = 0; i < n; i++) {
            char item_path[128];
            snprintf(item_path, sizeof item_path, "%.100s[%zu]", path, i);
            const json_t *item = json_array_get(value, i);
            if (!json_is_object(item))
                return reject(why, GATEWAY_WA_WRONG_TYPE, item_path,
                              "field \"%s\": expected object, got %s", item_path,
                              json_type_name(item));
            const gateway_wa_field *tables[1] = {f->items};
            int rc = check_object(tables, 1, item, item_path, "item", why);
            if (rc != ANM_OK)
                return rc;
        }
        return ANM_OK;
    }
    }
    return ANM_OK;
}

static int check_object(const gateway_wa_field *const *tables, size_t n_tables,
                        const json_t *object, const char *prefix, const char *what,
                        gateway_wa_reject *why)
{
    char path[128];
    for (size_t t = 0; t < n_tables; t++) {
        for (const gateway_wa_field *f = tables[t]; f->name != NULL; f++) {
            join_path(path, sizeof path, prefix, f->name);
            const json_t *value = json_object_get(object, f->name);
            if (value == NULL) {
                if (f->required)
                    return reject(why, GATEWAY_WA_MISSING_FIELD, path, "field \"%s\" is missing",
                                  path);
                continue;
            }
            int rc = check_value(f, value, path, why);
            if (rc != ANM_OK)
                return rc;
        }
    }
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)(uintptr_t)object, key, value) {
        (void)value;
        int known = 0;
        for (size_t t = 0; t < n_tables && !known; t++)
            for (const gateway_wa_field *f = tables[t]; f->name != NULL && !known; f++)
                known = strcmp(f->name, key) == 0;
        if (!known) {
            join_path(path, sizeof path, prefix, key);
            return reject(why, GATEWAY_WA_UNKNOWN_FIELD, path, "field \"%.64s\" is not part of %s",
                          path, what);
        }
    }
    return ANM_OK;
}

static int64_t time_of(const json_t *object, const char *key)
{
    int64_t ms = 0;
    (void)anm_time_parse_iso8601(json_string_value(json_object_get(object, key)), &ms);
    return ms;
}

/* Checks across fields that a table cannot say. */
static int check_semantics(gateway_wa_kind kind, const json_t *msg, gateway_wa_reject *why)
{
    if (kind == GATEWAY_WA_REDECLARATION &&
        time_of(msg, "effective_to") <= time_of(msg, "effective_from"))
        return reject(why, GATEWAY_WA_OUT_OF_RANGE, "effective_to",
                      "field \"effective_to\": must be after \"effective_from\"");
    if (kind == GATEWAY_WA_INSTRUCTION || kind == GATEWAY_WA_SUBMISSION) {
        const json_t *points = json_object_get(msg, "points");
        for (size_t i = 1; i < json_array_size(points); i++) {
            if (time_of(json_array_get(points, i), "time") <=
                time_of(json_array_get(points, i - 1), "time")) {
                char path[64];
                snprintf(path, sizeof path, "points[%zu].time", i);
                return reject(why, GATEWAY_WA_OUT_OF_RANGE, path,
                              "field \"%s\": times must increase strictly", path);
            }
        }
    }
    return ANM_OK;
}

int gateway_wa_validate(const json_t *msg, gateway_wa_kind *kind_out, gateway_wa_reject *why)
{
    if (!json_is_object(msg))
        return reject(why, GATEWAY_WA_BAD_JSON, "", "message is %s, not an object",
                      msg == NULL ? "missing" : json_type_name(msg));
    const json_t *kind_value = json_object_get(msg, "kind");
    if (kind_value == NULL)
        return reject(why, GATEWAY_WA_MISSING_FIELD, "kind", "field \"kind\" is missing");
    if (!json_is_string(kind_value))
        return reject(why, GATEWAY_WA_WRONG_TYPE, "kind", "field \"kind\": expected string, got %s",
                      json_type_name(kind_value));
    gateway_wa_kind kind;
    if (gateway_wa_kind_parse(json_string_value(kind_value), &kind) != ANM_OK)
        return reject(why, GATEWAY_WA_UNKNOWN_KIND, "kind", "unknown message kind \"%.40s\"",
                      json_string_value(kind_value));
    const gateway_wa_schema *schema = &schemas[kind];
    const json_t *version = json_object_get(msg, "v");
    if (version == NULL)
        return reject(why, GATEWAY_WA_WRONG_VERSION, "v", "field \"v\" is missing");
    if (!json_is_integer(version))
        return reject(why, GATEWAY_WA_WRONG_VERSION, "v", "field \"v\": expected integer, got %s",
                      json_type_name(version));
    if (json_integer_value(version) != schema->version)
        return reject(why, GATEWAY_WA_WRONG_VERSION, "v",
                      "%s version %lld is not supported (expected %d)", schema->name,
                      (long long)json_integer_value(version), schema->version);
    const gateway_wa_field *tables[2] = {common_fields, schema->fields};
    char what[64];
    snprintf(what, sizeof what, "%s v%d", schema->name, schema->version);
    int rc = check_object(tables, 2, msg, "", what, why);
    if (rc == ANM_OK)
        rc = check_semantics(kind, msg, why);
    if (rc != ANM_OK)
        return rc;
    if (kind_out != NULL)
        *kind_out = kind;
    if (why != NULL) {
        why->reason = GATEWAY_WA_OK;
        why->path[0] = '\0';
        why->text[0] = '\0';
    }
    return ANM_OK;
}

int gateway_wa_parse(const void *text, size_t len, json_t **out, gateway_wa_kind *kind_out,
                     gateway_wa_reject *why)
{
    *out = NULL;
    size_t limit = 0;
    for (int i = 0; i < GATEWAY_WA_KIND_COUNT; i++)
        if (schemas[i].max_bytes > limit)
            limit = schemas[i].max_bytes;
    if (len > limit)
        return reject(why, GATEWAY_WA_BAD_JSON, "", "message is %zu bytes, the limit is %zu", len,
                      limit);
    json_error_t error;
    json_t *msg = json_loadb(text, len, JSON_REJECT_DUPLICATES, &error);
    if (msg == NULL)
        return reject(why, GATEWAY_WA_BAD_JSON, "", "not json: %s at column %d", error.text,
                      error.column);
    gateway_wa_kind kind;
    int rc = gateway_wa_validate(msg, &kind, why);
    if (rc == ANM_OK && len > schemas[kind].max_bytes)
        rc = reject(why, GATEWAY_WA_BAD_JSON, "", "%s message is %zu bytes, the limit is %zu",
                    schemas[kind].name, len, schemas[kind].max_bytes);
    if (rc != ANM_OK) {
        json_decref(msg);
        return rc;
    }
    if (kind_out != NULL)
        *kind_out = kind;
    *out = msg;
    return ANM_OK;
}

json_t *gateway_wa_message_new(gateway_wa_kind kind, const char *message_id, const char *sender,
                               int64_t created_at_ms, int test)
{
    const gateway_wa_schema *schema = gateway_wa_schema_get(kind);
    char created[32];
    if (schema == NULL || message_id == NULL || sender == NULL ||
        anm_time_format_utc(created_at_ms, created, sizeof created) < 0)
        return NULL;
    json_t *msg = json_pack("{s:i, s:s, s:s, s:s, s:s}", "v", schema->version, "kind",
                            schema->name, "message_id", message_id, "sender", sender,
                            "created_at", created);
    if (msg != NULL && test && json_object_set_new(msg, "test", json_true()) != 0)
        json_decref(msg), msg = NULL;
    return msg;
}

json_t *gateway_wa_ack_new(const char *message_id, const char *sender, int64_t created_at_ms,
                           const char *ref, int accepted, const char *reason, const char *text)
{
    json_t *ack = gateway_wa_message_new(GATEWAY_WA_ACK, message_id, sender, created_at_ms, 0);
    if (ack == NULL)
        return NULL;
    int failed = json_object_set_new(ack, "status", json_string(accepted ? "accepted" : "rejected"));
    if (ref != NULL)
        failed |= json_object_set_new(ack, "ref", json_string(ref));
    if (reason != NULL)
        failed |= json_object_set_new(ack, "reason", json_string(reason));
    if (text != NULL)
        failed |= json_object_set_new(ack, "text", json_string(text));
    if (failed) {
        json_decref(ack);
        return NULL;
    }
    return ack;
}

/* ---- bus kinds --------------------------------------------------------------- */

static const anm_field_spec bus_received_fields[] = {
    {"received_at", ANM_FIELD_TIME, 1, 0, 0},
    {"kid", ANM_FIELD_STRING, 1, 0, 0},
    {"message", ANM_FIELD_OBJECT, 1, 0, 0},
    {NULL, ANM_FIELD_STRING, 0, 0, 0},
};

static const anm_bus_schema bus_schemas[] = {
    {"wa.instruction", 1, 512u << 10, 0, bus_received_fields},
    {"wa.normalisation", 1, 64u << 10, 0, bus_received_fields},
};

const anm_bus_schema *gateway_wa_bus_schemas(size_t *count)
{
    *count = sizeof bus_schemas / sizeof bus_schemas[0];
    return bus_schemas;
}
