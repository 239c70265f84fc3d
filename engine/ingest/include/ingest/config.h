/*
 * config.h: the settings of anm-ingest (one typed table, engine/config.h).
 * docs/ingest.md lists every key with its bounds and default.
 */
#ifndef INGEST_CONFIG_H
#define INGEST_CONFIG_H

#include "engine/config.h"
#include "engine/log.h"

/* the most database connections the writer uses at once */
#define INGEST_MAX_WRITERS 4

typedef struct ingest_config {
    char *endpoint;          /* ROUTER: telemetry batches and status requests */
    char *publish_endpoint;  /* PUB: signal.latest ("" or null: none) */
    char *conninfo;          /* secret; $ANM_DB_CONNINFO overrides */
    char *stream;            /* name of this journal stream in ingest_journal_position */
    char *journal_dir;
    long journal_max_mb;     /* bound of the backlog on disk */
    long segment_mb;
    long batch_max_rows;     /* a COPY closes at this many rows ... */
    long batch_max_age_ms;   /* ... or when its oldest row waited this long */
    long max_past_s;         /* samples older than now - max_past_s are refused */
    long max_future_s;       /* samples newer than now + max_future_s are refused */
    long max_batch_samples;
    long publish_interval_ms;
    long writers;            /* database connections storing COPY batches at once */
    long latest_interval_ms;  /* telemetry_latest upserted at most this often (0: every batch) */
    long dedupe_window_log2; /* recent (signal, time) window: 2^n slots per generation */
    char *clock;             /* "real", "sim:...", "step:..." */
    anm_log_level log_level;
} ingest_config;

const anm_config_table *ingest_config_table(void);

#endif
