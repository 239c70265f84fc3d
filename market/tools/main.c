/* main.c: anm-market: serve, replay a journal, a participant client, or benchmark. */
#include "market/service.h"

#include "engine/cli.h"
#include "engine/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int market_tool_bench(int argc, char **argv);
int market_tool_client(int argc, char **argv);

static void usage(FILE *out)
{
    fprintf(out,
            "usage: anm-market serve --zones FILE [--zones FILE...] --participants FILE\n"
            "           --keys DIR --journal FILE [--durability process|power]\n"
            "           [--router ENDPOINT] [--pub ENDPOINT] [--clock SPEC]\n"
            "           [--gate-closure-offset-ms N] [--mode call|continuous]\n"
            "           [--statement FILE...] [--confidence p10|p50|p90]\n"
            "           [--batch N] [--snapshot-every EVENTS] [--ready-file FILE]\n"
            "           [--statement-endpoint ENDPOINT] [--statement-topic PREFIX]\n"
            "           [--auto-auction on|off] [--auction-pricing pay_as_bid|uniform]\n"
            "           [--auction-check-ms N] [--spin-us N] [--reserve-orders N]\n"
            "           [--db CONNINFO]\n"
            "           [--log-level LEVEL]\n"
            "       anm-market replay JOURNAL\n"
            "       anm-market client --endpoint ENDPOINT --keys DIR --participant NAME\n"
            "           --server-key FILE [--requests FILE.jsonl | -] [--timeout-ms N]\n"
            "           [--format json|table] [--labels FILE]\n"
            "       anm-market bench ...   (see bench/market)\n");
}

static int serve(int argc, char **argv)
{
    market_service_config c;
    market_service_config_default(&c);
    const char *log_level = NULL;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--help") == 0) {
            usage(stdout);
            return ANM_EXIT_OK;
        }
        if (v == NULL)
            return anm_cli_usage_error("anm-market", "option '%s' needs a value", o);
        i++;
        long n;
        if (strcmp(o, "--zones") == 0 && c.n_zone_paths < MARKET_SERVICE_MAX_FILES)
            c.zone_paths[c.n_zone_paths++] = v;
        else if (strcmp(o, "--statement") == 0 && c.n_statement_paths < MARKET_SERVICE_MAX_FILES)
            c.statement_paths[c.n_statement_paths++] = v;
        else if (strcmp(o, "--participants") == 0)
            c.participants_path = v;
        else if (strcmp(o, "--keys") == 0)
            c.keys_dir = v;
        else if (strcmp(o, "--journal") == 0)
            c.journal_path = v;
        else if (strcmp(o, "--router") == 0)
            c.router_endpoint = v;
        else if (strcmp(o, "--pub") == 0)
            c.pub_endpoint = v;
        else if (strcmp(o, "--clock") == 0)
            c.clock_spec = v;
        else if (strcmp(o, "--ready-file") == 0)
            c.ready_file = v;
        else if (strcmp(o, "--log-level") == 0)
            log_level = v;
        else if (strcmp(o, "--confidence") == 0 &&
                 (strcmp(v, "p10") == 0 || strcmp(v, "p50") == 0 || strcmp(v, "p90") == 0))
            c.confidence = v;
        else if (strcmp(o, "--durability") == 0) {
            if (market_durability_parse(v, &c.durability) != ANM_OK)
                return anm_cli_usage_error("anm-market", "durability '%s' is not process or power",
                                           v);
        } else if (strcmp(o, "--mode") == 0 && strcmp(v, "call") == 0)
            c.initial_mode = MARKET_MODE_CALL;
        else if (strcmp(o, "--mode") == 0 && strcmp(v, "continuous") == 0)
            c.initial_mode = MARKET_MODE_CONTINUOUS;
        else if (strcmp(o, "--gate-closure-offset-ms") == 0 &&
                 anm_parse_long(v, 0, 7L * 86400000L, &n) == 0)
            c.gate_closure_offset_ms = n;
        else if (strcmp(o, "--batch") == 0 && anm_parse_long(v, 1, 1000000, &n) == 0)
            c.batch_max = (size_t)n;
        else if (strcmp(o, "--statement-endpoint") == 0)
            c.statement_endpoint = v;
        else if (strcmp(o, "--statement-topic") == 0)
            c.statement_topic = v;
        else if (strcmp(o, "--db") == 0)
            c.db_conninfo = v;
        else if (strcmp(o, "--auto-auction") == 0 && strcmp(v, "on") == 0)
            c.auto_auction = 1;
        else if (strcmp(o, "--auto-auction") == 0 && strcmp(v, "off") == 0)
            c.auto_auction = 0;
        else if (strcmp(o, "--auction-pricing") == 0 && strcmp(v, "uniform") == 0)
            c.auction_pricing = MARKET_UNIFORM;
        else if (strcmp(o, "--auction-pricing") == 0 && strcmp(v, "pay_as_bid") == 0)
            c.auction_pricing = MARKET_PAY_AS_BID;
        else if (strcmp(o, "--auction-check-ms") == 0 &&
                 anm_parse_long(v, 1, 86400000L, &n) == 0)
            c.auction_check_ms = n;
        else if (strcmp(o, "--spin-us") == 0 && anm_parse_long(v, 0, 1000000, &n) == 0)
            c.spin_us = n;
        else if (strcmp(o, "--reserve-orders") == 0 && anm_parse_long(v, 0, 16777215, &n) == 0)
            c.reserve_orders = (size_t)n;
        else if (strcmp(o, "--snapshot-every") == 0 && anm_parse_long(v, 0, 1L << 40, &n) == 0)
            c.snapshot_every = (uint64_t)n;
        else
            return anm_cli_usage_error("anm-market", "bad option or value '%s %s'", o, v);
    }
    if (anm_cli_apply_log_level(log_level) != 0)
        return anm_cli_usage_error("anm-market", "unknown log level '%s'", log_level);
    if (c.n_zone_paths == 0 || c.participants_path == NULL || c.journal_path == NULL ||
        c.keys_dir == NULL)
        return anm_cli_usage_error("anm-market",
                                   "--zones, --participants, --keys and --journal are required");
    anm_error_detail err;
    anm_error_detail_clear(&err);
    int rc = market_service_run(&c, &err);
    if (rc != ANM_OK) {
        char line[1200];
        anm_error_detail_format(&err, line, sizeof line);
        return anm_cli_fail("anm-market", "%s (%s)", line, anm_strerror(rc));
    }
    return ANM_EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return anm_cli_usage_error("anm-market", "missing command");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return ANM_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0)
        return anm_cli_version("anm-market");
    if (strcmp(argv[1], "serve") == 0)
        return serve(argc - 1, argv + 1);
    if (strcmp(argv[1], "client") == 0)
        return market_tool_client(argc - 1, argv + 1);
    if (strcmp(argv[1], "bench") == 0)
        return market_tool_bench(argc - 1, argv + 1);
    if (strcmp(argv[1], "replay") == 0) {
        if (argc != 3)
            return anm_cli_usage_error("anm-market", "replay takes one journal file");
        (void)anm_cli_apply_log_level(NULL);
        uint64_t digest = 0;
        int rc = market_replay(argv[2], stdout, &digest);
        if (rc != ANM_OK)
            return anm_cli_fail("anm-market", "could not replay \"%s\": %s", argv[2],
                                anm_strerror(rc));
        return ANM_EXIT_OK;
    }
    return anm_cli_usage_error("anm-market", "unknown command '%s'", argv[1]);
}
