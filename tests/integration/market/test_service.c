/*
 * test_service.c: anm-market as a real child process (started with
 * --ready-file on ephemeral ports, CURVE on) driven over ZeroMQ: the
 * submit/ack round trip, hostile requests rejected without effect, an
 * unknown CURVE key refused, kill -9 then restart giving identical books in
 * both durability modes, replay determinism, and gate closure on the
 * stepped engine clock.
 */
#define _GNU_SOURCE
#include "engine/db.h"
#include "engine/db_migrate.h"
#include "market/service.h"
#include "pg_harness.h"
#include "market_harness.h"
#include "testlib.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define PERIOD "2021-06-01T12:00:00Z" /* gate closure 11:00Z; the clock starts at 00:00Z */
#define PERIOD2 "2021-06-01T13:00:00Z"

typedef struct fixture {
    char *dir;
    char keys[1024], journal[1024], ready[1024], log[1024], participants[1024];
    char router[256];
    pid_t pid;
    void *ctx;
    const char *snapshot_every; /* --snapshot-every, NULL: the default */
    const char *extra[6];       /* more options for serve (NULL-terminated) */
    void *sockets[16]; /* closed by teardown, so a failed assertion leaves none open */
    size_t n_sockets;
} fixture;

static fixture fx;

static void setup(void)
{
    memset(&fx, 0, sizeof fx);
    fx.dir = anm_test_tmpdir("market-service");
    cr_assert_not_null(fx.dir);
    snprintf(fx.keys, sizeof fx.keys, "%s/keys", fx.dir);
    snprintf(fx.journal, sizeof fx.journal, "%s/market.journal", fx.dir);
    snprintf(fx.ready, sizeof fx.ready, "%s/ready", fx.dir);
    snprintf(fx.log, sizeof fx.log, "%s/service.log", fx.dir);
    snprintf(fx.participants, sizeof fx.participants, "%s/participants.json", fx.dir);
    cr_assert_eq(mkdir(fx.keys, 0700), 0);
    market_test_keygen(fx.keys, "server", 1);
    market_test_keygen(fx.keys, "gen-a", 0);
    market_test_keygen(fx.keys, "gen-b", 0);
    market_test_keygen(fx.keys, "dso", 0);
    /* mallory has a well-formed key that is not in authorized_keys */
    char other[1100];
    snprintf(other, sizeof other, "%s/other", fx.dir);
    cr_assert_eq(mkdir(other, 0700), 0);
    market_test_keygen(other, "mallory", 0);
    cr_assert_eq(anm_test_write_file(
                     fx.participants,
                     "{\"version\": 1, \"participants\": [\n"
                     " {\"id\": \"gen-a\", \"kind\": \"trader\", \"ders\": [{\"zone\": "
                     "\"feeder33\", \"der\": \"solar33\"}]},\n"
                     " {\"id\": \"gen-b\", \"kind\": \"trader\", \"ders\": [{\"zone\": "
                     "\"feeder33\", \"der\": \"wind18\"}]},\n"
                     " {\"id\": \"mallory\", \"kind\": \"trader\"},\n"
                     " {\"id\": \"dso\", \"kind\": \"system_operator\", \"admin\": true}]}\n"),
                 0);
    fx.ctx = zmq_ctx_new();
    cr_assert_not_null(fx.ctx);
}

static void stop(int sig)
{
    if (fx.pid <= 0)
        return;
    kill(fx.pid, sig);
    int status = 0;
    waitpid(fx.pid, &status, 0);
    fx.pid = 0;
}

static void teardown(void)
{
    stop(SIGTERM);
    for (size_t i = 0; i < fx.n_sockets; i++)
        zmq_close(fx.sockets[i]);
    if (fx.ctx)
        zmq_ctx_term(fx.ctx);
    if (fx.dir) {
        anm_test_rmtree(fx.dir);
        free(fx.dir);
    }
}

/* Starts the service and waits until it has written its ready file. */
static void start(const char *durability)
{
    char exe[1024], zones[1024];
    market_test_bin(exe, sizeof exe, "anm-market");
    anm_test_source_path(zones, sizeof zones, "data/zones/feeder33.json");
    unlink(fx.ready);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        FILE *log = freopen(fx.log, "a", stderr);
        (void)log;
        const char *args[] = {exe, "serve", "--zones", zones, "--participants", fx.participants,
                        "--keys", fx.keys, "--journal", fx.journal, "--durability",
                        durability, "--router", "tcp://127.0.0.1:*", "--pub",
                        "tcp://127.0.0.1:*", "--clock", "step:2021-06-01T00:00:00Z", "--mode",
                        "continuous", "--ready-file", fx.ready, "--log-level", "info",
                        fx.extra[0], fx.extra[1], fx.extra[2], fx.extra[3], fx.extra[4], fx.extra[5],
                        NULL, NULL, NULL};
        size_t n = 0;
        while (args[n] != NULL)
            n++;
        if (fx.snapshot_every != NULL) {
            args[n++] = "--snapshot-every";
            args[n++] = fx.snapshot_every;
        }
        execv(exe, anm_test_argv_dup(args));
        _exit(127);
    }
    fx.pid = pid;
    /* readiness: the ready file appears, or the child dies (reported) */
    market_test_wait_ready(fx.ready, &fx.pid, fx.log, fx.router, sizeof fx.router);
}

static void *client(const char *dir, const char *name)
{
    char path[1200], pub[41], sec[41], server_pub[41];
    snprintf(path, sizeof path, "%s/%s.secret", dir, name);
    cr_assert_eq(market_keyfile_read(path, pub, sec), ANM_OK);
    snprintf(path, sizeof path, "%s/server.secret", fx.keys);
    cr_assert_eq(market_keyfile_read(path, server_pub, NULL), ANM_OK);
    void *s = zmq_socket(fx.ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
    cr_assert_lt(fx.n_sockets, sizeof fx.sockets / sizeof fx.sockets[0]);
    fx.sockets[fx.n_sockets++] = s;
    cr_assert_eq(zmq_connect(s, fx.router), 0);
    return s;
}

/* Sends [topic][body]; the answer as a new string, or NULL after timeout_ms. */
static char *ask_raw(void *s, const char *topic, const char *body, size_t body_size,
                     int timeout_ms)
{
    cr_assert_geq(zmq_send(s, topic, strlen(topic), ZMQ_SNDMORE), 0);
    cr_assert_geq(zmq_send(s, body, body_size, 0), 0);
    zmq_pollitem_t item = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout_ms) <= 0)
        return NULL;
    zmq_msg_t m;
    zmq_msg_init(&m);
    cr_assert_geq(zmq_msg_recv(&m, s, 0), 0);
    char *text = strndup(zmq_msg_data(&m), zmq_msg_size(&m));
    zmq_msg_close(&m);
    return text;
}

static json_t *ask(void *s, const char *topic, const char *body)
{
    char *text = ask_raw(s, topic, body, strlen(body), 10000);
    cr_assert_not_null(text, "no answer to %s", body);
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    cr_assert_not_null(j, "answer is not JSON: %s", text);
    free(text);
    return j;
}

static const char *str(const json_t *j, const char *key)
{
    const char *v = json_string_value(json_object_get(j, key));
    return v ? v : "";
}

static long long num(const json_t *j, const char *key)
{
    return (long long)json_integer_value(json_object_get(j, key));
}

static char *submit_body(long long client_id, const char *der, const char *side,
                         const char *price, const char *quantity, const char *period)
{
    char *b = NULL;
    cr_assert_geq(asprintf(&b,
                           "{\"v\":1,\"kind\":\"order.submit\",\"request_id\":%lld,"
                           "\"client_order_id\":%lld,\"zone\":\"feeder33\",\"period_start\":"
                           "\"%s\",\"der\":\"%s\",\"side\":\"%s\",\"price\":%s,"
                           "\"quantity_mw\":%s}",
                           client_id, client_id, period, der, side, price, quantity),
                  0);
    return b;
}

static json_t *submit(void *s, long long client_id, const char *der, const char *side,
                      const char *price, const char *quantity, const char *period)
{
    char *b = submit_body(client_id, der, side, price, quantity, period);
    json_t *j = ask(s, "order.submit", b);
    free(b);
    return j;
}

static char *query_all(void *s)
{
    json_t *j = ask(s, "order.query", "{\"v\":1,\"kind\":\"order.query\"}");
    cr_assert_str_eq(str(j, "kind"), "order.list");
    char *text = json_dumps(json_object_get(j, "orders"), JSON_COMPACT);
    json_decref(j);
    return text;
}

static long long file_size(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    return (long long)st.st_size;
}

/* `anm-market replay` of the journal: its final digest line. */
static char *replay(void)
{
    char exe[1024];
    market_test_bin(exe, sizeof exe, "anm-market");
    const char *argv[] = {exe, "replay", fx.journal, NULL};
    char *out = NULL, *err = NULL;
    int status = anm_test_run_args(argv, &out, &err);
    cr_assert_eq(status, 0, "replay: %s", err ? err : "");
    free(err);
    return out;
}

static void statement(void *dso)
{
    json_t *a = ask(dso, "market.statement",
                    "{\"v\":1,\"kind\":\"market.statement\",\"statement\":{"
                    "\"schema\":\"anm.constraint_statement\",\"schema_version\":1,"
                    "\"zone\":\"feeder33\",\"periods\":["
                    "{\"utc_start\":\"" PERIOD "\",\"headroom_mw\":{\"p10\":{\"value\":3.0}},"
                    "\"binding_constraints\":[{\"constraint\":\"head\",\"contingency\":null}],"
                    "\"ders\":[{\"der\":\"solar33\",\"sensitivities\":[{\"constraint\":\"head\","
                    "\"contingency\":null,\"mw_per_mw\":0.5}]},"
                    "{\"der\":\"wind18\",\"sensitivities\":[{\"constraint\":\"head\","
                    "\"contingency\":null,\"mw_per_mw\":0.9}]}]},"
                    "{\"utc_start\":\"" PERIOD2 "\",\"headroom_mw\":{\"p10\":{\"value\":9.0}},"
                    "\"binding_constraints\":[],\"ders\":[]}]}}");
    cr_assert_str_eq(str(a, "kind"), "order.ack", "statement refused");
    json_decref(a);
}

TestSuite(market_service, .init = setup, .fini = teardown, .timeout = 60);

Test(market_service, submit_ack_round_trip)
{
    start("process");
    void *a = client(fx.keys, "gen-a");
    json_t *ack = submit(a, 7, "solar33", "offer", "42.50", "1.5", PERIOD);
    cr_assert_str_eq(str(ack, "kind"), "order.ack");
    cr_assert_str_eq(str(ack, "request"), "order.submit");
    cr_assert_eq(num(ack, "request_id"), 7);
    cr_assert_eq(num(ack, "client_order_id"), 7);
    cr_assert_float_eq(json_number_value(json_object_get(ack, "resting_mw")), 1.5, 1e-9);
    cr_assert(json_is_false(json_object_get(ack, "resubmission")));
    long long order_id = num(ack, "order_id");
    cr_assert_gt(order_id, 0);
    json_decref(ack);
    /* resubmission is idempotent: same order, nothing journaled */
    long long before = file_size(fx.journal);
    ack = submit(a, 7, "solar33", "offer", "42.50", "1.5", PERIOD);
    cr_assert(json_is_true(json_object_get(ack, "resubmission")));
    cr_assert_eq(num(ack, "order_id"), order_id);
    cr_assert_eq(file_size(fx.journal), before);
    json_decref(ack);
    /* the participant sees its order with the prices it sent */
    json_t *list = ask(a, "order.query", "{\"v\":1,\"kind\":\"order.query\"}");
    json_t *orders = json_object_get(list, "orders");
    cr_assert_eq(json_array_size(orders), 1);
    json_t *o = json_array_get(orders, 0);
    cr_assert_eq(num(o, "order_id"), order_id);
    cr_assert_str_eq(str(o, "der"), "solar33");
    cr_assert_str_eq(str(o, "side"), "offer");
    cr_assert_str_eq(str(o, "period_start"), "2021-06-01T12:00:00.000Z");
    cr_assert_float_eq(json_number_value(json_object_get(o, "price")), 42.5, 1e-9);
    json_decref(list);
    /* cancel, then it is gone */
    char body[256];
    snprintf(body, sizeof body, "{\"v\":1,\"kind\":\"order.cancel\",\"order_id\":%lld}", order_id);
    ack = ask(a, "order.cancel", body);
    cr_assert_str_eq(str(ack, "kind"), "order.ack");
    json_decref(ack);
    char *all = query_all(a);
    cr_assert_str_eq(all, "[]");
    free(all);
}

static void expect_reject(void *s, const char *topic, const char *body, size_t body_size,
                          const char *reason, const char *text_start)
{
    char *answer = ask_raw(s, topic, body, body_size, 10000);
    cr_assert_not_null(answer);
    json_t *j = json_loads(answer, 0, NULL);
    cr_assert_not_null(j, "%s", answer);
    cr_assert_str_eq(str(j, "kind"), "order.reject", "%s", answer);
    cr_assert_str_eq(str(j, "reason"), reason, "%s", answer);
    cr_assert_eq(strncmp(str(j, "text"), text_start, strlen(text_start)), 0,
                 "text \"%s\" does not start with \"%s\"", str(j, "text"), text_start);
    json_decref(j);
    free(answer);
}

Test(market_service, hostile_requests_are_rejected_without_effect)
{
    start("process");
    void *a = client(fx.keys, "gen-a");
    void *b = client(fx.keys, "gen-b");
    json_t *ack = submit(a, 1, "solar33", "offer", "40", "2", PERIOD);
    long long order_id = num(ack, "order_id");
    json_decref(ack);
    char *books = query_all(a);
    long long journal = file_size(fx.journal);

    expect_reject(b, "order.submit", "{\"v\":1,\"kind\":", 14, "bad_json", "");
    char *big = malloc(5001);
    memset(big, ' ', 5000);
    memcpy(big, "{\"v\":1}", 7);
    expect_reject(b, "order.submit", big, 5000, "oversized", "");
    free(big);
    static const char wrong_type[] =
        "{\"v\":1,\"kind\":\"order.submit\",\"client_order_id\":2,\"zone\":\"feeder33\","
        "\"period_start\":\"" PERIOD "\",\"der\":\"wind18\",\"side\":\"bid\","
        "\"price\":\"40\",\"quantity_mw\":1}";
    expect_reject(b, "order.submit", wrong_type, strlen(wrong_type), "wrong_type", "");
    char body[256];
    snprintf(body, sizeof body, "{\"v\":1,\"kind\":\"order.cancel\",\"order_id\":%lld}", order_id);
    expect_reject(b, "order.cancel", body, strlen(body), "not_owner",
                  "order");
    snprintf(body, sizeof body, "{\"v\":1,\"kind\":\"order.query\",\"order_id\":%lld}", order_id);
    expect_reject(b, "order.query", body, strlen(body), "not_owner", "order");
    char *replace = NULL;
    cr_assert_geq(asprintf(&replace,
                           "{\"v\":1,\"kind\":\"order.replace\",\"order_id\":%lld,"
                           "\"client_order_id\":3,\"zone\":\"feeder33\",\"period_start\":\"" PERIOD
                           "\",\"der\":\"wind18\",\"side\":\"offer\",\"price\":1,"
                           "\"quantity_mw\":1}",
                           order_id),
                  0);
    expect_reject(b, "order.replace", replace, strlen(replace), "not_owner", "order");
    free(replace);
    /* a DER gen-b may not trade, and a price with three decimals */
    char *other = submit_body(4, "solar33", "offer", "40", "1", PERIOD);
    expect_reject(b, "order.submit", other, strlen(other), "unauthorised_der", "");
    free(other);
    other = submit_body(5, "wind18", "offer", "40.001", "1", PERIOD);
    expect_reject(b, "order.submit", other, strlen(other), "malformed", "");
    free(other);
    /* a trader may not move the clock */
    expect_reject(b, "clock.advance", "{\"v\":1,\"kind\":\"clock.advance\",\"ms\":1}", 37,
                  "unauthorised_request", "only an admin participant may do this");

    cr_assert_eq(file_size(fx.journal), journal, "a rejected request was journaled");
    char *after = query_all(a);
    cr_assert_str_eq(after, books, "a rejected request changed gen-a's orders");
    free(after);
    free(books);
}

Test(market_service, unknown_curve_key_is_refused)
{
    start("process");
    char other[1100];
    snprintf(other, sizeof other, "%s/other", fx.dir);
    void *m = client(other, "mallory");
    char *b = submit_body(1, "solar33", "offer", "40", "1", PERIOD);
    char *answer = ask_raw(m, "order.submit", b, strlen(b), 1000);
    cr_assert_null(answer, "a client with an unlisted key got an answer: %s", answer);
    /* a listed key on the same service is served */
    void *a = client(fx.keys, "gen-a");
    json_t *ack = submit(a, 1, "solar33", "offer", "40", "1", PERIOD);
    cr_assert_str_eq(str(ack, "kind"), "order.ack");
    json_decref(ack);
    free(b);
}

/* A session with continuous trades and a call auction; returns both books. */
static void trade_session(char **books_a, char **books_b)
{
    void *a = client(fx.keys, "gen-a");
    void *b = client(fx.keys, "gen-b");
    void *dso = client(fx.keys, "dso");
    statement(dso);
    for (int i = 0; i < 6; i++) {
        char price[16];
        snprintf(price, sizeof price, "%d", 40 + i);
        json_decref(submit(a, 100 + i, "solar33", "offer", price, "1", PERIOD));
    }
    /* wind18 (0.9 MW/MW on head) buys from solar33 (0.5): 0.4 MW of flow a MW, within 3.0 */
    json_t *ack = submit(b, 200, "wind18", "bid", "60", "2.5", PERIOD);
    cr_assert_eq(num(ack, "trades"), 3, "2.5 MW crosses 40, 41 and half of 42");
    json_decref(ack);
    ack = submit(b, 201, "wind18", "bid", "44", "1", PERIOD);
    cr_assert_str_eq(str(ack, "kind"), "order.ack");
    json_decref(ack);
    /* a call auction in the second period */
    json_decref(ask(dso, "market.mode",
                    "{\"v\":1,\"kind\":\"market.mode\",\"zone\":\"feeder33\",\"period_start\":"
                    "\"" PERIOD2 "\",\"mode\":\"call\"}"));
    json_decref(submit(a, 300, "solar33", "offer", "30", "2", PERIOD2));
    json_decref(submit(b, 301, "wind18", "bid", "50", "1.5", PERIOD2));
    json_decref(submit(b, 302, "wind18", "bid", "20", "1", PERIOD2));
    json_t *result = ask(dso, "market.auction",
                         "{\"v\":1,\"kind\":\"market.auction\",\"zone\":\"feeder33\","
                         "\"period_start\":\"" PERIOD2 "\",\"pricing\":\"uniform\"}");
    cr_assert_str_eq(str(result, "kind"), "auction.result");
    cr_assert_float_eq(json_number_value(json_object_get(result, "accepted_mw")), 1.5, 1e-9);
    json_decref(result);
    *books_a = query_all(a);
    *books_b = query_all(b);
}

/* The digest the service logged when it recovered its journal last. */
static char *recovered_digest(void)
{
    char *log = anm_test_read_file(fx.log, NULL);
    cr_assert_not_null(log);
    const char *last = NULL;
    for (const char *p = log; (p = strstr(p, "digest ")) != NULL; p++)
        last = p;
    cr_assert_not_null(last, "no recovery line in %s", log);
    char *digest = strndup(last + 7, 16);
    free(log);
    return digest;
}

static void kill_and_restart(const char *durability)
{
    start(durability);
    char *books_a, *books_b;
    trade_session(&books_a, &books_b);
    cr_assert_neq(strcmp(books_a, "[]"), 0);
    stop(SIGKILL);
    char *digest_before = replay();
    start(durability);
    void *a = client(fx.keys, "gen-a");
    void *b = client(fx.keys, "gen-b");
    char *again_a = query_all(a), *again_b = query_all(b);
    cr_assert_str_eq(again_a, books_a, "gen-a's books differ after kill -9 and restart");
    cr_assert_str_eq(again_b, books_b, "gen-b's books differ after kill -9 and restart");
    /* the recovered service and an offline replay agree on the digest */
    char *digest = recovered_digest();
    const char *d = strstr(digest_before, "digest=");
    cr_assert_not_null(d);
    cr_assert_eq(strncmp(d + 7, digest, 16), 0, "replay %s vs recovered %s", digest_before,
                 digest);
    /* the next order gets a fresh id after the recovered ones */
    json_t *ack = submit(a, 900, "solar33", "offer", "45", "1", PERIOD);
    cr_assert_str_eq(str(ack, "kind"), "order.ack");
    json_decref(ack);
    free(digest);
    free(digest_before);
    free(again_a);
    free(again_b);
    free(books_a);
    free(books_b);
}

Test(market_service, kill_9_then_restart_gives_identical_books_process)
{
    kill_and_restart("process");
}

Test(market_service, kill_9_then_restart_gives_identical_books_power)
{
    kill_and_restart("power");
}

Test(market_service, replay_is_deterministic)
{
    start("process");
    char *books_a, *books_b;
    trade_session(&books_a, &books_b);
    stop(SIGTERM);
    char *first = replay(), *second = replay();
    cr_assert_str_eq(first, second);
    /* uniform price: the marginal accepted order (the 30.00 offer, partly filled) sets it */
    cr_assert_not_null(strstr(first, "auction zone=feeder33 period_start_ms=1622552400000 bids=2 "
                                     "offers=1 unconstrained_mw=1.500 accepted_mw=1.500 "
                                     "price=30.00 trades=1\n"),
                       "%s", first);
    cr_assert_not_null(strstr(first, "trades=6 resting=5 torn_bytes=0\n"), "%s", first);
    free(first);
    free(second);
    free(books_a);
    free(books_b);
}

Test(market_service, gate_closure_follows_the_stepped_clock)
{
    start("process");
    void *a = client(fx.keys, "gen-a");
    void *dso = client(fx.keys, "dso");
    json_t *ack = submit(a, 1, "solar33", "offer", "40", "1", PERIOD);
    cr_assert_str_eq(str(ack, "kind"), "order.ack");
    json_decref(ack);
    /* 10:59:59.999: still open */
    ack = ask(dso, "clock.advance",
              "{\"v\":1,\"kind\":\"clock.advance\",\"ms\":39599999}");
    cr_assert_str_eq(str(ack, "kind"), "order.ack");
    json_decref(ack);
    ack = submit(a, 2, "solar33", "offer", "40", "1", PERIOD);
    cr_assert_str_eq(str(ack, "kind"), "order.ack");
    json_decref(ack);
    /* 11:00:00: gate closure of the 12:00 period */
    json_decref(ask(dso, "clock.advance", "{\"v\":1,\"kind\":\"clock.advance\",\"ms\":1}"));
    char *b = submit_body(3, "solar33", "offer", "40", "1", PERIOD);
    expect_reject(a, "order.submit", b, strlen(b), "gate_closed", "gate closed");
    free(b);
    /* the next period is still open */
    ack = submit(a, 4, "solar33", "offer", "40", "1", PERIOD2);
    cr_assert_str_eq(str(ack, "kind"), "order.ack");
    json_decref(ack);
}

static const char *last_line(const char *text)
{
    size_t n = strlen(text);
    cr_assert_gt(n, 1);
    const char *p = text + n - 1; /* the final newline */
    while (p > text && p[-1] != '\n')
        p--;
    return p;
}

Test(market_service, recovery_from_snapshot_and_tail_equals_recovery_from_the_full_journal)
{
    /* the reference: no snapshots, the whole history in one journal */
    fx.snapshot_every = "0";
    start("process");
    char *full_a, *full_b;
    trade_session(&full_a, &full_b);
    stop(SIGTERM);
    char *full = replay();
    long long full_size = file_size(fx.journal);

    /* the same session with a snapshot every 4 events, then kill -9 */
    snprintf(fx.journal, sizeof fx.journal, "%s/snapshotted.journal", fx.dir);
    fx.snapshot_every = "4";
    start("process");
    char *books_a, *books_b;
    trade_session(&books_a, &books_b);
    cr_assert_str_eq(books_a, full_a);
    cr_assert_str_eq(books_b, full_b);
    stop(SIGKILL);
    char snapshot[1100];
    snprintf(snapshot, sizeof snapshot, "%s.snapshot", fx.journal);
    struct stat st;
    cr_assert_eq(stat(snapshot, &st), 0, "no snapshot file");
    cr_assert_lt(file_size(fx.journal), full_size / 2,
                 "the journal after the last snapshot holds only the tail");
    /* offline: snapshot + tail replays to the same digest, trades and resting orders */
    char *tail = replay();
    cr_assert_str_eq(last_line(tail), last_line(full), "snapshot+tail vs full journal");
    /* online: the restarted service has the same books and digest */
    start("process");
    void *a = client(fx.keys, "gen-a");
    void *b = client(fx.keys, "gen-b");
    char *again_a = query_all(a), *again_b = query_all(b);
    cr_assert_str_eq(again_a, full_a);
    cr_assert_str_eq(again_b, full_b);
    char *digest = recovered_digest();
    const char *d = strstr(full, "digest=");
    cr_assert_not_null(d);
    cr_assert_eq(strncmp(d + 7, digest, 16), 0, "full %s vs recovered %s", full, digest);
    /* and it goes on: a resubmission from before the snapshot is still idempotent */
    json_t *ack = submit(a, 100, "solar33", "offer", "40", "1", PERIOD);
    cr_assert(json_is_true(json_object_get(ack, "resubmission")));
    json_decref(ack);
    free(digest);
    free(again_a);
    free(again_b);
    free(tail);
    free(books_a);
    free(books_b);
    free(full);
    free(full_a);
    free(full_b);
}

#define STATEMENT_JSON(headroom)                                                                  \
    "{\"schema\":\"anm.constraint_statement\",\"schema_version\":1,\"id\":\"bus-test\","          \
    "\"zone\":\"feeder33\",\"periods\":[{\"utc_start\":\"" PERIOD "\",\"headroom_mw\":{\"p10\":"  \
    "{\"value\":" headroom "}},\"binding_constraints\":[{\"constraint\":\"head\","                \
    "\"contingency\":null}],\"ders\":[{\"der\":\"solar33\",\"sensitivities\":[{\"constraint\":"   \
    "\"head\",\"contingency\":null,\"mw_per_mw\":0.5}]},{\"der\":\"wind18\",\"sensitivities\":"    \
    "[{\"constraint\":\"head\",\"contingency\":null,\"mw_per_mw\":0.9}]}]}]}"

Test(market_service, statements_arrive_from_the_forecast_topic)
{
    /* the forecast's publisher: a PUB the test binds on an ephemeral port */
    void *pub = zmq_socket(fx.ctx, ZMQ_PUB);
    fx.sockets[fx.n_sockets++] = pub;
    cr_assert_eq(zmq_bind(pub, "tcp://127.0.0.1:*"), 0);
    char endpoint[256];
    size_t len = sizeof endpoint;
    cr_assert_eq(zmq_getsockopt(pub, ZMQ_LAST_ENDPOINT, endpoint, &len), 0);
    fx.extra[0] = "--statement-endpoint";
    fx.extra[1] = endpoint;
    start("process");
    long long empty = file_size(fx.journal);
    /* the subscription is live once a published statement reaches the journal */
    static const char wrapped[] = "{\"v\":1,\"kind\":\"constraint.statement\",\"statement\":"
                                  STATEMENT_JSON("0.4") "}";
    int applied = 0;
    for (int i = 0; i < 500 && !applied; i++) {
        zmq_send(pub, "constraint.statement/feeder33", 29, ZMQ_SNDMORE);
        zmq_send(pub, wrapped, strlen(wrapped), 0);
        for (int k = 0; k < 4 && !applied; k++) {
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
            applied = file_size(fx.journal) > empty;
        }
    }
    cr_assert(applied, "no statement from the bus reached the journal within 10 s");
    /* head: 0.4 MW headroom; wind18 (0.9) buying from solar33 (0.5) adds 0.4 MW of flow
     * a MW, so at most 1.000 MW trades */
    void *a = client(fx.keys, "gen-a");
    void *b = client(fx.keys, "gen-b");
    json_decref(submit(a, 1, "solar33", "offer", "40", "2", PERIOD));
    json_t *ack = submit(b, 2, "wind18", "bid", "50", "2", PERIOD);
    cr_assert_str_eq(str(ack, "kind"), "order.ack");
    cr_assert_float_eq(json_number_value(json_object_get(ack, "filled_mw")), 1.0, 1e-9);
    cr_assert_float_eq(json_number_value(json_object_get(ack, "resting_mw")), 1.0, 1e-9);
    json_decref(ack);
}

Test(market_service, gate_closure_auction_fires_on_the_engine_clock)
{
    fx.extra[0] = "--auto-auction";
    fx.extra[1] = "on";
    fx.extra[2] = "--auction-pricing";
    fx.extra[3] = "uniform";
    start("process");
    void *a = client(fx.keys, "gen-a");
    void *b = client(fx.keys, "gen-b");
    void *dso = client(fx.keys, "dso");
    statement(dso);
    json_decref(ask(dso, "market.mode",
                    "{\"v\":1,\"kind\":\"market.mode\",\"zone\":\"feeder33\",\"period_start\":"
                    "\"" PERIOD2 "\",\"mode\":\"call\"}"));
    json_decref(submit(a, 300, "solar33", "offer", "30", "2", PERIOD2));
    json_decref(submit(b, 301, "wind18", "bid", "50", "1.5", PERIOD2));
    /* 11:59:59.999: before the gate closure of the 13:00 period, nothing is cleared */
    json_decref(ask(dso, "clock.advance", "{\"v\":1,\"kind\":\"clock.advance\",\"ms\":43199999}"));
    char *before = query_all(b);
    cr_assert_neq(strstr(before, "\"client_order_id\":301"), NULL, "%s", before);
    free(before);
    /* 12:00:00: gate closure; the timer fires before the next request is read */
    json_decref(ask(dso, "clock.advance", "{\"v\":1,\"kind\":\"clock.advance\",\"ms\":1}"));
    char *after_b = query_all(b), *after_a = query_all(a);
    cr_assert_str_eq(after_b, "[]", "the bid was filled by the auction");
    cr_assert_neq(strstr(after_a, "\"filled_mw\":1.5"), NULL, "%s", after_a);
    free(after_a);
    free(after_b);
    stop(SIGTERM);
    char *out = replay();
    cr_assert_not_null(strstr(out, "auction zone=feeder33 period_start_ms=1622552400000 bids=1 "
                                   "offers=1 unconstrained_mw=1.500 accepted_mw=1.500 "
                                   "price=30.00 trades=1\n"),
                       "%s", out);
    free(out);
}

Test(market_service, auctions_are_stored_once_under_their_journal_position, .timeout = 120)
{
    char conninfo[1024], sql[1024];
    cr_assert_eq(anm_pg_test_database(conninfo, sizeof conninfo), 0);
    anm_db *db = NULL;
    anm_db_options o = {.max_attempts = 1};
    cr_assert_eq(anm_db_connect(conninfo, &o, &db), ANM_OK);
    anm_test_source_path(sql, sizeof sql, "sql");
    anm_error_detail err;
    int applied = 0;
    cr_assert_eq(anm_db_migrate(db, sql, &applied, &err), ANM_OK, "%s", err.message);
    fx.extra[0] = "--db";
    fx.extra[1] = conninfo;
    start("process");
    char *books_a, *books_b;
    trade_session(&books_a, &books_b);
    /* kill -9 and restart: recovery re-runs the auction but stores nothing again */
    stop(SIGKILL);
    start("process");
    void *dso = client(fx.keys, "dso");
    json_decref(ask(dso, "order.query", "{\"v\":1,\"kind\":\"order.query\"}"));
    stop(SIGTERM);
    anm_db_result *r = NULL;
    cr_assert_eq(anm_db_exec(db,
                             "SELECT auction_id, n_bids, n_offers, accepted_volume_kw, n_trades "
                             "FROM market_auctions",
                             0, NULL, &r, NULL),
                 ANM_OK, "%s", anm_db_error_message(db));
    cr_assert_eq(anm_db_result_rows(r), 1);
    /* the auction is the 15th event of the session (2 statement periods, 8 orders, mode,
     * 3 orders, auction) */
    cr_assert_str_eq(anm_db_result_value(r, 0, 0), "15");
    cr_assert_str_eq(anm_db_result_value(r, 0, 1), "2");
    cr_assert_str_eq(anm_db_result_value(r, 0, 2), "1");
    cr_assert_str_eq(anm_db_result_value(r, 0, 3), "1500");
    cr_assert_str_eq(anm_db_result_value(r, 0, 4), "1");
    anm_db_result_destroy(&r);
    /* every trade of the session (5 continuous, 1 in the auction), once each */
    cr_assert_eq(anm_db_exec(db, "SELECT count(*), count(DISTINCT trade_id) FROM market_trades",
                             0, NULL, &r, NULL),
                 ANM_OK, "%s", anm_db_error_message(db));
    cr_assert_str_eq(anm_db_result_value(r, 0, 0), "6");
    cr_assert_str_eq(anm_db_result_value(r, 0, 1), "6");
    anm_db_result_destroy(&r);
    anm_db_destroy(&db);
    free(books_a);
    free(books_b);
}

Test(market_service, batch_answers_each_request_in_order)
{
    start("process");
    void *a = client(fx.keys, "gen-a");
    char *one = submit_body(31, "solar33", "offer", "40.00", "0.5", PERIOD);
    char *two = submit_body(32, "solar33", "offer", "99999999", "0.5", PERIOD); /* above ceiling */
    char *batch = NULL;
    cr_assert_geq(asprintf(&batch, "%s\n%s\n{\"v\":1,\"kind\":\"order.query\"}\n", one, two), 0);
    char *answer = ask_raw(a, "batch", batch, strlen(batch), 10000);
    cr_assert_not_null(answer);
    /* three answers, one per line, in request order */
    char *second = strchr(answer, '\n');
    cr_assert_not_null(second, "%s", answer);
    *second++ = '\0';
    char *third = strchr(second, '\n');
    cr_assert_not_null(third, "%s", second);
    *third++ = '\0';
    cr_assert_null(strchr(third, '\n'));
    json_t *j1 = json_loads(answer, 0, NULL), *j2 = json_loads(second, 0, NULL),
           *j3 = json_loads(third, 0, NULL);
    cr_assert(j1 && j2 && j3);
    cr_assert_str_eq(str(j1, "kind"), "order.ack");
    cr_assert_eq(num(j1, "client_order_id"), 31);
    cr_assert_str_eq(str(j2, "kind"), "order.reject");
    cr_assert_eq(num(j2, "request_id"), 32);
    cr_assert_str_eq(str(j3, "kind"), "order.list");
    cr_assert_eq(json_array_size(json_object_get(j3, "orders")), 1);
    json_decref(j1);
    json_decref(j2);
    json_decref(j3);
    free(answer);
    /* the accepted order of the batch is journaled like any other: replay sees it */
    char *all = query_all(a);
    cr_assert_neq(strstr(all, "\"client_order_id\":31"), NULL, "%s", all);
    free(all);
    /* an empty batch is one reject */
    expect_reject(a, "batch", "\n\n", 2, "bad_batch", "an empty batch");
    free(one);
    free(two);
    free(batch);
}
