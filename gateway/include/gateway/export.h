/*
 * export.h: what the gateway exports per DER and settlement period, from
 * the latest constraint statement of each zone (schema
 * "anm.constraint_statement" v1, docs/constraint-statement.md, built by
 * forecast/statement.c):
 *
 *   availability_mw = capacity_mw - curtailment quantile at the confidence
 *                     (P50, P90 or P99 of the DER's curtailment MW)
 *   pcf             = the DER's PCF estimate
 *   state           = 1 when curtailment at the confidence is > 0 MW
 *
 * capacity_mw is the DER's "capacity_mw" in the statement when present,
 * otherwise the registered capacity of the pro-forma. Estimates are read as
 * {"value": x, "se": s} objects or plain numbers; a null value makes the
 * quantity invalid for that period.
 *
 * When a new statement moves a DER's availability for a period already
 * declared by more than threshold_mw, a redeclaration event is produced
 * (the first statement covering a period declares it, without event).
 *
 * Lifecycle: gateway_export_new(proforma borrowed) -> apply statements ->
 * query -> gateway_export_destroy(&e). Not thread-safe; no global state.
 */
#ifndef GATEWAY_EXPORT_H
#define GATEWAY_EXPORT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "gateway/proforma.h"

typedef enum gateway_confidence {
    GATEWAY_CONFIDENCE_P50 = 0,
    GATEWAY_CONFIDENCE_P90 = 1,
    GATEWAY_CONFIDENCE_P99 = 2
} gateway_confidence;

/* "p50" / "p90" / "p99" -> enum; ANM_EINVAL otherwise. */
int gateway_confidence_parse(const char *text, gateway_confidence *out);
const char *gateway_confidence_name(gateway_confidence confidence);

/* One DER in one period. Fields are NAN when the statement gave no value. */
typedef struct gateway_der_export {
    int64_t utc_start_ms, utc_end_ms;
    int period;             /* settlement period number of the statement */
    double capacity_mw;
    double curtailment_mw;  /* at the confidence */
    double availability_mw; /* capacity - curtailment */
    double pcf;
    int state;              /* 1: curtailment expected (> 0 MW) at the confidence */
} gateway_der_export;

/* An availability redeclaration (consumed by the DC and Wider Access routes). */
typedef struct gateway_redeclaration {
    char der[64];
    char unit[64];
    char zone[64];
    int64_t utc_start_ms, utc_end_ms;
    int period;
    double previous_mw;
    double available_mw;
    char statement_id[160];
    long statement_version;
} gateway_redeclaration;

typedef struct gateway_export gateway_export;

/* New exporter over proforma (borrowed: must outlive it). threshold_mw >= 0. */
int gateway_export_new(const gateway_proforma *proforma, gateway_confidence confidence,
                       double threshold_mw, gateway_export **out);
void gateway_export_destroy(gateway_export **e);

/*
 * Takes in a statement (borrowed JSON: the statement itself, or a bus
 * message {"v":1,"kind":"constraint.statement","statement":{...}}).
 * Statements of zones the pro-forma does not name are ignored (ANM_OK,
 * *n_events 0). Redeclarations are appended to *events (realloc'd array
 * owned by the caller, free() it; may start NULL) and counted in
 * *n_events. ANM_OK, ANM_EPARSE (a field missing or of the wrong type;
 * detail->path names it, e.g. "periods[3].ders[1].curtailment_mw.p90"),
 * ANM_ENOMEM.
 */
int gateway_export_apply_statement(gateway_export *e, const json_t *statement,
                                   gateway_redeclaration **events, size_t *n_events,
                                   anm_error_detail *detail);

/* As apply_statement, reading the JSON file at path (ANM_EIO, ANM_EPARSE with line/column). */
int gateway_export_apply_statement_file(gateway_export *e, const char *path,
                                        gateway_redeclaration **events, size_t *n_events,
                                        anm_error_detail *detail);

/*
 * The export of proforma DER der_index for the period containing utc_ms.
 * ANM_OK, ANM_ENOTFOUND (no statement covers that time for the DER's zone),
 * ANM_EINVAL (bad index).
 */
int gateway_export_der_at(const gateway_export *e, size_t der_index, int64_t utc_ms,
                          gateway_der_export *out);

/*
 * The engineering value of a pro-forma point at utc_ms from the statement
 * side (availability_mw, pcf, state; zone-level availability is the sum
 * over the zone's DERs). metered_mw is not handled here (*value NAN).
 * ANM_OK or ANM_ENOTFOUND (no statement: *value NAN).
 */
int gateway_export_point_value(const gateway_export *e, const gateway_proforma_point *point,
                               int64_t utc_ms, double *value);

/* Statements applied so far, and the id of the latest. */
size_t gateway_export_statement_count(const gateway_export *e);
const char *gateway_export_latest_statement_id(const gateway_export *e);

#endif
