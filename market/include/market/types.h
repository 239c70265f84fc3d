/*
 * types.h: value types of the market core: fixed-point units, order sides,
 * reject reasons, order specifications and trades.
 *
 * Units (all integers, so ties are exact and the auction can count ticks):
 *   price          ticks of 0.01 GBP/MWh (utilisation) or 0.01 GBP/MW/h
 *                  (availability), int32
 *   quantity       units of 0.001 MW (1 kW), int64
 *   time           engine-clock UTC milliseconds (engine/clock.h), int64
 *   rank           the merit-order ("total") price:
 *                  (price_ticks * w + availability_ticks * 1000) / gcd(w, 1000)
 *                  with w the weighting in permille; with the default w = 1000
 *                  it is price_ticks + availability_ticks, in 0.01 GBP
 *                  (see docs/market.md)
 */
#ifndef MARKET_TYPES_H
#define MARKET_TYPES_H

#include <stdint.h>

#define MARKET_PRICE_TICKS_PER_GBP 100
#define MARKET_QUANTITY_UNITS_PER_MW 1000
#define MARKET_NO_DER UINT32_MAX /* a requirement concerns no DER */
#define MARKET_MAX_CONSTRAINTS 64 /* binding constraints per statement */
#define MARKET_SCAN_LIMIT 64      /* skipped counter-orders per incoming order or auction bid */

/* A product: one zone and one settlement period (identified by its UTC start). */
typedef struct market_product {
    uint32_t zone;
    int64_t period_start_ms;
} market_product;

typedef enum market_side {
    MARKET_OFFER = 0,      /* sells relief: turns generation down / demand up at a DER */
    MARKET_BID = 1,        /* buys headroom: exports more at a DER */
    MARKET_REQUIREMENT = 2 /* DSO/NESO buys relief at a ceiling price (no DER) */
} market_side;

/* 1 for the buy side of the book (bids and requirements), 0 for offers. */
static inline int market_side_is_buy(market_side side) { return side != MARKET_OFFER; }

/* Reject reasons; each has a distinct code and name (market_reject_name). */
typedef enum market_reject {
    MARKET_ACCEPTED = 0,
    MARKET_REJECT_MALFORMED = 1,           /* bad side, quantity <= 0, min > quantity, ... */
    MARKET_REJECT_UNKNOWN_PARTICIPANT = 2,
    MARKET_REJECT_UNKNOWN_DER = 3,
    MARKET_REJECT_UNAUTHORISED_DER = 4,    /* participant may not trade for this DER */
    MARKET_REJECT_UNAUTHORISED_SIDE = 5,   /* requirement from a non system operator */
    MARKET_REJECT_UNKNOWN_ZONE = 6,
    MARKET_REJECT_DER_NOT_IN_ZONE = 7,
    MARKET_REJECT_ABOVE_CAPACITY = 8,      /* offer quantity above the DER's capacity */
    MARKET_REJECT_ABOVE_CURTAILMENT = 9,   /* bid quantity above the DER's maximum curtailment */
    MARKET_REJECT_PRICE_OUT_OF_RANGE = 10, /* outside the zone's floor..ceiling */
    MARKET_REJECT_GATE_CLOSED = 11,        /* now >= gate closure of the product */
    MARKET_REJECT_EXPIRED = 12,            /* valid_until_ms <= now */
    MARKET_REJECT_DUPLICATE_ID = 13,       /* client order id reused with other content */
    MARKET_REJECT_UNKNOWN_ORDER = 14,      /* cancel/replace of an order not resting */
    MARKET_REJECT_NOT_OWNER = 15,          /* cancel/replace of another participant's order */
    MARKET_REJECT_BOOK_FULL = 16,          /* resting-order limit or out of memory */
    MARKET_REJECT_COUNT_ = 17
} market_reject;

/* Stable snake_case name of a reason ("price_out_of_range"); never NULL. */
const char *market_reject_name(market_reject reason);

/* What a participant sends to enter an order. */
typedef struct market_order_spec {
    uint64_t client_order_id; /* participant's id; resubmission is idempotent */
    uint32_t participant;
    uint32_t der;             /* MARKET_NO_DER for requirements */
    market_product product;
    market_side side;
    int32_t price_ticks;        /* utilisation price, 0.01 GBP/MWh */
    int32_t availability_ticks; /* availability price, 0.01 GBP/MW/h, >= 0 */
    int64_t quantity;           /* 0.001 MW, > 0 */
    int64_t min_quantity;       /* 0..quantity; == quantity: fill-or-kill; 0 or 1: divisible */
    int64_t valid_until_ms;     /* order lapses at this engine time; INT64_MAX: never */
} market_order_spec;

typedef enum market_trade_kind {
    MARKET_TRADE_CONTINUOUS = 0,
    MARKET_TRADE_AUCTION = 1
} market_trade_kind;

/*
 * One accepted trade. The seller (offer) delivers volume of relief at its
 * DER; the buyer (bid) gets the same volume of extra export at its DER, or
 * (requirement) the relief itself. Each side settles at its own prices.
 */
typedef struct market_trade {
    uint64_t trade_id;          /* 1, 2, ... per market, in execution order */
    uint64_t buy_order_id;
    uint64_t sell_order_id;
    uint32_t buyer, seller;     /* participants */
    uint32_t buy_der, sell_der; /* buy_der MARKET_NO_DER for requirements */
    market_product product;
    market_trade_kind kind;
    int64_t volume;             /* 0.001 MW, > 0 */
    int32_t buyer_price_ticks, buyer_availability_ticks;   /* what the buyer pays */
    int32_t seller_price_ticks, seller_availability_ticks; /* what the seller receives */
    int64_t executed_ms;        /* engine time of the match */
} market_trade;

#endif
