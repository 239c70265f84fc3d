/*
 * service.h: the anm-ingest service: telemetry batches from a ROUTER socket,
 * validated, de-duplicated, appended to the journal and synced (several
 * batches share one fdatasync), acknowledged, then stored in PostgreSQL by
 * a writer thread with binary COPY; the latest value of each signal is
 * published on PUB. docs/ingest.md describes the guarantees.
 *
 * Lifecycle: ingest_service_new (connects to the database, loads the
 * registry and the committed position, opens and replays the journal, binds
 * the sockets) -> ingest_service_run (until SIGINT/SIGTERM: drains and
 * returns ANM_OK) -> ingest_service_destroy.
 */
#ifndef INGEST_SERVICE_H
#define INGEST_SERVICE_H

#include "engine/error.h"
#include "ingest/config.h"

#include <jansson.h>
#include <stddef.h>

/* Quality flag bits accepted (IEC 60870-5-101 QDS: OV, BL, SB, NT, IV). */
#define INGEST_QUALITY_ALLOWED 0x00f1u

/* Reject reasons of the service (besides the frame decoder's and the bus's). */
#define INGEST_REASON_UNKNOWN_SIGNAL "unknown_signal"
#define INGEST_REASON_TIME_RANGE "time_out_of_range"
#define INGEST_REASON_BAD_QUALITY "bad_quality"
#define INGEST_REASON_JOURNAL_FULL "journal_full"
#define INGEST_REASON_STALE_SEQ "stale_seq"

typedef struct ingest_service ingest_service;

/* cfg is borrowed and must outlive the service. */
int ingest_service_new(const ingest_config *cfg, ingest_service **out, anm_error_detail *detail);
/* Runs until a signal (ANM_OK after the drain) or a fatal error. */
int ingest_service_run(ingest_service *s);
void ingest_service_destroy(ingest_service **s);

/* The status report (new reference). */
json_t *ingest_service_status(ingest_service *s, const char *id);

/*
 * Client side of --status: sends ingest.status.request to endpoint (a
 * ROUTER; a leading '@' is dropped) and waits up to timeout_ms for the
 * reply, returned as a new reference in *out. ANM_OK, ANM_ETIMEOUT, ANM_ENET.
 */
int ingest_status_query(const char *endpoint, int timeout_ms, json_t **out);
/*
 * The same, asking the service to start a new latency window after this
 * report ("reset_latency": true): the latency_ms of the next report covers
 * only the samples committed in between (how bench/ingest measures p50/p99
 * over its measurement window).
 */
int ingest_status_query_window(const char *endpoint, int timeout_ms, json_t **out);

#endif
