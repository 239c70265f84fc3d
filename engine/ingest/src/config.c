/* config.c: the settings table of anm-ingest. */
#include "ingest/config.h"

#include <stddef.h>

#define OFF(member, ctype) ANM_CONFIG_OFFSET(ingest_config, member, ctype)

static const anm_config_entry entries[] = {
    {.name = "endpoint", .type = ANM_CONFIG_STRING, .offset = OFF(endpoint, char *),
     .default_string = "@tcp://127.0.0.1:5601", .min_length = 1, .max_length = 1024,
     .help = "ROUTER endpoint for telemetry batches and status requests"},
    {.name = "publish_endpoint", .type = ANM_CONFIG_STRING, .offset = OFF(publish_endpoint, char *),
     .default_string = "@tcp://127.0.0.1:5602", .max_length = 1024,
     .help = "PUB endpoint for signal.latest (empty: do not publish)"},
    {.name = "conninfo", .type = ANM_CONFIG_SECRET, .offset = OFF(conninfo, char *),
     .env = "ANM_DB_CONNINFO", .flags = ANM_CONFIG_REQUIRED, .max_length = 4096,
     .help = "libpq connection string (or $ANM_DB_CONNINFO)"},
    {.name = "stream", .type = ANM_CONFIG_STRING, .offset = OFF(stream, char *),
     .default_string = "ingest", .min_length = 1, .max_length = 128,
     .help = "name of this service's journal stream in the database"},
    {.name = "journal_dir", .type = ANM_CONFIG_STRING, .offset = OFF(journal_dir, char *),
     .default_string = "var/ingest-journal", .min_length = 1, .max_length = 2048,
     .help = "directory of the journal segments"},
    {.name = "journal_max_mb", .type = ANM_CONFIG_INT, .offset = OFF(journal_max_mb, long),
     .int_min = 1, .int_max = 1048576, .default_int = 4096,
     .help = "bound of the uncommitted backlog on disk (MiB); beyond it batches are refused"},
    {.name = "segment_mb", .type = ANM_CONFIG_INT, .offset = OFF(segment_mb, long),
     .int_min = 1, .int_max = 4096, .default_int = 64, .help = "journal segment size (MiB)"},
    {.name = "batch_max_rows", .type = ANM_CONFIG_INT, .offset = OFF(batch_max_rows, long),
     .int_min = 1, .int_max = 10000000, .default_int = 20000,
     .help = "a COPY transaction closes at this many rows"},
    {.name = "batch_max_age_ms", .type = ANM_CONFIG_INT, .offset = OFF(batch_max_age_ms, long),
     .int_min = 1, .int_max = 60000, .default_int = 50,
     .help = "or when its first row has waited this long"},
    {.name = "max_past_s", .type = ANM_CONFIG_INT, .offset = OFF(max_past_s, long),
     .int_min = 1, .int_max = 3153600000L, .default_int = 7 * 86400,
     .help = "refuse samples older than this (engine clock)"},
    {.name = "max_future_s", .type = ANM_CONFIG_INT, .offset = OFF(max_future_s, long),
     .int_min = 0, .int_max = 86400, .default_int = 60,
     .help = "refuse samples further ahead than this (engine clock)"},
    {.name = "max_batch_samples", .type = ANM_CONFIG_INT, .offset = OFF(max_batch_samples, long),
     .int_min = 1, .int_max = 100000, .default_int = 100000, .help = "largest batch accepted"},
    {.name = "publish_interval_ms", .type = ANM_CONFIG_INT,
     .offset = OFF(publish_interval_ms, long), .int_min = 10, .int_max = 60000,
     .default_int = 1000, .help = "how often changed latest values are published"},
    {.name = "writers", .type = ANM_CONFIG_INT, .offset = OFF(writers, long), .int_min = 1,
     .int_max = INGEST_MAX_WRITERS, .default_int = 2,
     .help = "database connections storing COPY batches at once (committed in journal order)"},
    {.name = "latest_interval_ms", .type = ANM_CONFIG_INT,
     .offset = OFF(latest_interval_ms, long), .int_min = 0, .int_max = 60000,
     .default_int = 1000,
     .help = "telemetry_latest is upserted with a COPY batch at most this often (0: every batch)"},
    {.name = "dedupe_window_log2", .type = ANM_CONFIG_INT, .offset = OFF(dedupe_window_log2, long),
     .int_min = 10, .int_max = 24, .default_int = 20,
     .help = "recent-sample window: 2^n slots in each of two generations"},
    {.name = "clock", .type = ANM_CONFIG_STRING, .offset = OFF(clock, char *),
     .default_string = "real", .min_length = 1, .max_length = 64,
     .help = "engine clock: real, sim:TIME[@SPEED] or step:TIME"},
    {.name = "log_level", .type = ANM_CONFIG_LOG_LEVEL, .offset = OFF(log_level, anm_log_level),
     .default_string = "info", .help = "log threshold"},
    ANM_CONFIG_END};

static const anm_config_table table = {entries, sizeof(ingest_config), NULL};

const anm_config_table *ingest_config_table(void) { return &table; }
