/*
 * cmd_pcf.h: the `anm-forecast pcf` and `anm-forecast day-ahead`
 * subcommands (cmd_pcf.c): Monte Carlo PCF of one period, and a day-ahead
 * constraint statement.
 */
#ifndef FORECAST_TOOLS_CMD_PCF_H
#define FORECAST_TOOLS_CMD_PCF_H

/* argv holds the options after the subcommand; return an ANM_EXIT_* status. */
int forecast_cli_pcf(const char *program, int argc, char **argv);
int forecast_cli_day_ahead(const char *program, int argc, char **argv);

#endif
