/*
 * settlement.h: settling trades after delivery (docs/settlement.md).
 *
 * Per trade (one product = one half-hour settlement period): the seller's
 * DER was instructed to deliver `volume` MW of relief for the period. Its
 * metered energy (imported half-hourly meter data, else telemetry integrated
 * over the period) is compared with a baseline (nominated, the historical
 * average of the same half hour, or a fixed profile):
 *
 *   delivered = baseline - metered   (turn-down: generation, export metered)
 *   delivered = metered - baseline   (turn-up: demand, consumption metered)
 *
 * clipped to 0..instructed (the DER's trades of one period share its
 * delivery in trade id order). Payments (integer pence, rounded half away
 * from zero):
 *
 *   availability = availability price x MW x 0.5 h   (on the traded MW)
 *   utilisation  = utilisation price x delivered MWh
 *   penalty      = shortfall penalty x (instructed - delivered) MWh (seller)
 *
 * The seller receives availability + utilisation - penalty at its prices;
 * the buyer pays availability + utilisation at its prices.
 */
#ifndef MARKET_SETTLEMENT_H
#define MARKET_SETTLEMENT_H

#include "engine/calendar.h"
#include "engine/db.h"
#include "engine/error.h"
#include "market/types.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SETTLEMENT_SLOTS 48 /* local half hours of a fixed profile */
#define SETTLEMENT_NO_PARTICIPANT UINT32_MAX

/* ---- half-hourly energy per DER ------------------------------------------------ */

/*
 * A set of half-hourly energies, MWh per (DER, period start): imported meter
 * data, integrated telemetry or nominated baselines. Lookup O(log n).
 */
typedef struct settlement_meter settlement_meter;

settlement_meter *settlement_meter_new(void); /* new; NULL on ENOMEM */
void settlement_meter_destroy(settlement_meter **meter);
/* Adds a reading. ANM_EDUP if (der, period) is already there, ANM_EINVAL for a
 * non-finite value, ANM_ENOMEM. */
int settlement_meter_add(settlement_meter *meter, uint32_t der, int64_t period_start_ms,
                         double mwh);
/* ANM_OK and *mwh, or ANM_ENOTFOUND. */
int settlement_meter_get(const settlement_meter *meter, uint32_t der, int64_t period_start_ms,
                         double *mwh);
size_t settlement_meter_count(const settlement_meter *meter);

/*
 * Imports CSV meter data: a header line "der,settlement_date,period,mwh",
 * then one reading a line (der: integer id; settlement_date: YYYY-MM-DD;
 * period: 1..periods of that date (46, 48 or 50); mwh: a finite number).
 * Blank lines are skipped; a trailing CR is tolerated. On error nothing
 * after the bad line is read, detail gets name, line (1-based), column
 * (1-based, the field's first character) and a message, and the return is
 * ANM_EPARSE (shape), ANM_ERANGE (value out of range) or ANM_EDUP (a
 * second reading of one DER and period). name labels the text in detail.
 */
int settlement_meter_parse_csv(settlement_meter *meter, const char *text, size_t length,
                               const char *name, anm_error_detail *detail);
/* The same from a file (ANM_EIO if it cannot be read). */
int settlement_meter_load_csv(settlement_meter *meter, const char *path, anm_error_detail *detail);

/* ---- telemetry -------------------------------------------------------------------- */

/* One MW sample (export positive for a generator, consumption for demand). */
typedef struct settlement_sample {
    int64_t time_ms;
    double mw;
    int quality; /* 0: good; anything else is dropped */
} settlement_sample;

typedef struct settlement_integration {
    int64_t max_gap_ms;  /* good samples further apart than this bound a gap; default 60,000 */
    double min_coverage; /* share of the period covered for a value; default 0.9 */
} settlement_integration;

typedef struct settlement_energy {
    int valid;        /* 1: coverage >= min_coverage */
    double mwh;       /* integral over the covered time scaled to the period */
    double coverage;  /* covered share of the period, 0..1 */
} settlement_energy;

/*
 * Energy of [start_ms, end_ms) from samples sorted by time (they may start
 * before and end after the period): trapezoidal integration between
 * consecutive good samples at most max_gap_ms apart, the period's edges
 * interpolated linearly; the mean power over the covered time times the
 * period's length. config NULL: defaults. ANM_OK or ANM_EINVAL (unsorted
 * samples, end <= start).
 */
int settlement_integrate(const settlement_sample *samples, size_t n, int64_t start_ms,
                         int64_t end_ms, const settlement_integration *config,
                         settlement_energy *out);

/*
 * Reads the telemetry of signal_key (sql/0002_telemetry.sql) around the
 * periods starting in [from_ms, to_ms) and adds each period's integrated
 * energy for der to meter (periods without a valid value are left out).
 * *added (may be NULL) gets how many were added.
 */
int settlement_meter_load_telemetry(settlement_meter *meter, anm_db *db, uint32_t der,
                                    int32_t signal_key, int64_t from_ms, int64_t to_ms,
                                    const settlement_integration *config, size_t *added);

/* ---- settling ----------------------------------------------------------------------- */

typedef enum settlement_direction {
    SETTLEMENT_TURN_DOWN = 0, /* generation: delivered = baseline - metered */
    SETTLEMENT_TURN_UP = 1    /* demand: delivered = metered - baseline */
} settlement_direction;

typedef enum settlement_baseline_kind {
    SETTLEMENT_BASELINE_NOMINATED = 0,  /* input.nominations, MWh per period */
    SETTLEMENT_BASELINE_HISTORICAL = 1, /* mean metered MWh of the same local half hour */
    SETTLEMENT_BASELINE_FIXED = 2       /* fixed_mw[local half hour] x 0.5 h */
} settlement_baseline_kind;

/* How one DER is settled. A seller's DER missing from input.ders is turn-down
 * with a historical baseline. */
typedef struct settlement_der {
    uint32_t der;
    settlement_direction direction;
    settlement_baseline_kind baseline;
    double fixed_mw[SETTLEMENT_SLOTS]; /* FIXED: MW per local half hour from 00:00 */
} settlement_der;

typedef struct settlement_input {
    const market_trade *trades;
    size_t n_trades;
    const settlement_der *ders;
    size_t n_ders;
    const settlement_meter *meter;       /* imported meter data (preferred); may be NULL */
    const settlement_meter *telemetry;   /* integrated telemetry; may be NULL */
    const settlement_meter *nominations; /* NOMINATED baselines; may be NULL */
    int historical_days;                 /* HISTORICAL: N previous days; 0: 10 */
    int32_t shortfall_penalty_ticks;     /* 0.01 GBP per MWh of shortfall; >= 0 */
    uint32_t dso;                        /* participant id of the DSO, or SETTLEMENT_NO_PARTICIPANT */
    uint32_t neso;                       /* participant id of NESO, or SETTLEMENT_NO_PARTICIPANT */
} settlement_input;

typedef enum settlement_status {
    SETTLEMENT_SETTLED = 0,
    SETTLEMENT_NO_METERING = 1, /* no meter data or valid telemetry: delivered 0 */
    SETTLEMENT_NO_BASELINE = 2  /* baseline unavailable: delivered 0 */
} settlement_status;

typedef enum settlement_source {
    SETTLEMENT_SOURCE_NONE = 0,
    SETTLEMENT_SOURCE_METER = 1,
    SETTLEMENT_SOURCE_TELEMETRY = 2
} settlement_source;

typedef struct settlement_line {
    market_trade trade;
    anm_settlement_period period;
    settlement_status status;
    settlement_source source;
    settlement_baseline_kind baseline_kind;
    double instructed_mwh; /* volume x 0.5 h */
    double baseline_mwh;   /* NAN when unavailable */
    double metered_mwh;    /* NAN when unavailable */
    double delivered_mwh;  /* 0..instructed */
    double shortfall_mwh;  /* instructed - delivered */
    int64_t seller_availability_pence, seller_utilisation_pence, seller_penalty_pence;
    int64_t seller_total_pence;
    int64_t buyer_availability_pence, buyer_utilisation_pence, buyer_total_pence;
} settlement_line;

/* Telemetry against meter data for one DER and period where both exist. */
typedef struct settlement_difference {
    uint32_t der;
    anm_settlement_period period;
    double telemetry_mwh, meter_mwh;
    double difference_mwh; /* telemetry - meter */
} settlement_difference;

typedef struct settlement_report {
    settlement_line *lines;           /* in trade id order */
    size_t n_lines;
    settlement_difference *differences; /* by DER, then period */
    size_t n_differences;
    uint32_t dso, neso;
} settlement_report;

/*
 * Settles input's trades into *out (new; free with settlement_report_destroy).
 * ANM_OK, ANM_EINVAL (bad input, a trade's period outside the calendar),
 * ANM_ENOMEM.
 */
int settlement_run(const settlement_input *input, settlement_report **out);
void settlement_report_destroy(settlement_report **report);

/* Whose report: one participant's lines (as buyer or seller), the DSO's (every
 * line) or NESO's (lines NESO bought). */
typedef enum settlement_party_kind {
    SETTLEMENT_PARTY_PARTICIPANT = 0,
    SETTLEMENT_PARTY_DSO = 1,
    SETTLEMENT_PARTY_NESO = 2
} settlement_party_kind;

const char *settlement_party_kind_name(settlement_party_kind kind); /* "participant", ... */
const char *settlement_status_name(settlement_status status);      /* "settled", ... */
const char *settlement_source_name(settlement_source source);      /* "meter", ... */
const char *settlement_baseline_name(settlement_baseline_kind kind); /* "nominated", ... */

/*
 * Writes the report of one party as CSV (header, one line per trade) or JSON
 * (lines, totals, and for the DSO the reconciliation) into *out (new
 * NUL-terminated text; free()). party is the participant id (ignored for the
 * DSO and NESO kinds, which use report->dso / report->neso).
 */
int settlement_report_csv(const settlement_report *report, settlement_party_kind kind,
                          uint32_t party, char **out);
int settlement_report_json(const settlement_report *report, settlement_party_kind kind,
                           uint32_t party, char **out);

/*
 * The participants appearing in the report (buyers and sellers), ascending,
 * into *out (new array of *n; free()).
 */
int settlement_report_participants(const settlement_report *report, uint32_t **out, size_t *n);

/*
 * Stores the report in PostgreSQL (sql/0004_market.sql): its lines (upsert
 * by trade id: a re-run replaces), the reconciliation and the CSV and JSON
 * reports of every participant, the DSO and NESO for settlement_date (upsert
 * by date, party and format), in one transaction.
 */
int settlement_store(anm_db *db, const settlement_report *report,
                     anm_settlement_date settlement_date);

#endif
