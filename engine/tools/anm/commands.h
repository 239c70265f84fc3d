/*
 * commands.h: the subcommands of `anm`. Each takes argc/argv starting at its
 * own name (argv[0] is "calendar", ...) and returns an exit code
 * (ANM_EXIT_OK, ANM_EXIT_FAILURE, ANM_EXIT_USAGE).
 */
#ifndef ANM_TOOLS_COMMANDS_H
#define ANM_TOOLS_COMMANDS_H

typedef struct anm_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} anm_command;

int anm_cmd_calendar(int argc, char **argv);
int anm_cmd_network(int argc, char **argv);
int anm_cmd_db(int argc, char **argv);
int anm_cmd_replay(int argc, char **argv);
int anm_cmd_market(int argc, char **argv);

#endif
