/* test_log.c: JSON-lines logging, the level threshold and the rate limiter. */
#include "engine/log.h"
#include "engine/error.h"
#include "testlib.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A temp file the logger writes to; read back after logging. */
typedef struct capture {
    char *dir;
    char path[600];
    int fd;
    int previous_fd;
} capture;

static void capture_start(capture *c)
{
    c->dir = anm_test_tmpdir("anm-log");
    cr_assert_not_null(c->dir);
    snprintf(c->path, sizeof c->path, "%s/log.jsonl", c->dir);
    c->fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    cr_assert_geq(c->fd, 0);
    c->previous_fd = anm_log_set_fd(c->fd);
}

/* Stops capturing; returns the lines as a JSON array of decoded objects (each line must be one). */
static json_t *capture_stop(capture *c, char **raw)
{
    cr_expect_eq(anm_log_set_fd(c->previous_fd), c->fd, "set_fd returns the previous descriptor");
    close(c->fd);
    char *text = anm_test_read_file(c->path, NULL);
    cr_assert_not_null(text);
    json_t *lines = json_array();
    char *start = text;
    for (char *nl = strchr(start, '\n'); nl != NULL; nl = strchr(start, '\n')) {
        json_error_t error;
        json_t *line = json_loadb(start, (size_t)(nl - start), 0, &error);
        cr_assert_not_null(line, "line is not JSON: %.*s (%s)", (int)(nl - start), start,
                           error.text);
        cr_assert(json_is_object(line));
        json_array_append_new(lines, line);
        start = nl + 1;
    }
    cr_expect_eq(*start, '\0', "output ends with a newline");
    if (raw != NULL)
        *raw = text;
    else
        free(text);
    anm_test_rmtree(c->dir);
    free(c->dir);
    return lines;
}

/* Parses "YYYY-MM-DDTHH:MM:SS.mmmZ" to ms since the epoch; -1 if malformed. */
static long long parse_ts(const char *s)
{
    if (strlen(s) != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':' || s[19] != '.' || s[23] != 'Z')
        return -1;
    for (int i = 0; i < 23; i++) {
        if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && i != 19 &&
            (s[i] < '0' || s[i] > '9'))
            return -1;
    }
    struct tm tm = {0};
    char part[8];
    long v[7];
    static const int at[7][2] = {{0, 4}, {5, 2}, {8, 2}, {11, 2}, {14, 2}, {17, 2}, {20, 3}};
    for (int i = 0; i < 7; i++) {
        memcpy(part, s + at[i][0], (size_t)at[i][1]);
        part[at[i][1]] = '\0';
        v[i] = strtol(part, NULL, 10);
    }
    tm.tm_year = (int)v[0] - 1900;
    tm.tm_mon = (int)v[1] - 1;
    tm.tm_mday = (int)v[2];
    tm.tm_hour = (int)v[3];
    tm.tm_min = (int)v[4];
    tm.tm_sec = (int)v[5];
    return (long long)timegm(&tm) * 1000 + v[6];
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Test(log, one_json_object_per_line_with_every_field)
{
    anm_log_set_level(ANM_LOG_DEBUG);
    capture c;
    capture_start(&c);
    long long before = now_ms();
    json_t *fields = json_pack("{s:s, s:i}", "host", "db:5432", "attempt", 3);
    anm_log_fields(ANM_LOG_WARN, "ingest", "could not connect to \"db:5432\": refused", fields);
    cr_expect_eq(fields->refcount, 1, "fields are borrowed, not stolen");
    json_decref(fields);
    anm_log_info("market", "book %s has %d orders", "zone-1", 12);
    long long after = now_ms();
    char *raw = NULL;
    json_t *lines = capture_stop(&c, &raw);
    cr_assert_eq(json_array_size(lines), 2);

    cr_expect_eq(strncmp(raw, "{\"ts\":\"", 7), 0, "ts comes first: %s", raw);
    json_t *first = json_array_get(lines, 0);
    const char *ts = json_string_value(json_object_get(first, "ts"));
    cr_assert_not_null(ts);
    long long t = parse_ts(ts);
    cr_expect_geq(t, before - before % 1000 - 1000, "ts %s is UTC now, in ms", ts);
    cr_expect_leq(t, after, "ts %s is not in the future", ts);
    cr_expect_str_eq(json_string_value(json_object_get(first, "level")), "warn");
    cr_expect_str_eq(json_string_value(json_object_get(first, "component")), "ingest");
    cr_expect_str_eq(json_string_value(json_object_get(first, "msg")),
                     "could not connect to \"db:5432\": refused");
    json_t *got = json_object_get(first, "fields");
    cr_expect_str_eq(json_string_value(json_object_get(got, "host")), "db:5432");
    cr_expect_eq(json_integer_value(json_object_get(got, "attempt")), 3);
    cr_expect_eq(json_object_size(first), 5, "ts, level, component, msg, fields");

    json_t *second = json_array_get(lines, 1);
    cr_expect_str_eq(json_string_value(json_object_get(second, "level")), "info");
    cr_expect_str_eq(json_string_value(json_object_get(second, "component")), "market");
    cr_expect_str_eq(json_string_value(json_object_get(second, "msg")),
                     "book zone-1 has 12 orders");
    cr_expect_null(json_object_get(second, "fields"), "no fields object without fields");
    cr_expect_eq(json_object_size(second), 4);
    json_decref(lines);
    free(raw);
}

Test(log, newlines_and_quotes_stay_inside_one_line)
{
    anm_log_set_level(ANM_LOG_INFO);
    capture c;
    capture_start(&c);
    anm_log_error("gateway", "bad frame\n{\"x\": 1}\t\"end\"");
    anm_log_fields(ANM_LOG_ERROR, NULL, "\xff\xfe not utf-8", NULL);
    json_t *lines = capture_stop(&c, NULL);
    cr_assert_eq(json_array_size(lines), 2);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(lines, 0), "msg")),
                     "bad frame\n{\"x\": 1}\t\"end\"");
    json_t *junk = json_array_get(lines, 1);
    cr_expect_str_eq(json_string_value(json_object_get(junk, "msg")), "(message not valid UTF-8)");
    cr_expect_str_eq(json_string_value(json_object_get(junk, "component")), "anm",
                     "a NULL component logs as anm");
    json_decref(lines);
}

Test(log, threshold_filters_lower_levels)
{
    capture c;
    capture_start(&c);
    anm_log_set_level(ANM_LOG_WARN);
    cr_expect_eq(anm_log_get_level(), ANM_LOG_WARN);
    anm_log_debug("t", "debug dropped");
    anm_log_info("t", "info dropped");
    anm_log_warn("t", "warn kept");
    anm_log_error("t", "error kept");
    anm_log_set_level(ANM_LOG_OFF);
    anm_log_error("t", "error dropped when off");
    anm_log_set_level(ANM_LOG_DEBUG);
    anm_log_debug("t", "debug kept");
    anm_logf(ANM_LOG_OFF, "t", "off is not a level to log at");
    json_t *lines = capture_stop(&c, NULL);
    cr_assert_eq(json_array_size(lines), 3);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(lines, 0), "msg")),
                     "warn kept");
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(lines, 1), "msg")),
                     "error kept");
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(lines, 2), "level")),
                     "debug");
    json_decref(lines);
}

Test(log, long_messages_are_truncated_not_dropped)
{
    anm_log_set_level(ANM_LOG_INFO);
    char big[3000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    capture c;
    capture_start(&c);
    anm_log_info("t", "%s", big);
    anm_log_fields(ANM_LOG_INFO, "t", big, NULL);
    json_t *lines = capture_stop(&c, NULL);
    cr_assert_eq(json_array_size(lines), 2);
    cr_expect_eq(strlen(json_string_value(json_object_get(json_array_get(lines, 0), "msg"))), 1023,
                 "printf-style messages are cut at 1023 bytes");
    cr_expect_eq(strlen(json_string_value(json_object_get(json_array_get(lines, 1), "msg"))), 2999,
                 "anm_log_fields takes the message as it is");
    json_decref(lines);
}

static void *log_many(void *arg)
{
    const char *component = arg;
    for (int i = 0; i < 300; i++)
        anm_log_info(component, "line %d of a message long enough to need more than one cache line",
                     i);
    return NULL;
}

Test(log, lines_from_threads_never_interleave)
{
    anm_log_set_level(ANM_LOG_INFO);
    capture c;
    capture_start(&c);
    static char one[] = "one", two[] = "two";
    pthread_t a, b;
    cr_assert_eq(pthread_create(&a, NULL, log_many, one), 0);
    cr_assert_eq(pthread_create(&b, NULL, log_many, two), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    json_t *lines = capture_stop(&c, NULL); /* fails on any line that is not one JSON object */
    cr_expect_eq(json_array_size(lines), 600);
    json_decref(lines);
}

Test(log, level_names_parse_both_ways)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i <= (int)ANM_LOG_OFF; i++) {
        anm_log_level level = ANM_LOG_OFF;
        cr_expect_eq(anm_log_level_parse(names[i], &level), ANM_OK);
        cr_expect_eq(level, (anm_log_level)i);
        cr_expect_str_eq(anm_log_level_name((anm_log_level)i), names[i]);
    }
    anm_log_level level = ANM_LOG_DEBUG;
    cr_expect_eq(anm_log_level_parse("warning", &level), ANM_OK);
    cr_expect_eq(level, ANM_LOG_WARN);
    level = ANM_LOG_DEBUG;
    cr_expect_eq(anm_log_level_parse("WARN", &level), ANM_EINVAL, "names are lower-case");
    cr_expect_eq(anm_log_level_parse("", &level), ANM_EINVAL);
    cr_expect_eq(anm_log_level_parse(NULL, &level), ANM_EINVAL);
    cr_expect_eq(level, ANM_LOG_DEBUG, "left alone on failure");
    cr_expect_str_eq(anm_log_level_name((anm_log_level)7), "unknown");
}

Test(log, limiter_allows_a_burst_then_the_refill_rate)
{
    anm_log_limiter limiter;
    anm_log_limiter_init(&limiter, 3.0, 2.0); /* 3 at once, then one per 500 ms */
    long long t = 1000000;
    cr_expect_eq(anm_log_limiter_allow(&limiter, t), 1);
    cr_expect_eq(anm_log_limiter_allow(&limiter, t), 1);
    cr_expect_eq(anm_log_limiter_allow(&limiter, t), 1);
    cr_expect_eq(anm_log_limiter_allow(&limiter, t), 0, "burst spent");
    cr_expect_eq(anm_log_limiter_allow(&limiter, t + 499), 0, "0.998 tokens after 499 ms");
    cr_expect_eq(anm_log_limiter_allow(&limiter, t + 500), 1, "one token after 500 ms");
    cr_expect_eq(anm_log_limiter_allow(&limiter, t + 500), 0);
    cr_expect_eq(limiter.suppressed, 3);
    /* a long pause refills only up to the burst */
    t += 3600 * 1000;
    int allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += anm_log_limiter_allow(&limiter, t);
    cr_expect_eq(allowed, 3);
    cr_expect_eq(limiter.suppressed, 10);
    /* time going backwards grants nothing and breaks nothing */
    cr_expect_eq(anm_log_limiter_allow(&limiter, t - 5000), 0);
    cr_expect_eq(anm_log_limiter_allow(&limiter, t + 500), 1,
                 "refill counted from the latest time");
}
