/* test_error.c: anm_strerror and the error detail's set, clear and format. */
#include "engine/error.h"

#include <criterion/criterion.h>
#include <string.h>

Test(error, strerror_names_every_code)
{
    static const struct {
        int code;
        const char *text;
    } cases[] = {
        {ANM_OK, "success"},
        {ANM_ENOMEM, "out of memory"},
        {ANM_EINVAL, "invalid argument"},
        {ANM_EIO, "input/output error"},
        {ANM_EPARSE, "malformed input"},
        {ANM_ECONFIG, "invalid configuration"},
        {ANM_ENOTFOUND, "not found"},
        {ANM_ERANGE, "value out of range"},
        {ANM_EDB, "database error"},
        {ANM_ENET, "network error"},
        {ANM_ETIMEOUT, "timed out"},
        {ANM_EFULL, "full"},
        {ANM_EPROTO, "protocol error"},
        {ANM_EDUP, "duplicate identifier"},
        {ANM_ESTATE, "invalid state"},
        {ANM_ENUMERIC, "numerical failure"},
        {ANM_EAUTH, "not authorised"},
        {ANM_EAGAIN, "temporarily unavailable"},
        {ANM_EINTERNAL, "internal error"},
    };
    size_t n = sizeof cases / sizeof cases[0];
    cr_expect_eq(n, 19, "one case per code from 0 to ANM_EINTERNAL");
    for (size_t i = 0; i < n; i++) {
        cr_expect_eq(cases[i].code, -(int)i, "codes are dense: 0, -1, ..., -18");
        cr_expect_str_eq(anm_strerror(cases[i].code), cases[i].text, "code %d", cases[i].code);
    }
}

Test(error, strerror_of_an_unknown_code_is_not_null)
{
    cr_expect_str_eq(anm_strerror(ANM_EINTERNAL - 1), "unknown error");
    cr_expect_str_eq(anm_strerror(1), "unknown error", "positive values are not anm codes");
    cr_expect_str_eq(anm_strerror(-1000), "unknown error");
}

static anm_error_detail detail(const char *file, int line, int column, const char *path,
                               const char *message)
{
    anm_error_detail d;
    anm_error_detail_set(&d, file, line, column, path, "%s", message);
    return d;
}

static void expect_format(anm_error_detail d, const char *expected)
{
    char buf[1024];
    int n = anm_error_detail_format(&d, buf, sizeof buf);
    cr_expect_str_eq(buf, expected);
    cr_expect_eq(n, (int)strlen(expected), "returns the length written");
}

Test(error, format_forms)
{
    expect_format(detail("zones.json", 12, 7, "zones[1].ders[3].capacity_mw", "must be positive"),
                  "zones.json:12:7: zones[1].ders[3].capacity_mw: must be positive");
    expect_format(detail("case33bw.m", 40, 0, NULL, "expected ';'"), "case33bw.m:40: expected ';'");
    expect_format(detail("svc.json", 0, 0, "database.pool_size", "value 0 is below the minimum 1"),
                  "svc.json: database.pool_size: value 0 is below the minimum 1");
    expect_format(detail("svc.json", 0, 0, "", "could not open config file"),
                  "svc.json: could not open config file");
    expect_format(detail(NULL, 3, 9, NULL, "unexpected token"),
                  "line 3, column 9: unexpected token");
    expect_format(detail("", 3, 0, "", "unexpected token"), "line 3: unexpected token");
    expect_format(detail(NULL, 0, 0, "routes[2].port", "missing required key"),
                  "routes[2].port: missing required key");
    expect_format(detail(NULL, 0, 0, NULL, "bare message"), "bare message");
}

Test(error, format_truncates_and_reports_the_full_length)
{
    anm_error_detail d = detail("f.json", 1, 2, "a.b", "message");
    char small[10];
    int n = anm_error_detail_format(&d, small, sizeof small);
    cr_expect_eq(n, (int)strlen("f.json:1:2: a.b: message"));
    cr_expect_str_eq(small, "f.json:1:");
}

Test(error, set_formats_the_message_and_truncates_long_fields)
{
    anm_error_detail d;
    char long_file[400];
    memset(long_file, 'x', sizeof long_file - 1);
    long_file[sizeof long_file - 1] = '\0';
    anm_error_detail_set(&d, long_file, 5, 6, "zones[%d]", "capacity %d MW below %s", -3, "zero");
    cr_expect_eq(strlen(d.file), sizeof d.file - 1, "file truncated to fit");
    cr_expect_eq(d.file[0], 'x');
    cr_expect_str_eq(d.path, "zones[%d]", "the path is copied, not formatted");
    cr_expect_str_eq(d.message, "capacity -3 MW below zero");
    cr_expect_eq(d.line, 5);
    cr_expect_eq(d.column, 6);
    anm_error_detail_clear(&d);
    cr_expect_str_eq(d.file, "");
    cr_expect_str_eq(d.path, "");
    cr_expect_str_eq(d.message, "");
    cr_expect_eq(d.line, 0);
    cr_expect_eq(d.column, 0);
    anm_error_detail_set(NULL, "f", 1, 1, NULL, "ignored"); /* optional detail pointers */
    anm_error_detail_clear(NULL);
}
