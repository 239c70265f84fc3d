/*
 * test_sampler.c: random streams, variates, the inputs reader and SHA-256.
 */
#include "engine/network.h"
#include "engine/zone.h"
#include "forecast/inputs.h"
#include "forecast/sampler.h"

#include <criterion/criterion.h>
#include <gsl/gsl_cdf.h>
#include <math.h>
#include <string.h>

Test(sampler, sha256_matches_fips_180_vectors)
{
    char hex[65];
    forecast_sha256_hex("abc", 3, hex);
    cr_expect_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    forecast_sha256_hex("", 0, hex);
    cr_expect_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    forecast_sha256_hex(two_blocks, strlen(two_blocks), hex);
    cr_expect_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(sampler, streams_depend_only_on_the_tuple)
{
    forecast_rng a, b, c;
    forecast_rng_seed(&a, 7, forecast_hash_string("z"), 3, 11);
    forecast_rng_seed(&b, 7, forecast_hash_string("z"), 3, 11);
    forecast_rng_seed(&c, 7, forecast_hash_string("z"), 3, 12);
    int same_c = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = forecast_rng_next(&a), y = forecast_rng_next(&b), z = forecast_rng_next(&c);
        cr_assert_eq(x, y);
        same_c += x == z;
    }
    cr_expect_eq(same_c, 0, "neighbouring blocks must not share a stream");
}

/* Sample means within 4 standard errors of the exact moments. */
Test(sampler, beta_and_normal_variates_have_the_right_moments)
{
    forecast_rng rng;
    forecast_rng_seed(&rng, 1, 2, 3, 4);
    const double shapes[][2] = {{2.0, 5.0}, {0.5, 0.5}, {8.0, 2.0}};
    const size_t n = 200000;
    for (size_t s = 0; s < 3; s++) {
        double a = shapes[s][0], b = shapes[s][1];
        double mean = a / (a + b), var = a * b / ((a + b) * (a + b) * (a + b + 1.0));
        double sum = 0.0, below = 0.0;
        double median = gsl_cdf_beta_Pinv(0.5, a, b);
        for (size_t i = 0; i < n; i++) {
            double x = forecast_rng_beta(&rng, a, b);
            cr_assert(x >= 0.0 && x <= 1.0);
            sum += x;
            below += x < median;
        }
        cr_expect(fabs(sum / (double)n - mean) < 4.0 * sqrt(var / (double)n),
                  "Beta(%g, %g) mean %g vs %g", a, b, sum / (double)n, mean);
        cr_expect(fabs(below / (double)n - 0.5) < 4.0 * sqrt(0.25 / (double)n),
                  "Beta(%g, %g) P(X < median) %g", a, b, below / (double)n);
    }
    double sum = 0.0, sum2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        double z = forecast_rng_normal(&rng);
        sum += z;
        sum2 += z * z;
    }
    cr_expect(fabs(sum / (double)n) < 4.0 / sqrt((double)n));
    /* var of Z^2 is 2 */
    cr_expect(fabs(sum2 / (double)n - 1.0) < 4.0 * sqrt(2.0 / (double)n));
}

static const char one_bus_case[] =
    "function mpc = twobus\nmpc.version = '2';\nmpc.baseMVA = 100;\nmpc.bus = [\n"
    " 1 3 0 0 0 0 1 1 0 33 1 1.1 0.9;\n 2 1 0 0 0 0 1 1 0 33 1 1.1 0.9;\n];\n"
    "mpc.gen = [\n 1 0 0 100 -100 1 100 1 100 0;\n];\nmpc.branch = [\n"
    " 1 2 0.01 0.1 0 100 100 100 0 0 1 -360 360;\n];\n";

static const char zone_text[] =
    "{\"version\":1,\"zones\":[{\"id\":\"z\",\"name\":\"n\",\"access\":\"lifo\","
    "\"mode\":\"corrective\",\"monitored\":[{\"id\":\"m1\",\"branch\":1,\"export_direction\":"
    "\"to_from\",\"normal_mw\":20,\"post_fault_mw\":20}],\"contingencies\":[],"
    "\"ders\":[{\"id\":\"w\",\"bus\":2,\"technology\":\"wind\",\"capacity_mw\":100,"
    "\"connection_date\":\"2020-01-01\",\"lifo_position\":1,\"under_anm\":true},"
    "{\"id\":\"s\",\"bus\":2,\"technology\":\"solar\",\"capacity_mw\":50,"
    "\"connection_date\":\"2020-01-01\",\"lifo_position\":2,\"under_anm\":true}],"
    "\"signals\":[]}]}";

static int parse_inputs(const char *text, forecast_inputs **out, anm_error_detail *err,
                        anm_case **network, anm_zone_set **zones)
{
    cr_assert_eq(anm_case_parse(one_bus_case, strlen(one_bus_case), "c.m", network, err), ANM_OK);
    cr_assert_eq(anm_zone_set_parse(zone_text, strlen(zone_text), "z.json", *network, zones, err),
                 ANM_OK, "%s", err->message);
    return forecast_inputs_parse(text, strlen(text), "in.json", &(*zones)->zones[0], out, err);
}

Test(sampler, inputs_with_a_misspelt_key_fail_naming_its_path)
{
    anm_error_detail err;
    anm_case *network = NULL;
    anm_zone_set *zones = NULL;
    forecast_inputs *in = NULL;
    const char *text = "{\"version\":1,\"zone\":\"z\",\"settlement_date\":\"2021-06-01\","
                       "\"periods\":[{\"period\":1,\"demand\":{\"kind\":\"beta\",\"a\":1,"
                       "\"b\":0.1,\"alpha\":2,\"beta\":2},\"wind\":{\"alpha\":2,\"betta\":3}}]}";
    cr_expect_eq(parse_inputs(text, &in, &err, &network, &zones), ANM_ECONFIG);
    cr_expect_str_eq(err.path, "periods[0].wind.betta");
    cr_expect_str_eq(err.message, "unknown key \"betta\"");
    cr_expect_null(in);
    anm_zone_set_destroy(&zones);
    anm_case_destroy(&network);
}

Test(sampler, outage_probabilities_must_sum_to_one)
{
    anm_error_detail err;
    anm_case *network = NULL;
    anm_zone_set *zones = NULL;
    forecast_inputs *in = NULL;
    const char *text = "{\"version\":1,\"zone\":\"z\",\"settlement_date\":\"2021-06-01\","
                       "\"outage_states\":[{\"id\":\"a\",\"probability\":0.5}],"
                       "\"periods\":[{\"period\":1,\"demand\":{\"kind\":\"normal\","
                       "\"forecast\":1,\"sd\":0}}]}";
    cr_expect_eq(parse_inputs(text, &in, &err, &network, &zones), ANM_ECONFIG);
    cr_expect_str_eq(err.message, "outage state probabilities sum to 0.5, not 1");
    anm_zone_set_destroy(&zones);
    anm_case_destroy(&network);
}

/* Night: solar is 0; a Physical Notification caps the wind DER; the sampler honours both. */
Test(sampler, night_solar_and_pn_cap)
{
    anm_error_detail err;
    anm_case *network = NULL;
    anm_zone_set *zones = NULL;
    forecast_inputs *in = NULL;
    const char *text = "{\"version\":1,\"zone\":\"z\",\"settlement_date\":\"2021-06-01\","
                       "\"periods\":[{\"period\":1,\"demand\":{\"kind\":\"empirical\","
                       "\"values\":[0.9,1.1]},\"wind\":{\"kind\":\"forecast\",\"forecast\":0.9,"
                       "\"sd\":0.1,\"sigma\":0.05},\"solar\":{\"day_probability\":0,\"alpha\":2,"
                       "\"beta\":2},\"ders\":{\"w\":{\"pn_mw\":30}}}]}";
    cr_assert_eq(parse_inputs(text, &in, &err, &network, &zones), ANM_OK, "%s: %s", err.path,
                 err.message);
    forecast_sampler *s = NULL;
    cr_assert_eq(forecast_sampler_new(&zones->zones[0], in, &in->periods[0], &s, &err), ANM_OK);
    forecast_rng rng;
    forecast_rng_seed(&rng, 1, 1, 1, 1);
    double scratch[8], avail[2], demand;
    size_t state, at_cap = 0, high = 0;
    for (int i = 0; i < 10000; i++) {
        forecast_sampler_draw(s, &rng, &demand, avail, &state, scratch);
        cr_assert(demand == 0.9 || demand == 1.1);
        high += demand == 1.1;
        cr_assert(avail[0] >= 0.0 && avail[0] <= 30.0);
        at_cap += avail[0] == 30.0;
        cr_assert_eq(avail[1], 0.0);
        cr_assert_eq(state, 0);
    }
    /* 100 w > 30 almost always with w around 0.9 */
    cr_expect(at_cap > 9900);
    cr_expect(fabs((double)high / 10000.0 - 0.5) < 4.0 * 0.005);
    forecast_sampler_destroy(&s);
    forecast_sampler_destroy(&s);
    forecast_inputs_destroy(&in);
    anm_zone_set_destroy(&zones);
    anm_case_destroy(&network);
}
