/*
 * main.c: anm-ingest, the telemetry ingest service.
 *
 *   anm-ingest [--config FILE] [--endpoint E] [--publish-endpoint E]
 *              [--journal-dir DIR] [--clock SPEC] [--log-level L]
 *   anm-ingest --status [--config FILE] [--endpoint E]
 *   anm-ingest --print-config [--config FILE]
 */
#include "engine/cli.h"
#include "engine/log.h"
#include "ingest/config.h"
#include "ingest/service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "anm-ingest"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: anm-ingest [--config FILE] [--endpoint E] [--publish-endpoint E]\n"
            "                  [--journal-dir DIR] [--clock SPEC] [--log-level LEVEL]\n"
            "       anm-ingest --status [--config FILE] [--endpoint E]\n"
            "       anm-ingest --print-config [--config FILE]\n"
            "       anm-ingest --help | --version\n\n"
            "Receives telemetry batches on a ROUTER socket, journals them durably, acknowledges\n"
            "them and stores them in PostgreSQL with binary COPY (docs/ingest.md).\n\n"
            "options:\n"
            "  --config FILE           JSON settings (keys in docs/ingest.md)\n"
            "  --endpoint E            ROUTER endpoint (default @tcp://127.0.0.1:5601)\n"
            "  --publish-endpoint E    PUB endpoint for signal.latest (\"\" for none)\n"
            "  --journal-dir DIR       journal directory\n"
            "  --clock SPEC            real, sim:TIME[@SPEED] or step:TIME\n"
            "  --status                ask the running service for its status and print it\n"
            "  --print-config          print the effective settings (secrets masked)\n"
            "  --log-level LEVEL       debug, info, warn, error or off\n\n"
            "The database connection string is the config key \"conninfo\" or $ANM_DB_CONNINFO.\n"
            "SIGINT/SIGTERM: stop accepting, store what is journaled, exit 0.\n");
}

static int replace(char **field, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return ANM_ENOMEM;
    free(*field);
    *field = copy;
    return ANM_OK;
}

int main(int argc, char **argv)
{
    const char *config_file = NULL, *endpoint = NULL, *pub = NULL, *journal = NULL, *clock = NULL;
    const char *log_level = NULL;
    int status = 0, print = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **target = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return ANM_EXIT_OK;
        }
        if (strcmp(a, "--version") == 0)
            return anm_cli_version(PROG);
        if (strcmp(a, "--status") == 0) {
            status = 1;
            continue;
        }
        if (strcmp(a, "--print-config") == 0) {
            print = 1;
            continue;
        }
        if (strcmp(a, "--config") == 0)
            target = &config_file;
        else if (strcmp(a, "--endpoint") == 0)
            target = &endpoint;
        else if (strcmp(a, "--publish-endpoint") == 0)
            target = &pub;
        else if (strcmp(a, "--journal-dir") == 0)
            target = &journal;
        else if (strcmp(a, "--clock") == 0)
            target = &clock;
        else if (strcmp(a, "--log-level") == 0)
            target = &log_level;
        else
            return anm_cli_usage_error(PROG, "unknown option '%s'", a);
        if (i + 1 >= argc)
            return anm_cli_usage_error(PROG, "option '%s' needs a value", a);
        *target = argv[++i];
    }
    if (anm_cli_apply_log_level(log_level) != ANM_OK)
        return anm_cli_usage_error(PROG, "unknown log level '%s'", log_level ? log_level : "");

    const anm_config_table *table = ingest_config_table();
    ingest_config cfg;
    anm_error_detail detail;
    anm_error_detail_clear(&detail);
    if (status && !config_file && !getenv("ANM_DB_CONNINFO"))
        setenv("ANM_DB_CONNINFO", "unused", 0); /* --status needs no database */
    int rc = anm_config_load_file(table, config_file, &cfg, &detail);
    if (rc != ANM_OK) {
        char line[1200];
        anm_error_detail_format(&detail, line, sizeof line);
        return anm_cli_fail(PROG, "%s", line);
    }
    if (!log_level)
        anm_log_set_level(cfg.log_level);
    int exit_code = ANM_EXIT_FAILURE;
    if ((endpoint && replace(&cfg.endpoint, endpoint) != ANM_OK) ||
        (pub && replace(&cfg.publish_endpoint, pub) != ANM_OK) ||
        (journal && replace(&cfg.journal_dir, journal) != ANM_OK) ||
        (clock && replace(&cfg.clock, clock) != ANM_OK)) {
        anm_cli_fail(PROG, "out of memory");
        goto done;
    }
    if (print) {
        char *text = anm_config_render(table, &cfg);
        if (text)
            fputs(text, stdout);
        free(text);
        exit_code = text ? ANM_EXIT_OK : ANM_EXIT_FAILURE;
        goto done;
    }
    if (status) {
        json_t *reply = NULL;
        rc = ingest_status_query(cfg.endpoint, 3000, &reply);
        if (rc != ANM_OK) {
            anm_cli_fail(PROG, "no status from \"%s\": %s", cfg.endpoint, anm_strerror(rc));
            goto done;
        }
        char *text = json_dumps(reply, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(reply);
        exit_code = ANM_EXIT_OK;
        goto done;
    }
    ingest_service *service = NULL;
    anm_error_detail_clear(&detail);
    rc = ingest_service_new(&cfg, &service, &detail);
    if (rc != ANM_OK) {
        char line[1200];
        anm_error_detail_format(&detail, line, sizeof line);
        anm_cli_fail(PROG, "could not start: %s (%s)", line, anm_strerror(rc));
        goto done;
    }
    rc = ingest_service_run(service);
    ingest_service_destroy(&service);
    exit_code = rc == ANM_OK ? ANM_EXIT_OK : ANM_EXIT_FAILURE;
    if (rc != ANM_OK)
        anm_log_error("ingest", "stopped with an error: %s", anm_strerror(rc));
done:
    anm_config_free(table, &cfg);
    return exit_code;
}
