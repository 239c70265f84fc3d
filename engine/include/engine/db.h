/*
 * db.h: PostgreSQL access through libpq, wrapped at the module edge.
 *
 * One anm_db is one connection, used by one thread at a time. SQL goes
 * through parameters only (anm_db_exec: PQexecParams, text parameters) or
 * binary COPY (anm_db_copy_buffer + anm_db_copy_in); never text pasted into
 * a query. The one exception, anm_db_exec_script, runs a trusted file of
 * statements (a migration) and takes no input from users.
 *
 * Errors: functions return ANM_OK or a negative anm_err:
 *   ANM_EDB     the server (or libpq) rejected the command; the server's
 *               message is in anm_db_error_message(), its SQLSTATE in
 *               anm_db_error_sqlstate() ("23505", ...; "" when none)
 *   ANM_EAGAIN  the connection is lost (or was never made): call
 *               anm_db_reconnect() and retry the whole transaction
 *   ANM_EINVAL, ANM_ENOMEM as usual
 * A transaction that failed with ANM_EDB must be rolled back
 * (anm_db_rollback) before the connection is used again.
 *
 * Connection strings: anything libpq accepts ("host=/tmp/x port=5433
 * dbname=anm" or a postgresql:// URL). anm_db_conninfo() picks the one to use:
 * the ANM_DB_CONNINFO environment variable overrides the configured value
 * (environment variables override secrets only, and a connection string may
 * hold a password).
 */
#ifndef ANM_ENGINE_DB_H
#define ANM_ENGINE_DB_H

#include <stddef.h>
#include <stdint.h>

typedef struct anm_db anm_db;
typedef struct anm_db_result anm_db_result;

/* The environment variable that overrides a configured connection string. */
#define ANM_DB_CONNINFO_ENV "ANM_DB_CONNINFO"

/*
 * Returns $ANM_DB_CONNINFO if set and not empty, else configured (which may
 * be NULL: then NULL). Borrowed.
 */
const char *anm_db_conninfo(const char *configured);

typedef struct anm_db_options {
    const char *component;    /* for log lines; default "db" */
    int connect_timeout_s;    /* libpq connect_timeout; default 10 */
    long backoff_initial_ms;  /* first reconnect delay; default 100 */
    long backoff_max_ms;      /* cap of the doubling delay; default 5000 */
    int max_attempts;         /* reconnect attempts before giving up; 0: default 10, <0: forever */
} anm_db_options;

/*
 * Connects to conninfo (copied) with options (NULL: defaults). The handle is
 * created even when the first connection fails (then *out is set and the
 * call returns ANM_EAGAIN with the reason in anm_db_error_message), so a
 * service can start before its database and call anm_db_reconnect later.
 * ANM_EINVAL if conninfo is NULL. Free with anm_db_destroy.
 */
int anm_db_connect(const char *conninfo, const anm_db_options *options, anm_db **out);

/* Closes the connection and frees *db; sets *db to NULL. Idempotent. */
void anm_db_destroy(anm_db **db);

/* 1 if the connection is up (as far as libpq knows), else 0. */
int anm_db_is_connected(const anm_db *db);

/*
 * Reconnects with exponential back-off (initial delay doubling up to the
 * cap, each delay jittered deterministically by at most 1/8) until a
 * connection is made or max_attempts fail. Returns ANM_OK at once when the
 * connection is up (checked with a round trip), ANM_EAGAIN after the last
 * failed attempt. Any open transaction on the old connection is lost.
 */
int anm_db_reconnect(anm_db *db);

/* The last error: the server's primary message (or libpq's), never NULL. */
const char *anm_db_error_message(const anm_db *db);
/* The SQLSTATE of the last error, "" when it did not come from the server. */
const char *anm_db_error_sqlstate(const anm_db *db);

/*
 * Runs sql with n_params text parameters ($1...; NULL entries are SQL NULL).
 * If result is not NULL, *result gets the rows (new; free with
 * anm_db_result_destroy), else rows are discarded. If affected is not NULL,
 * it gets the count of rows the command touched (PQcmdTuples; 0 if none).
 */
int anm_db_exec(anm_db *db, const char *sql, int n_params, const char *const *params,
                anm_db_result **result, long long *affected);

/*
 * Runs a trusted script of one or more statements (a migration file) with
 * the simple query protocol. Never pass text that came from a user.
 */
int anm_db_exec_script(anm_db *db, const char *sql);

/* BEGIN, COMMIT, ROLLBACK. Rollback on a lost connection returns ANM_EAGAIN. */
int anm_db_begin(anm_db *db);
int anm_db_commit(anm_db *db);
int anm_db_rollback(anm_db *db);

/* Rows of a result (plain accessors; values are text, "" for NULL). */
int anm_db_result_rows(const anm_db_result *r);
int anm_db_result_columns(const anm_db_result *r);
const char *anm_db_result_value(const anm_db_result *r, int row, int column); /* borrowed */
int anm_db_result_is_null(const anm_db_result *r, int row, int column);
void anm_db_result_destroy(anm_db_result **r);

/*
 * Binary COPY. A copy buffer holds one complete COPY BINARY payload: the
 * header, the tuples added so far and, once finished by anm_db_copy_in, the
 * trailer. It does not touch the connection, so a batch can be built while
 * the database is away and sent (or resent after a reconnect) later.
 *
 *   anm_db_copy_buffer *b = anm_db_copy_buffer_new();
 *   anm_db_copy_row(b, 4);                       // a tuple of 4 fields
 *   anm_db_copy_int4(b, signal_key);
 *   anm_db_copy_timestamptz(b, utc_microseconds);
 *   anm_db_copy_float8(b, value);
 *   anm_db_copy_int4(b, quality);
 *   anm_db_copy_in(db, "COPY telemetry (signal_key, time, value, quality)"
 *                      " FROM STDIN (FORMAT binary)", b, &rows);
 *
 * Field adders return ANM_OK or ANM_ENOMEM (the buffer then refuses further
 * fields and anm_db_copy_in returns ANM_ENOMEM). Fields must match the
 * column list in order and type; the server rejects mismatches (ANM_EDB).
 */
typedef struct anm_db_copy_buffer anm_db_copy_buffer;

anm_db_copy_buffer *anm_db_copy_buffer_new(void); /* new; NULL on ENOMEM */
void anm_db_copy_buffer_destroy(anm_db_copy_buffer **b);
/* Forgets every tuple (keeps the memory). */
void anm_db_copy_buffer_reset(anm_db_copy_buffer *b);
/* Tuples added since the last reset. */
size_t anm_db_copy_buffer_rows(const anm_db_copy_buffer *b);
/* Bytes of payload so far (header and tuples). */
size_t anm_db_copy_buffer_bytes(const anm_db_copy_buffer *b);

int anm_db_copy_row(anm_db_copy_buffer *b, int n_fields);
int anm_db_copy_null(anm_db_copy_buffer *b);
int anm_db_copy_int2(anm_db_copy_buffer *b, int16_t value);
int anm_db_copy_int4(anm_db_copy_buffer *b, int32_t value);
int anm_db_copy_int8(anm_db_copy_buffer *b, int64_t value);
int anm_db_copy_float8(anm_db_copy_buffer *b, double value);
int anm_db_copy_bool(anm_db_copy_buffer *b, int value);
/* text: UTF-8 bytes, length bytes (no NUL needed) */
int anm_db_copy_text(anm_db_copy_buffer *b, const char *text, size_t length);
/* timestamptz: microseconds since 1970-01-01T00:00:00Z */
int anm_db_copy_timestamptz(anm_db_copy_buffer *b, int64_t unix_us);

/*
 * Sends the buffer with copy_sql ("COPY table (cols) FROM STDIN (FORMAT
 * binary)") and waits for the server's verdict. *rows (may be NULL) gets the
 * count of rows stored. The buffer is left as it was (not reset), so the same
 * batch can be resent after ANM_EAGAIN. Runs inside the caller's transaction
 * if one is open, else in its own.
 */
int anm_db_copy_in(anm_db *db, const char *copy_sql, const anm_db_copy_buffer *b, long long *rows);

#endif
