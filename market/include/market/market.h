/*
 * market.h: the in-process market core: order entry with validation and
 * idempotent resubmission, one book per product, continuous matching with a
 * feasibility check, and (auction.h) the gate-closure auction.
 *
 * Everything is deterministic: no clock is read (every call takes the
 * engine time now_ms), no randomness, no threads. The same sequence of
 * calls with the same arguments gives the same order ids, trades and
 * results, which the journal and replay rely on. Not thread-safe: one
 * market per thread (a service serialises calls in its event loop).
 *
 * Order ids: (arrival_sequence << 24) | pool slot, so ids increase with
 * arrival and look-up is O(1); at most 2^24 - 1 orders rest at once.
 */
#ifndef MARKET_MARKET_H
#define MARKET_MARKET_H

#include "market/registry.h"
#include "market/statement.h"
#include "market/types.h"

#include <stddef.h>
#include <stdint.h>

typedef struct market market;

typedef enum market_mode {
    MARKET_MODE_CONTINUOUS = 0, /* incoming orders match at once */
    MARKET_MODE_CALL = 1        /* orders rest until market_auction_run */
} market_mode;

/* Gate closure of a product (engine ms): orders are refused from then on. */
typedef int64_t (*market_gate_closure_fn)(void *context, market_product product);
/* Receives each trade as it is made (borrowed; copy what you keep). */
typedef void (*market_trade_fn)(void *context, const market_trade *trade);

typedef struct market_config {
    const market_registry *registry;       /* borrowed, required, must outlive the market */
    market_gate_closure_fn gate_closure;   /* NULL: period_start - gate_closure_offset_ms */
    void *gate_closure_context;
    int64_t gate_closure_offset_ms;        /* used when gate_closure is NULL; e.g. 3600000 */
    market_trade_fn on_trade;              /* may be NULL */
    void *on_trade_context;
    market_mode initial_mode;              /* mode of a product when it first appears */
    int32_t weighting_permille;            /* utilisation weighting w in the rank (types.h); 0: 1000 */
    int self_trade_allowed;                /* 0: an order never matches its own participant's */
} market_config;

/* New market. NULL on ENOMEM or a config without registry. */
market *market_new(const market_config *config);
void market_destroy(market **m);

/* The answer to every request: accepted, or a reject with reason and text. */
typedef struct market_result {
    market_reject reason;   /* MARKET_ACCEPTED or the reject */
    char text[160];         /* "" when accepted; else e.g. "price 1000.01 GBP/MWh above ceiling 1000.00 GBP/MWh of zone 3" */
    uint64_t order_id;      /* the order (also on idempotent resubmission) */
    int resubmission;       /* 1: same client id and content as an earlier order: nothing done */
    int64_t filled;         /* volume traded by this call (0.001 MW) */
    int64_t resting;        /* volume left in the book after this call */
    size_t trades;          /* trades made by this call */
} market_result;

/*
 * Enters an order at engine time now_ms: validates, then (continuous mode)
 * matches in price-time priority with the feasibility check, and rests any
 * remainder. Returns ANM_OK with r->reason telling accept or reject, or
 * ANM_EINVAL on NULL arguments. Trades go to config.on_trade.
 */
int market_submit(market *m, int64_t now_ms, const market_order_spec *spec, market_result *r);

/* Cancels a resting order of participant. Rejects: unknown_order, not_owner. */
int market_cancel(market *m, int64_t now_ms, uint32_t participant, uint64_t order_id,
                  market_result *r);

/*
 * Replaces a resting order by spec (a new order with a new client id: it
 * loses time priority). Atomic: if spec is rejected, the old order stays.
 */
int market_replace(market *m, int64_t now_ms, uint64_t order_id, const market_order_spec *spec,
                   market_result *r);

/* A resting order as the book holds it. */
typedef struct market_order_view {
    uint64_t order_id;
    uint64_t client_order_id;
    market_order_spec spec;
    int64_t filled;
    int64_t rank;
} market_order_view;

/* 1 and *out filled if order_id rests in the book, else 0. */
int market_order_get(const market *m, uint64_t order_id, market_order_view *out);

/* Sets the statement of a product (takes ownership; replaces and frees the
 * previous one, and resets the accumulated trade effects: a re-issued
 * statement already includes accepted trades). Without one no trade is made. */
int market_set_statement(market *m, market_product product, market_statement *statement);

/* The statement of a product (borrowed, valid until it is replaced), or NULL. */
const market_statement *market_get_statement(const market *m, market_product product);

/* Accumulated flow effect used_c (MW) of trades on product since its statement; 0 if none. */
double market_used_mw(const market *m, market_product product, size_t c);

/* Sets the mode of a product (creating its book if needed). */
int market_set_mode(market *m, market_product product, market_mode mode);

/* Removes resting orders of product whose validity ended (<= now_ms); returns how many. */
size_t market_expire(market *m, int64_t now_ms, market_product product);

/* The products the market knows, in creation order: copies up to max into out
 * (may be NULL with max 0) and returns how many there are. */
size_t market_product_list(const market *m, market_product *out, size_t max);

/* Resting orders and volumes of a product. */
size_t market_resting_orders(const market *m, market_product product);

/* Best (highest) buy and best (lowest) sell rank of a product; 0 if that side is empty. */
int market_best_rank(const market *m, market_product product, int buy_side, int64_t *rank);

/*
 * Sizes the order pool and the client-id index once for `orders` orders
 * (client ids remembered, resting orders), so that order entry up to that
 * count allocates nothing and takes no page faults: every page is written
 * here (at most about 88 + 55 bytes an order: 6 MB pool blocks, 32-byte
 * client records in 2 MB blocks and an index of 8-byte references; about
 * 144 MB for 10^6). A running service calls it at start-up
 * (`anm-market serve --reserve-orders N`). Beyond `orders` the market grows
 * as without it. Changes no order id, trade or result. ANM_OK, ANM_EINVAL
 * (m NULL) or ANM_ENOMEM (what was reserved so far stays).
 */
int market_reserve(market *m, size_t orders);

/* Bytes per resting order: sizeof the order node and the worst-case client-id index share. */
size_t market_order_node_bytes(void);
size_t market_index_bytes_per_order_max(void);

/* Bytes the market holds for its books (pool blocks, client-id index, price
 * levels, product tables) and, separately, for auction scratch buffers
 * (kept between auctions, about 250 bytes per order of the largest auction). */
typedef struct market_memory {
    size_t book_bytes;
    size_t scratch_bytes;
    size_t resting_orders;
} market_memory;
void market_memory_usage(const market *m, market_memory *out);

/*
 * Snapshots: market_snapshot_save writes the whole state of the books into
 * *out (new, free()), and market_snapshot_load restores it into a fresh
 * market made with the same config and registry. The restored market then
 * behaves exactly like the original: same resting orders, time priority,
 * statements and their accumulated trade effects, the same ids for future
 * orders and trades, and idempotent resubmission of any earlier client id.
 * Save: ANM_OK, ANM_EINVAL, ANM_ENOMEM. Load: ANM_OK, ANM_EINVAL (not a
 * fresh market), ANM_EPARSE (bad or cut data; the market must then be
 * destroyed), ANM_ENOMEM.
 */
int market_snapshot_save(const market *m, uint8_t **out, size_t *size);
int market_snapshot_load(market *m, const uint8_t *data, size_t size);

#endif
