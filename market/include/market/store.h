/*
 * store.h: market results in PostgreSQL (tables of sql/0004_market.sql,
 * documented in docs/database.md, "Market tables").
 *
 * Every write is keyed by the market's own ids (order id, trade id) or by
 * an auction id the caller keeps stable under replay (the service uses the
 * journal position of the auction event), so writing the same thing twice
 * stores it once: a journal replay never duplicates a row. SQL goes through
 * parameters or binary COPY only (engine/db.h). Each call is one
 * transaction of its own (call it outside a transaction); on failure it is
 * rolled back and nothing is stored.
 *
 * Returns ANM_OK, ANM_EINVAL, ANM_ENOMEM, ANM_EDB (message in
 * anm_db_error_message) or ANM_EAGAIN (connection lost: reconnect, retry).
 */
#ifndef MARKET_STORE_H
#define MARKET_STORE_H

#include "engine/db.h"
#include "market/auction.h"
#include "market/types.h"

#include <stddef.h>
#include <stdint.h>

/* An accepted order as stored. */
typedef struct market_stored_order {
    uint64_t order_id;
    int64_t submitted_ms;  /* engine time of acceptance */
    market_order_spec spec;
} market_stored_order;

/*
 * Stores orders (COPY into a staging table, then INSERT ... ON CONFLICT
 * (order_id) DO NOTHING). *inserted (may be NULL) gets how many were new.
 */
int market_store_orders(anm_db *db, const market_stored_order *orders, size_t n,
                        long long *inserted);

/*
 * Stores trades (continuous ones: auction_id 0; auction ones: the auction's
 * id, which must already be stored). Same idempotence, keyed by trade_id.
 */
int market_store_trades(anm_db *db, uint64_t auction_id, const market_trade *trades, size_t n,
                        long long *inserted);

/*
 * Stores one auction: its row (clearing price and volume), both full stacks
 * in merit order and its trades, in one transaction. If auction_id is
 * already stored nothing is written and *stored (may be NULL) is 0, else 1.
 * auction_id > 0; cleared_ms is the engine time of the auction.
 */
int market_store_auction(anm_db *db, uint64_t auction_id, int64_t cleared_ms,
                         const market_auction_config *config, const market_auction_result *result,
                         int *stored);

/*
 * Loads the trades of periods starting in [from_ms, to_ms), in trade id
 * order, into *out (new array of *n; free()). *out is NULL when *n is 0.
 */
int market_store_load_trades(anm_db *db, int64_t from_ms, int64_t to_ms, market_trade **out,
                             size_t *n);

#endif
