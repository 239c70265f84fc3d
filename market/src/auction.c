/*
 * auction.c: the gate-closure auction of one product. See auction.h and
 * docs/market.md ("Gate-closure auction", "How the auction spends its time").
 *
 * The auction is memory bound (10^6 orders are 88 MB of nodes), so every
 * step reads or writes its data once, sequentially where it can:
 *
 *   gather       one pass over the nodes in list order; live orders are
 *                numbered in that visit order (t): a 32-byte record per
 *                order by t, and per side its raw rank and t
 *   sort         a stable LSD radix sort of 8-byte keys only
 *                (rank offset << 24 | t), digits of at most 11 bits
 *   materialise  one pass per side in merit order: each record is read
 *                once (at random, prefetched, one cache line) and written
 *                straight into its output stack entry and a 32-byte walk
 *                entry (streaming stores), with the side's running total
 *                every 64 entries
 *   intersect    bisection on the running totals (a few microseconds)
 *   pro rata, walk
 *                on the walk entries, in merit order; the walk writes the
 *                trades directly into the output array (a bid's trades are
 *                dropped again if its minimum is not met)
 *   note         the accepted volumes go to an 8-byte array by t (only
 *                the walked prefix of each stack is read), marked in a bitmap
 *   apply        the bitmap in order of t, with the slots gathered by t:
 *                only accepted orders' nodes are touched, and filled nodes
 *                are released in the order a walk over the book meets them
 *                (so the free list, and every later order id, is what it
 *                always was)
 */
#include "market/auction.h"

#include "engine/error.h"
#include "market_internal.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__SSE2__)
#include <emmintrin.h>
#define STREAM_STORES 1
#endif

#define INDEX_BITS MARKET__SLOT_BITS
#define INDEX_MASK MARKET__SLOT_MASK
#define KEY_BITS   (64 - INDEX_BITS)
#define END        UINT32_MAX
/* 11-bit digits: 2,048 counters and write streams per pass stay within the
 * L1 cache and the TLB; 16-bit digits (65,536 streams) measured slower */
#define DIGIT_BITS 11
#define MAX_PASSES ((KEY_BITS + DIGIT_BITS - 1) / DIGIT_BITS)
/* records fetched ahead in the materialise pass, so that the cache misses
 * of its random reads overlap; they are fetched into L2 only (locality 1):
 * with the fetches aimed at L1, its few miss buffers filled up and the
 * prefetches themselves stalled (measured: the auction of 10^6 orders about
 * 3 ms faster). 64 rather than 32 ahead since the pass's writes bypass the
 * caches (streaming stores): about 1 ms faster again */
#define AHEAD 64
/* entries per running total kept for the intersection's bisection */
#define TOTAL_BLOCK 64

enum {
    SCRATCH_RECORDS,
    SCRATCH_KEYS,
    SCRATCH_WALK,
    SCRATCH_NEXT,
    SCRATCH_COUNT,
    SCRATCH_STACKS,
    SCRATCH_LOG,
    SCRATCH_TRADES,
    SCRATCH_BITS,
    SCRATCH_NEEDS,
    SCRATCH_SLOTS,
    SCRATCH_TOTALS
};

/* An order as gathered from its node, in gather order. The materialise
 * pass reads these at random: 32 bytes, 64-byte aligned, so one line each. */
typedef struct record {
    uint64_t order_id; /* its low bits are the pool slot */
    uint64_t quantity; /* remaining when the auction started; bit 63 (HAS_NEED):
                        * a minimum applies, kept in the needs array */
    int32_t price_ticks, availability_ticks;
    uint32_t der, participant;
} record;

#define HAS_NEED (UINT64_C(1) << 63)
static_assert(sizeof(record) == 32, "a gathered record is half a cache line");

/* What the intersection and the walk need of an order, in merit order. */
typedef struct walker {
    int64_t rank;
    int64_t left; /* remaining (capped by pro rata) for this auction */
    int64_t need;
    uint32_t der, participant;
} walker; /* 32 bytes: two per cache line */

/* One fill of the bid being walked, kept to undo it. */
typedef struct fill {
    uint32_t offer, prev;
    uint32_t unlinked;
    int64_t volume;
} fill;

/* Live orders are numbered in visit order (t); each side also lists its
 * orders' ranks and numbers, for its sort. */
typedef struct gathering {
    int64_t now_ms;
    record *records;    /* by t */
    int64_t *needs;     /* by t: need (min_quantity if not filled before) where HAS_NEED */
    uint32_t *slots;    /* by t: the pool slot (what the apply pass reads) */
    uint64_t *ranks[2]; /* by side (MARKET__SELL, MARKET__BUY), in visit order */
    uint32_t *numbers[2];
    size_t n[2];
    int64_t lo[2], hi[2]; /* rank range of each side */
    size_t visited;
} gathering;

/* Copies a live order out (and its rank for the sort); drops an expired one. */
static inline void gather_order(market *m, gathering *g, market__order *o, uint32_t slot)
{
    if (o->valid_until_ms <= g->now_ms) {
        market__unlink(m, o);
        market__release(m, slot);
        return;
    }
    int side = market_side_is_buy((market_side)o->side);
    size_t k = g->n[side]++;
    size_t t = g->visited++;
    int64_t rank = o->rank;
    g->ranks[side][k] = (uint64_t)rank;
    g->numbers[side][k] = (uint32_t)t;
    g->lo[side] = rank < g->lo[side] ? rank : g->lo[side];
    g->hi[side] = rank > g->hi[side] ? rank : g->hi[side];
    int64_t need = o->filled == 0 ? o->min_quantity : 0;
    if (need != 0) {
        g->needs[t] = need;
    }
    g->slots[t] = slot;
    g->records[t] =
        (record){.order_id = o->order_id,
                 .quantity = (uint64_t)(o->quantity - o->filled) | (need != 0 ? HAS_NEED : 0),
                 .price_ticks = o->price_ticks,
                 .availability_ticks = o->availability_ticks,
                 .der = o->der,
                 .participant = o->participant};
}

/*
 * Gathers a product's resting orders in visit order: the levels of each
 * side from best to worst, each FIFO, then the call list (both sides in
 * arrival order). Within one side and rank that is arrival order (see
 * market_set_mode), which makes the sort's ties fall in arrival order.
 */
static void gather_product(market *m, market__product *p, gathering *g)
{
    for (int side = 0; side < 2; side++) {
        market__side *s = &p->sides[side];
        for (size_t li = s->n_levels; li-- > 0;) {
            for (uint32_t slot = s->levels[li].head; slot != MARKET__NIL;) {
                market__order *o = market__node(m, slot);
                uint32_t next = o->next;
                gather_order(m, g, o, slot);
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
        gather_order(m, g, o, slot);
        slot = next;
    }
}

/*
 * Sorts one side by rank (descending if descending), stable. keys holds the
 * n raw ranks, all in [lo, hi], in visit order on entry, numbers their visit
 * numbers; tmp has room for n more keys (and may be where numbers are: they
 * are read before tmp is written). On return *sorted (keys or tmp) holds, in
 * merit order, offset << INDEX_BITS | visit number, where the rank is
 * lo + offset (ascending) or hi - offset (descending).
 * ANM_ERANGE if the spread needs more than KEY_BITS bits.
 */
static int radix_sort(uint64_t *keys, const uint32_t *numbers, uint64_t *tmp, size_t n,
                      int descending, int64_t lo, int64_t hi, uint32_t *count, uint64_t **sorted)
{
    *sorted = keys;
    if (n == 0) {
        return ANM_OK;
    }
    uint64_t spread = (uint64_t)hi - (uint64_t)lo;
    if (spread >> KEY_BITS) {
        return ANM_ERANGE;
    }
    int bits = 0;
    while (bits < KEY_BITS && (spread >> bits) != 0) {
        bits++;
    }
    int passes = (bits + DIGIT_BITS - 1) / DIGIT_BITS;
    /* the narrowest digits that need no more passes: fewer write streams */
    int digit_bits = passes ? (bits + passes - 1) / passes : 0;
    const size_t buckets = (size_t)1 << digit_bits;
    const uint64_t digit_mask = buckets - 1;
    const uint64_t origin = descending ? (uint64_t)hi : (uint64_t)lo;
    /* one pass makes the keys and counts the digits of every pass */
    memset(count, 0, (size_t)passes * buckets * sizeof *count);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = descending ? origin - keys[i] : keys[i] - origin;
        keys[i] = k << INDEX_BITS | (uint64_t)numbers[i];
        for (int pass = 0; pass < passes; pass++) {
            count[(size_t)pass * buckets + ((k >> (pass * digit_bits)) & digit_mask)]++;
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
        int shift = INDEX_BITS + pass * digit_bits;
        for (size_t i = 0; i < n; i++) {
            tmp[c[(keys[i] >> shift) & digit_mask]++] = keys[i];
        }
        uint64_t *swap = keys;
        keys = tmp;
        tmp = swap;
    }
    *sorted = keys;
    return ANM_OK;
}

#ifdef STREAM_STORES
static_assert(offsetof(market_stack_entry, price_ticks) == 16 &&
                  offsetof(market_stack_entry, availability_ticks) == 20 &&
                  offsetof(market_stack_entry, quantity) == 24 &&
                  offsetof(market_stack_entry, accepted) == 32 && sizeof(market_stack_entry) == 40,
              "stack entries are written as five 8-byte words");
static_assert(offsetof(walker, der) == 24 && offsetof(walker, participant) == 28 &&
                  sizeof(walker) == 32,
              "walk entries are written as four 8-byte words");

/* An 8-byte word stored past the caches (x86-64, little-endian) */
static inline void stream64(void *at, uint64_t word)
{
    _mm_stream_si64((long long *)at, (long long)word);
}

static inline uint64_t pair32(uint32_t low, uint32_t high)
{
    return (uint64_t)high << 32 | low;
}
#endif

/*
 * Writes one side in merit order: its output stack entries (accepted 0),
 * its walk entries and the running total of its quantities at the end of
 * every block of TOTAL_BLOCK entries (totals[k]: entries 0 .. (k + 1) *
 * TOTAL_BLOCK - 1, the last block possibly partial; what the intersection
 * searches), reading each gathered record once. Returns 0 if the running
 * total would overflow (then totals is not complete).
 *
 * The stack and walk entries are written with streaming (non-temporal)
 * stores where the machine has them: 72 bytes an order that are not read
 * again before the walk, so they go straight to memory instead of evicting
 * the records the pass reads at random (measured: 0.7-0.8 ms of 10^6
 * orders).
 */
static int materialise(const record *records, const int64_t *needs, const uint64_t *sorted,
                       size_t n, int descending, int64_t base, market_stack_entry *stack,
                       walker *walk, int64_t *totals)
{
    int64_t total = 0;
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        if (i + AHEAD < n) {
            __builtin_prefetch(&records[sorted[i + AHEAD] & INDEX_MASK], 0, 1);
        }
        uint64_t key = sorted[i];
        const record *r = &records[key & INDEX_MASK];
        int64_t quantity = (int64_t)(r->quantity & ~HAS_NEED);
        int64_t need = r->quantity & HAS_NEED ? needs[key & INDEX_MASK] : 0;
        uint64_t offset = key >> INDEX_BITS;
        int64_t rank = (int64_t)(descending ? (uint64_t)base - offset : (uint64_t)base + offset);
        ok &= !__builtin_add_overflow(total, quantity, &total);
#ifdef STREAM_STORES
        market_stack_entry *e = &stack[i];
        stream64(&e->order_id, r->order_id);
        stream64(&e->rank, (uint64_t)rank);
        stream64(&e->price_ticks,
                 pair32((uint32_t)r->price_ticks, (uint32_t)r->availability_ticks));
        stream64(&e->quantity, (uint64_t)quantity);
        stream64(&e->accepted, 0);
        walker *w = &walk[i];
        stream64(&w->rank, (uint64_t)rank);
        stream64(&w->left, (uint64_t)quantity);
        stream64(&w->need, (uint64_t)need);
        stream64(&w->der, pair32(r->der, r->participant));
#else
        stack[i] = (market_stack_entry){.order_id = r->order_id,
                                        .rank = rank,
                                        .price_ticks = r->price_ticks,
                                        .availability_ticks = r->availability_ticks,
                                        .quantity = quantity,
                                        .accepted = 0};
        walk[i] = (walker){.rank = rank,
                           .left = quantity,
                           .need = need,
                           .der = r->der,
                           .participant = r->participant};
#endif
        if (i % TOTAL_BLOCK == TOTAL_BLOCK - 1 || i + 1 == n) {
            totals[i / TOTAL_BLOCK] = total;
        }
    }
#ifdef STREAM_STORES
    _mm_sfence();
#endif
    return ok;
}

/* The padding of a market_trade: after product.zone and after kind; every
 * other byte belongs to a field (checked here). */
#define PRODUCT_GAP_AT (offsetof(market_product, zone) + sizeof(uint32_t))
#define PRODUCT_GAP    (offsetof(market_product, period_start_ms) - PRODUCT_GAP_AT)
#define KIND_GAP_AT    (offsetof(market_trade, kind) + sizeof(market_trade_kind))
#define KIND_GAP       (offsetof(market_trade, volume) - KIND_GAP_AT)
static_assert(
    offsetof(market_trade, buy_order_id) == 8 && offsetof(market_trade, sell_order_id) == 16 &&
        offsetof(market_trade, buyer) == 24 && offsetof(market_trade, seller) == 28 &&
        offsetof(market_trade, buy_der) == 32 && offsetof(market_trade, sell_der) == 36 &&
        offsetof(market_trade, product) == 40 && sizeof(market_product) == 16 &&
        offsetof(market_trade, kind) + sizeof(market_trade_kind) + KIND_GAP ==
            offsetof(market_trade, volume) &&
        offsetof(market_trade, product) + sizeof(market_product) == offsetof(market_trade, kind) &&
        offsetof(market_trade, buyer_price_ticks) == offsetof(market_trade, volume) + 8 &&
        offsetof(market_trade, seller_availability_ticks) == offsetof(market_trade, volume) + 20 &&
        offsetof(market_trade, executed_ms) == offsetof(market_trade, volume) + 24 &&
        sizeof(market_trade) == offsetof(market_trade, executed_ms) + 8,
    "market_trade layout: padding only after product.zone and kind");

static inline void zero_trade_padding(market_trade *t)
{
    unsigned char *bytes = (unsigned char *)t;
    if (PRODUCT_GAP > 0) {
        memset(bytes + offsetof(market_trade, product) + PRODUCT_GAP_AT, 0, PRODUCT_GAP);
    }
    if (KIND_GAP > 0) {
        memset(bytes + KIND_GAP_AT, 0, KIND_GAP);
    }
}

/* Unsigned 128-bit helper for v * q / total without overflow. */
__extension__ typedef unsigned __int128 u128;

/*
 * Caps the orders at rank `rank` of a sorted side to a pro-rata share of
 * `volume`: floor(volume * left_k / total), an order whose share is under its
 * minimum quantity gets 0, and the units left over go one order at a time in
 * arrival order (never below an order's minimum quantity). stack[k].accepted
 * holds the cap while it is worked out and is 0 again on return.
 */
static void pro_rata(walker *w, market_stack_entry *stack, size_t n, int64_t rank, int64_t volume)
{
    size_t a = 0;
    while (a < n && w[a].rank != rank) {
        a++;
    }
    size_t b = a;
    int64_t total = 0;
    while (b < n && w[b].rank == rank) {
        total += w[b].left;
        b++;
    }
    if (total <= volume) {
        return; /* the level is cleared in full: nothing to ration */
    }
    int64_t given = 0;
    for (size_t k = a; k < b; k++) {
        int64_t share = (int64_t)((u128)volume * (u128)w[k].left / (u128)total);
        if (share < w[k].need) {
            share = 0;
        }
        stack[k].accepted = share;
        given += share;
    }
    int64_t leftover = volume - given;
    /* rounding leaves fewer units than orders: one each, in arrival order */
    for (size_t k = a; k < b && leftover > 0; k++) {
        if (stack[k].accepted > 0 && stack[k].accepted < w[k].left) {
            stack[k].accepted++;
            leftover--;
        }
    }
    /* shares refused for a minimum quantity: to the next orders in arrival order */
    for (size_t k = a; k < b && leftover > 0; k++) {
        int64_t room = w[k].left - stack[k].accepted;
        int64_t add = room < leftover ? room : leftover;
        if (stack[k].accepted == 0 && add < w[k].need) {
            continue;
        }
        stack[k].accepted += add;
        leftover -= add;
    }
    for (size_t k = a; k < b; k++) {
        w[k].left = stack[k].accepted;
        stack[k].accepted = 0;
    }
    /* orders beyond the marginal level do not cross at the intersection */
}

/* The unconstrained intersection of the stacks, step by step (used when a
 * side's total quantity overflows, so that it has no running totals);
 * with pro rata, caps the marginal rank of each side to the volume traded
 * there. */
static int64_t intersect_by_steps(walker *buys, market_stack_entry *bids, size_t nb, walker *sells,
                                  market_stack_entry *offers, size_t ns, int with_pro_rata)
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
    if (with_pro_rata && volume > 0) {
        pro_rata(buys, bids, nb, bid_margin, at_bid_margin);
        pro_rata(sells, offers, ns, sell_margin, at_sell_margin);
    }
    return volume;
}

/* The total quantity of entries 0 .. i - 1 of a side (totals: see materialise). */
static int64_t total_before(const walker *w, const int64_t *totals, size_t i)
{
    size_t block = i / TOTAL_BLOCK;
    int64_t total = block > 0 ? totals[block - 1] : 0;
    for (size_t k = block * TOTAL_BLOCK; k < i; k++) {
        total += w[k].left;
    }
    return total;
}

/* The number of a side's first entries whose quantities add up to at most
 * x: the index of the entry that trades unit x of the side's volume (n if
 * the side has no unit x). */
static size_t serving(const walker *w, const int64_t *totals, size_t n, int64_t x)
{
    size_t lo = 0, hi = (n + TOTAL_BLOCK - 1) / TOTAL_BLOCK;
    while (lo < hi) { /* the first block whose running total exceeds x */
        size_t mid = lo + (hi - lo) / 2;
        if (totals[mid] <= x) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    size_t i = lo * TOTAL_BLOCK;
    int64_t total = lo > 0 ? totals[lo - 1] : 0;
    while (i < n && total + w[i].left <= x) {
        total += w[i].left;
        i++;
    }
    return i;
}

/* The first entry with the rank of entry last (equal ranks are adjacent). */
static size_t rank_start(const walker *w, size_t last)
{
    size_t lo = 0, hi = last;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w[mid].rank != w[last].rank) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/*
 * The same intersection as intersect_by_steps, found by bisection on the
 * running totals. The steps pair unit x of the bid stack with unit x of
 * the offer stack and stop at the first x where a side is used up or the
 * bid trading unit x ranks below the offer trading it; that condition only
 * turns from false to true as x grows (bids descend, offers ascend), so the
 * volume is the least x where it holds. The stepping loop took 2.6 ms of
 * 10^6 orders, mostly mispredicted branches (which side advances is a coin
 * toss); this takes a few microseconds.
 */
static int64_t intersect(walker *buys, market_stack_entry *bids, const int64_t *totals_buy,
                         size_t nb, walker *sells, market_stack_entry *offers,
                         const int64_t *totals_sell, size_t ns, int with_pro_rata)
{
    if (nb == 0 || ns == 0) {
        return 0;
    }
    int64_t all_buy = totals_buy[(nb - 1) / TOTAL_BLOCK];
    int64_t all_sell = totals_sell[(ns - 1) / TOTAL_BLOCK];
    int64_t lo = 0, hi = all_buy < all_sell ? all_buy : all_sell;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        size_t i = serving(buys, totals_buy, nb, mid), j = serving(sells, totals_sell, ns, mid);
        if (i >= nb || j >= ns || buys[i].rank < sells[j].rank) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    int64_t volume = lo;
    if (with_pro_rata && volume > 0) {
        /* the marginal orders trade the last unit; the volume traded at their
         * rank is what the steps added up since that rank began */
        size_t i = serving(buys, totals_buy, nb, volume - 1);
        size_t j = serving(sells, totals_sell, ns, volume - 1);
        int64_t at_bid_margin = volume - total_before(buys, totals_buy, rank_start(buys, i));
        int64_t at_sell_margin = volume - total_before(sells, totals_sell, rank_start(sells, j));
        pro_rata(buys, bids, nb, buys[i].rank, at_bid_margin);
        pro_rata(sells, offers, ns, sells[j].rank, at_sell_margin);
    }
    return volume;
}

/*
 * Notes the accepted orders among the first n of a stack (keys: its sort
 * keys) by visit number t: the accepted volume goes to volumes[t] (the
 * needs array, read for the last time in materialise: 8 bytes by t, so the
 * random writes stay within the last-level cache, unlike the 32-byte
 * records), and bit t of bits (zeroed first) is set.
 */
static void note_side(int64_t *volumes, uint64_t *bits, const market_stack_entry *stack,
                      const uint64_t *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (stack[i].accepted != 0) {
            size_t t = keys[i] & INDEX_MASK;
            volumes[t] = stack[i].accepted;
            bits[t >> 6] |= UINT64_C(1) << (t & 63);
        }
    }
}

/* Iterates the set bits of a bitmap in increasing order. */
typedef struct bit_cursor {
    const uint64_t *words;
    size_t n_words, word;
    uint64_t rest; /* bits of words[word] not yet returned */
} bit_cursor;

/* The next set bit, or SIZE_MAX at the end. */
static size_t bit_cursor_next(bit_cursor *c)
{
    while (c->rest == 0) {
        if (++c->word >= c->n_words) {
            c->word = c->n_words;
            return SIZE_MAX;
        }
        c->rest = c->words[c->word];
    }
    size_t bit = (size_t)__builtin_ctzll(c->rest);
    c->rest &= c->rest - 1;
    return c->word * 64 + bit;
}

/* accepted orders whose nodes are fetched ahead in the apply pass */
#define NODES_AHEAD 8

static void prefetch_node(const market *m, const uint32_t *slots, size_t t)
{
    if (t != SIZE_MAX) {
        const market__order *o = market__node(m, slots[t]);
        __builtin_prefetch(o, 1);
        __builtin_prefetch((const char *)(o + 1) - 1, 1);
    }
}

/* A scratch buffer of size bytes aligned to a cache line, or NULL. */
static void *scratch_aligned(market *m, int which, size_t size)
{
    char *b = market__scratch_buffer(m, which, size + 63);
    return b == NULL ? NULL : b + ((64 - ((uintptr_t)b & 63)) & 63);
}

/* The scratch buffers for an auction of up to n orders (kept by the market
 * between auctions; see market_auction_reserve). */
typedef struct scratch_set {
    record *records;
    int64_t *needs;
    uint32_t *slots;
    uint64_t *keys; /* ranks then keys: offers at [0, cap_sell), bids from cap_sell;
                     * the second half (from n + 1) is the sort's spare, holding
                     * visit numbers until then */
    uint32_t *count;
    uint64_t *bits;
    walker *walk;
    market_stack_entry *stacks;
    uint32_t *next;
    int64_t *totals; /* running totals by block: bids, then offers from nb / TOTAL_BLOCK + 1 */
} scratch_set;

static int scratch_get(market *m, size_t n, scratch_set *b)
{
    b->records = scratch_aligned(m, SCRATCH_RECORDS, (n + 1) * sizeof(record));
    b->needs = market__scratch_buffer(m, SCRATCH_NEEDS, (n + 1) * sizeof(int64_t));
    b->slots = market__scratch_buffer(m, SCRATCH_SLOTS, (n + 1) * sizeof(uint32_t));
    b->keys = market__scratch_buffer(m, SCRATCH_KEYS, 2 * (n + 1) * sizeof(uint64_t));
    b->count = market__scratch_buffer(
        m, SCRATCH_COUNT, (size_t)MAX_PASSES * ((size_t)1 << DIGIT_BITS) * sizeof(uint32_t));
    b->bits = market__scratch_buffer(m, SCRATCH_BITS, (n / 64 + 1) * sizeof(uint64_t));
    b->walk = scratch_aligned(m, SCRATCH_WALK, (n + 1) * sizeof(walker));
    b->stacks = scratch_aligned(m, SCRATCH_STACKS, (n + 1) * sizeof(market_stack_entry));
    b->next = market__scratch_buffer(m, SCRATCH_NEXT, (n + 1) * sizeof(uint32_t));
    b->totals = market__scratch_buffer(m, SCRATCH_TOTALS, (n / TOTAL_BLOCK + 2) * sizeof(int64_t));
    int ok = b->records && b->needs && b->slots && b->keys && b->count && b->bits && b->walk &&
             b->stacks && b->next && b->totals;
    return ok ? ANM_OK : ANM_ENOMEM;
}

/* Grows a scratch array of elements of size `size` to hold at least n + 1
 * (contents kept); ANM_ENOMEM leaves *array and *cap as they were. */
static int reserve(market *m, int which, void **array, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) {
        return ANM_OK;
    }
    size_t grown = *cap * 2 > n + 1 ? *cap * 2 : n + 1;
    void *a = market__scratch_buffer(m, which, grown * size);
    if (a == NULL) {
        return ANM_ENOMEM;
    }
    *array = a;
    *cap = grown;
    return ANM_OK;
}

int market_auction_run(market *m, int64_t now_ms, market_product product,
                       const market_auction_config *config, market_auction_result *out)
{
    if (m == NULL || config == NULL || out == NULL) {
        return ANM_EINVAL;
    }
    int rc = ANM_ENOMEM;
    market_auction_result *res = out;
    *res = (market_auction_result){.product = product, .limiting_constraint = -1};
    market__product *p = market__product_get(m, product, 0);
    if (p == NULL) {
        return ANM_OK;
    }
    size_t n = p->resting;
    size_t bit_words = n / 64 + 1;
    scratch_set buffers;
    if (scratch_get(m, n, &buffers) != ANM_OK) {
        goto fail;
    }
    record *records = buffers.records;
    int64_t *needs = buffers.needs;
    uint64_t *keys = buffers.keys;
    uint32_t *count = buffers.count;
    uint64_t *accepted_bits = buffers.bits;
    memset(accepted_bits, 0, bit_words * sizeof *accepted_bits);
    uint64_t *keys_tmp = keys + n + 1;
    size_t cap_sell = p->sides[MARKET__SELL].resting;
    gathering g = {.now_ms = now_ms,
                   .records = records,
                   .needs = needs,
                   .slots = buffers.slots,
                   .ranks = {keys, keys + cap_sell},
                   .numbers = {(uint32_t *)keys_tmp, (uint32_t *)(keys_tmp + cap_sell)},
                   .lo = {INT64_MAX, INT64_MAX},
                   .hi = {INT64_MIN, INT64_MIN}};
    gather_product(m, p, &g);
    size_t ns = g.n[MARKET__SELL], nb = g.n[MARKET__BUY];

    uint64_t *sorted[2];
    rc = radix_sort(keys, g.numbers[MARKET__SELL], keys_tmp, ns, 0, g.lo[MARKET__SELL],
                    g.hi[MARKET__SELL], count, &sorted[MARKET__SELL]);
    if (rc == ANM_OK) {
        rc = radix_sort(keys + cap_sell, g.numbers[MARKET__BUY], keys_tmp + cap_sell, nb, 1,
                        g.lo[MARKET__BUY], g.hi[MARKET__BUY], count, &sorted[MARKET__BUY]);
    }
    if (rc != ANM_OK) {
        goto fail;
    }
    rc = ANM_ENOMEM;
    walker *walk = buffers.walk;
    market_stack_entry *stacks = buffers.stacks;
    uint32_t *next = buffers.next;
    market_stack_entry *bids = stacks, *offers = stacks + nb;
    walker *buys = walk, *sells = walk + nb;
    int64_t *totals_buy = buffers.totals, *totals_sell = buffers.totals + nb / TOTAL_BLOCK + 1;
    int totals_ok = materialise(records, needs, sorted[MARKET__BUY], nb, 1, g.hi[MARKET__BUY], bids,
                                buys, totals_buy);
    totals_ok &= materialise(records, needs, sorted[MARKET__SELL], ns, 0, g.lo[MARKET__SELL],
                             offers, sells, totals_sell);
    res->n_bids = nb;
    res->n_offers = ns;
    res->bids = bids;
    res->offers = offers;
    res->unconstrained_volume =
        totals_ok ? intersect(buys, bids, totals_buy, nb, sells, offers, totals_sell, ns,
                              config->pro_rata)
                  : intersect_by_steps(buys, bids, nb, sells, offers, ns, config->pro_rata);

    /* the feasibility walk: bids in merit order, each over the offers still
     * open (a linked list in merit order), trades written as they are made */
    size_t cap_trades = 0, n_trades = 0, cap_log = 0, n_log = 0;
    market_trade *trades = NULL;
    fill *log = NULL;
    /* room for a fill per order (more is rare: grown on demand); pages never
     * written are never touched */
    if (reserve(m, SCRATCH_TRADES, (void **)&trades, &cap_trades, n, sizeof *trades) != ANM_OK) {
        goto fail;
    }
    for (size_t j = 0; j < ns; j++) {
        next[j] = j + 1 < ns ? (uint32_t)(j + 1) : END;
    }
    next[ns] = ns ? 0 : END; /* sentinel head */
    double initial_used[MARKET_MAX_CONSTRAINTS];
    memcpy(initial_used, p->used_mw, sizeof initial_used);
    int64_t max_offer_rank = INT64_MIN;
    size_t setter = SIZE_MAX; /* the accepted offer latest in merit order */
    size_t bids_walked = 0;   /* every accepted bid is below this index */
    int64_t accepted_volume = 0;
    double saved_used[MARKET_MAX_CONSTRAINTS];
    size_t n_constraints = p->statement != NULL ? market_statement_constraints(p->statement) : 0;
    for (size_t i = 0; i < nb && p->statement != NULL; i++) {
        walker *b = &buys[i];
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
        if (b->need > 1) {
            /* only a bid with a minimum can be rolled back */
            memcpy(saved_used, p->used_mw, n_constraints * sizeof *saved_used);
        }
        size_t trades_start = n_trades;
        n_log = 0;
        int64_t want = b->left;
        size_t skipped = 0;
        uint32_t prev = (uint32_t)ns;
        for (uint32_t cur = first; cur != END && want > 0 && skipped < MARKET_SCAN_LIMIT;) {
            walker *s = &sells[cur];
            if (s->rank > b->rank) {
                break;
            }
            int64_t sneed = offers[cur].accepted == 0 ? s->need : 0;
            int64_t chunk = want < s->left ? want : s->left;
            if (reserve(m, SCRATCH_LOG, (void **)&log, &cap_log, n_log, sizeof *log) != ANM_OK ||
                reserve(m, SCRATCH_TRADES, (void **)&trades, &cap_trades, n_trades,
                        sizeof *trades) != ANM_OK) {
                goto fail_walked;
            }
            int limiting = -1;
            int64_t f = 0;
            if ((m->config.self_trade_allowed || s->participant != b->participant) &&
                chunk >= sneed) {
                f = market_statement_take(p->statement, p->used_mw, s->der, b->der, chunk, sneed,
                                          &limiting);
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
            offers[cur].accepted += f;
            want -= f;
            log[n_log++] =
                (fill){.offer = cur, .prev = prev, .unlinked = s->left == 0, .volume = f};
            /* pay-as-bid prices; uniform prices are set once the price is known */
            /* written in place, field by field (a trade built on the stack and
             * copied out stalled on store forwarding; a memset of the whole
             * trade became a slow rep stos), then its two padding gaps zeroed:
             * results compare bytewise */
            market_trade *t = &trades[n_trades];
            t->trade_id = m->next_trade_id + n_trades;
            t->buy_order_id = bids[i].order_id;
            t->sell_order_id = offers[cur].order_id;
            t->buyer = b->participant;
            t->seller = s->participant;
            t->buy_der = b->der;
            t->sell_der = s->der;
            t->product = product;
            t->kind = MARKET_TRADE_AUCTION;
            t->volume = f;
            t->buyer_price_ticks = bids[i].price_ticks;
            t->buyer_availability_ticks = bids[i].availability_ticks;
            t->seller_price_ticks = offers[cur].price_ticks;
            t->seller_availability_ticks = offers[cur].availability_ticks;
            t->executed_ms = now_ms;
            zero_trade_padding(t);
            n_trades++;
            if (s->left == 0) {
                next[prev] = next[cur];
                cur = next[cur];
            } else {
                prev = cur;
                cur = next[cur];
            }
        }
        int64_t got = b->left - want;
        if (got > 0 && got < b->need) {
            /* the bid's minimum quantity does not fit: undo its fills, newest first */
            for (size_t k = n_log; k-- > 0;) {
                sells[log[k].offer].left += log[k].volume;
                offers[log[k].offer].accepted -= log[k].volume;
                if (log[k].unlinked) {
                    next[log[k].prev] = log[k].offer;
                }
            }
            n_trades = trades_start;
            memcpy(p->used_mw, saved_used, n_constraints * sizeof *saved_used);
            continue;
        }
        bids[i].accepted = got;
        b->left = want;
        accepted_volume += got;
        bids_walked = i + 1;
        for (size_t k = 0; k < n_log; k++) {
            size_t j = log[k].offer;
            max_offer_rank = sells[j].rank > max_offer_rank ? sells[j].rank : max_offer_rank;
            setter = setter == SIZE_MAX || j > setter ? j : setter;
        }
    }

    /* price-setting order: the highest-ranked accepted offer (latest in merit order) */
    if (setter != SIZE_MAX) {
        res->has_price = 1;
        res->clearing_rank = offers[setter].rank;
        res->clearing_price_ticks = offers[setter].price_ticks;
        res->clearing_availability_ticks = offers[setter].availability_ticks;
        res->price_setting_order_id = offers[setter].order_id;
    }
    if (config->pricing == MARKET_UNIFORM || m->config.on_trade != NULL) {
        for (size_t k = 0; k < n_trades; k++) {
            market_trade *t = &trades[k];
            if (config->pricing == MARKET_UNIFORM) {
                t->buyer_price_ticks = t->seller_price_ticks = res->clearing_price_ticks;
                t->buyer_availability_ticks = t->seller_availability_ticks =
                    res->clearing_availability_ticks;
            }
            market__emit(m, t); /* the same trade id as set in the walk; calls on_trade */
        }
    } else {
        m->next_trade_id += n_trades; /* what market__emit would have done */
    }
    res->trades = trades;
    res->n_trades = n_trades;
    res->accepted_volume = accepted_volume;

    /* the accepted volumes by visit number: only the walked prefix of each
     * stack is read */
    note_side(needs, accepted_bits, offers, sorted[MARKET__SELL],
              setter == SIZE_MAX ? 0 : setter + 1);
    note_side(needs, accepted_bits, bids, sorted[MARKET__BUY], bids_walked);
    /* apply the fills to the book in visit order (so filled nodes are
     * released in the order a walk over the book would release them),
     * touching only the accepted orders' nodes, fetched a few ahead */
    bit_cursor lead = {accepted_bits, bit_words, 0, accepted_bits[0]};
    bit_cursor at = lead;
    for (int k = 0; k < NODES_AHEAD; k++) {
        prefetch_node(m, buffers.slots, bit_cursor_next(&lead));
    }
    for (size_t t = bit_cursor_next(&at); t != SIZE_MAX; t = bit_cursor_next(&at)) {
        prefetch_node(m, buffers.slots, bit_cursor_next(&lead));
        uint32_t slot = buffers.slots[t];
        market__order *o = market__node(m, slot);
        o->filled += needs[t]; /* the accepted volume (note_side) */
        if (o->filled == o->quantity) {
            market__unlink(m, o);
            market__release(m, slot);
        }
    }
    return ANM_OK;

fail_walked:
    memcpy(p->used_mw, initial_used, sizeof initial_used);
fail:
    /* the book is untouched until the fills are applied, which cannot fail */
    *res = (market_auction_result){.product = product, .limiting_constraint = -1};
    return rc;
}

int market_auction_reserve(market *m, size_t orders, size_t trades)
{
    if (m == NULL || orders >= MARKET__MAX_SLOTS) {
        return ANM_EINVAL;
    }
    scratch_set b;
    if (scratch_get(m, orders, &b) != ANM_OK ||
        market__scratch_buffer(m, SCRATCH_TRADES, (trades + 1) * sizeof(market_trade)) == NULL ||
        market__scratch_buffer(m, SCRATCH_LOG, 1024 * sizeof(fill)) == NULL) {
        return ANM_ENOMEM;
    }
    /* write every page now, so that the first auction takes no page faults */
    for (size_t i = 0; i < sizeof m->scratch.buffers / sizeof m->scratch.buffers[0]; i++) {
        if (m->scratch.buffers[i] != NULL) {
            memset(m->scratch.buffers[i], 0, m->scratch.sizes[i]);
        }
    }
    return ANM_OK;
}
