/*
 * test_mqtt.c: the MQTT routes against a real mosquitto broker started by
 * the test (TLS listener with a test CA, password file, no anonymous
 * access): publish/receive round trip, a wrong password, a broker outage
 * and restart with the backlog replayed in order across a restart of the
 * publisher, and the subscriber handing samples to a stand-in ingest ROUTER
 * with acks and resends.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bus.h"
#include "engine/clock.h"
#include "engine/log.h"
#include "engine/telemetry_frame.h"
#include "gateway/mqtt_in.h"
#include "gateway/mqtt_out.h"
#include "mosquitto_fixture.h"
#include "testlib.h"
#include "tls_fixture.h"

#define USER "neso-dc"
#define PASSWORD "correct horse battery staple"

static anm_tls_fixture tls;
static anm_mosquitto_fixture broker;
static char *work;
static char password_file[600], wrong_password_file[600], spool_dir[600];

static void setup(void)
{
    anm_log_set_level(ANM_LOG_ERROR);
    cr_assert_eq(anm_tls_fixture_make(&tls), 0);
    cr_assert_eq(anm_mosquitto_start(&broker, &tls, USER, PASSWORD), 0);
    work = anm_test_tmpdir("anm-mqtt");
    snprintf(password_file, sizeof password_file, "%s/password", work);
    snprintf(wrong_password_file, sizeof wrong_password_file, "%s/wrong", work);
    snprintf(spool_dir, sizeof spool_dir, "%s/spool", work);
    cr_assert_eq(anm_test_write_file(password_file, PASSWORD "\n"), 0);
    cr_assert_eq(anm_test_write_file(wrong_password_file, "not the password\n"), 0);
}

static void teardown(void)
{
    anm_mosquitto_free(&broker);
    anm_test_rmtree(work);
    free(work);
    anm_tls_fixture_free(&tls);
}

TestSuite(mqtt, .init = setup, .fini = teardown, .timeout = 60);

static void connection(gateway_mqtt_connection *c, const char *pw_file)
{
    memset(c, 0, sizeof *c);
    c->host = "localhost";
    c->port = broker.port;
    c->ca_file = tls.ca_cert;
    c->username = USER;
    c->password_file = pw_file;
    c->reconnect_min_ms = 50;
    c->reconnect_max_ms = 200;
}

/* A plain libmosquitto subscriber standing in for NESO's side. */
typedef struct subscriber {
    struct mosquitto *mosq;
    int subscribed;
    char payloads[64][512];
    char topics[64][128];
    int count;
} subscriber;

static void sub_on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)obj;
    cr_assert_eq(rc, 0);
    mosquitto_subscribe(m, NULL, "anm/#", 1);
}

static void sub_on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *qos)
{
    (void)m;
    (void)mid;
    (void)n;
    (void)qos;
    ((subscriber *)obj)->subscribed = 1;
}

static void sub_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m;
    subscriber *s = obj;
    if (s->count < 64) {
        snprintf(s->payloads[s->count], sizeof s->payloads[0], "%.*s", msg->payloadlen,
                 (const char *)msg->payload);
        snprintf(s->topics[s->count], sizeof s->topics[0], "%s", msg->topic);
        s->count++;
    }
}

static void subscriber_start(subscriber *s)
{
    memset(s, 0, sizeof *s);
    mosquitto_lib_init();
    s->mosq = mosquitto_new(NULL, true, s);
    cr_assert_not_null(s->mosq);
    mosquitto_username_pw_set(s->mosq, USER, PASSWORD);
    cr_assert_eq(mosquitto_tls_set(s->mosq, tls.ca_cert, NULL, NULL, NULL, NULL), MOSQ_ERR_SUCCESS);
    mosquitto_connect_callback_set(s->mosq, sub_on_connect);
    mosquitto_subscribe_callback_set(s->mosq, sub_on_subscribe);
    mosquitto_message_callback_set(s->mosq, sub_on_message);
    cr_assert_eq(mosquitto_connect(s->mosq, "localhost", broker.port, 30), MOSQ_ERR_SUCCESS);
    int64_t deadline = anm_wall_clock_ms() + 5000;
    while (!s->subscribed && anm_wall_clock_ms() < deadline)
        mosquitto_loop(s->mosq, 20, 1);
    cr_assert(s->subscribed, "test subscriber did not get its SUBACK");
}

static void subscriber_stop(subscriber *s)
{
    if (s->mosq) {
        mosquitto_disconnect(s->mosq);
        mosquitto_destroy(s->mosq);
        s->mosq = NULL;
    }
}

static void sample(gateway_mqtt_sample *s, int i)
{
    memset(s, 0, sizeof *s);
    s->unit = "E_ANM-1";
    s->quantity = "active_power_mw";
    s->signal_id = 7;
    s->utc_ms = 1600179840000LL + 1000LL * i; /* 2020-09-15T14:24:00Z + i s */
    s->value = 10.0 + i;
}

/* Runs publisher and subscriber until want messages arrived and nothing is pending. */
static void pump(gateway_mqtt_out *out, subscriber *sub, int want)
{
    int64_t deadline = anm_wall_clock_ms() + 10000;
    while (anm_wall_clock_ms() < deadline &&
           (sub->count < want || gateway_mqtt_out_pending(out) > 0)) {
        gateway_mqtt_out_run(out, 10);
        if (sub->mosq)
            mosquitto_loop(sub->mosq, 10, 1);
    }
}

Test(mqtt, publish_and_receive_round_trip_with_the_default_json)
{
    subscriber sub;
    subscriber_start(&sub);
    gateway_mqtt_out_config c = {0};
    connection(&c.connection, password_file);
    c.spool_dir = spool_dir;
    gateway_mqtt_out *out = NULL;
    cr_assert_eq(gateway_mqtt_out_new(&c, &out, NULL), ANM_OK);
    gateway_mqtt_sample s;
    sample(&s, 0);
    s.value = 12.5;
    cr_assert_eq(gateway_mqtt_out_publish(out, &s), ANM_OK);
    sample(&s, 1);
    s.quality = "out_of_range";
    s.test = 1;
    cr_assert_eq(gateway_mqtt_out_publish(out, &s), ANM_OK);
    cr_expect_eq(gateway_mqtt_out_pending(out), 2, "spooled before the connection is up");
    pump(out, &sub, 2);
    cr_expect_eq(gateway_mqtt_out_state(out), GATEWAY_MQTT_CONNECTED);
    cr_assert_eq(sub.count, 2);
    cr_expect_str_eq(sub.topics[0], "anm/E_ANM-1/active_power_mw");
    cr_expect_str_eq(sub.payloads[0],
                     "{\"ts\":\"2020-09-15T14:24:00.000Z\",\"unit\":\"E_ANM-1\",\"quantity\":"
                     "\"active_power_mw\",\"value\":12.5,\"quality\":\"good\",\"test\":false}");
    cr_expect_str_eq(sub.payloads[1],
                     "{\"ts\":\"2020-09-15T14:24:01.000Z\",\"unit\":\"E_ANM-1\",\"quantity\":"
                     "\"active_power_mw\",\"value\":11,\"quality\":\"out_of_range\",\"test\":true}");
    cr_expect_eq(gateway_mqtt_out_pending(out), 0, "dropped only after PUBACK");
    cr_expect_eq(gateway_mqtt_out_acked(out), 2);
    gateway_mqtt_out_destroy(&out);
    subscriber_stop(&sub);
}

Test(mqtt, wrong_password_is_a_clear_refusal_and_nothing_is_lost)
{
    gateway_mqtt_out_config c = {0};
    connection(&c.connection, wrong_password_file);
    c.spool_dir = spool_dir;
    gateway_mqtt_out *out = NULL;
    cr_assert_eq(gateway_mqtt_out_new(&c, &out, NULL), ANM_OK);
    gateway_mqtt_sample s;
    sample(&s, 0);
    cr_assert_eq(gateway_mqtt_out_publish(out, &s), ANM_OK);
    int rc = ANM_OK;
    int64_t deadline = anm_wall_clock_ms() + 5000;
    while (gateway_mqtt_out_state(out) != GATEWAY_MQTT_REFUSED && anm_wall_clock_ms() < deadline)
        rc = gateway_mqtt_out_run(out, 20);
    cr_expect_eq(rc, ANM_EAUTH);
    cr_expect_eq(gateway_mqtt_out_state(out), GATEWAY_MQTT_REFUSED);
    cr_expect_str_eq(gateway_mqtt_out_last_error(out), "connack refused: not authorised");
    cr_expect_eq(gateway_mqtt_out_pending(out), 1);
    gateway_mqtt_out_destroy(&out);
}

Test(mqtt, untrusted_broker_certificate_is_refused)
{
    gateway_mqtt_out_config c = {0};
    connection(&c.connection, password_file);
    c.connection.ca_file = tls.other_ca_cert;
    c.spool_dir = spool_dir;
    gateway_mqtt_out *out = NULL;
    cr_assert_eq(gateway_mqtt_out_new(&c, &out, NULL), ANM_OK);
    int rc = ANM_OK;
    for (int i = 0; i < 20 && rc == ANM_OK; i++)
        rc = gateway_mqtt_out_run(out, 20);
    cr_expect_eq(rc, ANM_ENET);
    cr_expect_neq(gateway_mqtt_out_state(out), GATEWAY_MQTT_CONNECTED);
    cr_expect(strstr(gateway_mqtt_out_last_error(out), "certificate verify failed") != NULL,
              "error: %s", gateway_mqtt_out_last_error(out));
    gateway_mqtt_out_destroy(&out);
}

Test(mqtt, broker_restart_loses_nothing_buffered_and_keeps_order)
{
    subscriber sub;
    subscriber_start(&sub);
    gateway_mqtt_out_config c = {0};
    connection(&c.connection, password_file);
    c.spool_dir = spool_dir;
    c.max_inflight = 3; /* the backlog goes out in several windows */
    gateway_mqtt_out *out = NULL;
    cr_assert_eq(gateway_mqtt_out_new(&c, &out, NULL), ANM_OK);
    gateway_mqtt_sample s;
    for (int i = 0; i < 3; i++) {
        sample(&s, i);
        cr_assert_eq(gateway_mqtt_out_publish(out, &s), ANM_OK);
    }
    pump(out, &sub, 3);
    cr_assert_eq(sub.count, 3);
    subscriber_stop(&sub);

    anm_mosquitto_stop(&broker);
    for (int i = 3; i < 13; i++) {
        sample(&s, i);
        cr_assert_eq(gateway_mqtt_out_publish(out, &s), ANM_OK);
        gateway_mqtt_out_run(out, 5);
    }
    int rc = gateway_mqtt_out_run(out, 20);
    cr_expect_eq(rc, ANM_ENET);
    cr_expect_neq(gateway_mqtt_out_state(out), GATEWAY_MQTT_CONNECTED);
    cr_expect_eq(gateway_mqtt_out_pending(out), 10);
    /* the publisher process restarts too: the backlog is on disk */
    gateway_mqtt_out_destroy(&out);
    cr_assert_eq(gateway_mqtt_out_new(&c, &out, NULL), ANM_OK);
    cr_expect_eq(gateway_mqtt_out_pending(out), 10);

    cr_assert_eq(anm_mosquitto_restart(&broker), 0);
    subscriber_start(&sub);
    pump(out, &sub, 10);
    cr_assert_eq(sub.count, 10, "all buffered samples arrive");
    for (int i = 0; i < 10; i++) {
        char expected_ts[32];
        anm_time_format_utc(1600179840000LL + 1000LL * (i + 3), expected_ts, sizeof expected_ts);
        json_error_t e;
        json_t *j = json_loads(sub.payloads[i], 0, &e);
        cr_assert_not_null(j);
        cr_expect_str_eq(json_string_value(json_object_get(j, "ts")), expected_ts, "order at %d", i);
        cr_expect_eq(json_number_value(json_object_get(j, "value")), 13.0 + i);
        json_decref(j);
    }
    cr_expect_eq(gateway_mqtt_out_pending(out), 0);
    gateway_mqtt_out_destroy(&out);
    subscriber_stop(&sub);
}

Test(mqtt, templates_render_and_bad_ones_are_refused)
{
    gateway_mqtt_sample s;
    sample(&s, 0);
    s.unit = "A\"B";
    char topic[128], payload[256];
    cr_assert_eq(gateway_mqtt_render("neso/{unit}/{signal_id}", "{\"u\":\"{unit}\",\"ms\":{utc_ms}}",
                                     &s, topic, sizeof topic, payload, sizeof payload),
                 ANM_OK);
    cr_expect_str_eq(topic, "neso/A\"B/7");
    cr_expect_str_eq(payload, "{\"u\":\"A\\\"B\",\"ms\":1600179840000}");
    cr_expect_eq(gateway_mqtt_render("neso/{nope}", NULL, &s, topic, sizeof topic, payload,
                                     sizeof payload),
                 ANM_EINVAL);
    cr_expect_eq(gateway_mqtt_render("neso/+/{unit}", NULL, &s, topic, sizeof topic, payload,
                                     sizeof payload),
                 ANM_EINVAL);
    s.value = 1.0 / 0.0;
    cr_expect_eq(gateway_mqtt_render(NULL, NULL, &s, topic, sizeof topic, payload, sizeof payload),
                 ANM_ERANGE);
}

/* ---- subscriber to ingest ---------------------------------------------------- */

static void publish_raw(struct mosquitto *m, const char *topic, const char *payload)
{
    cr_assert_eq(mosquitto_publish(m, NULL, topic, (int)strlen(payload), payload, 1, false),
                 MOSQ_ERR_SUCCESS);
}

static int recv_batch(anm_socket *router, gateway_mqtt_in *in, anm_telemetry_batch *batch,
                      anm_msg **msg_out)
{
    int64_t deadline = anm_wall_clock_ms() + 8000;
    while (anm_wall_clock_ms() < deadline) {
        gateway_mqtt_in_run(in, 20);
        anm_msg *msg = NULL;
        if (anm_socket_recv(router, &msg, ANM_BUS_DONTWAIT) == ANM_OK) {
            size_t size;
            const void *body = anm_msg_part(msg, 2, &size);
            cr_assert_eq(anm_telemetry_decode_any(body, size, NULL, batch, NULL), ANM_OK);
            *msg_out = msg;
            return 1;
        }
    }
    return 0;
}

Test(mqtt, subscriber_journals_and_hands_samples_to_ingest_until_acked)
{
    anm_bus *bus = NULL;
    cr_assert_eq(anm_bus_new(&bus), ANM_OK);
    anm_socket *router = NULL;
    cr_assert_eq(anm_socket_new(bus, ANM_SOCKET_ROUTER, "@tcp://127.0.0.1:*", NULL, &router, NULL),
                 ANM_OK);
    char endpoint[128], connect[140];
    cr_assert_eq(anm_socket_last_endpoint(router, endpoint, sizeof endpoint), ANM_OK);
    snprintf(connect, sizeof connect, ">%s", endpoint);

    gateway_mqtt_in_map maps[] = {{"site/wf1/p_mw", 1001}, {"site/wf1/f_hz", 1002}};
    gateway_mqtt_in_config c = {0};
    connection(&c.connection, password_file);
    c.maps = maps;
    c.n_maps = 2;
    c.journal_dir = spool_dir;
    c.ingest_endpoint = connect;
    c.sender_id = 42;
    c.resend_after_ms = 300;
    gateway_mqtt_in *in = NULL;
    cr_assert_eq(gateway_mqtt_in_new(&c, bus, &in, NULL), ANM_OK);
    int64_t deadline = anm_wall_clock_ms() + 5000;
    while (gateway_mqtt_in_state(in) != GATEWAY_MQTT_CONNECTED && anm_wall_clock_ms() < deadline)
        gateway_mqtt_in_run(in, 20);
    cr_assert_eq(gateway_mqtt_in_state(in), GATEWAY_MQTT_CONNECTED);
    gateway_mqtt_in_run(in, 100); /* SUBACK */

    subscriber site;
    subscriber_start(&site); /* used as the site's publisher */
    publish_raw(site.mosq, "site/wf1/p_mw", "{\"ts\":\"2021-01-01T00:00:00.000Z\",\"value\":-1.5,\"quality\":192}");
    publish_raw(site.mosq, "site/wf1/f_hz", "49.95");
    publish_raw(site.mosq, "site/wf1/unmapped", "1");
    publish_raw(site.mosq, "site/wf1/p_mw", "{\"value\":\"high\"}");
    for (int i = 0; i < 10; i++)
        mosquitto_loop(site.mosq, 10, 1);

    anm_telemetry_batch batch;
    anm_telemetry_batch_init(&batch);
    anm_msg *msg = NULL;
    gateway_mqtt_in_stats st;

    /* first delivery: not acked (as if ingest crashed before its journal sync) */
    cr_assert(recv_batch(router, in, &batch, &msg));
    uint64_t first_seq = batch.seq;
    size_t first_count = batch.count;
    cr_expect_eq(batch.sender_id, 42);
    cr_expect_eq(batch.flags & ANM_TELEMETRY_FLAG_RESEND, 0);
    anm_msg_destroy(&msg);
    /* resent with the resend flag, same batch */
    cr_assert(recv_batch(router, in, &batch, &msg));
    cr_expect_eq(batch.seq, first_seq);
    cr_expect_eq(batch.count, first_count);
    cr_expect_eq(batch.flags & ANM_TELEMETRY_FLAG_RESEND, ANM_TELEMETRY_FLAG_RESEND);

    /* ack every batch until both samples arrived */
    anm_telemetry_sample got[4];
    size_t n_got = 0;
    for (int round = 0; round < 3 && msg != NULL; round++) {
        for (size_t i = 0; i < batch.count && n_got < 4; i++)
            got[n_got++] = batch.samples[i];
        size_t route_size;
        const void *route = anm_msg_part(msg, 0, &route_size);
        anm_frame route_frame = {route, route_size};
        json_t *ack = anm_telemetry_ack_json(42, batch.seq, batch.count);
        cr_assert_eq(anm_bus_send_json(router, &route_frame, "telemetry.ack", ack, 0), ANM_OK);
        json_decref(ack);
        anm_msg_destroy(&msg);
        if (n_got >= 2)
            break;
        cr_assert(recv_batch(router, in, &batch, &msg));
    }
    cr_assert_eq(n_got, 2);
    cr_expect_eq(got[0].signal_id, 1001);
    cr_expect_eq(got[0].utc_ms, 1609459200000LL);
    cr_expect_eq(got[0].value, -1.5);
    cr_expect_eq(got[0].quality, 192);
    cr_expect_eq(got[1].signal_id, 1002);
    cr_expect_eq(got[1].value, 49.95);
    cr_expect_eq(got[1].quality, 0);

    int64_t until = anm_wall_clock_ms() + 5000;
    do {
        gateway_mqtt_in_run(in, 20);
        gateway_mqtt_in_get_stats(in, &st);
    } while ((st.journalled > 0 || st.received + st.dropped < 3) && anm_wall_clock_ms() < until);
    cr_expect_eq(st.received, 2);
    cr_expect_eq(st.dropped, 1, "the non-numeric value (the unmapped topic is not subscribed)");
    cr_expect_eq(st.journalled, 0, "journal emptied once acked");
    cr_expect_eq(st.acked, 2);

    anm_telemetry_batch_free(&batch);
    subscriber_stop(&site);
    gateway_mqtt_in_destroy(&in);
    anm_socket_destroy(&router);
    anm_bus_destroy(&bus);
}
