/*
 * test_reserve.c: market_reserve sizes memory only. The same stream of
 * orders (matches, partial fills, resting orders, resubmissions and reused
 * client ids) gives the same answers and the same trades with and without
 * it, including past the reserved count, where the market grows as usual.
 */
#include "engine/error.h"
#include "market/market.h"
#include "market/registry.h"
#include "market/statement.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#define PERIOD_MS INT64_C(1635638400000) /* 2021-10-31T00:00:00Z */
#define NOW_MS (PERIOD_MS - 4 * 3600 * 1000)
#define N_DERS 20

typedef struct digest {
    uint64_t h;
    size_t n;
} digest;

static void fnv(uint64_t *h, const void *data, size_t size)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < size; i++)
        *h = (*h ^ p[i]) * UINT64_C(1099511628211);
}

static void on_trade(void *context, const market_trade *t)
{
    digest *d = context;
    fnv(&d->h, &t->trade_id, sizeof t->trade_id);
    fnv(&d->h, &t->buy_order_id, sizeof t->buy_order_id);
    fnv(&d->h, &t->sell_order_id, sizeof t->sell_order_id);
    fnv(&d->h, &t->volume, sizeof t->volume);
    fnv(&d->h, &t->buyer_price_ticks, sizeof t->buyer_price_ticks);
    fnv(&d->h, &t->seller_price_ticks, sizeof t->seller_price_ticks);
    d->n++;
}

static market *new_market(market_registry *registry, digest *d)
{
    market_config c = {.registry = registry,
                       .gate_closure_offset_ms = 3600000,
                       .initial_mode = MARKET_MODE_CONTINUOUS,
                       .on_trade = on_trade,
                       .on_trade_context = d};
    market *m = market_new(&c);
    cr_assert_not_null(m);
    double headroom = 1e9;
    market_statement *s = market_statement_new(1, &headroom, NULL);
    cr_assert_not_null(s);
    for (uint32_t der = 1; der <= N_DERS; der++)
        cr_assert_eq(market_statement_set_sensitivity(s, der, 0, (der % 2) ? 0.5 : 0.9), ANM_OK);
    cr_assert_eq(market_set_statement(m, (market_product){1, PERIOD_MS}, s), ANM_OK);
    return m;
}

static uint64_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

Test(market_reserve, same_answers_and_trades_with_and_without_it)
{
    market_registry *registry = market_registry_new();
    cr_assert_not_null(registry);
    cr_assert_eq(market_registry_add_zone(registry, 1, (market_zone_info){-100000, 1000000}), ANM_OK);
    for (uint32_t p = 1; p <= 2; p++)
        cr_assert_eq(market_registry_add_participant(registry, p, MARKET_PARTICIPANT_TRADER), ANM_OK);
    for (uint32_t der = 1; der <= N_DERS; der++) {
        cr_assert_eq(market_registry_add_der(registry, der, (market_der_info){1, 1000000, 1000000}),
                     ANM_OK);
        cr_assert_eq(market_registry_allow(registry, 1 + (der % 2), der), ANM_OK);
    }
    digest plain = {UINT64_C(14695981039346656037), 0}, reserved = plain;
    market *a = new_market(registry, &plain);
    market *b = new_market(registry, &reserved);
    cr_assert_eq(market_reserve(NULL, 10), ANM_EINVAL);
    cr_assert_eq(market_reserve(b, 0), ANM_OK);
    cr_assert_eq(market_reserve(b, 40000), ANM_OK); /* the stream below goes past it */
    uint64_t state = 42;
    size_t accepted = 0, resubmitted = 0, duplicates = 0, resting = 0;
    for (uint64_t i = 0; i < 100000; i++) {
        uint64_t r = next_random(&state);
        market_order_spec s = {0};
        /* every 16th order repeats an earlier client id: the same content
           (a resubmission) or, every 32nd, different content (a duplicate) */
        uint64_t id = (i % 16 == 15 && i > 100) ? 1 + r % i : i + 1;
        uint64_t content = (i % 32 == 31) ? r : id * UINT64_C(0x9e3779b97f4a7c15);
        s.client_order_id = id;
        s.der = 1 + (uint32_t)(content % N_DERS);
        s.participant = 1 + (s.der % 2);
        s.product = (market_product){1, PERIOD_MS};
        s.side = s.participant == 1 ? MARKET_BID : MARKET_OFFER;
        s.price_ticks = 4000 + (int32_t)((content >> 20) % 2000);
        s.quantity = 100 + (int64_t)((content >> 40) % 5000);
        s.valid_until_ms = INT64_MAX;
        market_result ra, rb;
        cr_assert_eq(market_submit(a, NOW_MS, &s, &ra), ANM_OK);
        cr_assert_eq(market_submit(b, NOW_MS, &s, &rb), ANM_OK);
        cr_assert_eq(ra.reason, rb.reason, "order %" PRIu64 ": %s / %s", i, ra.text, rb.text);
        cr_assert_str_eq(ra.text, rb.text);
        cr_assert_eq(ra.order_id, rb.order_id, "order %" PRIu64, i);
        cr_assert_eq(ra.resubmission, rb.resubmission);
        cr_assert_eq(ra.filled, rb.filled, "order %" PRIu64, i);
        cr_assert_eq(ra.resting, rb.resting);
        cr_assert_eq(ra.trades, rb.trades);
        accepted += ra.reason == MARKET_ACCEPTED && !ra.resubmission;
        resubmitted += ra.resubmission != 0;
        duplicates += ra.reason != MARKET_ACCEPTED;
        resting += ra.resting > 0;
    }
    /* the stream exercised what it should */
    cr_assert_gt(accepted, 90000);
    cr_assert_gt(resubmitted, 1000);
    cr_assert_gt(duplicates, 1000);
    cr_assert_gt(resting, 1000);
    cr_assert_gt(plain.n, 10000, "%zu trades", plain.n);
    cr_assert_eq(plain.n, reserved.n);
    cr_assert_eq(plain.h, reserved.h, "the same trades, in the same order");
    cr_assert_eq(market_resting_orders(a, (market_product){1, PERIOD_MS}),
                 market_resting_orders(b, (market_product){1, PERIOD_MS}));
    market_destroy(&a);
    market_destroy(&b);
    market_registry_destroy(&registry);
}
