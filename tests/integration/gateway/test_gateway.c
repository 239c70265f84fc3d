/*
 * test_gateway.c: the gateway service end to end: our IEC 104 client gets
 * GI values and spontaneous changes after a statement and telemetry arrive
 * on the bus; the field route hands an RTU's values to a fake ingest ROUTER
 * that acknowledges; --status over ZeroMQ.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bus.h"
#include "engine/clock.h"
#include "engine/telemetry_frame.h"
#include "gateway/gateway.h"
#include "gateway/iec104_client.h"
#include "gateway/iec104_server.h"
#include "testlib.h"

#define MAX_SEEN 512

typedef struct seen {
    int n;
    gateway_iec104_asdu asdus[MAX_SEEN];
} seen;

static void collect(void *arg, const gateway_iec104_asdu *asdu, int64_t now_ms)
{
    (void)now_ms;
    seen *s = arg;
    if (s->n < MAX_SEEN)
        s->asdus[s->n++] = *asdu;
}

typedef struct runner {
    gateway_service *service;
    pthread_t thread;
} runner;

static void *run_service(void *arg)
{
    runner *r = arg;
    (void)gateway_service_run(r->service, 0);
    return NULL;
}

static const char proforma[] =
    "{\"ders\":[{\"id\":\"wind18\",\"zone\":\"feeder33\",\"capacity_mw\":8,"
    "\"metered_signal_id\":44}],"
    "\"points\":["
    "{\"der\":\"wind18\",\"quantity\":\"metered_mw\",\"iec104\":{\"ioa\":1001},\"min\":-1,"
    "\"max\":8.4},"
    "{\"der\":\"wind18\",\"quantity\":\"availability_mw\",\"iec104\":{\"ioa\":1002},\"min\":0,"
    "\"max\":8},"
    "{\"der\":\"wind18\",\"quantity\":\"pcf\",\"iec104\":{\"ioa\":1003},\"min\":0,\"max\":1},"
    "{\"der\":\"wind18\",\"quantity\":\"state\",\"iec104\":{\"ioa\":1004,\"type\":\"single\"},"
    "\"min\":0,\"max\":1}]}";

/* A statement covering now (two periods around it). */
static char *statement_now(int64_t now, double p90)
{
    int64_t start = now - now % 1800000;
    char a[32], b[32], c[32];
    anm_time_format_utc(start, a, sizeof a);
    anm_time_format_utc(start + 1800000, b, sizeof b);
    anm_time_format_utc(start + 3600000, c, sizeof c);
    char *text = malloc(2048);
    snprintf(text, 2048,
             "{\"v\":1,\"kind\":\"constraint.statement\",\"statement\":{\"id\":\"s1\","
             "\"version\":1,\"zone\":\"feeder33\",\"periods\":["
             "{\"period\":1,\"utc_start\":\"%s\",\"utc_end\":\"%s\",\"ders\":[{\"der\":\"wind18\","
             "\"pcf\":{\"value\":0.2},\"curtailment_mw\":{\"p50\":0,\"p90\":%g,\"p99\":5}}]},"
             "{\"period\":2,\"utc_start\":\"%s\",\"utc_end\":\"%s\",\"ders\":[{\"der\":\"wind18\","
             "\"pcf\":{\"value\":0.3},\"curtailment_mw\":{\"p50\":0,\"p90\":2,\"p99\":5}}]}]}}",
             a, b, p90, b, c);
    return text;
}

static const gateway_iec104_object *find_object(const seen *s, uint8_t type, uint8_t cause,
                                                uint32_t ioa, int from)
{
    for (int i = from; i < s->n; i++) {
        if (s->asdus[i].type != type || s->asdus[i].cause != cause)
            continue;
        for (int k = 0; k < s->asdus[i].count; k++) {
            if (s->asdus[i].objects[k].ioa == ioa)
                return &s->asdus[i].objects[k];
        }
    }
    return NULL;
}

static void pump(gateway_iec104_client *c, anm_clock *clock, int64_t ms)
{
    int64_t end = anm_monotonic_ns() + ms * 1000000;
    while (anm_monotonic_ns() < end)
        (void)gateway_iec104_client_run_once(c, anm_clock_now_ms(clock), 5);
}

/* Runs the client until pred holds or 5 s pass. */
#define PUMP_UNTIL(c, clock, cond)                                                                 \
    do {                                                                                           \
        int64_t end_ = anm_monotonic_ns() + 5000000000LL;                                          \
        while (!(cond) && anm_monotonic_ns() < end_)                                               \
            (void)gateway_iec104_client_run_once((c), anm_clock_now_ms(clock), 5);                 \
    } while (0)

Test(gateway, iec104_gi_then_spontaneous_after_statement_and_telemetry, .timeout = 30)
{
    char *dir = anm_test_tmpdir("gw");
    char pf_path[1024], cfg_path[1024];
    snprintf(pf_path, sizeof pf_path, "%s/pf.json", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/gw.json", dir);
    cr_assert_eq(anm_test_write_file(pf_path, proforma), 0);
    anm_bus *bus = NULL;
    cr_assert_eq(anm_bus_new(&bus), ANM_OK);
    anm_socket *pub_stmt = NULL, *pub_tele = NULL;
    cr_assert_eq(anm_socket_new(bus, ANM_SOCKET_PUB, "@tcp://127.0.0.1:*", NULL, &pub_stmt, NULL),
                 ANM_OK);
    cr_assert_eq(anm_socket_new(bus, ANM_SOCKET_PUB, "@tcp://127.0.0.1:*", NULL, &pub_tele, NULL),
                 ANM_OK);
    char ep_stmt[128], ep_tele[128];
    anm_socket_last_endpoint(pub_stmt, ep_stmt, sizeof ep_stmt);
    anm_socket_last_endpoint(pub_tele, ep_tele, sizeof ep_tele);
    char cfg_text[2048];
    snprintf(cfg_text, sizeof cfg_text,
             "{\"proforma_file\":\"pf.json\",\"status_endpoint\":\"@tcp://127.0.0.1:*\","
             "\"statement_endpoint\":\">%s\",\"telemetry_endpoint\":\">%s\","
             "\"iec104\":{\"port\":0,\"cyclic_period_s\":0}}",
             ep_stmt, ep_tele);
    cr_assert_eq(anm_test_write_file(cfg_path, cfg_text), 0);
    gateway_config cfg;
    anm_error_detail d;
    anm_error_detail_clear(&d);
    cr_assert_eq(gateway_config_load(cfg_path, &cfg, &d), ANM_OK, "%s %s", d.path, d.message);
    anm_clock *clock = anm_clock_new_real();
    runner r = {0};
    cr_assert_eq(gateway_service_new(&cfg, clock, &r.service, &d), ANM_OK, "%s", d.message);
    int port = gateway_service_iec104_port(r.service);
    cr_assert_gt(port, 0);
    char status_ep[256];
    snprintf(status_ep, sizeof status_ep, "%s", gateway_service_status_endpoint(r.service));
    cr_assert_eq(pthread_create(&r.thread, NULL, run_service, &r), 0);

    seen *s = calloc(1, sizeof *s);
    gateway_iec104_client_config cc;
    gateway_iec104_client_config_default(&cc);
    snprintf(cc.host, sizeof cc.host, "127.0.0.1");
    cc.port = port;
    gateway_iec104_client *c = NULL;
    cr_assert_eq(gateway_iec104_client_new(&cc, collect, s, anm_clock_now_ms(clock), &c, NULL),
                 ANM_OK);
    /* GI after STARTDT: 3 floats + 1 single point, all IV (no value yet), then actterm */
    PUMP_UNTIL(c, clock, find_object(s, GATEWAY_IEC104_M_SP_NA_1, 20, 1004, 0) != NULL);
    const gateway_iec104_object *o = find_object(s, GATEWAY_IEC104_M_ME_NC_1, 20, 1002, 0);
    cr_assert_not_null(o, "GI answered with M_ME_NC_1 COT 20");
    cr_assert_eq(o->quality & 0x80, 0x80, "no statement yet: IV");

    /* the SUB connections are asynchronous: publish until a value arrives */
    int mark = s->n;
    char *text = statement_now(anm_clock_now_ms(clock), 2.5);
    for (int tries = 0; tries < 100 && !find_object(s, GATEWAY_IEC104_M_ME_TF_1, 3, 1002, mark);
         tries++) {
        anm_frame f[2] = {{"constraint.statement/feeder33", 29}, {text, strlen(text)}};
        cr_assert_eq(anm_socket_send(pub_stmt, f, 2, 0), ANM_OK);
        pump(c, clock, 50);
    }
    free(text);
    o = find_object(s, GATEWAY_IEC104_M_ME_TF_1, 3, 1002, mark);
    cr_assert_not_null(o, "spontaneous availability after the statement");
    cr_assert_float_eq(o->value, 5.5f, 1e-6, "8 MW - P90 2.5 MW");
    cr_assert_eq(o->quality, 0);
    o = find_object(s, GATEWAY_IEC104_M_ME_TF_1, 3, 1003, mark);
    cr_assert_not_null(o);
    cr_assert_float_eq(o->value, 0.2f, 1e-6);
    o = find_object(s, GATEWAY_IEC104_M_SP_TB_1, 3, 1004, mark);
    cr_assert_not_null(o);
    cr_assert_eq(o->single_point, 1, "curtailment expected");

    /* telemetry: 9.0 MW is above the 8.4 limit: sent as 9.0 flagged OV */
    mark = s->n;
    int64_t t0 = anm_clock_now_ms(clock);
    char tele[256];
    snprintf(tele, sizeof tele,
             "{\"v\":1,\"kind\":\"signal.latest\",\"zone\":\"feeder33\",\"samples\":"
             "[[44,%lld,9.0,0],[77,%lld,1.0,0]]}",
             (long long)t0, (long long)t0);
    for (int tries = 0; tries < 100 && !find_object(s, GATEWAY_IEC104_M_ME_TF_1, 3, 1001, mark);
         tries++) {
        anm_frame f[2] = {{"signal.latest/feeder33", 22}, {tele, strlen(tele)}};
        cr_assert_eq(anm_socket_send(pub_tele, f, 2, 0), ANM_OK);
        pump(c, clock, 50);
    }
    o = find_object(s, GATEWAY_IEC104_M_ME_TF_1, 3, 1001, mark);
    cr_assert_not_null(o, "spontaneous metered value");
    cr_assert_float_eq(o->value, 9.0f, 0.0, "not clipped");
    cr_assert_eq(o->quality, 0x01, "OV set");
    int64_t tagged = 0;
    cr_assert_eq(gateway_iec104_cp56_to_utc_ms(&o->time, NULL, &tagged), ANM_OK);
    cr_assert_eq(tagged, t0, "time tag = measurement time");

    /* GI again returns the current values */
    mark = s->n;
    cr_assert_eq(gateway_iec104_client_interrogate(c, anm_clock_now_ms(clock)), ANM_OK);
    PUMP_UNTIL(c, clock, find_object(s, GATEWAY_IEC104_M_SP_NA_1, 20, 1004, mark) != NULL);
    o = find_object(s, GATEWAY_IEC104_M_ME_NC_1, 20, 1001, mark);
    cr_assert_not_null(o);
    cr_assert_float_eq(o->value, 9.0f, 0.0);
    cr_assert_eq(o->quality, 0x01);
    o = find_object(s, GATEWAY_IEC104_M_ME_NC_1, 20, 1002, mark);
    cr_assert_not_null(o);
    cr_assert_float_eq(o->value, 5.5f, 1e-6);

    /* status over ZeroMQ: hand-overs counted with a latency under NESO's 5 s */
    pump(c, clock, 200);
    json_t *st = NULL;
    cr_assert_eq(gateway_status_query(status_ep, 3000, &st), ANM_OK);
    json_t *iec = json_object_get(json_object_get(st, "routes"), "iec104");
    cr_assert_geq(json_integer_value(json_object_get(iec, "handed_over")), 4);
    double p99 = json_real_value(json_object_get(iec, "latency_p99_ms"));
    cr_assert(p99 > 0 && p99 < 5000, "p99 %g", p99);
    cr_assert_eq(json_integer_value(json_object_get(iec, "started")), 1);
    cr_assert_eq(json_integer_value(json_object_get(st, "statements")), 1);
    json_decref(st);

    gateway_iec104_client_destroy(&c);
    gateway_service_stop(r.service);
    pthread_join(r.thread, NULL);
    gateway_service_destroy(&r.service);
    gateway_config_free(&cfg);
    anm_clock_destroy(&clock);
    anm_socket_destroy(&pub_stmt);
    anm_socket_destroy(&pub_tele);
    anm_bus_destroy(&bus);
    free(s);
    anm_test_rmtree(dir);
    free(dir);
}

Test(gateway, field_route_to_fake_ingest_router_with_acks, .timeout = 30)
{
    char *dir = anm_test_tmpdir("gwf");
    char pf_path[1024], cfg_path[1024];
    snprintf(pf_path, sizeof pf_path, "%s/pf.json", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/gw.json", dir);
    cr_assert_eq(anm_test_write_file(pf_path, proforma), 0);
    anm_clock *clock = anm_clock_new_real();
    /* the RTU: our outstation with two points */
    gateway_iec104_server_config sc;
    gateway_iec104_server_config_default(&sc);
    sc.port = 0;
    sc.common_address = 7;
    gateway_iec104_server *rtu = NULL;
    cr_assert_eq(gateway_iec104_server_new(&sc, anm_clock_now_ms(clock), &rtu, NULL), ANM_OK);
    gateway_iec104_server_define_point(rtu, 500, GATEWAY_IEC104_POINT_MEASURED);
    gateway_iec104_server_define_point(rtu, 501, GATEWAY_IEC104_POINT_MEASURED);
    int64_t t0 = anm_clock_now_ms(clock);
    gateway_iec104_server_update(rtu, 500, 3.25, 0, t0, 0, t0);
    /* fake ingest */
    anm_bus *bus = NULL;
    cr_assert_eq(anm_bus_new(&bus), ANM_OK);
    anm_socket *router = NULL;
    cr_assert_eq(anm_socket_new(bus, ANM_SOCKET_ROUTER, "@tcp://127.0.0.1:*", NULL, &router, NULL),
                 ANM_OK);
    char ep[128];
    anm_socket_last_endpoint(router, ep, sizeof ep);
    char cfg_text[2048];
    snprintf(cfg_text, sizeof cfg_text,
             "{\"proforma_file\":\"pf.json\",\"status_endpoint\":\"@tcp://127.0.0.1:*\","
             "\"iec104\":{\"enabled\":false},\"field\":[{\"name\":\"rtu1\",\"host\":\"127.0.0.1\","
             "\"port\":%d,\"common_address\":7,\"ingest_endpoint\":\">%s\",\"sender_id\":9,"
             "\"batch_max_age_ms\":10,\"resend_ms\":300,"
             "\"map\":[{\"ioa\":500,\"signal_id\":1500},{\"ioa\":501,\"signal_id\":1501}]}]}",
             gateway_iec104_server_port(rtu), ep);
    cr_assert_eq(anm_test_write_file(cfg_path, cfg_text), 0);
    gateway_config cfg;
    anm_error_detail d;
    anm_error_detail_clear(&d);
    cr_assert_eq(gateway_config_load(cfg_path, &cfg, &d), ANM_OK, "%s %s", d.path, d.message);
    runner r = {0};
    cr_assert_eq(gateway_service_new(&cfg, clock, &r.service, &d), ANM_OK, "%s", d.message);
    cr_assert_eq(pthread_create(&r.thread, NULL, run_service, &r), 0);

    /* GI gives both points (501 still IV); then a spontaneous 501 = 7.5 */
    anm_telemetry_batch batch;
    anm_telemetry_batch_init(&batch);
    double got500 = NAN, got501 = NAN;
    int acked_first = 0, batches = 0, resends = 0, sent_update = 0;
    int64_t end = anm_monotonic_ns() + 10000000000LL;
    while (anm_monotonic_ns() < end && !(got500 == 3.25 && got501 == 7.5 && resends > 0)) {
        int64_t now = anm_clock_now_ms(clock);
        gateway_iec104_server_run_once(rtu, now, 5);
        if (!sent_update && gateway_iec104_server_started_count(rtu) > 0 && !isnan(got500)) {
            gateway_iec104_server_update(rtu, 501, 7.5, 0, now, 1, now);
            sent_update = 1;
        }
        anm_msg *msg = NULL;
        while (anm_socket_recv(router, &msg, ANM_BUS_DONTWAIT) == ANM_OK) {
            size_t route_size, size;
            const void *route = anm_msg_part(msg, 0, &route_size);
            const void *body = anm_msg_part(msg, 2, &size);
            cr_assert_eq(anm_telemetry_decode_any(body, size, NULL, &batch, NULL), ANM_OK);
            cr_assert_eq(batch.sender_id, 9);
            batches++;
            if (batch.flags & ANM_TELEMETRY_FLAG_RESEND)
                resends++;
            for (size_t i = 0; i < batch.count; i++) {
                if (batch.samples[i].signal_id == 1500)
                    got500 = batch.samples[i].value;
                if (batch.samples[i].signal_id == 1501 && batch.samples[i].quality == 0)
                    got501 = batch.samples[i].value;
            }
            /* the first batch is not acknowledged at once: it must come again */
            if (acked_first || (batch.flags & ANM_TELEMETRY_FLAG_RESEND)) {
                json_t *ack = anm_telemetry_ack_json(batch.sender_id, batch.seq, batch.count);
                anm_frame rf = {route, route_size};
                cr_assert_eq(anm_bus_send_json(router, &rf, "telemetry.ack", ack, 0), ANM_OK);
                json_decref(ack);
                acked_first = 1;
            }
            anm_msg_destroy(&msg);
        }
    }
    cr_assert_float_eq(got500, 3.25, 0.0, "GI value of IOA 500 handed to ingest as signal 1500");
    cr_assert_float_eq(got501, 7.5, 0.0, "spontaneous IOA 501 as signal 1501");
    cr_assert_geq(resends, 1, "an unacknowledged batch is resent with the resend flag");
    /* everything acked eventually: backlog 0 in the status */
    json_t *st = NULL;
    end = anm_monotonic_ns() + 5000000000LL;
    long long backlog = -1;
    while (anm_monotonic_ns() < end && backlog != 0) {
        gateway_iec104_server_run_once(rtu, anm_clock_now_ms(clock), 5);
        anm_msg *msg = NULL;
        while (anm_socket_recv(router, &msg, ANM_BUS_DONTWAIT) == ANM_OK) {
            size_t route_size, size;
            const void *route = anm_msg_part(msg, 0, &route_size);
            const void *body = anm_msg_part(msg, 2, &size);
            if (anm_telemetry_decode_any(body, size, NULL, &batch, NULL) == ANM_OK) {
                json_t *ack = anm_telemetry_ack_json(batch.sender_id, batch.seq, batch.count);
                anm_frame rf = {route, route_size};
                anm_bus_send_json(router, &rf, "telemetry.ack", ack, 0);
                json_decref(ack);
            }
            anm_msg_destroy(&msg);
        }
        if (gateway_status_query(gateway_service_status_endpoint(r.service), 1000, &st) == ANM_OK) {
            json_t *f = json_object_get(json_object_get(st, "routes"), "field:rtu1");
            backlog = json_integer_value(json_object_get(f, "backlog"));
            json_decref(st);
        }
    }
    cr_assert_eq(backlog, 0);
    anm_telemetry_batch_free(&batch);
    gateway_service_stop(r.service);
    pthread_join(r.thread, NULL);
    gateway_service_destroy(&r.service);
    gateway_config_free(&cfg);
    gateway_iec104_server_destroy(&rtu);
    anm_socket_destroy(&router);
    anm_bus_destroy(&bus);
    anm_clock_destroy(&clock);
    anm_test_rmtree(dir);
    free(dir);
}
