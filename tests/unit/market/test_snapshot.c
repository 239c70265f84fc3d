/*
 * test_snapshot.c: market_snapshot_save/load. A market is driven through a
 * seeded random stream of submits, cancels, replaces, mode switches,
 * statements, expiries and auctions; at several points it is saved and
 * restored into a fresh market, and both are then driven by the same
 * stream: every result, order id and trade must agree, and the final dumps
 * must be byte for byte equal. The reference is the market that was never
 * restored, so the check is independent of the dump format.
 */
#include "engine/error.h"
#include "market/auction.h"
#include "market/market.h"
#include "market/registry.h"
#include "market/statement.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PERIOD_MS INT64_C(1635638400000)
#define N_PRODUCTS 3

typedef struct trade_log {
    market_trade *trades;
    size_t n, cap;
} trade_log;

static void on_trade(void *context, const market_trade *t)
{
    trade_log *log = context;
    if (log->n == log->cap) {
        log->cap = log->cap ? log->cap * 2 : 1024;
        log->trades = realloc(log->trades, log->cap * sizeof *log->trades);
        cr_assert_not_null(log->trades);
    }
    log->trades[log->n++] = *t;
}

static market_registry *registry;

static void setup(void)
{
    registry = market_registry_new();
    cr_assert_eq(market_registry_add_zone(registry, 1, (market_zone_info){-10000, 100000}), ANM_OK);
    for (uint32_t p = 1; p <= 4; p++) {
        cr_assert_eq(market_registry_add_participant(registry, p, MARKET_PARTICIPANT_TRADER),
                     ANM_OK);
        cr_assert_eq(market_registry_add_der(registry, p, (market_der_info){1, 50000, 50000}),
                     ANM_OK);
        cr_assert_eq(market_registry_allow(registry, p, p), ANM_OK);
    }
    cr_assert_eq(market_registry_add_participant(registry, 9, MARKET_PARTICIPANT_SYSTEM_OPERATOR),
                 ANM_OK);
}

static void teardown(void) { market_registry_destroy(&registry); }

static market *fresh(trade_log *log)
{
    market_config c = {0};
    c.registry = registry;
    c.gate_closure_offset_ms = 3600000;
    c.on_trade = on_trade;
    c.on_trade_context = log;
    c.initial_mode = MARKET_MODE_CONTINUOUS;
    market *m = market_new(&c);
    cr_assert_not_null(m);
    return m;
}

static uint64_t next_random(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

static market_statement *statement(uint64_t r)
{
    double headroom[2] = {5.0 + (double)(r % 7), 3.0 + (double)(r % 5)};
    const char *names[2] = {"head", "bus5-bus6"};
    market_statement *s = market_statement_new(2, headroom, names);
    cr_assert_not_null(s);
    for (uint32_t d = 1; d <= 4; d++) {
        cr_assert_eq(market_statement_set_sensitivity(s, d, 0, 0.1 * d), ANM_OK);
        cr_assert_eq(market_statement_set_sensitivity(s, d, 1, 0.5 - 0.05 * d), ANM_OK);
    }
    return s;
}

/* One step of the stream, applied to m; the answer goes into *out. */
typedef struct step_answer {
    int rc;
    market_result result;
    size_t n_trades;
    int64_t accepted;
} step_answer;

static void step(market *m, uint64_t r, uint64_t i, const uint64_t *ids, size_t n_ids,
                 step_answer *out)
{
    memset(out, 0, sizeof *out);
    market_product product = {1, PERIOD_MS + (int64_t)(r % N_PRODUCTS) * 1800000};
    int64_t now = PERIOD_MS - 7200000 + (int64_t)i;
    unsigned kind = (unsigned)((r >> 8) % 100);
    uint32_t participant = 1 + (uint32_t)((r >> 16) % 4);
    market_order_spec spec = {.client_order_id = (r >> 20) % 4000, /* some reuse: idempotency */
                              .participant = participant,
                              .der = participant,
                              .product = product,
                              .side = (r >> 32) & 1 ? MARKET_BID : MARKET_OFFER,
                              .price_ticks = 3000 + (int32_t)((r >> 34) % 40) * 25,
                              .availability_ticks = (int32_t)((r >> 40) % 3) * 100,
                              .quantity = 100 + (int64_t)((r >> 42) % 30) * 100,
                              .min_quantity = (r >> 50) % 5 == 0 ? 500 : 0,
                              .valid_until_ms = (r >> 53) % 7 == 0 ? now + 50 : INT64_MAX};
    if (kind < 60) {
        out->rc = market_submit(m, now, &spec, &out->result);
    } else if (kind < 75 && n_ids > 0) {
        uint64_t id = ids[(r >> 24) % n_ids];
        out->rc = market_cancel(m, now, participant, id, &out->result);
    } else if (kind < 85 && n_ids > 0) {
        uint64_t id = ids[(r >> 24) % n_ids];
        spec.client_order_id += 100000;
        out->rc = market_replace(m, now, id, &spec, &out->result);
    } else if (kind < 90) {
        out->rc = market_set_mode(m, product, (r >> 30) & 1 ? MARKET_MODE_CALL
                                                             : MARKET_MODE_CONTINUOUS);
    } else if (kind < 94) {
        out->rc = market_set_statement(m, product, statement(r >> 12));
    } else if (kind < 97) {
        out->n_trades = market_expire(m, now, product);
    } else {
        market_auction_config ac = {(r >> 12) & 1 ? MARKET_UNIFORM : MARKET_PAY_AS_BID,
                                    (int)((r >> 13) & 1)};
        market_auction_result a;
        out->rc = market_auction_run(m, now, product, &ac, &a);
        out->n_trades = a.n_trades;
        out->accepted = a.accepted_volume;
    }
}

static void expect_same_dump(const market *a, const market *b)
{
    uint8_t *da = NULL, *db = NULL;
    size_t na = 0, nb = 0;
    cr_assert_eq(market_snapshot_save(a, &da, &na), ANM_OK);
    cr_assert_eq(market_snapshot_save(b, &db, &nb), ANM_OK);
    cr_assert_eq(na, nb, "dumps of %zu and %zu bytes", na, nb);
    cr_assert_eq(memcmp(da, db, na), 0, "the dumps differ");
    free(da);
    free(db);
}

static market *restore(const market *original, trade_log *log)
{
    uint8_t *data = NULL;
    size_t size = 0;
    cr_assert_eq(market_snapshot_save(original, &data, &size), ANM_OK);
    market *m = fresh(log);
    cr_assert_eq(market_snapshot_load(m, data, size), ANM_OK);
    free(data);
    return m;
}

TestSuite(snapshot, .init = setup, .fini = teardown);

Test(snapshot, a_restored_market_behaves_exactly_like_the_original)
{
    trade_log log_a = {0}, log_b = {0};
    market *a = fresh(&log_a), *b = NULL;
    uint64_t state = 7, *ids = calloc(20000, sizeof *ids);
    size_t n_ids = 0, restores = 0, compared = 0;
    for (uint64_t i = 0; i < 12000; i++) {
        if (i % 3000 == 1500) {
            /* restore from the original at this point; from now on b shadows a */
            market_destroy(&b);
            free(log_b.trades);
            log_b = (trade_log){0};
            b = restore(a, &log_b);
            restores++;
            expect_same_dump(a, b);
            log_a.n = 0; /* trades are compared from here on */
        }
        uint64_t r = next_random(&state);
        step_answer sa, sb;
        step(a, r, i, ids, n_ids, &sa);
        if (b != NULL) {
            step(b, r, i, ids, n_ids, &sb);
            cr_assert_eq(sa.rc, sb.rc, "step %llu", (unsigned long long)i);
            cr_assert_eq(sa.result.reason, sb.result.reason, "step %llu", (unsigned long long)i);
            cr_assert_eq(sa.result.order_id, sb.result.order_id, "step %llu",
                         (unsigned long long)i);
            cr_assert_eq(sa.result.resubmission, sb.result.resubmission);
            cr_assert_eq(sa.result.filled, sb.result.filled);
            cr_assert_eq(sa.result.resting, sb.result.resting);
            cr_assert_eq(sa.n_trades, sb.n_trades);
            cr_assert_eq(sa.accepted, sb.accepted);
            cr_assert_str_eq(sa.result.text, sb.result.text);
            compared++;
        }
        if (sa.result.reason == MARKET_ACCEPTED && sa.result.resting > 0 && n_ids < 20000)
            ids[n_ids++] = sa.result.order_id;
    }
    cr_assert_eq(restores, 4);
    cr_assert_eq(compared, 12000 - 1500);
    cr_assert_eq(log_a.n, log_b.n, "trades since the last restore");
    cr_assert_gt(log_a.n, 100, "the stream trades");
    for (size_t k = 0; k < log_a.n; k++) {
        const market_trade *x = &log_a.trades[k], *y = &log_b.trades[k];
        cr_assert_eq(x->trade_id, y->trade_id);
        cr_assert_eq(x->buy_order_id, y->buy_order_id);
        cr_assert_eq(x->sell_order_id, y->sell_order_id);
        cr_assert_eq(x->volume, y->volume);
        cr_assert_eq(x->buyer_price_ticks, y->buyer_price_ticks);
        cr_assert_eq(x->seller_price_ticks, y->seller_price_ticks);
        cr_assert_eq(x->kind, y->kind);
    }
    expect_same_dump(a, b);
    market_memory ma, mb;
    market_memory_usage(a, &ma);
    market_memory_usage(b, &mb);
    cr_assert_eq(ma.resting_orders, mb.resting_orders);
    cr_assert_gt(ma.resting_orders, 0);
    market_destroy(&a);
    market_destroy(&b);
    free(ids);
    free(log_a.trades);
    free(log_b.trades);
}

Test(snapshot, bad_dumps_are_refused)
{
    trade_log log = {0};
    market *a = fresh(&log);
    market_order_spec spec = {.client_order_id = 1, .participant = 1, .der = 1,
                              .product = {1, PERIOD_MS}, .side = MARKET_OFFER,
                              .price_ticks = 4000, .quantity = 1000, .valid_until_ms = INT64_MAX};
    market_result r;
    cr_assert_eq(market_submit(a, PERIOD_MS - 7200000, &spec, &r), ANM_OK);
    cr_assert_eq(r.reason, MARKET_ACCEPTED);
    uint8_t *data = NULL;
    size_t size = 0;
    cr_assert_eq(market_snapshot_save(a, &data, &size), ANM_OK);
    /* a cut dump, at every length */
    for (size_t cut = 0; cut < size; cut += 7) {
        market *b = fresh(&log);
        cr_assert_eq(market_snapshot_load(b, data, cut), ANM_EPARSE, "cut at %zu of %zu", cut,
                     size);
        market_destroy(&b);
    }
    /* a wrong magic */
    data[0] ^= 1;
    market *b = fresh(&log);
    cr_assert_eq(market_snapshot_load(b, data, size), ANM_EPARSE);
    market_destroy(&b);
    data[0] ^= 1;
    /* only into a fresh market */
    cr_assert_eq(market_snapshot_load(a, data, size), ANM_EINVAL);
    b = fresh(&log);
    cr_assert_eq(market_snapshot_load(b, data, size), ANM_OK);
    market_order_view v;
    cr_assert_eq(market_order_get(b, r.order_id, &v), 1);
    cr_assert_eq(v.spec.price_ticks, 4000);
    cr_assert_eq(v.spec.quantity, 1000);
    market_destroy(&b);
    market_destroy(&a);
    free(data);
    free(log.trades);
}
