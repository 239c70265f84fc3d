/*
 * Integration tests of the bus (engine/bus.h, engine/reactor.h,
 * engine/telemetry_frame.h) over real ZeroMQ sockets on ephemeral loopback
 * ports: PUB/SUB filters, ROUTER/DEALER request/ack, malformed frames
 * rejected with their reasons, and SIGTERM draining a forked service.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "engine/bus.h"
#include "engine/clock.h"
#include "engine/error.h"
#include "engine/reactor.h"
#include "engine/telemetry_frame.h"

/* Waits up to ms for socket to be readable; 1 if it is. */
static int readable(anm_socket *socket, long ms)
{
    zmq_pollitem_t item = {.socket = anm_socket_handle(socket), .fd = -1, .events = ZMQ_POLLIN};
    return zmq_poll(&item, 1, ms) == 1;
}

static anm_socket *bind_ephemeral(anm_bus *bus, anm_socket_type type, char *endpoint, size_t size)
{
    anm_socket *socket = NULL;
    anm_error_detail detail;
    anm_error_detail_clear(&detail);
    cr_assert_eq(anm_socket_new(bus, type, "@tcp://127.0.0.1:*", NULL, &socket, &detail), ANM_OK,
                 "%s", detail.message);
    cr_assert_eq(anm_socket_last_endpoint(socket, endpoint, size), ANM_OK);
    return socket;
}

/* ---- sockets and endpoints ------------------------------------------------ */

Test(bus, ephemeral_bind_reports_its_port_and_address_in_use_is_an_error)
{
    anm_bus *bus = NULL;
    cr_assert_eq(anm_bus_new(&bus), ANM_OK);
    char endpoint[256];
    anm_socket *pub = bind_ephemeral(bus, ANM_SOCKET_PUB, endpoint, sizeof endpoint);
    cr_assert_eq(strncmp(endpoint, "tcp://127.0.0.1:", 16), 0, "%s", endpoint);
    long port = strtol(endpoint + 16, NULL, 10);
    cr_assert(port > 0 && port < 65536, "%s", endpoint);

    /* the same port again, with an explicit bind prefix */
    char again[300];
    snprintf(again, sizeof again, "@%s", endpoint);
    anm_socket *other = NULL;
    anm_error_detail detail;
    cr_assert_eq(anm_socket_new(bus, ANM_SOCKET_PUB, again, NULL, &other, &detail), ANM_ENET);
    cr_assert_null(other);
    char expected[400];
    snprintf(expected, sizeof expected, "could not bind pub socket to \"%s\": %s", endpoint,
             zmq_strerror(EADDRINUSE));
    cr_assert_str_eq(detail.message, expected);
    cr_assert_str_eq(detail.path, endpoint);

    cr_assert_eq(anm_socket_new(bus, ANM_SOCKET_SUB, ">bogus://x", NULL, &other, &detail),
                 ANM_ECONFIG);
    cr_assert_str_eq(detail.message, "could not connect sub socket to \"bogus://x\": Protocol not supported");
    cr_assert_eq(anm_socket_new(bus, ANM_SOCKET_SUB, "tcp://127.0.0.1:1,,", NULL, &other, &detail),
                 ANM_ECONFIG);
    cr_assert_str_eq(detail.message, "invalid endpoint list \"tcp://127.0.0.1:1,,\": empty entry");
    anm_socket_destroy(&pub);
    anm_socket_destroy(&pub);
    cr_assert_null(pub);
    anm_bus_destroy(&bus);
    anm_bus_destroy(&bus);
}

Test(bus, options_reach_the_zeromq_socket)
{
    anm_bus *bus = NULL;
    anm_bus_new(&bus);
    anm_socket_options options;
    anm_socket_options_default(&options);
    options.send_hwm = 17;
    options.recv_hwm = 23;
    options.linger_ms = 250;
    options.identity = "replay-1";
    anm_socket *dealer = NULL;
    /* ipc endpoint, default direction for a DEALER (connect: no file needed) */
    cr_assert_eq(anm_socket_new(bus, ANM_SOCKET_DEALER, "ipc:///nonexistent/anm-bus-test", &options,
                                &dealer, NULL),
                 ANM_OK);
    int value = 0;
    size_t size = sizeof value;
    zmq_getsockopt(anm_socket_handle(dealer), ZMQ_SNDHWM, &value, &size);
    cr_assert_eq(value, 17);
    zmq_getsockopt(anm_socket_handle(dealer), ZMQ_RCVHWM, &value, &size);
    cr_assert_eq(value, 23);
    zmq_getsockopt(anm_socket_handle(dealer), ZMQ_LINGER, &value, &size);
    cr_assert_eq(value, 250);
    char id[64];
    size = sizeof id;
    zmq_getsockopt(anm_socket_handle(dealer), ZMQ_ROUTING_ID, id, &size);
    cr_assert_eq(size, 8u);
    cr_assert_eq(memcmp(id, "replay-1", 8), 0);
    anm_socket_destroy(&dealer);
    anm_bus_destroy(&bus);
}

/* ---- PUB/SUB --------------------------------------------------------------- */

static void publish(anm_socket *pub, const char *topic, const char *zone, int n)
{
    json_t *body = json_pack("{s:i, s:s, s:s, s:[[i, I, i, i]]}", "v", 1, "kind", "signal.latest",
                             "zone", zone, "samples", n, (json_int_t)1609459200000, n, 0);
    cr_assert_eq(anm_bus_send_json(pub, NULL, topic, body, 0), ANM_OK);
    json_decref(body);
}

Test(bus, pub_sub_delivers_only_the_subscribed_topics, .timeout = 20)
{
    anm_bus *bus = NULL;
    anm_bus_new(&bus);
    char endpoint[256];
    anm_socket *pub = bind_ephemeral(bus, ANM_SOCKET_PUB, endpoint, sizeof endpoint);
    anm_socket *sub = NULL;
    cr_assert_eq(anm_socket_new(bus, ANM_SOCKET_SUB, endpoint, NULL, &sub, NULL), ANM_OK);
    cr_assert_eq(anm_socket_subscribe(sub, "signal.latest/zone-a"), ANM_OK);
    cr_assert_eq(anm_socket_subscribe(pub, "x"), ANM_EINVAL, "only SUB sockets filter");

    /* readiness: publish probes until the subscription has reached the PUB
     * (a PUB drops what it sends before that: ZeroMQ's slow joiner) */
    int ready = 0;
    for (int attempt = 0; attempt < 500 && !ready; attempt++) {
        publish(pub, "signal.latest/zone-a", "probe", 0);
        ready = readable(sub, 10);
    }
    cr_assert(ready, "subscription never became active");

    publish(pub, "signal.latest/zone-b", "zone-b", 1);
    publish(pub, "signal.latest/zone-a", "zone-a", 2);
    publish(pub, "signal.latest/zone-b", "zone-b", 3);
    publish(pub, "signal.latest/zone-a", "zone-a", 4);
    publish(pub, "signal.latest/zone-a", "end", 5);

    /* ZeroMQ keeps order per publisher, so everything sent before "end"
     * that got through is here before it: probes, then 2 and 4, no zone-b */
    int got[8], n_got = 0;
    for (;;) {
        cr_assert(readable(sub, 5000), "no message");
        anm_msg *msg = NULL;
        json_t *body = NULL;
        anm_bus_reject why;
        cr_assert_eq(anm_bus_recv_json(sub, NULL, 0, 0, &msg, &body, &why), ANM_OK, "%s", why.text);
        size_t topic_size;
        const char *topic = anm_msg_part(msg, 0, &topic_size);
        cr_assert_eq(topic_size, strlen("signal.latest/zone-a"));
        cr_assert_eq(memcmp(topic, "signal.latest/zone-a", topic_size), 0);
        const char *zone = json_string_value(json_object_get(body, "zone"));
        int n = (int)json_integer_value(json_array_get(json_array_get(json_object_get(body, "samples"), 0), 0));
        int end = strcmp(zone, "end") == 0;
        if (strcmp(zone, "zone-a") == 0 && n_got < 8)
            got[n_got++] = n;
        else
            cr_assert(end || strcmp(zone, "probe") == 0, "unexpected zone %s", zone);
        json_decref(body);
        anm_msg_destroy(&msg);
        if (end)
            break;
    }
    cr_assert_eq(n_got, 2);
    cr_assert_eq(got[0], 2);
    cr_assert_eq(got[1], 4);
    anm_socket_destroy(&sub);
    anm_socket_destroy(&pub);
    anm_bus_destroy(&bus);
}

/* ---- a small ingest-like server on the reactor ------------------------------ */

typedef struct server {
    anm_socket *router;
    int handled;
    anm_telemetry_batch batch;
    char last_route[64];
} server;

static void reply(server *s, const anm_frame *route, json_t *body)
{
    const char *kind = json_string_value(json_object_get(body, "kind"));
    cr_assert_eq(anm_bus_send_json(s->router, route, kind, body, ANM_BUS_DONTWAIT), ANM_OK);
    json_decref(body);
}

/* [route][telemetry.batch][frame] -> ack or reject, as anm-ingest does */
static int on_request(anm_reactor *reactor, anm_socket *socket, void *arg)
{
    (void)reactor;
    server *s = arg;
    anm_msg *msg = NULL;
    if (anm_socket_recv(socket, &msg, ANM_BUS_DONTWAIT) != ANM_OK)
        return ANM_OK;
    s->handled++;
    size_t route_size, topic_size, body_size;
    const void *route_data = anm_msg_part(msg, 0, &route_size);
    anm_frame route = {route_data, route_size};
    snprintf(s->last_route, sizeof s->last_route, "%.*s", (int)route_size, (const char *)route_data);
    const void *topic = anm_msg_part(msg, 1, &topic_size);
    const void *body = anm_msg_part(msg, 2, &body_size);
    if (anm_msg_parts(msg) != 3) {
        reply(s, &route, anm_telemetry_reject_json(0, 0, 0, "bad_envelope", "expected [topic][body]"));
    } else if (topic_size != strlen(ANM_TELEMETRY_TOPIC) ||
               memcmp(topic, ANM_TELEMETRY_TOPIC, topic_size) != 0) {
        reply(s, &route, anm_telemetry_reject_json(0, 0, 0, "unknown_kind", "not a telemetry batch"));
    } else {
        anm_telemetry_reject why;
        if (anm_telemetry_decode_any(body, body_size, NULL, &s->batch, &why) == ANM_OK)
            reply(s, &route, anm_telemetry_ack_json(s->batch.sender_id, s->batch.seq, s->batch.count));
        else
            reply(s, &route,
                  anm_telemetry_reject_json(why.have_header, s->batch.sender_id, s->batch.seq,
                                            anm_telemetry_reason_code(why.reason), why.text));
    }
    anm_msg_destroy(&msg);
    return ANM_OK;
}

typedef struct rig {
    anm_bus *bus;
    anm_clock *clock;
    anm_reactor *reactor;
    server server;
    char endpoint[256];
} rig;

static void rig_up(rig *r)
{
    memset(r, 0, sizeof *r);
    cr_assert_eq(anm_bus_new(&r->bus), ANM_OK);
    r->clock = anm_clock_new_simulated(1609459200000, 0.0);
    cr_assert_eq(anm_reactor_new(r->clock, &r->reactor), ANM_OK);
    r->server.router = bind_ephemeral(r->bus, ANM_SOCKET_ROUTER, r->endpoint, sizeof r->endpoint);
    anm_telemetry_batch_init(&r->server.batch);
    cr_assert_eq(anm_reactor_add_socket(r->reactor, r->server.router, on_request, &r->server), ANM_OK);
}

static void rig_down(rig *r)
{
    anm_reactor_destroy(&r->reactor);
    anm_socket_destroy(&r->server.router);
    anm_telemetry_batch_free(&r->server.batch);
    anm_clock_destroy(&r->clock);
    anm_bus_destroy(&r->bus);
}

static anm_socket *dealer(rig *r, const char *identity)
{
    anm_socket_options options;
    anm_socket_options_default(&options);
    options.identity = identity;
    anm_socket *socket = NULL;
    char endpoint[300];
    snprintf(endpoint, sizeof endpoint, ">%s", r->endpoint);
    cr_assert_eq(anm_socket_new(r->bus, ANM_SOCKET_DEALER, endpoint, &options, &socket, NULL), ANM_OK);
    return socket;
}

/* Lets the server handle one more request, then reads the reply on client. */
static json_t *exchange(rig *r, anm_socket *client, const char *expected_kind)
{
    int before = r->server.handled;
    while (r->server.handled == before)
        cr_assert_geq(anm_reactor_run_once(r->reactor, 5000), 0);
    cr_assert(readable(client, 5000), "no reply");
    anm_msg *msg = NULL;
    json_t *body = NULL;
    anm_bus_reject why;
    cr_assert_eq(anm_bus_recv_json(client, NULL, 0, 0, &msg, &body, &why), ANM_OK, "%s", why.text);
    cr_assert_str_eq(json_string_value(json_object_get(body, "kind")), expected_kind);
    anm_msg_destroy(&msg);
    return body;
}

static void send_frame(anm_socket *client, const void *data, size_t size)
{
    anm_frame frames[2] = {{ANM_TELEMETRY_TOPIC, strlen(ANM_TELEMETRY_TOPIC)}, {data, size}};
    cr_assert_eq(anm_socket_send(client, frames, 2, 0), ANM_OK);
}

static uint8_t *batch_frame(uint32_t sender, uint64_t seq, size_t n, size_t *size)
{
    anm_telemetry_batch b;
    anm_telemetry_batch_init(&b);
    b.sender_id = sender;
    b.seq = seq;
    for (size_t i = 0; i < n; i++)
        anm_telemetry_batch_push(&b, (uint32_t)i, 1609459200000 + (int64_t)i, (double)i, 0);
    *size = anm_telemetry_frame_size(n);
    uint8_t *frame = malloc(*size);
    cr_assert_eq(anm_telemetry_encode(&b, frame, *size, NULL), ANM_OK);
    anm_telemetry_batch_free(&b);
    return frame;
}

Test(bus, router_dealer_request_and_ack_are_routed_by_identity, .timeout = 20)
{
    rig r;
    rig_up(&r);
    anm_socket *a = dealer(&r, "sender-a");
    anm_socket *b = dealer(&r, "sender-b");
    size_t size_a, size_b;
    uint8_t *frame_a = batch_frame(1, 100, 500, &size_a);
    uint8_t *frame_b = batch_frame(2, 200, 3, &size_b);

    send_frame(a, frame_a, size_a);
    json_t *ack = exchange(&r, a, "telemetry.ack");
    cr_assert_str_eq(r.server.last_route, "sender-a");
    cr_assert_eq(json_integer_value(json_object_get(ack, "sender_id")), 1);
    cr_assert_eq(json_integer_value(json_object_get(ack, "seq")), 100);
    cr_assert_eq(json_integer_value(json_object_get(ack, "count")), 500);
    cr_assert(r.server.batch.samples[499].value == 499.0);
    json_decref(ack);

    send_frame(b, frame_b, size_b);
    ack = exchange(&r, b, "telemetry.ack");
    cr_assert_str_eq(r.server.last_route, "sender-b");
    cr_assert_eq(json_integer_value(json_object_get(ack, "seq")), 200);
    json_decref(ack);
    cr_assert_not(readable(a, 0), "sender-a must not see sender-b's ack");

    /* the JSON form through the same path */
    anm_telemetry_batch j;
    anm_telemetry_batch_init(&j);
    j.sender_id = 1;
    j.seq = 101;
    anm_telemetry_batch_push(&j, 5, 1609459200000, 2.5, 0);
    size_t length;
    char *text = anm_telemetry_encode_json(&j, &length);
    send_frame(a, text, length);
    ack = exchange(&r, a, "telemetry.ack");
    cr_assert_eq(json_integer_value(json_object_get(ack, "seq")), 101);
    cr_assert(r.server.batch.samples[0].value == 2.5);
    json_decref(ack);

    free(text);
    anm_telemetry_batch_free(&j);
    free(frame_a);
    free(frame_b);
    anm_socket_destroy(&a);
    anm_socket_destroy(&b);
    rig_down(&r);
}

Test(bus, a_reply_to_a_departed_peer_fails_with_not_found)
{
    anm_bus *bus = NULL;
    anm_bus_new(&bus);
    char endpoint[256];
    anm_socket *router = bind_ephemeral(bus, ANM_SOCKET_ROUTER, endpoint, sizeof endpoint);
    anm_frame frames[3] = {{"nobody", 6}, {"telemetry.ack", 13}, {"{}", 2}};
    cr_assert_eq(anm_socket_send(router, frames, 3, ANM_BUS_DONTWAIT), ANM_ENOTFOUND);
    anm_socket_destroy(&router);
    anm_bus_destroy(&bus);
}

static void expect_reject(rig *r, anm_socket *client, const char *code, const char *text,
                          long long seq)
{
    json_t *body = exchange(r, client, "telemetry.reject");
    cr_assert_str_eq(json_string_value(json_object_get(body, "code")), code);
    cr_assert_str_eq(json_string_value(json_object_get(body, "text")), text);
    json_t *s = json_object_get(body, "seq");
    if (seq < 0)
        cr_assert_null(s, "no trustworthy header, so no seq");
    else
        cr_assert_eq(json_integer_value(s), seq);
    json_decref(body);
}

static void reseal(uint8_t *frame, size_t size)
{
    uint32_t crc = anm_crc32c(frame, size - 4);
    for (int i = 0; i < 4; i++)
        frame[size - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
}

Test(bus, malformed_frames_are_rejected_with_their_reason, .timeout = 20)
{
    rig r;
    rig_up(&r);
    anm_socket *client = dealer(&r, "fuzzy");
    size_t size;
    uint8_t *frame = batch_frame(9, 77, 4, &size); /* 24 + 4 * 22 + 4 = 116 bytes */
    uint8_t *copy = malloc(size + 1);

    send_frame(client, frame, size - 1);
    expect_reject(&r, client, "truncated", "frame of 115 bytes is shorter than the 116 that 4 samples need", -1);
    send_frame(client, frame, 10);
    expect_reject(&r, client, "truncated", "frame of 10 bytes is shorter than header and checksum (28)", -1);

    memcpy(copy, frame, size);
    copy[size] = 0;
    send_frame(client, copy, size + 1);
    expect_reject(&r, client, "bad_length", "frame of 117 bytes has 1 bytes after 4 samples", -1);

    copy[4] = 9;
    send_frame(client, copy, size);
    expect_reject(&r, client, "bad_version", "frame version 9 is not supported (expected 1)", -1);
    copy[4] = 1;

    copy[24 + 22 + 12] ^= 0x40; /* a bit of sample 1's value, checksum left as it was */
    send_frame(client, copy, size);
    json_t *body = exchange(&r, client, "telemetry.reject");
    cr_assert_str_eq(json_string_value(json_object_get(body, "code")), "bad_checksum");
    cr_assert_null(json_object_get(body, "seq"));
    json_decref(body);

    const uint8_t nan_bits[8] = {0, 0, 0, 0, 0, 0, 0xf8, 0x7f}; /* quiet NaN, little-endian */
    memcpy(copy + 24 + 22 + 12, nan_bits, 8);
    reseal(copy, size);
    send_frame(client, copy, size);
    expect_reject(&r, client, "non_finite", "sample 1 (signal 1): value is not finite", 77);

    const char *json_v2 = "{\"v\":2,\"kind\":\"telemetry.batch\"}";
    send_frame(client, json_v2, strlen(json_v2));
    expect_reject(&r, client, "bad_version", "telemetry.batch version 2 is not supported (expected 1)", -1);
    const char *json_type = "{\"v\":1,\"kind\":\"telemetry.batch\",\"sender_id\":\"9\",\"seq\":1,\"samples\":[]}";
    send_frame(client, json_type, strlen(json_type));
    expect_reject(&r, client, "bad_field", "field \"sender_id\": expected integer, got string", -1);

    anm_frame three[3] = {{ANM_TELEMETRY_TOPIC, 15}, {frame, size}, {"x", 1}};
    cr_assert_eq(anm_socket_send(client, three, 3, 0), ANM_OK);
    expect_reject(&r, client, "bad_envelope", "expected [topic][body]", -1);
    anm_frame other[2] = {{"market.order", 12}, {frame, size}};
    cr_assert_eq(anm_socket_send(client, other, 2, 0), ANM_OK);
    expect_reject(&r, client, "unknown_kind", "not a telemetry batch", -1);

    /* and the server still serves */
    send_frame(client, frame, size);
    body = exchange(&r, client, "telemetry.ack");
    cr_assert_eq(json_integer_value(json_object_get(body, "seq")), 77);
    json_decref(body);
    cr_assert_eq(r.server.handled, 11);

    free(copy);
    free(frame);
    anm_socket_destroy(&client);
    rig_down(&r);
}

/* ---- control message schemas ------------------------------------------------ */

static void expect_parse(const char *topic, const char *body, anm_bus_reason reason, const char *text)
{
    json_t *json = NULL;
    anm_bus_reject why;
    int rc = anm_bus_parse_json(NULL, 0, topic, strlen(topic), body, strlen(body), &json, NULL, &why);
    if (reason == ANM_BUS_OK) {
        cr_assert_eq(rc, ANM_OK, "%s: %s", body, why.text);
        cr_assert_not_null(json);
        json_decref(json);
        return;
    }
    cr_assert_eq(rc, ANM_EPROTO, "%s", body);
    cr_assert_null(json);
    cr_assert_str_eq(anm_bus_reason_code(why.reason), anm_bus_reason_code(reason), "%s", body);
    cr_assert_str_eq(why.text, text);
}

Test(bus, control_messages_are_checked_strictly_against_their_schema)
{
    expect_parse("telemetry.ack", "{\"v\":1,\"kind\":\"telemetry.ack\",\"sender_id\":1,\"seq\":2}", ANM_BUS_OK, "");
    expect_parse("ingest.status/main",
                 "{\"v\":1,\"kind\":\"ingest.status\",\"time\":\"2021-03-28T01:00:00Z\","
                 "\"journal_depth\":0,\"rejects\":{},\"samples_per_s\":1.5}",
                 ANM_BUS_OK, "");
    expect_parse("telemetry.ack", "{\"v\":2,\"kind\":\"telemetry.ack\",\"sender_id\":1,\"seq\":2}",
                 ANM_BUS_WRONG_VERSION, "telemetry.ack version 2 is not supported (expected 1)");
    expect_parse("telemetry.ack", "{\"v\":\"1\",\"kind\":\"telemetry.ack\"}", ANM_BUS_WRONG_VERSION,
                 "field \"v\": expected integer, got string");
    expect_parse("telemetry.ack", "{\"kind\":\"telemetry.ack\"}", ANM_BUS_WRONG_VERSION,
                 "field \"v\" is missing");
    expect_parse("telemetry.ack", "{\"v\":1,\"kind\":\"telemetry.ack\",\"sender_id\":1}",
                 ANM_BUS_MISSING_FIELD, "field \"seq\" is missing");
    expect_parse("telemetry.ack", "{\"v\":1,\"kind\":\"telemetry.ack\",\"sender_id\":1,\"seq\":2.0}",
                 ANM_BUS_WRONG_TYPE, "field \"seq\": expected integer, got number");
    expect_parse("telemetry.ack", "{\"v\":1,\"kind\":\"telemetry.ack\",\"sender_id\":4294967296,\"seq\":2}",
                 ANM_BUS_OUT_OF_RANGE, "field \"sender_id\": 4294967296 is outside [0, 4294967295]");
    expect_parse("telemetry.ack", "{\"v\":1,\"kind\":\"telemetry.ack\",\"sender_id\":1,\"seq\":2,\"sqe\":3}",
                 ANM_BUS_UNKNOWN_FIELD, "field \"sqe\" is not part of telemetry.ack v1");
    expect_parse("telemetry.ack", "{\"v\":1,\"kind\":\"telemetry.reject\",\"code\":\"x\",\"text\":\"y\"}",
                 ANM_BUS_KIND_MISMATCH, "kind \"telemetry.reject\" does not match topic kind \"telemetry.ack\"");
    expect_parse("market.order", "{}", ANM_BUS_UNKNOWN_KIND, "unknown message kind \"market.order\"");
    expect_parse("Telemetry.ack", "{}", ANM_BUS_BAD_ENVELOPE,
                 "topic must be 1 to 128 bytes of [a-z0-9._-], optionally then '/'");
    expect_parse("telemetry.ack", "[1]", ANM_BUS_BAD_JSON, "body is array, not an object");
    expect_parse("telemetry.ack", "{\"v\":1,\"v\":1}", ANM_BUS_BAD_JSON,
                 "telemetry.ack body: duplicate object key near '\"v\"' at column 10");
    expect_parse("ingest.status", "{\"v\":1,\"kind\":\"ingest.status\",\"time\":\"yesterday\","
                 "\"journal_depth\":0,\"rejects\":{}}",
                 ANM_BUS_WRONG_TYPE, "field \"time\": expected ISO 8601 UTC time string, got \"yesterday\"");

    /* oversized: a 4096-byte limit for acks, checked before parsing */
    char big[5000];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[0] = '{';
    big[sizeof big - 2] = '}';
    expect_parse("telemetry.ack", big, ANM_BUS_OVERSIZED, "telemetry.ack body of 4999 bytes exceeds the limit of 4096");

    /* a service's own table */
    static const anm_field_spec fields[] = {{"price", ANM_FIELD_NUMBER, 1, 0, 0}, {NULL, ANM_FIELD_STRING, 0, 0, 0}};
    static const anm_bus_schema table[] = {{"market.order", 3, 1024, 0, fields}};
    json_t *json = NULL;
    const anm_bus_schema *used = NULL;
    const char *order = "{\"v\":3,\"kind\":\"market.order\",\"price\":42.5}";
    cr_assert_eq(anm_bus_parse_json(table, 1, "market.order/zone-a", 19, order, strlen(order), &json, &used, NULL), ANM_OK);
    cr_assert_eq(used, &table[0]);
    json_decref(json);
}

Test(bus, recv_json_rejects_a_wrong_part_count_but_keeps_the_route, .timeout = 20)
{
    anm_bus *bus = NULL;
    anm_bus_new(&bus);
    char endpoint[256];
    anm_socket *router = bind_ephemeral(bus, ANM_SOCKET_ROUTER, endpoint, sizeof endpoint);
    anm_socket_options options;
    anm_socket_options_default(&options);
    options.identity = "peer";
    anm_socket *client = NULL;
    cr_assert_eq(anm_socket_new(bus, ANM_SOCKET_DEALER, endpoint, &options, &client, NULL), ANM_OK);
    anm_frame one = {"ingest.status.request", 21};
    cr_assert_eq(anm_socket_send(client, &one, 1, 0), ANM_OK);
    cr_assert(readable(router, 5000));
    anm_msg *msg = NULL;
    json_t *body = NULL;
    anm_bus_reject why;
    cr_assert_eq(anm_bus_recv_json(router, NULL, 0, 0, &msg, &body, &why), ANM_EPROTO);
    cr_assert_eq(why.reason, ANM_BUS_BAD_ENVELOPE);
    cr_assert_str_eq(why.text, "expected 3 parts, got 2");
    size_t size;
    const char *route = anm_msg_part(msg, 0, &size);
    cr_assert_eq(size, 4u);
    cr_assert_eq(memcmp(route, "peer", 4), 0);
    anm_msg_destroy(&msg);

    json_t *request = json_pack("{s:i, s:s, s:s}", "v", 1, "kind", "ingest.status.request", "id", "q1");
    cr_assert_eq(anm_bus_send_json(client, NULL, "ingest.status.request", request, 0), ANM_OK);
    json_decref(request);
    cr_assert(readable(router, 5000));
    cr_assert_eq(anm_bus_recv_json(router, NULL, 0, 0, &msg, &body, &why), ANM_OK, "%s", why.text);
    cr_assert_str_eq(json_string_value(json_object_get(body, "id")), "q1");
    json_decref(body);
    anm_msg_destroy(&msg);
    anm_socket_destroy(&client);
    anm_socket_destroy(&router);
    anm_bus_destroy(&bus);
}

/* ---- SIGTERM: drain and exit 0 ---------------------------------------------- */

typedef struct child_state {
    anm_socket *router;
    int report_fd;
    int drain_calls;
    server server;
} child_state;

static int child_drain(anm_reactor *reactor, int signal_number, void *arg)
{
    child_state *c = arg;
    c->drain_calls++;
    if (c->drain_calls == 1) {
        /* stop accepting, then pretend one flush is still in flight */
        anm_reactor_remove_socket(reactor, c->router);
        return ANM_EAGAIN;
    }
    char line[64];
    int n = snprintf(line, sizeof line, "drained signal=%d calls=%d handled=%d\n", signal_number,
                     c->drain_calls, c->server.handled);
    if (n > 0 && write(c->report_fd, line, (size_t)n) != n)
        return ANM_EIO;
    return ANM_OK;
}

/* The forked service: no Criterion asserts here, only an exit status. */
static int child_main(int report_fd)
{
    anm_bus *bus = NULL;
    anm_clock *clock = anm_clock_new_real();
    anm_reactor *reactor = NULL;
    child_state c = {.report_fd = report_fd};
    char endpoint[256];
    int rc = ANM_EINTERNAL;
    if (clock == NULL || anm_bus_new(&bus) != ANM_OK || anm_reactor_new(clock, &reactor) != ANM_OK)
        goto out;
    if (anm_socket_new(bus, ANM_SOCKET_ROUTER, "@tcp://127.0.0.1:*", NULL, &c.router, NULL) != ANM_OK ||
        anm_socket_last_endpoint(c.router, endpoint, sizeof endpoint) != ANM_OK)
        goto out;
    c.server.router = c.router;
    anm_telemetry_batch_init(&c.server.batch);
    if (anm_reactor_add_socket(reactor, c.router, on_request, &c.server) != ANM_OK ||
        anm_reactor_handle_signals(reactor, child_drain, &c) != ANM_OK)
        goto out;
    char line[300];
    int n = snprintf(line, sizeof line, "%s\n", endpoint);
    if (write(report_fd, line, (size_t)n) != n) /* readiness: signals are handled from here */
        goto out;
    rc = anm_reactor_run(reactor);
out:
    anm_telemetry_batch_free(&c.server.batch);
    anm_reactor_destroy(&reactor);
    anm_socket_destroy(&c.router);
    anm_bus_destroy(&bus);
    anm_clock_destroy(&clock);
    return rc == ANM_OK ? 0 : 10 - rc;
}

/* Reads one line from fd (blocking; the test's timeout bounds it). */
static void read_line(int fd, char *buf, size_t size)
{
    size_t n = 0;
    while (n + 1 < size) {
        ssize_t got = read(fd, buf + n, 1);
        cr_assert_eq(got, 1, "the child closed the pipe early");
        if (buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = '\0';
}

Test(bus, sigterm_drains_and_the_service_exits_0, .timeout = 20)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        close(fds[0]);
        _exit(child_main(fds[1]));
    }
    close(fds[1]);
    char endpoint[300];
    read_line(fds[0], endpoint, sizeof endpoint);

    /* it serves: one batch, one ack */
    anm_bus *bus = NULL;
    anm_bus_new(&bus);
    anm_socket *client = NULL;
    cr_assert_eq(anm_socket_new(bus, ANM_SOCKET_DEALER, endpoint, NULL, &client, NULL), ANM_OK);
    size_t size;
    uint8_t *frame = batch_frame(4, 11, 10, &size);
    send_frame(client, frame, size);
    cr_assert(readable(client, 5000), "no ack from the child");
    anm_msg *msg = NULL;
    json_t *ack = NULL;
    cr_assert_eq(anm_bus_recv_json(client, NULL, 0, 0, &msg, &ack, NULL), ANM_OK);
    cr_assert_eq(json_integer_value(json_object_get(ack, "seq")), 11);
    json_decref(ack);
    anm_msg_destroy(&msg);

    cr_assert_eq(kill(pid, SIGTERM), 0);
    char report[128];
    read_line(fds[0], report, sizeof report);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "the child was killed by signal %d", WTERMSIG(status));
    cr_assert_eq(WEXITSTATUS(status), 0);
    char expected[128];
    snprintf(expected, sizeof expected, "drained signal=%d calls=2 handled=1", SIGTERM);
    cr_assert_str_eq(report, expected);

    close(fds[0]);
    free(frame);
    anm_socket_destroy(&client);
    anm_bus_destroy(&bus);
}
