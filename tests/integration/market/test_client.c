/*
 * test_client.c: `anm-market client` against a real anm-market (started
 * with --ready-file on an ephemeral port, CURVE on, stepped clock): acks,
 * an idempotent resubmission and rejects printed one line a request, the
 * gate-closure auction printed as merit order, clearing price and trades,
 * and the failures it must report (unknown key, no service, bad line).
 */
#define _GNU_SOURCE
#include "market_harness.h"
#include "testlib.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PERIOD "2021-06-01T12:00:00Z" /* gate closure 11:00Z; the clock starts at 00:00Z */

typedef struct client_fixture {
    char *dir;
    char keys[1024], other[1024], journal[1024], ready[1024], log[1024], participants[1024];
    char labels[1024], server_key[1100], router[256];
    pid_t pid;
} client_fixture;

static client_fixture cf;

static void setup(void)
{
    memset(&cf, 0, sizeof cf);
    cf.dir = anm_test_tmpdir("market-client");
    cr_assert_not_null(cf.dir);
    snprintf(cf.keys, sizeof cf.keys, "%s/keys", cf.dir);
    snprintf(cf.other, sizeof cf.other, "%s/other", cf.dir);
    snprintf(cf.journal, sizeof cf.journal, "%s/market.journal", cf.dir);
    snprintf(cf.ready, sizeof cf.ready, "%s/ready", cf.dir);
    snprintf(cf.log, sizeof cf.log, "%s/service.log", cf.dir);
    snprintf(cf.labels, sizeof cf.labels, "%s/labels", cf.dir);
    snprintf(cf.participants, sizeof cf.participants, "%s/participants.json", cf.dir);
    snprintf(cf.server_key, sizeof cf.server_key, "%s/server.public", cf.keys);
    cr_assert_eq(mkdir(cf.keys, 0700), 0);
    cr_assert_eq(mkdir(cf.other, 0700), 0);
    market_test_keygen(cf.keys, "server", 1);
    market_test_keygen(cf.keys, "gen-a", 0);
    market_test_keygen(cf.keys, "gen-b", 0);
    market_test_keygen(cf.keys, "dso", 0);
    market_test_keygen(cf.other, "mallory", 0); /* a well-formed key the service does not list */
    cr_assert_eq(anm_test_write_file(
                     cf.participants,
                     "{\"version\": 1, \"participants\": [\n"
                     " {\"id\": \"gen-a\", \"kind\": \"trader\", \"ders\": [{\"zone\": "
                     "\"feeder33\", \"der\": \"solar33\"}]},\n"
                     " {\"id\": \"gen-b\", \"kind\": \"trader\", \"ders\": [{\"zone\": "
                     "\"feeder33\", \"der\": \"wind18\"}]},\n"
                     " {\"id\": \"mallory\", \"kind\": \"trader\"},\n"
                     " {\"id\": \"dso\", \"kind\": \"system_operator\", \"admin\": true}]}\n"),
                 0);
}

static void teardown(void)
{
    if (cf.pid > 0) {
        kill(cf.pid, SIGTERM);
        int status = 0;
        waitpid(cf.pid, &status, 0);
        cf.pid = 0;
    }
    if (cf.dir) {
        anm_test_rmtree(cf.dir);
        free(cf.dir);
    }
}

/* Starts the service in call mode and waits for its ready file. */
static void start_service(void)
{
    char exe[1024], zones[1024];
    market_test_bin(exe, sizeof exe, "anm-market");
    anm_test_source_path(zones, sizeof zones, "data/zones/feeder33.json");
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        FILE *log = freopen(cf.log, "a", stderr);
        (void)log;
        const char *args[] = {exe, "serve", "--zones", zones, "--participants", cf.participants,
                        "--keys", cf.keys, "--journal", cf.journal, "--router",
                        "tcp://127.0.0.1:*", "--pub", "tcp://127.0.0.1:*", "--clock",
                        "step:2021-06-01T00:00:00Z", "--mode", "call", "--ready-file",
                        cf.ready, NULL};
        execv(exe, anm_test_argv_dup(args));
        _exit(127);
    }
    cf.pid = pid;
    /* readiness: the ready file appears, or the child dies (reported) */
    market_test_wait_ready(cf.ready, &cf.pid, cf.log, cf.router, sizeof cf.router);
}

/*
 * Runs `anm-market client` as participant (keys from keys_dir) with the
 * given request lines written to a file; extra options (NULL-terminated
 * pairs) appended. Returns the exit status; *out and *err are new strings.
 */
static int client_run(const char *keys_dir, const char *participant, const char *endpoint,
                      const char *requests, const char *format, const char *timeout_ms,
                      char **out, char **err)
{
    char exe[1024], path[1100];
    market_test_bin(exe, sizeof exe, "anm-market");
    snprintf(path, sizeof path, "%s/requests-%s.jsonl", cf.dir, participant);
    cr_assert_eq(anm_test_write_file(path, requests), 0);
    const char *argv[] = {exe,          "client",    "--endpoint",   endpoint, "--keys",
                          keys_dir,     "--participant", participant, "--server-key",
                          cf.server_key, "--requests", path,         "--format", format,
                          "--labels",   cf.labels,   "--timeout-ms", timeout_ms, NULL};
    return anm_test_run_args(argv, out, err);
}

/* Line i (0-based) of text as JSON (new reference). */
static json_t *line_json(const char *text, int i)
{
    const char *p = text;
    for (int k = 0; k < i; k++) {
        p = strchr(p, '\n');
        cr_assert_not_null(p, "fewer than %d lines in:\n%s", i + 1, text);
        p++;
    }
    size_t n = strcspn(p, "\n");
    json_error_t e;
    json_t *j = json_loadb(p, n, 0, &e);
    cr_assert_not_null(j, "line %d is not JSON: %.*s", i + 1, (int)n, p);
    return j;
}

static int count_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n;
}

/* text with each run of spaces made one space (a new string): the columns' widths do not matter */
static char *squeeze(const char *text)
{
    char *copy = strdup(text), *w = copy;
    cr_assert_not_null(copy);
    for (const char *r = text; *r; r++)
        if (!(*r == ' ' && w > copy && w[-1] == ' '))
            *w++ = *r;
    *w = '\0';
    return copy;
}

static const char *jstr(const json_t *j, const char *key)
{
    const char *v = json_string_value(json_object_get(j, key));
    return v ? v : "";
}

#define SUBMIT(id, der, side, price, quantity)                                                    \
    "{\"v\":1,\"kind\":\"order.submit\",\"request_id\":" #id ",\"client_order_id\":" #id        \
    ",\"zone\":\"feeder33\",\"period_start\":\"" PERIOD "\",\"der\":\"" der "\",\"side\":\""     \
    side "\",\"price\":" price ",\"quantity_mw\":" quantity "}\n"

TestSuite(market_client, .init = setup, .fini = teardown, .timeout = 60);

Test(market_client, prints_one_answer_line_per_request)
{
    start_service();
    char *out = NULL, *err = NULL;
    int status = client_run(cf.keys, "gen-a", cf.router,
                            "# gen-a's orders; comments and blank lines are skipped\n"
                            "\n" SUBMIT(1, "solar33", "offer", "40.00", "1.5")
                                SUBMIT(1, "solar33", "offer", "40.00", "1.5")
                                    SUBMIT(2, "solar33", "offer", "1000.01", "1")
                                        SUBMIT(3, "wind18", "offer", "40", "1")
                            "{\"v\":1,\"kind\":\"order.submit\",\"zone\":\"feeder33\"}\n"
                            "{\"v\":1,\"kind\":\"order.query\"}\n",
                            "json", "10000", &out, &err);
    cr_assert_eq(status, 0, "client failed: %s", err);
    cr_assert_eq(count_lines(out), 6, "one line per request, got:\n%s", out);

    json_t *first = line_json(out, 0), *again = line_json(out, 1);
    cr_assert_str_eq(jstr(first, "kind"), "order.ack");
    cr_assert_eq(json_integer_value(json_object_get(first, "request_id")), 1);
    cr_assert_eq(json_real_value(json_object_get(first, "resting_mw")), 1.5);
    json_int_t order_id = json_integer_value(json_object_get(first, "order_id"));
    cr_assert_gt(order_id, 0);
    /* the same content again: the idempotent answer with the same order id */
    cr_assert_str_eq(jstr(again, "kind"), "order.ack");
    cr_assert(json_is_true(json_object_get(again, "resubmission")));
    cr_assert_eq(json_integer_value(json_object_get(again, "order_id")), order_id);

    json_t *price = line_json(out, 2), *der = line_json(out, 3), *bad = line_json(out, 4);
    cr_assert_str_eq(jstr(price, "reason"), "price_out_of_range");
    cr_assert_str_eq(jstr(price, "text"),
                     "price 1000.01 GBP/MWh above ceiling 1000.00 GBP/MWh of zone 1");
    cr_assert_str_eq(jstr(der, "reason"), "unauthorised_der");
    cr_assert_str_eq(jstr(bad, "kind"), "order.reject");
    cr_assert_str_eq(jstr(bad, "reason"), "missing_field");

    /* gen-a's book holds the one accepted order, once */
    json_t *list = line_json(out, 5);
    cr_assert_str_eq(jstr(list, "kind"), "order.list");
    json_t *orders = json_object_get(list, "orders");
    cr_assert_eq(json_array_size(orders), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(orders, 0), "order_id")),
                 order_id);
    json_decref(first);
    json_decref(again);
    json_decref(price);
    json_decref(der);
    json_decref(bad);
    json_decref(list);
    free(out);
    free(err);
}

Test(market_client, table_format_prints_the_auction_merit_order_price_and_trades)
{
    start_service();
    char *out = NULL, *err = NULL;
    /* head: 3.0 MW of P10 headroom; solar33 0.5 MW/MW, wind18 0.9 MW/MW */
    const char *statement =
        "{\"v\":1,\"kind\":\"market.statement\",\"statement\":{"
        "\"schema\":\"anm.constraint_statement\",\"schema_version\":1,"
        "\"zone\":\"feeder33\",\"periods\":["
        "{\"utc_start\":\"" PERIOD "\",\"headroom_mw\":{\"p10\":{\"value\":3.0}},"
        "\"binding_constraints\":[{\"constraint\":\"head\",\"contingency\":null}],"
        "\"ders\":[{\"der\":\"solar33\",\"sensitivities\":[{\"constraint\":\"head\","
        "\"contingency\":null,\"mw_per_mw\":0.5}]},"
        "{\"der\":\"wind18\",\"sensitivities\":[{\"constraint\":\"head\","
        "\"contingency\":null,\"mw_per_mw\":0.9}]}]}]}}\n";
    cr_assert_eq(client_run(cf.keys, "dso", cf.router, statement, "table", "10000", &out, &err),
                 0, "%s", err);
    cr_assert_str_eq(out, "ack     market.statement\n");
    free(out);
    free(err);
    cr_assert_eq(client_run(cf.keys, "gen-a", cf.router,
                            SUBMIT(1, "solar33", "offer", "45", "1") SUBMIT(2, "solar33", "offer",
                                                                            "40", "1"),
                            "table", "10000", &out, &err),
                 0, "%s", err);
    cr_assert_eq(count_lines(out), 2);
    cr_assert(strncmp(out, "ack     order.submit  client_order_id=1 order_id=", 49) == 0, "%s",
              out);
    free(out);
    free(err);
    cr_assert_eq(client_run(cf.keys, "gen-b", cf.router, SUBMIT(1, "wind18", "bid", "60", "1.5"),
                            "table", "10000", &out, &err),
                 0, "%s", err);
    free(out);
    free(err);
    cr_assert_eq(client_run(cf.keys, "dso", cf.router,
                            "{\"v\":1,\"kind\":\"market.auction\",\"zone\":\"feeder33\","
                            "\"period_start\":\"" PERIOD "\"}\n",
                            "table", "10000", &out, &err),
                 0, "%s", err);
    /*
     * Worked by hand: offers 40 (1 MW) and 45 (1 MW) ascending, bid 60 for
     * 1.5 MW. Each MW moved from solar33 to wind18 adds 0.9 - 0.5 = 0.4 MW
     * on head, so 3.0 MW of headroom allows 7.5 MW: not binding. The bid takes
     * 1 MW at 40 and 0.5 MW at 45; pay as bid, price set by the 45 offer.
     */
    char *table = squeeze(out);
    cr_assert(strstr(table, "auction feeder33 2021-06-01T12:00:00.000Z\n") != NULL, "%s", table);
    cr_assert(strstr(table, "offers (relief), ascending (2 orders)\n") != NULL, "%s", table);
    /* order 2 (40.00) ranks first; cumulative 1 then 2 MW; accepted 1 and 0.5 MW */
    cr_assert(strstr(table, "gen-a solar33 offer 40.00 0.00 1.000 1.000 1.000\n") != NULL,
              "%s", out);
    cr_assert(strstr(table, "gen-a solar33 offer 45.00 0.00 1.000 2.000 0.500\n") != NULL,
              "%s", out);
    cr_assert(strstr(table, "gen-b wind18 bid 60.00 0.00 1.500 1.500 1.500\n") != NULL,
              "%s", out);
    cr_assert_lt(strstr(table, "offer 40.00"), strstr(table, "offer 45.00"), "merit order: %s",
                 out);
    cr_assert(strstr(table, "unconstrained volume 1.500 MW, accepted volume 1.500 MW, "
                            "clearing price 45.00 GBP/MWh\n") != NULL,
              "%s", out);
    cr_assert(strstr(table, "trades (2)\n") != NULL, "%s", table);
    cr_assert(strstr(table, "gen-b wind18 bid gen-a solar33 offer 1.000 60.00 40.00\n") != NULL,
              "%s", out);
    cr_assert(strstr(table, "gen-b wind18 bid gen-a solar33 offer 0.500 60.00 45.00\n") != NULL,
              "%s", out);
    free(table);
    cr_assert_null(strstr(out, "feasibility:"), "no constraint cut a pair:\n%s", out);
    free(out);
    free(err);
}

Test(market_client, unknown_key_fails_with_a_reason)
{
    start_service();
    char *out = NULL, *err = NULL;
    int status = client_run(cf.other, "mallory", cf.router,
                            SUBMIT(1, "solar33", "offer", "40", "1"), "json", "10000", &out,
                            &err);
    cr_assert_eq(status, 1);
    cr_assert_str_eq(out, "", "an unlisted key got an answer");
    char expected[512];
    snprintf(expected, sizeof expected,
             "anm-market: could not connect to \"%s\" as \"mallory\": the server refused the "
             "participant's key (ZAP 400)\n",
             cf.router);
    cr_assert_str_eq(err, expected);
    free(out);
    free(err);
}

Test(market_client, no_service_times_out)
{
    char endpoint[1200], *out = NULL, *err = NULL;
    snprintf(endpoint, sizeof endpoint, "ipc://%s/nobody.sock", cf.dir);
    int status = client_run(cf.keys, "gen-a", endpoint, SUBMIT(1, "solar33", "offer", "40", "1"),
                            "json", "300", &out, &err);
    cr_assert_eq(status, 1);
    char expected[1400];
    snprintf(expected, sizeof expected,
             "anm-market: no answer from \"%s\" to request line 1 within 300 ms\n", endpoint);
    cr_assert_str_eq(err, expected);
    free(out);
    free(err);
}

Test(market_client, a_line_without_kind_is_refused_before_sending)
{
    char endpoint[1200], *out = NULL, *err = NULL;
    snprintf(endpoint, sizeof endpoint, "ipc://%s/nobody.sock", cf.dir);
    int status = client_run(cf.keys, "gen-a", endpoint, "# header\nnot json\n", "json", "300",
                            &out, &err);
    cr_assert_eq(status, 1);
    cr_assert_str_eq(err, "anm-market: request line 2 is not a JSON object with a \"kind\"\n");
    free(out);
    free(err);
}
