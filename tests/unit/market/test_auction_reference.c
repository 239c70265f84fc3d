/*
 * test_auction_reference.c: market_auction_run against a second, naive
 * implementation of the rules in docs/market.md ("Gate-closure auction")
 * built only on the public API: the resting orders read back with
 * market_order_get, stacks made with qsort on (rank, arrival), the
 * intersection, pro rata and the feasibility walk written out on plain
 * arrays, the feasibility cut by market_statement_take on a twin statement.
 * Everything must agree exactly: stacks, volumes, prices, every trade field,
 * the book afterwards, and which pool slots new orders get (filled and
 * expired orders are released in the order a walk over the book meets
 * them, and slots are reused last-released first). Also a timing print of
 * the auction of 10^5 (10^6 with ANM_MARKET_TIMING=1) orders.
 */
#include "engine/clock.h"
#include "engine/error.h"
#include "market/auction.h"
#include "market/market.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PERIOD_MS  INT64_C(1635638400000)
#define NOW_MS     (PERIOD_MS - 4 * 3600 * 1000)
#define ZONE       1
#define N_TRADERS  12
#define DSO        100
#define MAX_ORDERS 160
#define SLOT_MASK  ((UINT64_C(1) << 24) - 1)

static const market_product product = {ZONE, PERIOD_MS};

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

/* ---- the reference ------------------------------------------------------ */

typedef struct ref_order {
    uint64_t id;
    market_order_spec spec;
    int64_t rank, quantity, left, need, accepted;
} ref_order;

typedef struct ref_result {
    size_t n_bids, n_offers;
    ref_order bids[MAX_ORDERS], offers[MAX_ORDERS]; /* merit order */
    int64_t unconstrained, accepted_volume;
    int has_price;
    const ref_order *setter;
    int limiting;
    size_t n_trades;
    market_trade trades[4 * MAX_ORDERS];
} ref_result;

static int by_rank_then_arrival(const void *a, const void *b)
{
    const ref_order *x = a, *y = b;
    if (x->rank != y->rank) {
        return x->rank < y->rank ? -1 : 1;
    }
    return x->id < y->id ? -1 : x->id > y->id; /* ids grow with arrival */
}

static int by_arrival(const void *a, const void *b)
{
    const ref_order *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int by_rank_descending_then_arrival(const void *a, const void *b)
{
    const ref_order *x = a, *y = b;
    if (x->rank != y->rank) {
        return x->rank > y->rank ? -1 : 1;
    }
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The pro-rata cap of docs/market.md, step 4, on one sorted side. */
static void ref_pro_rata(ref_order *o, size_t n, int64_t rank, int64_t volume)
{
    size_t a = 0, b;
    int64_t total = 0;
    while (a < n && o[a].rank != rank) {
        a++;
    }
    for (b = a; b < n && o[b].rank == rank; b++) {
        total += o[b].left;
    }
    if (total <= volume) {
        return;
    }
    int64_t cap[MAX_ORDERS], given = 0;
    for (size_t k = a; k < b; k++) {
        /* volume * left stays below 2^63 for these sizes (both < 2^20) */
        cap[k] = volume * o[k].left / total;
        if (cap[k] < o[k].need) {
            cap[k] = 0;
        }
        given += cap[k];
    }
    int64_t leftover = volume - given;
    for (size_t k = a; k < b && leftover > 0; k++) {
        if (cap[k] > 0 && cap[k] < o[k].left) {
            cap[k]++;
            leftover--;
        }
    }
    for (size_t k = a; k < b && leftover > 0; k++) {
        int64_t add = o[k].left - cap[k] < leftover ? o[k].left - cap[k] : leftover;
        if (cap[k] == 0 && add < o[k].need) {
            continue;
        }
        cap[k] += add;
        leftover -= add;
    }
    for (size_t k = a; k < b; k++) {
        o[k].left = cap[k];
    }
}

static void ref_auction(const ref_order *book, size_t n, const market_statement *statement,
                        double *used, const market_auction_config *config, int self_trade,
                        ref_result *r)
{
    memset(r, 0, sizeof *r);
    r->limiting = -1;
    for (size_t k = 0; k < n; k++) {
        if (book[k].spec.side == MARKET_OFFER) {
            r->offers[r->n_offers++] = book[k];
        } else {
            r->bids[r->n_bids++] = book[k];
        }
    }
    qsort(r->offers, r->n_offers, sizeof *r->offers, by_rank_then_arrival);
    qsort(r->bids, r->n_bids, sizeof *r->bids, by_rank_descending_then_arrival);
    ref_order *bids = r->bids, *offers = r->offers;
    size_t nb = r->n_bids, ns = r->n_offers;

    /* intersection: volume and the volume traded at each marginal rank */
    int64_t volume = 0, bid_margin = 0, sell_margin = 0, at_bid = 0, at_sell = 0;
    {
        size_t i = 0, j = 0;
        int64_t lb = nb ? bids[0].left : 0, ls = ns ? offers[0].left : 0;
        while (i < nb && j < ns && bids[i].rank >= offers[j].rank) {
            int64_t v = lb < ls ? lb : ls;
            at_bid = volume > 0 && bids[i].rank == bid_margin ? at_bid + v : v;
            at_sell = volume > 0 && offers[j].rank == sell_margin ? at_sell + v : v;
            bid_margin = bids[i].rank;
            sell_margin = offers[j].rank;
            volume += v;
            lb -= v;
            ls -= v;
            if (lb == 0 && ++i < nb) {
                lb = bids[i].left;
            }
            if (ls == 0 && ++j < ns) {
                ls = offers[j].left;
            }
        }
    }
    r->unconstrained = volume;
    if (config->pro_rata && volume > 0) {
        ref_pro_rata(bids, nb, bid_margin, at_bid);
        ref_pro_rata(offers, ns, sell_margin, at_sell);
    }

    /* the walk, on plain arrays: an offer stays in the scan until a fill
     * empties it (one capped to 0 by pro rata stays, and counts as a skip) */
    int linked[MAX_ORDERS];
    for (size_t j = 0; j < ns; j++) {
        linked[j] = 1;
    }
    int64_t max_offer_rank = INT64_MIN;
    size_t n_constraints = statement ? market_statement_constraints(statement) : 0;
    for (size_t i = 0; i < nb && statement != NULL; i++) {
        ref_order *b = &bids[i];
        if (b->left == 0) {
            continue;
        }
        size_t first = 0;
        while (first < ns && !linked[first]) {
            first++;
        }
        if (first == ns || offers[first].rank > b->rank || b->rank < max_offer_rank) {
            break;
        }
        double saved[MARKET_MAX_CONSTRAINTS];
        memcpy(saved, used, n_constraints * sizeof *used);
        size_t trades_start = r->n_trades;
        int64_t want = b->left;
        int64_t before[MAX_ORDERS];
        int was_linked[MAX_ORDERS];
        for (size_t j = 0; j < ns; j++) {
            before[j] = offers[j].left;
            was_linked[j] = linked[j];
        }
        size_t skipped = 0;
        for (size_t j = first; j < ns && want > 0 && skipped < MARKET_SCAN_LIMIT; j++) {
            ref_order *s = &offers[j];
            if (!linked[j]) {
                continue;
            }
            if (s->rank > b->rank) {
                break;
            }
            int64_t sneed = s->accepted == 0 ? s->need : 0;
            int64_t chunk = want < s->left ? want : s->left;
            int limiting = -1;
            int64_t f = 0;
            if ((self_trade || s->spec.participant != b->spec.participant) && chunk >= sneed) {
                f = market_statement_take(statement, used, s->spec.der, b->spec.der, chunk, sneed,
                                          &limiting);
            }
            if (limiting >= 0 && r->limiting < 0) {
                r->limiting = limiting;
            }
            if (f == 0 || f < chunk) {
                skipped++;
            }
            if (f == 0) {
                continue;
            }
            s->left -= f;
            s->accepted += f;
            want -= f;
            linked[j] = s->left > 0;
            market_trade *t = &r->trades[r->n_trades++];
            cr_assert_leq(r->n_trades, sizeof r->trades / sizeof r->trades[0]);
            *t = (market_trade){.buy_order_id = b->id,
                                .sell_order_id = s->id,
                                .buyer = b->spec.participant,
                                .seller = s->spec.participant,
                                .buy_der = b->spec.der,
                                .sell_der = s->spec.der,
                                .product = product,
                                .kind = MARKET_TRADE_AUCTION,
                                .volume = f,
                                .buyer_price_ticks = b->spec.price_ticks,
                                .buyer_availability_ticks = b->spec.availability_ticks,
                                .seller_price_ticks = s->spec.price_ticks,
                                .seller_availability_ticks = s->spec.availability_ticks,
                                .executed_ms = NOW_MS + 1};
        }
        int64_t got = b->left - want;
        if (got > 0 && got < b->need) {
            for (size_t j = 0; j < ns; j++) {
                offers[j].accepted -= before[j] - offers[j].left;
                offers[j].left = before[j];
                linked[j] = was_linked[j];
            }
            r->n_trades = trades_start;
            memcpy(used, saved, n_constraints * sizeof *used);
            continue;
        }
        b->accepted = got;
        b->left = want;
        r->accepted_volume += got;
        for (size_t k = trades_start; k < r->n_trades; k++) {
            for (size_t j = 0; j < ns; j++) {
                if (offers[j].id == r->trades[k].sell_order_id && offers[j].rank > max_offer_rank) {
                    max_offer_rank = offers[j].rank;
                }
            }
        }
    }
    for (size_t j = ns; j-- > 0;) {
        if (offers[j].accepted > 0) {
            r->setter = &offers[j];
            r->has_price = 1;
            break;
        }
    }
    for (size_t k = 0; k < r->n_trades && config->pricing == MARKET_UNIFORM; k++) {
        market_trade *t = &r->trades[k];
        t->buyer_price_ticks = t->seller_price_ticks = r->setter->spec.price_ticks;
        t->buyer_availability_ticks = t->seller_availability_ticks =
            r->setter->spec.availability_ticks;
    }
}

/* ---- random books ------------------------------------------------------- */

typedef struct scenario {
    market_registry *registry;
    market *m;
    market_statement *twin; /* the same statement for the reference */
    double used[MARKET_MAX_CONSTRAINTS];
    int self_trade;
    size_t n;
    uint64_t ids[MAX_ORDERS];
    market_order_spec specs[MAX_ORDERS];
    int in_call[MAX_ORDERS]; /* rested in the call list (else in a level) */
} scenario;

static market_statement *statement_make(uint64_t seed, size_t n_constraints)
{
    uint64_t rng = seed;
    double headroom[3];
    for (size_t c = 0; c < n_constraints; c++) {
        headroom[c] = (double)rng_range(&rng, 0, 8000) / 1000.0;
    }
    market_statement *st = market_statement_new(n_constraints, headroom, NULL);
    cr_assert_not_null(st);
    for (uint32_t d = 1; d <= N_TRADERS; d++) {
        for (size_t c = 0; c < n_constraints; c++) {
            market_statement_set_sensitivity(st, d, c,
                                             (double)rng_range(&rng, -200, 1000) / 1000.0);
        }
    }
    return st;
}

/*
 * A book with some orders resting in price levels (entered in continuous
 * mode; some of them trade at once) and the rest in the call list, some
 * expiring before the auction, some cancelled; narrow prices so ranks tie.
 */
static void scenario_make(scenario *sc, uint64_t *rng)
{
    memset(sc, 0, sizeof *sc);
    sc->registry = market_registry_new();
    cr_assert_not_null(sc->registry);
    market_registry_add_zone(sc->registry, ZONE, (market_zone_info){0, 500000});
    for (uint32_t p = 1; p <= N_TRADERS; p++) {
        market_registry_add_participant(sc->registry, p, MARKET_PARTICIPANT_TRADER);
        market_registry_add_der(sc->registry, p, (market_der_info){ZONE, 1000000, 1000000});
        market_registry_allow(sc->registry, p, p);
    }
    market_registry_add_participant(sc->registry, DSO, MARKET_PARTICIPANT_SYSTEM_OPERATOR);
    sc->self_trade = rng_range(rng, 0, 4) == 0;
    market_config config = {.registry = sc->registry,
                            .gate_closure_offset_ms = 3600 * 1000,
                            .initial_mode = MARKET_MODE_CONTINUOUS,
                            .weighting_permille =
                                (int32_t)(rng_range(rng, 0, 2) ? 0 : rng_range(rng, 1, 2000)),
                            .self_trade_allowed = sc->self_trade};
    sc->m = market_new(&config);
    cr_assert_not_null(sc->m);
    size_t n_constraints = (size_t)rng_range(rng, 1, 3);
    uint64_t seed = rng_next(rng);
    cr_assert_eq(market_set_statement(sc->m, product, statement_make(seed, n_constraints)), ANM_OK);
    sc->twin = statement_make(seed, n_constraints);
    size_t n = (size_t)rng_range(rng, 0, MAX_ORDERS);
    size_t call_from = (size_t)rng_range(rng, 0, (int64_t)n);
    int32_t low = (int32_t)rng_range(rng, 1000, 2000), width = (int32_t)rng_range(rng, 0, 200);
    for (size_t k = 0; k < n; k++) {
        if (k == call_from) {
            cr_assert_eq(market_set_mode(sc->m, product, MARKET_MODE_CALL), ANM_OK);
        }
        uint32_t p = (uint32_t)rng_range(rng, 1, N_TRADERS);
        int64_t side = rng_range(rng, 0, 9);
        market_side s = side < 5 ? MARKET_OFFER : side < 9 ? MARKET_BID : MARKET_REQUIREMENT;
        int64_t q = rng_range(rng, 1, 4000);
        int64_t kind = rng_range(rng, 0, 3);
        market_order_spec spec = {
            .client_order_id = k + 1,
            .participant = s == MARKET_REQUIREMENT ? DSO : p,
            .der = s == MARKET_REQUIREMENT ? MARKET_NO_DER : p,
            .product = product,
            .side = s,
            .price_ticks = low + (int32_t)rng_range(rng, 0, width),
            .availability_ticks = (int32_t)(rng_range(rng, 0, 3) == 0 ? rng_range(rng, 0, 40) : 0),
            .quantity = q,
            .min_quantity = kind == 0   ? q
                            : kind == 1 ? rng_range(rng, 1, q)
                                        : 0,
            .valid_until_ms = rng_range(rng, 0, 9) == 0 ? NOW_MS + 1 : INT64_MAX};
        market_result r;
        cr_assert_eq(market_submit(sc->m, NOW_MS, &spec, &r), ANM_OK);
        cr_assert_eq(r.reason, MARKET_ACCEPTED, "%s", r.text);
        if (r.resting == 0) {
            continue; /* traded in full at once */
        }
        sc->ids[sc->n] = r.order_id;
        sc->specs[sc->n] = spec;
        sc->in_call[sc->n] = k >= call_from;
        sc->n++;
        if (rng_range(rng, 0, 20) == 0) {
            cr_assert_eq(market_cancel(sc->m, NOW_MS, spec.participant, r.order_id, &r), ANM_OK);
            sc->n--;
        }
    }
    for (size_t c = 0; c < n_constraints; c++) {
        sc->used[c] = market_used_mw(sc->m, product, c);
    }
}

static void scenario_free(scenario *sc)
{
    market_destroy(&sc->m);
    market_registry_destroy(&sc->registry);
    market_statement_destroy(&sc->twin);
}

/* The live orders in the order a walk over the book meets them: offer
 * levels best first, bid levels best first (each FIFO), then the call list. */
static size_t walk_order(const scenario *sc, int64_t now_ms, ref_order *book, uint64_t *expired,
                         size_t *n_expired)
{
    ref_order all[MAX_ORDERS];
    size_t n = 0;
    *n_expired = 0;
    for (size_t k = 0; k < sc->n; k++) {
        market_order_view v;
        if (!market_order_get(sc->m, sc->ids[k], &v)) {
            continue; /* filled since by a later continuous order */
        }
        int64_t left = v.spec.quantity - v.filled;
        all[n++] = (ref_order){.id = sc->ids[k],
                               .spec = v.spec,
                               .rank = v.rank,
                               .quantity = left,
                               .left = left,
                               .need = v.filled == 0 ? v.spec.min_quantity : 0};
    }
    ref_order levels[2][MAX_ORDERS], call[MAX_ORDERS];
    size_t n_levels[2] = {0, 0}, n_call = 0;
    for (size_t k = 0; k < n; k++) {
        int in_call = 0;
        for (size_t j = 0; j < sc->n; j++) {
            if (sc->ids[j] == all[k].id) {
                in_call = sc->in_call[j];
            }
        }
        if (in_call) {
            call[n_call++] = all[k];
        } else {
            int buy = market_side_is_buy(all[k].spec.side);
            levels[buy][n_levels[buy]++] = all[k];
        }
    }
    qsort(levels[0], n_levels[0], sizeof(ref_order), by_rank_then_arrival);
    qsort(levels[1], n_levels[1], sizeof(ref_order), by_rank_descending_then_arrival);
    size_t out = 0;
    for (int side = 0; side < 2; side++) {
        for (size_t k = 0; k < n_levels[side]; k++) {
            const ref_order *o = &levels[side][k];
            if (o->spec.valid_until_ms <= now_ms) {
                expired[(*n_expired)++] = o->id;
            } else {
                book[out++] = *o;
            }
        }
    }
    qsort(call, n_call, sizeof(ref_order), by_arrival); /* the call list's order */
    for (size_t k = 0; k < n_call; k++) {
        if (call[k].spec.valid_until_ms <= now_ms) {
            expired[(*n_expired)++] = call[k].id;
        } else {
            book[out++] = call[k];
        }
    }
    return out;
}

static void check_stack(const market_stack_entry *got, const ref_order *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(got[i].order_id, want[i].id, "stack position %zu", i);
        cr_assert_eq(got[i].rank, want[i].rank);
        cr_assert_eq(got[i].price_ticks, want[i].spec.price_ticks);
        cr_assert_eq(got[i].availability_ticks, want[i].spec.availability_ticks);
        cr_assert_eq(got[i].quantity, want[i].quantity);
        cr_assert_eq(got[i].accepted, want[i].accepted, "order %llu accepted",
                     (unsigned long long)want[i].id);
    }
}

static void run_scenario(uint64_t *rng, int iteration, size_t *traded, size_t *released_total)
{
    scenario sc;
    scenario_make(&sc, rng);
    market_auction_config config = {.pricing = (market_pricing)(iteration % 2),
                                    .pro_rata = (iteration / 2) % 2};
    int64_t now = NOW_MS + 1; /* orders valid until NOW_MS + 1 have lapsed */
    ref_order *book = calloc(MAX_ORDERS, sizeof *book);
    ref_result *reference = calloc(1, sizeof *reference);
    cr_assert(book != NULL && reference != NULL);
    uint64_t expired[MAX_ORDERS];
    size_t n_expired;
    size_t n = walk_order(&sc, now, book, expired, &n_expired);
    ref_auction(book, n, sc.twin, sc.used, &config, sc.self_trade, reference);
    const ref_result *want = reference;

    market_auction_result got;
    cr_assert_eq(market_auction_run(sc.m, now, product, &config, &got), ANM_OK);
    cr_assert_eq(got.n_bids, want->n_bids);
    cr_assert_eq(got.n_offers, want->n_offers);
    check_stack(got.bids, want->bids, want->n_bids);
    check_stack(got.offers, want->offers, want->n_offers);
    cr_assert_eq(got.unconstrained_volume, want->unconstrained);
    cr_assert_eq(got.accepted_volume, want->accepted_volume);
    cr_assert_eq(got.has_price, want->has_price);
    cr_assert_eq(got.limiting_constraint, want->limiting);
    if (want->has_price) {
        cr_assert_eq(got.clearing_rank, want->setter->rank);
        cr_assert_eq(got.clearing_price_ticks, want->setter->spec.price_ticks);
        cr_assert_eq(got.clearing_availability_ticks, want->setter->spec.availability_ticks);
        cr_assert_eq(got.price_setting_order_id, want->setter->id);
    }
    cr_assert_eq(got.n_trades, want->n_trades);
    for (size_t k = 0; k < want->n_trades; k++) {
        const market_trade *t = &got.trades[k], *w = &want->trades[k];
        cr_assert_eq(t->trade_id, got.trades[0].trade_id + k, "trade ids consecutive");
        cr_assert_eq(t->buy_order_id, w->buy_order_id, "trade %zu", k);
        cr_assert_eq(t->sell_order_id, w->sell_order_id, "trade %zu", k);
        cr_assert_eq(t->buyer, w->buyer);
        cr_assert_eq(t->seller, w->seller);
        cr_assert_eq(t->buy_der, w->buy_der);
        cr_assert_eq(t->sell_der, w->sell_der);
        cr_assert(t->product.zone == w->product.zone &&
                  t->product.period_start_ms == w->product.period_start_ms);
        cr_assert_eq(t->kind, w->kind);
        cr_assert_eq(t->volume, w->volume, "trade %zu volume", k);
        cr_assert_eq(t->buyer_price_ticks, w->buyer_price_ticks);
        cr_assert_eq(t->buyer_availability_ticks, w->buyer_availability_ticks);
        cr_assert_eq(t->seller_price_ticks, w->seller_price_ticks);
        cr_assert_eq(t->seller_availability_ticks, w->seller_availability_ticks);
        cr_assert_eq(t->executed_ms, w->executed_ms);
    }
    for (size_t c = 0; c < market_statement_constraints(sc.twin); c++) {
        cr_assert_eq(market_used_mw(sc.m, product, c), sc.used[c], "used_mw[%zu] exactly", c);
    }

    /* the book afterwards, and the release order: expired orders, then
     * filled orders, each in walk order; the free list hands out the last
     * released slot first */
    uint64_t released[2 * MAX_ORDERS];
    size_t n_released = 0;
    for (size_t k = 0; k < n_expired; k++) {
        released[n_released++] = expired[k];
    }
    for (size_t k = 0; k < n; k++) {
        int64_t accepted = 0;
        for (size_t i = 0; i < want->n_bids; i++) {
            accepted += want->bids[i].id == book[k].id ? want->bids[i].accepted : 0;
        }
        for (size_t j = 0; j < want->n_offers; j++) {
            accepted += want->offers[j].id == book[k].id ? want->offers[j].accepted : 0;
        }
        market_order_view v;
        int rests = market_order_get(sc.m, book[k].id, &v);
        cr_assert_eq(rests, accepted < book[k].quantity);
        if (rests) {
            cr_assert_eq(v.spec.quantity - v.filled, book[k].quantity - accepted);
        } else {
            released[n_released++] = book[k].id;
        }
    }
    for (size_t k = 0; k < n_released; k++) {
        market_order_spec spec = {.client_order_id = 100000 + k,
                                  .participant = 1,
                                  .der = 1,
                                  .product = product,
                                  .side = MARKET_OFFER,
                                  .price_ticks = 400000,
                                  .quantity = 1,
                                  .valid_until_ms = INT64_MAX};
        market_result r;
        cr_assert_eq(market_submit(sc.m, now, &spec, &r), ANM_OK);
        cr_assert_eq(r.reason, MARKET_ACCEPTED, "%s", r.text);
        cr_assert_eq(r.order_id & SLOT_MASK, released[n_released - 1 - k] & SLOT_MASK,
                     "new order %zu reuses the slot released %zu-th last", k, k);
    }
    *traded += want->n_trades > 0;
    *released_total += n_released;
    free(book);
    free(reference);
    scenario_free(&sc);
}

Test(auction_reference, agrees_exactly_with_a_naive_implementation)
{
    uint64_t rng = 7;
    size_t traded = 0, released = 0;
    const int iterations = 1500;
    for (int iteration = 0; iteration < iterations; iteration++) {
        run_scenario(&rng, iteration, &traded, &released);
    }
    cr_log_info("%d books, %zu traded, %zu orders released", iterations, traded, released);
    /* the generator exercises what it should */
    cr_assert_gt(traded, (size_t)iterations / 3);
    cr_assert_gt(released, (size_t)iterations * 5);
}

/* Reserving scratch changes nothing but the cost of the first auction. */
Test(auction_reference, reserve_keeps_results_identical)
{
    uint64_t rng_a = 99, rng_b = 99;
    for (int iteration = 0; iteration < 50; iteration++) {
        scenario a, b;
        scenario_make(&a, &rng_a);
        scenario_make(&b, &rng_b);
        cr_assert_eq(market_auction_reserve(b.m, 1000, 2000), ANM_OK);
        market_memory mem;
        market_memory_usage(b.m, &mem);
        cr_assert_geq(mem.scratch_bytes, (size_t)1000 * 100 + 2000 * sizeof(market_trade));
        market_auction_config config = {.pricing = (market_pricing)(iteration % 2),
                                        .pro_rata = (iteration / 2) % 2};
        market_auction_result ra, rb;
        cr_assert_eq(market_auction_run(a.m, NOW_MS, product, &config, &ra), ANM_OK);
        cr_assert_eq(market_auction_run(b.m, NOW_MS, product, &config, &rb), ANM_OK);
        cr_assert_eq(ra.n_trades, rb.n_trades);
        cr_assert(ra.n_trades == 0 ||
                  memcmp(ra.trades, rb.trades, ra.n_trades * sizeof *ra.trades) == 0);
        cr_assert(ra.n_bids == 0 || memcmp(ra.bids, rb.bids, ra.n_bids * sizeof *ra.bids) == 0);
        cr_assert(ra.n_offers == 0 ||
                  memcmp(ra.offers, rb.offers, ra.n_offers * sizeof *ra.offers) == 0);
        scenario_free(&a);
        scenario_free(&b);
    }
    cr_assert_eq(market_auction_reserve(NULL, 10, 10), ANM_EINVAL);
}

/* ---- timing print (not an assertion) ------------------------------------ */

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/*
 * The auction as a service meets it: three products of n orders each
 * (prices 0-5,000 GBP/MWh, ~n/2 trades); the first auction on the fresh
 * market, then one with the scratch reused, then, on a second market, the
 * first auction after market_auction_reserve. Wall and thread CPU time (on
 * a shared machine the CPU time is the steadier figure).
 */
static void time_auctions(size_t n)
{
    for (int reserved = 0; reserved < 2; reserved++) {
        market_registry *registry = market_registry_new();
        cr_assert_not_null(registry);
        market_registry_add_zone(registry, ZONE, (market_zone_info){0, 500000});
        for (uint32_t p = 1; p <= N_TRADERS; p++) {
            market_registry_add_participant(registry, p, MARKET_PARTICIPANT_TRADER);
            market_registry_add_der(registry, p, (market_der_info){ZONE, 1000000, 1000000});
            market_registry_allow(registry, p, p);
        }
        market_config config = {.registry = registry,
                                .gate_closure_offset_ms = 3600 * 1000,
                                .initial_mode = MARKET_MODE_CALL};
        market *m = market_new(&config);
        cr_assert_not_null(m);
        uint64_t rng = 5;
        double headroom[1] = {1e9};
        int rounds = reserved ? 1 : 2;
        for (int j = 0; j < rounds; j++) {
            market_product pr = {ZONE, PERIOD_MS + j * 1800 * 1000};
            market_set_statement(m, pr, market_statement_new(1, headroom, NULL));
            for (size_t k = 0; k < n; k++) {
                uint32_t p = (uint32_t)rng_range(&rng, 1, N_TRADERS);
                market_order_spec s = {.client_order_id = (uint64_t)j * n + k + 1,
                                       .participant = p,
                                       .der = p,
                                       .product = pr,
                                       .side = (k & 1) ? MARKET_OFFER : MARKET_BID,
                                       .price_ticks = (int32_t)rng_range(&rng, 0, 500000),
                                       .quantity = rng_range(&rng, 100, 5000),
                                       .valid_until_ms = INT64_MAX};
                market_result r;
                market_submit(m, NOW_MS, &s, &r);
            }
        }
        if (reserved) {
            cr_assert_eq(market_auction_reserve(m, n, n), ANM_OK);
        }
        for (int j = 0; j < rounds; j++) {
            market_product pr = {ZONE, PERIOD_MS + j * 1800 * 1000};
            market_auction_config ac = {.pricing = MARKET_PAY_AS_BID};
            market_auction_result res;
            int64_t t0 = anm_monotonic_ns();
            double c0 = cpu_ms();
            cr_assert_eq(market_auction_run(m, NOW_MS, pr, &ac, &res), ANM_OK);
            double cpu = cpu_ms() - c0;
            double wall = (double)(anm_monotonic_ns() - t0) / 1e6;
            printf("auction timing: n=%zu %s wall %.1f ms cpu %.1f ms (%zu trades)\n", n,
                   reserved ? "first after reserve"
                   : j == 0 ? "first (cold)"
                            : "scratch reused",
                   wall, cpu, res.n_trades);
        }
        fflush(stdout);
        market_destroy(&m);
        market_registry_destroy(&registry);
    }
}

Test(auction_reference, timing_print)
{
    time_auctions(100000);
    const char *big = getenv("ANM_MARKET_TIMING");
    if (big != NULL && strcmp(big, "1") == 0) {
        time_auctions(1000000);
    }
}
