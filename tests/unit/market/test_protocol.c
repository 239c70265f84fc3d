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
