/*
 * clock.h: the engine clock. Every component reads "now" through one of
 * these, never through time() or clock_gettime() directly, so that replays of
 * 2021 data, telemetry time validation, gate closure and schedules all run
 * on simulated time in tests and sims.
 *
 * Times are int64_t milliseconds since 1970-01-01T00:00:00Z (UTC); GB
 * settlement periods and every stored time are UTC (see calendar.h for the
 * Europe/London settlement day).
 *
 * Kinds:
 *   real       wall-clock UTC.
 *   simulated  starts at a given UTC instant and runs at a speed factor
 *              relative to a monotonic clock (1.0: real speed, 60.0: an hour
 *              a minute); speed 0 means stepped: time moves only through
 *              anm_clock_step / anm_clock_set, so a test never waits.
 * A clock is thread-safe: many threads may read it while one steps it.
 */
#ifndef ANM_ENGINE_CLOCK_H
#define ANM_ENGINE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

typedef struct anm_clock anm_clock;

/* New real-time clock. NULL on ENOMEM. */
anm_clock *anm_clock_new_real(void);

/* New simulated clock at start_ms, running at speed (>= 0; 0: stepped). NULL on ENOMEM or speed < 0. */
anm_clock *anm_clock_new_simulated(int64_t start_ms, double speed);

/*
 * New clock from a textual spec, as given by --clock options and config:
 *   "real"                       real time
 *   "sim:2021-03-28T00:00:00Z"   simulated, speed 1
 *   "sim:2021-03-28T00:00:00Z@60"  simulated, speed 60
 *   "step:2021-03-28T00:00:00Z"  stepped
 * Returns ANM_OK or ANM_EINVAL (bad spec) / ANM_ENOMEM.
 */
int anm_clock_new_from_spec(const char *spec, anm_clock **out);

void anm_clock_destroy(anm_clock **clock);

/* Current engine time, UTC ms. */
int64_t anm_clock_now_ms(anm_clock *clock);

/* 1 for simulated (including stepped) clocks, 0 for real time. */
int anm_clock_is_simulated(const anm_clock *clock);
double anm_clock_speed(const anm_clock *clock);

/* Moves a simulated clock forward by delta_ms (>= 0). ANM_ESTATE on a real clock. */
int anm_clock_step(anm_clock *clock, int64_t delta_ms);

/* Sets a simulated clock to utc_ms (may go backwards: tests only). ANM_ESTATE on a real clock. */
int anm_clock_set(anm_clock *clock, int64_t utc_ms);

/*
 * How many real milliseconds until the engine time reaches deadline_ms
 * (0 if already there; -1 for a stepped clock, which never gets there by
 * itself). Event loops use it as their poll timeout.
 */
int64_t anm_clock_real_delay_ms(anm_clock *clock, int64_t deadline_ms);

/* Monotonic real time in nanoseconds, for measuring durations and latency. */
int64_t anm_monotonic_ns(void);

/* Wall-clock UTC ms, for the few places that must not be simulated (log stamps). */
int64_t anm_wall_clock_ms(void);

/*
 * ISO 8601 UTC: formats "2021-10-31T01:00:00.000Z" (24 chars + NUL; size >= 25)
 * and parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" or with a "+HH:MM"/"-HH:MM" offset.
 * anm_time_parse_iso8601 returns ANM_OK or ANM_EPARSE.
 */
int anm_time_format_utc(int64_t utc_ms, char *buf, size_t size);
int anm_time_parse_iso8601(const char *text, int64_t *utc_ms);

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t anm_days_from_civil(int year, int month, int day);
void anm_civil_from_days(int64_t days, int *year, int *month, int *day);

#endif
