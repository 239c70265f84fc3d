/*
 * test_ingest.c: anm-ingest as a real process against a real PostgreSQL
 * (scripts/pg via pg_harness) over real ZeroMQ: counts, de-duplication,
 * kill -9 and restart, a database outage with a full journal, malformed
 * input of every kind, and anm replay.
 */
#include "engine/bus.h"
#include "engine/clock.h"
#include "engine/db.h"
#include "engine/telemetry_frame.h"
#include "pg_harness.h"
#include "testlib.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

typedef struct ingest_proc {
    pid_t pid;
    char endpoint[256];
    char log[1024];
} ingest_proc;

typedef struct fixture {
    char conninfo[1024];
    char *dir;
    char config[1024];
    uint32_t keys[8];
    size_t n_keys;
    anm_bus *bus;
    anm_socket *dealer;
} fixture;

/* Migrates, loads feeder33 and writes the ingest config (extra: more JSON keys). */
static void setup_db(fixture *f, const char *conninfo, const char *extra)
{
    char bin[1024], zones[1024], sql[1024];
    snprintf(f->conninfo, sizeof f->conninfo, "%s", conninfo);
    snprintf(bin, sizeof bin, "%s/anm", anm_test_bin_dir());
    anm_test_source_path(zones, sizeof zones, "data/zones/feeder33.json");
    anm_test_source_path(sql, sizeof sql, "sql");
    const char *migrate[] = {bin, "db", "migrate", "--conninfo", conninfo, "--sql-dir", sql, NULL};
    char *err = NULL;
    cr_assert_eq(anm_test_run_args(migrate, NULL, &err), 0, "migrate: %s", err);
    free(err);
    const char *load[] = {bin, "db", "load", zones, "--conninfo", conninfo, NULL};
    cr_assert_eq(anm_test_run_args(load, NULL, &err), 0, "load: %s", err);
    free(err);
    anm_db *db = NULL;
    anm_db_result *r = NULL;
    cr_assert_eq(anm_db_connect(conninfo, NULL, &db), ANM_OK);
    cr_assert_eq(anm_db_exec(db, "SELECT signal_key FROM signals ORDER BY signal_key", 0, NULL, &r, NULL), ANM_OK);
    f->n_keys = (size_t)anm_db_result_rows(r);
    cr_assert_eq(f->n_keys, 6, "feeder33 has 6 signals");
    for (size_t i = 0; i < f->n_keys; i++)
        f->keys[i] = (uint32_t)strtoul(anm_db_result_value(r, (int)i, 0), NULL, 10);
    anm_db_result_destroy(&r);
    anm_db_destroy(&db);
    f->dir = anm_test_tmpdir("ingest");
    snprintf(f->config, sizeof f->config, "%s/ingest.json", f->dir);
    char text[4096];
    snprintf(text, sizeof text,
             "{\"endpoint\": \"@tcp://127.0.0.1:*\", \"publish_endpoint\": \"\","
             " \"journal_dir\": \"%s/journal\", \"conninfo\": \"%s\", \"batch_max_age_ms\": 20%s%s}",
             f->dir, conninfo, extra ? ", " : "", extra ? extra : "");
    cr_assert_eq(anm_test_write_file(f->config, text), 0);
}

/* Starts anm-ingest and waits for its "listening on" line. */
static void start_ingest(fixture *f, ingest_proc *p)
{
    static int n;
    snprintf(p->log, sizeof p->log, "%s/ingest-%d.log", f->dir, n++);
    char bin[1024];
    snprintf(bin, sizeof bin, "%s/anm-ingest", anm_test_bin_dir());
    p->pid = fork();
    cr_assert_neq(p->pid, -1);
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        FILE *log = freopen(p->log, "w", stderr);
        (void)log;
        unsetenv("ANM_DB_CONNINFO");
        execl(bin, bin, "--config", f->config, "--log-level", "info", (char *)NULL);
        _exit(127);
    }
    int64_t deadline = anm_monotonic_ns() + 15000000000LL;
    p->endpoint[0] = '\0';
    while (anm_monotonic_ns() < deadline) {
        char *text = anm_test_read_file(p->log, NULL);
        const char *at = text ? strstr(text, "listening on \\\"") : NULL;
        if (at) {
            at += strlen("listening on \\\"");
            size_t len = strcspn(at, "\\");
            snprintf(p->endpoint, sizeof p->endpoint, "%.*s", (int)len, at);
            free(text);
            break;
        }
        free(text);
        int status;
        cr_assert_eq(waitpid(p->pid, &status, WNOHANG), 0, "anm-ingest exited early, log: %s", p->log);
        anm_test_sleep_ms(20);
    }
    cr_assert(p->endpoint[0], "anm-ingest did not start");
}

/* SIGTERM (drain) or SIGKILL; returns the exit status (or -signal). */
static int stop_ingest(ingest_proc *p, int sig)
{
    kill(p->pid, sig);
    int status = 0;
    waitpid(p->pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

static void connect_sender(fixture *f, const ingest_proc *p)
{
    anm_socket_destroy(&f->dealer);
    if (!f->bus)
        cr_assert_eq(anm_bus_new(&f->bus), ANM_OK);
    char ep[300];
    snprintf(ep, sizeof ep, ">%s", p->endpoint);
    anm_socket_options so;
    anm_socket_options_default(&so);
    so.identity = "test-sender";
    cr_assert_eq(anm_socket_new(f->bus, ANM_SOCKET_DEALER, ep, &so, &f->dealer, NULL), ANM_OK);
}

static void teardown_fixture(fixture *f)
{
    anm_socket_destroy(&f->dealer);
    anm_bus_destroy(&f->bus);
    if (f->dir) {
        anm_test_rmtree(f->dir);
        free(f->dir);
    }
}

static void send_raw(fixture *f, const char *topic, const void *body, size_t size)
{
    anm_frame parts[2] = {{topic, strlen(topic)}, {body, size}};
    cr_assert_eq(anm_socket_send(f->dealer, parts, 2, 0), ANM_OK);
}

/* Builds batch seq of n samples: signal keys[i % 6], times base + i*10 ms. */
static size_t make_frame(fixture *f, uint64_t seq, size_t n, int64_t base_ms, unsigned char **out)
{
    anm_telemetry_batch b;
    anm_telemetry_batch_init(&b);
    b.sender_id = 7;
    b.seq = seq;
    for (size_t i = 0; i < n; i++)
        anm_telemetry_batch_push(&b, f->keys[i % f->n_keys], base_ms + (int64_t)i * 10,
                                 (double)i * 0.5, 0);
    size_t size = anm_telemetry_frame_size(n);
    *out = malloc(size);
    cr_assert_eq(anm_telemetry_encode(&b, *out, size, NULL), ANM_OK);
    anm_telemetry_batch_free(&b);
    return size;
}

typedef struct reply {
    char topic[64];
    char code[64];
    char text[256];
    long long seq;
} reply;

/* Receives one reply (cr_assert within timeout_ms); returns 0 on timeout. */
static int recv_reply(fixture *f, reply *r, long timeout_ms)
{
    zmq_pollitem_t item = {anm_socket_handle(f->dealer), 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout_ms) <= 0)
        return 0;
    anm_msg *msg = NULL;
    cr_assert_eq(anm_socket_recv(f->dealer, &msg, 0), ANM_OK);
    size_t ts, bs;
    const char *topic = anm_msg_part(msg, 0, &ts);
    const char *body = anm_msg_part(msg, 1, &bs);
    snprintf(r->topic, sizeof r->topic, "%.*s", (int)ts, topic);
    json_t *j = json_loadb(body, bs, 0, NULL);
    cr_assert_not_null(j, "reply is JSON");
    const char *code = json_string_value(json_object_get(j, "code"));
    const char *text = json_string_value(json_object_get(j, "text"));
    snprintf(r->code, sizeof r->code, "%s", code ? code : "");
    snprintf(r->text, sizeof r->text, "%s", text ? text : "");
    json_t *seq = json_object_get(j, "seq");
    r->seq = seq ? (long long)json_integer_value(seq) : -1;
    json_decref(j);
    anm_msg_destroy(&msg);
    return 1;
}

static int64_t now_ms(void) { return anm_wall_clock_ms(); }

/* Sends batches 1..batches of n samples (batch s from base + s * step) and
 * asserts each is acked. */
static void send_batches_acked(fixture *f, int batches, size_t n, int64_t base, int64_t step)
{
    for (uint64_t s = 1; s <= (uint64_t)batches; s++) {
        unsigned char *frame;
        size_t size = make_frame(f, s, n, base + (int64_t)s * step, &frame);
        send_raw(f, ANM_TELEMETRY_TOPIC, frame, size);
        free(frame);
    }
    int acks = 0;
    reply r;
    while (acks < batches && recv_reply(f, &r, 5000)) {
        cr_assert_str_eq(r.topic, "telemetry.ack", "reply %d: %s %s", acks, r.code, r.text);
        acks++;
    }
    cr_assert_eq(acks, batches);
}

#define COUNT_SQL "SELECT count(*) FROM telemetry"
#define DISTINCT_SQL "SELECT count(DISTINCT (signal_key, time)) FROM telemetry"

Test(ingest, n_samples_in_n_rows_and_duplicates_stored_once, .timeout = 60)
{
    fixture f = {0};
    char conninfo[1024];
    cr_assert_eq(anm_pg_test_database(conninfo, sizeof conninfo), 0);
    setup_db(&f, conninfo, NULL);
    ingest_proc p;
    start_ingest(&f, &p);
    connect_sender(&f, &p);
    int64_t base = now_ms() - 6 * 3600000LL;
    enum { BATCHES = 40, N = 250 };
    send_batches_acked(&f, BATCHES, N, base, 100000);
    reply r;
    /* resends of batches 1..10 (same seq): acked, stored once */
    for (uint64_t s = 1; s <= 10; s++) {
        unsigned char *frame;
        size_t size = make_frame(&f, s, N, base + (int64_t)s * 100000, &frame);
        send_raw(&f, ANM_TELEMETRY_TOPIC, frame, size);
        free(frame);
        cr_assert(recv_reply(&f, &r, 5000));
        cr_assert_str_eq(r.topic, "telemetry.ack");
        cr_assert_eq(r.seq, (long long)s);
    }
    /* the samples of batch 3 again under a new seq: acked, stored once */
    unsigned char *frame;
    size_t size = make_frame(&f, 1000, N, base + 3 * 100000, &frame);
    send_raw(&f, ANM_TELEMETRY_TOPIC, frame, size);
    free(frame);
    cr_assert(recv_reply(&f, &r, 5000));
    cr_assert_str_eq(r.topic, "telemetry.ack");
    cr_assert_eq(anm_pg_wait_count(conninfo, COUNT_SQL, BATCHES * N, 10000), BATCHES * N);
    anm_test_sleep_ms(200); /* a late duplicate commit would show now */
    cr_assert_eq(anm_pg_query_count(conninfo, COUNT_SQL), BATCHES * N);
    cr_assert_eq(anm_pg_query_count(conninfo, DISTINCT_SQL), BATCHES * N);
    /* a value checked against what was sent: batch 2, sample 5 */
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT (value * 10)::bigint FROM telemetry WHERE signal_key = %u AND time = "
             "to_timestamp(%" PRId64 " / 1000.0)",
             f.keys[5 % 6], base + 2 * 100000 + 50);
    cr_assert_eq(anm_pg_query_count(conninfo, sql), 25, "value 2.5 stored for sample 5");
    cr_assert_eq(stop_ingest(&p, SIGTERM), 0, "SIGTERM drains and exits 0");
    teardown_fixture(&f);
}

Test(ingest, malformed_input_is_refused_with_its_reason, .timeout = 60)
{
    fixture f = {0};
    char conninfo[1024];
    cr_assert_eq(anm_pg_test_database(conninfo, sizeof conninfo), 0);
    setup_db(&f, conninfo, "\"max_past_s\": 86400, \"max_future_s\": 60");
    ingest_proc p;
    start_ingest(&f, &p);
    connect_sender(&f, &p);
    int64_t now = now_ms();
    unsigned char *good;
    size_t size = make_frame(&f, 1, 4, now - 1000, &good);
    unsigned char *bad = malloc(size + 8);
    reply r;
    struct {
        const char *what, *code;
    } cases[] = {
        {"truncated", "truncated"},       {"bad checksum", "bad_checksum"},
        {"bad magic", "bad_magic"},       {"bad version", "bad_version"},
        {"extra bytes", "bad_length"},    {"unknown signal", "unknown_signal"},
        {"too old", "time_out_of_range"}, {"in the future", "time_out_of_range"},
        {"bad quality", "bad_quality"},   {"non-finite", "non_finite"},
        {"json bad field", "bad_field"},  {"json syntax", "bad_json"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(bad, good, size);
        size_t n = size;
        int recrc = 1;
        const char *s = cases[c].what;
        if (strcmp(s, "truncated") == 0) {
            n = 20;
            recrc = 0;
        } else if (strcmp(s, "bad checksum") == 0) {
            bad[30] ^= 1;
            recrc = 0;
        } else if (strcmp(s, "bad magic") == 0) {
            bad[0] = 'X';
        } else if (strcmp(s, "bad version") == 0) {
            bad[4] = 2;
        } else if (strcmp(s, "extra bytes") == 0) {
            n = size + 8;
            memset(bad + size, 0, 8);
            recrc = 0;
        } else if (strcmp(s, "unknown signal") == 0) {
            uint32_t key = 999999;
            memcpy(bad + 24, &key, 4);
        } else if (strcmp(s, "too old") == 0) {
            int64_t t = now - 2 * 86400000LL;
            memcpy(bad + 28, &t, 8);
        } else if (strcmp(s, "in the future") == 0) {
            int64_t t = now + 3600000LL;
            memcpy(bad + 28, &t, 8);
        } else if (strcmp(s, "bad quality") == 0) {
            uint16_t q = 0x0100;
            memcpy(bad + 44, &q, 2);
        } else if (strcmp(s, "non-finite") == 0) {
            double v = 1.0 / 0.0;
            memcpy(bad + 36, &v, 8);
        } else if (strcmp(s, "json bad field") == 0) {
            n = (size_t)snprintf((char *)bad, size, "{\"v\":1,\"kind\":\"telemetry.batch\",\"sender_id\":7,\"seq\":\"x\",\"samples\":[[%u,%" PRId64 ",1,0]]}", f.keys[0], now);
            recrc = 0;
        } else if (strcmp(s, "json syntax") == 0) {
            n = (size_t)snprintf((char *)bad, size, "{\"v\":1,");
            recrc = 0;
        }
        if (recrc) {
            uint32_t crc = anm_crc32c(bad, size - 4);
            memcpy(bad + size - 4, &crc, 4);
        }
        send_raw(&f, ANM_TELEMETRY_TOPIC, bad, n);
        cr_assert(recv_reply(&f, &r, 5000), "%s: no reply", s);
        cr_assert_str_eq(r.topic, "telemetry.reject", "%s", s);
        cr_assert_str_eq(r.code, cases[c].code, "%s: %s (%s)", s, r.code, r.text);
    }
    /* envelope errors: unknown kind, a bad topic, too many parts */
    send_raw(&f, "market.order", "{}", 2);
    cr_assert(recv_reply(&f, &r, 5000));
    cr_assert_str_eq(r.code, "unknown_kind");
    send_raw(&f, "Bad Topic!", "{}", 2);
    cr_assert(recv_reply(&f, &r, 5000));
    cr_assert_str_eq(r.code, "bad_envelope");
    anm_frame three[3] = {{"telemetry.batch", 15}, {good, size}, {good, size}};
    cr_assert_eq(anm_socket_send(f.dealer, three, 3, 0), ANM_OK);
    cr_assert(recv_reply(&f, &r, 5000));
    cr_assert_str_eq(r.code, "bad_envelope");
    const char *req = "{\"v\":2,\"kind\":\"ingest.status.request\"}";
    send_raw(&f, "ingest.status.request", req, strlen(req));
    cr_assert(recv_reply(&f, &r, 5000));
    cr_assert_str_eq(r.code, "wrong_version");
    /* still running: a good batch is acked and stored */
    send_raw(&f, ANM_TELEMETRY_TOPIC, good, size);
    cr_assert(recv_reply(&f, &r, 5000));
    cr_assert_str_eq(r.topic, "telemetry.ack", "%s %s", r.code, r.text);
    cr_assert_eq(anm_pg_wait_count(conninfo, COUNT_SQL, 4, 10000), 4);
    /* the status counts each reason */
    req = "{\"v\":1,\"kind\":\"ingest.status.request\",\"id\":\"t\"}";
    send_raw(&f, "ingest.status.request", req, strlen(req));
    zmq_pollitem_t item = {anm_socket_handle(f.dealer), 0, ZMQ_POLLIN, 0};
    cr_assert_eq(zmq_poll(&item, 1, 5000), 1);
    anm_msg *msg = NULL;
    cr_assert_eq(anm_socket_recv(f.dealer, &msg, 0), ANM_OK);
    size_t bs;
    const char *body = anm_msg_part(msg, 1, &bs);
    json_t *st = json_loadb(body, bs, 0, NULL);
    cr_assert_not_null(st);
    json_t *rejects = json_object_get(st, "rejects");
    cr_assert_eq(json_integer_value(json_object_get(rejects, "time_out_of_range")), 2);
    cr_assert_eq(json_integer_value(json_object_get(rejects, "unknown_signal")), 1);
    cr_assert_eq(json_integer_value(json_object_get(rejects, "bad_envelope")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(st, "id")), "t");
    json_decref(st);
    anm_msg_destroy(&msg);
    free(good);
    free(bad);
    cr_assert_eq(stop_ingest(&p, SIGTERM), 0);
    teardown_fixture(&f);
}

/* kill -9 mid-stream, restart, resend what was not acked: every sample
 * stored exactly once (extra: more config keys). */
static void kill_9_mid_stream(const char *extra)
{
    fixture f = {0};
    char conninfo[1024];
    cr_assert_eq(anm_pg_test_database(conninfo, sizeof conninfo), 0);
    setup_db(&f, conninfo, extra);
    ingest_proc p;
    start_ingest(&f, &p);
    connect_sender(&f, &p);
    enum { BATCHES = 200, N = 500 };
    int acked[BATCHES + 1] = {0};
    int64_t base = now_ms() - 6 * 3600000LL;
    reply r;
    int n_acked = 0;
    /* stream; kill -9 after 60 acks while batches are still in flight */
    for (uint64_t s = 1; s <= 100; s++) {
        unsigned char *frame;
        size_t size = make_frame(&f, s, N, base + (int64_t)s * 100000, &frame);
        send_raw(&f, ANM_TELEMETRY_TOPIC, frame, size);
        free(frame);
    }
    while (n_acked < 60 && recv_reply(&f, &r, 5000))
        if (strcmp(r.topic, "telemetry.ack") == 0 && !acked[r.seq]++)
            n_acked++;
    cr_assert_eq(stop_ingest(&p, SIGKILL), -SIGKILL);
    while (recv_reply(&f, &r, 50)) /* replies already on their way */
        if (strcmp(r.topic, "telemetry.ack") == 0)
            acked[r.seq] = 1;
    start_ingest(&f, &p);
    connect_sender(&f, &p);
    /* resend every batch not acked (1..100) and send the rest (101..200) */
    for (int round = 0; round < 5; round++) {
        int sent = 0;
        for (uint64_t s = 1; s <= BATCHES; s++) {
            if (acked[s])
                continue;
            unsigned char *frame;
            size_t size = make_frame(&f, s, N, base + (int64_t)s * 100000, &frame);
            if (s <= 100)
                frame[5] |= ANM_TELEMETRY_FLAG_RESEND;
            uint32_t crc = anm_crc32c(frame, size - 4);
            memcpy(frame + size - 4, &crc, 4);
            send_raw(&f, ANM_TELEMETRY_TOPIC, frame, size);
            free(frame);
            sent++;
        }
        if (!sent)
            break;
        while (recv_reply(&f, &r, 2000))
            if (strcmp(r.topic, "telemetry.ack") == 0)
                acked[r.seq] = 1;
    }
    for (int s = 1; s <= BATCHES; s++)
        cr_assert(acked[s], "batch %d acked", s);
    cr_assert_eq(anm_pg_wait_count(conninfo, COUNT_SQL, BATCHES * N, 20000), BATCHES * N);
    cr_assert_eq(anm_pg_query_count(conninfo, DISTINCT_SQL), BATCHES * N, "no sample twice");
    cr_assert_eq(stop_ingest(&p, SIGTERM), 0);
    teardown_fixture(&f);
}

Test(ingest, kill_9_mid_stream_loses_no_acked_sample_and_stores_none_twice, .timeout = 60)
{
    kill_9_mid_stream(NULL);
}

/* Four writers, small COPY batches: many transactions in flight at once when
 * the process dies, each committed in journal order or not at all. */
Test(ingest, kill_9_with_four_writers_in_flight_loses_and_doubles_nothing, .timeout = 90)
{
    kill_9_mid_stream("\"writers\": 4, \"batch_max_rows\": 300");
}

/* Samples over three days back, in journal order, through four writers and
 * small batches: the day partitions are created mid-stream (a batch that
 * creates one runs alone), every sample is stored once, and telemetry_latest
 * holds each signal's newest sample. */
Test(ingest, four_writers_store_days_of_samples_once_with_partitions_created_on_the_way,
     .timeout = 90)
{
    fixture f = {0};
    char conninfo[1024];
    cr_assert_eq(anm_pg_test_database(conninfo, sizeof conninfo), 0);
    setup_db(&f, conninfo, "\"writers\": 4, \"batch_max_rows\": 150, \"latest_interval_ms\": 0");
    ingest_proc p;
    start_ingest(&f, &p);
    connect_sender(&f, &p);
    enum { BATCHES = 120, N = 250 };
    int64_t today = now_ms() / 86400000 * 86400000;
    /* from 23:00 four days ago to 23:00 yesterday: four days, all in the past */
    int64_t base = today - 3 * 86400000LL - 3600000;
    int64_t step = 3 * 86400000LL / BATCHES; /* 36 min: crosses three midnights */
    send_batches_acked(&f, BATCHES, N, base, step);
    cr_assert_eq(anm_pg_wait_count(conninfo, COUNT_SQL, BATCHES * N, 20000), BATCHES * N);
    cr_assert_eq(stop_ingest(&p, SIGTERM), 0, "SIGTERM drains and exits 0");
    cr_assert_eq(anm_pg_query_count(conninfo, COUNT_SQL), BATCHES * N);
    cr_assert_eq(anm_pg_query_count(conninfo, DISTINCT_SQL), BATCHES * N, "no sample twice");
    char sql[1024];
    for (int back = 4; back >= 1; back--) {
        /* the rows of each day sit in that day's partition */
        int64_t from = today - back * 86400000LL, to = from + 86400000LL;
        char day[16];
        int y, m, dd;
        anm_civil_from_days(from / 86400000, &y, &m, &dd);
        snprintf(day, sizeof day, "%04d%02d%02d", y, m, dd);
        snprintf(sql, sizeof sql, "SELECT count(*) FROM telemetry_%s", day);
        long long expected = 0;
        for (int s = 1; s <= BATCHES; s++)
            for (int i = 0; i < N; i++) {
                int64_t t = base + (int64_t)s * step + i * 10;
                expected += t >= from && t < to;
            }
        cr_assert_gt(expected, 0);
        cr_assert_eq(anm_pg_query_count(conninfo, sql), expected, "rows of day %s", day);
    }
    /* telemetry_latest: each signal's newest stored sample */
    cr_assert_eq(anm_pg_query_count(conninfo,
                                     "SELECT count(*) FROM telemetry_latest l JOIN ("
                                     " SELECT signal_key, max(time) AS time FROM telemetry GROUP BY 1) m"
                                     " USING (signal_key) WHERE l.time = m.time"),
                 (long long)f.n_keys);
    /* the stored position is the journal's end: a restart (whose drain stores
       whatever it would replay) stores nothing twice */
    start_ingest(&f, &p);
    cr_assert_eq(stop_ingest(&p, SIGTERM), 0);
    cr_assert_eq(anm_pg_query_count(conninfo, COUNT_SQL), BATCHES * N);
    teardown_fixture(&f);
}

Test(ingest, database_outage_fills_the_journal_then_drains_with_nothing_lost, .timeout = 90)
{
    fixture f = {0};
    anm_pg_cluster *pg = NULL;
    cr_assert_eq(anm_pg_cluster_start(&pg), 0);
    setup_db(&f, anm_pg_cluster_conninfo(pg), "\"journal_max_mb\": 1");
    ingest_proc p;
    start_ingest(&f, &p);
    connect_sender(&f, &p);
    enum { N = 2000 };
    int64_t base = now_ms() - 6 * 3600000LL;
    reply r;
    /* before the outage: 5 batches stored */
    uint64_t s = 1;
    for (; s <= 5; s++) {
        unsigned char *frame;
        size_t size = make_frame(&f, s, N, base + (int64_t)s * 100000, &frame);
        send_raw(&f, ANM_TELEMETRY_TOPIC, frame, size);
        free(frame);
        cr_assert(recv_reply(&f, &r, 5000));
        cr_assert_str_eq(r.topic, "telemetry.ack");
    }
    cr_assert_eq(anm_pg_wait_count(f.conninfo, COUNT_SQL, 5 * N, 10000), 5 * N);
    cr_assert_eq(anm_pg_cluster_stop(pg), 0);
    /* during it: acked into the journal until it is full (1 MiB, 44 KB a batch) */
    long long acked_samples = 5 * N;
    int full = 0;
    for (; s <= 200 && !full; s++) {
        unsigned char *frame;
        size_t size = make_frame(&f, s, N, base + (int64_t)s * 100000, &frame);
        send_raw(&f, ANM_TELEMETRY_TOPIC, frame, size);
        free(frame);
        cr_assert(recv_reply(&f, &r, 5000));
        if (strcmp(r.topic, "telemetry.ack") == 0) {
            acked_samples += N;
        } else {
            cr_assert_str_eq(r.code, "journal_full", "%s", r.text);
            cr_assert(strstr(r.text, "journal full") != NULL, "%s", r.text);
            full = 1;
        }
    }
    cr_assert(full, "the journal filled up");
    cr_assert_gt(acked_samples, 10 * N);
    uint64_t refused = s - 1;
    /* the database comes back: the service drains by itself */
    cr_assert_eq(anm_pg_cluster_restart(pg), 0);
    snprintf(f.conninfo, sizeof f.conninfo, "%s", anm_pg_cluster_conninfo(pg));
    cr_assert_eq(anm_pg_wait_count(f.conninfo, COUNT_SQL, acked_samples, 30000), acked_samples);
    /* and accepts the refused batch again */
    unsigned char *frame;
    size_t size = make_frame(&f, refused, N, base + (int64_t)refused * 100000, &frame);
    int ok = 0;
    for (int attempt = 0; attempt < 50 && !ok; attempt++) {
        send_raw(&f, ANM_TELEMETRY_TOPIC, frame, size);
        cr_assert(recv_reply(&f, &r, 5000));
        ok = strcmp(r.topic, "telemetry.ack") == 0;
        if (!ok)
            anm_test_sleep_ms(100);
    }
    free(frame);
    cr_assert(ok, "accepted after the drain");
    acked_samples += N;
    cr_assert_eq(anm_pg_wait_count(f.conninfo, COUNT_SQL, acked_samples, 10000), acked_samples);
    cr_assert_eq(anm_pg_query_count(f.conninfo, DISTINCT_SQL), acked_samples);
    cr_assert_eq(stop_ingest(&p, SIGTERM), 0);
    teardown_fixture(&f);
    anm_pg_cluster_destroy(&pg);
}

Test(ingest, replay_sends_a_day_and_status_reports_it, .timeout = 60)
{
    fixture f = {0};
    char conninfo[1024];
    cr_assert_eq(anm_pg_test_database(conninfo, sizeof conninfo), 0);
    char bin[1024], zones[1024], csv[1024];
    snprintf(bin, sizeof bin, "%s/anm", anm_test_bin_dir());
    setup_db(&f, conninfo, "\"max_past_s\": 3153600000");
    anm_test_source_path(zones, sizeof zones, "data/zones/mesh30.json");
    const char *load[] = {bin, "db", "load", zones, "--conninfo", conninfo, NULL};
    cr_assert_eq(anm_test_run_args(load, NULL, NULL), 0);
    /* the registry is read at start: load mesh30 before starting */
    ingest_proc p;
    start_ingest(&f, &p);
    anm_test_source_path(csv, sizeof csv, "data/replay/der_2021-06-21.csv");
    const char *replay[] = {bin, "replay", csv, "--speed", "0", "--endpoint", p.endpoint,
                            "--conninfo", conninfo, NULL};
    char *out = NULL, *err = NULL;
    cr_assert_eq(anm_test_run_args(replay, &out, &err), 0, "%s %s", out, err);
    cr_assert(strstr(out, "11520 samples in 12 batches sent, 11520 samples acked, 0 refused") != NULL, "%s", out);
    free(out);
    free(err);
    cr_assert_eq(anm_pg_wait_count(conninfo, COUNT_SQL, 11520, 10000), 11520);
    /* wind18-mw at 12:00 UTC: 8 MW * embedded wind 12:00 / capacity, from the CSV */
    cr_assert_eq(anm_pg_query_count(conninfo, "SELECT count(*) FROM telemetry t JOIN signals s USING (signal_key)"
                                       " WHERE s.signal_id = 'wind18-mw' AND t.time >= '2021-06-21'"
                                       " AND t.time < '2021-06-22'"), 1440);
    char ingest[1024];
    snprintf(ingest, sizeof ingest, "%s/anm-ingest", anm_test_bin_dir());
    const char *status[] = {ingest, "--status", "--endpoint", p.endpoint, NULL};
    cr_assert_eq(anm_test_run_args(status, &out, NULL), 0);
    json_t *st = json_loads(out, 0, NULL);
    cr_assert_not_null(st, "%s", out);
    cr_assert_eq(json_integer_value(json_object_get(st, "committed_samples")), 11520);
    cr_assert_eq(json_integer_value(json_object_get(st, "journal_depth")), 0);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(st, "latency_ms"), "count")), 11520);
    json_decref(st);
    free(out);
    cr_assert_eq(stop_ingest(&p, SIGTERM), 0);
    teardown_fixture(&f);
}
