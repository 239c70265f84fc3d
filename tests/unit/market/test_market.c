/*
 * test_market.c: order entry, validation rejects, idempotency, the
 * feasibility rule and continuous matching, on hand-worked examples.
 */
#include "engine/error.h"
#include "market/market.h"
#include "market/registry.h"
#include "market/statement.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MW(x) ((int64_t)((x) * 1000 + 0.5))
#define GBP(x) ((int32_t)((x) * 100 + ((x) >= 0 ? 0.5 : -0.5)))
#define PERIOD_MS INT64_C(1635638400000) /* 2021-10-31T00:00:00Z */
#define NOW_MS (PERIOD_MS - 4 * 3600 * 1000)
#define ZONE 1
#define DSO 100

typedef struct trade_log {
    market_trade trades[256];
    size_t n;
} trade_log;

static void on_trade(void *context, const market_trade *t)
{
    trade_log *log = context;
    cr_assert(log->n < 256);
    log->trades[log->n++] = *t;
}

static market_registry *registry;
static market *mk;
static trade_log trades;
static const market_product product = {ZONE, PERIOD_MS};

/* Zone 1: floor -100 GBP/MWh, ceiling 1000; traders 1..9 own DERs p and p+10;
 * DER 50 is in zone 2; participant 100 is the DSO. */
static void setup(void)
{
    registry = market_registry_new();
    cr_assert_not_null(registry);
    cr_assert_eq(market_registry_add_zone(registry, ZONE, (market_zone_info){GBP(-100), GBP(1000)}),
                 ANM_OK);
    cr_assert_eq(market_registry_add_zone(registry, 2, (market_zone_info){0, GBP(500)}), ANM_OK);
    for (uint32_t p = 1; p < 10; p++) {
        cr_assert_eq(market_registry_add_participant(registry, p, MARKET_PARTICIPANT_TRADER),
                     ANM_OK);
        for (uint32_t d = p; d <= p + 10; d += 10) {
            cr_assert_eq(market_registry_add_der(registry, d,
                                                 (market_der_info){ZONE, MW(10), MW(8)}),
                         ANM_OK);
            cr_assert_eq(market_registry_allow(registry, p, d), ANM_OK);
        }
    }
    cr_assert_eq(market_registry_add_der(registry, 50, (market_der_info){2, MW(10), MW(10)}),
                 ANM_OK);
    cr_assert_eq(market_registry_allow(registry, 1, 50), ANM_OK);
    cr_assert_eq(market_registry_add_participant(registry, DSO,
                                                 MARKET_PARTICIPANT_SYSTEM_OPERATOR),
                 ANM_OK);
    memset(&trades, 0, sizeof trades);
    market_config config = {.registry = registry,
                            .gate_closure_offset_ms = 3600 * 1000,
                            .on_trade = on_trade,
                            .on_trade_context = &trades};
    mk = market_new(&config);
    cr_assert_not_null(mk);
}

static void teardown(void)
{
    market_destroy(&mk);
    market_destroy(&mk); /* idempotent */
    market_registry_destroy(&registry);
    cr_assert_null(mk);
}

/* A statement in which every DER has sensitivity 0 except as set; headroom 100 MW. */
static market_statement *loose_statement(void)
{
    double headroom[1] = {100.0};
    return market_statement_new(1, headroom, NULL);
}

static market_order_spec order(uint64_t client, uint32_t participant, uint32_t der,
                               market_side side, double price, double mw)
{
    return (market_order_spec){.client_order_id = client,
                               .participant = participant,
                               .der = der,
                               .product = product,
                               .side = side,
                               .price_ticks = GBP(price),
                               .quantity = MW(mw),
                               .valid_until_ms = INT64_MAX};
}

static market_result submit(market_order_spec s)
{
    market_result r;
    cr_assert_eq(market_submit(mk, NOW_MS, &s, &r), ANM_OK);
    return r;
}

TestSuite(market, .init = setup, .fini = teardown);

/* ---- validation ------------------------------------------------------- */

static void expect_reject(market_order_spec s, market_reject reason, const char *text)
{
    market_result r = submit(s);
    cr_assert_eq(r.reason, reason, "got %s (%s), want %s", market_reject_name(r.reason), r.text,
                 market_reject_name(reason));
    cr_assert_str_eq(r.text, text);
    cr_assert_eq(market_resting_orders(mk, s.product), 0);
}

Test(market, rejects_each_invalid_field_with_its_own_reason)
{
    market_order_spec s = order(1, 1, 1, MARKET_OFFER, 50, 2);
    s.side = (market_side)7;
    expect_reject(s, MARKET_REJECT_MALFORMED, "side 7 is not offer, bid or requirement");
    s = order(1, 1, 1, MARKET_OFFER, 50, 0);
    expect_reject(s, MARKET_REJECT_MALFORMED, "quantity 0.000 MW is not positive");
    s = order(1, 1, 1, MARKET_OFFER, 50, 2);
    s.min_quantity = MW(2.5);
    expect_reject(s, MARKET_REJECT_MALFORMED, "minimum quantity 2.500 MW is outside 0..2.000 MW");
    s = order(1, 1, 1, MARKET_OFFER, 50, 2);
    s.availability_ticks = -1;
    expect_reject(s, MARKET_REJECT_MALFORMED, "availability price -0.01 GBP/MW/h is negative");
    expect_reject(order(1, 1, MARKET_NO_DER, MARKET_OFFER, 50, 2), MARKET_REJECT_MALFORMED,
                  "a bid or offer must name a der");
    expect_reject(order(1, 42, 1, MARKET_OFFER, 50, 2), MARKET_REJECT_UNKNOWN_PARTICIPANT,
                  "unknown participant 42");
    s = order(1, 1, 1, MARKET_OFFER, 50, 2);
    s.product.zone = 9;
    expect_reject(s, MARKET_REJECT_UNKNOWN_ZONE, "unknown zone 9");
    expect_reject(order(1, 1, 77, MARKET_OFFER, 50, 2), MARKET_REJECT_UNKNOWN_DER,
                  "unknown der 77");
    expect_reject(order(1, 1, 2, MARKET_OFFER, 50, 2), MARKET_REJECT_UNAUTHORISED_DER,
                  "participant 1 may not trade for der 2");
    expect_reject(order(1, 1, 50, MARKET_OFFER, 50, 2), MARKET_REJECT_DER_NOT_IN_ZONE,
                  "der 50 is in zone 2, not zone 1");
    expect_reject(order(1, 1, 1, MARKET_OFFER, 50, 10.001), MARKET_REJECT_ABOVE_CAPACITY,
                  "quantity 10.001 MW exceeds capacity 10.000 MW of der 1");
    expect_reject(order(1, 1, 1, MARKET_BID, 50, 8.5), MARKET_REJECT_ABOVE_CURTAILMENT,
                  "quantity 8.500 MW exceeds maximum curtailment 8.000 MW of der 1");
    expect_reject(order(1, 1, 1, MARKET_OFFER, 1000.01, 2), MARKET_REJECT_PRICE_OUT_OF_RANGE,
                  "price 1000.01 GBP/MWh above ceiling 1000.00 GBP/MWh of zone 1");
    expect_reject(order(1, 1, 1, MARKET_BID, -100.5, 2), MARKET_REJECT_PRICE_OUT_OF_RANGE,
                  "price -100.50 GBP/MWh below floor -100.00 GBP/MWh of zone 1");
    expect_reject(order(1, 1, MARKET_NO_DER, MARKET_REQUIREMENT, 50, 2),
                  MARKET_REJECT_UNAUTHORISED_SIDE,
                  "participant 1 is not a system operator and may not post requirements");
    expect_reject(order(1, DSO, 1, MARKET_REQUIREMENT, 50, 2), MARKET_REJECT_MALFORMED,
                  "a requirement names no der");
    s = order(1, 1, 1, MARKET_OFFER, 50, 2);
    s.valid_until_ms = NOW_MS;
    expect_reject(s, MARKET_REJECT_EXPIRED,
                  "validity ended at 1635624000000 ms (now 1635624000000 ms)");
    /* gate closes one hour before the period: 1635634800000 */
    s = order(1, 1, 1, MARKET_OFFER, 50, 2);
    market_result r;
    cr_assert_eq(market_submit(mk, PERIOD_MS - 3600 * 1000, &s, &r), ANM_OK);
    cr_assert_eq(r.reason, MARKET_REJECT_GATE_CLOSED);
    cr_assert_str_eq(r.text, "gate closed at 1635634800000 ms for zone 1 period 1635638400000 "
                             "(now 1635634800000 ms)");
    cr_assert_eq(market_submit(mk, PERIOD_MS - 3600 * 1000 - 1, &s, &r), ANM_OK);
    cr_assert_eq(r.reason, MARKET_ACCEPTED, "one ms before gate closure is open: %s", r.text);
    cr_assert_str_eq(market_reject_name(MARKET_REJECT_PRICE_OUT_OF_RANGE), "price_out_of_range");
}

static int64_t gate_at_noon_day_ahead(void *context, market_product p)
{
    (void)context;
    return p.period_start_ms - 12 * 3600 * 1000;
}

Test(market, gate_closure_comes_from_the_callback)
{
    market_config config = {.registry = registry, .gate_closure = gate_at_noon_day_ahead};
    market *other = market_new(&config);
    market_order_spec s = order(1, 1, 1, MARKET_OFFER, 50, 2);
    market_result r;
    cr_assert_eq(market_submit(other, NOW_MS, &s, &r), ANM_OK);
    cr_assert_eq(r.reason, MARKET_REJECT_GATE_CLOSED);
    cr_assert_eq(market_submit(other, PERIOD_MS - 12 * 3600 * 1000 - 1, &s, &r), ANM_OK);
    cr_assert_eq(r.reason, MARKET_ACCEPTED);
    market_destroy(&other);
}

Test(market, resubmission_is_idempotent_and_reuse_is_a_duplicate)
{
    market_result a = submit(order(7, 1, 1, MARKET_OFFER, 50, 2));
    cr_assert_eq(a.reason, MARKET_ACCEPTED);
    market_result b = submit(order(7, 1, 1, MARKET_OFFER, 50, 2));
    cr_assert_eq(b.reason, MARKET_ACCEPTED);
    cr_assert_eq(b.resubmission, 1);
    cr_assert_eq(b.order_id, a.order_id);
    cr_assert_eq(b.resting, MW(2));
    cr_assert_eq(market_resting_orders(mk, product), 1, "the resubmission adds nothing");
    market_result c = submit(order(7, 1, 1, MARKET_OFFER, 51, 2));
    cr_assert_eq(c.reason, MARKET_REJECT_DUPLICATE_ID);
    cr_assert_str_eq(c.text, "client order id 7 of participant 1 was used for another order");
    /* another participant may use the same client id */
    market_result d = submit(order(7, 2, 2, MARKET_OFFER, 50, 2));
    cr_assert_eq(d.reason, MARKET_ACCEPTED);
    cr_assert_eq(d.resubmission, 0);
    /* still the same answer after the gate closed */
    market_order_spec s = order(7, 1, 1, MARKET_OFFER, 50, 2);
    market_result e;
    cr_assert_eq(market_submit(mk, PERIOD_MS, &s, &e), ANM_OK);
    cr_assert_eq(e.reason, MARKET_ACCEPTED);
    cr_assert_eq(e.order_id, a.order_id);
}

Test(market, cancel_and_replace_only_own_orders)
{
    market_result a = submit(order(1, 1, 1, MARKET_OFFER, 50, 2));
    market_result r;
    cr_assert_eq(market_cancel(mk, NOW_MS, 2, a.order_id, &r), ANM_OK);
    cr_assert_eq(r.reason, MARKET_REJECT_NOT_OWNER);
    cr_assert_str_eq(r.text, "order 16777216 belongs to another participant than 2");
    market_order_spec s = order(2, 2, 2, MARKET_OFFER, 40, 2);
    cr_assert_eq(market_replace(mk, NOW_MS, a.order_id, &s, &r), ANM_OK);
    cr_assert_eq(r.reason, MARKET_REJECT_NOT_OWNER);
    cr_assert(market_order_get(mk, a.order_id, NULL));
    /* a rejected replacement leaves the old order */
    s = order(2, 1, 1, MARKET_OFFER, 4000, 2);
    cr_assert_eq(market_replace(mk, NOW_MS, a.order_id, &s, &r), ANM_OK);
    cr_assert_eq(r.reason, MARKET_REJECT_PRICE_OUT_OF_RANGE);
    cr_assert(market_order_get(mk, a.order_id, NULL));
    s = order(2, 1, 1, MARKET_OFFER, 45, 3);
    cr_assert_eq(market_replace(mk, NOW_MS, a.order_id, &s, &r), ANM_OK);
    cr_assert_eq(r.reason, MARKET_ACCEPTED);
    cr_assert(!market_order_get(mk, a.order_id, NULL));
    market_order_view v;
    cr_assert(market_order_get(mk, r.order_id, &v));
    cr_assert_eq(v.spec.price_ticks, GBP(45));
    cr_assert_eq(v.spec.quantity, MW(3));
    uint64_t replaced = r.order_id;
    cr_assert_eq(market_cancel(mk, NOW_MS, 1, replaced, &r), ANM_OK);
    cr_assert_eq(r.reason, MARKET_ACCEPTED);
    cr_assert_eq(market_resting_orders(mk, product), 0);
    cr_assert_eq(market_cancel(mk, NOW_MS, 1, replaced, &r), ANM_OK);
    cr_assert_eq(r.reason, MARKET_REJECT_UNKNOWN_ORDER);
}

/* ---- feasibility ------------------------------------------------------ */

/*
 * Two binding constraints, H = (2.0, 2.4) MW. Offer DER 1: a = (0.5, 0.2);
 * bid DER 2: a = (0.9, 0.8); d = (0.4, 0.6): c0 allows 2.0/0.4 = 5 MW, c1
 * 2.4/0.6 = 4 MW, so 4 MW, limited by c1. Then used = (1.6, 2.4); a bid at
 * DER 3 with a = (0.9, 0.1): d = (0.4, -0.1): c0 allows 0.4/0.4 = 1 MW.
 */
static market_statement *two_constraint_statement(void)
{
    double headroom[2] = {2.0, 2.4};
    const char *names[2] = {"line 4-5", "transformer T1"};
    market_statement *st = market_statement_new(2, headroom, names);
    cr_assert_not_null(st);
    cr_assert_eq(market_statement_set_sensitivity(st, 1, 0, 0.5), ANM_OK);
    cr_assert_eq(market_statement_set_sensitivity(st, 1, 1, 0.2), ANM_OK);
    cr_assert_eq(market_statement_set_sensitivity(st, 2, 0, 0.9), ANM_OK);
    cr_assert_eq(market_statement_set_sensitivity(st, 2, 1, 0.8), ANM_OK);
    cr_assert_eq(market_statement_set_sensitivity(st, 3, 0, 0.9), ANM_OK);
    cr_assert_eq(market_statement_set_sensitivity(st, 3, 1, 0.1), ANM_OK);
    return st;
}

Test(market, feasibility_with_two_binding_constraints)
{
    market_statement *st = two_constraint_statement();
    double used[2] = {0, 0};
    int limiting = 99;
    cr_assert_eq(market_statement_feasible(st, used, 1, 2, MW(10), &limiting), MW(4));
    cr_assert_eq(limiting, 1);
    cr_assert_str_eq(market_statement_constraint_name(st, (size_t)limiting), "transformer T1");
    cr_assert_eq(market_statement_feasible(st, used, 1, 2, MW(3), &limiting), MW(3));
    cr_assert_eq(limiting, -1, "a volume within headroom is not limited");
    market_statement_apply(st, used, 1, 2, MW(4));
    cr_assert_float_eq(used[0], 1.6, 1e-12);
    cr_assert_float_eq(used[1], 2.4, 1e-12);
    cr_assert_eq(market_statement_feasible(st, used, 1, 3, MW(10), &limiting), MW(1));
    cr_assert_eq(limiting, 0);
    cr_assert_eq(market_statement_feasible(st, used, 1, 2, MW(10), &limiting), 0);
    /* a swap towards a less sensitive bidder relieves both: unlimited */
    cr_assert_eq(market_statement_feasible(st, used, 2, 1, MW(10), &limiting), MW(10));
    cr_assert_eq(limiting, -1);
    /* a DER absent from the statement has sensitivity 0 */
    cr_assert_float_eq(market_statement_sensitivity(st, 77, 0), 0.0, 0.0);
    /* a requirement only adds flow where the offering DER's sensitivity is negative */
    cr_assert_eq(market_statement_feasible(st, used, 1, MARKET_NO_DER, MW(10), NULL), MW(10));
    market_statement_destroy(&st);
    market_statement_destroy(&st);
}

Test(market, continuous_match_is_cut_to_the_feasible_volume)
{
    cr_assert_eq(market_set_statement(mk, product, two_constraint_statement()), ANM_OK);
    cr_assert_eq(submit(order(1, 1, 1, MARKET_OFFER, 30, 10)).reason, MARKET_ACCEPTED);
    market_result r = submit(order(2, 2, 2, MARKET_BID, 60, 8));
    cr_assert_eq(r.reason, MARKET_ACCEPTED);
    cr_assert_eq(r.filled, MW(4));
    cr_assert_eq(r.resting, MW(4));
    cr_assert_eq(trades.n, 1);
    cr_assert_eq(trades.trades[0].volume, MW(4));
    cr_assert_eq(trades.trades[0].seller_price_ticks, GBP(30), "the resting order sets the price");
    cr_assert_float_eq(market_used_mw(mk, product, 1), 2.4, 1e-9);
    r = submit(order(3, 3, 3, MARKET_BID, 60, 5));
    cr_assert_eq(r.filled, MW(1));
    /* a re-issued statement resets the accumulated effect */
    cr_assert_eq(market_set_statement(mk, product, two_constraint_statement()), ANM_OK);
    cr_assert_float_eq(market_used_mw(mk, product, 0), 0.0, 0.0);
}

/* ---- continuous matching ---------------------------------------------- */

Test(market, price_then_time_priority_with_partial_fills)
{
    cr_assert_eq(market_set_statement(mk, product, loose_statement()), ANM_OK);
    market_result o50 = submit(order(1, 1, 1, MARKET_OFFER, 50, 10));
    market_result o40a = submit(order(2, 2, 2, MARKET_OFFER, 40, 10));
    market_result o40b = submit(order(3, 3, 3, MARKET_OFFER, 40, 10));
    cr_assert_eq(trades.n, 0, "offers alone do not trade");
    market_result b = submit(order(4, 4, 4, MARKET_BID, 45, 8));
    cr_assert_eq(b.reason, MARKET_ACCEPTED);
    cr_assert_eq(b.filled, MW(8));
    b = submit(order(5, 5, 5, MARKET_BID, 60, 8));
    cr_assert_eq(b.filled, MW(8));
    cr_assert_eq(trades.n, 3);
    cr_assert_eq(trades.trades[0].sell_order_id, o40a.order_id);
    cr_assert_eq(trades.trades[0].volume, MW(8));
    cr_assert_eq(trades.trades[1].sell_order_id, o40a.order_id);
    cr_assert_eq(trades.trades[1].volume, MW(2));
    cr_assert_eq(trades.trades[2].sell_order_id, o40b.order_id);
    cr_assert_eq(trades.trades[2].volume, MW(6));
    cr_assert_eq(trades.trades[2].buyer_price_ticks, GBP(40));
    cr_assert_eq(trades.trades[2].trade_id, 3);
    market_order_view v;
    cr_assert(market_order_get(mk, o40b.order_id, &v));
    cr_assert_eq(v.filled, MW(6));
    cr_assert(market_order_get(mk, o50.order_id, &v));
    cr_assert_eq(v.filled, 0);
    int64_t best;
    cr_assert(market_best_rank(mk, product, 0, &best));
    cr_assert_eq(best, (int64_t)GBP(40), "rank = price + availability with weighting 1");
}

Test(market, no_statement_means_no_trade)
{
    submit(order(1, 1, 1, MARKET_OFFER, 40, 10));
    market_result r = submit(order(2, 2, 2, MARKET_BID, 60, 5));
    cr_assert_eq(r.filled, 0);
    cr_assert_eq(r.resting, MW(5));
    cr_assert_eq(market_resting_orders(mk, product), 2);
}

Test(market, minimum_quantities_in_continuous_matching)
{
    cr_assert_eq(market_set_statement(mk, product, loose_statement()), ANM_OK);
    market_order_spec fok = order(1, 1, 1, MARKET_OFFER, 40, 6);
    fok.min_quantity = MW(6);
    market_result o = submit(fok);
    /* a bid for 5 MW cannot satisfy a 6 MW fill-or-kill offer */
    market_result b = submit(order(2, 2, 2, MARKET_BID, 60, 5));
    cr_assert_eq(b.filled, 0);
    /* an incoming order with a 4 MW minimum: 5 MW resting at 60 + nothing else: fits */
    market_order_spec in = order(3, 3, 3, MARKET_OFFER, 50, 8);
    in.min_quantity = MW(6);
    market_result r = submit(in);
    cr_assert_eq(r.filled, 0, "only 5 MW available against a 6 MW minimum: no trade");
    cr_assert_eq(r.resting, MW(8));
    /* 7 MW at 70: 6 MW from the fill-or-kill offer; the 1 MW left is below
     * offer 3's 6 MW minimum, so it rests */
    market_result b2 = submit(order(4, 4, 4, MARKET_BID, 70, 7));
    cr_assert_eq(b2.filled, MW(6));
    cr_assert_eq(b2.resting, MW(1));
    cr_assert_eq(trades.n, 1);
    cr_assert_eq(trades.trades[0].sell_order_id, o.order_id);
    cr_assert_eq(trades.trades[0].volume, MW(6));
    /* 6 MW meets offer 3's minimum; after that it is divisible */
    cr_assert_eq(submit(order(5, 5, 5, MARKET_BID, 55, 6)).filled, MW(6));
    cr_assert_eq(submit(order(6, 6, 6, MARKET_BID, 51, 1)).filled, MW(1));
    cr_assert_eq(trades.n, 3);
    cr_assert_eq(trades.trades[1].sell_order_id, r.order_id);
    cr_assert_eq(trades.trades[2].sell_order_id, r.order_id);
    market_order_view v;
    cr_assert(market_order_get(mk, r.order_id, &v));
    cr_assert_eq(v.filled, MW(7));
}

Test(market, expired_orders_and_self_trades_do_not_match)
{
    cr_assert_eq(market_set_statement(mk, product, loose_statement()), ANM_OK);
    market_order_spec s = order(1, 1, 1, MARKET_OFFER, 40, 5);
    s.valid_until_ms = NOW_MS + 1000;
    submit(s);
    submit(order(2, 1, 11, MARKET_OFFER, 41, 5));
    market_order_spec b = order(3, 1, 1, MARKET_BID, 60, 5);
    market_result r;
    cr_assert_eq(market_submit(mk, NOW_MS + 1000, &b, &r), ANM_OK);
    cr_assert_eq(r.filled, 0, "the only live offer is participant 1's own");
    cr_assert_eq(market_resting_orders(mk, product), 2, "the expired offer left the book");
    b = order(4, 2, 2, MARKET_BID, 60, 5);
    cr_assert_eq(market_submit(mk, NOW_MS + 1000, &b, &r), ANM_OK);
    cr_assert_eq(r.filled, MW(5));
    cr_assert_eq(trades.trades[0].seller_price_ticks, GBP(41));
    /* a sweep removes exactly the orders whose validity ended */
    market_order_spec a = order(5, 3, 3, MARKET_OFFER, 70, 1); /* above the resting bid at 60 */
    a.valid_until_ms = NOW_MS + 2000;
    market_order_spec c = order(6, 4, 4, MARKET_OFFER, 70, 1);
    c.valid_until_ms = NOW_MS + 2001;
    cr_assert_eq(market_submit(mk, NOW_MS, &a, &r), ANM_OK);
    cr_assert_eq(market_submit(mk, NOW_MS, &c, &r), ANM_OK);
    cr_assert_eq(market_resting_orders(mk, product), 3);
    cr_assert_eq(market_expire(mk, NOW_MS + 2000, product), 1);
    cr_assert_eq(market_resting_orders(mk, product), 2);
    cr_assert(market_order_get(mk, r.order_id, NULL));
}

Test(market, requirement_buys_relief_in_the_same_merit_order)
{
    cr_assert_eq(market_set_statement(mk, product, two_constraint_statement()), ANM_OK);
    submit(order(1, 1, 1, MARKET_OFFER, 30, 10));
    market_result r = submit(order(2, DSO, MARKET_NO_DER, MARKET_REQUIREMENT, 35, 6));
    cr_assert_eq(r.reason, MARKET_ACCEPTED);
    cr_assert_eq(r.filled, MW(6));
    cr_assert_eq(trades.trades[0].buy_der, MARKET_NO_DER);
    cr_assert_float_eq(market_used_mw(mk, product, 0), 0.0, 0.0,
                       "relief bought by the DSO is not resold to peers");
}

Test(market, memory_per_resting_order_is_within_200_bytes)
{
    size_t node = market_order_node_bytes();
    size_t index = market_index_bytes_per_order_max();
    cr_log_info("order node %zu bytes, client index at most %zu bytes per order", node, index);
    cr_assert_eq(node, 88);
    cr_assert_leq(node + index, 200);
}
