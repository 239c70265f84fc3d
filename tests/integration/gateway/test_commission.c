/*
 * test_commission.c: `anm-gateway commission` run as a process against our
 * IEC 104 client: every mapped signal arrives at every pattern step with the
 * COT test bit, values as the pattern defines them, and the report lists
 * what was sent and acknowledged.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "engine/clock.h"
#include "gateway/iec104_client.h"
#include "gateway/jws.h"
#include "gateway/wa_server.h"
#include "mosquitto_fixture.h"
#include "testlib.h"
#include "tls_fixture.h"
#include "wa_tls.h"

extern char **environ;

/* ramp over 5 steps, in sent units; the pcf point is sent in percent (scale 100) */
static const char proforma[] =
    "{\"ders\":[{\"id\":\"wind18\",\"zone\":\"feeder33\",\"capacity_mw\":8,"
    "\"metered_signal_id\":44}],"
    "\"points\":["
    "{\"der\":\"wind18\",\"quantity\":\"metered_mw\",\"iec104\":{\"ioa\":1001},\"min\":-1,"
    "\"max\":8.4},"
    "{\"der\":\"wind18\",\"quantity\":\"availability_mw\",\"iec104\":{\"ioa\":1002},\"min\":0,"
    "\"max\":8},"
    "{\"der\":\"wind18\",\"quantity\":\"pcf\",\"iec104\":{\"ioa\":1003},\"scale\":100,\"min\":0,"
    "\"max\":100},"
    "{\"der\":\"wind18\",\"quantity\":\"state\",\"iec104\":{\"ioa\":1004,\"type\":\"single\"},"
    "\"min\":0,\"max\":1}]}";

#define STEPS  5
#define POINTS 4
/* hand-worked: min + (max - min) * step / 4; state alternates 0/1 */
static const double expected[POINTS][STEPS] = {
    {-1, 1.35, 3.7, 6.05, 8.4}, {0, 2, 4, 6, 8}, {0, 25, 50, 75, 100}, {0, 1, 0, 1, 0}};

typedef struct received {
    int count[POINTS];                /* spontaneous test values per IOA */
    double values[POINTS][STEPS + 2]; /* in arrival order */
    int untested;                     /* spontaneous values without the T bit during the test */
    int restored;                     /* ... after every test value (the live values put back) */
} received;

static void on_asdu(void *arg, const gateway_iec104_asdu *asdu, int64_t now_ms)
{
    (void)now_ms;
    received *r = arg;
    if (asdu->cause != GATEWAY_IEC104_COT_SPONTANEOUS)
        return;
    for (int i = 0; i < asdu->count; i++) {
        const gateway_iec104_object *o = &asdu->objects[i];
        if (o->ioa < 1001 || o->ioa > 1004)
            continue;
        if (!asdu->test) {
            int done = 1;
            for (int p = 0; p < POINTS; p++)
                done = done && r->count[p] >= STEPS;
            if (done)
                r->restored++;
            else
                r->untested++;
            continue;
        }
        int p = (int)o->ioa - 1001;
        double v = asdu->type == GATEWAY_IEC104_M_SP_TB_1 ? o->single_point : o->value;
        if (r->count[p] < STEPS + 2)
            r->values[p][r->count[p]] = v;
        r->count[p]++;
    }
}

/*
 * Runs `anm-gateway commission --pattern ramp` with cfg, plays the IEC 104
 * client until the process ends and returns its exit status (-1: killed
 * after 45 s). err gets its standard error.
 */
static int run_commission(const char *cfg, const char *report, received *r, char *err,
                          size_t err_size)
{
    char bin[1024];
    snprintf(bin, sizeof bin, "%s/anm-gateway", anm_test_bin_dir());
    int err_pipe[2];
    cr_assert_eq(pipe(err_pipe), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&actions, err_pipe[0]);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    char *argv[] = {bin,
                    strdup("commission"),
                    strdup("--config"),
                    strdup(cfg),
                    strdup("--pattern"),
                    strdup("ramp"),
                    strdup("--report"),
                    strdup(report),
                    strdup("--wait-s"),
                    strdup("20"),
                    strdup("--interval-ms"),
                    strdup("50"),
                    strdup("--ack-wait-s"),
                    strdup("20"),
                    NULL};
    pid_t pid = 0;
    int rc = posix_spawn(&pid, bin, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(err_pipe[1]);
    for (int i = 1; argv[i] != NULL; i++)
        free(argv[i]);
    cr_assert_eq(rc, 0, "could not run %s: %s", bin, strerror(rc));

    /* the port from "waiting up to 20 s for an IEC 104 client on port N" */
    size_t err_len = 0;
    err[0] = '\0';
    long port = 0;
    int64_t end = anm_monotonic_ns() + 20000000000LL;
    while (port == 0 && anm_monotonic_ns() < end) {
        struct pollfd p = {.fd = err_pipe[0], .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t got = read(err_pipe[0], err + err_len, err_size - 1 - err_len);
        cr_assert_gt(got, 0, "anm-gateway commission ended early: %.*s", (int)err_len, err);
        err_len += (size_t)got;
        err[err_len] = '\0';
        const char *at = strstr(err, "client on port ");
        if (at != NULL && strchr(at, '\n') != NULL)
            port = strtol(at + strlen("client on port "), NULL, 10);
    }
    cr_assert_gt(port, 0, "no port announced: %s", err);

    anm_clock *clock = anm_clock_new_real();
    gateway_iec104_client_config cc;
    gateway_iec104_client_config_default(&cc);
    cc.port = (int)port;
    cc.link.t2_s = 1; /* acknowledge the last values within 1 s */
    gateway_iec104_client *client = NULL;
    anm_error_detail d;
    anm_error_detail_clear(&d);
    cr_assert_eq(gateway_iec104_client_new(&cc, on_asdu, r, anm_clock_now_ms(clock), &client, &d),
                 ANM_OK);
    int status = -1;
    end = anm_monotonic_ns() + 45000000000LL;
    while (anm_monotonic_ns() < end) {
        (void)gateway_iec104_client_run_once(client, anm_clock_now_ms(clock), 5);
        struct pollfd p = {.fd = err_pipe[0], .events = POLLIN};
        if (poll(&p, 1, 0) > 0 && err_len + 1 < err_size) {
            ssize_t got = read(err_pipe[0], err + err_len, err_size - 1 - err_len);
            if (got > 0) {
                err_len += (size_t)got;
                err[err_len] = '\0';
            }
        }
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
    }
    gateway_iec104_client_destroy(&client);
    close(err_pipe[0]);
    anm_clock_destroy(&clock);
    if (!WIFEXITED(status)) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return -1;
    }
    return WEXITSTATUS(status);
}

/* The pattern reached the IEC 104 client: every step, test bit, values in order, then live. */
static void expect_iec104_pattern(const received *r)
{
    cr_assert_eq(r->untested, 0, "%d values without the test bit during the test", r->untested);
    /* afterwards every point is sent again live, without the test bit */
    cr_assert_eq(r->restored, POINTS);
    for (int p = 0; p < POINTS; p++) {
        cr_assert_eq(r->count[p], STEPS, "ioa %d: %d values", 1001 + p, r->count[p]);
        for (int k = 0; k < STEPS; k++) /* float32 on the wire: 1e-6 relative */
            cr_assert_float_eq(r->values[p][k], expected[p][k], 1e-6 * 100, "ioa %d step %d",
                               1001 + p, k);
    }
}

Test(commission, ramp_on_every_signal_with_test_bit_and_report, .timeout = 60)
{
    char *dir = anm_test_tmpdir("gw-commission");
    char pf[1024], cfg[1024], report[1024], txt[1100];
    snprintf(pf, sizeof pf, "%s/pf.json", dir);
    snprintf(cfg, sizeof cfg, "%s/gw.json", dir);
    snprintf(report, sizeof report, "%s/report.json", dir);
    snprintf(txt, sizeof txt, "%s.txt", report);
    cr_assert_eq(anm_test_write_file(pf, proforma), 0);
    cr_assert_eq(anm_test_write_file(cfg, "{\"proforma_file\":\"pf.json\","
                                          "\"status_endpoint\":\"@tcp://127.0.0.1:*\","
                                          "\"iec104\":{\"port\":0,\"cyclic_period_s\":0}}"),
                 0);
    received *r = calloc(1, sizeof *r);
    static char err[65536];
    int status = run_commission(cfg, report, r, err, sizeof err);
    cr_assert_eq(status, 0, "commission failed (%d): %s", status, err);
    expect_iec104_pattern(r);

    json_error_t je;
    json_t *doc = json_load_file(report, 0, &je);
    cr_assert_not_null(doc, "report: %s", je.text);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "pattern")), "ramp");
    cr_assert_eq(json_integer_value(json_object_get(doc, "steps")), STEPS);
    json_t *iec = json_object_get(doc, "iec104");
    cr_assert_eq(json_integer_value(json_object_get(iec, "sent")), POINTS * STEPS);
    cr_assert_eq(json_integer_value(json_object_get(iec, "acknowledged")), POINTS * STEPS);
    cr_assert(json_is_true(json_object_get(iec, "all_acknowledged")));
    /* the other routes are off in this configuration, and say so */
    const char *off[] = {"mqtt", "wider_access", "data_concentrator"};
    for (int k = 0; k < 3; k++)
        cr_assert(json_is_false(json_object_get(json_object_get(doc, off[k]), "enabled")), "%s",
                  off[k]);
    json_t *values = json_object_get(doc, "values");
    cr_assert_eq(json_array_size(values), POINTS * STEPS);
    for (size_t i = 0; i < json_array_size(values); i++) {
        json_t *v = json_array_get(values, i);
        long long ioa = json_integer_value(json_object_get(v, "ioa"));
        long long step = json_integer_value(json_object_get(v, "step"));
        cr_assert(ioa >= 1001 && ioa <= 1004 && step >= 0 && step < STEPS);
        cr_assert(json_is_true(json_object_get(v, "test")), "value %zu not marked test", i);
        cr_assert_float_eq(json_number_value(json_object_get(v, "value")),
                           expected[ioa - 1001][step], 1e-9);
    }
    json_decref(doc);
    char *text = anm_test_read_file(txt, NULL);
    cr_assert_not_null(text);
    cr_assert(strstr(text, "20 value(s) sent with the test bit, 20 acknowledged") != NULL, "%s",
              text);
    free(text);
    free(r);
    anm_test_rmtree(dir);
    free(dir);
}

/* ---- every route at once: MQTT broker, NESO stand-in, Data Concentrator emulator ---------- */

#define DC_USER     "anm-participant-01"
#define DC_PASSWORD "k9Jw2vQx7LmN4pRs8TzY1bCd5FgH3jKa6WeU0iOo2PlMnBvCxZaSdFgHqW"
#define MQTT_PASSWORD "broker password 0123456789"

/* the availability point (ioa 1002) also goes to MQTT, Wider Access and the DC */
static const char proforma_all[] =
    "{\"ders\":[{\"id\":\"wind18\",\"zone\":\"feeder33\",\"unit\":\"E_WIND-18\","
    "\"capacity_mw\":8,\"metered_signal_id\":44}],"
    "\"points\":["
    "{\"der\":\"wind18\",\"quantity\":\"metered_mw\",\"iec104\":{\"ioa\":1001},\"min\":-1,"
    "\"max\":8.4},"
    "{\"der\":\"wind18\",\"quantity\":\"availability_mw\",\"iec104\":{\"ioa\":1002},\"min\":0,"
    "\"max\":8,\"mqtt_topic\":\"anm/E_WIND-18/availability_mw\"},"
    "{\"der\":\"wind18\",\"quantity\":\"pcf\",\"iec104\":{\"ioa\":1003},\"scale\":100,\"min\":0,"
    "\"max\":100},"
    "{\"der\":\"wind18\",\"quantity\":\"state\",\"iec104\":{\"ioa\":1004,\"type\":\"single\"},"
    "\"min\":0,\"max\":1}]}";

typedef struct neso_inbox {
    pthread_mutex_t lock;
    json_t *messages;
} neso_inbox;

static int neso_handler(void *user, gateway_wa_kind kind, const json_t *message, const char *kid,
                        int64_t received_at_ms)
{
    (void)kind;
    (void)kid;
    (void)received_at_ms;
    neso_inbox *in = user;
    pthread_mutex_lock(&in->lock);
    json_array_append_new(in->messages, json_deep_copy(message));
    pthread_mutex_unlock(&in->lock);
    return ANM_OK;
}

static int read_port(const char *path)
{
    char *text = anm_test_read_file(path, NULL);
    long port = 0;
    if (text != NULL) {
        text[strcspn(text, "\n")] = '\0';
        char *end;
        port = strtol(text, &end, 10);
        if (*end != '\0')
            port = 0;
    }
    free(text);
    return (int)port;
}

/* Starts anm-dc-emulator storing accepted files in store; returns its pid, *port its port. */
static pid_t start_emulator(const anm_tls_fixture *tls, const char *dir, const char *store,
                            int *port)
{
    char bin[1024], pw[1024], port_file[1024], control_file[1024], record[1024];
    snprintf(bin, sizeof bin, "%s/anm-dc-emulator", anm_test_bin_dir());
    snprintf(pw, sizeof pw, "%s/password", dir);
    snprintf(port_file, sizeof port_file, "%s/dc-port", dir);
    snprintf(control_file, sizeof control_file, "%s/dc-control-port", dir);
    snprintf(record, sizeof record, "%s/dc-record.jsonl", dir);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* no orphan if the test dies */
        execl(bin, "anm-dc-emulator", "--cert", tls->server_cert, "--key", tls->server_key,
              "--user", DC_USER, "--password-file", pw, "--port-file", port_file,
              "--control-port-file", control_file, "--record", record, "--store-dir", store,
              (char *)NULL);
        _exit(127);
    }
    *port = 0;
    for (int i = 0; i < 500 && (*port = read_port(port_file)) == 0; i++) {
        int status;
        cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "emulator exited at start");
        struct pollfd none;
        (void)poll(&none, 0, 10);
    }
    cr_assert_gt(*port, 0, "emulator did not write its port");
    return pid;
}

Test(commission, every_route_gets_the_pattern_marked_test_and_acknowledged, .timeout = 90)
{
    anm_tls_fixture tls;
    cr_assert_eq(anm_tls_fixture_make(&tls), 0);
    wa_tls *wt = wa_tls_new();
    cr_assert_not_null(wt);
    anm_mosquitto_fixture broker;
    cr_assert_eq(anm_mosquitto_start(&broker, &tls, "neso-dc", MQTT_PASSWORD), 0);
    char *dir = anm_test_tmpdir("gw-commission-all");
    char path[1200], store[1100], cfg[1100], report[1100], txt[1200];
    snprintf(store, sizeof store, "%s/store", dir);
    cr_assert_eq(mkdir(store, 0700), 0);
    snprintf(path, sizeof path, "%s/password", dir);
    cr_assert_eq(anm_test_write_file(path, DC_PASSWORD "\n"), 0);
    snprintf(path, sizeof path, "%s/mqtt-password", dir);
    cr_assert_eq(anm_test_write_file(path, MQTT_PASSWORD "\n"), 0);
    snprintf(path, sizeof path, "%s/pf.json", dir);
    cr_assert_eq(anm_test_write_file(path, proforma_all), 0);
    int dc_port = 0;
    pid_t emulator = start_emulator(&tls, dir, store, &dc_port);

    /* NESO: takes redeclarations, acknowledges them signed with its key */
    anm_error_detail d;
    anm_error_detail_clear(&d);
    gateway_jws_signer *neso = NULL;
    gateway_jws_signer_config sc = {GATEWAY_JWS_ES256, wa_tls_pem(wt, "neso.key"),
                                    wa_tls_pem(wt, "neso.pem"), NULL, 1};
    cr_assert_eq(gateway_jws_signer_new(&sc, &neso, &d), ANM_OK, "%s", d.message);
    gateway_jws_verifier *trust = gateway_jws_verifier_new();
    cr_assert_eq(gateway_jws_verifier_add_cert(trust, NULL, wa_tls_pem(wt, "ec.pem"), &d), ANM_OK);
    neso_inbox inbox = {.messages = json_array()};
    pthread_mutex_init(&inbox.lock, NULL);
    gateway_wa_server_config nc = {0};
    nc.tls_key_pem = wa_tls_pem(wt, "server.key");
    nc.tls_cert_pem = wa_tls_pem(wt, "server.pem");
    nc.paths[GATEWAY_WA_REDECLARATION] = "/wa/v1/redeclaration";
    nc.sender = "NESO";
    nc.signer = neso;
    nc.verifier = trust;
    nc.handler = neso_handler;
    nc.user = &inbox;
    gateway_wa_server *neso_server = NULL;
    cr_assert_eq(gateway_wa_server_start(&nc, &neso_server, &d), ANM_OK, "%s", d.message);

    char k_ec[512], c_ec[512], c_neso[512], wa_ca[512];
    snprintf(k_ec, sizeof k_ec, "%s", wa_tls_path(wt, "ec.key"));
    snprintf(c_ec, sizeof c_ec, "%s", wa_tls_path(wt, "ec.pem"));
    snprintf(c_neso, sizeof c_neso, "%s", wa_tls_path(wt, "neso.pem"));
    snprintf(wa_ca, sizeof wa_ca, "%s", wa_tls_path(wt, "ca.pem"));
    char text[8192];
    snprintf(text, sizeof text,
             "{\"proforma_file\":\"pf.json\",\"status_endpoint\":\"@tcp://127.0.0.1:*\","
             "\"iec104\":{\"port\":0,\"cyclic_period_s\":0},"
             "\"mqtt\":{\"enabled\":true,\"host\":\"localhost\",\"port\":%d,\"ca_file\":\"%s\","
             "\"username\":\"neso-dc\",\"password_file\":\"mqtt-password\","
             "\"spool_dir\":\"mqtt-spool\"},"
             "\"wider_access\":{\"enabled\":true,\"sender\":\"anm-test\","
             "\"signing_alg\":\"ES256\",\"signing_key_file\":\"%s\",\"signing_cert_file\":\"%s\","
             "\"neso_cert_file\":\"%s\",\"base_url\":\"https://127.0.0.1:%d\",\"ca_file\":\"%s\","
             "\"retry_ms\":100},"
             "\"data_concentrator\":{\"enabled\":true,\"base_url\":\"https://localhost:%d\","
             "\"username\":\"%s\",\"password_file\":\"password\",\"ca_file\":\"%s\","
             "\"spool_dir\":\"dc-spool\",\"perfmon_interval_s\":0,\"min_interval_ms\":50,"
             "\"retry_after_ms\":300,\"timeout_ms\":5000}}",
             broker.port, tls.ca_cert, k_ec, c_ec, c_neso, gateway_wa_server_port(neso_server),
             wa_ca, dc_port, DC_USER, tls.ca_cert);
    snprintf(cfg, sizeof cfg, "%s/gw.json", dir);
    cr_assert_eq(anm_test_write_file(cfg, text), 0);
    snprintf(report, sizeof report, "%s/report.json", dir);
    snprintf(txt, sizeof txt, "%s.txt", report);

    received *r = calloc(1, sizeof *r);
    static char err[65536];
    int status = run_commission(cfg, report, r, err, sizeof err);
    cr_assert_eq(status, 0, "commission failed (%d): %s", status, err);
    expect_iec104_pattern(r);

    /* the report: per route what was sent and acknowledged (availability: 1 point x 5 steps) */
    json_error_t je;
    json_t *doc = json_load_file(report, 0, &je);
    cr_assert_not_null(doc, "report: %s", je.text);
    const char *routes[] = {"iec104", "mqtt", "wider_access", "data_concentrator"};
    const long long want[] = {POINTS * STEPS, STEPS, STEPS, STEPS};
    for (int k = 0; k < 4; k++) {
        json_t *o = json_object_get(doc, routes[k]);
        cr_assert(json_is_true(json_object_get(o, "enabled")), "%s", routes[k]);
        cr_expect_eq(json_integer_value(json_object_get(o, "sent")), want[k], "%s", routes[k]);
        cr_expect_eq(json_integer_value(json_object_get(o, "acknowledged")), want[k], "%s",
                     routes[k]);
        cr_expect(json_is_true(json_object_get(o, "all_acknowledged")), "%s", routes[k]);
    }
    json_decref(doc);
    char *report_text = anm_test_read_file(txt, NULL);
    cr_assert_not_null(report_text);
    cr_expect(strstr(report_text, "data_concentrator: 5 test item(s) sent (_test in the file "
                                  "name), 5 acknowledged (HTTP 201)") != NULL,
              "%s", report_text);
    cr_expect(strstr(report_text, "wider_access: 5 test item(s) sent") != NULL, "%s",
              report_text);
    cr_expect(strstr(report_text, "mqtt: 5 test item(s) sent") != NULL, "%s", report_text);
    free(report_text);

    /* NESO received 5 signed redeclarations marked test, the ramp 0, 2, 4, 6, 8 MW */
    pthread_mutex_lock(&inbox.lock);
    cr_assert_eq(json_array_size(inbox.messages), STEPS);
    for (size_t i = 0; i < STEPS; i++) {
        json_t *m = json_array_get(inbox.messages, i);
        cr_expect(json_is_true(json_object_get(m, "test")), "message %zu not marked test", i);
        cr_expect_str_eq(json_string_value(json_object_get(m, "bmu")), "E_WIND-18");
        cr_expect_float_eq(json_number_value(json_object_get(m, "availability_mw")),
                           expected[1][i], 1e-9, "message %zu", i);
    }
    pthread_mutex_unlock(&inbox.lock);

    /* the emulator accepted 5 files, all <unit>_<17 digits>_redecv1_test.csv */
    int files = 0;
    DIR *dd = opendir(store);
    cr_assert_not_null(dd);
    for (struct dirent *e; (e = readdir(dd)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        files++;
        size_t len = strlen(e->d_name);
        cr_expect(strncmp(e->d_name, "E_WIND-18_", 10) == 0 && len == 10 + 17 + 17 &&
                      strcmp(e->d_name + 27, "_redecv1_test.csv") == 0,
                  "file name %s", e->d_name);
    }
    closedir(dd);
    cr_expect_eq(files, STEPS);

    free(r);
    gateway_wa_server_stop(&neso_server);
    gateway_jws_verifier_destroy(&trust);
    gateway_jws_signer_destroy(&neso);
    pthread_mutex_destroy(&inbox.lock);
    json_decref(inbox.messages);
    kill(emulator, SIGTERM);
    waitpid(emulator, NULL, 0);
    anm_mosquitto_free(&broker);
    wa_tls_destroy(&wt);
    anm_tls_fixture_free(&tls);
    anm_test_rmtree(dir);
    free(dir);
}
