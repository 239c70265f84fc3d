/* dc_csv.c: Data Concentrator file names and the CSV writer of dc_csv.h. */
#include "gateway/dc_csv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/clock.h"

#define MAX_COLUMNS 64
#define DAY_MS 86400000LL

static int unit_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

static int valid_unit(const char *unit, size_t n)
{
    if (n == 0 || n > GATEWAY_DC_UNIT_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!unit_char(unit[i]))
            return 0;
    return 1;
}

static const char *kind_suffix(gateway_dc_kind kind)
{
    switch (kind) {
    case GATEWAY_DC_PERFMON_20HZ:
        return "20HZ_perfmonv";
    case GATEWAY_DC_PERFMON_1HZ:
        return "1HZ_perfmonv";
    case GATEWAY_DC_REDEC:
        return "redecv";
    }
    return NULL;
}

int gateway_dc_file_name(char *buf, size_t size, const gateway_dc_file_info *info)
{
    const char *suffix = kind_suffix(info->kind);
    if (suffix == NULL || !valid_unit(info->unit, strlen(info->unit)) || info->version < 1 ||
        info->version > 999 || info->utc_ms < 0 || info->utc_ms >= 253402300800000LL)
        return ANM_EINVAL;
    int64_t days = info->utc_ms / DAY_MS;
    int64_t ms_of_day = info->utc_ms % DAY_MS;
    int year, month, day;
    anm_civil_from_days(days, &year, &month, &day);
    int n = snprintf(buf, size, "%s_%04d%02d%02d%02d%02d%02d%03d_%s%d%s.csv", info->unit, year,
                     month, day, (int)(ms_of_day / 3600000), (int)(ms_of_day / 60000 % 60),
                     (int)(ms_of_day / 1000 % 60), (int)(ms_of_day % 1000), suffix, info->version,
                     info->test ? "_test" : "");
    if (n < 0 || (size_t)n >= size)
        return ANM_ERANGE;
    return ANM_OK;
}

static int ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static int digits_value(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static int days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return days[month - 1] + (month == 2 && leap);
}

int gateway_dc_file_name_parse(const char *name, gateway_dc_file_info *out,
                               anm_error_detail *detail)
{
    gateway_dc_file_info info;
    memset(&info, 0, sizeof info);
    size_t n = strlen(name);
    if (n > GATEWAY_DC_NAME_MAX) {
        anm_error_detail_set(detail, NULL, 0, 1, NULL, "file name is longer than %d bytes",
                             GATEWAY_DC_NAME_MAX);
        return ANM_EPARSE;
    }
    if (!ends_with(name, n, ".csv")) {
        anm_error_detail_set(detail, NULL, 0, (int)n + 1, NULL, "file name must end in \".csv\"");
        return ANM_EPARSE;
    }
    n -= 4;
    if (ends_with(name, n, "_test")) {
        info.test = 1;
        n -= 5;
    }
    /* version digits */
    size_t v_end = n;
    while (n > 0 && name[n - 1] >= '0' && name[n - 1] <= '9')
        n--;
    if (n == v_end || v_end - n > 3) {
        anm_error_detail_set(detail, NULL, 0, (int)n + 1, NULL,
                             "file name must end in a version of 1 to 3 digits before \".csv\"");
        return ANM_EPARSE;
    }
    info.version = digits_value(name + n, v_end - n);
    if (info.version < 1) {
        anm_error_detail_set(detail, NULL, 0, (int)n + 1, NULL, "version must be at least 1");
        return ANM_EPARSE;
    }
    if (ends_with(name, n, "_20HZ_perfmonv")) {
        info.kind = GATEWAY_DC_PERFMON_20HZ;
        n -= strlen("_20HZ_perfmonv");
    } else if (ends_with(name, n, "_1HZ_perfmonv")) {
        info.kind = GATEWAY_DC_PERFMON_1HZ;
        n -= strlen("_1HZ_perfmonv");
    } else if (ends_with(name, n, "_redecv")) {
        info.kind = GATEWAY_DC_REDEC;
        n -= strlen("_redecv");
    } else {
        anm_error_detail_set(detail, NULL, 0, 0, NULL,
                             "file kind must be \"20HZ_perfmonv<n>\", \"1HZ_perfmonv<n>\" or "
                             "\"redecv<n>\"");
        return ANM_EPARSE;
    }
    /* timestamp: the digits after the last '_' before the kind */
    size_t t_end = n;
    while (n > 0 && name[n - 1] != '_')
        n--;
    size_t t_start = n;
    const char *ts = name + t_start;
    size_t t_len = t_end - t_start;
    int all_digits = t_len > 0;
    for (size_t i = 0; i < t_len; i++)
        all_digits &= ts[i] >= '0' && ts[i] <= '9';
    if (n == 0 || !all_digits || t_len != 17) {
        anm_error_detail_set(detail, NULL, 0, (int)t_start + 1, NULL,
                             "timestamp \"%.*s\" must have 17 digits (yyyyMMddHHmmssfff)",
                             (int)t_len, ts);
        return ANM_EPARSE;
    }
    int year = digits_value(ts, 4), month = digits_value(ts + 4, 2), day = digits_value(ts + 6, 2);
    int hour = digits_value(ts + 8, 2), minute = digits_value(ts + 10, 2);
    int second = digits_value(ts + 12, 2), milli = digits_value(ts + 14, 3);
    if (year < 1970 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) ||
        hour > 23 || minute > 59 || second > 59) {
        anm_error_detail_set(detail, NULL, 0, (int)t_start + 1, NULL,
                             "timestamp \"%.17s\" is not a valid UTC time", ts);
        return ANM_EPARSE;
    }
    info.utc_ms = anm_days_from_civil(year, month, day) * DAY_MS + hour * 3600000LL +
                  minute * 60000LL + second * 1000LL + milli;
    size_t u_len = n - 1;
    if (!valid_unit(name, u_len)) {
        anm_error_detail_set(detail, NULL, 0, 1, NULL,
                             "unit id \"%.*s\" must be 1 to %d characters of [A-Za-z0-9_-]",
                             (int)u_len, name, GATEWAY_DC_UNIT_MAX);
        return ANM_EPARSE;
    }
    memcpy(info.unit, name, u_len);
    info.unit[u_len] = '\0';
    if (out != NULL)
        *out = info;
    return ANM_OK;
}

/* ---- CSV writer ---------------------------------------------------------- */

static const gateway_dc_column perfmon_columns[] = {
    {"timestamp_utc", "timestamp", 0},
    {"frequency_hz", "frequency_hz", 3},
    {"active_power_mw", "active_power_mw", 3},
};

static const gateway_dc_column redec_columns[] = {
    {"unit", "unit", 0},
    {"start_utc", "start", 0},
    {"end_utc", "end", 0},
    {"available_mw", "available_mw", 3},
    {"reason", "reason", 0},
};

const gateway_dc_column *gateway_dc_default_columns(gateway_dc_kind kind, size_t *count)
{
    if (kind == GATEWAY_DC_REDEC) {
        *count = sizeof redec_columns / sizeof redec_columns[0];
        return redec_columns;
    }
    *count = sizeof perfmon_columns / sizeof perfmon_columns[0];
    return perfmon_columns;
}

struct gateway_dc_csv {
    gateway_dc_column columns[MAX_COLUMNS];
    char *strings[2 * MAX_COLUMNS];
    size_t n_columns;
    char *text;
    size_t length, capacity;
    size_t rows;
};

static int append(gateway_dc_csv *csv, const char *s, size_t n)
{
    if (csv->length + n + 1 > csv->capacity) {
        size_t capacity = csv->capacity ? csv->capacity : 1024;
        while (capacity < csv->length + n + 1)
            capacity *= 2;
        char *grown = realloc(csv->text, capacity);
        if (grown == NULL)
            return ANM_ENOMEM;
        csv->text = grown;
        csv->capacity = capacity;
    }
    memcpy(csv->text + csv->length, s, n);
    csv->length += n;
    csv->text[csv->length] = '\0';
    return ANM_OK;
}

static int append_cell(gateway_dc_csv *csv, const char *cell)
{
    if (strpbrk(cell, ",\"\r\n") == NULL)
        return append(csv, cell, strlen(cell));
    int rc = append(csv, "\"", 1);
    for (const char *p = cell; rc == ANM_OK && *p; p++)
        rc = *p == '"' ? append(csv, "\"\"", 2) : append(csv, p, 1);
    return rc == ANM_OK ? append(csv, "\"", 1) : rc;
}

int gateway_dc_csv_new(const gateway_dc_column *columns, size_t count, gateway_dc_csv **out)
{
    *out = NULL;
    if (count == 0 || count > MAX_COLUMNS)
        return ANM_EINVAL;
    for (size_t i = 0; i < count; i++)
        if (columns[i].header == NULL || columns[i].field == NULL || columns[i].decimals < 0 ||
            columns[i].decimals > 9)
            return ANM_EINVAL;
    gateway_dc_csv *csv = calloc(1, sizeof *csv);
    if (csv == NULL)
        return ANM_ENOMEM;
    int rc = ANM_OK;
    for (size_t i = 0; i < count; i++) {
        csv->strings[2 * i] = strdup(columns[i].header);
        csv->strings[2 * i + 1] = strdup(columns[i].field);
        csv->n_columns = i + 1;
        if (csv->strings[2 * i] == NULL || csv->strings[2 * i + 1] == NULL) {
            rc = ANM_ENOMEM;
            goto fail;
        }
        csv->columns[i].header = csv->strings[2 * i];
        csv->columns[i].field = csv->strings[2 * i + 1];
        csv->columns[i].decimals = columns[i].decimals;
    }
    for (size_t i = 0; i < count && rc == ANM_OK; i++) {
        if (i > 0)
            rc = append(csv, ",", 1);
        if (rc == ANM_OK)
            rc = append_cell(csv, columns[i].header);
    }
    if (rc == ANM_OK)
        rc = append(csv, "\r\n", 2);
    if (rc != ANM_OK)
        goto fail;
    *out = csv;
    return ANM_OK;
fail:
    gateway_dc_csv_destroy(&csv);
    return rc;
}

int gateway_dc_csv_new_from_json(const json_t *columns, gateway_dc_csv **out,
                                 anm_error_detail *detail)
{
    *out = NULL;
    if (!json_is_array(columns) || json_array_size(columns) == 0 ||
        json_array_size(columns) > MAX_COLUMNS) {
        anm_error_detail_set(detail, NULL, 0, 0, "columns",
                             "expected an array of 1 to %d columns", MAX_COLUMNS);
        return ANM_ECONFIG;
    }
    gateway_dc_column cols[MAX_COLUMNS];
    size_t n = json_array_size(columns);
    for (size_t i = 0; i < n; i++) {
        const json_t *item = json_array_get(columns, i);
        char path[64];
        snprintf(path, sizeof path, "columns[%zu]", i);
        cols[i].decimals = 3;
        if (json_is_string(item)) {
            cols[i].header = cols[i].field = json_string_value(item);
            continue;
        }
        if (!json_is_object(item)) {
            anm_error_detail_set(detail, NULL, 0, 0, path, "expected a field name or an object");
            return ANM_ECONFIG;
        }
        const char *key;
        const json_t *value;
        cols[i].field = NULL;
        cols[i].header = NULL;
        json_object_foreach((json_t *)(uintptr_t)item, key, value) {
            if (strcmp(key, "field") == 0 && json_is_string(value)) {
                cols[i].field = json_string_value(value);
            } else if (strcmp(key, "header") == 0 && json_is_string(value)) {
                cols[i].header = json_string_value(value);
            } else if (strcmp(key, "decimals") == 0 && json_is_integer(value) &&
                       json_integer_value(value) >= 0 && json_integer_value(value) <= 9) {
                cols[i].decimals = (int)json_integer_value(value);
            } else {
                snprintf(path, sizeof path, "columns[%zu].%s", i, key);
                anm_error_detail_set(detail, NULL, 0, 0, path,
                                     strcmp(key, "field") == 0 || strcmp(key, "header") == 0 ||
                                             strcmp(key, "decimals") == 0
                                         ? "invalid value"
                                         : "unknown key");
                return ANM_ECONFIG;
            }
        }
        if (cols[i].field == NULL) {
            snprintf(path, sizeof path, "columns[%zu].field", i);
            anm_error_detail_set(detail, NULL, 0, 0, path, "missing required key");
            return ANM_ECONFIG;
        }
        if (cols[i].header == NULL)
            cols[i].header = cols[i].field;
    }
    return gateway_dc_csv_new(cols, n, out);
}

void gateway_dc_csv_destroy(gateway_dc_csv **csv)
{
    if (csv == NULL || *csv == NULL)
        return;
    for (size_t i = 0; i < 2 * (*csv)->n_columns; i++)
        free((*csv)->strings[i]);
    free((*csv)->text);
    free(*csv);
    *csv = NULL;
}

int gateway_dc_csv_add_row(gateway_dc_csv *csv, const gateway_dc_value *values, size_t count,
                           anm_error_detail *detail)
{
    size_t mark = csv->length;
    int rc = ANM_OK;
    for (size_t c = 0; c < csv->n_columns && rc == ANM_OK; c++) {
        const gateway_dc_column *col = &csv->columns[c];
        const gateway_dc_value *v = NULL;
        for (size_t i = 0; i < count && v == NULL; i++)
            if (values[i].field != NULL && strcmp(values[i].field, col->field) == 0)
                v = &values[i];
        if (v == NULL) {
            anm_error_detail_set(detail, NULL, 0, 0, col->field,
                                 "row has no value for field \"%s\"", col->field);
            rc = ANM_ENOTFOUND;
            break;
        }
        char cell[64];
        const char *text = cell;
        switch (v->type) {
        case GATEWAY_DC_NUMBER:
            if (!isfinite(v->number)) {
                anm_error_detail_set(detail, NULL, 0, 0, col->field,
                                     "value of field \"%s\" is not finite", col->field);
                rc = ANM_ERANGE;
                break;
            }
            snprintf(cell, sizeof cell, "%.*f", col->decimals, v->number);
            break;
        case GATEWAY_DC_TIME:
            anm_time_format_utc(v->utc_ms, cell, sizeof cell);
            break;
        case GATEWAY_DC_TEXT:
            text = v->text != NULL ? v->text : "";
            break;
        }
        if (rc != ANM_OK)
            break;
        if (c > 0)
            rc = append(csv, ",", 1);
        if (rc == ANM_OK)
            rc = append_cell(csv, text);
    }
    if (rc == ANM_OK)
        rc = append(csv, "\r\n", 2);
    if (rc != ANM_OK) {
        csv->length = mark;
        csv->text[mark] = '\0';
        return rc;
    }
    csv->rows++;
    return ANM_OK;
}

size_t gateway_dc_csv_rows(const gateway_dc_csv *csv)
{
    return csv->rows;
}

const char *gateway_dc_csv_text(const gateway_dc_csv *csv, size_t *length)
{
    if (length != NULL)
        *length = csv->length;
    return csv->text;
}
