/*
 * bench.c: `anm-market bench client` (orders/s and ack latency over ZeroMQ
 * TCP with CURVE against a running service) and `anm-market bench core`
 * (continuous matching and the gate-closure auction in process). Prints
 * figures as key=value lines; never fails on a time. Driven by bench/market.
 * `--spin-us N` has the client poll without sleeping (yielding the core) for
 * up to N us before each blocking wait for answers, as the service's reactor
 * does (anm_reactor_set_spin_us); 0 (the default) never spins.
 */
#include "market/auction.h"
#include "market/market.h"
#include "market/protocol.h"
#include "market/service.h"

#include "engine/cli.h"
#include "engine/clock.h"

#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

int market_tool_bench(int argc, char **argv);

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

enum { MAX_CONNECTIONS = 16 };

static int bench_client(int argc, char **argv)
{
    const char *endpoint = NULL, *key_path = NULL, *server_public = NULL, *zone = NULL,
               *der = NULL, *period = NULL;
    long connections = 4, window = 256, orders = 200000, id_base = 1, batch = 1, spin_us = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        if (strcmp(o, "--router") == 0) endpoint = v;
        else if (strcmp(o, "--key") == 0) key_path = v;
        else if (strcmp(o, "--server-public") == 0) server_public = v;
        else if (strcmp(o, "--zone") == 0) zone = v;
        else if (strcmp(o, "--der") == 0) der = v;
        else if (strcmp(o, "--period") == 0) period = v;
        else if (strcmp(o, "--connections") == 0 && anm_parse_long(v, 1, MAX_CONNECTIONS, &connections) == 0) {}
        else if (strcmp(o, "--window") == 0 && anm_parse_long(v, 1, 100000, &window) == 0) {}
        else if (strcmp(o, "--orders") == 0 && anm_parse_long(v, 1, 100000000, &orders) == 0) {}
        else if (strcmp(o, "--batch") == 0 && anm_parse_long(v, 1, MARKET_PROTOCOL_MAX_BATCH, &batch) == 0) {}
        else if (strcmp(o, "--spin-us") == 0 && anm_parse_long(v, 0, 1000000, &spin_us) == 0) {}
        else if (strcmp(o, "--id-base") == 0 && anm_parse_long(v, 1, 1L << 50, &id_base) == 0) {}
        else return anm_cli_usage_error("anm-market", "bench client: bad option '%s %s'", o, v);
    }
    if (!endpoint || !key_path || !server_public || !zone || !der || !period)
        return anm_cli_usage_error("anm-market", "bench client: --router --key --server-public "
                                                 "--zone --der --period are required");
    if (batch > window)
        return anm_cli_usage_error("anm-market", "bench client: --batch exceeds --window");
    char pub[41], sec[41];
    if (market_keyfile_read(key_path, pub, sec) != ANM_OK)
        return anm_cli_fail("anm-market", "could not read key file \"%s\"", key_path);
    void *ctx = zmq_ctx_new();
    void *sockets[MAX_CONNECTIONS];
    for (long c = 0; c < connections; c++) {
        sockets[c] = zmq_socket(ctx, ZMQ_DEALER);
        int hwm = 1000000, linger = 0;
        zmq_setsockopt(sockets[c], ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(sockets[c], ZMQ_RCVHWM, &hwm, sizeof hwm);
        zmq_setsockopt(sockets[c], ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(sockets[c], ZMQ_CURVE_SERVERKEY, server_public, 40);
        zmq_setsockopt(sockets[c], ZMQ_CURVE_PUBLICKEY, pub, 40);
        zmq_setsockopt(sockets[c], ZMQ_CURVE_SECRETKEY, sec, 40);
        if (zmq_connect(sockets[c], endpoint) != 0)
            return anm_cli_fail("anm-market", "could not connect to \"%s\"", endpoint);
    }
    int64_t *sent = calloc((size_t)orders, sizeof *sent);
    int64_t *latency = calloc((size_t)orders, sizeof *latency);
    long next = 0, acked = 0, rejected = 0, outstanding[MAX_CONNECTIONS] = {0};
    int64_t start = anm_monotonic_ns();
    /* a batch's body: up to MARKET_PROTOCOL_MAX_BATCH lines of ~250 bytes */
    size_t body_cap = (size_t)batch * 512;
    char *body = malloc(body_cap);
    char *reply = malloc(body_cap * 2 + 2048);
    size_t reply_cap = body_cap * 2 + 2048;
    if (sent == NULL || latency == NULL || body == NULL || reply == NULL)
        return anm_cli_fail("anm-market", "out of memory");
    while (acked < orders) {
        for (long c = 0; c < connections; c++) {
            /* offered load: at most `window` requests in flight per connection, sent
             * `batch` to a message (one [batch][lines] message when batch > 1) */
            while (next < orders && window - outstanding[c] >= (batch < orders - next ? batch : orders - next)) {
                long count = batch < orders - next ? batch : orders - next;
                size_t used = 0;
                for (long k = 0; k < count; k++) {
                    long i = next + k;
                    int n = snprintf(body + used, body_cap - used,
                                     "%s{\"v\":1,\"kind\":\"order.submit\",\"request_id\":%ld,"
                                     "\"client_order_id\":%ld,\"zone\":\"%s\",\"period_start\":\"%s\","
                                     "\"der\":\"%s\",\"side\":\"offer\",\"price\":%ld.%02ld,"
                                     "\"quantity_mw\":0.5}",
                                     k ? "\n" : "", i, id_base + i, zone, period, der, 40 + i % 20,
                                     i % 100);
                    if (n < 0 || (size_t)n >= body_cap - used)
                        return anm_cli_fail("anm-market", "bench client: request too long");
                    used += (size_t)n;
                }
                if (batch > 1)
                    zmq_send(sockets[c], MARKET_PROTOCOL_BATCH_TOPIC,
                             sizeof MARKET_PROTOCOL_BATCH_TOPIC - 1, ZMQ_SNDMORE);
                else
                    zmq_send(sockets[c], "order.submit", 12, ZMQ_SNDMORE);
                int64_t now = anm_monotonic_ns();
                for (long k = 0; k < count; k++)
                    sent[next + k] = now;
                zmq_send(sockets[c], body, used, 0);
                next += count;
                outstanding[c] += count;
            }
        }
        zmq_pollitem_t items[MAX_CONNECTIONS];
        for (long c = 0; c < connections; c++)
            items[c] = (zmq_pollitem_t){sockets[c], 0, ZMQ_POLLIN, 0};
        /* as the service's reactor does (anm_reactor_set_spin_us): poll without
         * sleeping for up to spin_us before blocking, saving the wake-up */
        int ready = 0;
        for (int64_t spin_end = anm_monotonic_ns() + spin_us * 1000;
             spin_us > 0 && ready == 0 && anm_monotonic_ns() < spin_end;) {
            ready = zmq_poll(items, (int)connections, 0);
            if (ready == 0)
                sched_yield();
        }
        if (ready == 0)
            ready = zmq_poll(items, (int)connections, 10000);
        if (ready <= 0)
            return anm_cli_fail("anm-market", "no answer within 10 s (%ld of %ld acked)", acked,
                                orders);
        for (long c = 0; c < connections; c++) {
            for (;;) {
                int n = zmq_recv(sockets[c], reply, reply_cap - 1, ZMQ_DONTWAIT);
                if (n < 0)
                    break;
                int64_t now = anm_monotonic_ns();
                reply[n < (int)reply_cap - 1 ? n : (int)reply_cap - 1] = '\0';
                for (char *line = reply; line != NULL && *line != '\0';) {
                    char *end = strchr(line, '\n');
                    if (end != NULL)
                        *end = '\0';
                    const char *id = strstr(line, "\"request_id\":");
                    long index = id ? strtol(id + 13, NULL, 10) : -1;
                    if (strstr(line, "order.reject") && rejected++ == 0)
                        fprintf(stderr, "first reject: %s\n", line);
                    if (index >= 0 && index < orders && acked < orders)
                        latency[acked] = now - sent[index];
                    acked++;
                    outstanding[c]--;
                    line = end ? end + 1 : NULL;
                }
            }
        }
    }
    double seconds = (double)(anm_monotonic_ns() - start) / 1e9;
    qsort(latency, (size_t)orders, sizeof *latency, cmp_i64);
    printf("orders=%ld batch=%ld spin_us=%ld rejected=%ld seconds=%.3f orders_per_s=%.0f ack_p50_us=%.1f "
           "ack_p99_us=%.1f\n",
           orders, batch, spin_us, rejected, seconds, (double)orders / seconds,
           (double)latency[orders / 2] / 1e3, (double)latency[(orders * 99) / 100] / 1e3);
    for (long c = 0; c < connections; c++)
        zmq_close(sockets[c]);
    zmq_ctx_term(ctx);
    free(sent);
    free(latency);
    free(body);
    free(reply);
    return rejected ? ANM_EXIT_FAILURE : ANM_EXIT_OK;
}

/* A deterministic generator (xorshift64*), seeded: no unseeded randomness. */
static uint64_t next_random(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

static market *bench_market(market_registry **registry, market_mode mode, uint32_t n_ders)
{
    *registry = market_registry_new();
    market_registry_add_zone(*registry, 1, (market_zone_info){-100000, 1000000});
    market_registry_add_participant(*registry, 1, MARKET_PARTICIPANT_TRADER);
    market_registry_add_participant(*registry, 2, MARKET_PARTICIPANT_TRADER);
    for (uint32_t d = 1; d <= n_ders; d++) {
        market_registry_add_der(*registry, d, (market_der_info){1, 1000000, 1000000});
        market_registry_allow(*registry, 1 + (d % 2), d);
    }
    market_config c = {0};
    c.registry = *registry;
    c.gate_closure_offset_ms = 3600000;
    c.initial_mode = mode;
    market *m = market_new(&c);
    double headroom = 1e9;
    market_statement *s = market_statement_new(1, &headroom, NULL);
    for (uint32_t d = 1; d <= n_ders; d++)
        market_statement_set_sensitivity(s, d, 0, (d % 2) ? 0.5 : 0.9);
    market_set_statement(m, (market_product){1, 7200000}, s);
    return m;
}

static void random_spec(uint64_t *state, uint64_t i, int32_t min_price, int32_t span,
                        market_order_spec *spec)
{
    uint64_t r = next_random(state);
    memset(spec, 0, sizeof *spec);
    spec->client_order_id = i + 1;
    spec->der = 1 + (uint32_t)(r % 20);
    spec->participant = 1 + (spec->der % 2);
    spec->product = (market_product){1, 7200000};
    spec->side = spec->participant == 1 ? MARKET_BID : MARKET_OFFER;
    spec->price_ticks = min_price + (int32_t)((r >> 20) % (uint64_t)span);
    spec->quantity = 100 + (int64_t)((r >> 40) % 5000);
    spec->valid_until_ms = INT64_MAX;
}

static int bench_core(int argc, char **argv)
{
    long orders = 1000000;
    for (int i = 1; i + 1 < argc; i += 2)
        if (strcmp(argv[i], "--orders") != 0 || anm_parse_long(argv[i + 1], 1000, 10000000, &orders) != 0)
            return anm_cli_usage_error("anm-market", "bench core: bad option '%s'", argv[i]);
    market_registry *registry = NULL;
    uint64_t state = 42;
    /* continuous matching */
    market *m = bench_market(&registry, MARKET_MODE_CONTINUOUS, 20);
    market_order_spec spec;
    market_result r;
    /* as a running service does at start-up (anm-market serve --reserve-orders):
     * size and touch the order pool and the client-id index once, so the
     * timed loop neither grows the index nor takes first-touch page faults */
    if (market_reserve(m, (size_t)orders) != ANM_OK)
        return anm_cli_fail("anm-market bench", "could not reserve %ld orders", orders);
    int64_t t0 = anm_monotonic_ns();
    for (long i = 0; i < orders; i++) {
        random_spec(&state, (uint64_t)i, 4000, 2000, &spec);
        market_submit(m, 0, &spec, &r);
    }
    double match_s = (double)(anm_monotonic_ns() - t0) / 1e9;
    printf("match_orders=%ld match_per_s=%.0f\n", orders, (double)orders / match_s);
    market_destroy(&m);
    market_registry_destroy(&registry);
    /* gate-closure auction, 10^5 and 10^6 orders; each size three times on
     * the same orders (a fresh book each time), the median reported: on a
     * shared 2-core machine one run now and then meets the kernel compacting
     * memory on the other core */
    const long sizes[2] = {100000, 1000000};
    for (int k = 0; k < 2; k++) {
        double ms[3];
        uint64_t start_state = state;
        market_auction_result a;
        size_t trades = 0;
        double accepted = 0;
        for (int rep = 0; rep < 3; rep++) {
            state = start_state;
            m = bench_market(&registry, MARKET_MODE_CALL, 20);
            for (long i = 0; i < sizes[k]; i++) {
                random_spec(&state, (uint64_t)i, 0, 500000, &spec);
                market_submit(m, 0, &spec, &r);
            }
            market_auction_config ac = {MARKET_PAY_AS_BID, 0};
            /* as a running service does at start-up: size and touch the auction's
             * scratch once, so the timed call takes no first-touch page faults */
            if (market_auction_reserve(m, (size_t)sizes[k], (size_t)sizes[k]) != ANM_OK)
                return anm_cli_fail("anm-market bench", "could not reserve auction scratch");
            t0 = anm_monotonic_ns();
            market_auction_run(m, 0, (market_product){1, 7200000}, &ac, &a);
            ms[rep] = (double)(anm_monotonic_ns() - t0) / 1e6;
            if (rep > 0 && (a.n_trades != trades || a.accepted_volume / 1000.0 != accepted))
                return anm_cli_fail("anm-market bench", "the auction's result changed between runs");
            trades = a.n_trades;
            accepted = a.accepted_volume / 1000.0;
            market_destroy(&m);
            market_registry_destroy(&registry);
        }
        double lo = ms[0] < ms[1] ? ms[0] : ms[1], hi = ms[0] < ms[1] ? ms[1] : ms[0];
        double median = ms[2] < lo ? lo : ms[2] > hi ? hi : ms[2];
        printf("auction_orders=%ld auction_ms=%.1f trades=%zu accepted_mw=%.3f runs_ms=%.1f,%.1f,%.1f\n",
               sizes[k], median, trades, accepted, ms[0], ms[1], ms[2]);
    }
    return ANM_EXIT_OK;
}

int market_tool_bench(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "client") == 0)
        return bench_client(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "core") == 0)
        return bench_core(argc - 1, argv + 1);
    return anm_cli_usage_error("anm-market", "bench client|core");
}
