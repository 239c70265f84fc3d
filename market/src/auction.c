/*
 * auction.c: the gate-closure auction of one product. See auction.h and
 * docs/market.md ("Gate-closure auction").
 *
 * Steps: gather the resting orders of each side in arrival order; sort
 * them by rank with a stable LSD radix sort (11-bit digits, a counting pass
 * per digit, the item index packed under the key so one uint64 moves per
 * element); find the unconstrained intersection; optionally cap the
 * marginal level pro rata; walk the stacks pairing each bid with the
 * cheapest crossing offers, cutting every pair to its feasible volume.
 */
#include "market/auction.h"

#include "engine/error.h"
#include "market_internal.h"

#include <stdlib.h>
#include <string.h>

#define INDEX_BITS MARKET__SLOT_BITS
#define KEY_BITS (64 - INDEX_BITS)
#define END UINT32_MAX
/* 11-bit digits: 2,048 counters and write streams per pass stay within the
 * L1 cache and the TLB; 16-bit digits (65,536 streams) measured slower */
#define DIGIT_BITS 11

enum { SCRATCH_ITEMS, SCRATCH_TMP, SCRATCH_KEYS, SCRATCH_NEXT, SCRATCH_COUNT, SCRATCH_STACKS, SCRATCH_LOG, SCRATCH_TRADES, SCRATCH_BY_SLOT };

/* An order as the auction sees it: copied out of the node once, so that the
 * sort, the walk and the output read one dense array in merit order. */
typedef struct item {
    int64_t rank;
    int64_t left;      /* remaining (capped by pro rata) for this auction */
    int64_t accepted;
    int64_t need;      /* min_quantity if not filled before, else 0 */
    int64_t quantity;  /* remaining when the auction started */
    uint64_t order_id; /* its low bits are the pool slot */
    uint32_t der, participant;
    int32_t price_ticks, availability_ticks;
} item; /* 64 bytes: one cache line */

typedef struct fill {
    uint32_t bid, offer, prev;
    uint32_t unlinked;
    int64_t volume;
} fill;

/* Visits a product's resting orders in gather order: the levels of each
 * side from best to worst, each FIFO, then the call list (both sides in
 * arrival order). Within one side and rank that is arrival order (see
 * market_set_mode). visit may unlink and release the node it is given. */
typedef void (*visit_fn)(market *m, market__order *o, uint32_t slot, void *context);

static void visit_product(market *m, market__product *p, visit_fn visit, void *context)
{
    for (int side = 0; side < 2; side++) {
        market__side *s = &p->sides[side];
        for (size_t li = s->n_levels; li-- > 0;) {
            for (uint32_t slot = s->levels[li].head; slot != MARKET__NIL;) {
                market__order *o = market__node(m, slot);
                uint32_t next = o->next;
                visit(m, o, slot, context);
                slot = next;
            }
            if (li > s->n_levels) {
                li = s->n_levels; /* levels above li were removed: continue below */
            }
        }
    }
    for (uint32_t slot = p->call_head; slot != MARKET__NIL;) {
        market__order *o = market__node(m, slot);
        uint32_t next = o->next;
        visit(m, o, slot, context);
        slot = next;
    }
}

typedef struct gathering {
    int64_t now_ms;
    item *out[2];      /* by side: MARKET__SELL, MARKET__BUY */
    uint64_t *ranks[2];
    size_t n[2];
    int64_t *by_slot;  /* accepted volume by pool slot, zeroed here */
} gathering;

/* Copies a live order out (and its rank for the sort); drops an expired one. */
static void gather_visit(market *m, market__order *o, uint32_t slot, void *context)
{
    gathering *g = context;
    if (o->valid_until_ms <= g->now_ms) {
        market__unlink(m, o);
        market__release(m, slot);
        return;
    }
    int side = market_side_is_buy((market_side)o->side);
    size_t k = g->n[side]++;
    g->ranks[side][k] = (uint64_t)o->rank;
    g->by_slot[slot] = 0;
    g->out[side][k] = (item){.rank = o->rank,
                             .left = o->quantity - o->filled,
                             .need = o->filled == 0 ? o->min_quantity : 0,
                             .quantity = o->quantity - o->filled,
                             .order_id = o->order_id,
                             .der = o->der,
                             .participant = o->participant,
                             .price_ticks = o->price_ticks,
                             .availability_ticks = o->availability_ticks};
}

static void apply_visit(market *m, market__order *o, uint32_t slot, void *context)
{
    const int64_t *by_slot = context;
    int64_t v = by_slot[slot];
    if (v == 0) {
        return;
    }
    o->filled += v;
    if (o->filled == o->quantity) {
        market__unlink(m, o);
        market__release(m, slot);
    }
}

/*
 * Sorts items[0..n) by rank (descending if descending), stable, into
 * out[0..n). keys holds the n ranks on entry; keys_tmp n more uint64.
 * ANM_ERANGE if the rank spread needs more than KEY_BITS bits.
 */
static int radix_sort(const item *items, item *out, size_t n, int descending, uint64_t *keys,
                      uint64_t *keys_tmp, uint32_t *count)
{
    if (n < 2) {
        memcpy(out, items, n * sizeof *items);
        return ANM_OK;
    }
    /* keys holds the raw ranks (gather order) on entry */
    int64_t lo = (int64_t)keys[0], hi = (int64_t)keys[0];
    for (size_t i = 1; i < n; i++) {
        int64_t r = (int64_t)keys[i];
        lo = r < lo ? r : lo;
        hi = r > hi ? r : hi;
    }
    uint64_t spread = (uint64_t)hi - (uint64_t)lo;
    if (spread >> KEY_BITS) {
        return ANM_ERANGE;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t k = descending ? (uint64_t)hi - keys[i] : keys[i] - (uint64_t)lo;
        keys[i] = k << INDEX_BITS | (uint64_t)i;
    }
    int bits = 0;
    while (bits < KEY_BITS && (spread >> bits) != 0) {
        bits++;
    }
    int passes = (bits + DIGIT_BITS - 1) / DIGIT_BITS;
    const size_t buckets = (size_t)1 << DIGIT_BITS;
    /* one read of the keys counts the digits of every pass */
    memset(count, 0, (size_t)passes * buckets * sizeof *count);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = keys[i] >> INDEX_BITS;
        for (int pass = 0; pass < passes; pass++) {
            count[(size_t)pass * buckets + ((k >> (pass * DIGIT_BITS)) & (buckets - 1))]++;
        }
    }
    for (int pass = 0; pass < passes; pass++) {
        uint32_t *c = count + (size_t)pass * buckets;
        uint32_t sum = 0;
        for (size_t b = 0; b < buckets; b++) {
            uint32_t v = c[b];
            c[b] = sum;
            sum += v;
        }
        int shift = INDEX_BITS + pass * DIGIT_BITS;
        for (size_t i = 0; i < n; i++) {
            keys_tmp[c[(keys[i] >> shift) & (buckets - 1)]++] = keys[i];
        }
        uint64_t *swap = keys;
        keys = keys_tmp;
        keys_tmp = swap;
    }
    /* the permutation reads items at random: prefetch a few ahead so the
     * cache misses overlap */
    enum { AHEAD = 16 };
    for (size_t i = 0; i < n; i++) {
        if (i + AHEAD < n) {
            __builtin_prefetch(&items[keys[i + AHEAD] & MARKET__SLOT_MASK]);
        }
        out[i] = items[keys[i] & MARKET__SLOT_MASK];
    }
    return ANM_OK;
}

/* Unsigned 128-bit helper for v * q / total without overflow. */
__extension__ typedef unsigned __int128 u128;

/*
 * Caps the orders at rank `rank` of a sorted side to a pro-rata share of
 * `volume`: floor(volume * left_k / total), an order whose share is under its
 * minimum quantity gets 0, and the units left over go one order at a time in
 * arrival order (never below an order's minimum quantity).
 */
static void pro_rata(item *items, size_t n, int64_t rank, int64_t volume)
{
    size_t a = 0;
    while (a < n && items[a].rank != rank) {
        a++;
    }
    size_t b = a;
    int64_t total = 0;
    while (b < n && items[b].rank == rank) {
        total += items[b].left;
        b++;
    }
    if (total <= volume) {
        return; /* the level is cleared in full: nothing to ration */
    }
    int64_t given = 0;
    for (size_t k = a; k < b; k++) {
        int64_t need = items[k].need;
        int64_t share = (int64_t)((u128)volume * (u128)items[k].left / (u128)total);
        if (share < need) {
            share = 0;
        }
        items[k].accepted = share; /* temporarily: the cap */
        given += share;
    }
    int64_t leftover = volume - given;
    /* rounding leaves fewer units than orders: one each, in arrival order */
    for (size_t k = a; k < b && leftover > 0; k++) {
        if (items[k].accepted > 0 && items[k].accepted < items[k].left) {
            items[k].accepted++;
            leftover--;
        }
    }
    /* shares refused for a minimum quantity: to the next orders in arrival order */
    for (size_t k = a; k < b && leftover > 0; k++) {
        int64_t need = items[k].need;
        int64_t room = items[k].left - items[k].accepted;
        int64_t add = room < leftover ? room : leftover;
        if (items[k].accepted == 0 && add < need) {
            continue;
        }
        items[k].accepted += add;
        leftover -= add;
    }
    for (size_t k = a; k < b; k++) {
        items[k].left = items[k].accepted;
        items[k].accepted = 0;
    }
    /* orders beyond the marginal level do not cross at the intersection */
}

static void fill_stack(const item *items, size_t n, market_stack_entry *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = (market_stack_entry){.order_id = items[i].order_id,
                                      .rank = items[i].rank,
                                      .price_ticks = items[i].price_ticks,
                                      .availability_ticks = items[i].availability_ticks,
                                      .quantity = items[i].quantity,
                                      .accepted = items[i].accepted};
    }
}

int market_auction_run(market *m, int64_t now_ms, market_product product,
                       const market_auction_config *config, market_auction_result *out)
{
    if (m == NULL || config == NULL || out == NULL) {
        return ANM_EINVAL;
    }
    int rc = ANM_ENOMEM;
    fill *log = NULL;
    size_t n_log = 0, cap_log = 0;
    market_auction_result *res = out;
    *res = (market_auction_result){.product = product, .limiting_constraint = -1};
    market__product *p = market__product_get(m, product, 0);
    if (p == NULL) {
        return ANM_OK;
    }
    size_t n = p->resting;
    /* one buffer: offers at [0, ns), bids at [ns, ns + nb) */
    item *all = market__scratch_buffer(m, SCRATCH_ITEMS, (n + 1) * sizeof(item));
    item *tmp = market__scratch_buffer(m, SCRATCH_TMP, (n + 1) * sizeof(item));
    uint64_t *keys = market__scratch_buffer(m, SCRATCH_KEYS, 2 * (n + 1) * sizeof(uint64_t));
    uint32_t *next = market__scratch_buffer(m, SCRATCH_NEXT, (n + 1) * sizeof(uint32_t));
    uint32_t *count = market__scratch_buffer(m, SCRATCH_COUNT, ((size_t)KEY_BITS / DIGIT_BITS + 1) * ((size_t)1 << DIGIT_BITS) * sizeof(uint32_t));
    int64_t *by_slot = market__scratch_buffer(m, SCRATCH_BY_SLOT, (m->n_slots + 1) * sizeof(int64_t));
    if (all == NULL || tmp == NULL || keys == NULL || next == NULL || count == NULL ||
        by_slot == NULL) {
        goto fail;
    }
    uint64_t *keys_tmp = keys + n + 1;
    /* offers go to [0, cap_sell), bids after them, in one pass over the nodes */
    size_t cap_sell = p->sides[MARKET__SELL].resting;
    gathering g = {.now_ms = now_ms,
                   .out = {all, all + cap_sell},
                   .ranks = {keys, keys + cap_sell},
                   .by_slot = by_slot};
    visit_product(m, p, gather_visit, &g);
    size_t ns = g.n[MARKET__SELL], nb = g.n[MARKET__BUY];
    rc = radix_sort(all, tmp, ns, 0, keys, keys_tmp, count);
    if (rc == ANM_OK) {
        rc = radix_sort(all + cap_sell, tmp + ns, nb, 1, keys + cap_sell, keys_tmp, count);
    }
    if (rc != ANM_OK) {
        goto fail;
    }
    item *sells = tmp, *buys = tmp + ns;
    rc = ANM_ENOMEM;
    res->n_bids = nb;
    res->n_offers = ns;

    /* unconstrained intersection, and the volume traded at each marginal rank */
    {
        size_t i = 0, j = 0;
        int64_t lb = nb ? buys[0].left : 0, ls = ns ? sells[0].left : 0;
        int64_t volume = 0, at_bid_margin = 0, at_sell_margin = 0;
        int64_t bid_margin = 0, sell_margin = 0;
        while (i < nb && j < ns && buys[i].rank >= sells[j].rank) {
            int64_t v = lb < ls ? lb : ls;
            if (buys[i].rank != bid_margin || volume == 0) {
                at_bid_margin = buys[i].rank == bid_margin && volume > 0 ? at_bid_margin : 0;
            }
            if (sells[j].rank != sell_margin || volume == 0) {
                at_sell_margin = sells[j].rank == sell_margin && volume > 0 ? at_sell_margin : 0;
            }
            bid_margin = buys[i].rank;
            sell_margin = sells[j].rank;
            at_bid_margin += v;
            at_sell_margin += v;
            volume += v;
            lb -= v;
            ls -= v;
            if (lb == 0 && ++i < nb) {
                lb = buys[i].left;
            }
            if (ls == 0 && ++j < ns) {
                ls = sells[j].left;
            }
        }
        res->unconstrained_volume = volume;
        if (config->pro_rata && volume > 0) {
            pro_rata(buys, nb, bid_margin, at_bid_margin);
            pro_rata(sells, ns, sell_margin, at_sell_margin);
        }
    }

    /* the feasibility walk */
    for (size_t j = 0; j < ns; j++) {
        next[j] = j + 1 < ns ? (uint32_t)(j + 1) : END;
    }
    next[ns] = ns ? 0 : END; /* sentinel head */
    double initial_used[MARKET_MAX_CONSTRAINTS];
    memcpy(initial_used, p->used_mw, sizeof initial_used);
    int64_t max_offer_rank = INT64_MIN;
    double saved_used[MARKET_MAX_CONSTRAINTS];
    for (size_t i = 0; i < nb && p->statement != NULL; i++) {
        item *b = &buys[i];
        if (b->left == 0) {
            continue;
        }
        uint32_t first = next[ns];
        if (first == END || sells[first].rank > b->rank) {
            break; /* the cheapest offer left does not cross: no later bid crosses */
        }
        if (b->rank < max_offer_rank) {
            /* out of merit: an offer above this bid is already accepted. Stopping
             * here keeps the accepted set priced consistently (one price, the
             * highest accepted offer, lies between every accepted offer and bid),
             * the same in both pricing modes, and within the intersection volume */
            break;
        }
        const item *bo = b;
        int64_t bneed = b->need;
        memcpy(saved_used, p->used_mw, sizeof saved_used);
        size_t log_start = n_log;
        int64_t want = b->left;
        size_t skipped = 0;
        uint32_t prev = (uint32_t)ns;
        for (uint32_t cur = first; cur != END && want > 0 && skipped < MARKET_SCAN_LIMIT;) {
            item *s = &sells[cur];
            if (s->rank > b->rank) {
                break;
            }
            const item *so = s;
            int64_t sneed = s->accepted == 0 ? s->need : 0;
            int64_t chunk = want < s->left ? want : s->left;
            if (n_log == cap_log) {
                size_t grown = cap_log ? cap_log * 2 : nb + ns + 1024;
                fill *l = market__scratch_buffer(m, SCRATCH_LOG, grown * sizeof *l);
                if (l == NULL) {
                    goto fail_walked;
                }
                log = l;
                cap_log = grown;
            }
            int limiting = -1;
            int64_t f = 0;
            if ((m->config.self_trade_allowed || so->participant != bo->participant) &&
                chunk >= sneed) {
                f = market_statement_take(p->statement, p->used_mw, so->der, bo->der, chunk,
                                          sneed, &limiting);
            }
            if (limiting >= 0 && res->limiting_constraint < 0) {
                res->limiting_constraint = limiting;
            }
            if (f == 0) {
                skipped++;
                prev = cur;
                cur = next[cur];
                continue;
            }
            if (f < chunk) {
                skipped++; /* a cut pair counts against the scan limit too */
            }
            s->left -= f;
            s->accepted += f;
            want -= f;
            log[n_log++] = (fill){.bid = (uint32_t)i, .offer = cur, .prev = prev,
                                  .unlinked = s->left == 0, .volume = f};
            if (s->left == 0) {
                next[prev] = next[cur];
                cur = next[cur];
            } else {
                prev = cur;
                cur = next[cur];
            }
        }
        int64_t got = b->left - want;
        if (got > 0 && got < bneed) {
            /* the bid's minimum quantity does not fit: undo its fills, newest first */
            for (size_t k = n_log; k-- > log_start;) {
                item *s = &sells[log[k].offer];
                s->left += log[k].volume;
                s->accepted -= log[k].volume;
                if (log[k].unlinked) {
                    next[log[k].prev] = log[k].offer;
                }
            }
            n_log = log_start;
            memcpy(p->used_mw, saved_used, sizeof saved_used);
            continue;
        }
        b->accepted = got;
        b->left = want;
        for (size_t k = log_start; k < n_log; k++) {
            int64_t r = sells[log[k].offer].rank;
            max_offer_rank = r > max_offer_rank ? r : max_offer_rank;
        }
    }

    /* price-setting order: the highest-ranked accepted offer (latest in merit order) */
    const item *setter = NULL;
    for (size_t j = ns; j-- > 0;) {
        if (sells[j].accepted > 0) {
            setter = &sells[j];
            break;
        }
    }
    if (setter != NULL) {
        res->has_price = 1;
        res->clearing_rank = setter->rank;
        res->clearing_price_ticks = setter->price_ticks;
        res->clearing_availability_ticks = setter->availability_ticks;
        res->price_setting_order_id = setter->order_id;
    }

    market_stack_entry *stacks =
        market__scratch_buffer(m, SCRATCH_STACKS, (nb + ns + 1) * sizeof *stacks);
    market_trade *trades = market__scratch_buffer(m, SCRATCH_TRADES, (n_log + 1) * sizeof *trades);
    if (stacks == NULL || trades == NULL) {
        goto fail_walked;
    }
    res->bids = stacks;
    res->offers = stacks + nb;
    res->trades = trades;
    fill_stack(buys, nb, res->bids);
    fill_stack(sells, ns, res->offers);

    for (size_t k = 0; k < n_log; k++) {
        const item *bo = &buys[log[k].bid];
        const item *so = &sells[log[k].offer];
        market_trade t = {.buy_order_id = bo->order_id,
                          .sell_order_id = so->order_id,
                          .buyer = bo->participant,
                          .seller = so->participant,
                          .buy_der = bo->der,
                          .sell_der = so->der,
                          .product = product,
                          .kind = MARKET_TRADE_AUCTION,
                          .volume = log[k].volume,
                          .executed_ms = now_ms};
        if (config->pricing == MARKET_UNIFORM) {
            t.buyer_price_ticks = t.seller_price_ticks = setter->price_ticks;
            t.buyer_availability_ticks = t.seller_availability_ticks = setter->availability_ticks;
        } else {
            t.buyer_price_ticks = bo->price_ticks;
            t.buyer_availability_ticks = bo->availability_ticks;
            t.seller_price_ticks = so->price_ticks;
            t.seller_availability_ticks = so->availability_ticks;
        }
        market__emit(m, &t);
        res->trades[k] = t;
        res->accepted_volume += t.volume;
    }
    res->n_trades = n_log;

    /* apply the fills to the book, visiting the orders in list order
     * (mostly sequential in memory) with the accepted volumes by slot */
    for (size_t k = 0; k < ns + nb; k++) {
        if (tmp[k].accepted != 0) {
            by_slot[tmp[k].order_id & MARKET__SLOT_MASK] = tmp[k].accepted;
        }
    }
    visit_product(m, p, apply_visit, by_slot);
    return ANM_OK;

fail_walked:
    memcpy(p->used_mw, initial_used, sizeof initial_used);
fail:
    /* the book is untouched until the fills are applied, which cannot fail */
    *res = (market_auction_result){.product = product, .limiting_constraint = -1};
    return rc;
}
