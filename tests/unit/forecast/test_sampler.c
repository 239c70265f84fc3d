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

/*
 * The ziggurat normals against the normal CDF (GSL): the empirical CDF of
 * 1,000,000 draws at points in the rectangles, in the wedges (near 0, the
 * top layer), at the base layer's edge r = 3.654 and in the tail beyond it,
 * each within 4 binomial standard errors (plus 1e-6 for the far tail).
 */
Test(sampler, ziggurat_normals_follow_the_normal_cdf)
{
    forecast_rng rng;
    forecast_rng_seed(&rng, 11, 12, 13, 14);
    const double points[] = {-4.5, -3.6541528853610088, -3.0, -1.0, -0.2, 0.0,
                             0.05, 0.21, 0.7,  1.9,  3.6541528853610088, 4.2};
    enum { N_POINTS = sizeof points / sizeof points[0] };
    size_t below[N_POINTS] = {0};
    const size_t n = 1000000;
    for (size_t i = 0; i < n; i++) {
        double z = forecast_rng_normal(&rng);
        for (size_t k = 0; k < N_POINTS; k++) {
            below[k] += z < points[k];
        }
    }
    for (size_t k = 0; k < N_POINTS; k++) {
        double p = gsl_cdf_ugaussian_P(points[k]);
        double se = sqrt(p * (1.0 - p) / (double)n);
        double got = (double)below[k] / (double)n;
        cr_expect(fabs(got - p) < 4.0 * se + 1e-6, "P(Z < %g) = %g, expected %g (se %g)",
                  points[k], got, p, se);
    }
}

/* Inputs with correlated wind (3 wind DERs) and a fixed DER, for the block tests. */
static const char three_wind_zone[] =
    "{\"version\":1,\"zones\":[{\"id\":\"z\",\"name\":\"n\",\"access\":\"lifo\","
    "\"mode\":\"corrective\",\"monitored\":[{\"id\":\"m1\",\"branch\":1,\"export_direction\":"
    "\"to_from\",\"normal_mw\":20,\"post_fault_mw\":20}],\"contingencies\":[],"
    "\"ders\":[{\"id\":\"w1\",\"bus\":2,\"technology\":\"wind\",\"capacity_mw\":100,"
    "\"connection_date\":\"2020-01-01\",\"lifo_position\":1,\"under_anm\":true},"
    "{\"id\":\"w2\",\"bus\":2,\"technology\":\"wind\",\"capacity_mw\":40,"
    "\"connection_date\":\"2020-01-01\",\"lifo_position\":2,\"under_anm\":true},"
    "{\"id\":\"w3\",\"bus\":2,\"technology\":\"wind\",\"capacity_mw\":60,"
    "\"connection_date\":\"2020-01-01\",\"lifo_position\":3,\"under_anm\":true},"
    "{\"id\":\"b\",\"bus\":2,\"technology\":\"battery\",\"capacity_mw\":10,"
    "\"connection_date\":\"2020-01-01\",\"lifo_position\":4,\"under_anm\":false}],"
    "\"signals\":[]}]}";

static const char three_wind_inputs[] =
    "{\"version\":1,\"zone\":\"z\",\"settlement_date\":\"2021-06-01\","
    "\"outage_states\":[{\"id\":\"intact\",\"probability\":0.75},"
    "{\"id\":\"out\",\"probability\":0.25,\"branches\":[1]}],"
    "\"wind_correlation\":{\"ders\":[\"w1\",\"w2\",\"w3\"],"
    "\"matrix\":[[1,0.5,0.2],[0.5,1,0.5],[0.2,0.5,1]]},"
    "\"periods\":[{\"period\":1,\"demand\":{\"kind\":\"beta\",\"a\":0.6,\"b\":0.5,"
    "\"alpha\":3,\"beta\":2},\"wind\":{\"kind\":\"beta\",\"alpha\":0.7,\"beta\":2,"
    "\"sigma\":0.1},\"ders\":{\"w2\":{\"available_mw\":25},\"b\":{\"fixed_mw\":7}}}]}";

static void load_three_wind(anm_case **network, anm_zone_set **zones, forecast_inputs **in,
                            forecast_sampler **s)
{
    anm_error_detail err;
    cr_assert_eq(anm_case_parse(one_bus_case, strlen(one_bus_case), "c.m", network, &err),
                 ANM_OK);
    cr_assert_eq(anm_zone_set_parse(three_wind_zone, strlen(three_wind_zone), "z.json", *network,
                                    zones, &err),
                 ANM_OK, "%s", err.message);
    cr_assert_eq(forecast_inputs_parse(three_wind_inputs, strlen(three_wind_inputs), "in.json",
                                       &(*zones)->zones[0], in, &err),
                 ANM_OK, "%s: %s", err.path, err.message);
    cr_assert_eq(forecast_sampler_new(&(*zones)->zones[0], *in, &(*in)->periods[0], s, &err),
                 ANM_OK, "%s", err.message);
}

/* A block draw is the same stream, value for value, as one draw at a time. */
Test(sampler, block_draw_equals_single_draws)
{
    anm_case *network = NULL;
    anm_zone_set *zones = NULL;
    forecast_inputs *in = NULL;
    forecast_sampler *s = NULL;
    load_three_wind(&network, &zones, &in, &s);
    enum { N = 300, STRIDE = 320, NDER = 4 };
    static double x[(1 + NDER) * STRIDE];
    size_t state[N];
    double scratch[2 * NDER];
    forecast_rng a, b;
    forecast_rng_seed(&a, 5, 6, 7, 8);
    forecast_rng_seed(&b, 5, 6, 7, 8);
    forecast_sampler_draw_block(s, &a, N, x, STRIDE, state, scratch);
    size_t outaged = 0;
    for (size_t i = 0; i < N; i++) {
        double demand, avail[NDER];
        size_t st;
        forecast_sampler_draw(s, &b, &demand, avail, &st, scratch);
        cr_assert_eq(x[i], demand, "sample %zu demand", i);
        for (size_t j = 0; j < NDER; j++) {
            cr_assert_eq(x[(1 + j) * STRIDE + i], avail[j], "sample %zu DER %zu", i, j);
        }
        cr_assert_eq(state[i], st);
        outaged += st == 1;
    }
    /* 25% of samples in the outage state: 75 expected, sd 7.5 */
    cr_expect(outaged > 45 && outaged < 105, "%zu samples in the outage state", outaged);
    forecast_sampler_destroy(&s);
    forecast_inputs_destroy(&in);
    anm_zone_set_destroy(&zones);
    anm_case_destroy(&network);
}

/* The support the pruning relies on: demand in [a, a + b], wind in [0, min(capacity,
   declared availability)], fixed DERs at their output; and the draws stay inside it,
   reaching near both ends. */
Test(sampler, bounds_hold_every_draw)
{
    anm_case *network = NULL;
    anm_zone_set *zones = NULL;
    forecast_inputs *in = NULL;
    forecast_sampler *s = NULL;
    load_three_wind(&network, &zones, &in, &s);
    double dmin, dmax, lo[4], hi[4];
    forecast_sampler_bounds(s, &dmin, &dmax, lo, hi);
    cr_expect_eq(dmin, 0.6);
    cr_expect_eq(dmax, 0.6 + 0.5);
    const double want_hi[4] = {100.0, 25.0, 60.0, 7.0};
    const double want_lo[4] = {0.0, 0.0, 0.0, 7.0};
    for (size_t j = 0; j < 4; j++) {
        cr_expect_eq(lo[j], want_lo[j], "DER %zu min", j);
        cr_expect_eq(hi[j], want_hi[j], "DER %zu max", j);
    }
    forecast_rng rng;
    forecast_rng_seed(&rng, 1, 2, 3, 4);
    double scratch[8], avail[4], demand, seen_lo = INFINITY, seen_hi = -INFINITY;
    size_t state, at_zero = 0;
    for (int i = 0; i < 100000; i++) {
        forecast_sampler_draw(s, &rng, &demand, avail, &state, scratch);
        cr_assert(demand >= dmin && demand <= dmax, "demand %g", demand);
        seen_lo = demand < seen_lo ? demand : seen_lo;
        seen_hi = demand > seen_hi ? demand : seen_hi;
        for (size_t j = 0; j < 4; j++) {
            cr_assert(avail[j] >= lo[j] && avail[j] <= hi[j], "DER %zu at %g", j, avail[j]);
        }
        at_zero += avail[0] == 0.0;
    }
    /* Beta(3, 2) puts ~1e-5 of its mass within 0.01 of each end: the ends are approached */
    cr_expect(seen_lo < 0.6 + 0.05 && seen_hi > 1.1 - 0.05, "demand seen in [%g, %g]", seen_lo,
              seen_hi);
    cr_expect(at_zero > 0, "wind clipped at 0 (w ~ Beta(0.7, 2) is often near 0)");
    forecast_sampler_destroy(&s);
    forecast_inputs_destroy(&in);
    anm_zone_set_destroy(&zones);
    anm_case_destroy(&network);
}
