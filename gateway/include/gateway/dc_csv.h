/*
 * dc_csv.h: the Data Concentrator's CSV files: file names (build and
 * validate) and a data-driven CSV writer for performance-monitoring samples
 * (20 Hz and 1 Hz) and availability/outage redeclarations.
 *
 * File names (NESO's Data Concentrator API, docs/data-concentrator.md):
 *     <unit>_<yyyyMMddHHmmssfff>_<rate>HZ_perfmonv<version>[_test].csv
 *     <unit>_<yyyyMMddHHmmssfff>_redecv<version>[_test].csv
 * e.g. UNIT1_20200915142400000_20HZ_perfmonv1.csv. The timestamp is UTC, 17
 * digits. The unit id is 1..64 of [A-Za-z0-9_-] (BM unit ids contain '_'
 * and '-'), so names are parsed from the right.
 *
 * Columns: an ordered list of {header, field, decimals}. A row is a set of
 * named values; each column takes the value whose name is its field. The
 * defaults (gateway_dc_default_columns) are documented in
 * docs/data-concentrator.md; config replaces them with
 * gateway_dc_columns_from_json. Output is RFC 4180: CRLF line ends, cells
 * with ',', '"', CR or LF quoted, a header line first.
 */
#ifndef GATEWAY_DC_CSV_H
#define GATEWAY_DC_CSV_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

typedef enum gateway_dc_kind {
    GATEWAY_DC_PERFMON_20HZ = 0,
    GATEWAY_DC_PERFMON_1HZ = 1,
    GATEWAY_DC_REDEC = 2
} gateway_dc_kind;

#define GATEWAY_DC_UNIT_MAX 64
#define GATEWAY_DC_NAME_MAX 128

typedef struct gateway_dc_file_info {
    char unit[GATEWAY_DC_UNIT_MAX + 1];
    int64_t utc_ms;
    gateway_dc_kind kind;
    int version; /* 1..999 */
    int test;
} gateway_dc_file_info;

/*
 * Builds the file name into buf. ANM_OK, ANM_EINVAL (bad unit, version
 * outside 1..999, time before 1970 or after 9999), ANM_ERANGE (buf too small).
 */
int gateway_dc_file_name(char *buf, size_t size, const gateway_dc_file_info *info);

/*
 * Validates and parses a file name. ANM_OK or ANM_EPARSE with detail->message
 * saying what is wrong, e.g. "timestamp \"2020091514240000\" must have 17 digits
 * (yyyyMMddHHmmssfff)" and detail->column the 1-based offset of the bad part.
 * out may be NULL.
 */
int gateway_dc_file_name_parse(const char *name, gateway_dc_file_info *out,
                               anm_error_detail *detail);

/* ---- columns and rows --------------------------------------------------- */

typedef struct gateway_dc_column {
    const char *header; /* the header cell */
    const char *field;  /* the row value it takes */
    int decimals;       /* for numbers: digits after the point (0..9) */
} gateway_dc_column;

typedef enum gateway_dc_value_type {
    GATEWAY_DC_NUMBER, /* formatted with the column's decimals */
    GATEWAY_DC_TIME,   /* UTC ms, formatted "2020-09-15T14:24:00.000Z" */
    GATEWAY_DC_TEXT
} gateway_dc_value_type;

typedef struct gateway_dc_value {
    const char *field;
    gateway_dc_value_type type;
    double number;
    int64_t utc_ms;
    const char *text;
} gateway_dc_value;

/* The default columns of a kind (a static table; *count gets its length). */
const gateway_dc_column *gateway_dc_default_columns(gateway_dc_kind kind, size_t *count);

typedef struct gateway_dc_csv gateway_dc_csv;

/*
 * New writer with a copy of columns (1..64 of them). ANM_OK, ANM_EINVAL, ANM_ENOMEM.
 * The header line is written at once.
 */
int gateway_dc_csv_new(const gateway_dc_column *columns, size_t count, gateway_dc_csv **out);

/*
 * New writer with columns read from a JSON array whose items are either a
 * field name (header = field, decimals 3) or an object {"header": ...,
 * "field": ..., "decimals": ...} (header and decimals optional). ANM_ECONFIG
 * with detail->path "columns[i]..." naming the bad entry.
 */
int gateway_dc_csv_new_from_json(const json_t *columns, gateway_dc_csv **out,
                                 anm_error_detail *detail);

void gateway_dc_csv_destroy(gateway_dc_csv **csv);

/*
 * Appends one row. Every column's field must be among values, else
 * ANM_ENOTFOUND with detail->message "row has no value for field \"x\"";
 * a non-finite number gives ANM_ERANGE. Values not used by any column are
 * ignored. Nothing is appended on error.
 */
int gateway_dc_csv_add_row(gateway_dc_csv *csv, const gateway_dc_value *values, size_t count,
                           anm_error_detail *detail);

/* Number of data rows so far. */
size_t gateway_dc_csv_rows(const gateway_dc_csv *csv);

/* The text so far (borrowed, NUL-terminated); *length (may be NULL) its size. */
const char *gateway_dc_csv_text(const gateway_dc_csv *csv, size_t *length);

#endif
