/*
 * test_wa.c: the Wider Access client and endpoint over real TLS on an
 * ephemeral port (gateway/wa_client.h, gateway/wa_server.h).
 *
 * The participant's endpoint (our server, trusting NESO's signing
 * certificate) receives instructions from "NESO" (our client with NESO's
 * key); each accepted instruction is published on a ZeroMQ PUB socket and a
 * SUB socket in the test sees it. Tampered, unsigned, mistyped and
 * misdirected requests, sent with libcurl directly, are refused with the
 * status, signed reason and log line documented in wa_server.h, and never
 * reach the handler. The client's retry and permanent-error paths run
 * against the same server.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "engine/bus.h"
#include "engine/log.h"
#include "gateway/jws.h"
#include "gateway/wa_client.h"
#include "gateway/wa_messages.h"
#include "gateway/wa_server.h"
#include "testlib.h"
#include "wa_tls.h"

typedef struct counting {
    _Atomic int calls;
    int fail;                        /* answer ANM_EAGAIN */
    gateway_wa_bus_adapter *adapter; /* forward when set */
} counting;

static int counting_handler(void *user, gateway_wa_kind kind, const json_t *message,
                            const char *kid, int64_t received_at_ms)
{
    counting *c = user;
    atomic_fetch_add(&c->calls, 1);
    if (c->fail)
        return ANM_EAGAIN;
    if (c->adapter != NULL)
        return gateway_wa_bus_handler(c->adapter, kind, message, kid, received_at_ms);
    return ANM_OK;
}

static struct {
    wa_tls *tls;
    char *log_path;
    int log_fd;
    gateway_jws_signer *participant;  /* signs our acks */
    gateway_jws_signer *neso;         /* "NESO" signs instructions */
    gateway_jws_verifier *trust_neso; /* our endpoint's trust list */
    gateway_jws_verifier *trust_participant; /* NESO's, to check our acks */
    gateway_wa_server *server;
    counting handler;
    anm_bus *bus;
    anm_socket *pub;
    anm_socket *sub;
    char base_url[64];
} t;

static gateway_jws_signer *signer_for(const char *name, const char *kid)
{
    char key[32], cert[32];
    snprintf(key, sizeof key, "%s.key", name);
    snprintf(cert, sizeof cert, "%s.pem", name);
    gateway_jws_signer_config config = {GATEWAY_JWS_ES256, wa_tls_pem(t.tls, key),
                                        wa_tls_pem(t.tls, cert), kid, 1};
    gateway_jws_signer *s = NULL;
    cr_assert_eq(gateway_jws_signer_new(&config, &s, NULL), ANM_OK);
    return s;
}

static void start_server(int fail)
{
    t.handler.fail = fail;
    gateway_wa_server_config config = {0};
    config.tls_key_pem = wa_tls_pem(t.tls, "server.key");
    config.tls_cert_pem = wa_tls_pem(t.tls, "server.pem");
    config.sender = "ANM-PART-01";
    config.max_body_bytes = 8192;
    config.signer = t.participant;
    config.verifier = t.trust_neso;
    config.handler = counting_handler;
    config.user = &t.handler;
    anm_error_detail detail;
    cr_assert_eq(gateway_wa_server_start(&config, &t.server, &detail), ANM_OK, "%s", detail.message);
    cr_assert_gt(gateway_wa_server_port(t.server), 0);
    snprintf(t.base_url, sizeof t.base_url, "https://127.0.0.1:%d",
             gateway_wa_server_port(t.server));
}

static void setup(void)
{
    memset(&t, 0, sizeof t);
    t.tls = wa_tls_new();
    cr_assert_not_null(t.tls);
    /* capture the log to check the logged reasons */
    size_t n = strlen(wa_tls_dir(t.tls)) + 16;
    t.log_path = malloc(n);
    snprintf(t.log_path, n, "%s/log.jsonl", wa_tls_dir(t.tls));
    t.log_fd = open(t.log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    cr_assert_geq(t.log_fd, 0);
    anm_log_set_fd(t.log_fd);
    anm_log_set_level(ANM_LOG_INFO);

    t.participant = signer_for("ec", "participant-2026");
    t.neso = signer_for("neso", "neso-2026");
    t.trust_neso = gateway_jws_verifier_new();
    cr_assert_eq(gateway_jws_verifier_add_cert(t.trust_neso, "neso-2026",
                                               wa_tls_pem(t.tls, "neso.pem"), NULL),
                 ANM_OK);
    t.trust_participant = gateway_jws_verifier_new();
    cr_assert_eq(gateway_jws_verifier_add_cert(t.trust_participant, "participant-2026",
                                               wa_tls_pem(t.tls, "ec.pem"), NULL),
                 ANM_OK);
}

static void teardown(void)
{
    gateway_wa_server_stop(&t.server);
    gateway_wa_server_stop(&t.server); /* idempotent */
    gateway_wa_bus_adapter_destroy(&t.handler.adapter);
    anm_socket_destroy(&t.sub);
    anm_socket_destroy(&t.pub);
    anm_bus_destroy(&t.bus);
    gateway_jws_verifier_destroy(&t.trust_participant);
    gateway_jws_verifier_destroy(&t.trust_neso);
    gateway_jws_signer_destroy(&t.neso);
    gateway_jws_signer_destroy(&t.participant);
    anm_log_set_fd(2);
    if (t.log_fd >= 0)
        close(t.log_fd);
    free(t.log_path);
    wa_tls_destroy(&t.tls);
}

static char *read_log(void)
{
    char *text = anm_test_read_file(t.log_path, NULL);
    cr_assert_not_null(text);
    return text;
}

static json_t *instruction(const char *message_id, double level_mw)
{
    json_t *m = gateway_wa_message_new(GATEWAY_WA_INSTRUCTION, message_id, "NESO",
                                       anm_wall_clock_ms(), 0);
    json_object_set_new(m, "instruction_id", json_string("BOA-4411"));
    json_object_set_new(m, "bmu", json_string("E_ANMZ-1"));
    json_object_set_new(m, "issued_at", json_string("2026-11-26T03:30:00Z"));
    json_object_set_new(m, "points",
                        json_pack("[{s:s, s:f}, {s:s, s:f}]", "time", "2026-11-26T03:32:00Z",
                                  "level_mw", level_mw, "time", "2026-11-26T04:00:00Z",
                                  "level_mw", level_mw));
    return m;
}

static gateway_wa_client *neso_client(const char *ca, const gateway_jws_verifier *verifier,
                                      int max_attempts)
{
    gateway_wa_client_config config = {0};
    config.base_url = t.base_url;
    config.ca_file = ca;
    config.signer = t.neso;
    config.verifier = verifier;
    config.max_attempts = max_attempts;
    config.backoff_initial_ms = 10;
    config.backoff_max_ms = 40;
    config.connect_timeout_ms = 2000;
    config.request_timeout_ms = 5000;
    gateway_wa_client *c = NULL;
    anm_error_detail detail;
    cr_assert_eq(gateway_wa_client_new(&config, &c, &detail), ANM_OK, "%s", detail.message);
    return c;
}

/* ---- bus -------------------------------------------------------------------- */

static void start_bus(void)
{
    cr_assert_eq(anm_bus_new(&t.bus), ANM_OK);
    cr_assert_eq(anm_socket_new(t.bus, ANM_SOCKET_PUB, "@tcp://127.0.0.1:*", NULL, &t.pub, NULL),
                 ANM_OK);
    char endpoint[128];
    cr_assert_eq(anm_socket_last_endpoint(t.pub, endpoint, sizeof endpoint), ANM_OK);
    cr_assert_eq(anm_socket_new(t.bus, ANM_SOCKET_SUB, NULL, NULL, &t.sub, NULL), ANM_OK);
    cr_assert_eq(anm_socket_connect(t.sub, endpoint, NULL), ANM_OK);
    cr_assert_eq(anm_socket_subscribe(t.sub, "wa."), ANM_OK);
    /* readiness: publish probes until the subscription is live (PUB drops
     * messages for subscribers that have not joined yet) */
    json_t *probe = json_pack("{s:i, s:s}", "v", 1, "kind", "wa.probe");
    int ready = 0;
    for (int i = 0; i < 100 && !ready; i++) {
        cr_assert_eq(anm_bus_send_json(t.pub, NULL, "wa.probe", probe, 0), ANM_OK);
        zmq_pollitem_t item = {anm_socket_handle(t.sub), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 50) == 1) {
            anm_msg *msg = NULL;
            cr_assert_eq(anm_socket_recv(t.sub, &msg, 0), ANM_OK);
            anm_msg_destroy(&msg);
            ready = 1;
        }
    }
    json_decref(probe);
    cr_assert(ready, "the SUB socket never joined");
    /* drain late probes */
    anm_msg *msg = NULL;
    while (anm_socket_recv(t.sub, &msg, ANM_BUS_DONTWAIT) == ANM_OK)
        anm_msg_destroy(&msg);
    cr_assert_eq(gateway_wa_bus_adapter_new(t.pub, &t.handler.adapter), ANM_OK);
}

/* Next non-probe message on the SUB socket (waits up to 5 s). */
static json_t *next_bus_message(char *topic, size_t topic_size)
{
    size_t count = 0;
    const anm_bus_schema *table = gateway_wa_bus_schemas(&count);
    for (;;) {
        zmq_pollitem_t item = {anm_socket_handle(t.sub), 0, ZMQ_POLLIN, 0};
        cr_assert_eq(zmq_poll(&item, 1, 5000), 1, "nothing published within 5 s");
        anm_msg *msg = NULL;
        json_t *body = NULL;
        anm_bus_reject why;
        int rc = anm_bus_recv_json(t.sub, table, count, 0, &msg, &body, &why);
        size_t size = 0;
        const char *raw_topic = anm_msg_part(msg, 0, &size);
        if (size >= 8 && memcmp(raw_topic, "wa.probe", 8) == 0) {
            anm_msg_destroy(&msg);
            continue;
        }
        cr_assert_eq(rc, ANM_OK, "%s", why.text);
        snprintf(topic, topic_size, "%.*s", (int)size, raw_topic);
        anm_msg_destroy(&msg);
        return body;
    }
}

/* ---- tests ------------------------------------------------------------------- */

Test(wa, instruction_is_verified_acknowledged_and_published, .init = setup, .fini = teardown,
     .timeout = 60)
{
    start_bus();
    start_server(0);
    gateway_wa_client *client = neso_client(wa_tls_path(t.tls, "ca.pem"), t.trust_participant, 3);

    json_t *first = instruction("I-9001", 12.5);
    gateway_wa_result result;
    cr_assert_eq(gateway_wa_client_send(client, first, &result), ANM_OK, "%s", result.error);
    cr_assert_eq(result.http_status, 200);
    cr_assert_eq(result.attempts, 1);
    /* the acknowledgement is signed by the participant and names the message */
    cr_assert_not_null(result.ack);
    cr_assert_str_eq(json_string_value(json_object_get(result.ack, "ref")), "I-9001");
    cr_assert_str_eq(json_string_value(json_object_get(result.ack, "status")), "accepted");
    cr_assert_str_eq(json_string_value(json_object_get(result.ack, "sender")), "ANM-PART-01");
    gateway_wa_result_clear(&result);

    char topic[128];
    json_t *body = next_bus_message(topic, sizeof topic);
    cr_assert_str_eq(topic, "wa.instruction/E_ANMZ-1");
    cr_assert_str_eq(json_string_value(json_object_get(body, "kind")), "wa.instruction");
    cr_assert_str_eq(json_string_value(json_object_get(body, "kid")), "neso-2026");
    cr_assert(json_equal(json_object_get(body, "message"), first), "published message differs");
    json_decref(body);

    /* a retry of the same message is acknowledged but not published again:
     * the next bus message is the next instruction */
    cr_assert_eq(gateway_wa_client_send(client, first, &result), ANM_OK, "%s", result.error);
    gateway_wa_result_clear(&result);
    json_t *second = instruction("I-9002", 8.0);
    cr_assert_eq(gateway_wa_client_send(client, second, &result), ANM_OK, "%s", result.error);
    gateway_wa_result_clear(&result);
    body = next_bus_message(topic, sizeof topic);
    cr_assert(json_equal(json_object_get(body, "message"), second), "expected I-9002 next");
    json_decref(body);

    gateway_wa_server_stats stats;
    gateway_wa_server_get_stats(t.server, &stats);
    cr_assert_eq(stats.accepted, 2);
    cr_assert_eq(stats.duplicates, 1);
    cr_assert_eq(stats.rejected, 0);
    cr_assert_eq(atomic_load(&t.handler.calls), 2);

    json_decref(first);
    json_decref(second);
    gateway_wa_client_destroy(&client);
    gateway_wa_client_destroy(&client);
}

/* ---- raw requests --------------------------------------------------------------- */

typedef struct reply {
    long status;
    char *body;
    size_t len;
} reply;

static size_t collect(char *ptr, size_t size, size_t nmemb, void *user)
{
    reply *r = user;
    size_t n = size * nmemb;
    r->body = realloc(r->body, r->len + n + 1);
    memcpy(r->body + r->len, ptr, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static reply post_raw(const char *path, const char *method, const char *content_type,
                      const char *body, size_t len)
{
    reply r = {0, NULL, 0};
    char url[256];
    snprintf(url, sizeof url, "%s%s", t.base_url, path);
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = NULL;
    char header[128];
    snprintf(header, sizeof header, "Content-Type: %s", content_type);
    headers = curl_slist_append(headers, header);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CAINFO, wa_tls_path(t.tls, "ca.pem"));
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
    CURLcode code = curl_easy_perform(curl);
    cr_assert_eq(code, CURLE_OK, "%s", curl_easy_strerror(code));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return r;
}

/* Posts, expects status and reason (in the signed ack and in the log). */
static void expect_refused_ref(const char *path, const char *method, const char *content_type,
                               const char *body, size_t len, long status, const char *reason,
                               const char *ref)
{
    int calls_before = atomic_load(&t.handler.calls);
    reply r = post_raw(path, method, content_type, body, len);
    cr_assert_eq(r.status, status, "%s %s: got %ld, expected %ld (%s)", method, path, r.status,
                 status, r.body ? r.body : "");
    /* the refusal is a signed ack from the participant */
    unsigned char *payload = NULL;
    size_t payload_len = 0;
    gateway_jws_reject why;
    cr_assert_eq(gateway_jws_verify(t.trust_participant, r.body, r.len, &payload, &payload_len,
                                    NULL, 0, &why),
                 ANM_OK, "answer not signed: %s", why.text);
    json_t *ack = json_loadb((const char *)payload, payload_len, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(ack, "status")), "rejected");
    cr_assert_str_eq(json_string_value(json_object_get(ack, "reason")), reason);
    if (ref != NULL)
        cr_assert_str_eq(json_string_value(json_object_get(ack, "ref")), ref);
    else
        cr_assert_null(json_object_get(ack, "ref"));
    json_decref(ack);
    free(payload);
    free(r.body);
    cr_assert_eq(atomic_load(&t.handler.calls), calls_before, "the handler was called");
    /* and it is in the log, with the reason as a field */
    char *log = read_log();
    char needle[128];
    snprintf(needle, sizeof needle, "\"reason\":\"%s\"", reason);
    cr_assert_not_null(strstr(log, needle), "log lacks %s:\n%s", needle, log);
    free(log);
    gateway_wa_server_stats stats;
    gateway_wa_server_get_stats(t.server, &stats);
    cr_assert_str_eq(stats.last_reason, reason);
}

static void expect_refused(const char *path, const char *method, const char *content_type,
                           const char *body, size_t len, long status, const char *reason)
{
    expect_refused_ref(path, method, content_type, body, len, status, reason, NULL);
}

static char *signed_by(gateway_jws_signer *s, const char *payload)
{
    char *jws = NULL;
    cr_assert_eq(gateway_jws_sign(s, payload, strlen(payload), &jws, NULL), ANM_OK);
    return jws;
}

Test(wa, tampered_unsigned_and_malformed_requests_are_refused, .init = setup, .fini = teardown,
     .timeout = 60)
{
    start_server(0);
    const char *path = "/wa/v1/instruction";
    json_t *m = instruction("I-1", 10.0);
    char *payload = json_dumps(m, JSON_COMPACT);
    char *jws = signed_by(t.neso, payload);

    /* tampered payload: the level changed after signing */
    json_object_set_new(json_array_get(json_object_get(m, "points"), 0), "level_mw", json_real(99));
    char *evil = json_dumps(m, JSON_COMPACT);
    char *evil_b64 = gateway_base64url_encode(evil, strlen(evil));
    char *dot1 = strchr(jws, '.'), *dot2 = strrchr(jws, '.');
    char tampered[8192];
    snprintf(tampered, sizeof tampered, "%.*s.%s%s", (int)(dot1 - jws), jws, evil_b64, dot2);
    expect_refused(path, "POST", "application/jose", tampered, strlen(tampered), 401,
                   "bad_signature");

    /* unsigned: alg none */
    char *none_h = gateway_base64url_encode("{\"alg\":\"none\"}", 14);
    char *p_b64 = gateway_base64url_encode(payload, strlen(payload));
    char unsigned_jws[8192];
    snprintf(unsigned_jws, sizeof unsigned_jws, "%s.%s.", none_h, p_b64);
    expect_refused(path, "POST", "application/jose", unsigned_jws, strlen(unsigned_jws), 401,
                   "unsigned");

    /* signed by a key the endpoint does not trust (the participant's own) */
    char *stranger = signed_by(t.participant, payload);
    expect_refused(path, "POST", "application/jose", stranger, strlen(stranger), 401,
                   "unknown_key");

    /* plain JSON, not a JWS */
    expect_refused(path, "POST", "application/jose", payload, strlen(payload), 400,
                   "segment_count");

    /* HTTP-level refusals */
    expect_refused(path, "POST", "application/json", jws, strlen(jws), 415,
                   "unsupported_media_type");
    expect_refused("/wa/v1/redeclaration", "POST", "application/jose", jws, strlen(jws), 404,
                   "not_found");
    expect_refused(path, "PUT", "application/jose", jws, strlen(jws), 405, "method_not_allowed");
    char *big = malloc(9000);
    memset(big, 'A', 8999);
    big[8999] = '\0';
    expect_refused(path, "POST", "application/jose", big, 8999, 413, "oversized");

    /* signed and genuine, but not a valid instruction */
    json_t *bad = instruction("I-2", 10.0);
    json_object_del(bad, "bmu");
    char *bad_text = json_dumps(bad, JSON_COMPACT);
    char *bad_jws = signed_by(t.neso, bad_text);
    expect_refused_ref(path, "POST", "application/jose", bad_jws, strlen(bad_jws), 400,
                       "missing_field", "I-2");
    /* a normalisation posted to the instruction endpoint */
    json_t *norm = gateway_wa_message_new(GATEWAY_WA_NORMALISATION, "N-1", "NESO",
                                          anm_wall_clock_ms(), 0);
    json_object_set_new(norm, "bmu", json_string("E_ANMZ-1"));
    json_object_set_new(norm, "effective_at", json_string("2026-11-26T04:00:00Z"));
    char *norm_text = json_dumps(norm, JSON_COMPACT);
    char *norm_jws = signed_by(t.neso, norm_text);
    expect_refused_ref(path, "POST", "application/jose", norm_jws, strlen(norm_jws), 400,
                       "wrong_kind", "N-1");

    gateway_wa_server_stats stats;
    gateway_wa_server_get_stats(t.server, &stats);
    cr_assert_eq(stats.rejected, 10);
    cr_assert_eq(stats.accepted, 0);

    /* the genuine original still goes through */
    reply ok = post_raw(path, "POST", "application/jose", jws, strlen(jws));
    cr_assert_eq(ok.status, 200);
    free(ok.body);
    cr_assert_eq(atomic_load(&t.handler.calls), 1);

    char *log = read_log();
    cr_assert_not_null(strstr(log, "refused wider access request on \\\"/wa/v1/instruction\\\""));
    cr_assert_not_null(strstr(log, "alg \\\"none\\\": unsigned payloads are refused"));
    free(log);

    free(norm_jws);
    free(norm_text);
    json_decref(norm);
    free(bad_jws);
    free(bad_text);
    json_decref(bad);
    free(big);
    free(stranger);
    free(none_h);
    free(p_b64);
    free(evil_b64);
    free(evil);
    free(jws);
    free(payload);
    json_decref(m);
}

Test(wa, client_retries_server_errors_and_reports_permanent_ones, .init = setup,
     .fini = teardown, .timeout = 60)
{
    start_server(1); /* the handler fails: 503 */
    gateway_wa_client *client = neso_client(wa_tls_path(t.tls, "ca.pem"), t.trust_participant, 3);
    json_t *m = instruction("I-5", 1.0);
    gateway_wa_result result;
    cr_assert_eq(gateway_wa_client_send(client, m, &result), ANM_EAGAIN);
    cr_assert_eq(result.attempts, 3);
    cr_assert_eq(result.http_status, 503);
    cr_assert_eq(atomic_load(&t.handler.calls), 3);
    gateway_wa_result_clear(&result);
    char *log = read_log();
    cr_assert_not_null(strstr(log, "(attempt 1 of 3, retrying in 10 ms)"), "%s", log);
    cr_assert_not_null(strstr(log, "(attempt 2 of 3, retrying in 20 ms)"), "%s", log);
    cr_assert_not_null(strstr(log, "instruction \\\"I-5\\\" not delivered after 3 attempts"));
    free(log);

    /* a redeclaration to an endpoint that only takes instructions: 404, no retry */
    json_t *r = gateway_wa_message_new(GATEWAY_WA_REDECLARATION, "R-1", "ANM-PART-01",
                                       anm_wall_clock_ms(), 0);
    json_object_set_new(r, "bmu", json_string("E_ANMZ-1"));
    json_object_set_new(r, "effective_from", json_string("2026-11-26T05:00:00Z"));
    json_object_set_new(r, "effective_to", json_string("2026-11-26T05:30:00Z"));
    json_object_set_new(r, "availability_mw", json_real(3.5));
    json_object_set_new(r, "quality", json_string("good"));
    cr_assert_eq(gateway_wa_client_send(client, r, &result), ANM_ENOTFOUND);
    cr_assert_eq(result.attempts, 1);
    cr_assert_eq(result.http_status, 404);

    /* an invalid message is never sent */
    json_object_set_new(r, "quality", json_string("excellent"));
    cr_assert_eq(gateway_wa_client_send(client, r, &result), ANM_ECONFIG);
    cr_assert_eq(result.attempts, 0);
    cr_assert_str_eq(result.error, "message refused before sending: bad_enum: field \"quality\": "
                                   "\"excellent\" is not allowed");
    gateway_wa_client_destroy(&client);

    /* the server's certificate does not chain to the configured CA: permanent */
    client = neso_client(wa_tls_path(t.tls, "rsa.pem"), NULL, 3);
    cr_assert_eq(gateway_wa_client_send(client, m, &result), ANM_EAUTH);
    cr_assert_eq(result.attempts, 1);
    cr_assert_eq(result.http_status, 0);
    gateway_wa_client_destroy(&client);

    /* nobody listening any more: retried, then reported */
    gateway_wa_server_stop(&t.server);
    client = neso_client(wa_tls_path(t.tls, "ca.pem"), NULL, 2);
    cr_assert_eq(gateway_wa_client_send(client, m, &result), ANM_EAGAIN);
    cr_assert_eq(result.attempts, 2);
    cr_assert_not_null(strstr(result.error, "could not post instruction to"));
    gateway_wa_client_destroy(&client);
    json_decref(r);
    json_decref(m);
}

Test(wa, client_refuses_an_acknowledgement_it_cannot_verify, .init = setup, .fini = teardown,
     .timeout = 60)
{
    start_server(0);
    /* NESO trusts only its own certificate, not the participant's */
    gateway_wa_client *client = neso_client(wa_tls_path(t.tls, "ca.pem"), t.trust_neso, 3);
    json_t *m = instruction("I-7", 1.0);
    gateway_wa_result result;
    cr_assert_eq(gateway_wa_client_send(client, m, &result), ANM_EPROTO);
    cr_assert_eq(result.http_status, 200);
    cr_assert_eq(result.attempts, 1);
    cr_assert_str_eq(result.error, "acknowledgement refused: unknown_key: kid "
                                   "\"participant-2026\" is not a trusted key");
    cr_assert_null(result.ack);
    json_decref(m);
    gateway_wa_client_destroy(&client);
}

Test(wa, server_configuration_errors, .init = setup, .fini = teardown)
{
    gateway_wa_server_config config = {0};
    gateway_wa_server *s = NULL;
    anm_error_detail detail;
    cr_assert_eq(gateway_wa_server_start(&config, &s, &detail), ANM_ECONFIG);
    cr_assert_str_eq(detail.message, "the server needs a tls key and certificate");
    config.tls_key_pem = wa_tls_pem(t.tls, "server.key");
    config.tls_cert_pem = wa_tls_pem(t.tls, "server.pem");
    config.signer = t.participant;
    config.verifier = t.trust_neso;
    config.handler = counting_handler;
    config.user = &t.handler;
    config.bind_address = "localhost";
    cr_assert_eq(gateway_wa_server_start(&config, &s, &detail), ANM_ECONFIG);
    cr_assert_str_eq(detail.message, "\"localhost\" is not an IPv4 address");
    config.bind_address = NULL;
    config.paths[GATEWAY_WA_ACK] = "/ack";
    cr_assert_eq(gateway_wa_server_start(&config, &s, &detail), ANM_ECONFIG);
    cr_assert_str_eq(detail.message, "endpoint \"/ack\" must start with '/' and not be for acks");
    config.paths[GATEWAY_WA_ACK] = NULL;
    config.tls_key_pem = "not a key";
    cr_assert_eq(gateway_wa_server_start(&config, &s, &detail), ANM_ENET);
    cr_assert_null(s);

    gateway_wa_client_config cc = {0};
    gateway_wa_client *c = NULL;
    cc.base_url = "http://127.0.0.1:1";
    cc.signer = t.neso;
    cr_assert_eq(gateway_wa_client_new(&cc, &c, &detail), ANM_ECONFIG);
    cr_assert_str_eq(detail.message, "base_url must be an https:// url");
    cc.base_url = "https://127.0.0.1:1";
    cc.paths[GATEWAY_WA_HEALTH] = "health";
    cr_assert_eq(gateway_wa_client_new(&cc, &c, &detail), ANM_ECONFIG);
    cr_assert_str_eq(detail.message, "endpoint path \"health\" must start with '/'");
    cr_assert_null(c);
}
