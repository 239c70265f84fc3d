/*
 * cli.h: the small conventions every anm executable shares: --help and
 * --version, a one-line reason and a non-zero exit on bad usage, and a
 * --log-level option.
 */
#ifndef ANM_ENGINE_CLI_H
#define ANM_ENGINE_CLI_H

/* Exit codes: 0 success, 1 the work failed, 2 bad usage. */
enum { ANM_EXIT_OK = 0, ANM_EXIT_FAILURE = 1, ANM_EXIT_USAGE = 2 };

/*
 * Prints "prog: reason (try 'prog --help')" on stderr and returns
 * ANM_EXIT_USAGE, so a caller writes `return anm_cli_usage_error(...)`.
 */
int anm_cli_usage_error(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "prog: message" on stderr and returns ANM_EXIT_FAILURE. */
int anm_cli_fail(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "prog (anm) VERSION" on stdout and returns ANM_EXIT_OK. */
int anm_cli_version(const char *prog);

/*
 * Applies a --log-level value (or the ANM_LOG_LEVEL environment variable
 * when value is NULL). Returns ANM_OK or ANM_EINVAL for an unknown level.
 */
int anm_cli_apply_log_level(const char *value);

/*
 * Checked conversions for option values: the whole string must be a number
 * within [min, max]. Return ANM_OK, ANM_EPARSE or ANM_ERANGE.
 */
int anm_parse_long(const char *text, long min, long max, long *out);
int anm_parse_double(const char *text, double min, double max, double *out);

#endif
