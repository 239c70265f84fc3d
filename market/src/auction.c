/*
 * auction.c: the gate-closure auction of one product. See auction.h and
 * docs/market.md ("Gate-closure auction").
 *
 * Steps: gather the resting orders of each side in arrival order; sort
 * them by rank with a stable LSD radix sort (16-bit digits, a counting pass
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

enum { SCRATCH_ITEMS_SELL, SCRATCH_ITEMS_BUY, SCRATCH_KEYS, SCRATCH_TMP, SCRATCH_NEXT, SCRATCH_COUNT };

typedef struct item {
    int64_t rank;
    int64_t left;      /* remaining (capped by pro rata) for this auction */
    int64_t accepted;
    uint32_t need_flag; /* 1: not filled before, so min_quantity applies */
    uint32_t slot;
} item;

typedef struct fill {
    uint32_t bid, offer, prev;
    uint32_t unlinked;
    int64_t volume;
} fill;

/* Gathers one side's resting orders (levels, then call list: arrival order
 * within each rank, see market_set_mode). Returns the count. */
static size_t gather(market *m, market__side *s, item *out)
{
    size_t n = 0;
    for (size_t li = 0; li < s->n_levels; li++) {
        for (uint32_t slot = s->levels[li].head; slot != MARKET__NIL;) {
            market__order *o = market__node(m, slot);
            out[n++] = (item){.rank = o->rank,
                              .left = o->quantity - o->filled,
                              .need_flag = o->filled == 0,
                              .slot = slot};
            slot = o->next;
        }
    }
    for (uint32_t slot = s->call_head; slot != MARKET__NIL;) {
        market__order *o = market__node(m, slot);
        out[n++] = (item){.rank = o->rank,
                          .left = o->quantity - o->filled,
                          .need_flag = o->filled == 0,
                          .slot = slot};
        slot = o->next;
    }
    return n;
}

/*
 * Sorts items[0..n) by rank (descending if descending), stable; the result
 * is written back into items through tmp. keys and keys_tmp hold n uint64.
 * ANM_ERANGE if the rank spread needs more than KEY_BITS bits.
 */
static int radix_sort(item *items, item *tmp, size_t n, int descending, uint64_t *keys,
                      uint64_t *keys_tmp, uint32_t *count)
{
    if (n < 2) {
        return ANM_OK;
    }
    int64_t lo = items[0].rank, hi = items[0].rank;
    for (size_t i = 1; i < n; i++) {
        lo = items[i].rank < lo ? items[i].rank : lo;
        hi = items[i].rank > hi ? items[i].rank : hi;
    }
    uint64_t spread = (uint64_t)hi - (uint64_t)lo;
    if (spread >> KEY_BITS) {
        return ANM_ERANGE;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t k = descending ? (uint64_t)hi - (uint64_t)items[i].rank
                                : (uint64_t)items[i].rank - (uint64_t)lo;
        keys[i] = k << INDEX_BITS | (uint64_t)i;
    }
    int bits = 0;
    while (bits < KEY_BITS && (spread >> bits) != 0) {
        bits++;
    }
    const size_t buckets = (size_t)1 << 16;
    for (int shift = INDEX_BITS; shift < INDEX_BITS + bits; shift += 16) {
        memset(count, 0, buckets * sizeof *count);
        for (size_t i = 0; i < n; i++) {
            count[(keys[i] >> shift) & (buckets - 1)]++;
        }
        uint32_t sum = 0;
        for (size_t b = 0; b < buckets; b++) {
            uint32_t c = count[b];
            count[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) {
            keys_tmp[count[(keys[i] >> shift) & (buckets - 1)]++] = keys[i];
        }
        uint64_t *swap = keys;
        keys = keys_tmp;
        keys_tmp = swap;
    }
    for (size_t i = 0; i < n; i++) {
        tmp[i] = items[keys[i] & MARKET__SLOT_MASK];
    }
    memcpy(items, tmp, n * sizeof *items);
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
static void pro_rata(market *m, item *items, size_t n, int64_t rank, int64_t volume)
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
        const market__order *o = market__node(m, items[k].slot);
        int64_t need = items[k].need_flag ? o->min_quantity : 0;
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
        const market__order *o = market__node(m, items[k].slot);
        int64_t need = items[k].need_flag ? o->min_quantity : 0;
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

void market_auction_result_free(market_auction_result **result)
{
    if (result == NULL || *result == NULL) {
        return;
    }
    free((*result)->bids);
    free((*result)->offers);
    free((*result)->trades);
    free(*result);
    *result = NULL;
}

static void fill_stack(const market *m, const item *items, size_t n, market_stack_entry *out)
{
    for (size_t i = 0; i < n; i++) {
        const market__order *o = market__node(m, items[i].slot);
        out[i] = (market_stack_entry){.order_id = o->order_id,
                                      .rank = o->rank,
                                      .price_ticks = o->price_ticks,
                                      .availability_ticks = o->availability_ticks,
                                      .quantity = o->quantity - o->filled,
                                      .accepted = items[i].accepted};
    }
}

int market_auction_run(market *m, int64_t now_ms, market_product product,
                       const market_auction_config *config, market_auction_result **out)
{
    if (m == NULL || config == NULL || out == NULL) {
        return ANM_EINVAL;
    }
    *out = NULL;
    int rc = ANM_ENOMEM;
    fill *log = NULL;
    size_t n_log = 0, cap_log = 0;
    market_auction_result *res = calloc(1, sizeof *res);
    if (res == NULL) {
        return ANM_ENOMEM;
    }
    res->product = product;
    res->limiting_constraint = -1;
    market__product *p = market__product_get(m, product, 0);
    if (p == NULL) {
        *out = res;
        return ANM_OK;
    }
    market_expire(m, now_ms, product);
    size_t n = p->resting;
    item *sells = market__scratch_buffer(m, SCRATCH_ITEMS_SELL, (n + 1) * sizeof(item));
    item *buys = market__scratch_buffer(m, SCRATCH_ITEMS_BUY, (n + 1) * sizeof(item));
    uint64_t *keys = market__scratch_buffer(m, SCRATCH_KEYS, 2 * (n + 1) * sizeof(uint64_t));
    item *tmp = market__scratch_buffer(m, SCRATCH_TMP, (n + 1) * sizeof(item));
    uint32_t *next = market__scratch_buffer(m, SCRATCH_NEXT, (n + 1) * sizeof(uint32_t));
    uint32_t *count = market__scratch_buffer(m, SCRATCH_COUNT, ((size_t)1 << 16) * sizeof(uint32_t));
    if (sells == NULL || buys == NULL || keys == NULL || tmp == NULL || next == NULL ||
        count == NULL) {
        goto fail;
    }
    size_t ns = gather(m, &p->sides[MARKET__SELL], sells);
    size_t nb = gather(m, &p->sides[MARKET__BUY], buys);
    rc = radix_sort(sells, tmp, ns, 0, keys, keys + n + 1, count);
    if (rc == ANM_OK) {
        rc = radix_sort(buys, tmp, nb, 1, keys, keys + n + 1, count);
    }
    if (rc != ANM_OK) {
        goto fail;
    }
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
            pro_rata(m, buys, nb, bid_margin, at_bid_margin);
            pro_rata(m, sells, ns, sell_margin, at_sell_margin);
        }
    }

    /* the feasibility walk */
    for (size_t j = 0; j < ns; j++) {
        next[j] = j + 1 < ns ? (uint32_t)(j + 1) : END;
    }
    next[ns] = ns ? 0 : END; /* sentinel head */
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
        const market__order *bo = market__node(m, b->slot);
        int64_t bneed = b->need_flag ? bo->min_quantity : 0;
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
            const market__order *so = market__node(m, s->slot);
            int64_t sneed = s->need_flag && s->accepted == 0 ? so->min_quantity : 0;
            int64_t chunk = want < s->left ? want : s->left;
            int limiting = -1;
            int64_t f = 0;
            if ((m->config.self_trade_allowed || so->participant != bo->participant) &&
                chunk >= sneed) {
                f = market_statement_feasible(p->statement, p->used_mw, so->der, bo->der, chunk,
                                              &limiting);
            }
            if (limiting >= 0 && res->limiting_constraint < 0) {
                res->limiting_constraint = limiting;
            }
            if (f <= 0 || f < sneed) {
                skipped++;
                prev = cur;
                cur = next[cur];
                continue;
            }
            if (f < chunk) {
                skipped++; /* a cut pair counts against the scan limit too */
            }
            if (n_log == cap_log) {
                size_t grown = cap_log ? cap_log * 2 : 1024;
                fill *l = realloc(log, grown * sizeof *l);
                if (l == NULL) {
                    goto fail;
                }
                log = l;
                cap_log = grown;
            }
            market_statement_apply(p->statement, p->used_mw, so->der, bo->der, f);
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
    const market__order *setter = NULL;
    for (size_t j = ns; j-- > 0;) {
        if (sells[j].accepted > 0) {
            setter = market__node(m, sells[j].slot);
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

    res->bids = malloc((nb ? nb : 1) * sizeof *res->bids);
    res->offers = malloc((ns ? ns : 1) * sizeof *res->offers);
    res->trades = malloc((n_log ? n_log : 1) * sizeof *res->trades);
    if (res->bids == NULL || res->offers == NULL || res->trades == NULL) {
        goto fail;
    }
    fill_stack(m, buys, nb, res->bids);
    fill_stack(m, sells, ns, res->offers);

    for (size_t k = 0; k < n_log; k++) {
        const market__order *bo = market__node(m, buys[log[k].bid].slot);
        const market__order *so = market__node(m, sells[log[k].offer].slot);
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

    /* apply the fills to the book */
    item *sides[2] = {sells, buys};
    size_t counts[2] = {ns, nb};
    for (int side = 0; side < 2; side++) {
        for (size_t k = 0; k < counts[side]; k++) {
            item *it = &sides[side][k];
            if (it->accepted == 0) {
                continue;
            }
            market__order *o = market__node(m, it->slot);
            o->filled += it->accepted;
            if (o->filled == o->quantity) {
                market__unlink(m, o);
                market__release(m, it->slot);
            }
        }
    }
    free(log);
    *out = res;
    return ANM_OK;

fail:
    free(log);
    market_auction_result_free(&res);
    return rc;
}
