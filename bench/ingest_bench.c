/*
 * ingest_bench.c: bench/ingest, the throughput and latency benchmark of
 * anm-ingest (a program, not a test; it never fails on a figure).
 *
 * Starts an embedded PostgreSQL (scripts/pg, durable settings) in a new
 * temporary directory, migrates it, registers S signals, starts anm-ingest,
 * and runs a sender process that pushes binary batches over the bus as fast
 * as acknowledgements allow (a window of batches in flight), each sample
 * stamped with the real time at which its batch was built. After a warm-up
 * it measures the committed samples/s from the service's status, and the
 * end-to-end latency (measurement time to commit) p50/p99 that the service
 * measured. Then, in the same run, the ceiling: raw binary COPY of the same
 * rows (same table, same batch size, one transaction each) from this process.
 *
 *   bench/ingest [--quick | --duration S] [--rate R] [--signals N] [--batch N] [--window N]
 *
 * --rate R offers R samples/s (open loop); without it the sender runs as fast as
 * acknowledgements allow, which (acks come from the journal, not the database)
 * outruns the database and measures the backlog rather than a sustained rate.
 *
 * Last line: ingest samples_per_s=... p50_ms=... p99_ms=... ceiling_ratio=...
 */
#include "engine/bus.h"
#include "engine/clock.h"
#include "engine/db.h"
#include "engine/db_migrate.h"
#include "engine/cli.h"
#include "engine/telemetry_frame.h"
#include "ingest/service.h"

#include <inttypes.h>
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

typedef struct bench_args {
    long duration_s, signals, batch, window, warmup_s, rate;
} bench_args;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int run_cmd(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 4096);
    size_t n = buf ? fread(buf, 1, 4095, f) : 0;
    fclose(f);
    if (buf)
        buf[strcspn(buf, "\n")] = '\0';
    (void)n;
    return buf;
}

/* The sender process: batches of `batch` samples cycling over the signal keys
   [1, signals], times strictly increasing per batch, up to `window` in flight. */
static int sender_main(const char *endpoint, const bench_args *a, uint32_t key0)
{
    anm_bus *bus = NULL;
    anm_socket *dealer = NULL;
    anm_socket_options so;
    anm_socket_options_default(&so);
    so.identity = "bench-sender";
    so.send_hwm = 1000;
    char ep[300];
    snprintf(ep, sizeof ep, ">%s", endpoint);
    if (anm_bus_new(&bus) != ANM_OK || anm_socket_new(bus, ANM_SOCKET_DEALER, ep, &so, &dealer, NULL) != ANM_OK)
        return 1;
    anm_telemetry_batch b;
    anm_telemetry_batch_init(&b);
    anm_telemetry_batch_reserve(&b, (size_t)a->batch);
    size_t size = anm_telemetry_frame_size((size_t)a->batch);
    unsigned char *frame = malloc(size);
    uint64_t seq = (uint64_t)anm_wall_clock_ms() * 1000u;
    long in_flight = 0;
    int64_t last_t = 0;
    uint32_t next_signal = 0;
    int64_t started_ns = anm_monotonic_ns();
    uint64_t sent = 0;
    for (;;) {
        while (in_flight < a->window) {
            if (a->rate > 0) { /* open loop: no faster than rate samples/s */
                int64_t due_ns = started_ns + (int64_t)((double)sent * 1e9 / (double)a->rate);
                int64_t now_ns = anm_monotonic_ns();
                if (due_ns > now_ns) {
                    if (due_ns - now_ns > 2000000)
                        break; /* poll for acks meanwhile */
                    sleep_ms(1);
                }
            }
            sent += (uint64_t)a->batch;
            int64_t t = anm_wall_clock_ms();
            if (t <= last_t)
                t = last_t + 1;
            last_t = t;
            b.count = 0;
            b.sender_id = 42;
            b.seq = seq++;
            for (long i = 0; i < a->batch; i++) {
                anm_telemetry_batch_push(&b, key0 + next_signal, t, (double)i * 0.001, 0);
                next_signal = (uint32_t)((next_signal + 1) % (uint32_t)a->signals);
            }
            if (anm_telemetry_encode(&b, frame, size, NULL) != ANM_OK)
                return 1;
            anm_frame parts[2] = {{ANM_TELEMETRY_TOPIC, strlen(ANM_TELEMETRY_TOPIC)}, {frame, size}};
            if (anm_socket_send(dealer, parts, 2, 0) != ANM_OK)
                return 1;
            in_flight++;
        }
        zmq_pollitem_t item = {anm_socket_handle(dealer), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, a->rate > 0 ? 1 : 1000) <= 0)
            continue;
        anm_msg *msg = NULL;
        while (anm_socket_recv(dealer, &msg, ANM_BUS_DONTWAIT) == ANM_OK) {
            size_t ts;
            const char *topic = anm_msg_part(msg, 0, &ts);
            if (ts != strlen("telemetry.ack") || memcmp(topic, "telemetry.ack", ts) != 0) {
                size_t bs;
                const char *body = anm_msg_part(msg, 1, &bs);
                fprintf(stderr, "bench sender: refused: %.*s\n", (int)bs, body);
                sleep_ms(100);
            }
            in_flight--;
            anm_msg_destroy(&msg);
        }
    }
}

static json_t *status_of(const char *endpoint)
{
    json_t *st = NULL;
    if (ingest_status_query(endpoint, 5000, &st) != ANM_OK)
        return NULL;
    return st;
}

static long long vm_hwm_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtoll(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

/* The ceiling: raw binary COPY of rows shaped like the sender's into the same table. */
static double copy_ceiling(const char *conninfo, const bench_args *a, uint32_t key0, double seconds,
                           long rows_per_copy)
{
    anm_db *db = NULL;
    if (anm_db_connect(conninfo, NULL, &db) != ANM_OK)
        return -1;
    anm_db_copy_buffer *buf = anm_db_copy_buffer_new();
    long long total = 0;
    uint32_t next_signal = 0;
    int64_t t = anm_wall_clock_ms() + 1, start = anm_monotonic_ns();
    int64_t end = start + (int64_t)(seconds * 1e9);
    while (anm_monotonic_ns() < end) {
        anm_db_copy_buffer_reset(buf);
        for (long i = 0; i < rows_per_copy; i++) {
            if (next_signal == 0)
                t++;
            anm_db_copy_row(buf, 4);
            anm_db_copy_int4(buf, (int32_t)(key0 + next_signal));
            anm_db_copy_int4(buf, 0);
            anm_db_copy_timestamptz(buf, t * 1000);
            anm_db_copy_float8(buf, (double)i * 0.001);
            next_signal = (uint32_t)((next_signal + 1) % (uint32_t)a->signals);
        }
        long long rows = 0;
        if (anm_db_begin(db) != ANM_OK ||
            anm_db_copy_in(db, "COPY telemetry (signal_key, quality, time, value) FROM STDIN (FORMAT binary)",
                           buf, &rows) != ANM_OK ||
            anm_db_commit(db) != ANM_OK) {
            fprintf(stderr, "bench: ceiling COPY failed: %s\n", anm_db_error_message(db));
            break;
        }
        total += rows;
    }
    double secs = (double)(anm_monotonic_ns() - start) / 1e9;
    anm_db_copy_buffer_destroy(&buf);
    anm_db_destroy(&db);
    return (double)total / secs;
}

int main(int argc, char **argv)
{
    bench_args a = {.duration_s = 60, .signals = 10000, .batch = 10000, .window = 16, .warmup_s = 5};
    for (int i = 1; i < argc; i++) {
        long *target = NULL;
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: bench/ingest [--quick | --duration S] [--rate SAMPLES_PER_S] [--signals N] [--batch N] [--window N]\n"
                   "  --rate R   offer R samples/s (default 0: as fast as acknowledgements allow)\n");
            return 0;
        }
        if (strcmp(argv[i], "--quick") == 0) {
            a.duration_s = 45; /* plus warm-up, set-up and the ceiling: about 60 s */
            continue;
        }
        if (strcmp(argv[i], "--duration") == 0)
            target = &a.duration_s;
        else if (strcmp(argv[i], "--signals") == 0)
            target = &a.signals;
        else if (strcmp(argv[i], "--batch") == 0)
            target = &a.batch;
        else if (strcmp(argv[i], "--window") == 0)
            target = &a.window;
        else if (strcmp(argv[i], "--rate") == 0)
            target = &a.rate;
        else
            return anm_cli_usage_error("bench/ingest", "unknown option '%s'", argv[i]);
        if (i + 1 >= argc || anm_parse_long(argv[++i], 1, 100000000, target) != ANM_OK)
            return anm_cli_usage_error("bench/ingest", "bad value for %s", argv[i - 1]);
    }
    if (a.batch > 100000)
        return anm_cli_usage_error("bench/ingest", "--batch at most 100000");

    char exe[4096], bindir[4096], src[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return 1;
    exe[n] = '\0';
    snprintf(bindir, sizeof bindir, "%s", exe);
    *strrchr(bindir, '/') = '\0';
    const char *srcdir = getenv("ANM_SOURCE_DIR");
    snprintf(src, sizeof src, "%s", srcdir ? srcdir : ".");

    char tmpl[] = "/tmp/anm-bench-ingest-XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (!dir)
        return 1;
    chmod(dir, 0755);
    char pgdir[4200], pgscript[4200], conninfo_path[4300];
    snprintf(pgdir, sizeof pgdir, "%s/pg", dir);
    snprintf(pgscript, sizeof pgscript, "%s/scripts/pg", src);
    snprintf(conninfo_path, sizeof conninfo_path, "%s/conninfo", pgdir);
    char word_start[] = "start", word_destroy[] = "destroy", word_rm[] = "rm", word_rf[] = "-rf";
    char *pg_start[] = {pgscript, word_start, pgdir, NULL};
    printf("bench: starting PostgreSQL in %s (fsync and synchronous_commit on)\n", pgdir);
    fflush(stdout);
    if (run_cmd(pg_start) != 0) {
        fprintf(stderr, "bench: scripts/pg start failed (run from the repo root)\n");
        return 1;
    }
    char *conninfo = read_text(conninfo_path);
    int rc = 1;
    pid_t ingest = -1, sender = -1;
    anm_db *db = NULL;
    if (!conninfo || anm_db_connect(conninfo, NULL, &db) != ANM_OK)
        goto out;
    char sqldir[4200];
    snprintf(sqldir, sizeof sqldir, "%s/sql", src);
    if (anm_db_migrate(db, sqldir, NULL, NULL) != ANM_OK) {
        fprintf(stderr, "bench: migrate failed: %s\n", anm_db_error_message(db));
        goto out;
    }
    char nsig[32];
    snprintf(nsig, sizeof nsig, "%ld", a.signals);
    const char *p1[1] = {nsig};
    anm_db_result *r = NULL;
    if (anm_db_exec(db,
                    "INSERT INTO zones (zone_id, name, case_name, case_file, zone_file, access,"
                    " curtailment_mode, all_contingencies, contingencies) VALUES ('bench', 'bench',"
                    " 'none', 'none', 'none', 'lifo', 'corrective', false, '{}')",
                    0, NULL, NULL, NULL) != ANM_OK ||
        anm_db_exec(db,
                    "INSERT INTO signals (signal_id, zone_id, kind, unit, element) SELECT 'bench-' || g,"
                    " 'bench', 'der_mw', 'MW', 'bench' FROM generate_series(1, $1::int) g",
                    1, p1, NULL, NULL) != ANM_OK ||
        anm_db_exec(db, "SELECT min(signal_key) FROM signals", 0, NULL, &r, NULL) != ANM_OK ||
        anm_db_exec(db, "SELECT anm_ensure_telemetry_partitions(current_date - 1, 3)", 0, NULL, NULL,
                    NULL) != ANM_OK) {
        fprintf(stderr, "bench: set-up failed: %s\n", anm_db_error_message(db));
        goto out;
    }
    uint32_t key0 = (uint32_t)strtoul(anm_db_result_value(r, 0, 0), NULL, 10);
    anm_db_result_destroy(&r);

    /* anm-ingest, on an ephemeral port */
    char config[4300], logpath[4300], text[8192];
    snprintf(config, sizeof config, "%s/ingest.json", dir);
    snprintf(logpath, sizeof logpath, "%s/ingest.log", dir);
    snprintf(text, sizeof text,
             "{\"endpoint\": \"@tcp://127.0.0.1:*\", \"publish_endpoint\": \"\","
             " \"journal_dir\": \"%s/journal\", \"conninfo\": \"%s\", \"batch_max_rows\": 50000,"
             " \"batch_max_age_ms\": 100, \"log_level\": \"warn\"}",
             dir, conninfo);
    FILE *cf = fopen(config, "w");
    if (!cf)
        goto out;
    fputs(text, cf);
    fclose(cf);
    char ingest_bin[4200];
    snprintf(ingest_bin, sizeof ingest_bin, "%s/anm-ingest", bindir);
    ingest = fork();
    if (ingest == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (!freopen(logpath, "w", stderr))
            _exit(126);
        execl(ingest_bin, ingest_bin, "--config", config, "--log-level", "info", (char *)NULL);
        _exit(127);
    }
    char endpoint[256] = "";
    for (int tries = 0; tries < 300 && !endpoint[0]; tries++) {
        sleep_ms(50);
        FILE *lf = fopen(logpath, "r");
        char line[2048];
        while (lf && fgets(line, sizeof line, lf)) {
            const char *at = strstr(line, "listening on \\\"");
            if (at) {
                at += strlen("listening on \\\"");
                snprintf(endpoint, sizeof endpoint, "%.*s", (int)strcspn(at, "\\"), at);
            }
        }
        if (lf)
            fclose(lf);
    }
    if (!endpoint[0]) {
        fprintf(stderr, "bench: anm-ingest did not start (log %s)\n", logpath);
        goto out;
    }
    printf("bench: anm-ingest on %s; %ld signals, batches of %ld samples, %ld in flight\n", endpoint,
           a.signals, a.batch, a.window);
    fflush(stdout);
    sender = fork();
    if (sender == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        _exit(sender_main(endpoint, &a, key0));
    }
    sleep_ms(a.warmup_s * 1000);
    json_t *s0 = status_of(endpoint);
    int64_t t0 = anm_monotonic_ns();
    for (long k = 0; k < a.duration_s; k += 10) {
        sleep_ms((a.duration_s - k < 10 ? a.duration_s - k : 10) * 1000);
        json_t *st = status_of(endpoint);
        if (st) {
            json_t *lat = json_object_get(st, "latency_ms");
            printf("bench: t=%lds stored=%" JSON_INTEGER_FORMAT " rate=%.0f/s journal_bytes=%" JSON_INTEGER_FORMAT
                   " p50=%.0fms p99=%.0fms\n",
                   k + 10, json_integer_value(json_object_get(st, "committed_samples")),
                   json_real_value(json_object_get(st, "rate_commit_per_s")),
                   json_integer_value(json_object_get(st, "journal_bytes")),
                   json_real_value(json_object_get(lat, "p50")), json_real_value(json_object_get(lat, "p99")));
            fflush(stdout);
            json_decref(st);
        }
    }
    json_t *s1 = status_of(endpoint);
    double secs = (double)(anm_monotonic_ns() - t0) / 1e9;
    kill(sender, SIGKILL);
    waitpid(sender, NULL, 0);
    sender = -1;
    if (!s0 || !s1) {
        fprintf(stderr, "bench: no status from anm-ingest\n");
        goto out;
    }
    double rate = (double)(json_integer_value(json_object_get(s1, "committed_samples")) -
                           json_integer_value(json_object_get(s0, "committed_samples"))) / secs;
    json_t *lat = json_object_get(s1, "latency_ms");
    double p50 = json_real_value(json_object_get(lat, "p50"));
    double p99 = json_real_value(json_object_get(lat, "p99"));
    long long hwm = vm_hwm_kb(ingest);
    json_decref(s0);
    json_decref(s1);
    kill(ingest, SIGTERM);
    waitpid(ingest, NULL, 0);
    ingest = -1;
    double ceiling_s = a.duration_s / 4.0 < 10 ? 10 : a.duration_s / 4.0;
    printf("bench: ingest stored %.0f samples/s over %.0f s, p50 %.0f ms, p99 %.0f ms, peak RSS %lld MiB;"
           " measuring the COPY ceiling for %.0f s\n",
           rate, secs, p50, p99, hwm / 1024, ceiling_s);
    fflush(stdout);
    double ceiling = copy_ceiling(conninfo, &a, key0, ceiling_s, 50000);
    printf("bench: ceiling (raw binary COPY, 50000-row transactions, same table) %.0f rows/s\n", ceiling);
    printf("ingest samples_per_s=%.0f p50_ms=%.0f p99_ms=%.0f ceiling_ratio=%.2f\n", rate, p50, p99,
           ceiling > 0 ? rate / ceiling : 0.0);
    rc = 0;
out:
    if (sender > 0) {
        kill(sender, SIGKILL);
        waitpid(sender, NULL, 0);
    }
    if (ingest > 0) {
        kill(ingest, SIGTERM);
        waitpid(ingest, NULL, 0);
    }
    anm_db_destroy(&db);
    char *pg_destroy[] = {pgscript, word_destroy, pgdir, NULL};
    run_cmd(pg_destroy);
    char *rm[] = {word_rm, word_rf, dir, NULL};
    run_cmd(rm);
    free(conninfo);
    return rc;
}
