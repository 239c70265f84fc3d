/*
 * anm-forecast curtail: one sample through a zone's rule, run as a separate
 * process on the shipped zones (the rules and constraint sets themselves are
 * checked in test_rule.c and test_constraint_set.c).
 *
 * feeder33 by hand, from Baran & Wu's published loads (kW): 3,715 in all;
 * behind bus 6 (buses 6-18 and 26-33) 1,135 + 920 = 2,055. With solar33 4,
 * battery25 2 and wind18 8 MW at demand scale 1, branch 5 exports
 * 4 + 8 - 2.055 = 9.945 > 3.5 and the head 14 - 3.715 = 10.285 > 5. LIFO:
 * wind18 (last connected) gives max(9.945 - 3.5, 10.285 - 5) = 6.445,
 * keeping 1.555; the head is then at 10.285 - 6.445 = 3.84 MW.
 */
#include "testlib.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* feeder33's numbers are sums of three-decimal loads: 1e-9 MW */
#define TOL 1e-9

static int run_curtail(const char *const *args, char **out, char **err)
{
    char program[1024];
    static char paths[8][1024];
    snprintf(program, sizeof program, "%s/anm-forecast", anm_test_bin_dir());
    char *argv[32] = {program, (char *)(uintptr_t) "curtail"};
    size_t n = 2, n_paths = 0;
    for (size_t i = 0; args[i] && n < 31; i++) {
        argv[n] = (char *)(uintptr_t)args[i];
        if (strncmp(args[i], "data/", 5) == 0 && n_paths < 8) {
            anm_test_source_path(paths[n_paths], sizeof paths[n_paths], args[i]);
            argv[n] = paths[n_paths++];
        }
        n++;
    }
    argv[n] = NULL;
    return anm_test_run(argv, out, err);
}

static json_t *parse(const char *text)
{
    json_error_t error;
    json_t *root = json_loads(text, 0, &error);
    cr_assert_not_null(root, "output is not JSON (%s): %s", error.text, text);
    return root;
}

static json_t *find_by_id(json_t *array, const char *id)
{
    size_t i;
    json_t *item;
    json_array_foreach(array, i, item)
    {
        if (strcmp(json_string_value(json_object_get(item, "id")), id) == 0) {
            return item;
        }
    }
    cr_assert_fail("no entry \"%s\"", id);
    return NULL;
}

static double number(json_t *object, const char *key)
{
    json_t *v = json_object_get(object, key);
    cr_assert(json_is_number(v), "\"%s\" is not a number", key);
    return json_number_value(v);
}

Test(curtail_cli, feeder33_lifo_by_hand)
{
    char *out = NULL, *err = NULL;
    const char *args[] = {"--zones",
                          "data/zones/feeder33.json",
                          "--zone",
                          "feeder33",
                          "--demand-scale",
                          "1",
                          "--available",
                          "wind18=8,solar33=4,battery25=2",
                          "--format",
                          "json",
                          NULL};
    cr_assert_eq(run_curtail(args, &out, &err), 0, "stderr: %s", err);
    json_t *root = parse(out);
    json_t *ders = json_object_get(root, "ders");
    json_t *wind = find_by_id(ders, "wind18");
    cr_expect(fabs(number(wind, "available_mw") - 8.0) <= TOL);
    cr_expect(fabs(number(wind, "dispatched_mw") - 1.555) <= TOL, "%.12g",
              number(wind, "dispatched_mw"));
    cr_expect(fabs(number(wind, "curtailed_mw") - 6.445) <= TOL);
    cr_expect(fabs(number(find_by_id(ders, "solar33"), "curtailed_mw")) <= TOL);
    cr_expect(fabs(number(find_by_id(ders, "battery25"), "dispatched_mw") - 2.0) <= TOL);
    json_t *monitored = json_object_get(root, "monitored");
    json_t *head = find_by_id(monitored, "head");
    cr_expect(fabs(number(head, "flow_mw") - 3.84) <= TOL, "%.12g", number(head, "flow_mw"));
    cr_expect_eq(number(head, "limit_mw"), 5.0);
    json_t *b5 = find_by_id(monitored, "bus5-bus6");
    cr_expect(fabs(number(b5, "flow_mw") - 3.5) <= TOL);
    cr_expect(json_is_true(json_object_get(root, "curtailed")));
    cr_expect(json_is_false(json_object_get(root, "unresolved")));
    cr_expect(fabs(number(root, "total_curtailed_mw") - 6.445) <= TOL);
    cr_expect_str_eq(
        json_string_value(json_object_get(json_object_get(root, "binding"), "monitored")),
        "bus5-bus6", "branch 5 is over by 6.445, the head by 5.285");
    json_decref(root);
    free(out);
    free(err);
}

Test(curtail_cli, text_format_and_defaults_to_capacity)
{
    /* no --available: every DER at capacity, the same sample as above */
    char *out = NULL, *err = NULL;
    const char *args[] = {"--zones", "data/zones/feeder33.json", NULL};
    cr_assert_eq(run_curtail(args, &out, &err), 0, "stderr: %s", err);
    cr_expect(
        strstr(out, "wind18                 18       8.000000       1.555000       6.445000") !=
            NULL,
        "%s", out);
    cr_expect(strstr(out, "curtailed yes, total 6.445000 MW; unresolved no; binding bus5-bus6") !=
                  NULL,
              "%s", out);
    free(out);
    free(err);
}

Test(curtail_cli, islanding_outage_disconnects_wind18)
{
    /* branch 6 out: buses 7-18 go dark with wind18 (the flows are checked by
       value in test_constraint_set.c); here the report says so */
    char *out = NULL, *err = NULL;
    const char *args[] = {
        "--zones", "data/zones/feeder33.json", "--outage", "6", "--format", "json", NULL};
    cr_assert_eq(run_curtail(args, &out, &err), 0, "stderr: %s", err);
    json_t *root = parse(out);
    json_t *wind = find_by_id(json_object_get(root, "ders"), "wind18");
    cr_expect(json_is_false(json_object_get(wind, "energised")));
    cr_expect(json_is_true(
        json_object_get(find_by_id(json_object_get(root, "ders"), "solar33"), "energised")));
    cr_expect_eq(json_integer_value(json_array_get(json_object_get(root, "outaged_branches"), 0)),
                 6);
    json_decref(root);
    free(out);
    free(err);
}

Test(curtail_cli, mesh30_preventive_reports_worst_post_fault)
{
    char *out = NULL, *err = NULL;
    const char *args[] = {"--zones", "data/zones/mesh30.json", "--format", "json", NULL};
    cr_assert_eq(run_curtail(args, &out, &err), 0, "stderr: %s", err);
    json_t *root = parse(out);
    cr_expect_str_eq(json_string_value(json_object_get(root, "mode")), "preventive");
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(root, "monitored"), i, m)
    {
        json_t *post = json_object_get(m, "worst_post_fault");
        cr_assert(json_is_object(post), "every monitored branch has a worst post-fault row");
        cr_expect(number(post, "flow_mw") <= number(post, "limit_mw") + TOL);
        cr_expect(number(m, "flow_mw") <= number(m, "limit_mw") + TOL);
        cr_expect(json_integer_value(json_object_get(post, "contingency")) >= 1);
    }
    /* docs/zones.md: branch 33's post-fault rows bind at full output */
    json_t *b33 = find_by_id(json_object_get(root, "monitored"), "b24-25");
    cr_expect(fabs(number(json_object_get(b33, "worst_post_fault"), "flow_mw") - 32.4) <= 1e-9);
    cr_expect(json_is_true(json_object_get(root, "curtailed")));
    json_decref(root);
    free(out);
    free(err);
}

Test(curtail_cli, unresolved_when_a_firm_der_alone_overloads)
{
    /* wind18 8 MW not under ANM behind branch 5: even with solar33 off,
       branch 5 exports 8 - 2.055 = 5.945 > 3.5: unresolved, solar33 off */
    char *dir = anm_test_tmpdir("curtail");
    char zone_path[1024], case_path[1024];
    snprintf(zone_path, sizeof zone_path, "%s/z.json", dir);
    anm_test_source_path(case_path, sizeof case_path, "data/grids/matpower/case33bw.m");
    const char *text =
        "{\"version\": 1, \"zones\": [{\"id\": \"z\", \"access\": \"min_mw\", \"mode\": "
        "\"corrective\", \"monitored\": [{\"id\": \"b5\", \"branch\": 5, \"export_direction\": "
        "\"to_from\", \"normal_mw\": 3.5, \"post_fault_mw\": 4.2}], \"ders\": ["
        "{\"id\": \"solar33\", \"bus\": 33, \"technology\": \"solar\", \"capacity_mw\": 4, "
        "\"connection_date\": \"2015-06-30\", \"lifo_position\": 1},"
        "{\"id\": \"wind18\", \"bus\": 18, \"technology\": \"wind\", \"capacity_mw\": 8, "
        "\"connection_date\": \"2022-03-01\", \"lifo_position\": 2, \"under_anm\": false}]}]}";
    cr_assert_eq(anm_test_write_file(zone_path, text), 0);
    char *out = NULL, *err = NULL;
    const char *args[] = {"--case", case_path, "--zones", zone_path, "--format", "json", NULL};
    cr_assert_eq(run_curtail(args, &out, &err), 0, "stderr: %s", err);
    json_t *root = parse(out);
    cr_expect(json_is_true(json_object_get(root, "unresolved")));
    cr_expect(json_is_true(json_object_get(root, "curtailed")));
    json_t *ders = json_object_get(root, "ders");
    cr_expect_eq(number(find_by_id(ders, "solar33"), "dispatched_mw"), 0.0);
    cr_expect_eq(number(find_by_id(ders, "wind18"), "dispatched_mw"), 8.0);
    json_t *b5 = find_by_id(json_object_get(root, "monitored"), "b5");
    cr_expect(fabs(number(b5, "flow_mw") - 5.945) <= TOL, "%.12g", number(b5, "flow_mw"));
    json_decref(root);
    free(out);
    free(err);
    anm_test_rmtree(dir);
    free(dir);
}

typedef struct bad_usage {
    const char *args[12];
    int status;
    const char *message;
} bad_usage;

Test(curtail_cli, bad_usage_names_the_problem)
{
    const bad_usage cases[] = {
        {{"--zones", "data/zones/feeder33.json", "--available", "wind99=1", NULL},
         2,
         "anm-forecast: --available: \"wind99\" is not a DER of zone feeder33 (try "
         "'anm-forecast --help')\n"},
        {{"--zones", "data/zones/feeder33.json", "--available", "wind18=9", NULL},
         2,
         "anm-forecast: --available wind18=9: must be a number from 0 to its capacity 8 MW "
         "(try 'anm-forecast --help')\n"},
        {{"--zones", "data/zones/feeder33.json", "--available", "wind18", NULL},
         2,
         "anm-forecast: --available \"wind18\": expected DER=MW (try 'anm-forecast --help')\n"},
        {{"--zones", "data/zones/feeder33.json", "--outage", "99", NULL},
         2,
         "anm-forecast: --outage 99: branch out of range (the case has branches 1 to 37) (try "
         "'anm-forecast --help')\n"},
        {{"--zones", "data/zones/feeder33.json", "--zone", "nowhere", NULL},
         2,
         "anm-forecast: no zone \"nowhere\" in "},
        {{"--available", "wind18=1", NULL},
         2,
         "anm-forecast: curtail needs --zones ZONES.json (try 'anm-forecast --help')\n"},
        {{"--zones", "data/zones/feeder33.json", "--demand-scale", "-1", NULL},
         2,
         "anm-forecast: --demand-scale \"-1\": must be a number >= 0 (try 'anm-forecast "
         "--help')\n"},
        {{"--zones", "data/zones/feeder33.json", "--frobnicate", "1", NULL},
         2,
         "anm-forecast: unknown option \"--frobnicate\" for curtail (try 'anm-forecast "
         "--help')\n"},
        {{"--zones", "data/zones/nonexistent.json", NULL}, 1, "anm-forecast: "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL, *err = NULL;
        int status = run_curtail(cases[i].args, &out, &err);
        cr_expect_eq(status, cases[i].status, "case %zu: status %d, stderr %s", i, status, err);
        cr_expect(strncmp(err, cases[i].message, strlen(cases[i].message)) == 0,
                  "case %zu: stderr \"%s\", expected \"%s\"", i, err, cases[i].message);
        cr_expect_str_eq(out, "", "case %zu prints nothing on stdout", i);
        free(out);
        free(err);
    }
}
