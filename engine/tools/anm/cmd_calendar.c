/* cmd_calendar.c: `anm calendar DATE [--format table|json|csv]`. */
#include "commands.h"

#include "engine/calendar.h"
#include "engine/cli.h"
#include "engine/error.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define PROG "anm calendar"

typedef enum output_format { FORMAT_TABLE, FORMAT_JSON, FORMAT_CSV } output_format;

/* One period as text. */
typedef struct period_text {
    char local_start[ANM_LOCAL_TIME_SIZE];
    char utc_start[ANM_UTC_TIME_SIZE];
    char utc_end[ANM_UTC_TIME_SIZE];
} period_text;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: anm calendar DATE [--format table|json|csv]\n"
            "       anm calendar --help | --version\n\n"
            "Prints the settlement periods of the Europe/London settlement day DATE\n"
            "(YYYY-MM-DD, years %d..%d): 48 periods of 30 minutes, 46 on the spring\n"
            "clock-change day, 50 on the autumn one; period 1 starts at local 00:00.\n\n"
            "options:\n"
            "  --format FORMAT  table (default), json, or csv with the columns\n"
            "                   period,local_start,utc_start,utc_end\n"
            "  -h, --help       this text\n"
            "  --version        the version\n",
            ANM_CALENDAR_MIN_YEAR, ANM_CALENDAR_MAX_YEAR);
}

static int parse_format(const char *text, output_format *out)
{
    if (strcmp(text, "table") == 0)
        *out = FORMAT_TABLE;
    else if (strcmp(text, "json") == 0)
        *out = FORMAT_JSON;
    else if (strcmp(text, "csv") == 0)
        *out = FORMAT_CSV;
    else
        return ANM_EINVAL;
    return ANM_OK;
}

static int period_to_text(const anm_settlement_period *sp, period_text *text)
{
    int err =
        anm_calendar_format_local(sp->utc_start_ms, text->local_start, sizeof text->local_start);
    if (err == ANM_OK)
        err = anm_calendar_format_utc(sp->utc_start_ms, text->utc_start, sizeof text->utc_start);
    if (err == ANM_OK)
        err = anm_calendar_format_utc(sp->utc_end_ms, text->utc_end, sizeof text->utc_end);
    return err;
}

static int print_json(const char *date_text, int count, const anm_settlement_period *periods)
{
    int err = ANM_ENOMEM;
    json_t *array = json_array();
    json_t *root = json_pack("{s:s, s:s, s:i, s:o}", "date", date_text, "timezone", "Europe/London",
                             "period_count", count, "periods", array);
    if (root == NULL) {
        json_decref(array);
        return ANM_ENOMEM;
    }
    for (int i = 0; i < count; i++) {
        period_text text;
        err = period_to_text(&periods[i], &text);
        if (err != ANM_OK)
            goto out_root;
        json_t *item =
            json_pack("{s:i, s:s, s:s, s:s, s:i}", "period", periods[i].period, "local_start",
                      text.local_start, "utc_start", text.utc_start, "utc_end", text.utc_end,
                      "utc_offset_minutes", periods[i].utc_offset_minutes);
        if (item == NULL || json_array_append_new(array, item) != 0) {
            err = ANM_ENOMEM;
            goto out_root;
        }
    }
    err = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) == 0 ? ANM_OK : ANM_EIO;
    if (err == ANM_OK && fputc('\n', stdout) == EOF)
        err = ANM_EIO;
out_root:
    json_decref(root);
    return err;
}

static int print_rows(output_format format, const char *date_text, int count,
                      const anm_settlement_period *periods)
{
    if (format == FORMAT_CSV)
        printf("period,local_start,utc_start,utc_end\n");
    else
        printf("settlement day %s (Europe/London): %d periods\n\n"
               "period  local start                utc start             utc end\n",
               date_text, count);
    for (int i = 0; i < count; i++) {
        period_text text;
        int err = period_to_text(&periods[i], &text);
        if (err != ANM_OK)
            return err;
        if (format == FORMAT_CSV)
            printf("%d,%s,%s,%s\n", periods[i].period, text.local_start, text.utc_start,
                   text.utc_end);
        else
            printf("%6d  %s  %s  %s\n", periods[i].period, text.local_start, text.utc_start,
                   text.utc_end);
    }
    return ANM_OK;
}

int anm_cmd_calendar(int argc, char **argv)
{
    const char *date_arg = NULL;
    const char *format_arg = "table";
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return ANM_EXIT_OK;
        }
        if (strcmp(arg, "--version") == 0)
            return anm_cli_version(PROG);
        if (strcmp(arg, "--format") == 0) {
            if (i + 1 >= argc)
                return anm_cli_usage_error(PROG, "option '--format' needs a value");
            format_arg = argv[++i];
        } else if (strncmp(arg, "--format=", 9) == 0) {
            format_arg = arg + 9;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return anm_cli_usage_error(PROG, "unknown option '%s'", arg);
        } else if (date_arg == NULL) {
            date_arg = arg;
        } else {
            return anm_cli_usage_error(PROG, "unexpected argument '%s'", arg);
        }
    }
    output_format format;
    if (parse_format(format_arg, &format) != ANM_OK)
        return anm_cli_usage_error(PROG, "unknown format '%s' (expected table, json or csv)",
                                   format_arg);
    if (date_arg == NULL)
        return anm_cli_usage_error(PROG, "missing DATE (YYYY-MM-DD)");

    anm_settlement_date date;
    anm_error_detail detail;
    if (anm_settlement_date_parse(date_arg, &date, &detail) != ANM_OK)
        return anm_cli_usage_error(PROG, "%s", detail.message);

    anm_settlement_period periods[ANM_MAX_PERIODS_PER_DAY];
    int count = anm_calendar_period_count(date);
    if (count < 0 || count > ANM_MAX_PERIODS_PER_DAY)
        return anm_cli_fail(PROG, "could not compute the periods of %s: %s", date_arg,
                            anm_strerror(count < 0 ? count : ANM_EINTERNAL));
    for (int p = 1; p <= count; p++) {
        int err = anm_calendar_period(date, p, &periods[p - 1]);
        if (err != ANM_OK)
            return anm_cli_fail(PROG, "could not compute period %d of %s: %s", p, date_arg,
                                anm_strerror(err));
    }

    char date_text[ANM_DATE_SIZE];
    int err = anm_settlement_date_format(date, date_text, sizeof date_text);
    if (err == ANM_OK)
        err = format == FORMAT_JSON ? print_json(date_text, count, periods)
                                    : print_rows(format, date_text, count, periods);
    if (err == ANM_OK && (fflush(stdout) != 0 || ferror(stdout)))
        err = ANM_EIO;
    if (err != ANM_OK)
        return anm_cli_fail(PROG, "could not write the calendar of %s: %s", date_arg,
                            anm_strerror(err));
    return ANM_EXIT_OK;
}
