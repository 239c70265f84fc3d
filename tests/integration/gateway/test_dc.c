/*
 * test_dc.c: the Data Concentrator uploader against anm-dc-emulator over
 * HTTPS (a CA and server certificate made for the test): happy path, each
 * error code (400, 401, 404 parked; 5xx retried), server certificate not
 * trusted, outage then recovery (order and pacing of the backlog) and kill
 * -9 of an uploader mid-backlog. Intervals are shortened (hundreds of ms)
 * so the suite stays fast; the production values are 60 s and 30 s.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/clock.h"
#include "gateway/dc_csv.h"
#include "gateway/dc_upload.h"
#include "gateway/gateway.h"
#include "gateway/spool.h"
#include "testlib.h"
#include "tls_fixture.h"

#define USER "anm-participant-01"
#define PASSWORD "k9Jw2vQx7LmN4pRs8TzY1bCd5FgH3jKa6WeU0iOo2PlMnBvCxZaSdFgHqW"

static anm_tls_fixture tls;
static char *work;
static char password_file[600], wrong_password_file[600], spool_dir[600], record_path[600];
static char store_dir[600], port_file[600], control_file[600];
static pid_t emulator_pid;
static int https_port, control_port;

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

/* Starts the emulator with extra arguments (NULL-terminated) and waits until it listens. */
static void start_emulator(const char *extra1, const char *extra2)
{
    unlink(port_file);
    char bin[600];
    snprintf(bin, sizeof bin, "%s/anm-dc-emulator", anm_test_bin_dir());
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* no orphan if the test dies */
        execl(bin, "anm-dc-emulator", "--cert", tls.server_cert, "--key", tls.server_key, "--user",
              USER, "--password-file", password_file, "--port-file", port_file,
              "--control-port-file", control_file, "--record", record_path, "--store-dir",
              store_dir, extra1, extra2, (char *)NULL);
        _exit(127);
    }
    emulator_pid = pid;
    for (int i = 0; i < 500 && (https_port = read_port(port_file)) == 0; i++) {
        int status;
        cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "emulator exited at start");
        anm_test_sleep_ms(10);
    }
    cr_assert_gt(https_port, 0, "emulator did not write its port");
    control_port = read_port(control_file); /* written before the port file */
}

static void stop_emulator(void)
{
    if (emulator_pid > 0) {
        kill(emulator_pid, SIGTERM);
        waitpid(emulator_pid, NULL, 0);
        emulator_pid = 0;
    }
}

static void setup(void)
{
    cr_assert_eq(anm_tls_fixture_make(&tls), 0);
    work = anm_test_tmpdir("anm-dc");
    cr_assert_not_null(work);
    snprintf(password_file, sizeof password_file, "%s/password", work);
    snprintf(wrong_password_file, sizeof wrong_password_file, "%s/wrong-password", work);
    snprintf(spool_dir, sizeof spool_dir, "%s/spool", work);
    snprintf(record_path, sizeof record_path, "%s/record.jsonl", work);
    snprintf(store_dir, sizeof store_dir, "%s/store", work);
    snprintf(port_file, sizeof port_file, "%s/port", work);
    snprintf(control_file, sizeof control_file, "%s/control-port", work);
    cr_assert_eq(anm_test_write_file(password_file, PASSWORD "\n"), 0);
    cr_assert_eq(anm_test_write_file(wrong_password_file,
                                     "x" PASSWORD "\n"), 0);
    cr_assert_eq(mkdir(store_dir, 0700), 0);
}

static void teardown(void)
{
    stop_emulator();
    anm_test_rmtree(work);
    free(work);
    anm_tls_fixture_free(&tls);
}

TestSuite(dc, .init = setup, .fini = teardown, .timeout = 60);

static void base_config(gateway_dc_upload_config *c, char *url, size_t url_size)
{
    gateway_dc_upload_config_default(c);
    snprintf(url, url_size, "https://localhost:%d", https_port);
    c->base_url = url;
    c->username = USER;
    c->password_file = password_file;
    c->ca_file = tls.ca_cert;
    c->spool_dir = spool_dir;
    c->retry_after_ms = 300;
    c->min_interval_ms = 200;
    c->timeout_ms = 5000;
}

static char *perfmon_file(int64_t start_ms, int rows, char *name, size_t name_size, int test)
{
    size_t n;
    const gateway_dc_column *cols = gateway_dc_default_columns(GATEWAY_DC_PERFMON_20HZ, &n);
    gateway_dc_csv *csv = NULL;
    cr_assert_eq(gateway_dc_csv_new(cols, n, &csv), ANM_OK);
    for (int i = 0; i < rows; i++) {
        gateway_dc_value row[] = {
            {"timestamp", GATEWAY_DC_TIME, 0, start_ms + 50 * i, NULL},
            {"frequency_hz", GATEWAY_DC_NUMBER, 50.0 + 0.001 * i, 0, NULL},
            {"active_power_mw", GATEWAY_DC_NUMBER, 10.0 + i, 0, NULL},
        };
        cr_assert_eq(gateway_dc_csv_add_row(csv, row, 3, NULL), ANM_OK);
    }
    gateway_dc_file_info info = {"E_ANM-1", start_ms, GATEWAY_DC_PERFMON_20HZ, 1, test};
    cr_assert_eq(gateway_dc_file_name(name, name_size, &info), ANM_OK);
    char *text = strdup(gateway_dc_csv_text(csv, NULL));
    gateway_dc_csv_destroy(&csv);
    return text;
}

typedef struct record_line {
    long status;
    char name[160];
    long long arrival_ms;
    char reason[300];
} record_line;

static size_t read_record(record_line *out, size_t max)
{
    char *text = anm_test_read_file(record_path, NULL);
    size_t n = 0;
    if (text == NULL)
        return 0;
    for (char *line = text; *line && n < max;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        json_error_t e;
        json_t *j = json_loads(line, 0, &e);
        cr_assert_not_null(j, "record line is not json: %s", line);
        out[n].status = (long)json_integer_value(json_object_get(j, "status"));
        out[n].arrival_ms = (long long)json_integer_value(json_object_get(j, "arrival_ms"));
        snprintf(out[n].name, sizeof out[n].name, "%s", json_string_value(json_object_get(j, "name")));
        snprintf(out[n].reason, sizeof out[n].reason, "%s",
                 json_string_value(json_object_get(j, "reason")));
        json_decref(j);
        n++;
        if (!nl)
            break;
        line = nl + 1;
    }
    free(text);
    return n;
}

#define T0 (18520LL * 86400000LL + (14 * 60 + 24) * 60000LL) /* 2020-09-15T14:24:00Z */

Test(dc, happy_path_uploads_the_file_byte_for_byte_and_empties_the_spool)
{
    start_emulator(NULL, NULL);
    char url[128], name[GATEWAY_DC_NAME_MAX + 1];
    gateway_dc_upload_config c;
    base_config(&c, url, sizeof url);
    gateway_dc_upload *up = NULL;
    cr_assert_eq(gateway_dc_upload_new(&c, NULL, &up, NULL), ANM_OK);
    char *csv = perfmon_file(T0, 20, name, sizeof name, 0);
    cr_assert_eq(gateway_dc_upload_submit(up, name, csv, strlen(csv), NULL), ANM_OK);
    cr_expect_eq(gateway_dc_upload_pending(up), 1);
    gateway_dc_result r;
    cr_assert_eq(gateway_dc_upload_step(up, &r), ANM_OK);
    cr_expect_eq(r.outcome, GATEWAY_DC_UPLOADED, "status %ld: %s", r.http_status, r.message);
    cr_expect_eq(r.http_status, 201);
    cr_expect_str_eq(r.name, "E_ANM-1_20200915142400000_20HZ_perfmonv1.csv");
    cr_expect_eq(gateway_dc_upload_pending(up), 0);
    record_line rec[4];
    cr_assert_eq(read_record(rec, 4), 1);
    cr_expect_eq(rec[0].status, 201);
    cr_expect_str_eq(rec[0].name, name);
    char stored[800];
    snprintf(stored, sizeof stored, "%s/%s", store_dir, name);
    char *got = anm_test_read_file(stored, NULL);
    cr_assert_not_null(got);
    cr_expect_str_eq(got, csv, "the emulator must receive the CSV unchanged");
    /* the next upload waits the interval */
    cr_expect_geq(gateway_dc_upload_next_due_ms(up), INT64_MAX);
    free(got);
    free(csv);
    gateway_dc_upload_destroy(&up);
}

Test(dc, test_files_are_accepted_and_flagged)
{
    start_emulator(NULL, NULL);
    char url[128], name[GATEWAY_DC_NAME_MAX + 1];
    gateway_dc_upload_config c;
    base_config(&c, url, sizeof url);
    gateway_dc_upload *up = NULL;
    cr_assert_eq(gateway_dc_upload_new(&c, NULL, &up, NULL), ANM_OK);
    char *csv = perfmon_file(T0, 3, name, sizeof name, 1);
    cr_expect_str_eq(name, "E_ANM-1_20200915142400000_20HZ_perfmonv1_test.csv");
    cr_assert_eq(gateway_dc_upload_submit(up, name, csv, strlen(csv), NULL), ANM_OK);
    gateway_dc_result r;
    cr_assert_eq(gateway_dc_upload_step(up, &r), ANM_OK);
    cr_expect_eq(r.http_status, 201);
    char *rec = anm_test_read_file(record_path, NULL);
    cr_expect(strstr(rec, "\"test\":true") != NULL, "record: %s", rec);
    free(rec);
    free(csv);
    gateway_dc_upload_destroy(&up);
}

static void expect_parked(const char *path, const char *password, int bad_name, long status,
                          const char *reason)
{
    start_emulator(NULL, NULL);
    char url[128], name[GATEWAY_DC_NAME_MAX + 1];
    gateway_dc_upload_config c;
    base_config(&c, url, sizeof url);
    if (path)
        c.path = path;
    if (password)
        c.password_file = password;
    gateway_dc_upload *up = NULL;
    cr_assert_eq(gateway_dc_upload_new(&c, NULL, &up, NULL), ANM_OK);
    char *csv = perfmon_file(T0, 3, name, sizeof name, 0);
    if (bad_name) {
        /* bypass submit's check, as a file from an older release could */
        gateway_spool *s = NULL;
        cr_assert_eq(gateway_spool_open(spool_dir, &s, NULL), ANM_OK);
        cr_assert_eq(gateway_spool_put(s, "E_ANM-1_2020091514240000_20HZ_perfmonv1.csv", csv,
                                       strlen(csv), NULL), ANM_OK);
        gateway_spool_close(&s);
        gateway_dc_upload_destroy(&up);
        cr_assert_eq(gateway_dc_upload_new(&c, NULL, &up, NULL), ANM_OK);
    } else {
        cr_assert_eq(gateway_dc_upload_submit(up, name, csv, strlen(csv), NULL), ANM_OK);
    }
    gateway_dc_result r;
    cr_assert_eq(gateway_dc_upload_step(up, &r), ANM_OK);
    cr_expect_eq(r.http_status, status);
    cr_expect_eq(r.outcome, GATEWAY_DC_PARKED);
    cr_expect_str_eq(r.message, reason);
    cr_expect_eq(gateway_dc_upload_pending(up), 0);
    cr_expect_eq(gateway_dc_upload_parked(up), 1, "the file is kept in parked/");
    /* after the operator fixes the cause, parked files can go again */
    size_t moved = 0;
    cr_expect_eq(gateway_dc_upload_requeue_parked(up, &moved), ANM_OK);
    cr_expect_eq(moved, 1);
    cr_expect_eq(gateway_dc_upload_pending(up), 1);
    free(csv);
    gateway_dc_upload_destroy(&up);
}

Test(dc, wrong_password_gives_401_and_parks)
{
    expect_parked(NULL, wrong_password_file, 0, 401, "authentication failed");
}

Test(dc, wrong_path_gives_404_and_parks)
{
    expect_parked("/ihost/deviceapi/file", NULL, 0, 404, "not found");
}

Test(dc, bad_file_name_gives_400_and_parks)
{
    expect_parked(NULL, NULL, 1, 400,
                  "file name \"E_ANM-1_2020091514240000_20HZ_perfmonv1.csv\": timestamp "
                  "\"2020091514240000\" must have 17 digits (yyyyMMddHHmmssfff)");
}

Test(dc, short_password_is_refused_at_start_without_showing_it)
{
    char short_file[700];
    snprintf(short_file, sizeof short_file, "%s/short", work);
    cr_assert_eq(anm_test_write_file(short_file, "tooshort-secret\n"), 0);
    char url[128];
    gateway_dc_upload_config c;
    https_port = 1;
    base_config(&c, url, sizeof url);
    c.password_file = short_file;
    gateway_dc_upload *up = NULL;
    anm_error_detail d;
    anm_error_detail_clear(&d);
    cr_expect_eq(gateway_dc_upload_new(&c, NULL, &up, &d), ANM_ECONFIG);
    cr_expect_null(up);
    char expected[900];
    snprintf(expected, sizeof expected, "password in \"%s\" is shorter than 56 characters",
             short_file);
    cr_expect_str_eq(d.message, expected);
    cr_expect(strstr(d.message, "tooshort-secret") == NULL);
}

Test(dc, untrusted_server_certificate_is_a_transient_failure)
{
    start_emulator(NULL, NULL);
    char url[128], name[GATEWAY_DC_NAME_MAX + 1];
    gateway_dc_upload_config c;
    base_config(&c, url, sizeof url);
    c.ca_file = tls.other_ca_cert;
    gateway_dc_upload *up = NULL;
    cr_assert_eq(gateway_dc_upload_new(&c, NULL, &up, NULL), ANM_OK);
    char *csv = perfmon_file(T0, 3, name, sizeof name, 0);
    cr_assert_eq(gateway_dc_upload_submit(up, name, csv, strlen(csv), NULL), ANM_OK);
    gateway_dc_result r;
    cr_assert_eq(gateway_dc_upload_step(up, &r), ANM_OK);
    cr_expect_eq(r.outcome, GATEWAY_DC_RETRY);
    cr_expect_eq(r.http_status, 0);
    cr_expect(strstr(r.message, "certificate") != NULL, "message: %s", r.message);
    cr_expect_eq(gateway_dc_upload_pending(up), 1);
    cr_expect_eq(read_record((record_line[1]){0}, 1), 0, "nothing reached the server");
    free(csv);
    gateway_dc_upload_destroy(&up);
}

static void control_fail_next(int count, int status)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/fail-next?count=%d&status=%d", control_port,
             count, status);
    CURL *curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, fwrite);
    FILE *null = fopen("/dev/null", "w");
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, null);
    cr_assert_eq(curl_easy_perform(curl), CURLE_OK);
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    cr_assert_eq(code, 200);
    fclose(null);
    curl_easy_cleanup(curl);
}

Test(dc, outage_then_recovery_uploads_the_backlog_oldest_first_and_paced)
{
    start_emulator("--fail-next", "2"); /* the next two requests get 503 */
    char url[128];
    gateway_dc_upload_config c;
    base_config(&c, url, sizeof url);
    gateway_dc_upload *up = NULL;
    cr_assert_eq(gateway_dc_upload_new(&c, NULL, &up, NULL), ANM_OK);
    char names[4][GATEWAY_DC_NAME_MAX + 1];
    for (int i = 0; i < 4; i++) {
        char *csv = perfmon_file(T0 + i * 60000LL, 5, names[i], sizeof names[i], 0);
        cr_assert_eq(gateway_dc_upload_submit(up, names[i], csv, strlen(csv), NULL), ANM_OK);
        free(csv);
    }
    gateway_dc_result r;
    cr_assert_eq(gateway_dc_upload_step(up, &r), ANM_OK);
    cr_expect_eq(r.outcome, GATEWAY_DC_RETRY);
    cr_expect_eq(r.http_status, 503);
    /* not again before retry_after_ms */
    cr_assert_eq(gateway_dc_upload_step(up, &r), ANM_OK);
    cr_expect_eq(r.outcome, GATEWAY_DC_IDLE);
    control_fail_next(1, 502); /* the control endpoint replaces the injection */
    int64_t deadline = anm_wall_clock_ms() + 20000;
    cr_assert_eq(gateway_dc_upload_drain(up, deadline), ANM_OK);
    record_line rec[16];
    size_t n = read_record(rec, 16);
    cr_assert_eq(n, 6, "2 failures then 4 uploads, got %zu", n);
    cr_expect_eq(rec[0].status, 503);
    cr_expect_eq(rec[1].status, 502);
    cr_expect_geq(rec[1].arrival_ms - rec[0].arrival_ms, 300, "retry no sooner than retry_after");
    cr_expect_geq(rec[2].arrival_ms - rec[1].arrival_ms, 300, "retry no sooner than retry_after");
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(rec[2 + i].status, 201);
        cr_expect_str_eq(rec[2 + i].name, names[i], "backlog oldest first");
        if (i > 0)
            cr_expect_geq(rec[2 + i].arrival_ms - rec[1 + i].arrival_ms, 200,
                          "successive uploads at least min_interval apart");
    }
    gateway_dc_upload_destroy(&up);
}

Test(dc, pacing_state_survives_a_restart)
{
    start_emulator("--fail-next", "1");
    char url[128], name[GATEWAY_DC_NAME_MAX + 1];
    gateway_dc_upload_config c;
    base_config(&c, url, sizeof url);
    c.retry_after_ms = 5000;
    gateway_dc_upload *up = NULL;
    cr_assert_eq(gateway_dc_upload_new(&c, NULL, &up, NULL), ANM_OK);
    char *csv = perfmon_file(T0, 3, name, sizeof name, 0);
    cr_assert_eq(gateway_dc_upload_submit(up, name, csv, strlen(csv), NULL), ANM_OK);
    gateway_dc_result r;
    cr_assert_eq(gateway_dc_upload_step(up, &r), ANM_OK);
    cr_expect_eq(r.outcome, GATEWAY_DC_RETRY);
    int64_t due = gateway_dc_upload_next_due_ms(up);
    gateway_dc_upload_destroy(&up);
    cr_assert_eq(gateway_dc_upload_new(&c, NULL, &up, NULL), ANM_OK);
    cr_expect_eq(gateway_dc_upload_next_due_ms(up), due, "a restart must not skip the wait");
    cr_expect_eq(gateway_dc_upload_pending(up), 1);
    cr_assert_eq(gateway_dc_upload_step(up, &r), ANM_OK);
    cr_expect_eq(r.outcome, GATEWAY_DC_IDLE);
    free(csv);
    gateway_dc_upload_destroy(&up);
}

Test(dc, kill_9_mid_backlog_loses_nothing_and_duplicates_at_most_the_file_in_flight)
{
    start_emulator(NULL, NULL);
    char url[128];
    gateway_dc_upload_config c;
    base_config(&c, url, sizeof url);
    c.min_interval_ms = 150;
    enum { FILES = 6 };
    char names[FILES][GATEWAY_DC_NAME_MAX + 1];
    {
        gateway_dc_upload *up = NULL;
        cr_assert_eq(gateway_dc_upload_new(&c, NULL, &up, NULL), ANM_OK);
        for (int i = 0; i < FILES; i++) {
            char *csv = perfmon_file(T0 + i * 60000LL, 200, names[i], sizeof names[i], 0);
            cr_assert_eq(gateway_dc_upload_submit(up, names[i], csv, strlen(csv), NULL), ANM_OK);
            free(csv);
        }
        gateway_dc_upload_destroy(&up);
    }
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        gateway_dc_upload *up = NULL;
        if (gateway_dc_upload_new(&c, NULL, &up, NULL) != ANM_OK)
            _exit(3);
        gateway_dc_upload_drain(up, anm_wall_clock_ms() + 30000);
        _exit(0);
    }
    record_line rec[32];
    for (int i = 0; i < 1000 && read_record(rec, 32) < 2; i++)
        anm_test_sleep_ms(5);
    cr_assert_geq(read_record(rec, 32), 2);
    kill(child, SIGKILL);
    int status;
    waitpid(child, &status, 0);
    cr_assert(WIFSIGNALED(status), "the uploader should have been killed mid-backlog");
    size_t before = read_record(rec, 32);
    cr_assert_lt(before, FILES, "killed before the backlog was done");

    gateway_dc_upload *up = NULL;
    cr_assert_eq(gateway_dc_upload_new(&c, NULL, &up, NULL), ANM_OK);
    cr_assert_eq(gateway_dc_upload_drain(up, anm_wall_clock_ms() + 20000), ANM_OK);
    gateway_dc_upload_destroy(&up);

    size_t n = read_record(rec, 32);
    cr_assert_geq(n, FILES);
    cr_assert_leq(n, FILES + 1, "at most the file in flight at the kill is sent twice");
    int seen[FILES] = {0};
    int last_first = -1;
    for (size_t i = 0; i < n; i++) {
        cr_expect_eq(rec[i].status, 201);
        int which = -1;
        for (int f = 0; f < FILES; f++)
            if (strcmp(rec[i].name, names[f]) == 0)
                which = f;
        cr_assert_geq(which, 0, "unknown file %s", rec[i].name);
        if (seen[which] == 0) {
            cr_expect_eq(which, last_first + 1, "files first arrive oldest first");
            last_first = which;
        }
        seen[which]++;
    }
    for (int f = 0; f < FILES; f++)
        cr_expect_geq(seen[f], 1, "file %d lost", f);
}

/* ---- the service's data_concentrator route, end to end --------------------------------- */

static json_t *statement_for(int64_t now, double p90, int version)
{
    int64_t start = now - now % 1800000;
    char a[32], b[32];
    anm_time_format_utc(start, a, sizeof a);
    anm_time_format_utc(start + 1800000, b, sizeof b);
    return json_pack("{s:s,s:i,s:s,s:[{s:i,s:s,s:s,s:[{s:s,s:{s:f},s:{s:f,s:f,s:f}}]}]}", "id",
                     "s-dc", "version", version, "zone", "feeder33", "periods", "period", 1,
                     "utc_start", a, "utc_end", b, "ders", "der", "wind18", "pcf", "value", 0.2,
                     "curtailment_mw", "p50", 0.0, "p90", p90, "p99", 5.0);
}

/* The name of the first stored (complete) file containing marker ("" if none yet). */
static void find_stored(const char *marker, char *name, size_t size)
{
    name[0] = '\0';
    DIR *d = opendir(store_dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0)
            continue; /* the emulator is still writing it */
        if (strstr(de->d_name, marker) != NULL) {
            snprintf(name, size, "%s", de->d_name);
            break;
        }
    }
    closedir(d);
}

Test(dc, service_route_uploads_redeclaration_and_perfmon_files_the_emulator_accepts)
{
    start_emulator(NULL, NULL);
    char pf_path[700], cfg_path[700], cfg_text[4096], service_spool[700];
    snprintf(pf_path, sizeof pf_path, "%s/pf.json", work);
    snprintf(cfg_path, sizeof cfg_path, "%s/gw.json", work);
    snprintf(service_spool, sizeof service_spool, "%s/service-spool", work);
    cr_assert_eq(anm_test_write_file(
                     pf_path,
                     "{\"ders\":[{\"id\":\"wind18\",\"zone\":\"feeder33\",\"unit\":\"E_WIND-18\","
                     "\"capacity_mw\":8,\"metered_signal_id\":44}],\"points\":["
                     "{\"der\":\"wind18\",\"quantity\":\"metered_mw\",\"dc_column\":\"active_power_mw\","
                     "\"min\":-1,\"max\":8.4},"
                     "{\"der\":\"wind18\",\"quantity\":\"availability_mw\",\"iec104\":{\"ioa\":1002},"
                     "\"min\":0,\"max\":8}]}"),
                 0);
    snprintf(cfg_text, sizeof cfg_text,
             "{\"proforma_file\":\"pf.json\",\"status_endpoint\":\"@tcp://127.0.0.1:*\","
             "\"iec104\":{\"enabled\":false},"
             "\"data_concentrator\":{\"enabled\":true,\"base_url\":\"https://localhost:%d\","
             "\"username\":\"%s\",\"password_file\":\"password\",\"ca_file\":\"%s\","
             "\"spool_dir\":\"service-spool\",\"perfmon_interval_s\":1,\"min_interval_ms\":100,"
             "\"retry_after_ms\":300,\"timeout_ms\":5000}}",
             https_port, USER, tls.ca_cert);
    cr_assert_eq(anm_test_write_file(cfg_path, cfg_text), 0);
    gateway_config cfg;
    anm_error_detail d;
    anm_error_detail_clear(&d);
    cr_assert_eq(gateway_config_load(cfg_path, &cfg, &d), ANM_OK, "%s %s", d.path, d.message);
    anm_clock *clock = anm_clock_new_real();
    gateway_service *svc = NULL;
    cr_assert_eq(gateway_service_new(&cfg, clock, &svc, &d), ANM_OK, "%s: %s", d.path, d.message);

    /* availability 8 - 1 = 7 MW, then 8 - 4 = 4 MW: a redeclaration (threshold 1 MW) */
    int64_t now = anm_clock_now_ms(clock);
    json_t *st = statement_for(now, 1.0, 1);
    cr_assert_eq(gateway_service_apply_statement(svc, st, &d), ANM_OK, "%s", d.message);
    json_decref(st);
    st = statement_for(now, 4.0, 2);
    cr_assert_eq(gateway_service_apply_statement(svc, st, &d), ANM_OK, "%s", d.message);
    json_decref(st);
    cr_assert_eq(gateway_service_apply_metered(svc, 44, now, 5.5), ANM_OK);

    char redec[256] = "", perfmon[256] = "";
    int64_t end = anm_monotonic_ns() + 15000000000LL;
    while ((redec[0] == '\0' || perfmon[0] == '\0') && anm_monotonic_ns() < end) {
        (void)gateway_service_run_once(svc, 20);
        find_stored("_redecv1.csv", redec, sizeof redec);
        find_stored("_1HZ_perfmonv1.csv", perfmon, sizeof perfmon);
    }
    cr_assert_neq(redec[0], '\0', "the emulator stored no redeclaration file");
    cr_assert_neq(perfmon[0], '\0', "the emulator stored no perfmon file");

    /* names: the pro-forma's unit id, 17-digit UTC time, kind and version */
    gateway_dc_file_info info;
    cr_assert_eq(gateway_dc_file_name_parse(redec, &info, NULL), ANM_OK, "%s", redec);
    cr_expect_str_eq(info.unit, "E_WIND-18");
    cr_expect_eq(info.kind, GATEWAY_DC_REDEC);
    cr_expect_eq(info.test, 0);
    cr_expect(info.utc_ms >= now - 1000 && info.utc_ms <= now + 15000, "file time %lld",
              (long long)info.utc_ms);
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", store_dir, redec);
    char *text = anm_test_read_file(path, NULL);
    cr_assert_not_null(text);
    char start[32], stop[32], expected[512];
    anm_time_format_utc(now - now % 1800000, start, sizeof start);
    anm_time_format_utc(now - now % 1800000 + 1800000, stop, sizeof stop);
    snprintf(expected, sizeof expected,
             "unit,start_utc,end_utc,available_mw,reason\r\n"
             "E_WIND-18,%s,%s,4.000,constraint statement s-dc version 2 period 1\r\n",
             start, stop);
    cr_expect_str_eq(text, expected);
    free(text);

    cr_assert_eq(gateway_dc_file_name_parse(perfmon, &info, NULL), ANM_OK, "%s", perfmon);
    cr_expect_str_eq(info.unit, "E_WIND-18");
    cr_expect_eq(info.kind, GATEWAY_DC_PERFMON_1HZ);
    cr_expect_eq(info.utc_ms % 1000, 0, "a perfmon file starts on a second");
    snprintf(path, sizeof path, "%s/%s", store_dir, perfmon);
    text = anm_test_read_file(path, NULL);
    cr_assert_not_null(text);
    cr_expect(strncmp(text, "timestamp_utc,active_power_mw\r\n", 31) == 0, "header: %s", text);
    cr_expect(strstr(text, ",5.500\r\n") != NULL, "the metered 5.5 MW: %s", text);
    free(text);

    /* status: the route with its last 201 and a latency measured */
    json_t *status = NULL, *route = NULL;
    for (int i = 0; i < 100; i++) {
        json_decref(status);
        status = gateway_service_status(svc);
        route = json_object_get(json_object_get(status, "routes"), "data_concentrator");
        if (json_integer_value(json_object_get(route, "handed_over")) >= 2)
            break;
        (void)gateway_service_run_once(svc, 20);
    }
    cr_assert_not_null(route, "no data_concentrator route in the status");
    cr_expect_geq(json_integer_value(json_object_get(route, "handed_over")), 2);
    cr_expect(json_is_string(json_object_get(route, "last_handover")));
    cr_expect(json_is_real(json_object_get(route, "latency_p99_ms")));
    cr_expect_lt(json_real_value(json_object_get(route, "latency_p99_ms")), 15000.0);
    cr_expect_eq(json_integer_value(json_object_get(route, "parked")), 0);
    json_decref(status);
    gateway_service_destroy(&svc);
    anm_clock_destroy(&clock);
    gateway_config_free(&cfg);
}

Test(dc, service_route_makes_20hz_perfmon_files_a_row_per_telemetry_arrival)
{
    start_emulator(NULL, NULL);
    char pf_path[700], cfg_path[700], cfg_text[4096];
    snprintf(pf_path, sizeof pf_path, "%s/pf.json", work);
    snprintf(cfg_path, sizeof cfg_path, "%s/gw.json", work);
    cr_assert_eq(anm_test_write_file(
                     pf_path,
                     "{\"ders\":[{\"id\":\"wind18\",\"zone\":\"feeder33\",\"unit\":\"E_WIND-18\","
                     "\"capacity_mw\":8,\"metered_signal_id\":44}],\"points\":["
                     "{\"der\":\"wind18\",\"quantity\":\"metered_mw\",\"dc_column\":\"active_power_mw\","
                     "\"min\":-1,\"max\":8.4}]}"),
                 0);
    snprintf(cfg_text, sizeof cfg_text,
             "{\"proforma_file\":\"pf.json\",\"status_endpoint\":\"@tcp://127.0.0.1:*\","
             "\"iec104\":{\"enabled\":false},"
             "\"data_concentrator\":{\"enabled\":true,\"base_url\":\"https://localhost:%d\","
             "\"username\":\"%s\",\"password_file\":\"password\",\"ca_file\":\"%s\","
             "\"spool_dir\":\"service-spool\",\"perfmon_interval_s\":1,\"perfmon_20hz\":true,"
             "\"min_interval_ms\":100,\"retry_after_ms\":300,\"timeout_ms\":5000}}",
             https_port, USER, tls.ca_cert);
    cr_assert_eq(anm_test_write_file(cfg_path, cfg_text), 0);
    gateway_config cfg;
    anm_error_detail d;
    anm_error_detail_clear(&d);
    cr_assert_eq(gateway_config_load(cfg_path, &cfg, &d), ANM_OK, "%s %s", d.path, d.message);
    cr_assert(cfg.data_concentrator.perfmon_20hz);
    anm_clock *clock = anm_clock_new_real();
    gateway_service *svc = NULL;
    cr_assert_eq(gateway_service_new(&cfg, clock, &svc, &d), ANM_OK, "%s: %s", d.path, d.message);

    /* 20 samples 50 ms apart inside the current second (one file), 1.00, 1.25, ... MW */
    int64_t now = anm_clock_now_ms(clock);
    int64_t base = now - now % 1000;
    char expected[4096] = "timestamp_utc,active_power_mw\r\n";
    size_t len = strlen(expected);
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(gateway_service_apply_metered(svc, 44, base + 50 * i, 1.0 + 0.25 * i),
                     ANM_OK);
        char t[32];
        anm_time_format_utc(base + 50 * i, t, sizeof t);
        int w = snprintf(expected + len, sizeof expected - len, "%s,%.3f\r\n", t, 1.0 + 0.25 * i);
        cr_assert(w > 0 && (size_t)w < sizeof expected - len);
        len += (size_t)w;
    }
    char name[256] = "";
    int64_t end = anm_monotonic_ns() + 10000000000LL;
    while (name[0] == '\0' && anm_monotonic_ns() < end) {
        (void)gateway_service_run_once(svc, 20);
        find_stored("_20HZ_perfmonv1.csv", name, sizeof name);
    }
    cr_assert_neq(name[0], '\0', "the emulator stored no 20 Hz perfmon file");
    gateway_dc_file_info info;
    cr_assert_eq(gateway_dc_file_name_parse(name, &info, NULL), ANM_OK, "%s", name);
    cr_expect_str_eq(info.unit, "E_WIND-18");
    cr_expect_eq(info.kind, GATEWAY_DC_PERFMON_20HZ);
    cr_expect_eq(info.utc_ms, base, "the file starts on the interval boundary");
    cr_expect_eq(info.test, 0);
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", store_dir, name);
    char *text = anm_test_read_file(path, NULL);
    cr_assert_not_null(text);
    cr_expect_str_eq(text, expected, "a row per sample, at its measurement time");
    free(text);
    gateway_service_destroy(&svc);
    anm_clock_destroy(&clock);
    gateway_config_free(&cfg);
}
