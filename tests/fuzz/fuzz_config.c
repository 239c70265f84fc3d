/*
 * fuzz_config.c: feeds arbitrary bytes to the config loader with a sample
 * table holding every entry type, a nested section and an array of sections;
 * what loads is rendered (as --print-config would) and freed.
 *
 * Keys ending in "_file" are removed before loading: they name files to read
 * (a secret's "<name>_file"), and a fuzzer must not block on /dev/stdin or
 * read /dev/zero. The unit tests cover that path.
 */
#include "engine/config.h"
#include "engine/log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_route {
    char *name;
    long port;
    anm_config_strings tags;
} fuzz_route;

typedef struct fuzz_database {
    char *url;
    char *password;
    long pool_size;
    double timeout_s;
} fuzz_database;

typedef struct fuzz_config {
    bool enabled;
    long workers;
    double ratio;
    char *name;
    int mode;
    char *bus;
    anm_log_level log_level;
    anm_config_strings zones;
    fuzz_database database;
    anm_config_array routes;
} fuzz_config;

static int route_check(const void *section, char *message, size_t size)
{
    const fuzz_route *route = section;
    if (route->name != NULL && strcmp(route->name, "reserved") == 0) {
        snprintf(message, size, "route name \"reserved\" is reserved");
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
     .offset = ANM_CONFIG_OFFSET(fuzz_route, name, char *)},
    {.name = "port",
     .type = ANM_CONFIG_INT,
     .int_min = 1,
     .int_max = 65535,
     .default_int = 80,
     .offset = ANM_CONFIG_OFFSET(fuzz_route, port, long)},
    {.name = "tags",
     .type = ANM_CONFIG_STRING_LIST,
     .max_items = 4,
     .max_length = 8,
     .offset = ANM_CONFIG_OFFSET(fuzz_route, tags, anm_config_strings)},
    ANM_CONFIG_END};
static const anm_config_table route_table = {route_entries, sizeof(fuzz_route), route_check};

static const anm_config_entry database_entries[] = {
    {.name = "url",
     .type = ANM_CONFIG_STRING,
     .default_string = "postgresql:///anm",
     .max_length = 256,
     .offset = ANM_CONFIG_OFFSET(fuzz_database, url, char *)},
    {.name = "password",
     .type = ANM_CONFIG_SECRET,
     .max_length = 64,
     .offset = ANM_CONFIG_OFFSET(fuzz_database, password, char *)},
    {.name = "pool_size",
     .type = ANM_CONFIG_INT,
     .int_min = 1,
     .int_max = 64,
     .default_int = 4,
     .offset = ANM_CONFIG_OFFSET(fuzz_database, pool_size, long)},
    {.name = "timeout_s",
     .type = ANM_CONFIG_DOUBLE,
     .min = 0.1,
     .max = 600.0,
     .default_double = 5.0,
     .offset = ANM_CONFIG_OFFSET(fuzz_database, timeout_s, double)},
    ANM_CONFIG_END};
static const anm_config_table database_table = {database_entries, sizeof(fuzz_database), NULL};

static const char *const mode_names[] = {"lifo", "pro_rata", "minimum_mw", NULL};
static const char *const default_zones[] = {"feeder33", NULL};

static const anm_config_entry entries[] = {
    {.name = "enabled",
     .type = ANM_CONFIG_BOOL,
     .default_bool = true,
     .offset = ANM_CONFIG_OFFSET(fuzz_config, enabled, bool)},
    {.name = "workers",
     .type = ANM_CONFIG_INT,
     .int_min = 1,
     .int_max = 32,
     .default_int = 2,
     .offset = ANM_CONFIG_OFFSET(fuzz_config, workers, long)},
    {.name = "ratio",
     .type = ANM_CONFIG_DOUBLE,
     .default_double = 0.5,
     .offset = ANM_CONFIG_OFFSET(fuzz_config, ratio, double)},
    {.name = "name",
     .type = ANM_CONFIG_STRING,
     .max_length = 32,
     .offset = ANM_CONFIG_OFFSET(fuzz_config, name, char *)},
    {.name = "mode",
     .type = ANM_CONFIG_ENUM,
     .names = mode_names,
     .default_string = "lifo",
     .offset = ANM_CONFIG_OFFSET(fuzz_config, mode, int)},
    {.name = "bus",
     .type = ANM_CONFIG_ENDPOINT,
     .default_string = "tcp://127.0.0.1:5555",
     .offset = ANM_CONFIG_OFFSET(fuzz_config, bus, char *)},
    {.name = "log_level",
     .type = ANM_CONFIG_LOG_LEVEL,
     .offset = ANM_CONFIG_OFFSET(fuzz_config, log_level, anm_log_level)},
    {.name = "zones",
     .type = ANM_CONFIG_STRING_LIST,
     .default_strings = default_zones,
     .max_items = 8,
     .offset = ANM_CONFIG_OFFSET(fuzz_config, zones, anm_config_strings)},
    {.name = "database",
     .type = ANM_CONFIG_SECTION,
     .section = &database_table,
     .offset = ANM_CONFIG_OFFSET(fuzz_config, database, fuzz_database)},
    {.name = "routes",
     .type = ANM_CONFIG_SECTION_ARRAY,
     .section = &route_table,
     .max_items = 16,
     .offset = ANM_CONFIG_OFFSET(fuzz_config, routes, anm_config_array)},
    ANM_CONFIG_END};
static const anm_config_table table = {entries, sizeof(fuzz_config), NULL};

/* Removes every key ending in "_file", at any depth. */
static void strip_file_keys(json_t *value)
{
    if (json_is_array(value)) {
        for (size_t i = 0; i < json_array_size(value); i++)
            strip_file_keys(json_array_get(value, i));
        return;
    }
    if (!json_is_object(value))
        return;
    const char *key;
    json_t *child;
    void *tmp;
    json_object_foreach_safe(value, tmp, key, child)
    {
        size_t n = strlen(key);
        if (n >= 5 && strcmp(key + n - 5, "_file") == 0)
            json_object_del(value, key);
        else
            strip_file_keys(child);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t error;
    anm_error_detail detail;
    fuzz_config config;
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &error);
    if (root == NULL)
        return 0;
    strip_file_keys(root);
    if (anm_config_load_json(&table, root, "fuzz.json", &config, &detail) == ANM_OK) {
        char *text = anm_config_render(&table, &config);
        free(text);
        anm_config_free(&table, &config);
    } else if (detail.message[0] == '\0') {
        abort(); /* every failure must say why */
    }
    json_decref(root);
    return 0;
}
