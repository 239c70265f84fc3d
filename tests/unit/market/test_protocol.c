/* test_protocol.c: strict parsing of requests and the answers written. */
#include "market/protocol.h"

#include "engine/error.h"

#include <criterion/criterion.h>
#include <string.h>

static int parse(const char *topic, const char *body, market_request *q, market_protocol_reject *w)
{
    return market_protocol_parse(topic, strlen(topic), body, strlen(body), q, w);
}

Test(protocol, submit_parses_to_fixed_point)
{
    market_request q;
    market_protocol_reject w;
    cr_assert_eq(parse("order.submit",
                       "{\"v\":1,\"kind\":\"order.submit\",\"request_id\":5,\"client_order_id\":9,"
                       "\"zone\":\"feeder33\",\"period_start\":\"2021-06-02T10:00:00Z\","
                       "\"der\":\"solar33\",\"side\":\"bid\",\"price\":45.25,"
                       "\"quantity_mw\":1.5,\"min_quantity_mw\":0.25}",
                       &q, &w),
                 ANM_OK, "%s", w.text);
    cr_assert_eq(q.kind, MARKET_REQ_SUBMIT);
    cr_assert_eq(q.request_id, 5);
    cr_assert_eq(q.side, MARKET_BID);
    cr_assert_eq(q.price_ticks, 4525);
    cr_assert_eq(q.quantity, 1500);
    cr_assert_eq(q.min_quantity, 250);
    cr_assert_eq(q.period_start_ms, 1622628000000LL);
    cr_assert_eq(q.valid_until_ms, INT64_MAX);
    cr_assert_str_eq(q.der, "solar33");
}

Test(protocol, rejects_name_the_fault)
{
    market_request q;
    market_protocol_reject w;
    cr_assert_eq(parse("order.submit", "{\"v\":1,\"kind\":\"order.submit\",\"request_id\":3,"
                       "\"client_order_id\":\"x\",\"zone\":\"z\",\"period_start\":"
                       "\"2021-06-02T10:00:00Z\",\"side\":\"bid\",\"price\":1,\"quantity_mw\":1}",
                       &q, &w), ANM_EPROTO);
    cr_assert_str_eq(w.reason, "wrong_type");
    cr_assert_str_eq(w.text, "field \"client_order_id\": expected integer, got string");
    cr_assert_eq(q.request_id, 3, "request id echoed on a reject");
    cr_assert_eq(parse("order.explode", "{\"v\":1,\"kind\":\"order.explode\"}", &q, &w),
                 ANM_EPROTO);
    cr_assert_str_eq(w.reason, "unknown_kind");
    cr_assert_eq(parse("order.cancel", "{\"v\":1,\"kind\":\"order.cancel\",\"order_id\":1,"
                       "\"evil\":1}", &q, &w), ANM_EPROTO);
    cr_assert_str_eq(w.reason, "unknown_field");
    cr_assert_eq(parse("order.submit", "{\"v\":1,\"kind\":\"order.submit\",\"client_order_id\":1,"
                       "\"zone\":\"z\",\"period_start\":\"2021-06-02T10:00:00Z\",\"side\":\"bid\","
                       "\"price\":1.005,\"quantity_mw\":1}", &q, &w), ANM_EPROTO);
    cr_assert_str_eq(w.reason, "malformed");
    cr_assert_str_eq(w.text, "field \"price\": 1.005 GBP has more than 2 decimals");
    char big[MARKET_PROTOCOL_MAX_BYTES + 64];
    memset(big, ' ', sizeof big);
    memcpy(big, "{\"v\":1,\"kind\":\"order.cancel\",\"order_id\":1}", 42);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(parse("order.cancel", big, &q, &w), ANM_EPROTO);
    cr_assert_str_eq(w.reason, "oversized");
}

Test(protocol, ack_and_reject_json)
{
    market_request q = {.kind = MARKET_REQ_SUBMIT, .has_request_id = 1, .request_id = 8,
                        .client_order_id = 4};
    market_result r = {.order_id = 16777217, .filled = 1500, .resting = 500, .trades = 1};
    char buf[512];
    cr_assert_gt(market_protocol_write_ack(buf, sizeof buf, &q, &r), 0);
    cr_assert_str_eq(buf, "{\"v\":1,\"kind\":\"order.ack\",\"request\":\"order.submit\","
                          "\"request_id\":8,\"client_order_id\":4,\"order_id\":16777217,"
                          "\"resubmission\":false,\"trades\":1,\"filled_mw\":1.500,"
                          "\"resting_mw\":0.500}");
    cr_assert_gt(market_protocol_write_reject(buf, sizeof buf, &q, "not_owner", 15,
                                              "order \"1\" is\nnot yours"), 0);
    cr_assert(strstr(buf, "\"text\":\"order \\\"1\\\" is\\u000anot yours\"") != NULL, "%s", buf);
    cr_assert_eq(market_protocol_write_ack(buf, 20, &q, &r), ANM_ERANGE);
}

/* The fast path (plain bodies) and the jansson path give the same request;
 * bodies outside the fast subset still parse, through jansson. */
Test(protocol, fast_and_jansson_paths_agree)
{
    static const char *const bodies[] = {
        /* plain: the fast path */
        "{\"v\":1,\"kind\":\"order.submit\",\"client_order_id\":12,\"zone\":\"feeder33\","
        "\"period_start\":\"2021-06-02T10:00:00Z\",\"der\":\"wind18\",\"side\":\"offer\","
        "\"price\":-12.5,\"availability_price\":3,\"quantity_mw\":0.001,"
        "\"valid_until\":\"2021-06-02T09:00:00Z\"}",
        /* whitespace and key order */
        " {\n \"side\" : \"requirement\", \"quantity_mw\":2 ,\"price\":0,\"zone\":\"z\","
        "\"kind\":\"order.submit\",\"period_start\":\"2021-06-02T10:00:00Z\",\"v\":1,"
        "\"client_order_id\":0}\r\n",
        /* an escape and an exponent: jansson only */
        "{\"v\":1,\"kind\":\"order.submit\",\"client_order_id\":13,\"zone\":\"feed\\u0065r33\","
        "\"period_start\":\"2021-06-02T10:00:00Z\",\"side\":\"bid\",\"price\":4.5e1,"
        "\"quantity_mw\":1E0}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        market_request fast, slow;
        market_protocol_reject w1, w2;
        cr_assert_eq(parse("order.submit", bodies[i], &fast, &w1), ANM_OK, "%zu: %s", i, w1.text);
        cr_assert_eq(market_protocol_parse_json("order.submit", 12, bodies[i], strlen(bodies[i]),
                                                &slow, &w2),
                     ANM_OK, "%zu: %s", i, w2.text);
        cr_assert_str_eq(fast.zone, slow.zone);
        cr_assert_str_eq(fast.der, slow.der);
        cr_assert_eq(fast.side, slow.side);
        cr_assert_eq(fast.client_order_id, slow.client_order_id);
        cr_assert_eq(fast.price_ticks, slow.price_ticks);
        cr_assert_eq(fast.availability_ticks, slow.availability_ticks);
        cr_assert_eq(fast.quantity, slow.quantity);
        cr_assert_eq(fast.min_quantity, slow.min_quantity);
        cr_assert_eq(fast.period_start_ms, slow.period_start_ms);
        cr_assert_eq(fast.valid_until_ms, slow.valid_until_ms);
        cr_assert_eq(fast.has_request_id, slow.has_request_id);
    }
    market_request q;
    market_protocol_reject w;
    cr_assert_eq(parse("order.submit", bodies[0], &q, &w), ANM_OK);
    cr_assert_eq(q.price_ticks, -1250);
    cr_assert_eq(q.availability_ticks, 300);
    cr_assert_eq(q.quantity, 1);
    cr_assert_eq(q.valid_until_ms, 1622624400000LL);
    cr_assert_eq(parse("order.submit", bodies[2], &q, &w), ANM_OK);
    cr_assert_str_eq(q.zone, "feeder33");
    cr_assert_eq(q.price_ticks, 4500);
    cr_assert_eq(q.quantity, 1000);
    /* a duplicate key is refused (jansson's reject), not taken by the fast path */
    cr_assert_eq(parse("order.submit", "{\"v\":1,\"kind\":\"order.submit\",\"client_order_id\":1,"
                       "\"zone\":\"z\",\"period_start\":\"2021-06-02T10:00:00Z\",\"side\":\"bid\","
                       "\"price\":1,\"price\":2,\"quantity_mw\":1}", &q, &w), ANM_EPROTO);
    cr_assert_str_eq(w.reason, "bad_json");
}

Test(protocol, reject_text_is_always_valid_utf8)
{
    market_request q = {.kind = MARKET_REQ_SUBMIT};
    char buf[512];
    /* a client's bytes cut inside a UTF-8 sequence, a stray continuation byte, an
     * overlong encoding; "é" (C3 A9) is kept */
    cr_assert_gt(market_protocol_write_reject(buf, sizeof buf, &q, "malformed", 1,
                                              "caf\xc3\xa9 \xe2\x82 \x80 \xc0\xaf"),
                 0);
    cr_assert(strstr(buf, "\"text\":\"caf\xc3\xa9 \\ufffd\\ufffd \\ufffd \\ufffd\\ufffd\"") !=
                  NULL,
              "%s", buf);
}
