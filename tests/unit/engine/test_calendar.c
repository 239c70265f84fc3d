/*
 * test_calendar.c: the Europe/London settlement calendar against hand-worked
 * days, the system's tzdata for every day 2000..2100, NESO's real 2021 demand
 * file, and the `anm calendar` command.
 */
#include "engine/calendar.h"
#include "engine/cli.h"
#include "engine/clock.h"
#include "engine/error.h"

#include "testlib.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MINUTE_MS 60000LL
#define HOUR_MS   3600000LL

static anm_settlement_date date_of(int year, int month, int day)
{
    anm_settlement_date d = {year, month, day};
    return d;
}

/* UTC ms of an ISO 8601 text, through the clock's parser (tested in test_clock.c). */
static int64_t utc(const char *text)
{
    int64_t ms = 0;
    cr_assert_eq(anm_time_parse_iso8601(text, &ms), ANM_OK, "bad test instant %s", text);
    return ms;
}

static anm_settlement_period period_of(anm_settlement_date date, int period)
{
    anm_settlement_period sp;
    int err = anm_calendar_period(date, period, &sp);
    cr_assert_eq(err, ANM_OK, "period %d of %04d-%02d-%02d: %s", period, date.year, date.month,
                 date.day, anm_strerror(err));
    return sp;
}

/* ---- hand-worked days ----------------------------------------------------------- */

Test(calendar, spring_2021_has_46_periods_and_skips_local_01_00)
{
    anm_settlement_date d = date_of(2021, 3, 28);
    cr_assert_eq(anm_calendar_period_count(d), 46);
    /* periods 1-2 are 00:00-01:00 GMT; the clocks go to 02:00 BST at 01:00 UTC */
    cr_assert_eq(period_of(d, 2).utc_start_ms, utc("2021-03-28T00:30:00Z"));
    cr_assert_eq(period_of(d, 2).utc_offset_minutes, 0);
    cr_assert_eq(period_of(d, 3).utc_start_ms, utc("2021-03-28T01:00:00Z"));
    cr_assert_eq(period_of(d, 3).utc_offset_minutes, 60);
    /* the last period ends at local midnight of the 29th = 23:00 UTC */
    cr_assert_eq(period_of(d, 46).utc_end_ms, utc("2021-03-28T23:00:00Z"));
    anm_settlement_period sp;
    cr_assert_eq(anm_calendar_period(d, 47, &sp), ANM_ERANGE);
}

Test(calendar, autumn_2021_has_50_periods_and_period_5_starts_01_00_utc)
{
    anm_settlement_date d = date_of(2021, 10, 31);
    cr_assert_eq(anm_calendar_period_count(d), 50);
    /* local midnight is 23:00 UTC on the 30th (BST) */
    cr_assert_eq(period_of(d, 1).utc_start_ms, utc("2021-10-30T23:00:00Z"));
    /* period 3 is the first 01:00 local (BST) = 00:00 UTC, period 5 the second (GMT) */
    cr_assert_eq(period_of(d, 3).utc_start_ms, utc("2021-10-31T00:00:00Z"));
    cr_assert_eq(period_of(d, 3).utc_offset_minutes, 60);
    cr_assert_eq(period_of(d, 5).utc_start_ms, utc("2021-10-31T01:00:00Z"));
    cr_assert_eq(period_of(d, 5).utc_end_ms, utc("2021-10-31T01:30:00Z"));
    cr_assert_eq(period_of(d, 5).utc_offset_minutes, 0);
    cr_assert_eq(period_of(d, 50).utc_end_ms, utc("2021-11-01T00:00:00Z"));
    anm_settlement_period sp;
    cr_assert_eq(anm_calendar_period(d, 51, &sp), ANM_ERANGE);
    cr_assert_eq(anm_calendar_period(d, 0, &sp), ANM_ERANGE);
}

Test(calendar, ordinary_days_have_48_periods)
{
    cr_assert_eq(anm_calendar_period_count(date_of(2021, 1, 1)), 48);
    cr_assert_eq(anm_calendar_period_count(date_of(2021, 7, 1)), 48);
    cr_assert_eq(anm_calendar_period_count(date_of(2021, 3, 27)), 48);
    cr_assert_eq(anm_calendar_period_count(date_of(2021, 11, 1)), 48);
    /* a summer day starts at 23:00 UTC the day before */
    cr_assert_eq(period_of(date_of(2021, 7, 1), 1).utc_start_ms, utc("2021-06-30T23:00:00Z"));
    cr_assert_eq(period_of(date_of(2021, 1, 1), 48).utc_start_ms, utc("2021-01-01T23:30:00Z"));
    cr_assert_eq(anm_calendar_period_count(date_of(2021, 2, 29)), ANM_EINVAL);
    cr_assert_eq(anm_calendar_period_count(date_of(1995, 6, 1)), ANM_EINVAL);
}

Test(calendar, summer_time_starts_and_ends_at_01_00_utc_on_last_sundays)
{
    /* published UK clock changes */
    cr_assert_eq(anm_calendar_bst_start_ms(2021), utc("2021-03-28T01:00:00Z"));
    cr_assert_eq(anm_calendar_bst_end_ms(2021), utc("2021-10-31T01:00:00Z"));
    cr_assert_eq(anm_calendar_bst_start_ms(2000), utc("2000-03-26T01:00:00Z"));
    cr_assert_eq(anm_calendar_bst_end_ms(2000), utc("2000-10-29T01:00:00Z"));
    cr_assert_eq(anm_calendar_bst_start_ms(2024), utc("2024-03-31T01:00:00Z"));
    cr_assert_eq(anm_calendar_bst_end_ms(2024), utc("2024-10-27T01:00:00Z"));
    int64_t start = anm_calendar_bst_start_ms(2021);
    cr_assert_eq(anm_calendar_utc_offset_minutes(start - 1), 0);
    cr_assert_eq(anm_calendar_utc_offset_minutes(start), 60);
    int64_t end = anm_calendar_bst_end_ms(2021);
    cr_assert_eq(anm_calendar_utc_offset_minutes(end - 1), 60);
    cr_assert_eq(anm_calendar_utc_offset_minutes(end), 0);
}

Test(calendar, period_of_an_instant)
{
    anm_settlement_period sp;
    cr_assert_eq(anm_calendar_period_at(utc("2021-10-31T01:15:00Z"), &sp), ANM_OK);
    cr_assert_eq(anm_settlement_date_compare(sp.date, date_of(2021, 10, 31)), 0);
    cr_assert_eq(sp.period, 5);
    cr_assert_eq(anm_calendar_period_at(utc("2021-10-31T00:15:00Z"), &sp), ANM_OK);
    cr_assert_eq(sp.period, 3);
    /* 23:10 UTC on 30 Jun is 00:10 BST on 1 Jul: period 1 of the 1st */
    cr_assert_eq(anm_calendar_period_at(utc("2021-06-30T23:10:00Z"), &sp), ANM_OK);
    cr_assert_eq(anm_settlement_date_compare(sp.date, date_of(2021, 7, 1)), 0);
    cr_assert_eq(sp.period, 1);
    cr_assert_eq(sp.utc_start_ms, utc("2021-06-30T23:00:00Z"));
    /* the last millisecond of a 46-period day */
    cr_assert_eq(anm_calendar_period_at(utc("2021-03-28T22:59:59.999Z"), &sp), ANM_OK);
    cr_assert_eq(sp.period, 46);
    anm_settlement_period next;
    cr_assert_eq(anm_calendar_period_next(&sp, &next), ANM_OK);
    cr_assert_eq(anm_settlement_date_compare(next.date, date_of(2021, 3, 29)), 0);
    cr_assert_eq(next.period, 1);
    /* before 1996 the rule is not the current one: refused, not guessed */
    cr_assert_eq(anm_calendar_period_at(utc("1995-07-01T12:00:00Z"), &sp), ANM_ERANGE);
}

/* ---- every day 2000..2100 against the system tzdata ----------------------------- */

Test(calendar, agrees_with_system_tzdata_2000_to_2100)
{
    cr_assert_eq(setenv("TZ", "Europe/London", 1), 0);
    tzset();
    /* without tzdata glibc silently falls back to UTC: insist on a real zone */
    struct tm probe = {0};
    time_t july = (time_t)(utc("2021-07-01T12:00:00Z") / 1000);
    cr_assert_not_null(localtime_r(&july, &probe));
    cr_assert_eq(probe.tm_gmtoff, 3600, "no Europe/London in the system tzdata (install tzdata)");

    anm_settlement_date day = date_of(2000, 1, 1);
    anm_settlement_date last = date_of(2100, 12, 31);
    long days = 0, short_days = 0, long_days = 0;
    for (; anm_settlement_date_compare(day, last) <= 0;
         day = anm_settlement_date_add_days(day, 1)) {
        anm_settlement_date next = anm_settlement_date_add_days(day, 1);
        struct tm midnight = {.tm_year = day.year - 1900,
                              .tm_mon = day.month - 1,
                              .tm_mday = day.day,
                              .tm_isdst = -1};
        struct tm next_midnight = {.tm_year = next.year - 1900,
                                   .tm_mon = next.month - 1,
                                   .tm_mday = next.day,
                                   .tm_isdst = -1};
        time_t t0 = mktime(&midnight);
        time_t t1 = mktime(&next_midnight);
        long tz_count = (long)(t1 - t0) / 1800;
        int count = anm_calendar_period_count(day);
        if (count != tz_count)
            cr_assert_fail("%04d-%02d-%02d: %d periods, tzdata says %ld", day.year, day.month,
                           day.day, count, tz_count);
        days++;
        short_days += count == 46;
        long_days += count == 50;
        for (int p = 1; p <= count; p++) {
            anm_settlement_period sp;
            if (anm_calendar_period(day, p, &sp) != ANM_OK)
                cr_assert_fail("%04d-%02d-%02d period %d refused", day.year, day.month, day.day, p);
            int64_t expected = (int64_t)t0 * 1000 + (int64_t)(p - 1) * 1800000;
            if (sp.utc_start_ms != expected)
                cr_assert_fail("%04d-%02d-%02d period %d starts at %lld, tzdata says %lld",
                               day.year, day.month, day.day, p, (long long)sp.utc_start_ms,
                               (long long)expected);
            /* the local wall clock and offset at the start, from tzdata */
            struct tm local;
            time_t start = (time_t)(sp.utc_start_ms / 1000);
            localtime_r(&start, &local);
            long wall_minutes = (long)(p - 1) * 30 + (local.tm_gmtoff - midnight.tm_gmtoff) / 60;
            if (local.tm_gmtoff / 60 != sp.utc_offset_minutes || local.tm_year + 1900 != day.year ||
                local.tm_mon + 1 != day.month || local.tm_mday != day.day ||
                local.tm_hour * 60 + local.tm_min != wall_minutes)
                cr_assert_fail("%04d-%02d-%02d period %d: offset %d, tzdata local %02d:%02d%+ld",
                               day.year, day.month, day.day, p, sp.utc_offset_minutes,
                               local.tm_hour, local.tm_min, (long)local.tm_gmtoff);
            /* and back: the instant's period is this one, to its last millisecond */
            anm_settlement_period back;
            if (anm_calendar_period_at(sp.utc_start_ms, &back) != ANM_OK || back.period != p ||
                anm_settlement_date_compare(back.date, day) != 0 ||
                anm_calendar_period_at(sp.utc_end_ms - 1, &back) != ANM_OK || back.period != p)
                cr_assert_fail("%04d-%02d-%02d period %d does not round-trip", day.year, day.month,
                               day.day, p);
        }
    }
    cr_assert_eq(days, 36890); /* 101 years, 25 leap days (2100 is not one) */
    cr_assert_eq(short_days, 101);
    cr_assert_eq(long_days, 101);
}

/* ---- local wall-clock time --------------------------------------------------------- */

Test(calendar, local_time_to_utc_across_clock_changes)
{
    int64_t ms = 0;
    /* 12:00 on a winter and a summer day */
    cr_assert_eq(anm_calendar_local_to_utc(date_of(2021, 3, 27), 12 * 60, &ms), ANM_OK);
    cr_assert_eq(ms, utc("2021-03-27T12:00:00Z"));
    cr_assert_eq(anm_calendar_local_to_utc(date_of(2021, 3, 28), 12 * 60, &ms), ANM_OK);
    cr_assert_eq(ms, utc("2021-03-28T11:00:00Z"));
    /* spring gap: 01:30 does not exist, read at GMT (= 02:30 BST) */
    cr_assert_eq(anm_calendar_local_to_utc(date_of(2021, 3, 28), 90, &ms), ANM_OK);
    cr_assert_eq(ms, utc("2021-03-28T01:30:00Z"));
    /* autumn: 01:30 happens twice, the first (BST) is taken */
    cr_assert_eq(anm_calendar_local_to_utc(date_of(2021, 10, 31), 90, &ms), ANM_OK);
    cr_assert_eq(ms, utc("2021-10-31T00:30:00Z"));
    cr_assert_eq(anm_calendar_local_to_utc(date_of(2021, 10, 31), 150, &ms), ANM_OK);
    cr_assert_eq(ms, utc("2021-10-31T02:30:00Z"));
    cr_assert_eq(anm_calendar_local_to_utc(date_of(2021, 10, 31), 1440, &ms), ANM_EINVAL);
    cr_assert_eq(anm_calendar_local_to_utc(date_of(2021, 10, 31), -1, &ms), ANM_EINVAL);
}

Test(calendar, formats_local_with_offset_and_utc_with_z)
{
    char buf[ANM_LOCAL_TIME_SIZE];
    cr_assert_eq(anm_calendar_format_local(utc("2021-10-31T00:00:00Z"), buf, sizeof buf), ANM_OK);
    cr_assert_str_eq(buf, "2021-10-31T01:00:00+01:00");
    cr_assert_eq(anm_calendar_format_local(utc("2021-10-31T01:00:00Z"), buf, sizeof buf), ANM_OK);
    cr_assert_str_eq(buf, "2021-10-31T01:00:00+00:00");
    cr_assert_eq(anm_calendar_format_local(utc("2021-03-28T01:00:00Z"), buf, sizeof buf), ANM_OK);
    cr_assert_str_eq(buf, "2021-03-28T02:00:00+01:00");
    cr_assert_eq(anm_calendar_format_utc(utc("2021-10-31T01:00:00.999Z"), buf, sizeof buf), ANM_OK);
    cr_assert_str_eq(buf, "2021-10-31T01:00:00Z");
    cr_assert_eq(anm_calendar_format_local(0, buf, ANM_LOCAL_TIME_SIZE - 1), ANM_ERANGE);
    cr_assert_eq(anm_calendar_format_utc(0, buf, ANM_UTC_TIME_SIZE - 1), ANM_ERANGE);
    /* the local text parses back to the same instant */
    int64_t back = 0;
    cr_assert_eq(anm_calendar_format_local(utc("2021-10-31T00:30:00Z"), buf, sizeof buf), ANM_OK);
    cr_assert_eq(anm_time_parse_iso8601(buf, &back), ANM_OK);
    cr_assert_eq(back, utc("2021-10-31T00:30:00Z"));
}

/* ---- dates ----------------------------------------------------------------------------- */

Test(calendar, parses_and_formats_dates)
{
    anm_settlement_date d;
    anm_error_detail detail;
    cr_assert_eq(anm_settlement_date_parse("2024-02-29", &d, &detail), ANM_OK);
    cr_assert_eq(d.year, 2024);
    cr_assert_eq(d.month, 2);
    cr_assert_eq(d.day, 29);
    char buf[ANM_DATE_SIZE];
    cr_assert_eq(anm_settlement_date_format(d, buf, sizeof buf), ANM_OK);
    cr_assert_str_eq(buf, "2024-02-29");
    cr_assert_eq(anm_settlement_date_format(d, buf, sizeof buf - 1), ANM_EINVAL);
    cr_assert_eq(anm_settlement_date_parse_neso("31-oct-2021", &d, &detail), ANM_OK);
    cr_assert_eq(anm_settlement_date_compare(d, date_of(2021, 10, 31)), 0);
    cr_assert_eq(
        anm_settlement_date_compare(anm_settlement_date_add_days(d, 62), date_of(2022, 1, 1)), 0);
}

Test(calendar, rejects_bad_dates_with_reason_and_column)
{
    anm_settlement_date d = date_of(2000, 1, 1);
    anm_error_detail detail;
    cr_assert_eq(anm_settlement_date_parse("2021-1-01", &d, &detail), ANM_EPARSE);
    cr_assert_str_eq(detail.message, "expected a date as YYYY-MM-DD, got '2021-1-01'");
    cr_assert_eq(detail.column, 7);
    cr_assert_eq(anm_settlement_date_parse("2021-10-31T00", &d, &detail), ANM_EPARSE);
    cr_assert_eq(detail.column, 11);
    cr_assert_eq(anm_settlement_date_parse("", &d, &detail), ANM_EPARSE);
    cr_assert_eq(detail.column, 1);
    cr_assert_eq(anm_settlement_date_parse("2021/10/31", &d, &detail), ANM_EPARSE);
    cr_assert_eq(detail.column, 5);
    cr_assert_eq(anm_settlement_date_parse("2021-02-29", &d, &detail), ANM_ERANGE);
    cr_assert_str_eq(detail.message, "'2021-02-29' is not a day");
    cr_assert_eq(anm_settlement_date_parse("2021-13-01", &d, &detail), ANM_ERANGE);
    cr_assert_eq(anm_settlement_date_parse("1995-12-31", &d, &detail), ANM_ERANGE);
    cr_assert_str_eq(detail.message,
                     "year 1995 of '1995-12-31' is outside the supported years 1996..9999");
    cr_assert_eq(anm_settlement_date_parse_neso("01-XYZ-2021", &d, &detail), ANM_EPARSE);
    cr_assert_str_eq(detail.message, "expected a date as DD-MON-YYYY, got '01-XYZ-2021'");
    cr_assert_eq(detail.column, 4);
    cr_assert_eq(anm_settlement_date_parse_neso("31-APR-2021", &d, &detail), ANM_ERANGE);
    cr_assert_str_eq(detail.message, "'31-APR-2021' is not a day");
    /* nothing was written on failure */
    cr_assert_eq(anm_settlement_date_compare(d, date_of(2000, 1, 1)), 0);
}

/* ---- gate closure ----------------------------------------------------------------------- */

Test(calendar, neso_bm_gate_closes_an_hour_before_each_period)
{
    anm_gate_spec gate;
    cr_assert_eq(anm_gate_spec_parse("period-1h", &gate, NULL), ANM_OK);
    cr_assert_eq(gate.kind, ANM_GATE_BEFORE_PERIOD);
    cr_assert_eq(gate.before_ms, HOUR_MS);
    int64_t closes = 0;
    /* period 5 of the autumn day starts 01:00 UTC: its gate is at 00:00 UTC */
    cr_assert_eq(anm_gate_closure_ms(&gate, date_of(2021, 10, 31), 5, &closes), ANM_OK);
    cr_assert_eq(closes, utc("2021-10-31T00:00:00Z"));
    cr_assert_eq(anm_gate_closure_ms(&gate, date_of(2021, 10, 31), 1, &closes), ANM_OK);
    cr_assert_eq(closes, utc("2021-10-30T22:00:00Z"));
    cr_assert_eq(anm_gate_closure_ms(&gate, date_of(2021, 3, 28), 47, &closes), ANM_ERANGE);
    char buf[32];
    cr_assert_eq(anm_gate_spec_format(&gate, buf, sizeof buf), ANM_OK);
    cr_assert_str_eq(buf, "period-60m");
}

Test(calendar, day_ahead_gate_is_local_noon_the_day_before)
{
    anm_gate_spec gate;
    cr_assert_eq(anm_gate_spec_parse("D-1T12:00", &gate, NULL), ANM_OK);
    cr_assert_eq(gate.kind, ANM_GATE_LOCAL_TIME);
    cr_assert_eq(gate.days_before, 1);
    cr_assert_eq(gate.minute_of_day, 720);
    int64_t closes = 0;
    /* the day before the spring change is GMT; the day before the 29th is BST */
    cr_assert_eq(anm_gate_closure_ms(&gate, date_of(2021, 3, 28), 46, &closes), ANM_OK);
    cr_assert_eq(closes, utc("2021-03-27T12:00:00Z"));
    cr_assert_eq(anm_gate_closure_ms(&gate, date_of(2021, 3, 29), 1, &closes), ANM_OK);
    cr_assert_eq(closes, utc("2021-03-28T11:00:00Z"));
    cr_assert_eq(anm_gate_closure_ms(&gate, date_of(2021, 11, 1), 48, &closes), ANM_OK);
    cr_assert_eq(closes, utc("2021-10-31T12:00:00Z"));
    char buf[32];
    cr_assert_eq(anm_gate_spec_format(&gate, buf, sizeof buf), ANM_OK);
    cr_assert_str_eq(buf, "D-1T12:00");
    /* D-1 of the first supported day is outside the calendar */
    cr_assert_eq(anm_gate_closure_ms(&gate, date_of(1996, 1, 1), 1, &closes), ANM_ERANGE);
}

Test(calendar, rejects_bad_gate_specs)
{
    static const char *const bad[] = {"",           "period-",    "period-60",   "period-60x",
                                      "period--1h", "period-1hh", "D-1",         "D-1T1200",
                                      "D-1T24:00",  "D-1T12:60",  "D-367T12:00", "d-1T12:00"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        anm_gate_spec gate;
        anm_error_detail detail;
        cr_assert_eq(anm_gate_spec_parse(bad[i], &gate, &detail), ANM_EPARSE, "'%s' accepted",
                     bad[i]);
        char expected[128];
        snprintf(expected, sizeof expected,
                 "expected a gate as period-<n>(s|m|h) or D-<n>THH:MM, got '%s'", bad[i]);
        cr_assert_str_eq(detail.message, expected);
    }
    anm_gate_spec negative = {ANM_GATE_BEFORE_PERIOD, -1, 0, 0};
    int64_t closes;
    cr_assert_eq(anm_gate_closure_ms(&negative, date_of(2021, 1, 1), 1, &closes), ANM_EINVAL);
}

/* ---- NESO's 2021 file and its UTC derivative ---------------------------------------------- */

/* Copies field `index` (0-based) of a CSV line into buf; 0 on success. */
static int csv_field(const char *line, int index, char *buf, size_t size)
{
    const char *p = line;
    for (int i = 0; i < index; i++) {
        p = strchr(p, ',');
        if (p == NULL)
            return -1;
        p++;
    }
    size_t n = strcspn(p, ",\r\n");
    if (n >= size)
        return -1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return 0;
}

static char *next_line(char **cursor)
{
    char *line = *cursor;
    if (line == NULL || *line == '\0')
        return NULL;
    char *end = strchr(line, '\n');
    if (end) {
        *end = '\0';
        *cursor = end + 1;
    } else {
        *cursor = line + strlen(line);
    }
    return line;
}

static char *read_data_file(const char *relative)
{
    char path[1024];
    anm_test_source_path(path, sizeof path, relative);
    char *text = anm_test_read_file(path, NULL);
    cr_assert_not_null(text, "cannot read %s", path);
    return text;
}

Test(calendar, agrees_with_every_row_of_neso_demand_2021)
{
    char *neso = read_data_file("data/timeseries/neso_historic_demand_2021.csv");
    char *derived = read_data_file("data/timeseries/gb_2021_halfhourly_utc.csv");
    char *neso_cursor = neso, *derived_cursor = derived;
    char *header = next_line(&neso_cursor);
    cr_assert_eq(strncmp(header, "SETTLEMENT_DATE,SETTLEMENT_PERIOD,", 34), 0);
    header = next_line(&derived_cursor);
    cr_assert_eq(strncmp(header, "settlement_date,settlement_period,start_utc,", 44), 0);

    anm_settlement_date day = date_of(2021, 1, 1);
    int expected_period = 1, rows = 0, days = 0, count = anm_calendar_period_count(day);
    char *line;
    while ((line = next_line(&neso_cursor)) != NULL) {
        rows++;
        char date_text[32], period_text[16], start_text[32];
        anm_settlement_date date;
        long period = 0;
        if (csv_field(line, 0, date_text, sizeof date_text) != 0 ||
            csv_field(line, 1, period_text, sizeof period_text) != 0 ||
            anm_settlement_date_parse_neso(date_text, &date, NULL) != ANM_OK ||
            anm_parse_long(period_text, 1, 50, &period) != ANM_OK)
            cr_assert_fail("row %d: bad date or period in '%.40s'", rows, line);
        if (expected_period > count) { /* the previous day is complete */
            day = anm_settlement_date_add_days(day, 1);
            count = anm_calendar_period_count(day);
            expected_period = 1;
            days++;
        }
        if (anm_settlement_date_compare(date, day) != 0 || period != expected_period)
            cr_assert_fail(
                "row %d: %s period %ld, expected period %d of %04d-%02d-%02d (%d periods)", rows,
                date_text, period, expected_period, day.year, day.month, day.day, count);
        expected_period++;

        /* the derived file has the same row, and its UTC start is the calendar's */
        char *derived_line = next_line(&derived_cursor);
        anm_settlement_date derived_date;
        long derived_period = 0;
        int64_t start_ms = 0;
        if (derived_line == NULL || csv_field(derived_line, 0, date_text, sizeof date_text) != 0 ||
            csv_field(derived_line, 1, period_text, sizeof period_text) != 0 ||
            csv_field(derived_line, 2, start_text, sizeof start_text) != 0 ||
            anm_settlement_date_parse(date_text, &derived_date, NULL) != ANM_OK ||
            anm_parse_long(period_text, 1, 50, &derived_period) != ANM_OK ||
            anm_time_parse_iso8601(start_text, &start_ms) != ANM_OK)
            cr_assert_fail("derived row %d: unreadable", rows);
        anm_settlement_period sp;
        if (anm_settlement_date_compare(derived_date, date) != 0 || derived_period != period ||
            anm_calendar_period(date, (int)period, &sp) != ANM_OK || sp.utc_start_ms != start_ms)
            cr_assert_fail("derived row %d: %s period %ld starts %s, calendar disagrees", rows,
                           date_text, derived_period, start_text);
    }
    cr_assert_eq(expected_period, count + 1, "the last day is incomplete");
    cr_assert_eq(days + 1, 365);
    cr_assert_eq(rows, 17520); /* 363 days of 48, one of 46, one of 50 */
    cr_assert_null(next_line(&derived_cursor), "the derived file has extra rows");
    free(neso);
    free(derived);
}

/* ---- `anm calendar` ---------------------------------------------------------------------- */

static int run_anm(const char *const args[], char **out, char **err)
{
    char binary[1024];
    snprintf(binary, sizeof binary, "%s/anm", anm_test_bin_dir());
    char *argv[8] = {binary};
    int argc = 1;
    for (; args[argc - 1] != NULL && argc < 7; argc++)
        argv[argc] = (char *)(uintptr_t)args[argc - 1]; /* execvp's argv is not const */
    argv[argc] = NULL;
    int status = anm_test_run(argv, out, err);
    cr_assert_neq(status, -1, "could not run %s", binary);
    return status;
}

Test(calendar_cli, csv_of_the_autumn_day_has_50_rows)
{
    char *out = NULL, *err = NULL;
    const char *args[] = {"calendar", "2021-10-31", "--format", "csv", NULL};
    cr_assert_eq(run_anm(args, &out, &err), 0, "stderr: %s", err);
    cr_assert_str_empty(err);
    cr_assert(strstr(out, "\n5,2021-10-31T01:00:00+00:00,2021-10-31T01:00:00Z,"
                          "2021-10-31T01:30:00Z\n") != NULL);
    char *cursor = out; /* next_line cuts out into lines */
    cr_assert_str_eq(next_line(&cursor), "period,local_start,utc_start,utc_end");
    int64_t day_start = utc("2021-10-30T23:00:00Z");
    int rows = 0;
    char *line;
    while ((line = next_line(&cursor)) != NULL) {
        rows++;
        char field[4][40];
        for (int f = 0; f < 4; f++)
            cr_assert_eq(csv_field(line, f, field[f], sizeof field[f]), 0, "row %d: %s", rows,
                         line);
        cr_assert_eq(strchr(line + strlen(field[0]) + strlen(field[1]) + strlen(field[2]) +
                                strlen(field[3]) + 3,
                            ','),
                     NULL, "row %d has more than 4 columns", rows);
        long period = 0;
        cr_assert_eq(anm_parse_long(field[0], 1, 50, &period), ANM_OK);
        cr_assert_eq(period, rows);
        /* independent reference: 30-minute steps from local midnight (23:00 UTC, BST) */
        int64_t start = day_start + (int64_t)(rows - 1) * 30 * MINUTE_MS;
        int64_t local = 0, utc_start = 0, utc_end = 0;
        cr_assert_eq(anm_time_parse_iso8601(field[1], &local), ANM_OK);
        cr_assert_eq(anm_time_parse_iso8601(field[2], &utc_start), ANM_OK);
        cr_assert_eq(anm_time_parse_iso8601(field[3], &utc_end), ANM_OK);
        cr_assert_eq(local, start, "row %d local %s", rows, field[1]);
        cr_assert_eq(utc_start, start, "row %d utc %s", rows, field[2]);
        cr_assert_eq(utc_end, start + 30 * MINUTE_MS);
        cr_assert_eq(field[2][19], 'Z', "utc_start %s", field[2]);
        cr_assert_str_eq(field[1] + 19, rows <= 4 ? "+01:00" : "+00:00");
    }
    cr_assert_eq(rows, 50);
    free(out);
    free(err);
}

Test(calendar_cli, csv_of_the_spring_day_skips_local_01_00)
{
    char *out = NULL;
    const char *args[] = {"calendar", "--format=csv", "2021-03-28", NULL};
    cr_assert_eq(run_anm(args, &out, NULL), 0);
    int lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, 47);
    cr_assert(strstr(out, "\n2,2021-03-28T00:30:00+00:00,2021-03-28T00:30:00Z,"
                          "2021-03-28T01:00:00Z\n3,2021-03-28T02:00:00+01:00,"
                          "2021-03-28T01:00:00Z,2021-03-28T01:30:00Z\n") != NULL);
    free(out);
}

Test(calendar_cli, json_lists_the_periods)
{
    char *out = NULL;
    const char *args[] = {"calendar", "2021-10-31", "--format", "json", NULL};
    cr_assert_eq(run_anm(args, &out, NULL), 0);
    cr_assert(strstr(out, "\"date\": \"2021-10-31\"") != NULL);
    cr_assert(strstr(out, "\"period_count\": 50") != NULL);
    cr_assert(strstr(out, "\"period\": 50,") != NULL);
    cr_assert(strstr(out, "\"period\": 51,") == NULL);
    free(out);
}

Test(calendar_cli, bad_usage_exits_2_with_one_line_reason)
{
    static const struct {
        const char *args[4];
        const char *stderr_text;
    } cases[] = {
        {{"calendar", "2021-02-30", NULL},
         "anm calendar: '2021-02-30' is not a day (try 'anm calendar --help')\n"},
        {{"calendar", "31/10/2021", NULL},
         "anm calendar: expected a date as YYYY-MM-DD, got '31/10/2021' (try 'anm calendar "
         "--help')\n"},
        {{"calendar", "2021-10-31", "--format", "xml"},
         "anm calendar: unknown format 'xml' (expected table, json or csv) (try 'anm calendar "
         "--help')\n"},
        {{"calendar", NULL},
         "anm calendar: missing DATE (YYYY-MM-DD) (try 'anm calendar --help')\n"},
        {{"calendar", "2021-10-31", "--format", NULL},
         "anm calendar: option '--format' needs a value (try 'anm calendar --help')\n"},
        {{"calendar", "2021-10-31", "2021-11-01", NULL},
         "anm calendar: unexpected argument '2021-11-01' (try 'anm calendar --help')\n"},
        {{"calendar", "1995-10-29", NULL},
         "anm calendar: year 1995 of '1995-10-29' is outside the supported years 1996..9999 "
         "(try 'anm calendar --help')\n"},
        {{"calendar", "2021-10-31", "--frmat", "csv"},
         "anm calendar: unknown option '--frmat' (try 'anm calendar --help')\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[5] = {cases[i].args[0], cases[i].args[1], cases[i].args[2],
                               cases[i].args[3], NULL};
        char *out = NULL, *err = NULL;
        cr_assert_eq(run_anm(args, &out, &err), 2, "case %zu", i);
        cr_assert_str_empty(out, "case %zu", i);
        cr_assert_str_eq(err, cases[i].stderr_text);
        free(out);
        free(err);
    }
}

Test(calendar_cli, help_and_version)
{
    char *out = NULL;
    const char *help[] = {"calendar", "--help", NULL};
    cr_assert_eq(run_anm(help, &out, NULL), 0);
    cr_assert_eq(strncmp(out, "usage: anm calendar DATE [--format table|json|csv]\n", 51), 0);
    free(out);
    const char *version[] = {"calendar", "--version", NULL};
    cr_assert_eq(run_anm(version, &out, NULL), 0);
    cr_assert_eq(strncmp(out, "anm calendar (anm) ", 19), 0, "%s", out);
    free(out);
}

Test(calendar_cli, table_is_the_default)
{
    char *out = NULL;
    const char *args[] = {"calendar", "2021-03-28", NULL};
    cr_assert_eq(run_anm(args, &out, NULL), 0);
    cr_assert_eq(strncmp(out, "settlement day 2021-03-28 (Europe/London): 46 periods\n", 54), 0,
                 "%s", out);
    cr_assert(strstr(out, "\n     3  2021-03-28T02:00:00+01:00  2021-03-28T01:00:00Z  "
                          "2021-03-28T01:30:00Z\n") != NULL);
    free(out);
}
