/*
 * dc_upload.h: the Data Concentrator HTTPS file API client (NESO's
 * "Data Concentrator API", seed 003; docs/data-concentrator.md) with its
 * durable spool.
 *
 * A file handed to gateway_dc_upload_submit is written to the spool
 * (spool.h: atomic, fsynced) and stays there until the server answers 201.
 * Uploads go oldest first, one at a time, as
 *     POST <base_url>/ihost/deviceapi/files   HTTP/1.1, multipart/form-data
 *       part 1 name="metadata", application/json; charset=UTF-8,
 *              {"Name":"<file name>","Process":true}
 *       part 2 name="data", application/octet-stream, the CSV
 * with HTTP Basic auth (password read from a file, at least 56 characters,
 * never logged), TLS 1.2 only with the four ECDHE/DHE-RSA AES-GCM suites,
 * the server verified against ca_file (or the system store), and a new
 * connection with a fresh DNS lookup every time.
 *
 * Pacing (all on the engine clock, persisted in <spool>/state.json so a
 * restart keeps it):
 *   - after a success the next upload waits min_interval_ms (30 s);
 *   - after a failure (5xx, no connection, TLS error, timeout) the same file
 *     is retried no sooner than retry_after_ms (60 s);
 *   - a permanent error (400, 401, 404 or another 4xx) parks the file in
 *     <spool>/parked/ and logs an error (the alarm); the next upload waits
 *     retry_after_ms as after a failure.
 *
 * Not thread-safe: one thread drives an uploader.
 */
#ifndef GATEWAY_DC_UPLOAD_H
#define GATEWAY_DC_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "engine/clock.h"
#include "engine/error.h"

#define GATEWAY_DC_PATH "/ihost/deviceapi/files"
#define GATEWAY_DC_CIPHERS                                                                         \
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256:"           \
    "DHE-RSA-AES256-GCM-SHA384"

typedef struct gateway_dc_upload_config {
    const char *base_url;       /* "https://host:port" (no path) */
    const char *path;           /* NULL: GATEWAY_DC_PATH */
    const char *username;
    const char *password_file;  /* first line is the password */
    const char *ca_file;        /* NULL: the system trust store */
    const char *spool_dir;
    int64_t retry_after_ms;     /* default 60000 */
    int64_t min_interval_ms;    /* default 30000 */
    long timeout_ms;            /* whole request, default 30000 */
    size_t min_password_length; /* default 56 (NESO issues >= 56 characters) */
} gateway_dc_upload_config;

/* Fills the defaults above (strings NULL). */
void gateway_dc_upload_config_default(gateway_dc_upload_config *config);

typedef struct gateway_dc_upload gateway_dc_upload;

/*
 * New uploader: reads the password, opens the spool, loads the pacing
 * state. clock is borrowed (NULL: a real-time clock owned by the uploader).
 * ANM_ECONFIG (missing setting, unreadable or short password file: detail
 * says which, never the password), ANM_EIO, ANM_ENOMEM.
 */
int gateway_dc_upload_new(const gateway_dc_upload_config *config, anm_clock *clock,
                          gateway_dc_upload **out, anm_error_detail *detail);

/* Idempotent; nulls *upload. Files stay in the spool. */
void gateway_dc_upload_destroy(gateway_dc_upload **upload);

/*
 * Validates name (gateway_dc_file_name_parse) and spools the file.
 * ANM_OK (durable), ANM_EPARSE (bad name, detail says why), ANM_EIO.
 */
int gateway_dc_upload_submit(gateway_dc_upload *upload, const char *name, const void *data,
                             size_t size, anm_error_detail *detail);

typedef enum gateway_dc_outcome {
    GATEWAY_DC_IDLE = 0,    /* nothing to do now (empty, or not yet due) */
    GATEWAY_DC_UPLOADED,    /* 201: the file was removed from the spool */
    GATEWAY_DC_RETRY,       /* transient failure: the file stays, retried later */
    GATEWAY_DC_PARKED       /* permanent error: the file moved to parked/ */
} gateway_dc_outcome;

typedef struct gateway_dc_result {
    gateway_dc_outcome outcome;
    long http_status;    /* 0 when no HTTP response */
    char name[201];      /* the file concerned */
    char message[256];   /* curl's error or the start of the response body */
} gateway_dc_result;

/*
 * Uploads the oldest spooled file if one is due (see the pacing above),
 * filling *result (may be NULL). Returns ANM_OK whatever the server said
 * (the outcome is in result), or ANM_EIO if the spool could not be updated.
 */
int gateway_dc_upload_step(gateway_dc_upload *upload, gateway_dc_result *result);

/* Engine time at which the next upload may start; INT64_MAX if the spool is empty. */
int64_t gateway_dc_upload_next_due_ms(const gateway_dc_upload *upload);

/*
 * Steps until the spool is empty or the engine time reaches deadline_ms,
 * sleeping (real time, per anm_clock_real_delay_ms) until each upload is
 * due. Returns ANM_OK when empty, ANM_ETIMEOUT at the deadline.
 */
int gateway_dc_upload_drain(gateway_dc_upload *upload, int64_t deadline_ms);

size_t gateway_dc_upload_pending(const gateway_dc_upload *upload);
size_t gateway_dc_upload_parked(const gateway_dc_upload *upload);

/* Moves parked files back into the queue after the cause is fixed. */
int gateway_dc_upload_requeue_parked(gateway_dc_upload *upload, size_t *moved);

#endif
