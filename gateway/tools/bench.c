/*
 * bench.c: `anm-gateway bench` (see bench.h and docs/performance.md).
 *
 * Part 1, IEC 104 throughput: our outstation (k = 12, w = 8) and our
 * client on loopback, each driven by its own thread. The producer stamps
 * every value with the wall clock when it makes it (the "measurement") and
 * hands it to the outstation as spontaneous M_ME_TF_1 (COT 3); it makes a
 * new batch whenever fewer than 4k ASDUs wait, so the queue stays bounded
 * and latency means something. Hand-over = the client's acknowledgement of
 * the ASDU (the outstation's ack handler): values/s counts acknowledged
 * values; latency is measurement -> acknowledgement.
 *
 * Part 2, all routes: 5,000 signals at 1 Hz (50 values every 10 ms) for the
 * duration, on IEC 104 (as above, paced) and, when --mqtt-port is given, at
 * the same time on MQTT over TLS to a real broker (QoS 1, durable spool;
 * hand-over = PUBACK). all_routes_p99_ms is the worst route's p99.
 */
#include "bench.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/cli.h"
#include "engine/clock.h"
#include "engine/log.h"
#include "gateway/gateway.h"
#include "gateway/iec104_client.h"
#include "gateway/iec104_server.h"
#include "gateway/mqtt_out.h"

#define PROG      "anm-gateway bench"
#define FIRST_IOA 1000u

typedef struct bench_options {
    double duration_s; /* part 1 */
    double routes_s;   /* part 2 */
    long signals;      /* part 2 */
    long mqtt_port;    /* 0: no MQTT route */
    const char *mqtt_ca;
    const char *mqtt_user;
    const char *mqtt_password_file;
    const char *spool_dir;
} bench_options;

/* ---- the IEC 104 pair --------------------------------------------------------------- */

typedef struct iec104_pair {
    gateway_iec104_server *server;
    gateway_iec104_client *client;
    anm_clock *clock;
    atomic_int stop;
    atomic_int client_started;
    gateway_latency latency;  /* server thread */
    uint64_t acked_values;    /* server thread */
    uint64_t received_values; /* client thread */
    int measuring;
} iec104_pair;

static void on_ack(void *arg, int64_t measured_utc_ms, size_t values, int64_t now_ms)
{
    (void)now_ms;
    iec104_pair *p = arg;
    if (!p->measuring)
        return;
    gateway_latency_add(&p->latency, (double)(anm_wall_clock_ms() - measured_utc_ms),
                        (uint64_t)values);
    p->acked_values += values;
}

static void on_asdu(void *arg, const gateway_iec104_asdu *asdu, int64_t now_ms)
{
    (void)now_ms;
    iec104_pair *p = arg;
    p->received_values += asdu->count;
}

static void *client_thread(void *arg)
{
    iec104_pair *p = arg;
    while (!atomic_load(&p->stop)) {
        (void)gateway_iec104_client_run_once(p->client, anm_clock_now_ms(p->clock), 2);
        atomic_store(&p->client_started, gateway_iec104_client_is_started(p->client));
    }
    return NULL;
}

static int pair_open(iec104_pair *p, long points)
{
    memset(p, 0, sizeof *p);
    anm_error_detail d;
    anm_error_detail_clear(&d);
    p->clock = anm_clock_new_real();
    gateway_iec104_server_config sc;
    gateway_iec104_server_config_default(&sc);
    sc.port = 0;
    sc.link.k = 12;
    sc.link.w = 8;
    int rc = gateway_iec104_server_new(&sc, anm_clock_now_ms(p->clock), &p->server, &d);
    if (rc != ANM_OK) {
        anm_cli_fail(PROG, "outstation: %s", d.message);
        return rc;
    }
    for (long i = 0; i < points; i++)
        (void)gateway_iec104_server_define_point(p->server, FIRST_IOA + (uint32_t)i,
                                                 GATEWAY_IEC104_POINT_MEASURED);
    gateway_iec104_server_set_ack_handler(p->server, on_ack, p);
    gateway_iec104_client_config cc;
    gateway_iec104_client_config_default(&cc);
    cc.port = gateway_iec104_server_port(p->server);
    cc.link.k = 12;
    cc.link.w = 8;
    cc.interrogate_on_start = 0;
    rc = gateway_iec104_client_new(&cc, on_asdu, p, anm_clock_now_ms(p->clock), &p->client, &d);
    if (rc != ANM_OK) {
        anm_cli_fail(PROG, "client: %s", d.message);
        return rc;
    }
    gateway_latency_reset(&p->latency);
    return ANM_OK;
}

static void pair_close(iec104_pair *p)
{
    gateway_iec104_client_destroy(&p->client);
    gateway_iec104_server_destroy(&p->server);
    anm_clock_destroy(&p->clock);
}

/*
 * Drives the outstation for seconds (after warm_s of warm-up). rate 0: as
 * fast as the link takes them (batches of 16k values while < 4k ASDUs
 * wait); otherwise rate values/s in 10 ms slices over points signals.
 */
static void pair_drive(iec104_pair *p, long points, double rate, double warm_s, double seconds)
{
    enum { BATCH = 16 * 12 };
    gateway_iec104_point_update *up = calloc(points > BATCH ? (size_t)points : BATCH, sizeof *up);
    uint32_t next = 0;
    int64_t start = anm_monotonic_ns();
    int64_t measure_at = start + (int64_t)(warm_s * 1e9);
    int64_t end = measure_at + (int64_t)(seconds * 1e9);
    int64_t slice_ns = 10000000, next_slice = start;
    double carry = 0;
    while (anm_monotonic_ns() < end) {
        int64_t t = anm_monotonic_ns();
        if (!p->measuring && t >= measure_at) {
            p->measuring = 1;
            gateway_latency_reset(&p->latency);
            p->acked_values = 0;
        }
        size_t n = 0;
        if (atomic_load(&p->client_started)) {
            if (rate <= 0) {
                if (gateway_iec104_server_backlog(p->server) < 4 * 12)
                    n = BATCH;
            } else if (t >= next_slice) {
                carry += rate * (double)slice_ns / 1e9;
                n = (size_t)carry;
                carry -= (double)n;
                next_slice += slice_ns;
            }
        }
        if (n > 0) {
            int64_t utc = anm_wall_clock_ms();
            for (size_t i = 0; i < n; i++) {
                up[i] =
                    (gateway_iec104_point_update){FIRST_IOA + next, (double)(utc % 100000), 0, utc};
                next = (next + 1) % (uint32_t)points;
            }
            (void)gateway_iec104_server_update_many(p->server, up, n, 1, 0,
                                                    anm_clock_now_ms(p->clock));
        }
        (void)gateway_iec104_server_run_once(p->server, anm_clock_now_ms(p->clock),
                                             rate <= 0 ? 0 : 1);
    }
    p->measuring = 0;
    free(up);
}

/* ---- MQTT route --------------------------------------------------------------------- */

typedef struct mqtt_route {
    const bench_options *options;
    atomic_int stop;
    atomic_int go; /* start publishing */
    gateway_latency latency;
    uint64_t offered, published, acked;
    double seconds; /* publishing time */
    char error[1024];
    int ok;
} mqtt_route;

static void *mqtt_thread(void *arg)
{
    mqtt_route *m = arg;
    const bench_options *o = m->options;
    gateway_mqtt_out_config c;
    memset(&c, 0, sizeof c);
    c.connection.host = "127.0.0.1";
    c.connection.port = (int)o->mqtt_port;
    c.connection.ca_file = o->mqtt_ca;
    c.connection.username = o->mqtt_user;
    c.connection.password_file = o->mqtt_password_file;
    c.spool_dir = o->spool_dir;
    c.max_inflight = 1000;
    gateway_mqtt_out *out = NULL;
    anm_error_detail d;
    anm_error_detail_clear(&d);
    int64_t *stamps = NULL;
    size_t cap = 1u << 20, head = 0, count = 0;
    if (gateway_mqtt_out_new(&c, &out, &d) != ANM_OK) {
        snprintf(m->error, sizeof m->error, "mqtt: %s", d.message);
        return NULL;
    }
    stamps = malloc(cap * sizeof *stamps);
    int64_t deadline = anm_monotonic_ns() + 10000000000LL;
    while (gateway_mqtt_out_state(out) != GATEWAY_MQTT_CONNECTED && anm_monotonic_ns() < deadline)
        (void)gateway_mqtt_out_run(out, 10);
    if (gateway_mqtt_out_state(out) != GATEWAY_MQTT_CONNECTED) {
        snprintf(m->error, sizeof m->error, "mqtt: not connected: %s",
                 gateway_mqtt_out_last_error(out));
        goto done;
    }
    m->ok = 1;
    gateway_latency_reset(&m->latency);
    while (!atomic_load(&m->go) && !atomic_load(&m->stop))
        (void)gateway_mqtt_out_run(out, 5);
    /* offered load: signals/s from the start, whatever publish costs (a
       route that cannot keep up shows it as latency and backlog) */
    int64_t t0 = anm_monotonic_ns(), next_slice = t0;
    int64_t wall0 = anm_wall_clock_ms();
    uint64_t base_acked = gateway_mqtt_out_acked(out);
    uint32_t next = 0;
    while (!atomic_load(&m->stop)) {
        int64_t t = anm_monotonic_ns();
        if (t >= next_slice) {
            uint64_t due = (uint64_t)((double)(t - t0) / 1e9 * (double)o->signals);
            next_slice = t + 10000000;
            size_t n = due > m->offered ? (size_t)(due - m->offered) : 0;
            if (n > 1000)
                n = 1000; /* stay responsive; what is not yet offered still counts as due
                             (a loop turn costs one group-commit fdatasync, so the cap per
                             turn must exceed signals x the fsync time) */
            for (size_t i = 0; i < n && count < cap; i++) {
                /* measured when it was due, not when the publisher got to it */
                int64_t utc = wall0 + (int64_t)((double)m->offered * 1000.0 / (double)o->signals);
                m->offered++;
                char unit[32];
                snprintf(unit, sizeof unit, "UNIT%05u", next);
                gateway_mqtt_sample s = {.unit = unit,
                                         .quantity = "active_power_mw",
                                         .signal_id = next,
                                         .utc_ms = utc,
                                         .value = (double)(utc % 1000) / 10.0};
                next = (next + 1) % (uint32_t)o->signals;
                if (gateway_mqtt_out_publish(out, &s) != ANM_OK)
                    continue;
                stamps[(head + count) % cap] = utc;
                count++;
                m->published++;
            }
        }
        m->seconds = (double)(anm_monotonic_ns() - t0) / 1e9;
        (void)gateway_mqtt_out_run(out, 1);
        uint64_t acked = gateway_mqtt_out_acked(out) - base_acked;
        int64_t now = anm_wall_clock_ms();
        while (m->acked < acked && count > 0) { /* PUBACKs come in publish order */
            gateway_latency_add(&m->latency, (double)(now - stamps[head]), 1);
            head = (head + 1) % cap;
            count--;
            m->acked++;
        }
    }
    {
        /* every value due and not acknowledged is at least this late */
        int64_t now = anm_wall_clock_ms();
        uint64_t due = (uint64_t)(m->seconds * (double)o->signals);
        for (uint64_t k = m->acked; k < due; k++) {
            int64_t utc = wall0 + (int64_t)((double)k * 1000.0 / (double)o->signals);
            gateway_latency_add(&m->latency, (double)(now - utc), 1);
        }
    }
done:
    free(stamps);
    gateway_mqtt_out_destroy(&out);
    return NULL;
}

/* ---- main -------------------------------------------------------------------------------- */

static int parse_options(int argc, char **argv, bench_options *o)
{
    *o = (bench_options){.duration_s = 30,
                         .routes_s = 60,
                         .signals = 5000,
                         .spool_dir = "/tmp/anm-bench-gateway-spool"};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--quick") == 0) {
            o->duration_s = 10;
            o->routes_s = 20;
            continue;
        }
        if (i + 1 >= argc)
            return anm_cli_usage_error(PROG, "unknown option or missing value: '%s'", a);
        const char *v = argv[++i];
        int bad = 0;
        if (strcmp(a, "--duration") == 0)
            bad = anm_parse_double(v, 1, 3600, &o->duration_s) != ANM_OK;
        else if (strcmp(a, "--routes-duration") == 0)
            bad = anm_parse_double(v, 1, 3600, &o->routes_s) != ANM_OK;
        else if (strcmp(a, "--signals") == 0)
            bad = anm_parse_long(v, 1, 60000, &o->signals) != ANM_OK;
        else if (strcmp(a, "--mqtt-port") == 0)
            bad = anm_parse_long(v, 1, 65535, &o->mqtt_port) != ANM_OK;
        else if (strcmp(a, "--mqtt-ca") == 0)
            o->mqtt_ca = v;
        else if (strcmp(a, "--mqtt-user") == 0)
            o->mqtt_user = v;
        else if (strcmp(a, "--mqtt-password-file") == 0)
            o->mqtt_password_file = v;
        else if (strcmp(a, "--spool-dir") == 0)
            o->spool_dir = v;
        else
            return anm_cli_usage_error(PROG, "unknown option '%s'", a);
        if (bad)
            return anm_cli_usage_error(PROG, "bad value for %s: '%s'", a, v);
    }
    if (o->mqtt_port != 0 && o->mqtt_ca == NULL)
        return anm_cli_usage_error(PROG, "--mqtt-port needs --mqtt-ca");
    return ANM_EXIT_OK;
}

static int wait_started(iec104_pair *p)
{
    int64_t end = anm_monotonic_ns() + 10000000000LL;
    while (!atomic_load(&p->client_started) && anm_monotonic_ns() < end)
        (void)gateway_iec104_server_run_once(p->server, anm_clock_now_ms(p->clock), 2);
    return atomic_load(&p->client_started) ? ANM_OK : ANM_ETIMEOUT;
}

/* Runs the pair; fills values/s and p50/p99. */
static int run_pair(long points, double rate, double warm_s, double seconds, double *per_s,
                    double *p50, double *p99, mqtt_route *mqtt)
{
    iec104_pair *p = calloc(1, sizeof *p);
    int rc = pair_open(p, points);
    pthread_t thread;
    if (rc == ANM_OK && pthread_create(&thread, NULL, client_thread, p) != 0)
        rc = ANM_ENOMEM;
    if (rc != ANM_OK) {
        pair_close(p);
        free(p);
        return rc;
    }
    rc = wait_started(p);
    if (rc == ANM_OK) {
        if (mqtt != NULL)
            atomic_store(&mqtt->go, 1);
        pair_drive(p, points, rate, warm_s, seconds);
        *per_s = (double)p->acked_values / seconds;
        *p50 = gateway_latency_quantile(&p->latency, 0.50);
        *p99 = gateway_latency_quantile(&p->latency, 0.99);
    } else {
        anm_cli_fail(PROG, "the IEC 104 client did not start data transfer");
    }
    atomic_store(&p->stop, 1);
    pthread_join(thread, NULL);
    pair_close(p);
    free(p);
    return rc;
}

int gateway_bench_main(int argc, char **argv)
{
    bench_options o;
    int code = parse_options(argc, argv, &o);
    if (code != ANM_EXIT_OK)
        return code;
    anm_log_set_level(ANM_LOG_WARN);
    printf("gateway bench: part 1, IEC 104 outstation -> client on loopback, k=12 w=8, "
           "M_ME_TF_1 COT 3, %.0f s\n",
           o.duration_s);
    fflush(stdout);
    double per_s = 0, p50 = -1, p99 = -1;
    if (run_pair(1600, 0, 1.0, o.duration_s, &per_s, &p50, &p99, NULL) != ANM_OK)
        return ANM_EXIT_FAILURE;
    printf("  iec104: %.0f values/s acknowledged, latency measurement->ack p50 %.1f ms "
           "p99 %.1f ms\n",
           per_s, p50, p99);
    fflush(stdout);
    printf("gateway bench: part 2, %ld signals at 1 Hz on every route at once, %.0f s\n", o.signals,
           o.routes_s);
    fflush(stdout);
    mqtt_route mqtt = {.options = &o};
    pthread_t mqtt_tid;
    int with_mqtt = o.mqtt_port != 0;
    if (with_mqtt && pthread_create(&mqtt_tid, NULL, mqtt_thread, &mqtt) != 0)
        return ANM_EXIT_FAILURE;
    double r_per_s = 0, r_p50 = -1, r_p99 = -1;
    int rc = run_pair(o.signals, (double)o.signals, 2.0, o.routes_s, &r_per_s, &r_p50, &r_p99,
                      with_mqtt ? &mqtt : NULL);
    double all_p99 = r_p99;
    printf("  iec104: %.0f values/s, latency p50 %.1f ms p99 %.1f ms\n", r_per_s, r_p50, r_p99);
    if (with_mqtt) {
        atomic_store(&mqtt.stop, 1);
        pthread_join(mqtt_tid, NULL);
        if (!mqtt.ok) {
            printf("  mqtt: FAILED: %s\n", mqtt.error);
            all_p99 = -1;
        } else {
            double m50 = gateway_latency_quantile(&mqtt.latency, 0.50);
            double m99 = gateway_latency_quantile(&mqtt.latency, 0.99);
            printf("  mqtt: %" PRIu64 " offered, %" PRIu64 " published (spooled), %" PRIu64
                   " acknowledged (PUBACK), latency p50 %.1f ms p99 %.1f ms\n",
                   mqtt.offered, mqtt.published, mqtt.acked, m50, m99);
            if (m99 > all_p99)
                all_p99 = m99;
            double expected = mqtt.seconds * (double)o.signals;
            if ((double)mqtt.acked < 0.95 * expected)
                printf("  mqtt: does NOT keep up: %" PRIu64 " acknowledged of %.0f due in %.1f s "
                       "(%.0f/s); the latency counts the others as late as the end of the run\n",
                       mqtt.acked, expected, mqtt.seconds, (double)mqtt.acked / mqtt.seconds);
        }
    } else {
        printf("  mqtt: not run (no --mqtt-port)\n");
    }
    printf("  data concentrator: not in this run (files are paced 30 s apart by design)\n");
    printf("targets: iec104_values_per_s >= 200000, iec104_p99_ms <= 100, "
           "all_routes_p99_ms <= 1000\n");
    printf("gateway iec104_values_per_s=%.0f iec104_p99_ms=%.1f all_routes_p99_ms=%.1f\n", per_s,
           p99, all_p99);
    return rc == ANM_OK ? ANM_EXIT_OK : ANM_EXIT_FAILURE;
}
