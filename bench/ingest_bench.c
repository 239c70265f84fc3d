/*
 * ingest_bench.c: bench/ingest, the throughput and latency benchmark of
 * anm-ingest (a program, not a test; it never fails on a figure).
 *
 * Starts an embedded PostgreSQL (scripts/pg, durable settings) in a new
 * temporary directory, migrates it, registers S signals, starts anm-ingest
 * and a sender process that pushes binary batches over the bus at an offered
 * rate set by this process (each sample stamped with the real time its batch
 * was built). Acks come from the journal, far faster than the database
 * commits, so an unthrottled sender measures only a growing backlog; instead
 * the run has three phases:
 *
 *  1. search: probes of 3 s at increasing offered rates (from 150,000/s,
 *     x1.4); a probe holds when, over its last 2 s, the committed rate kept
 *     up (>= 93 % of the offer, less one sender batch and one COPY: the
 *     granularity of the count) and the backlog
 *     (acked, not committed) stayed under 0.3 s of samples plus one sender
 *     batch and one COPY batch; the first probe
 *     that fails is bisected against the best that held;
 *  2. ceiling: the sender pauses and this process runs raw binary COPY of the
 *     same rows (same table and schema, same COPY size, rows sorted by signal
 *     as the service sorts them, one transaction each) as fast as it can, on
 *     one connection (the ceiling of ceiling_ratio), then the same on two
 *     connections at once (ceiling2_ratio: anm-ingest writes over `writers`
 *     connections, 2 by default);
 *  3. measure: the sender offers 90 % of the best rate that held, constant,
 *     for the measurement window (if the backlog is over 0.5 s of samples
 *     plus one sender and one COPY batch at two 5-s checks in a row and not
 *     shrinking, the offer steps down by 10 %, or to 95 % of the rate
 *     committed in the window if that is lower, the backlog drains and the
 *     window starts again, within duration + 40 s (+ 30 s with --quick); a backlog that drains by
 *     the next check, such as the stall after a checkpoint, stays in the
 *     window and in its p99); samples_per_s is the committed rate over
 *     the window and p50/p99 the service's end-to-end latency (measurement
 *     time to commit) of the samples committed in the window.
 *
 * So samples_per_s is a rate the system sustains with bounded latency; the
 * p99 of the window says whether it held (p99 <= 1 s is the target).
 *
 *   bench/ingest [--quick | --duration S] [--rate R] [--signals N] [--batch N] [--window N]
 *                 [--copy-rows N] [--wal-compression 0|1] [--segment-mb N] [--writers N]
 *
 * --rate R skips the search and measures at R samples/s. --wal-compression 1
 * (the default) sets the server's wal_compression to lz4, which compresses the
 * full-page images written after each checkpoint (the 10,000 hot index
 * leaves at once); durability is unchanged. The final report counts the
 * checkpoints that fell in the measurement window. --segment-mb sets the
 * service's journal segment size.
 *
 * Last line: ingest samples_per_s=... p50_ms=... p99_ms=... ceiling_ratio=... ceiling2_ratio=...
 */
#include "engine/bus.h"
#include "engine/clock.h"
#include "engine/db.h"
#include "engine/db_migrate.h"
#include "engine/cli.h"
#include "engine/telemetry_frame.h"
#include "ingest/service.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <zmq.h>

typedef struct bench_args {
    long duration_s, signals, batch, window, rate, copy_rows, wal_compression, segment_mb, writers;
} bench_args;

/* SIGINT/SIGTERM: every phase stops at its next check and the bench tears
   down what it started (the cluster, the service, the sender, the directory) */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    if (!interrupted)
        nanosleep(&ts, NULL); /* a signal ends it early */
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
   [key0, key0 + signals), times strictly increasing per batch, up to `window`
   in flight, at the offered rate last written to rate_fd (an int64 of
   samples/s; 0 pauses). */
static int sender_main(const char *endpoint, const bench_args *a, uint32_t key0, int rate_fd)
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
    fcntl(rate_fd, F_SETFL, O_NONBLOCK);
    anm_telemetry_batch b;
    anm_telemetry_batch_init(&b);
    anm_telemetry_batch_reserve(&b, (size_t)a->batch);
    size_t size = anm_telemetry_frame_size((size_t)a->batch);
    unsigned char *frame = malloc(size);
    uint64_t seq = (uint64_t)anm_wall_clock_ms() * 1000u;
    long in_flight = 0;
    int64_t last_t = 0;
    uint32_t next_signal = 0;
    int64_t rate = 0, started_ns = anm_monotonic_ns();
    uint64_t sent = 0; /* since started_ns */
    for (;;) {
        int64_t r;
        while (read(rate_fd, &r, sizeof r) == (ssize_t)sizeof r) {
            rate = r;
            started_ns = anm_monotonic_ns();
            sent = 0;
        }
        while (rate > 0 && in_flight < a->window) {
            int64_t due_ns = started_ns + (int64_t)((double)sent * 1e9 / (double)rate);
            if (due_ns > anm_monotonic_ns())
                break; /* poll for acks meanwhile */
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
        if (zmq_poll(&item, 1, 1) <= 0)
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

typedef struct bench_row {
    uint32_t key;
    int64_t t;
    double value;
} bench_row;

/* The ceiling: raw binary COPY of rows shaped like the sender's into the same
   table, rows_per_copy in each transaction, sorted by signal (a stable
   counting sort, as the service sorts its COPY batches). */
static double copy_ceiling(const char *conninfo, const bench_args *a, uint32_t key0, double seconds,
                           long rows_per_copy)
{
    anm_db *db = NULL;
    if (anm_db_connect(conninfo, NULL, &db) != ANM_OK)
        return -1;
    anm_db_copy_buffer *buf = anm_db_copy_buffer_new();
    bench_row *rows = calloc((size_t)rows_per_copy, sizeof *rows);
    bench_row *sorted = calloc((size_t)rows_per_copy, sizeof *sorted);
    size_t *bucket = calloc((size_t)a->signals + 1, sizeof *bucket);
    long long total = 0;
    uint32_t next_signal = 0;
    int64_t t = anm_wall_clock_ms() + 1, start = anm_monotonic_ns();
    int64_t end = start + (int64_t)(seconds * 1e9);
    while (buf && rows && sorted && bucket && anm_monotonic_ns() < end && !interrupted) {
        memset(bucket, 0, ((size_t)a->signals + 1) * sizeof *bucket);
        for (long i = 0; i < rows_per_copy; i++) {
            if (next_signal == 0)
                t++;
            rows[i] = (bench_row){next_signal, t, (double)i * 0.001};
            bucket[next_signal + 1]++;
            next_signal = (uint32_t)((next_signal + 1) % (uint32_t)a->signals);
        }
        for (long k = 1; k <= a->signals; k++)
            bucket[k] += bucket[k - 1];
        for (long i = 0; i < rows_per_copy; i++)
            sorted[bucket[rows[i].key]++] = rows[i];
        anm_db_copy_buffer_reset(buf);
        for (long i = 0; i < rows_per_copy; i++) {
            anm_db_copy_row(buf, 4);
            anm_db_copy_int4(buf, (int32_t)(key0 + sorted[i].key));
            anm_db_copy_int4(buf, 0);
            anm_db_copy_timestamptz(buf, sorted[i].t * 1000);
            anm_db_copy_float8(buf, sorted[i].value);
        }
        long long n = 0;
        if (anm_db_begin(db) != ANM_OK ||
            anm_db_copy_in(db, "COPY telemetry (signal_key, quality, time, value) FROM STDIN (FORMAT binary)",
                           buf, &n) != ANM_OK ||
            anm_db_commit(db) != ANM_OK) {
            fprintf(stderr, "bench: ceiling COPY failed: %s\n", anm_db_error_message(db));
            break;
        }
        total += n;
    }
    double secs = (double)(anm_monotonic_ns() - start) / 1e9;
    free(rows);
    free(sorted);
    free(bucket);
    anm_db_copy_buffer_destroy(&buf);
    anm_db_destroy(&db);
    return (double)total / secs;
}

typedef struct ceiling_job {
    const char *conninfo;
    const bench_args *a;
    uint32_t key0;
    double seconds, rate;
    long rows_per_copy;
    pthread_t thread;
} ceiling_job;

static void *ceiling_thread(void *arg)
{
    ceiling_job *j = arg;
    j->rate = copy_ceiling(j->conninfo, j->a, j->key0, j->seconds, j->rows_per_copy);
    return NULL;
}

/* The ceiling over n connections at once (each its own thread and rows). */
static double copy_ceiling_parallel(const char *conninfo, const bench_args *a, uint32_t key0,
                                    double seconds, long rows_per_copy, int n)
{
    ceiling_job jobs[8];
    double total = 0;
    int started = 0;
    for (int i = 0; i < n && i < 8; i++) {
        jobs[i] = (ceiling_job){conninfo, a, key0, seconds, 0, rows_per_copy, 0};
        if (pthread_create(&jobs[i].thread, NULL, ceiling_thread, &jobs[i]) != 0)
            break;
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(jobs[i].thread, NULL);
        total += jobs[i].rate > 0 ? jobs[i].rate : 0;
    }
    return total;
}

/* Checkpoints the server has started (timed and requested). */
static long long checkpoints(anm_db *db)
{
    anm_db_result *r = NULL;
    long long n = -1;
    if (anm_db_exec(db, "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter", 0, NULL,
                    &r, NULL) == ANM_OK &&
        anm_db_result_rows(r) == 1)
        n = strtoll(anm_db_result_value(r, 0, 0), NULL, 10);
    anm_db_result_destroy(&r);
    return n;
}

static void set_rate(int fd, int64_t rate)
{
    if (write(fd, &rate, sizeof rate) != (ssize_t)sizeof rate)
        fprintf(stderr, "bench: could not set the sender's rate\n");
}

static long long jint(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static double loadavg1(void)
{
    char *text = read_text("/proc/loadavg");
    double v = text ? strtod(text, NULL) : -1;
    free(text);
    return v;
}

/* Phase 1: the highest offered rate whose 2 s probes hold (see the top). */
static double search_rate(const char *endpoint, int rate_fd, double budget_s, long batch, long copy_rows)
{
    double good = 0, bad = 0, rate = 150000;
    int64_t deadline = anm_monotonic_ns() + (int64_t)(budget_s * 1e9);
    while (anm_monotonic_ns() < deadline && !interrupted) {
        set_rate(rate_fd, (int64_t)rate);
        sleep_ms(1000); /* the pipeline fills */
        json_t *st0 = status_of(endpoint);
        int64_t t0 = anm_monotonic_ns();
        sleep_ms(2000);
        json_t *st1 = status_of(endpoint);
        if (!st0 || !st1) {
            json_decref(st0);
            json_decref(st1);
            return good;
        }
        double secs = (double)(anm_monotonic_ns() - t0) / 1e9;
        double committed = (double)(jint(st1, "committed_samples") - jint(st0, "committed_samples")) / secs;
        long long depth = jint(st1, "journal_depth");
        /* the backlog is counted in whole sender batches and COPY batches, so
           allow one of each on top of 0.4 s of samples */
        int held = committed >= 0.93 * rate - (double)(batch + copy_rows) / secs &&
                   (double)depth <= 0.3 * rate + (double)(batch + copy_rows);
        printf("bench: probe %.0f/s: committed %.0f/s, backlog %lld samples: %s (load %.2f)\n", rate,
               committed, depth, held ? "held" : "failed", loadavg1());
        fflush(stdout);
        json_decref(st0);
        json_decref(st1);
        if (held) {
            good = rate > good ? rate : good;
            rate = bad > 0 ? (good + bad) / 2 : rate * 1.4;
        } else {
            bad = bad > 0 && bad < rate ? bad : rate;
            /* drain the backlog at a rate that held before the next probe */
            set_rate(rate_fd, (int64_t)(good * 0.5));
            for (int i = 0; i < 20; i++) {
                sleep_ms(500);
                json_t *st = status_of(endpoint);
                long long d = st ? jint(st, "journal_depth") : 0;
                json_decref(st);
                if (d < 20000 || anm_monotonic_ns() > deadline)
                    break;
            }
            rate = good > 0 ? (good + bad) / 2 : rate / 2;
        }
        if (bad > 0 && (bad - good) < 0.05 * bad)
            break;
    }
    return good;
}

int main(int argc, char **argv)
{
    bench_args a = {.duration_s = 60, .signals = 10000, .batch = 10000, .window = 16, .copy_rows = 20000, .wal_compression = 1, .segment_mb = 64, .writers = 2};
    for (int i = 1; i < argc; i++) {
        long *target = NULL;
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: bench/ingest [--quick | --duration S] [--rate SAMPLES_PER_S] [--signals N] [--batch N] [--window N] [--copy-rows N] [--wal-compression 0|1] [--segment-mb N] [--writers N]\n"
                   "  --writers N     anm-ingest's database connections (default 2, its default)\n"
                   "  --rate R        measure at R samples/s offered (default: search for the highest sustained rate)\n"
                   "  --copy-rows N   anm-ingest batch_max_rows and the ceiling's COPY size (default 20000)\n");
            return 0;
        }
        if (strcmp(argv[i], "--quick") == 0) {
            a.duration_s = 25; /* plus set-up, search (20 s) and ceilings (2 x 8 s): about 70 s,
                                  at most about 105 s when the window restarts */
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
        else if (strcmp(argv[i], "--copy-rows") == 0)
            target = &a.copy_rows;
        else if (strcmp(argv[i], "--wal-compression") == 0)
            target = &a.wal_compression;
        else if (strcmp(argv[i], "--segment-mb") == 0)
            target = &a.segment_mb;
        else if (strcmp(argv[i], "--writers") == 0)
            target = &a.writers;
        else
            return anm_cli_usage_error("bench/ingest", "unknown option '%s'", argv[i]);
        if (i + 1 >= argc || anm_parse_long(argv[++i], target == &a.wal_compression ? 0 : 1, 100000000, target) != ANM_OK)
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
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
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
    if (a.wal_compression) {
        /* compresses the full-page images written after each checkpoint (the
           10,000 hot index leaves at once); durability is unchanged */
        if (anm_db_exec(db, "ALTER SYSTEM SET wal_compression = lz4", 0, NULL, NULL, NULL) != ANM_OK ||
            anm_db_exec(db, "SELECT pg_reload_conf()", 0, NULL, NULL, NULL) != ANM_OK)
            fprintf(stderr, "bench: could not set wal_compression: %s\n", anm_db_error_message(db));
    }
    printf("bench: wal_compression %s\n", a.wal_compression ? "lz4" : "off");

    /* anm-ingest, on an ephemeral port */
    char config[4300], logpath[4300], text[8192];
    snprintf(config, sizeof config, "%s/ingest.json", dir);
    snprintf(logpath, sizeof logpath, "%s/ingest.log", dir);
    snprintf(text, sizeof text,
             "{\"endpoint\": \"@tcp://127.0.0.1:*\", \"publish_endpoint\": \"\","
             " \"journal_dir\": \"%s/journal\", \"conninfo\": \"%s\", \"batch_max_rows\": %ld,"
             " \"batch_max_age_ms\": 50, \"segment_mb\": %ld, \"writers\": %ld, \"log_level\": \"info\"}",
             dir, conninfo, a.copy_rows, a.segment_mb, a.writers);
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
    printf("bench: anm-ingest on %s; %ld signals, batches of %ld samples, %ld in flight, %ld writers\n", endpoint,
           a.signals, a.batch, a.window, a.writers);
    fflush(stdout);
    int rate_pipe[2];
    if (pipe(rate_pipe) != 0)
        goto out;
    sender = fork();
    if (sender == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(rate_pipe[1]);
        _exit(sender_main(endpoint, &a, key0, rate_pipe[0]));
    }
    close(rate_pipe[0]);
    int rate_fd = rate_pipe[1];

    /* 1. search */
    double offered = (double)a.rate;
    if (offered <= 0) {
        double budget = a.duration_s >= 300 ? 40 : 20;
        printf("bench: searching for the highest sustained rate (%.0f s)\n", budget);
        fflush(stdout);
        offered = 0.9 * search_rate(endpoint, rate_fd, budget, a.batch, a.copy_rows);
    }
    if (offered <= 0) {
        fprintf(stderr, "bench: no probe held\n");
        goto out;
    }
    /* 2. ceiling, with the sender paused and the backlog drained */
    set_rate(rate_fd, 0);
    for (int i = 0; i < 100; i++) {
        json_t *st = status_of(endpoint);
        long long d = st ? jint(st, "journal_depth") : 0;
        json_decref(st);
        if (d == 0)
            break;
        sleep_ms(100);
    }
    double ceiling_s = a.duration_s / 6.0 < 8 ? 8 : a.duration_s / 6.0 > 30 ? 30 : a.duration_s / 6.0;
    double load_ceiling = loadavg1();
    double ceiling = copy_ceiling(conninfo, &a, key0, ceiling_s, a.copy_rows);
    printf("bench: ceiling (raw binary COPY, %ld-row transactions sorted by signal, same table, one connection) %.0f rows/s over %.0f s (load %.2f)\n",
           a.copy_rows, ceiling, ceiling_s, load_ceiling);
    fflush(stdout);
    double ceiling2 = copy_ceiling_parallel(conninfo, &a, key0, ceiling_s, a.copy_rows, 2);
    printf("bench: the same over two connections at once %.0f rows/s over %.0f s\n", ceiling2, ceiling_s);
    /* 3. measure at a constant offered rate; if the backlog outgrows its
       bound, step the rate down by 10 % and start the window again */
    json_t *s0 = NULL;
    int64_t t0 = 0;
    long long checkpoints0 = 0;
    int64_t phase_end = anm_monotonic_ns() + (int64_t)(a.duration_s + (a.duration_s < 60 ? 30 : 40)) * 1000000000LL;
    long window_s = a.duration_s;
    for (int attempt = 0;; attempt++) {
        printf("bench: measuring at %.0f samples/s offered for %ld s\n", offered, window_s);
        fflush(stdout);
        set_rate(rate_fd, (int64_t)offered);
        sleep_ms(2000); /* settle */
        json_decref(s0);
        if (ingest_status_query_window(endpoint, 5000, &s0) != ANM_OK)
            s0 = NULL;
        t0 = anm_monotonic_ns();
        checkpoints0 = checkpoints(db);
        int overflowed = 0;
        long long last_depth = 0, stored0 = s0 ? jint(s0, "committed_samples") : 0;
        double sustained = 0; /* committed rate since the window started */
        for (long k = 0; k < window_s && !overflowed && !interrupted; k += 5) {
            long step = window_s - k < 5 ? window_s - k : 5;
            sleep_ms(step * 1000);
            json_t *st = status_of(endpoint);
            if (!st)
                continue;
            json_t *lat = json_object_get(st, "latency_ms");
            long long depth = jint(st, "journal_depth");
            printf("bench: t=%lds stored=%lld backlog=%lld samples p50=%.0fms p99=%.0fms load %.2f\n",
                   k + step, jint(st, "committed_samples"), depth,
                   json_real_value(json_object_get(lat, "p50")), json_real_value(json_object_get(lat, "p99")),
                   loadavg1());
            fflush(stdout);
            sustained = (double)(jint(st, "committed_samples") - stored0) /
                        ((double)(anm_monotonic_ns() - t0) / 1e9);
            json_decref(st);
            int64_t left_s = (phase_end - anm_monotonic_ns()) / 1000000000LL;
            /* a backlog over the bound at two checks in a row, not draining, is
               a rate the service does not sustain; one over it that drains by
               the next check is a stall (a checkpoint) it recovers from, and
               shows in p99 */
            double bound = 0.5 * offered + (double)(a.batch + a.copy_rows);
            if ((double)depth > bound && (double)last_depth > bound && depth >= last_depth &&
                left_s >= 20 && attempt < 4)
                overflowed = 1;
            last_depth = depth;
        }
        if (!overflowed || interrupted)
            break;
        /* 10 % down, or below what was committed meanwhile if that is lower
           (the short probes on a young table overrate what a growing one takes) */
        offered = 0.9 * offered < 0.95 * sustained ? 0.9 * offered : 0.95 * sustained;
        set_rate(rate_fd, 0); /* drain the backlog before the next window */
        for (int i = 0; i < 600; i++) {
            json_t *st = status_of(endpoint);
            long long d = st ? jint(st, "journal_depth") : 0;
            json_decref(st);
            if (d <= a.batch)
                break;
            sleep_ms(100);
        }
        int64_t left_s = (phase_end - anm_monotonic_ns()) / 1000000000LL - 3;
        window_s = left_s < a.duration_s ? (long)left_s : a.duration_s;
        printf("bench: backlog over 0.5 s: stepping the offered rate down\n");
    }
    if (interrupted) {
        fprintf(stderr, "bench: interrupted: stopping what it started\n");
        json_decref(s0);
        goto out;
    }
    json_t *s1 = status_of(endpoint);
    double secs = (double)(anm_monotonic_ns() - t0) / 1e9;
    kill(sender, SIGKILL);
    waitpid(sender, NULL, 0);
    sender = -1;
    if (!s0 || !s1) {
        fprintf(stderr, "bench: no status from anm-ingest\n");
        json_decref(s0);
        json_decref(s1);
        goto out;
    }
    double rate = (double)(jint(s1, "committed_samples") - jint(s0, "committed_samples")) / secs;
    json_t *lat = json_object_get(s1, "latency_ms");
    double p50 = json_real_value(json_object_get(lat, "p50"));
    double p99 = json_real_value(json_object_get(lat, "p99"));
    long long hwm = vm_hwm_kb(ingest);
    json_decref(s0);
    json_decref(s1);
    kill(ingest, SIGTERM);
    waitpid(ingest, NULL, 0);
    ingest = -1;
    printf("bench: ingest stored %.0f samples/s over %.0f s at %.0f offered, p50 %.0f ms, p99 %.0f ms,"
           " peak RSS %lld MiB, %lld checkpoints in the window, load %.2f\n",
           rate, secs, offered, p50, p99, hwm / 1024, checkpoints(db) - checkpoints0, loadavg1());
    /* the stalls anm-ingest logged (a store over 300 ms, and where its time went) */
    char *log_text = read_text(logpath);
    int slow = 0;
    for (char *line = log_text; line && *line;) {
        char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        const char *msg = strstr(line, "\"msg\":\"slow store");
        if (msg && (size_t)(msg - line) < len && slow++ < 8)
            printf("bench: anm-ingest: %.*s\n", (int)(len - (size_t)(msg - line)), msg + 7);
        line = eol ? eol + 1 : line + len;
    }
    printf("bench: %d stores took over 300 ms\n", slow);
    free(log_text);
    printf("ingest samples_per_s=%.0f p50_ms=%.0f p99_ms=%.0f ceiling_ratio=%.2f ceiling2_ratio=%.2f\n",
           rate, p50, p99, ceiling > 0 ? rate / ceiling : 0.0, ceiling2 > 0 ? rate / ceiling2 : 0.0);
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
