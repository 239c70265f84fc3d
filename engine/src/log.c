/* log.c: JSON-lines logging to a file descriptor (stderr by default). */
#include "engine/log.h"

#include "engine/error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_threshold = ANM_LOG_INFO;
static atomic_int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void anm_log_set_level(anm_log_level level)
{
    atomic_store(&log_threshold, (int)level);
}

anm_log_level anm_log_get_level(void)
{
    return (anm_log_level)atomic_load(&log_threshold);
}

int anm_log_level_parse(const char *text, anm_log_level *out)
{
    if (text == NULL)
        return ANM_EINVAL;
    for (int i = 0; i <= (int)ANM_LOG_OFF; i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (anm_log_level)i;
            return ANM_OK;
        }
    }
    if (strcmp(text, "warning") == 0) {
        *out = ANM_LOG_WARN;
        return ANM_OK;
    }
    return ANM_EINVAL;
}

const char *anm_log_level_name(anm_log_level level)
{
    if ((int)level < 0 || level > ANM_LOG_OFF)
        return "unknown";
    return level_names[level];
}

int anm_log_set_fd(int fd)
{
    return atomic_exchange(&log_fd, fd);
}

static void format_utc_ms(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t seconds = ts.tv_sec;
    gmtime_r(&seconds, &tm);
    int n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000L);
    if (n < 0 || (size_t)n >= size)
        buf[0] = '\0';
}

static void write_all(int fd, const char *data, size_t length)
{
    while (length > 0) {
        ssize_t n = write(fd, data, length);
        if (n <= 0)
            return; /* nowhere left to report a logging failure */
        data += n;
        length -= (size_t)n;
    }
}

void anm_log_fields(anm_log_level level, const char *component, const char *message,
                    const json_t *fields)
{
    if ((int)level < atomic_load(&log_threshold) || level >= ANM_LOG_OFF)
        return;
    char ts[40];
    format_utc_ms(ts, sizeof ts);
    json_t *line = json_object();
    if (line == NULL)
        return;
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(anm_log_level_name(level)));
    json_object_set_new(line, "component", json_string(component ? component : "anm"));
    /* json_stringn validates UTF-8; fall back to a placeholder for binary junk */
    json_t *msg = json_string(message ? message : "");
    json_object_set_new(line, "msg", msg ? msg : json_string("(message not valid UTF-8)"));
    if (fields != NULL && json_is_object(fields))
        json_object_set(line, "fields", (json_t *)(uintptr_t)fields);
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    if (text == NULL)
        return;
    size_t length = strlen(text);
    char *with_newline = realloc(text, length + 2);
    if (with_newline == NULL) {
        free(text);
        return;
    }
    with_newline[length] = '\n';
    with_newline[length + 1] = '\0';
    write_all(atomic_load(&log_fd), with_newline, length + 1);
    free(with_newline);
}

void anm_logf(anm_log_level level, const char *component, const char *fmt, ...)
{
    if ((int)level < atomic_load(&log_threshold))
        return;
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (n < 0)
        message[0] = '\0';
    anm_log_fields(level, component, message, NULL);
}

void anm_log_limiter_init(anm_log_limiter *limiter, double burst, double per_second)
{
    limiter->tokens = burst;
    limiter->burst = burst;
    limiter->per_second = per_second;
    limiter->last_ms = -1;
    limiter->suppressed = 0;
}

int anm_log_limiter_allow(anm_log_limiter *limiter, long long now_ms)
{
    if (limiter->last_ms >= 0 && now_ms > limiter->last_ms) {
        limiter->tokens += (double)(now_ms - limiter->last_ms) / 1000.0 * limiter->per_second;
        if (limiter->tokens > limiter->burst)
            limiter->tokens = limiter->burst;
    }
    if (limiter->last_ms < 0 || now_ms > limiter->last_ms)
        limiter->last_ms = now_ms;
    if (limiter->tokens >= 1.0) {
        limiter->tokens -= 1.0;
        return 1;
    }
    limiter->suppressed++;
    return 0;
}
