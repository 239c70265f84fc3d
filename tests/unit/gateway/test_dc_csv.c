/*
 * test_dc_csv.c: Data Concentrator file names against the seed's examples
 * (UNIT1_20200915142400000_20HZ_perfmonv1.csv and friends), the errors for
 * bad names, and the CSV writer's exact output.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "gateway/dc_csv.h"

/* 2020-09-15T14:24:00.000Z: 18520 days after 1970-01-01, plus 14:24. */
#define T_20200915_1424 (18520LL * 86400000LL + (14 * 60 + 24) * 60000LL)

Test(dc_file_name, builds_the_seed_examples)
{
    char buf[GATEWAY_DC_NAME_MAX + 1];
    gateway_dc_file_info info = {"UNIT1", T_20200915_1424, GATEWAY_DC_PERFMON_20HZ, 1, 0};
    cr_assert_eq(gateway_dc_file_name(buf, sizeof buf, &info), ANM_OK);
    cr_expect_str_eq(buf, "UNIT1_20200915142400000_20HZ_perfmonv1.csv");
    info.test = 1;
    cr_assert_eq(gateway_dc_file_name(buf, sizeof buf, &info), ANM_OK);
    cr_expect_str_eq(buf, "UNIT1_20200915142400000_20HZ_perfmonv1_test.csv");
    info.kind = GATEWAY_DC_REDEC;
    cr_assert_eq(gateway_dc_file_name(buf, sizeof buf, &info), ANM_OK);
    cr_expect_str_eq(buf, "UNIT1_20200915142400000_redecv1_test.csv");
    info.test = 0;
    info.kind = GATEWAY_DC_PERFMON_1HZ;
    info.utc_ms = T_20200915_1424 + 47 * 1000 + 123; /* milliseconds are the last 3 digits */
    cr_assert_eq(gateway_dc_file_name(buf, sizeof buf, &info), ANM_OK);
    cr_expect_str_eq(buf, "UNIT1_20200915142447123_1HZ_perfmonv1.csv");
}

Test(dc_file_name, refuses_what_cannot_be_named)
{
    char buf[GATEWAY_DC_NAME_MAX + 1];
    gateway_dc_file_info info = {"UNIT 1", 0, GATEWAY_DC_REDEC, 1, 0};
    cr_expect_eq(gateway_dc_file_name(buf, sizeof buf, &info), ANM_EINVAL);
    gateway_dc_file_info v0 = {"U", 0, GATEWAY_DC_REDEC, 0, 0};
    cr_expect_eq(gateway_dc_file_name(buf, sizeof buf, &v0), ANM_EINVAL);
    gateway_dc_file_info ok = {"U", 0, GATEWAY_DC_REDEC, 1, 0};
    cr_expect_eq(gateway_dc_file_name(buf, 10, &ok), ANM_ERANGE);
}

Test(dc_file_name, parses_names_back_including_bm_unit_ids_with_underscores)
{
    gateway_dc_file_info info;
    cr_assert_eq(gateway_dc_file_name_parse("E_ABCD-1_20211031013000500_redecv2_test.csv", &info, NULL),
                 ANM_OK);
    cr_expect_str_eq(info.unit, "E_ABCD-1");
    cr_expect_eq(info.kind, GATEWAY_DC_REDEC);
    cr_expect_eq(info.version, 2);
    cr_expect_eq(info.test, 1);
    /* 2021-10-31: 18931 days after the epoch; 01:30:00.500 */
    cr_expect_eq(info.utc_ms, 18931LL * 86400000LL + 90 * 60000LL + 500);
    cr_assert_eq(gateway_dc_file_name_parse("UNIT1_20200915142400000_20HZ_perfmonv1.csv", &info, NULL),
                 ANM_OK);
    cr_expect_eq(info.utc_ms, T_20200915_1424);
    cr_expect_eq(info.kind, GATEWAY_DC_PERFMON_20HZ);
    cr_expect_eq(info.test, 0);
}

static void expect_bad(const char *name, const char *message, int column)
{
    anm_error_detail d;
    anm_error_detail_clear(&d);
    cr_assert_eq(gateway_dc_file_name_parse(name, NULL, &d), ANM_EPARSE, "%s", name);
    cr_expect_str_eq(d.message, message, "%s", name);
    cr_expect_eq(d.column, column, "%s: column", name);
}

Test(dc_file_name, bad_names_say_what_is_wrong_and_where)
{
    /* the seed's multipart example has a 16-digit stamp: not a valid name */
    expect_bad("UNIT1_2020091514240000_20HZ_perfmonv1.csv",
               "timestamp \"2020091514240000\" must have 17 digits (yyyyMMddHHmmssfff)", 7);
    expect_bad("UNIT1_20200915174715_20HZ_perfmonv1.csv",
               "timestamp \"20200915174715\" must have 17 digits (yyyyMMddHHmmssfff)", 7);
    expect_bad("UNIT1_20200230142400000_redecv1.csv",
               "timestamp \"20200230142400000\" is not a valid UTC time", 7);
    expect_bad("UNIT1_20200915142400000_50HZ_perfmonv1.csv",
               "file kind must be \"20HZ_perfmonv<n>\", \"1HZ_perfmonv<n>\" or \"redecv<n>\"", 0);
    expect_bad("UNIT1_20200915142400000_redecv1.txt", "file name must end in \".csv\"", 36);
    expect_bad("UNIT1_20200915142400000_redecv.csv",
               "file name must end in a version of 1 to 3 digits before \".csv\"", 31);
    expect_bad("UNIT 1_20200915142400000_redecv1.csv",
               "unit id \"UNIT 1\" must be 1 to 64 characters of [A-Za-z0-9_-]", 1);
    expect_bad("_20200915142400000_redecv1.csv",
               "unit id \"\" must be 1 to 64 characters of [A-Za-z0-9_-]", 1);
}

Test(dc_csv, default_perfmon_columns_write_rfc4180_rows)
{
    size_t n;
    const gateway_dc_column *cols = gateway_dc_default_columns(GATEWAY_DC_PERFMON_20HZ, &n);
    gateway_dc_csv *csv = NULL;
    cr_assert_eq(gateway_dc_csv_new(cols, n, &csv), ANM_OK);
    gateway_dc_value row[] = {
        {"timestamp", GATEWAY_DC_TIME, 0, T_20200915_1424, NULL},
        {"frequency_hz", GATEWAY_DC_NUMBER, 49.9876, 0, NULL},
        {"active_power_mw", GATEWAY_DC_NUMBER, -12.5, 0, NULL},
        {"unused", GATEWAY_DC_TEXT, 0, 0, "ignored"},
    };
    cr_assert_eq(gateway_dc_csv_add_row(csv, row, 4, NULL), ANM_OK);
    row[0].utc_ms += 50; /* next 20 Hz sample */
    row[1].number = 50.0;
    cr_assert_eq(gateway_dc_csv_add_row(csv, row, 4, NULL), ANM_OK);
    size_t length;
    const char *text = gateway_dc_csv_text(csv, &length);
    cr_expect_str_eq(text, "timestamp_utc,frequency_hz,active_power_mw\r\n"
                           "2020-09-15T14:24:00.000Z,49.988,-12.500\r\n"
                           "2020-09-15T14:24:00.050Z,50.000,-12.500\r\n");
    cr_expect_eq(length, strlen(text));
    cr_expect_eq(gateway_dc_csv_rows(csv), 2);
    gateway_dc_csv_destroy(&csv);
    cr_expect_null(csv);
}

Test(dc_csv, redeclaration_cells_are_quoted_when_needed_and_missing_fields_refused)
{
    size_t n;
    const gateway_dc_column *cols = gateway_dc_default_columns(GATEWAY_DC_REDEC, &n);
    gateway_dc_csv *csv = NULL;
    cr_assert_eq(gateway_dc_csv_new(cols, n, &csv), ANM_OK);
    gateway_dc_value row[] = {
        {"unit", GATEWAY_DC_TEXT, 0, 0, "E_ABCD-1"},
        {"start", GATEWAY_DC_TIME, 0, T_20200915_1424, NULL},
        {"end", GATEWAY_DC_TIME, 0, T_20200915_1424 + 1800000, NULL},
        {"available_mw", GATEWAY_DC_NUMBER, 7.25, 0, NULL},
        {"reason", GATEWAY_DC_TEXT, 0, 0, "ANM curtailment, \"P90\""},
    };
    cr_assert_eq(gateway_dc_csv_add_row(csv, row, 5, NULL), ANM_OK);
    anm_error_detail d;
    anm_error_detail_clear(&d);
    cr_expect_eq(gateway_dc_csv_add_row(csv, row, 4, &d), ANM_ENOTFOUND);
    cr_expect_str_eq(d.message, "row has no value for field \"reason\"");
    cr_expect_str_eq(gateway_dc_csv_text(csv, NULL),
                     "unit,start_utc,end_utc,available_mw,reason\r\n"
                     "E_ABCD-1,2020-09-15T14:24:00.000Z,2020-09-15T14:54:00.000Z,7.250,"
                     "\"ANM curtailment, \"\"P90\"\"\"\r\n",
                     "a failed row must leave no partial line");
    gateway_dc_csv_destroy(&csv);
}

Test(dc_csv, columns_from_config)
{
    json_error_t e;
    json_t *cols = json_loads("[\"active_power_mw\",{\"header\":\"Freq (Hz)\",\"field\":"
                              "\"frequency_hz\",\"decimals\":2}]",
                              0, &e);
    cr_assert_not_null(cols);
    gateway_dc_csv *csv = NULL;
    cr_assert_eq(gateway_dc_csv_new_from_json(cols, &csv, NULL), ANM_OK);
    gateway_dc_value row[] = {{"frequency_hz", GATEWAY_DC_NUMBER, 49.995, 0, NULL},
                              {"active_power_mw", GATEWAY_DC_NUMBER, 3.0, 0, NULL}};
    cr_assert_eq(gateway_dc_csv_add_row(csv, row, 2, NULL), ANM_OK);
    /* 49.995 is 49.99499999... in binary: %.2f gives 49.99 */
    cr_expect_str_eq(gateway_dc_csv_text(csv, NULL), "active_power_mw,Freq (Hz)\r\n3.000,49.99\r\n");
    gateway_dc_csv_destroy(&csv);
    json_decref(cols);

    cols = json_loads("[\"a\",{\"field\":\"b\",\"decimal\":2}]", 0, &e);
    anm_error_detail d;
    anm_error_detail_clear(&d);
    cr_expect_eq(gateway_dc_csv_new_from_json(cols, &csv, &d), ANM_ECONFIG);
    cr_expect_str_eq(d.path, "columns[1].decimal");
    cr_expect_str_eq(d.message, "unknown key");
    json_decref(cols);
}
