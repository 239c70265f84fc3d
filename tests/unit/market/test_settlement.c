/*
 * test_settlement.c: settlement on a hand-worked example (payments,
 * shortfall, cap, each baseline kind, a 50-period day), telemetry
 * integration against closed forms, reports, and CSV meter import errors.
 *
 * Every expected number below is worked by hand in the comment beside it;
 * energies are chosen exactly representable in binary, so payments (integer
 * pence) are compared exactly and energies to 1e-9 MWh.
 */
#include "engine/calendar.h"
#include "engine/error.h"
#include "market/settlement.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EPS 1e-9
#define NESO 90
#define DSO 80

static anm_settlement_period period_of(int y, int m, int d, int p)
{
    anm_settlement_period sp;
    cr_assert_eq(anm_calendar_period((anm_settlement_date){y, m, d}, p, &sp), ANM_OK);
    return sp;
}

static market_trade trade(uint64_t id, uint32_t buyer, uint32_t seller, uint32_t sell_der,
                          int64_t start_ms, int64_t volume_kw, int32_t seller_price,
                          int32_t seller_availability, int32_t buyer_price,
                          int32_t buyer_availability)
{
    return (market_trade){.trade_id = id,
                          .buyer = buyer,
                          .seller = seller,
                          .buy_der = 100 + buyer,
                          .sell_der = sell_der,
                          .product = {.zone = 1, .period_start_ms = start_ms},
                          .kind = MARKET_TRADE_AUCTION,
                          .volume = volume_kw,
                          .seller_price_ticks = seller_price,
                          .seller_availability_ticks = seller_availability,
                          .buyer_price_ticks = buyer_price,
                          .buyer_availability_ticks = buyer_availability};
}

static const settlement_line *line_of(const settlement_report *r, uint64_t trade_id)
{
    for (size_t i = 0; i < r->n_lines; i++) {
        if (r->lines[i].trade.trade_id == trade_id) {
            return &r->lines[i];
        }
    }
    cr_assert_fail("no line for trade %llu", (unsigned long long)trade_id);
    return NULL;
}

/*
 * The worked example, 2021-06-15 (BST, 48 periods), period 35 = 17:00 local
 * = 16:00 UTC, plus one trade on 2021-10-31 (50 periods).
 */
typedef struct example {
    settlement_meter *meter, *telemetry, *nominations;
    settlement_der ders[4];
    market_trade trades[8];
    size_t n_trades;
    settlement_input input;
    settlement_report *report;
    int64_t p35, p3_autumn, p5_autumn;
} example;

static void example_init(example *e)
{
    memset(e, 0, sizeof *e);
    e->meter = settlement_meter_new();
    e->telemetry = settlement_meter_new();
    e->nominations = settlement_meter_new();
    cr_assert(e->meter && e->telemetry && e->nominations);
    e->p35 = period_of(2021, 6, 15, 35).utc_start_ms;
    cr_assert_eq(e->p35, INT64_C(1623772800000), "2021-06-15T16:00:00Z");
    int64_t day = INT64_C(86400000);

    /* DER 1, turn-down, nominated 2.0 MWh; metered 1.25 (meter), 1.30 (telemetry) */
    e->ders[0] = (settlement_der){.der = 1, .direction = SETTLEMENT_TURN_DOWN,
                                  .baseline = SETTLEMENT_BASELINE_NOMINATED};
    cr_assert_eq(settlement_meter_add(e->nominations, 1, e->p35, 2.0), ANM_OK);
    cr_assert_eq(settlement_meter_add(e->meter, 1, e->p35, 1.25), ANM_OK);
    cr_assert_eq(settlement_meter_add(e->telemetry, 1, e->p35, 1.3125), ANM_OK);
    /* trade 1: 2 MW (1.0 MWh) at 50 GBP/MWh + 10 GBP/MW/h; buyer 60 + 12 */
    e->trades[e->n_trades++] = trade(1, 10, 11, 1, e->p35, 2000, 5000, 1000, 6000, 1200);

    /* DER 2, turn-down, fixed profile 6 MW at 17:00 local: baseline 3.0 MWh; metered
     * (telemetry only) 2.0: delivered 1.0, shared by trades 2 (0.5 MWh) and 3 (1.0 MWh) */
    e->ders[1] = (settlement_der){.der = 2, .direction = SETTLEMENT_TURN_DOWN,
                                  .baseline = SETTLEMENT_BASELINE_FIXED};
    e->ders[1].fixed_mw[34] = 6.0;
    e->ders[1].fixed_mw[35] = 99.0; /* a neighbouring slot must not be used */
    cr_assert_eq(settlement_meter_add(e->telemetry, 2, e->p35, 2.0), ANM_OK);
    e->trades[e->n_trades++] = trade(3, 12, 13, 2, e->p35, 2000, 4000, 0, 4000, 0);
    e->trades[e->n_trades++] = trade(2, 12, 13, 2, e->p35, 1000, 3000, 0, 3500, 0);

    /* DER 3, turn-up demand, historical over 4 days: days -1..-3 metered 1.0, 2.0, 1.5,
     * day -4 metered 10.0 but traded then (excluded): baseline 1.5; metered 4.5:
     * 3.0 delivered, capped at the 1.0 MWh instructed */
    e->ders[2] = (settlement_der){.der = 3, .direction = SETTLEMENT_TURN_UP,
                                  .baseline = SETTLEMENT_BASELINE_HISTORICAL};
    double past[4] = {1.0, 2.0, 1.5, 10.0};
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(settlement_meter_add(e->meter, 3, e->p35 - (k + 1) * day, past[k]), ANM_OK);
    }
    cr_assert_eq(settlement_meter_add(e->meter, 3, e->p35, 4.5), ANM_OK);
    e->trades[e->n_trades++] = trade(4, NESO, 14, 3, e->p35, 2000, 7000, 500, 8000, 500);
    /* trade 5 on day -4: no earlier history within 4 days: no baseline */
    e->trades[e->n_trades++] = trade(5, 10, 14, 3, e->p35 - 4 * day, 1000, 7000, 500, 8000, 500);

    /* DER 4: no metering at all */
    e->trades[e->n_trades++] = trade(6, NESO, 15, 4, e->p35, 1000, 2000, 300, 2500, 300);

    /* 2021-10-31: period 3 (01:00 BST = 00:00Z) and period 5 (01:00 GMT = 01:00Z) are
     * both local slot 2; DER 5 fixed 2 MW there: baseline 1.0 MWh, metered 0.4:
     * delivered 0.6 capped at 0.5 (1 MW) */
    e->p3_autumn = period_of(2021, 10, 31, 3).utc_start_ms;
    e->p5_autumn = period_of(2021, 10, 31, 5).utc_start_ms;
    cr_assert_eq(e->p5_autumn - e->p3_autumn, INT64_C(3600000));
    e->ders[3] = (settlement_der){.der = 5, .direction = SETTLEMENT_TURN_DOWN,
                                  .baseline = SETTLEMENT_BASELINE_FIXED};
    e->ders[3].fixed_mw[2] = 2.0;
    e->ders[3].fixed_mw[4] = 50.0; /* 02:00 local: period 7 on that day, not period 5 */
    cr_assert_eq(settlement_meter_add(e->meter, 5, e->p5_autumn, 0.4), ANM_OK);
    e->trades[e->n_trades++] = trade(7, 10, 16, 5, e->p5_autumn, 1000, 1000, 0, 1000, 0);

    e->input = (settlement_input){.trades = e->trades,
                                  .n_trades = e->n_trades,
                                  .ders = e->ders,
                                  .n_ders = 4,
                                  .meter = e->meter,
                                  .telemetry = e->telemetry,
                                  .nominations = e->nominations,
                                  .historical_days = 4,
                                  .shortfall_penalty_ticks = 2000, /* 20 GBP/MWh */
                                  .dso = DSO,
                                  .neso = NESO};
    cr_assert_eq(settlement_run(&e->input, &e->report), ANM_OK);
}

static void example_fini(example *e)
{
    settlement_report_destroy(&e->report);
    settlement_report_destroy(&e->report); /* idempotent */
    settlement_meter_destroy(&e->meter);
    settlement_meter_destroy(&e->telemetry);
    settlement_meter_destroy(&e->nominations);
}

Test(settlement, nominated_baseline_shortfall_and_payments)
{
    example e;
    example_init(&e);
    const settlement_line *l = line_of(e.report, 1);
    cr_assert_eq(l->status, SETTLEMENT_SETTLED);
    cr_assert_eq(l->source, SETTLEMENT_SOURCE_METER, "meter data wins over telemetry");
    cr_assert_eq(l->baseline_kind, SETTLEMENT_BASELINE_NOMINATED);
    cr_assert_eq(l->period.period, 35);
    cr_assert_float_eq(l->instructed_mwh, 1.0, EPS);
    cr_assert_float_eq(l->baseline_mwh, 2.0, EPS);
    cr_assert_float_eq(l->metered_mwh, 1.25, EPS);
    cr_assert_float_eq(l->delivered_mwh, 0.75, EPS, "2.0 - 1.25");
    cr_assert_float_eq(l->shortfall_mwh, 0.25, EPS);
    cr_assert_eq(l->seller_availability_pence, 1000, "10 GBP/MW/h x 2 MW x 0.5 h = 10.00");
    cr_assert_eq(l->seller_utilisation_pence, 3750, "50 GBP/MWh x 0.75 MWh = 37.50");
    cr_assert_eq(l->seller_penalty_pence, 500, "20 GBP/MWh x 0.25 MWh = 5.00");
    cr_assert_eq(l->seller_total_pence, 4250);
    cr_assert_eq(l->buyer_availability_pence, 1200, "12 x 2 x 0.5");
    cr_assert_eq(l->buyer_utilisation_pence, 4500, "60 x 0.75");
    cr_assert_eq(l->buyer_total_pence, 5700);
    example_fini(&e);
}

Test(settlement, fixed_profile_shared_by_trades_in_trade_id_order)
{
    example e;
    example_init(&e);
    const settlement_line *a = line_of(e.report, 2), *b = line_of(e.report, 3);
    cr_assert_eq(a->source, SETTLEMENT_SOURCE_TELEMETRY);
    cr_assert_float_eq(a->baseline_mwh, 3.0, EPS, "6 MW x 0.5 h at slot 34 (17:00 local)");
    /* 1.0 MWh delivered: trade 2 (0.5 MWh) first, trade 3 gets the other 0.5 of 1.0 */
    cr_assert_float_eq(a->delivered_mwh, 0.5, EPS);
    cr_assert_float_eq(a->shortfall_mwh, 0.0, EPS);
    cr_assert_float_eq(b->delivered_mwh, 0.5, EPS);
    cr_assert_float_eq(b->shortfall_mwh, 0.5, EPS);
    cr_assert_eq(a->seller_utilisation_pence, 1500, "30 GBP/MWh x 0.5");
    cr_assert_eq(b->seller_utilisation_pence, 2000, "40 GBP/MWh x 0.5");
    cr_assert_eq(b->seller_penalty_pence, 1000, "20 GBP/MWh x 0.5");
    cr_assert_eq(b->seller_total_pence, 1000);
    cr_assert_eq(e.report->lines[0].trade.trade_id, 1, "lines in trade id order");
    cr_assert_eq(e.report->lines[1].trade.trade_id, 2);
    example_fini(&e);
}

Test(settlement, historical_baseline_turn_up_capped_and_no_baseline)
{
    example e;
    example_init(&e);
    const settlement_line *l = line_of(e.report, 4);
    cr_assert_eq(l->status, SETTLEMENT_SETTLED);
    cr_assert_float_eq(l->baseline_mwh, 1.5, EPS, "(1.0 + 2.0 + 1.5) / 3, day -4 traded");
    cr_assert_float_eq(l->delivered_mwh, 1.0, EPS, "4.5 - 1.5 = 3.0 capped at 1.0");
    cr_assert_float_eq(l->shortfall_mwh, 0.0, EPS);
    cr_assert_eq(l->seller_total_pence, 500 + 7000, "5 x 2 x 0.5 + 70 x 1.0");
    const settlement_line *old = line_of(e.report, 5);
    cr_assert_eq(old->status, SETTLEMENT_NO_BASELINE);
    cr_assert(isnan(old->baseline_mwh));
    cr_assert_float_eq(old->delivered_mwh, 0.0, EPS);
    cr_assert_eq(old->seller_availability_pence, 250, "5 x 1 x 0.5");
    cr_assert_eq(old->seller_penalty_pence, 1000, "20 x 0.5 MWh");
    cr_assert_eq(old->seller_total_pence, -750);
    const settlement_line *none = line_of(e.report, 6);
    cr_assert_eq(none->status, SETTLEMENT_NO_METERING);
    cr_assert_eq(none->source, SETTLEMENT_SOURCE_NONE);
    cr_assert(isnan(none->metered_mwh));
    example_fini(&e);
}

Test(settlement, fifty_period_day_uses_local_half_hour)
{
    example e;
    example_init(&e);
    const settlement_line *l = line_of(e.report, 7);
    cr_assert_eq(l->period.period, 5, "01:00 GMT on 2021-10-31 is period 5");
    cr_assert_eq(anm_calendar_period_count(l->period.date), 50);
    cr_assert_float_eq(l->baseline_mwh, 1.0, EPS, "slot 2 (01:00 local): 2 MW x 0.5 h");
    cr_assert_float_eq(l->delivered_mwh, 0.5, EPS, "1.0 - 0.4 = 0.6 capped at 0.5");
    example_fini(&e);
}

Test(settlement, reconciliation_reports_telemetry_minus_meter)
{
    example e;
    example_init(&e);
    cr_assert_eq(e.report->n_differences, 1, "only DER 1 has both");
    const settlement_difference *d = &e.report->differences[0];
    cr_assert_eq(d->der, 1);
    cr_assert_eq(d->period.period, 35);
    cr_assert_float_eq(d->difference_mwh, 0.0625, EPS, "1.3125 - 1.25");
    example_fini(&e);
}

Test(settlement, reports_per_participant_dso_and_neso)
{
    example e;
    example_init(&e);
    char *csv = NULL, *json = NULL;
    cr_assert_eq(settlement_report_csv(e.report, SETTLEMENT_PARTY_PARTICIPANT, 11, &csv), ANM_OK);
    const char *row = strchr(csv, '\n') + 1;
    cr_assert_str_eq(row,
                     "1,2021-06-15,35,2021-06-15T16:00:00Z,1,seller,10,11,1,settled,meter,"
                     "nominated,1.000000,2.000000,1.250000,0.750000,0.250000,10.00,37.50,5.00,"
                     "42.50,12.00,45.00,57.00\n",
                     "participant 11 sees its one trade");
    free(csv);
    /* NESO bought trades 4 and 6: pays 5 + 80 (trade 4) + 1.50 + 0 (trade 6) */
    cr_assert_eq(settlement_report_json(e.report, SETTLEMENT_PARTY_NESO, 0, &json), ANM_OK);
    cr_assert(strstr(json, "\"payable_gbp\": \"86.50\"") != NULL, "%s", json);
    cr_assert(strstr(json, "\"trade_id\": 1,") == NULL, "trade 1 is not NESO's");
    free(json);
    /* the DSO sees all 7 lines and the reconciliation */
    cr_assert_eq(settlement_report_csv(e.report, SETTLEMENT_PARTY_DSO, 0, &csv), ANM_OK);
    size_t lines = 0;
    for (const char *c = csv; *c; c++) {
        lines += *c == '\n';
    }
    cr_assert_eq(lines, 8, "header and 7 trades");
    free(csv);
    cr_assert_eq(settlement_report_json(e.report, SETTLEMENT_PARTY_DSO, 0, &json), ANM_OK);
    cr_assert(strstr(json, "\"difference_mwh\": 0.0625") != NULL, "%s", json);
    free(json);
    uint32_t *ids = NULL;
    size_t n = 0;
    cr_assert_eq(settlement_report_participants(e.report, &ids, &n), ANM_OK);
    uint32_t expect[] = {10, 11, 12, 13, 14, 15, 16, NESO};
    cr_assert_eq(n, 8);
    cr_assert_arr_eq(ids, expect, sizeof expect);
    free(ids);
    example_fini(&e);
}

Test(settlement, trade_not_at_a_period_start_is_refused)
{
    market_trade t = trade(1, 1, 2, 3, INT64_C(1623772800000) + 60000, 1000, 1, 1, 1, 1);
    settlement_input in = {.trades = &t, .n_trades = 1};
    settlement_report *r = NULL;
    cr_assert_eq(settlement_run(&in, &r), ANM_EINVAL);
    cr_assert_null(r);
}

/* ---- telemetry integration ---- */

#define P35 INT64_C(1623772800000)
#define HALF_HOUR INT64_C(1800000)

static settlement_sample *samples_every(int64_t step_ms, int64_t from, int64_t to,
                                        double (*mw)(int64_t), size_t *n)
{
    size_t cap = (size_t)((to - from) / step_ms) + 2;
    settlement_sample *s = calloc(cap, sizeof *s);
    cr_assert_not_null(s);
    *n = 0;
    for (int64_t t = from; t <= to; t += step_ms) {
        s[(*n)++] = (settlement_sample){.time_ms = t, .mw = mw(t)};
    }
    return s;
}

static double constant_4(int64_t t) { (void)t; return 4.0; }
/* 0 MW at the period's start rising linearly to 6 MW at its end */
static double ramp(int64_t t) { return 6.0 * (double)(t - P35) / (double)HALF_HOUR; }

Test(settlement, integration_closed_forms)
{
    size_t n;
    settlement_energy e;
    /* constant 4 MW, samples every 10 s from 20 s before to 20 s after: 4 x 0.5 = 2 MWh */
    settlement_sample *s = samples_every(10000, P35 - 20000, P35 + HALF_HOUR + 20000, constant_4, &n);
    cr_assert_eq(settlement_integrate(s, n, P35, P35 + HALF_HOUR, NULL, &e), ANM_OK);
    cr_assert(e.valid);
    cr_assert_float_eq(e.coverage, 1.0, EPS);
    cr_assert_float_eq(e.mwh, 2.0, EPS);
    /* a bad-quality spike is dropped */
    s[50].mw = 100.0;
    s[50].quality = 0x40;
    cr_assert_eq(settlement_integrate(s, n, P35, P35 + HALF_HOUR, NULL, &e), ANM_OK);
    cr_assert_float_eq(e.mwh, 2.0, EPS);
    /* a 5-minute hole (samples 60..89 missing, as gaps > 60 s): coverage 25/30 */
    for (size_t k = 60; k < 90; k++) {
        s[k].quality = 1;
    }
    cr_assert_eq(settlement_integrate(s, n, P35, P35 + HALF_HOUR, NULL, &e), ANM_OK);
    cr_assert_float_eq(e.coverage, 1.0 - 310.0 / 1800.0, EPS, "from sample 59 to 90: 310 s uncovered");
    cr_assert(!e.valid, "below 90 %% coverage");
    settlement_integration loose = {.max_gap_ms = 60000, .min_coverage = 0.8};
    cr_assert_eq(settlement_integrate(s, n, P35, P35 + HALF_HOUR, &loose, &e), ANM_OK);
    cr_assert(e.valid);
    cr_assert_float_eq(e.mwh, 2.0, EPS, "the mean of the covered time, scaled to the period");
    free(s);
    /* linear ramp sampled every 7 s from before the start: the trapezoid rule is exact,
     * the edges interpolated: mean 3 MW x 0.5 h = 1.5 MWh */
    s = samples_every(7000, P35 - 5000, P35 + HALF_HOUR + 5000, ramp, &n);
    cr_assert_eq(settlement_integrate(s, n, P35, P35 + HALF_HOUR, NULL, &e), ANM_OK);
    cr_assert_float_eq(e.mwh, 1.5, 1e-12);
    /* unsorted samples are refused */
    settlement_sample tmp = s[3];
    s[3] = s[4];
    s[4] = tmp;
    cr_assert_eq(settlement_integrate(s, n, P35, P35 + HALF_HOUR, NULL, &e), ANM_EINVAL);
    free(s);
}

/* ---- CSV meter import ---- */

static int parse(const char *text, anm_error_detail *d, settlement_meter **out)
{
    settlement_meter *m = settlement_meter_new();
    cr_assert_not_null(m);
    int rc = settlement_meter_parse_csv(m, text, strlen(text), "meter.csv", d);
    if (out != NULL) {
        *out = m;
    } else {
        settlement_meter_destroy(&m);
    }
    return rc;
}

Test(settlement, csv_meter_import)
{
    settlement_meter *m = NULL;
    anm_error_detail d;
    cr_assert_eq(parse("der,settlement_date,period,mwh\r\n"
                       "1,2021-06-15,35,1.25\r\n"
                       "\n"
                       "7,2021-10-31,50,0.5\n"
                       "7,2021-03-28,46,-0.125",
                       &d, &m),
                 ANM_OK);
    cr_assert_eq(settlement_meter_count(m), 3);
    double v = 0;
    cr_assert_eq(settlement_meter_get(m, 1, P35, &v), ANM_OK);
    cr_assert_float_eq(v, 1.25, EPS);
    /* period 50 of 2021-10-31 starts at 23:30 GMT */
    cr_assert_eq(settlement_meter_get(m, 7, INT64_C(1635723000000), &v), ANM_OK);
    cr_assert_float_eq(v, 0.5, EPS);
    /* period 46 of 2021-03-28 starts at 22:30 UTC (23:30 BST) */
    cr_assert_eq(settlement_meter_get(m, 7, INT64_C(1616970600000), &v), ANM_OK);
    cr_assert_float_eq(v, -0.125, EPS);
    cr_assert_eq(settlement_meter_get(m, 7, P35, &v), ANM_ENOTFOUND);
    settlement_meter_destroy(&m);
}

typedef struct bad_case {
    const char *text;
    int rc, line, column;
    const char *message;
} bad_case;

Test(settlement, csv_meter_errors_name_line_and_column)
{
    const bad_case cases[] = {
        {"der,date,period,mwh\n1,2021-06-15,1,1\n", ANM_EPARSE, 1, 1,
         "expected the header der,settlement_date,period,mwh"},
        {"", ANM_EPARSE, 1, 1, "expected the header der,settlement_date,period,mwh"},
        {"der,settlement_date,period,mwh\n1,2021-06-15,1,1\nx1,2021-06-15,2,1\n", ANM_EPARSE, 3,
         1, "der \"x1\" is not an integer from 0 to 4294967294"},
        {"der,settlement_date,period,mwh\n1,2021-02-30,1,1\n", ANM_ERANGE, 2, 3,
         "settlement_date: '2021-02-30' is not a day"},
        {"der,settlement_date,period,mwh\n1,15/06/2021,1,1\n", ANM_EPARSE, 2, 5,
         "settlement_date: expected a date as YYYY-MM-DD, got '15/06/2021'"},
        {"der,settlement_date,period,mwh\n1,2021-06-15,49,1\n", ANM_ERANGE, 2, 14,
         "period 49 is outside 1..48 of 2021-06-15"},
        {"der,settlement_date,period,mwh\n1,2021-03-28,47,1\n", ANM_ERANGE, 2, 14,
         "period 47 is outside 1..46 of 2021-03-28"},
        {"der,settlement_date,period,mwh\n1,2021-06-15,3,1.5MWh\n", ANM_EPARSE, 2, 16,
         "mwh \"1.5MWh\" is not a number"},
        {"der,settlement_date,period,mwh\n1,2021-06-15,3\n", ANM_EPARSE, 2, 15,
         "expected 4 fields (der,settlement_date,period,mwh), found 3"},
        {"der,settlement_date,period,mwh\n1,2021-06-15,3,1,2\n", ANM_EPARSE, 2, 18,
         "expected 4 fields (der,settlement_date,period,mwh), found more"},
        {"der,settlement_date,period,mwh\n1,2021-06-15,3,1\n1,2021-06-15,3,2\n", ANM_EDUP, 3, 1,
         "second reading of der 1 for 2021-06-15 period 3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        anm_error_detail d;
        int rc = parse(cases[i].text, &d, NULL);
        cr_assert_eq(rc, cases[i].rc, "case %zu: rc %d", i, rc);
        cr_assert_str_eq(d.file, "meter.csv");
        cr_assert_eq(d.line, cases[i].line, "case %zu: line %d", i, d.line);
        cr_assert_eq(d.column, cases[i].column, "case %zu: column %d", i, d.column);
        cr_assert_str_eq(d.message, cases[i].message, "case %zu", i);
    }
}

Test(settlement, csv_meter_file_missing)
{
    settlement_meter *m = settlement_meter_new();
    anm_error_detail d;
    cr_assert_eq(settlement_meter_load_csv(m, "/nonexistent/meter.csv", &d), ANM_EIO);
    cr_assert_str_eq(d.message, "could not open \"/nonexistent/meter.csv\": No such file or directory");
    settlement_meter_destroy(&m);
}
