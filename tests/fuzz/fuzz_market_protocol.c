/*
 * fuzz_market_protocol.c: the anm-market request parser
 * (market_protocol_parse) and the answer writers on arbitrary bytes. The
 * input is TOPIC '\0' BODY (without a NUL: the topic "order.submit" and the
 * whole input as body). Invariants: no crash or sanitizer report; a refusal
 * names a reason; an accepted request has a known kind whose name is the
 * topic's kind, a body within its size limit and, for orders, the fixed
 * point values the wire decimals round-trip to; every answer written is
 * valid JSON that echoes the request kind; and the allocation-free fast
 * path for order.submit gives exactly what the jansson path gives.
 */
#include "market/protocol.h"

#include "engine/error.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_json(const char *text, int n)
{
    if (n < 0)
        abort();
    json_t *j = json_loadb(text, (size_t)n, 0, NULL);
    if (j == NULL || !json_is_object(j) || json_integer_value(json_object_get(j, "v")) != 1)
        abort();
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    const void *topic = "order.submit", *body = data;
    size_t topic_size = 12, body_size = size;
    if (nul != NULL) {
        topic = data;
        topic_size = (size_t)(nul - data);
        body = nul + 1;
        body_size = size - topic_size - 1;
    }
    market_request q;
    market_protocol_reject why;
    memset(&why, 0, sizeof why);
    int rc = market_protocol_parse(topic, topic_size, body, body_size, &q, &why);
    char answer[2048];
    market_request slow;
    market_protocol_reject slow_why;
    int slow_rc = market_protocol_parse_json(topic, topic_size, body, body_size, &slow, &slow_why);
    if (slow_rc != rc)
        abort();
    if (rc == ANM_OK &&
        (slow.kind != q.kind || slow.has_request_id != q.has_request_id ||
         slow.request_id != q.request_id || strcmp(slow.zone, q.zone) != 0 ||
         strcmp(slow.der, q.der) != 0 || slow.period_start_ms != q.period_start_ms ||
         slow.side != q.side || slow.client_order_id != q.client_order_id ||
         slow.price_ticks != q.price_ticks || slow.availability_ticks != q.availability_ticks ||
         slow.quantity != q.quantity || slow.min_quantity != q.min_quantity ||
         slow.valid_until_ms != q.valid_until_ms || slow.order_id != q.order_id))
        abort();
    market_request_clear(&slow);
    if (rc == ANM_OK) {
        if ((unsigned)q.kind >= MARKET_REQ_COUNT_)
            abort();
        const char *name = market_request_kind_name(q.kind);
        size_t name_size = strlen(name);
        if (topic_size < name_size || memcmp(topic, name, name_size) != 0 ||
            (topic_size > name_size && ((const char *)topic)[name_size] != '/'))
            abort();
        if (body_size > (q.kind == MARKET_REQ_STATEMENT ? MARKET_PROTOCOL_MAX_STATEMENT_BYTES
                                                        : MARKET_PROTOCOL_MAX_BYTES))
            abort();
        if ((q.kind == MARKET_REQ_STATEMENT) != (q.statement != NULL))
            abort();
        if (q.kind == MARKET_REQ_SUBMIT || q.kind == MARKET_REQ_REPLACE) {
            int32_t ticks;
            int64_t units;
            if (q.zone[0] == '\0' || q.side > MARKET_REQUIREMENT ||
                market_protocol_price_ticks(q.price_ticks / 100.0, &ticks) != ANM_OK ||
                ticks != q.price_ticks ||
                market_protocol_quantity_units(q.quantity / 1000.0, &units) != ANM_OK ||
                units != q.quantity)
                abort();
        }
        market_result ok;
        memset(&ok, 0, sizeof ok);
        ok.order_id = 1u << 24;
        check_json(answer, market_protocol_write_ack(answer, sizeof answer, &q, &ok));
    } else {
        if (rc != ANM_EPROTO || why.reason[0] == '\0')
            abort();
        check_json(answer, market_protocol_write_reject(answer, sizeof answer, &q, why.reason, 1,
                                                        why.text));
    }
    market_request_clear(&q);
    return 0;
}
