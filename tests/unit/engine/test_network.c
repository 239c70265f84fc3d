/*
 * test_network.c: the MATPOWER case reader against the shipped case files
 * (counts from data/grids/NOTICE.md, values computed by hand from the
 * files) and every error path with its message and location.
 */
#include "engine/network.h"
#include "testlib.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static anm_case *load_case(const char *relative)
{
    char path[1024];
    anm_error_detail err;
    anm_case *c = NULL;
    anm_test_source_path(path, sizeof path, relative);
    int rc = anm_case_load(path, &c, &err);
    cr_assert_eq(rc, ANM_OK, "%s: %s (line %d)", relative, err.message, err.line);
    return c;
}

static size_t count_bridges(const anm_case *c, unsigned char *out)
{
    cr_assert_eq(anm_case_find_bridges(c, out), ANM_OK);
    size_t n = 0;
    for (size_t i = 0; i < c->n_branch; i++)
        n += out[i];
    return n;
}

typedef struct expected_counts {
    const char *file;
    const char *name;
    double base_mva;
    size_t buses, gens, gens_in_service, branches, bridges;
    int ref_bus;
} expected_counts;

/* The NOTICE.md table; bridges counted independently by removing each
   in-service branch in turn and counting islands (a second method). */
static const expected_counts cases[] = {
    {"data/grids/matpower/case9.m", "case9", 100, 9, 3, 3, 9, 3, 1},
    {"data/grids/matpower/case14.m", "case14", 100, 14, 5, 5, 20, 1, 1},
    {"data/grids/matpower/case30.m", "case30", 100, 30, 6, 6, 41, 3, 1},
    {"data/grids/matpower/case33bw.m", "case33bw", 10, 33, 1, 1, 37, 32, 1},
    {"data/grids/matpower/case69.m", "case69", 10, 69, 1, 1, 68, 68, 1},
    {"data/grids/matpower/case118.m", "case118", 100, 118, 54, 54, 186, 9, 69},
    {"data/grids/matpower/case300.m", "case300", 100, 300, 69, 69, 411, 89, 7049},
    {"data/grids/matpower/case_ACTIVSg2000.m", "case_ACTIVSg2000", 100, 2000, 544, 432, 3206, 450,
     7098},
    {"data/grids/pglib-opf/pglib_opf_case30_ieee.m", "pglib_opf_case30_ieee", 100, 30, 6, 6, 41, 3,
     1},
    {"data/grids/pglib-opf/pglib_opf_case118_ieee.m", "pglib_opf_case118_ieee", 100, 118, 54, 54,
     186, 9, 69},
};

Test(network, shipped_cases_match_the_notice_table)
{
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const expected_counts *e = &cases[k];
        anm_case *c = load_case(e->file);
        cr_expect_str_eq(c->name, e->name);
        cr_expect_eq(c->base_mva, e->base_mva, "%s", e->file);
        cr_expect_eq(c->n_bus, e->buses, "%s: %zu buses", e->file, c->n_bus);
        cr_expect_eq(c->n_gen, e->gens, "%s", e->file);
        cr_expect_eq(anm_case_in_service_gens(c), e->gens_in_service, "%s", e->file);
        cr_expect_eq(c->n_branch, e->branches, "%s", e->file);
        cr_expect_eq(c->bus[c->ref_bus_index].id, e->ref_bus, "%s", e->file);
        unsigned char *bridges = calloc(c->n_branch, 1);
        cr_expect_eq(count_bridges(c, bridges), e->bridges, "%s", e->file);
        free(bridges);
        anm_case_destroy(&c);
        cr_expect_null(c);
    }
}

Test(network, case30_islanding_branches_are_13_16_34)
{
    anm_case *c = load_case("data/grids/matpower/case30.m");
    unsigned char bridges[41];
    cr_assert_eq(count_bridges(c, bridges), 3);
    /* branch 13: 9-11 (bus 11 hangs off 9), 16: 12-13, 34: 25-26 */
    cr_expect(bridges[12] && bridges[15] && bridges[33]);
    cr_expect_eq(c->branch[33].from_bus, 25);
    cr_expect_eq(c->branch[33].to_bus, 26);
    cr_expect_eq(c->branch[0].rate_a_mva, 130);
    anm_case_destroy(&c);
}

Test(network, case33bw_every_in_service_branch_is_a_bridge)
{
    anm_case *c = load_case("data/grids/matpower/case33bw.m");
    unsigned char bridges[37];
    count_bridges(c, bridges);
    for (size_t i = 0; i < 37; i++) {
        /* branches 33..37 are the open tie lines (status 0) */
        cr_expect_eq(c->branch[i].status, i < 32 ? 1 : 0, "branch %zu", i + 1);
        cr_expect_eq(bridges[i], i < 32 ? 1 : 0, "branch %zu", i + 1);
    }
    anm_case_destroy(&c);
}

Test(network, case33bw_units_are_converted)
{
    anm_case *c = load_case("data/grids/matpower/case33bw.m");
    /* Zbase = (12.66 kV)^2 / 10 MVA = 16.02756 ohm; branch 1 is 0.0922 + j0.0470 ohm */
    double zbase = 12.66e3 * 12.66e3 / 10e6;
    cr_expect_float_eq(zbase, 16.02756, 1e-9);
    cr_expect_float_eq(c->branch[0].r_pu, 0.005752591161723931, 1e-15);
    cr_expect_float_eq(c->branch[0].x_pu, 0.002932448856844086, 1e-15);
    /* branch 16 (16-17): 1.2890 + j1.7210 ohm */
    cr_expect_float_eq(c->branch[15].r_pu, 1.2890 / zbase, 1e-15);
    cr_expect_float_eq(c->branch[15].x_pu, 1.7210 / zbase, 1e-15);
    /* bus 2: 100 kW, 60 kVAr; bus 30: 200 kW, 600 kVAr */
    cr_expect_float_eq(c->bus[1].pd_mw, 0.100, 1e-15);
    cr_expect_float_eq(c->bus[1].qd_mvar, 0.060, 1e-15);
    cr_expect_float_eq(c->bus[29].qd_mvar, 0.600, 1e-15);
    double total = 0;
    for (size_t i = 0; i < c->n_bus; i++)
        total += c->bus[i].pd_mw;
    cr_expect_float_eq(total, 3.715, 1e-12); /* Baran & Wu: 3715 kW */
    cr_expect_str_eq(c->conversions,
                     "branch r,x ohm->p.u. (Vbase 12.66 kV, Sbase 10 MVA); bus Pd,Qd kW->MW");
    anm_case_destroy(&c);
}

Test(network, case141_loads_from_kva_and_power_factor)
{
    anm_case *c = load_case("data/grids/matpower/case141.m");
    int i = anm_case_bus_index(c, 8); /* 75 kVA at 0.85 */
    cr_assert_geq(i, 0);
    cr_expect_float_eq(c->bus[i].pd_mw, 0.075 * 0.85, 1e-15);
    cr_expect_float_eq(c->bus[i].qd_mvar, 0.075 * sqrt(1 - 0.85 * 0.85), 1e-15);
    cr_expect(strstr(c->conversions, "Pd*0.85") != NULL, "%s", c->conversions);
    anm_case_destroy(&c);
}

Test(network, activsg2000_extra_columns_and_sparse_ids)
{
    anm_case *c = load_case("data/grids/matpower/case_ACTIVSg2000.m");
    cr_expect_eq(c->bus[0].id, 1001);
    cr_expect_float_eq(c->bus[0].pd_mw, 20.78, 1e-12);
    cr_expect_float_eq(c->bus[0].base_kv, 115, 1e-12);
    cr_expect_eq(anm_case_bus_index(c, 1002), 1);
    cr_expect_eq(anm_case_bus_index(c, 1000), -1);
    anm_case_destroy(&c);
}

Test(network, case300_bus_lookup_and_taps)
{
    anm_case *c = load_case("data/grids/matpower/case300.m");
    int ref = anm_case_bus_index(c, 7049);
    cr_expect_eq(ref, c->ref_bus_index);
    size_t taps = 0;
    for (size_t i = 0; i < c->n_branch; i++)
        taps += c->branch[i].tap != 0 && anm_branch_tap(&c->branch[i]) != 1.0;
    cr_expect_eq(taps, 62); /* NOTICE.md: 62 taps */
    anm_case_destroy(&c);
}

/* ------------------------------------------------------------ syntax */

#define HEAD "function mpc = t\nmpc.version = '2';\nmpc.baseMVA = 100;\n"
#define BUS2 "mpc.bus = [\n 1 3 0 0 0 0 1 1 0 10 1 1 1;\n 2 1 5 0 0 0 1 1 0 10 1 1 1;\n];\n"
#define GEN1 "mpc.gen = [ 1 5 0 9 -9 1 100 1 9 0 ];\n"
#define BR1  "mpc.branch = [ 1 2 0 0.1 0 50 0 0 0 0 1 ];\n"

static int parse(const char *text, anm_case **c, anm_error_detail *err)
{
    return anm_case_parse(text, strlen(text), "t.m", c, err);
}

static void expect_error(const char *text, int rc_expected, int line, int column, const char *path,
                         const char *message)
{
    anm_case *c = NULL;
    anm_error_detail err;
    int rc = parse(text, &c, &err);
    cr_expect_eq(rc, rc_expected, "rc %d for message '%s'", rc, err.message);
    cr_expect_null(c);
    cr_expect_str_eq(err.file, "t.m");
    cr_expect_eq(err.line, line, "line %d, expected %d (%s)", err.line, line, err.message);
    cr_expect_eq(err.column, column, "column %d, expected %d (%s)", err.column, column,
                 err.message);
    cr_expect_str_eq(err.path, path);
    cr_expect_str_eq(err.message, message);
    anm_case_destroy(&c);
}

Test(network, minimal_case_with_continuations_commas_and_comments)
{
    const char *text = "function mpc = tiny % comment\n"
                       "mpc.version = '2';\n"
                       "mpc.baseMVA = 100;\n"
                       "mpc.bus = [ %% header\n"
                       "  1, 3, 0, 0, 0, 0, 1, 1, 0, 10, 1, 1, 1\n"
                       "  2  1  5  ...  split\n"
                       "  0  0  0  1  1  0  10  1  1  1; 3 1 -1.5e1 0 0 0 1 1 0 10 1 1 1\n"
                       "];\n"
                       "mpc.gen = [1 5 0 9 -9 1 100 1 9 0];\n"
                       "mpc.branch = [1 2 0 0.1 0 0 0 0 0 0 1; 2 3 0 0.1 0 0 0 0 0.95 0 1;\n"
                       "2 3 0 0.2 0 0 0 0 0 0 1];\n"
                       "mpc.gencost = [2 0 0 3 0 20 0];\n"
                       "mpc.bus_name = { 'a;b'; 'it''s' };\n";
    anm_case *c = NULL;
    anm_error_detail err;
    cr_assert_eq(parse(text, &c, &err), ANM_OK, "%d:%d %s", err.line, err.column, err.message);
    cr_expect_str_eq(c->name, "tiny");
    cr_expect_eq(c->n_bus, 3);
    cr_expect_float_eq(c->bus[1].pd_mw, 5, 1e-15);
    cr_expect_float_eq(c->bus[2].pd_mw, -15, 1e-15);
    cr_expect_eq(c->n_branch, 3);
    cr_expect_float_eq(anm_branch_tap(&c->branch[0]), 1.0, 0);
    cr_expect_float_eq(anm_branch_tap(&c->branch[1]), 0.95, 0);
    unsigned char bridges[3];
    /* 1-2 is a bridge; the two parallel 2-3 branches are not */
    cr_expect_eq(count_bridges(c, bridges), 1);
    cr_expect(bridges[0] && !bridges[1] && !bridges[2]);
    cr_expect_str_eq(c->conversions, "");
    anm_case_destroy(&c);
}

Test(network, syntax_errors_name_line_and_column)
{
    expect_error(HEAD
                 "mpc.bus = [\n 1 3 0 0 0 0 1 1 0 10 1 1 1;\n 2 1 x 0 0 0 1 1 0 10 1 1 1;\n];\n",
                 ANM_EPARSE, 6, 6, "", "malformed number 'x'");
    expect_error(HEAD "mpc.bus = [\n 1 3 0 0 0 0 1 1 0 10 1 1 1;\n 2 1 0 0 0 1 1 0 10 1 1 1;\n];\n",
                 ANM_EPARSE, 6, 2, "", "row 2 of mpc.bus has 12 columns, the rows above have 13");
    expect_error(HEAD "mpc.bus = [\n 1 3 0 0 0 0 1 1 0 10 1 1 1;\n", ANM_EPARSE, 4, 11, "",
                 "unterminated matrix mpc.bus (no closing ']')");
    expect_error(HEAD "mpc.bus = [ 1 3 1.2.3 ];\n", ANM_EPARSE, 4, 17, "",
                 "malformed number '1.2.3'");
    expect_error(HEAD "mpc.bus = [ 1 3 NaN ];\n", ANM_EPARSE, 4, 17, "", "malformed number 'NaN'");
    expect_error(HEAD "mpc.bus = [ 1 3 (2) ];\n", ANM_EPARSE, 4, 17, "", "expected a number");
    expect_error("mpc.version = '1';\n", ANM_EPARSE, 1, 15, "",
                 "unsupported case format version '1' (only '2' is read)");
    expect_error(HEAD BUS2 "mpc.bus(:, PD) = mpc.bus(:, PD) * 2;\n", ANM_EPARSE, 8, 1, "",
                 "unsupported statement 'mpc.bus(:PD)=mpc.bus(:PD)*2'");
    expect_error(HEAD "Vbase = mpc.bus(1, BASE_KV) * 1e3;\n", ANM_EPARSE, 4, 1, "",
                 "statement uses mpc.bus before it is assigned");
    expect_error(HEAD BUS2 BUS2, ANM_EPARSE, 8, 1, "", "mpc.bus is assigned twice");
    expect_error(HEAD "mpc.areas = [1 2;\n", ANM_EPARSE, 4, 1, "",
                 "unterminated bracket in statement");
    expect_error(HEAD "mpc.bus = [ 1 3 0 0 ] x;\n", ANM_EPARSE, 4, 23, "",
                 "expected ';' or a new line after the value");
}

Test(network, semantic_errors_name_the_entry)
{
    expect_error(HEAD BUS2 GEN1
                 "mpc.branch = [\n 1 2 0 0.1 0 0 0 0 0 0 1;\n 2 9 0 0.1 0 0 0 0 0 0 1;\n];\n",
                 ANM_ECONFIG, 11, 0, "branch[2].to_bus", "unknown bus 9");
    expect_error(
        HEAD
        "mpc.bus = [\n 1 3 0 0 0 0 1 1 0 10 1 1 1;\n 1 1 5 0 0 0 1 1 0 10 1 1 1;\n];\n" GEN1 BR1,
        ANM_ECONFIG, 6, 0, "bus[2].id", "duplicate bus id 1 (also bus[1])");
    expect_error(
        HEAD
        "mpc.bus = [\n 1 1 0 0 0 0 1 1 0 10 1 1 1;\n 2 1 5 0 0 0 1 1 0 10 1 1 1;\n];\n" GEN1 BR1,
        ANM_ECONFIG, 4, 0, "bus", "no reference bus (a bus of type 3)");
    expect_error(HEAD "mpc.bus = [ 1 3 0 0 0 0 1 1 0 10 1 1 ];\n" GEN1 BR1, ANM_ECONFIG, 4, 0,
                 "bus", "rows have 12 columns, at least 13 are needed");
    expect_error(HEAD "mpc.bus = [ 1 7 0 0 0 0 1 1 0 10 1 1 1 ];\n" GEN1 BR1, ANM_ECONFIG, 4, 0,
                 "bus[1].type", "must be 1 (PQ), 2 (PV), 3 (reference) or 4 (isolated), not 7");
    expect_error(HEAD "mpc.bus = [ 1.5 3 0 0 0 0 1 1 0 10 1 1 1 ];\n" GEN1 BR1, ANM_ECONFIG, 4, 0,
                 "bus[1].id", "must be an integer, not 1.5");
    expect_error(HEAD BUS2 "mpc.gen = [ 4 5 0 9 -9 1 100 1 9 0 ];\n" BR1, ANM_ECONFIG, 8, 0,
                 "gen[1].bus", "unknown bus 4");
    expect_error(HEAD BUS2 BR1, ANM_ECONFIG, 0, 0, "gen", "missing (mpc.gen is required)");
    expect_error("mpc.version = '2';\n" BUS2 GEN1 BR1, ANM_ECONFIG, 0, 0, "baseMVA", "missing");
    expect_error("mpc.baseMVA = 10;\n" BUS2 GEN1 BR1, ANM_ECONFIG, 0, 0, "version",
                 "missing (mpc.version = '2' is required; only MATPOWER case format version 2 "
                 "is read)");
}

Test(network, load_reports_missing_file)
{
    anm_case *c = NULL;
    anm_error_detail err;
    cr_expect_eq(anm_case_load("/nonexistent/x.m", &c, &err), ANM_EIO);
    cr_expect_null(c);
    cr_expect_str_eq(err.file, "/nonexistent/x.m");
    cr_expect_str_eq(err.message, "could not open: No such file or directory");
}

Test(network, destroy_is_idempotent)
{
    anm_case *c = NULL;
    anm_case_destroy(&c);
    anm_case_destroy(NULL);
    cr_expect_null(c);
}

Test(network, deep_radial_chain_does_not_overflow)
{
    /* 200,000 buses in a line: every branch a bridge, found without recursion */
    size_t n = 200000;
    anm_case c = {0};
    c.n_bus = n;
    c.n_branch = n - 1;
    c.bus = calloc(n, sizeof *c.bus);
    c.bus_by_id = calloc(n, sizeof *c.bus_by_id);
    c.branch = calloc(n - 1, sizeof *c.branch);
    unsigned char *bridges = calloc(n, 1);
    cr_assert(c.bus && c.bus_by_id && c.branch && bridges);
    for (size_t i = 0; i < n; i++) {
        c.bus[i].id = (int)i + 1;
        c.bus_by_id[i] = (int)i;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        c.branch[i].from_bus = (int)i + 1;
        c.branch[i].to_bus = (int)i + 2;
        c.branch[i].status = 1;
    }
    cr_expect_eq(count_bridges(&c, bridges), n - 1);
    free(c.bus);
    free(c.bus_by_id);
    free(c.branch);
    free(bridges);
}
