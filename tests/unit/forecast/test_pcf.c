/*
 * test_pcf.c: the Monte Carlo PCF against answers computed independently:
 * a Beta-distributed wind DER behind one constraint (GSL's Beta CDF and a
 * quadrature of its tail), discrete outage states enumerated exactly, and
 * identical results at 1, 2 and 8 threads.
 */
#include "engine/network.h"
#include "engine/zone.h"
#include "forecast/inputs.h"
#include "forecast/pcf.h"
#include "testlib.h"

#include <criterion/criterion.h>
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>
#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Two buses, two identical parallel branches; bus 1 the reference, no load. */
static const char two_bus_case[] =
    "function mpc = twobus\n"
    "mpc.version = '2';\n"
    "mpc.baseMVA = 100;\n"
    "mpc.bus = [\n"
    " 1 3 0 0 0 0 1 1 0 33 1 1.1 0.9;\n"
    " 2 1 0 0 0 0 1 1 0 33 1 1.1 0.9;\n"
    "];\n"
    "mpc.gen = [\n"
    " 1 0 0 100 -100 1 100 1 100 0;\n"
    "];\n"
    "mpc.branch = [\n"
    " 1 2 0.01 0.1 0 100 100 100 0 0 1 -360 360;\n"
    " 1 2 0.01 0.1 0 100 100 100 0 0 1 -360 360;\n"
    "];\n";

/* One wind DER of 100 MW at bus 2; branch 1 monitored in the export direction (2 -> 1). */
static const char two_bus_zones[] =
    "{\"version\":1,\"zones\":[{\"id\":\"z\",\"name\":\"two bus\",\"access\":\"lifo\","
    "\"mode\":\"corrective\",\"monitored\":[{\"id\":\"m1\",\"branch\":1,\"export_direction\":"
    "\"to_from\",\"normal_mw\":%g,\"post_fault_mw\":%g}],\"contingencies\":[],"
    "\"ders\":[{\"id\":\"w\",\"bus\":2,\"technology\":\"wind\",\"capacity_mw\":100,"
    "\"connection_date\":\"2020-01-01\",\"lifo_position\":1,\"under_anm\":true}],"
    "\"signals\":[]}]}";

typedef struct fixture {
    anm_case *network;
    anm_zone_set *zones;
    forecast_inputs *inputs;
    forecast_pcf_model *model;
} fixture;

static void fixture_load(fixture *f, double normal_mw, const char *inputs_text)
{
    anm_error_detail err;
    memset(f, 0, sizeof *f);
    gsl_set_error_handler_off();
    cr_assert_eq(anm_case_parse(two_bus_case, strlen(two_bus_case), "twobus.m", &f->network, &err),
                 ANM_OK, "%s", err.message);
    char zones[2048];
    int n = snprintf(zones, sizeof zones, two_bus_zones, normal_mw, normal_mw);
    cr_assert(n > 0 && (size_t)n < sizeof zones);
    cr_assert_eq(anm_zone_set_parse(zones, (size_t)n, "zones.json", f->network, &f->zones, &err),
                 ANM_OK, "%s: %s", err.path, err.message);
    cr_assert_eq(forecast_inputs_parse(inputs_text, strlen(inputs_text), "inputs.json",
                                       &f->zones->zones[0], &f->inputs, &err),
                 ANM_OK, "%s: %s", err.path, err.message);
    cr_assert_eq(forecast_pcf_model_new(f->network, &f->zones->zones[0], f->inputs, &f->model,
                                        &err),
                 ANM_OK, "%s", err.message);
}

static void fixture_free(fixture *f)
{
    forecast_pcf_model_destroy(&f->model);
    forecast_inputs_destroy(&f->inputs);
    anm_zone_set_destroy(&f->zones);
    anm_case_destroy(&f->network);
}

static double beta_tail(double w, void *params)
{
    const double *ab = params;
    return 1.0 - gsl_cdf_beta_P(w, ab[0], ab[1]);
}

/*
 * Flow on branch 1 is half the DER output (two identical parallel
 * branches), so with limit L the DER is curtailed when 50 w > L:
 * P = 1 - I_{L/50}(a, b); curtailment 2 (50 w - L)+ MW (LIFO cuts the DER
 * until the flow is at L), E = 100 * integral_{L/50}^1 (1 - F(w)) dw.
 */
Test(pcf, beta_wind_single_constraint_matches_beta_cdf)
{
    const double a = 2.0, b = 5.0, limit = 12.0;
    char inputs[1024];
    int n = snprintf(inputs, sizeof inputs,
                     "{\"version\":1,\"zone\":\"z\",\"settlement_date\":\"2021-06-01\","
                     "\"periods\":[{\"period\":1,\"demand\":{\"kind\":\"empirical\","
                     "\"values\":[1]},\"wind\":{\"alpha\":%g,\"beta\":%g,\"sigma\":0}}]}",
                     a, b);
    cr_assert(n > 0 && (size_t)n < sizeof inputs);
    fixture f;
    fixture_load(&f, limit, inputs);
    forecast_pcf_config config = forecast_pcf_config_default();
    config.seed = 42;
    config.max_samples = 200000;
    config.threads = 2;
    forecast_pcf_result *r = NULL;
    cr_assert_eq(forecast_pcf_run(f.model, &f.inputs->periods[0], &config, &r, NULL), ANM_OK);
    double threshold = limit / 50.0;
    double p_exact = 1.0 - gsl_cdf_beta_P(threshold, a, b);
    const forecast_pcf_der *d = &r->ders[0];
    cr_expect(fabs(d->pcf.value - p_exact) < 4.0 * d->pcf.se, "pcf %g (se %g) vs exact %g",
              d->pcf.value, d->pcf.se, p_exact);
    cr_expect(d->pcf.se > 0.0 && d->pcf.se < 0.002);

    double ab[2] = {a, b}, integral, abserr;
    gsl_integration_workspace *ws = gsl_integration_workspace_alloc(200);
    gsl_function fn = {beta_tail, ab};
    cr_assert_eq(gsl_integration_qags(&fn, threshold, 1.0, 1e-12, 1e-10, 200, ws, &integral,
                                      &abserr),
                 GSL_SUCCESS);
    gsl_integration_workspace_free(ws);
    double mean_exact = 100.0 * integral;
    cr_expect(fabs(d->expected_curtailed_mw.value - mean_exact) <
                  4.0 * d->expected_curtailed_mw.se,
              "E[curtailed] %g (se %g) vs exact %g", d->expected_curtailed_mw.value,
              d->expected_curtailed_mw.se, mean_exact);
    cr_expect(fabs(d->expected_curtailed_mwh.value - 0.5 * d->expected_curtailed_mw.value) <
              1e-12);
    /* P90 of curtailment: 100 w_0.9 - 2L where w_0.9 is the Beta's 0.9 quantile */
    double p90_exact = 100.0 * gsl_cdf_beta_Pinv(0.9, a, b) - 2.0 * limit;
    if (p90_exact < 0.0) {
        p90_exact = 0.0;
    }
    cr_expect(fabs(d->curtailment_p90_mw.value - p90_exact) <
                  4.0 * d->curtailment_p90_mw.se + 1e-4,
              "p90 %g (se %g) vs exact %g", d->curtailment_p90_mw.value,
              d->curtailment_p90_mw.se, p90_exact);
    /* expected available = 100 a / (a + b) */
    cr_expect(fabs(d->expected_available_mw.value - 100.0 * a / (a + b)) <
              4.0 * d->expected_available_mw.se);
    /* delivered + curtailed = available, sample by sample, so in the means */
    cr_expect(fabs(d->expected_delivered_mw.value + d->expected_curtailed_mw.value -
                   d->expected_available_mw.value) < 1e-9);
    cr_expect(fabs(r->anm_acts.value - d->pcf.value) < 1e-15);
    cr_expect_eq(r->unresolved.value, 0.0);
    cr_expect_eq(r->n_bindings, 1);
    cr_expect(fabs(r->bindings[0].frequency - d->pcf.value) < 1e-15);
    cr_expect(fabs(r->bindings[0].sensitivity[0] - 0.5) < 1e-9, "sensitivity %g",
              r->bindings[0].sensitivity[0]);
    /* headroom = L - 50 w: its P10 is L - 50 w_0.9 */
    double h10_exact = limit - 50.0 * gsl_cdf_beta_Pinv(0.9, a, b);
    cr_expect(fabs(r->headroom_p10_mw.value - h10_exact) < 4.0 * r->headroom_p10_mw.se + 1e-4,
              "headroom p10 %g (se %g) vs %g", r->headroom_p10_mw.value, r->headroom_p10_mw.se,
              h10_exact);
    forecast_pcf_result_destroy(&r);
    fixture_free(&f);
}

/*
 * Wind fixed at 0.6 (60 MW). Intact: 30 MW on branch 1, limit 40 holds.
 * With branch 2 out (probability 0.3) branch 1 carries 60 MW: curtailed by
 * exactly 20 MW. With both out (0.1) the DER is islanded. So P(curtail) =
 * 0.3 and E[curtailed] = 6 MW exactly, by enumeration.
 */
Test(pcf, outage_states_match_enumeration)
{
    const char *inputs =
        "{\"version\":1,\"zone\":\"z\",\"settlement_date\":\"2021-06-01\","
        "\"outage_states\":[{\"id\":\"intact\",\"probability\":0.7,\"branches\":[]},"
        "{\"id\":\"b2\",\"probability\":0.3,\"branches\":[2]}],"
        "\"periods\":[{\"period\":1,\"demand\":{\"kind\":\"normal\",\"forecast\":1,\"sd\":0},"
        "\"wind\":{\"kind\":\"forecast\",\"forecast\":0.6,\"sd\":0}}]}";
    fixture f;
    fixture_load(&f, 40.0, inputs);
    forecast_pcf_config config = forecast_pcf_config_default();
    config.seed = 3;
    config.max_samples = 50000;
    forecast_pcf_result *r = NULL;
    cr_assert_eq(forecast_pcf_run(f.model, &f.inputs->periods[0], &config, &r, NULL), ANM_OK);
    const forecast_pcf_der *d = &r->ders[0];
    cr_expect(fabs(d->pcf.value - 0.3) < 4.0 * d->pcf.se, "pcf %g se %g", d->pcf.value,
              d->pcf.se);
    /* curtailment is 0 or 20 MW: E = 20 p, se = 20 se(p) */
    cr_expect(fabs(d->expected_curtailed_mw.value - 20.0 * d->pcf.value) < 1e-9);
    cr_expect(fabs(d->curtailment_p99_mw.value - 20.0) < 1e-5, "p99 %g",
              d->curtailment_p99_mw.value);
    cr_expect_eq(d->curtailment_p50_mw.value, 0.0);
    cr_expect_eq(r->n_bindings, 1);
    cr_expect_eq(r->bindings[0].state, 1);
    forecast_pcf_result_destroy(&r);
    fixture_free(&f);
}

static forecast_pcf_result *run_bench118(unsigned threads, size_t samples, double ci_width)
{
    char case_path[1024], zones_path[1024], inputs_path[1024];
    anm_test_source_path(case_path, sizeof case_path, "data/grids/pglib-opf/pglib_opf_case118_ieee.m");
    anm_test_source_path(zones_path, sizeof zones_path, "data/zones/bench118.json");
    anm_test_source_path(inputs_path, sizeof inputs_path,
                         "data/inputs/bench118_stress_2021-11-27.json");
    anm_error_detail err;
    anm_case *network = NULL;
    anm_zone_set *zones = NULL;
    forecast_inputs *inputs = NULL;
    forecast_pcf_model *model = NULL;
    gsl_set_error_handler_off();
    cr_assert_eq(anm_case_load(case_path, &network, &err), ANM_OK, "%s", err.message);
    cr_assert_eq(anm_zone_set_load(zones_path, network, &zones, &err), ANM_OK, "%s", err.message);
    cr_assert_eq(forecast_inputs_load(inputs_path, &zones->zones[0], &inputs, &err), ANM_OK,
                 "%s: %s", err.path, err.message);
    cr_assert_eq(forecast_pcf_model_new(network, &zones->zones[0], inputs, &model, &err), ANM_OK);
    forecast_pcf_config config = forecast_pcf_config_default();
    config.seed = 2021;
    config.max_samples = samples;
    config.ci_width = ci_width;
    config.threads = threads;
    forecast_pcf_result *r = NULL;
    cr_assert_eq(forecast_pcf_run(model, forecast_inputs_period(inputs, 36), &config, &r, NULL),
                 ANM_OK);
    forecast_pcf_model_destroy(&model);
    forecast_inputs_destroy(&inputs);
    anm_zone_set_destroy(&zones);
    anm_case_destroy(&network);
    return r;
}

static void expect_same(const forecast_pcf_result *a, const forecast_pcf_result *b)
{
    cr_assert_eq(a->samples, b->samples);
    cr_expect_eq(memcmp(a->ders, b->ders, a->n_ders * sizeof *a->ders), 0,
                 "per-DER statistics differ between thread counts");
    cr_expect_eq(memcmp(&a->anm_acts, &b->anm_acts, sizeof a->anm_acts), 0);
    cr_expect_eq(memcmp(&a->headroom_p50_mw, &b->headroom_p50_mw, sizeof a->headroom_p50_mw), 0);
    cr_assert_eq(a->n_bindings, b->n_bindings);
    for (size_t k = 0; k < a->n_bindings; k++) {
        cr_expect_eq(a->bindings[k].frequency, b->bindings[k].frequency);
        cr_expect_eq(a->bindings[k].contingency, b->bindings[k].contingency);
    }
}

Test(pcf, same_seed_same_digits_at_1_2_and_8_threads, .timeout = 120)
{
    /* 20,000 samples: 20 blocks, so rounds and the partial last block both occur */
    forecast_pcf_result *r1 = run_bench118(1, 20000, 0.0);
    forecast_pcf_result *r2 = run_bench118(2, 20000, 0.0);
    forecast_pcf_result *r8 = run_bench118(8, 20000, 0.0);
    cr_assert(r1->anm_acts.value > 0.0, "the stress inputs must make the ANM act");
    expect_same(r1, r2);
    expect_same(r1, r8);
    forecast_pcf_result_destroy(&r1);
    forecast_pcf_result_destroy(&r2);
    forecast_pcf_result_destroy(&r8);
}

Test(pcf, ci_width_stops_at_a_round_boundary_independent_of_threads, .timeout = 120)
{
    forecast_pcf_result *r1 = run_bench118(1, 1000000, 0.02);
    forecast_pcf_result *r2 = run_bench118(2, 1000000, 0.02);
    cr_expect_eq(r1->samples % (FORECAST_PCF_BLOCK * FORECAST_PCF_ROUND), 0);
    cr_expect(r1->samples < 1000000);
    for (size_t j = 0; j < r1->n_ders; j++) {
        cr_expect(2.0 * 1.959963984540054 * r1->ders[j].pcf.se <= 0.02);
    }
    expect_same(r1, r2);
    forecast_pcf_result_destroy(&r1);
    forecast_pcf_result_destroy(&r2);
}

Test(pcf, quantile_estimate_by_order_statistics)
{
    /* 1..1000 shuffled: the 0.9 quantile is 900 (rank ceil(900)); the 95%
       interval ranks are 900 -/+ 1.96 sqrt(90) = 881.4 / 918.6 -> 881, 919 */
    float x[1000];
    for (int i = 0; i < 1000; i++) {
        x[i] = (float)(((i * 617) % 1000) + 1);
    }
    forecast_estimate e = forecast_quantile_estimate(x, 1000, 0.9);
    cr_expect_eq(e.value, 900.0);
    cr_expect(fabs(e.se - (919.0 - 881.0) / (2.0 * 1.959963984540054)) < 1e-9, "se %g", e.se);
}

/* The bench118 stress inputs with the intact network replaced by three
   outage states (so that every state's plan is exercised). */
static char *bench118_inputs_with_outages(void)
{
    char path[1024];
    anm_test_source_path(path, sizeof path, "data/inputs/bench118_stress_2021-11-27.json");
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *states = "\"outage_states\": [{\"id\": \"intact\", \"probability\": 0.8},"
                         " {\"id\": \"b104\", \"probability\": 0.12, \"branches\": [104]},"
                         " {\"id\": \"b30\", \"probability\": 0.08, \"branches\": [30]}],\n";
    char *from = strstr(text, "\"outage_states\"");
    char *to = strstr(text, "\"periods\"");
    cr_assert(from && to && from < to);
    size_t head = (size_t)(from - text), tail = strlen(to), mid = strlen(states);
    char *out = malloc(head + mid + tail + 1);
    cr_assert_not_null(out);
    memcpy(out, text, head);
    memcpy(out + head, states, mid);
    memcpy(out + head + mid, to, tail + 1);
    return out;
}

/*
 * Pruning is exact: on bench118 (preventive, 1,780 rows a state, correlated
 * wind) with three outage states, the pruned run and the run that evaluates
 * every row of every sample, through the rule too, agree to the last bit,
 * under LIFO, pro-rata and min-MW (whose LPs then run in two pool threads);
 * and the pruned run evaluates a few rows a sample.
 */
Test(pcf, pruning_changes_no_digit, .timeout = 120)
{
    char case_path[1024], zones_path[1024];
    anm_test_source_path(case_path, sizeof case_path,
                         "data/grids/pglib-opf/pglib_opf_case118_ieee.m");
    anm_test_source_path(zones_path, sizeof zones_path, "data/zones/bench118.json");
    anm_error_detail err;
    anm_case *network = NULL;
    anm_zone_set *zones = NULL;
    forecast_inputs *inputs = NULL;
    gsl_set_error_handler_off();
    cr_assert_eq(anm_case_load(case_path, &network, &err), ANM_OK, "%s", err.message);
    cr_assert_eq(anm_zone_set_load(zones_path, network, &zones, &err), ANM_OK, "%s", err.message);
    char *text = bench118_inputs_with_outages();
    cr_assert_eq(forecast_inputs_parse(text, strlen(text), "inputs.json", &zones->zones[0],
                                       &inputs, &err),
                 ANM_OK, "%s: %s", err.path, err.message);
    free(text);
    const anm_access rules[] = {ANM_ACCESS_LIFO, ANM_ACCESS_PRO_RATA, ANM_ACCESS_MIN_MW};
    for (size_t k = 0; k < 3; k++) {
        anm_zone zone = zones->zones[0]; /* shallow copy: the model borrows it */
        zone.access = rules[k];
        forecast_pcf_model *model = NULL;
        cr_assert_eq(forecast_pcf_model_new(network, &zone, inputs, &model, &err), ANM_OK);
        forecast_pcf_config config = forecast_pcf_config_default();
        config.seed = 7;
        config.max_samples = 12000;
        config.threads = 2;
        forecast_pcf_result *pruned = NULL, *full = NULL;
        cr_assert_eq(forecast_pcf_run(model, forecast_inputs_period(inputs, 36), &config,
                                      &pruned, NULL),
                     ANM_OK);
        config.exhaustive = true;
        cr_assert_eq(forecast_pcf_run(model, forecast_inputs_period(inputs, 36), &config, &full,
                                      NULL),
                     ANM_OK);
        cr_assert(pruned->anm_acts.value > 0.02, "rule %zu: the ANM must act (%g)", k,
                  pruned->anm_acts.value);
        cr_expect(full->rows_evaluated_per_sample > 1700.0, "%g",
                  full->rows_evaluated_per_sample);
        cr_expect(pruned->rows_evaluated_per_sample < 50.0, "%g",
                  pruned->rows_evaluated_per_sample);
        expect_same(pruned, full);
        cr_expect_eq(memcmp(&pruned->headroom_p10_mw, &full->headroom_p10_mw,
                            sizeof full->headroom_p10_mw),
                     0);
        cr_expect_eq(memcmp(&pruned->headroom_p90_mw, &full->headroom_p90_mw,
                            sizeof full->headroom_p90_mw),
                     0);
        cr_expect_eq(memcmp(&pruned->unresolved, &full->unresolved, sizeof full->unresolved), 0);
        for (size_t b = 0; b < pruned->n_bindings && b < full->n_bindings; b++) {
            cr_expect_eq(pruned->bindings[b].state, full->bindings[b].state);
            cr_expect_eq(pruned->bindings[b].monitored, full->bindings[b].monitored);
        }
        forecast_pcf_result_destroy(&pruned);
        forecast_pcf_result_destroy(&full);
        forecast_pcf_model_destroy(&model);
    }
    forecast_inputs_destroy(&inputs);
    anm_zone_set_destroy(&zones);
    anm_case_destroy(&network);
}
