/*
 * store.c: market results in PostgreSQL. See store.h and docs/database.md.
 *
 * Bulk rows go through binary COPY; idempotence comes from the keys: orders
 * and trades are copied into a temporary staging table and moved with
 * INSERT ... SELECT ... ON CONFLICT DO NOTHING (COPY itself cannot skip a
 * duplicate); an auction's stacks are copied straight into their table,
 * only when the auction's own row was new.
 */
#include "market/store.h"

#include "engine/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t ms_to_us(int64_t ms) { return ms * 1000; }

static const char *side_name(market_side side)
{
    switch (side) {
    case MARKET_OFFER:
        return "offer";
    case MARKET_BID:
        return "bid";
    default:
        return "requirement";
    }
}

static int copy_text(anm_db_copy_buffer *b, const char *text)
{
    return anm_db_copy_text(b, text, strlen(text));
}

/* A nullable id: MARKET_NO_DER is NULL. */
static int copy_der(anm_db_copy_buffer *b, uint32_t der)
{
    return der == MARKET_NO_DER ? anm_db_copy_null(b) : anm_db_copy_int8(b, (int64_t)der);
}

/* Ends the open transaction: COMMIT after success, else ROLLBACK (returns rc). */
static int finish(anm_db *db, int rc)
{
    if (rc == ANM_OK) {
        return anm_db_commit(db);
    }
    int rb = anm_db_rollback(db);
    (void)rb; /* the first error is the one to report */
    return rc;
}

/* The staging table holds the uint64 client id as its int8 bit pattern (binary
 * COPY of numeric is not worth writing); the INSERT turns it back. */
static const char STAGE_ORDERS[] =
    "CREATE TEMP TABLE IF NOT EXISTS market_orders_stage (order_id bigint, client_bits bigint, "
    "participant bigint, der bigint, zone bigint, period_start timestamptz, side text, "
    "price_ticks integer, availability_ticks integer, quantity_kw bigint, "
    "min_quantity_kw bigint, valid_until timestamptz, submitted_at timestamptz) "
    "ON COMMIT DELETE ROWS";
static const char COPY_ORDERS[] =
    "COPY market_orders_stage (order_id, client_bits, participant, der, zone, period_start, "
    "side, price_ticks, availability_ticks, quantity_kw, min_quantity_kw, valid_until, "
    "submitted_at) FROM STDIN (FORMAT binary)";
static const char MOVE_ORDERS[] =
    "INSERT INTO market_orders SELECT order_id, "
    "CASE WHEN client_bits < 0 THEN client_bits::numeric + 18446744073709551616 "
    "ELSE client_bits::numeric END, participant, der, zone, period_start, side, price_ticks, "
    "availability_ticks, quantity_kw, min_quantity_kw, valid_until, submitted_at "
    "FROM market_orders_stage ORDER BY order_id ON CONFLICT (order_id) DO NOTHING";

int market_store_orders(anm_db *db, const market_stored_order *orders, size_t n,
                        long long *inserted)
{
    if (db == NULL || (orders == NULL && n > 0)) {
        return ANM_EINVAL;
    }
    if (inserted != NULL) {
        *inserted = 0;
    }
    if (n == 0) {
        return ANM_OK;
    }
    anm_db_copy_buffer *b = anm_db_copy_buffer_new();
    if (b == NULL) {
        return ANM_ENOMEM;
    }
    int rc = ANM_OK;
    for (size_t i = 0; i < n && rc == ANM_OK; i++) {
        const market_stored_order *o = &orders[i];
        int64_t client_bits;
        memcpy(&client_bits, &o->spec.client_order_id, sizeof client_bits);
        rc |= anm_db_copy_row(b, 13);
        rc |= anm_db_copy_int8(b, (int64_t)o->order_id);
        rc |= anm_db_copy_int8(b, client_bits);
        rc |= anm_db_copy_int8(b, (int64_t)o->spec.participant);
        rc |= copy_der(b, o->spec.der);
        rc |= anm_db_copy_int8(b, (int64_t)o->spec.product.zone);
        rc |= anm_db_copy_timestamptz(b, ms_to_us(o->spec.product.period_start_ms));
        rc |= copy_text(b, side_name(o->spec.side));
        rc |= anm_db_copy_int4(b, o->spec.price_ticks);
        rc |= anm_db_copy_int4(b, o->spec.availability_ticks);
        rc |= anm_db_copy_int8(b, o->spec.quantity);
        rc |= anm_db_copy_int8(b, o->spec.min_quantity);
        rc |= o->spec.valid_until_ms == INT64_MAX
                  ? anm_db_copy_null(b)
                  : anm_db_copy_timestamptz(b, ms_to_us(o->spec.valid_until_ms));
        rc |= anm_db_copy_timestamptz(b, ms_to_us(o->submitted_ms));
    }
    if (rc != ANM_OK) {
        rc = ANM_ENOMEM;
        goto free_buffer;
    }
    rc = anm_db_begin(db);
    if (rc != ANM_OK) {
        goto free_buffer;
    }
    rc = anm_db_exec(db, STAGE_ORDERS, 0, NULL, NULL, NULL);
    if (rc == ANM_OK) {
        rc = anm_db_copy_in(db, COPY_ORDERS, b, NULL);
    }
    if (rc == ANM_OK) {
        rc = anm_db_exec(db, MOVE_ORDERS, 0, NULL, NULL, inserted);
    }
    rc = finish(db, rc);
free_buffer:
    anm_db_copy_buffer_destroy(&b);
    return rc;
}

static const char STAGE_TRADES[] =
    "CREATE TEMP TABLE IF NOT EXISTS market_trades_stage (LIKE market_trades) "
    "ON COMMIT DELETE ROWS";
static const char COPY_TRADES[] =
    "COPY market_trades_stage (trade_id, auction_id, kind, buy_order_id, sell_order_id, buyer, "
    "seller, buy_der, sell_der, zone, period_start, volume_kw, buyer_price_ticks, "
    "buyer_availability_ticks, seller_price_ticks, seller_availability_ticks, executed_at) "
    "FROM STDIN (FORMAT binary)";
static const char MOVE_TRADES[] =
    "INSERT INTO market_trades SELECT * FROM market_trades_stage ORDER BY trade_id "
    "ON CONFLICT (trade_id) DO NOTHING";

static int copy_trades(anm_db_copy_buffer *b, uint64_t auction_id, const market_trade *trades,
                       size_t n)
{
    int rc = ANM_OK;
    for (size_t i = 0; i < n && rc == ANM_OK; i++) {
        const market_trade *t = &trades[i];
        rc |= anm_db_copy_row(b, 17);
        rc |= anm_db_copy_int8(b, (int64_t)t->trade_id);
        rc |= auction_id == 0 ? anm_db_copy_null(b) : anm_db_copy_int8(b, (int64_t)auction_id);
        rc |= copy_text(b, t->kind == MARKET_TRADE_AUCTION ? "auction" : "continuous");
        rc |= anm_db_copy_int8(b, (int64_t)t->buy_order_id);
        rc |= anm_db_copy_int8(b, (int64_t)t->sell_order_id);
        rc |= anm_db_copy_int8(b, (int64_t)t->buyer);
        rc |= anm_db_copy_int8(b, (int64_t)t->seller);
        rc |= copy_der(b, t->buy_der);
        rc |= anm_db_copy_int8(b, (int64_t)t->sell_der);
        rc |= anm_db_copy_int8(b, (int64_t)t->product.zone);
        rc |= anm_db_copy_timestamptz(b, ms_to_us(t->product.period_start_ms));
        rc |= anm_db_copy_int8(b, t->volume);
        rc |= anm_db_copy_int4(b, t->buyer_price_ticks);
        rc |= anm_db_copy_int4(b, t->buyer_availability_ticks);
        rc |= anm_db_copy_int4(b, t->seller_price_ticks);
        rc |= anm_db_copy_int4(b, t->seller_availability_ticks);
        rc |= anm_db_copy_timestamptz(b, ms_to_us(t->executed_ms));
    }
    return rc == ANM_OK ? ANM_OK : ANM_ENOMEM;
}

/* Inside an open transaction: stages and moves the trades. */
static int store_trades_in(anm_db *db, uint64_t auction_id, const market_trade *trades, size_t n,
                           long long *inserted)
{
    if (n == 0) {
        return ANM_OK;
    }
    anm_db_copy_buffer *b = anm_db_copy_buffer_new();
    if (b == NULL) {
        return ANM_ENOMEM;
    }
    int rc = copy_trades(b, auction_id, trades, n);
    if (rc == ANM_OK) {
        rc = anm_db_exec(db, STAGE_TRADES, 0, NULL, NULL, NULL);
    }
    if (rc == ANM_OK) {
        rc = anm_db_copy_in(db, COPY_TRADES, b, NULL);
    }
    if (rc == ANM_OK) {
        rc = anm_db_exec(db, MOVE_TRADES, 0, NULL, NULL, inserted);
    }
    anm_db_copy_buffer_destroy(&b);
    return rc;
}

int market_store_trades(anm_db *db, uint64_t auction_id, const market_trade *trades, size_t n,
                        long long *inserted)
{
    if (db == NULL || (trades == NULL && n > 0)) {
        return ANM_EINVAL;
    }
    if (inserted != NULL) {
        *inserted = 0;
    }
    if (n == 0) {
        return ANM_OK;
    }
    int rc = anm_db_begin(db);
    if (rc != ANM_OK) {
        return rc;
    }
    return finish(db, store_trades_in(db, auction_id, trades, n, inserted));
}

static int copy_stack(anm_db_copy_buffer *b, int side, const market_stack_entry *e, size_t n)
{
    int rc = ANM_OK;
    for (size_t i = 0; i < n && rc == ANM_OK; i++) {
        rc |= anm_db_copy_row(b, 9);
        rc |= anm_db_copy_int8(b, 0); /* auction id: set from the parameter, see below */
        rc |= anm_db_copy_int2(b, (int16_t)side);
        rc |= anm_db_copy_int4(b, (int32_t)i);
        rc |= anm_db_copy_int8(b, (int64_t)e[i].order_id);
        rc |= anm_db_copy_int8(b, e[i].rank);
        rc |= anm_db_copy_int4(b, e[i].price_ticks);
        rc |= anm_db_copy_int4(b, e[i].availability_ticks);
        rc |= anm_db_copy_int8(b, e[i].quantity);
        rc |= anm_db_copy_int8(b, e[i].accepted);
    }
    return rc == ANM_OK ? ANM_OK : ANM_ENOMEM;
}

static int format_i64(char *buf, size_t size, int64_t v)
{
    int n = snprintf(buf, size, "%" PRId64, v);
    return n < 0 || (size_t)n >= size ? ANM_ERANGE : ANM_OK;
}

int market_store_auction(anm_db *db, uint64_t auction_id, int64_t cleared_ms,
                         const market_auction_config *config, const market_auction_result *result,
                         int *stored)
{
    if (db == NULL || config == NULL || result == NULL || auction_id == 0 ||
        auction_id > (uint64_t)INT64_MAX || result->n_bids > INT32_MAX ||
        result->n_offers > INT32_MAX) {
        return ANM_EINVAL;
    }
    if (stored != NULL) {
        *stored = 0;
    }
    enum { NP = 17 };
    char v[NP][24];
    int has = result->has_price;
    int rc = ANM_OK;
    rc |= format_i64(v[0], sizeof v[0], (int64_t)auction_id);
    rc |= format_i64(v[1], sizeof v[1], (int64_t)result->product.zone);
    rc |= format_i64(v[2], sizeof v[2], result->product.period_start_ms);
    rc |= format_i64(v[3], sizeof v[3], cleared_ms);
    rc |= format_i64(v[6], sizeof v[6], (int64_t)result->n_bids);
    rc |= format_i64(v[7], sizeof v[7], (int64_t)result->n_offers);
    rc |= format_i64(v[8], sizeof v[8], result->unconstrained_volume);
    rc |= format_i64(v[9], sizeof v[9], result->accepted_volume);
    rc |= format_i64(v[11], sizeof v[11], result->clearing_rank);
    rc |= format_i64(v[12], sizeof v[12], result->clearing_price_ticks);
    rc |= format_i64(v[13], sizeof v[13], result->clearing_availability_ticks);
    rc |= format_i64(v[14], sizeof v[14], (int64_t)result->price_setting_order_id);
    rc |= format_i64(v[15], sizeof v[15], result->limiting_constraint);
    rc |= format_i64(v[16], sizeof v[16], (int64_t)result->n_trades);
    if (rc != ANM_OK) {
        return ANM_ERANGE;
    }
    const char *params[NP];
    for (int i = 0; i < NP; i++) {
        params[i] = v[i];
    }
    params[4] = config->pricing == MARKET_UNIFORM ? "uniform" : "pay_as_bid";
    params[5] = config->pro_rata ? "true" : "false";
    params[10] = has ? "true" : "false";
    if (!has) {
        params[11] = params[12] = params[13] = params[14] = NULL;
    }
    if (result->limiting_constraint < 0) {
        params[15] = NULL;
    }
    static const char insert_auction[] =
        "INSERT INTO market_auctions (auction_id, zone, period_start, cleared_at, pricing, "
        "pro_rata, n_bids, n_offers, unconstrained_volume_kw, accepted_volume_kw, has_price, "
        "clearing_rank, clearing_price_ticks, clearing_availability_ticks, "
        "price_setting_order_id, limiting_constraint, n_trades) VALUES ($1, $2, "
        "timestamptz 'epoch' + $3::bigint * interval '1 millisecond', "
        "timestamptz 'epoch' + $4::bigint * interval '1 millisecond', "
        "$5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) "
        "ON CONFLICT (auction_id) DO NOTHING";
    anm_db_copy_buffer *b = anm_db_copy_buffer_new();
    if (b == NULL) {
        return ANM_ENOMEM;
    }
    rc = anm_db_begin(db);
    if (rc != ANM_OK) {
        goto free_buffer;
    }
    long long affected = 0;
    rc = anm_db_exec(db, insert_auction, NP, params, NULL, &affected);
    if (rc != ANM_OK || affected == 0) {
        goto done; /* already stored (a replay): nothing more to write */
    }
    /* stacks: COPY into a staging table with a dummy auction id, then one INSERT that
     * sets it from a parameter (COPY takes no parameters) */
    rc = anm_db_exec(db,
                     "CREATE TEMP TABLE IF NOT EXISTS market_stack_stage "
                     "(LIKE market_stack_entries) ON COMMIT DELETE ROWS",
                     0, NULL, NULL, NULL);
    if (rc == ANM_OK) {
        rc = copy_stack(b, 0, result->offers, result->n_offers);
    }
    if (rc == ANM_OK) {
        rc = copy_stack(b, 1, result->bids, result->n_bids);
    }
    if (rc == ANM_OK && anm_db_copy_buffer_rows(b) > 0) {
        rc = anm_db_copy_in(db,
                            "COPY market_stack_stage (auction_id, side, position, order_id, rank, "
                            "price_ticks, availability_ticks, quantity_kw, accepted_kw) "
                            "FROM STDIN (FORMAT binary)",
                            b, NULL);
        if (rc == ANM_OK) {
            const char *id[1] = {v[0]};
            rc = anm_db_exec(db,
                             "INSERT INTO market_stack_entries SELECT $1::bigint, side, position, "
                             "order_id, rank, price_ticks, availability_ticks, quantity_kw, "
                             "accepted_kw FROM market_stack_stage",
                             1, id, NULL, NULL);
        }
    }
    if (rc == ANM_OK) {
        rc = store_trades_in(db, auction_id, result->trades, result->n_trades, NULL);
    }
    if (rc == ANM_OK && stored != NULL) {
        *stored = 1;
    }
done:
    rc = finish(db, rc);
    if (rc != ANM_OK && stored != NULL) {
        *stored = 0;
    }
free_buffer:
    anm_db_copy_buffer_destroy(&b);
    return rc;
}

static int parse_i64(const char *text, int64_t *out)
{
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end != '\0') {
        return ANM_EPARSE;
    }
    *out = (int64_t)v;
    return ANM_OK;
}

int market_store_load_trades(anm_db *db, int64_t from_ms, int64_t to_ms, market_trade **out,
                             size_t *n)
{
    if (db == NULL || out == NULL || n == NULL) {
        return ANM_EINVAL;
    }
    *out = NULL;
    *n = 0;
    char from[24], to[24];
    if (format_i64(from, sizeof from, from_ms) != ANM_OK ||
        format_i64(to, sizeof to, to_ms) != ANM_OK) {
        return ANM_ERANGE;
    }
    const char *params[2] = {from, to};
    anm_db_result *r = NULL;
    int rc = anm_db_exec(
        db,
        "SELECT trade_id, kind, buy_order_id, sell_order_id, buyer, seller, "
        "coalesce(buy_der, 4294967295), sell_der, zone, "
        "(extract(epoch FROM period_start) * 1000)::bigint, volume_kw, buyer_price_ticks, "
        "buyer_availability_ticks, seller_price_ticks, seller_availability_ticks, "
        "(extract(epoch FROM executed_at) * 1000)::bigint FROM market_trades "
        "WHERE period_start >= timestamptz 'epoch' + $1::bigint * interval '1 millisecond' "
        "AND period_start < timestamptz 'epoch' + $2::bigint * interval '1 millisecond' "
        "ORDER BY trade_id",
        2, params, &r, NULL);
    if (rc != ANM_OK) {
        return rc;
    }
    int rows = anm_db_result_rows(r);
    market_trade *t = rows > 0 ? calloc((size_t)rows, sizeof *t) : NULL;
    if (rows > 0 && t == NULL) {
        rc = ANM_ENOMEM;
        goto free_result;
    }
    for (int i = 0; i < rows && rc == ANM_OK; i++) {
        int64_t f[16];
        for (int c = 0; c < 16 && rc == ANM_OK; c++) {
            if (c == 1) {
                f[c] = strcmp(anm_db_result_value(r, i, c), "auction") == 0;
                continue;
            }
            rc = parse_i64(anm_db_result_value(r, i, c), &f[c]);
        }
        if (rc != ANM_OK) {
            break;
        }
        t[i] = (market_trade){.trade_id = (uint64_t)f[0],
                              .kind = f[1] ? MARKET_TRADE_AUCTION : MARKET_TRADE_CONTINUOUS,
                              .buy_order_id = (uint64_t)f[2],
                              .sell_order_id = (uint64_t)f[3],
                              .buyer = (uint32_t)f[4],
                              .seller = (uint32_t)f[5],
                              .buy_der = (uint32_t)f[6],
                              .sell_der = (uint32_t)f[7],
                              .product = {.zone = (uint32_t)f[8], .period_start_ms = f[9]},
                              .volume = f[10],
                              .buyer_price_ticks = (int32_t)f[11],
                              .buyer_availability_ticks = (int32_t)f[12],
                              .seller_price_ticks = (int32_t)f[13],
                              .seller_availability_ticks = (int32_t)f[14],
                              .executed_ms = f[15]};
    }
    if (rc != ANM_OK) {
        free(t);
        goto free_result;
    }
    *out = t;
    *n = (size_t)rows;
free_result:
    anm_db_result_destroy(&r);
    return rc;
}
