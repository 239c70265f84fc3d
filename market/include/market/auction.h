/*
 * auction.h: the gate-closure auction of one product (docs/market.md,
 * "Gate-closure auction").
 *
 * Clears every resting order of the product (call-mode and continuous
 * book): merit-order stacks by rank (offers ascending, bids and
 * requirements descending; ties by arrival), found with a stable radix sort
 * on the integer rank (a counting sort per 11-bit digit, no comparison
 * sort); the unconstrained intersection; then a greedy merit-order walk in
 * which every pair is cut to its feasible volume. Filled orders leave the
 * book; remainders stay (in the mode set afterwards by the caller).
 */
#ifndef MARKET_AUCTION_H
#define MARKET_AUCTION_H

#include "market/market.h"

typedef enum market_pricing {
    MARKET_PAY_AS_BID = 0, /* each order settles at its own prices */
    MARKET_UNIFORM = 1     /* every trade at the prices of the highest accepted offer */
} market_pricing;

typedef struct market_auction_config {
    market_pricing pricing;
    int pro_rata;          /* 1: split the marginal volume pro rata at the marginal rank */
} market_auction_config;

/* One row of a merit-order stack, in merit order. */
typedef struct market_stack_entry {
    uint64_t order_id;
    int64_t rank;
    int32_t price_ticks, availability_ticks;
    int64_t quantity;  /* remaining when the auction started */
    int64_t accepted;  /* volume accepted in this auction */
} market_stack_entry;

typedef struct market_auction_result {
    market_product product;
    size_t n_bids, n_offers;     /* bids and requirements; offers */
    market_stack_entry *bids;    /* descending rank (borrowed) */
    market_stack_entry *offers;  /* ascending rank (borrowed) */
    int64_t unconstrained_volume; /* where the stacks intersect, ignoring the network */
    int64_t accepted_volume;      /* traded after the feasibility cut */
    int has_price;                /* 0 when nothing traded */
    int64_t clearing_rank;        /* rank of the highest accepted offer */
    int32_t clearing_price_ticks, clearing_availability_ticks;
    uint64_t price_setting_order_id;
    int limiting_constraint;      /* first constraint that cut a pair, or -1 */
    size_t n_trades;
    market_trade *trades;         /* in execution order; also sent to config.on_trade */
} market_auction_result;

/*
 * Runs the auction of product at engine time now_ms (expired orders are
 * dropped first) and fills *out. The arrays out points to (stacks, trades)
 * are borrowed: owned by the market, reused by the next auction, valid until
 * the next market_auction_run or market_destroy (so a service clearing
 * 10^6 orders allocates nothing after its first auction). ANM_OK,
 * ANM_EINVAL, ANM_ENOMEM, ANM_ERANGE (ranks of one side spread over more
 * than 2^40 units: a floor/ceiling that wide is refused).
 */
int market_auction_run(market *m, int64_t now_ms, market_product product,
                       const market_auction_config *config, market_auction_result *out);

/*
 * Sizes the market's auction scratch for auctions of up to `orders` resting
 * orders and `trades` trades, and writes every page of it once, so that the
 * first such auction allocates nothing and takes no page faults (about 130
 * bytes per order plus 96 per trade; docs/market.md, "How the auction spends
 * its time"). Optional: without it the first large auction pays for its
 * allocation. ANM_OK, ANM_EINVAL (NULL market, orders above the pool limit),
 * ANM_ENOMEM.
 */
int market_auction_reserve(market *m, size_t orders, size_t trades);

#endif
