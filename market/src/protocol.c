/*
 * protocol.c: strict parsing of participant requests and writing of answers
 * (docs/market-protocol.md). Schemas are checked by the bus's validator
 * (engine/bus.h: types, bounds, unknown fields, "v" and "kind"); the values
 * are then checked here (sides, exact decimals, times).
 */
#include "market/protocol.h"

#include "market/auction.h"

#include "engine/bus.h"
#include "engine/clock.h"

#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define END_FIELDS {NULL, ANM_FIELD_STRING, 0, 0, 0}
#define ID_MAX 9007199254740992LL /* 2^53: exact in every JSON reader */

#define ORDER_FIELDS                                                                               \
    {"request_id", ANM_FIELD_INTEGER, 0, 0, ID_MAX},                                               \
        {"client_order_id", ANM_FIELD_INTEGER, 1, 0, ID_MAX}, {"zone", ANM_FIELD_STRING, 1, 0, 0}, \
        {"period_start", ANM_FIELD_TIME, 1, 0, 0}, {"der", ANM_FIELD_STRING, 0, 0, 0},             \
        {"side", ANM_FIELD_STRING, 1, 0, 0}, {"price", ANM_FIELD_NUMBER, 1, 0, 0},                 \
        {"availability_price", ANM_FIELD_NUMBER, 0, 0, 0},                                         \
        {"quantity_mw", ANM_FIELD_NUMBER, 1, 0, 0}, {"min_quantity_mw", ANM_FIELD_NUMBER, 0, 0, 0}, \
        {"valid_until", ANM_FIELD_TIME, 0, 0, 0}

static const anm_field_spec submit_fields[] = {ORDER_FIELDS, END_FIELDS};
static const anm_field_spec replace_fields[] = {
    ORDER_FIELDS, {"order_id", ANM_FIELD_INTEGER, 1, 1, LLONG_MAX}, END_FIELDS};
static const anm_field_spec cancel_fields[] = {
    {"request_id", ANM_FIELD_INTEGER, 0, 0, ID_MAX},
    {"order_id", ANM_FIELD_INTEGER, 1, 1, LLONG_MAX},
    END_FIELDS};
static const anm_field_spec query_fields[] = {
    {"request_id", ANM_FIELD_INTEGER, 0, 0, ID_MAX},
    {"order_id", ANM_FIELD_INTEGER, 0, 1, LLONG_MAX},
    END_FIELDS};
static const anm_field_spec mode_fields[] = {
    {"request_id", ANM_FIELD_INTEGER, 0, 0, ID_MAX}, {"zone", ANM_FIELD_STRING, 1, 0, 0},
    {"period_start", ANM_FIELD_TIME, 1, 0, 0},       {"mode", ANM_FIELD_STRING, 1, 0, 0},
    END_FIELDS};
static const anm_field_spec statement_fields[] = {
    {"request_id", ANM_FIELD_INTEGER, 0, 0, ID_MAX},
    {"statement", ANM_FIELD_OBJECT, 1, 0, 0},
    END_FIELDS};
static const anm_field_spec auction_fields[] = {
    {"request_id", ANM_FIELD_INTEGER, 0, 0, ID_MAX}, {"zone", ANM_FIELD_STRING, 1, 0, 0},
    {"period_start", ANM_FIELD_TIME, 1, 0, 0},       {"pricing", ANM_FIELD_STRING, 0, 0, 0},
    {"pro_rata", ANM_FIELD_BOOLEAN, 0, 0, 0},        END_FIELDS};
static const anm_field_spec clock_fields[] = {
    {"request_id", ANM_FIELD_INTEGER, 0, 0, ID_MAX},
    {"ms", ANM_FIELD_INTEGER, 1, 0, 366LL * 86400000LL},
    END_FIELDS};

/* In market_request_kind order. */
static const anm_bus_schema schemas[MARKET_REQ_COUNT_] = {
    {"order.submit", 1, MARKET_PROTOCOL_MAX_BYTES, 0, submit_fields},
    {"order.cancel", 1, MARKET_PROTOCOL_MAX_BYTES, 0, cancel_fields},
    {"order.replace", 1, MARKET_PROTOCOL_MAX_BYTES, 0, replace_fields},
    {"order.query", 1, MARKET_PROTOCOL_MAX_BYTES, 0, query_fields},
    {"market.mode", 1, MARKET_PROTOCOL_MAX_BYTES, 0, mode_fields},
    {"market.statement", 1, MARKET_PROTOCOL_MAX_STATEMENT_BYTES, 0, statement_fields},
    {"market.auction", 1, MARKET_PROTOCOL_MAX_BYTES, 0, auction_fields},
    {"clock.advance", 1, MARKET_PROTOCOL_MAX_BYTES, 0, clock_fields},
};

const char *market_request_kind_name(market_request_kind kind)
{
    return (unsigned)kind < MARKET_REQ_COUNT_ ? schemas[kind].kind : "unknown";
}

static int fail(market_protocol_reject *why, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(market_protocol_reject *why, const char *reason, const char *fmt, ...)
{
    if (why != NULL) {
        va_list ap;
        snprintf(why->reason, sizeof why->reason, "%s", reason);
        va_start(ap, fmt);
        int n = vsnprintf(why->text, sizeof why->text, fmt, ap);
        va_end(ap);
        if (n < 0)
            why->text[0] = '\0';
    }
    return ANM_EPROTO;
}

int market_protocol_price_ticks(double gbp, int32_t *ticks)
{
    if (!isfinite(gbp) || fabs(gbp) > 2.0e7)
        return ANM_ERANGE;
    double scaled = gbp * MARKET_PRICE_TICKS_PER_GBP;
    double rounded = nearbyint(scaled);
    if (fabs(scaled - rounded) > 1e-6 * (1.0 + fabs(scaled)))
        return ANM_EPARSE;
    *ticks = (int32_t)rounded;
    return ANM_OK;
}

int market_protocol_quantity_units(double mw, int64_t *units)
{
    if (!isfinite(mw) || fabs(mw) > 1.0e9)
        return ANM_ERANGE;
    double scaled = mw * MARKET_QUANTITY_UNITS_PER_MW;
    double rounded = nearbyint(scaled);
    if (fabs(scaled - rounded) > 1e-6 * (1.0 + fabs(scaled)))
        return ANM_EPARSE;
    *units = (int64_t)rounded;
    return ANM_OK;
}

static int copy_id(const json_t *body, const char *key, char *dst, size_t size,
                   market_protocol_reject *why)
{
    const json_t *value = json_object_get(body, key);
    if (value == NULL) {
        dst[0] = '\0';
        return ANM_OK;
    }
    size_t length = json_string_length(value);
    if (length == 0 || length >= size)
        return fail(why, "malformed", "field \"%s\": length %zu is outside 1..%zu", key, length,
                    size - 1);
    memcpy(dst, json_string_value(value), length + 1);
    return ANM_OK;
}

static int get_time(const json_t *body, const char *key, int64_t *out)
{
    const json_t *value = json_object_get(body, key);
    if (value == NULL)
        return ANM_ENOTFOUND;
    return anm_time_parse_iso8601(json_string_value(value), out);
}

static int get_price(const json_t *body, const char *key, int32_t *out,
                     market_protocol_reject *why)
{
    const json_t *value = json_object_get(body, key);
    *out = 0;
    if (value == NULL)
        return ANM_OK;
    int rc = market_protocol_price_ticks(json_number_value(value), out);
    if (rc == ANM_EPARSE)
        return fail(why, "malformed", "field \"%s\": %.6g GBP has more than 2 decimals", key,
                    json_number_value(value));
    if (rc != ANM_OK)
        return fail(why, "out_of_range", "field \"%s\": %.6g is out of range", key,
                    json_number_value(value));
    return ANM_OK;
}

static int get_quantity(const json_t *body, const char *key, int64_t *out,
                        market_protocol_reject *why)
{
    const json_t *value = json_object_get(body, key);
    *out = 0;
    if (value == NULL)
        return ANM_OK;
    int rc = market_protocol_quantity_units(json_number_value(value), out);
    if (rc == ANM_EPARSE)
        return fail(why, "malformed", "field \"%s\": %.9g MW has more than 3 decimals", key,
                    json_number_value(value));
    if (rc != ANM_OK)
        return fail(why, "out_of_range", "field \"%s\": %.6g is out of range", key,
                    json_number_value(value));
    return ANM_OK;
}

static int parse_order(const json_t *body, market_request *r, market_protocol_reject *why)
{
    int rc = copy_id(body, "zone", r->zone, sizeof r->zone, why);
    if (rc == ANM_OK)
        rc = copy_id(body, "der", r->der, sizeof r->der, why);
    if (rc != ANM_OK)
        return rc;
    r->client_order_id = (uint64_t)json_integer_value(json_object_get(body, "client_order_id"));
    (void)get_time(body, "period_start", &r->period_start_ms);
    if (get_time(body, "valid_until", &r->valid_until_ms) != ANM_OK)
        r->valid_until_ms = INT64_MAX;
    const char *side = json_string_value(json_object_get(body, "side"));
    if (strcmp(side, "offer") == 0)
        r->side = MARKET_OFFER;
    else if (strcmp(side, "bid") == 0)
        r->side = MARKET_BID;
    else if (strcmp(side, "requirement") == 0)
        r->side = MARKET_REQUIREMENT;
    else
        return fail(why, "malformed", "field \"side\": \"%.32s\" is not offer, bid or requirement",
                    side);
    rc = get_price(body, "price", &r->price_ticks, why);
    if (rc == ANM_OK)
        rc = get_price(body, "availability_price", &r->availability_ticks, why);
    if (rc == ANM_OK)
        rc = get_quantity(body, "quantity_mw", &r->quantity, why);
    if (rc == ANM_OK)
        rc = get_quantity(body, "min_quantity_mw", &r->min_quantity, why);
    return rc;
}

static void echo_ids(const void *body, size_t body_size, market_request *out)
{
    json_t *json = json_loadb(body, body_size, JSON_REJECT_DUPLICATES, NULL);
    if (json == NULL)
        return;
    const json_t *id = json_object_get(json, "request_id");
    if (json_is_integer(id)) {
        out->has_request_id = 1;
        out->request_id = json_integer_value(id);
    }
    const json_t *client = json_object_get(json, "client_order_id");
    if (json_is_integer(client) && json_integer_value(client) >= 0)
        out->client_order_id = (uint64_t)json_integer_value(client);
    json_decref(json);
}

/* ---- the fast path for order.submit ----------------------------------------
 *
 * Orders are the hot path (about a third of the service's time went to
 * jansson's tree building and freeing). A flat object of plain values is
 * parsed here without allocation; anything this subset does not cover
 * (escapes, non-ASCII, exponents, nested values, unknown, duplicate or
 * missing keys, out-of-range values) returns 0 and goes to the jansson path,
 * which then accepts it or writes the exact reject. tests/fuzz checks that
 * both paths agree on every input the fast path accepts.
 */

typedef struct fast_token {
    const char *p;
    size_t n;
    int is_string;
} fast_token;

static const char *fast_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* A string without escapes of printable ASCII, or a number -?(0|[1-9]d*)(.d+)? */
static const char *fast_value(const char *p, const char *end, fast_token *t)
{
    if (p < end && *p == '"') {
        const char *start = ++p;
        while (p < end && *p != '"') {
            if (*p < 0x20 || *p > 0x7e || *p == '\\')
                return NULL;
            p++;
        }
        if (p == end)
            return NULL;
        *t = (fast_token){start, (size_t)(p - start), 1};
        return p + 1;
    }
    const char *start = p;
    if (p < end && *p == '-')
        p++;
    if (p == end || *p < '0' || *p > '9')
        return NULL;
    if (*p == '0')
        p++;
    else
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    if (p < end && *p == '.') {
        const char *digits = ++p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == digits)
            return NULL;
    }
    if (p < end && (*p == 'e' || *p == 'E'))
        return NULL;
    if ((size_t)(p - start) > 24)
        return NULL;
    *t = (fast_token){start, (size_t)(p - start), 0};
    return p;
}

static int fast_is(const fast_token *t, const char *text)
{
    size_t n = strlen(text);
    return t->n == n && memcmp(t->p, text, n) == 0;
}

/* An integer token (no fraction, at most 18 digits) in [0, max]. */
static int fast_integer(const fast_token *t, long long max, long long *out)
{
    if (t->is_string || t->n == 0 || t->n > 18 || memchr(t->p, '.', t->n) != NULL)
        return 0;
    long long v = 0;
    size_t i = 0;
    int negative = t->p[0] == '-';
    for (i = negative ? 1 : 0; i < t->n; i++)
        v = v * 10 + (t->p[i] - '0');
    if (negative)
        v = -v;
    if (v < 0 || v > max)
        return 0;
    *out = v;
    return 1;
}

static int fast_number(const fast_token *t, double *out)
{
    char tmp[32];
    if (t->is_string || t->n >= sizeof tmp)
        return 0;
    if (t->n > 18 && memchr(t->p, '.', t->n) == NULL)
        return 0; /* jansson would refuse a too big integer */
    memcpy(tmp, t->p, t->n);
    tmp[t->n] = '\0';
    char *end = NULL;
    *out = strtod(tmp, &end);
    return end == tmp + t->n && isfinite(*out);
}

static int fast_string(const fast_token *t, char *dst, size_t size)
{
    if (!t->is_string || t->n == 0 || t->n >= size)
        return 0;
    memcpy(dst, t->p, t->n);
    dst[t->n] = '\0';
    return 1;
}

static int fast_time(const fast_token *t, int64_t *out)
{
    char tmp[64];
    return fast_string(t, tmp, sizeof tmp) && anm_time_parse_iso8601(tmp, out) == ANM_OK;
}

enum { F_V, F_KIND, F_REQUEST_ID, F_CLIENT, F_ZONE, F_PERIOD, F_DER, F_SIDE, F_PRICE,
       F_AVAILABILITY, F_QUANTITY, F_MIN_QUANTITY, F_VALID_UNTIL, F_COUNT };

static const char *const fast_keys[F_COUNT] = {
    "v", "kind", "request_id", "client_order_id", "zone", "period_start", "der", "side",
    "price", "availability_price", "quantity_mw", "min_quantity_mw", "valid_until"};

/* 1: *out is the request the jansson path would give; 0: use the jansson path. */
static int parse_submit_fast(const char *body, size_t body_size, market_request *out)
{
    const char *p = body, *end = body + body_size;
    fast_token v[F_COUNT];
    unsigned seen = 0;
    p = fast_ws(p, end);
    if (p == end || *p++ != '{')
        return 0;
    for (;;) {
        fast_token key, value;
        p = fast_ws(p, end);
        if (p == end || *p != '"' || (p = fast_value(p, end, &key)) == NULL)
            return 0;
        p = fast_ws(p, end);
        if (p == end || *p++ != ':')
            return 0;
        p = fast_ws(p, end);
        if ((p = fast_value(p, end, &value)) == NULL)
            return 0;
        int k = 0;
        while (k < F_COUNT && !fast_is(&key, fast_keys[k]))
            k++;
        if (k == F_COUNT || (seen & (1u << k)))
            return 0;
        seen |= 1u << k;
        v[k] = value;
        p = fast_ws(p, end);
        if (p == end)
            return 0;
        if (*p == '}')
            break;
        if (*p++ != ',')
            return 0;
    }
    if (fast_ws(p + 1, end) != end)
        return 0;
    const unsigned required = 1u << F_V | 1u << F_KIND | 1u << F_CLIENT | 1u << F_ZONE |
                              1u << F_PERIOD | 1u << F_SIDE | 1u << F_PRICE | 1u << F_QUANTITY;
    if ((seen & required) != required)
        return 0;
    long long integer;
    double number;
    if (!fast_integer(&v[F_V], 1, &integer) || integer != 1 || !v[F_KIND].is_string ||
        !fast_is(&v[F_KIND], "order.submit"))
        return 0;
    memset(out, 0, sizeof *out);
    out->kind = MARKET_REQ_SUBMIT;
    if (seen & (1u << F_REQUEST_ID)) {
        if (!fast_integer(&v[F_REQUEST_ID], ID_MAX, &integer))
            return 0;
        out->has_request_id = 1;
        out->request_id = integer;
    }
    if (!fast_integer(&v[F_CLIENT], ID_MAX, &integer))
        return 0;
    out->client_order_id = (uint64_t)integer;
    if (!fast_string(&v[F_ZONE], out->zone, sizeof out->zone) ||
        !fast_time(&v[F_PERIOD], &out->period_start_ms))
        return 0;
    if ((seen & (1u << F_DER)) && !fast_string(&v[F_DER], out->der, sizeof out->der))
        return 0;
    out->valid_until_ms = INT64_MAX;
    if ((seen & (1u << F_VALID_UNTIL)) && !fast_time(&v[F_VALID_UNTIL], &out->valid_until_ms))
        return 0;
    if (!v[F_SIDE].is_string)
        return 0;
    if (fast_is(&v[F_SIDE], "offer"))
        out->side = MARKET_OFFER;
    else if (fast_is(&v[F_SIDE], "bid"))
        out->side = MARKET_BID;
    else if (fast_is(&v[F_SIDE], "requirement"))
        out->side = MARKET_REQUIREMENT;
    else
        return 0;
    if (!fast_number(&v[F_PRICE], &number) ||
        market_protocol_price_ticks(number, &out->price_ticks) != ANM_OK)
        return 0;
    if ((seen & (1u << F_AVAILABILITY)) &&
        (!fast_number(&v[F_AVAILABILITY], &number) ||
         market_protocol_price_ticks(number, &out->availability_ticks) != ANM_OK))
        return 0;
    if (!fast_number(&v[F_QUANTITY], &number) ||
        market_protocol_quantity_units(number, &out->quantity) != ANM_OK)
        return 0;
    if ((seen & (1u << F_MIN_QUANTITY)) &&
        (!fast_number(&v[F_MIN_QUANTITY], &number) ||
         market_protocol_quantity_units(number, &out->min_quantity) != ANM_OK))
        return 0;
    return 1;
}

int market_protocol_parse(const void *topic, size_t topic_size, const void *body,
                          size_t body_size, market_request *out, market_protocol_reject *why)
{
    if (topic != NULL && body != NULL && topic_size == 12 && body_size <= MARKET_PROTOCOL_MAX_BYTES &&
        memcmp(topic, "order.submit", 12) == 0 && parse_submit_fast(body, body_size, out))
        return ANM_OK;
    return market_protocol_parse_json(topic, topic_size, body, body_size, out, why);
}

int market_protocol_parse_json(const void *topic, size_t topic_size, const void *body,
                               size_t body_size, market_request *out, market_protocol_reject *why)
{
    memset(out, 0, sizeof *out);
    out->kind = MARKET_REQ_COUNT_;
    out->valid_until_ms = INT64_MAX;
    json_t *json = NULL;
    const anm_bus_schema *schema = NULL;
    anm_bus_reject bus_why;
    int rc = anm_bus_parse_json(schemas, MARKET_REQ_COUNT_, topic, topic_size, body, body_size,
                                &json, &schema, &bus_why);
    if (rc != ANM_OK) {
        if (bus_why.reason != ANM_BUS_BAD_JSON && bus_why.reason != ANM_BUS_OVERSIZED &&
            bus_why.reason != ANM_BUS_BAD_ENVELOPE && body != NULL)
            echo_ids(body, body_size, out);
        if (schema == NULL && topic != NULL) {
            size_t kind_len = 0;
            if (anm_bus_topic_kind(topic, topic_size, &kind_len) == ANM_OK) {
                const anm_bus_schema *s =
                    anm_bus_schema_find(schemas, MARKET_REQ_COUNT_, topic, kind_len);
                if (s != NULL)
                    out->kind = (market_request_kind)(s - schemas);
            }
        }
        if (rc == ANM_ENOMEM)
            return rc;
        return fail(why, anm_bus_reason_code(bus_why.reason), "%s", bus_why.text);
    }
    out->kind = (market_request_kind)(schema - schemas);
    const json_t *id = json_object_get(json, "request_id");
    if (id != NULL) {
        out->has_request_id = 1;
        out->request_id = json_integer_value(id);
    }
    switch (out->kind) {
    case MARKET_REQ_REPLACE:
        out->order_id = (uint64_t)json_integer_value(json_object_get(json, "order_id"));
        rc = parse_order(json, out, why);
        break;
    case MARKET_REQ_SUBMIT: rc = parse_order(json, out, why); break;
    case MARKET_REQ_CANCEL:
    case MARKET_REQ_QUERY:
        out->order_id = (uint64_t)json_integer_value(json_object_get(json, "order_id"));
        break;
    case MARKET_REQ_MODE: {
        rc = copy_id(json, "zone", out->zone, sizeof out->zone, why);
        (void)get_time(json, "period_start", &out->period_start_ms);
        const char *mode = json_string_value(json_object_get(json, "mode"));
        if (rc == ANM_OK && strcmp(mode, "call") == 0)
            out->mode = MARKET_MODE_CALL;
        else if (rc == ANM_OK && strcmp(mode, "continuous") == 0)
            out->mode = MARKET_MODE_CONTINUOUS;
        else if (rc == ANM_OK)
            rc = fail(why, "malformed", "field \"mode\": \"%.32s\" is not call or continuous", mode);
        break;
    }
    case MARKET_REQ_STATEMENT:
        out->statement = json_incref(json_object_get(json, "statement"));
        break;
    case MARKET_REQ_AUCTION: {
        rc = copy_id(json, "zone", out->zone, sizeof out->zone, why);
        (void)get_time(json, "period_start", &out->period_start_ms);
        const json_t *pricing = json_object_get(json, "pricing");
        out->pricing = MARKET_PAY_AS_BID;
        if (rc == ANM_OK && pricing != NULL) {
            if (strcmp(json_string_value(pricing), "uniform") == 0)
                out->pricing = MARKET_UNIFORM;
            else if (strcmp(json_string_value(pricing), "pay_as_bid") != 0)
                rc = fail(why, "malformed",
                          "field \"pricing\": \"%.32s\" is not pay_as_bid or uniform",
                          json_string_value(pricing));
        }
        out->pro_rata = json_is_true(json_object_get(json, "pro_rata"));
        break;
    }
    case MARKET_REQ_CLOCK:
        out->advance_ms = json_integer_value(json_object_get(json, "ms"));
        break;
    case MARKET_REQ_COUNT_: rc = fail(why, "internal", "no kind"); break;
    }
    json_decref(json);
    return rc;
}

void market_request_clear(market_request *request)
{
    if (request != NULL && request->statement != NULL) {
        json_decref(request->statement);
        request->statement = NULL;
    }
}

/* Appends formatted text at *used; ANM_ERANGE when it does not fit. */
static int put(char *buf, size_t size, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int put(char *buf, size_t size, size_t *used, const char *fmt, ...)
{
    if (*used >= size)
        return ANM_ERANGE;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *used, size - *used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size - *used)
        return ANM_ERANGE;
    *used += (size_t)n;
    return ANM_OK;
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629), or 0. */
static size_t utf8_sequence(const unsigned char *p)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xbf;
    size_t n;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

/* A JSON string of text; bytes that are not well-formed UTF-8 (a message
 * may echo what a client sent, cut at any byte) become U+FFFD. */
static int put_escaped(char *buf, size_t size, size_t *used, const char *text)
{
    int rc = put(buf, size, used, "\"");
    for (const unsigned char *p = (const unsigned char *)text; rc == ANM_OK && *p; p++) {
        if (*p == '"' || *p == '\\')
            rc = put(buf, size, used, "\\%c", *p);
        else if (*p < 0x20)
            rc = put(buf, size, used, "\\u%04x", *p);
        else if (*p < 0x80)
            rc = put(buf, size, used, "%c", *p);
        else {
            size_t n = utf8_sequence(p);
            if (n == 0)
                rc = put(buf, size, used, "\\ufffd");
            else {
                rc = put(buf, size, used, "%.*s", (int)n, (const char *)p);
                p += n - 1;
            }
        }
    }
    return rc == ANM_OK ? put(buf, size, used, "\"") : rc;
}

static int put_head(char *buf, size_t size, size_t *used, const char *kind,
                    const market_request *request)
{
    int rc = put(buf, size, used, "{\"v\":1,\"kind\":\"%s\",\"request\":\"%s\"", kind,
                 request ? market_request_kind_name(request->kind) : "unknown");
    if (rc == ANM_OK && request && request->has_request_id)
        rc = put(buf, size, used, ",\"request_id\":%lld", (long long)request->request_id);
    if (rc == ANM_OK && request &&
        (request->kind == MARKET_REQ_SUBMIT || request->kind == MARKET_REQ_REPLACE))
        rc = put(buf, size, used, ",\"client_order_id\":%llu",
                 (unsigned long long)request->client_order_id);
    return rc;
}

/* The ack is written on every accepted order: plain appends, no printf. */
typedef struct out_buf {
    char *p;
    size_t size, used;
    int full;
} out_buf;

static void out_raw(out_buf *o, const char *text, size_t n)
{
    if (o->full || o->size - o->used <= n) {
        o->full = 1;
        return;
    }
    memcpy(o->p + o->used, text, n);
    o->used += n;
}

#define OUT_LIT(o, text) out_raw((o), (text), sizeof(text) - 1)

static void out_u64(out_buf *o, unsigned long long v)
{
    char digits[24];
    size_t n = sizeof digits;
    do {
        digits[--n] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0);
    out_raw(o, digits + n, sizeof digits - n);
}

static void out_i64(out_buf *o, long long v)
{
    if (v < 0) {
        OUT_LIT(o, "-");
        out_u64(o, (unsigned long long)(-(v + 1)) + 1u);
    } else {
        out_u64(o, (unsigned long long)v);
    }
}

/* units of 0.001 MW as a decimal with exactly 3 decimals */
static void out_mw(out_buf *o, int64_t units)
{
    unsigned long long magnitude =
        units < 0 ? (unsigned long long)(-(units + 1)) + 1u : (unsigned long long)units;
    char fraction[3] = {(char)('0' + magnitude % 1000u / 100u),
                        (char)('0' + magnitude % 100u / 10u), (char)('0' + magnitude % 10u)};
    if (units < 0)
        OUT_LIT(o, "-");
    out_u64(o, magnitude / 1000u);
    OUT_LIT(o, ".");
    out_raw(o, fraction, 3);
}

int market_protocol_write_ack(char *buf, size_t size, const market_request *request,
                              const market_result *result)
{
    out_buf o = {buf, size, 0, 0};
    const char *kind = request ? market_request_kind_name(request->kind) : "unknown";
    OUT_LIT(&o, "{\"v\":1,\"kind\":\"order.ack\",\"request\":\"");
    out_raw(&o, kind, strlen(kind));
    OUT_LIT(&o, "\"");
    if (request && request->has_request_id) {
        OUT_LIT(&o, ",\"request_id\":");
        out_i64(&o, (long long)request->request_id);
    }
    if (request && (request->kind == MARKET_REQ_SUBMIT || request->kind == MARKET_REQ_REPLACE)) {
        OUT_LIT(&o, ",\"client_order_id\":");
        out_u64(&o, (unsigned long long)request->client_order_id);
    }
    if (result != NULL) {
        OUT_LIT(&o, ",\"order_id\":");
        out_u64(&o, (unsigned long long)result->order_id);
        if (result->resubmission)
            OUT_LIT(&o, ",\"resubmission\":true,\"trades\":");
        else
            OUT_LIT(&o, ",\"resubmission\":false,\"trades\":");
        out_u64(&o, (unsigned long long)result->trades);
        OUT_LIT(&o, ",\"filled_mw\":");
        out_mw(&o, result->filled);
        OUT_LIT(&o, ",\"resting_mw\":");
        out_mw(&o, result->resting);
    }
    OUT_LIT(&o, "}");
    if (o.full)
        return ANM_ERANGE;
    o.p[o.used] = '\0';
    return (int)o.used;
}

int market_protocol_write_reject(char *buf, size_t size, const market_request *request,
                                 const char *reason, int code, const char *text)
{
    size_t used = 0;
    int rc = put_head(buf, size, &used, "order.reject", request);
    if (rc == ANM_OK)
        rc = put(buf, size, &used, ",\"reason\":\"%s\",\"code\":%d,\"text\":", reason, code);
    if (rc == ANM_OK)
        rc = put_escaped(buf, size, &used, text);
    if (rc == ANM_OK)
        rc = put(buf, size, &used, "}");
    return rc == ANM_OK ? (int)used : rc;
}
