/*
 * cmd_db.c: `anm db`, the database commands.
 *
 *   anm db migrate    [--conninfo C] [--sql-dir DIR]
 *   anm db status     [--conninfo C] [--sql-dir DIR]
 *   anm db load ZONES.json [--case CASE.m] [--conninfo C]
 *   anm db partitions [--from YYYY-MM-DD] [--days N] [--analyze] [--conninfo C]
 *
 * The connection string is --conninfo, else $ANM_DB_CONNINFO.
 */
#include "commands.h"

#include "engine/cli.h"
#include "engine/db.h"
#include "engine/db_migrate.h"
#include "engine/db_registry.h"
#include "engine/network.h"
#include "engine/zone.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "anm db"

typedef struct db_args {
    const char *command;
    const char *conninfo;
    const char *sql_dir;
    const char *zone_file;
    const char *case_file;
    const char *from;
    long days;
    int analyze;
} db_args;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: anm db migrate [--conninfo C] [--sql-dir DIR]\n"
            "       anm db status [--conninfo C] [--sql-dir DIR]\n"
            "       anm db load ZONES.json [--case CASE.m] [--conninfo C]\n"
            "       anm db partitions [--from YYYY-MM-DD] [--days N] [--analyze] [--conninfo C]\n\n"
            "  migrate     apply the pending migrations of the sql directory, each in a transaction\n"
            "  status      list the migrations: applied, pending, changed or missing\n"
            "  load        upsert the zones, monitored elements, DERs and signals of a zone file\n"
            "              (the case file: --case, else the zone file's \"case\" key)\n"
            "  partitions  create the daily telemetry partitions of [from, from + days)\n"
            "              (default: yesterday (UTC) and 9 days); --analyze: also ANALYZE each\n"
            "              finished day without statistics from after its end (day partitions\n"
            "              are not analyzed automatically while they are written)\n\n"
            "options:\n"
            "  --conninfo C   libpq connection string or URL (default: $ANM_DB_CONNINFO)\n"
            "  --sql-dir DIR  migrations (default: $ANM_SQL_DIR, else sql/ of the source tree)\n");
}

static int parse_args(int argc, char **argv, db_args *a)
{
    memset(a, 0, sizeof *a);
    a->days = 9;
    int i = 1;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        const char **target = NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(arg, "--conninfo") == 0)
            target = &a->conninfo;
        else if (strcmp(arg, "--sql-dir") == 0)
            target = &a->sql_dir;
        else if (strcmp(arg, "--case") == 0)
            target = &a->case_file;
        else if (strcmp(arg, "--from") == 0)
            target = &a->from;
        else if (strcmp(arg, "--analyze") == 0) {
            a->analyze = 1;
            continue;
        }
        else if (strcmp(arg, "--days") == 0) {
            if (i + 1 >= argc)
                return -anm_cli_usage_error(PROG, "option '%s' needs a value", arg);
            if (anm_parse_long(argv[++i], 0, 3660, &a->days) != ANM_OK)
                return -anm_cli_usage_error(PROG, "--days must be an integer from 0 to 3660, not '%s'",
                                            argv[i]);
            continue;
        } else if (arg[0] == '-' && arg[1] != '\0')
            return -anm_cli_usage_error(PROG, "unknown option '%s'", arg);
        if (target != NULL) {
            if (i + 1 >= argc)
                return -anm_cli_usage_error(PROG, "option '%s' needs a value", arg);
            *target = argv[++i];
            continue;
        }
        if (a->command == NULL)
            a->command = arg;
        else if (strcmp(a->command, "load") == 0 && a->zone_file == NULL)
            a->zone_file = arg;
        else
            return -anm_cli_usage_error(PROG, "unexpected argument '%s'", arg);
    }
    if (a->command == NULL)
        return -anm_cli_usage_error(PROG, "missing command (migrate, status, load or partitions)");
    return 0;
}

static int open_db(const db_args *a, anm_db **db)
{
    const char *conninfo = a->conninfo ? a->conninfo : anm_db_conninfo(NULL);
    if (conninfo == NULL)
        return anm_cli_usage_error(PROG, "no database: pass --conninfo or set %s", ANM_DB_CONNINFO_ENV);
    anm_db_options options = {.component = "anm-db", .connect_timeout_s = 10};
    int rc = anm_db_connect(conninfo, &options, db);
    if (rc != ANM_OK) {
        int exit_code = anm_cli_fail(PROG, "could not connect to database: %s",
                                     *db ? anm_db_error_message(*db) : anm_strerror(rc));
        anm_db_destroy(db);
        return exit_code;
    }
    return ANM_EXIT_OK;
}

static int resolve_sql_dir(const db_args *a, char *buf, size_t size)
{
    if (a->sql_dir != NULL) {
        int n = snprintf(buf, size, "%s", a->sql_dir);
        return n < 0 || (size_t)n >= size ? anm_cli_fail(PROG, "--sql-dir path too long") : ANM_EXIT_OK;
    }
    if (anm_db_default_sql_dir(buf, size) != ANM_OK)
        return anm_cli_fail(PROG, "no sql directory found: pass --sql-dir or set ANM_SQL_DIR");
    return ANM_EXIT_OK;
}

static int fail_detail(const char *what, const anm_error_detail *err)
{
    char line[1200];
    anm_error_detail_format(err, line, sizeof line);
    return anm_cli_fail(PROG, "%s: %s", what, line);
}

static int run_status(anm_db *db, const char *sql_dir, int print)
{
    anm_migration *list = NULL;
    size_t n = 0;
    anm_error_detail err;
    anm_error_detail_clear(&err);
    if (anm_db_migration_status(db, sql_dir, &list, &n, &err) != ANM_OK)
        return fail_detail("status failed", &err);
    int changed = 0;
    if (print) {
        printf("%-8s %-24s %-8s %s\n", "version", "name", "state", "applied_at");
        for (size_t i = 0; i < n; i++)
            printf("%04ld     %-24s %-8s %s\n", list[i].version, list[i].name,
                   anm_migration_state_name(list[i].state), list[i].applied_at[0] ? list[i].applied_at : "-");
    }
    for (size_t i = 0; i < n; i++)
        changed |= list[i].state == ANM_MIGRATION_CHANGED;
    free(list);
    if (changed)
        return anm_cli_fail(PROG, "an applied migration was changed: add a new migration instead");
    return ANM_EXIT_OK;
}

static int run_migrate(anm_db *db, const char *sql_dir)
{
    anm_migration *before = NULL;
    size_t n_before = 0;
    anm_error_detail err;
    anm_error_detail_clear(&err);
    if (anm_db_migration_status(db, sql_dir, &before, &n_before, &err) != ANM_OK)
        return fail_detail("migration failed", &err);
    int applied = 0;
    int rc = anm_db_migrate(db, sql_dir, &applied, &err);
    int exit_code = ANM_EXIT_OK;
    /* report what went in, in order, even when a later one failed */
    for (size_t i = 0, reported = 0; i < n_before && reported < (size_t)applied; i++) {
        if (before[i].state == ANM_MIGRATION_PENDING) {
            printf("applied %s\n", before[i].file);
            reported++;
        }
    }
    if (rc != ANM_OK)
        exit_code = fail_detail("migration failed", &err);
    else if (applied == 0)
        printf("database is up to date\n");
    free(before);
    return exit_code;
}

/* The case file: --case, else the "case" key of the zone file, relative to it. */
static int resolve_case(const db_args *a, char *buf, size_t size)
{
    const char *name = a->case_file;
    char *from_zone_file = NULL;
    if (name == NULL) {
        anm_error_detail err;
        int rc = anm_zone_file_case_path(a->zone_file, &from_zone_file, &err);
        if (rc == ANM_ENOTFOUND)
            return anm_cli_usage_error(PROG, "%s names no case file: pass --case CASE.m", a->zone_file);
        if (rc != ANM_OK)
            return fail_detail("could not read zone file", &err);
        name = from_zone_file;
    }
    int n = snprintf(buf, size, "%s", name);
    free(from_zone_file);
    return n < 0 || (size_t)n >= size ? anm_cli_fail(PROG, "case path too long") : ANM_EXIT_OK;
}

static int run_load(anm_db *db, const db_args *a)
{
    char case_path[PATH_MAX];
    anm_case *network = NULL;
    anm_zone_set *zones = NULL;
    anm_error_detail err;
    anm_error_detail_clear(&err);
    int exit_code = resolve_case(a, case_path, sizeof case_path);
    if (exit_code != ANM_EXIT_OK)
        return exit_code;
    if (anm_case_load(case_path, &network, &err) != ANM_OK) {
        exit_code = fail_detail("could not load case", &err);
        goto out;
    }
    if (anm_zone_set_load(a->zone_file, network, &zones, &err) != ANM_OK) {
        exit_code = fail_detail("could not load zones", &err);
        goto out;
    }
    anm_db_registry_counts counts;
    if (anm_db_registry_load(db, zones, a->zone_file, case_path, &counts, &err) != ANM_OK) {
        exit_code = fail_detail("could not store zones", &err);
        goto out;
    }
    printf("loaded %s: %zu zone%s, %zu monitored element%s, %zu DER%s, %zu signal%s\n", a->zone_file,
           counts.zones, counts.zones == 1 ? "" : "s", counts.monitored, counts.monitored == 1 ? "" : "s",
           counts.ders, counts.ders == 1 ? "" : "s", counts.signals, counts.signals == 1 ? "" : "s");
out:
    anm_zone_set_destroy(&zones);
    anm_case_destroy(&network);
    return exit_code;
}

static int run_partitions(anm_db *db, const db_args *a)
{
    char days[16];
    int n = snprintf(days, sizeof days, "%ld", a->days);
    if (n < 0 || (size_t)n >= sizeof days)
        return anm_cli_fail(PROG, "bad --days");
    const char *params[] = {a->from, days};
    anm_db_result *r = NULL;
    /* the session runs in UTC (see db.c), so current_date is the UTC date */
    int rc = anm_db_exec(db,
                         "SELECT anm_ensure_telemetry_partitions(COALESCE($1::date, current_date - 1),"
                         " $2::integer), COALESCE($1::date, current_date - 1)",
                         2, params, &r, NULL);
    if (rc != ANM_OK)
        return anm_cli_fail(PROG, "could not create partitions: %s", anm_db_error_message(db));
    printf("telemetry partitions from %s for %ld day%s: %s created\n", anm_db_result_value(r, 0, 1), a->days,
           a->days == 1 ? "" : "s", anm_db_result_value(r, 0, 0));
    anm_db_result_destroy(&r);
    if (a->analyze) {
        if (anm_db_exec(db, "SELECT anm_analyze_finished_telemetry_days()", 0, NULL, &r, NULL) != ANM_OK)
            return anm_cli_fail(PROG, "could not analyze finished days: %s", anm_db_error_message(db));
        printf("finished telemetry days analyzed: %s\n", anm_db_result_value(r, 0, 0));
        anm_db_result_destroy(&r);
    }
    return ANM_EXIT_OK;
}

int anm_cmd_db(int argc, char **argv)
{
    db_args a;
    int parsed = parse_args(argc, argv, &a);
    if (parsed > 0)
        return ANM_EXIT_OK;
    if (parsed < 0)
        return -parsed;
    int is_migrate = strcmp(a.command, "migrate") == 0;
    int is_status = strcmp(a.command, "status") == 0;
    int is_load = strcmp(a.command, "load") == 0;
    int is_partitions = strcmp(a.command, "partitions") == 0;
    if (!is_migrate && !is_status && !is_load && !is_partitions)
        return anm_cli_usage_error(PROG, "unknown command '%s'", a.command);
    if (is_load && a.zone_file == NULL)
        return anm_cli_usage_error(PROG, "load needs a zone file");
    if (!is_load && a.case_file != NULL)
        return anm_cli_usage_error(PROG, "--case applies to load only");

    char sql_dir[PATH_MAX];
    if (is_migrate || is_status) {
        int exit_code = resolve_sql_dir(&a, sql_dir, sizeof sql_dir);
        if (exit_code != ANM_EXIT_OK)
            return exit_code;
    }
    anm_db *db = NULL;
    int exit_code = open_db(&a, &db);
    if (exit_code != ANM_EXIT_OK)
        return exit_code;
    if (is_migrate)
        exit_code = run_migrate(db, sql_dir);
    else if (is_status)
        exit_code = run_status(db, sql_dir, 1);
    else if (is_load)
        exit_code = run_load(db, &a);
    else
        exit_code = run_partitions(db, &a);
    anm_db_destroy(&db);
    return exit_code;
}
