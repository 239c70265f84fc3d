/*
 * test_iec104_link.c: the IEC 104 link-layer state machine with a stepped
 * clock: STARTDT/STOPDT/TESTFR, k-window back-pressure, w acknowledgements,
 * t1/t2/t3, sequence wrap at 32768, and peers that break the protocol.
 * Frames on the wire are checked byte by byte where the standard fixes them.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "gateway/iec104_link.h"

/* A minimal ASDU (C_IC_NA_1 act, CA 1, QOI 20) and an M_ME_NC_1 one whose
 * IOA carries a marker so order can be checked. */
static const uint8_t gi_asdu[] = {0x64, 0x01, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x14};

static size_t marked_asdu(uint8_t *out, unsigned marker)
{
    const uint8_t asdu[] = {0x0D, 0x01, 0x03, 0x00, 0x01, 0x00,
                            (uint8_t)(marker & 0xFF), (uint8_t)(marker >> 8), 0x00,
                            0x00, 0x00, 0x80, 0x3F, 0x00};
    memcpy(out, asdu, sizeof asdu);
    return sizeof asdu;
}

static unsigned marker_of(const uint8_t *asdu)
{
    return (unsigned)asdu[6] | ((unsigned)asdu[7] << 8);
}

static gateway_iec104_link *make_link(gateway_iec104_role role)
{
    gateway_iec104_link_config config;
    gateway_iec104_link_config_default(&config, role);
    gateway_iec104_link *link = NULL;
    cr_assert_eq(gateway_iec104_link_new(&config, 0, &link, NULL), ANM_OK);
    return link;
}

static void feed_all(gateway_iec104_link *link, const uint8_t *data, size_t size, int64_t now)
{
    size_t used = 0;
    cr_assert_eq(gateway_iec104_link_feed(link, data, size, now, &used), ANM_OK);
    cr_assert_eq(used, size);
}

static void feed_u(gateway_iec104_link *link, uint8_t function, int64_t now)
{
    uint8_t frame[6];
    cr_assert_eq(gateway_iec104_encode_u_frame(function, frame, sizeof frame, NULL), ANM_OK);
    feed_all(link, frame, 6, now);
}

static void feed_s(gateway_iec104_link *link, uint16_t receive_sequence, int64_t now)
{
    uint8_t frame[6];
    cr_assert_eq(gateway_iec104_encode_s_frame(receive_sequence, frame, sizeof frame, NULL),
                 ANM_OK);
    feed_all(link, frame, 6, now);
}

static void feed_i(gateway_iec104_link *link, uint16_t ns, uint16_t nr, int64_t now)
{
    uint8_t frame[64];
    size_t size = 0;
    cr_assert_eq(gateway_iec104_encode_i_frame(ns, nr, gi_asdu, sizeof gi_asdu, frame,
                                               sizeof frame, &size),
                 ANM_OK);
    feed_all(link, frame, size, now);
}

/* Takes all output; returns its size and copies up to capacity into out. */
static size_t take_output(gateway_iec104_link *link, uint8_t *out, size_t capacity)
{
    size_t size = 0;
    const uint8_t *bytes = gateway_iec104_link_output(link, &size);
    cr_assert(size <= capacity, "output of %zu octets exceeds %zu", size, capacity);
    if (size > 0)
        memcpy(out, bytes, size);
    gateway_iec104_link_output_consume(link, size);
    return size;
}

static void expect_output(gateway_iec104_link *link, const uint8_t *want, size_t want_size)
{
    uint8_t got[4096];
    size_t size = take_output(link, got, sizeof got);
    cr_assert_eq(size, want_size, "output of %zu octets, expected %zu", size, want_size);
    cr_assert(memcmp(got, want, want_size) == 0, "output bytes differ");
}

static void expect_no_output(gateway_iec104_link *link)
{
    size_t size = 0;
    (void)gateway_iec104_link_output(link, &size);
    cr_assert_eq(size, 0, "unexpected output of %zu octets", size);
}

static int next_kind(gateway_iec104_link *link)
{
    static gateway_iec104_event event;
    if (!gateway_iec104_link_next_event(link, &event))
        return 0;
    return (int)event.kind;
}

static void expect_closed(gateway_iec104_link *link, int error, const char *reason)
{
    static gateway_iec104_event event;
    int found = 0;
    while (gateway_iec104_link_next_event(link, &event)) {
        if (event.kind == GATEWAY_IEC104_EVENT_CLOSED) {
            found = 1;
            break;
        }
    }
    cr_assert(found, "no CLOSED event");
    cr_assert_eq(event.error, error);
    cr_assert_str_eq(event.reason, reason);
    cr_assert_eq(gateway_iec104_link_get_state(link), GATEWAY_IEC104_LINK_CLOSED);
}

static void drain_events(gateway_iec104_link *link)
{
    static gateway_iec104_event event;
    while (gateway_iec104_link_next_event(link, &event)) {
    }
}

static const uint8_t STARTDT_CON[] = {0x68, 0x04, 0x0B, 0x00, 0x00, 0x00};

/* A server that has received STARTDT act and answered it. */
static gateway_iec104_link *started_server(void)
{
    gateway_iec104_link *server = make_link(GATEWAY_IEC104_CONTROLLED);
    feed_u(server, GATEWAY_IEC104_STARTDT_ACT, 0);
    expect_output(server, STARTDT_CON, sizeof STARTDT_CON);
    cr_assert_eq(next_kind(server), GATEWAY_IEC104_EVENT_STARTED);
    return server;
}

/* Parses the I-frames in buf: their N(S) into ns[], returns how many. */
static size_t i_frames(const uint8_t *buf, size_t size, uint16_t *ns, size_t max)
{
    size_t n = 0, offset = 0;
    while (offset + 2 <= size) {
        size_t frame = (size_t)buf[offset + 1] + 2;
        gateway_iec104_apdu apdu;
        cr_assert_eq(gateway_iec104_apdu_decode(buf + offset, frame, &apdu, NULL), ANM_OK);
        if (apdu.format == GATEWAY_IEC104_FRAME_I && n < max)
            ns[n++] = apdu.send_sequence;
        offset += frame;
    }
    cr_assert_eq(offset, size);
    return n;
}

Test(iec104_link, config_is_checked)
{
    gateway_iec104_link_config config;
    gateway_iec104_link_config_default(&config, GATEWAY_IEC104_CONTROLLED);
    cr_assert_eq(config.k, 12);
    cr_assert_eq(config.w, 8);
    cr_assert_eq(config.t1_s, 15);
    cr_assert_eq(config.t2_s, 10);
    cr_assert_eq(config.t3_s, 20);
    anm_error_detail detail;
    gateway_iec104_link *link = NULL;
    config.t2_s = 15;
    anm_error_detail_clear(&detail);
    cr_assert_eq(gateway_iec104_link_new(&config, 0, &link, &detail), ANM_ECONFIG);
    cr_assert_str_eq(detail.message, "t2_s must be less than t1_s");
    cr_assert_str_eq(detail.path, "t2_s");
    cr_assert_null(link);
    config.t2_s = 10;
    config.t3_s = 256;
    cr_assert_eq(gateway_iec104_link_new(&config, 0, &link, &detail), ANM_ECONFIG);
    cr_assert_str_eq(detail.message, "t3_s must be in 1..255");
    config.t3_s = 20;
    config.k = 0;
    cr_assert_eq(gateway_iec104_link_new(&config, 0, &link, &detail), ANM_ECONFIG);
    cr_assert_str_eq(detail.message, "k must be in 1..32767");
    gateway_iec104_link_destroy(&link);
    gateway_iec104_link_destroy(&link); /* idempotent */
}

Test(iec104_link, server_sends_no_i_frames_before_startdt)
{
    gateway_iec104_link *server = make_link(GATEWAY_IEC104_CONTROLLED);
    uint8_t asdu[32];
    size_t size = marked_asdu(asdu, 1);
    cr_assert_eq(gateway_iec104_link_submit(server, asdu, size, 0), ANM_OK);
    expect_no_output(server);
    cr_assert_eq(gateway_iec104_link_pending_count(server), 1);
    cr_assert_eq(gateway_iec104_link_unacked_count(server), 0);
    /* TESTFR act is answered while stopped */
    feed_u(server, GATEWAY_IEC104_TESTFR_ACT, 10);
    static const uint8_t testfr_con[] = {0x68, 0x04, 0x83, 0x00, 0x00, 0x00};
    expect_output(server, testfr_con, sizeof testfr_con);
    /* STARTDT act: con, then the queued I-frame with N(S)=0, N(R)=0 */
    feed_u(server, GATEWAY_IEC104_STARTDT_ACT, 20);
    uint8_t want[6 + 6 + 14] = {0x68, 0x04, 0x0B, 0x00, 0x00, 0x00,
                                0x68, 0x12, 0x00, 0x00, 0x00, 0x00};
    memcpy(want + 12, asdu, size);
    expect_output(server, want, sizeof want);
    cr_assert_eq(next_kind(server), GATEWAY_IEC104_EVENT_STARTED);
    cr_assert_eq(gateway_iec104_link_get_state(server), GATEWAY_IEC104_LINK_STARTED);
    gateway_iec104_link_destroy(&server);
}

Test(iec104_link, k_window_queues_the_13th_frame_until_an_ack)
{
    gateway_iec104_link *server = started_server();
    uint8_t asdu[32];
    for (unsigned i = 0; i < 13; i++) {
        size_t size = marked_asdu(asdu, i);
        cr_assert_eq(gateway_iec104_link_submit(server, asdu, size, 100), ANM_OK);
    }
    uint8_t out[4096];
    uint16_t ns[32];
    size_t size = take_output(server, out, sizeof out);
    cr_assert_eq(i_frames(out, size, ns, 32), 12);
    for (uint16_t i = 0; i < 12; i++)
        cr_assert_eq(ns[i], i);
    cr_assert_eq(gateway_iec104_link_unacked_count(server), 12);
    cr_assert_eq(gateway_iec104_link_pending_count(server), 13);
    /* more submissions stay queued too, in order */
    size_t extra = marked_asdu(asdu, 13);
    cr_assert_eq(gateway_iec104_link_submit(server, asdu, extra, 100), ANM_OK);
    expect_no_output(server);
    /* ack N(R)=1 releases one slot: exactly the 13th goes out, N(S)=12 */
    feed_s(server, 1, 200);
    size = take_output(server, out, sizeof out);
    cr_assert_eq(i_frames(out, size, ns, 32), 1);
    cr_assert_eq(ns[0], 12);
    cr_assert_eq(marker_of(out + 6), 12);
    static gateway_iec104_event event;
    cr_assert(gateway_iec104_link_next_event(server, &event));
    cr_assert_eq(event.kind, GATEWAY_IEC104_EVENT_ACKED);
    cr_assert_eq(event.acked, 1);
    /* ack everything sent: the 14th goes out and only it remains */
    feed_s(server, 13, 300);
    size = take_output(server, out, sizeof out);
    cr_assert_eq(i_frames(out, size, ns, 32), 1);
    cr_assert_eq(ns[0], 13);
    cr_assert_eq(gateway_iec104_link_pending_count(server), 1);
    cr_assert_eq(gateway_iec104_link_ack_sequence(server), 13);
    gateway_iec104_link_destroy(&server);
}

Test(iec104_link, ack_after_w_received_frames)
{
    gateway_iec104_link *server = started_server();
    for (uint16_t i = 0; i < 7; i++)
        feed_i(server, i, 0, 1000);
    expect_no_output(server);
    feed_i(server, 7, 0, 1000);
    /* S-frame N(R)=8: 8<<1 = 0x10 */
    static const uint8_t ack[] = {0x68, 0x04, 0x01, 0x00, 0x10, 0x00};
    expect_output(server, ack, sizeof ack);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(next_kind(server), GATEWAY_IEC104_EVENT_ASDU);
    cr_assert_eq(gateway_iec104_link_receive_sequence(server), 8);
    gateway_iec104_link_destroy(&server);
}

Test(iec104_link, i_frame_piggybacks_the_ack)
{
    gateway_iec104_link *server = started_server();
    feed_i(server, 0, 0, 0);
    feed_i(server, 1, 0, 0);
    cr_assert_eq(gateway_iec104_link_submit(server, gi_asdu, sizeof gi_asdu, 0), ANM_OK);
    uint8_t out[64];
    size_t size = take_output(server, out, sizeof out);
    cr_assert_eq(size, 16);
    /* N(S)=0, N(R)=2 -> 00 00 04 00 */
    static const uint8_t head[] = {0x68, 0x0E, 0x00, 0x00, 0x04, 0x00};
    cr_assert(memcmp(out, head, 6) == 0);
    /* t2 no longer runs: nothing due at 10 s but t1 of the sent frame (15 s) */
    cr_assert_eq(gateway_iec104_link_tick(server, 10000), 15000);
    expect_no_output(server);
    gateway_iec104_link_destroy(&server);
}

Test(iec104_link, t2_sends_an_ack_when_fewer_than_w_arrived)
{
    gateway_iec104_link *server = started_server();
    feed_i(server, 0, 0, 5000);
    cr_assert_eq(gateway_iec104_link_tick(server, 5000), 15000);
    cr_assert_eq(gateway_iec104_link_tick(server, 14999), 15000);
    expect_no_output(server);
    gateway_iec104_link_tick(server, 15000);
    static const uint8_t ack[] = {0x68, 0x04, 0x01, 0x00, 0x02, 0x00};
    expect_output(server, ack, sizeof ack);
    gateway_iec104_link_destroy(&server);
}

Test(iec104_link, t1_closes_when_an_i_frame_is_not_acknowledged)
{
    gateway_iec104_link *server = started_server();
    cr_assert_eq(gateway_iec104_link_submit(server, gi_asdu, sizeof gi_asdu, 1000), ANM_OK);
    cr_assert_eq(gateway_iec104_link_tick(server, 1000), 16000);
    cr_assert_eq(gateway_iec104_link_tick(server, 15999), 16000);
    cr_assert_eq(gateway_iec104_link_get_state(server), GATEWAY_IEC104_LINK_STARTED);
    cr_assert_eq(gateway_iec104_link_tick(server, 16000), INT64_MAX);
    expect_closed(server, ANM_ETIMEOUT, "t1 expired: i-frame n(s) 0 not acknowledged within 15 s");
    /* the unacknowledged ASDU is still there for a redundancy switchover */
    cr_assert_eq(gateway_iec104_link_pending_count(server), 1);
    size_t size = 0;
    const uint8_t *asdu = gateway_iec104_link_pending_get(server, 0, &size);
    cr_assert_eq(size, sizeof gi_asdu);
    cr_assert(memcmp(asdu, gi_asdu, size) == 0);
    cr_assert_eq(gateway_iec104_link_submit(server, gi_asdu, sizeof gi_asdu, 1000), ANM_ESTATE);
    size_t used = 0;
    cr_assert_eq(gateway_iec104_link_feed(server, gi_asdu, 1, 1000, &used), ANM_ESTATE);
    gateway_iec104_link_destroy(&server);
}

Test(iec104_link, t3_sends_testfr_and_t1_closes_without_con)
{
    gateway_iec104_link *server = make_link(GATEWAY_IEC104_CONTROLLED);
    cr_assert_eq(gateway_iec104_link_tick(server, 0), 20000);
    cr_assert_eq(gateway_iec104_link_tick(server, 19999), 20000);
    expect_no_output(server);
    cr_assert_eq(gateway_iec104_link_tick(server, 20000), 35000);
    static const uint8_t testfr_act[] = {0x68, 0x04, 0x43, 0x00, 0x00, 0x00};
    expect_output(server, testfr_act, sizeof testfr_act);
    /* con at 21 s: t3 restarts from that receipt */
    feed_u(server, GATEWAY_IEC104_TESTFR_CON, 21000);
    cr_assert_eq(gateway_iec104_link_tick(server, 21000), 41000);
    cr_assert_eq(gateway_iec104_link_tick(server, 41000), 56000);
    expect_output(server, testfr_act, sizeof testfr_act);
    cr_assert_eq(gateway_iec104_link_tick(server, 55999), 56000);
    gateway_iec104_link_tick(server, 56000);
    expect_closed(server, ANM_ETIMEOUT, "t1 expired: no TESTFR con within 15 s");
    gateway_iec104_link_destroy(&server);
}

Test(iec104_link, any_received_frame_restarts_t3)
{
    gateway_iec104_link *server = started_server();
    feed_s(server, 0, 15000);
    cr_assert_eq(gateway_iec104_link_tick(server, 20000), 35000);
    expect_no_output(server);
    gateway_iec104_link_destroy(&server);
}

Test(iec104_link, client_start_and_t1_on_startdt_con)
{
    gateway_iec104_link *client = make_link(GATEWAY_IEC104_CONTROLLING);
    cr_assert_eq(gateway_iec104_link_start(client, 0), ANM_OK);
    static const uint8_t startdt_act[] = {0x68, 0x04, 0x07, 0x00, 0x00, 0x00};
    expect_output(client, startdt_act, sizeof startdt_act);
    cr_assert_eq(gateway_iec104_link_get_state(client), GATEWAY_IEC104_LINK_START_PENDING);
    cr_assert_eq(gateway_iec104_link_start(client, 0), ANM_ESTATE);
    cr_assert_eq(gateway_iec104_link_tick(client, 14999), 15000);
    gateway_iec104_link_tick(client, 15000);
    expect_closed(client, ANM_ETIMEOUT, "t1 expired: no STARTDT con within 15 s");
    gateway_iec104_link_destroy(&client);

    /* the server role cannot start */
    gateway_iec104_link *server = make_link(GATEWAY_IEC104_CONTROLLED);
    cr_assert_eq(gateway_iec104_link_start(server, 0), ANM_ESTATE);
    gateway_iec104_link_destroy(&server);
}

Test(iec104_link, stopdt_acks_outstanding_and_confirms_after_drain)
{
    gateway_iec104_link *server = started_server();
    cr_assert_eq(gateway_iec104_link_submit(server, gi_asdu, sizeof gi_asdu, 0), ANM_OK);
    cr_assert_eq(gateway_iec104_link_submit(server, gi_asdu, sizeof gi_asdu, 0), ANM_OK);
    uint8_t out[256];
    (void)take_output(server, out, sizeof out);
    feed_i(server, 0, 0, 10); /* acknowledges nothing of ours yet */
    drain_events(server);
    feed_u(server, GATEWAY_IEC104_STOPDT_ACT, 20);
    /* the outstanding received frame is acknowledged at once (N(R)=1), no con yet */
    static const uint8_t ack[] = {0x68, 0x04, 0x01, 0x00, 0x02, 0x00};
    expect_output(server, ack, sizeof ack);
    cr_assert_eq(gateway_iec104_link_get_state(server), GATEWAY_IEC104_LINK_STOP_PENDING);
    /* nothing new is sent while stopping */
    cr_assert_eq(gateway_iec104_link_submit(server, gi_asdu, sizeof gi_asdu, 30), ANM_OK);
    expect_no_output(server);
    /* an I-frame from the client after its STOPDT act breaks the protocol: tested below;
     * here the client acks our two frames and gets the con */
    feed_s(server, 2, 40);
    static const uint8_t stopdt_con[] = {0x68, 0x04, 0x23, 0x00, 0x00, 0x00};
    expect_output(server, stopdt_con, sizeof stopdt_con);
    cr_assert_eq(next_kind(server), GATEWAY_IEC104_EVENT_ACKED);
    cr_assert_eq(next_kind(server), GATEWAY_IEC104_EVENT_STOPPED);
    cr_assert_eq(gateway_iec104_link_get_state(server), GATEWAY_IEC104_LINK_STOPPED);
    /* restarted: the frame queued meanwhile goes out with N(S)=2, N(R)=1 */
    feed_u(server, GATEWAY_IEC104_STARTDT_ACT, 50);
    uint8_t want[6 + 16] = {0x68, 0x04, 0x0B, 0x00, 0x00, 0x00,
                            0x68, 0x0E, 0x04, 0x00, 0x02, 0x00};
    memcpy(want + 12, gi_asdu, sizeof gi_asdu);
    expect_output(server, want, sizeof want);
    gateway_iec104_link_destroy(&server);
}

Test(iec104_link, stopdt_with_nothing_outstanding_confirms_at_once)
{
    gateway_iec104_link *server = started_server();
    feed_u(server, GATEWAY_IEC104_STOPDT_ACT, 0);
    static const uint8_t stopdt_con[] = {0x68, 0x04, 0x23, 0x00, 0x00, 0x00};
    expect_output(server, stopdt_con, sizeof stopdt_con);
    cr_assert_eq(next_kind(server), GATEWAY_IEC104_EVENT_STOPPED);
    /* an I-frame now breaks the protocol */
    feed_i(server, 0, 0, 10);
    expect_closed(server, ANM_EPROTO, "i-frame n(s) 0 received while data transfer is stopped");
    gateway_iec104_link_destroy(&server);
}

Test(iec104_link, hostile_frames_close_with_a_reason)
{
    gateway_iec104_link *server = make_link(GATEWAY_IEC104_CONTROLLED);
    feed_i(server, 0, 0, 0);
    expect_closed(server, ANM_EPROTO, "i-frame n(s) 0 received while data transfer is stopped");
    gateway_iec104_link_destroy(&server);

    server = started_server();
    feed_i(server, 1, 0, 0);
    expect_closed(server, ANM_EPROTO, "out-of-order n(s) 1, expected 0");
    gateway_iec104_link_destroy(&server);

    server = started_server();
    cr_assert_eq(gateway_iec104_link_submit(server, gi_asdu, sizeof gi_asdu, 0), ANM_OK);
    cr_assert_eq(gateway_iec104_link_submit(server, gi_asdu, sizeof gi_asdu, 0), ANM_OK);
    feed_s(server, 3, 0);
    expect_closed(server, ANM_EPROTO,
                  "bad n(r) 3: acknowledges frames not sent (oldest unacknowledged 0, next to "
                  "send 2)");
    cr_assert_eq(gateway_iec104_link_pending_count(server), 2);
    expect_no_output(server);
    gateway_iec104_link_destroy(&server);

    server = started_server();
    static const uint8_t garbage[] = {0x00, 0x68, 0x04};
    size_t used = 0;
    cr_assert_eq(gateway_iec104_link_feed(server, garbage, sizeof garbage, 0, &used), ANM_OK);
    cr_assert_eq(used, 1);
    expect_closed(server, ANM_EPROTO, "bad frame: bad start byte 0x00, expected 0x68");
    gateway_iec104_link_destroy(&server);

    server = started_server();
    static const uint8_t overlong[] = {0x68, 0xFF};
    feed_all(server, overlong, sizeof overlong, 0);
    expect_closed(server, ANM_EPROTO, "bad frame: bad apdu length 255, expected 4..253");
    gateway_iec104_link_destroy(&server);

    server = started_server();
    static const uint8_t unknown_u[] = {0x68, 0x04, 0x03, 0x00, 0x00, 0x00};
    feed_all(server, unknown_u, sizeof unknown_u, 0);
    expect_closed(server, ANM_EPROTO, "bad frame: bad u-frame control field 03 00 00 00");
    gateway_iec104_link_destroy(&server);

    gateway_iec104_link *client = make_link(GATEWAY_IEC104_CONTROLLING);
    feed_u(client, GATEWAY_IEC104_STARTDT_ACT, 0);
    expect_closed(client, ANM_EPROTO, "STARTDT act received by the controlling station");
    gateway_iec104_link_destroy(&client);
}

Test(iec104_link, queue_is_bounded_by_memory_and_drops_nothing)
{
    gateway_iec104_link_config config;
    gateway_iec104_link_config_default(&config, GATEWAY_IEC104_CONTROLLED);
    config.max_queue_bytes = 4000; /* room for a handful of queued slots */
    gateway_iec104_link *server = NULL;
    cr_assert_eq(gateway_iec104_link_new(&config, 0, &server, NULL), ANM_OK);
    uint8_t asdu[32];
    unsigned accepted = 0;
    for (unsigned i = 0; i < 100; i++) {
        size_t size = marked_asdu(asdu, i);
        int rc = gateway_iec104_link_submit(server, asdu, size, 0);
        if (rc == ANM_EFULL)
            break;
        cr_assert_eq(rc, ANM_OK);
        accepted++;
    }
    cr_assert(accepted >= 1 && accepted < 100, "accepted %u", accepted);
    cr_assert_eq(gateway_iec104_link_pending_count(server), accepted);
    for (unsigned i = 0; i < accepted; i++) {
        size_t size = 0;
        const uint8_t *p = gateway_iec104_link_pending_get(server, i, &size);
        cr_assert_eq(marker_of(p), i);
    }
    cr_assert_null(gateway_iec104_link_pending_get(server, accepted, NULL));
    gateway_iec104_link_destroy(&server);
}

/* Moves bytes both ways until neither side has output; collects ASDU markers. */
static void pump(gateway_iec104_link *a, gateway_iec104_link *b, int64_t now, unsigned *received,
                 size_t *n_received, size_t max)
{
    for (int round = 0; round < 10000; round++) {
        size_t a_size = 0, b_size = 0;
        const uint8_t *a_out = gateway_iec104_link_output(a, &a_size);
        const uint8_t *b_out = gateway_iec104_link_output(b, &b_size);
        if (a_size == 0 && b_size == 0)
            return;
        gateway_iec104_link *pairs[2][2] = {{a, b}, {b, a}};
        const uint8_t *outs[2] = {a_out, b_out};
        size_t sizes[2] = {a_size, b_size};
        for (int p = 0; p < 2; p++) {
            if (sizes[p] == 0)
                continue;
            /* copy first: feeding the peer may produce output on the sender */
            static uint8_t copy[1 << 20];
            cr_assert(sizes[p] <= sizeof copy);
            memcpy(copy, outs[p], sizes[p]);
            gateway_iec104_link_output_consume(pairs[p][0], sizes[p]);
            size_t offset = 0;
            while (offset < sizes[p]) {
                size_t used = 0;
                cr_assert_eq(gateway_iec104_link_feed(pairs[p][1], copy + offset,
                                                      sizes[p] - offset, now, &used),
                             ANM_OK);
                offset += used;
                static gateway_iec104_event event;
                while (gateway_iec104_link_next_event(pairs[p][1], &event)) {
                    cr_assert_neq(event.kind, GATEWAY_IEC104_EVENT_CLOSED, "closed: %s",
                                  event.reason);
                    if (event.kind == GATEWAY_IEC104_EVENT_ASDU && received != NULL &&
                        *n_received < max)
                        received[(*n_received)++] = marker_of(event.asdu);
                }
            }
            if (p == 0) {
                a_out = gateway_iec104_link_output(a, &a_size);
                b_out = gateway_iec104_link_output(b, &b_size);
                outs[1] = b_out;
                sizes[1] = b_size;
            }
        }
    }
    cr_assert_fail("pump did not settle");
}

Test(iec104_link, client_and_server_exchange_in_order_across_the_wrap)
{
    gateway_iec104_link *client = make_link(GATEWAY_IEC104_CONTROLLING);
    gateway_iec104_link *server = make_link(GATEWAY_IEC104_CONTROLLED);
    cr_assert_eq(gateway_iec104_link_set_initial_sequence(client, 32760), ANM_OK);
    cr_assert_eq(gateway_iec104_link_set_initial_sequence(server, 32760), ANM_OK);
    cr_assert_eq(gateway_iec104_link_start(client, 0), ANM_OK);
    pump(client, server, 0, NULL, NULL, 0);
    cr_assert_eq(gateway_iec104_link_get_state(client), GATEWAY_IEC104_LINK_STARTED);
    cr_assert_eq(gateway_iec104_link_get_state(server), GATEWAY_IEC104_LINK_STARTED);
    drain_events(client);
    drain_events(server);
    uint8_t asdu[32];
    for (unsigned i = 0; i < 40; i++) {
        size_t size = marked_asdu(asdu, i);
        cr_assert_eq(gateway_iec104_link_submit(server, asdu, size, 0), ANM_OK);
    }
    unsigned received[64];
    size_t n = 0;
    pump(client, server, 0, received, &n, 64);
    /* w=8 acks every 8; the last 40 % 8 = 0 leaves nothing waiting for t2 */
    cr_assert_eq(n, 40);
    for (unsigned i = 0; i < 40; i++)
        cr_assert_eq(received[i], i);
    /* 32760 + 40 = 32800 = 32 after the wrap */
    cr_assert_eq(gateway_iec104_link_send_sequence(server), 32);
    cr_assert_eq(gateway_iec104_link_receive_sequence(client), 32);
    cr_assert_eq(gateway_iec104_link_ack_sequence(server), 32);
    cr_assert_eq(gateway_iec104_link_pending_count(server), 0);
    /* the client's command crosses in the other direction, acked by t2 */
    cr_assert_eq(gateway_iec104_link_submit(client, gi_asdu, sizeof gi_asdu, 0), ANM_OK);
    pump(client, server, 0, NULL, NULL, 0);
    gateway_iec104_link_tick(server, 10000);
    pump(client, server, 10000, NULL, NULL, 0);
    cr_assert_eq(gateway_iec104_link_pending_count(client), 0);
    /* client stops: server confirms, both stopped */
    cr_assert_eq(gateway_iec104_link_stop(client, 10000), ANM_OK);
    pump(client, server, 10000, NULL, NULL, 0);
    cr_assert_eq(gateway_iec104_link_get_state(client), GATEWAY_IEC104_LINK_STOPPED);
    cr_assert_eq(gateway_iec104_link_get_state(server), GATEWAY_IEC104_LINK_STOPPED);
    gateway_iec104_link_destroy(&client);
    gateway_iec104_link_destroy(&server);
}

Test(iec104_link, feed_stops_when_events_pile_up)
{
    gateway_iec104_link_config config;
    gateway_iec104_link_config_default(&config, GATEWAY_IEC104_CONTROLLED);
    config.w = 1000;
    config.k = 1000;
    gateway_iec104_link *server = NULL;
    cr_assert_eq(gateway_iec104_link_new(&config, 0, &server, NULL), ANM_OK);
    feed_u(server, GATEWAY_IEC104_STARTDT_ACT, 0);
    drain_events(server);
    static uint8_t stream[100 * 16];
    size_t size = 0;
    for (uint16_t i = 0; i < 100; i++) {
        size_t n = 0;
        cr_assert_eq(gateway_iec104_encode_i_frame(i, 0, gi_asdu, sizeof gi_asdu, stream + size,
                                                   sizeof stream - size, &n),
                     ANM_OK);
        size += n;
    }
    size_t used = 0;
    cr_assert_eq(gateway_iec104_link_feed(server, stream, size, 0, &used), ANM_OK);
    cr_assert_eq(used, 64 * 16);
    size_t events = 0;
    static gateway_iec104_event event;
    while (gateway_iec104_link_next_event(server, &event))
        events++;
    cr_assert_eq(events, 64);
    feed_all(server, stream + used, size - used, 0);
    cr_assert_eq(gateway_iec104_link_receive_sequence(server), 100);
    gateway_iec104_link_destroy(&server);
}
