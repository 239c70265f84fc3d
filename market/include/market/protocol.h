/*
 * protocol.h: the participant protocol of anm-market (docs/market-protocol.md):
 * JSON requests over a ZeroMQ ROUTER, [topic][body] with "v" and "kind",
 * parsed strictly into typed requests, and the acks and rejects written back.
 *
 * Text ids (zone, DER) stay text here; the service maps them to the core's
 * integer ids. Prices and quantities are decimals on the wire and fixed
 * point here (types.h): a price with more than 2 decimals or a quantity with
 * more than 3 is refused, never rounded.
 */
#ifndef MARKET_PROTOCOL_H
#define MARKET_PROTOCOL_H

#include "market/market.h"

#include "engine/error.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define MARKET_PROTOCOL_VERSION 1
#define MARKET_PROTOCOL_MAX_BYTES 4096           /* order requests */
#define MARKET_PROTOCOL_MAX_STATEMENT_BYTES (8u << 20) /* market.statement */
/* Optional batching (docs/market-protocol.md, "Batches"): a DEALER may send
 * `[batch][body]` whose body is up to MARKET_PROTOCOL_MAX_BATCH request bodies,
 * one per line; the answer is one frame with one answer per line, in order. */
#define MARKET_PROTOCOL_BATCH_TOPIC "batch"
#define MARKET_PROTOCOL_MAX_BATCH 256

typedef enum market_request_kind {
    MARKET_REQ_SUBMIT = 0,    /* order.submit */
    MARKET_REQ_CANCEL = 1,    /* order.cancel */
    MARKET_REQ_REPLACE = 2,   /* order.replace */
    MARKET_REQ_QUERY = 3,     /* order.query */
    MARKET_REQ_MODE = 4,      /* market.mode (admin) */
    MARKET_REQ_STATEMENT = 5, /* market.statement (admin) */
    MARKET_REQ_AUCTION = 6,   /* market.auction (admin) */
    MARKET_REQ_CLOCK = 7,     /* clock.advance (admin, stepped clock only) */
    MARKET_REQ_COUNT_ = 8
} market_request_kind;

/* "order.submit", ...; never NULL. */
const char *market_request_kind_name(market_request_kind kind);

typedef struct market_request {
    market_request_kind kind;
    int has_request_id;
    int64_t request_id;        /* echoed in the answer */
    /* submit, replace (the new order), mode, auction */
    char zone[64];
    int64_t period_start_ms;
    char der[64];              /* "" for requirements */
    market_side side;
    uint64_t client_order_id;
    int32_t price_ticks, availability_ticks;
    int64_t quantity, min_quantity;
    int64_t valid_until_ms;    /* INT64_MAX when absent */
    /* cancel, replace, query (0: all own orders) */
    uint64_t order_id;
    /* mode */
    market_mode mode;
    /* auction */
    int pricing;               /* market_pricing */
    int pro_rata;
    /* clock */
    int64_t advance_ms;
    /* statement: new reference to the constraint statement object */
    json_t *statement;
} market_request;

/* Why a request was refused before reaching the core. */
typedef struct market_protocol_reject {
    char reason[32];  /* "malformed", "oversized", "unknown_kind", "wrong_type", ... */
    char text[256];
} market_protocol_reject;

/*
 * Parses [topic][body] into *out. ANM_OK, or ANM_EPROTO with why filled
 * (reason is the bus's code: bad_envelope, oversized, bad_json,
 * unknown_kind, kind_mismatch, wrong_version, missing_field, wrong_type,
 * out_of_range, unknown_field; or "malformed" for bad values such as an
 * unknown side or a price with more than 2 decimals). *out->statement is a
 * new reference for MARKET_REQ_STATEMENT; release with market_request_clear.
 * If the body parsed far enough, out->request_id and out->client_order_id
 * are filled even on a reject so the answer can echo them.
 */
int market_protocol_parse(const void *topic, size_t topic_size, const void *body,
                          size_t body_size, market_request *out, market_protocol_reject *why);
void market_request_clear(market_request *request);

/*
 * The same parse with jansson only. market_protocol_parse first tries an
 * allocation-free parser for plain order.submit bodies and falls back to
 * this one for everything else; on every input the fast parser accepts,
 * both give the same request (tests/fuzz/fuzz_market_protocol.c checks it).
 */
int market_protocol_parse_json(const void *topic, size_t topic_size, const void *body,
                               size_t body_size, market_request *out, market_protocol_reject *why);

/*
 * Answers, written as compact JSON into buf. Return the length (< size) or
 * ANM_ERANGE if buf is too small. order_ack: accepted; reject: a core
 * reject (market_result) or a protocol reject (reason/text).
 */
int market_protocol_write_ack(char *buf, size_t size, const market_request *request,
                              const market_result *result);
int market_protocol_write_reject(char *buf, size_t size, const market_request *request,
                                 const char *reason, int code, const char *text);

/* Wire conversions: decimal to fixed point with the exact-decimal check. */
int market_protocol_price_ticks(double gbp, int32_t *ticks);
int market_protocol_quantity_units(double mw, int64_t *units);

#endif
