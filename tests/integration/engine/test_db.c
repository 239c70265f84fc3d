/*
 * test_db.c: the database layer against a real PostgreSQL (scripts/pg):
 * migrations, status, binary COPY, partitions, the registry loader, errors,
 * reconnecting after a restart, durable settings.
 */
#include "engine/db.h"
#include "engine/db_migrate.h"
#include "engine/db_registry.h"
#include "engine/network.h"
#include "engine/zone.h"
#include "pg_harness.h"
#include "testlib.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A fresh database in the shared cluster, connected. */
static anm_db *fresh_db(char *conninfo, size_t size)
{
    cr_assert_eq(anm_pg_test_database(conninfo, size), 0, "could not create a test database");
    anm_db *db = NULL;
    int rc = anm_db_connect(conninfo, NULL, &db);
    cr_assert_eq(rc, ANM_OK, "connect: %s", anm_db_error_message(db));
    return db;
}

static char *sql_dir(char *buf, size_t size)
{
    return anm_test_source_path(buf, size, "sql");
}

/* The count of migration files in sql/, counted independently of db_migrate.c. */
static int count_migration_files(void)
{
    char dir[1024];
    DIR *d = opendir(sql_dir(dir, sizeof dir));
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t length = strlen(e->d_name);
        if (length > 9 && strspn(e->d_name, "0123456789") == 4 && e->d_name[4] == '_' &&
            strcmp(e->d_name + length - 4, ".sql") == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* The single value of a query without parameters (new string). */
static char *query_value(anm_db *db, const char *sql)
{
    anm_db_result *r = NULL;
    int rc = anm_db_exec(db, sql, 0, NULL, &r, NULL);
    cr_assert_eq(rc, ANM_OK, "%s: %s", sql, anm_db_error_message(db));
    cr_assert_eq(anm_db_result_rows(r), 1, "%s", sql);
    char *value = strdup(anm_db_result_value(r, 0, 0));
    anm_db_result_destroy(&r);
    return value;
}

static void expect_value(anm_db *db, const char *sql, const char *expected)
{
    char *value = query_value(db, sql);
    cr_expect_str_eq(value, expected, "%s", sql);
    free(value);
}

static void migrate_ok(anm_db *db)
{
    char dir[1024];
    anm_error_detail err;
    int applied = -1;
    int rc = anm_db_migrate(db, sql_dir(dir, sizeof dir), &applied, &err);
    cr_assert_eq(rc, ANM_OK, "migrate: %s: %s", err.file, err.message);
}

static void write_sql(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(anm_test_write_file(path, text), 0);
}

Test(db, migrate_fresh_then_again_is_a_no_op)
{
    char conninfo[1024], dir[1024];
    anm_db *db = fresh_db(conninfo, sizeof conninfo);
    anm_error_detail err;
    int applied = -1;
    int expected = count_migration_files();
    cr_assert_geq(expected, 2);

    cr_assert_eq(anm_db_migrate(db, sql_dir(dir, sizeof dir), &applied, &err), ANM_OK, "%s", err.message);
    cr_expect_eq(applied, expected);
    static const char *const tables[] = {"zones", "monitored_elements", "ders", "signals", "telemetry",
                                         "ingest_journal_position", "schema_migrations"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        const char *params[] = {tables[i]};
        anm_db_result *r = NULL;
        cr_assert_eq(anm_db_exec(db, "SELECT to_regclass($1) IS NOT NULL", 1, params, &r, NULL), ANM_OK);
        cr_expect_str_eq(anm_db_result_value(r, 0, 0), "t", "table %s missing", tables[i]);
        anm_db_result_destroy(&r);
    }
    char *first_applied = query_value(db, "SELECT max(applied_at)::text FROM schema_migrations");

    /* again: nothing applied, nothing re-recorded */
    cr_assert_eq(anm_db_migrate(db, dir, &applied, &err), ANM_OK, "%s", err.message);
    cr_expect_eq(applied, 0);
    char count[16];
    snprintf(count, sizeof count, "%d", expected);
    expect_value(db, "SELECT count(*) FROM schema_migrations", count);
    expect_value(db, "SELECT max(applied_at)::text FROM schema_migrations", first_applied);
    free(first_applied);
    anm_db_destroy(&db);
}

Test(db, changed_migration_is_an_error)
{
    char conninfo[1024];
    anm_db *db = fresh_db(conninfo, sizeof conninfo);
    char *dir = anm_test_tmpdir("anm-sql");
    write_sql(dir, "0001_first.sql", "CREATE TABLE first (x integer);\n");
    write_sql(dir, "README.md", "not a migration\n");
    anm_error_detail err;
    int applied = 0;
    cr_assert_eq(anm_db_migrate(db, dir, &applied, &err), ANM_OK, "%s", err.message);
    cr_expect_eq(applied, 1);

    write_sql(dir, "0001_first.sql", "CREATE TABLE first (x bigint);\n");
    cr_expect_eq(anm_db_migrate(db, dir, &applied, &err), ANM_ECONFIG);
    cr_expect_str_eq(err.file, "0001_first.sql");
    cr_expect(strstr(err.message, "migration 1 was changed after it was applied") == err.message, "%s",
              err.message);

    anm_migration *list = NULL;
    size_t n = 0;
    cr_assert_eq(anm_db_migration_status(db, dir, &list, &n, &err), ANM_OK);
    cr_assert_eq(n, 1);
    cr_expect_eq(list[0].state, ANM_MIGRATION_CHANGED);
    free(list);
    anm_test_rmtree(dir);
    free(dir);
    anm_db_destroy(&db);
}

Test(db, failed_migration_leaves_nothing_behind)
{
    char conninfo[1024];
    anm_db *db = fresh_db(conninfo, sizeof conninfo);
    char *dir = anm_test_tmpdir("anm-sql");
    write_sql(dir, "0001_ok.sql", "CREATE TABLE ok (x integer);\n");
    write_sql(dir, "0002_bad.sql", "CREATE TABLE half (x integer);\nCREATE TABLE broken (x integr);\n");
    anm_error_detail err;
    int applied = 0;
    cr_expect_eq(anm_db_migrate(db, dir, &applied, &err), ANM_EDB);
    cr_expect_eq(applied, 1);
    cr_expect_str_eq(err.file, "0002_bad.sql");
    cr_expect_str_eq(err.message, "migration failed: type \"integr\" does not exist");
    expect_value(db, "SELECT to_regclass('half') IS NULL", "t");
    expect_value(db, "SELECT string_agg(version::text, ',') FROM schema_migrations", "1");

    /* two files with one version */
    write_sql(dir, "0002_bad.sql", "SELECT 1;\n");
    write_sql(dir, "0002_other.sql", "SELECT 2;\n");
    cr_expect_eq(anm_db_migrate(db, dir, &applied, &err), ANM_ECONFIG);
    cr_expect_str_eq(err.message, "two migrations with version 2: 0002_bad.sql and 0002_other.sql");
    anm_test_rmtree(dir);
    free(dir);
    anm_db_destroy(&db);
}

Test(db, cli_migrate_and_status)
{
    char conninfo[1024], anm[1024], dir[1024];
    anm_db *db = fresh_db(conninfo, sizeof conninfo);
    snprintf(anm, sizeof anm, "%s/anm", anm_test_bin_dir());
    sql_dir(dir, sizeof dir);
    char *out = NULL, *err = NULL;

    const char *const status_argv[] = {anm, "db", "status", "--conninfo", conninfo, "--sql-dir", dir, NULL};
    cr_assert_eq(anm_test_run_args(status_argv, &out, &err), 0, "%s", err);
    cr_expect(strstr(out, "version  name                     state    applied_at\n") == out, "%s", out);
    cr_expect_not_null(strstr(out, "\n0001     registry                 pending  -\n"), "%s", out);
    cr_expect_not_null(strstr(out, "\n0002     telemetry                pending  -\n"), "%s", out);
    free(out);
    free(err);

    const char *const migrate_argv[] = {anm, "db", "migrate", "--conninfo", conninfo, "--sql-dir", dir, NULL};
    cr_assert_eq(anm_test_run_args(migrate_argv, &out, &err), 0, "%s", err);
    cr_expect(strstr(out, "applied 0001_registry.sql\napplied 0002_telemetry.sql\n") == out, "%s", out);
    free(out);
    free(err);
    cr_assert_eq(anm_test_run_args(migrate_argv, &out, &err), 0, "%s", err);
    cr_expect_str_eq(out, "database is up to date\n");
    free(out);
    free(err);

    cr_assert_eq(anm_test_run_args(status_argv, &out, &err), 0, "%s", err);
    cr_expect_not_null(strstr(out, "\n0001     registry                 applied  20"), "%s", out);
    cr_expect_null(strstr(out, "pending"), "%s", out);
    free(out);
    free(err);

    /* no connection string at all: a usage error naming the fix */
    const char *const bare_argv[] = {anm, "db", "status", NULL};
    unsetenv(ANM_DB_CONNINFO_ENV);
    cr_expect_eq(anm_test_run_args(bare_argv, &out, &err), 2);
    cr_expect_not_null(strstr(err, "no database: pass --conninfo or set ANM_DB_CONNINFO"), "%s", err);
    free(out);
    free(err);
    anm_db_destroy(&db);
}

/* 2021-10-31T00:00:00Z, the autumn clock-change day (50 settlement periods) */
#define DAY_START_US INT64_C(1635638400000000)

Test(db, copy_binary_rows_arrive_exactly)
{
    char conninfo[1024];
    anm_db *db = fresh_db(conninfo, sizeof conninfo);
    migrate_ok(db);
    expect_value(db, "SELECT anm_ensure_telemetry_partitions('2021-10-31', 2)", "2");

    /* N samples of 4 signals every 0.5 s over the day, values k/4 (exact in binary) */
    enum { N = 20000 };
    anm_db_copy_buffer *b = anm_db_copy_buffer_new();
    cr_assert_not_null(b);
    double sum = 0.0;
    for (int k = 0; k < N; k++) {
        cr_assert_eq(anm_db_copy_row(b, 4), ANM_OK);
        cr_assert_eq(anm_db_copy_int4(b, 1 + k % 4), ANM_OK);
        cr_assert_eq(anm_db_copy_int4(b, k % 3), ANM_OK);
        cr_assert_eq(anm_db_copy_timestamptz(b, DAY_START_US + (int64_t)k * 500000), ANM_OK);
        cr_assert_eq(anm_db_copy_float8(b, k / 4.0), ANM_OK);
        sum += k / 4.0;
    }
    cr_expect_eq(anm_db_copy_buffer_rows(b), (size_t)N);
    long long rows = 0;
    int rc = anm_db_copy_in(db, "COPY telemetry (signal_key, quality, time, value) FROM STDIN (FORMAT binary)",
                            b, &rows);
    cr_assert_eq(rc, ANM_OK, "%s", anm_db_error_message(db));
    cr_expect_eq(rows, N);
    expect_value(db, "SELECT count(*) FROM telemetry", "20000");
    char expected_sum[64];
    snprintf(expected_sum, sizeof expected_sum, "%.1f", sum); /* 49997500/1: exact */
    expect_value(db, "SELECT sum(value)::numeric(20,1)::text FROM telemetry", expected_sum);
    /* sample 3601 is 1800.5 s after midnight UTC: 00:30:00.5Z, signal 2, quality 1 */
    expect_value(db, "SELECT time::text || ' ' || signal_key || ' ' || quality || ' ' || value FROM telemetry"
                     " WHERE time = '2021-10-31 00:30:00.5+00'",
                 "2021-10-31 00:30:00.5+00 2 1 900.25");
    /* rows landed in the day's partition */
    expect_value(db, "SELECT string_agg(DISTINCT tableoid::regclass::text, ',') FROM telemetry",
                 "telemetry_20211031");
    /* the last value of each signal and one signal over the day use the index */
    expect_value(db, "SELECT string_agg(signal_key || '=' || value, ',' ORDER BY signal_key) FROM ("
                     " SELECT DISTINCT ON (signal_key) signal_key, value FROM telemetry"
                     " ORDER BY signal_key, time DESC) last",
                 "1=4999,2=4999.25,3=4999.5,4=4999.75");

    /* the same buffer again: the batch can be resent (here it doubles the rows) */
    cr_assert_eq(anm_db_copy_in(db, "COPY telemetry (signal_key, quality, time, value) FROM STDIN (FORMAT binary)",
                                b, &rows),
                 ANM_OK);
    expect_value(db, "SELECT count(*) FROM telemetry", "40000");
    anm_db_copy_buffer_destroy(&b);
    anm_db_copy_buffer_destroy(&b); /* idempotent */
    cr_expect_null(b);
    anm_db_destroy(&db);
}

Test(db, copy_binary_every_type_and_errors)
{
    char conninfo[1024];
    anm_db *db = fresh_db(conninfo, sizeof conninfo);
    cr_assert_eq(anm_db_exec(db,
                             "CREATE TABLE kinds (a smallint, b bigint, c text, d boolean, e float8,"
                             " f timestamptz, g integer)",
                             0, NULL, NULL, NULL),
                 ANM_OK);
    anm_db_copy_buffer *b = anm_db_copy_buffer_new();
    cr_assert_eq(anm_db_copy_row(b, 7), ANM_OK);
    anm_db_copy_int2(b, -12345);
    anm_db_copy_int8(b, INT64_C(-9007199254740993));
    anm_db_copy_text(b, "caf\xc3\xa9 'x'", 9);
    anm_db_copy_bool(b, 1);
    anm_db_copy_float8(b, -0.1);
    anm_db_copy_timestamptz(b, INT64_C(946684799999999)); /* 1999-12-31T23:59:59.999999Z */
    anm_db_copy_null(b);
    long long rows = 0;
    int rc = anm_db_copy_in(db, "COPY kinds FROM STDIN (FORMAT binary)", b, &rows);
    cr_assert_eq(rc, ANM_OK, "%s", anm_db_error_message(db));
    cr_expect_eq(rows, 1);
    expect_value(db,
                 "SELECT a || '|' || b || '|' || c || '|' || d || '|' || e || '|' || f || '|' ||"
                 " coalesce(g::text, 'null') FROM kinds",
                 "-12345|-9007199254740993|caf\xc3\xa9 'x'|true|-0.1|1999-12-31 23:59:59.999999+00|null");

    /* a tuple with the wrong field count: the server's message, and the connection still works */
    anm_db_copy_buffer_reset(b);
    cr_expect_eq(anm_db_copy_buffer_rows(b), 0);
    anm_db_copy_row(b, 2);
    anm_db_copy_int2(b, 1);
    anm_db_copy_int8(b, 2);
    cr_expect_eq(anm_db_copy_in(db, "COPY kinds FROM STDIN (FORMAT binary)", b, &rows), ANM_EDB);
    cr_expect_str_eq(anm_db_error_message(db), "row field count is 2, expected 7");
    cr_expect_str_eq(anm_db_error_sqlstate(db), "22P04");
    expect_value(db, "SELECT count(*) FROM kinds", "1");
    anm_db_copy_buffer_destroy(&b);
    anm_db_destroy(&db);
}

Test(db, parameters_errors_and_transactions)
{
    char conninfo[1024];
    anm_db *db = fresh_db(conninfo, sizeof conninfo);
    /* a parameter is data, never SQL */
    const char *hostile[] = {"x'); DROP TABLE y; --"};
    anm_db_result *r = NULL;
    cr_assert_eq(anm_db_exec(db, "SELECT $1::text, $2::text IS NULL", 2,
                             (const char *const[]){hostile[0], NULL}, &r, NULL),
                 ANM_OK);
    cr_expect_str_eq(anm_db_result_value(r, 0, 0), hostile[0]);
    cr_expect_str_eq(anm_db_result_value(r, 0, 1), "t");
    anm_db_result_destroy(&r);

    cr_expect_eq(anm_db_exec(db, "SELECT * FROM nope", 0, NULL, NULL, NULL), ANM_EDB);
    cr_expect_str_eq(anm_db_error_message(db), "relation \"nope\" does not exist");
    cr_expect_str_eq(anm_db_error_sqlstate(db), "42P01");

    /* a transaction is all or nothing; COMMIT after an error reports it */
    cr_assert_eq(anm_db_exec(db, "CREATE TABLE t (x integer PRIMARY KEY)", 0, NULL, NULL, NULL), ANM_OK);
    cr_assert_eq(anm_db_begin(db), ANM_OK);
    long long affected = 0;
    cr_expect_eq(anm_db_exec(db, "INSERT INTO t VALUES (1), (2)", 0, NULL, NULL, &affected), ANM_OK);
    cr_expect_eq(affected, 2);
    cr_expect_eq(anm_db_exec(db, "INSERT INTO t VALUES (1)", 0, NULL, NULL, NULL), ANM_EDB);
    cr_expect_str_eq(anm_db_error_sqlstate(db), "23505");
    cr_expect_eq(anm_db_commit(db), ANM_EDB);
    cr_expect_str_eq(anm_db_error_message(db), "transaction was rolled back after an earlier error");
    expect_value(db, "SELECT count(*) FROM t", "0");
    cr_assert_eq(anm_db_begin(db), ANM_OK);
    cr_expect_eq(anm_db_exec(db, "INSERT INTO t VALUES (3)", 0, NULL, NULL, NULL), ANM_OK);
    cr_expect_eq(anm_db_commit(db), ANM_OK);
    expect_value(db, "SELECT string_agg(x::text, ',') FROM t", "3");
    anm_db_destroy(&db);
}

Test(db, partitions_are_created_ahead_once)
{
    char conninfo[1024];
    anm_db *db = fresh_db(conninfo, sizeof conninfo);
    migrate_ok(db);
    /* spring clock change 2021-03-28: partitions are UTC days, 24 h each */
    expect_value(db, "SELECT anm_ensure_telemetry_partitions('2021-03-27', 3)", "3");
    expect_value(db, "SELECT anm_ensure_telemetry_partitions('2021-03-27', 4)", "1");
    expect_value(db, "SELECT anm_ensure_telemetry_partitions('2021-03-27', 4)", "0");
    expect_value(db,
                 "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'telemetry_20210328'",
                 "FOR VALUES FROM ('2021-03-28 00:00:00+00') TO ('2021-03-29 00:00:00+00')");
    cr_expect_eq(anm_db_exec(db, "SELECT anm_ensure_telemetry_partitions('2021-03-27', -1)", 0, NULL, NULL,
                             NULL),
                 ANM_EDB);
    cr_expect_str_eq(anm_db_error_message(db), "invalid partition range: from 2021-03-27 for -1 days");
    /* a sample on a day without a partition is refused, not lost silently */
    cr_expect_eq(anm_db_exec(db, "INSERT INTO telemetry VALUES (1, 0, '2021-04-02 00:00Z', 1)", 0, NULL, NULL,
                             NULL),
                 ANM_EDB);
    cr_expect_str_eq(anm_db_error_sqlstate(db), "23514");
    anm_db_destroy(&db);
}

/* Day partitions are not auto-analyzed while written (0007); finished days
 * are analyzed once by anm_analyze_finished_telemetry_days (anm db
 * partitions --analyze), never today's, never twice. */
Test(db, finished_days_are_analyzed_once_and_today_never)
{
    char conninfo[1024];
    anm_db *db = fresh_db(conninfo, sizeof conninfo);
    migrate_ok(db);
    expect_value(db, "SELECT anm_ensure_telemetry_partitions(current_date - 2, 3)", "3");
    expect_value(db,
                 "SELECT count(*) FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid"
                 " WHERE i.inhparent = 'telemetry'::regclass"
                 " AND 'autovacuum_analyze_threshold=2000000000' = ANY (c.reloptions)"
                 " AND 'autovacuum_vacuum_insert_threshold=-1' = ANY (c.reloptions)",
                 "3");
    /* ahead-created partitions (migration 0002 made some) carry it too */
    expect_value(db,
                 "SELECT count(*) FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid"
                 " WHERE i.inhparent = 'telemetry'::regclass"
                 " AND NOT coalesce('autovacuum_analyze_threshold=2000000000' = ANY (c.reloptions), false)",
                 "0");
    cr_assert_eq(anm_db_exec(db,
                             "INSERT INTO telemetry SELECT 1, 0, current_date - 2 + g * interval '1 minute', g"
                             " FROM generate_series(0, 3 * 1440 - 1) g",
                             0, NULL, NULL, NULL),
                 ANM_OK, "%s", anm_db_error_message(db));
    /* the two finished days (day before yesterday, yesterday); not today */
    expect_value(db, "SELECT anm_analyze_finished_telemetry_days()", "2");
    expect_value(db, "SELECT anm_analyze_finished_telemetry_days()", "0");
    expect_value(db,
                 "SELECT count(*) FROM pg_stats WHERE tablename = 'telemetry_' ||"
                 " to_char(current_date - 1, 'YYYYMMDD') AND attname = 'value'",
                 "1");
    expect_value(db,
                 "SELECT count(*) FROM pg_stats WHERE tablename = 'telemetry_' ||"
                 " to_char(current_date, 'YYYYMMDD')",
                 "0");
    /* the command line does the same */
    char bin[1024], *out = NULL, *err = NULL;
    snprintf(bin, sizeof bin, "%s/anm", anm_test_bin_dir());
    const char *argv[] = {bin, "db", "partitions", "--days", "1", "--analyze", "--conninfo", conninfo, NULL};
    cr_assert_eq(anm_test_run_args(argv, &out, &err), 0, "%s", err);
    cr_expect(strstr(out, "finished telemetry days analyzed: 0") != NULL, "%s", out);
    free(out);
    free(err);
    anm_db_destroy(&db);
}

Test(db, registry_load_upserts_by_id)
{
    char conninfo[1024], zone_file[1024], anm[1024];
    anm_db *db = fresh_db(conninfo, sizeof conninfo);
    migrate_ok(db);
    anm_test_source_path(zone_file, sizeof zone_file, "data/zones/feeder33.json");
    snprintf(anm, sizeof anm, "%s/anm", anm_test_bin_dir());

    /* the reference: the zone file as the zone module reads it */
    char *case_path = NULL;
    anm_error_detail err;
    cr_assert_eq(anm_zone_file_case_path(zone_file, &case_path, &err), ANM_OK, "%s", err.message);
    anm_case *network = NULL;
    anm_zone_set *set = NULL;
    cr_assert_eq(anm_case_load(case_path, &network, &err), ANM_OK, "%s", err.message);
    cr_assert_eq(anm_zone_set_load(zone_file, network, &set, &err), ANM_OK, "%s", err.message);
    const anm_zone *zone = &set->zones[0];

    char *out = NULL, *errs = NULL;
    const char *const argv[] = {anm, "db", "load", zone_file, "--conninfo", conninfo, NULL};
    cr_assert_eq(anm_test_run_args(argv, &out, &errs), 0, "%s", errs);
    char expected[1400];
    snprintf(expected, sizeof expected, "loaded %s: 1 zone, %zu monitored elements, %zu DERs, %zu signals\n",
             zone_file, zone->n_monitored, zone->n_ders, zone->n_signals);
    cr_expect_str_eq(out, expected);
    free(out);
    free(errs);
    char *keys_before = query_value(db, "SELECT string_agg(signal_id || ':' || signal_key, ',' ORDER BY signal_id)"
                                        " FROM signals");

    for (size_t i = 0; i < zone->n_ders; i++) {
        const anm_der *d = &zone->ders[i];
        const char *params[] = {d->id};
        anm_db_result *r = NULL;
        cr_assert_eq(anm_db_exec(db, "SELECT zone_id, bus, capacity_mw, lifo_position, technology FROM ders"
                                     " WHERE der_id = $1",
                                 1, params, &r, NULL),
                     ANM_OK);
        cr_assert_eq(anm_db_result_rows(r), 1, "der %s", d->id);
        cr_expect_str_eq(anm_db_result_value(r, 0, 0), zone->id);
        cr_expect_eq(strtol(anm_db_result_value(r, 0, 1), NULL, 10), d->bus);
        cr_expect_eq(strtod(anm_db_result_value(r, 0, 2), NULL), d->capacity_mw); /* float8 round-trips */
        cr_expect_eq(strtol(anm_db_result_value(r, 0, 3), NULL, 10), d->lifo_position);
        cr_expect_str_eq(anm_db_result_value(r, 0, 4), anm_technology_name(d->technology));
        anm_db_result_destroy(&r);
    }

    /* a changed capacity is updated in place; signal keys stay */
    cr_assert_eq(anm_db_exec(db, "UPDATE ders SET capacity_mw = 999", 0, NULL, NULL, NULL), ANM_OK);
    anm_db_registry_counts counts;
    cr_assert_eq(anm_db_registry_load(db, set, zone_file, case_path, &counts, &err), ANM_OK, "%s", err.message);
    cr_expect_eq(counts.ders, zone->n_ders);
    expect_value(db, "SELECT count(*) FROM ders WHERE capacity_mw = 999", "0");
    char *keys_after = query_value(db, "SELECT string_agg(signal_id || ':' || signal_key, ',' ORDER BY signal_id)"
                                       " FROM signals");
    cr_expect_str_eq(keys_after, keys_before);

    /* a DER id owned by another zone is refused with its key path, and nothing is stored */
    cr_assert_eq(anm_db_exec(db,
                             "INSERT INTO zones VALUES ('other', 'o', 'c', 'c', 'z', 'lifo', 'corrective', false, '{}');"
                             "UPDATE ders SET zone_id = 'other' WHERE der_id = $1",
                             1, (const char *const[]){zone->ders[0].id}, NULL, NULL),
                 ANM_EDB); /* two statements are refused with parameters */
    cr_assert_eq(anm_db_exec(db, "INSERT INTO zones VALUES ('other', 'o', 'c', 'c', 'z', 'lifo', 'corrective',"
                                 " false, '{}')",
                             0, NULL, NULL, NULL),
                 ANM_OK);
    cr_assert_eq(anm_db_exec(db, "UPDATE ders SET zone_id = 'other' WHERE der_id = $1", 1,
                             (const char *const[]){zone->ders[0].id}, NULL, NULL),
                 ANM_OK);
    cr_expect_eq(anm_db_registry_load(db, set, zone_file, case_path, &counts, &err), ANM_EDUP);
    cr_expect_str_eq(err.path, "zones[0].ders[0].id");
    char message[256];
    snprintf(message, sizeof message, "der \"%s\" already belongs to another zone", zone->ders[0].id);
    cr_expect_str_eq(err.message, message);

    free(keys_before);
    free(keys_after);
    anm_zone_set_destroy(&set);
    anm_case_destroy(&network);
    free(case_path);
    anm_db_destroy(&db);
}

Test(db, durable_settings)
{
    char conninfo[1024];
    anm_db *db = fresh_db(conninfo, sizeof conninfo);
    expect_value(db, "SHOW fsync", "on");
    expect_value(db, "SHOW synchronous_commit", "on");
    expect_value(db, "SHOW full_page_writes", "on");
    expect_value(db, "SHOW TimeZone", "UTC");
    anm_db_destroy(&db);
}

Test(db, reconnects_after_the_server_restarts)
{
    anm_pg_cluster *cluster = NULL;
    cr_assert_eq(anm_pg_cluster_start(&cluster), 0);
    anm_db_options options = {.backoff_initial_ms = 10, .backoff_max_ms = 40, .max_attempts = 3};
    anm_db *db = NULL;
    cr_assert_eq(anm_db_connect(anm_pg_cluster_conninfo(cluster), &options, &db), ANM_OK, "%s",
                 anm_db_error_message(db));
    expect_value(db, "SELECT 40 + 2", "42");

    cr_assert_eq(anm_pg_cluster_stop(cluster), 0);
    cr_expect_eq(anm_db_exec(db, "SELECT 1", 0, NULL, NULL, NULL), ANM_EAGAIN);
    cr_expect_eq(anm_db_is_connected(db), 0);
    /* server still down: the bounded back-off gives up */
    cr_expect_eq(anm_db_reconnect(db), ANM_EAGAIN);
    cr_expect_not_null(strstr(anm_db_error_message(db), "No such file or directory"), "%s",
                       anm_db_error_message(db));

    cr_assert_eq(anm_pg_cluster_restart(cluster), 0);
    cr_assert_eq(anm_db_reconnect(db), ANM_OK, "%s", anm_db_error_message(db));
    expect_value(db, "SELECT 40 + 2", "42");
    anm_db_destroy(&db);
    anm_pg_cluster_destroy(&cluster);
    cr_expect_null(cluster);
}

Test(db, conninfo_env_overrides_config)
{
    setenv(ANM_DB_CONNINFO_ENV, "host=/x dbname=y", 1);
    cr_expect_str_eq(anm_db_conninfo("host=/config"), "host=/x dbname=y");
    setenv(ANM_DB_CONNINFO_ENV, "", 1);
    cr_expect_str_eq(anm_db_conninfo("host=/config"), "host=/config");
    unsetenv(ANM_DB_CONNINFO_ENV);
    cr_expect_null(anm_db_conninfo(NULL));
}
