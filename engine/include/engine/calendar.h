/*
 * calendar.h: the GB settlement calendar (Europe/London).
 *
 * A settlement day is a local (Europe/London) calendar day. It is cut into
 * 30-minute settlement periods, period 1 starting at local 00:00, so a day has
 * 48 periods, the spring clock-change day 46 and the autumn one 50. Every
 * instant is UTC milliseconds since the epoch (see clock.h); local time is
 * only ever derived, never stored.
 *
 * The UK summer-time rule is computed here, not read from the system's TZ
 * database: British Summer Time (UTC+1) runs from 01:00 UTC on the last Sunday
 * of March to 01:00 UTC on the last Sunday of October; the rest of the year is
 * GMT (UTC+0). That rule has held since 1996, so the calendar accepts the
 * years ANM_CALENDAR_MIN_YEAR..ANM_CALENDAR_MAX_YEAR and refuses earlier ones
 * rather than answer them wrongly.
 *
 * Everything here is a pure function of its arguments: no state, no locks,
 * thread-safe.
 */
#ifndef ANM_ENGINE_CALENDAR_H
#define ANM_ENGINE_CALENDAR_H

#include "engine/error.h"

#include <stddef.h>
#include <stdint.h>

enum {
    ANM_CALENDAR_MIN_YEAR = 1996,
    ANM_CALENDAR_MAX_YEAR = 9999,
    ANM_PERIOD_MINUTES = 30,
    ANM_PERIOD_MS = 30 * 60 * 1000,
    ANM_MAX_PERIODS_PER_DAY = 50,
    /* "2021-10-31T01:00:00+01:00" and NUL */
    ANM_LOCAL_TIME_SIZE = 26,
    /* "2021-10-31T01:00:00Z" and NUL */
    ANM_UTC_TIME_SIZE = 21,
    /* "2021-10-31" and NUL */
    ANM_DATE_SIZE = 11
};

/* A settlement date: a local (Europe/London) calendar day. A value type. */
typedef struct anm_settlement_date {
    int year;  /* ANM_CALENDAR_MIN_YEAR..ANM_CALENDAR_MAX_YEAR */
    int month; /* 1..12 */
    int day;   /* 1..31 */
} anm_settlement_date;

/* One settlement period, as stored: (date, period, utc_start, utc_end). */
typedef struct anm_settlement_period {
    anm_settlement_date date;
    int period;             /* 1..anm_calendar_period_count(date) */
    int64_t utc_start_ms;   /* inclusive */
    int64_t utc_end_ms;     /* exclusive; always utc_start_ms + ANM_PERIOD_MS */
    int utc_offset_minutes; /* local offset at the start: 0 (GMT) or 60 (BST) */
} anm_settlement_period;

/* ---- dates ---------------------------------------------------------------- */

/* 1 if date is a real day within the supported years, else 0. */
int anm_settlement_date_valid(anm_settlement_date date);

/*
 * Parses "YYYY-MM-DD" (exactly, nothing before or after). Returns ANM_OK,
 * ANM_EPARSE (not that shape: detail->column points at the first bad
 * character) or ANM_ERANGE (no such day, or a year outside the supported
 * range). detail may be NULL; its message reads like
 *   "expected a date as YYYY-MM-DD" or "2021-02-29 is not a day".
 */
int anm_settlement_date_parse(const char *text, anm_settlement_date *out, anm_error_detail *detail);

/*
 * Parses NESO's "DD-MON-YYYY" ("01-JAN-2021", month name in any case), as in
 * the SETTLEMENT_DATE column of NESO demand files. Same returns as above.
 */
int anm_settlement_date_parse_neso(const char *text, anm_settlement_date *out,
                                   anm_error_detail *detail);

/* Writes "YYYY-MM-DD"; size >= ANM_DATE_SIZE. ANM_OK, or ANM_EINVAL for an invalid date / small
 * buffer. */
int anm_settlement_date_format(anm_settlement_date date, char *buf, size_t size);

/* Days since 1970-01-01 of date (no validity check), and back. */
int64_t anm_settlement_date_to_days(anm_settlement_date date);
anm_settlement_date anm_settlement_date_from_days(int64_t days);

/* date plus days (may be negative). The result may fall outside the supported years. */
anm_settlement_date anm_settlement_date_add_days(anm_settlement_date date, int64_t days);

/* <0, 0, >0 as a is before, the same as, or after b. */
int anm_settlement_date_compare(anm_settlement_date a, anm_settlement_date b);

/* ---- UK summer time ---------------------------------------------------------- */

/* The UTC instants at which BST starts and ends in year (01:00 UTC on the last Sunday of March /
 * October). */
int64_t anm_calendar_bst_start_ms(int year);
int64_t anm_calendar_bst_end_ms(int year);

/* Europe/London offset from UTC at utc_ms, in minutes: 60 in BST, 0 in GMT. */
int anm_calendar_utc_offset_minutes(int64_t utc_ms);

/*
 * The UTC instant of a local wall-clock time, minute_of_day minutes after
 * local midnight (0..1439) on date. Wall-clock times that happen twice (the
 * autumn 01:00-02:00) resolve to the first, BST, occurrence; times that do not
 * exist (the spring 01:00-02:00) are read at the GMT offset that was in force
 * just before the gap, so 01:30 becomes 01:30 UTC (02:30 BST). Returns ANM_OK,
 * or ANM_EINVAL for an invalid date or minute_of_day.
 */
int anm_calendar_local_to_utc(anm_settlement_date date, int minute_of_day, int64_t *utc_ms);

/* ---- settlement days and periods -------------------------------------------- */

/* UTC instant of local midnight starting date (period 1's start). ANM_EINVAL for an invalid date.
 */
int anm_calendar_day_start_ms(anm_settlement_date date, int64_t *utc_ms);

/* Number of settlement periods of date: 46, 48 or 50; ANM_EINVAL (negative) for an invalid date. */
int anm_calendar_period_count(anm_settlement_date date);

/*
 * Fills *out with period `period` of date. Returns ANM_OK, ANM_EINVAL for an
 * invalid date or ANM_ERANGE for a period outside 1..count.
 */
int anm_calendar_period(anm_settlement_date date, int period, anm_settlement_period *out);

/*
 * The settlement period containing utc_ms. Returns ANM_OK, or ANM_ERANGE when
 * the instant's local date is outside the supported years.
 */
int anm_calendar_period_at(int64_t utc_ms, anm_settlement_period *out);

/* The period after `current` (which may roll into the next day). Same returns as above. */
int anm_calendar_period_next(const anm_settlement_period *current, anm_settlement_period *out);

/* ---- text ------------------------------------------------------------------- */

/* Local time with its offset, "2021-10-31T01:00:00+01:00"; size >= ANM_LOCAL_TIME_SIZE. ANM_OK or
 * ANM_ERANGE. */
int anm_calendar_format_local(int64_t utc_ms, char *buf, size_t size);

/* UTC to the second, "2021-10-31T01:00:00Z" (milliseconds dropped); size >= ANM_UTC_TIME_SIZE.
 * ANM_OK or ANM_ERANGE. */
int anm_calendar_format_utc(int64_t utc_ms, char *buf, size_t size);

/* ---- gate closure -------------------------------------------------------------- */

typedef enum anm_gate_kind {
    /* a fixed time before the period starts (NESO BM: 60 minutes) */
    ANM_GATE_BEFORE_PERIOD = 0,
    /* a fixed local wall-clock time on the settlement day D minus n days (12:00 on D-1) */
    ANM_GATE_LOCAL_TIME = 1
} anm_gate_kind;

/* When trading for a period closes. A value type; see anm_gate_spec_parse for the text form. */
typedef struct anm_gate_spec {
    anm_gate_kind kind;
    int64_t before_ms; /* ANM_GATE_BEFORE_PERIOD: >= 0 */
    int days_before;   /* ANM_GATE_LOCAL_TIME: n in D-n, 0..366 */
    int minute_of_day; /* ANM_GATE_LOCAL_TIME: local minutes after midnight, 0..1439 */
} anm_gate_spec;

/*
 * Parses the text form of a gate:
 *   "period-60m", "period-1h", "period-90s"  ANM_GATE_BEFORE_PERIOD
 *   "D-1T12:00", "D-0T09:30"                 ANM_GATE_LOCAL_TIME
 * Returns ANM_OK or ANM_EPARSE (detail says why; may be NULL).
 */
int anm_gate_spec_parse(const char *text, anm_gate_spec *out, anm_error_detail *detail);

/*
 * Writes the text form: "period-60m" (whole minutes when they divide, else
 * seconds) or "D-1T12:00". Returns ANM_OK, ANM_EINVAL (invalid gate) or
 * ANM_ERANGE (buffer too small, or a before_ms with a part of a second).
 */
int anm_gate_spec_format(const anm_gate_spec *gate, char *buf, size_t size);

/*
 * The UTC instant at which trading for `period` of date closes. Returns
 * ANM_OK, ANM_EINVAL (invalid gate or date) or ANM_ERANGE (no such period, or
 * D-n outside the supported years). A local time that falls in a clock
 * change is resolved as in anm_calendar_local_to_utc.
 */
int anm_gate_closure_ms(const anm_gate_spec *gate, anm_settlement_date date, int period,
                        int64_t *utc_ms);

#endif
