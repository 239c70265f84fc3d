/*
 * test_commission.c: `anm-gateway commission` run as a process against our
 * IEC 104 client: every mapped signal arrives at every pattern step with the
 * COT test bit, values as the pattern defines them, and the report lists
 * what was sent and acknowledged.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "engine/clock.h"
#include "gateway/iec104_client.h"
#include "testlib.h"

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

Test(commission, ramp_on_every_signal_with_test_bit_and_report, .timeout = 60)
{
    char *dir = anm_test_tmpdir("gw-commission");
    char pf[1024], cfg[1024], report[1024], bin[1024], txt[1100];
    snprintf(pf, sizeof pf, "%s/pf.json", dir);
    snprintf(cfg, sizeof cfg, "%s/gw.json", dir);
    snprintf(report, sizeof report, "%s/report.json", dir);
    snprintf(txt, sizeof txt, "%s.txt", report);
    snprintf(bin, sizeof bin, "%s/anm-gateway", anm_test_bin_dir());
    cr_assert_eq(anm_test_write_file(pf, proforma), 0);
    cr_assert_eq(anm_test_write_file(cfg, "{\"proforma_file\":\"pf.json\","
                                          "\"status_endpoint\":\"@tcp://127.0.0.1:*\","
                                          "\"iec104\":{\"port\":0,\"cyclic_period_s\":0}}"),
                 0);

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
                    cfg,
                    strdup("--pattern"),
                    strdup("ramp"),
                    strdup("--report"),
                    report,
                    strdup("--wait-s"),
                    strdup("20"),
                    strdup("--interval-ms"),
                    strdup("50"),
                    NULL};
    pid_t pid = 0;
    int rc = posix_spawn(&pid, bin, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(err_pipe[1]);
    cr_assert_eq(rc, 0, "could not run %s: %s", bin, strerror(rc));

    /* the port from "waiting up to 20 s for an IEC 104 client on port N" */
    char err[65536];
    size_t err_len = 0;
    long port = 0;
    int64_t end = anm_monotonic_ns() + 20000000000LL;
    while (port == 0 && anm_monotonic_ns() < end) {
        struct pollfd p = {.fd = err_pipe[0], .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t got = read(err_pipe[0], err + err_len, sizeof err - 1 - err_len);
        cr_assert_gt(got, 0, "anm-gateway commission ended early: %.*s", (int)err_len, err);
        err_len += (size_t)got;
        err[err_len] = '\0';
        const char *at = strstr(err, "client on port ");
        if (at != NULL && strchr(at, '\n') != NULL)
            port = strtol(at + strlen("client on port "), NULL, 10);
    }
    cr_assert_gt(port, 0, "no port announced: %s", err);

    received *r = calloc(1, sizeof *r);
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
    end = anm_monotonic_ns() + 30000000000LL;
    while (anm_monotonic_ns() < end) {
        (void)gateway_iec104_client_run_once(client, anm_clock_now_ms(clock), 5);
        struct pollfd p = {.fd = err_pipe[0], .events = POLLIN};
        if (poll(&p, 1, 0) > 0 && err_len + 1 < sizeof err) {
            ssize_t got = read(err_pipe[0], err + err_len, sizeof err - 1 - err_len);
            if (got > 0) {
                err_len += (size_t)got;
                err[err_len] = '\0';
            }
        }
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
    }
    if (!WIFEXITED(status)) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        cr_assert_fail("anm-gateway commission did not finish: %s", err);
    }
    cr_assert_eq(WEXITSTATUS(status), 0, "commission failed: %s", err);
    gateway_iec104_client_destroy(&client);
    close(err_pipe[0]);

    /* every signal, every step, test bit set, the pattern's values in order */
    cr_assert_eq(r->untested, 0, "%d values without the test bit during the test", r->untested);
    /* afterwards every point is sent again live, without the test bit */
    cr_assert_eq(r->restored, POINTS);
    for (int p = 0; p < POINTS; p++) {
        cr_assert_eq(r->count[p], STEPS, "ioa %d: %d values", 1001 + p, r->count[p]);
        for (int k = 0; k < STEPS; k++) /* float32 on the wire: 1e-6 relative */
            cr_assert_float_eq(r->values[p][k], expected[p][k], 1e-6 * 100, "ioa %d step %d",
                               1001 + p, k);
    }

    json_error_t je;
    json_t *doc = json_load_file(report, 0, &je);
    cr_assert_not_null(doc, "report: %s", je.text);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "pattern")), "ramp");
    cr_assert_eq(json_integer_value(json_object_get(doc, "steps")), STEPS);
    json_t *iec = json_object_get(doc, "iec104");
    cr_assert_eq(json_integer_value(json_object_get(iec, "sent")), POINTS * STEPS);
    cr_assert_eq(json_integer_value(json_object_get(iec, "acknowledged")), POINTS * STEPS);
    cr_assert(json_is_true(json_object_get(iec, "all_acknowledged")));
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
    for (int i = 1; argv[i] != NULL; i++) {
        if (argv[i] != cfg && argv[i] != report)
            free(argv[i]);
    }
    free(r);
    anm_clock_destroy(&clock);
    anm_test_rmtree(dir);
    free(dir);
}
