/* db.c: the libpq wrapper (connection, back-off, parameterised exec, binary COPY). */
#include "engine/db.h"

#include "engine/error.h"
#include "engine/log.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct anm_db {
    PGconn *conn;
    char *conninfo;
    char component[32];
    int connect_timeout_s;
    long backoff_initial_ms;
    long backoff_max_ms;
    int max_attempts;
    char message[1024];
    char sqlstate[8];
};

struct anm_db_result {
    PGresult *res;
};

struct anm_db_copy_buffer {
    unsigned char *data;
    size_t length, capacity;
    size_t rows;
    int failed; /* an allocation failed: the payload is incomplete */
};

/* Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01 (UTC). */
#define PG_EPOCH_OFFSET_US INT64_C(946684800000000)
#define COPY_CHUNK_BYTES ((size_t)1 << 18)

static const unsigned char copy_signature[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};

const char *anm_db_conninfo(const char *configured)
{
    const char *env = getenv(ANM_DB_CONNINFO_ENV);
    if (env != NULL && env[0] != '\0')
        return env;
    return configured;
}

/*
 * Copies text into db->message as one line: libpq's multi-line messages
 * ("...failed: No such file or directory\n\tIs the server running...") have
 * each run of white space that holds a line break folded into one space,
 * and the trailing newline dropped.
 */
static void set_message(anm_db *db, const char *text, const char *sqlstate)
{
    if (text == NULL)
        text = "unknown error";
    size_t out = 0;
    while (*text != '\0' && out + 1 < sizeof db->message) {
        if (*text == '\n' || *text == '\r' || *text == '\t') {
            while (*text == '\n' || *text == '\r' || *text == '\t' || *text == ' ')
                text++;
            if (out > 0 && *text != '\0')
                db->message[out++] = ' ';
            continue;
        }
        db->message[out++] = *text++;
    }
    while (out > 0 && db->message[out - 1] == ' ')
        out--;
    db->message[out] = '\0';
    int n = snprintf(db->sqlstate, sizeof db->sqlstate, "%s", sqlstate ? sqlstate : "");
    if (n < 0)
        db->sqlstate[0] = '\0';
}

static void clear_error(anm_db *db)
{
    db->message[0] = '\0';
    db->sqlstate[0] = '\0';
}

/* Is the failure a lost connection rather than a rejected command? */
static int connection_lost(const anm_db *db)
{
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK)
        return 1;
    /* class 08: connection exception; 57P01-57P03: server shutting down */
    if (strncmp(db->sqlstate, "08", 2) == 0 || strncmp(db->sqlstate, "57P0", 4) == 0)
        return 1;
    return 0;
}

/* Records the error of res (or of the connection) and returns its anm_err. */
static int result_error(anm_db *db, const PGresult *res)
{
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (primary != NULL)
        set_message(db, primary, sqlstate);
    else
        set_message(db, db->conn ? PQerrorMessage(db->conn) : "not connected", sqlstate);
    return connection_lost(db) ? ANM_EAGAIN : ANM_EDB;
}

static void notice_processor(void *arg, const char *message)
{
    const anm_db *db = arg;
    size_t length = strlen(message);
    while (length > 0 && message[length - 1] == '\n')
        length--;
    anm_log_debug(db->component, "server notice: %.*s", (int)length, message);
}

/* One connection attempt; 1 on success. */
static int connect_once(anm_db *db)
{
    char timeout[16];
    int n = snprintf(timeout, sizeof timeout, "%d", db->connect_timeout_s);
    if (n < 0 || (size_t)n >= sizeof timeout)
        return 0;
    /* later keywords win: the caller's conninfo (expanded from dbname)
       overrides the defaults listed before it */
    const char *const keywords[] = {"connect_timeout", "application_name", "options", "dbname", NULL};
    const char *const values[] = {timeout, db->component, "-c TimeZone=UTC", db->conninfo, NULL};
    if (db->conn != NULL)
        PQfinish(db->conn);
    db->conn = PQconnectdbParams(keywords, values, 1);
    if (db->conn == NULL) {
        set_message(db, "out of memory", NULL);
        return 0;
    }
    if (PQstatus(db->conn) != CONNECTION_OK) {
        set_message(db, PQerrorMessage(db->conn), NULL);
        return 0;
    }
    PQsetNoticeProcessor(db->conn, notice_processor, db);
    clear_error(db);
    return 1;
}

int anm_db_connect(const char *conninfo, const anm_db_options *options, anm_db **out)
{
    if (out == NULL)
        return ANM_EINVAL;
    *out = NULL;
    if (conninfo == NULL)
        return ANM_EINVAL;
    anm_db *db = calloc(1, sizeof *db);
    if (db == NULL)
        return ANM_ENOMEM;
    db->conninfo = strdup(conninfo);
    if (db->conninfo == NULL) {
        free(db);
        return ANM_ENOMEM;
    }
    const char *component = options && options->component ? options->component : "db";
    int n = snprintf(db->component, sizeof db->component, "%s", component);
    if (n < 0)
        db->component[0] = '\0';
    db->connect_timeout_s = options && options->connect_timeout_s > 0 ? options->connect_timeout_s : 10;
    db->backoff_initial_ms = options && options->backoff_initial_ms > 0 ? options->backoff_initial_ms : 100;
    db->backoff_max_ms = options && options->backoff_max_ms > 0 ? options->backoff_max_ms : 5000;
    if (db->backoff_max_ms < db->backoff_initial_ms)
        db->backoff_max_ms = db->backoff_initial_ms;
    db->max_attempts = options && options->max_attempts != 0 ? options->max_attempts : 10;
    *out = db;
    return connect_once(db) ? ANM_OK : ANM_EAGAIN;
}

void anm_db_destroy(anm_db **db)
{
    if (db == NULL || *db == NULL)
        return;
    if ((*db)->conn != NULL)
        PQfinish((*db)->conn);
    free((*db)->conninfo);
    free(*db);
    *db = NULL;
}

int anm_db_is_connected(const anm_db *db)
{
    return db != NULL && db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK;
}

const char *anm_db_error_message(const anm_db *db)
{
    return db ? db->message : "no database handle";
}

const char *anm_db_error_sqlstate(const anm_db *db)
{
    return db ? db->sqlstate : "";
}

/* Sleeps ms milliseconds; 0, or -1 when a signal interrupted the sleep. */
static int sleep_ms(long ms)
{
    struct timespec delay = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    if (nanosleep(&delay, NULL) != 0 && errno == EINTR)
        return -1;
    return 0;
}

static int round_trip_ok(anm_db *db)
{
    if (!anm_db_is_connected(db))
        return 0;
    PGresult *res = PQexecParams(db->conn, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0);
    int ok = res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    return ok;
}

int anm_db_reconnect(anm_db *db)
{
    if (db == NULL)
        return ANM_EINVAL;
    if (round_trip_ok(db))
        return ANM_OK;
    long delay_ms = db->backoff_initial_ms;
    for (int attempt = 1; db->max_attempts < 0 || attempt <= db->max_attempts; attempt++) {
        if (connect_once(db)) {
            anm_log_info(db->component, "connected to database after %d attempt%s", attempt,
                         attempt == 1 ? "" : "s");
            return ANM_OK;
        }
        if (db->max_attempts >= 0 && attempt == db->max_attempts)
            break;
        anm_log_warn(db->component, "could not connect to database: %s (attempt %d, retry in %ld ms)",
                     db->message, attempt, delay_ms);
        if (sleep_ms(delay_ms) != 0)
            return ANM_EAGAIN;
        delay_ms = delay_ms > db->backoff_max_ms / 2 ? db->backoff_max_ms : delay_ms * 2;
    }
    anm_log_error(db->component, "could not connect to database: %s (giving up)", db->message);
    return ANM_EAGAIN;
}

int anm_db_exec(anm_db *db, const char *sql, int n_params, const char *const *params,
                anm_db_result **result, long long *affected)
{
    if (result != NULL)
        *result = NULL;
    if (affected != NULL)
        *affected = 0;
    if (db == NULL || sql == NULL || n_params < 0 || (n_params > 0 && params == NULL))
        return ANM_EINVAL;
    if (!anm_db_is_connected(db)) {
        if (db->message[0] == '\0')
            set_message(db, "not connected", NULL);
        return ANM_EAGAIN;
    }
    PGresult *res = PQexecParams(db->conn, sql, n_params, NULL, params, NULL, NULL, 0);
    ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        int err = result_error(db, res);
        PQclear(res);
        return err;
    }
    clear_error(db);
    if (affected != NULL) {
        const char *count = PQcmdTuples(res);
        *affected = count[0] ? strtoll(count, NULL, 10) : 0;
    }
    if (result != NULL) {
        anm_db_result *r = malloc(sizeof *r);
        if (r == NULL) {
            PQclear(res);
            return ANM_ENOMEM;
        }
        r->res = res;
        *result = r;
    } else {
        PQclear(res);
    }
    return ANM_OK;
}

int anm_db_exec_script(anm_db *db, const char *sql)
{
    if (db == NULL || sql == NULL)
        return ANM_EINVAL;
    if (!anm_db_is_connected(db))
        return ANM_EAGAIN;
    PGresult *res = PQexec(db->conn, sql);
    ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int err = ANM_OK;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && status != PGRES_EMPTY_QUERY)
        err = result_error(db, res);
    else
        clear_error(db);
    PQclear(res);
    return err;
}

int anm_db_begin(anm_db *db)
{
    return anm_db_exec(db, "BEGIN", 0, NULL, NULL, NULL);
}

int anm_db_commit(anm_db *db)
{
    if (db == NULL)
        return ANM_EINVAL;
    if (!anm_db_is_connected(db))
        return ANM_EAGAIN;
    PGresult *res = PQexecParams(db->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
    int err = ANM_OK;
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
        err = result_error(db, res);
    else if (strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
        /* COMMIT of an aborted transaction rolls back without an error */
        set_message(db, "transaction was rolled back after an earlier error", "25P02");
        err = ANM_EDB;
    } else
        clear_error(db);
    PQclear(res);
    return err;
}

int anm_db_rollback(anm_db *db)
{
    return anm_db_exec(db, "ROLLBACK", 0, NULL, NULL, NULL);
}

int anm_db_result_rows(const anm_db_result *r)
{
    return r ? PQntuples(r->res) : 0;
}

int anm_db_result_columns(const anm_db_result *r)
{
    return r ? PQnfields(r->res) : 0;
}

const char *anm_db_result_value(const anm_db_result *r, int row, int column)
{
    if (r == NULL || row < 0 || column < 0 || row >= PQntuples(r->res) || column >= PQnfields(r->res))
        return "";
    return PQgetvalue(r->res, row, column);
}

int anm_db_result_is_null(const anm_db_result *r, int row, int column)
{
    if (r == NULL || row < 0 || column < 0 || row >= PQntuples(r->res) || column >= PQnfields(r->res))
        return 1;
    return PQgetisnull(r->res, row, column);
}

void anm_db_result_destroy(anm_db_result **r)
{
    if (r == NULL || *r == NULL)
        return;
    PQclear((*r)->res);
    free(*r);
    *r = NULL;
}

/* ---- binary COPY ---- */

static int buffer_reserve(anm_db_copy_buffer *b, size_t extra)
{
    if (b->failed)
        return ANM_ENOMEM;
    if (b->length + extra <= b->capacity)
        return ANM_OK;
    size_t capacity = b->capacity ? b->capacity : 4096;
    while (capacity < b->length + extra) {
        if (capacity > SIZE_MAX / 2) {
            b->failed = 1;
            return ANM_ENOMEM;
        }
        capacity *= 2;
    }
    unsigned char *grown = realloc(b->data, capacity);
    if (grown == NULL) {
        b->failed = 1;
        return ANM_ENOMEM;
    }
    b->data = grown;
    b->capacity = capacity;
    return ANM_OK;
}

static void put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)(v >> 32));
    put_u32(p + 4, (uint32_t)v);
}

/* Appends a field: its 4-byte length then size bytes (written by the caller). */
static unsigned char *field(anm_db_copy_buffer *b, uint32_t size)
{
    if (b == NULL || buffer_reserve(b, 4 + (size_t)size) != ANM_OK)
        return NULL;
    unsigned char *p = b->data + b->length;
    put_u32(p, size);
    b->length += 4 + (size_t)size;
    return p + 4;
}

void anm_db_copy_buffer_reset(anm_db_copy_buffer *b)
{
    if (b == NULL)
        return;
    b->length = 0;
    b->rows = 0;
    b->failed = 0;
    if (buffer_reserve(b, sizeof copy_signature + 8) != ANM_OK)
        return;
    memcpy(b->data, copy_signature, sizeof copy_signature);
    put_u32(b->data + sizeof copy_signature, 0);     /* flags: no OIDs */
    put_u32(b->data + sizeof copy_signature + 4, 0); /* header extension length */
    b->length = sizeof copy_signature + 8;
}

anm_db_copy_buffer *anm_db_copy_buffer_new(void)
{
    anm_db_copy_buffer *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    anm_db_copy_buffer_reset(b);
    if (b->failed) {
        anm_db_copy_buffer_destroy(&b);
        return NULL;
    }
    return b;
}

void anm_db_copy_buffer_destroy(anm_db_copy_buffer **b)
{
    if (b == NULL || *b == NULL)
        return;
    free((*b)->data);
    free(*b);
    *b = NULL;
}

size_t anm_db_copy_buffer_rows(const anm_db_copy_buffer *b)
{
    return b ? b->rows : 0;
}

size_t anm_db_copy_buffer_bytes(const anm_db_copy_buffer *b)
{
    return b ? b->length : 0;
}

int anm_db_copy_row(anm_db_copy_buffer *b, int n_fields)
{
    if (b == NULL || n_fields < 1 || n_fields > 1600)
        return ANM_EINVAL;
    if (buffer_reserve(b, 2) != ANM_OK)
        return ANM_ENOMEM;
    put_u16(b->data + b->length, (uint16_t)n_fields);
    b->length += 2;
    b->rows++;
    return ANM_OK;
}

int anm_db_copy_null(anm_db_copy_buffer *b)
{
    if (b == NULL || buffer_reserve(b, 4) != ANM_OK)
        return ANM_ENOMEM;
    put_u32(b->data + b->length, UINT32_MAX); /* length -1: NULL */
    b->length += 4;
    return ANM_OK;
}

int anm_db_copy_int2(anm_db_copy_buffer *b, int16_t value)
{
    unsigned char *p = field(b, 2);
    if (p == NULL)
        return ANM_ENOMEM;
    put_u16(p, (uint16_t)value);
    return ANM_OK;
}

int anm_db_copy_int4(anm_db_copy_buffer *b, int32_t value)
{
    unsigned char *p = field(b, 4);
    if (p == NULL)
        return ANM_ENOMEM;
    put_u32(p, (uint32_t)value);
    return ANM_OK;
}

int anm_db_copy_int8(anm_db_copy_buffer *b, int64_t value)
{
    unsigned char *p = field(b, 8);
    if (p == NULL)
        return ANM_ENOMEM;
    put_u64(p, (uint64_t)value);
    return ANM_OK;
}

int anm_db_copy_float8(anm_db_copy_buffer *b, double value)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    unsigned char *p = field(b, 8);
    if (p == NULL)
        return ANM_ENOMEM;
    put_u64(p, bits);
    return ANM_OK;
}

int anm_db_copy_bool(anm_db_copy_buffer *b, int value)
{
    unsigned char *p = field(b, 1);
    if (p == NULL)
        return ANM_ENOMEM;
    p[0] = value ? 1 : 0;
    return ANM_OK;
}

int anm_db_copy_text(anm_db_copy_buffer *b, const char *text, size_t length)
{
    if (length > INT32_MAX || (text == NULL && length > 0))
        return ANM_EINVAL;
    unsigned char *p = field(b, (uint32_t)length);
    if (p == NULL)
        return ANM_ENOMEM;
    if (length > 0)
        memcpy(p, text, length);
    return ANM_OK;
}

int anm_db_copy_timestamptz(anm_db_copy_buffer *b, int64_t unix_us)
{
    return anm_db_copy_int8(b, unix_us - PG_EPOCH_OFFSET_US);
}

/* Collects the COPY's final result; the connection is idle afterwards. */
static int copy_finish(anm_db *db, long long *rows)
{
    int err = ANM_OK;
    PGresult *res;
    int first = 1;
    while ((res = PQgetResult(db->conn)) != NULL) {
        if (first) {
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                err = result_error(db, res);
            } else if (rows != NULL) {
                const char *count = PQcmdTuples(res);
                *rows = count[0] ? strtoll(count, NULL, 10) : 0;
            }
            first = 0;
        }
        PQclear(res);
    }
    if (first)
        err = result_error(db, NULL);
    return err;
}

int anm_db_copy_in(anm_db *db, const char *copy_sql, const anm_db_copy_buffer *b, long long *rows)
{
    if (rows != NULL)
        *rows = 0;
    if (db == NULL || copy_sql == NULL || b == NULL)
        return ANM_EINVAL;
    if (b->failed)
        return ANM_ENOMEM;
    if (!anm_db_is_connected(db))
        return ANM_EAGAIN;
    PGresult *res = PQexecParams(db->conn, copy_sql, 0, NULL, NULL, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_COPY_IN) {
        int err = result_error(db, res);
        PQclear(res);
        if (err == ANM_OK)
            err = ANM_EDB;
        return err;
    }
    PQclear(res);
    size_t offset = 0;
    while (offset < b->length) {
        size_t chunk = b->length - offset < COPY_CHUNK_BYTES ? b->length - offset : COPY_CHUNK_BYTES;
        if (PQputCopyData(db->conn, (const char *)b->data + offset, (int)chunk) != 1)
            return result_error(db, NULL);
        offset += chunk;
    }
    unsigned char trailer[2];
    put_u16(trailer, UINT16_MAX); /* field count -1: end of data */
    if (PQputCopyData(db->conn, (const char *)trailer, 2) != 1 || PQputCopyEnd(db->conn, NULL) != 1)
        return result_error(db, NULL);
    int err = copy_finish(db, rows);
    if (err == ANM_OK)
        clear_error(db);
    return err;
}
