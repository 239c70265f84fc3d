/*
 * test_ingest_bounds.c: anm-ingest's memory bound through a database outage
 * and its latest-value outputs (signal.latest on PUB, telemetry_latest).
 * Real components: an embedded PostgreSQL and the anm-ingest executable.
 */
#include "engine/bus.h"
#include "engine/clock.h"
#include "engine/db.h"
#include "engine/telemetry_frame.h"
#include "pg_harness.h"
#include "testlib.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

typedef struct service {
    pid_t pid;
    char dir[1024];
    char conninfo[1024];
    char endpoint[256];
    char publish[256];
    uint32_t keys[8];
    size_t n_keys;
    anm_bus *bus;
    anm_socket *dealer;
} service;

/* VmRSS of pid in KiB, or -1. */
static long long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtoll(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

/* Bytes of the journal segments in dir. */
static long long dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    long long total = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char path[2048];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            total += (long long)st.st_size;
    }
    if (d)
        closedir(d);
    return total;
}

/* The value after `marker` in the log up to the next backslash (JSON-escaped quote). */
static int log_value(const char *log, const char *marker, char *out, size_t size)
{
    char *text = anm_test_read_file(log, NULL);
    const char *at = text ? strstr(text, marker) : NULL;
    if (at) {
        at += strlen(marker);
        snprintf(out, size, "%.*s", (int)strcspn(at, "\\"), at);
    }
    free(text);
    return at != NULL;
}

static void spawn_service(service *sv, const char *extra);

/* Migrates, loads feeder33, writes the config (extra: more keys) and starts anm-ingest. */
static void start_service(service *sv, const char *conninfo, const char *extra)
{
    char bin[1024], zones[1024], sql[1024];
    snprintf(sv->conninfo, sizeof sv->conninfo, "%s", conninfo);
    snprintf(bin, sizeof bin, "%s/anm", anm_test_bin_dir());
    anm_test_source_path(zones, sizeof zones, "data/zones/feeder33.json");
    anm_test_source_path(sql, sizeof sql, "sql");
    char w_db[] = "db", w_migrate[] = "migrate", w_load[] = "load", w_conninfo[] = "--conninfo",
         w_sql_dir[] = "--sql-dir";
    char *migrate[] = {bin, w_db, w_migrate, w_conninfo, sv->conninfo, w_sql_dir, sql, NULL};
    char *load[] = {bin, w_db, w_load, zones, w_conninfo, sv->conninfo, NULL};
    char *err = NULL;
    cr_assert_eq(anm_test_run(migrate, NULL, &err), 0, "migrate: %s", err);
    free(err);
    cr_assert_eq(anm_test_run(load, NULL, &err), 0, "load: %s", err);
    free(err);
    anm_db *db = NULL;
    anm_db_result *r = NULL;
    cr_assert_eq(anm_db_connect(conninfo, NULL, &db), ANM_OK);
    cr_assert_eq(anm_db_exec(db, "SELECT signal_key FROM signals ORDER BY signal_key", 0, NULL, &r, NULL), ANM_OK);
    sv->n_keys = (size_t)anm_db_result_rows(r);
    cr_assert_eq(sv->n_keys, 6, "feeder33 has 6 signals");
    for (size_t i = 0; i < sv->n_keys; i++)
        sv->keys[i] = (uint32_t)strtoul(anm_db_result_value(r, (int)i, 0), NULL, 10);
    anm_db_result_destroy(&r);
    anm_db_destroy(&db);

    char *tmp = anm_test_tmpdir("ingest-bounds");
    snprintf(sv->dir, sizeof sv->dir, "%s", tmp);
    free(tmp);
    char config[1200], text[4096];
    snprintf(config, sizeof config, "%s/ingest.json", sv->dir);
    snprintf(text, sizeof text,
             "{\"endpoint\": \"@tcp://127.0.0.1:*\", \"journal_dir\": \"%s/journal\","
             " \"conninfo\": \"%s\", \"batch_max_age_ms\": 20, %s}",
             sv->dir, conninfo, extra);
    cr_assert_eq(anm_test_write_file(config, text), 0);
    spawn_service(sv, extra);
}

/* Starts anm-ingest on sv's config and connects a DEALER to it. */
static void spawn_service(service *sv, const char *extra)
{
    char config[1200], log[1200];
    static int n;
    snprintf(config, sizeof config, "%s/ingest.json", sv->dir);
    snprintf(log, sizeof log, "%s/ingest-%d.log", sv->dir, n++);
    sv->endpoint[0] = sv->publish[0] = '\0';
    char ingest[1024];
    snprintf(ingest, sizeof ingest, "%s/anm-ingest", anm_test_bin_dir());
    sv->pid = fork();
    cr_assert_neq(sv->pid, -1);
    if (sv->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        FILE *f = freopen(log, "w", stderr);
        (void)f;
        unsetenv("ANM_DB_CONNINFO");
        execl(ingest, ingest, "--config", config, (char *)NULL);
        _exit(127);
    }
    int64_t deadline = anm_monotonic_ns() + 15000000000LL;
    int want_pub = strstr(extra, "publish_endpoint\": \"@") != NULL;
    while (anm_monotonic_ns() < deadline) {
        if (log_value(log, "listening on \\\"", sv->endpoint, sizeof sv->endpoint) &&
            (!want_pub || log_value(log, "publishing signal.latest on \\\"", sv->publish, sizeof sv->publish)))
            break;
        int status;
        cr_assert_eq(waitpid(sv->pid, &status, WNOHANG), 0, "anm-ingest exited early, log: %s", log);
        anm_test_sleep_ms(20);
    }
    cr_assert(sv->endpoint[0], "anm-ingest did not start (log %s)", log);
    cr_assert_eq(anm_bus_new(&sv->bus), ANM_OK);
    char ep[300];
    snprintf(ep, sizeof ep, ">%s", sv->endpoint);
    anm_socket_options so;
    anm_socket_options_default(&so);
    so.identity = "bounds-sender";
    so.max_message_bytes = 1 << 20;
    cr_assert_eq(anm_socket_new(sv->bus, ANM_SOCKET_DEALER, ep, &so, &sv->dealer, NULL), ANM_OK);
}

/* Sends sig (SIGTERM: drain) and returns the exit status (or -signal). */
static int kill_service(service *sv, int sig)
{
    anm_socket_destroy(&sv->dealer);
    anm_bus_destroy(&sv->bus);
    kill(sv->pid, sig);
    int status = 0;
    waitpid(sv->pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

static int stop_service(service *sv)
{
    int rc = kill_service(sv, SIGTERM);
    anm_test_rmtree(sv->dir);
    return rc;
}

static void send_batch(service *sv, const anm_telemetry_batch *b)
{
    size_t size = anm_telemetry_frame_size(b->count);
    unsigned char *frame = malloc(size);
    cr_assert_eq(anm_telemetry_encode(b, frame, size, NULL), ANM_OK);
    anm_frame parts[2] = {{ANM_TELEMETRY_TOPIC, strlen(ANM_TELEMETRY_TOPIC)}, {frame, size}};
    cr_assert_eq(anm_socket_send(sv->dealer, parts, 2, 0), ANM_OK);
    free(frame);
}

/* The topic of the next reply ("" on timeout); code gets its "code" if any. */
static void recv_reply(service *sv, char *topic, size_t topic_size, char *code, size_t code_size)
{
    topic[0] = code[0] = '\0';
    zmq_pollitem_t item = {anm_socket_handle(sv->dealer), 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, 10000) <= 0)
        return;
    anm_msg *msg = NULL;
    cr_assert_eq(anm_socket_recv(sv->dealer, &msg, 0), ANM_OK);
    size_t ts, bs;
    const char *t = anm_msg_part(msg, 0, &ts);
    const char *body = anm_msg_part(msg, 1, &bs);
    snprintf(topic, topic_size, "%.*s", (int)ts, t);
    json_t *j = json_loadb(body, bs, 0, NULL);
    const char *c = json_string_value(json_object_get(j, "code"));
    snprintf(code, code_size, "%s", c ? c : "");
    json_decref(j);
    anm_msg_destroy(&msg);
}

/*
 * A database outage with a 16 MiB journal bound: batches of 20,000 samples
 * are acked into the journal until it refuses them, and the resident size of
 * anm-ingest stays far below the 256 MiB bound and does not grow with the
 * backlog (which is on disk); when the database returns every acked sample
 * is stored. The recent-sample window is made small (2^12 slots) because it
 * is the one structure that grows with distinct samples, up to its own
 * fixed bound (32 MiB at the default 2^20).
 */
Test(ingest_bounds, rss_stays_bounded_through_a_database_outage, .timeout = 60)
{
    anm_pg_cluster *pg = NULL;
    cr_assert_eq(anm_pg_cluster_start(&pg), 0);
    service sv = {0};
    start_service(&sv, anm_pg_cluster_conninfo(pg),
                  "\"publish_endpoint\": \"\", \"journal_max_mb\": 16, \"segment_mb\": 2,"
                  " \"dedupe_window_log2\": 12");
    long long rss_before = rss_kb(sv.pid);
    cr_assert_gt(rss_before, 0);
    cr_assert_eq(anm_pg_cluster_stop(pg), 0);

    enum { N = 20000 };
    anm_telemetry_batch b;
    anm_telemetry_batch_init(&b);
    int64_t base = anm_wall_clock_ms() - 3600000LL;
    long long acked = 0, rss_peak = rss_before;
    int full = 0;
    char topic[64], code[64];
    for (uint64_t seq = 1; seq <= 200 && !full; seq++) {
        b.count = 0;
        b.sender_id = 9;
        b.seq = seq;
        for (size_t i = 0; i < N; i++)
            anm_telemetry_batch_push(&b, sv.keys[i % sv.n_keys],
                                     base + (int64_t)((seq - 1) * N + i), (double)i, 0);
        send_batch(&sv, &b);
        recv_reply(&sv, topic, sizeof topic, code, sizeof code);
        if (strcmp(topic, "telemetry.ack") == 0) {
            acked += N;
        } else {
            cr_assert_str_eq(code, "journal_full", "reply %s", topic);
            full = 1;
        }
        long long rss = rss_kb(sv.pid);
        if (rss > rss_peak)
            rss_peak = rss;
    }
    anm_telemetry_batch_free(&b);
    cr_assert(full, "the 16 MiB journal filled up");
    char journal[1200];
    snprintf(journal, sizeof journal, "%s/journal", sv.dir);
    long long on_disk = dir_bytes(journal);
    /* 16 MiB of 22-byte samples (plus frame headers) is about 760,000 */
    cr_assert_gt(acked, 700000);
    cr_assert_gt(on_disk, 15LL << 20, "the backlog is on disk: %lld bytes", on_disk);
    cr_assert_lt(rss_peak, 256LL * 1024, "VmRSS peaked at %lld KiB", rss_peak);
#ifndef __SANITIZE_ADDRESS__ /* ASan's quarantine keeps freed memory resident */
    cr_assert_lt((rss_peak - rss_before) * 1024, on_disk / 2,
                 "VmRSS grew by %lld KiB for a %lld-byte backlog", rss_peak - rss_before, on_disk);
#endif

    /* the database returns: everything acked is stored, RSS still bounded */
    cr_assert_eq(anm_pg_cluster_restart(pg), 0);
    int64_t deadline = anm_monotonic_ns() + 30000000000LL;
    long long stored = -1;
    while (anm_monotonic_ns() < deadline &&
           (stored = anm_pg_query_count(anm_pg_cluster_conninfo(pg), "SELECT count(*) FROM telemetry")) != acked) {
        long long rss = rss_kb(sv.pid);
        if (rss > rss_peak)
            rss_peak = rss;
        anm_test_sleep_ms(100);
    }
    cr_assert_eq(stored, acked);
    cr_assert_lt(rss_peak, 256LL * 1024, "VmRSS peaked at %lld KiB during the drain", rss_peak);
    cr_assert_eq(stop_service(&sv), 0);
    anm_pg_cluster_destroy(&pg);
}

/* One signal.latest message, or NULL after timeout_ms. */
static json_t *recv_latest(anm_socket *sub, long timeout_ms)
{
    zmq_pollitem_t item = {anm_socket_handle(sub), 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout_ms) <= 0)
        return NULL;
    anm_msg *msg = NULL;
    cr_assert_eq(anm_socket_recv(sub, &msg, 0), ANM_OK);
    size_t ts, bs;
    const char *topic = anm_msg_part(msg, 0, &ts);
    const char *body = anm_msg_part(msg, 1, &bs);
    cr_assert(ts > strlen("signal.latest/") && memcmp(topic, "signal.latest/feeder33", ts) == 0,
              "topic %.*s", (int)ts, topic);
    json_t *j = json_loadb(body, bs, 0, NULL);
    anm_msg_destroy(&msg);
    cr_assert_not_null(j);
    cr_assert_str_eq(json_string_value(json_object_get(j, "kind")), "signal.latest");
    cr_assert_str_eq(json_string_value(json_object_get(j, "zone")), "feeder33");
    return j;
}

/*
 * A subscriber gets the newest sample of each signal (by measurement time,
 * not arrival order), and telemetry_latest / telemetry_last in the database
 * hold the same values once they are upserted (latest_interval_ms 200).
 */
Test(ingest_bounds, signal_latest_published_and_stored, .timeout = 60)
{
    char conninfo[1024];
    cr_assert_eq(anm_pg_test_database(conninfo, sizeof conninfo), 0);
    service sv = {0};
    start_service(&sv, conninfo,
                  "\"publish_endpoint\": \"@tcp://127.0.0.1:*\", \"publish_interval_ms\": 50,"
                  " \"latest_interval_ms\": 200");
    anm_socket *sub = NULL;
    anm_socket_options so;
    anm_socket_options_default(&so);
    char ep[300];
    snprintf(ep, sizeof ep, ">%s", sv.publish);
    cr_assert_eq(anm_socket_new(sv.bus, ANM_SOCKET_SUB, ep, &so, &sub, NULL), ANM_OK);
    cr_assert_eq(anm_socket_subscribe(sub, "signal.latest"), ANM_OK);

    /* readiness: resend a one-sample batch until the subscriber hears it */
    int64_t base = anm_wall_clock_ms() - 60000;
    anm_telemetry_batch b;
    anm_telemetry_batch_init(&b);
    char topic[64], code[64];
    json_t *j = NULL;
    uint64_t seq = 1;
    for (; seq <= 100 && !j; seq++) {
        b.count = 0;
        b.sender_id = 3;
        b.seq = seq;
        anm_telemetry_batch_push(&b, sv.keys[0], base + (int64_t)seq, -1.0, 0);
        send_batch(&sv, &b);
        recv_reply(&sv, topic, sizeof topic, code, sizeof code);
        cr_assert_str_eq(topic, "telemetry.ack");
        j = recv_latest(sub, 200);
    }
    cr_assert_not_null(j, "the subscriber heard signal.latest");
    json_decref(j);
    while ((j = recv_latest(sub, 200)) != NULL) /* drain the warm-up's publications */
        json_decref(j);

    /* each signal i: three samples, newest (base + 10 s + i) sent first */
    b.count = 0;
    b.seq = seq++;
    for (size_t i = 0; i < sv.n_keys; i++) {
        anm_telemetry_batch_push(&b, sv.keys[i], base + 10000 + (int64_t)i, 100.0 + (double)i, 0x10);
        anm_telemetry_batch_push(&b, sv.keys[i], base + 5000, 1.0, 0);
        anm_telemetry_batch_push(&b, sv.keys[i], base + 9000, 2.0, 0);
    }
    send_batch(&sv, &b);
    recv_reply(&sv, topic, sizeof topic, code, sizeof code);
    cr_assert_str_eq(topic, "telemetry.ack");
    size_t seen = 0;
    int found[8] = {0};
    while (seen < sv.n_keys && (j = recv_latest(sub, 3000)) != NULL) {
        json_t *samples = json_object_get(j, "samples");
        for (size_t k = 0; k < json_array_size(samples); k++) {
            json_t *x = json_array_get(samples, k);
            uint32_t key = (uint32_t)json_integer_value(json_array_get(x, 0));
            for (size_t i = 0; i < sv.n_keys; i++) {
                if (sv.keys[i] != key || found[i])
                    continue;
                cr_assert_eq(json_integer_value(json_array_get(x, 1)), base + 10000 + (int64_t)i);
                cr_assert_float_eq(json_number_value(json_array_get(x, 2)), 100.0 + (double)i, 0.0);
                cr_assert_eq(json_integer_value(json_array_get(x, 3)), 0x10);
                found[i] = 1;
                seen++;
            }
        }
        json_decref(j);
    }
    cr_assert_eq(seen, sv.n_keys, "signal.latest carried all 6 signals");
    anm_telemetry_batch_free(&b);

    /* the database: telemetry_latest (through the view) holds the same newest samples */
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM telemetry_last l JOIN signals s USING (signal_key)"
             " WHERE l.value = 100 + (SELECT count(*) FROM signals s2 WHERE s2.signal_key < l.signal_key)"
             " AND l.quality = 16 AND l.time = timestamptz 'epoch' + (%lld + 10000"
             " + (SELECT count(*) FROM signals s2 WHERE s2.signal_key < l.signal_key)) * interval '1 ms'",
             (long long)base);
    cr_assert_eq(anm_pg_wait_count(conninfo, sql, 6, 10000), 6);
    cr_assert_eq(anm_pg_query_count(conninfo, "SELECT count(*) FROM telemetry_latest"), 6);
    anm_socket_destroy(&sub);
    cr_assert_eq(stop_service(&sv), 0);
}

/* Rows of telemetry_latest whose time is base + offset_ms + (rank of the signal). */
static long long latest_at(const char *conninfo, int64_t base, int64_t offset_ms)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM telemetry_latest l WHERE l.time = timestamptz 'epoch' + (%lld"
             " + (SELECT count(*) FROM signals s WHERE s.signal_key < l.signal_key)) * interval '1 ms'",
             (long long)(base + offset_ms));
    return anm_pg_query_count(conninfo, sql);
}

/*
 * telemetry_latest is upserted at most every latest_interval_ms (60 s here),
 * so after kill -9 the stored rows of the last batch are not in it yet; the
 * restarted service re-reads them from the journal and upserts them.
 */
Test(ingest_bounds, telemetry_latest_catches_up_after_kill_9, .timeout = 60)
{
    char conninfo[1024];
    cr_assert_eq(anm_pg_test_database(conninfo, sizeof conninfo), 0);
    service sv = {0};
    const char *extra = "\"publish_endpoint\": \"\", \"latest_interval_ms\": 60000";
    start_service(&sv, conninfo, extra);
    int64_t base = anm_wall_clock_ms() - 600000;
    anm_telemetry_batch b;
    anm_telemetry_batch_init(&b);
    char topic[64], code[64];
    for (uint64_t seq = 1; seq <= 2; seq++) {
        b.count = 0;
        b.sender_id = 5;
        b.seq = seq;
        for (size_t i = 0; i < sv.n_keys; i++)
            anm_telemetry_batch_push(&b, sv.keys[i], base + (int64_t)seq * 1000 + (int64_t)i, (double)seq, 0);
        send_batch(&sv, &b);
        recv_reply(&sv, topic, sizeof topic, code, sizeof code);
        cr_assert_str_eq(topic, "telemetry.ack");
        cr_assert_eq(anm_pg_wait_count(conninfo, "SELECT count(*) FROM telemetry", (long long)(6 * seq), 10000),
                     (long long)(6 * seq));
    }
    anm_telemetry_batch_free(&b);
    /* the first commit upserted batch 1; batch 2 waits for the interval */
    cr_assert_eq(latest_at(conninfo, base, 1000), 6);
    cr_assert_eq(latest_at(conninfo, base, 2000), 0);
    cr_assert_eq(kill_service(&sv, SIGKILL), -SIGKILL);
    spawn_service(&sv, extra);
    int64_t deadline = anm_monotonic_ns() + 10000000000LL;
    while (latest_at(conninfo, base, 2000) != 6 && anm_monotonic_ns() < deadline)
        anm_test_sleep_ms(50);
    cr_assert_eq(latest_at(conninfo, base, 2000), 6, "batch 2 reached telemetry_latest after the restart");
    cr_assert_eq(anm_pg_query_count(conninfo, "SELECT count(*) FROM telemetry"), 12, "and was not stored twice");
    cr_assert_eq(stop_service(&sv), 0);
}
