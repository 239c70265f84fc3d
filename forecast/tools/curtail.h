/*
 * curtail.h: the `anm-forecast curtail` subcommand (curtail.c): one sample
 * through a zone's ANM rule.
 */
#ifndef FORECAST_TOOLS_CURTAIL_H
#define FORECAST_TOOLS_CURTAIL_H

/* argv holds the options after "curtail"; returns an ANM_EXIT_* status. */
int forecast_cli_curtail(const char *program, int argc, char **argv);

#endif
