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
#include "gateway/jws.h"
#include "gateway/spool_log.h"
#include "gateway/wa_client.h"
#include "gateway/wa_messages.h"
#include "gateway/wa_server.h"
#include "testlib.h"
#include "wa_tls.h"
#include "mosquitto_fixture.h"
#include "tls_fixture.h"
#include <mosquitto.h>
#include <zmq.h>

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

/* ---- Wider Access wired into the service ---------------------------------------------- */

typedef struct neso_inbox {
    pthread_mutex_t lock;
    json_t *messages; /* redeclarations NESO accepted */
} neso_inbox;

static int neso_handler(void *user, gateway_wa_kind kind, const json_t *message, const char *kid,
                        int64_t received_at_ms)
{
    (void)kind;
    (void)kid;
    (void)received_at_ms;
    neso_inbox *in = user;
    pthread_mutex_lock(&in->lock);
    json_array_append_new(in->messages, json_deep_copy(message));
    pthread_mutex_unlock(&in->lock);
    return ANM_OK;
}

static size_t inbox_count(neso_inbox *in)
{
    pthread_mutex_lock(&in->lock);
    size_t n = json_array_size(in->messages);
    pthread_mutex_unlock(&in->lock);
    return n;
}

static json_t *statement_version(int64_t now, double p90, int version)
{
    int64_t start = now - now % 1800000;
    char a[32], b[32];
    anm_time_format_utc(start, a, sizeof a);
    anm_time_format_utc(start + 1800000, b, sizeof b);
    return json_pack("{s:s,s:i,s:s,s:[{s:i,s:s,s:s,s:[{s:s,s:{s:f},s:{s:f,s:f,s:f}}]}]}", "id",
                     "s-wa", "version", version, "zone", "feeder33", "periods", "period", 1,
                     "utc_start", a, "utc_end", b, "ders", "der", "wind18", "pcf", "value", 0.2,
                     "curtailment_mw", "p50", 0.0, "p90", p90, "p99", 5.0);
}

Test(gateway, wider_access_redeclaration_out_and_instruction_to_bus, .timeout = 60)
{
    wa_tls *tls = wa_tls_new();
    cr_assert_not_null(tls);
    anm_error_detail d;
    anm_error_detail_clear(&d);
    /* NESO's side: an endpoint taking redeclarations, signing with NESO's key,
       trusting the participant's certificate */
    gateway_jws_signer *neso = NULL;
    gateway_jws_signer_config sc = {GATEWAY_JWS_ES256, wa_tls_pem(tls, "neso.key"),
                                    wa_tls_pem(tls, "neso.pem"), NULL, 1};
    cr_assert_eq(gateway_jws_signer_new(&sc, &neso, &d), ANM_OK, "%s", d.message);
    gateway_jws_verifier *trust_participant = gateway_jws_verifier_new();
    cr_assert_eq(gateway_jws_verifier_add_cert(trust_participant, NULL, wa_tls_pem(tls, "ec.pem"),
                                               &d),
                 ANM_OK);
    neso_inbox inbox = {.messages = json_array()};
    pthread_mutex_init(&inbox.lock, NULL);
    gateway_wa_server_config nc = {0};
    nc.tls_key_pem = wa_tls_pem(tls, "server.key");
    nc.tls_cert_pem = wa_tls_pem(tls, "server.pem");
    nc.paths[GATEWAY_WA_REDECLARATION] = "/wa/v1/redeclaration";
    nc.sender = "NESO";
    nc.signer = neso;
    nc.verifier = trust_participant;
    nc.handler = neso_handler;
    nc.user = &inbox;
    gateway_wa_server *neso_server = NULL;
    cr_assert_eq(gateway_wa_server_start(&nc, &neso_server, &d), ANM_OK, "%s", d.message);

    char *dir = anm_test_tmpdir("gw-wa");
    char pf_path[1024], cfg_path[1024], cfg_text[8192];
    snprintf(pf_path, sizeof pf_path, "%s/pf.json", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/gw.json", dir);
    cr_assert_eq(anm_test_write_file(pf_path, proforma), 0);
    char k_ec[512], c_ec[512], c_neso[512], ca[512], k_srv[512], c_srv[512];
    snprintf(k_ec, sizeof k_ec, "%s", wa_tls_path(tls, "ec.key"));
    snprintf(c_ec, sizeof c_ec, "%s", wa_tls_path(tls, "ec.pem"));
    snprintf(c_neso, sizeof c_neso, "%s", wa_tls_path(tls, "neso.pem"));
    snprintf(ca, sizeof ca, "%s", wa_tls_path(tls, "ca.pem"));
    snprintf(k_srv, sizeof k_srv, "%s", wa_tls_path(tls, "server.key"));
    snprintf(c_srv, sizeof c_srv, "%s", wa_tls_path(tls, "server.pem"));
    snprintf(cfg_text, sizeof cfg_text,
             "{\"proforma_file\":\"pf.json\",\"status_endpoint\":\"@tcp://127.0.0.1:*\","
             "\"iec104\":{\"enabled\":false},"
             "\"wider_access\":{\"enabled\":true,\"server_enabled\":true,\"sender\":\"anm-test\","
             "\"signing_alg\":\"ES256\",\"signing_key_file\":\"%s\",\"signing_cert_file\":\"%s\","
             "\"neso_cert_file\":\"%s\",\"base_url\":\"https://127.0.0.1:%d\",\"ca_file\":\"%s\","
             "\"retry_ms\":100,\"port\":0,\"tls_key_file\":\"%s\",\"tls_cert_file\":\"%s\","
             "\"publish_endpoint\":\"@tcp://127.0.0.1:*\"}}",
             k_ec, c_ec, c_neso, gateway_wa_server_port(neso_server), ca, k_srv, c_srv);
    cr_assert_eq(anm_test_write_file(cfg_path, cfg_text), 0);
    gateway_config cfg;
    cr_assert_eq(gateway_config_load(cfg_path, &cfg, &d), ANM_OK, "%s %s", d.path, d.message);
    anm_clock *clock = anm_clock_new_real();
    gateway_service *svc = NULL;
    cr_assert_eq(gateway_service_new(&cfg, clock, &svc, &d), ANM_OK, "%s: %s", d.path, d.message);

    /* availability 8 - 1 = 7 MW, then 8 - 4 = 4 MW: a redeclaration (threshold 1 MW) */
    int64_t now = anm_clock_now_ms(clock);
    json_t *st = statement_version(now, 1.0, 1);
    cr_assert_eq(gateway_service_apply_statement(svc, st, &d), ANM_OK, "%s", d.message);
    json_decref(st);
    st = statement_version(now, 4.0, 2);
    cr_assert_eq(gateway_service_apply_statement(svc, st, &d), ANM_OK, "%s", d.message);
    json_decref(st);
    int64_t end = anm_monotonic_ns() + 10000000000LL;
    while (inbox_count(&inbox) < 1 && anm_monotonic_ns() < end)
        (void)gateway_service_run_once(svc, 10);
    cr_assert_eq(inbox_count(&inbox), 1, "NESO received no redeclaration");
    json_t *m = json_array_get(inbox.messages, 0);
    cr_assert_str_eq(json_string_value(json_object_get(m, "kind")), "redeclaration");
    cr_assert_str_eq(json_string_value(json_object_get(m, "sender")), "anm-test");
    cr_assert_str_eq(json_string_value(json_object_get(m, "bmu")), "wind18");
    cr_assert_float_eq(json_number_value(json_object_get(m, "availability_mw")), 4.0, 1e-9);
    char start[32];
    anm_time_format_utc(now - now % 1800000, start, sizeof start);
    int64_t from = 0;
    cr_assert_eq(anm_time_parse_iso8601(json_string_value(json_object_get(m, "effective_from")),
                                        &from),
                 ANM_OK);
    cr_assert_eq(from, now - now % 1800000, "effective_from is the period start %s", start);
    json_t *status = NULL;
    for (int i = 0; i < 200; i++) { /* the worker records the ack just after NESO's handler */
        json_decref(status);
        status = gateway_service_status(svc);
        json_t *r = json_object_get(json_object_get(status, "routes"), "wider_access_client");
        if (json_integer_value(json_object_get(r, "handed_over")) == 1)
            break;
        (void)gateway_service_run_once(svc, 10);
    }
    json_t *route = json_object_get(json_object_get(status, "routes"), "wider_access_client");
    cr_assert_eq(json_integer_value(json_object_get(route, "handed_over")), 1);
    cr_assert_eq(json_integer_value(json_object_get(route, "backlog")), 0);
    cr_assert(json_is_string(json_object_get(route, "last_handover")));
    cr_assert(json_is_real(json_object_get(route, "latency_p99_ms")));
    json_decref(status);

    /* NESO sends a signed instruction to the service's endpoint: it is published on the bus */
    anm_bus *bus = NULL;
    cr_assert_eq(anm_bus_new(&bus), ANM_OK);
    anm_socket *sub = NULL;
    cr_assert_eq(anm_socket_new(bus, ANM_SOCKET_SUB, NULL, NULL, &sub, NULL), ANM_OK);
    cr_assert_eq(anm_socket_connect(sub, gateway_service_wa_publish_endpoint(svc), NULL), ANM_OK);
    cr_assert_eq(anm_socket_subscribe(sub, "wa."), ANM_OK);
    gateway_jws_verifier *trust_gateway = gateway_jws_verifier_new();
    cr_assert_eq(gateway_jws_verifier_add_cert(trust_gateway, NULL, wa_tls_pem(tls, "ec.pem"), &d),
                 ANM_OK);
    char base[64];
    snprintf(base, sizeof base, "https://127.0.0.1:%d", gateway_service_wa_port(svc));
    gateway_wa_client_config cc = {0};
    cc.base_url = base;
    cc.ca_file = ca;
    cc.signer = neso;
    cc.verifier = trust_gateway;
    cc.max_attempts = 1;
    gateway_wa_client *neso_client = NULL;
    cr_assert_eq(gateway_wa_client_new(&cc, &neso_client, &d), ANM_OK, "%s", d.message);
    /* the SUB joins asynchronously: new instructions until one is seen */
    char topic[128] = "";
    json_t *body = NULL;
    for (int i = 0; i < 50 && body == NULL; i++) {
        char id[32];
        snprintf(id, sizeof id, "I-%d", i);
        json_t *ins = gateway_wa_message_new(GATEWAY_WA_INSTRUCTION, id, "NESO",
                                             anm_wall_clock_ms(), 0);
        json_object_set_new(ins, "instruction_id", json_string("BOA-77"));
        json_object_set_new(ins, "bmu", json_string("WIND18"));
        json_object_set_new(ins, "issued_at", json_string("2026-11-26T03:30:00Z"));
        json_object_set_new(ins, "points", json_pack("[{s:s,s:f}]", "time",
                                                     "2026-11-26T03:32:00Z", "level_mw", 3.5));
        gateway_wa_result res;
        memset(&res, 0, sizeof res);
        cr_assert_eq(gateway_wa_client_send(neso_client, ins, &res), ANM_OK, "%s", res.error);
        gateway_wa_result_clear(&res);
        json_decref(ins);
        zmq_pollitem_t item = {anm_socket_handle(sub), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 200) == 1) {
            anm_msg *msg = NULL;
            size_t count = 0;
            const anm_bus_schema *table = gateway_wa_bus_schemas(&count);
            anm_bus_reject why;
            cr_assert_eq(anm_bus_recv_json(sub, table, count, 0, &msg, &body, &why), ANM_OK, "%s",
                         why.text);
            size_t size = 0;
            const char *raw = anm_msg_part(msg, 0, &size);
            snprintf(topic, sizeof topic, "%.*s", (int)size, raw);
            anm_msg_destroy(&msg);
        }
    }
    cr_assert_not_null(body, "no instruction published on the bus");
    cr_assert_str_eq(topic, "wa.instruction/WIND18");
    json_t *msg = json_object_get(body, "message");
    cr_assert_str_eq(json_string_value(json_object_get(msg, "instruction_id")), "BOA-77");
    cr_assert_float_eq(json_number_value(json_object_get(
                           json_array_get(json_object_get(msg, "points"), 0), "level_mw")),
                       3.5, 1e-9);
    json_decref(body);
    status = gateway_service_status(svc);
    route = json_object_get(json_object_get(status, "routes"), "wider_access_server");
    cr_assert_geq(json_integer_value(json_object_get(route, "handed_over")), 1);
    cr_assert_eq(json_integer_value(json_object_get(route, "errors")), 0);
    json_decref(status);

    gateway_wa_client_destroy(&neso_client);
    gateway_jws_verifier_destroy(&trust_gateway);
    anm_socket_destroy(&sub);
    anm_bus_destroy(&bus);
    gateway_service_destroy(&svc);
    gateway_config_free(&cfg);
    anm_clock_destroy(&clock);
    gateway_wa_server_stop(&neso_server);
    json_decref(inbox.messages);
    gateway_jws_verifier_destroy(&trust_participant);
    gateway_jws_signer_destroy(&neso);
    wa_tls_destroy(&tls);
    anm_test_rmtree(dir);
    free(dir);
}

/* A gateway config with the Wider Access client to port, its queue in <dir>/wa-spool. */
static void write_wa_config(wa_tls *tls, const char *cfg_path, int port)
{
    char k_ec[512], c_ec[512], c_neso[512], ca[512], text[8192];
    snprintf(k_ec, sizeof k_ec, "%s", wa_tls_path(tls, "ec.key"));
    snprintf(c_ec, sizeof c_ec, "%s", wa_tls_path(tls, "ec.pem"));
    snprintf(c_neso, sizeof c_neso, "%s", wa_tls_path(tls, "neso.pem"));
    snprintf(ca, sizeof ca, "%s", wa_tls_path(tls, "ca.pem"));
    snprintf(text, sizeof text,
             "{\"proforma_file\":\"pf.json\",\"status_endpoint\":\"@tcp://127.0.0.1:*\","
             "\"iec104\":{\"enabled\":false},"
             "\"wider_access\":{\"enabled\":true,\"sender\":\"anm-test\","
             "\"signing_alg\":\"ES256\",\"signing_key_file\":\"%s\",\"signing_cert_file\":\"%s\","
             "\"neso_cert_file\":\"%s\",\"base_url\":\"https://127.0.0.1:%d\",\"ca_file\":\"%s\","
             "\"retry_ms\":100,\"max_attempts\":1,\"spool_dir\":\"wa-spool\"}}",
             k_ec, c_ec, c_neso, port, ca);
    cr_assert_eq(anm_test_write_file(cfg_path, text), 0);
}

Test(gateway, wider_access_queue_survives_a_restart_and_is_sent_in_order, .timeout = 60)
{
    wa_tls *tls = wa_tls_new();
    cr_assert_not_null(tls);
    anm_error_detail d;
    anm_error_detail_clear(&d);
    gateway_jws_signer *neso = NULL;
    gateway_jws_signer_config sc = {GATEWAY_JWS_ES256, wa_tls_pem(tls, "neso.key"),
                                    wa_tls_pem(tls, "neso.pem"), NULL, 1};
    cr_assert_eq(gateway_jws_signer_new(&sc, &neso, &d), ANM_OK, "%s", d.message);
    gateway_jws_verifier *trust_participant = gateway_jws_verifier_new();
    cr_assert_eq(gateway_jws_verifier_add_cert(trust_participant, NULL, wa_tls_pem(tls, "ec.pem"),
                                               &d),
                 ANM_OK);
    neso_inbox inbox = {.messages = json_array()};
    pthread_mutex_init(&inbox.lock, NULL);
    gateway_wa_server_config nc = {0};
    nc.tls_key_pem = wa_tls_pem(tls, "server.key");
    nc.tls_cert_pem = wa_tls_pem(tls, "server.pem");
    nc.paths[GATEWAY_WA_REDECLARATION] = "/wa/v1/redeclaration";
    nc.sender = "NESO";
    nc.signer = neso;
    nc.verifier = trust_participant;
    nc.handler = neso_handler;
    nc.user = &inbox;
    /* a port nobody listens on: a NESO endpoint started and stopped again */
    gateway_wa_server *neso_server = NULL;
    cr_assert_eq(gateway_wa_server_start(&nc, &neso_server, &d), ANM_OK, "%s", d.message);
    int dead_port = gateway_wa_server_port(neso_server);
    gateway_wa_server_stop(&neso_server);

    char *dir = anm_test_tmpdir("gw-wa-spool");
    char pf_path[1024], cfg_path[1024], spool[1024];
    snprintf(pf_path, sizeof pf_path, "%s/pf.json", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/gw.json", dir);
    snprintf(spool, sizeof spool, "%s/wa-spool", dir);
    cr_assert_eq(anm_test_write_file(pf_path, proforma), 0);
    write_wa_config(tls, cfg_path, dead_port);

    /* run 1: two redeclarations (7 -> 4 MW, 4 -> 7 MW) that NESO cannot receive */
    gateway_config cfg;
    cr_assert_eq(gateway_config_load(cfg_path, &cfg, &d), ANM_OK, "%s %s", d.path, d.message);
    anm_clock *clock = anm_clock_new_real();
    gateway_service *svc = NULL;
    cr_assert_eq(gateway_service_new(&cfg, clock, &svc, &d), ANM_OK, "%s: %s", d.path, d.message);
    int64_t now = anm_clock_now_ms(clock);
    for (int v = 1; v <= 3; v++) {
        json_t *st = statement_version(now, v == 2 ? 4.0 : 1.0, v);
        cr_assert_eq(gateway_service_apply_statement(svc, st, &d), ANM_OK, "%s", d.message);
        json_decref(st);
    }
    json_t *status = NULL, *route = NULL;
    for (int i = 0; i < 500; i++) { /* a send was tried and failed */
        json_decref(status);
        status = gateway_service_status(svc);
        route = json_object_get(json_object_get(status, "routes"), "wider_access_client");
        if (json_integer_value(json_object_get(route, "errors")) >= 1)
            break;
        (void)gateway_service_run_once(svc, 10);
    }
    cr_assert_geq(json_integer_value(json_object_get(route, "errors")), 1);
    cr_assert_eq(json_integer_value(json_object_get(route, "backlog")), 2);
    json_decref(status);
    status = NULL;
    gateway_service_destroy(&svc);
    gateway_config_free(&cfg);

    /* on disk between the runs: both records, unacknowledged */
    gateway_spool_log *log = NULL;
    cr_assert_eq(gateway_spool_log_open(spool, 0, &log, &d), ANM_OK, "%s", d.message);
    cr_assert_eq(gateway_spool_log_pending(log), 2);
    gateway_spool_log_close(&log);

    /* run 2: NESO is up; the queue from run 1 goes out first, in order */
    cr_assert_eq(gateway_wa_server_start(&nc, &neso_server, &d), ANM_OK, "%s", d.message);
    write_wa_config(tls, cfg_path, gateway_wa_server_port(neso_server));
    cr_assert_eq(gateway_config_load(cfg_path, &cfg, &d), ANM_OK, "%s %s", d.path, d.message);
    cr_assert_eq(gateway_service_new(&cfg, clock, &svc, &d), ANM_OK, "%s: %s", d.path, d.message);
    int64_t end = anm_monotonic_ns() + 10000000000LL;
    while (inbox_count(&inbox) < 2 && anm_monotonic_ns() < end)
        (void)gateway_service_run_once(svc, 10);
    cr_assert_eq(inbox_count(&inbox), 2, "NESO received %zu of the 2 queued redeclarations",
                 inbox_count(&inbox));
    const double mw[] = {4.0, 7.0};
    for (size_t i = 0; i < 2; i++) {
        json_t *m = json_array_get(inbox.messages, i);
        cr_assert_str_eq(json_string_value(json_object_get(m, "kind")), "redeclaration");
        cr_assert_float_eq(json_number_value(json_object_get(m, "availability_mw")), mw[i], 1e-9,
                           "message %zu", i);
        cr_assert(strstr(json_string_value(json_object_get(m, "reason")),
                         i == 0 ? "version 2" : "version 3") != NULL,
                  "message %zu: %s", i, json_string_value(json_object_get(m, "reason")));
    }
    for (int i = 0; i < 200; i++) { /* the worker records the acks just after NESO's handler */
        json_decref(status);
        status = gateway_service_status(svc);
        route = json_object_get(json_object_get(status, "routes"), "wider_access_client");
        if (json_integer_value(json_object_get(route, "handed_over")) == 2)
            break;
        (void)gateway_service_run_once(svc, 10);
    }
    cr_assert_eq(json_integer_value(json_object_get(route, "handed_over")), 2);
    cr_assert_eq(json_integer_value(json_object_get(route, "backlog")), 0);
    json_decref(status);
    gateway_service_destroy(&svc);
    gateway_config_free(&cfg);

    /* acknowledged: trimmed, nothing to send at the next start */
    cr_assert_eq(gateway_spool_log_open(spool, 0, &log, &d), ANM_OK, "%s", d.message);
    cr_assert_eq(gateway_spool_log_pending(log), 0);
    gateway_spool_log_close(&log);

    anm_clock_destroy(&clock);
    gateway_wa_server_stop(&neso_server);
    json_decref(inbox.messages);
    gateway_jws_verifier_destroy(&trust_participant);
    gateway_jws_signer_destroy(&neso);
    wa_tls_destroy(&tls);
    anm_test_rmtree(dir);
    free(dir);
}

/* ---- MQTT wired into the service ---------------------------------------------------------- */

typedef struct mqtt_seen {
    int subscribed;
    int count;
    char topic[8][128];
    char payload[8][512];
} mqtt_seen;

static void seen_on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)obj;
    if (rc == 0)
        mosquitto_subscribe(m, NULL, "anm/#", 1);
}

static void seen_on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *qos)
{
    (void)m;
    (void)mid;
    (void)n;
    (void)qos;
    ((mqtt_seen *)obj)->subscribed = 1;
}

static void seen_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m;
    mqtt_seen *s = obj;
    if (s->count < 8) {
        snprintf(s->topic[s->count], sizeof s->topic[0], "%s", msg->topic);
        snprintf(s->payload[s->count], sizeof s->payload[0], "%.*s", msg->payloadlen,
                 (const char *)msg->payload);
        s->count++;
    }
}

Test(gateway, mqtt_route_publishes_exported_values_to_a_tls_broker, .timeout = 60)
{
    anm_tls_fixture tls;
    cr_assert_eq(anm_tls_fixture_make(&tls), 0);
    anm_mosquitto_fixture broker;
    cr_assert_eq(anm_mosquitto_start(&broker, &tls, "neso-dc", "broker password 0123456789"), 0);
    char *dir = anm_test_tmpdir("gw-mqtt");
    char pf_path[1024], cfg_path[1024], pw_path[1024], cfg_text[4096];
    snprintf(pf_path, sizeof pf_path, "%s/pf.json", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/gw.json", dir);
    snprintf(pw_path, sizeof pw_path, "%s/password", dir);
    cr_assert_eq(anm_test_write_file(pw_path, "broker password 0123456789\n"), 0);
    cr_assert_eq(anm_test_write_file(
                     pf_path,
                     "{\"ders\":[{\"id\":\"wind18\",\"zone\":\"feeder33\",\"unit\":\"WIND18\","
                     "\"capacity_mw\":8}],\"points\":["
                     "{\"der\":\"wind18\",\"quantity\":\"availability_mw\",\"iec104\":{\"ioa\":1002},"
                     "\"mqtt_topic\":\"anm/site-7/wind18-availability\",\"min\":0,\"max\":8},"
                     "{\"der\":\"wind18\",\"quantity\":\"pcf\",\"iec104\":{\"ioa\":1003},"
                     "\"min\":0,\"max\":1}]}"),
                 0);
    snprintf(cfg_text, sizeof cfg_text,
             "{\"proforma_file\":\"pf.json\",\"status_endpoint\":\"@tcp://127.0.0.1:*\","
             "\"iec104\":{\"port\":0,\"cyclic_period_s\":0},"
             "\"mqtt\":{\"enabled\":true,\"host\":\"localhost\",\"port\":%d,\"ca_file\":\"%s\","
             "\"username\":\"neso-dc\",\"password_file\":\"password\",\"spool_dir\":\"spool\"}}",
             broker.port, tls.ca_cert);
    cr_assert_eq(anm_test_write_file(cfg_path, cfg_text), 0);

    mosquitto_lib_init();
    mqtt_seen got = {0};
    struct mosquitto *sub = mosquitto_new(NULL, true, &got);
    mosquitto_username_pw_set(sub, "neso-dc", "broker password 0123456789");
    cr_assert_eq(mosquitto_tls_set(sub, tls.ca_cert, NULL, NULL, NULL, NULL), MOSQ_ERR_SUCCESS);
    mosquitto_connect_callback_set(sub, seen_on_connect);
    mosquitto_subscribe_callback_set(sub, seen_on_subscribe);
    mosquitto_message_callback_set(sub, seen_on_message);
    cr_assert_eq(mosquitto_connect(sub, "localhost", broker.port, 30), MOSQ_ERR_SUCCESS);
    int64_t end = anm_monotonic_ns() + 5000000000LL;
    while (!got.subscribed && anm_monotonic_ns() < end)
        mosquitto_loop(sub, 20, 1);
    cr_assert(got.subscribed);

    gateway_config cfg;
    anm_error_detail d;
    anm_error_detail_clear(&d);
    cr_assert_eq(gateway_config_load(cfg_path, &cfg, &d), ANM_OK, "%s %s", d.path, d.message);
    anm_clock *clock = anm_clock_new_real();
    gateway_service *svc = NULL;
    cr_assert_eq(gateway_service_new(&cfg, clock, &svc, &d), ANM_OK, "%s: %s", d.path, d.message);
    json_t *st = statement_version(anm_clock_now_ms(clock), 2.5, 1);
    cr_assert_eq(gateway_service_apply_statement(svc, st, &d), ANM_OK, "%s", d.message);
    json_decref(st);
    end = anm_monotonic_ns() + 10000000000LL;
    while (got.count < 1 && anm_monotonic_ns() < end) {
        (void)gateway_service_run_once(svc, 5);
        mosquitto_loop(sub, 5, 1);
    }
    cr_assert_eq(got.count, 1, "one point has an mqtt_topic");
    cr_assert_str_eq(got.topic[0], "anm/site-7/wind18-availability"); /* the pro-forma topic */
    json_error_t je;
    json_t *payload = json_loads(got.payload[0], 0, &je);
    cr_assert_not_null(payload, "%s", got.payload[0]);
    cr_assert_float_eq(json_number_value(json_object_get(payload, "value")), 5.5, 1e-9,
                       "8 MW - P90 2.5 MW");
    cr_assert_str_eq(json_string_value(json_object_get(payload, "quality")), "good");
    cr_assert_str_eq(json_string_value(json_object_get(payload, "unit")), "WIND18");
    cr_assert(json_is_false(json_object_get(payload, "test")));
    json_decref(payload);
    json_t *status = NULL;
    for (int i = 0; i < 400; i++) { /* PUBACK reaches the worker after the delivery */
        json_decref(status);
        status = gateway_service_status(svc);
        json_t *r = json_object_get(json_object_get(status, "routes"), "mqtt");
        if (json_integer_value(json_object_get(r, "handed_over")) == 1)
            break;
        (void)gateway_service_run_once(svc, 5);
    }
    json_t *route = json_object_get(json_object_get(status, "routes"), "mqtt");
    cr_assert_eq(json_integer_value(json_object_get(route, "handed_over")), 1);
    cr_assert_eq(json_integer_value(json_object_get(route, "backlog")), 0);
    cr_assert_str_eq(json_string_value(json_object_get(route, "state")), "connected");
    cr_assert(json_is_real(json_object_get(route, "latency_p99_ms")));
    json_decref(status);
    gateway_service_destroy(&svc);
    gateway_config_free(&cfg);
    anm_clock_destroy(&clock);
    mosquitto_disconnect(sub);
    mosquitto_destroy(sub);
    anm_mosquitto_free(&broker);
    anm_tls_fixture_free(&tls);
    anm_test_rmtree(dir);
    free(dir);
}
