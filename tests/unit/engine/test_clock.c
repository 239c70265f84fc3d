/*
 * test_clock.c: the engine clock (real, simulated, stepped), clock specs,
 * ISO 8601 text, and the civil-date arithmetic against the C library.
 * Nothing here waits for wall-clock time.
 */
#include "engine/clock.h"
#include "engine/error.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t utc(const char *text)
{
    int64_t ms = 0;
    cr_assert_eq(anm_time_parse_iso8601(text, &ms), ANM_OK, "bad test instant %s", text);
    return ms;
}

/* ---- stepped and simulated clocks ------------------------------------------------ */

Test(clock, stepped_clock_moves_only_when_stepped)
{
    int64_t start = utc("2021-03-28T00:00:00Z");
    anm_clock *clock = anm_clock_new_simulated(start, 0.0);
    cr_assert_not_null(clock);
    cr_assert_eq(anm_clock_is_simulated(clock), 1);
    cr_assert_eq(anm_clock_now_ms(clock), start);
    cr_assert_eq(anm_clock_now_ms(clock), start);
    cr_assert_eq(anm_clock_step(clock, 30 * 60000), ANM_OK);
    cr_assert_eq(anm_clock_now_ms(clock), utc("2021-03-28T00:30:00Z"));
    cr_assert_eq(anm_clock_step(clock, -1), ANM_EINVAL);
    cr_assert_eq(anm_clock_now_ms(clock), utc("2021-03-28T00:30:00Z"));
    cr_assert_eq(anm_clock_set(clock, start - 1000), ANM_OK);
    cr_assert_eq(anm_clock_now_ms(clock), start - 1000);
    /* a stepped clock never reaches a future deadline by itself */
    cr_assert_eq(anm_clock_real_delay_ms(clock, start), -1);
    cr_assert_eq(anm_clock_real_delay_ms(clock, start - 1000), 0);
    cr_assert_eq(anm_clock_real_delay_ms(clock, start - 5000), 0);
    anm_clock_destroy(&clock);
    cr_assert_null(clock);
    anm_clock_destroy(&clock); /* idempotent */
}

Test(clock, simulated_clock_runs_at_its_speed)
{
    const double speed = 1e6; /* a real millisecond is 1000 simulated seconds */
    int64_t start = utc("2021-01-01T00:00:00Z");
    int64_t before_create_ns = anm_monotonic_ns();
    anm_clock *clock = anm_clock_new_simulated(start, speed);
    int64_t after_create_ns = anm_monotonic_ns();
    cr_assert_not_null(clock);
    cr_assert_float_eq(anm_clock_speed(clock), speed, 0.0);
    /* spin (no sleep) until the simulated clock has moved a simulated hour */
    int64_t now = start;
    while (now < start + 3600000) {
        int64_t before_read_ns = anm_monotonic_ns();
        now = anm_clock_now_ms(clock);
        int64_t after_read_ns = anm_monotonic_ns();
        /*
         * The clock started between before_create_ns and after_create_ns and
         * was read between before_read_ns and after_read_ns: its simulated
         * elapsed time is speed times a real time within those bounds (1 ms
         * of slack for the rounding down to whole milliseconds).
         */
        double lower = (double)(before_read_ns - after_create_ns) / 1e6 * speed;
        double upper = (double)(after_read_ns - before_create_ns) / 1e6 * speed;
        double elapsed = (double)(now - start);
        if (elapsed < lower - 1.0 || elapsed > upper + 1.0)
            cr_assert_fail("simulated %.0f ms not in [%.0f, %.0f]", elapsed, lower, upper);
        cr_assert_lt(before_read_ns - before_create_ns, 5000000000LL, "clock does not advance");
    }
    /* stepping adds on top of the running time */
    int64_t before_step = anm_clock_now_ms(clock);
    cr_assert_eq(anm_clock_step(clock, 86400000), ANM_OK);
    cr_assert_geq(anm_clock_now_ms(clock), before_step + 86400000);
    anm_clock_destroy(&clock);
}

Test(clock, simulated_clock_converts_deadlines_to_real_delays)
{
    int64_t start = utc("2021-01-01T00:00:00Z");
    anm_clock *clock = anm_clock_new_simulated(start, 60.0);
    cr_assert_not_null(clock);
    /* a simulated minute ahead is a real second at speed 60, less what has elapsed */
    int64_t delay = anm_clock_real_delay_ms(clock, start + 60000);
    cr_assert(delay > 900 && delay <= 1000, "delay %lld", (long long)delay);
    cr_assert_eq(anm_clock_real_delay_ms(clock, start), 0);
    anm_clock_destroy(&clock);
    cr_assert_null(anm_clock_new_simulated(start, -1.0));
}

Test(clock, real_clock_follows_the_wall_clock)
{
    anm_clock *clock = anm_clock_new_real();
    cr_assert_not_null(clock);
    cr_assert_eq(anm_clock_is_simulated(clock), 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t before = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t now = anm_clock_now_ms(clock);
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t after = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    cr_assert(now >= before && now <= after, "%lld not in [%lld, %lld]", (long long)now,
              (long long)before, (long long)after);
    cr_assert_eq(anm_clock_step(clock, 1000), ANM_ESTATE);
    cr_assert_eq(anm_clock_set(clock, 0), ANM_ESTATE);
    int64_t delay = anm_clock_real_delay_ms(clock, now + 5000);
    cr_assert(delay > 4000 && delay <= 5000, "delay %lld", (long long)delay);
    anm_clock_destroy(&clock);
}

/* ---- clock specs ---------------------------------------------------------------------- */

Test(clock, parses_specs)
{
    anm_clock *clock = NULL;
    cr_assert_eq(anm_clock_new_from_spec("real", &clock), ANM_OK);
    cr_assert_eq(anm_clock_is_simulated(clock), 0);
    anm_clock_destroy(&clock);

    cr_assert_eq(anm_clock_new_from_spec("step:2021-03-28T00:00:00Z", &clock), ANM_OK);
    cr_assert_eq(anm_clock_is_simulated(clock), 1);
    cr_assert_float_eq(anm_clock_speed(clock), 0.0, 0.0);
    cr_assert_eq(anm_clock_now_ms(clock), utc("2021-03-28T00:00:00Z"));
    anm_clock_destroy(&clock);

    cr_assert_eq(anm_clock_new_from_spec("sim:2021-03-28T00:00:00Z", &clock), ANM_OK);
    cr_assert_float_eq(anm_clock_speed(clock), 1.0, 0.0);
    cr_assert_geq(anm_clock_now_ms(clock), utc("2021-03-28T00:00:00Z"));
    anm_clock_destroy(&clock);

    cr_assert_eq(anm_clock_new_from_spec("sim:2021-03-28T01:00:00+01:00@60", &clock), ANM_OK);
    cr_assert_float_eq(anm_clock_speed(clock), 60.0, 0.0);
    int64_t now = anm_clock_now_ms(clock);
    /* 01:00+01:00 is 00:00 UTC; at speed 60 less than a simulated minute passes in a second */
    cr_assert(now >= utc("2021-03-28T00:00:00Z") && now < utc("2021-03-28T00:01:00Z"));
    anm_clock_destroy(&clock);

    cr_assert_eq(anm_clock_new_from_spec("sim:2021-03-28T00:00:00Z@0.5", &clock), ANM_OK);
    cr_assert_float_eq(anm_clock_speed(clock), 0.5, 0.0);
    anm_clock_destroy(&clock);
}

Test(clock, rejects_bad_specs)
{
    static const char *const bad[] = {
        "",
        "Real",
        "simulated",
        "sim:",
        "sim:2021-03-28",
        "sim:2021-03-28T00:00:00",
        "sim:2021-13-01T00:00:00Z",
        "sim:2021-03-28T00:00:00Z@",
        "sim:2021-03-28T00:00:00Z@0",
        "sim:2021-03-28T00:00:00Z@-1",
        "sim:2021-03-28T00:00:00Z@abc",
        "sim:2021-03-28T00:00:00Z@60x",
        "sim:2021-03-28T00:00:00Z@inf",
        "sim:2021-03-28T00:00:00Z@nan",
        "sim:2021-03-28T00:00:00Z@ 60",
        "sim:2021-03-28T00:00:00Z@+60",
        "sim:2021-03-28T00:00:00Z@0x3c",
        "step:2021-03-28T00:00:00Z@60",
        "sim:2021-03-28T00:00:00Z@60@60",
    };
    anm_clock *sentinel = anm_clock_new_real(); /* *out must be reset to NULL */
    cr_assert_not_null(sentinel);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        anm_clock *clock = sentinel;
        cr_assert_eq(anm_clock_new_from_spec(bad[i], &clock), ANM_EINVAL, "'%s' accepted", bad[i]);
        cr_assert_null(clock, "'%s' left a clock", bad[i]);
    }
    anm_clock *clock = sentinel;
    cr_assert_eq(anm_clock_new_from_spec(NULL, &clock), ANM_EINVAL);
    cr_assert_null(clock);
    anm_clock_destroy(&sentinel);
}

/* ---- ISO 8601 ------------------------------------------------------------------------------- */

Test(clock, formats_and_parses_iso8601_round_trip)
{
    static const struct {
        const char *text;
        int64_t ms;
    } cases[] = {
        {"1970-01-01T00:00:00.000Z", 0},
        {"1969-12-31T23:59:59.999Z", -1},
        {"2021-10-31T01:00:00.000Z", 1635642000000LL},
        {"2024-02-29T12:34:56.789Z", 1709210096789LL},
        {"2100-12-31T23:59:59.999Z", 4133980799999LL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[25];
        cr_assert_eq(anm_time_format_utc(cases[i].ms, buf, sizeof buf), ANM_OK);
        cr_assert_str_eq(buf, cases[i].text);
        int64_t back = 0;
        cr_assert_eq(anm_time_parse_iso8601(cases[i].text, &back), ANM_OK);
        cr_assert_eq(back, cases[i].ms, "%s", cases[i].text);
    }
    char small[24];
    cr_assert_eq(anm_time_format_utc(0, small, sizeof small), ANM_ERANGE);
}

Test(clock, parses_offsets_fractions_and_spaces)
{
    cr_assert_eq(utc("2021-10-31T01:00:00+01:00"), utc("2021-10-31T00:00:00Z"));
    cr_assert_eq(utc("2021-10-31T01:00:00-05:30"), utc("2021-10-31T06:30:00Z"));
    cr_assert_eq(utc("2021-10-31 01:00:00Z"), utc("2021-10-31T01:00:00Z"));
    cr_assert_eq(utc("2021-10-31T01:00:00.5Z"), utc("2021-10-31T01:00:00Z") + 500);
    /* digits beyond milliseconds are truncated, not rounded */
    cr_assert_eq(utc("2021-10-31T01:00:00.123999Z"), utc("2021-10-31T01:00:00Z") + 123);
    /* an offset moves the date too */
    cr_assert_eq(utc("2021-01-01T00:30:00+01:00"), utc("2020-12-31T23:30:00Z"));
}

Test(clock, rejects_bad_iso8601)
{
    static const char *const bad[] = {
        "",
        "2021-10-31",
        "2021-10-31T01:00:00",
        "2021-10-31T01:00Z",
        "2021-10-31T01:00:00Z ",
        "2021-10-31T01:00:00.Z",
        "2021-10-31T01:00:00+0100",
        "2021-10-31T01:00:00+24:00",
        "2021-10-31T24:00:00Z",
        "2021-10-31T01:60:00Z",
        "2021-10-31T01:00:60Z",
        "2021-02-29T00:00:00Z",
        "2021-00-10T00:00:00Z",
        "2021-10-32T00:00:00Z",
        "21-10-31T01:00:00Z",
        "2021/10/31T01:00:00Z",
        "2021-10-31t01:00:00Z",
        "2021-10-31T01:00:00z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 42;
        cr_assert_eq(anm_time_parse_iso8601(bad[i], &ms), ANM_EPARSE, "'%s' accepted", bad[i]);
        cr_assert_eq(ms, 42, "'%s' wrote a value", bad[i]);
    }
}

/* ---- civil dates ------------------------------------------------------------------------------
 */

Test(clock, days_from_civil_agrees_with_timegm_1900_to_2200)
{
    long checked = 0;
    int64_t expected_days = anm_days_from_civil(1900, 1, 1);
    for (int year = 1900; year <= 2200; year++) {
        for (int month = 1; month <= 12; month++) {
            for (int day = 1; day <= 31; day++) {
                struct tm tm = {.tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day};
                time_t t = timegm(&tm);
                if (tm.tm_mday != day) /* timegm normalised a day the month does not have */
                    continue;
                int64_t days = anm_days_from_civil(year, month, day);
                if (days * 86400 != (int64_t)t)
                    cr_assert_fail("%04d-%02d-%02d: %lld days, timegm %lld s", year, month, day,
                                   (long long)days, (long long)t);
                /* consecutive real days are consecutive numbers */
                if (days != expected_days)
                    cr_assert_fail("%04d-%02d-%02d is day %lld, expected %lld", year, month, day,
                                   (long long)days, (long long)expected_days);
                expected_days++;
                int y, m, d;
                anm_civil_from_days(days, &y, &m, &d);
                if (y != year || m != month || d != day)
                    cr_assert_fail("%lld -> %04d-%02d-%02d, expected %04d-%02d-%02d",
                                   (long long)days, y, m, d, year, month, day);
                checked++;
            }
        }
    }
    /* 301 years; leap days: 76 multiples of 4 in 1900..2200, less 1900, 2100 and 2200 */
    cr_assert_eq(checked, 301L * 365 + 76 - 3);
    cr_assert_eq(anm_days_from_civil(1970, 1, 1), 0);
    cr_assert_eq(anm_days_from_civil(2000, 3, 1), 11017);
}
