/*
 * test_zone.c: the zone file: the three shipped sample zones with their
 * real contents, and every validation error with its key path and message.
 */
#include "engine/zone.h"
#include "testlib.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static anm_case *load_case(const char *relative)
{
    char path[1024];
    anm_error_detail err;
    anm_case *c = NULL;
    anm_test_source_path(path, sizeof path, relative);
    cr_assert_eq(anm_case_load(path, &c, &err), ANM_OK, "%s: %s", relative, err.message);
    return c;
}

/* Loads a shipped zone file through its own "case" key. */
static anm_zone_set *load_sample(const char *relative, anm_case **network)
{
    char path[1024];
    char *case_path = NULL;
    anm_error_detail err;
    anm_zone_set *set = NULL;
    anm_test_source_path(path, sizeof path, relative);
    cr_assert_eq(anm_zone_file_case_path(path, &case_path, &err), ANM_OK, "%s", err.message);
    cr_assert_eq(anm_case_load(case_path, network, &err), ANM_OK, "%s: %s", case_path, err.message);
    int rc = anm_zone_set_load(path, *network, &set, &err);
    cr_assert_eq(rc, ANM_OK, "%s: %s: %s", relative, err.path, err.message);
    cr_expect_str_eq(set->case_path, case_path);
    free(case_path);
    return set;
}

Test(zone, feeder33_sample)
{
    anm_case *network = NULL;
    anm_zone_set *set = load_sample("data/zones/feeder33.json", &network);
    cr_expect_str_eq(network->name, "case33bw");
    cr_assert_eq(set->n_zones, 1);
    const anm_zone *z = anm_zone_set_find(set, "feeder33");
    cr_assert_not_null(z);
    cr_expect_eq(z->access, ANM_ACCESS_LIFO);
    cr_expect_eq(z->mode, ANM_MODE_CORRECTIVE);
    cr_assert_eq(z->n_monitored, 2);
    cr_expect_eq(z->monitored[0].branch, 1); /* the feeder head, bus 1 -> 2 */
    cr_expect_eq(z->monitored[0].direction, -1);
    cr_expect_eq(z->monitored[0].n_seasonal, 2);
    cr_expect_str_eq(z->monitored[0].seasonal[0].season, "winter");
    cr_expect_eq(z->monitored[0].seasonal[0].start_month, 11);
    cr_expect_eq(z->monitored[0].seasonal[0].end_day, 31);
    cr_expect_eq(z->monitored[1].branch, 5);
    cr_expect_eq(z->n_contingencies, 0); /* radial: every branch islands */
    cr_assert_eq(z->n_ders, 3);
    int wind = anm_zone_der_index(z, "wind18");
    cr_assert_geq(wind, 0);
    cr_expect_eq(z->ders[wind].bus, 18);
    cr_expect_eq(z->ders[wind].technology, ANM_TECH_WIND);
    cr_expect_eq(z->ders[wind].lifo_position, 3); /* last in the queue */
    cr_expect_eq(z->ders[wind].connection_year, 2022);
    cr_expect_eq(anm_zone_der_index(z, "nope"), -1);
    cr_expect_eq(z->n_signals, 6);
    cr_expect_eq(z->signals[2].kind, ANM_SIGNAL_BUS_KV);
    cr_expect_float_eq(z->signals[2].scale, 0.001, 0);
    anm_zone_set_destroy(&set);
    cr_expect_null(set);
    anm_case_destroy(&network);
}

Test(zone, mesh30_sample_has_38_contingencies)
{
    anm_case *network = NULL;
    anm_zone_set *set = load_sample("data/zones/mesh30.json", &network);
    const anm_zone *z = &set->zones[0];
    cr_expect_str_eq(z->id, "mesh30");
    cr_expect_eq(z->mode, ANM_MODE_PREVENTIVE);
    cr_expect(z->all_contingencies);
    cr_assert_eq(z->n_contingencies, 38);
    /* the islanding branches 13, 16 and 34 are left out, in file order */
    for (size_t i = 0; i < z->n_contingencies; i++)
        cr_expect(z->contingencies[i] != 13 && z->contingencies[i] != 16 &&
                  z->contingencies[i] != 34);
    cr_expect_eq(z->contingencies[12], 14);
    cr_expect_eq(z->contingencies[37], 41);
    cr_expect_geq(z->n_ders, 4);
    for (size_t m = 0; m < z->n_monitored; m++) {
        const anm_branch *b = &network->branch[z->monitored[m].branch - 1];
        cr_expect_float_eq(z->monitored[m].normal_mw, b->rate_a_mva, 0);
        cr_expect_float_eq(z->monitored[m].post_fault_mw, 1.2 * b->rate_a_mva, 1e-9);
    }
    anm_zone_set_destroy(&set);
    anm_case_destroy(&network);
}

Test(zone, bench118_sample)
{
    anm_case *network = NULL;
    anm_zone_set *set = load_sample("data/zones/bench118.json", &network);
    const anm_zone *z = &set->zones[0];
    cr_expect_eq(z->n_monitored, 10);
    cr_expect_eq(z->n_contingencies, 177);
    cr_expect_eq(z->n_ders, 20);
    cr_expect_eq(z->access, ANM_ACCESS_LIFO);
    for (size_t d = 0; d < z->n_ders; d++)
        cr_expect_eq(z->ders[d].lifo_position, (int)d + 1);
    anm_zone_set_destroy(&set);
    anm_case_destroy(&network);
}

/* ------------------------------------------------------------- errors */

/* A valid zone on case30 in which one fragment can be replaced. */
static char *zone_text(const char *monitored, const char *contingencies, const char *ders,
                       const char *signals, const char *extra)
{
#define ZONE_FORMAT                                                                                \
    "{\"zones\": [{\"id\": \"z\", \"access\": \"lifo\", \"mode\": \"preventive\"%s,\n"             \
    " \"monitored\": [%s],\n \"contingencies\": %s,\n \"ders\": [%s],\n \"signals\": [%s]}]}"
    size_t n = strlen(ZONE_FORMAT) + strlen(monitored) + strlen(contingencies) + strlen(ders) +
               strlen(signals) + strlen(extra) + 1;
    char *text = malloc(n);
    cr_assert_not_null(text);
    cr_assert_geq(snprintf(text, n, ZONE_FORMAT, extra, monitored, contingencies, ders, signals),
                  0);
    return text;
}

#define MON                                                                                        \
    "{\"id\": \"m1\", \"branch\": 1, \"export_direction\": \"from_to\", "                          \
    "\"normal_mw\": 100, \"post_fault_mw\": 120}"
#define DER1                                                                                       \
    "{\"id\": \"w1\", \"bus\": 5, \"technology\": \"wind\", \"capacity_mw\": 10, "                 \
    "\"connection_date\": \"2020-01-31\", \"lifo_position\": 1, \"under_anm\": true}"
#define DER2                                                                                       \
    "{\"id\": \"s2\", \"bus\": 7, \"technology\": \"solar\", \"capacity_mw\": 5, "                 \
    "\"connection_date\": \"2021-06-01\", \"lifo_position\": 2}"
#define SIG "{\"id\": \"g1\", \"kind\": \"der_mw\", \"unit\": \"MW\", \"element\": \"w1\"}"

static anm_case *case30(void)
{
    return load_case("data/grids/matpower/case30.m");
}

static void expect_zone_error(const char *text, int rc_expected, const char *path,
                              const char *message)
{
    anm_case *network = case30();
    anm_zone_set *set = NULL;
    anm_error_detail err;
    int rc = anm_zone_set_parse(text, strlen(text), "z.json", network, &set, &err);
    cr_expect_eq(rc, rc_expected, "rc %d: %s: %s", rc, err.path, err.message);
    cr_expect_null(set);
    cr_expect_str_eq(err.file, "z.json");
    cr_expect_str_eq(err.path, path);
    cr_expect_str_eq(err.message, message);
    anm_case_destroy(&network);
}

static void expect_fragment_error(const char *monitored, const char *contingencies,
                                  const char *ders, const char *signals, const char *extra,
                                  const char *path, const char *message)
{
    char *text = zone_text(monitored, contingencies, ders, signals, extra);
    expect_zone_error(text, ANM_ECONFIG, path, message);
    free(text);
}

Test(zone, valid_fragment_parses)
{
    anm_case *network = case30();
    char *text = zone_text(MON, "[1, 2, 41]", DER1 "," DER2, SIG, "");
    anm_zone_set *set = NULL;
    anm_error_detail err;
    cr_assert_eq(anm_zone_set_parse(text, strlen(text), "z.json", network, &set, &err), ANM_OK,
                 "%s: %s", err.path, err.message);
    const anm_zone *z = &set->zones[0];
    cr_expect_str_eq(z->name, "z"); /* defaults to the id */
    cr_expect_eq(z->n_contingencies, 3);
    cr_expect_eq(z->contingencies[2], 41);
    cr_expect(!z->all_contingencies);
    cr_expect(z->ders[1].under_anm); /* default */
    cr_expect_float_eq(z->signals[0].scale, 1.0, 0);
    cr_expect_null(set->case_path);
    anm_zone_set_destroy(&set);
    anm_case_destroy(&network);
    free(text);
}

Test(zone, syntax_error_has_line_and_column)
{
    anm_case *network = case30();
    anm_zone_set *set = NULL;
    anm_error_detail err;
    const char *text = "{\"zones\": [\n  {\"id\": \"z\",,}\n]}";
    cr_expect_eq(anm_zone_set_parse(text, strlen(text), "z.json", network, &set, &err), ANM_EPARSE);
    cr_expect_eq(err.line, 2);
    cr_expect_eq(err.column, 14);
    cr_expect_str_eq(err.path, "");
    cr_expect_str_eq(err.message, "string or '}' expected near ','");
    const char *dup = "{\"zones\": [], \"zones\": []}";
    cr_expect_eq(anm_zone_set_parse(dup, strlen(dup), "z.json", network, &set, &err), ANM_EPARSE);
    cr_expect_str_eq(err.message, "duplicate object key near '\"zones\"'");
    anm_case_destroy(&network);
}

Test(zone, unknown_keys_and_types)
{
    expect_zone_error("{\"zones\": [], \"extra\": 1}", ANM_ECONFIG, "extra", "unknown key");
    expect_zone_error("{\"zones\": []}", ANM_ECONFIG, "zones", "must list at least one zone");
    expect_zone_error("[]", ANM_ECONFIG, "", "must be an object");
    expect_zone_error("{\"version\": 2, \"zones\": []}", ANM_ECONFIG, "version",
                      "must be 1 (the only zone file version)");
    expect_fragment_error(MON, "[]", DER1, "", ", \"colour\": 1", "zones[0].colour", "unknown key");
    expect_fragment_error(
        MON, "[]", "{\"id\": \"w1\", \"bus\": 5, \"technology\": \"wind\", \"capcity_mw\": 1}", "",
        "", "zones[0].ders[0].capcity_mw", "unknown key");
    expect_zone_error("{\"zones\": [{\"id\": \"z\", \"access\": \"fifo\"}]}", ANM_ECONFIG,
                      "zones[0].access",
                      "must be \"lifo\", \"pro_rata\" or \"min_mw\", not \"fifo\"");
    expect_fragment_error("{\"id\": \"m1\", \"branch\": \"1\"}", "[]", "", "", "",
                          "zones[0].monitored[0].branch", "must be an integer");
    expect_fragment_error("{\"id\": \"m 1\"}", "[]", "", "", "", "zones[0].monitored[0].id",
                          "must start with a letter or digit and contain only letters, digits, "
                          "'_', '-' and '.'");
    expect_fragment_error("", "[]", "", "", "", "zones[0].monitored",
                          "must list at least one monitored branch");
}

Test(zone, monitored_errors)
{
    expect_fragment_error("{\"id\": \"m1\", \"branch\": 42, \"export_direction\": \"from_to\", "
                          "\"normal_mw\": 1, \"post_fault_mw\": 1}",
                          "[]", "", "", "", "zones[0].monitored[0].branch",
                          "branch 42 out of range (the case has branches 1 to 41)");
    expect_fragment_error(MON ", {\"id\": \"m1\"}", "[]", "", "", "",
                          "zones[0].monitored[1].branch", "missing");
    expect_fragment_error(MON ", " MON, "[]", "", "", "", "zones[0].monitored[1].id",
                          "duplicate id \"m1\" (also zones[0].monitored[0])");
    expect_fragment_error("{\"id\": \"m1\", \"branch\": 1, \"export_direction\": \"up\"}", "[]", "",
                          "", "", "zones[0].monitored[0].export_direction",
                          "must be \"from_to\" or \"to_from\", not \"up\"");
    expect_fragment_error("{\"id\": \"m1\", \"branch\": 1, \"export_direction\": \"to_from\", "
                          "\"normal_mw\": 100, \"post_fault_mw\": 90}",
                          "[]", "", "", "", "zones[0].monitored[0].post_fault_mw",
                          "must be >= normal_mw (100)");
    expect_fragment_error("{\"id\": \"m1\", \"branch\": 1, \"export_direction\": \"to_from\", "
                          "\"normal_mw\": 100, \"post_fault_mw\": 120, \"seasonal\": [{\"season\": "
                          "\"winter\", \"start\": \"11-31\", \"end\": \"03-31\", \"normal_mw\": 1, "
                          "\"post_fault_mw\": 1}]}",
                          "[]", "", "", "", "zones[0].monitored[0].seasonal[0].start",
                          "must be a date \"MM-DD\", not \"11-31\"");
}

Test(zone, monitored_branch_out_of_service)
{
    /* case33bw: branch 33 (21-8) is an open tie line */
    anm_case *network = load_case("data/grids/matpower/case33bw.m");
    const char *text =
        "{\"zones\": [{\"id\": \"z\", \"access\": \"lifo\", \"mode\": \"corrective\", "
        "\"monitored\": [{\"id\": \"m1\", \"branch\": 33, \"export_direction\": "
        "\"from_to\", \"normal_mw\": 1, \"post_fault_mw\": 1}]}]}";
    anm_zone_set *set = NULL;
    anm_error_detail err;
    cr_expect_eq(anm_zone_set_parse(text, strlen(text), "z.json", network, &set, &err),
                 ANM_ECONFIG);
    cr_expect_str_eq(err.path, "zones[0].monitored[0].branch");
    cr_expect_str_eq(err.message, "branch 33 is out of service in the case");
    anm_case_destroy(&network);
}

Test(zone, contingency_errors)
{
    expect_fragment_error(MON, "[1, 0]", "", "", "", "zones[0].contingencies[1]",
                          "branch 0 out of range (the case has branches 1 to 41)");
    expect_fragment_error(MON, "[1, 99]", "", "", "", "zones[0].contingencies[1]",
                          "branch 99 out of range (the case has branches 1 to 41)");
    expect_fragment_error(MON, "[2, 2]", "", "", "", "zones[0].contingencies[1]",
                          "branch 2 is listed twice (also zones[0].contingencies[0])");
    expect_fragment_error(MON, "[13]", "", "", "", "zones[0].contingencies[0]",
                          "branch 13 islands the network (a bridge) and cannot be a "
                          "contingency");
    expect_fragment_error(MON, "\"all\"", "", "", "", "zones[0].contingencies",
                          "must be \"all_non_islanding\" or a list of branch numbers");
}

Test(zone, der_errors)
{
    expect_fragment_error(MON, "[]",
                          DER1 ", {\"id\": \"x\", \"bus\": 31, \"technology\": \"wind\"}", "", "",
                          "zones[0].ders[1].bus", "unknown bus 31");
    expect_fragment_error(MON, "[]",
                          DER1 ", " DER2 ", {\"id\": \"x\", \"bus\": 3, \"technology\": \"wind\", "
                               "\"capacity_mw\": -1}",
                          "", "", "zones[0].ders[2].capacity_mw", "must be >= 0");
    expect_fragment_error(MON, "[]", DER1 ", " DER1, "", "", "zones[0].ders[1].id",
                          "duplicate id \"w1\" (also zones[0].ders[0])");
    expect_fragment_error(MON, "[]",
                          DER1 ", {\"id\": \"x\", \"bus\": 3, \"technology\": \"solar\", "
                               "\"capacity_mw\": 1, \"connection_date\": \"2021-01-01\", "
                               "\"lifo_position\": 1}",
                          "", "", "zones[0].ders[1].lifo_position",
                          "position 1 is already used by zones[0].ders[0]");
    expect_fragment_error(MON, "[]",
                          "{\"id\": \"x\", \"bus\": 3, \"technology\": \"solar\", "
                          "\"capacity_mw\": 1, \"connection_date\": \"2021-02-29\"}",
                          "", "", "zones[0].ders[0].connection_date",
                          "must be a date \"YYYY-MM-DD\"");
    expect_fragment_error(MON, "[]", "{\"id\": \"x\", \"bus\": 3, \"technology\": \"nuclear\"}", "",
                          "", "zones[0].ders[0].technology",
                          "must be \"wind\", \"solar\", \"battery\", \"demand\" or \"other\", "
                          "not \"nuclear\"");
}

Test(zone, signal_errors)
{
    expect_fragment_error(MON, "[]", DER1,
                          "{\"id\": \"g1\", \"kind\": \"der_mw\", \"unit\": \"kW\", "
                          "\"element\": \"w1\"}",
                          "", "zones[0].signals[0].unit", "must be \"MW\" for kind der_mw");
    expect_fragment_error(MON, "[]", DER1,
                          "{\"id\": \"g1\", \"kind\": \"der_mw\", \"unit\": \"MW\", "
                          "\"element\": \"w9\"}",
                          "", "zones[0].signals[0].element", "\"w9\" is not a DER of this zone");
    expect_fragment_error(MON, "[]", DER1,
                          "{\"id\": \"g1\", \"kind\": \"branch_mw\", \"unit\": \"MW\", "
                          "\"element\": \"branch:50\"}",
                          "", "zones[0].signals[0].element",
                          "branch 50 out of range (the case has branches 1 to 41)");
    expect_fragment_error(MON, "[]", DER1,
                          "{\"id\": \"g1\", \"kind\": \"bus_kv\", \"unit\": \"kV\", "
                          "\"element\": \"branch:5\"}",
                          "", "zones[0].signals[0].element",
                          "must be \"bus:N\" for this kind, not \"branch:5\"");
    expect_fragment_error(MON, "[]", DER1, SIG ", " SIG, "", "zones[0].signals[1].id",
                          "duplicate id \"g1\" (also zones[0].signals[0])");
    expect_fragment_error(MON, "[]", DER1,
                          "{\"id\": \"g1\", \"kind\": \"der_mw\", \"unit\": \"MW\", "
                          "\"element\": \"w1\", \"scale\": 0}",
                          "", "zones[0].signals[0].scale", "must not be 0");
}

Test(zone, duplicate_zone_id)
{
    const char *zone = "{\"id\": \"z\", \"access\": \"lifo\", \"mode\": \"preventive\", "
                       "\"monitored\": [" MON "]}";
    char text[1024];
    cr_assert_gt(snprintf(text, sizeof text, "{\"zones\": [%s, %s]}", zone, zone), 0);
    expect_zone_error(text, ANM_ECONFIG, "zones[1].id", "duplicate zone id \"z\" (also zones[0])");
}

Test(zone, case_path_is_resolved_against_the_zone_file)
{
    char *p = anm_path_resolve_against("data/zones/feeder33.json", "../grids/matpower/case33bw.m");
    cr_expect_str_eq(p, "data/zones/../grids/matpower/case33bw.m");
    free(p);
    p = anm_path_resolve_against("feeder33.json", "case.m");
    cr_expect_str_eq(p, "case.m");
    free(p);
    p = anm_path_resolve_against("data/zones/x.json", "/abs/case.m");
    cr_expect_str_eq(p, "/abs/case.m");
    free(p);
    char *case_path = NULL;
    anm_error_detail err;
    cr_expect_eq(anm_zone_file_case_path("/nonexistent/z.json", &case_path, &err), ANM_EIO);
    cr_expect_null(case_path);
}

Test(zone, names)
{
    cr_expect_str_eq(anm_access_name(ANM_ACCESS_PRO_RATA), "pro_rata");
    cr_expect_str_eq(anm_mode_name(ANM_MODE_PREVENTIVE), "preventive");
    cr_expect_str_eq(anm_technology_name(ANM_TECH_BATTERY), "battery");
}

/* `anm network check` end to end: the summary and an error's location. */
Test(zone, cli_network_check)
{
    char exe[1024], zones[1024], bad[1024];
    int n = snprintf(exe, sizeof exe, "%s/anm", anm_test_bin_dir());
    cr_assert(n > 0 && (size_t)n < sizeof exe);
    anm_test_source_path(zones, sizeof zones, "data/zones/mesh30.json");
    char *out = NULL, *errtext = NULL;
    char network_arg[] = "network", check_arg[] = "check";
    char *argv[] = {exe, network_arg, check_arg, zones, NULL};
    cr_assert_eq(anm_test_run(argv, &out, &errtext), 0, "%s", errtext);
    cr_expect(strstr(out, "islanding branches  3: 13 16 34") != NULL, "%s", out);
    cr_expect(strstr(out, "contingencies     38 (all non-islanding)") != NULL, "%s", out);
    free(out);
    free(errtext);

    char *dir = anm_test_tmpdir("anm-network");
    n = snprintf(bad, sizeof bad, "%s/bad.m", dir);
    cr_assert(n > 0 && (size_t)n < sizeof bad);
    cr_assert_eq(anm_test_write_file(bad, "mpc.version = '2';\nmpc.baseMVA = 1e;\n"), 0);
    char *argv2[] = {exe, network_arg, check_arg, bad, NULL};
    cr_expect_eq(anm_test_run(argv2, &out, &errtext), 1);
    char expected[1200];
    n = snprintf(expected, sizeof expected, "anm network: %s:2:15: malformed number '1e'\n", bad);
    cr_assert(n > 0);
    cr_expect_str_eq(errtext, expected);
    free(out);
    free(errtext);
    anm_test_rmtree(dir);
    free(dir);
}
