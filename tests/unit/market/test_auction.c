/*
 * test_auction.c: the gate-closure auction on hand-worked books (no cross,
 * one-sided, ties at the margin with and without pro rata, minimum
 * quantities, feasibility), property tests over thousands of seeded random
 * books, replay determinism, and a timing print (not an assertion).
 */
#include "engine/clock.h"
#include "engine/error.h"
#include "market/auction.h"
#include "market/market.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MW(x) ((int64_t)((x) * 1000 + 0.5))
#define GBP(x) ((int32_t)((x) * 100 + ((x) >= 0 ? 0.5 : -0.5)))
#define PERIOD_MS INT64_C(1635638400000)
#define NOW_MS (PERIOD_MS - 4 * 3600 * 1000)
#define ZONE 1
#define N_TRADERS 40
#define DSO 100

static const market_product product = {ZONE, PERIOD_MS};

typedef struct fixture {
    market_registry *registry;
    market *m;
    uint64_t next_client;
    market_auction_result result; /* arrays borrowed from m */
} fixture;

/* Traders 1..40 each own DER p; DSO 100. Capacities 1000 MW so any random
 * quantity passes validation. */
static void fixture_init(fixture *f, market_mode mode)
{
    f->registry = market_registry_new();
    cr_assert_not_null(f->registry);
    cr_assert_eq(market_registry_add_zone(f->registry, ZONE, (market_zone_info){0, GBP(5000)}),
                 ANM_OK);
    for (uint32_t p = 1; p <= N_TRADERS; p++) {
        market_registry_add_participant(f->registry, p, MARKET_PARTICIPANT_TRADER);
        market_registry_add_der(f->registry, p, (market_der_info){ZONE, MW(1000), MW(1000)});
        market_registry_allow(f->registry, p, p);
    }
    market_registry_add_participant(f->registry, DSO, MARKET_PARTICIPANT_SYSTEM_OPERATOR);
    market_config config = {.registry = f->registry,
                            .gate_closure_offset_ms = 3600 * 1000,
                            .initial_mode = mode};
    f->m = market_new(&config);
    cr_assert_not_null(f->m);
    f->next_client = 1;
}

static void fixture_fini(fixture *f)
{
    market_destroy(&f->m);
    market_registry_destroy(&f->registry);
}

static uint64_t add(fixture *f, uint32_t participant, market_side side, double price, double mw,
                    double min_mw)
{
    market_order_spec s = {.client_order_id = f->next_client++,
                           .participant = participant,
                           .der = side == MARKET_REQUIREMENT ? MARKET_NO_DER : participant,
                           .product = product,
                           .side = side,
                           .price_ticks = GBP(price),
                           .quantity = MW(mw),
                           .min_quantity = MW(min_mw),
                           .valid_until_ms = INT64_MAX};
    market_result r;
    cr_assert_eq(market_submit(f->m, NOW_MS, &s, &r), ANM_OK);
    cr_assert_eq(r.reason, MARKET_ACCEPTED, "%s", r.text);
    return r.order_id;
}

static void loose(fixture *f)
{
    double headroom[1] = {1e6};
    cr_assert_eq(market_set_statement(f->m, product, market_statement_new(1, headroom, NULL)),
                 ANM_OK);
}

static market_auction_result *run(fixture *f, market_pricing pricing, int pro_rata)
{
    market_auction_config config = {.pricing = pricing, .pro_rata = pro_rata};
    cr_assert_eq(market_auction_run(f->m, NOW_MS, product, &config, &f->result), ANM_OK);
    return &f->result;
}

static int64_t accepted_of(const market_stack_entry *stack, size_t n, uint64_t order_id)
{
    for (size_t i = 0; i < n; i++) {
        if (stack[i].order_id == order_id) {
            return stack[i].accepted;
        }
    }
    cr_assert_fail("order %llu not in the stack", (unsigned long long)order_id);
    return -1;
}

Test(auction, no_cross_and_one_sided_books_clear_nothing)
{
    fixture f;
    fixture_init(&f, MARKET_MODE_CALL);
    loose(&f);
    add(&f, 1, MARKET_OFFER, 40, 5, 0);
    market_auction_result *res = run(&f, MARKET_PAY_AS_BID, 0);
    cr_assert_eq(res->n_offers, 1);
    cr_assert_eq(res->n_bids, 0);
    cr_assert_eq(res->unconstrained_volume, 0);
    cr_assert_eq(res->n_trades, 0);
    cr_assert_eq(res->has_price, 0);
    add(&f, 2, MARKET_BID, 39.99, 5, 0);
    res = run(&f, MARKET_UNIFORM, 1);
    cr_assert_eq(res->unconstrained_volume, 0, "39.99 < 40.00: no cross");
    cr_assert_eq(res->accepted_volume, 0);
    cr_assert_eq(res->has_price, 0);
    cr_assert_eq(market_resting_orders(f.m, product), 2);
    fixture_fini(&f);
}

/*
 * Offers 10 @ 5 MW, 20 @ 5 MW, 30 @ 5 MW; bids 35 @ 8 MW, 25 @ 4 MW.
 * Bid 35 takes 5 from offer 10 and 3 from offer 20; bid 25 takes 2 from
 * offer 20; offer 30 is above 25. Volume 10 MW; the highest accepted offer
 * is 20, which sets the uniform price.
 */
Test(auction, pay_as_bid_and_uniform_prices)
{
    for (int pricing = 0; pricing < 2; pricing++) {
        fixture f;
        fixture_init(&f, MARKET_MODE_CALL);
        loose(&f);
        uint64_t o10 = add(&f, 1, MARKET_OFFER, 10, 5, 0);
        uint64_t o20 = add(&f, 2, MARKET_OFFER, 20, 5, 0);
        uint64_t o30 = add(&f, 3, MARKET_OFFER, 30, 5, 0);
        uint64_t b35 = add(&f, 4, MARKET_BID, 35, 8, 0);
        uint64_t b25 = add(&f, 5, MARKET_BID, 25, 4, 0);
        market_auction_result *res = run(&f, (market_pricing)pricing, 0);
        cr_assert_eq(res->unconstrained_volume, MW(10));
        cr_assert_eq(res->accepted_volume, MW(10));
        cr_assert_eq(res->bids[0].order_id, b35, "bids descending");
        cr_assert_eq(res->offers[0].order_id, o10, "offers ascending");
        cr_assert_eq(res->offers[2].order_id, o30);
        cr_assert_eq(res->offers[2].accepted, 0);
        cr_assert_eq(res->has_price, 1);
        cr_assert_eq(res->clearing_price_ticks, GBP(20));
        cr_assert_eq(res->price_setting_order_id, o20);
        cr_assert_eq(res->n_trades, 3);
        const market_trade *t = res->trades;
        cr_assert_eq(t[0].buy_order_id, b35);
        cr_assert_eq(t[0].sell_order_id, o10);
        cr_assert_eq(t[0].volume, MW(5));
        cr_assert_eq(t[1].sell_order_id, o20);
        cr_assert_eq(t[1].volume, MW(3));
        cr_assert_eq(t[2].buy_order_id, b25);
        cr_assert_eq(t[2].volume, MW(2));
        if (pricing == MARKET_PAY_AS_BID) {
            cr_assert_eq(t[0].buyer_price_ticks, GBP(35));
            cr_assert_eq(t[0].seller_price_ticks, GBP(10));
            cr_assert_eq(t[2].buyer_price_ticks, GBP(25));
            cr_assert_eq(t[2].seller_price_ticks, GBP(20));
        } else {
            for (int k = 0; k < 3; k++) {
                cr_assert_eq(t[k].buyer_price_ticks, GBP(20));
                cr_assert_eq(t[k].seller_price_ticks, GBP(20));
            }
        }
        /* filled orders left the book, remainders stay */
        cr_assert_eq(market_resting_orders(f.m, product), 2);
        market_order_view v;
        cr_assert(market_order_get(f.m, b25, &v));
        cr_assert_eq(v.filled, MW(2));
        cr_assert(!market_order_get(f.m, b35, NULL));
            fixture_fini(&f);
    }
}

/* Offers 1 MW, 1 MW, 1 MW all at 10 (arrival A, B, C); a bid of 2 MW at 50.
 * Time priority: A 1, B 1, C 0. Pro rata: 2000 * 1000 / 3000 = 666 units
 * each, the 2 units left go in arrival order: A 667, B 667, C 666. */
Test(auction, exact_tie_at_the_margin)
{
    for (int pro = 0; pro < 2; pro++) {
        fixture f;
        fixture_init(&f, MARKET_MODE_CALL);
        loose(&f);
        uint64_t a = add(&f, 1, MARKET_OFFER, 10, 1, 0);
        uint64_t b = add(&f, 2, MARKET_OFFER, 10, 1, 0);
        uint64_t c = add(&f, 3, MARKET_OFFER, 10, 1, 0);
        add(&f, 4, MARKET_BID, 50, 2, 0);
        market_auction_result *res = run(&f, MARKET_PAY_AS_BID, pro);
        cr_assert_eq(res->offers[0].order_id, a, "ties ranked by arrival");
        cr_assert_eq(res->offers[2].order_id, c);
        int64_t want[2][3] = {{1000, 1000, 0}, {667, 667, 666}};
        cr_assert_eq(accepted_of(res->offers, 3, a), want[pro][0]);
        cr_assert_eq(accepted_of(res->offers, 3, b), want[pro][1]);
        cr_assert_eq(accepted_of(res->offers, 3, c), want[pro][2]);
        cr_assert_eq(res->accepted_volume, MW(2));
            fixture_fini(&f);
    }
}

/* Bids at the margin split pro rata: bids 3 MW and 1 MW at 50, one offer of 2 MW:
 * 2000 * 3000 / 4000 = 1500 and 500. */
Test(auction, pro_rata_on_the_bid_side)
{
    fixture f;
    fixture_init(&f, MARKET_MODE_CALL);
    loose(&f);
    add(&f, 1, MARKET_OFFER, 10, 2, 0);
    uint64_t b1 = add(&f, 2, MARKET_BID, 50, 3, 0);
    uint64_t b2 = add(&f, 3, MARKET_BID, 50, 1, 0);
    market_auction_result *res = run(&f, MARKET_PAY_AS_BID, 1);
    cr_assert_eq(accepted_of(res->bids, 2, b1), 1500);
    cr_assert_eq(accepted_of(res->bids, 2, b2), 500);
    fixture_fini(&f);
}

/*
 * Two requirements of 2^62 units (0.001 MW) each: the bid side's total
 * quantity does not fit in 64 bits, so the auction finds the intersection
 * step by step instead of bisecting running totals. Offers 1 MW @ 10 and
 * 2 MW @ 20 cross the requirement @ 60; 5 MW @ 70 does not: 3 MW in both
 * modes (with pro rata the marginal requirement's share is the full 3 MW:
 * floor(3000 * q / q)).
 */
Test(auction, intersection_when_a_side_total_overflows)
{
    for (int pro = 0; pro < 2; pro++) {
        fixture f;
        fixture_init(&f, MARKET_MODE_CALL);
        loose(&f);
        add(&f, 1, MARKET_OFFER, 10, 1, 0);
        add(&f, 2, MARKET_OFFER, 20, 2, 0);
        add(&f, 3, MARKET_OFFER, 70, 5, 0);
        uint64_t ids[2];
        for (int k = 0; k < 2; k++) {
            market_order_spec s = {.client_order_id = f.next_client++,
                                   .participant = DSO,
                                   .der = MARKET_NO_DER,
                                   .product = product,
                                   .side = MARKET_REQUIREMENT,
                                   .price_ticks = GBP(60 - 10 * k),
                                   .quantity = INT64_C(1) << 62,
                                   .valid_until_ms = INT64_MAX};
            market_result r;
            cr_assert_eq(market_submit(f.m, NOW_MS, &s, &r), ANM_OK);
            cr_assert_eq(r.reason, MARKET_ACCEPTED, "%s", r.text);
            ids[k] = r.order_id;
        }
        market_auction_result *res = run(&f, MARKET_PAY_AS_BID, pro);
        cr_assert_eq(res->unconstrained_volume, MW(3), "pro rata %d", pro);
        cr_assert_eq(res->accepted_volume, MW(3));
        cr_assert_eq(accepted_of(res->bids, 2, ids[0]), MW(3));
        cr_assert_eq(accepted_of(res->bids, 2, ids[1]), 0);
        fixture_fini(&f);
    }
}

/*
 * Minimum quantities. Offers 5 MW @ 10 and 5 MW @ 20. A fill-or-kill bid of
 * 12 MW @ 60 does not fit (10 MW crossing) and is skipped; the next bid,
 * 8 MW @ 50 with 8 MW minimum, gets 5 + 3; a 3 MW bid @ 40 cannot take the
 * 2 MW left of a... it takes them (divisible). A fill-or-kill offer of 4 MW
 * @ 15 is skipped by a bid that wants 3 MW.
 */
Test(auction, minimum_quantities_are_all_or_nothing_per_order)
{
    fixture f;
    fixture_init(&f, MARKET_MODE_CALL);
    loose(&f);
    uint64_t o10 = add(&f, 1, MARKET_OFFER, 10, 5, 0);
    uint64_t o20 = add(&f, 2, MARKET_OFFER, 20, 5, 0);
    uint64_t b60 = add(&f, 3, MARKET_BID, 60, 12, 12);
    uint64_t b50 = add(&f, 4, MARKET_BID, 50, 8, 8);
    uint64_t b40 = add(&f, 5, MARKET_BID, 40, 3, 0);
    market_auction_result *res = run(&f, MARKET_PAY_AS_BID, 0);
    cr_assert_eq(accepted_of(res->bids, 3, b60), 0);
    cr_assert_eq(accepted_of(res->bids, 3, b50), MW(8));
    cr_assert_eq(accepted_of(res->bids, 3, b40), MW(2));
    cr_assert_eq(accepted_of(res->offers, 2, o10), MW(5));
    cr_assert_eq(accepted_of(res->offers, 2, o20), MW(5));
    cr_assert_eq(res->unconstrained_volume, MW(10));
    fixture_fini(&f);

    fixture_init(&f, MARKET_MODE_CALL);
    loose(&f);
    uint64_t fok = add(&f, 1, MARKET_OFFER, 15, 4, 4);
    uint64_t o25 = add(&f, 2, MARKET_OFFER, 25, 4, 0);
    uint64_t b = add(&f, 3, MARKET_BID, 30, 3, 0);
    res = run(&f, MARKET_PAY_AS_BID, 0);
    cr_assert_eq(accepted_of(res->offers, 2, fok), 0, "3 MW would not meet its 4 MW minimum");
    cr_assert_eq(accepted_of(res->offers, 2, o25), MW(3));
    cr_assert_eq(accepted_of(res->bids, 1, b), MW(3));
    fixture_fini(&f);
}

/*
 * Feasibility in the auction, the two-constraint example of test_market.c:
 * H = (2.0, 2.4); offer DER 1 a = (0.5, 0.2); bids at DER 2 a = (0.9, 0.8)
 * and DER 3 a = (0.9, 0.1). Bid 2 (higher price) gets 4 MW (c1), then bid 3
 * gets 1 MW (c0), though 10 MW cross without the network.
 */
Test(auction, feasibility_limits_the_cleared_volume)
{
    fixture f;
    fixture_init(&f, MARKET_MODE_CALL);
    double headroom[2] = {2.0, 2.4};
    market_statement *st = market_statement_new(2, headroom, NULL);
    market_statement_set_sensitivity(st, 1, 0, 0.5);
    market_statement_set_sensitivity(st, 1, 1, 0.2);
    market_statement_set_sensitivity(st, 2, 0, 0.9);
    market_statement_set_sensitivity(st, 2, 1, 0.8);
    market_statement_set_sensitivity(st, 3, 0, 0.9);
    market_statement_set_sensitivity(st, 3, 1, 0.1);
    cr_assert_eq(market_set_statement(f.m, product, st), ANM_OK);
    add(&f, 1, MARKET_OFFER, 10, 10, 0);
    uint64_t b2 = add(&f, 2, MARKET_BID, 60, 5, 0);
    uint64_t b3 = add(&f, 3, MARKET_BID, 50, 5, 0);
    market_auction_result *res = run(&f, MARKET_PAY_AS_BID, 0);
    cr_assert_eq(res->unconstrained_volume, MW(10));
    cr_assert_eq(accepted_of(res->bids, 2, b2), MW(4));
    cr_assert_eq(accepted_of(res->bids, 2, b3), MW(1));
    cr_assert_eq(res->accepted_volume, MW(5));
    cr_assert_eq(res->limiting_constraint, 1, "c1 cut the first pair");
    cr_assert_float_eq(market_used_mw(f.m, product, 0), 2.0, 1e-9);
    cr_assert_float_eq(market_used_mw(f.m, product, 1), 2.3, 1e-9);
    fixture_fini(&f);
}

/*
 * A bid below an already accepted offer is out of merit and the walk stops,
 * in both pricing modes, so no buyer pays above its bid under uniform
 * pricing and both modes accept the same volumes. Headroom 0: bid 100 at
 * DER 3 (a = 1) cannot pair with the cheap offer at DER 1 (a = 0) and takes
 * the offer at 90 at DER 2 (a = 1); bid 50 (DER 4, a = 0) could pair with
 * offer 10 but is below the accepted 90.
 */
Test(auction, a_bid_below_an_accepted_offer_is_out_of_merit)
{
    for (int pricing = 0; pricing < 2; pricing++) {
        fixture f;
        fixture_init(&f, MARKET_MODE_CALL);
        double headroom[1] = {0.0};
        market_statement *st = market_statement_new(1, headroom, NULL);
        market_statement_set_sensitivity(st, 2, 0, 1.0);
        market_statement_set_sensitivity(st, 3, 0, 1.0);
        cr_assert_eq(market_set_statement(f.m, product, st), ANM_OK);
        uint64_t o10 = add(&f, 1, MARKET_OFFER, 10, 5, 0);
        uint64_t o90 = add(&f, 2, MARKET_OFFER, 90, 5, 0);
        uint64_t b100 = add(&f, 3, MARKET_BID, 100, 5, 0);
        uint64_t b50 = add(&f, 4, MARKET_BID, 50, 5, 0);
        market_auction_result *res = run(&f, (market_pricing)pricing, 0);
        cr_assert_eq(res->unconstrained_volume, MW(5));
        cr_assert_eq(accepted_of(res->bids, 2, b100), MW(5));
        cr_assert_eq(accepted_of(res->offers, 2, o90), MW(5));
        cr_assert_eq(accepted_of(res->offers, 2, o10), 0);
        cr_assert_eq(accepted_of(res->bids, 2, b50), 0);
        cr_assert_eq(res->limiting_constraint, 0);
        cr_assert_eq(res->clearing_price_ticks, GBP(90));
        cr_assert_eq(res->trades[0].buyer_price_ticks, pricing ? GBP(90) : GBP(100));
            fixture_fini(&f);
    }
}

/* ---- properties over random books ------------------------------------- */

static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static int64_t rng_range(uint64_t *state, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng_next(state) % (uint64_t)(hi - lo + 1));
}

typedef struct random_order {
    uint64_t order_id;
    market_order_spec spec;
} random_order;

typedef struct random_book {
    size_t n_constraints;
    double headroom[3];
    double a[N_TRADERS + 1][3];
    size_t n;
    random_order orders[80];
} random_book;

static void random_book_make(random_book *b, uint64_t *rng)
{
    b->n_constraints = (size_t)rng_range(rng, 1, 3);
    for (size_t c = 0; c < b->n_constraints; c++) {
        b->headroom[c] = (double)rng_range(rng, 0, 5000) / 1000.0;
        for (uint32_t d = 1; d <= N_TRADERS; d++) {
            b->a[d][c] = (double)rng_range(rng, -200, 1000) / 1000.0;
        }
    }
    b->n = (size_t)rng_range(rng, 0, 80);
    for (size_t k = 0; k < b->n; k++) {
        uint32_t p = (uint32_t)rng_range(rng, 1, N_TRADERS);
        int64_t side = rng_range(rng, 0, 9);
        market_side s = side < 5 ? MARKET_OFFER : side < 9 ? MARKET_BID : MARKET_REQUIREMENT;
        int64_t q = rng_range(rng, 1, 5000);
        int64_t kind = rng_range(rng, 0, 3);
        b->orders[k].spec = (market_order_spec){
            .client_order_id = k + 1,
            .participant = s == MARKET_REQUIREMENT ? DSO : p,
            .der = s == MARKET_REQUIREMENT ? MARKET_NO_DER : p,
            .product = product,
            .side = s,
            .price_ticks = (int32_t)rng_range(rng, 1000, 1100), /* narrow: many ties */
            .availability_ticks = (int32_t)(rng_range(rng, 0, 3) == 0 ? rng_range(rng, 0, 50) : 0),
            .quantity = q,
            .min_quantity = kind == 0 ? q : kind == 1 ? rng_range(rng, 1, q) : 0,
            .valid_until_ms = INT64_MAX};
    }
}

static market_auction_result *random_book_clear(const random_book *b, fixture *f,
                                                const market_auction_config *config,
                                                random_order *orders)
{
    fixture_init(f, MARKET_MODE_CALL);
    market_statement *st = market_statement_new(b->n_constraints, b->headroom, NULL);
    for (uint32_t d = 1; d <= N_TRADERS; d++) {
        for (size_t c = 0; c < b->n_constraints; c++) {
            market_statement_set_sensitivity(st, d, c, b->a[d][c]);
        }
    }
    cr_assert_eq(market_set_statement(f->m, product, st), ANM_OK);
    for (size_t k = 0; k < b->n; k++) {
        market_result r;
        orders[k] = b->orders[k];
        cr_assert_eq(market_submit(f->m, NOW_MS, &orders[k].spec, &r), ANM_OK);
        cr_assert_eq(r.reason, MARKET_ACCEPTED, "%s", r.text);
        orders[k].order_id = r.order_id;
    }
    cr_assert_eq(market_auction_run(f->m, NOW_MS, product, config, &f->result), ANM_OK);
    return &f->result;
}

static const random_order *find_order(const random_order *orders, size_t n, uint64_t id)
{
    for (size_t k = 0; k < n; k++) {
        if (orders[k].order_id == id) {
            return &orders[k];
        }
    }
    return NULL;
}

static int64_t rank_of(const market_order_spec *s)
{
    return (int64_t)s->price_ticks + (int64_t)s->availability_ticks; /* weighting 1000 */
}

Test(auction, properties_over_random_books)
{
    uint64_t rng = 20211031;
    size_t books = 0, traded_books = 0, cut_books = 0;
    for (int iteration = 0; iteration < 3000; iteration++) {
        random_book b;
        random_book_make(&b, &rng);
        market_auction_config config = {.pricing = (market_pricing)(iteration % 2),
                                        .pro_rata = (iteration / 2) % 2};
        fixture f, g;
        random_order orders[80], again[80];
        market_auction_result *res = random_book_clear(&b, &f, &config, orders);
        market_auction_result *rep = random_book_clear(&b, &g, &config, again);
        books++;
        /* replay: the same events give bit-identical trades */
        cr_assert_eq(rep->n_trades, res->n_trades);
        cr_assert(res->n_trades == 0 ||
                  memcmp(rep->trades, res->trades, res->n_trades * sizeof *res->trades) == 0);
        cr_assert_eq(rep->clearing_rank, res->clearing_rank);

        int64_t fill[80] = {0};
        double used[3] = {0, 0, 0};
        int64_t total = 0, max_offer = INT64_MIN, min_bid = INT64_MAX;
        for (size_t t = 0; t < res->n_trades; t++) {
            const market_trade *tr = &res->trades[t];
            cr_assert_gt(tr->volume, 0, "no zero or negative volume");
            const random_order *bo = find_order(orders, b.n, tr->buy_order_id);
            const random_order *so = find_order(orders, b.n, tr->sell_order_id);
            cr_assert(bo != NULL && so != NULL);
            cr_assert(market_side_is_buy(bo->spec.side) && so->spec.side == MARKET_OFFER);
            cr_assert_geq(rank_of(&bo->spec), rank_of(&so->spec), "every pair crosses");
            cr_assert_neq(bo->spec.participant, so->spec.participant, "no self trade");
            fill[bo - orders] += tr->volume;
            fill[so - orders] += tr->volume;
            total += tr->volume;
            max_offer = rank_of(&so->spec) > max_offer ? rank_of(&so->spec) : max_offer;
            min_bid = rank_of(&bo->spec) < min_bid ? rank_of(&bo->spec) : min_bid;
            /* independent feasibility check, after every trade in order */
            double mw = (double)tr->volume / 1000.0;
            for (size_t c = 0; c < b.n_constraints; c++) {
                double aj = bo->spec.der == MARKET_NO_DER ? 0.0 : b.a[bo->spec.der][c];
                double effect = (aj - b.a[so->spec.der][c]) * mw;
                if (bo->spec.der != MARKET_NO_DER || effect > 0) {
                    used[c] += effect;
                }
                if (effect > 0) {
                    /* tolerance: 1e-9 MW allowed per trade by design plus rounding */
                    cr_assert_leq(used[c], b.headroom[c] + 1e-9 * (double)(t + 1) + 1e-12,
                                  "constraint %zu over headroom after trade %zu", c, t);
                }
            }
            if (config.pricing == MARKET_PAY_AS_BID) {
                cr_assert_eq(tr->buyer_price_ticks, bo->spec.price_ticks);
                cr_assert_eq(tr->seller_price_ticks, so->spec.price_ticks);
                cr_assert_eq(tr->seller_availability_ticks, so->spec.availability_ticks);
            } else {
                cr_assert_eq(tr->buyer_price_ticks, res->clearing_price_ticks);
                cr_assert_eq(tr->seller_price_ticks, res->clearing_price_ticks);
            }
        }
        if (res->n_trades > 0) {
            traded_books++;
            cr_assert(res->has_price);
            cr_assert_eq(res->clearing_rank, max_offer, "price set by the highest accepted offer");
            cr_assert_leq(res->clearing_rank, min_bid, "no buyer pays above its bid");
        } else {
            cr_assert_eq(res->has_price, 0);
        }
        if (res->accepted_volume < res->unconstrained_volume) {
            cut_books++;
        }
        cr_assert_eq(total, res->accepted_volume);
        cr_assert_leq(res->accepted_volume, res->unconstrained_volume,
                      "the network never adds volume");
        /* volumes conserved, fills within quantity and minimum */
        int64_t buy_sum = 0, sell_sum = 0;
        for (size_t i = 0; i < res->n_bids; i++) {
            buy_sum += res->bids[i].accepted;
        }
        for (size_t i = 0; i < res->n_offers; i++) {
            sell_sum += res->offers[i].accepted;
            if (i > 0) {
                cr_assert_leq(res->offers[i - 1].rank, res->offers[i].rank);
            }
        }
        cr_assert_eq(buy_sum, total);
        cr_assert_eq(sell_sum, total);
        for (size_t k = 0; k < b.n; k++) {
            const market_order_spec *s = &orders[k].spec;
            cr_assert_leq(fill[k], s->quantity);
            cr_assert(fill[k] == 0 || fill[k] >= s->min_quantity,
                      "order %zu filled %lld below its minimum %lld", k, (long long)fill[k],
                      (long long)s->min_quantity);
            market_order_view v;
            int rests = market_order_get(f.m, orders[k].order_id, &v);
            cr_assert_eq(rests, fill[k] < s->quantity);
            if (rests) {
                cr_assert_eq(v.filled, fill[k]);
            }
        }
        fixture_fini(&f);
        fixture_fini(&g);
    }
    cr_log_info("%zu books, %zu traded, %zu cut by the network", books, traded_books, cut_books);
    cr_assert_gt(traded_books, books / 4, "the generator makes crossing books");
    cr_assert_gt(cut_books, books / 20, "the generator exercises the feasibility cut");
}

/* Continuous matching over random order flow keeps the same invariants. */
Test(auction, continuous_properties_over_random_flow)
{
    uint64_t rng = 77;
    for (int iteration = 0; iteration < 300; iteration++) {
        random_book b;
        random_book_make(&b, &rng);
        fixture f;
        fixture_init(&f, MARKET_MODE_CONTINUOUS);
        market_statement *st = market_statement_new(b.n_constraints, b.headroom, NULL);
        for (uint32_t d = 1; d <= N_TRADERS; d++) {
            for (size_t c = 0; c < b.n_constraints; c++) {
                market_statement_set_sensitivity(st, d, c, b.a[d][c]);
            }
        }
        market_set_statement(f.m, product, st);
        int64_t filled_total = 0;
        for (size_t k = 0; k < b.n; k++) {
            market_result r;
            cr_assert_eq(market_submit(f.m, NOW_MS, &b.orders[k].spec, &r), ANM_OK);
            cr_assert_eq(r.reason, MARKET_ACCEPTED);
            cr_assert(r.filled == 0 || r.filled >= b.orders[k].spec.min_quantity);
            cr_assert_eq(r.filled + r.resting, b.orders[k].spec.quantity);
            filled_total += r.filled;
        }
        for (size_t c = 0; c < b.n_constraints; c++) {
            cr_assert_leq(market_used_mw(f.m, product, c), b.headroom[c] + 1e-6);
        }
        (void)filled_total;
        fixture_fini(&f);
    }
}

/* ---- timing print ----------------------------------------------------- */

static void time_one(size_t n)
{
    fixture f;
    uint64_t rng = 5;
    fixture_init(&f, MARKET_MODE_CONTINUOUS);
    double headroom[1] = {1e9};
    market_statement *st = market_statement_new(1, headroom, NULL);
    for (uint32_t d = 1; d <= N_TRADERS; d++) {
        market_statement_set_sensitivity(st, d, 0, (double)rng_range(&rng, 0, 1000) / 1000.0);
    }
    market_set_statement(f.m, product, st);
    market_order_spec *specs = malloc(n * sizeof *specs);
    cr_assert_not_null(specs);
    for (size_t k = 0; k < n; k++) {
        uint32_t p = (uint32_t)rng_range(&rng, 1, N_TRADERS);
        market_side s = (k & 1) ? MARKET_OFFER : MARKET_BID;
        specs[k] = (market_order_spec){.client_order_id = k + 1,
                                       .participant = p,
                                       .der = p,
                                       .product = product,
                                       .side = s,
                                       .price_ticks = (int32_t)rng_range(&rng, 4000, 6000),
                                       .quantity = rng_range(&rng, 100, 5000),
                                       .valid_until_ms = INT64_MAX};
    }
    int64_t t0 = anm_monotonic_ns();
    size_t traded = 0;
    for (size_t k = 0; k < n; k++) {
        market_result r;
        market_submit(f.m, NOW_MS, &specs[k], &r);
        traded += r.trades;
    }
    int64_t t1 = anm_monotonic_ns();
    fixture_fini(&f);

    /* memory of n resting orders (call mode: nothing matches) */
    fixture_init(&f, MARKET_MODE_CALL);
    for (size_t k = 0; k < n; k++) {
        market_result r;
        market_submit(f.m, NOW_MS, &specs[k], &r);
    }
    market_memory mem;
    market_memory_usage(f.m, &mem);
    printf("market memory: %zu resting orders, %.1f bytes each (node %zu)\n", mem.resting_orders,
           (double)mem.book_bytes / (double)mem.resting_orders, market_order_node_bytes());
    fixture_fini(&f);

    /* two products with the same book: the first auction is cold (the
     * market's scratch buffers are allocated and first touched), the second
     * reuses them, as a running service does */
    fixture_init(&f, MARKET_MODE_CALL);
    market_product second = {ZONE, PERIOD_MS + 1800 * 1000};
    market_product products[2] = {product, second};
    for (int k = 0; k < 2; k++) {
        market_set_statement(f.m, products[k], market_statement_new(1, headroom, NULL));
    }
    for (size_t k = 0; k < n; k++) {
        specs[k].price_ticks = (int32_t)rng_range(&rng, 0, 500000); /* 0..5000 GBP/MWh */
    }
    for (int j = 0; j < 2; j++) {
        for (size_t k = 0; k < n; k++) {
            market_result r;
            specs[k].product = products[j];
            specs[k].client_order_id = 2 * k + (size_t)j + 1;
            market_submit(f.m, NOW_MS, &specs[k], &r);
        }
    }
    market_auction_config config = {.pricing = MARKET_PAY_AS_BID};
    double ms[2];
    market_auction_result *res = &f.result;
    for (int j = 0; j < 2; j++) {
        int64_t t2 = anm_monotonic_ns();
        cr_assert_eq(market_auction_run(f.m, NOW_MS, products[j], &config, res), ANM_OK);
        ms[j] = (double)(anm_monotonic_ns() - t2) / 1e6;
    }
    printf("market timing: n=%zu continuous %.0f orders/s (%zu trades); auction cold %.1f ms, "
           "warm %.1f ms (%zu trades, %.3f MW)\n",
           n, (double)n / ((double)(t1 - t0) / 1e9), traded, ms[0], ms[1], res->n_trades,
           (double)res->accepted_volume / 1000.0);
    fflush(stdout);
    fixture_fini(&f);
    free(specs);
}

Test(auction, timing_print)
{
    time_one(100000);
    const char *big = getenv("ANM_MARKET_TIMING");
    if (big != NULL && strcmp(big, "1") == 0) {
        time_one(1000000);
    }
}

/*
 * The life of a product: call phase, auction, then continuous trading of the
 * leftovers with time priority kept; and an auction over a continuous book
 * whose crossing orders were infeasible until a new statement arrived.
 */
Test(auction, leftovers_trade_continuously_with_time_priority)
{
    fixture f;
    fixture_init(&f, MARKET_MODE_CALL);
    loose(&f);
    uint64_t early = add(&f, 1, MARKET_OFFER, 20, 3, 0);
    uint64_t late = add(&f, 2, MARKET_OFFER, 20, 3, 0);
    add(&f, 3, MARKET_BID, 10, 3, 0);
    cr_assert_eq(run(&f, MARKET_PAY_AS_BID, 0)->accepted_volume, 0);
    cr_assert_eq(market_set_mode(f.m, product, MARKET_MODE_CONTINUOUS), ANM_OK);
    market_order_spec s = {.client_order_id = 99,
                           .participant = 4,
                           .der = 4,
                           .product = product,
                           .side = MARKET_BID,
                           .price_ticks = GBP(25),
                           .quantity = MW(4),
                           .valid_until_ms = INT64_MAX};
    market_result r;
    cr_assert_eq(market_submit(f.m, NOW_MS, &s, &r), ANM_OK);
    cr_assert_eq(r.filled, MW(4));
    market_order_view v;
    cr_assert(!market_order_get(f.m, early, NULL), "the earlier offer filled first");
    cr_assert(market_order_get(f.m, late, &v));
    cr_assert_eq(v.filled, MW(1));
    fixture_fini(&f);

    /* headroom 0 and the bidder behind the constraint: the book crosses but cannot trade */
    fixture_init(&f, MARKET_MODE_CONTINUOUS);
    double zero[1] = {0.0};
    market_statement *st = market_statement_new(1, zero, NULL);
    market_statement_set_sensitivity(st, 2, 0, 0.5);
    cr_assert_eq(market_set_statement(f.m, product, st), ANM_OK);
    add(&f, 1, MARKET_OFFER, 20, 3, 0);
    add(&f, 2, MARKET_BID, 30, 2, 0);
    cr_assert_eq(market_resting_orders(f.m, product), 2);
    double one[1] = {1.0};
    st = market_statement_new(1, one, NULL);
    market_statement_set_sensitivity(st, 2, 0, 0.5);
    cr_assert_eq(market_set_statement(f.m, product, st), ANM_OK);
    market_auction_result *res = run(&f, MARKET_UNIFORM, 0);
    cr_assert_eq(res->accepted_volume, MW(2), "1 MW of headroom / 0.5 allows the whole 2 MW");
    cr_assert_eq(res->trades[0].buyer_price_ticks, GBP(20));
    cr_assert_eq(market_resting_orders(f.m, product), 1);
    fixture_fini(&f);
}
