/* test_config.c: the table-driven config loader, every error path with its exact message. */
#include "engine/config.h"
#include "engine/log.h"
#include "testlib.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a sample component: every entry type, a nested section, an array of sections ---- */

typedef struct route_config {
    char *name;
    long port;
    long weight_min;
    long weight_max;
} route_config;

typedef struct database_config {
    char *url;
    char *password;
    long pool_size;
    double timeout_s;
} database_config;

typedef struct service_config {
    bool enabled;
    long workers;
    double ratio;
    char *name;
    int mode;
    char *bus;
    anm_log_level log_level;
    anm_config_strings zones;
    database_config database;
    anm_config_array routes;
    char *api_token;
    int untouched; /* not in the table: the loader must leave it alone */
} service_config;

static int route_check(const void *section, char *message, size_t size)
{
    const route_config *route = section;
    if (route->weight_min > route->weight_max) {
        snprintf(message, size, "weight_min %ld is above weight_max %ld", route->weight_min,
                 route->weight_max);
        return 1;
    }
    return 0;
}

static const anm_config_entry route_entries[] = {
    {.name = "name",
     .type = ANM_CONFIG_STRING,
     .flags = ANM_CONFIG_REQUIRED,
     .min_length = 1,
     .max_length = 16,
     .offset = ANM_CONFIG_OFFSET(route_config, name, char *)},
    {.name = "port",
     .type = ANM_CONFIG_INT,
     .flags = ANM_CONFIG_REQUIRED,
     .int_min = 1,
     .int_max = 65535,
     .offset = ANM_CONFIG_OFFSET(route_config, port, long)},
    {.name = "weight_min",
     .type = ANM_CONFIG_INT,
     .default_int = 0,
     .offset = ANM_CONFIG_OFFSET(route_config, weight_min, long)},
    {.name = "weight_max",
     .type = ANM_CONFIG_INT,
     .default_int = 10,
     .offset = ANM_CONFIG_OFFSET(route_config, weight_max, long)},
    ANM_CONFIG_END};
static const anm_config_table route_table = {route_entries, sizeof(route_config), route_check};

static const anm_config_entry database_entries[] = {
    {.name = "url",
     .type = ANM_CONFIG_STRING,
     .default_string = "postgresql:///anm",
     .max_length = 64,
     .offset = ANM_CONFIG_OFFSET(database_config, url, char *)},
    {.name = "password",
     .type = ANM_CONFIG_SECRET,
     .env = "ANM_TEST_DB_PASSWORD",
     .max_length = 12,
     .offset = ANM_CONFIG_OFFSET(database_config, password, char *)},
    {.name = "pool_size",
     .type = ANM_CONFIG_INT,
     .int_min = 1,
     .int_max = 64,
     .default_int = 4,
     .offset = ANM_CONFIG_OFFSET(database_config, pool_size, long)},
    {.name = "timeout_s",
     .type = ANM_CONFIG_DOUBLE,
     .min = 0.5,
     .max = 60.0,
     .default_double = 5.0,
     .offset = ANM_CONFIG_OFFSET(database_config, timeout_s, double)},
    ANM_CONFIG_END};
static const anm_config_table database_table = {database_entries, sizeof(database_config), NULL};

static const char *const mode_names[] = {"lifo", "pro_rata", "minimum_mw", NULL};
static const char *const default_zones[] = {"feeder33", "mesh30", NULL};

static const anm_config_entry service_entries[] = {
    {.name = "enabled",
     .type = ANM_CONFIG_BOOL,
     .default_bool = true,
     .offset = ANM_CONFIG_OFFSET(service_config, enabled, bool)},
    {.name = "workers",
     .type = ANM_CONFIG_INT,
     .int_min = 1,
     .int_max = 32,
     .default_int = 2,
     .offset = ANM_CONFIG_OFFSET(service_config, workers, long)},
    {.name = "ratio",
     .type = ANM_CONFIG_DOUBLE,
     .min = 0.0,
     .max = 1.0,
     .default_double = 0.25,
     .offset = ANM_CONFIG_OFFSET(service_config, ratio, double)},
    {.name = "name",
     .type = ANM_CONFIG_STRING,
     .default_string = "anm",
     .min_length = 1,
     .max_length = 8,
     .offset = ANM_CONFIG_OFFSET(service_config, name, char *)},
    {.name = "mode",
     .type = ANM_CONFIG_ENUM,
     .names = mode_names,
     .default_string = "pro_rata",
     .offset = ANM_CONFIG_OFFSET(service_config, mode, int)},
    {.name = "bus",
     .type = ANM_CONFIG_ENDPOINT,
     .default_string = "tcp://127.0.0.1:5555",
     .offset = ANM_CONFIG_OFFSET(service_config, bus, char *)},
    {.name = "log_level",
     .type = ANM_CONFIG_LOG_LEVEL,
     .default_string = "warn",
     .offset = ANM_CONFIG_OFFSET(service_config, log_level, anm_log_level)},
    {.name = "zones",
     .type = ANM_CONFIG_STRING_LIST,
     .default_strings = default_zones,
     .max_items = 3,
     .min_length = 1,
     .max_length = 10,
     .offset = ANM_CONFIG_OFFSET(service_config, zones, anm_config_strings)},
    {.name = "database",
     .type = ANM_CONFIG_SECTION,
     .section = &database_table,
     .offset = ANM_CONFIG_OFFSET(service_config, database, database_config)},
    {.name = "routes",
     .type = ANM_CONFIG_SECTION_ARRAY,
     .section = &route_table,
     .max_items = 4,
     .offset = ANM_CONFIG_OFFSET(service_config, routes, anm_config_array)},
    {.name = "api_token",
     .type = ANM_CONFIG_SECRET,
     .offset = ANM_CONFIG_OFFSET(service_config, api_token, char *)},
    ANM_CONFIG_END};
static const anm_config_table service_table = {service_entries, sizeof(service_config), NULL};

/* Loads text labelled "svc.json"; returns the code, fills *cfg and *d. */
static int load(const char *text, service_config *cfg, anm_error_detail *d)
{
    return anm_config_load_string(&service_table, text, strlen(text), "svc.json", cfg, d);
}

/* Expects text to fail with code at path with message, and leave cfg's fields zero. */
static void expect_error(const char *text, int code, const char *path, const char *message)
{
    service_config cfg;
    memset(&cfg, 0xA5, sizeof cfg); /* garbage in: the loader must not free it */
    anm_error_detail d;
    int rc = load(text, &cfg, &d);
    cr_expect_eq(rc, code, "input %s: rc %d (%s)", text, rc, d.message);
    cr_expect_str_eq(d.file, "svc.json");
    cr_expect_str_eq(d.path, path, "input %s", text);
    cr_expect_str_eq(d.message, message, "input %s", text);
    cr_expect_null(cfg.name, "fields are cleared after a failure");
    cr_expect_null(cfg.routes.items);
    cr_expect_eq(cfg.zones.count, 0);
    anm_config_free(&service_table, &cfg);
}

/* ---- defaults and a full load ------------------------------------------- */

Test(config, empty_object_gives_every_default)
{
    service_config cfg;
    anm_error_detail d;
    cr_assert_eq(load("{}", &cfg, &d), ANM_OK, "%s", d.message);
    cr_expect_eq(cfg.enabled, true);
    cr_expect_eq(cfg.workers, 2);
    cr_expect_eq(cfg.ratio, 0.25);
    cr_expect_str_eq(cfg.name, "anm");
    cr_expect_eq(cfg.mode, 1, "pro_rata is index 1");
    cr_expect_str_eq(cfg.bus, "tcp://127.0.0.1:5555");
    cr_expect_eq(cfg.log_level, ANM_LOG_WARN);
    cr_assert_eq(cfg.zones.count, 2);
    cr_expect_str_eq(cfg.zones.items[0], "feeder33");
    cr_expect_str_eq(cfg.zones.items[1], "mesh30");
    cr_expect_str_eq(cfg.database.url, "postgresql:///anm");
    cr_expect_null(cfg.database.password);
    cr_expect_eq(cfg.database.pool_size, 4);
    cr_expect_eq(cfg.database.timeout_s, 5.0);
    cr_expect_eq(cfg.routes.count, 0);
    cr_expect_null(cfg.routes.items);
    cr_expect_null(cfg.api_token);
    anm_config_free(&service_table, &cfg);
}

Test(config, no_file_gives_defaults)
{
    service_config cfg;
    anm_error_detail d;
    cr_assert_eq(anm_config_load_file(&service_table, NULL, &cfg, &d), ANM_OK, "%s", d.message);
    cr_expect_eq(cfg.database.pool_size, 4);
    cr_expect_str_eq(cfg.name, "anm");
    anm_config_free(&service_table, &cfg);
}

static const char full_config[] =
    "{\n"
    "  \"enabled\": false,\n"
    "  \"workers\": 32,\n"
    "  \"ratio\": 1,\n"
    "  \"name\": \"ingest\",\n"
    "  \"mode\": \"minimum_mw\",\n"
    "  \"bus\": \"[::1]:6000\",\n"
    "  \"log_level\": \"debug\",\n"
    "  \"zones\": [\"a\", \"bench118\", \"c\"],\n"
    "  \"database\": {\"url\": \"postgresql://db/anm\", \"password\": \"hunter2\",\n"
    "                \"pool_size\": 1, \"timeout_s\": 0.5},\n"
    "  \"routes\": [{\"name\": \"north\", \"port\": 1},\n"
    "             {\"name\": \"south\", \"port\": 65535, \"weight_min\": 3, \"weight_max\": 3}],\n"
    "  \"api_token\": \"t0k3n\"\n"
    "}\n";

Test(config, every_type_loads_including_bounds_edges)
{
    service_config cfg;
    cfg.untouched = 77;
    anm_error_detail d;
    cr_assert_eq(load(full_config, &cfg, &d), ANM_OK, "%s: %s", d.path, d.message);
    cr_expect_eq(cfg.enabled, false);
    cr_expect_eq(cfg.workers, 32, "the maximum is inclusive");
    cr_expect_eq(cfg.ratio, 1.0, "an integer is accepted for a double");
    cr_expect_str_eq(cfg.name, "ingest");
    cr_expect_eq(cfg.mode, 2);
    cr_expect_str_eq(cfg.bus, "[::1]:6000");
    cr_expect_eq(cfg.log_level, ANM_LOG_DEBUG);
    cr_assert_eq(cfg.zones.count, 3);
    cr_expect_str_eq(cfg.zones.items[1], "bench118");
    cr_expect_str_eq(cfg.database.url, "postgresql://db/anm");
    cr_expect_str_eq(cfg.database.password, "hunter2");
    cr_expect_eq(cfg.database.pool_size, 1, "the minimum is inclusive");
    cr_expect_eq(cfg.database.timeout_s, 0.5);
    cr_assert_eq(cfg.routes.count, 2);
    const route_config *south = ANM_CONFIG_ITEM(cfg.routes, route_config, 1);
    cr_expect_str_eq(ANM_CONFIG_ITEM(cfg.routes, route_config, 0)->name, "north");
    cr_expect_eq(ANM_CONFIG_ITEM(cfg.routes, route_config, 0)->weight_max, 10,
                 "default in an array item");
    cr_expect_str_eq(south->name, "south");
    cr_expect_eq(south->port, 65535);
    cr_expect_eq(south->weight_min, 3);
    cr_expect_str_eq(cfg.api_token, "t0k3n");
    cr_expect_eq(cfg.untouched, 77, "fields outside the table are left alone");
    anm_config_free(&service_table, &cfg);
    cr_expect_null(cfg.name);
    cr_expect_null(cfg.database.password);
    cr_expect_null(cfg.routes.items);
    cr_expect_eq(cfg.routes.count, 0);
    cr_expect_eq(cfg.zones.count, 0);
    anm_config_free(&service_table, &cfg); /* idempotent */
    anm_config_free(&service_table, NULL);
}

Test(config, null_unsets_an_optional_string_and_is_refused_for_a_required_one)
{
    service_config cfg;
    anm_error_detail d;
    cr_assert_eq(load("{\"name\": null, \"database\": {\"url\": null}}", &cfg, &d), ANM_OK, "%s",
                 d.message);
    cr_expect_null(cfg.name, "null overrides the default");
    cr_expect_null(cfg.database.url);
    anm_config_free(&service_table, &cfg);
    expect_error("{\"routes\": [{\"name\": null, \"port\": 1}]}", ANM_ECONFIG, "routes[0].name",
                 "expected a string, got null");
}

Test(config, log_level_entry_drives_the_logger)
{
    service_config cfg;
    anm_error_detail d;
    cr_assert_eq(load("{\"log_level\": \"error\"}", &cfg, &d), ANM_OK);
    anm_log_set_level(cfg.log_level); /* how every component applies its "log_level" */
    cr_expect_eq(anm_log_get_level(), ANM_LOG_ERROR);
    anm_config_free(&service_table, &cfg);
}

/* ---- syntax errors: file, line, column ---------------------------------- */

Test(config, syntax_error_names_line_and_column)
{
    service_config cfg;
    anm_error_detail d;
    int rc = load("{\n  \"workers\": 4,\n  \"name\": \n}", &cfg, &d);
    cr_expect_eq(rc, ANM_EPARSE);
    cr_expect_str_eq(d.file, "svc.json");
    cr_expect_eq(d.line, 4);
    cr_expect_eq(d.column, 1);
    cr_expect_str_eq(d.path, "");
    cr_expect_str_eq(d.message, "unexpected token near '}'");
    char line[600];
    anm_error_detail_format(&d, line, sizeof line);
    cr_expect_str_eq(line, "svc.json:4:1: unexpected token near '}'");
}

Test(config, duplicate_key_is_a_syntax_error)
{
    service_config cfg;
    anm_error_detail d;
    cr_expect_eq(load("{\"workers\": 1,\n \"workers\": 2}", &cfg, &d), ANM_EPARSE);
    cr_expect_eq(d.line, 2);
    cr_expect_eq(d.column, 10);
    cr_expect_str_eq(d.message, "duplicate object key near '\"workers\"'");
}

Test(config, trailing_garbage_and_empty_input_are_syntax_errors)
{
    service_config cfg;
    anm_error_detail d;
    cr_expect_eq(load("{} x", &cfg, &d), ANM_EPARSE);
    cr_expect_str_eq(d.message, "end of file expected near 'x'");
    cr_expect_eq(d.line, 1);
    cr_expect_eq(d.column, 4);
    cr_expect_eq(load("", &cfg, &d), ANM_EPARSE);
    cr_expect_str_eq(d.message, "'[' or '{' expected near end of file");
}

Test(config, top_level_must_be_an_object)
{
    expect_error("[1, 2]", ANM_ECONFIG, "",
                 "expected a JSON object at the top level, got an array");
}

Test(config, file_errors_name_the_file)
{
    char *dir = anm_test_tmpdir("anm-config");
    cr_assert_not_null(dir);
    char path[600];
    snprintf(path, sizeof path, "%s/missing.json", dir);
    service_config cfg;
    anm_error_detail d;
    cr_expect_eq(anm_config_load_file(&service_table, path, &cfg, &d), ANM_EIO);
    cr_expect_str_eq(d.file, path);
    cr_expect_str_eq(d.message, "could not open config file: No such file or directory");

    snprintf(path, sizeof path, "%s/bad.json", dir);
    cr_assert_eq(anm_test_write_file(path, "{\n\n  \"workers\": 4,,\n}\n"), 0);
    cr_expect_eq(anm_config_load_file(&service_table, path, &cfg, &d), ANM_EPARSE);
    cr_expect_str_eq(d.file, path);
    cr_expect_eq(d.line, 3);
    cr_expect_eq(d.column, 16);
    cr_expect_str_eq(d.message, "string or '}' expected near ','");

    snprintf(path, sizeof path, "%s/wrong.json", dir);
    cr_assert_eq(anm_test_write_file(path, "{\"database\": {\"pool_size\": 0}}\n"), 0);
    cr_expect_eq(anm_config_load_file(&service_table, path, &cfg, &d), ANM_ECONFIG);
    char line[900], expected[900];
    anm_error_detail_format(&d, line, sizeof line);
    snprintf(expected, sizeof expected, "%s: database.pool_size: value 0 is below the minimum 1",
             path);
    cr_expect_str_eq(line, expected);

    snprintf(path, sizeof path, "%s/good.json", dir);
    cr_assert_eq(anm_test_write_file(path, full_config), 0);
    cr_expect_eq(anm_config_load_file(&service_table, path, &cfg, &d), ANM_OK);
    cr_expect_eq(cfg.workers, 32);
    anm_config_free(&service_table, &cfg);
    anm_test_rmtree(dir);
    free(dir);
}

/* ---- schema errors: key paths and exact messages ------------------------ */

Test(config, unknown_keys_name_their_path)
{
    expect_error("{\"wrokers\": 3}", ANM_ECONFIG, "wrokers",
                 "unknown key (did you mean \"workers\"?)");
    expect_error("{\"colour\": \"blue\"}", ANM_ECONFIG, "colour", "unknown key");
    expect_error("{\"database\": {\"pool_sise\": 3}}", ANM_ECONFIG, "database.pool_sise",
                 "unknown key (did you mean \"pool_size\"?)");
    expect_error("{\"routes\": [{\"name\": \"a\", \"port\": 1}, {\"name\": \"b\", \"port\": 2},"
                 " {\"name\": \"c\", \"prot\": 3}]}",
                 ANM_ECONFIG, "routes[2].prot", "unknown key (did you mean \"port\"?)");
    /* "_file" is only reserved next to a secret */
    expect_error("{\"name_file\": \"x\"}", ANM_ECONFIG, "name_file", "unknown key");
}

Test(config, the_first_unknown_key_in_file_order_is_reported)
{
    expect_error("{\"workers\": 0, \"zzz\": 1, \"aaa\": 2}", ANM_ECONFIG, "zzz", "unknown key");
}

Test(config, wrong_types_name_expected_and_found)
{
    static const struct {
        const char *text, *path, *message;
    } cases[] = {
        {"{\"enabled\": \"yes\"}", "enabled", "expected true or false, got a string"},
        {"{\"enabled\": 1}", "enabled", "expected true or false, got an integer"},
        {"{\"workers\": 2.5}", "workers", "expected an integer, got a real number"},
        {"{\"workers\": \"2\"}", "workers", "expected an integer, got a string"},
        {"{\"ratio\": true}", "ratio", "expected a number, got a boolean"},
        {"{\"name\": 7}", "name", "expected a string, got an integer"},
        {"{\"mode\": 0}", "mode", "expected a string, got an integer"},
        {"{\"bus\": {}}", "bus", "expected a string, got an object"},
        {"{\"log_level\": 3}", "log_level", "expected a string, got an integer"},
        {"{\"zones\": \"a\"}", "zones", "expected an array of strings, got a string"},
        {"{\"zones\": [\"a\", 2]}", "zones[1]", "expected a string, got an integer"},
        {"{\"database\": []}", "database", "expected an object, got an array"},
        {"{\"database\": {\"password\": 42}}", "database.password",
         "expected a string, got an integer"},
        {"{\"routes\": {}}", "routes", "expected an array of objects, got an object"},
        {"{\"routes\": [{\"name\": \"a\", \"port\": 1}, 5]}", "routes[1]",
         "expected an object, got an integer"},
        {"{\"routes\": [{\"name\": \"a\", \"port\": \"80\"}]}", "routes[0].port",
         "expected an integer, got a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_error(cases[i].text, ANM_ECONFIG, cases[i].path, cases[i].message);
}

Test(config, missing_required_keys)
{
    expect_error("{\"routes\": [{\"name\": \"a\", \"port\": 1}, {\"name\": \"b\"}]}", ANM_ECONFIG,
                 "routes[1].port", "missing required key");
    expect_error("{\"routes\": [{}]}", ANM_ECONFIG, "routes[0].name", "missing required key");
}

Test(config, out_of_bounds_values)
{
    static const struct {
        const char *text, *path, *message;
    } cases[] = {
        {"{\"workers\": 0}", "workers", "value 0 is below the minimum 1"},
        {"{\"workers\": 33}", "workers", "value 33 is above the maximum 32"},
        {"{\"workers\": -9223372036854775808}", "workers",
         "value -9223372036854775808 is below the minimum 1"},
        {"{\"ratio\": -0.001}", "ratio", "value -0.001 is below the minimum 0"},
        {"{\"ratio\": 1.5}", "ratio", "value 1.5 is above the maximum 1"},
        {"{\"database\": {\"pool_size\": 65}}", "database.pool_size",
         "value 65 is above the maximum 64"},
        {"{\"database\": {\"timeout_s\": 0.25}}", "database.timeout_s",
         "value 0.25 is below the minimum 0.5"},
        {"{\"name\": \"\"}", "name", "must not be empty"},
        {"{\"name\": \"ninechars\"}", "name", "too long (9 bytes, at most 8)"},
        {"{\"database\": {\"url\": "
         "\"postgresql://a-very-long-host-name.example.org:5432/anm?sslmode=verify\"}}",
         "database.url", "too long (70 bytes, at most 64)"},
        {"{\"zones\": [\"a\", \"b\", \"c\", \"d\"]}", "zones", "too many items (4, at most 3)"},
        {"{\"zones\": [\"a\", \"\"]}", "zones[1]", "must not be empty"},
        {"{\"zones\": [\"abcdefghijk\"]}", "zones[0]", "too long (11 bytes, at most 10)"},
        {"{\"routes\": [{\"name\": \"a\", \"port\": 0}]}", "routes[0].port",
         "value 0 is below the minimum 1"},
        {"{\"routes\": [{\"name\": \"a\", \"port\": 1}, {\"name\": \"b\", \"port\": 2},"
         " {\"name\": \"c\", \"port\": 3}, {\"name\": \"d\", \"port\": 4}, {\"name\": \"e\", "
         "\"port\": 5}]}",
         "routes", "too many items (5, at most 4)"},
        {"{\"mode\": \"fifo\"}", "mode",
         "unknown value \"fifo\" (expected one of: lifo, pro_rata, minimum_mw)"},
        {"{\"mode\": \"LIFO\"}", "mode",
         "unknown value \"LIFO\" (expected one of: lifo, pro_rata, minimum_mw)"},
        {"{\"log_level\": \"verbose\"}", "log_level",
         "unknown log level \"verbose\" (expected one of: debug, info, warn, error, off)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_error(cases[i].text, ANM_ECONFIG, cases[i].path, cases[i].message);
}

Test(config, endpoints_are_validated)
{
    static const struct {
        const char *value, *message;
    } bad[] = {
        {"localhost",
         "invalid endpoint \"localhost\": expected \"host:port\" or \"scheme://address\""},
        {":5555", "invalid endpoint \":5555\": expected \"host:port\" or \"scheme://address\""},
        {"db:0", "invalid endpoint \"db:0\": port must be an integer from 1 to 65535"},
        {"db:65536", "invalid endpoint \"db:65536\": port must be an integer from 1 to 65535"},
        {"db:+80", "invalid endpoint \"db:+80\": port must be an integer from 1 to 65535"},
        {"db:http", "invalid endpoint \"db:http\": port must be an integer from 1 to 65535"},
        {"::1:80",
         "invalid endpoint \"::1:80\": an IPv6 address needs brackets, as in \"[::1]:port\""},
        {"[::1:80", "invalid endpoint \"[::1:80\": expected \"[ipv6]:port\""},
        {"tcp://", "invalid endpoint \"tcp://\": nothing after \"://\""},
        {"1tcp://x:1", "invalid endpoint \"1tcp://x:1\": invalid scheme"},
        {"tcp://host :1",
         "invalid endpoint \"tcp://host :1\": contains whitespace or a control character"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[200];
        snprintf(text, sizeof text, "{\"bus\": \"%s\"}", bad[i].value);
        expect_error(text, ANM_ECONFIG, "bus", bad[i].message);
    }
    static const char *const good[] = {"tcp://*:5555",        "ipc:///run/anm/bus", "inproc://bus",
                                       "db.example.org:5432", "[2001:db8::1]:104",  "https://h/p"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char text[200];
        snprintf(text, sizeof text, "{\"bus\": \"%s\"}", good[i]);
        service_config cfg;
        anm_error_detail d;
        cr_expect_eq(load(text, &cfg, &d), ANM_OK, "%s: %s", good[i], d.message);
        cr_expect_str_eq(cfg.bus, good[i]);
        anm_config_free(&service_table, &cfg);
    }
}

Test(config, section_check_reports_the_section_path)
{
    expect_error("{\"routes\": [{\"name\": \"a\", \"port\": 1},"
                 " {\"name\": \"b\", \"port\": 2, \"weight_min\": 5, \"weight_max\": 4}]}",
                 ANM_ECONFIG, "routes[1]", "weight_min 5 is above weight_max 4");
}

Test(config, in_memory_input_without_a_name)
{
    service_config cfg;
    anm_error_detail d;
    const char *text = "{\"workers\": 99}";
    cr_expect_eq(anm_config_load_string(&service_table, text, strlen(text), NULL, &cfg, &d),
                 ANM_ECONFIG);
    char line[600];
    anm_error_detail_format(&d, line, sizeof line);
    cr_expect_str_eq(line, "workers: value 99 is above the maximum 32");
}

/* ---- secrets ------------------------------------------------------------- */

Test(config, environment_overrides_a_secret)
{
    cr_assert_eq(setenv("ANM_TEST_DB_PASSWORD", "from-env", 1), 0);
    service_config cfg;
    anm_error_detail d;
    cr_assert_eq(load("{\"database\": {\"password\": \"from-file\"}}", &cfg, &d), ANM_OK, "%s",
                 d.message);
    cr_expect_str_eq(cfg.database.password, "from-env");
    anm_config_free(&service_table, &cfg);
    /* and supplies it when the file has none */
    cr_assert_eq(load("{}", &cfg, &d), ANM_OK);
    cr_expect_str_eq(cfg.database.password, "from-env");
    anm_config_free(&service_table, &cfg);
    /* an empty variable is a value, not "unset" */
    cr_assert_eq(setenv("ANM_TEST_DB_PASSWORD", "", 1), 0);
    cr_assert_eq(load("{\"database\": {\"password\": \"from-file\"}}", &cfg, &d), ANM_OK);
    cr_expect_str_eq(cfg.database.password, "");
    anm_config_free(&service_table, &cfg);
}

Test(config, environment_secret_is_bounds_checked_without_echoing_it)
{
    cr_assert_eq(setenv("ANM_TEST_DB_PASSWORD", "much-too-long-secret", 1), 0);
    expect_error("{}", ANM_ECONFIG, "database.password",
                 "too long (20 bytes, at most 12) in ANM_TEST_DB_PASSWORD");
}

Test(config, json_value_is_type_checked_even_when_the_environment_overrides)
{
    cr_assert_eq(setenv("ANM_TEST_DB_PASSWORD", "ok", 1), 0);
    expect_error("{\"database\": {\"password\": 5}}", ANM_ECONFIG, "database.password",
                 "expected a string, got an integer");
}

Test(config, secret_from_a_file_relative_to_the_config)
{
    char *dir = anm_test_tmpdir("anm-config");
    cr_assert_not_null(dir);
    char path[600], secret[600];
    snprintf(secret, sizeof secret, "%s/db.secret", dir);
    cr_assert_eq(anm_test_write_file(secret, "s3cret\n"), 0);
    snprintf(path, sizeof path, "%s/svc.json", dir);
    cr_assert_eq(anm_test_write_file(path, "{\"database\": {\"password_file\": \"db.secret\"}}"),
                 0);
    service_config cfg;
    anm_error_detail d;
    cr_assert_eq(anm_config_load_file(&service_table, path, &cfg, &d), ANM_OK, "%s", d.message);
    cr_expect_str_eq(cfg.database.password, "s3cret", "one trailing newline is dropped");
    anm_config_free(&service_table, &cfg);

    /* the environment still wins over the file */
    cr_assert_eq(setenv("ANM_TEST_DB_PASSWORD", "env", 1), 0);
    cr_assert_eq(anm_config_load_file(&service_table, path, &cfg, &d), ANM_OK);
    cr_expect_str_eq(cfg.database.password, "env");
    anm_config_free(&service_table, &cfg);
    cr_assert_eq(unsetenv("ANM_TEST_DB_PASSWORD"), 0);

    /* <VAR>_FILE names a file from the environment */
    cr_assert_eq(anm_test_write_file(secret, "other\r\n"), 0);
    cr_assert_eq(setenv("ANM_TEST_DB_PASSWORD_FILE", secret, 1), 0);
    cr_assert_eq(load("{\"database\": {\"password\": \"inline\"}}", &cfg, &d), ANM_OK, "%s",
                 d.message);
    cr_expect_str_eq(cfg.database.password, "other");
    anm_config_free(&service_table, &cfg);
    anm_test_rmtree(dir);
    free(dir);
}

Test(config, secret_file_errors)
{
    expect_error("{\"database\": {\"password\": \"a\", \"password_file\": \"b\"}}", ANM_ECONFIG,
                 "database.password", "set either \"password\" or \"password_file\", not both");
    expect_error("{\"database\": {\"password_file\": 3}}", ANM_ECONFIG, "database.password_file",
                 "expected a string, got an integer");
    expect_error(
        "{\"database\": {\"password_file\": \"/nonexistent/anm/db.secret\"}}", ANM_ECONFIG,
        "database.password_file",
        "could not read secret file \"/nonexistent/anm/db.secret\": No such file or directory");
    cr_assert_eq(setenv("ANM_TEST_DB_PASSWORD_FILE", "/nonexistent/anm/env.secret", 1), 0);
    expect_error("{}", ANM_ECONFIG, "database.password",
                 "could not read secret file \"/nonexistent/anm/env.secret\" named by "
                 "ANM_TEST_DB_PASSWORD_FILE: No such file or directory");
}

Test(config, secret_file_is_bounds_checked)
{
    char *dir = anm_test_tmpdir("anm-config");
    cr_assert_not_null(dir);
    char secret[600], text[900], message[900];
    snprintf(secret, sizeof secret, "%s/long.secret", dir);
    cr_assert_eq(anm_test_write_file(secret, "0123456789abcdef\n"), 0);
    snprintf(text, sizeof text, "{\"database\": {\"password_file\": \"%s\"}}", secret);
    snprintf(message, sizeof message, "too long (16 bytes, at most 12) in secret file \"%s\"",
             secret);
    expect_error(text, ANM_ECONFIG, "database.password_file", message);
    anm_test_rmtree(dir);
    free(dir);
}

typedef struct secret_only {
    char *token;
} secret_only;

static const anm_config_entry secret_only_entries[] = {
    {.name = "token",
     .type = ANM_CONFIG_SECRET,
     .flags = ANM_CONFIG_REQUIRED,
     .env = "ANM_TEST_TOKEN",
     .offset = ANM_CONFIG_OFFSET(secret_only, token, char *)},
    ANM_CONFIG_END};
static const anm_config_table secret_only_table = {secret_only_entries, sizeof(secret_only), NULL};

Test(config, required_secret_may_come_from_the_environment)
{
    secret_only cfg;
    anm_error_detail d;
    cr_expect_eq(anm_config_load_string(&secret_only_table, "{}", 2, "t.json", &cfg, &d),
                 ANM_ECONFIG);
    cr_expect_str_eq(d.path, "token");
    cr_expect_str_eq(d.message, "missing required key (or set ANM_TEST_TOKEN in the environment)");
    cr_assert_eq(setenv("ANM_TEST_TOKEN", "abc", 1), 0);
    cr_assert_eq(anm_config_load_string(&secret_only_table, "{}", 2, "t.json", &cfg, &d), ANM_OK);
    cr_expect_str_eq(cfg.token, "abc");
    anm_config_free(&secret_only_table, &cfg);
}

/* ---- the environment sets secrets only ------------------------------------ */

typedef struct env_abuse {
    char *host;
} env_abuse;

static const anm_config_entry env_abuse_entries[] = {
    {.name = "host",
     .type = ANM_CONFIG_STRING,
     .env = "ANM_TEST_HOST",
     .default_string = "db",
     .offset = ANM_CONFIG_OFFSET(env_abuse, host, char *)},
    ANM_CONFIG_END};
static const anm_config_table env_abuse_table = {env_abuse_entries, sizeof(env_abuse), NULL};

Test(config, a_non_secret_cannot_be_set_from_the_environment)
{
    cr_assert_eq(setenv("ANM_TEST_HOST", "attacker", 1), 0);
    env_abuse cfg = {.host = NULL};
    anm_error_detail d;
    cr_expect_eq(anm_config_load_string(&env_abuse_table, "{}", 2, "t.json", &cfg, &d),
                 ANM_EINTERNAL);
    cr_expect_str_eq(d.path, "host");
    cr_expect_str_eq(d.message, "config table: only secrets may be set from the environment");
    cr_expect_null(cfg.host, "the variable was not read");
}

/* ---- table checks ----------------------------------------------------------- */

typedef struct tiny {
    long n;
    int e;
    char *s;
    double x;
} tiny;

static void expect_table_error(const anm_config_entry *entries, const char *path,
                               const char *message)
{
    anm_config_table table = {entries, sizeof(tiny), NULL};
    anm_error_detail d;
    cr_expect_eq(anm_config_table_check(&table, &d), ANM_EINTERNAL);
    cr_expect_str_eq(d.path, path);
    cr_expect_str_eq(d.message, message);
}

Test(config, broken_tables_are_refused)
{
    static const char *const names[] = {"a", "b", NULL};
    const anm_config_entry default_out_of_bounds[] = {{.name = "n",
                                                       .type = ANM_CONFIG_INT,
                                                       .int_min = 1,
                                                       .int_max = 5,
                                                       .offset = ANM_CONFIG_OFFSET(tiny, n, long)},
                                                      ANM_CONFIG_END};
    expect_table_error(default_out_of_bounds, "n",
                       "config table: default value 0 is below the minimum 1");
    const anm_config_entry duplicate[] = {
        {.name = "n", .type = ANM_CONFIG_INT, .offset = ANM_CONFIG_OFFSET(tiny, n, long)},
        {.name = "n", .type = ANM_CONFIG_DOUBLE, .offset = ANM_CONFIG_OFFSET(tiny, x, double)},
        ANM_CONFIG_END};
    expect_table_error(duplicate, "n", "config table: duplicate key name");
    const anm_config_entry enum_default[] = {{.name = "e",
                                              .type = ANM_CONFIG_ENUM,
                                              .names = names,
                                              .default_string = "c",
                                              .offset = ANM_CONFIG_OFFSET(tiny, e, int)},
                                             ANM_CONFIG_END};
    expect_table_error(enum_default, "e",
                       "config table: optional enum needs a default among its names");
    const anm_config_entry outside[] = {
        {.name = "x", .type = ANM_CONFIG_DOUBLE, .offset = sizeof(tiny)}, ANM_CONFIG_END};
    expect_table_error(outside, "x", "config table: field lies outside the struct");
    const anm_config_entry bad_endpoint[] = {{.name = "s",
                                              .type = ANM_CONFIG_ENDPOINT,
                                              .default_string = "nowhere",
                                              .offset = ANM_CONFIG_OFFSET(tiny, s, char *)},
                                             ANM_CONFIG_END};
    expect_table_error(bad_endpoint, "s",
                       "config table: default invalid endpoint \"nowhere\": expected \"host:port\" "
                       "or \"scheme://address\"");
    anm_error_detail d;
    cr_expect_eq(anm_config_table_check(&service_table, &d), ANM_OK, "%s: %s", d.path, d.message);
}

/* ---- rendering ------------------------------------------------------------- */

Test(config, render_masks_secrets_and_shows_effective_values)
{
    cr_assert_eq(setenv("ANM_TEST_DB_PASSWORD", "env-pass", 1), 0);
    service_config cfg;
    anm_error_detail d;
    cr_assert_eq(load("{\"ratio\": 0.1, \"routes\": [{\"name\": \"n\", \"port\": 80}]}", &cfg, &d),
                 ANM_OK);
    char *text = anm_config_render(&service_table, &cfg);
    cr_assert_not_null(text);
    cr_expect_str_eq(text, "{\n"
                           "  \"enabled\": true,\n"
                           "  \"workers\": 2,\n"
                           "  \"ratio\": 0.1,\n"
                           "  \"name\": \"anm\",\n"
                           "  \"mode\": \"pro_rata\",\n"
                           "  \"bus\": \"tcp://127.0.0.1:5555\",\n"
                           "  \"log_level\": \"warn\",\n"
                           "  \"zones\": [\n"
                           "    \"feeder33\",\n"
                           "    \"mesh30\"\n"
                           "  ],\n"
                           "  \"database\": {\n"
                           "    \"url\": \"postgresql:///anm\",\n"
                           "    \"password\": \"********\",\n"
                           "    \"pool_size\": 4,\n"
                           "    \"timeout_s\": 5.0\n"
                           "  },\n"
                           "  \"routes\": [\n"
                           "    {\n"
                           "      \"name\": \"n\",\n"
                           "      \"port\": 80,\n"
                           "      \"weight_min\": 0,\n"
                           "      \"weight_max\": 10\n"
                           "    }\n"
                           "  ],\n"
                           "  \"api_token\": null\n"
                           "}\n");
    cr_expect_null(strstr(text, "env-pass"), "the secret never appears");
    json_t *shown = anm_config_to_json(&service_table, &cfg, true);
    cr_expect_str_eq(
        json_string_value(json_object_get(json_object_get(shown, "database"), "password")),
        "env-pass");
    json_decref(shown);

    /* the rendered text is itself a valid config giving the same values */
    service_config again;
    cr_assert_eq(unsetenv("ANM_TEST_DB_PASSWORD"), 0);
    cr_assert_eq(load(text, &again, &d), ANM_OK, "%s: %s", d.path, d.message);
    cr_expect_eq(again.ratio, cfg.ratio);
    cr_expect_eq(again.mode, cfg.mode);
    cr_expect_eq(ANM_CONFIG_ITEM(again.routes, route_config, 0)->port, 80);
    anm_config_free(&service_table, &again);
    free(text);
    anm_config_free(&service_table, &cfg);
}

Test(config, a_broken_table_fails_every_load_without_touching_memory)
{
    const anm_config_entry no_section[] = {
        {.name = "database", .type = ANM_CONFIG_SECTION, .offset = 0}, ANM_CONFIG_END};
    anm_config_table table = {no_section, sizeof(tiny), NULL};
    tiny cfg;
    anm_error_detail d;
    cr_expect_eq(anm_config_load_string(&table, "{}", 2, "t.json", &cfg, &d), ANM_EINTERNAL);
    cr_expect_str_eq(d.path, "database");
    cr_expect_str_eq(d.message, "config table: section entry without a table");
    cr_expect_eq(anm_config_load_file(&table, "/nonexistent.json", &cfg, &d), ANM_EINTERNAL,
                 "the table is checked before the file is opened");
    cr_expect_eq(anm_config_load_file(&table, NULL, &cfg, &d), ANM_EINTERNAL);
}
