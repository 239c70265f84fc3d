/*
 * config.h: typed, table-driven configuration (in the spirit of Redis's
 * static_configs[]), decoded strictly from JSON.
 *
 * Each component describes its settings in one table: for every key its
 * name, type, bounds, default and the offset of the field it fills in the
 * component's C struct. The loader walks the JSON against the table:
 *
 *   - a syntax error (or a duplicate key) names file, line and column and
 *     returns ANM_EPARSE;
 *   - an unknown key, a wrong type, a missing required key or a value out of
 *     its bounds names the file and the key path ("database.pool_size",
 *     "routes[2].port") and returns ANM_ECONFIG;
 *   - absent keys take their defaults;
 *   - entries of type ANM_CONFIG_SECRET may be read from a file named by the
 *     key "<name>_file" and are overridden by the environment: the variable
 *     named in the entry (e.g. ANM_DB_PASSWORD), or "<VAR>_FILE" naming a
 *     file. No other key can be set from the environment: a table giving an
 *     env name to any other type is refused (ANM_EINTERNAL).
 *
 * A table in a component's .c file reads:
 *
 *   typedef struct db_config { char *url; char *password; long pool_size; } db_config;
 *   static const anm_config_entry db_entries[] = {
 *       {.name = "url", .type = ANM_CONFIG_STRING, .flags = ANM_CONFIG_REQUIRED,
 *        .offset = ANM_CONFIG_OFFSET(db_config, url, char *), .max_length = 1024},
 *       {.name = "password", .type = ANM_CONFIG_SECRET, .env = "ANM_DB_PASSWORD",
 *        .offset = ANM_CONFIG_OFFSET(db_config, password, char *)},
 *       {.name = "pool_size", .type = ANM_CONFIG_INT, .int_min = 1, .int_max = 64,
 *        .default_int = 4, .offset = ANM_CONFIG_OFFSET(db_config, pool_size, long)},
 *       ANM_CONFIG_END};
 *   static const anm_config_table db_table = {db_entries, sizeof(db_config), NULL};
 *
 * Field types by entry type (ANM_CONFIG_OFFSET checks them at compile time):
 *   BOOL bool; INT long; DOUBLE double; STRING, SECRET, ENDPOINT char *
 *   (malloc'd, NULL when unset); ENUM int (index into .names); LOG_LEVEL
 *   anm_log_level; STRING_LIST anm_config_strings; SECTION the nested struct
 *   itself (embedded); SECTION_ARRAY anm_config_array (items malloc'd, each
 *   .section->struct_size bytes).
 *
 * Everything the loader allocates is released by anm_config_free. No global
 * state: two components (or two copies of one) load independently.
 */
#ifndef ANM_ENGINE_CONFIG_H
#define ANM_ENGINE_CONFIG_H

#include "engine/error.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum anm_config_type {
    ANM_CONFIG_BOOL = 1, /* true / false */
    ANM_CONFIG_INT,      /* integer within [int_min, int_max] */
    ANM_CONFIG_DOUBLE,   /* number within [min, max] */
    ANM_CONFIG_STRING,   /* string of min_length..max_length bytes */
    ANM_CONFIG_SECRET, /* string; also from "<name>_file" and the environment; masked when shown */
    ANM_CONFIG_ENUM,   /* one of .names, stored as its index */
    ANM_CONFIG_ENDPOINT,      /* "host:port" or "scheme://rest" (tcp://, ipc://, https://...) */
    ANM_CONFIG_STRING_LIST,   /* array of strings, each bounded like a string */
    ANM_CONFIG_SECTION,       /* nested object described by .section */
    ANM_CONFIG_SECTION_ARRAY, /* array of objects, each described by .section */
    ANM_CONFIG_LOG_LEVEL      /* "debug", "info", "warn", "error" or "off" */
} anm_config_type;

enum {
    ANM_CONFIG_REQUIRED =
        1u << 0 /* absent key is an error (a secret set from the environment counts) */
};

/* Storage of ANM_CONFIG_STRING_LIST: items[count], each malloc'd. */
typedef struct anm_config_strings {
    char **items;
    size_t count;
} anm_config_strings;

/* Storage of ANM_CONFIG_SECTION_ARRAY: count structs of the section's struct_size. */
typedef struct anm_config_array {
    void *items;
    size_t count;
} anm_config_array;

/* The i-th element of an anm_config_array holding structs of type T. */
#define ANM_CONFIG_ITEM(array, T, i) (&((T *)(array).items)[(i)])

struct anm_config_table;

/*
 * One key. Unused fields stay zero; bounds that are both zero mean
 * "unbounded" (int_min/int_max, min/max, max_length, max_items).
 */
typedef struct anm_config_entry {
    const char *name; /* JSON key; NULL ends the table */
    anm_config_type type;
    size_t offset;                      /* of the field in the struct (ANM_CONFIG_OFFSET) */
    unsigned flags;                     /* ANM_CONFIG_REQUIRED */
    const char *help;                   /* one line for docs and --help; may be NULL */
    long int_min, int_max;              /* INT */
    double min, max;                    /* DOUBLE (inclusive) */
    size_t min_length, max_length;      /* strings, secrets, endpoints, each list item (bytes) */
    size_t min_items, max_items;        /* STRING_LIST, SECTION_ARRAY */
    bool default_bool;                  /* BOOL */
    long default_int;                   /* INT */
    double default_double;              /* DOUBLE */
    const char *default_string;         /* STRING, SECRET, ENDPOINT; ENUM and LOG_LEVEL by name */
    const char *const *default_strings; /* STRING_LIST, NULL-terminated */
    const char *const *names;           /* ENUM: the accepted names, NULL-terminated */
    const char *env;                    /* SECRET only: environment variable that overrides */
    const struct anm_config_table *section; /* SECTION, SECTION_ARRAY */
} anm_config_entry;

#define ANM_CONFIG_END                                                                             \
    {                                                                                              \
        .name = NULL                                                                               \
    }

/*
 * offsetof(T, member), and a compile-time check that member has type ctype
 * (a mismatch is a "distinct pointer types" diagnostic, an error under -Werror).
 */
#define ANM_CONFIG_OFFSET(T, member, ctype)                                                        \
    (offsetof(T, member) + 0 * sizeof(&((T *)0)->member == (ctype *)0))

/*
 * A table: the entries (ending with ANM_CONFIG_END), the size of the struct
 * they describe, and an optional cross-field check run after the section is
 * loaded. check returns 0 when the section is valid, otherwise non-zero after
 * writing a message (project style) into message; the loader reports it with
 * the section's key path and returns ANM_ECONFIG.
 */
typedef struct anm_config_table {
    const anm_config_entry *entries;
    size_t struct_size;
    int (*check)(const void *section, char *message, size_t size);
} anm_config_table;

/*
 * Loads the JSON file at path into out (a struct described by table). path
 * NULL means "no file": defaults and the environment's secrets only. The
 * config fields of out need no initialisation. On failure everything
 * allocated is freed, the config fields are left zero/NULL (a broken table
 * leaves out untouched) and detail (may be NULL) says where and why. Returns ANM_OK, ANM_EIO (file unreadable),
 * ANM_EPARSE (syntax), ANM_ECONFIG (schema), ANM_ENOMEM or ANM_EINTERNAL (a
 * broken table).
 */
int anm_config_load_file(const anm_config_table *table, const char *path, void *out,
                         anm_error_detail *detail);

/* As anm_config_load_file, from length bytes of text; name (may be NULL) labels messages. */
int anm_config_load_string(const anm_config_table *table, const char *text, size_t length,
                           const char *name, void *out, anm_error_detail *detail);

/*
 * As anm_config_load_file, from a decoded JSON value (borrowed). file (may be
 * NULL) labels messages and anchors relative "<name>_file" paths.
 */
int anm_config_load_json(const anm_config_table *table, const json_t *root, const char *file,
                         void *out, anm_error_detail *detail);

/* Frees what the loader allocated in obj and zeroes those fields. Idempotent; obj may be NULL. */
void anm_config_free(const anm_config_table *table, void *obj);

/*
 * The effective config as a JSON object (new reference; NULL on ENOMEM), keys
 * in table order. Secrets that are set show as "********" unless
 * show_secrets is true; unset strings are null.
 */
json_t *anm_config_to_json(const anm_config_table *table, const void *obj, bool show_secrets);

/*
 * The effective config as indented JSON text with secrets masked, ending in
 * a newline (new string, free() it; NULL on ENOMEM): what --print-config shows.
 */
char *anm_config_render(const anm_config_table *table, const void *obj);

/* Checks a table (and its nested tables) for programming errors. ANM_OK or ANM_EINTERNAL with
 * detail. */
int anm_config_table_check(const anm_config_table *table, anm_error_detail *detail);

#endif
