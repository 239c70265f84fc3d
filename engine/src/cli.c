/* cli.c: shared command-line conventions and checked number parsing. */
#include "engine/cli.h"

#include "engine/error.h"
#include "engine/log.h"
#include "engine/version.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int anm_cli_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try '%s --help')\n", prog);
    return ANM_EXIT_USAGE;
}

int anm_cli_fail(const char *prog, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return ANM_EXIT_FAILURE;
}

int anm_cli_version(const char *prog)
{
    printf("%s (anm) %s\n", prog, ANM_VERSION);
    return ANM_EXIT_OK;
}

int anm_cli_apply_log_level(const char *value)
{
    if (value == NULL)
        value = getenv("ANM_LOG_LEVEL");
    if (value == NULL)
        return ANM_OK;
    anm_log_level level;
    if (anm_log_level_parse(value, &level) != ANM_OK)
        return ANM_EINVAL;
    anm_log_set_level(level);
    return ANM_OK;
}

int anm_parse_long(const char *text, long min, long max, long *out)
{
    /* strto* would skip leading white space: the whole string must be the number */
    if (text == NULL || *text == '\0' || isspace((unsigned char)*text))
        return ANM_EPARSE;
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (*end != '\0')
        return ANM_EPARSE;
    if (errno == ERANGE || value < min || value > max)
        return ANM_ERANGE;
    *out = value;
    return ANM_OK;
}

int anm_parse_double(const char *text, double min, double max, double *out)
{
    /* strto* would skip leading white space: the whole string must be the number */
    if (text == NULL || *text == '\0' || isspace((unsigned char)*text))
        return ANM_EPARSE;
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (*end != '\0' || isnan(value))
        return ANM_EPARSE;
    if (errno == ERANGE || value < min || value > max)
        return ANM_ERANGE;
    *out = value;
    return ANM_OK;
}
