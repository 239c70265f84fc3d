/*
 * test_iec104_tcp.c: our IEC 104 client against our outstation over TCP
 * on an ephemeral loopback port, plus raw peers (a link object on a plain
 * socket) for negative confirms and protocol breakers. Single-threaded:
 * every wait is a poll loop on a readiness condition with a deadline.
 */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/clock.h"
#include "engine/log.h"
#include "gateway/iec104_client.h"
#include "gateway/iec104_server.h"

#define MAX_SEEN 64

typedef struct seen_asdu {
    uint8_t type, cause, negative, count;
    uint16_t common_address;
    uint32_t ioa[4];
    float value[4];
    uint8_t single_point[4];
    int64_t time_ms;
} seen_asdu;

typedef struct collector {
    seen_asdu items[MAX_SEEN];
    size_t n;
} collector;

static void collect(collector *c, const gateway_iec104_asdu *asdu)
{
    if (c->n >= MAX_SEEN)
        return;
    seen_asdu *s = &c->items[c->n++];
    memset(s, 0, sizeof *s);
    s->type = asdu->type;
    s->cause = asdu->cause;
    s->negative = asdu->negative;
    s->count = asdu->count;
    s->common_address = asdu->common_address;
    for (unsigned i = 0; i < asdu->count && i < 4; i++) {
        s->ioa[i] = asdu->objects[i].ioa;
        s->value[i] = asdu->objects[i].value;
        s->single_point[i] = asdu->objects[i].single_point;
    }
    if (gateway_iec104_type_has_time(asdu->type))
        (void)gateway_iec104_cp56_to_utc_ms(&asdu->objects[0].time, NULL, &s->time_ms);
}

static void on_asdu(void *arg, const gateway_iec104_asdu *asdu, int64_t now_ms)
{
    (void)now_ms;
    collect(arg, asdu);
}

static int has(const collector *c, uint8_t type, uint8_t cause, int negative)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->items[i].type == type && c->items[i].cause == cause &&
            c->items[i].negative == negative)
            return 1;
    return 0;
}

static gateway_iec104_server *start_server(void)
{
    anm_log_set_level(ANM_LOG_OFF);
    gateway_iec104_server_config config;
    gateway_iec104_server_config_default(&config);
    config.port = 0;
    config.common_address = 7;
    gateway_iec104_server *server = NULL;
    anm_error_detail detail;
    anm_error_detail_clear(&detail);
    cr_assert_eq(gateway_iec104_server_new(&config, anm_wall_clock_ms(), &server, &detail), ANM_OK,
                 "%s", detail.message);
    cr_assert_gt(gateway_iec104_server_port(server), 0);
    cr_assert_eq(gateway_iec104_server_define_point(server, 1001, GATEWAY_IEC104_POINT_MEASURED),
                 ANM_OK);
    cr_assert_eq(gateway_iec104_server_define_point(server, 1002, GATEWAY_IEC104_POINT_MEASURED),
                 ANM_OK);
    cr_assert_eq(gateway_iec104_server_define_point(server, 2001, GATEWAY_IEC104_POINT_SINGLE),
                 ANM_OK);
    cr_assert_eq(gateway_iec104_server_define_point(server, 2001, GATEWAY_IEC104_POINT_SINGLE),
                 ANM_EDUP);
    int64_t t = 0;
    cr_assert_eq(anm_time_parse_iso8601("2021-10-31T01:00:00.000Z", &t), ANM_OK);
    cr_assert_eq(gateway_iec104_server_update(server, 1001, 12.5, 0, t, 0, t), ANM_OK);
    cr_assert_eq(gateway_iec104_server_update(server, 1002, -3.25, GATEWAY_IEC104_QDS_OV, t, 0, t),
                 ANM_OK);
    cr_assert_eq(gateway_iec104_server_update(server, 2001, 1, 0, t, 0, t), ANM_OK);
    cr_assert_eq(gateway_iec104_server_update(server, 9999, 1, 0, t, 0, t), ANM_ENOTFOUND);
    return server;
}

static gateway_iec104_client *start_client(int port, collector *seen)
{
    gateway_iec104_client_config config;
    gateway_iec104_client_config_default(&config);
    config.port = port;
    config.common_address = 7;
    gateway_iec104_client *client = NULL;
    cr_assert_eq(gateway_iec104_client_new(&config, on_asdu, seen, anm_wall_clock_ms(), &client,
                                           NULL),
                 ANM_OK);
    return client;
}

/* Runs server and client until done(arg) or 5 s pass. */
static int run_until(gateway_iec104_server *server, gateway_iec104_client *client,
                     int (*done)(void *), void *arg)
{
    int64_t deadline = anm_wall_clock_ms() + 5000;
    while (anm_wall_clock_ms() < deadline) {
        cr_assert_eq(gateway_iec104_server_run_once(server, anm_wall_clock_ms(), 2), ANM_OK);
        if (client != NULL)
            cr_assert_eq(gateway_iec104_client_run_once(client, anm_wall_clock_ms(), 2), ANM_OK);
        if (done(arg))
            return 1;
    }
    return 0;
}

static int gi_terminated(void *arg)
{
    return has(arg, GATEWAY_IEC104_C_IC_NA_1, GATEWAY_IEC104_COT_ACTIVATION_TERM, 0);
}

static collector *seen_for_spontaneous;
static int got_spontaneous(void *arg)
{
    (void)arg;
    return has(seen_for_spontaneous, GATEWAY_IEC104_M_ME_TF_1, GATEWAY_IEC104_COT_SPONTANEOUS, 0);
}

static int got_clock_con(void *arg)
{
    return has(arg, GATEWAY_IEC104_C_CS_NA_1, GATEWAY_IEC104_COT_ACTIVATION_CON, 0);
}

Test(iec104_tcp, client_interrogates_and_receives_spontaneous_values)
{
    gateway_iec104_server *server = start_server();
    static collector seen;
    memset(&seen, 0, sizeof seen);
    gateway_iec104_client *client = start_client(gateway_iec104_server_port(server), &seen);
    cr_assert(run_until(server, client, gi_terminated, &seen), "no actterm within 5 s");
    cr_assert(gateway_iec104_client_is_started(client));
    cr_assert_eq(gateway_iec104_server_started_count(server), 1);
    /* actcon, M_ME_NC_1 (both measured points, COT 20), M_SP_NA_1, actterm */
    cr_assert_eq(seen.n, 4);
    cr_assert_eq(seen.items[0].type, GATEWAY_IEC104_C_IC_NA_1);
    cr_assert_eq(seen.items[0].cause, GATEWAY_IEC104_COT_ACTIVATION_CON);
    cr_assert_eq(seen.items[0].negative, 0);
    cr_assert_eq(seen.items[1].type, GATEWAY_IEC104_M_ME_NC_1);
    cr_assert_eq(seen.items[1].cause, GATEWAY_IEC104_COT_INTERROGATED_STATION);
    cr_assert_eq(seen.items[1].common_address, 7);
    cr_assert_eq(seen.items[1].count, 2);
    cr_assert_eq(seen.items[1].ioa[0], 1001);
    cr_assert(seen.items[1].value[0] == 12.5f);
    cr_assert_eq(seen.items[1].ioa[1], 1002);
    cr_assert(seen.items[1].value[1] == -3.25f);
    cr_assert_eq(seen.items[2].type, GATEWAY_IEC104_M_SP_NA_1);
    cr_assert_eq(seen.items[2].ioa[0], 2001);
    cr_assert_eq(seen.items[2].single_point[0], 1);
    cr_assert_eq(seen.items[3].cause, GATEWAY_IEC104_COT_ACTIVATION_TERM);

    /* spontaneous: time-tagged, COT 3, time preserved to the millisecond */
    int64_t t = 0;
    cr_assert_eq(anm_time_parse_iso8601("2021-10-31T01:00:01.234Z", &t), ANM_OK);
    cr_assert_eq(gateway_iec104_server_update(server, 1001, 42.5, 0, t, 1, anm_wall_clock_ms()),
                 ANM_OK);
    seen_for_spontaneous = &seen;
    cr_assert(run_until(server, client, got_spontaneous, NULL), "no spontaneous value");
    const seen_asdu *last = &seen.items[seen.n - 1];
    cr_assert_eq(last->type, GATEWAY_IEC104_M_ME_TF_1);
    cr_assert_eq(last->ioa[0], 1001);
    cr_assert(last->value[0] == 42.5f);
    cr_assert_eq(last->time_ms, t);

    /* clock sync is confirmed with COT 7 */
    cr_assert_eq(gateway_iec104_client_clock_sync(client, anm_wall_clock_ms(), anm_wall_clock_ms()),
                 ANM_OK);
    cr_assert(run_until(server, client, got_clock_con, &seen), "no clock sync con");
    gateway_iec104_client_destroy(&client);
    gateway_iec104_server_destroy(&server);
}

/* ---- raw peers ------------------------------------------------------------------ */

typedef struct raw_peer {
    int fd;
    gateway_iec104_link *link;
    collector seen;
} raw_peer;

static void raw_connect_w(raw_peer *peer, int port, int w)
{
    memset(peer, 0, sizeof *peer);
    peer->fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(peer->fd, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(peer->fd, (struct sockaddr *)&address, sizeof address), 0);
    gateway_iec104_link_config config;
    gateway_iec104_link_config_default(&config, GATEWAY_IEC104_CONTROLLING);
    config.w = w;
    cr_assert_eq(gateway_iec104_link_new(&config, anm_wall_clock_ms(), &peer->link, NULL), ANM_OK);
}

static void raw_connect(raw_peer *peer, int port)
{
    raw_connect_w(peer, port, 8);
}

/* Writes the link's output, reads what arrived; returns 0 once the server closed. */
static int raw_pump(raw_peer *peer)
{
    size_t size = 0;
    const uint8_t *out = gateway_iec104_link_output(peer->link, &size);
    if (size > 0) {
        ssize_t n = send(peer->fd, out, size, MSG_NOSIGNAL);
        if (n > 0)
            gateway_iec104_link_output_consume(peer->link, (size_t)n);
    }
    struct pollfd pfd = {.fd = peer->fd, .events = POLLIN};
    if (poll(&pfd, 1, 2) <= 0)
        return 1;
    uint8_t buf[4096];
    ssize_t n = recv(peer->fd, buf, sizeof buf, 0);
    if (n <= 0)
        return 0;
    size_t offset = 0;
    while (offset < (size_t)n) {
        size_t used = 0;
        if (gateway_iec104_link_feed(peer->link, buf + offset, (size_t)n - offset,
                                     anm_wall_clock_ms(), &used) != ANM_OK)
            return 0;
        offset += used;
        static gateway_iec104_event event;
        static gateway_iec104_asdu asdu;
        while (gateway_iec104_link_next_event(peer->link, &event))
            if (event.kind == GATEWAY_IEC104_EVENT_ASDU &&
                gateway_iec104_asdu_decode(event.asdu, event.asdu_size, &asdu, NULL) == ANM_OK)
                collect(&peer->seen, &asdu);
    }
    return 1;
}

static void raw_close(raw_peer *peer)
{
    close(peer->fd);
    gateway_iec104_link_destroy(&peer->link);
}

typedef struct raw_wait {
    gateway_iec104_server *server;
    raw_peer *peer;
} raw_wait;

static int raw_run_until(gateway_iec104_server *server, raw_peer *peer,
                         int (*done)(raw_peer *, int alive))
{
    int64_t deadline = anm_wall_clock_ms() + 5000;
    while (anm_wall_clock_ms() < deadline) {
        cr_assert_eq(gateway_iec104_server_run_once(server, anm_wall_clock_ms(), 2), ANM_OK);
        int alive = raw_pump(peer);
        if (done(peer, alive))
            return 1;
    }
    return 0;
}

static int raw_started(raw_peer *peer, int alive)
{
    return alive && gateway_iec104_link_get_state(peer->link) == GATEWAY_IEC104_LINK_STARTED;
}

static size_t expected_replies;
static int raw_has_replies(raw_peer *peer, int alive)
{
    return alive && peer->seen.n >= expected_replies;
}

static int raw_closed(raw_peer *peer, int alive)
{
    (void)peer;
    return !alive;
}

Test(iec104_tcp, bad_requests_get_negative_confirms)
{
    gateway_iec104_server *server = start_server();
    static raw_peer peer;
    raw_connect(&peer, gateway_iec104_server_port(server));
    cr_assert_eq(gateway_iec104_link_start(peer.link, anm_wall_clock_ms()), ANM_OK);
    cr_assert(raw_run_until(server, &peer, raw_started), "raw peer not started");
    static const uint8_t requests[][16] = {
        /* GI to common address 9 (ours is 7) -> 46 */
        {0x64, 0x01, 0x06, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x14},
        /* type 45 single command -> 44 */
        {0x2D, 0x01, 0x06, 0x00, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01},
        /* GI with cause 5 (request) -> 45 */
        {0x64, 0x01, 0x05, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x14},
        /* GI addressed to IOA 5 -> 47 */
        {0x64, 0x01, 0x06, 0x00, 0x07, 0x00, 0x05, 0x00, 0x00, 0x14},
        /* a monitor type in control direction -> 44 */
        {0x01, 0x01, 0x06, 0x00, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01},
    };
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(gateway_iec104_link_submit(peer.link, requests[i], 10, anm_wall_clock_ms()),
                     ANM_OK);
    expected_replies = 4; /* type 45 decodes as unknown on our side: not collected */
    cr_assert(raw_run_until(server, &peer, raw_has_replies), "replies missing (%zu)", peer.seen.n);
    cr_assert_eq(peer.seen.n, 4);
    cr_assert_eq(peer.seen.items[0].cause, GATEWAY_IEC104_COT_UNKNOWN_COMMON_ADDRESS);
    cr_assert_eq(peer.seen.items[0].negative, 1);
    cr_assert_eq(peer.seen.items[0].common_address, 9);
    cr_assert_eq(peer.seen.items[1].cause, GATEWAY_IEC104_COT_UNKNOWN_CAUSE);
    cr_assert_eq(peer.seen.items[1].negative, 1);
    cr_assert_eq(peer.seen.items[2].cause, GATEWAY_IEC104_COT_UNKNOWN_IOA);
    cr_assert_eq(peer.seen.items[2].negative, 1);
    cr_assert_eq(peer.seen.items[3].type, GATEWAY_IEC104_M_SP_NA_1);
    cr_assert_eq(peer.seen.items[3].cause, GATEWAY_IEC104_COT_UNKNOWN_TYPE);
    cr_assert_eq(peer.seen.items[3].negative, 1);
    cr_assert_eq(gateway_iec104_server_rejected_count(server), 0);
    raw_close(&peer);
    gateway_iec104_server_destroy(&server);
}

static int raw_is_closed_and_good_client_spontaneous(void *arg)
{
    (void)arg;
    return got_spontaneous(NULL);
}

Test(iec104_tcp, protocol_breaker_is_closed_without_affecting_others)
{
    gateway_iec104_server *server = start_server();
    static collector seen;
    memset(&seen, 0, sizeof seen);
    gateway_iec104_client *client = start_client(gateway_iec104_server_port(server), &seen);
    cr_assert(run_until(server, client, gi_terminated, &seen), "good client not started");

    /* a peer that starts properly, then sends an I-frame with N(S)=5 */
    static raw_peer bad;
    raw_connect(&bad, gateway_iec104_server_port(server));
    cr_assert_eq(gateway_iec104_link_start(bad.link, anm_wall_clock_ms()), ANM_OK);
    cr_assert(raw_run_until(server, &bad, raw_started), "bad peer not started");
    cr_assert_eq(gateway_iec104_server_client_count(server), 2);
    static const uint8_t gi[] = {0x64, 0x01, 0x06, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x14};
    uint8_t frame[32];
    size_t size = 0;
    cr_assert_eq(gateway_iec104_encode_i_frame(5, 0, gi, sizeof gi, frame, sizeof frame, &size),
                 ANM_OK);
    cr_assert_eq(send(bad.fd, frame, size, MSG_NOSIGNAL), (ssize_t)size);
    cr_assert(raw_run_until(server, &bad, raw_closed), "server did not close the bad peer");
    cr_assert_eq(gateway_iec104_server_rejected_count(server), 1);
    raw_close(&bad);

    /* a second one sends garbage before anything else */
    static raw_peer garbage;
    raw_connect(&garbage, gateway_iec104_server_port(server));
    static const uint8_t junk[] = {'G', 'E', 'T', ' ', '/'};
    cr_assert_eq(send(garbage.fd, junk, sizeof junk, MSG_NOSIGNAL), (ssize_t)sizeof junk);
    cr_assert(raw_run_until(server, &garbage, raw_closed), "server did not close the junk peer");
    cr_assert_eq(gateway_iec104_server_rejected_count(server), 2);
    raw_close(&garbage);

    /* the good client still gets spontaneous values */
    int64_t t = 0;
    cr_assert_eq(anm_time_parse_iso8601("2021-10-31T01:00:02.000Z", &t), ANM_OK);
    cr_assert_eq(gateway_iec104_server_update(server, 1002, 7.0, 0, t, 1, anm_wall_clock_ms()),
                 ANM_OK);
    seen_for_spontaneous = &seen;
    cr_assert(run_until(server, client, raw_is_closed_and_good_client_spontaneous, NULL),
              "good client lost its connection");
    cr_assert_eq(seen.items[seen.n - 1].ioa[0], 1002);
    cr_assert_eq(gateway_iec104_server_client_count(server), 1);
    cr_assert_eq(gateway_iec104_client_connect_count(client), 1);
    gateway_iec104_client_destroy(&client);
    gateway_iec104_server_destroy(&server);
}

static int client_reconnected(void *arg)
{
    return gateway_iec104_client_connect_count(arg) >= 1;
}

Test(iec104_tcp, client_retries_until_the_server_is_up)
{
    anm_log_set_level(ANM_LOG_OFF);
    /* find a free port, then leave it closed: the first attempt is refused */
    gateway_iec104_server_config config;
    gateway_iec104_server_config_default(&config);
    config.port = 0;
    gateway_iec104_server *probe = NULL;
    cr_assert_eq(gateway_iec104_server_new(&config, 0, &probe, NULL), ANM_OK);
    int port = gateway_iec104_server_port(probe);
    gateway_iec104_server_destroy(&probe);

    gateway_iec104_client_config client_config;
    gateway_iec104_client_config_default(&client_config);
    client_config.port = port;
    client_config.reconnect_min_ms = 50;
    client_config.reconnect_max_ms = 200;
    gateway_iec104_client *client = NULL;
    cr_assert_eq(gateway_iec104_client_new(&client_config, NULL, NULL, anm_wall_clock_ms(),
                                           &client, NULL),
                 ANM_OK);
    int64_t deadline = anm_wall_clock_ms() + 2000;
    while (gateway_iec104_client_last_error(client)[0] == '\0' && anm_wall_clock_ms() < deadline)
        cr_assert_eq(gateway_iec104_client_run_once(client, anm_wall_clock_ms(), 5), ANM_OK);
    cr_assert_str_eq(gateway_iec104_client_last_error(client), "Connection refused");
    cr_assert_eq(gateway_iec104_client_connect_count(client), 0);

    config.port = port;
    gateway_iec104_server *server = NULL;
    cr_assert_eq(gateway_iec104_server_new(&config, 0, &server, NULL), ANM_OK);
    cr_assert(run_until(server, client, client_reconnected, client), "client did not reconnect");
    gateway_iec104_client_destroy(&client);
    gateway_iec104_server_destroy(&server);
}

static size_t wanted_count;
static int raw_has_count(raw_peer *peer, int alive)
{
    return alive && peer->seen.n >= wanted_count;
}

static gateway_iec104_server *group_server;
static int server_has_no_clients(raw_peer *peer, int alive)
{
    (void)peer;
    (void)alive;
    return gateway_iec104_server_client_count(group_server) == 0;
}

Test(iec104_tcp, redundancy_switchover_resends_unacknowledged_in_order)
{
    anm_log_set_level(ANM_LOG_OFF);
    gateway_iec104_server_config config;
    gateway_iec104_server_config_default(&config);
    config.port = 0;
    config.common_address = 7;
    config.redundancy_group = 1;
    gateway_iec104_server *server = NULL;
    cr_assert_eq(gateway_iec104_server_new(&config, anm_wall_clock_ms(), &server, NULL), ANM_OK);
    group_server = server;
    int port = gateway_iec104_server_port(server);
    cr_assert_eq(gateway_iec104_server_define_point(server, 1001, GATEWAY_IEC104_POINT_MEASURED),
                 ANM_OK);
    int64_t t = 0;
    cr_assert_eq(anm_time_parse_iso8601("2021-10-31T01:00:00.000Z", &t), ANM_OK);

    /* A starts and never acknowledges (w large, test ends long before t2) */
    static raw_peer a;
    raw_connect_w(&a, port, 1000);
    cr_assert_eq(gateway_iec104_link_start(a.link, anm_wall_clock_ms()), ANM_OK);
    cr_assert(raw_run_until(server, &a, raw_started), "A not started");
    for (int i = 0; i < 20; i++)
        cr_assert_eq(gateway_iec104_server_update(server, 1001, i, 0, t + i, 1, anm_wall_clock_ms()),
                     ANM_OK);
    wanted_count = 12; /* k = 12: the other 8 wait behind the window */
    cr_assert(raw_run_until(server, &a, raw_has_count), "A got %zu", a.seen.n);
    cr_assert_eq(a.seen.n, 12);
    /* A's connection dies with 12 unacknowledged and 8 queued */
    raw_close(&a);
    cr_assert(raw_run_until(server, &a, server_has_no_clients), "server kept A");
    /* values published with no active connection wait in the group */
    for (int i = 20; i < 25; i++)
        cr_assert_eq(gateway_iec104_server_update(server, 1001, i, 0, t + i, 1, anm_wall_clock_ms()),
                     ANM_OK);
    cr_assert_eq(gateway_iec104_server_group_backlog(server), 25);

    /* B takes over: all 25 arrive, in order, none lost */
    static raw_peer b;
    raw_connect(&b, port);
    cr_assert_eq(gateway_iec104_link_start(b.link, anm_wall_clock_ms()), ANM_OK);
    wanted_count = 25;
    cr_assert(raw_run_until(server, &b, raw_has_count), "B got %zu", b.seen.n);
    cr_assert_eq(b.seen.n, 25);
    for (size_t i = 0; i < 25; i++) {
        cr_assert_eq(b.seen.items[i].type, GATEWAY_IEC104_M_ME_TF_1);
        cr_assert(b.seen.items[i].value[0] == (float)i, "item %zu is %g", i,
                  (double)b.seen.items[i].value[0]);
        cr_assert_eq(b.seen.items[i].time_ms, t + (int64_t)i);
    }
    cr_assert_eq(gateway_iec104_server_group_backlog(server), 0);

    /* C starts while B is still started: B is closed, C receives from now on */
    static raw_peer c;
    raw_connect(&c, port);
    cr_assert_eq(gateway_iec104_link_start(c.link, anm_wall_clock_ms()), ANM_OK);
    cr_assert(raw_run_until(server, &c, raw_started), "C not started");
    cr_assert(raw_run_until(server, &b, raw_closed), "B was not superseded");
    cr_assert_eq(gateway_iec104_server_update(server, 1001, 99, 0, t, 1, anm_wall_clock_ms()),
                 ANM_OK);
    wanted_count = 1;
    cr_assert(raw_run_until(server, &c, raw_has_count), "C got nothing");
    cr_assert(c.seen.items[c.seen.n - 1].value[0] == 99.0f);
    raw_close(&b);
    raw_close(&c);
    gateway_iec104_server_destroy(&server);
}
