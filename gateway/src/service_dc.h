/*
 * service_dc.h (private to the gateway module): the Data Concentrator route
 * of the service.
 *
 * The service thread hands over redeclaration events and exported values;
 * a worker thread turns them into CSV files (dc_csv.h), spools them
 * (dc_upload.h: durable until a 201) and uploads them with the uploader's
 * pacing, so a slow or absent Data Concentrator never stalls the service.
 *
 * Files:
 *   - redeclarations: one <unit>_<now>_redecv1.csv per unit per batch of
 *     events, default redeclaration columns (unit, start_utc, end_utc,
 *     available_mw, reason);
 *   - performance monitoring: per unit with points that have a dc_column in
 *     the pro-forma, a row a second (timestamp_utc and each such column,
 *     the latest sent value), one <unit>_<start>_1HZ_perfmonv1.csv per
 *     perfmon_interval_s, started on the interval boundary.
 * The unit is data_concentrator.unit if set, else the DER's pro-forma unit.
 * Latency (status): from the measurement (the event's creation, the file's
 * last sample) to the 201.
 */
#ifndef GATEWAY_SERVICE_DC_H
#define GATEWAY_SERVICE_DC_H

#include <jansson.h>

#include "gateway/gateway.h"

typedef struct gateway__dc_route gateway__dc_route;

/* c and proforma borrowed (outlive the route). ANM_ECONFIG (detail names the key) etc. */
int gateway__dc_route_new(const gateway_dc_settings *c, const gateway_proforma *proforma,
                          gateway__dc_route **out, anm_error_detail *detail);
/* Stops the worker (files stay spooled). Idempotent; nulls *r. */
void gateway__dc_route_destroy(gateway__dc_route **r);

/* Service thread. */
void gateway__dc_route_values(gateway__dc_route *r, const gateway_export_value *values, size_t n);
void gateway__dc_route_redeclarations(gateway__dc_route *r, const gateway_redeclaration *events,
                                      size_t n);

/* New status object: kind, state, last_handover (last 201), latency, backlog, parked, errors. */
json_t *gateway__dc_route_status(gateway__dc_route *r);

#endif
