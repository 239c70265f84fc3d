/* main.c: `anm`, the admin and tools executable: dispatch to a subcommand. */
#include "commands.h"

#include "engine/cli.h"

#include <stdio.h>
#include <string.h>

static const anm_command commands[] = {
    {"calendar", anm_cmd_calendar, "the settlement periods of a day (Europe/London)"},
    {"network", anm_cmd_network, "check and summarise a case file and its zones"},
    {"db", anm_cmd_db, "migrate the database, show its status, load zones"},
    {"replay", anm_cmd_replay, "send a recorded telemetry CSV to anm-ingest (--speed N)"},
    {"market", anm_cmd_market, "curve keys of anm-market (keys generate|list|add|remove)"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: anm [--log-level LEVEL] COMMAND [ARGS...]\n"
                 "       anm --help | --version\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'anm COMMAND --help' describes each command.\n");
}

int main(int argc, char **argv)
{
    int i = 1;
    const char *log_level = NULL;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return ANM_EXIT_OK;
        }
        if (strcmp(argv[i], "--version") == 0)
            return anm_cli_version("anm");
        if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
            log_level = argv[++i];
            continue;
        }
        return anm_cli_usage_error("anm", "unknown option '%s'", argv[i]);
    }
    if (anm_cli_apply_log_level(log_level) != 0)
        return anm_cli_usage_error("anm", "unknown log level '%s'", log_level ? log_level : "");
    if (i >= argc)
        return anm_cli_usage_error("anm", "missing command");
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++) {
        if (strcmp(argv[i], commands[c].name) == 0)
            return commands[c].run(argc - i, argv + i);
    }
    return anm_cli_usage_error("anm", "unknown command '%s'", argv[i]);
}
