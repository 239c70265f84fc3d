/* calendar.c: the Europe/London settlement calendar, from first principles. */
#include "engine/calendar.h"

#include "engine/clock.h"

#include <stdio.h>
#include <string.h>

#define MS_PER_MINUTE 60000LL
#define MS_PER_HOUR   3600000LL
#define MS_PER_DAY    86400000LL

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static int is_leap(int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 ? 28 + is_leap(year) : days[month - 1];
}

/* ---- dates ------------------------------------------------------------------ */

int anm_settlement_date_valid(anm_settlement_date date)
{
    return date.year >= ANM_CALENDAR_MIN_YEAR && date.year <= ANM_CALENDAR_MAX_YEAR &&
           date.month >= 1 && date.month <= 12 && date.day >= 1 &&
           date.day <= days_in_month(date.year, date.month);
}

/* Reads `width` digits at text[at]; returns the index of the first non-digit, or -1 if all are
 * digits. */
static int read_digits(const char *text, int at, int width, int *value)
{
    int v = 0;
    for (int i = 0; i < width; i++) {
        char c = text[at + i];
        if (c < '0' || c > '9')
            return at + i;
        v = v * 10 + (c - '0');
    }
    *value = v;
    return -1;
}

/* Range checks shared by both date parsers, after the shape has been read. */
static int check_date_range(const char *text, anm_settlement_date date, anm_error_detail *detail)
{
    if (date.year < ANM_CALENDAR_MIN_YEAR || date.year > ANM_CALENDAR_MAX_YEAR) {
        anm_error_detail_set(detail, NULL, 0, 0, NULL,
                             "year %d of '%s' is outside the supported years %d..%d", date.year,
                             text, ANM_CALENDAR_MIN_YEAR, ANM_CALENDAR_MAX_YEAR);
        return ANM_ERANGE;
    }
    if (date.month < 1 || date.month > 12 || date.day < 1 ||
        date.day > days_in_month(date.year, date.month)) {
        anm_error_detail_set(detail, NULL, 0, 0, NULL, "'%s' is not a day", text);
        return ANM_ERANGE;
    }
    return ANM_OK;
}

int anm_settlement_date_parse(const char *text, anm_settlement_date *out, anm_error_detail *detail)
{
    anm_error_detail_clear(detail);
    if (text == NULL || out == NULL)
        return ANM_EINVAL;
    anm_settlement_date date = {0, 0, 0};
    int bad = -1;
    size_t length = strnlen(text, 11);
    if (length < 10) {
        bad = (int)length;
        for (int i = 0; i < (int)length; i++) {
            if ((i == 4 || i == 7) ? text[i] != '-' : (text[i] < '0' || text[i] > '9')) {
                bad = i;
                break;
            }
        }
    } else if ((bad = read_digits(text, 0, 4, &date.year)) < 0) {
        if (text[4] != '-')
            bad = 4;
        else if ((bad = read_digits(text, 5, 2, &date.month)) < 0) {
            if (text[7] != '-')
                bad = 7;
            else if ((bad = read_digits(text, 8, 2, &date.day)) < 0 && text[10] != '\0')
                bad = 10;
        }
    }
    if (bad >= 0) {
        anm_error_detail_set(detail, NULL, 0, bad + 1, NULL,
                             "expected a date as YYYY-MM-DD, got '%s'", text);
        return ANM_EPARSE;
    }
    int err = check_date_range(text, date, detail);
    if (err == ANM_OK)
        *out = date;
    return err;
}

int anm_settlement_date_parse_neso(const char *text, anm_settlement_date *out,
                                   anm_error_detail *detail)
{
    static const char months[12][4] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                       "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
    anm_error_detail_clear(detail);
    if (text == NULL || out == NULL)
        return ANM_EINVAL;
    anm_settlement_date date = {0, 0, 0};
    int bad = -1;
    size_t length = strnlen(text, 12);
    if (length != 11) {
        bad = length < 11 ? (int)length : 11;
    } else if ((bad = read_digits(text, 0, 2, &date.day)) < 0) {
        if (text[2] != '-')
            bad = 2;
        else {
            char name[4];
            for (int i = 0; i < 3; i++) {
                char c = text[3 + i];
                name[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
            }
            name[3] = '\0';
            for (int m = 0; m < 12; m++) {
                if (memcmp(name, months[m], 4) == 0)
                    date.month = m + 1;
            }
            if (date.month == 0)
                bad = 3;
            else if (text[6] != '-')
                bad = 6;
            else
                bad = read_digits(text, 7, 4, &date.year);
        }
    }
    if (bad >= 0) {
        anm_error_detail_set(detail, NULL, 0, bad + 1, NULL,
                             "expected a date as DD-MON-YYYY, got '%s'", text);
        return ANM_EPARSE;
    }
    int err = check_date_range(text, date, detail);
    if (err == ANM_OK)
        *out = date;
    return err;
}

int anm_settlement_date_format(anm_settlement_date date, char *buf, size_t size)
{
    if (!anm_settlement_date_valid(date) || buf == NULL)
        return ANM_EINVAL;
    int n = snprintf(buf, size, "%04d-%02d-%02d", date.year, date.month, date.day);
    if (n < 0 || (size_t)n >= size)
        return ANM_EINVAL;
    return ANM_OK;
}

int64_t anm_settlement_date_to_days(anm_settlement_date date)
{
    return anm_days_from_civil(date.year, date.month, date.day);
}

anm_settlement_date anm_settlement_date_from_days(int64_t days)
{
    anm_settlement_date date;
    anm_civil_from_days(days, &date.year, &date.month, &date.day);
    return date;
}

anm_settlement_date anm_settlement_date_add_days(anm_settlement_date date, int64_t days)
{
    return anm_settlement_date_from_days(anm_settlement_date_to_days(date) + days);
}

int anm_settlement_date_compare(anm_settlement_date a, anm_settlement_date b)
{
    int64_t da = anm_settlement_date_to_days(a);
    int64_t db = anm_settlement_date_to_days(b);
    return (da > db) - (da < db);
}

/* ---- UK summer time ------------------------------------------------------------ */

/* Days since the epoch of the last Sunday of month (1970-01-01 was a Thursday). */
static int64_t last_sunday(int year, int month)
{
    int64_t last = anm_days_from_civil(year, month, days_in_month(year, month));
    int64_t weekday = (last + 4) % 7; /* 0 = Sunday */
    if (weekday < 0)
        weekday += 7;
    return last - weekday;
}

int64_t anm_calendar_bst_start_ms(int year)
{
    return last_sunday(year, 3) * MS_PER_DAY + MS_PER_HOUR;
}

int64_t anm_calendar_bst_end_ms(int year)
{
    return last_sunday(year, 10) * MS_PER_DAY + MS_PER_HOUR;
}

int anm_calendar_utc_offset_minutes(int64_t utc_ms)
{
    int year, month, day;
    anm_civil_from_days(floor_div(utc_ms, MS_PER_DAY), &year, &month, &day);
    if (month < 3 || month > 10)
        return 0;
    return utc_ms >= anm_calendar_bst_start_ms(year) && utc_ms < anm_calendar_bst_end_ms(year) ? 60
                                                                                               : 0;
}

int anm_calendar_local_to_utc(anm_settlement_date date, int minute_of_day, int64_t *utc_ms)
{
    if (!anm_settlement_date_valid(date) || minute_of_day < 0 || minute_of_day >= 24 * 60 ||
        utc_ms == NULL)
        return ANM_EINVAL;
    int64_t wall_ms =
        anm_settlement_date_to_days(date) * MS_PER_DAY + minute_of_day * MS_PER_MINUTE;
    /* Try BST first so that an ambiguous autumn time takes its first occurrence. */
    int64_t as_bst = wall_ms - 60 * MS_PER_MINUTE;
    if (anm_calendar_utc_offset_minutes(as_bst) == 60) {
        *utc_ms = as_bst;
        return ANM_OK;
    }
    /* GMT: a real GMT time, or a time in the spring gap read at the GMT offset. */
    *utc_ms = wall_ms;
    return ANM_OK;
}

/* ---- settlement days and periods ------------------------------------------------ */

/*
 * Clocks change at 01:00 UTC, so local midnight is never inside a change:
 * the offset in force at 00:00 UTC of a date is the offset at its local
 * midnight (23:00 UTC the day before, in BST, lies in the same regime).
 */
static int64_t day_start_unchecked(anm_settlement_date date)
{
    int64_t midnight_utc = anm_settlement_date_to_days(date) * MS_PER_DAY;
    return midnight_utc - anm_calendar_utc_offset_minutes(midnight_utc) * MS_PER_MINUTE;
}

int anm_calendar_day_start_ms(anm_settlement_date date, int64_t *utc_ms)
{
    if (!anm_settlement_date_valid(date) || utc_ms == NULL)
        return ANM_EINVAL;
    *utc_ms = day_start_unchecked(date);
    return ANM_OK;
}

int anm_calendar_period_count(anm_settlement_date date)
{
    if (!anm_settlement_date_valid(date))
        return ANM_EINVAL;
    int64_t start = day_start_unchecked(date);
    int64_t end = day_start_unchecked(anm_settlement_date_add_days(date, 1));
    return (int)((end - start) / ANM_PERIOD_MS);
}

static void fill_period(anm_settlement_date date, int period, int64_t day_start,
                        anm_settlement_period *out)
{
    out->date = date;
    out->period = period;
    out->utc_start_ms = day_start + (int64_t)(period - 1) * ANM_PERIOD_MS;
    out->utc_end_ms = out->utc_start_ms + ANM_PERIOD_MS;
    out->utc_offset_minutes = anm_calendar_utc_offset_minutes(out->utc_start_ms);
}

int anm_calendar_period(anm_settlement_date date, int period, anm_settlement_period *out)
{
    if (out == NULL)
        return ANM_EINVAL;
    int count = anm_calendar_period_count(date);
    if (count < 0)
        return count;
    if (period < 1 || period > count)
        return ANM_ERANGE;
    fill_period(date, period, day_start_unchecked(date), out);
    return ANM_OK;
}

int anm_calendar_period_at(int64_t utc_ms, anm_settlement_period *out)
{
    if (out == NULL)
        return ANM_EINVAL;
    int64_t local_ms = utc_ms + anm_calendar_utc_offset_minutes(utc_ms) * MS_PER_MINUTE;
    anm_settlement_date date = anm_settlement_date_from_days(floor_div(local_ms, MS_PER_DAY));
    if (!anm_settlement_date_valid(date))
        return ANM_ERANGE;
    int64_t day_start = day_start_unchecked(date);
    int period = (int)floor_div(utc_ms - day_start, ANM_PERIOD_MS) + 1;
    fill_period(date, period, day_start, out);
    return ANM_OK;
}

int anm_calendar_period_next(const anm_settlement_period *current, anm_settlement_period *out)
{
    if (current == NULL)
        return ANM_EINVAL;
    return anm_calendar_period_at(current->utc_end_ms, out);
}

/* ---- text ------------------------------------------------------------------------ */

static int format_wall(int64_t wall_ms, char *buf, size_t size, const char *suffix)
{
    int64_t days = floor_div(wall_ms, MS_PER_DAY);
    int64_t ms_of_day = wall_ms - days * MS_PER_DAY;
    int year, month, day;
    anm_civil_from_days(days, &year, &month, &day);
    if (buf == NULL || year < 0 || year > 9999)
        return ANM_ERANGE;
    int n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d%s", year, month, day,
                     (int)(ms_of_day / MS_PER_HOUR), (int)(ms_of_day / MS_PER_MINUTE % 60),
                     (int)(ms_of_day / 1000 % 60), suffix);
    if (n < 0 || (size_t)n >= size)
        return ANM_ERANGE;
    return ANM_OK;
}

int anm_calendar_format_local(int64_t utc_ms, char *buf, size_t size)
{
    int offset = anm_calendar_utc_offset_minutes(utc_ms);
    char suffix[8];
    int n = snprintf(suffix, sizeof suffix, "+%02d:%02d", offset / 60, offset % 60);
    if (n < 0 || (size_t)n >= sizeof suffix)
        return ANM_EINTERNAL;
    return format_wall(utc_ms + offset * MS_PER_MINUTE, buf, size, suffix);
}

int anm_calendar_format_utc(int64_t utc_ms, char *buf, size_t size)
{
    return format_wall(utc_ms, buf, size, "Z");
}

/* ---- gate closure ----------------------------------------------------------------- */

/* Reads 1..max_width digits at *p into *value; returns the number read (0: none). */
static int read_number(const char **p, int max_width, long *value)
{
    int n = 0;
    long v = 0;
    while (n < max_width && (*p)[n] >= '0' && (*p)[n] <= '9') {
        v = v * 10 + ((*p)[n] - '0');
        n++;
    }
    if (n > 0 && (*p)[n] >= '0' && (*p)[n] <= '9')
        return 0; /* too many digits */
    *p += n;
    *value = v;
    return n;
}

int anm_gate_spec_parse(const char *text, anm_gate_spec *out, anm_error_detail *detail)
{
    anm_error_detail_clear(detail);
    if (text == NULL || out == NULL)
        return ANM_EINVAL;
    anm_gate_spec gate = {ANM_GATE_BEFORE_PERIOD, 0, 0, 0};
    const char *p = text;
    long number = 0;
    if (strncmp(p, "period-", 7) == 0) {
        p += 7;
        if (read_number(&p, 6, &number) == 0)
            goto bad;
        int64_t unit_ms;
        switch (*p) {
        case 's': unit_ms = 1000; break;
        case 'm': unit_ms = MS_PER_MINUTE; break;
        case 'h': unit_ms = MS_PER_HOUR; break;
        default: goto bad;
        }
        if (p[1] != '\0')
            goto bad;
        gate.before_ms = number * unit_ms;
    } else if (strncmp(p, "D-", 2) == 0) {
        long hour = 0;
        long minute = 0;
        p += 2;
        gate.kind = ANM_GATE_LOCAL_TIME;
        if (read_number(&p, 3, &number) == 0 || number > 366 || *p++ != 'T' ||
            read_number(&p, 2, &hour) != 2 || hour > 23 || *p++ != ':' ||
            read_number(&p, 2, &minute) != 2 || minute > 59 || *p != '\0')
            goto bad;
        gate.days_before = (int)number;
        gate.minute_of_day = (int)(hour * 60 + minute);
    } else {
        goto bad;
    }
    *out = gate;
    return ANM_OK;
bad:
    anm_error_detail_set(detail, NULL, 0, (int)(p - text) + 1, NULL,
                         "expected a gate as period-<n>(s|m|h) or D-<n>THH:MM, got '%s'", text);
    return ANM_EPARSE;
}

static int gate_valid(const anm_gate_spec *gate)
{
    if (gate == NULL)
        return 0;
    if (gate->kind == ANM_GATE_BEFORE_PERIOD)
        return gate->before_ms >= 0;
    if (gate->kind == ANM_GATE_LOCAL_TIME)
        return gate->days_before >= 0 && gate->days_before <= 366 && gate->minute_of_day >= 0 &&
               gate->minute_of_day < 24 * 60;
    return 0;
}

int anm_gate_spec_format(const anm_gate_spec *gate, char *buf, size_t size)
{
    if (!gate_valid(gate) || buf == NULL)
        return ANM_EINVAL;
    if (gate->kind == ANM_GATE_BEFORE_PERIOD && gate->before_ms % 1000 != 0)
        return ANM_ERANGE; /* the text form has no sub-second unit */
    int n;
    if (gate->kind == ANM_GATE_BEFORE_PERIOD) {
        if (gate->before_ms % MS_PER_MINUTE == 0)
            n = snprintf(buf, size, "period-%lldm", (long long)(gate->before_ms / MS_PER_MINUTE));
        else
            n = snprintf(buf, size, "period-%llds", (long long)(gate->before_ms / 1000));
    } else {
        n = snprintf(buf, size, "D-%dT%02d:%02d", gate->days_before, gate->minute_of_day / 60,
                     gate->minute_of_day % 60);
    }
    if (n < 0 || (size_t)n >= size)
        return ANM_ERANGE;
    return ANM_OK;
}

int anm_gate_closure_ms(const anm_gate_spec *gate, anm_settlement_date date, int period,
                        int64_t *utc_ms)
{
    if (!gate_valid(gate) || utc_ms == NULL)
        return ANM_EINVAL;
    anm_settlement_period sp;
    int err = anm_calendar_period(date, period, &sp);
    if (err != ANM_OK)
        return err;
    if (gate->kind == ANM_GATE_BEFORE_PERIOD) {
        *utc_ms = sp.utc_start_ms - gate->before_ms;
        return ANM_OK;
    }
    anm_settlement_date day = anm_settlement_date_add_days(date, -gate->days_before);
    if (!anm_settlement_date_valid(day))
        return ANM_ERANGE;
    return anm_calendar_local_to_utc(day, gate->minute_of_day, utc_ms);
}
