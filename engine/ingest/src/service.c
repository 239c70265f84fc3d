/* service.c: the anm-ingest service (see service.h and docs/ingest.md). */
#include "ingest/service.h"

#include "engine/bus.h"
#include "engine/clock.h"
#include "engine/db.h"
#include "engine/log.h"
#include "engine/reactor.h"
#include "engine/telemetry_frame.h"
#include "ingest/dedupe.h"
#include "ingest/journal.h"
#include "ingest/latency.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COMPONENT "ingest"
#define MAX_DRAIN_MESSAGES 512

typedef struct latest_value {
    int64_t utc_ms;
    double value;
    uint16_t quality;
    uint8_t known; /* in the registry */
    uint8_t dirty; /* changed since the last publication */
    uint32_t zone; /* index into zone names */
} latest_value;

typedef struct pending_ack {
    unsigned char route[256];
    size_t route_size;
    uint32_t sender_id;
    uint64_t seq;
    size_t count;
} pending_ack;

typedef struct reason_count {
    const char *code;
    unsigned long long count;
} reason_count;

enum { MAX_REASONS = 32 };

struct ingest_service {
    const ingest_config *cfg;
    anm_clock *clock;
    anm_bus *bus;
    anm_socket *router;
    anm_socket *pub;
    anm_reactor *reactor;
    ingest_journal *journal;
    ingest_senders *senders;         /* journaled windows (main thread) */
    ingest_recent *recent;
    anm_telemetry_limits limits;
    anm_telemetry_batch batch;
    unsigned char *scratch;
    size_t scratch_cap;
    pending_ack *acks;
    size_t n_acks, cap_acks;
    anm_log_limiter reject_log, alarm_log;

    /* registry */
    latest_value *latest;
    size_t n_latest; /* max signal_key + 1 */
    char **zones;
    size_t n_zones;

    /* counters (main thread) */
    unsigned long long received_batches, received_samples, acked_batches, acked_samples;
    unsigned long long duplicate_batches, duplicate_samples, journaled_samples;
    reason_count reasons[MAX_REASONS];
    size_t n_reasons;
    int journal_full;
    /* rates, updated each second */
    unsigned long long last_acked, last_committed;
    int64_t last_rate_ns;
    double rate_in, rate_commit;

    /* writer thread */
    pthread_t writer;
    int writer_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stopping;     /* under lock */
    int writer_done;  /* under lock */
    anm_db *db;       /* the first writer's connection (the writer owns it once it runs) */
    anm_db *lane_db[INGEST_MAX_WRITERS]; /* one connection per writer; [0] is db */
    size_t n_lanes;
    struct writer_shared *w;
    ingest_senders *committed_senders; /* writer */
    ingest_latency latency;            /* under lock */
    _Atomic unsigned long long committed_samples;
    _Atomic unsigned long long committed_batches;
    _Atomic int db_connected;
    _Atomic int64_t oldest_pending_ms; /* engine time of the oldest uncommitted sample (0: none) */
    int64_t known_days[64];
    size_t n_known_days;
    uint64_t stored_position; /* rows below it are in the database (>= journal committed) */
};

/* ---- helpers ------------------------------------------------------------ */

static void count_reason(ingest_service *s, const char *code)
{
    for (size_t i = 0; i < s->n_reasons; i++)
        if (strcmp(s->reasons[i].code, code) == 0) {
            s->reasons[i].count++;
            return;
        }
    if (s->n_reasons < MAX_REASONS)
        s->reasons[s->n_reasons++] = (reason_count){code, 1};
}

static int send_json(ingest_service *s, const void *route, size_t route_size, const char *topic,
                     json_t *body)
{
    if (!body)
        return ANM_ENOMEM;
    anm_frame r = {route, route_size};
    int rc = anm_bus_send_json(s->router, &r, topic, body, ANM_BUS_DONTWAIT);
    json_decref(body);
    if (rc == ANM_ENOTFOUND || rc == ANM_EAGAIN)
        rc = ANM_OK; /* the peer has gone or is not reading: it will resend */
    return rc;
}

static int reject(ingest_service *s, const void *route, size_t route_size, int have_header,
                  uint32_t sender_id, uint64_t seq, const char *code, const char *text)
{
    count_reason(s, code);
    int64_t now = anm_monotonic_ns() / 1000000;
    if (anm_log_limiter_allow(&s->reject_log, now)) {
        json_t *f = json_pack("{s:s, s:s, s:I, s:I}", "code", code, "text", text, "sender_id",
                              (json_int_t)sender_id, "seq", (json_int_t)seq);
        anm_log_fields(ANM_LOG_WARN, COMPONENT, "telemetry batch refused", f);
        json_decref(f);
    }
    return send_json(s, route, route_size, "telemetry.reject",
                     anm_telemetry_reject_json(have_header, sender_id, seq, code, text));
}

static int ensure_scratch(ingest_service *s, size_t n)
{
    if (n <= s->scratch_cap)
        return ANM_OK;
    unsigned char *p = realloc(s->scratch, n);
    if (!p)
        return ANM_ENOMEM;
    s->scratch = p;
    s->scratch_cap = n;
    return ANM_OK;
}

static int64_t engine_now(ingest_service *s) { return anm_clock_now_ms(s->clock); }

/* ---- database state ----------------------------------------------------- */

static int load_registry(ingest_service *s, anm_db *db)
{
    anm_db_result *r = NULL;
    int rc = anm_db_exec(db, "SELECT signal_key, zone_id FROM signals ORDER BY zone_id, signal_key",
                         0, NULL, &r, NULL);
    if (rc != ANM_OK)
        return rc;
    int rows = anm_db_result_rows(r);
    long max_key = -1;
    for (int i = 0; i < rows; i++) {
        long key = strtol(anm_db_result_value(r, i, 0), NULL, 10);
        if (key > max_key)
            max_key = key;
    }
    s->n_latest = (size_t)(max_key + 1);
    s->latest = calloc(s->n_latest ? s->n_latest : 1, sizeof *s->latest);
    s->zones = calloc((size_t)rows + 1, sizeof *s->zones);
    if (!s->latest || !s->zones) {
        rc = ANM_ENOMEM;
        goto done;
    }
    for (int i = 0; i < rows; i++) {
        long key = strtol(anm_db_result_value(r, i, 0), NULL, 10);
        const char *zone = anm_db_result_value(r, i, 1);
        if (key < 0)
            continue;
        if (s->n_zones == 0 || strcmp(s->zones[s->n_zones - 1], zone) != 0) {
            s->zones[s->n_zones] = strdup(zone);
            if (!s->zones[s->n_zones]) {
                rc = ANM_ENOMEM;
                goto done;
            }
            s->n_zones++;
        }
        s->latest[key].known = 1;
        s->latest[key].zone = (uint32_t)(s->n_zones - 1);
    }
    anm_log_info(COMPONENT, "registry loaded: %d signals in %zu zones", rows, s->n_zones);
done:
    anm_db_result_destroy(&r);
    return rc;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int load_state(ingest_service *s, anm_db *db, uint64_t *committed)
{
    const char *params[1] = {s->cfg->stream};
    anm_db_result *r = NULL;
    int rc = anm_db_exec(db,
                         "SELECT position, coalesce(least(latest_position, position), position)"
                         " FROM ingest_journal_position WHERE stream = $1",
                         1, params, &r, NULL);
    if (rc != ANM_OK)
        return rc;
    *committed = 0;
    s->stored_position = 0;
    if (anm_db_result_rows(r) == 1) {
        s->stored_position = strtoull(anm_db_result_value(r, 0, 0), NULL, 10);
        *committed = strtoull(anm_db_result_value(r, 0, 1), NULL, 10);
    }
    anm_db_result_destroy(&r);
    rc = anm_db_exec(db,
                     "SELECT sender_id, max_seq, encode(seq_window, 'hex') FROM ingest_senders"
                     " WHERE stream = $1",
                     1, params, &r, NULL);
    if (rc != ANM_OK)
        return rc;
    for (int i = 0; i < anm_db_result_rows(r); i++) {
        ingest_sender_window w;
        memset(&w, 0, sizeof w);
        w.sender_id = (uint32_t)strtoul(anm_db_result_value(r, i, 0), NULL, 10);
        w.max_seq = strtoull(anm_db_result_value(r, i, 1), NULL, 10);
        const char *hex = anm_db_result_value(r, i, 2);
        unsigned char bytes[INGEST_SEQ_WINDOW_BYTES];
        if (strlen(hex) != 2 * INGEST_SEQ_WINDOW_BYTES)
            continue;
        for (size_t k = 0; k < INGEST_SEQ_WINDOW_BYTES; k++)
            bytes[k] = (unsigned char)(hex_digit(hex[2 * k]) << 4 | hex_digit(hex[2 * k + 1]));
        ingest_sender_window_from_bytes(&w, bytes);
        if ((rc = ingest_senders_put(s->senders, &w)) != ANM_OK ||
            (rc = ingest_senders_put(s->committed_senders, &w)) != ANM_OK)
            break;
    }
    anm_db_result_destroy(&r);
    return rc;
}

/* ---- writer thread ------------------------------------------------------ */

/* One sample waiting in the writer's open COPY batch. */
typedef struct writer_row {
    int64_t utc_ms;
    double value;
    uint32_t signal_key;
    uint16_t quality;
} writer_row;

/* The newest sample of one signal, for telemetry_latest. */
typedef struct writer_latest {
    int64_t utc_ms;
    double value;
    uint16_t quality;
    uint8_t has;   /* utc_ms and value are set */
    uint8_t dirty; /* newer than telemetry_latest (or than the last formed upsert) */
} writer_latest;

/* A growable text buffer (the array parameters of the latest upsert). */
typedef struct text_buffer {
    char *data;
    size_t size, cap;
    int failed;
} text_buffer;

/*
 * The writer stores the journal in COPY batches over `writers` connections
 * (lanes) at once, committed strictly in journal order:
 *
 *   form    one lane at a time (form_lock) reads the next records from the
 *           journal into its batch, closed by size or age, and takes the next
 *           ticket; the latest values, the sender windows of every batch
 *           formed so far and the telemetry_latest upsert (when due) are
 *           decided here, in journal order;
 *   copy    the lane sorts and COPYs its batch in its own transaction, while
 *           the other lanes form and COPY theirs (PostgreSQL works on them
 *           on both cores);
 *   finish  when every earlier ticket has committed (its turn), the lane
 *           writes the journal position, the sender windows and the latest
 *           upsert, and commits.
 *
 * So the database always holds a prefix of the journal, as with one
 * connection: the position row says exactly which records are stored, and
 * a crash or a failed commit leaves only later batches to redo (a lane that
 * fails retries its own batch; later lanes wait for their turn, or redo
 * theirs if their connection failed meanwhile). A batch that creates a day
 * partition is a barrier: it starts only when no other transaction is open
 * (CREATE TABLE .. PARTITION OF waits for the open COPYs into the parent)
 * and no batch is formed after it until it has committed.
 */
typedef struct writer_shared {
    pthread_mutex_t form_lock;   /* one lane forms at a time; guards the fields below */
    ingest_journal_reader *reader;
    uint64_t read_end;           /* the journal is formed into batches up to here */
    writer_latest *latest;       /* per signal_key: newest stored or in a formed batch */
    size_t n_dirty;              /* entries not in any formed upsert yet */
    int64_t flushed_ns;          /* when a formed batch last carried the upsert */
    uint64_t latest_position;    /* telemetry_latest reflects the rows below it, once the
                                  * batch that carries its upsert has committed */
    ingest_senders *formed;      /* committed windows plus every formed batch's seqs */
    uint64_t next_ticket;        /* the last ticket given out */
    /* under s->lock */
    uint64_t committed_ticket;   /* every ticket up to it has committed */
    uint64_t barrier;            /* a partition-creating ticket not yet committed (0: none) */
    int failed;                  /* a lane stopped on an error: the others stop too */
} writer_shared;

typedef struct writer_lane {
    ingest_service *s;
    int index;
    pthread_t thread;
    anm_db *db;
    anm_db_copy_buffer *copy;
    writer_row *rows, *sorted;   /* the batch, in journal order and sorted by signal */
    size_t n_rows, cap_rows;
    size_t *bucket;              /* counting sort: n_latest + 1 buckets (+1) */
    size_t n_buckets;
    text_buffer keys, qualities, times, values; /* the upsert's arrays, when flush_latest */
    int prepared;                /* copy built from rows */
    int flush_latest;            /* this batch upserts telemetry_latest */
    uint64_t latest_position;    /* telemetry_latest reflects the rows below it once committed */
    uint64_t end;                /* journal position the batch ends at */
    uint64_t batches;            /* telemetry batches in it */
    uint64_t ticket;
    int64_t opened_ns;           /* when its first row was added */
    int64_t new_days[64];
    size_t n_new_days;
    ingest_senders *pending;     /* the sender windows once this batch has committed */
} writer_lane;

static int day_known(ingest_service *s, writer_lane *l, int64_t day)
{
    for (size_t i = 0; i < s->n_known_days; i++)
        if (s->known_days[i] == day)
            return 1;
    for (size_t i = 0; i < l->n_new_days; i++)
        if (l->new_days[i] == day)
            return 1;
    return 0;
}

static int floor_div(int64_t a, int64_t b) { return (int)(a / b - (a % b < 0)); }

static uint32_t get_u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Adds one journal record to the lane's batch (under form_lock). */
static int writer_add_record(ingest_service *s, writer_lane *l, const void *payload, size_t size)
{
    /* The record's CRC-32C was checked by the journal reader and the frame
       was fully validated before it was journaled, so read the fixed layout
       directly instead of decoding (and checksumming) it a second time. */
    const unsigned char *p = payload;
    size_t count = size >= ANM_TELEMETRY_HEADER_BYTES ? get_u32le(p + 20) : 0;
    if (size < ANM_TELEMETRY_HEADER_BYTES || p[0] != 'A' || size != anm_telemetry_frame_size(count)) {
        anm_log_error(COMPONENT, "journal record at %" PRIu64 " is not a telemetry frame", l->end);
        return ANM_OK; /* skip it */
    }
    if (l->n_rows + count > l->cap_rows) {
        size_t cap = l->n_rows + count;
        if (cap < (size_t)s->cfg->batch_max_rows + 1024)
            cap = (size_t)s->cfg->batch_max_rows + 1024;
        writer_row *grown = realloc(l->rows, cap * sizeof *grown);
        if (!grown)
            return ANM_ENOMEM;
        l->rows = grown;
        grown = realloc(l->sorted, cap * sizeof *grown);
        if (!grown)
            return ANM_ENOMEM;
        l->sorted = grown;
        l->cap_rows = cap;
    }
    uint32_t sender_id;
    uint64_t seq;
    memcpy(&sender_id, p + 8, 4);
    memcpy(&seq, p + 12, 8);
    int64_t last_day = INT64_MIN;
    for (size_t i = 0; i < count; i++) {
        const unsigned char *q = p + ANM_TELEMETRY_HEADER_BYTES + i * ANM_TELEMETRY_SAMPLE_BYTES;
        writer_row *x = &l->rows[l->n_rows++];
        memcpy(&x->signal_key, q, 4);
        memcpy(&x->utc_ms, q + 4, 8);
        memcpy(&x->value, q + 12, 8);
        memcpy(&x->quality, q + 20, 2);
        int64_t day = floor_div(x->utc_ms, 86400000);
        if (day != last_day && !day_known(s, l, day) && l->n_new_days < 64)
            l->new_days[l->n_new_days++] = day;
        last_day = day;
    }
    l->batches++;
    l->prepared = 0;
    return ingest_senders_mark(s->w->formed, sender_id, seq);
}

static void text_append(text_buffer *t, const char *text, size_t n)
{
    if (t->failed)
        return;
    if (t->size + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->size + n + 1)
            cap *= 2;
        char *grown = realloc(t->data, cap);
        if (!grown) {
            t->failed = 1;
            return;
        }
        t->data = grown;
        t->cap = cap;
    }
    memcpy(t->data + t->size, text, n);
    t->size += n;
    t->data[t->size] = '\0';
}

static void text_append_number(text_buffer *t, const char *fmt_prefix, int is_double, int64_t i,
                               double d)
{
    char num[40];
    int n = is_double ? snprintf(num, sizeof num, "%s%.17g", fmt_prefix, d)
                      : snprintf(num, sizeof num, "%s%" PRId64, fmt_prefix, i);
    if (n < 0 || (size_t)n >= sizeof num) {
        t->failed = 1;
        return;
    }
    text_append(t, num, (size_t)n);
}

/* Merges a row into the newest values (under form_lock). */
static void writer_note_latest(ingest_service *s, const writer_row *x)
{
    if (x->signal_key >= s->n_latest)
        return; /* no longer in the registry */
    writer_shared *w = s->w;
    writer_latest *v = &w->latest[x->signal_key];
    if (v->has && x->utc_ms < v->utc_ms)
        return;
    v->utc_ms = x->utc_ms;
    v->value = x->value;
    v->quality = x->quality;
    v->has = 1;
    if (!v->dirty) {
        v->dirty = 1;
        w->n_dirty++;
    }
}

/* The dirty latest values as the four array parameters of the lane's upsert
 * (under form_lock); they are no longer dirty once it has them. */
static int writer_latest_arrays(ingest_service *s, writer_lane *l)
{
    writer_shared *w = s->w;
    text_buffer *tb[4] = {&l->keys, &l->qualities, &l->times, &l->values};
    for (int k = 0; k < 4; k++) {
        tb[k]->size = 0;
        tb[k]->failed = 0;
        text_append(tb[k], "{", 1);
    }
    size_t n = 0;
    for (size_t key = 0; key < s->n_latest; key++) {
        writer_latest *v = &w->latest[key];
        if (!v->dirty)
            continue;
        const char *sep = n++ ? "," : "";
        text_append_number(&l->keys, sep, 0, (int64_t)key, 0);
        text_append_number(&l->qualities, sep, 0, v->quality, 0);
        text_append_number(&l->times, sep, 0, v->utc_ms, 0);
        text_append_number(&l->values, sep, 1, 0, v->value);
    }
    for (int k = 0; k < 4; k++) {
        text_append(tb[k], "}", 1);
        if (tb[k]->failed)
            return ANM_ENOMEM;
    }
    for (size_t key = 0; key < s->n_latest; key++)
        w->latest[key].dirty = 0;
    w->n_dirty = 0;
    return ANM_OK;
}

/*
 * Builds the COPY payload from the lane's batch: rows sorted by signal (a
 * stable counting sort, so each signal keeps its journal order), because
 * PostgreSQL then inserts into the signal_key btree leaf by leaf and a
 * signal's rows share heap pages (measured: about 1.6x the COPY rate of
 * unsorted rows, docs/performance.md). Odd lanes start the sorted order half
 * way through the signals (and wrap), so that two COPYs running at once
 * work on different btree leaves instead of queueing on the same ones.
 */
static int writer_prepare(ingest_service *s, writer_lane *l)
{
    size_t nb = s->n_latest + 1; /* keys beyond the registry (dropped since) go last */
    if (l->n_buckets < nb + 1) {
        size_t *grown = realloc(l->bucket, (nb + 1) * sizeof *grown);
        if (!grown)
            return ANM_ENOMEM;
        l->bucket = grown;
        l->n_buckets = nb + 1;
    }
    size_t shift = l->index % 2 ? s->n_latest / 2 : 0;
    memset(l->bucket, 0, (nb + 1) * sizeof *l->bucket);
    for (size_t i = 0; i < l->n_rows; i++) {
        size_t k = l->rows[i].signal_key < s->n_latest ? l->rows[i].signal_key : s->n_latest;
        size_t b = k < s->n_latest ? (k + s->n_latest - shift) % s->n_latest : k;
        l->bucket[b + 1]++;
    }
    for (size_t b = 1; b <= nb; b++)
        l->bucket[b] += l->bucket[b - 1];
    for (size_t i = 0; i < l->n_rows; i++) {
        size_t k = l->rows[i].signal_key < s->n_latest ? l->rows[i].signal_key : s->n_latest;
        size_t b = k < s->n_latest ? (k + s->n_latest - shift) % s->n_latest : k;
        l->sorted[l->bucket[b]++] = l->rows[i];
    }
    anm_db_copy_buffer_reset(l->copy);
    for (size_t i = 0; i < l->n_rows; i++) {
        const writer_row *x = &l->sorted[i];
        anm_db_copy_row(l->copy, 4);
        anm_db_copy_int4(l->copy, (int32_t)x->signal_key);
        anm_db_copy_int4(l->copy, (int32_t)x->quality);
        anm_db_copy_timestamptz(l->copy, x->utc_ms * 1000);
        if (anm_db_copy_float8(l->copy, x->value) != ANM_OK)
            return ANM_ENOMEM;
    }
    l->prepared = 1;
    return ANM_OK;
}

static int is_stopping(ingest_service *s)
{
    pthread_mutex_lock(&s->lock);
    int v = s->stopping;
    pthread_mutex_unlock(&s->lock);
    return v;
}

/* Waits until every ticket before the lane's has committed: ANM_OK, or
 * ANM_ESTATE when the writer gives up (the drain timed out, or a lane failed). */
static int writer_wait_turn(ingest_service *s, writer_lane *l)
{
    int rc = ANM_OK;
    pthread_mutex_lock(&s->lock);
    while (s->w->committed_ticket + 1 < l->ticket) {
        if (s->stopping > 1 || s->w->failed) {
            rc = ANM_ESTATE;
            break;
        }
        pthread_cond_wait(&s->cond, &s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int writer_commit_once(ingest_service *s, writer_lane *l)
{
    anm_db *db = l->db;
    int rc;
    if (l->n_new_days > 0 && (rc = writer_wait_turn(s, l)) != ANM_OK)
        return rc; /* a barrier: no other transaction may be open */
    int64_t t_begin = anm_monotonic_ns(), t_copy = 0, t_turn = 0, t_latest = 0;
    if ((rc = anm_db_begin(db)) != ANM_OK)
        return rc;
    for (size_t i = 0; i < l->n_new_days; i++) {
        int y, m, d;
        anm_civil_from_days(l->new_days[i], &y, &m, &d);
        char day[16];
        snprintf(day, sizeof day, "%04d-%02d-%02d", y, m, d);
        const char *p[1] = {day};
        if ((rc = anm_db_exec(db, "SELECT anm_ensure_telemetry_partitions($1::date, 1)", 1, p,
                              NULL, NULL)) != ANM_OK)
            goto fail;
    }
    long long rows = 0;
    if (l->n_rows > 0 &&
        (rc = anm_db_copy_in(db, "COPY telemetry (signal_key, quality, time, value) FROM STDIN (FORMAT binary)",
                             l->copy, &rows)) != ANM_OK)
        goto fail;
    t_copy = anm_monotonic_ns();
    if ((rc = writer_wait_turn(s, l)) != ANM_OK)
        goto fail;
    t_turn = anm_monotonic_ns();
    /* one row per signal: the newest sample since the last upsert, unless a newer one is stored */
    const char *lp[4] = {l->keys.data, l->qualities.data, l->times.data, l->values.data};
    if (l->flush_latest && l->keys.size > 2)
        rc = anm_db_exec(db,
                     "INSERT INTO telemetry_latest AS l (signal_key, quality, time, value)"
                     " SELECT k, q, timestamptz 'epoch' + t * interval '1 millisecond', v"
                     " FROM unnest($1::int4[], $2::int4[], $3::int8[], $4::float8[]) AS u (k, q, t, v)"
                     " ON CONFLICT (signal_key) DO UPDATE"
                     " SET quality = excluded.quality, time = excluded.time, value = excluded.value"
                     " WHERE l.time < excluded.time",
                     4, lp, NULL, NULL);
    if (rc != ANM_OK)
        goto fail;
    t_latest = anm_monotonic_ns();
    char pos[32], latest_pos[32];
    snprintf(pos, sizeof pos, "%" PRIu64, l->end);
    snprintf(latest_pos, sizeof latest_pos, "%" PRIu64, l->latest_position);
    const char *pp[3] = {s->cfg->stream, pos, latest_pos};
    rc = anm_db_exec(db,
                     "INSERT INTO ingest_journal_position (stream, position, latest_position, updated_at)"
                     " VALUES ($1, $2, $3, now()) ON CONFLICT (stream) DO UPDATE"
                     " SET position = excluded.position, latest_position = excluded.latest_position,"
                     " updated_at = excluded.updated_at",
                     3, pp, NULL, NULL);
    if (rc != ANM_OK)
        goto fail;
    /* in its turn, so committed_senders is what the database holds */
    for (size_t i = 0; i < ingest_senders_count(l->pending); i++) {
        const ingest_sender_window *win = ingest_senders_at(l->pending, i);
        const ingest_sender_window *old = ingest_senders_find(s->committed_senders, win->sender_id);
        if (old && memcmp(old, win, sizeof *win) == 0)
            continue;
        unsigned char bytes[INGEST_SEQ_WINDOW_BYTES];
        char hex[2 * INGEST_SEQ_WINDOW_BYTES + 3], id[16], seq[32];
        ingest_sender_window_to_bytes(win, bytes);
        hex[0] = '\\';
        hex[1] = 'x';
        for (size_t k = 0; k < INGEST_SEQ_WINDOW_BYTES; k++)
            snprintf(hex + 2 + 2 * k, 3, "%02x", bytes[k]);
        snprintf(id, sizeof id, "%" PRIu32, win->sender_id);
        snprintf(seq, sizeof seq, "%" PRIu64, win->max_seq);
        const char *sp[4] = {s->cfg->stream, id, seq, hex};
        rc = anm_db_exec(db,
                         "INSERT INTO ingest_senders (stream, sender_id, max_seq, seq_window)"
                         " VALUES ($1, $2, $3, $4::bytea) ON CONFLICT (stream, sender_id) DO UPDATE"
                         " SET max_seq = excluded.max_seq, seq_window = excluded.seq_window,"
                         " updated_at = now()",
                         4, sp, NULL, NULL);
        if (rc != ANM_OK)
            goto fail;
    }
    int64_t t_pre_commit = anm_monotonic_ns();
    rc = anm_db_commit(db);
    if (rc != ANM_OK)
        goto fail;
    int64_t t_end = anm_monotonic_ns();
    if ((t_copy - t_begin) + (t_end - t_turn) >= 300000000) /* a stall: say which statement took the time */
        anm_log_info(COMPONENT,
                     "slow store of %zu rows on writer %d: copy %.0f ms, waiting for the turn %.0f,"
                     " latest %.0f, rest %.0f, commit %.0f",
                     l->n_rows, l->index, (double)(t_copy - t_begin) / 1e6,
                     (double)(t_turn - t_copy) / 1e6, (double)(t_latest - t_turn) / 1e6,
                     (double)(t_pre_commit - t_latest) / 1e6, (double)(t_end - t_pre_commit) / 1e6);
    return ANM_OK;
fail:
    (void)anm_db_rollback(db);
    return rc;
}

/* After the lane's batch committed (in its turn): publish the new state. */
static void writer_committed(ingest_service *s, writer_lane *l)
{
    for (size_t i = 0; i < l->n_new_days && s->n_known_days < 64; i++)
        s->known_days[s->n_known_days++] = l->new_days[i];
    ingest_senders *tmp = s->committed_senders;
    s->committed_senders = l->pending;
    l->pending = tmp;
    /* the journal keeps what telemetry_latest does not reflect yet (at most
       latest_interval_ms of records), for a restart to re-read */
    ingest_journal_set_committed(s->journal, l->latest_position);
    int64_t now = anm_clock_now_ms(s->clock);
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < l->n_rows; i++)
        ingest_latency_add(&s->latency, now - l->rows[i].utc_ms, 1);
    s->w->committed_ticket = l->ticket;
    if (s->w->barrier == l->ticket)
        s->w->barrier = 0;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_add(&s->committed_samples, l->n_rows);
    atomic_fetch_add(&s->committed_batches, l->batches);
    atomic_store(&s->db_connected, 1);
}

/* Commits the lane's batch, retrying with back-off until it is stored or the
   service stops. ANM_OK when stored, ANM_ESTATE when given up (stopping). */
static int writer_commit(ingest_service *s, writer_lane *l)
{
    long delay_ms = 100;
    anm_log_limiter lim;
    anm_log_limiter_init(&lim, 3, 0.2);
    if (!l->prepared && writer_prepare(s, l) != ANM_OK) {
        anm_log_error(COMPONENT, "writer: out of memory");
        return ANM_ENOMEM;
    }
    for (;;) {
        int rc = anm_db_is_connected(l->db) ? ANM_OK : ANM_EAGAIN;
        if (rc == ANM_OK)
            rc = writer_commit_once(s, l);
        if (rc == ANM_OK)
            break;
        pthread_mutex_lock(&s->lock);
        int abandon = s->stopping > 1 || s->w->failed;
        pthread_mutex_unlock(&s->lock);
        if (rc == ANM_ESTATE && abandon)
            return ANM_ESTATE; /* the journal keeps it for the next start */
        int lost = rc == ANM_EAGAIN || !anm_db_is_connected(l->db);
        if (lost)
            atomic_store(&s->db_connected, 0);
        if (anm_log_limiter_allow(&lim, anm_monotonic_ns() / 1000000))
            anm_log_error(COMPONENT, "could not store %zu samples (journal up to %" PRIu64 "): %s",
                          l->n_rows, l->end, anm_db_error_message(l->db));
        if (is_stopping(s)) {
            int done_waiting;
            pthread_mutex_lock(&s->lock);
            done_waiting = s->stopping > 1;
            pthread_mutex_unlock(&s->lock);
            if (done_waiting || lost)
                return ANM_ESTATE; /* the journal keeps it for the next start */
        }
        struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        delay_ms = delay_ms * 2 > 2000 ? 2000 : delay_ms * 2;
        if (lost && anm_db_reconnect(l->db) == ANM_OK)
            anm_log_info(COMPONENT, "database connection restored (writer %d)", l->index);
    }
    writer_committed(s, l);
    return ANM_OK;
}

/* Empties the lane's batch; it starts where the journal was formed up to. */
static void writer_reset_batch(ingest_service *s, writer_lane *l)
{
    anm_db_copy_buffer_reset(l->copy);
    l->n_rows = 0;
    l->prepared = 0;
    l->batches = 0;
    l->n_new_days = 0;
    l->flush_latest = 0;
    l->end = s->w->read_end;
}

/*
 * Forms the lane's next batch from the journal (taking form_lock): ANM_OK
 * when the lane has a batch (rows, or a due latest upsert) with its ticket,
 * ANM_ESTATE when the writer is done (stopped and everything stored, or
 * given up), another error when it cannot go on.
 */
static int writer_form(ingest_service *s, writer_lane *l)
{
    writer_shared *w = s->w;
    int rc = ANM_OK;
    pthread_mutex_lock(&w->form_lock);
    /* no batch is formed after a barrier until it has committed */
    pthread_mutex_lock(&s->lock);
    while (w->barrier != 0 && w->committed_ticket < w->barrier && s->stopping < 2 && !w->failed)
        pthread_cond_wait(&s->cond, &s->lock);
    int give_up = s->stopping > 1 || w->failed;
    pthread_mutex_unlock(&s->lock);
    if (give_up) {
        rc = ANM_ESTATE;
        goto out;
    }
    writer_reset_batch(s, l);
    for (;;) {
        pthread_mutex_lock(&s->lock);
        give_up = s->stopping > 1 || w->failed; /* the drain timed out: the journal keeps the rest */
        pthread_mutex_unlock(&s->lock);
        if (give_up) {
            rc = ANM_ESTATE;
            goto out;
        }
        uint64_t durable = ingest_journal_durable(s->journal);
        int more = 0;
        while (l->n_rows < (size_t)s->cfg->batch_max_rows) {
            const void *payload;
            size_t size;
            uint64_t end;
            rc = ingest_journal_reader_next(w->reader, durable, &payload, &size, &end);
            if (rc == ANM_EAGAIN) {
                rc = ANM_OK;
                break;
            }
            if (rc != ANM_OK) {
                anm_log_error(COMPONENT, "could not read journal at %" PRIu64 ": %s", l->end,
                              anm_strerror(rc));
                goto out;
            }
            if (l->n_rows == 0)
                l->opened_ns = anm_monotonic_ns();
            l->end = w->read_end = end;
            size_t before = l->n_rows;
            if (writer_add_record(s, l, payload, size) != ANM_OK) {
                anm_log_error(COMPONENT, "writer: out of memory");
                rc = ANM_ENOMEM;
                goto out;
            }
            for (size_t i = before; i < l->n_rows; i++)
                writer_note_latest(s, &l->rows[i]);
            if (end <= s->stored_position) {
                /* stored before a restart, but not yet in telemetry_latest */
                l->n_rows = before;
                l->batches--;
            }
            more = 1;
        }
        int stopping = is_stopping(s);
        int full = l->n_rows >= (size_t)s->cfg->batch_max_rows;
        int64_t age_ms = l->n_rows ? (anm_monotonic_ns() - l->opened_ns) / 1000000 : 0;
        int64_t flush_in_ms = s->cfg->latest_interval_ms - (anm_monotonic_ns() - w->flushed_ns) / 1000000;
        int latest_due = w->n_dirty > 0 && (stopping || flush_in_ms <= 0);
        if ((l->n_rows > 0 && (full || age_ms >= s->cfg->batch_max_age_ms || stopping)) ||
            (l->n_rows == 0 && latest_due && !more))
            break; /* the batch is formed */
        if (stopping && l->n_rows == 0 && w->n_dirty == 0 && ingest_journal_durable(s->journal) == l->end) {
            rc = ANM_ESTATE; /* drained: every record is in a formed batch */
            goto out;
        }
        if (more)
            continue;
        /* wait for new durable records or the batch's deadline */
        long wait_ms = l->n_rows ? s->cfg->batch_max_age_ms - age_ms : 200;
        if (w->n_dirty > 0 && flush_in_ms < wait_ms)
            wait_ms = (long)flush_in_ms;
        if (wait_ms < 1)
            wait_ms = 1;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&s->lock);
        if (!s->stopping && ingest_journal_durable(s->journal) == durable)
            pthread_cond_timedwait(&s->cond, &s->lock, &ts);
        pthread_mutex_unlock(&s->lock);
    }
    /* formed: its ticket, its latest upsert (when due) and its sender windows */
    int64_t now_ns = anm_monotonic_ns();
    l->flush_latest = s->cfg->latest_interval_ms == 0 || is_stopping(s) ||
                      now_ns - w->flushed_ns >= s->cfg->latest_interval_ms * 1000000;
    if (l->flush_latest) {
        if ((rc = writer_latest_arrays(s, l)) != ANM_OK) {
            anm_log_error(COMPONENT, "writer: out of memory");
            goto out;
        }
        w->flushed_ns = now_ns;
        w->latest_position = l->end;
    }
    l->latest_position = w->latest_position;
    ingest_senders_destroy(&l->pending);
    l->pending = ingest_senders_new();
    for (size_t i = 0; l->pending && i < ingest_senders_count(w->formed); i++)
        if (ingest_senders_put(l->pending, ingest_senders_at(w->formed, i)) != ANM_OK)
            ingest_senders_destroy(&l->pending);
    if (l->pending == NULL) {
        anm_log_error(COMPONENT, "writer: out of memory");
        rc = ANM_ENOMEM;
        goto out;
    }
    l->ticket = ++w->next_ticket;
    if (l->n_new_days > 0) {
        pthread_mutex_lock(&s->lock);
        w->barrier = l->ticket;
        pthread_mutex_unlock(&s->lock);
    }
out:
    pthread_mutex_unlock(&w->form_lock);
    return rc;
}

static void writer_fail(ingest_service *s)
{
    pthread_mutex_lock(&s->lock);
    s->w->failed = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void *writer_lane_main(void *arg)
{
    writer_lane *l = arg;
    ingest_service *s = l->s;
    for (;;) {
        int rc = writer_form(s, l);
        if (rc == ANM_ESTATE)
            break; /* drained, or given up: nothing of this lane's is in flight */
        if (rc == ANM_OK)
            rc = writer_commit(s, l);
        if (rc != ANM_OK) {
            /* given up or failed with a batch in flight: the later lanes must
               not wait for its turn (the journal keeps every record) */
            writer_fail(s);
            break;
        }
    }
    return NULL;
}

static void writer_lane_free(writer_lane *l)
{
    anm_db_copy_buffer_destroy(&l->copy);
    ingest_senders_destroy(&l->pending);
    free(l->rows);
    free(l->sorted);
    free(l->bucket);
    free(l->keys.data);
    free(l->qualities.data);
    free(l->times.data);
    free(l->values.data);
}

static void *writer_main(void *arg)
{
    ingest_service *s = arg;
    writer_shared *w = s->w;
    writer_lane lanes[INGEST_MAX_WRITERS];
    size_t n = s->n_lanes, started = 0;
    memset(lanes, 0, sizeof lanes);
    w->read_end = w->latest_position = ingest_journal_committed(s->journal);
    /* due at once: records re-read after a restart reach telemetry_latest promptly */
    w->flushed_ns = anm_monotonic_ns() - s->cfg->latest_interval_ms * 1000000;
    w->latest = calloc(s->n_latest ? s->n_latest : 1, sizeof *w->latest);
    w->formed = ingest_senders_new();
    for (size_t i = 0; w->formed && i < ingest_senders_count(s->committed_senders); i++)
        ingest_senders_put(w->formed, ingest_senders_at(s->committed_senders, i));
    int ok = w->latest && w->formed &&
             ingest_journal_reader_new(s->journal, w->read_end, &w->reader) == ANM_OK;
    for (size_t i = 0; ok && i < n; i++) {
        lanes[i] = (writer_lane){.s = s, .index = (int)i, .db = s->lane_db[i]};
        lanes[i].copy = anm_db_copy_buffer_new();
        ok = lanes[i].copy != NULL;
    }
    if (!ok) {
        anm_log_error(COMPONENT, "writer: out of memory");
        goto out;
    }
    for (size_t i = 1; i < n; i++, started++)
        if (pthread_create(&lanes[i].thread, NULL, writer_lane_main, &lanes[i]) != 0) {
            anm_log_error(COMPONENT, "writer: could not start writer thread %zu", i);
            writer_fail(s);
            break;
        }
    writer_lane_main(&lanes[0]);
    for (size_t i = 1; i <= started; i++)
        pthread_join(lanes[i].thread, NULL);
out:
    for (size_t i = 0; i < n; i++)
        writer_lane_free(&lanes[i]);
    ingest_journal_reader_destroy(&w->reader);
    ingest_senders_destroy(&w->formed);
    free(w->latest);
    w->latest = NULL;
    pthread_mutex_lock(&s->lock);
    s->writer_done = 1;
    pthread_mutex_unlock(&s->lock);
    anm_reactor_wake(s->reactor);
    return NULL;
}

/* ---- receive path ------------------------------------------------------- */

static const char *validate(ingest_service *s, const anm_telemetry_batch *b, char *text,
                            size_t size)
{
    int64_t now = engine_now(s);
    int64_t lo = now - s->cfg->max_past_s * 1000, hi = now + s->cfg->max_future_s * 1000;
    for (size_t i = 0; i < b->count; i++) {
        const anm_telemetry_sample *x = &b->samples[i];
        if (x->signal_id >= s->n_latest || !s->latest[x->signal_id].known) {
            snprintf(text, size, "sample %zu: unknown signal %" PRIu32, i, x->signal_id);
            return INGEST_REASON_UNKNOWN_SIGNAL;
        }
        if (x->utc_ms < lo || x->utc_ms > hi) {
            char t[32], n[32];
            anm_time_format_utc(x->utc_ms, t, sizeof t);
            anm_time_format_utc(now, n, sizeof n);
            snprintf(text, size, "sample %zu (signal %" PRIu32 "): time %s outside [now - %lds, now + %lds] of %s",
                     i, x->signal_id, t, s->cfg->max_past_s, s->cfg->max_future_s, n);
            return INGEST_REASON_TIME_RANGE;
        }
        if (x->quality & ~INGEST_QUALITY_ALLOWED) {
            snprintf(text, size, "sample %zu (signal %" PRIu32 "): quality 0x%04x has undefined bits (allowed 0x%04x)",
                     i, x->signal_id, (unsigned)x->quality, INGEST_QUALITY_ALLOWED);
            return INGEST_REASON_BAD_QUALITY;
        }
    }
    return NULL;
}

static void note_latest(ingest_service *s, const anm_telemetry_batch *b)
{
    for (size_t i = 0; i < b->count; i++) {
        const anm_telemetry_sample *x = &b->samples[i];
        latest_value *l = &s->latest[x->signal_id];
        if (x->utc_ms >= l->utc_ms) {
            l->utc_ms = x->utc_ms;
            l->value = x->value;
            l->quality = x->quality;
            l->dirty = 1;
        }
    }
}

/* Journals b (already validated): drops samples seen recently, appends. */
static int journal_batch(ingest_service *s, anm_telemetry_batch *b, const void *raw, size_t raw_size,
                         int raw_is_binary, size_t *stored, int *full)
{
    *full = 0;
    size_t kept = 0;
    for (size_t i = 0; i < b->count; i++) {
        const anm_telemetry_sample *x = &b->samples[i];
        if (ingest_recent_insert(s->recent, x->signal_id, x->utc_ms))
            b->samples[kept++] = *x;
    }
    size_t dropped = b->count - kept;
    int unchanged = dropped == 0;
    b->count = kept;
    *stored = kept;
    s->duplicate_samples += dropped;
    if (kept == 0)
        return ANM_OK;
    const void *payload = raw;
    size_t size = raw_size;
    if (!unchanged || !raw_is_binary) {
        size = anm_telemetry_frame_size(kept);
        int rc = ensure_scratch(s, size);
        uint8_t flags = b->flags;
        b->flags = 0;
        if (rc == ANM_OK)
            rc = anm_telemetry_encode(b, s->scratch, s->scratch_cap, &size);
        b->flags = flags;
        if (rc != ANM_OK)
            return rc;
        payload = s->scratch;
    }
    int rc = ingest_journal_append(s->journal, payload, size, NULL);
    if (rc != ANM_OK) {
        for (size_t i = 0; i < kept; i++)
            ingest_recent_remove(s->recent, b->samples[i].signal_id, b->samples[i].utc_ms);
        if (rc == ANM_EFULL) {
            *full = 1;
            return ANM_OK;
        }
        return rc;
    }
    s->journaled_samples += kept;
    return ANM_OK;
}

static int queue_ack(ingest_service *s, const void *route, size_t route_size, uint32_t sender_id,
                     uint64_t seq, size_t count)
{
    if (s->n_acks == s->cap_acks) {
        size_t cap = s->cap_acks ? s->cap_acks * 2 : 64;
        pending_ack *p = realloc(s->acks, cap * sizeof *p);
        if (!p)
            return ANM_ENOMEM;
        s->acks = p;
        s->cap_acks = cap;
    }
    pending_ack *a = &s->acks[s->n_acks++];
    a->route_size = route_size < sizeof a->route ? route_size : sizeof a->route;
    memcpy(a->route, route, a->route_size);
    a->sender_id = sender_id;
    a->seq = seq;
    a->count = count;
    return ANM_OK;
}

static int handle_batch(ingest_service *s, const void *route, size_t route_size, const void *body,
                        size_t body_size)
{
    anm_telemetry_reject why;
    anm_telemetry_batch *b = &s->batch;
    int rc = anm_telemetry_decode_any(body, body_size, &s->limits, b, &why);
    if (rc == ANM_ENOMEM)
        return rc;
    if (rc != ANM_OK)
        return reject(s, route, route_size, why.have_header, b->sender_id, b->seq,
                      anm_telemetry_reason_code(why.reason), why.text);
    s->received_batches++;
    s->received_samples += b->count;
    char text[256];
    const char *reason = validate(s, b, text, sizeof text);
    if (reason)
        return reject(s, route, route_size, 1, b->sender_id, b->seq, reason, text);
    size_t count = b->count;
    ingest_seq_state st = ingest_senders_check(s->senders, b->sender_id, b->seq);
    if (st == INGEST_SEQ_STALE) {
        snprintf(text, sizeof text,
                 "seq %" PRIu64 " of sender %" PRIu32 " is more than %d below its newest batch",
                 b->seq, b->sender_id, INGEST_SEQ_WINDOW);
        return reject(s, route, route_size, 1, b->sender_id, b->seq, INGEST_REASON_STALE_SEQ, text);
    }
    if (st == INGEST_SEQ_SEEN) {
        /* a resend of a journaled batch: acknowledge once it is durable */
        s->duplicate_batches++;
        s->duplicate_samples += count;
        return queue_ack(s, route, route_size, b->sender_id, b->seq, count);
    }
    size_t stored;
    int full;
    int binary = body_size > 0 && ((const unsigned char *)body)[0] == 'A';
    rc = journal_batch(s, b, body, body_size, binary, &stored, &full);
    if (rc != ANM_OK) {
        anm_log_error(COMPONENT, "could not append to the journal: %s", anm_strerror(rc));
        return rc;
    }
    if (full) {
        if (!s->journal_full || anm_log_limiter_allow(&s->alarm_log, anm_monotonic_ns() / 1000000))
            anm_log_error(COMPONENT,
                          "alarm: journal full (%" PRIu64 " bytes not yet stored, bound %ld MiB):"
                          " refusing batches until the database catches up",
                          ingest_journal_appended(s->journal) - ingest_journal_committed(s->journal),
                          s->cfg->journal_max_mb);
        s->journal_full = 1;
        snprintf(text, sizeof text, "journal full: %ld MiB not yet stored in the database",
                 s->cfg->journal_max_mb);
        return reject(s, route, route_size, 1, b->sender_id, b->seq, INGEST_REASON_JOURNAL_FULL,
                      text);
    }
    if (s->journal_full) {
        anm_log_info(COMPONENT, "journal below its bound again: accepting batches");
        s->journal_full = 0;
    }
    if ((rc = ingest_senders_mark(s->senders, b->sender_id, b->seq)) != ANM_OK)
        return rc;
    note_latest(s, b);
    return queue_ack(s, route, route_size, b->sender_id, b->seq, count);
}

static int handle_status_request(ingest_service *s, const void *route, size_t route_size,
                                 const void *topic, size_t topic_size, const void *body,
                                 size_t body_size)
{
    json_t *req = NULL;
    anm_bus_reject why;
    /* the built-in ingest.status.request (docs/protocol.md) plus the
       service's own optional "reset_latency" (docs/ingest.md) */
    static const anm_field_spec fields[] = {{"id", ANM_FIELD_STRING, 0, 0, 0},
                                            {"reset_latency", ANM_FIELD_BOOLEAN, 0, 0, 0},
                                            {NULL, ANM_FIELD_STRING, 0, 0, 0}};
    static const anm_bus_schema schema[] = {{"ingest.status.request", 1, 4096, 0, fields}};
    int rc = anm_bus_parse_json(schema, 1, topic, topic_size, body, body_size, &req, NULL, &why);
    if (rc != ANM_OK) {
        const char *code = anm_bus_reason_code(why.reason);
        count_reason(s, code);
        return send_json(s, route, route_size, "telemetry.reject",
                         anm_telemetry_reject_json(0, 0, 0, code, why.text));
    }
    const char *id = json_string_value(json_object_get(req, "id"));
    json_t *status = ingest_service_status(s, id);
    if (json_is_true(json_object_get(req, "reset_latency"))) {
        /* the report above closes a measurement window; the next one starts empty */
        pthread_mutex_lock(&s->lock);
        ingest_latency_reset(&s->latency);
        pthread_mutex_unlock(&s->lock);
    }
    json_decref(req);
    return send_json(s, route, route_size, "ingest.status", status);
}

static int flush_acks(ingest_service *s)
{
    if (s->n_acks == 0)
        return ANM_OK;
    int rc = ingest_journal_sync(s->journal); /* group commit: one fdatasync for all */
    if (rc != ANM_OK)
        return rc;
    pthread_mutex_lock(&s->lock);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < s->n_acks; i++) {
        pending_ack *a = &s->acks[i];
        s->acked_batches++;
        s->acked_samples += a->count;
        if ((rc = send_json(s, a->route, a->route_size, "telemetry.ack",
                            anm_telemetry_ack_json(a->sender_id, a->seq, a->count))) != ANM_OK)
            break;
    }
    s->n_acks = 0;
    return rc;
}

static int on_router(anm_reactor *reactor, anm_socket *socket, void *arg)
{
    (void)reactor;
    ingest_service *s = arg;
    int rc = ANM_OK;
    for (int n = 0; n < MAX_DRAIN_MESSAGES && rc == ANM_OK; n++) {
        anm_msg *msg = NULL;
        rc = anm_socket_recv(socket, &msg, ANM_BUS_DONTWAIT);
        if (rc == ANM_EAGAIN) {
            rc = ANM_OK;
            break;
        }
        if (rc == ANM_EPROTO) { /* too many parts: no way to know whom to answer */
            count_reason(s, "bad_envelope");
            rc = ANM_OK;
            continue;
        }
        if (rc != ANM_OK)
            break;
        size_t route_size, topic_size, body_size;
        const void *route = anm_msg_part(msg, 0, &route_size);
        const void *topic = anm_msg_part(msg, 1, &topic_size);
        const void *body = anm_msg_part(msg, 2, &body_size);
        size_t kind_len = 0;
        if (anm_msg_parts(msg) != 3 || anm_bus_topic_kind(topic, topic_size, &kind_len) != ANM_OK) {
            rc = reject(s, route, route_size, 0, 0, 0, "bad_envelope",
                        "expected [topic][body] parts with a well-formed topic");
        } else if (kind_len == strlen(ANM_TELEMETRY_TOPIC) &&
                   memcmp(topic, ANM_TELEMETRY_TOPIC, kind_len) == 0) {
            rc = handle_batch(s, route, route_size, body, body_size);
        } else if (kind_len == strlen("ingest.status.request") &&
                   memcmp(topic, "ingest.status.request", kind_len) == 0) {
            rc = handle_status_request(s, route, route_size, topic, topic_size, body, body_size);
        } else {
            char text[200];
            snprintf(text, sizeof text, "no message kind \"%.*s\" on the ingest socket",
                     (int)(kind_len > 100 ? 100 : kind_len), (const char *)topic);
            rc = reject(s, route, route_size, 0, 0, 0, "unknown_kind", text);
        }
        anm_msg_destroy(&msg);
    }
    int rc2 = flush_acks(s);
    return rc != ANM_OK ? rc : rc2;
}

static int on_publish(anm_reactor *reactor, int timer_id, void *arg)
{
    (void)reactor;
    (void)timer_id;
    ingest_service *s = arg;
    if (!s->pub)
        return ANM_OK;
    for (size_t z = 0; z < s->n_zones; z++) {
        json_t *samples = json_array();
        if (!samples)
            return ANM_ENOMEM;
        for (size_t k = 0; k < s->n_latest; k++) {
            latest_value *l = &s->latest[k];
            if (!l->known || !l->dirty || l->zone != z)
                continue;
            l->dirty = 0;
            json_array_append_new(samples, json_pack("[I,I,f,i]", (json_int_t)k,
                                                     (json_int_t)l->utc_ms, l->value,
                                                     (int)l->quality));
        }
        if (json_array_size(samples) > 0) {
            char topic[300];
            snprintf(topic, sizeof topic, "signal.latest/%s", s->zones[z]);
            json_t *body = json_pack("{s:i, s:s, s:s, s:o}", "v", 1, "kind", "signal.latest", "zone",
                                     s->zones[z], "samples", samples);
            if (body) {
                (void)anm_bus_send_json(s->pub, NULL, topic, body, ANM_BUS_DONTWAIT);
                json_decref(body);
            }
        } else {
            json_decref(samples);
        }
    }
    return ANM_OK;
}

static int on_rates(anm_reactor *reactor, int timer_id, void *arg)
{
    (void)reactor;
    (void)timer_id;
    ingest_service *s = arg;
    int64_t now = anm_monotonic_ns();
    double dt = (double)(now - s->last_rate_ns) / 1e9;
    unsigned long long committed = atomic_load(&s->committed_samples);
    if (dt > 0) {
        s->rate_in = (double)(s->acked_samples - s->last_acked) / dt;
        s->rate_commit = (double)(committed - s->last_committed) / dt;
    }
    s->last_acked = s->acked_samples;
    s->last_committed = committed;
    s->last_rate_ns = now;
    return ANM_OK;
}

static int on_drain(anm_reactor *reactor, int signal_number, void *arg)
{
    ingest_service *s = arg;
    pthread_mutex_lock(&s->lock);
    if (!s->stopping) {
        anm_log_info(COMPONENT, "signal %d: draining (journal %" PRIu64 " bytes not yet stored)",
                     signal_number,
                     ingest_journal_durable(s->journal) - ingest_journal_committed(s->journal));
        if (s->router)
            anm_reactor_remove_socket(reactor, s->router);
        s->stopping = 1;
        pthread_cond_broadcast(&s->cond);
    }
    int done = s->writer_done;
    pthread_mutex_unlock(&s->lock);
    if (!done)
        return ANM_EAGAIN;
    on_publish(reactor, 0, s);
    return ANM_OK;
}

json_t *ingest_service_status(ingest_service *s, const char *id)
{
    char now[32];
    anm_time_format_utc(engine_now(s), now, sizeof now);
    json_t *rejects = json_object();
    for (size_t i = 0; rejects && i < s->n_reasons; i++)
        json_object_set_new(rejects, s->reasons[i].code, json_integer((json_int_t)s->reasons[i].count));
    double p50, p99;
    uint64_t n;
    pthread_mutex_lock(&s->lock);
    p50 = ingest_latency_quantile(&s->latency, 0.50);
    p99 = ingest_latency_quantile(&s->latency, 0.99);
    n = s->latency.total;
    pthread_mutex_unlock(&s->lock);
    unsigned long long committed = atomic_load(&s->committed_samples);
    uint64_t appended = ingest_journal_appended(s->journal);
    uint64_t done = ingest_journal_committed(s->journal);
    json_t *o = json_pack(
        "{s:i, s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f,"
        " s:{s:f, s:f, s:I}, s:b, s:b, s:I}",
        "v", 1, "kind", "ingest.status", "time", now, "journal_depth",
        (json_int_t)(s->journaled_samples > committed ? s->journaled_samples - committed : 0),
        "journal_bytes", (json_int_t)(appended - done), "journal_max_bytes",
        (json_int_t)s->cfg->journal_max_mb << 20, "journal_segments",
        (json_int_t)ingest_journal_segments(s->journal), "rejects", rejects ? rejects : json_object(),
        "received_batches", (json_int_t)s->received_batches, "received_samples",
        (json_int_t)s->received_samples, "acked_batches", (json_int_t)s->acked_batches,
        "acked_samples", (json_int_t)s->acked_samples, "committed_samples", (json_int_t)committed,
        "duplicate_batches", (json_int_t)s->duplicate_batches, "duplicate_samples",
        (json_int_t)s->duplicate_samples, "rate_in_per_s", s->rate_in, "rate_commit_per_s",
        s->rate_commit, "latency_ms", "p50", p50, "p99", p99, "count", (json_int_t)n,
        "db_connected", atomic_load(&s->db_connected) != 0, "journal_full", s->journal_full != 0,
        "lag_bytes", (json_int_t)(appended - done));
    if (o && id)
        json_object_set_new(o, "id", json_string(id));
    return o;
}

/* ---- lifecycle ---------------------------------------------------------- */

/* Replays the journal's uncommitted records into the in-memory state. */
static int replay_journal(ingest_service *s, uint64_t committed)
{
    ingest_journal_reader *r = NULL;
    int rc = ingest_journal_reader_new(s->journal, committed, &r);
    if (rc != ANM_OK)
        return rc;
    uint64_t limit = ingest_journal_durable(s->journal), end;
    const void *payload;
    size_t size, records = 0;
    while ((rc = ingest_journal_reader_next(r, limit, &payload, &size, &end)) == ANM_OK) {
        if (anm_telemetry_decode(payload, size, &s->limits, &s->batch, NULL) != ANM_OK)
            continue;
        if (end > s->stored_position) { /* below it: stored, kept only for telemetry_latest */
            records++;
            s->journaled_samples += s->batch.count;
        }
        ingest_senders_mark(s->senders, s->batch.sender_id, s->batch.seq);
        for (size_t i = 0; i < s->batch.count; i++)
            ingest_recent_insert(s->recent, s->batch.samples[i].signal_id,
                                 s->batch.samples[i].utc_ms);
    }
    ingest_journal_reader_destroy(&r);
    if (rc != ANM_EAGAIN)
        return rc;
    if (records)
        anm_log_info(COMPONENT, "journal replay: %zu batches (%llu samples) not yet stored",
                     records, s->journaled_samples);
    return ANM_OK;
}

int ingest_service_new(const ingest_config *cfg, ingest_service **out, anm_error_detail *detail)
{
    int rc;
    *out = NULL;
    ingest_service *s = calloc(1, sizeof *s);
    if (!s)
        return ANM_ENOMEM;
    s->cfg = cfg;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    anm_telemetry_batch_init(&s->batch);
    anm_log_limiter_init(&s->reject_log, 20, 5);
    anm_log_limiter_init(&s->alarm_log, 1, 0.1);
    s->limits.max_samples = (size_t)cfg->max_batch_samples;
    s->last_rate_ns = anm_monotonic_ns();
    if ((rc = anm_clock_new_from_spec(cfg->clock, &s->clock)) != ANM_OK) {
        anm_error_detail_set(detail, NULL, 0, 0, "clock", "invalid clock \"%s\"", cfg->clock);
        goto fail;
    }
    s->senders = ingest_senders_new();
    s->committed_senders = ingest_senders_new();
    s->recent = ingest_recent_new((int)cfg->dedupe_window_log2);
    if (!s->senders || !s->committed_senders || !s->recent) {
        rc = ANM_ENOMEM;
        goto fail;
    }
    anm_db_options dbo = {.component = "ingest.db", .connect_timeout_s = 5,
                          .backoff_initial_ms = 100, .backoff_max_ms = 2000, .max_attempts = 1};
    const char *conninfo = anm_db_conninfo(cfg->conninfo);
    if (!conninfo) {
        anm_error_detail_set(detail, NULL, 0, 0, "conninfo", "no database connection string");
        rc = ANM_ECONFIG;
        goto fail;
    }
    rc = anm_db_connect(conninfo, &dbo, &s->db);
    for (int attempt = 0; rc == ANM_EAGAIN && attempt < 20; attempt++)
        rc = anm_db_reconnect(s->db);
    if (rc != ANM_OK) {
        anm_error_detail_set(detail, NULL, 0, 0, "conninfo", "could not connect to the database: %s",
                             s->db ? anm_db_error_message(s->db) : anm_strerror(rc));
        goto fail;
    }
    atomic_store(&s->db_connected, 1);
    s->w = calloc(1, sizeof *s->w);
    if (!s->w) {
        rc = ANM_ENOMEM;
        goto fail;
    }
    pthread_mutex_init(&s->w->form_lock, NULL);
    s->lane_db[0] = s->db;
    s->n_lanes = 1;
    for (long i = 1; i < cfg->writers; i++) {
        rc = anm_db_connect(conninfo, &dbo, &s->lane_db[i]);
        for (int attempt = 0; rc == ANM_EAGAIN && attempt < 20; attempt++)
            rc = anm_db_reconnect(s->lane_db[i]);
        if (rc != ANM_OK) {
            anm_error_detail_set(detail, NULL, 0, 0, "conninfo",
                                 "could not open writer connection %ld: %s", i + 1,
                                 s->lane_db[i] ? anm_db_error_message(s->lane_db[i]) : anm_strerror(rc));
            goto fail;
        }
        s->n_lanes++;
    }
    uint64_t committed = 0;
    if ((rc = load_registry(s, s->db)) != ANM_OK || (rc = load_state(s, s->db, &committed)) != ANM_OK) {
        anm_error_detail_set(detail, NULL, 0, 0, NULL, "could not read the registry and position: %s",
                             anm_db_error_message(s->db));
        goto fail;
    }
    ingest_journal_options jo = {.dir = cfg->journal_dir,
                                 .segment_bytes = (uint64_t)cfg->segment_mb << 20,
                                 .max_bytes = (uint64_t)cfg->journal_max_mb << 20};
    if ((rc = ingest_journal_open(&jo, committed, &s->journal, detail)) != ANM_OK)
        goto fail;
    if ((rc = replay_journal(s, committed)) != ANM_OK) {
        anm_error_detail_set(detail, cfg->journal_dir, 0, 0, NULL, "could not replay the journal");
        goto fail;
    }
    if ((rc = anm_bus_new(&s->bus)) != ANM_OK)
        goto fail;
    anm_socket_options so;
    anm_socket_options_default(&so);
    so.max_message_bytes = (int64_t)(16u << 20) + 4096;
    so.recv_hwm = 10000;
    so.send_hwm = 100000;
    if ((rc = anm_socket_new(s->bus, ANM_SOCKET_ROUTER, cfg->endpoint, &so, &s->router, detail)) != ANM_OK)
        goto fail;
    if (cfg->publish_endpoint && cfg->publish_endpoint[0]) {
        anm_socket_options_default(&so);
        if ((rc = anm_socket_new(s->bus, ANM_SOCKET_PUB, cfg->publish_endpoint, &so, &s->pub,
                                 detail)) != ANM_OK)
            goto fail;
    }
    if ((rc = anm_reactor_new(s->clock, &s->reactor)) != ANM_OK)
        goto fail;
    *out = s;
    return ANM_OK;
fail:
    ingest_service_destroy(&s);
    return rc;
}

int ingest_service_run(ingest_service *s)
{
    int rc;
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0)
        return ANM_EINTERNAL;
    s->writer_started = 1;
    char where[256] = "";
    anm_socket_last_endpoint(s->router, where, sizeof where);
    anm_log_info(COMPONENT, "listening on \"%s\"", where);
    if (s->pub) {
        anm_socket_last_endpoint(s->pub, where, sizeof where);
        anm_log_info(COMPONENT, "publishing signal.latest on \"%s\"", where);
    }
    if ((rc = anm_reactor_add_socket(s->reactor, s->router, on_router, s)) != ANM_OK ||
        (rc = anm_reactor_add_timer(s->reactor, s->cfg->publish_interval_ms,
                                    s->cfg->publish_interval_ms, on_publish, s, NULL)) != ANM_OK ||
        (rc = anm_reactor_handle_signals(s->reactor, on_drain, s)) != ANM_OK)
        return rc;
    /* rates on real time: a 1 s timer on the engine clock would misreport a fast sim clock */
    if (!anm_clock_is_simulated(s->clock))
        anm_reactor_add_timer(s->reactor, 1000, 1000, on_rates, s, NULL);
    anm_reactor_set_drain_timeout(s->reactor, 30000);
    rc = anm_reactor_run(s->reactor);
    anm_log_info(COMPONENT, "stopped: %llu samples acked, %llu stored",
                 s->acked_samples, atomic_load(&s->committed_samples));
    return rc;
}

void ingest_service_destroy(ingest_service **sp)
{
    if (!sp || !*sp)
        return;
    ingest_service *s = *sp;
    if (s->writer_started) {
        pthread_mutex_lock(&s->lock);
        s->stopping = 2; /* stop now: what is not stored stays in the journal */
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->writer, NULL);
    }
    anm_reactor_destroy(&s->reactor);
    anm_socket_destroy(&s->router);
    anm_socket_destroy(&s->pub);
    anm_bus_destroy(&s->bus);
    ingest_journal_close(&s->journal);
    anm_db_destroy(&s->db);
    for (size_t i = 1; i < INGEST_MAX_WRITERS; i++)
        anm_db_destroy(&s->lane_db[i]);
    if (s->w) {
        pthread_mutex_destroy(&s->w->form_lock);
        free(s->w);
    }
    ingest_senders_destroy(&s->senders);
    ingest_senders_destroy(&s->committed_senders);
    ingest_recent_destroy(&s->recent);
    anm_telemetry_batch_free(&s->batch);
    for (size_t i = 0; i < s->n_zones; i++)
        free(s->zones[i]);
    free(s->zones);
    free(s->latest);
    free(s->scratch);
    free(s->acks);
    anm_clock_destroy(&s->clock);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
    *sp = NULL;
}

/* ---- --status client ---------------------------------------------------- */

static int status_query(const char *endpoint, int timeout_ms, int reset_latency, json_t **out);

int ingest_status_query(const char *endpoint, int timeout_ms, json_t **out)
{
    return status_query(endpoint, timeout_ms, 0, out);
}

int ingest_status_query_window(const char *endpoint, int timeout_ms, json_t **out)
{
    return status_query(endpoint, timeout_ms, 1, out);
}

static int status_query(const char *endpoint, int timeout_ms, int reset_latency, json_t **out)
{
    json_t *request = json_pack("{s:i, s:s, s:s, s:b}", "v", 1, "kind", "ingest.status.request",
                                "id", "status", "reset_latency", reset_latency);
    if (request == NULL) {
        *out = NULL;
        return ANM_ENOMEM;
    }
    int rc = anm_bus_request_json(endpoint, "ingest.status.request", request, timeout_ms, out);
    json_decref(request);
    return rc;
}
