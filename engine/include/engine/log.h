/*
 * log.h: structured logging, one JSON object per line on stderr.
 *
 *   {"ts":"2026-11-26T03:28:18.123Z","level":"info","component":"ingest",
 *    "msg":"could not connect to \"db:5432\": refused","fields":{...}}
 *
 * Messages follow the project's style: lower-case, no trailing period, name
 * the object and the value. The level threshold is process-wide (the one
 * piece of mutable global state besides signal flags); it is atomic, so any
 * thread may log. Each line is written with a single write, so lines from
 * different threads never interleave.
 */
#ifndef ANM_ENGINE_LOG_H
#define ANM_ENGINE_LOG_H

#include <jansson.h>
#include <stdio.h>

typedef enum anm_log_level {
    ANM_LOG_DEBUG = 0,
    ANM_LOG_INFO = 1,
    ANM_LOG_WARN = 2,
    ANM_LOG_ERROR = 3,
    ANM_LOG_OFF = 4
} anm_log_level;

/* Sets the threshold: messages below level are dropped. Default: info. */
void anm_log_set_level(anm_log_level level);
anm_log_level anm_log_get_level(void);

/* Parses "debug", "info", "warn", "error" or "off". Returns ANM_OK or ANM_EINVAL. */
int anm_log_level_parse(const char *text, anm_log_level *out);
const char *anm_log_level_name(anm_log_level level);

/*
 * Redirects output to fd (default 2, stderr); tests use a pipe or file.
 * Returns the previous descriptor.
 */
int anm_log_set_fd(int fd);

/* Logs a printf-formatted message without fields. */
void anm_logf(anm_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Logs message with structured fields (a JSON object, borrowed: the caller
 * still owns it; NULL for none).
 */
void anm_log_fields(anm_log_level level, const char *component, const char *message,
                    const json_t *fields);

#define anm_log_debug(component, ...) anm_logf(ANM_LOG_DEBUG, component, __VA_ARGS__)
#define anm_log_info(component, ...) anm_logf(ANM_LOG_INFO, component, __VA_ARGS__)
#define anm_log_warn(component, ...) anm_logf(ANM_LOG_WARN, component, __VA_ARGS__)
#define anm_log_error(component, ...) anm_logf(ANM_LOG_ERROR, component, __VA_ARGS__)

/*
 * A token bucket for logging bad input at a bounded rate: allows `burst`
 * lines, refilled at `per_second`. Not thread-safe; one per producer.
 * anm_log_limiter_allow returns 1 if a line may be logged now (now_ms from
 * the engine clock or a monotonic clock) and counts the ones suppressed.
 */
typedef struct anm_log_limiter {
    double tokens;
    double burst;
    double per_second;
    long long last_ms;
    unsigned long long suppressed;
} anm_log_limiter;

void anm_log_limiter_init(anm_log_limiter *limiter, double burst, double per_second);
int anm_log_limiter_allow(anm_log_limiter *limiter, long long now_ms);

#endif
