/*
 * test_store.c: market results and settlement in a real PostgreSQL
 * (tests/lib/pg_harness.h): round trips of orders, an auction with its
 * stacks and trades, telemetry integration from the telemetry table, and
 * replay idempotence (writing everything twice stores it once).
 */
#include "engine/calendar.h"
#include "engine/db.h"
#include "engine/db_migrate.h"
#include "engine/error.h"
#include "market/settlement.h"
#include "market/store.h"
#include "pg_harness.h"
#include "testlib.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P35 INT64_C(1623772800000) /* 2021-06-15 period 35, 16:00Z */

static anm_db *open_db(void)
{
    char conninfo[1024], sql[1024];
    cr_assert_eq(anm_pg_test_database(conninfo, sizeof conninfo), 0);
    anm_db *db = NULL;
    anm_db_options o = {.max_attempts = 1};
    cr_assert_eq(anm_db_connect(conninfo, &o, &db), ANM_OK);
    anm_test_source_path(sql, sizeof sql, "sql");
    anm_error_detail err;
    int applied = 0;
    int rc = anm_db_migrate(db, sql, &applied, &err);
    cr_assert_eq(rc, ANM_OK, "migrate: %s %s", err.file, err.message);
    cr_assert_geq(applied, 4);
    return db;
}

/* The single value of a query as text (caller frees). */
static char *value(anm_db *db, const char *sql)
{
    anm_db_result *r = NULL;
    cr_assert_eq(anm_db_exec(db, sql, 0, NULL, &r, NULL), ANM_OK, "%s: %s", sql,
                 anm_db_error_message(db));
    cr_assert_eq(anm_db_result_rows(r), 1, "%s", sql);
    char *v = strdup(anm_db_result_value(r, 0, 0));
    anm_db_result_destroy(&r);
    return v;
}

static void expect(anm_db *db, const char *sql, const char *want)
{
    char *v = value(db, sql);
    cr_assert_str_eq(v, want, "%s", sql);
    free(v);
}

/* A small cleared auction, as market_auction_run would report it: two offers
 * (one partly accepted), three bids (two at one rank), two trades. */
typedef struct auction_fixture {
    market_stack_entry bids[3], offers[2];
    market_trade trades[2];
    market_auction_result result;
} auction_fixture;

static void auction_fixture_init(auction_fixture *f)
{
    memset(f, 0, sizeof *f);
    market_product product = {.zone = 7, .period_start_ms = P35};
    f->offers[0] = (market_stack_entry){(UINT64_C(1) << 24) | 1, 3000, 3000, 0, 2000, 2000};
    f->offers[1] = (market_stack_entry){(UINT64_C(2) << 24) | 2, 4500, 4000, 500, 3000, 1000};
    f->bids[0] = (market_stack_entry){(UINT64_C(3) << 24) | 3, 6000, 6000, 0, 1500, 1500};
    f->bids[1] = (market_stack_entry){(UINT64_C(4) << 24) | 4, 5000, 5000, 0, 1500, 1500};
    f->bids[2] = (market_stack_entry){(UINT64_C(5) << 24) | 5, 5000, 5000, 0, 700, 0};
    for (int k = 0; k < 2; k++) {
        f->trades[k] = (market_trade){.trade_id = 10 + (uint64_t)k,
                                      .buy_order_id = f->bids[k].order_id,
                                      .sell_order_id = f->offers[k].order_id,
                                      .buyer = 20 + (uint32_t)k,
                                      .seller = 30 + (uint32_t)k,
                                      .buy_der = k == 0 ? 40 : MARKET_NO_DER,
                                      .sell_der = 50 + (uint32_t)k,
                                      .product = product,
                                      .kind = MARKET_TRADE_AUCTION,
                                      .volume = 1500,
                                      .buyer_price_ticks = (int32_t)f->bids[k].price_ticks,
                                      .buyer_availability_ticks = 0,
                                      .seller_price_ticks = f->offers[k].price_ticks,
                                      .seller_availability_ticks = f->offers[k].availability_ticks,
                                      .executed_ms = P35 - 3600000};
    }
    f->result = (market_auction_result){.product = product,
                                        .n_bids = 3,
                                        .n_offers = 2,
                                        .bids = f->bids,
                                        .offers = f->offers,
                                        .unconstrained_volume = 3700,
                                        .accepted_volume = 3000,
                                        .has_price = 1,
                                        .clearing_rank = 4500,
                                        .clearing_price_ticks = 4000,
                                        .clearing_availability_ticks = 500,
                                        .price_setting_order_id = f->offers[1].order_id,
                                        .limiting_constraint = 1,
                                        .n_trades = 2,
                                        .trades = f->trades};
}

Test(store, auction_round_trip_and_replay, .timeout = 60)
{
    anm_db *db = open_db();
    auction_fixture f;
    auction_fixture_init(&f);
    market_auction_config config = {.pricing = MARKET_PAY_AS_BID, .pro_rata = 0};
    int stored = -1;
    int64_t cleared = P35 - 3600000;
    cr_assert_eq(market_store_auction(db, 77, cleared, &config, &f.result, &stored), ANM_OK, "%s",
                 anm_db_error_message(db));
    cr_assert_eq(stored, 1);
    expect(db,
           "SELECT concat_ws(' ', zone, period_start AT TIME ZONE 'UTC', pricing, n_bids, n_offers, "
           "unconstrained_volume_kw, accepted_volume_kw, clearing_rank, clearing_price_ticks, "
           "clearing_availability_ticks, price_setting_order_id, limiting_constraint, n_trades) "
           "FROM market_auctions WHERE auction_id = 77",
           "7 2021-06-15 16:00:00 pay_as_bid 3 2 3700 3000 4500 4000 500 33554434 1 2");
    /* the stacks in merit order, both sides */
    expect(db,
           "SELECT string_agg(concat(side, ':', position, ':', order_id, ':', quantity_kw, ':', "
           "accepted_kw), ' ' ORDER BY side, position) FROM market_stack_entries "
           "WHERE auction_id = 77",
           "0:0:16777217:2000:2000 0:1:33554434:3000:1000 1:0:50331651:1500:1500 "
           "1:1:67108868:1500:1500 1:2:83886085:700:0");
    /* the chart's steps: the two bids at 50 GBP/MWh form one step of 2.2 MW */
    expect(db,
           "SELECT string_agg(concat(rank, ':', quantity_kw, ':', cumulative_kw), ' ' "
           "ORDER BY cumulative_kw) FROM market_stack_steps WHERE auction_id = 77 AND side = 1",
           "6000:1500:1500 5000:2200:3700");
    /* trades come back as they went in */
    market_trade *back = NULL;
    size_t n = 0;
    cr_assert_eq(market_store_load_trades(db, P35, P35 + 1800000, &back, &n), ANM_OK);
    cr_assert_eq(n, 2);
    for (size_t k = 0; k < n; k++) {
        const market_trade *a = &back[k], *e = &f.trades[k];
        cr_assert(a->trade_id == e->trade_id && a->buy_order_id == e->buy_order_id &&
                      a->sell_order_id == e->sell_order_id && a->buyer == e->buyer &&
                      a->seller == e->seller && a->buy_der == e->buy_der &&
                      a->sell_der == e->sell_der && a->product.zone == e->product.zone &&
                      a->product.period_start_ms == e->product.period_start_ms &&
                      a->kind == e->kind && a->volume == e->volume &&
                      a->buyer_price_ticks == e->buyer_price_ticks &&
                      a->buyer_availability_ticks == e->buyer_availability_ticks &&
                      a->seller_price_ticks == e->seller_price_ticks &&
                      a->seller_availability_ticks == e->seller_availability_ticks &&
                      a->executed_ms == e->executed_ms,
                  "trade %zu differs after the round trip", k);
    }
    free(back);
    cr_assert_eq(market_store_load_trades(db, P35 + 1800000, P35 + 3600000, &back, &n), ANM_OK);
    cr_assert_eq(n, 0, "the next period has no trades");
    cr_assert_null(back);

    /* replay: the same auction and its trades again store nothing */
    cr_assert_eq(market_store_auction(db, 77, cleared, &config, &f.result, &stored), ANM_OK);
    cr_assert_eq(stored, 0);
    long long inserted = -1;
    cr_assert_eq(market_store_trades(db, 77, f.trades, 2, &inserted), ANM_OK);
    cr_assert_eq(inserted, 0);
    expect(db, "SELECT count(*) FROM market_stack_entries", "5");
    expect(db, "SELECT count(*) FROM market_trades", "2");
    expect(db, "SELECT count(*) FROM market_auctions", "1");

    /* a continuous trade after the auction: new, then idempotent */
    market_trade later = f.trades[1];
    later.trade_id = 12;
    later.kind = MARKET_TRADE_CONTINUOUS;
    cr_assert_eq(market_store_trades(db, 0, &later, 1, &inserted), ANM_OK);
    cr_assert_eq(inserted, 1);
    cr_assert_eq(market_store_trades(db, 0, &later, 1, &inserted), ANM_OK);
    cr_assert_eq(inserted, 0);
    expect(db, "SELECT concat(kind, ' ', auction_id IS NULL, ' ', buy_der IS NULL) "
               "FROM market_trades WHERE trade_id = 12",
           "continuous t t");
    anm_db_destroy(&db);
}

Test(store, orders_round_trip_and_replay, .timeout = 60)
{
    anm_db *db = open_db();
    market_stored_order o[2] = {
        {.order_id = (UINT64_C(1) << 24) | 9,
         .submitted_ms = P35 - 7200000,
         .spec = {.client_order_id = UINT64_MAX,
                  .participant = 3,
                  .der = 4,
                  .product = {7, P35},
                  .side = MARKET_OFFER,
                  .price_ticks = -1250,
                  .availability_ticks = 300,
                  .quantity = 2500,
                  .min_quantity = 2500,
                  .valid_until_ms = INT64_MAX}},
        {.order_id = (UINT64_C(2) << 24) | 10,
         .submitted_ms = P35 - 7100000,
         .spec = {.client_order_id = 42,
                  .participant = 100,
                  .der = MARKET_NO_DER,
                  .product = {7, P35},
                  .side = MARKET_REQUIREMENT,
                  .price_ticks = 9000,
                  .quantity = 1000,
                  .valid_until_ms = P35 - 3600000}},
    };
    long long inserted = -1;
    cr_assert_eq(market_store_orders(db, o, 2, &inserted), ANM_OK, "%s", anm_db_error_message(db));
    cr_assert_eq(inserted, 2);
    cr_assert_eq(market_store_orders(db, o, 2, &inserted), ANM_OK);
    cr_assert_eq(inserted, 0, "a replay stores nothing twice");
    expect(db,
           "SELECT string_agg(concat_ws(' ', order_id, client_order_id, participant, "
           "coalesce(der::text, '-'), side, price_ticks, availability_ticks, quantity_kw, "
           "min_quantity_kw, coalesce((valid_until AT TIME ZONE 'UTC')::text, 'never')), '; ' "
           "ORDER BY order_id) FROM market_orders",
           "16777225 18446744073709551615 3 4 offer -1250 300 2500 2500 never; "
           "33554442 42 100 - requirement 9000 0 1000 0 2021-06-15 15:00:00");
    anm_db_destroy(&db);
}

Test(store, settlement_from_telemetry_stored_once, .timeout = 60)
{
    anm_db *db = open_db();
    /* telemetry of signal 5: 4 MW from 15:59Z to 16:31Z every 10 s, good quality,
     * plus a bad-quality spike: period 35 integrates to 2.0 MWh */
    const char *p[1] = {"2021-06-15"};
    cr_assert_eq(anm_db_exec(db, "SELECT anm_ensure_telemetry_partitions($1::date, 1)", 1, p,
                             NULL, NULL),
                 ANM_OK, "%s", anm_db_error_message(db));
    anm_db_copy_buffer *b = anm_db_copy_buffer_new();
    for (int64_t t = P35 - 60000; t <= P35 + 1800000 + 60000; t += 10000) {
        anm_db_copy_row(b, 4);
        anm_db_copy_int4(b, 5);
        anm_db_copy_int4(b, 0);
        anm_db_copy_timestamptz(b, t * 1000);
        anm_db_copy_float8(b, 4.0);
    }
    anm_db_copy_row(b, 4);
    anm_db_copy_int4(b, 5);
    anm_db_copy_int4(b, 0x40);
    anm_db_copy_timestamptz(b, (P35 + 5000) * 1000);
    anm_db_copy_float8(b, 400.0);
    cr_assert_eq(anm_db_copy_in(db,
                                "COPY telemetry (signal_key, quality, time, value) FROM STDIN "
                                "(FORMAT binary)",
                                b, NULL),
                 ANM_OK, "%s", anm_db_error_message(db));
    anm_db_copy_buffer_destroy(&b);

    settlement_meter *tm = settlement_meter_new();
    size_t added = 0;
    cr_assert_eq(settlement_meter_load_telemetry(tm, db, 1, 5, P35 - 1800000, P35 + 3600000, NULL,
                                                 &added),
                 ANM_OK, "%s", anm_db_error_message(db));
    cr_assert_eq(added, 1, "only period 35 is covered");
    double mwh = 0;
    cr_assert_eq(settlement_meter_get(tm, 1, P35, &mwh), ANM_OK);
    cr_assert_float_eq(mwh, 2.0, 1e-9, "4 MW x 0.5 h");

    /* DER 1 nominated 3.0 MWh, metered 2.0 by telemetry: 1.0 delivered of 1.5 */
    settlement_meter *nom = settlement_meter_new();
    cr_assert_eq(settlement_meter_add(nom, 1, P35, 3.0), ANM_OK);
    settlement_der der = {.der = 1, .baseline = SETTLEMENT_BASELINE_NOMINATED};
    market_trade t = {.trade_id = 5,
                      .buyer = 100,
                      .seller = 2,
                      .buy_der = MARKET_NO_DER,
                      .sell_der = 1,
                      .product = {7, P35},
                      .volume = 3000,
                      .seller_price_ticks = 5000,
                      .buyer_price_ticks = 5000};
    settlement_input in = {.trades = &t,
                           .n_trades = 1,
                           .ders = &der,
                           .n_ders = 1,
                           .telemetry = tm,
                           .nominations = nom,
                           .dso = 100,
                           .neso = SETTLEMENT_NO_PARTICIPANT};
    settlement_report *r = NULL;
    cr_assert_eq(settlement_run(&in, &r), ANM_OK);
    anm_settlement_date date = {2021, 6, 15};
    for (int k = 0; k < 2; k++) { /* twice: a re-run replaces, never duplicates */
        cr_assert_eq(settlement_store(db, r, date), ANM_OK, "%s", anm_db_error_message(db));
    }
    expect(db,
           "SELECT concat_ws(' ', trade_id, settlement_date, period, status, metering_source, "
           "delivered_mwh, shortfall_mwh, seller_total_pence, buyer_total_pence) "
           "FROM settlement_lines",
           "5 2021-06-15 35 settled telemetry 1 0.5 5000 5000");
    expect(db,
           "SELECT string_agg(concat(party_kind, ':', party, ':', format), ' ' ORDER BY "
           "party_kind, party, format) FROM settlement_reports",
           "dso:100:csv dso:100:json participant:2:csv participant:2:json participant:100:csv "
           "participant:100:json");
    char *csv = NULL;
    cr_assert_eq(settlement_report_csv(r, SETTLEMENT_PARTY_PARTICIPANT, 2, &csv), ANM_OK);
    char *body = value(db, "SELECT body FROM settlement_reports WHERE party = 2 AND format = 'csv'");
    cr_assert_str_eq(body, csv, "the stored report is the one generated");
    free(body);
    free(csv);
    settlement_report_destroy(&r);
    settlement_meter_destroy(&tm);
    settlement_meter_destroy(&nom);
    anm_db_destroy(&db);
}
