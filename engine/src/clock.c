/* clock.c: real and simulated engine clocks, and UTC time text. */
#include "engine/clock.h"

#include "engine/error.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

struct anm_clock {
    int simulated;
    double speed;
    pthread_mutex_t lock;
    int64_t base_utc_ms;  /* simulated time at base_mono_ns */
    int64_t base_mono_ns; /* monotonic time of the last set or step */
};

int64_t anm_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t anm_wall_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000L;
}

static anm_clock *clock_alloc(int simulated, int64_t start_ms, double speed)
{
    anm_clock *clock = calloc(1, sizeof *clock);
    if (clock == NULL)
        return NULL;
    if (pthread_mutex_init(&clock->lock, NULL) != 0) {
        free(clock);
        return NULL;
    }
    clock->simulated = simulated;
    clock->speed = speed;
    clock->base_utc_ms = start_ms;
    clock->base_mono_ns = anm_monotonic_ns();
    return clock;
}

anm_clock *anm_clock_new_real(void)
{
    return clock_alloc(0, 0, 1.0);
}

anm_clock *anm_clock_new_simulated(int64_t start_ms, double speed)
{
    if (!(speed >= 0.0) || !isfinite(speed))
        return NULL;
    return clock_alloc(1, start_ms, speed);
}

int anm_clock_new_from_spec(const char *spec, anm_clock **out)
{
    *out = NULL;
    if (spec == NULL)
        return ANM_EINVAL;
    if (strcmp(spec, "real") == 0) {
        *out = anm_clock_new_real();
        return *out ? ANM_OK : ANM_ENOMEM;
    }
    double speed;
    const char *rest;
    if (strncmp(spec, "sim:", 4) == 0) {
        speed = 1.0;
        rest = spec + 4;
    } else if (strncmp(spec, "step:", 5) == 0) {
        speed = 0.0;
        rest = spec + 5;
    } else {
        return ANM_EINVAL;
    }
    char instant[64];
    const char *at = strchr(rest, '@');
    size_t length = at ? (size_t)(at - rest) : strlen(rest);
    if (length == 0 || length >= sizeof instant)
        return ANM_EINVAL;
    memcpy(instant, rest, length);
    instant[length] = '\0';
    int64_t start_ms;
    if (anm_time_parse_iso8601(instant, &start_ms) != ANM_OK)
        return ANM_EINVAL;
    if (at != NULL) {
        if (speed == 0.0)
            return ANM_EINVAL; /* a stepped clock has no speed */
        /* plain decimal only: strtod alone would also take " 60", "+60" and "0x3c" */
        if (at[1] == '\0' || strspn(at + 1, "0123456789.") != strlen(at + 1))
            return ANM_EINVAL;
        char *end = NULL;
        speed = strtod(at + 1, &end);
        if (end == at + 1 || *end != '\0' || !isfinite(speed) || speed <= 0.0)
            return ANM_EINVAL;
    }
    *out = anm_clock_new_simulated(start_ms, speed);
    return *out ? ANM_OK : ANM_ENOMEM;
}

void anm_clock_destroy(anm_clock **clock)
{
    if (clock == NULL || *clock == NULL)
        return;
    pthread_mutex_destroy(&(*clock)->lock);
    free(*clock);
    *clock = NULL;
}

/* Caller holds the lock. */
static int64_t simulated_now(const anm_clock *clock, int64_t mono_ns)
{
    double elapsed_ms = (double)(mono_ns - clock->base_mono_ns) / 1e6 * clock->speed;
    return clock->base_utc_ms + (int64_t)floor(elapsed_ms);
}

int64_t anm_clock_now_ms(anm_clock *clock)
{
    if (!clock->simulated)
        return anm_wall_clock_ms();
    pthread_mutex_lock(&clock->lock);
    int64_t now = simulated_now(clock, anm_monotonic_ns());
    pthread_mutex_unlock(&clock->lock);
    return now;
}

int anm_clock_is_simulated(const anm_clock *clock)
{
    return clock->simulated;
}

double anm_clock_speed(const anm_clock *clock)
{
    return clock->speed;
}

int anm_clock_step(anm_clock *clock, int64_t delta_ms)
{
    if (!clock->simulated)
        return ANM_ESTATE;
    if (delta_ms < 0)
        return ANM_EINVAL;
    pthread_mutex_lock(&clock->lock);
    int64_t mono = anm_monotonic_ns();
    clock->base_utc_ms = simulated_now(clock, mono) + delta_ms;
    clock->base_mono_ns = mono;
    pthread_mutex_unlock(&clock->lock);
    return ANM_OK;
}

int anm_clock_set(anm_clock *clock, int64_t utc_ms)
{
    if (!clock->simulated)
        return ANM_ESTATE;
    pthread_mutex_lock(&clock->lock);
    clock->base_utc_ms = utc_ms;
    clock->base_mono_ns = anm_monotonic_ns();
    pthread_mutex_unlock(&clock->lock);
    return ANM_OK;
}

int64_t anm_clock_real_delay_ms(anm_clock *clock, int64_t deadline_ms)
{
    int64_t now = anm_clock_now_ms(clock);
    if (deadline_ms <= now)
        return 0;
    if (!clock->simulated)
        return deadline_ms - now;
    if (clock->speed == 0.0)
        return -1;
    return (int64_t)ceil((double)(deadline_ms - now) / clock->speed);
}

/* Howard Hinnant's days_from_civil, valid for the whole proleptic Gregorian range used here. */
int64_t anm_days_from_civil(int year, int month, int day)
{
    int64_t y = (int64_t)year - (month <= 2);
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t mp = (month + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void anm_civil_from_days(int64_t days, int *year, int *month, int *day)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    *year = (int)(yoe + era * 400 + (m <= 2));
    *month = (int)m;
    *day = (int)d;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

int anm_time_format_utc(int64_t utc_ms, char *buf, size_t size)
{
    int64_t days = floor_div(utc_ms, 86400000LL);
    int64_t ms_of_day = utc_ms - days * 86400000LL;
    int year, month, day;
    anm_civil_from_days(days, &year, &month, &day);
    int n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", year, month, day,
                     (int)(ms_of_day / 3600000), (int)(ms_of_day / 60000 % 60),
                     (int)(ms_of_day / 1000 % 60), (int)(ms_of_day % 1000));
    if (n < 0 || (size_t)n >= size)
        return ANM_ERANGE;
    return ANM_OK;
}

/* Reads exactly `width` digits from *p into *value. */
static int read_digits(const char **p, int width, int *value)
{
    int v = 0;
    for (int i = 0; i < width; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return ANM_EPARSE;
        v = v * 10 + (c - '0');
    }
    *p += width;
    *value = v;
    return ANM_OK;
}

static int days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 ? 28 + leap : days[month - 1];
}

int anm_time_parse_iso8601(const char *text, int64_t *utc_ms)
{
    const char *p = text;
    int year, month, day, hour, minute, second, millis = 0;
    if (read_digits(&p, 4, &year) || *p++ != '-' || read_digits(&p, 2, &month) || *p++ != '-' ||
        read_digits(&p, 2, &day) || (*p != 'T' && *p != ' '))
        return ANM_EPARSE;
    p++;
    if (read_digits(&p, 2, &hour) || *p++ != ':' || read_digits(&p, 2, &minute) ||
        *p++ != ':' || read_digits(&p, 2, &second))
        return ANM_EPARSE;
    if (*p == '.') {
        p++;
        int digits = 0;
        int fraction = 0;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3)
                fraction = fraction * 10 + (*p - '0');
            digits++;
            p++;
        }
        if (digits == 0)
            return ANM_EPARSE;
        for (int i = digits; i < 3; i++)
            fraction *= 10;
        millis = fraction;
    }
    int offset_min = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        int oh, om;
        p++;
        if (read_digits(&p, 2, &oh) || *p++ != ':' || read_digits(&p, 2, &om) || oh > 23 ||
            om > 59)
            return ANM_EPARSE;
        offset_min = sign * (oh * 60 + om);
    } else {
        return ANM_EPARSE;
    }
    if (*p != '\0')
        return ANM_EPARSE;
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
        minute > 59 || second > 59)
        return ANM_EPARSE;
    int64_t days = anm_days_from_civil(year, month, day);
    *utc_ms = ((days * 24 + hour) * 60 + minute - offset_min) * 60000LL + second * 1000LL + millis;
    return ANM_OK;
}
