/*
 * anm-forecast dcpf|ptdf|lodf: the researcher's command line, run as a
 * separate process on the shipped cases. The numbers themselves are checked
 * against independent references in test_dcpf.c; here: the formats, the
 * published case9 flows as printed, NaN columns, and the exit statuses and
 * messages of bad usage and bad files.
 */
#include "testlib.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run_forecast(const char *a1, const char *a2, const char *a3, const char *a4,
                        char **out, char **err)
{
    char program[1024], case_path[1024];
    snprintf(program, sizeof program, "%s/anm-forecast", anm_test_bin_dir());
    char *argv[6] = {program, NULL, NULL, NULL, NULL, NULL};
    const char *given[4] = {a1, a2, a3, a4};
    for (size_t i = 0; i < 4 && given[i]; i++) {
        argv[i + 1] = (char *)(uintptr_t)given[i];
        if (strncmp(given[i], "data/", 5) == 0) {
            anm_test_source_path(case_path, sizeof case_path, given[i]);
            argv[i + 1] = case_path;
        }
    }
    return anm_test_run(argv, out, err);
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p; p++) {
        n += *p == '\n';
    }
    return n;
}

Test(cli, dcpf_csv_case9)
{
    char *out = NULL, *err = NULL;
    int status = run_forecast("dcpf", "data/grids/matpower/case9.m", NULL, NULL, &out, &err);
    cr_assert_eq(status, 0, "%s", err);
    cr_assert_eq(strncmp(out, "branch,from_bus,to_bus,status,pf_mw,pt_mw\n1,1,4,1,", 50), 0,
                 "%s", out);
    cr_assert_eq(count_lines(out), 10, "header and nine branches");
    /* MATPOWER rundcpf('case9'): branch 7 (8-2) carries -163 MW, branch 2 (4-5) 28.97 MW */
    const char *line7 = strstr(out, "\n7,8,2,1,");
    cr_assert_not_null(line7);
    double pf = strtod(line7 + 9, NULL);
    cr_assert_float_eq(pf, -163.0, 1e-9);
    const char *line2 = strstr(out, "\n2,4,5,1,");
    cr_assert_not_null(line2);
    char *end = NULL;
    pf = strtod(line2 + 9, &end);
    cr_assert_float_eq(pf, 28.97, 0.005);
    cr_assert_eq(*end, ',');
    cr_assert_float_eq(strtod(end + 1, NULL), -pf, 1e-12, "pt = -pf");
    free(out);
    free(err);
}

Test(cli, dcpf_json_case9)
{
    char *out = NULL, *err = NULL;
    int status = run_forecast("dcpf", "data/grids/matpower/case9.m", "--format", "json", &out,
                              &err);
    cr_assert_eq(status, 0, "%s", err);
    json_error_t jerr;
    json_t *doc = json_loads(out, 0, &jerr);
    cr_assert_not_null(doc, "%s", jerr.text);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "case")), "case9");
    json_t *branches = json_object_get(doc, "branches");
    cr_assert_eq(json_array_size(branches), 9);
    json_t *first = json_array_get(branches, 0);
    cr_assert_eq(json_integer_value(json_object_get(first, "from_bus")), 1);
    cr_assert_eq(json_integer_value(json_object_get(first, "to_bus")), 4);
    cr_assert_float_eq(json_number_value(json_object_get(first, "pf_mw")), 67.0, 1e-9);
    cr_assert_float_eq(json_number_value(json_object_get(first, "pt_mw")), -67.0, 1e-9);
    json_decref(doc);
    free(out);
    free(err);
}

Test(cli, ptdf_csv_header_and_reference_column)
{
    char *out = NULL, *err = NULL;
    int status = run_forecast("ptdf", "data/grids/matpower/case14.m", NULL, NULL, &out, &err);
    cr_assert_eq(status, 0, "%s", err);
    cr_assert_eq(strncmp(out, "branch,1,2,3,4,5,6,7,8,9,10,11,12,13,14\n", 40), 0, "%s", out);
    cr_assert_eq(count_lines(out), 21, "header and 20 branches");
    /* branch 1 (1-2): bus 1 is the reference (column 0); 1 MW injected at
     * bus 2 and withdrawn at bus 1 flows back partly over 1-2: negative */
    const char *row1 = strstr(out, "\n1,");
    cr_assert_not_null(row1);
    char *end = NULL;
    double reference_column = strtod(row1 + 3, &end);
    cr_assert_eq(reference_column, 0.0);
    double bus2 = strtod(end + 1, NULL);
    cr_assert(bus2 < 0.0 && bus2 > -1.0, "PTDF[1][2] = %g", bus2);
    free(out);
    free(err);
}

/* case33bw is radial (its 5 tie lines open): every in-service branch is a
 * bridge, so every LODF column of an in-service branch is NaN, and the
 * columns of the open ties are 0 (with -1 on the diagonal). */
Test(cli, lodf_radial_feeder_is_nan)
{
    char *out = NULL, *err = NULL;
    int status = run_forecast("lodf", "data/grids/matpower/case33bw.m", NULL, NULL, &out, &err);
    cr_assert_eq(status, 0, "%s", err);
    cr_assert_eq(count_lines(out), 38);
    const char *row1 = strstr(out, "\n1,");
    cr_assert_not_null(row1);
    cr_assert_eq(strncmp(row1 + 3, "NaN,NaN,", 8), 0, "%.80s", row1);
    const char *row33 = strstr(out, "\n33,");
    cr_assert_not_null(row33);
    /* row 33 (an open tie): NaN for the 32 radial outages, then -1 on its diagonal */
    const char *p = row33 + 4;
    for (int k = 0; k < 32; k++) {
        cr_assert_eq(strncmp(p, "NaN,", 4), 0, "column %d: %.10s", k + 1, p);
        p += 4;
    }
    cr_assert_eq(strncmp(p, "-1,0,0,0,0\n", 11), 0, "%.20s", p);
    free(out);
    free(err);
}

Test(cli, lodf_json_writes_nan_as_null)
{
    char *out = NULL, *err = NULL;
    int status = run_forecast("lodf", "data/grids/matpower/case9.m", "--format=json", NULL, &out,
                              &err);
    cr_assert_eq(status, 0, "%s", err);
    json_error_t jerr;
    json_t *doc = json_loads(out, 0, &jerr);
    cr_assert_not_null(doc, "%s", jerr.text);
    json_t *lodf = json_object_get(doc, "lodf");
    cr_assert_eq(json_array_size(lodf), 9);
    /* branch 1 (1-4) is the only link of bus 1, the reference bus: a bridge */
    cr_assert(json_is_null(json_array_get(json_array_get(lodf, 1), 0)));
    /* branch 2 (4-5) lies on the ring: its diagonal is -1 */
    cr_assert_float_eq(json_number_value(json_array_get(json_array_get(lodf, 1), 1)), -1.0,
                       1e-15);
    json_decref(doc);
    free(out);
    free(err);
}

Test(cli, bad_usage_exits_2_with_one_line)
{
    char *out = NULL, *err = NULL;
    cr_assert_eq(run_forecast("dcpf", NULL, NULL, NULL, &out, &err), 2);
    cr_assert_str_eq(err, "anm-forecast: dcpf needs a case file (CASE.m) (try 'anm-forecast "
                          "--help')\n");
    free(out);
    free(err);
    cr_assert_eq(run_forecast("dcpf", "data/grids/matpower/case9.m", "--format", "xml", &out,
                              &err),
                 2);
    cr_assert_str_eq(err, "anm-forecast: unknown format \"xml\" (csv or json) (try "
                          "'anm-forecast --help')\n");
    free(out);
    free(err);
    cr_assert_eq(run_forecast("flows", NULL, NULL, NULL, &out, &err), 2);
    cr_assert_str_eq(err, "anm-forecast: unknown command \"flows\" (try 'anm-forecast --help')\n");
    cr_assert_str_eq(out, "");
    free(out);
    free(err);
}

Test(cli, help_and_version)
{
    char *out = NULL, *err = NULL;
    cr_assert_eq(run_forecast("--help", NULL, NULL, NULL, &out, &err), 0);
    cr_assert(strstr(out, "dcpf CASE.m") && strstr(out, "lodf CASE.m"), "%s", out);
    free(out);
    free(err);
    cr_assert_eq(run_forecast("--version", NULL, NULL, NULL, &out, &err), 0);
    cr_assert_eq(strncmp(out, "anm-forecast (anm) ", 19), 0, "%s", out);
    free(out);
    free(err);
}

Test(cli, bad_case_file_exits_1_with_location)
{
    char *dir = anm_test_tmpdir("dcpf-cli");
    char path[1024], expected[1200];
    snprintf(path, sizeof path, "%s/bad.m", dir);
    cr_assert_eq(anm_test_write_file(path, "function mpc = bad\nmpc.baseMVA = 100;\n"
                                           "mpc.bus = [\n 1 3 0 0 0 0 1 1 0 345 1 1.1 0.9;\n"
                                           " 2 1 x 0 0 0 1 1 0 345 1 1.1 0.9;\n];\n"),
                 0);
    char *out = NULL, *err = NULL;
    cr_assert_eq(run_forecast("ptdf", path, NULL, NULL, &out, &err), 1);
    snprintf(expected, sizeof expected, "anm-forecast: %s:5:6: malformed number 'x'\n", path);
    cr_assert_str_eq(err, expected);
    free(out);
    free(err);
    snprintf(path, sizeof path, "%s/missing.m", dir);
    cr_assert_eq(run_forecast("dcpf", path, NULL, NULL, &out, &err), 1);
    cr_assert(strstr(err, "missing.m") != NULL, "%s", err);
    free(out);
    free(err);
    anm_test_rmtree(dir);
    free(dir);
}
