/*
 * config.c: strict, table-driven JSON configuration.
 *
 * The loader is an explicit walk of the JSON against the table (rather than
 * json_unpack with JSON_STRICT) so that every error names the key path, and
 * so that bounds, defaults and secrets live in the one table. Per object it
 * first rejects unknown keys (in file order: the first typo is reported),
 * then fills every entry in table order, then runs the table's check.
 */
#include "engine/config.h"

#include "engine/cli.h"
#include "engine/log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_MASK        "********"
#define SECRET_FILE_SUFFIX "_file"
#define SECRET_FILE_MAX    (1024u * 1024u) /* a secret file larger than this is a mistake */
#define TABLE_DEPTH_MAX    8

/* A key path being built: "routes[2].port". Truncates silently at the detail's size. */
typedef struct key_path {
    char text[sizeof(((anm_error_detail *)0)->path)];
    size_t length;
} key_path;

typedef struct load_ctx {
    const char *file; /* for messages ("" when unnamed) */
    char dir[512];    /* directory of file, for relative secret files ("" for cwd) */
    anm_error_detail *detail;
} load_ctx;

/* ---- key paths ---------------------------------------------------------- */

static size_t path_push_key(key_path *p, const char *key)
{
    size_t saved = p->length;
    size_t room = sizeof p->text - p->length;
    int n = snprintf(p->text + p->length, room, "%s%s", p->length ? "." : "", key);
    if (n > 0)
        p->length += (size_t)n < room ? (size_t)n : room - 1;
    return saved;
}

static size_t path_push_index(key_path *p, size_t index)
{
    size_t saved = p->length;
    size_t room = sizeof p->text - p->length;
    int n = snprintf(p->text + p->length, room, "[%zu]", index);
    if (n > 0)
        p->length += (size_t)n < room ? (size_t)n : room - 1;
    return saved;
}

static void path_pop(key_path *p, size_t saved)
{
    p->length = saved;
    p->text[saved] = '\0';
}

/* ---- errors --------------------------------------------------------------- */

static int fail(const load_ctx *ctx, int code, const key_path *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(const load_ctx *ctx, int code, const key_path *path, const char *fmt, ...)
{
    char message[sizeof(((anm_error_detail *)0)->message)];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (n < 0)
        message[0] = '\0';
    anm_error_detail_set(ctx->detail, ctx->file, 0, 0, path ? path->text : NULL, "%s", message);
    return code;
}

static const char *json_kind(const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "an unknown value";
}

static const char *expected_kind(anm_config_type type)
{
    switch (type) {
    case ANM_CONFIG_BOOL: return "true or false";
    case ANM_CONFIG_INT: return "an integer";
    case ANM_CONFIG_DOUBLE: return "a number";
    case ANM_CONFIG_STRING:
    case ANM_CONFIG_SECRET:
    case ANM_CONFIG_ENUM:
    case ANM_CONFIG_ENDPOINT:
    case ANM_CONFIG_LOG_LEVEL: return "a string";
    case ANM_CONFIG_STRING_LIST: return "an array of strings";
    case ANM_CONFIG_SECTION: return "an object";
    case ANM_CONFIG_SECTION_ARRAY: return "an array of objects";
    }
    return "a value";
}

static int fail_type(const load_ctx *ctx, const key_path *path, anm_config_type type,
                     const json_t *value)
{
    return fail(ctx, ANM_ECONFIG, path, "expected %s, got %s", expected_kind(type),
                json_kind(value));
}

/* ---- field access --------------------------------------------------------- */

static void *field(void *base, const anm_config_entry *e)
{
    return (char *)base + e->offset;
}

static const void *field_const(const void *base, const anm_config_entry *e)
{
    return (const char *)base + e->offset;
}

static size_t field_size(const anm_config_entry *e)
{
    switch (e->type) {
    case ANM_CONFIG_BOOL: return sizeof(bool);
    case ANM_CONFIG_INT: return sizeof(long);
    case ANM_CONFIG_DOUBLE: return sizeof(double);
    case ANM_CONFIG_STRING:
    case ANM_CONFIG_SECRET:
    case ANM_CONFIG_ENDPOINT: return sizeof(char *);
    case ANM_CONFIG_ENUM: return sizeof(int);
    case ANM_CONFIG_LOG_LEVEL: return sizeof(anm_log_level);
    case ANM_CONFIG_STRING_LIST: return sizeof(anm_config_strings);
    case ANM_CONFIG_SECTION: return e->section ? e->section->struct_size : 0;
    case ANM_CONFIG_SECTION_ARRAY: return sizeof(anm_config_array);
    }
    return 0;
}

static char *dup_string(const char *s, size_t length)
{
    char *copy = malloc(length + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, s, length);
    copy[length] = '\0';
    return copy;
}

static void set_string(void *base, const anm_config_entry *e, char *owned)
{
    char **slot = field(base, e);
    free(*slot);
    *slot = owned;
}

/* ---- clear and free ------------------------------------------------------- */

static void clear_table(const anm_config_table *table, void *obj);

static void free_table(const anm_config_table *table, void *obj)
{
    for (const anm_config_entry *e = table->entries; e->name != NULL; e++) {
        switch (e->type) {
        case ANM_CONFIG_STRING:
        case ANM_CONFIG_SECRET:
        case ANM_CONFIG_ENDPOINT: {
            char **slot = field(obj, e);
            if (e->type == ANM_CONFIG_SECRET && *slot != NULL)
                explicit_bzero(*slot, strlen(*slot)); /* no password left in freed memory */
            free(*slot);
            *slot = NULL;
            break;
        }
        case ANM_CONFIG_STRING_LIST: {
            anm_config_strings *list = field(obj, e);
            for (size_t i = 0; i < list->count; i++)
                free(list->items[i]);
            free(list->items);
            list->items = NULL;
            list->count = 0;
            break;
        }
        case ANM_CONFIG_SECTION: free_table(e->section, field(obj, e)); break;
        case ANM_CONFIG_SECTION_ARRAY: {
            anm_config_array *array = field(obj, e);
            for (size_t i = 0; i < array->count; i++)
                free_table(e->section, (char *)array->items + i * e->section->struct_size);
            free(array->items);
            array->items = NULL;
            array->count = 0;
            break;
        }
        default: break;
        }
    }
}

/* Zeroes every field the table describes (not the rest of the struct). */
static void clear_table(const anm_config_table *table, void *obj)
{
    for (const anm_config_entry *e = table->entries; e->name != NULL; e++) {
        if (e->type == ANM_CONFIG_SECTION)
            clear_table(e->section, field(obj, e));
        else
            memset(field(obj, e), 0, field_size(e));
    }
}

void anm_config_free(const anm_config_table *table, void *obj)
{
    if (table == NULL || obj == NULL)
        return;
    free_table(table, obj);
}

/* ---- value checks shared by the loader and the table check ---------------- */

/* Checks an endpoint; on failure writes the reason into why. */
static bool endpoint_valid(const char *s, char *why, size_t size)
{
    for (const char *c = s; *c != '\0'; c++) {
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            snprintf(why, size, "contains whitespace or a control character");
            return false;
        }
    }
    const char *scheme_end = strstr(s, "://");
    if (scheme_end != NULL) {
        bool scheme_ok = scheme_end > s && ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'));
        for (const char *c = s; scheme_ok && c < scheme_end; c++) {
            scheme_ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                        (*c >= '0' && *c <= '9') || *c == '+' || *c == '-' || *c == '.';
        }
        if (!scheme_ok) {
            snprintf(why, size, "invalid scheme");
            return false;
        }
        if (scheme_end[3] == '\0') {
            snprintf(why, size, "nothing after \"://\"");
            return false;
        }
        return true;
    }
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s) {
        snprintf(why, size, "expected \"host:port\" or \"scheme://address\"");
        return false;
    }
    if (s[0] == '[' && colon[-1] != ']') {
        snprintf(why, size, "expected \"[ipv6]:port\"");
        return false;
    }
    if (s[0] != '[' && memchr(s, ':', (size_t)(colon - s)) != NULL) {
        snprintf(why, size, "an IPv6 address needs brackets, as in \"[::1]:port\"");
        return false;
    }
    long port;
    if (anm_parse_long(colon + 1, 1, 65535, &port) != ANM_OK || colon[1] == '+' ||
        colon[1] == '-') {
        snprintf(why, size, "port must be an integer from 1 to 65535");
        return false;
    }
    return true;
}

static bool int_bounded(const anm_config_entry *e)
{
    return e->int_min != 0 || e->int_max != 0;
}

static bool double_bounded(const anm_config_entry *e)
{
    return e->min != 0.0 || e->max != 0.0;
}

/*
 * Checks a string value against the entry's bounds (and endpoint syntax).
 * source ("" or " in ANM_DB_PASSWORD") says where the value came from.
 * Never quotes a secret's value.
 */
static int check_string(const load_ctx *ctx, const anm_config_entry *e, const key_path *path,
                        const char *s, size_t length, const char *source)
{
    if (e->max_length != 0 && length > e->max_length)
        return fail(ctx, ANM_ECONFIG, path, "too long (%zu bytes, at most %zu)%s", length,
                    e->max_length, source);
    if (length < e->min_length) {
        if (length == 0)
            return fail(ctx, ANM_ECONFIG, path, "must not be empty%s", source);
        return fail(ctx, ANM_ECONFIG, path, "too short (%zu bytes, at least %zu)%s", length,
                    e->min_length, source);
    }
    if (e->type == ANM_CONFIG_ENDPOINT) {
        char why[128];
        if (!endpoint_valid(s, why, sizeof why))
            return fail(ctx, ANM_ECONFIG, path, "invalid endpoint \"%s\": %s", s, why);
    }
    return ANM_OK;
}

static int check_int(const load_ctx *ctx, const anm_config_entry *e, const key_path *path,
                     long long value)
{
    long lo = int_bounded(e) ? e->int_min : LONG_MIN;
    long hi = int_bounded(e) ? e->int_max : LONG_MAX;
    if (value < lo)
        return fail(ctx, ANM_ECONFIG, path, "value %lld is below the minimum %ld", value, lo);
    if (value > hi)
        return fail(ctx, ANM_ECONFIG, path, "value %lld is above the maximum %ld", value, hi);
    return ANM_OK;
}

static int check_double(const load_ctx *ctx, const anm_config_entry *e, const key_path *path,
                        double value)
{
    if (!double_bounded(e))
        return ANM_OK;
    if (value < e->min)
        return fail(ctx, ANM_ECONFIG, path, "value %g is below the minimum %g", value, e->min);
    if (value > e->max)
        return fail(ctx, ANM_ECONFIG, path, "value %g is above the maximum %g", value, e->max);
    return ANM_OK;
}

static int enum_index(const anm_config_entry *e, const char *name)
{
    for (int i = 0; e->names[i] != NULL; i++) {
        if (strcmp(e->names[i], name) == 0)
            return i;
    }
    return -1;
}

static void enum_list(const anm_config_entry *e, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; e->names[i] != NULL && used < size; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", e->names[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* ---- the table check ------------------------------------------------------ */

static int check_table(const load_ctx *ctx, const anm_config_table *table, key_path *path,
                       int depth);

static int table_error(const load_ctx *ctx, const key_path *path, const char *what)
{
    return fail(ctx, ANM_EINTERNAL, path, "config table: %s", what);
}

static int check_entry(const load_ctx *ctx, const anm_config_table *table,
                       const anm_config_entry *e, key_path *path, int depth)
{
    char message[sizeof(((anm_error_detail *)0)->message) + 16];
    if (e->name[0] == '\0')
        return table_error(ctx, path, "empty key name");
    if (e->type < ANM_CONFIG_BOOL || e->type > ANM_CONFIG_LOG_LEVEL)
        return table_error(ctx, path, "unknown entry type");
    if (e->env != NULL && e->type != ANM_CONFIG_SECRET)
        return table_error(ctx, path, "only secrets may be set from the environment");
    if ((e->type == ANM_CONFIG_SECTION || e->type == ANM_CONFIG_SECTION_ARRAY) &&
        e->section == NULL)
        return table_error(ctx, path, "section entry without a table");
    if (e->offset > table->struct_size || field_size(e) > table->struct_size - e->offset)
        return table_error(ctx, path, "field lies outside the struct");
    for (const anm_config_entry *other = table->entries; other != e; other++) {
        if (strcmp(other->name, e->name) == 0)
            return table_error(ctx, path, "duplicate key name");
    }
    /* "<secret>_file" is reserved for the secret's file */
    for (const anm_config_entry *other = table->entries; other->name != NULL; other++) {
        size_t n = strlen(other->name);
        if (other->type == ANM_CONFIG_SECRET && strncmp(e->name, other->name, n) == 0 &&
            strcmp(e->name + n, SECRET_FILE_SUFFIX) == 0)
            return table_error(ctx, path, "key name clashes with a secret's \"_file\" key");
    }
    if (e->max_length != 0 && e->min_length > e->max_length)
        return table_error(ctx, path, "min_length above max_length");
    if (e->max_items != 0 && e->min_items > e->max_items)
        return table_error(ctx, path, "min_items above max_items");
    load_ctx quiet = *ctx; /* checks of defaults report as table errors */
    anm_error_detail scratch;
    quiet.detail = &scratch;
    switch (e->type) {
    case ANM_CONFIG_INT:
        if (e->int_min > e->int_max)
            return table_error(ctx, path, "int_min above int_max");
        if (!(e->flags & ANM_CONFIG_REQUIRED) &&
            check_int(&quiet, e, path, e->default_int) != ANM_OK) {
            snprintf(message, sizeof message, "default %s", scratch.message);
            return table_error(ctx, path, message);
        }
        break;
    case ANM_CONFIG_DOUBLE:
        if (e->min > e->max || e->min != e->min || e->max != e->max)
            return table_error(ctx, path, "min above max");
        if (!(e->flags & ANM_CONFIG_REQUIRED) &&
            check_double(&quiet, e, path, e->default_double) != ANM_OK) {
            snprintf(message, sizeof message, "default %s", scratch.message);
            return table_error(ctx, path, message);
        }
        break;
    case ANM_CONFIG_STRING:
    case ANM_CONFIG_SECRET:
    case ANM_CONFIG_ENDPOINT:
        if (e->default_string != NULL && check_string(&quiet, e, path, e->default_string,
                                                      strlen(e->default_string), "") != ANM_OK) {
            snprintf(message, sizeof message, "default %s", scratch.message);
            return table_error(ctx, path, message);
        }
        break;
    case ANM_CONFIG_ENUM:
        if (e->names == NULL || e->names[0] == NULL)
            return table_error(ctx, path, "enum without names");
        if (e->default_string != NULL ? enum_index(e, e->default_string) < 0
                                      : !(e->flags & ANM_CONFIG_REQUIRED))
            return table_error(ctx, path, "optional enum needs a default among its names");
        break;
    case ANM_CONFIG_LOG_LEVEL: {
        anm_log_level level;
        if (e->default_string != NULL && anm_log_level_parse(e->default_string, &level) != ANM_OK)
            return table_error(ctx, path, "default is not a log level");
        break;
    }
    case ANM_CONFIG_STRING_LIST: {
        size_t count = 0;
        for (; e->default_strings != NULL && e->default_strings[count] != NULL; count++) {
            const char *s = e->default_strings[count];
            if (check_string(&quiet, e, path, s, strlen(s), "") != ANM_OK)
                return table_error(ctx, path, "a default item is out of bounds");
        }
        if (count < e->min_items || (e->max_items != 0 && count > e->max_items))
            return table_error(ctx, path, "default list has a wrong number of items");
        break;
    }
    case ANM_CONFIG_SECTION:
    case ANM_CONFIG_SECTION_ARRAY: return check_table(ctx, e->section, path, depth + 1);
    default: break;
    }
    return ANM_OK;
}

static int check_table(const load_ctx *ctx, const anm_config_table *table, key_path *path,
                       int depth)
{
    if (depth > TABLE_DEPTH_MAX)
        return table_error(ctx, path, "sections nested too deep (a cycle?)");
    if (table == NULL || table->entries == NULL || table->struct_size == 0)
        return table_error(ctx, path, "table without entries or struct size");
    for (const anm_config_entry *e = table->entries; e->name != NULL; e++) {
        size_t saved = path_push_key(path, e->name);
        int rc = check_entry(ctx, table, e, path, depth);
        path_pop(path, saved);
        if (rc != ANM_OK)
            return rc;
    }
    return ANM_OK;
}

int anm_config_table_check(const anm_config_table *table, anm_error_detail *detail)
{
    load_ctx ctx = {.file = "", .detail = detail};
    key_path path = {.text = "", .length = 0};
    anm_error_detail_clear(detail);
    return check_table(&ctx, table, &path, 0);
}

/* ---- secrets -------------------------------------------------------------- */

/* Reads a secret file, dropping one trailing newline. errno-based message on failure. */
static int read_secret_file(const char *file, char **out, size_t *length, char *why, size_t size)
{
    int rc = ANM_EIO;
    char *buf = NULL;
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        char reason[128];
        if (strerror_r(errno, reason, sizeof reason) != 0)
            snprintf(reason, sizeof reason, "error %d", errno);
        snprintf(why, size, "%s", reason);
        goto out;
    }
    buf = malloc(SECRET_FILE_MAX + 1);
    if (buf == NULL) {
        rc = ANM_ENOMEM;
        snprintf(why, size, "out of memory");
        goto close_file;
    }
    size_t n = fread(buf, 1, SECRET_FILE_MAX + 1, f);
    if (ferror(f)) {
        snprintf(why, size, "read error");
        goto free_buf;
    }
    if (n > SECRET_FILE_MAX) {
        snprintf(why, size, "larger than %u bytes", SECRET_FILE_MAX);
        goto free_buf;
    }
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (memchr(buf, '\0', n) != NULL) {
        snprintf(why, size, "contains a NUL byte");
        goto free_buf;
    }
    buf[n] = '\0';
    *out = buf;
    *length = n;
    buf = NULL;
    rc = ANM_OK;
free_buf:
    free(buf);
close_file:
    fclose(f);
out:
    return rc;
}

/* Resolves a relative secret file against the config file's directory. */
static void resolve_path(const load_ctx *ctx, const char *file, char *buf, size_t size)
{
    int n;
    if (file[0] == '/' || ctx->dir[0] == '\0')
        n = snprintf(buf, size, "%s", file);
    else
        n = snprintf(buf, size, "%s/%s", ctx->dir, file);
    if (n < 0 || (size_t)n >= size)
        snprintf(buf, size, "%s", file);
}

static int load_secret_file(const load_ctx *ctx, const anm_config_entry *e, const key_path *path,
                            const char *file, const char *named_by, void *base)
{
    char *value = NULL;
    size_t length = 0;
    char why[160];
    int rc = read_secret_file(file, &value, &length, why, sizeof why);
    if (rc != ANM_OK) {
        if (named_by != NULL)
            return fail(ctx, rc == ANM_ENOMEM ? rc : ANM_ECONFIG, path,
                        "could not read secret file \"%s\" named by %s: %s", file, named_by, why);
        return fail(ctx, rc == ANM_ENOMEM ? rc : ANM_ECONFIG, path,
                    "could not read secret file \"%s\": %s", file, why);
    }
    char source[600];
    snprintf(source, sizeof source, " in secret file \"%s\"", file);
    rc = check_string(ctx, e, path, value, length, source);
    if (rc != ANM_OK) {
        free(value);
        return rc;
    }
    set_string(base, e, value);
    return ANM_OK;
}

/*
 * A secret: the JSON key or "<name>_file" (not both), then overridden by the
 * environment variable e->env or "<env>_FILE". Returns 1 in *set when a
 * value came from anywhere but the default.
 */
static int load_secret(const load_ctx *ctx, const anm_config_entry *e, const json_t *object,
                       key_path *path, void *base, bool *set)
{
    char file_key[128];
    snprintf(file_key, sizeof file_key, "%s%s", e->name, SECRET_FILE_SUFFIX);
    const json_t *value = object ? json_object_get(object, e->name) : NULL;
    const json_t *file_value = object ? json_object_get(object, file_key) : NULL;
    int rc;
    *set = false;
    if (value != NULL && file_value != NULL)
        return fail(ctx, ANM_ECONFIG, path, "set either \"%s\" or \"%s\", not both", e->name,
                    file_key);
    if (value != NULL) {
        *set = true;
        if (json_is_null(value) && !(e->flags & ANM_CONFIG_REQUIRED)) {
            set_string(base, e, NULL);
        } else if (!json_is_string(value)) {
            return fail_type(ctx, path, e->type, value);
        } else {
            size_t length = json_string_length(value);
            rc = check_string(ctx, e, path, json_string_value(value), length, "");
            if (rc != ANM_OK)
                return rc;
            char *copy = dup_string(json_string_value(value), length);
            if (copy == NULL)
                return fail(ctx, ANM_ENOMEM, path, "out of memory");
            set_string(base, e, copy);
        }
    }
    if (file_value != NULL) {
        /* the error names "<path>_file", e.g. "database.password_file" */
        key_path file_path = *path;
        size_t room = sizeof file_path.text - file_path.length;
        int n = snprintf(file_path.text + file_path.length, room, "%s", SECRET_FILE_SUFFIX);
        if (n > 0)
            file_path.length += (size_t)n < room ? (size_t)n : room - 1;
        if (!json_is_string(file_value))
            return fail(ctx, ANM_ECONFIG, &file_path, "expected a string, got %s",
                        json_kind(file_value));
        char resolved[1024];
        resolve_path(ctx, json_string_value(file_value), resolved, sizeof resolved);
        rc = load_secret_file(ctx, e, &file_path, resolved, NULL, base);
        if (rc != ANM_OK)
            return rc;
        *set = true;
    }
    if (e->env != NULL) {
        const char *env_value = getenv(e->env);
        char env_file[160];
        snprintf(env_file, sizeof env_file, "%s_FILE", e->env);
        const char *env_file_value = env_value == NULL ? getenv(env_file) : NULL;
        if (env_value != NULL) {
            char source[200];
            snprintf(source, sizeof source, " in %s", e->env);
            size_t length = strlen(env_value);
            rc = check_string(ctx, e, path, env_value, length, source);
            if (rc != ANM_OK)
                return rc;
            char *copy = dup_string(env_value, length);
            if (copy == NULL)
                return fail(ctx, ANM_ENOMEM, path, "out of memory");
            set_string(base, e, copy);
            *set = true;
        } else if (env_file_value != NULL) {
            rc = load_secret_file(ctx, e, path, env_file_value, env_file, base);
            if (rc != ANM_OK)
                return rc;
            *set = true;
        }
    }
    return ANM_OK;
}

/* ---- the loader ----------------------------------------------------------- */

static int load_table(const load_ctx *ctx, const anm_config_table *table, const json_t *object,
                      key_path *path, void *base);

/* Edit distance, for "did you mean": small strings only. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return SIZE_MAX;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t above = row[j];
            size_t best = diagonal + (a[i - 1] != b[j - 1]);
            if (above + 1 < best)
                best = above + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diagonal = above;
        }
    }
    return row[lb];
}

static bool key_known(const anm_config_table *table, const char *key)
{
    for (const anm_config_entry *e = table->entries; e->name != NULL; e++) {
        if (strcmp(e->name, key) == 0)
            return true;
        size_t n = strlen(e->name);
        if (e->type == ANM_CONFIG_SECRET && strncmp(key, e->name, n) == 0 &&
            strcmp(key + n, SECRET_FILE_SUFFIX) == 0)
            return true;
    }
    return false;
}

static int reject_unknown_keys(const load_ctx *ctx, const anm_config_table *table,
                               const json_t *object, key_path *path)
{
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)(uintptr_t)object, key, value)
    {
        (void)value;
        if (key_known(table, key))
            continue;
        const char *suggestion = NULL;
        size_t best = 3; /* suggest names at most 2 edits away */
        for (const anm_config_entry *e = table->entries; e->name != NULL; e++) {
            size_t d = edit_distance(key, e->name);
            if (d < best) {
                best = d;
                suggestion = e->name;
            }
        }
        size_t saved = path_push_key(path, key);
        int rc = suggestion ? fail(ctx, ANM_ECONFIG, path, "unknown key (did you mean \"%s\"?)",
                                   suggestion)
                            : fail(ctx, ANM_ECONFIG, path, "unknown key");
        path_pop(path, saved);
        return rc;
    }
    return ANM_OK;
}

static int load_string_like(const load_ctx *ctx, const anm_config_entry *e, const json_t *value,
                            const key_path *path, void *base)
{
    if (json_is_null(value) && !(e->flags & ANM_CONFIG_REQUIRED)) {
        set_string(base, e, NULL);
        return ANM_OK;
    }
    if (!json_is_string(value))
        return fail_type(ctx, path, e->type, value);
    size_t length = json_string_length(value);
    int rc = check_string(ctx, e, path, json_string_value(value), length, "");
    if (rc != ANM_OK)
        return rc;
    char *copy = dup_string(json_string_value(value), length);
    if (copy == NULL)
        return fail(ctx, ANM_ENOMEM, path, "out of memory");
    set_string(base, e, copy);
    return ANM_OK;
}

static int check_items(const load_ctx *ctx, const anm_config_entry *e, const key_path *path,
                       size_t count)
{
    if (e->max_items != 0 && count > e->max_items)
        return fail(ctx, ANM_ECONFIG, path, "too many items (%zu, at most %zu)", count,
                    e->max_items);
    if (count < e->min_items)
        return fail(ctx, ANM_ECONFIG, path, "too few items (%zu, at least %zu)", count,
                    e->min_items);
    return ANM_OK;
}

static int load_string_list(const load_ctx *ctx, const anm_config_entry *e, const json_t *value,
                            key_path *path, void *base)
{
    anm_config_strings *list = field(base, e);
    if (!json_is_array(value))
        return fail_type(ctx, path, e->type, value);
    size_t count = json_array_size(value);
    int rc = check_items(ctx, e, path, count);
    if (rc != ANM_OK)
        return rc;
    list->items = count ? calloc(count, sizeof *list->items) : NULL;
    if (count && list->items == NULL)
        return fail(ctx, ANM_ENOMEM, path, "out of memory");
    for (size_t i = 0; i < count; i++) {
        const json_t *item = json_array_get(value, i);
        size_t saved = path_push_index(path, i);
        if (!json_is_string(item)) {
            rc = fail(ctx, ANM_ECONFIG, path, "expected a string, got %s", json_kind(item));
        } else {
            size_t length = json_string_length(item);
            rc = check_string(ctx, e, path, json_string_value(item), length, "");
            if (rc == ANM_OK) {
                list->items[i] = dup_string(json_string_value(item), length);
                if (list->items[i] == NULL)
                    rc = fail(ctx, ANM_ENOMEM, path, "out of memory");
            }
        }
        path_pop(path, saved);
        list->count = i + (rc == ANM_OK); /* what anm_config_free must release */
        if (rc != ANM_OK)
            return rc;
    }
    return ANM_OK;
}

static int load_section_array(const load_ctx *ctx, const anm_config_entry *e, const json_t *value,
                              key_path *path, void *base)
{
    anm_config_array *array = field(base, e);
    if (!json_is_array(value))
        return fail_type(ctx, path, e->type, value);
    size_t count = json_array_size(value);
    int rc = check_items(ctx, e, path, count);
    if (rc != ANM_OK)
        return rc;
    size_t item_size = e->section->struct_size;
    array->items = count ? calloc(count, item_size) : NULL;
    if (count && array->items == NULL)
        return fail(ctx, ANM_ENOMEM, path, "out of memory");
    for (size_t i = 0; i < count; i++) {
        const json_t *item = json_array_get(value, i);
        size_t saved = path_push_index(path, i);
        array->count = i + 1; /* calloc'd items are safe to free */
        if (!json_is_object(item))
            rc = fail(ctx, ANM_ECONFIG, path, "expected an object, got %s", json_kind(item));
        else
            rc = load_table(ctx, e->section, item, path, (char *)array->items + i * item_size);
        path_pop(path, saved);
        if (rc != ANM_OK)
            return rc;
    }
    return ANM_OK;
}

static int apply_default(const load_ctx *ctx, const anm_config_entry *e, key_path *path, void *base)
{
    switch (e->type) {
    case ANM_CONFIG_BOOL: *(bool *)field(base, e) = e->default_bool; break;
    case ANM_CONFIG_INT: *(long *)field(base, e) = e->default_int; break;
    case ANM_CONFIG_DOUBLE: *(double *)field(base, e) = e->default_double; break;
    case ANM_CONFIG_STRING:
    case ANM_CONFIG_SECRET:
    case ANM_CONFIG_ENDPOINT:
        if (e->default_string != NULL) {
            char *copy = dup_string(e->default_string, strlen(e->default_string));
            if (copy == NULL)
                return fail(ctx, ANM_ENOMEM, path, "out of memory");
            set_string(base, e, copy);
        }
        break;
    case ANM_CONFIG_ENUM: *(int *)field(base, e) = enum_index(e, e->default_string); break;
    case ANM_CONFIG_LOG_LEVEL: {
        anm_log_level level = ANM_LOG_INFO;
        if (e->default_string != NULL)
            (void)anm_log_level_parse(e->default_string, &level); /* checked by the table check */
        *(anm_log_level *)field(base, e) = level;
        break;
    }
    case ANM_CONFIG_STRING_LIST: {
        anm_config_strings *list = field(base, e);
        size_t count = 0;
        while (e->default_strings != NULL && e->default_strings[count] != NULL)
            count++;
        if (count == 0)
            break;
        list->items = calloc(count, sizeof *list->items);
        if (list->items == NULL)
            return fail(ctx, ANM_ENOMEM, path, "out of memory");
        for (size_t i = 0; i < count; i++) {
            list->items[i] = dup_string(e->default_strings[i], strlen(e->default_strings[i]));
            list->count = i + 1;
            if (list->items[i] == NULL)
                return fail(ctx, ANM_ENOMEM, path, "out of memory");
        }
        break;
    }
    case ANM_CONFIG_SECTION: return load_table(ctx, e->section, NULL, path, field(base, e));
    case ANM_CONFIG_SECTION_ARRAY: break; /* empty */
    }
    return ANM_OK;
}

static int load_value(const load_ctx *ctx, const anm_config_entry *e, const json_t *value,
                      key_path *path, void *base)
{
    int rc;
    switch (e->type) {
    case ANM_CONFIG_BOOL:
        if (!json_is_boolean(value))
            return fail_type(ctx, path, e->type, value);
        *(bool *)field(base, e) = json_is_true(value);
        return ANM_OK;
    case ANM_CONFIG_INT:
        if (!json_is_integer(value))
            return fail_type(ctx, path, e->type, value);
        rc = check_int(ctx, e, path, json_integer_value(value));
        if (rc == ANM_OK)
            *(long *)field(base, e) = (long)json_integer_value(value);
        return rc;
    case ANM_CONFIG_DOUBLE:
        if (!json_is_number(value))
            return fail_type(ctx, path, e->type, value);
        rc = check_double(ctx, e, path, json_number_value(value));
        if (rc == ANM_OK)
            *(double *)field(base, e) = json_number_value(value);
        return rc;
    case ANM_CONFIG_STRING:
    case ANM_CONFIG_ENDPOINT: return load_string_like(ctx, e, value, path, base);
    case ANM_CONFIG_ENUM: {
        if (!json_is_string(value))
            return fail_type(ctx, path, e->type, value);
        int index = enum_index(e, json_string_value(value));
        if (index < 0) {
            char names[256];
            enum_list(e, names, sizeof names);
            return fail(ctx, ANM_ECONFIG, path, "unknown value \"%s\" (expected one of: %s)",
                        json_string_value(value), names);
        }
        *(int *)field(base, e) = index;
        return ANM_OK;
    }
    case ANM_CONFIG_LOG_LEVEL: {
        anm_log_level level;
        if (!json_is_string(value))
            return fail_type(ctx, path, e->type, value);
        if (anm_log_level_parse(json_string_value(value), &level) != ANM_OK)
            return fail(ctx, ANM_ECONFIG, path,
                        "unknown log level \"%s\" (expected one of: debug, info, warn, error, off)",
                        json_string_value(value));
        *(anm_log_level *)field(base, e) = level;
        return ANM_OK;
    }
    case ANM_CONFIG_STRING_LIST: return load_string_list(ctx, e, value, path, base);
    case ANM_CONFIG_SECTION:
        if (!json_is_object(value))
            return fail_type(ctx, path, e->type, value);
        return load_table(ctx, e->section, value, path, field(base, e));
    case ANM_CONFIG_SECTION_ARRAY: return load_section_array(ctx, e, value, path, base);
    case ANM_CONFIG_SECRET: break; /* handled by load_secret */
    }
    return fail(ctx, ANM_EINTERNAL, path, "config table: unknown entry type");
}

/* Loads one object (NULL: the key is absent, defaults only) into base. */
static int load_table(const load_ctx *ctx, const anm_config_table *table, const json_t *object,
                      key_path *path, void *base)
{
    int rc;
    if (object != NULL) {
        rc = reject_unknown_keys(ctx, table, object, path);
        if (rc != ANM_OK)
            return rc;
    }
    for (const anm_config_entry *e = table->entries; e->name != NULL; e++) {
        size_t saved = path_push_key(path, e->name);
        const json_t *value = object ? json_object_get(object, e->name) : NULL;
        bool set = value != NULL;
        if (e->type == ANM_CONFIG_SECRET) {
            rc = apply_default(ctx, e, path, base);
            if (rc == ANM_OK)
                rc = load_secret(ctx, e, object, path, base, &set);
            if (rc == ANM_OK && !set && (e->flags & ANM_CONFIG_REQUIRED))
                rc = e->env ? fail(ctx, ANM_ECONFIG, path,
                                   "missing required key (or set %s in the environment)", e->env)
                            : fail(ctx, ANM_ECONFIG, path, "missing required key");
        } else if (value != NULL) {
            rc = load_value(ctx, e, value, path, base);
        } else if (e->flags & ANM_CONFIG_REQUIRED) {
            rc = fail(ctx, ANM_ECONFIG, path, "missing required key");
        } else {
            rc = apply_default(ctx, e, path, base);
        }
        path_pop(path, saved);
        if (rc != ANM_OK)
            return rc;
    }
    if (table->check != NULL) {
        char message[sizeof(((anm_error_detail *)0)->message)] = "";
        if (table->check(base, message, sizeof message) != 0)
            return fail(ctx, ANM_ECONFIG, path, "%s", message[0] ? message : "invalid section");
    }
    return ANM_OK;
}

static void ctx_init(load_ctx *ctx, const char *file, anm_error_detail *detail)
{
    ctx->file = file ? file : "";
    ctx->detail = detail;
    ctx->dir[0] = '\0';
    const char *slash = file ? strrchr(file, '/') : NULL;
    if (slash != NULL) {
        size_t n = (size_t)(slash - file);
        if (n == 0)
            n = 1; /* "/x.json": the root */
        if (n < sizeof ctx->dir) {
            memcpy(ctx->dir, file, n);
            ctx->dir[n] = '\0';
        }
    }
}

int anm_config_load_json(const anm_config_table *table, const json_t *root, const char *file,
                         void *out, anm_error_detail *detail)
{
    load_ctx ctx;
    key_path path = {.text = "", .length = 0};
    ctx_init(&ctx, file, detail);
    anm_error_detail_clear(detail);
    int rc = check_table(&ctx, table, &path, 0);
    if (rc != ANM_OK)
        return rc;
    clear_table(table, out);
    if (root != NULL && !json_is_object(root)) {
        rc = fail(&ctx, ANM_ECONFIG, NULL, "expected a JSON object at the top level, got %s",
                  json_kind(root));
        goto out;
    }
    rc = load_table(&ctx, table, root, &path, out);
out:
    if (rc != ANM_OK) {
        free_table(table, out);
        clear_table(table, out);
    }
    return rc;
}

/* Checks the table and zeroes out's fields, so they are zero after any failure. */
static int prepare(const anm_config_table *table, void *out, anm_error_detail *detail)
{
    int rc = anm_config_table_check(table, detail);
    if (rc == ANM_OK)
        clear_table(table, out);
    return rc;
}

/* Converts a jansson decoding error: syntax errors carry line and column. */
static int decode_error(const char *file, const json_error_t *error, anm_error_detail *detail)
{
    anm_error_detail_set(detail, file, error->line > 0 ? error->line : 0,
                         error->column > 0 ? error->column : 0, NULL, "%s", error->text);
    return json_error_code(error) == json_error_out_of_memory ? ANM_ENOMEM : ANM_EPARSE;
}

int anm_config_load_string(const anm_config_table *table, const char *text, size_t length,
                           const char *name, void *out, anm_error_detail *detail)
{
    json_error_t error;
    int rc = prepare(table, out, detail);
    if (rc != ANM_OK)
        return rc;
    json_t *root = json_loadb(text, length, JSON_REJECT_DUPLICATES, &error);
    if (root == NULL)
        return decode_error(name ? name : "", &error, detail);
    rc = anm_config_load_json(table, root, name, out, detail);
    json_decref(root);
    return rc;
}

int anm_config_load_file(const anm_config_table *table, const char *path, void *out,
                         anm_error_detail *detail)
{
    int rc;
    json_error_t error;
    json_t *root = NULL;
    if (path == NULL)
        return anm_config_load_json(table, NULL, NULL, out, detail);
    rc = prepare(table, out, detail);
    if (rc != ANM_OK)
        return rc;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        char reason[128];
        if (strerror_r(errno, reason, sizeof reason) != 0)
            snprintf(reason, sizeof reason, "error %d", errno);
        anm_error_detail_set(detail, path, 0, 0, NULL, "could not open config file: %s", reason);
        return ANM_EIO;
    }
    root = json_loadf(f, JSON_REJECT_DUPLICATES, &error);
    fclose(f);
    if (root == NULL)
        return decode_error(path, &error, detail);
    rc = anm_config_load_json(table, root, path, out, detail);
    json_decref(root);
    return rc;
}

/* ---- rendering ------------------------------------------------------------ */

static json_t *string_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *table_to_json(const anm_config_table *table, const void *obj, bool show_secrets);

static json_t *entry_to_json(const anm_config_entry *e, const void *obj, bool show_secrets)
{
    const void *p = field_const(obj, e);
    switch (e->type) {
    case ANM_CONFIG_BOOL: return json_boolean(*(const bool *)p);
    case ANM_CONFIG_INT: return json_integer(*(const long *)p);
    case ANM_CONFIG_DOUBLE: return json_real(*(const double *)p);
    case ANM_CONFIG_STRING:
    case ANM_CONFIG_ENDPOINT: return string_or_null(*(char *const *)p);
    case ANM_CONFIG_SECRET: {
        const char *s = *(char *const *)p;
        return string_or_null(s && !show_secrets ? SECRET_MASK : s);
    }
    case ANM_CONFIG_ENUM: {
        int index = *(const int *)p;
        for (int i = 0; e->names[i] != NULL; i++) {
            if (i == index)
                return json_string(e->names[i]);
        }
        return json_null();
    }
    case ANM_CONFIG_LOG_LEVEL: return json_string(anm_log_level_name(*(const anm_log_level *)p));
    case ANM_CONFIG_STRING_LIST: {
        const anm_config_strings *list = p;
        json_t *array = json_array();
        for (size_t i = 0; array && i < list->count; i++) {
            if (json_array_append_new(array, string_or_null(list->items[i])) != 0) {
                json_decref(array);
                return NULL;
            }
        }
        return array;
    }
    case ANM_CONFIG_SECTION: return table_to_json(e->section, p, show_secrets);
    case ANM_CONFIG_SECTION_ARRAY: {
        const anm_config_array *items = p;
        json_t *array = json_array();
        for (size_t i = 0; array && i < items->count; i++) {
            const char *item = (const char *)items->items + i * e->section->struct_size;
            if (json_array_append_new(array, table_to_json(e->section, item, show_secrets)) != 0) {
                json_decref(array);
                return NULL;
            }
        }
        return array;
    }
    }
    return NULL;
}

static json_t *table_to_json(const anm_config_table *table, const void *obj, bool show_secrets)
{
    json_t *object = json_object();
    if (object == NULL)
        return NULL;
    for (const anm_config_entry *e = table->entries; e->name != NULL; e++) {
        /* set_new consumes the value, and fails (without leaking) on NULL */
        if (json_object_set_new(object, e->name, entry_to_json(e, obj, show_secrets)) != 0) {
            json_decref(object);
            return NULL;
        }
    }
    return object;
}

json_t *anm_config_to_json(const anm_config_table *table, const void *obj, bool show_secrets)
{
    if (table == NULL || obj == NULL)
        return NULL;
    return table_to_json(table, obj, show_secrets);
}

char *anm_config_render(const anm_config_table *table, const void *obj)
{
    json_t *json = anm_config_to_json(table, obj, false);
    if (json == NULL)
        return NULL;
    /* 15 significant digits: 0.1 shows as 0.1, not 0.10000000000000001 */
    char *text = json_dumps(json, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    json_decref(json);
    if (text == NULL)
        return NULL;
    size_t length = strlen(text);
    char *with_newline = realloc(text, length + 2);
    if (with_newline == NULL) {
        free(text);
        return NULL;
    }
    with_newline[length] = '\n';
    with_newline[length + 1] = '\0';
    return with_newline;
}
